//! Scenario tests for the index: conformance stories decided by resolution
//! and status, ReferenceGrant stories, precedence and deletes.

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret, Service, ServicePort, ServiceSpec},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};

use super::*;
use crate::{
    api::v1::{
        LocalObjectReference, LocalPolicyTargetReferenceWithSectionName, ReferenceGrantFrom,
        ReferenceGrantTo, SecretObjectReference,
    },
    status::Reason,
    tls::ca,
};

const NS: &str = "gateway-conformance-infra";
/// A real (self-signed) certificate: the index parses CA bundles.
static CA_PEM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    rcgen::generate_simple_self_signed(vec!["test-ca.example".into()]).unwrap().cert.pem()
});

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta { namespace: Some(namespace.into()), name: Some(name.into()), ..Default::default() }
}

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
}

/// A Service with named TCP ports `(name, port)`.
fn mk_service(namespace: &str, name: &str, ports: &[(&str, i32)]) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: Some((*n).into()),
                        port: *p,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mk_ca_config_map(namespace: &str, name: &str, ca: Option<&str>) -> ConfigMap {
    ConfigMap {
        metadata: meta(namespace, name),
        data: Some(
            ca.map(|ca| [(CA_CERT_KEY.to_owned(), ca.to_owned())].into()).unwrap_or_default(),
        ),
        ..Default::default()
    }
}

fn cm_ref(name: &str) -> LocalObjectReference {
    LocalObjectReference { group: "".into(), kind: "ConfigMap".into(), name: name.into() }
}

/// A policy created `created` seconds into the test epoch, targeting
/// `service` (and `section`), trusting the ConfigMap `ca`.
fn mk_policy(
    name: &str,
    created: i64,
    service: &str,
    section: Option<&str>,
    hostname: &str,
) -> v1::BackendTlsPolicy {
    let mut policy = v1::BackendTlsPolicy::new(
        name,
        v1::BackendTlsPolicySpec {
            target_refs: vec![LocalPolicyTargetReferenceWithSectionName {
                group: "".into(),
                kind: "Service".into(),
                name: service.into(),
                section_name: section.map(Into::into),
            }],
            validation: v1::BackendTlsPolicyValidation {
                ca_certificate_refs: Some(vec![cm_ref("ca")]),
                hostname: hostname.into(),
                ..Default::default()
            },
            options: None,
        },
    );
    policy.metadata.namespace = Some(NS.into());
    policy.metadata.creation_timestamp = Some(at(created));
    policy.metadata.generation = Some(1);
    policy
}

fn mk_grant(
    namespace: &str,
    name: &str,
    from: (&str, &str, &str),
    to: (&str, &str, Option<&str>),
) -> v1::ReferenceGrant {
    v1::ReferenceGrant {
        metadata: meta(namespace, name),
        spec: v1::ReferenceGrantSpec {
            from: vec![ReferenceGrantFrom {
                group: from.0.into(),
                kind: from.1.into(),
                namespace: from.2.into(),
            }],
            to: vec![ReferenceGrantTo {
                group: to.0.into(),
                kind: to.1.into(),
                name: to.2.map(Into::into),
            }],
        },
    }
}

/// An index with the conformance CA ConfigMap `ca`.
fn mk_index() -> Index {
    let mut index = Index::default();
    index.apply(&mk_ca_config_map(NS, "ca", Some(&CA_PEM)));
    index
}

fn route() -> Referrer {
    Referrer::gateway_api("HTTPRoute", NS)
}

/// The name of the policy applied to `service:port`, if any.
fn applied(index: &Index, service: &str, port: i32) -> Option<String> {
    match index.resolve(&BackendRef::service(route(), NS, service, port)).outcome() {
        Outcome::Policy(applied) => Some(applied.policy_key().name.clone()),
        _ => None,
    }
}

fn accepted(index: &Index, policy: &str) -> (bool, Reason) {
    let conditions = index.policy_conditions(&ObjectKey::new(NS, policy)).unwrap();
    (conditions.accepted.status, conditions.accepted.reason)
}

fn resolved_refs(index: &Index, policy: &str) -> (bool, Reason) {
    let conditions = index.policy_conditions(&ObjectKey::new(NS, policy)).unwrap();
    (conditions.resolved_refs.status, conditions.resolved_refs.reason)
}

#[test]
fn conflict_without_section_name_oldest_wins() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_policy("conflicted-without-section-name-2", 1, "svc", None, "abc.example.com"));
    index.apply(&mk_policy(
        "conflicted-without-section-name-1",
        0,
        "svc",
        None,
        "other.example.com",
    ));
    assert_eq!(accepted(&index, "conflicted-without-section-name-1"), (true, Reason::Accepted));
    assert_eq!(accepted(&index, "conflicted-without-section-name-2"), (false, Reason::Conflicted));
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("conflicted-without-section-name-1"));
    let message = index
        .policy_conditions(&ObjectKey::new(NS, "conflicted-without-section-name-2"))
        .unwrap()
        .accepted
        .message;
    assert!(message.contains("conflicted-without-section-name-1"), "{message}");
}

/// Age decides before the name, and a policy without a creation time
/// (from a file) counts as the newest; between two such, the name decides.
#[test]
fn age_before_name_and_undated_is_newest() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_policy("a-newer", 5, "svc", None, "abc.example.com"));
    index.apply(&mk_policy("b-older", 0, "svc", None, "abc.example.com"));
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("b-older"));
    assert_eq!(accepted(&index, "a-newer"), (false, Reason::Conflicted));

    let undated = |name: &str, service: &str| {
        let mut policy = mk_policy(name, 0, service, None, "abc.example.com");
        policy.metadata.creation_timestamp = None;
        policy
    };
    index.apply(&undated("0-undated", "svc"));
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("b-older"));
    assert_eq!(accepted(&index, "0-undated"), (false, Reason::Conflicted));

    index.apply(&mk_service(NS, "other", &[("https", 443)]));
    index.apply(&undated("y-undated", "other"));
    index.apply(&undated("x-undated", "other"));
    assert_eq!(applied(&index, "other", 443).as_deref(), Some("x-undated"));
    assert_eq!(accepted(&index, "y-undated"), (false, Reason::Conflicted));
}

#[test]
fn conflict_same_age_first_by_name_wins() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https-1", 443), ("https-2", 8443)]));
    index.apply(&mk_policy("b", 0, "svc", Some("https-1"), "other.example.com"));
    index.apply(&mk_policy("a", 0, "svc", Some("https-1"), "abc.example.com"));
    assert_eq!(accepted(&index, "a"), (true, Reason::Accepted));
    assert_eq!(accepted(&index, "b"), (false, Reason::Conflicted));
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("a"));
    assert_eq!(applied(&index, "svc", 8443), None);
}

#[test]
fn section_name_beats_whole_service_in_both_age_orders() {
    for (section_created, whole_created) in [(0, 1), (1, 0)] {
        let mut index = mk_index();
        index.apply(&mk_service(NS, "svc", &[("https-1", 443), ("https-2", 8443)]));
        index.apply(&mk_policy(
            "with-section",
            section_created,
            "svc",
            Some("https-1"),
            "other.example.com",
        ));
        index.apply(&mk_policy("without-section", whole_created, "svc", None, "abc.example.com"));
        assert_eq!(accepted(&index, "with-section"), (true, Reason::Accepted));
        assert_eq!(accepted(&index, "without-section"), (true, Reason::Accepted));
        assert_eq!(applied(&index, "svc", 443).as_deref(), Some("with-section"));
        assert_eq!(applied(&index, "svc", 8443).as_deref(), Some("without-section"));
        let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
        assert_eq!(
            resolution.candidates()[1].verdict,
            Verdict::Shadowed { by: ObjectKey::new(NS, "with-section").into() }
        );
    }
}

