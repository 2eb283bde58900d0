//! Real handshakes: our `ClientConfig` against real TLS servers (an
//! in-process tokio-rustls server, and `openssl s_server`), with
//! certificates made by rcgen for each case.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use backend_tls_policy::{
    api::v1,
    grant::Referrer,
    index::{AppliedPolicy, BackendRef, Index, ObjectKey, Outcome, PolicyProblem},
    status::Reason,
    tls::{self, BackendTls, ClientCertificate, TlsCache, TlsError, TlsParams},
};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::{
    CertificateError, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    server::WebPkiClientVerifier,
};
use serde_json::json;
use time::{Duration as Days, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority for one test.
pub(crate) struct Ca {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) pem: String,
    /// PEM of the intermediates between this CA and the root, leaf-side first.
    pub(crate) chain: String,
}

impl Ca {
    pub(crate) fn root(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem, chain: String::new() }
    }

    fn intermediate(&self, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let pem =
            params.signed_by(&key, &Issuer::from_params(&self.params, &self.key)).unwrap().pem();
        Self { params, key, chain: format!("{pem}{}", self.chain), pem }
    }

    /// A server (or client) certificate with these SANs, valid from
    /// `from_days` to `to_days` around now. Returns the chain PEM and the
    /// key PEM.
    pub(crate) fn issue(
        &self,
        sans: &[SanType],
        from_days: i64,
        to_days: i64,
        client: bool,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.subject_alt_names = sans.to_vec();
        params.not_before = OffsetDateTime::now_utc() + Days::days(from_days);
        params.not_after = OffsetDateTime::now_utc() + Days::days(to_days);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let leaf = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key)).unwrap();
        (format!("{}{}", leaf.pem(), self.chain), key.serialize_pem())
    }

    pub(crate) fn server(&self, sans: &[SanType]) -> (String, String) {
        self.issue(sans, -1, 30, false)
    }
}

pub(crate) fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = OffsetDateTime::now_utc() - Days::days(1);
    params.not_after = OffsetDateTime::now_utc() + Days::days(365);
    params
}

pub(crate) fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

pub(crate) fn uri(value: &str) -> SanType {
    SanType::URI(value.try_into().unwrap())
}

pub(crate) fn shop_service() -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": "shop"},
        "spec": {"ports": [{"name": "https", "port": 443}]},
    }))
    .unwrap()
}

/// The ConfigMap `shop/ca` with this `ca.crt`.
pub(crate) fn ca_config_map(pem: &str) -> ConfigMap {
    let object = json!({"metadata": {"namespace": "shop", "name": "ca"}, "data": {"ca.crt": pem}});
    serde_json::from_value(object).unwrap()
}

/// The policy `shop/shop-tls` for Service `shop`, with this `validation`
/// and `options` (null for none).
pub(crate) fn shop_policy(
    validation: serde_json::Value,
    options: serde_json::Value,
) -> v1::BackendTlsPolicy {
    let target = json!({"group": "", "kind": "Service", "name": "shop"});
    let mut spec = json!({"targetRefs": [target], "validation": validation});
    if !options.is_null() {
        spec["options"] = options;
    }
    let metadata = json!({"namespace": "shop", "name": "shop-tls"});
    serde_json::from_value(json!({"metadata": metadata, "spec": spec})).unwrap()
}

/// Trust the ConfigMap `shop/ca`; verify `hostname`, or `sans` unless null.
pub(crate) fn ca_validation(hostname: &str, sans: serde_json::Value) -> serde_json::Value {
    let ca_ref = json!({"group": "", "kind": "ConfigMap", "name": "ca"});
    let mut validation = json!({"caCertificateRefs": [ca_ref], "hostname": hostname});
    if !sans.is_null() {
        validation["subjectAltNames"] = sans;
    }
    validation
}

/// What applies to Service `shop/shop` port 443, from a route in `shop`.
pub(crate) fn resolve_shop(index: &Index) -> AppliedPolicy {
    let route = Referrer::gateway_api("HTTPRoute", "shop");
    match index.resolve(&BackendRef::service(route, "shop", "shop", 443)).outcome() {
        Outcome::Policy(applied) => applied.clone(),
        other => panic!("{other:?}"),
    }
}

/// An index with Service `shop/shop`, the CA ConfigMap holding `ca_pem`,
/// and the policy; the policy as applied.
pub(crate) fn applied(ca_pem: &str, hostname: &str, sans: serde_json::Value) -> AppliedPolicy {
    let mut index = Index::default();
    index.apply(&shop_service());
    index.apply(&ca_config_map(ca_pem));
    index.apply(&shop_policy(ca_validation(hostname, sans), json!(null)));
    resolve_shop(&index)
}

/// The configuration for `applied`, whose server name is checked against
/// the policy's `hostname` as written (and `serve` checks that the SNI is
/// that name).
pub(crate) fn config(applied: &AppliedPolicy, client: Option<ClientCertificate>) -> BackendTls {
    let mut params = TlsParams::default();
    params.client_certificate = Ok(client);
    let tls = tls::client_config_with_provider(applied, &params, provider()).unwrap();
    let hostname = applied.policy().spec.validation.hostname.clone();
    assert_eq!(tls.server_name, ServerName::try_from(hostname).unwrap());
    tls
}

