//! The fail-closed matrix: for each way a policy, a CA bundle, a Service, a
//! ReferenceGrant or a client certificate can be wrong, the exact outcome —
//! a status reason and message, no configuration, or a configuration whose
//! handshake fails — and never a configuration that accepts a certificate
//! the policy does not allow.

use backend_tls_policy::{
    Index,
    api::v1,
    grant::Referrer,
    index::{BackendRef, ObjectKey, Outcome},
    status::Reason,
    tls::{self, TlsError, TlsParams},
};
use rcgen::{CertificateParams, GeneralSubtree, KeyPair, NameConstraints};
use serde_json::json;

use crate::tls::{
    Ca, ca_config_map, ca_params, ca_validation, dial, dns, name_mismatch, provider, resolve_shop,
    serve, shop_policy, shop_service, uri,
};

/// What a row expects.
enum Expect {
    /// A configuration, and the handshake with the row's server succeeds.
    Connects,
    /// A configuration, and the handshake fails this way.
    HandshakeFails(fn(&rustls::Error) -> bool),
    /// No configuration: `TlsError::Unusable` whose message contains this,
    /// and these `Accepted` / `ResolvedRefs` reasons.
    NoConfig(&'static str, Reason, Reason),
}

struct Row {
    name: &'static str,
    /// `ca.crt` of the policy's ConfigMap.
    ca_crt: String,
    hostname: &'static str,
    sans: serde_json::Value,
    /// The server's chain and key.
    server: (String, String),
    expect: Expect,
}

fn any_certificate_error(error: &rustls::Error) -> bool {
    matches!(error, rustls::Error::InvalidCertificate(_))
}

/// A CA permitted to issue only under `example.org`.
fn constrained_ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = ca_params("constrained CA");
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("example.org".into())],
        excluded_subtrees: vec![],
    });
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem, chain: String::new() }
}