/// A port whose protocol Kubernetes does not know (from a file) fails
/// closed under a whole-Service policy, and its status says so.
#[test]
fn a_port_of_unknown_protocol_is_named_in_the_status() {
    let mut index = mk_index();
    let mut service = mk_service(NS, "svc", &[("https", 443), ("odd", 8443)]);
    service.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].protocol = Some("tcp".into());
    index.apply(&service);
    index.apply(&mk_policy("p", 0, "svc", None, "abc.example.com"));
    let accepted = index.policy_conditions(&ObjectKey::new(NS, "p")).unwrap().accepted;
    assert!(accepted.status);
    assert!(
        accepted
            .message
            .contains("ports 8443 (odd) of Service svc have a protocol Kubernetes does not know"),
        "{}",
        accepted.message
    );
    assert_eq!(usable(&index, "svc", 443), Ok(()));
    assert_eq!(
        usable(&index, "svc", 8443),
        Err(vec![PolicyProblem::NotTcp { port: 8443, protocol: PortProtocol::Other }])
    );
}

/// A policy with several targetRefs is accepted where it is in effect: its
/// `Accepted` agrees with the data path, and its message names where it is
/// not and why. In effect nowhere, it is not accepted.
#[test]
fn a_policy_in_effect_on_some_targets_is_accepted_saying_where_not() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https-1", 443), ("https-2", 8443)]));
    index.apply(&mk_policy("older", 0, "svc", Some("https-1"), "abc.example.com"));
    let target = |group: &str, kind: &str, name: &str, section: Option<&str>| {
        LocalPolicyTargetReferenceWithSectionName {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            section_name: section.map(Into::into),
        }
    };
    let mut multi = mk_policy("multi", 1, "svc", Some("https-1"), "abc.example.com");
    multi.spec.target_refs.extend([
        target("", "Service", "svc", Some("https-2")),
        target("", "Service", "missing", None),
        target("inference.networking.k8s.io", "InferencePool", "pool", None),
    ]);
    index.apply(&multi);
    let condition = index.policy_conditions(&ObjectKey::new(NS, "multi")).unwrap().accepted;
    assert_eq!(
        (condition.status, condition.reason),
        (true, Reason::Accepted),
        "{}",
        condition.message
    );
    for says in [
        "targetRefs[0]: ",
        "older also targets port https-1",
        "targetRefs[2]: ",
        "targetRefs[3]: kind inference.networking.k8s.io/InferencePool is not supported",
    ] {
        assert!(condition.message.contains(says), "{says}: {}", condition.message);
    }
    assert!(!condition.message.contains("targetRefs[1]"), "{}", condition.message);
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("older"));
    assert_eq!(applied(&index, "svc", 8443).as_deref(), Some("multi"));
    assert_eq!(usable(&index, "svc", 8443), Ok(()));

    // The one port it took is gone: in effect nowhere, it is not accepted.
    index.apply(&mk_service(NS, "svc", &[("https-1", 443)]));
    assert_eq!(accepted(&index, "multi"), (false, Reason::Invalid));

    // A whole-Service target whose every port a port policy takes is no
    // place it is in effect either.
    let mut whole = mk_policy("whole", 1, "svc", None, "abc.example.com");
    whole.spec.target_refs.push(target("", "Service", "missing", None));
    index.apply(&whole);
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("older"));
    assert_eq!(accepted(&index, "whole"), (false, Reason::TargetNotFound));

    // In effect on one Service and shadowed on the other: accepted, and
    // the message says where it is not used although nothing is wrong there.
    index.apply(&mk_service(NS, "other", &[("https", 443)]));
    let mut both = mk_policy("both", 1, "other", None, "abc.example.com");
    both.spec.target_refs.push(target("", "Service", "svc", None));
    index.apply(&both);
    let condition = index.policy_conditions(&ObjectKey::new(NS, "both")).unwrap().accepted;
    assert_eq!((condition.status, condition.reason), (true, Reason::Accepted));
    assert!(
        condition.message.contains("targetRefs[1]: no port of Service svc uses it"),
        "{}",
        condition.message
    );
    assert_eq!(applied(&index, "other", 443).as_deref(), Some("both"));
}

/// A whole-Service policy that loses to an older one is `Conflicted` on
/// every port, as its status says, even where a port policy wins.
#[test]
fn a_whole_service_loser_is_conflicted_where_a_port_policy_wins() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https-1", 443), ("https-2", 8443)]));
    index.apply(&mk_policy("port", 2, "svc", Some("https-1"), "abc.example.com"));
    index.apply(&mk_policy("whole-old", 0, "svc", None, "abc.example.com"));
    index.apply(&mk_policy("whole-new", 1, "svc", None, "abc.example.com"));
    assert_eq!(accepted(&index, "whole-new"), (false, Reason::Conflicted));
    let key = |name| Arc::new(ObjectKey::new(NS, name));
    for (port, old_verdict) in
        [(443, Verdict::Shadowed { by: key("port") }), (8443, Verdict::Applies)]
    {
        let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", port));
        let verdicts: Vec<_> = resolution
            .candidates()
            .iter()
            .filter(|c| c.section.is_none())
            .map(|c| (c.policy.name.clone(), c.verdict.clone()))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("whole-old".to_owned(), old_verdict),
                ("whole-new".to_owned(), Verdict::Conflicted { winner: key("whole-old") }),
            ],
            "port {port}"
        );
    }
}

#[test]
fn nonexistent_and_malformed_ca_refs_fail_closed() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_ca_config_map(NS, "malformed-ca-certificate", None));
    let mut nonexistent =
        mk_policy("nonexistent-ca-certificate-ref", 0, "svc", None, "abc.example.com");
    nonexistent.spec.validation.ca_certificate_refs =
        Some(vec![cm_ref("nonexistent-ca-certificate")]);
    index.apply(&nonexistent);
    let policy = "nonexistent-ca-certificate-ref";
    assert_eq!(accepted(&index, policy), (false, Reason::NoValidCACertificate));
    assert_eq!(resolved_refs(&index, policy), (false, Reason::InvalidCACertificateRef));
    let Outcome::Policy(applied) =
        index.resolve(&BackendRef::service(route(), NS, "svc", 443)).into_outcome()
    else {
        panic!("the policy must apply")
    };
    assert!(applied.usable().is_err(), "a policy without CA must not be usable");

    let mut malformed =
        mk_policy("malformed-ca-certificate-ref", 0, "svc2", None, "abc.example.com");
    malformed.spec.validation.ca_certificate_refs = Some(vec![cm_ref("malformed-ca-certificate")]);
    index.apply(&mk_service(NS, "svc2", &[("https", 443)]));
    index.apply(&malformed);
    assert_eq!(
        accepted(&index, "malformed-ca-certificate-ref"),
        (false, Reason::NoValidCACertificate)
    );
    let conditions =
        index.policy_conditions(&ObjectKey::new(NS, "malformed-ca-certificate-ref")).unwrap();
    assert_eq!(conditions.resolved_refs.reason, Reason::InvalidCACertificateRef);
    assert_eq!(
        conditions.resolved_refs.message,
        "caCertificateRefs[0] ConfigMap malformed-ca-certificate: has no key ca.crt"
    );
}

#[test]
fn invalid_kind() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let mut policy = mk_policy("invalid-kind", 0, "svc", None, "abc.example.com");
    policy.spec.validation.ca_certificate_refs = Some(vec![LocalObjectReference {
        group: "invalid.io".into(),
        kind: "InvalidKind".into(),
        name: "invalid-kind".into(),
    }]);
    index.apply(&policy);
    assert_eq!(accepted(&index, "invalid-kind"), (false, Reason::NoValidCACertificate));
    assert_eq!(resolved_refs(&index, "invalid-kind"), (false, Reason::InvalidKind));
    assert!(matches!(
        index.resolve(&BackendRef::service(route(), NS, "svc", 443)).outcome(),
        Outcome::Policy(a) if a.usable().is_err()
    ));
}

