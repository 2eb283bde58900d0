//! Changes applied one at a time give the index that building it afresh
//! from the remaining objects gives. The index keeps a lot from one change
//! to the next (validated policies, bundles read once per text, merged
//! trust anchors, parsed client certificates, policies left alone when a
//! CA object comes back unchanged); none of it may show. And the
//! [`TlsCache`] fed from it never hands out a configuration made of what
//! was, while a relist, which changes nothing, keeps every one.

use std::{collections::BTreeMap, sync::LazyLock};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret, Service, ServicePort, ServiceSpec},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use proptest::prelude::*;
use rustls::{ClientConfig, crypto::CryptoProvider, pki_types::CertificateDer};

use super::*;
use crate::{
    api::v1::{
        LocalObjectReference, LocalPolicyTargetReferenceWithSectionName, ReferenceGrantFrom,
        ReferenceGrantTo,
    },
    tls::{
        ClientCertificate, GatewayBackendTls, GatewayClientCertificate, GatewaySpec, GatewayTls,
        SecretObjectReference, TlsCache, TlsParams,
    },
};

const NAMESPACES: [&str; 2] = ["a", "b"];

/// Two CAs, so that a bundle's content can change.
static CAS: LazyLock<[String; 2]> = LazyLock::new(|| {
    [0, 1].map(|i| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![format!("ca-{i}.example")]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    })
});

/// Two certificate/key pairs for `tls.crt` and `tls.key`.
static PAIRS: LazyLock<[(String, String); 2]> = LazyLock::new(|| {
    [0, 1].map(|i| {
        let pair = rcgen::generate_simple_self_signed(vec![format!("gw-{i}.example")]).unwrap();
        (pair.cert.pem(), pair.signing_key.serialize_pem())
    })
});

/// What `ca.crt` holds: mostly one CA or both, else nothing, or text that
/// is no bundle.
fn ca_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(Some(CAS[0].clone())),
        3 => Just(Some(CAS[1].clone())),
        2 => Just(Some(format!("{}{}", CAS[0], CAS[1]))),
        1 => Just(None),
        1 => Just(Some("not a bundle".into())),
        1 => Just(Some(String::new())),
    ]
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta { namespace: Some(namespace.into()), name: Some(name.into()), ..Default::default() }
}

/// The kinds, in the order building afresh applies them: dependents
/// before what they name, the order that leaves most to fill in later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Policy,
    Grant,
    ConfigMap,
    Secret,
    Service,
}

const KINDS: [Kind; 5] = [Kind::Policy, Kind::Grant, Kind::ConfigMap, Kind::Secret, Kind::Service];

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant, reason = "test data, moved rarely")]
enum Object {
    Policy(v1::BackendTlsPolicy),
    Grant(v1::ReferenceGrant),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(Service),
}

impl Object {
    fn kind(&self) -> Kind {
        match self {
            Self::Policy(_) => Kind::Policy,
            Self::Grant(_) => Kind::Grant,
            Self::ConfigMap(_) => Kind::ConfigMap,
            Self::Secret(_) => Kind::Secret,
            Self::Service(_) => Kind::Service,
        }
    }

    fn key(&self) -> ObjectKey {
        let meta = match self {
            Self::Policy(o) => &o.metadata,
            Self::Grant(o) => &o.metadata,
            Self::ConfigMap(o) => &o.metadata,
            Self::Secret(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
        };
        ObjectKey::of(meta).unwrap()
    }

    fn apply(&self, index: &mut Index) {
        match self {
            Self::Policy(o) => index.apply(o),
            Self::Grant(o) => index.apply(o),
            Self::ConfigMap(o) => index.apply(o),
            Self::Secret(o) => index.apply(o),
            Self::Service(o) => index.apply(o),
        }
    }
}

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant, reason = "test data, moved rarely")]
enum Change {
    Apply(Object),
    Delete(Kind, ObjectKey),
    /// A watcher's relist of one kind ([`Index::replace`]).
    Relist(Kind),
}

/// The objects the cluster holds.
type Cluster = BTreeMap<(Kind, ObjectKey), Object>;

