//! What the client-config and handshake benches share: CA bundles, an
//! index holding one policy, and the floor, a bare rustls configuration.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use backend_tls_policy::{
    api::v1,
    grant::Referrer,
    index::{AppliedPolicy, BackendRef, Index, Outcome},
};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::{
    ClientConfig, RootCertStore,
    client::WebPkiServerVerifier,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use serde_json::json;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `n` CA certificates as one PEM bundle; the first one also issues a
/// server certificate for `abc.example.com` (returned as chain and key).
pub fn bundle(n: usize) -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let mut pem = String::new();
    let mut server = None;
    for i in 0..n {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, format!("CA {i}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        pem.push_str(&params.self_signed(&key).unwrap().pem());
        if i == 0 {
            let leaf_key = KeyPair::generate().unwrap();
            let mut leaf = CertificateParams::new(vec!["abc.example.com".into()]).unwrap();
            leaf.subject_alt_names
                .push(rcgen::SanType::URI("spiffe://abc.example.com/id".try_into().unwrap()));
            let cert = leaf.signed_by(&leaf_key, &Issuer::from_params(&params, &key)).unwrap();
            server = Some((
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            ));
        }
    }
    let (chain, key) = server.unwrap();
    (pem, chain, key)
}

pub fn index_with(pem: &str, sans: serde_json::Value) -> Index {
    let mut index = Index::default();
    index.apply(
        &serde_json::from_value::<Service>(json!({
            "metadata": {"namespace": "shop", "name": "shop"},
            "spec": {"ports": [{"name": "https", "port": 443}]},
        }))
        .unwrap(),
    );
    index.apply(&config_map(pem));
    let mut validation = json!({
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}],
        "hostname": "abc.example.com",
    });
    if !sans.is_null() {
        validation["subjectAltNames"] = sans;
    }
    index.apply(&serde_json::from_value::<v1::BackendTlsPolicy>(json!({
        "metadata": {"namespace": "shop", "name": "p"},
        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "shop"}], "validation": validation},
    })).unwrap());
    index
}

pub fn config_map(pem: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"namespace": "shop", "name": "ca"}, "data": {"ca.crt": pem}}),
    )
    .unwrap()
}

pub fn applied(index: &Index) -> AppliedPolicy {
    let backend =
        BackendRef::service(Referrer::gateway_api("HTTPRoute", "shop"), "shop", "shop", 443);
    match index.resolve(&backend).outcome() {
        Outcome::Policy(applied) => applied.clone(),
        other => panic!("{other:?}"),
    }
}

/// The floor: PEM → RootCertStore → stock verifier → ClientConfig.
pub fn bare_config(pem: &str, provider: &Arc<CryptoProvider>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(
        CertificateDer::pem_slice_iter(pem.as_bytes()).map(Result::unwrap),
    );
    let verifier = WebPkiServerVerifier::builder_with_provider(roots.into(), provider.clone())
        .build()
        .unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_webpki_verifier(verifier)
            .with_no_client_auth(),
    )
}

/// Mozilla's TLS root certificates (webpki-root-certs) that are valid
/// now, as one PEM bundle: a real trust bundle, as trust-manager
/// distributes it.
pub fn mozilla_roots() -> String {
    let now = x509_parser::time::ASN1Time::now();
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter(|der| {
            let (_, certificate) = x509_parser::parse_x509_certificate(der).unwrap();
            certificate.validity().is_valid_at(now)
        })
        .map(|der| {
            let base64 = data_encoding::BASE64.encode(der);
            let lines: Vec<&str> = base64
                .as_bytes()
                .chunks(64)
                .map(|line| std::str::from_utf8(line).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect()
}

/// `n` new self-signed CA certificates as one PEM bundle.
pub fn ca_bundle(n: usize) -> String {
    (0..n)
        .map(|i| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, format!("CA {i}"));
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap().pem()
        })
        .collect()
}