#[test]
fn some_refs_bad_keeps_accepted_but_fails_closed() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let mut policy = mk_policy("partly", 0, "svc", None, "abc.example.com");
    policy.spec.validation.ca_certificate_refs = Some(vec![cm_ref("ca"), cm_ref("missing")]);
    index.apply(&policy);
    assert_eq!(accepted(&index, "partly"), (true, Reason::Accepted));
    let conditions = index.policy_conditions(&ObjectKey::new(NS, "partly")).unwrap();
    assert!(
        conditions.accepted.message.contains("Connections using it fail"),
        "{}",
        conditions.accepted.message
    );
    assert_eq!(resolved_refs(&index, "partly"), (false, Reason::InvalidCACertificateRef));
    let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!() };
    assert_eq!(applied.ca_sources().len(), 1);
    assert!(applied.usable().is_err(), "{resolution:?}");
}

#[test]
fn config_map_reconcile() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let mut policy = mk_policy("reconcile-test", 0, "svc", None, "abc.example.com");
    policy.spec.validation.ca_certificate_refs = Some(vec![cm_ref("reconcile-ca")]);
    index.apply(&policy);
    let state =
        |index: &Index| (accepted(index, "reconcile-test"), resolved_refs(index, "reconcile-test"));
    let broken = ((false, Reason::NoValidCACertificate), (false, Reason::InvalidCACertificateRef));
    let fine = ((true, Reason::Accepted), (true, Reason::ResolvedRefs));
    assert_eq!(state(&index), broken);
    index.apply(&mk_ca_config_map(NS, "reconcile-ca", Some(&CA_PEM)));
    assert_eq!(state(&index), fine);
    index.apply(&mk_ca_config_map(NS, "reconcile-ca", Some("")));
    assert_eq!(state(&index), broken);
    index.apply(&mk_ca_config_map(NS, "reconcile-ca", Some(&CA_PEM)));
    assert_eq!(state(&index), fine);
    index.delete::<ConfigMap>(&ObjectKey::new(NS, "reconcile-ca"));
    assert_eq!(state(&index), broken);
    // The data path agrees (status is computed apart from it).
    assert_eq!(usable(&index, "svc", 443), Err(vec![PolicyProblem::NoValidCACertificate]));
}

/// Whether the policy applying to `service:port` can be used, and if not
/// why (without the CA references' own problems, which vary in text).
fn usable(index: &Index, service: &str, port: i32) -> Result<(), Vec<PolicyProblem>> {
    let resolution = index.resolve(&BackendRef::service(route(), NS, service, port));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
    applied.usable().map(drop).map_err(|problems| {
        problems.iter().filter(|p| !matches!(p, PolicyProblem::CaRef(_))).cloned().collect()
    })
}

#[test]
fn secret_ca_refs_are_supported() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&Secret {
        metadata: meta(NS, "ca-secret"),
        data: Some([(CA_CERT_KEY.to_owned(), ByteString(CA_PEM.as_bytes().to_vec()))].into()),
        ..Default::default()
    });
    let mut policy = mk_policy("secret", 0, "svc", None, "abc.example.com");
    policy.spec.validation.ca_certificate_refs = Some(vec![LocalObjectReference {
        group: "".into(),
        kind: "Secret".into(),
        name: "ca-secret".into(),
    }]);
    index.apply(&policy);
    assert_eq!(resolved_refs(&index, "secret"), (true, Reason::ResolvedRefs));
    let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!() };
    assert_eq!(applied.ca_sources()[0].index, 0);
    assert_eq!(&*applied.ca_sources()[0].pem, CA_PEM.as_bytes());
}

/// A TLS Secret's key pair is loaded when a Gateway's reference asks for
/// it, once, and kept while the Secret comes back unchanged.
#[test]
fn tls_secrets_are_parsed_when_asked_for() {
    let pair = rcgen::generate_simple_self_signed(vec!["gw.example".into()]).unwrap();
    let tls_secret = |crt: &str| Secret {
        metadata: meta(NS, "client"),
        string_data: Some(
            [
                ("tls.crt".into(), crt.to_owned()),
                ("tls.key".into(), pair.signing_key.serialize_pem()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let mut index = Index::default();
    index.apply(&tls_secret(&pair.cert.pem()));
    let key_pair = |index: &Index| index.secrets.get(NS, "client").unwrap().key_pair.clone();
    assert!(!key_pair(&index).is_parsed(), "no Gateway asked");
    let reference = SecretObjectReference { name: "client".into(), ..Default::default() };
    let first = index.client_certificate_from_ref(NS, &reference).unwrap();
    assert!(key_pair(&index).is_parsed());
    index.apply(&tls_secret(&pair.cert.pem()));
    assert!(first.same(&index.client_certificate_from_ref(NS, &reference).unwrap()));
    // tls.crt replaced by a certificate for another key, tls.key left:
    // read again, and refused (when a provider can check the pair).
    let other = rcgen::generate_simple_self_signed(vec!["other.example".into()]).unwrap();
    index.apply(&tls_secret(&other.cert.pem()));
    assert!(!key_pair(&index).is_parsed());
    let read = index.client_certificate_from_ref(NS, &reference);
    assert!(key_pair(&index).is_parsed());
    if crate::tls::check_provider().is_some() {
        let error = read.unwrap_err();
        assert!(error.to_string().contains("tls.key does not fit tls.crt"), "{error}");
    }
}

fn secs(seconds: u64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds))
}

/// A CA certificate valid over `[not_before, not_after]`, as PEM.
pub(super) fn ca_valid(
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["timed-ca.example".into()]).unwrap();
    (params.not_before, params.not_after) = (not_before, not_after);
    params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
}

/// rustls does not check a trust anchor's validity, so the index does:
/// a CA that expires after it was applied is refused from then on.
#[test]
fn a_ca_that_expires_later_is_refused_then() {
    let now = time::OffsetDateTime::now_utc();
    let not_after = now + time::Duration::hours(1);
    let mut index = Index::default();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let pem = format!("{}{}", *CA_PEM, ca_valid(now - time::Duration::hours(1), not_after));
    index.apply(&mk_ca_config_map(NS, "ca", Some(&pem)));
    index.apply(&Secret {
        metadata: meta(NS, "ca-secret"),
        data: Some([(CA_CERT_KEY.to_owned(), ByteString(pem.into_bytes()))].into()),
        ..Default::default()
    });
    index.apply(&mk_policy("expiring", 0, "svc", None, "abc.example.com"));
    assert_eq!(resolved_refs(&index, "expiring"), (true, Reason::ResolvedRefs));

    // Valid through its last second; refused from the next one.
    let last = not_after.unix_timestamp() as u64;
    assert_eq!(index.next_ca_validity_change(), Some(secs(last + 1)));
    assert_eq!(index.recheck_ca_validity(secs(last)), []);
    assert_eq!(
        index.recheck_ca_validity(secs(last + 1)),
        [ObjectKey::new(NS, "ca"), ObjectKey::new(NS, "ca-secret")]
    );
    assert_eq!(resolved_refs(&index, "expiring"), (false, Reason::ExpiredCertificate));
    // Gateway API's reason for a missing reference wins over ours for an
    // expired one, whatever their order.
    let mut both = mk_policy("both", 0, "svc", None, "abc.example.com");
    both.spec.validation.ca_certificate_refs = Some(vec![cm_ref("ca"), cm_ref("missing")]);
    index.apply(&both);
    assert_eq!(resolved_refs(&index, "both"), (false, Reason::InvalidCACertificateRef));
    index.delete::<v1::BackendTlsPolicy>(&ObjectKey::new(NS, "both"));
    let conditions = index.policy_conditions(&ObjectKey::new(NS, "expiring")).unwrap();
    assert!(conditions.resolved_refs.message.contains("block 2: expired at"), "{conditions:?}");
    let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!() };
    assert!(applied.usable().is_err());
    // Next: the long-lived CA's end, though the bundle stays refused.
    let long_lived = ca::parse_bundle(CA_PEM.as_bytes(), secs(last)).unwrap()[0].not_after();
    // The ConfigMap and the Secret hold the same text: read again once.
    assert!(Arc::ptr_eq(&read_bundle(&index, NS, "ca"), &read_bundle(&index, NS, "ca-secret")));
    assert_eq!(index.next_ca_validity_change(), Some(secs(long_lived.as_secs() + 1)));
    assert_eq!(index.recheck_ca_validity(secs(last + 2)), []);
}