impl Change {
    fn make(&self, index: &mut Index, cluster: &mut Cluster) {
        match self {
            Self::Apply(object) => {
                object.apply(index);
                cluster.insert((object.kind(), object.key()), object.clone());
            }
            Self::Delete(kind, key) => {
                match kind {
                    Kind::Policy => index.delete::<v1::BackendTlsPolicy>(key),
                    Kind::Grant => index.delete::<v1::ReferenceGrant>(key),
                    Kind::ConfigMap => index.delete::<ConfigMap>(key),
                    Kind::Secret => index.delete::<Secret>(key),
                    Kind::Service => index.delete::<Service>(key),
                }
                cluster.remove(&(*kind, key.clone()));
            }
            Self::Relist(kind) => {
                let objects = cluster.values().filter(|o| o.kind() == *kind);
                macro_rules! replace {
                    ($variant:ident) => {
                        index.replace(objects.map(|o| match o {
                            Object::$variant(o) => o.clone(),
                            _ => unreachable!("objects of one kind"),
                        }))
                    };
                }
                match kind {
                    Kind::Policy => replace!(Policy),
                    Kind::Grant => replace!(Grant),
                    Kind::ConfigMap => replace!(ConfigMap),
                    Kind::Secret => replace!(Secret),
                    Kind::Service => replace!(Service),
                }
            }
        }
    }
}

/// Mostly the first namespace, so that objects meet often; the second
/// is for references across namespaces.
fn namespace() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(NAMESPACES[0]), 1 => Just(NAMESPACES[1])]
}

fn service() -> impl Strategy<Value = Object> {
    // Ports: https/443, and maybe alt/8443, TCP or UDP.
    (namespace(), prop::sample::select(&["s1", "s2"][..]), 0..4u8).prop_map(|(ns, name, ports)| {
        let port = |name: &str, port, udp: bool| ServicePort {
            name: Some(name.into()),
            port,
            protocol: udp.then(|| "UDP".into()),
            ..Default::default()
        };
        let ports = match ports {
            0 => vec![port("https", 443, false)],
            1 => vec![port("https", 443, false), port("alt", 8443, false)],
            2 => vec![port("https", 443, false), port("alt", 8443, true)],
            _ => vec![port("alt", 8443, false)],
        };
        Object::Service(Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec { ports: Some(ports), ..Default::default() }),
            ..Default::default()
        })
    })
}

fn config_map() -> impl Strategy<Value = Object> {
    (namespace(), prop::sample::select(&["ca1", "ca2"][..]), ca_text(), any::<bool>()).prop_map(
        |(ns, name, ca, binary)| {
            let mut cm = ConfigMap { metadata: meta(ns, name), ..Default::default() };
            if let Some(ca) = ca {
                if binary {
                    cm.binary_data = Some([(CA_CERT_KEY.into(), ByteString(ca.into()))].into());
                } else {
                    cm.data = Some([(CA_CERT_KEY.into(), ca)].into());
                }
            }
            Object::ConfigMap(cm)
        },
    )
}

fn secret() -> impl Strategy<Value = Object> {
    // `ca1` shares its name with a ConfigMap; `client` is the Gateways'.
    (namespace(), prop::sample::select(&["ca1", "client"][..]), ca_text(), 0..4u8).prop_map(
        |(ns, name, ca, pair)| {
            let mut data = BTreeMap::new();
            if let Some(ca) = ca {
                data.insert(CA_CERT_KEY.to_owned(), ByteString(ca.into()));
            }
            let (crt, key) = match pair {
                0 => (None, None),
                1 => (Some(&PAIRS[0].0), Some(&PAIRS[0].1)),
                2 => (Some(&PAIRS[1].0), Some(&PAIRS[1].1)),
                _ => (Some(&PAIRS[0].0), Some(&PAIRS[1].1)),
            };
            for (k, v) in [("tls.crt", crt), ("tls.key", key)] {
                if let Some(v) = v {
                    data.insert(k.to_owned(), ByteString(v.clone().into_bytes()));
                }
            }
            Object::Secret(Secret {
                metadata: meta(ns, name),
                data: Some(data),
                ..Default::default()
            })
        },
    )
}

