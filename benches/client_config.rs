//! Building a `ClientConfig` for a policy, against the floor measured in the
//! same run: parsing the same PEM into a `RootCertStore` and building a bare
//! rustls config with the stock WebPKI verifier. Also a cache hit, and full
//! in-memory handshakes with our config against the same handshake with a
//! stock config.
//!
//! ```text
//! cargo bench --bench client_config
//! ```

use std::{hint::black_box, sync::Arc};

use backend_tls_policy::{
    api::v1,
    grant::Referrer,
    index::{AppliedPolicy, BackendRef, Index, Outcome},
    tls::{self, TlsCache, TlsParams},
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
    client::WebPkiServerVerifier,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use serde_json::json;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `n` CA certificates as one PEM bundle; the first one also issues a
/// server certificate for `abc.example.com` (returned as chain and key).
fn bundle(n: usize) -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
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

fn index_with(pem: &str, sans: serde_json::Value) -> Index {
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

fn config_map(pem: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"namespace": "shop", "name": "ca"}, "data": {"ca.crt": pem}}),
    )
    .unwrap()
}

fn applied(index: &Index) -> AppliedPolicy {
    let backend =
        BackendRef::service(Referrer::gateway_api("HTTPRoute", "shop"), "shop", "shop", 443);
    match index.resolve(&backend).outcome() {
        Outcome::Policy(applied) => applied.clone(),
        other => panic!("{other:?}"),
    }
}

/// The floor: PEM → RootCertStore → stock verifier → ClientConfig.
fn bare_config(pem: &str, provider: &Arc<CryptoProvider>) -> Arc<ClientConfig> {
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

fn build(c: &mut Criterion) {
    let provider = provider();
    let mut group = c.benchmark_group("client_config");
    for n in [1, 150] {
        let (pem, _, _) = bundle(n);
        let mut index = index_with(&pem, json!(null));
        group.bench_with_input(BenchmarkId::new("bare_rustls_floor", n), &pem, |b, pem| {
            b.iter(|| bare_config(black_box(pem), &provider))
        });
        // Building from an index that already holds the parsed CA.
        let ready = applied(&index);
        group.bench_with_input(BenchmarkId::new("build", n), &n, |b, _| {
            b.iter(|| {
                tls::client_config_with_provider(
                    black_box(&ready),
                    &TlsParams::default(),
                    provider.clone(),
                )
                .unwrap()
            })
        });
        // Our full path for a rotated CA: the ConfigMap is applied (every
        // block parsed and checked, the policy recomputed), then the config
        // built.
        let cm = config_map(&pem);
        group.bench_with_input(BenchmarkId::new("apply_ca_and_build", n), &n, |b, _| {
            b.iter(|| {
                index.apply(black_box(&cm));
                tls::client_config_with_provider(
                    &applied(&index),
                    &TlsParams::default(),
                    provider.clone(),
                )
                .unwrap()
            })
        });
    }
    let (pem, _, _) = bundle(1);
    let index = index_with(&pem, json!(null));
    let applied = applied(&index);
    let cache = TlsCache::default();
    let params = TlsParams::default();
    cache.client_config_with_provider(&applied, &params, provider.clone()).unwrap();
    group.bench_function("cache_hit", |b| {
        b.iter(|| {
            cache
                .client_config_with_provider(black_box(&applied), &params, provider.clone())
                .unwrap()
        })
    });
    group.finish();
}

/// A full handshake in memory, no sockets.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) {
    let name = ServerName::try_from("abc.example.com").unwrap();
    let mut client = ClientConnection::new(client.clone(), name).unwrap();
    let mut server = ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::new();
    while client.is_handshaking() || server.is_handshaking() {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets().unwrap();
    }
}

fn handshakes(c: &mut Criterion) {
    let provider = provider();
    let (pem, chain, key) = bundle(1);
    let server = Arc::new(
        ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let stock = bare_config(&pem, &provider);
    let hostname_mode = tls::client_config_with_provider(
        &applied(&index_with(&pem, json!(null))),
        &TlsParams::default(),
        provider.clone(),
    )
    .unwrap()
    .config;
    let sans = json!([{"type": "URI", "uri": "spiffe://abc.example.com/id"}]);
    let san_mode = tls::client_config_with_provider(
        &applied(&index_with(&pem, sans)),
        &TlsParams::default(),
        provider,
    )
    .unwrap()
    .config;
    let mut group = c.benchmark_group("handshake");
    group.bench_function("stock_rustls_baseline", |b| b.iter(|| handshake(&stock, &server)));
    group.bench_function("hostname_mode", |b| b.iter(|| handshake(&hostname_mode, &server)));
    group.bench_function("subject_alt_names_mode", |b| b.iter(|| handshake(&san_mode, &server)));
    group.finish();
}

criterion_group!(benches, build, handshakes);
criterion_main!(benches);