/// A CA refused as not yet valid (a clock behind the issuer's) is taken
/// once it is, without its object changing.
#[test]
fn a_ca_not_yet_valid_is_taken_once_it_is() {
    let now = time::OffsetDateTime::now_utc();
    let not_before = now + time::Duration::hours(1);
    let mut index = Index::default();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let pem = ca_valid(not_before, now + time::Duration::days(1));
    index.apply(&mk_ca_config_map(NS, "ca", Some(&pem)));
    index.apply(&mk_policy("early", 0, "svc", None, "abc.example.com"));
    assert_eq!(resolved_refs(&index, "early"), (false, Reason::NotYetValidCertificate));

    let start = not_before.unix_timestamp() as u64;
    assert_eq!(index.next_ca_validity_change(), Some(secs(start)));
    assert_eq!(index.recheck_ca_validity(secs(start - 1)), []);
    assert_eq!(index.recheck_ca_validity(secs(start)), [ObjectKey::new(NS, "ca")]);
    assert_eq!(resolved_refs(&index, "early"), (true, Reason::ResolvedRefs));
    let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!() };
    assert!(applied.usable().is_ok());
    // Next: its expiry.
    let end = (now + time::Duration::days(1)).unix_timestamp() as u64;
    assert_eq!(index.next_ca_validity_change(), Some(secs(end + 1)));
}

/// A clock set back: a CA read as valid at the later time is read again at
/// the corrected one, and refused there until it is valid.
#[test]
fn a_clock_set_back_reads_cas_again() {
    let now = time::OffsetDateTime::now_utc();
    let not_before = now + time::Duration::hours(1);
    let mut index = Index::default();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let pem = ca_valid(not_before, now + time::Duration::days(1));
    let start = not_before.unix_timestamp() as u64;
    index.apply_at(&mk_ca_config_map(NS, "ca", Some(&pem)), secs(start + 60));
    index.apply(&mk_policy("p", 0, "svc", None, "abc.example.com"));
    assert_eq!(resolved_refs(&index, "p"), (true, Reason::ResolvedRefs));
    // The clock is corrected, to before the CA's start.
    let corrected = secs(now.unix_timestamp() as u64);
    assert_eq!(index.recheck_ca_validity(corrected), [ObjectKey::new(NS, "ca")]);
    assert_eq!(resolved_refs(&index, "p"), (false, Reason::NotYetValidCertificate));
    assert_eq!(index.next_ca_validity_change(), Some(secs(start)));
    assert_eq!(index.recheck_ca_validity(secs(start)), [ObjectKey::new(NS, "ca")]);
    assert_eq!(resolved_refs(&index, "p"), (true, Reason::ResolvedRefs));
}

/// The bundle an object holds, as read.
fn read_bundle(index: &Index, namespace: &str, name: &str) -> Arc<ReadBundle> {
    let data = index.config_maps.get(namespace, name);
    match data.or_else(|| index.secrets.get(namespace, name).map(|s| &s.ca)) {
        Some(CaData::Present(read)) => read.clone(),
        other => panic!("{other:?}"),
    }
}

fn certificates(read: &ReadBundle) -> Arc<[Arc<CaCertificate>]> {
    read.verdict.as_ref().unwrap().certificates.clone()
}

/// trust-manager writes one bundle into every namespace: the text is read,
/// and held, once, whichever objects carry it; a text that differs around
/// the blocks still shares each certificate.
#[test]
fn a_bundle_in_many_objects_is_held_once() {
    let mut index = mk_index();
    index.apply(&mk_ca_config_map("a", "bundle", Some(&CA_PEM)));
    index.apply(&mk_ca_config_map("b", "bundle", Some(&CA_PEM)));
    index.apply(&Secret {
        metadata: meta("c", "bundle"),
        data: Some([(CA_CERT_KEY.to_owned(), ByteString(CA_PEM.as_bytes().to_vec()))].into()),
        ..Default::default()
    });
    let a = read_bundle(&index, "a", "bundle");
    assert!(Arc::ptr_eq(&a, &read_bundle(&index, "b", "bundle")));
    assert!(Arc::ptr_eq(&a, &read_bundle(&index, "c", "bundle")));

    index.apply(&mk_ca_config_map("d", "bundle", Some(&format!("# copied\n{}", *CA_PEM))));
    let d = read_bundle(&index, "d", "bundle");
    assert!(!Arc::ptr_eq(&a, &d));
    assert!(Arc::ptr_eq(&certificates(&a)[0], &certificates(&d)[0]));
}

/// A relist applies every object again: a CA object whose text is the same
/// leaves the policies naming it, and so the cached configurations, as they
/// were; a changed one replaces them.
#[test]
fn an_unchanged_ca_object_keeps_its_policies() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_ca_config_map(NS, "ca", Some(&CA_PEM)));
    index.apply(&mk_policy("p", 0, "svc", None, "abc.example.com"));
    let cache = crate::tls::TlsCache::default();
    let params = crate::tls::TlsParams::default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = |index: &Index| {
        let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
        let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
        cache.client_config_with_provider(applied, &params, provider.clone()).unwrap().config
    };
    let before = config(&index);
    let mut again = mk_ca_config_map(NS, "ca", Some(&CA_PEM));
    again.metadata.resource_version = Some("2".into());
    index.apply(&again);
    assert!(Arc::ptr_eq(&before, &config(&index)));
    // The same text under `binaryData` is the same bundle.
    let binary = ConfigMap {
        metadata: meta(NS, "ca"),
        binary_data: Some(
            [(CA_CERT_KEY.to_owned(), ByteString(CA_PEM.as_bytes().to_vec()))].into(),
        ),
        ..Default::default()
    };
    index.apply(&binary);
    assert!(Arc::ptr_eq(&before, &config(&index)));

    let other = rcgen::generate_simple_self_signed(vec!["other-ca.example".into()]).unwrap();
    index.apply(&mk_ca_config_map(NS, "ca", Some(&other.cert.pem())));
    assert!(!Arc::ptr_eq(&before, &config(&index)));
}

/// Every policy version gets its own configuration; those of versions gone
/// are swept as the cache grows, without being asked for.
#[test]
fn the_tls_cache_sweeps_what_nothing_holds_as_it_grows() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let cache = crate::tls::TlsCache::default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    for i in 0..300 {
        index.apply(&mk_policy("p", 0, "svc", None, &format!("v{i}.example.com")));
        let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
        let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
        cache.client_config_with_provider(applied, &Default::default(), provider.clone()).unwrap();
        let held = cache.unswept_len();
        assert!(held <= 2 + 64, "{held} configurations after {i} versions");
    }
    assert_eq!(cache.len(), 1);

    // A caller making a provider per call misses every time; what it
    // built goes once its provider is dropped.
    let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
    for i in 0..300 {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let before = cache.unswept_len();
        cache.client_config_with_provider(applied, &Default::default(), provider).unwrap();
        let held = cache.unswept_len();
        assert!(held <= 2 * 2 + 64, "{held} configurations after {i} providers");
        assert!(held == before + 1 || held < before, "a new provider is a miss: {before} → {held}");
    }
}

/// The caller's ALPN and provider are part of what a configuration is
/// for: each gets its own, and asking again gets the same one back.
#[test]
fn the_tls_cache_keeps_apart_alpn_and_providers() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_policy("p", 0, "svc", None, "abc.example.com"));
    let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
    let cache = crate::tls::TlsCache::default();
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    let one_suite = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384],
        ..rustls::crypto::ring::default_provider()
    });
    let config = |alpn: &[u8], provider: &Arc<rustls::crypto::CryptoProvider>| {
        let params = crate::tls::TlsParams { alpn: vec![alpn.to_vec()], ..Default::default() };
        cache.client_config_with_provider(applied, &params, provider.clone()).unwrap().config
    };
    let h2 = config(b"h2", &ring);
    let http1 = config(b"http/1.1", &ring);
    assert!(!Arc::ptr_eq(&h2, &http1));
    assert_eq!(
        (h2.alpn_protocols.clone(), http1.alpn_protocols.clone()),
        (vec![b"h2".to_vec()], vec![b"http/1.1".to_vec()])
    );
    assert!(Arc::ptr_eq(&h2, &config(b"h2", &ring)));

    let restricted = config(b"h2", &one_suite);
    assert!(!Arc::ptr_eq(&h2, &restricted));
    assert_eq!(restricted.crypto_provider().cipher_suites.len(), 1);
    assert!(h2.crypto_provider().cipher_suites.len() > 1);
    assert!(Arc::ptr_eq(&restricted, &config(b"h2", &one_suite)));
}