fn policy() -> impl Strategy<Value = Object> {
    let target = (
        prop::sample::select(&["s1", "s2"][..]),
        prop::sample::select(&[None, Some("https"), Some("alt"), Some("nope")][..]),
    )
        .prop_map(|(name, section)| LocalPolicyTargetReferenceWithSectionName {
            group: "".into(),
            kind: "Service".into(),
            name: name.into(),
            section_name: section.map(Into::into),
        });
    // Weighted so that policies are often usable, and change while they are.
    let ca_ref = prop_oneof![
        4 => Just(("", "ConfigMap", "ca1")),
        3 => Just(("", "ConfigMap", "ca2")),
        2 => Just(("", "Secret", "ca1")),
        1 => Just(("x", "Foo", "ca1")),
    ]
    .prop_map(|(group, kind, name)| LocalObjectReference {
        group: group.into(),
        kind: kind.into(),
        name: name.into(),
    });
    (
        namespace(),
        prop::sample::select(&["p1", "p2", "p3"][..]),
        prop::collection::vec(target, 1..3),
        prop::collection::vec(ca_ref, 0..3),
        // wellKnownCACertificates: none, System, or one nobody provides.
        prop_oneof![
            6 => Just(None),
            2 => Just(Some("System")),
            1 => Just(Some("example.com/corp")),
        ],
        prop_oneof![
            4 => Just("abc.example.com"),
            4 => Just("other.example.com"),
            1 => Just("Not A Host"),
        ],
        0..2i64,
        1..3i64,
    )
        .prop_map(|(ns, name, targets, refs, well_known, hostname, created, generation)| {
            let mut policy = v1::BackendTlsPolicy::new(
                name,
                v1::BackendTlsPolicySpec {
                    target_refs: targets,
                    validation: v1::BackendTlsPolicyValidation {
                        ca_certificate_refs: (!refs.is_empty()).then_some(refs),
                        well_known_ca_certificates: well_known.map(Into::into),
                        hostname: hostname.into(),
                        ..Default::default()
                    },
                    options: None,
                },
            );
            policy.metadata.namespace = Some(ns.into());
            policy.metadata.creation_timestamp =
                Some(Time(Timestamp::from_second(1_800_000_000 + created).unwrap()));
            policy.metadata.generation = Some(generation);
            Object::Policy(policy)
        })
}

fn grant() -> impl Strategy<Value = Object> {
    (
        namespace(),
        prop::sample::select(&["g1", "g2"][..]),
        namespace(),
        prop::sample::select(
            &[
                ("gateway.networking.k8s.io", "HTTPRoute", "", "Service", None),
                ("gateway.networking.k8s.io", "HTTPRoute", "", "Service", Some("s1")),
                ("gateway.networking.k8s.io", "Gateway", "", "Secret", None),
                ("gateway.networking.k8s.io", "Gateway", "", "Secret", Some("ca1")),
            ][..],
        ),
    )
        .prop_map(
            |(ns, name, from_ns, (from_group, from_kind, to_group, to_kind, to_name))| {
                Object::Grant(v1::ReferenceGrant {
                    metadata: meta(ns, name),
                    spec: v1::ReferenceGrantSpec {
                        from: vec![ReferenceGrantFrom {
                            group: from_group.into(),
                            kind: from_kind.into(),
                            namespace: from_ns.into(),
                        }],
                        to: vec![ReferenceGrantTo {
                            group: to_group.into(),
                            kind: to_kind.into(),
                            name: to_name.map(Into::into),
                        }],
                    },
                })
            },
        )
}

fn change() -> impl Strategy<Value = Change> {
    let object = prop_oneof![service(), config_map(), secret(), policy(), grant()];
    prop_oneof![
        6 => object.clone().prop_map(Change::Apply),
        // Deleting is named by an object of the kind, for its key.
        2 => object.prop_map(|o| Change::Delete(o.kind(), o.key())),
        1 => prop::sample::select(&KINDS[..]).prop_map(Change::Relist),
    ]
}

/// Everything a caller can see of an index, in a comparable form.
fn observe(index: &Index, cluster: &Cluster) -> Vec<String> {
    let mut seen = Vec::new();
    for (_, key) in cluster.keys().filter(|(kind, _)| *kind == Kind::Policy) {
        seen.push(format!("{key}: {:?}", index.policy_conditions(key)));
    }
    for namespace in NAMESPACES {
        for from in NAMESPACES {
            for service in ["s1", "s2"] {
                for port in [443, 8443] {
                    let route = Referrer::gateway_api("HTTPRoute", from);
                    let backend = BackendRef::service(route, namespace, service, port);
                    seen.push(resolution(index, &backend));
                }
            }
            seen.push(client_certificate(index, namespace, from));
        }
    }
    seen.push(format!("next change {:?}", index.next_ca_validity_change()));
    seen.push(format!("{} policies, {} objects", index.policy_count(), index.object_count()));
    seen
}