/// Serves one TLS connection with `chain`/`key`, requiring a client
/// certificate from `client_ca` if given. A request whose `host` header is
/// the SNI the client sent gets 200, any other 421 (Misdirected Request):
/// `dial` sends the configuration's server name as the host, and `config`
/// checks that name against the policy's `hostname`, so every test that
/// expects 200 from a configuration made by `config` also checks that the
/// SNI on the wire is the policy's hostname.
pub(crate) async fn serve(chain: &str, key: &str, client_ca: Option<&str>) -> SocketAddr {
    let chain: Vec<_> =
        CertificateDer::pem_slice_iter(chain.as_bytes()).map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(
                CertificateDer::pem_slice_iter(ca.as_bytes()).map(Result::unwrap),
            );
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
            let sni = tls.get_ref().1.server_name().map(|name| format!("host: {name}\r\n"));
            let mut buf = [0; 1024];
            let n = tls.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let response: &[u8] = match sni {
                Some(host) if request.contains(&host) => b"HTTP/1.1 200 OK\r\n",
                _ => b"HTTP/1.1 421 Misdirected Request\r\n",
            };
            let _ = tls.write_all(response).await;
            let _ = tls.write_all(b"content-length: 0\r\n\r\n").await;
            let _ = tls.shutdown().await;
        }
    });
    addr
}

/// Dials `addr` with our configuration, sends `GET /` and returns the status
/// line, or the TLS error.
pub(crate) async fn dial(addr: SocketAddr, tls: &BackendTls) -> Result<String, rustls::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let as_tls =
        |e: std::io::Error| match e.into_inner().map(|inner| inner.downcast::<rustls::Error>()) {
            Some(Ok(error)) => *error,
            other => rustls::Error::General(format!("{other:?}")),
        };
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(tls.server_name.clone(), tcp),
    )
    .await
    .expect("handshake timed out")
    .map_err(as_tls)?;
    let host = match &tls.server_name {
        ServerName::DnsName(name) => name.as_ref().to_owned(),
        other => panic!("{other:?}"),
    };
    stream
        .write_all(format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n").as_bytes())
        .await
        .map_err(as_tls)?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    match text.lines().next() {
        Some(line) if !line.is_empty() => Ok(line.to_owned()),
        // The server hung up: a failed client-certificate check surfaces
        // here in TLS 1.3, after the client's half of the handshake.
        _ => Err(rustls::Error::General("no response".into())),
    }
}

pub(crate) fn name_mismatch(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
    )
}

pub(crate) fn unknown_issuer(error: &rustls::Error) -> bool {
    matches!(error, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
}

fn expired(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext { .. } | CertificateError::Expired
        )
    )
}

type Check = fn(&rustls::Error) -> bool;

struct Case {
    name: &'static str,
    /// SANs of the server certificate.
    presented: Vec<SanType>,
    hostname: &'static str,
    /// `subjectAltNames` of the policy, or null.
    sans: serde_json::Value,
    /// `None`: the handshake and request succeed; `Some(check)`: the
    /// handshake fails with an error that passes `check`.
    fails: Option<Check>,
}