/// A caller still holding the policy from before its CA object changed
/// gets a configuration of its own, uncached: it does not evict the one
/// that callers with the current anchors share.
#[test]
fn the_tls_cache_keeps_the_current_anchors_config_for_stale_callers() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_policy("p", 0, "svc", None, "abc.example.com"));
    let applied = |index: &Index| {
        let resolution = index.resolve(&BackendRef::service(route(), NS, "svc", 443));
        let Outcome::Policy(applied) = resolution.into_outcome() else { panic!("no policy") };
        applied
    };
    let before = applied(&index);
    let other = rcgen::generate_simple_self_signed(vec!["other-ca.example".into()]).unwrap();
    index.apply(&mk_ca_config_map(NS, "ca", Some(&other.cert.pem())));
    let after = applied(&index);
    let cache = crate::tls::TlsCache::default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = |applied: &AppliedPolicy| {
        let params = crate::tls::TlsParams::default();
        cache.client_config_with_provider(applied, &params, provider.clone()).unwrap().config
    };
    let current = config(&after);
    let stale = config(&before);
    assert!(!Arc::ptr_eq(&current, &stale));
    assert!(Arc::ptr_eq(&current, &config(&after)), "the stale caller evicted it");
    assert!(!Arc::ptr_eq(&stale, &config(&before)), "stale configurations are not cached");
    assert_eq!(cache.len(), 1);
}

/// Policies naming the same CA object share its trust anchors; one naming
/// two objects trusts both.
#[test]
fn policies_share_their_ca_objects_anchors() {
    let mut index = mk_index();
    let other_ca = rcgen::generate_simple_self_signed(vec!["other-ca.example".into()]).unwrap();
    index.apply(&mk_ca_config_map(NS, "other-ca", Some(&other_ca.cert.pem())));
    for (service, policy) in [("svc-1", "p1"), ("svc-2", "p2"), ("svc-3", "both")] {
        index.apply(&mk_service(NS, service, &[("https", 443)]));
        index.apply(&mk_policy(policy, 0, service, None, "abc.example.com"));
    }
    let mut both = mk_policy("both", 0, "svc-3", None, "abc.example.com");
    both.spec.validation.ca_certificate_refs.as_mut().unwrap().push(LocalObjectReference {
        group: "".into(),
        kind: "ConfigMap".into(),
        name: "other-ca".into(),
    });
    index.apply(&both);
    let roots = |name: &str| index.policies.get(NS, name).unwrap().roots.clone().unwrap().0;
    assert!(Arc::ptr_eq(&roots("p1"), &roots("p2")));
    assert_eq!(roots("both").len(), 2);
}

#[test]
fn san_validation_policies_are_accepted() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("btls", 443)]));
    let sans = [
        ("san-dns", vec![v1::SubjectAltName::hostname("abc.example.com")]),
        ("san-uri", vec![v1::SubjectAltName::uri("spiffe://abc.example.com/test-identity")]),
        (
            "multiple-sans",
            vec![
                v1::SubjectAltName::uri("spiffe://abc.example.com/test-identity"),
                v1::SubjectAltName::hostname("abc.example.com"),
            ],
        ),
    ];
    for (name, sans) in sans {
        let mut policy =
            mk_policy(name, 0, &format!("svc-{name}"), Some("btls"), "abc.example.com");
        policy.spec.validation.subject_alt_names = Some(sans);
        index.apply(&mk_service(NS, &format!("svc-{name}"), &[("btls", 443)]));
        index.apply(&policy);
        assert_eq!(accepted(&index, name), (true, Reason::Accepted), "{name}");
        let resolution =
            index.resolve(&BackendRef::service(route(), NS, format!("svc-{name}"), 443));
        let Outcome::Policy(applied) = resolution.outcome() else { panic!("{name}") };
        assert!(!applied.usable().unwrap().subject_alt_names().is_empty());
    }
}

#[test]
fn observed_generation_follows_the_policy() {
    let mut index = mk_index();
    let mut policy =
        mk_policy("observed-generation-bump", 0, "svc", Some("https"), "abc.example.com");
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&policy);
    let key = ObjectKey::new(NS, "observed-generation-bump");
    assert_eq!(index.policy_conditions(&key).unwrap().observed_generation, Some(1));
    policy.spec.validation.hostname = "foo.example.com".into();
    policy.metadata.generation = Some(2);
    index.apply(&policy);
    let conditions = index.policy_conditions(&key).unwrap();
    assert_eq!(conditions.observed_generation, Some(2));
    assert!(conditions.accepted.status);
}

/// The index keeps a policy as applied, but for the API server's
/// bookkeeping.
#[test]
fn policies_are_kept_without_managed_fields() {
    let mut index = mk_index();
    let mut policy = mk_policy("p", 0, "svc", None, "abc.example.com");
    policy.metadata.managed_fields = Some(vec![Default::default()]);
    policy.metadata.labels = Some([("team".into(), "shop".into())].into());
    index.apply(&policy);
    let kept = index.policy(&ObjectKey::new(NS, "p")).unwrap();
    assert_eq!(kept.metadata.managed_fields, None);
    policy.metadata.managed_fields = None;
    assert_eq!(kept, &policy);
}

#[test]
fn target_not_found_and_missing_port() {
    let mut index = mk_index();
    index.apply(&mk_policy("no-service", 0, "missing", None, "abc.example.com"));
    assert_eq!(accepted(&index, "no-service"), (false, Reason::TargetNotFound));
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_policy("no-port", 0, "svc", Some("http"), "abc.example.com"));
    assert_eq!(accepted(&index, "no-port"), (false, Reason::TargetNotFound));
    let message = index.policy_conditions(&ObjectKey::new(NS, "no-port")).unwrap().accepted.message;
    assert_eq!(message, "targetRefs[0]: Service svc has no port named http");
    // The port-less section never applies, so port 443 has no policy.
    assert_eq!(applied(&index, "svc", 443), None);
    // Creating the Service clears TargetNotFound.
    index.apply(&mk_service(NS, "missing", &[("https", 443)]));
    assert_eq!(accepted(&index, "no-service"), (true, Reason::Accepted));
}

/// What a Route reports for each outcome that is not a policy.
#[test]
fn route_reasons() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let reason = |from: &str, service: &str, port: i32| {
        let route = Referrer::gateway_api("HTTPRoute", from);
        index.resolve(&BackendRef::service(route, NS, service, port)).outcome().route_reason()
    };
    assert_eq!(reason("web", "svc", 443), Some(Reason::RefNotPermitted));
    assert_eq!(reason(NS, "missing", 443), Some(Reason::BackendNotFound));
    assert_eq!(reason(NS, "svc", 8443), None, "a missing port has no Route reason");
    assert_eq!(reason(NS, "svc", 443), None, "no policy: the reference resolves");
    assert_eq!(Reason::BackendNotFound.as_str(), "BackendNotFound");
}

/// A spec this crate refuses though the API server took it (here an
/// unprefixed `options` key) is `Invalid`; its CA references are still
/// checked as written, so `ResolvedRefs` does not claim they resolve.
#[test]
fn an_invalid_policy_still_reports_its_references() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let mut policy = mk_policy("p", 0, "svc", None, "abc.example.com");
    policy.spec.validation.ca_certificate_refs = Some(vec![
        cm_ref("ca"),
        cm_ref("missing"),
        LocalObjectReference { group: "x".into(), kind: "Foo".into(), name: "ca".into() },
    ]);
    policy.spec.options = Some([("minVersion".into(), "1.3".into())].into());
    index.apply(&policy);
    assert_eq!(accepted(&index, "p"), (false, Reason::Invalid));
    assert_eq!(resolved_refs(&index, "p"), (false, Reason::InvalidCACertificateRef));
    let message = index.policy_conditions(&ObjectKey::new(NS, "p")).unwrap().resolved_refs.message;
    assert!(
        message.contains("ConfigMap missing: not found") && message.contains("x/Foo"),
        "{message}"
    );
    policy.spec.validation.ca_certificate_refs = Some(vec![cm_ref("ca")]);
    index.apply(&policy);
    assert_eq!(resolved_refs(&index, "p"), (true, Reason::ResolvedRefs));
}