#[tokio::test]
async fn fail_closed_matrix() {
    let ca = Ca::root("test CA");
    let abc = ca.server(&[dns("abc.example.com"), uri("spiffe://abc.example.com/id")]);
    let garbage_between =
        format!("issued by ops\n{}\n# rotated 2026\n{}", Ca::root("other").pem, ca.pem);
    // Whole 64-character lines dropped: valid base64, a cut-off certificate.
    let truncated = {
        let lines: Vec<&str> = ca.pem.lines().collect();
        let (begin, body, end) = (lines[0], &lines[1..lines.len() - 1], lines[lines.len() - 1]);
        format!("{begin}\n{}\n{end}\n", body[..body.len() / 2].join("\n"))
    };
    // A character base64 does not have.
    let corrupted = ca.pem.replacen("\n", "\n!", 2);
    let self_signed_leaf = {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["abc.example.com".into()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    };
    let constrained = constrained_ca();
    let bucher = ca.server(&[dns("bucher.example")]);
    // Where PEM readers disagree, a second CA some would see and some not.
    let other = Ca::root("other").pem;
    let behind_lone_cr = format!("{}# next\r{other}", ca.pem);
    let indented = format!("{}  {other}", ca.pem);
    // OpenSSL reads 254 bytes at a time: after that much text, a marker
    // starts a line for it, not for Go or rustls.
    let marker_at_254 = format!("{}{}{other}", ca.pem, "#".repeat(254));
    let inner_padding = ca.pem.replacen("\n", "\nAA==\n", 1);
    // basicConstraints that is not a SEQUENCE: x509-parser does not decode
    // extensions here, webpki does.
    let bad_extension = {
        let key = KeyPair::generate().unwrap();
        let mut params = ca_params("broken CA");
        params.is_ca = rcgen::IsCa::NoCa;
        params.custom_extensions =
            vec![rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![4, 1, 0])];
        params.self_signed(&key).unwrap().pem()
    };
    let unreadable = |name, ca_crt, message| Row {
        name,
        ca_crt,
        hostname: "abc.example.com",
        sans: json!(null),
        server: abc.clone(),
        expect: Expect::NoConfig(
            message,
            Reason::NoValidCACertificate,
            Reason::InvalidCACertificateRef,
        ),
    };
    let rows = vec![
        unreadable(
            "a CA behind a CR alone (OpenSSL and Go would not see it)",
            behind_lone_cr,
            "ca.crt block 2: malformed PEM: a line break is a CR alone",
        ),
        unreadable(
            "an indented BEGIN line",
            indented,
            "ca.crt block 2: malformed PEM: a BEGIN or END marker is not at the start",
        ),
        unreadable(
            "a BEGIN line 254 bytes into a line (OpenSSL would see it)",
            marker_at_254,
            "ca.crt block 2: malformed PEM: a BEGIN or END marker is not at the start",
        ),
        unreadable(
            "padding inside the base64",
            inner_padding,
            "ca.crt block 1: malformed PEM: bad base64 (padding before the end)",
        ),
        unreadable(
            "a CA webpki cannot read as a trust anchor",
            bad_extension,
            "ca.crt block 1: not usable as a trust anchor: malformed DER",
        ),
        Row {
            name: "garbage between PEM blocks (RFC 7468 text)",
            ca_crt: garbage_between,
            hostname: "abc.example.com",
            sans: json!(null),
            server: abc.clone(),
            expect: Expect::Connects,
        },
        unreadable(
            "a truncated certificate",
            truncated,
            "ca.crt block 1: not a valid X.509 certificate",
        ),
        unreadable("corrupted base64", corrupted, "ca.crt block 1: malformed PEM"),
        unreadable(
            "a private key where a certificate belongs",
            abc.1.clone(),
            "a PRIVATE KEY block, not a CERTIFICATE",
        ),
        Row {
            name: "a non-CA self-signed certificate pins that certificate",
            ca_crt: self_signed_leaf.0.clone(),
            hostname: "abc.example.com",
            sans: json!(null),
            server: self_signed_leaf.clone(),
            expect: Expect::Connects,
        },
        Row {
            name: "a non-CA certificate does not vouch for others",
            ca_crt: self_signed_leaf.0.clone(),
            hostname: "abc.example.com",
            sans: json!(null),
            server: abc.clone(),
            expect: Expect::HandshakeFails(crate::tls::unknown_issuer),
        },
        Row {
            name: "duplicate certificates",
            ca_crt: ca.pem.repeat(3),
            hostname: "abc.example.com",
            sans: json!(null),
            server: abc.clone(),
            expect: Expect::Connects,
        },
        unreadable(
            "more than 1 MiB of CA data",
            format!("{}{}", ca.pem, "#".repeat(1 << 20)),
            "more than the 1048576 this crate reads",
        ),
        Row {
            name: "a name constraint that excludes the hostname",
            ca_crt: constrained.pem.clone(),
            hostname: "abc.example.com",
            sans: json!(null),
            server: constrained.server(&[dns("abc.example.com")]),
            expect: Expect::HandshakeFails(any_certificate_error),
        },
        Row {
            name: "a name constraint that excludes a SAN",
            ca_crt: constrained.pem.clone(),
            hostname: "backend.internal",
            sans: json!([{"type": "Hostname", "hostname": "abc.example.com"}]),
            server: constrained.server(&[dns("abc.example.com")]),
            expect: Expect::HandshakeFails(any_certificate_error),
        },
        Row {
            name: "an IP literal as hostname",
            ca_crt: ca.pem.clone(),
            hostname: "10.0.0.1",
            sans: json!(null),
            server: abc.clone(),
            expect: Expect::NoConfig(
                "must be a DNS name, not an IP address",
                Reason::Invalid,
                Reason::ResolvedRefs,
            ),
        },
        Row {
            name: "an uppercase hostname",
            ca_crt: ca.pem.clone(),
            hostname: "ABC.example.com",
            sans: json!(null),
            server: abc.clone(),
            expect: Expect::NoConfig(
                "spec.validation.hostname: invalid value \"ABC.example.com\"",
                Reason::Invalid,
                Reason::ResolvedRefs,
            ),
        },
        Row {
            name: "a trailing-dot hostname",
            ca_crt: ca.pem.clone(),
            hostname: "abc.example.com.",
            sans: json!(null),
            server: abc.clone(),
            expect: Expect::NoConfig(
                "spec.validation.hostname: invalid value \"abc.example.com.\"",
                Reason::Invalid,
                Reason::ResolvedRefs,
            ),
        },
        Row {
            name: "a Unicode hostname",
            ca_crt: ca.pem.clone(),
            hostname: "bücher.example",
            sans: json!(null),
            server: bucher.clone(),
            expect: Expect::NoConfig(
                "spec.validation.hostname: invalid value \"bücher.example\"",
                Reason::Invalid,
                Reason::ResolvedRefs,
            ),
        },
        Row {
            name: "an IDNA look-alike is another name",
            ca_crt: ca.pem.clone(),
            hostname: "xn--bcher-kva.example",
            sans: json!(null),
            server: bucher.clone(),
            expect: Expect::HandshakeFails(name_mismatch),
        },
        Row {
            name: "a URI SAN differing in case",
            ca_crt: ca.pem.clone(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://ABC.example.com/id"}]),
            server: abc.clone(),
            expect: Expect::HandshakeFails(name_mismatch),
        },
        // The backend presents `spiffe://abc.example.com/id`: a policy naming
        // a prefix of it (a SPIFFE trust domain, a parent path) must not match.
        Row {
            name: "a URI SAN that is a prefix of the presented one",
            ca_crt: ca.pem.clone(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://abc.example.com/i"}]),
            server: abc.clone(),
            expect: Expect::HandshakeFails(name_mismatch),
        },
        Row {
            name: "a URI SAN naming only the presented one's trust domain",
            ca_crt: ca.pem.clone(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://abc.example.com"}]),
            server: abc.clone(),
            expect: Expect::HandshakeFails(name_mismatch),
        },
        Row {
            name: "a URI SAN differing by a trailing slash",
            ca_crt: ca.pem.clone(),
            hostname: "abc.example.com",
            sans: json!([{"type": "URI", "uri": "spiffe://abc.example.com/id/"}]),
            server: abc.clone(),
            expect: Expect::HandshakeFails(name_mismatch),
        },
        Row {
            name: "an empty SAN list means the hostname is verified",
            ca_crt: ca.pem.clone(),
            hostname: "other.example.com",
            sans: json!([]),
            server: abc.clone(),
            expect: Expect::HandshakeFails(name_mismatch),
        },
        Row {
            name: "an empty SAN list, matching hostname",
            ca_crt: ca.pem.clone(),
            hostname: "abc.example.com",
            sans: json!([]),
            server: abc.clone(),
            expect: Expect::Connects,
        },
    ];
    let mut failures = Vec::new();
    for row in rows {
        let mut index = Index::default();
        index.apply(&shop_service());
        index.apply(&ca_config_map(&row.ca_crt));
        index.apply(&shop_policy(ca_validation(row.hostname, row.sans.clone()), json!(null)));
        let applied = resolve_shop(&index);
        let built = tls::client_config_with_provider(&applied, &TlsParams::default(), provider());
        let verdict = match (&row.expect, built) {
            (
                Expect::NoConfig(message, accepted, resolved),
                Err(error @ TlsError::Unusable { .. }),
            ) => {
                let conditions =
                    index.policy_conditions(&ObjectKey::new("shop", "shop-tls")).unwrap();
                let got = (conditions.accepted.reason, conditions.resolved_refs.reason);
                if !error.to_string().contains(message) {
                    Err(format!("error {error}"))
                } else if got != (*accepted, *resolved) {
                    Err(format!("conditions {got:?}"))
                } else {
                    Ok(())
                }
            }
            (Expect::Connects | Expect::HandshakeFails(_), Ok(tls)) => {
                let addr = serve(&row.server.0, &row.server.1, None).await;
                match (&row.expect, dial(addr, &tls).await) {
                    (Expect::Connects, Ok(_)) => Ok(()),
                    (Expect::HandshakeFails(check), Err(error)) if check(&error) => Ok(()),
                    (_, other) => Err(format!("handshake {other:?}")),
                }
            }
            (_, other) => Err(format!("build {other:?}")),
        };
        if let Err(got) = verdict {
            failures.push(format!("{}: {got}", row.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rows about objects other than the CA bundle.
#[test]
fn fail_closed_matrix_objects() {
    let ca = Ca::root("test CA");
    // A CA reference of another kind.
    let mut index = Index::default();
    index.apply(&shop_service());
    let validation = json!({"caCertificateRefs": [{"group": "", "kind": "Service", "name": "shop"}], "hostname": "abc.example.com"});
    index.apply(&shop_policy(validation, json!(null)));
    let conditions = index.policy_conditions(&ObjectKey::new("shop", "shop-tls")).unwrap();
    assert_eq!(
        (conditions.accepted.reason, conditions.resolved_refs.reason),
        (Reason::NoValidCACertificate, Reason::InvalidKind)
    );
    assert!(resolve_shop(&index).usable().is_err());

    // A Secret of type kubernetes.io/tls holding ca.crt is a CA source (the
    // type is not what makes it one).
    let mut index = Index::default();
    index.apply(&shop_service());
    index.apply(
        &serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(json!({
            "metadata": {"namespace": "shop", "name": "ca"}, "type": "kubernetes.io/tls",
            "stringData": {"ca.crt": ca.pem, "tls.crt": "", "tls.key": ""},
        }))
        .unwrap(),
    );
    let validation = json!({"caCertificateRefs": [{"group": "", "kind": "Secret", "name": "ca"}], "hostname": "abc.example.com"});
    index.apply(&shop_policy(validation, json!(null)));
    assert!(resolve_shop(&index).usable().is_ok());

    // Sixteen targetRefs, all lost to an older policy: every one reported.
    let mut index = Index::default();
    index.apply(&serde_json::from_value::<k8s_openapi::api::core::v1::Service>(json!({
        "metadata": {"namespace": "shop", "name": "shop"},
        "spec": {"ports": (1..=16).map(|i| json!({"name": format!("p{i}"), "port": 1000 + i})).collect::<Vec<_>>()},
    })).unwrap());
    index.apply(&ca_config_map(&ca.pem));
    let targets: Vec<_> = (1..=16).map(|i| json!({"group": "", "kind": "Service", "name": "shop", "sectionName": format!("p{i}")})).collect();
    for (name, created) in [("older", "2026-01-01T00:00:00Z"), ("newer", "2026-01-02T00:00:00Z")] {
        index.apply(&serde_json::from_value::<v1::BackendTlsPolicy>(json!({
            "metadata": {"namespace": "shop", "name": name, "creationTimestamp": created},
            "spec": {"targetRefs": targets, "validation": ca_validation("abc.example.com", json!(null))},
        })).unwrap());
    }
    let newer = index.policy_conditions(&ObjectKey::new("shop", "newer")).unwrap();
    assert_eq!(newer.accepted.reason, Reason::Conflicted);
    assert_eq!(newer.accepted.message.matches("takes precedence").count(), 16);
    assert!(index.policy_conditions(&ObjectKey::new("shop", "older")).unwrap().accepted.status);

    // A grant whose `to.name` is `*` names an object called `*`: no wildcard.
    let mut index = Index::default();
    index.apply(&shop_service());
    index.apply(&serde_json::from_value::<v1::ReferenceGrant>(json!({
        "metadata": {"namespace": "shop", "name": "star"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "web"}],
            "to": [{"group": "", "kind": "Service", "name": "*"}],
        },
    })).unwrap());
    let backend =
        BackendRef::service(Referrer::gateway_api("HTTPRoute", "web"), "shop", "shop", 443);
    assert!(matches!(index.resolve(&backend).outcome(), Outcome::RefNotPermitted));
}