#[tokio::test]
async fn handshakes_against_a_rustls_server() {
    let ca = Ca::root("test CA");
    let abc = || {
        vec![
            dns("abc.example.com"),
            dns("other.example.com"),
            uri("spiffe://abc.example.com/test-identity"),
        ]
    };
    let cases = [
        Case {
            name: "right CA and hostname",
            presented: abc(),
            hostname: "abc.example.com",
            sans: json!(null),
            fails: None,
        },
        Case {
            name: "hostname mismatch",
            presented: abc(),
            hostname: "mismatch.example.com",
            sans: json!(null),
            fails: Some(name_mismatch),
        },
        Case {
            name: "SAN DNS match while hostname mismatches",
            presented: abc(),
            hostname: "mismatch.example.com",
            sans: json!([{"type": "Hostname", "hostname": "abc.example.com"}]),
            fails: None,
        },
        Case {
            name: "san-dns-mismatch (hostname matches, SANs do not)",
            presented: abc(),
            hostname: "abc.example.com",
            sans: json!([{"type": "Hostname", "hostname": "dce.example.com"}]),
            fails: Some(name_mismatch),
        },
        Case {
            name: "san-uri",
            presented: abc(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://abc.example.com/test-identity"}]),
            fails: None,
        },
        Case {
            name: "san-uri-mismatch",
            presented: abc(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://def.example.com/test-identity"}]),
            fails: Some(name_mismatch),
        },
        Case {
            name: "multiple-sans",
            presented: abc(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://abc.example.com/test-identity"}, {"type": "Hostname", "hostname": "abc.example.com"}]),
            fails: None,
        },
        Case {
            name: "multiple-mismatch-sans",
            presented: abc(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://def.example.com/test-identity"}, {"type": "Hostname", "hostname": "def.example.com"}]),
            fails: Some(name_mismatch),
        },
        Case {
            name: "URI SANs compare exactly (trailing slash)",
            presented: abc(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://abc.example.com/test-identity/"}]),
            fails: Some(name_mismatch),
        },
        Case {
            name: "wildcard SAN covers one label",
            presented: vec![dns("a.example.com")],
            hostname: "backend.internal",
            sans: json!([{"type": "Hostname", "hostname": "*.example.com"}]),
            fails: None,
        },
        Case {
            name: "wildcard SAN does not cover two labels",
            presented: vec![dns("a.b.example.com")],
            hostname: "backend.internal",
            sans: json!([{"type": "Hostname", "hostname": "*.example.com"}]),
            fails: Some(name_mismatch),
        },
        Case {
            name: "wildcard SAN does not cover the bare domain",
            presented: vec![dns("example.com")],
            hostname: "backend.internal",
            sans: json!([{"type": "Hostname", "hostname": "*.example.com"}]),
            fails: Some(name_mismatch),
        },
        Case {
            name: "wildcard certificate matches an exact SAN",
            presented: vec![dns("*.example.com")],
            hostname: "backend.internal",
            sans: json!([{"type": "Hostname", "hostname": "a.example.com"}]),
            fails: None,
        },
        Case {
            name: "wildcard certificate matches the hostname",
            presented: vec![dns("*.example.com")],
            hostname: "a.example.com",
            sans: json!(null),
            fails: None,
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let (chain, key) = ca.server(&case.presented);
        let addr = serve(&chain, &key, None).await;
        let tls = config(&applied(&ca.pem, case.hostname, case.sans.clone()), None);
        assert_eq!(
            tls.server_name,
            ServerName::try_from(case.hostname).unwrap(),
            "SNI is the hostname"
        );
        let result = dial(addr, &tls).await;
        let ok = match (&result, case.fails) {
            (Ok(status), None) => status == "HTTP/1.1 200 OK",
            (Err(error), Some(check)) => check(error),
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: {result:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A certificate naming its host in the Common Name only (legacy PKI) is
/// refused in both modes: there is no Common Name fallback.
#[tokio::test]
async fn a_common_name_alone_does_not_match() {
    let ca = Ca::root("test CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "abc.example.com");
    let leaf = params.signed_by(&key, &Issuer::from_params(&ca.params, &ca.key)).unwrap();
    let sans = json!([{"type": "Hostname", "hostname": "abc.example.com"}]);
    for sans in [json!(null), sans] {
        let addr = serve(&leaf.pem(), &key.serialize_pem(), None).await;
        let error = dial(addr, &config(&applied(&ca.pem, "abc.example.com", sans.clone()), None))
            .await
            .unwrap_err();
        assert!(name_mismatch(&error), "{sans}: {error:?}");
    }
}

#[tokio::test]
async fn wrong_ca_expired_leaf_and_intermediates() {
    let ca = Ca::root("test CA");
    let other = Ca::root("unrelated CA");
    let (chain, key) = ca.server(&[dns("abc.example.com")]);

    let addr = serve(&chain, &key, None).await;
    let error = dial(addr, &config(&applied(&other.pem, "abc.example.com", json!(null)), None))
        .await
        .unwrap_err();
    assert!(unknown_issuer(&error), "{error:?}");

    let (expired_chain, expired_key) = ca.issue(&[dns("abc.example.com")], -30, -1, false);
    let addr = serve(&expired_chain, &expired_key, None).await;
    let error = dial(addr, &config(&applied(&ca.pem, "abc.example.com", json!(null)), None))
        .await
        .unwrap_err();
    assert!(expired(&error), "{error:?}");
    // Also in SAN mode, where our verifier checks the chain.
    let addr = serve(&expired_chain, &expired_key, None).await;
    let sans = json!([{"type": "Hostname", "hostname": "abc.example.com"}]);
    let error = dial(addr, &config(&applied(&ca.pem, "abc.example.com", sans.clone()), None))
        .await
        .unwrap_err();
    assert!(expired(&error), "{error:?}");

    // A leaf for clients only (no serverAuth) is refused, in SAN mode too.
    let (client_only, client_key) = ca.issue(&[dns("abc.example.com")], -1, 30, true);
    for sans in [json!(null), sans.clone()] {
        let addr = serve(&client_only, &client_key, None).await;
        let error = dial(addr, &config(&applied(&ca.pem, "abc.example.com", sans.clone()), None))
            .await
            .unwrap_err();
        let purpose = matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            )
        );
        assert!(purpose, "{sans}: {error:?}");
    }

    // Root → intermediate → leaf; the policy trusts the root only.
    let intermediate = ca.intermediate("intermediate CA");
    let (chain, key) = intermediate.server(&[dns("abc.example.com")]);
    for sans in [json!(null), sans] {
        let addr = serve(&chain, &key, None).await;
        let status =
            dial(addr, &config(&applied(&ca.pem, "abc.example.com", sans), None)).await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
    }
}

#[tokio::test]
async fn client_certificate_required_by_the_backend() {
    let ca = Ca::root("test CA");
    let (chain, key) = ca.server(&[dns("abc.example.com")]);
    let (client_chain, client_key) = ca.issue(&[], -1, 30, true);
    let client =
        ClientCertificate::from_pem(Some(client_chain.as_bytes()), Some(client_key.as_bytes()))
            .unwrap();
    let policy = applied(&ca.pem, "abc.example.com", json!(null));

    let addr = serve(&chain, &key, Some(&ca.pem)).await;
    assert_eq!(dial(addr, &config(&policy, Some(client))).await.unwrap(), "HTTP/1.1 200 OK");

    let addr = serve(&chain, &key, Some(&ca.pem)).await;
    assert!(dial(addr, &config(&policy, None)).await.is_err(), "no client certificate must fail");

    // The same pair from DER (as the SPIFFE Workload API hands it over).
    let der_chain: Vec<_> =
        CertificateDer::pem_slice_iter(client_chain.as_bytes()).map(Result::unwrap).collect();
    let der_key = || PrivateKeyDer::from_pem_slice(client_key.as_bytes()).unwrap();
    let client = ClientCertificate::new(der_chain.clone(), der_key(), &provider()).unwrap();
    let addr = serve(&chain, &key, Some(&ca.pem)).await;
    assert_eq!(dial(addr, &config(&policy, Some(client))).await.unwrap(), "HTTP/1.1 200 OK");
    let (_, other_key) = ca.issue(&[], -1, 30, true);
    let other_key = PrivateKeyDer::from_pem_slice(other_key.as_bytes()).unwrap();
    assert!(matches!(
        ClientCertificate::new(der_chain, other_key, &provider()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch))
    ));
    // A provider that cannot say what a key's public half is (as with some
    // hardware keys) cannot check the pair, and rustls lets it through;
    // an empty chain is still refused.
    let opaque = CryptoProvider { key_provider: &OpaqueKeys, ..(*provider()).clone() };
    let server_leaf = CertificateDer::from_pem_slice(chain.as_bytes()).unwrap();
    assert!(ClientCertificate::new(vec![server_leaf], der_key(), &opaque).is_ok(), "not its key");
    assert!(matches!(
        ClientCertificate::new(Vec::new(), der_key(), &opaque),
        Err(rustls::Error::NoCertificatesPresented)
    ));
}

/// Loads any key as one whose public half it cannot tell (a stand-in for
/// a hardware key; nothing here signs with it).
#[derive(Debug)]
struct OpaqueKeys;

#[derive(Debug)]
struct OpaqueKey;

impl rustls::crypto::KeyProvider for OpaqueKeys {
    fn load_private_key(
        &self,
        _: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Ok(Arc::new(OpaqueKey))
    }
}

impl rustls::sign::SigningKey for OpaqueKey {
    fn choose_scheme(
        &self,
        _: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        None
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

#[tokio::test]
async fn system_roots_do_not_trust_a_private_ca() {
    let ca = Ca::root("test CA");
    let (chain, key) = ca.server(&[dns("abc.example.com")]);
    let addr = serve(&chain, &key, None).await;
    let mut index = Index::default();
    index.apply(&shop_service());
    let validation = json!({"wellKnownCACertificates": "System", "hostname": "abc.example.com"});
    index.apply(&shop_policy(validation, json!(null)));
    let applied = resolve_shop(&index);
    let error = dial(addr, &config(&applied, None)).await.unwrap_err();
    assert!(unknown_issuer(&error), "{error:?}");
}

/// An implementation's own `wellKnownCACertificates` set
/// (`Index::set_well_known_roots`): no configuration until it is provided,
/// then the backend its CA issued for is reached.
#[tokio::test]
async fn a_named_ca_set_is_trusted_once_provided() {
    let ca = Ca::root("corp CA");
    let (chain, key) = ca.server(&[dns("abc.example.com")]);
    let addr = serve(&chain, &key, None).await;
    let mut index = Index::default();
    index.apply(&shop_service());
    let validation =
        json!({"wellKnownCACertificates": "example.com/corp-roots", "hostname": "abc.example.com"});
    index.apply(&shop_policy(validation, json!(null)));
    let unprovided =
        tls::client_config_with_provider(&resolve_shop(&index), &TlsParams::default(), provider());
    assert!(matches!(unprovided, Err(TlsError::Unusable { .. })), "{unprovided:?}");

    let roots = |pem: &str| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(
            CertificateDer::pem_slice_iter(pem.as_bytes()).map(Result::unwrap),
        );
        Some(Arc::new(roots))
    };
    let name = || "example.com/corp-roots".try_into().unwrap();
    let cache = TlsCache::default();
    let provider = provider();
    let build = |index: &Index| {
        let applied = resolve_shop(index);
        cache.client_config_with_provider(&applied, &TlsParams::default(), provider.clone())
    };
    index.set_well_known_roots(name(), roots(&ca.pem));
    let trusted = build(&index).unwrap();
    assert!(Arc::ptr_eq(&trusted.config, &build(&index).unwrap().config));
    assert_eq!(dial(addr, &trusted).await.unwrap(), "HTTP/1.1 200 OK");

    // Another set under that name: a new config, which refuses the backend.
    index.set_well_known_roots(name(), roots(&Ca::root("other CA").pem));
    let other = build(&index).unwrap();
    assert!(!Arc::ptr_eq(&trusted.config, &other.config));
    let addr = serve(&chain, &key, None).await;
    assert!(unknown_issuer(&dial(addr, &other).await.unwrap_err()));

    index.set_well_known_roots(name(), None);
    assert!(matches!(build(&index), Err(TlsError::Unusable { .. })));
}

#[test]
fn unusable_policies_give_no_config() {
    let ca = Ca::root("test CA");
    let (leaf, key) = ca.server(&[dns("abc.example.com")]);
    for (name, ca_crt, expected) in [
        (
            "a private key where a certificate belongs",
            key.clone(),
            "block 1: a PRIVATE KEY block, not a CERTIFICATE",
        ),
        (
            "a CA and a key",
            format!("{}{key}", ca.pem),
            "block 2: a PRIVATE KEY block, not a CERTIFICATE",
        ),
        ("truncated base64", ca.pem.replace("\n-----END", "AAA\n-----END"), "block 1: "),
        ("no PEM at all", "hello".to_owned(), "holds no PEM CERTIFICATE block"),
    ] {
        let policy = applied(&ca_crt, "abc.example.com", json!(null));
        let error = tls::client_config_with_provider(&policy, &TlsParams::default(), provider())
            .unwrap_err();
        let TlsError::Unusable { problems, .. } = &error else { panic!("{name}: {error}") };
        assert!(error.to_string().contains(expected), "{name}: {error}");
        assert!(!problems.is_empty());
    }
    // An expired CA.
    let mut params = ca_params("old CA");
    params.not_after = OffsetDateTime::now_utc() - Days::days(1);
    let old = params.self_signed(&KeyPair::generate().unwrap()).unwrap().pem();
    let policy = applied(&old, "abc.example.com", json!(null));
    let error =
        tls::client_config_with_provider(&policy, &TlsParams::default(), provider()).unwrap_err();
    assert!(error.to_string().contains("block 1: expired at"), "{error}");
    // A valid bundle is fine, and the leaf is not a problem as an extra block.
    let policy = applied(&format!("{}{leaf}", ca.pem), "abc.example.com", json!(null));
    assert!(tls::client_config_with_provider(&policy, &TlsParams::default(), provider()).is_ok());
}

#[test]
fn cache_returns_the_same_config_until_an_input_changes() {
    let ca = Ca::root("test CA");
    let cache = TlsCache::default();
    let params = TlsParams::default();
    let provider = provider();
    let mut index = Index::default();
    let service = shop_service();
    let mut policy = shop_policy(ca_validation("abc.example.com", json!(null)), json!(null));
    index.apply(&service);
    index.apply(&ca_config_map(&ca.pem));
    index.apply(&policy);
    let get = |index: &Index| {
        cache
            .client_config_with_provider(&resolve_shop(index), &params, provider.clone())
            .unwrap()
            .config
    };
    let first = get(&index);
    assert!(Arc::ptr_eq(&first, &get(&index)), "unchanged inputs, same Arc");
    index.apply(&service); // an unrelated object
    assert!(Arc::ptr_eq(&first, &get(&index)));
    // Status written: the object's version changes, its spec does not. Then
    // a relist applies everything again.
    let mut written = policy.clone();
    written.metadata.resource_version = Some("2".into());
    written.status = Some(serde_json::from_value(json!({"ancestors": []})).unwrap());
    index.apply(&written);
    index.apply(&ca_config_map(&ca.pem));
    assert!(Arc::ptr_eq(&first, &get(&index)), "a status write or relist keeps the config");
    assert_eq!(index.policy(&ObjectKey::new("shop", "shop-tls")), Some(&written));

    index.apply(&ca_config_map(&format!("{}{}", ca.pem, Ca::root("rotated").pem)));
    let rotated = get(&index);
    assert!(!Arc::ptr_eq(&first, &rotated), "a rotated CA gives a new config");
    assert!(Arc::ptr_eq(&rotated, &get(&index)));

    policy.spec.validation.hostname = "other.example.com".into();
    index.apply(&policy);
    assert!(!Arc::ptr_eq(&rotated, &get(&index)), "a changed policy gives a new config");
    assert_eq!(cache.len(), 1, "configs for old policy versions are dropped");
}

#[test]
fn options_narrow_the_configuration() {
    let ca = Ca::root("test CA");
    let index_with = |options: serde_json::Value| {
        let mut index = Index::default();
        index.set_options_domain(Some("example.com")).unwrap();
        index.apply(&shop_service());
        index.apply(&ca_config_map(&ca.pem));
        index.apply(&shop_policy(ca_validation("abc.example.com", json!(null)), options));
        index
    };
    let policy_with = |options| resolve_shop(&index_with(options));
    let mut params = TlsParams::default();
    params.alpn = vec![b"http/1.1".to_vec()];

    let applied = policy_with(json!({
        "example.com/min-tls-version": "1.3",
        "example.com/alpn-protocols": "h2,http/1.1",
        "other.io/anything": "ignored",
    }));
    let tls = tls::client_config_with_provider(&applied, &params, provider()).unwrap();
    assert_eq!(tls.config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(
        tls.config
            .crypto_provider()
            .cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13)
    );

    // A TLS 1.3 suite by its IANA name (rustls writes TLS13_…), any case.
    let applied = policy_with(json!({"example.com/cipher-suites": "tls_aes_128_gcm_sha256"}));
    let tls = tls::client_config_with_provider(&applied, &params, provider()).unwrap();
    let suites: Vec<_> =
        tls.config.crypto_provider().cipher_suites.iter().map(|s| s.suite()).collect();
    assert_eq!(suites, [rustls::CipherSuite::TLS13_AES_128_GCM_SHA256]);

    let defaults = policy_with(json!({}));
    let tls = tls::client_config_with_provider(&defaults, &params, provider()).unwrap();
    assert_eq!(tls.config.alpn_protocols, [b"http/1.1".to_vec()], "the caller's ALPN");

    // Bad options make the policy Invalid, in status and for every
    // connection, naming each option.
    let index = index_with(json!({
        "example.com/min-tls-version": "1.4",
        "example.com/unknown": "x",
        "example.com/cipher-suites": "TLS13_AES_128_GCM_SHA256,NOPE",
    }));
    let error =
        tls::client_config_with_provider(&resolve_shop(&index), &params, provider()).unwrap_err();
    let TlsError::Unusable { problems, .. } = &error else { panic!("{error}") };
    let [PolicyProblem::Options(errors)] = &problems[..] else { panic!("{error}") };
    assert_eq!(errors.len(), 3, "{error}");
    let accepted = index.policy_conditions(&ObjectKey::new("shop", "shop-tls")).unwrap().accepted;
    assert_eq!((accepted.status, accepted.reason), (false, Reason::Invalid));
    for key in ["min-tls-version", "unknown", "cipher-suites"] {
        assert!(accepted.message.contains(&format!("options[example.com/{key}]")), "{accepted:?}");
    }
    // Read under no domain, the same options are someone else's.
    let mut index = index;
    index.set_options_domain(None).unwrap();
    assert!(tls::client_config_with_provider(&resolve_shop(&index), &params, provider()).is_ok());
    assert!(index.policy_conditions(&ObjectKey::new("shop", "shop-tls")).unwrap().accepted.status);

    // The caller's ALPN too: a protocol's length is one byte on the wire,
    // and an empty one is none.
    for (protocol, len) in [(vec![b'a'; 256], 256), (Vec::new(), 0)] {
        let mut params = TlsParams::default();
        params.alpn = vec![b"h2".to_vec(), protocol];
        let applied = policy_with(json!({}));
        let error = TlsCache::default()
            .client_config_with_provider(&applied, &params, provider())
            .unwrap_err();
        assert!(matches!(error, TlsError::InvalidAlpn { len: l } if l == len), "{error}");
    }

    // An ALPN protocol's length is one byte on the wire.
    let long = "a".repeat(256);
    let applied = policy_with(json!({"example.com/alpn-protocols": format!("h2,{long}")}));
    let error = tls::client_config_with_provider(&applied, &params, provider()).unwrap_err();
    assert!(error.to_string().contains("longer than 255 bytes"), "{error}");

    // A suite rustls knows that the provider does not offer: only building
    // with that provider can tell.
    let applied = policy_with(json!({"example.com/cipher-suites": "TLS_RSA_WITH_AES_128_CBC_SHA"}));
    assert!(applied.usable().is_ok());
    let error = tls::client_config_with_provider(&applied, &params, provider()).unwrap_err();
    let TlsError::Options { errors, .. } = &error else { panic!("{error}") };
    assert!(errors[0].to_string().contains("not offered by the crypto provider"), "{error}");

    // Groups are named as IANA names them, whatever the provider offers;
    // and one usable only with TLS 1.3 leaves nothing for 1.2 alone.
    let groups = |groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>| {
        Arc::new(CryptoProvider { kx_groups: groups, ..(*provider()).clone() })
    };
    let ffdhe = groups(vec![&StubGroup { name: rustls::NamedGroup::FFDHE2048, tls12: true }]);
    let applied = policy_with(json!({
        "example.com/key-exchange-groups": "FFDHE2048",
        "example.com/min-tls-version": "1.3",
    }));
    let tls = tls::client_config_with_provider(&applied, &params, ffdhe).unwrap();
    assert_eq!(tls.config.crypto_provider().kx_groups[0].name(), rustls::NamedGroup::FFDHE2048);
    let tls13_only = groups(vec![&StubGroup { name: rustls::NamedGroup::X25519, tls12: false }]);
    let applied = policy_with(json!({"example.com/max-tls-version": "1.2"}));
    let error = tls::client_config_with_provider(&applied, &params, tls13_only).unwrap_err();
    assert!(error.to_string().contains("no key-exchange group left"), "{error}");
}

/// A key-exchange group as a provider may offer it: its name and versions
/// are what the options see (nothing here exchanges keys with it).
#[derive(Debug)]
struct StubGroup {
    name: rustls::NamedGroup,
    tls12: bool,
}

impl rustls::crypto::SupportedKxGroup for StubGroup {
    fn start(&self) -> Result<Box<dyn rustls::crypto::ActiveKeyExchange>, rustls::Error> {
        rustls::crypto::ring::kx_group::X25519.start()
    }

    fn name(&self) -> rustls::NamedGroup {
        self.name
    }

    fn usable_for_version(&self, version: rustls::ProtocolVersion) -> bool {
        self.tls12 || version == rustls::ProtocolVersion::TLSv1_3
    }
}

/// `openssl s_server` from the machine, serving the fixture certificate of
/// `shop.example.com`, for one connection; killed on drop.
struct OpensslServer {
    child: std::process::Child,
    addr: SocketAddr,
}

impl OpensslServer {
    async fn start() -> Self {
        let pki = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-naccept", "1", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", &format!("{pki}/shop.crt"), "-key", &format!("{pki}/shop.key")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl is installed");
        // Dropping `server` kills the process, also when it never comes up.
        let server = Self { child, addr: ([127, 0, 0, 1], port).into() };
        // Ready once the port is taken. Connecting to find out would spend
        // the one connection `-naccept 1` allows.
        for _ in 0..100 {
            if std::net::TcpListener::bind(server.addr).is_err() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("openssl s_server did not start on {}", server.addr);
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn handshakes_against_openssl_s_server() {
    let ca = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki/ca.crt"));
    let other = Ca::root("unrelated CA").pem;
    let spiffe = json!([{"type": "URI", "uri": "spiffe://cluster.local/ns/shop/sa/shop"}]);
    let cases: [(&str, &str, &str, serde_json::Value, Option<Check>); 5] = [
        ("right CA and hostname", ca, "shop.example.com", json!(null), None),
        ("wrong CA", &other, "shop.example.com", json!(null), Some(unknown_issuer)),
        ("hostname mismatch", ca, "cart.example.com", json!(null), Some(name_mismatch)),
        ("SPIFFE URI SAN", ca, "cart.example.com", spiffe, None),
        (
            "san-dns-mismatch",
            ca,
            "shop.example.com",
            json!([{"type": "Hostname", "hostname": "cart.example.com"}]),
            Some(name_mismatch),
        ),
    ];
    let mut failures = Vec::new();
    for (name, ca_pem, hostname, sans, fails) in cases {
        let server = OpensslServer::start().await;
        let result = dial(server.addr, &config(&applied(ca_pem, hostname, sans), None)).await;
        let ok = match (&result, fails) {
            (Ok(status), None) => status.starts_with("HTTP/1.0 200"),
            (Err(error), Some(check)) => check(error),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: {result:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether the crate has a crypto provider to check a client key against
/// its certificate with: a process default, or one of its features.
fn key_check_possible() -> bool {
    cfg!(any(feature = "ring", feature = "aws-lc-rs")) || CryptoProvider::get_default().is_some()
}

/// A mismatched client key let through (read without a provider to check
/// it with, or with one that cannot tell) still gives no configuration:
/// rustls refuses it at the build.
#[test]
fn a_mismatched_pair_let_through_is_refused_when_building() {
    let ca = Ca::root("test CA");
    let (chain, _) = ca.issue(&[], -1, 30, true);
    let (_, other_key) = ca.issue(&[], -1, 30, true);
    let opaque = CryptoProvider { key_provider: &OpaqueKeys, ..(*provider()).clone() };
    let leaf = CertificateDer::from_pem_slice(chain.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(other_key.as_bytes()).unwrap();
    let client = ClientCertificate::new(vec![leaf], key, &opaque).expect("opaque keys pass");
    let policy = applied(&ca.pem, "abc.example.com", json!(null));
    let mut params = TlsParams::default();
    params.client_certificate = Ok(Some(client));
    let built = tls::client_config_with_provider(&policy, &params, provider());
    assert!(
        matches!(
            built,
            Err(TlsError::Rustls(rustls::Error::InconsistentKeys(
                rustls::InconsistentKeys::KeyMismatch
            )))
        ),
        "{built:?}"
    );
}

/// A Gateway whose client certificate cannot be used gets no
/// configuration, from the cache or not: connecting without it would make
/// the Gateway anonymous to a backend that takes clients without one.
#[test]
fn an_unusable_client_certificate_gives_no_configuration() {
    use backend_tls_policy::api::v1::Gateway;

    let ca = Ca::root("test CA");
    let gateway: Gateway = serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": "gw"},
        "spec": {"tls": {"backend": {"clientCertificateRef": {"name": "missing"}}}},
    }))
    .unwrap();
    let mut index = Index::default();
    index.apply(&shop_service());
    index.apply(&ca_config_map(&ca.pem));
    index.apply(&shop_policy(ca_validation("abc.example.com", json!(null)), json!(null)));
    let mut params = TlsParams::default();
    params.client_certificate = index.client_certificate(&gateway);
    let applied = resolve_shop(&index);
    let cache = TlsCache::default();
    for built in [
        tls::client_config_with_provider(&applied, &params, provider()),
        cache.client_config_with_provider(&applied, &params, provider()),
    ] {
        let Err(TlsError::ClientCertificate(error)) = built else { panic!("{built:?}") };
        assert_eq!(error.reason().as_str(), "InvalidClientCertificateRef");
        assert!(error.to_string().contains("shop/missing: not found"), "{error}");
    }
    // Without a client certificate named, the same policy builds.
    params.client_certificate = Ok(None);
    assert!(cache.client_config_with_provider(&applied, &params, provider()).is_ok());
}

/// A client certificate outside its validity is not sent (the backend
/// would refuse it, saying less): the Gateway's reference is invalid and
/// says why, and `not_after` tells when a valid one stops being.
#[test]
fn a_client_certificate_outside_its_validity_is_refused() {
    use backend_tls_policy::status::Reason;
    use k8s_openapi::api::core::v1::Secret;
    use rustls::pki_types::UnixTime;

    let ca = Ca::root("test CA");
    // A certificate of the chain other than the leaf, expired.
    let stale_intermediate = {
        let mut params = ca_params("old intermediate");
        params.not_before = OffsetDateTime::now_utc() - Days::days(60);
        params.not_after = OffsetDateTime::now_utc() - Days::days(1);
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().pem()
    };
    let mut index = Index::default();
    for (name, from_days, to_days) in
        [("valid", -1, 30), ("expired", -30, -1), ("early", 10, 30), ("stale", -1, 30)]
    {
        let (mut chain, key) = ca.issue(&[], from_days, to_days, true);
        if name == "stale" {
            chain.push_str(&stale_intermediate);
        }
        index.apply(
            &serde_json::from_value::<Secret>(json!({
                "metadata": {"namespace": "infra", "name": name},
                "stringData": {"tls.crt": chain, "tls.key": key},
            }))
            .unwrap(),
        );
    }
    let read = |name: &str| {
        let reference: v1::SecretObjectReference =
            serde_json::from_value(json!({ "name": name })).unwrap();
        index.client_certificate_from_ref("infra", &reference)
    };
    let valid = read("valid").unwrap();
    let in_30_days = UnixTime::now().as_secs() + 30 * 86_400;
    assert!(valid.not_after().as_secs().abs_diff(in_30_days) < 60, "{:?}", valid.not_after());
    assert!(valid.not_before().as_secs() < UnixTime::now().as_secs());
    // An expired certificate after the leaf (a cross-sign that path
    // building skips) is the backend's to judge.
    assert!(read("stale").is_ok());
    for (name, says) in [("expired", "expired at"), ("early", "not valid before")] {
        let error = read(name).unwrap_err();
        assert_eq!(error.reason(), Reason::InvalidClientCertificateRef);
        let message = error.to_string();
        assert!(
            message.contains(&format!("Secret infra/{name}: the tls.crt certificate {says}")),
            "{message}"
        );
    }
}

/// Conformance `GatewayInvalidTLSBackendConfiguration` and
/// `GatewayTLSBackendClientCertificate`, decided by the index.
#[test]
fn gateway_client_certificate_refs() {
    use backend_tls_policy::{api::v1::Gateway, status::Reason};
    use k8s_openapi::api::core::v1::Secret;

    let ca = Ca::root("test CA");
    let (chain, key) = ca.issue(&[], -1, 30, true);
    let tls_secret = |namespace: &str, name: &str, data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"namespace": namespace, "name": name},
            "type": "kubernetes.io/tls",
            "stringData": data,
        }))
        .unwrap()
    };
    let mut index = Index::default();
    index.apply(&tls_secret("infra", "client", json!({"tls.crt": chain, "tls.key": key})));
    index.apply(&tls_secret("infra", "empty", json!({})));
    index.apply(&tls_secret("certs", "certificate", json!({"tls.crt": chain, "tls.key": key})));
    let (_, other_key) = ca.issue(&[], -1, 30, true);
    index.apply(&tls_secret(
        "infra",
        "mismatched",
        json!({"tls.crt": chain, "tls.key": other_key}),
    ));
    let gateway = |reference: serde_json::Value| -> Gateway {
        serde_json::from_value(json!({
            "metadata": {"namespace": "infra", "name": "gw"},
            "spec": {"tls": {"backend": {"clientCertificateRef": reference}}},
        }))
        .unwrap()
    };
    // Through the Gateway, and through its reference alone (a controller
    // with its own Gateway type): the same answer.
    let reason = |index: &Index, reference: serde_json::Value| {
        let through_gateway = index
            .client_certificate(&gateway(reference.clone()))
            .map(|c| c.unwrap().chain()[0].clone());
        let reference: v1::SecretObjectReference = serde_json::from_value(reference).unwrap();
        let alone =
            index.client_certificate_from_ref("infra", &reference).map(|c| c.chain()[0].clone());
        assert_eq!(through_gateway, alone);
        alone.map(|_| ()).map_err(|e| e.reason())
    };

    assert!(index.client_certificate(&gateway(json!({"name": "client"}))).unwrap().is_some());
    let none: Gateway = serde_json::from_value(
        json!({"metadata": {"namespace": "infra", "name": "gw"}, "spec": {}}),
    )
    .unwrap();
    assert!(index.client_certificate(&none).unwrap().is_none());
    for (reference, expected) in [
        (json!({"name": "nonexistent"}), Reason::InvalidClientCertificateRef),
        (
            json!({"group": "wrong.group.company.io", "name": "client"}),
            Reason::InvalidClientCertificateRef,
        ),
        (json!({"kind": "WrongKind", "name": "client"}), Reason::InvalidClientCertificateRef),
        (json!({"name": "empty"}), Reason::InvalidClientCertificateRef),
        (json!({"name": "mismatched"}), Reason::InvalidClientCertificateRef),
        (json!({"namespace": "certs", "name": "certificate"}), Reason::RefNotPermitted),
        (json!({"namespace": "certs", "name": "nonexistent"}), Reason::RefNotPermitted),
    ] {
        // With no crypto provider to load the key with, the crate cannot
        // tell a mismatched pair; rustls refuses it when the config is built
        // (`a_mismatched_pair_let_through_is_refused_when_building`).
        if reference["name"] == "mismatched" && !key_check_possible() {
            assert_eq!(reason(&index, reference), Ok(()));
            continue;
        }
        assert_eq!(reason(&index, reference.clone()), Err(expected), "{reference}");
    }
    index.apply(&serde_json::from_value::<v1::ReferenceGrant>(json!({
        "metadata": {"namespace": "certs", "name": "gateways"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra"}],
            "to": [{"group": "", "kind": "Secret", "name": "certificate"}],
        },
    }))
    .unwrap());
    assert_eq!(reason(&index, json!({"namespace": "certs", "name": "certificate"})), Ok(()));
    let message =
        index.client_certificate(&gateway(json!({"name": "empty"}))).unwrap_err().to_string();
    assert_eq!(message, "clientCertificateRef Secret infra/empty: has no tls.crt and no tls.key");
}

/// A policy naming two CA objects (an old and a new CA during a rotation)
/// keeps its merged anchors, and its cached config, until one of them
/// changes.
#[test]
fn cache_keeps_merged_anchors_until_a_ca_object_changes() {
    let (old, new) = (Ca::root("old CA"), Ca::root("new CA"));
    let cache = TlsCache::default();
    let (params, provider) = (TlsParams::default(), provider());
    let get = |index: &Index| {
        let applied = resolve_shop(index);
        cache.client_config_with_provider(&applied, &params, provider.clone()).unwrap().config
    };
    let mut index = Index::default();
    index.apply(&shop_service());
    index.apply(&ca_config_map(&old.pem));
    let mut next = ca_config_map(&new.pem);
    next.metadata.name = Some("ca-next".into());
    index.apply(&next);
    let refs = json!([
        {"group": "", "kind": "ConfigMap", "name": "ca"},
        {"group": "", "kind": "ConfigMap", "name": "ca-next"},
    ]);
    let policy =
        shop_policy(json!({"caCertificateRefs": refs, "hostname": "abc.example.com"}), json!(null));
    index.apply(&policy);
    let first = get(&index);
    index.apply(&policy); // the merged anchors are kept, not merged again
    assert!(Arc::ptr_eq(&first, &get(&index)));
    index.apply(&ca_config_map(&format!("{}{}", old.pem, new.pem)));
    assert!(!Arc::ptr_eq(&first, &get(&index)), "a CA object changed");
}

/// A client-certificate Secret applied again unchanged keeps the config
/// built with it; new content gives a new one, and the old is dropped.
#[test]
fn cache_keeps_the_client_certificate_until_its_secret_changes() {
    use backend_tls_policy::api::v1::Gateway;
    use k8s_openapi::api::core::v1::Secret;

    let ca = Ca::root("test CA");
    let client_secret = |(chain, key): &(String, String)| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "client"},
            "stringData": {"tls.crt": chain, "tls.key": key, "ca.crt": ca.pem},
        }))
        .unwrap()
    };
    let gateway: Gateway = serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": "gw"},
        "spec": {"tls": {"backend": {"clientCertificateRef": {"name": "client"}}}},
    }))
    .unwrap();
    let cache = TlsCache::default();
    let provider = provider();
    let get = |index: &Index| {
        let mut params = TlsParams::default();
        params.client_certificate = index.client_certificate(&gateway);
        cache.client_config_with_provider(&resolve_shop(index), &params, provider.clone()).unwrap()
    };
    let mut index = Index::default();
    index.apply(&shop_service());
    index.apply(&ca_config_map(&ca.pem));
    index.apply(&shop_policy(ca_validation("abc.example.com", json!(null)), json!(null)));
    let pair = ca.issue(&[], -1, 30, true);
    index.apply(&client_secret(&pair));
    let first = get(&index).config;
    index.apply(&client_secret(&pair));
    assert!(Arc::ptr_eq(&first, &get(&index).config), "same tls.crt and tls.key");

    index.apply(&client_secret(&ca.issue(&[], -1, 30, true)));
    assert!(!Arc::ptr_eq(&first, &get(&index).config), "a new client certificate");
    assert_eq!(cache.len(), 1, "the config with the old one is dropped");
}