/// A policy applies in its own namespace only: a Service of the same name
/// in another namespace is not its target.
#[test]
fn a_policy_targets_its_own_namespace_only() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_service("elsewhere", "svc", &[("https", 443)]));
    index.apply(&mk_policy("p", 0, "svc", None, "abc.example.com"));
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("p"));
    let from = Referrer::gateway_api("HTTPRoute", "elsewhere");
    let other = index.resolve(&BackendRef::service(from, "elsewhere", "svc", 443));
    assert!(matches!(other.outcome(), Outcome::NoPolicy), "{other:?}");
}

#[test]
fn unsupported_target_kind_is_invalid() {
    let mut index = mk_index();
    let mut policy = mk_policy("pool", 0, "svc", None, "abc.example.com");
    policy.spec.target_refs[0].group = "inference.networking.k8s.io".into();
    policy.spec.target_refs[0].kind = "InferencePool".into();
    index.apply(&policy);
    assert_eq!(accepted(&index, "pool"), (false, Reason::Invalid));
}

#[test]
fn service_import_is_a_target() {
    let mut index = mk_index();
    let mut policy = mk_policy("imported", 0, "shop", None, "abc.example.com");
    policy.spec.target_refs[0].group = "multicluster.x-k8s.io".into();
    policy.spec.target_refs[0].kind = "ServiceImport".into();
    index.apply(&policy);
    assert_eq!(accepted(&index, "imported"), (false, Reason::TargetNotFound));
    let key = ObjectKey::new(NS, "shop");
    index.apply_service_import(
        &key,
        vec![BackendPort { name: Some("https".into()), port: 443, protocol: PortProtocol::Tcp }],
    );
    assert_eq!(accepted(&index, "imported"), (true, Reason::Accepted));
    let backend = BackendRef {
        kind: BackendKind::ServiceImport,
        ..BackendRef::service(route(), NS, "shop", 443)
    };
    assert!(matches!(index.resolve(&backend).outcome(), Outcome::Policy(_)));
    assert_eq!(
        BackendKind::from_group_kind("multicluster.x-k8s.io", "ServiceImport"),
        Some(BackendKind::ServiceImport)
    );
    assert_eq!(BackendKind::from_group_kind("", "Service"), Some(BackendKind::Service));
    assert_eq!(BackendKind::from_group_kind("", "ServiceImport"), None);
    // A Service of the same name is a different backend.
    assert!(matches!(
        index.resolve(&BackendRef::service(route(), NS, "shop", 443)).outcome(),
        Outcome::BackendNotFound
    ));
}

#[test]
fn udp_ports() {
    let mut index = mk_index();
    let mut service = mk_service(NS, "dns", &[("tcp", 53), ("udp", 5353)]);
    service.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].protocol = Some("UDP".into());
    index.apply(&service);
    index.apply(&mk_policy("whole", 0, "dns", None, "abc.example.com"));
    let conditions = index.policy_conditions(&ObjectKey::new(NS, "whole")).unwrap();
    assert!(conditions.accepted.status);
    assert!(
        conditions.accepted.message.contains("ports 5353 (udp) of Service dns are not TCP"),
        "{}",
        conditions.accepted.message
    );
    assert_eq!(applied(&index, "dns", 53).as_deref(), Some("whole"));
    assert_eq!(applied(&index, "dns", 5353), None, "whole-Service policies skip UDP ports");

    index.apply(&mk_policy("udp", 0, "dns", Some("udp"), "abc.example.com"));
    assert_eq!(accepted(&index, "udp"), (false, Reason::Invalid));
    let resolution = index.resolve(&BackendRef::service(route(), NS, "dns", 5353));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
    assert_eq!(
        applied.usable().unwrap_err()[0],
        PolicyProblem::NotTcp { port: 5353, protocol: PortProtocol::Udp }
    );
    // A whole-Service policy on a Service with UDP ports only has nothing
    // to apply to.
    let mut only_udp = mk_service(NS, "syslog", &[("udp", 514)]);
    only_udp.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    index.apply(&only_udp);
    index.apply(&mk_policy("syslog", 0, "syslog", None, "abc.example.com"));
    assert_eq!(accepted(&index, "syslog"), (false, Reason::Invalid));
    // Nor through the cache, though the policy's own anchors are fine.
    let cache = crate::tls::TlsCache::default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let refused = cache.client_config_with_provider(applied, &Default::default(), provider);
    assert!(matches!(refused, Err(crate::tls::TlsError::Unusable { .. })), "{refused:?}");
    assert!(cache.is_empty());
}

/// One number for a UDP and a TCP port (kube-dns lists UDP 53 first): a
/// route reaches the TCP one, and its policies apply; never plaintext.
#[test]
fn a_port_number_shared_by_udp_and_tcp_means_tcp() {
    let mut index = mk_index();
    let mut service = mk_service(NS, "dns", &[("dns", 53), ("dns-tcp", 53)]);
    service.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    index.apply(&service);
    index.apply(&mk_policy("whole", 0, "dns", None, "abc.example.com"));
    assert_eq!(applied(&index, "dns", 53).as_deref(), Some("whole"));
    index.apply(&mk_policy("tcp", 0, "dns", Some("dns-tcp"), "abc.example.com"));
    assert_eq!(applied(&index, "dns", 53).as_deref(), Some("tcp"));

    // Likewise SCTP (SIP serves one number over TCP, UDP and SCTP).
    let mut sip = mk_service(NS, "sip", &[("sip-sctp", 5061), ("sip-tls", 5061)]);
    sip.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("SCTP".into());
    index.apply(&sip);
    index.apply(&mk_policy("sip", 0, "sip", Some("sip-tls"), "abc.example.com"));
    assert_eq!(applied(&index, "sip", 5061).as_deref(), Some("sip"));
    index.apply(&mk_policy("sctp", 0, "sip", Some("sip-sctp"), "abc.example.com"));
    let message = index.policy_conditions(&ObjectKey::new(NS, "sctp")).unwrap().accepted.message;
    assert!(message.contains("port sip-sctp of Service sip is SCTP"), "{message}");

    // A protocol Kubernetes does not know (a hand-written file): a
    // whole-Service policy applies there and fails closed, never plaintext.
    let mut odd = mk_service(NS, "odd", &[("https", 443)]);
    odd.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("tcp".into());
    index.apply(&odd);
    index.apply(&mk_policy("odd", 0, "odd", None, "abc.example.com"));
    let resolution = index.resolve(&BackendRef::service(route(), NS, "odd", 443));
    let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
    assert!(matches!(applied.usable(), Err([PolicyProblem::NotTcp { .. }])));
}

#[test]
fn invalid_policy_still_attaches_and_fails_closed() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    // An IP hostname: the API server takes it, this crate does not.
    index.apply(&mk_policy("ip", 0, "svc", None, "10.0.0.1"));
    index.apply(&mk_policy("fine-but-newer", 1, "svc", None, "abc.example.com"));
    assert_eq!(accepted(&index, "ip"), (false, Reason::Invalid));
    let backend = BackendRef::service(route(), NS, "svc", 443);
    let resolution = index.resolve(&backend);
    let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
    assert_eq!(applied.policy_key().name, "ip");
    assert!(matches!(applied.usable(), Err([PolicyProblem::Invalid(_)])));
    assert_eq!(
        resolution.explain(&backend).to_string(),
        "Service gateway-conformance-infra/svc port 443: BackendTLSPolicy gateway-conformance-infra/ip \
         applies but cannot be used; connections must fail:\n  \
         - invalid: spec.validation.hostname: invalid value \"10.0.0.1\": must be a DNS name, not an \
         IP address (its last label is a number)\n  \
         gateway-conformance-infra/ip (targets the whole Service): applies\n  \
         gateway-conformance-infra/fine-but-newer (targets the whole Service): conflicted, \
         gateway-conformance-infra/ip wins (older, or same age and first by namespace/name)"
    );
}