fn resolution(index: &Index, backend: &BackendRef) -> String {
    let resolution = index.resolve(backend);
    let outcome = match resolution.outcome() {
        Outcome::Policy(applied) => format!(
            "policy {} section {:?} usable {:?} sources {:?} anchors {:?}",
            applied.policy_key(),
            applied.section(),
            applied.usable(),
            applied.ca_sources(),
            applied.roots().map(|roots| &roots.roots),
        ),
        other => format!("{other:?}"),
    };
    format!("{backend}: {outcome}; {:?}", resolution.candidates())
}

/// The client certificate of a Gateway in `namespace` naming the Secret
/// `client` in `secret_namespace`.
fn client_certificate(index: &Index, namespace: &str, secret_namespace: &str) -> String {
    let certificate = index.client_certificate(&gateway(namespace, secret_namespace));
    // (A key's `Debug` hides it.)
    let certificate = certificate.as_ref().map(|c| c.as_ref().map(key_pair));
    format!("gateway {namespace} → Secret {secret_namespace}/client: {certificate:?}")
}

fn key_pair(certificate: &ClientCertificate) -> (&[CertificateDer<'static>], &[u8]) {
    (certificate.chain(), certificate.key().secret_der())
}

/// The configurations a [`TlsCache`] hands out for the usable backends
/// (with the client certificate of a Gateway in the first namespace), each
/// with what it is made of.
fn hand_out(
    index: &Index,
    cache: &TlsCache,
    provider: &Arc<CryptoProvider>,
) -> BTreeMap<String, (String, Arc<ClientConfig>)> {
    let certificate = index.client_certificate(&gateway(NAMESPACES[0], NAMESPACES[0]));
    let params = TlsParams { client_certificate: certificate.ok().flatten(), ..Default::default() };
    let mut configs = BTreeMap::new();
    for service in ["s1", "s2"] {
        for port in [443, 8443] {
            let route = Referrer::gateway_api("HTTPRoute", NAMESPACES[0]);
            let backend = BackendRef::service(route, NAMESPACES[0], service, port);
            let Outcome::Policy(applied) = index.resolve(&backend).outcome().clone() else {
                continue;
            };
            let Ok(policy) = applied.usable() else { continue };
            let made_of = format!(
                "{policy:?} {:?} {:?}",
                applied.roots().map(|roots| &roots.roots),
                params.client_certificate.as_ref().map(key_pair)
            );
            let tls = cache.client_config_with_provider(&applied, &params, provider.clone());
            configs.insert(backend.to_string(), (made_of, tls.unwrap().config));
        }
    }
    configs
}

fn gateway(namespace: &str, secret_namespace: &str) -> GatewayClientCertificate {
    GatewayClientCertificate {
        metadata: meta(namespace, "gw"),
        spec: GatewaySpec {
            tls: Some(GatewayTls {
                backend: Some(GatewayBackendTls {
                    client_certificate_ref: Some(SecretObjectReference {
                        name: "client".into(),
                        namespace: Some(secret_namespace.into()),
                        ..Default::default()
                    }),
                }),
            }),
        },
    }
}

fn afresh(cluster: &Cluster) -> Index {
    let mut index = Index::default();
    for object in cluster.values() {
        object.apply(&mut index);
    }
    index
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn changes_one_at_a_time_agree_with_building_afresh(
        changes in prop::collection::vec(change(), 1..50),
    ) {
        let mut index = Index::default();
        let mut cluster = Cluster::new();
        let cache = TlsCache::default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut handed = BTreeMap::new();
        for (step, change) in changes.iter().enumerate() {
            change.make(&mut index, &mut cluster);
            prop_assert_eq!(
                observe(&index, &cluster),
                observe(&afresh(&cluster), &cluster),
                "after step {}: {:?}", step, change
            );
            for (backend, now) in hand_out(&index, &cache, &provider) {
                let Some(was) = handed.insert(backend.clone(), now.clone()) else { continue };
                let same = Arc::ptr_eq(&now.1, &was.1);
                if now.0 != was.0 {
                    prop_assert!(!same, "{} kept its configuration after {:?}", backend, change);
                }
                if matches!(change, Change::Relist(_)) {
                    prop_assert!(same, "{} has a new configuration after {:?}", backend, change);
                }
            }
        }
    }
}