#[test]
fn unsupported_well_known_is_invalid() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let mut policy = mk_policy("custom", 0, "svc", None, "abc.example.com");
    policy.spec.validation.ca_certificate_refs = None;
    policy.spec.validation.well_known_ca_certificates = Some("example.com/private-roots".into());
    index.apply(&policy);
    assert_eq!(accepted(&index, "custom"), (false, Reason::Invalid));
    policy.spec.validation.well_known_ca_certificates = Some("System".into());
    index.apply(&policy);
    assert_eq!(accepted(&index, "custom"), (true, Reason::Accepted));
    assert_eq!(resolved_refs(&index, "custom"), (true, Reason::ResolvedRefs));
}

/// An implementation's own `wellKnownCACertificates` set: invalid until it
/// provides it, and again once it takes it back or leaves it empty.
#[test]
fn an_implementations_named_ca_set() {
    let mut index = Index::default();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let mut policy = mk_policy("named", 0, "svc", None, "abc.example.com");
    policy.spec.validation.ca_certificate_refs = None;
    policy.spec.validation.well_known_ca_certificates = Some("example.com/corp-roots".into());
    index.apply(&policy);
    let name = DomainPrefixedName::try_from("example.com/corp-roots").unwrap();
    let usable = |index: &Index| match index
        .resolve(&BackendRef::service(route(), NS, "svc", 443))
        .outcome()
    {
        Outcome::Policy(applied) => applied.usable().is_ok(),
        other => panic!("{other:?}"),
    };
    assert_eq!(accepted(&index, "named"), (false, Reason::Invalid));
    assert!(!usable(&index));

    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    roots.add_parsable_certificates(
        CertificateDer::pem_slice_iter(CA_PEM.as_bytes()).map(Result::unwrap),
    );
    index.set_well_known_roots(name.clone(), Some(Arc::new(roots)));
    assert_eq!(accepted(&index, "named"), (true, Reason::Accepted));
    assert!(usable(&index));

    index.set_well_known_roots(name.clone(), Some(Arc::new(rustls::RootCertStore::empty())));
    assert_eq!(accepted(&index, "named"), (false, Reason::Invalid));
    index.set_well_known_roots(name, None);
    let conditions = index.policy_conditions(&ObjectKey::new(NS, "named")).unwrap();
    assert_eq!(conditions.accepted.reason, Reason::Invalid);
    assert!(
        conditions.accepted.message.contains("\"example.com/corp-roots\" is not a CA set"),
        "{conditions:?}"
    );
    assert!(!usable(&index));
}

#[test]
fn deleting_the_winner_promotes_the_loser() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_policy("old", 0, "svc", None, "abc.example.com"));
    index.apply(&mk_policy("new", 1, "svc", None, "abc.example.com"));
    assert_eq!(accepted(&index, "new"), (false, Reason::Conflicted));
    index.delete::<v1::BackendTlsPolicy>(&ObjectKey::new(NS, "old"));
    assert_eq!(accepted(&index, "new"), (true, Reason::Accepted));
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("new"));
    assert!(index.policy_conditions(&ObjectKey::new(NS, "old")).is_none());
    index.delete::<v1::BackendTlsPolicy>(&ObjectKey::new(NS, "new"));
    assert_eq!(applied(&index, "svc", 443), None);
    index.delete::<Service>(&ObjectKey::new(NS, "svc"));
    index.delete::<ConfigMap>(&ObjectKey::new(NS, "ca"));
    assert_eq!(index.object_count(), 0);
    // Not even an empty map per namespace, nor a CA object's dependents.
    assert!(index.targets.iter().all(|t| t.0.is_empty()), "deletes leave nothing behind");
    assert!(index.policies.0.is_empty() && index.ca_dependents.0.is_empty());
    assert!(matches!(
        index.resolve(&BackendRef::service(route(), NS, "svc", 443)).outcome(),
        Outcome::BackendNotFound
    ));
}

#[test]
fn reapplying_a_policy_moves_its_attachment() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "a", &[("https", 443)]));
    index.apply(&mk_service(NS, "b", &[("https", 443)]));
    index.apply(&mk_policy("p", 0, "a", None, "abc.example.com"));
    index.apply(&mk_policy("p", 0, "b", None, "abc.example.com"));
    assert_eq!(applied(&index, "a", 443), None);
    assert_eq!(applied(&index, "b", 443).as_deref(), Some("p"));
}

mod grants {
    use super::*;

    const BACKEND_NS: &str = "backend";

    fn setup() -> Index {
        let mut index = Index::default();
        index.apply(&mk_service(BACKEND_NS, "svc", &[("https", 443)]));
        index
    }

    fn from_frontend(kind: &str) -> BackendRef {
        BackendRef::service(Referrer::gateway_api(kind, "frontend"), BACKEND_NS, "svc", 443)
    }

    fn permitted(index: &Index, backend: &BackendRef) -> bool {
        !matches!(index.resolve(backend).outcome(), Outcome::RefNotPermitted)
    }

    const HTTP_ROUTE: (&str, &str, &str) = ("gateway.networking.k8s.io", "HTTPRoute", "frontend");

    #[test]
    fn add_then_delete_grant() {
        let mut index = setup();
        let backend = from_frontend("HTTPRoute");
        assert!(!permitted(&index, &backend));
        index.apply(&mk_grant(BACKEND_NS, "g", HTTP_ROUTE, ("", "Service", None)));
        assert!(permitted(&index, &backend));
        index.delete::<v1::ReferenceGrant>(&ObjectKey::new(BACKEND_NS, "g"));
        assert!(!permitted(&index, &backend));
    }

    /// One grant with two `from` and two `to` entries allows every pair
    /// of them, and nothing else.
    #[test]
    fn a_grant_allows_every_from_with_every_to() {
        let mut index = setup();
        index.apply(&mk_service(BACKEND_NS, "svc2", &[("https", 443)]));
        index.apply(&mk_service(BACKEND_NS, "svc3", &[("https", 443)]));
        let mut grant = mk_grant(BACKEND_NS, "g", HTTP_ROUTE, ("", "Service", Some("svc")));
        grant.spec.from.push(ReferenceGrantFrom {
            group: "gateway.networking.k8s.io".into(),
            kind: "GRPCRoute".into(),
            namespace: "frontend".into(),
        });
        grant.spec.to.push(ReferenceGrantTo {
            group: "".into(),
            kind: "Service".into(),
            name: Some("svc2".into()),
        });
        index.apply(&grant);
        let reference = |kind, namespace: &str, service: &str| {
            let from = Referrer::gateway_api(kind, namespace);
            permitted(&index, &BackendRef::service(from, BACKEND_NS, service, 443))
        };
        for kind in ["HTTPRoute", "GRPCRoute"] {
            for service in ["svc", "svc2"] {
                assert!(reference(kind, "frontend", service), "{kind} → {service}");
            }
            assert!(!reference(kind, "frontend", "svc3"), "{kind} → svc3");
            assert!(!reference(kind, "elsewhere", "svc"), "{kind} from elsewhere");
        }
        assert!(!reference("TLSRoute", "frontend", "svc"));
    }

    /// A grant the API server would refuse grants nothing, though some of
    /// its entries would allow the reference (`apiserver.rs` checks the
    /// server refuses each).
    #[test]
    fn a_grant_the_server_refuses_grants_nothing() {
        let mut index = setup();
        let valid = mk_grant(BACKEND_NS, "g", HTTP_ROUTE, ("", "Service", None));
        index.apply(&valid);
        assert!(permitted(&index, &from_frontend("HTTPRoute")));
        let mut seventeen = valid.clone();
        seventeen.spec.from = vec![seventeen.spec.from[0].clone(); 17];
        let mut bad_kind = valid.clone();
        bad_kind.spec.to.push(ReferenceGrantTo {
            group: "".into(),
            kind: "Service!".into(),
            name: None,
        });
        let mut empty_name = valid.clone();
        empty_name.spec.to.push(ReferenceGrantTo {
            group: "".into(),
            kind: "Service".into(),
            name: Some("".into()),
        });
        for refused in [seventeen, bad_kind, empty_name] {
            index.apply(&refused);
            assert!(!permitted(&index, &from_frontend("HTTPRoute")), "{:?}", refused.spec);
            index.apply(&valid);
            assert!(permitted(&index, &from_frontend("HTTPRoute")));
        }
    }

    #[test]
    fn grant_naming_another_service_denies() {
        let mut index = setup();
        index.apply(&mk_grant(BACKEND_NS, "g", HTTP_ROUTE, ("", "Service", Some("other"))));
        assert!(!permitted(&index, &from_frontend("HTTPRoute")));
        index.apply(&mk_grant(BACKEND_NS, "g2", HTTP_ROUTE, ("", "Service", Some("svc"))));
        assert!(permitted(&index, &from_frontend("HTTPRoute")));
    }

    #[test]
    fn grant_for_another_route_kind_denies() {
        let mut index = setup();
        index.apply(&mk_grant(BACKEND_NS, "g", HTTP_ROUTE, ("", "Service", None)));
        assert!(!permitted(&index, &from_frontend("GRPCRoute")));
    }

    #[test]
    fn each_mismatch_denies() {
        for (grant_ns, from, to) in [
            ("elsewhere", HTTP_ROUTE, ("", "Service", None)),
            (BACKEND_NS, ("example.com", "HTTPRoute", "frontend"), ("", "Service", None)),
            (
                BACKEND_NS,
                ("gateway.networking.k8s.io", "HTTPRoute", "other"),
                ("", "Service", None),
            ),
            (BACKEND_NS, HTTP_ROUTE, ("example.com", "Service", None)),
            (BACKEND_NS, HTTP_ROUTE, ("", "Secret", None)),
        ] {
            let mut index = setup();
            index.apply(&mk_grant(grant_ns, "g", from, to));
            assert!(!permitted(&index, &from_frontend("HTTPRoute")), "{grant_ns} {from:?} {to:?}");
        }
    }

    #[test]
    fn denial_does_not_reveal_whether_the_service_exists() {
        let index = setup();
        let missing = BackendRef::service(
            Referrer::gateway_api("HTTPRoute", "frontend"),
            BACKEND_NS,
            "nope",
            443,
        );
        assert!(matches!(index.resolve(&missing).outcome(), Outcome::RefNotPermitted));
        assert!(matches!(
            index.resolve(&from_frontend("HTTPRoute")).outcome(),
            Outcome::RefNotPermitted
        ));
    }

    #[test]
    fn same_namespace_needs_no_grant() {
        let index = setup();
        let backend = BackendRef::service(
            Referrer::gateway_api("HTTPRoute", BACKEND_NS),
            BACKEND_NS,
            "svc",
            443,
        );
        assert!(matches!(index.resolve(&backend).outcome(), Outcome::NoPolicy));
    }

    #[test]
    fn v1beta1_grants_work_too() {
        let mut index = setup();
        let grant = v1beta1::ReferenceGrant::from(mk_grant(
            BACKEND_NS,
            "g",
            HTTP_ROUTE,
            ("", "Service", None),
        ));
        index.apply(&grant);
        assert!(permitted(&index, &from_frontend("HTTPRoute")));
        index.delete::<v1beta1::ReferenceGrant>(&ObjectKey::new(BACKEND_NS, "g"));
        assert!(!permitted(&index, &from_frontend("HTTPRoute")));
    }
}

#[test]
fn replace_is_a_relist() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    index.apply(&mk_service(NS, "gone", &[("https", 443)]));
    index.apply(&mk_policy("old", 0, "svc", None, "abc.example.com"));
    index.apply(&mk_policy("new", 1, "svc", None, "abc.example.com"));
    // While disconnected, `old` and Service `gone` were deleted.
    index.replace(vec![mk_policy("new", 1, "svc", None, "abc.example.com")]);
    index.replace(vec![mk_service(NS, "svc", &[("https", 443)])]);
    assert_eq!(index.policy_keys(), [ObjectKey::new(NS, "new")]);
    assert_eq!(accepted(&index, "new"), (true, Reason::Accepted));
    assert!(matches!(
        index.resolve(&BackendRef::service(route(), NS, "gone", 443)).outcome(),
        Outcome::BackendNotFound
    ));
    // An empty relist empties the kind, and only that kind.
    assert_eq!(usable(&index, "svc", 443), Ok(()));
    index.replace(Vec::<ConfigMap>::new());
    assert_eq!(accepted(&index, "new"), (false, Reason::NoValidCACertificate));
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("new"));
    assert_eq!(usable(&index, "svc", 443), Err(vec![PolicyProblem::NoValidCACertificate]));
}

/// Options are read under the domain the implementation sets: bad ones
/// there make the policy `Invalid` and unusable, whichever was applied
/// first; a domain that is not one is refused and changes nothing.
#[test]
fn options_under_the_implementations_domain() {
    let mut index = mk_index();
    index.apply(&mk_service(NS, "svc", &[("https", 443)]));
    let mut policy = mk_policy("p", 0, "svc", None, "abc.example.com");
    policy.spec.options = Some(
        [
            ("example.com/max-tls-version".into(), "1.1".into()),
            ("other.example.org/anything".into(), "x".into()),
        ]
        .into(),
    );
    index.apply(&policy);
    assert_eq!(accepted(&index, "p"), (true, Reason::Accepted), "no domain: none are ours");
    assert!(index.set_options_domain(Some("Example.com")).is_err());
    assert!(index.set_options_domain(Some("example.com/")).is_err());
    assert_eq!(accepted(&index, "p"), (true, Reason::Accepted));

    index.set_options_domain(Some("example.com")).unwrap();
    assert_eq!(accepted(&index, "p"), (false, Reason::Invalid));
    let message = index.policy_conditions(&ObjectKey::new(NS, "p")).unwrap().accepted.message;
    assert!(message.contains("options[example.com/max-tls-version]"), "{message}");
    assert!(!message.contains("other.example.org"), "{message}");
    assert_eq!(applied(&index, "svc", 443).as_deref(), Some("p"));
    let route = BackendRef::service(route(), NS, "svc", 443);
    let Outcome::Policy(used) = index.resolve(&route).into_outcome() else { panic!() };
    assert!(matches!(used.usable(), Err([PolicyProblem::Options(_)])));

    index.set_options_domain(Some("other.example.org")).unwrap();
    assert_eq!(accepted(&index, "p"), (false, Reason::Invalid), "`anything` is unknown");
    index.set_options_domain(None).unwrap();
    assert_eq!(accepted(&index, "p"), (true, Reason::Accepted));

    // Suites that leave nothing for the allowed versions, whoever offers
    // them (TLS 1.3 suites with TLS 1.2 at most): Invalid. Judged with a
    // provider that offers them; a group the built-in one lacks is left
    // to the configuration's build.
    index.set_options_domain(Some("example.com")).unwrap();
    let with = |options: &[(&str, &str)]| {
        let mut policy = policy.clone();
        let options = options.iter().map(|(k, v)| (format!("example.com/{k}"), v.to_string()));
        policy.spec.options = Some(options.collect());
        policy
    };
    index
        .apply(&with(&[("cipher-suites", "TLS13_AES_128_GCM_SHA256"), ("max-tls-version", "1.2")]));
    if crate::tls::check_provider().is_some() {
        assert_eq!(accepted(&index, "p"), (false, Reason::Invalid));
    }
    index.apply(&with(&[("key-exchange-groups", "FFDHE2048"), ("max-tls-version", "1.2")]));
    assert_eq!(accepted(&index, "p"), (true, Reason::Accepted));
}
