//! Changes applied one at a time give the index that building it afresh
//! from the objects it was told of gives, in either order. The index
//! keeps a lot from one change to the next (validated policies, bundles
//! read once per text, merged trust anchors, parsed client certificates,
//! policies left alone when a CA object comes back unchanged); none of it
//! may show. Changes a watcher missed are made good by the kind's next
//! relist. As days pass, certificates expire or begin, and every bundle
//! the index holds must have the verdict reading its text that day gives,
//! once `track_ca_validity` has done its work. And the [`TlsCache`] fed
//! from the index never hands out one configuration for two sets of
//! inputs, while a relist that finds nothing new keeps every one.
//! Backends are Services and ServiceImports, which may share a name.
//!
//! It was checked by hand to catch each of these breakages:
//! `Index::replace` not deleting; a CA object always taken as unchanged; a
//! validated policy kept whatever its spec, or whatever its subject
//! alternative names and options; a client certificate kept when only its
//! key is unchanged; a ConfigMap delete not refreshing its policies; a
//! re-applied ReferenceGrant keeping its old rules; the cache ignoring a
//! change of trust anchors; merged anchors never kept;
//! `recheck_ca_validity` not refreshing the policies of what it read
//! again; the bundle pool keeping a bundle after one of its certificates
//! expired or began; a relist of ServiceImports not deleting; a
//! ServiceImport taken for the Service of the same name; a clock set back
//! not making `recheck_ca_validity` read bundles again, or not noticed.

use std::{collections::BTreeMap, hash::Hasher, sync::LazyLock, time::Duration};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret, Service, ServicePort, ServiceSpec},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use proptest::prelude::*;
use rustls::{
    ClientConfig, RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, pem::PemObject},
};

use super::*;
use crate::{
    api::v1::{
        LocalObjectReference, LocalPolicyTargetReferenceWithSectionName, ReferenceGrantFrom,
        ReferenceGrantTo, SecretObjectReference, SubjectAltName,
    },
    tls::{ClientCertificate, TlsCache, TlsError, TlsParams},
};

const NAMESPACES: [&str; 2] = ["a", "b"];

/// The domain whose `options` the indexes read.
const OPTIONS_DOMAIN: &str = "example.com";

const BACKEND_KINDS: [BackendKind; 2] = [BackendKind::Service, BackendKind::ServiceImport];

/// Two CAs, so that a bundle's content can change.
static CAS: LazyLock<[String; 2]> = LazyLock::new(|| {
    [0, 1].map(|i| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![format!("ca-{i}.example")]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    })
});

/// A CA that expires between the first and second tick of the clock, and
/// one that becomes valid before the first (see [`Change::Tick`]).
static DATED: LazyLock<[String; 2]> = LazyLock::new(|| {
    let now = time::OffsetDateTime::now_utc();
    let (hours, far) = (time::Duration::hours, time::Duration::days(3650));
    [tests::ca_valid(now - far, now + hours(36)), tests::ca_valid(now + hours(12), now + far)]
});

/// Two certificate/key pairs for `tls.crt` and `tls.key`.
static PAIRS: LazyLock<[(String, String); 2]> = LazyLock::new(|| {
    [0, 1].map(|i| {
        let pair = rcgen::generate_simple_self_signed(vec![format!("gw-{i}.example")]).unwrap();
        (pair.cert.pem(), pair.signing_key.serialize_pem())
    })
});

/// What `ca.crt` holds: mostly one CA or two, else nothing, or text that
/// is no bundle.
fn ca_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(Some(CAS[0].clone())),
        3 => Just(Some(CAS[1].clone())),
        2 => Just(Some(format!("{}{}", CAS[0], CAS[1]))),
        2 => Just(Some(DATED[0].clone())),
        2 => Just(Some(format!("{}{}", CAS[1], DATED[1]))),
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
    ServiceImport,
}

const KINDS: [Kind; 6] =
    [Kind::Policy, Kind::Grant, Kind::ConfigMap, Kind::Secret, Kind::Service, Kind::ServiceImport];

#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "test data, moved rarely")]
enum Object {
    Policy(v1::BackendTlsPolicy),
    Grant(v1::ReferenceGrant),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(Service),
    /// A `ServiceImport`, as the implementation reads its ports.
    ServiceImport(ObjectKey, Vec<BackendPort>),
}

impl Object {
    fn kind(&self) -> Kind {
        match self {
            Self::Policy(_) => Kind::Policy,
            Self::Grant(_) => Kind::Grant,
            Self::ConfigMap(_) => Kind::ConfigMap,
            Self::Secret(_) => Kind::Secret,
            Self::Service(_) => Kind::Service,
            Self::ServiceImport(..) => Kind::ServiceImport,
        }
    }

    fn key(&self) -> ObjectKey {
        let meta = match self {
            Self::Policy(o) => &o.metadata,
            Self::Grant(o) => &o.metadata,
            Self::ConfigMap(o) => &o.metadata,
            Self::Secret(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::ServiceImport(key, _) => return key.clone(),
        };
        ObjectKey::of(meta).unwrap()
    }

    fn policy(&self) -> Option<&v1::BackendTlsPolicy> {
        if let Self::Policy(o) = self { Some(o) } else { None }
    }

    fn grant(&self) -> Option<&v1::ReferenceGrant> {
        if let Self::Grant(o) = self { Some(o) } else { None }
    }

    fn config_map(&self) -> Option<&ConfigMap> {
        if let Self::ConfigMap(o) = self { Some(o) } else { None }
    }

    fn secret(&self) -> Option<&Secret> {
        if let Self::Secret(o) = self { Some(o) } else { None }
    }

    fn service(&self) -> Option<&Service> {
        if let Self::Service(o) = self { Some(o) } else { None }
    }

    fn service_import(&self) -> Option<(ObjectKey, Vec<BackendPort>)> {
        if let Self::ServiceImport(key, ports) = self {
            Some((key.clone(), ports.clone()))
        } else {
            None
        }
    }

    fn apply(&self, index: &mut Index, now: UnixTime) {
        match self {
            Self::Policy(o) => index.apply_at(o, now),
            Self::Grant(o) => index.apply_at(o, now),
            Self::ConfigMap(o) => index.apply_at(o, now),
            Self::Secret(o) => index.apply_at(o, now),
            Self::Service(o) => index.apply_at(o, now),
            Self::ServiceImport(key, ports) => index.apply_service_import(key, ports.clone()),
        }
    }
}

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant, reason = "test data, moved rarely")]
enum Change {
    Apply(Object),
    Delete(Kind, ObjectKey),
    /// A change the watcher did not see (it was disconnected): the cluster
    /// has it, the index not until the kind's next relist.
    Missed(Box<Self>),
    /// A watcher's relist of one kind ([`Index::replace`]).
    Relist(Kind),
    /// The implementation's CA set `example.com/corp` provided (holding the
    /// first CA), or withdrawn ([`Index::set_well_known_roots`]).
    CorpRoots(bool),
    /// The implementation reads `options` under `example.com`, or under no
    /// domain ([`Index::set_options_domain`]).
    OptionsDomain(bool),
    /// An edit of one field of a policy the cluster holds, as people edit.
    Edit(ObjectKey, Edit),
    /// A day passes. The index is told only when a CA certificate's
    /// validity changes, as `SharedIndex::track_ca_validity` tells it.
    Tick,
    /// The clock is set back a day; `track_ca_validity` notices.
    Rewind,
}

#[derive(Clone, Debug)]
enum Edit {
    Hostname(&'static str),
    SubjectAltNames(Option<Vec<SubjectAltName>>),
    Options(Option<BTreeMap<String, String>>),
}

impl Edit {
    fn apply_to(&self, policy: &mut v1::BackendTlsPolicy) {
        match self {
            Self::Hostname(hostname) => policy.spec.validation.hostname = (*hostname).into(),
            Self::SubjectAltNames(names) => {
                policy.spec.validation.subject_alt_names.clone_from(names)
            }
            Self::Options(options) => policy.spec.options.clone_from(options),
        }
    }
}

/// Objects by kind and key.
type Objects = BTreeMap<(Kind, ObjectKey), Object>;

/// What the cluster holds, what the index was told of it, what the
/// implementation provides, and when.
struct Cluster {
    objects: Objects,
    /// `objects` as the watchers delivered them: without the changes they
    /// missed, until their kind's next relist.
    told: Objects,
    corp_roots: Option<Arc<RootCertStore>>,
    /// What [`Index::set_options_domain`] was told last.
    options_domain: Option<&'static str>,
    /// The time, as [`Change::Tick`] moves it; objects are read at it.
    clock: UnixTime,
}

impl Default for Cluster {
    fn default() -> Self {
        let (objects, told) = Default::default();
        let options_domain = Some(OPTIONS_DOMAIN);
        Self { objects, told, corp_roots: None, options_domain, clock: UnixTime::now() }
    }
}

impl Cluster {
    /// The objects of one kind.
    fn of_kind(
        objects: &Objects,
        kind: Kind,
    ) -> impl Iterator<Item = (&(Kind, ObjectKey), &Object)> {
        objects.iter().filter(move |((k, _), _)| *k == kind)
    }

    /// Whether a relist of `kind` would find something the index missed.
    fn missed(&self, kind: Kind) -> bool {
        !Self::of_kind(&self.objects, kind).eq(Self::of_kind(&self.told, kind))
    }
}

/// A change of one object, as a watcher delivers it.
#[allow(clippy::large_enum_variant, reason = "test data, moved rarely")]
enum Event {
    Applied(Object),
    Deleted(Kind, ObjectKey),
}

impl Event {
    fn record(&self, objects: &mut Objects) {
        match self {
            Self::Applied(object) => {
                objects.insert((object.kind(), object.key()), object.clone());
            }
            Self::Deleted(kind, key) => {
                objects.remove(&(*kind, key.clone()));
            }
        }
    }

    fn deliver(&self, index: &mut Index, now: UnixTime) {
        match self {
            Self::Applied(object) => object.apply(index, now),
            Self::Deleted(kind, key) => match kind {
                Kind::Policy => index.delete::<v1::BackendTlsPolicy>(key),
                Kind::Grant => index.delete::<v1::ReferenceGrant>(key),
                Kind::ConfigMap => index.delete::<ConfigMap>(key),
                Kind::Secret => index.delete::<Secret>(key),
                Kind::Service => index.delete::<Service>(key),
                Kind::ServiceImport => index.delete_service_import(key),
            },
        }
    }
}

/// What `track_ca_validity` does after every change: when a certificate's
/// validity has changed by `now`, or the clock was set back, the CA objects
/// are checked again.
fn track_ca_validity(index: &mut Index, now: UnixTime) {
    if index.needs_ca_recheck(now) {
        index.recheck_ca_validity(now);
    }
}

fn corp() -> DomainPrefixedName {
    "example.com/corp".parse().unwrap()
}

impl Change {
    /// The event this change is to the objects, if it changes one.
    fn event(&self, objects: &Objects) -> Option<Event> {
        match self {
            Self::Apply(object) => Some(Event::Applied(object.clone())),
            Self::Delete(kind, key) => objects
                .contains_key(&(*kind, key.clone()))
                .then(|| Event::Deleted(*kind, key.clone())),
            Self::Edit(key, edit) => {
                let Some(Object::Policy(policy)) = objects.get(&(Kind::Policy, key.clone())) else {
                    return None;
                };
                let mut policy = policy.clone();
                edit.apply_to(&mut policy);
                Some(Event::Applied(Object::Policy(policy)))
            }
            _ => None,
        }
    }

    fn happen(&self, index: &mut Index, cluster: &mut Cluster) {
        match self {
            Self::Apply(_) | Self::Delete(..) | Self::Edit(..) => {
                if let Some(event) = self.event(&cluster.objects) {
                    event.record(&mut cluster.objects);
                    event.record(&mut cluster.told);
                    event.deliver(index, cluster.clock);
                }
            }
            // The cluster changes; the index is not told.
            Self::Missed(change) => {
                if let Some(event) = change.event(&cluster.objects) {
                    event.record(&mut cluster.objects);
                }
            }
            Self::Relist(kind) => {
                let relisted: Objects = Cluster::of_kind(&cluster.objects, *kind)
                    .map(|(key, object)| (key.clone(), object.clone()))
                    .collect();
                cluster.told.retain(|(k, _), _| k != kind);
                cluster.told.extend(relisted.clone());
                let objects = relisted.values();
                let now = cluster.clock;
                match kind {
                    Kind::Policy => {
                        index.replace_at(objects.filter_map(Object::policy).cloned(), now)
                    }
                    Kind::Grant => {
                        index.replace_at(objects.filter_map(Object::grant).cloned(), now)
                    }
                    Kind::ConfigMap => {
                        index.replace_at(objects.filter_map(Object::config_map).cloned(), now)
                    }
                    Kind::Secret => {
                        index.replace_at(objects.filter_map(Object::secret).cloned(), now)
                    }
                    Kind::Service => {
                        index.replace_at(objects.filter_map(Object::service).cloned(), now)
                    }
                    Kind::ServiceImport => {
                        index.replace_service_imports(objects.filter_map(Object::service_import))
                    }
                }
            }
            Self::CorpRoots(provided) => {
                // A new `Arc` each time, as an implementation reloading its
                // set would give.
                let roots = provided.then(|| {
                    let der = CertificateDer::from_pem_slice(CAS[0].as_bytes()).unwrap();
                    let mut roots = RootCertStore::empty();
                    roots.add(der).unwrap();
                    Arc::new(roots)
                });
                index.set_well_known_roots(corp(), roots.clone());
                cluster.corp_roots = roots;
            }
            Self::OptionsDomain(read) => {
                let domain = read.then_some(OPTIONS_DOMAIN);
                index.set_options_domain(domain).unwrap();
                cluster.options_domain = domain;
            }
            Self::Tick => {
                let tomorrow = cluster.clock.as_secs() + 24 * 3600;
                cluster.clock = UnixTime::since_unix_epoch(Duration::from_secs(tomorrow));
            }
            Self::Rewind => {
                let yesterday = cluster.clock.as_secs() - 24 * 3600;
                cluster.clock = UnixTime::since_unix_epoch(Duration::from_secs(yesterday));
            }
        }
        track_ca_validity(index, cluster.clock);
    }
}

/// Mostly the first namespace, so that objects meet often; the second
/// is for references across namespaces.
fn namespace() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(NAMESPACES[0]), 1 => Just(NAMESPACES[1])]
}

/// The namespace, name and ports of a backend: https/443, and maybe
/// alt/8443, TCP, UDP or SCTP, or 8443 as both.
fn backend() -> impl Strategy<Value = (ObjectKey, Vec<BackendPort>)> {
    (namespace(), prop::sample::select(&["s1", "s2"][..]), 0..6u8).prop_map(|(ns, name, ports)| {
        let port =
            |name: &str, port, protocol| BackendPort { name: Some(name.into()), port, protocol };
        let (tcp, udp, sctp) = (PortProtocol::Tcp, PortProtocol::Udp, PortProtocol::Sctp);
        let ports = match ports {
            0 => vec![port("https", 443, tcp)],
            1 => vec![port("https", 443, tcp), port("alt", 8443, tcp)],
            2 => vec![port("https", 443, tcp), port("alt", 8443, udp)],
            3 => vec![port("alt", 8443, udp), port("https", 8443, tcp)],
            4 => vec![port("alt", 8443, sctp), port("https", 8443, tcp)],
            _ => vec![port("alt", 8443, tcp)],
        };
        (ObjectKey::new(ns, name), ports)
    })
}

fn service() -> impl Strategy<Value = Object> {
    backend().prop_map(|(key, ports)| {
        let ports = ports.into_iter().map(|port| ServicePort {
            name: port.name,
            port: port.port,
            protocol: (!port.protocol.is_tcp()).then(|| port.protocol.to_string()),
            ..Default::default()
        });
        Object::Service(Service {
            metadata: meta(&key.namespace, &key.name),
            spec: Some(ServiceSpec { ports: Some(ports.collect()), ..Default::default() }),
            ..Default::default()
        })
    })
}

/// A `ServiceImport` may share its namespace and name with a Service: they
/// are different backends.
fn service_import() -> impl Strategy<Value = Object> {
    backend().prop_map(|(key, ports)| Object::ServiceImport(key, ports))
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
    // `tls.crt` and `tls.key` each from either pair, or absent: a key that
    // stays while its certificate changes must be read again.
    let pair_part = || prop::option::weighted(0.8, 0..2usize);
    let name = prop::sample::select(&["ca1", "client"][..]);
    (namespace(), name, ca_text(), pair_part(), pair_part(), any::<bool>()).prop_map(
        |(ns, name, ca, crt, key, as_strings)| {
            let mut secret = Secret { metadata: meta(ns, name), ..Default::default() };
            let mut data = BTreeMap::new();
            if let Some(ca) = ca {
                data.insert(CA_CERT_KEY.to_owned(), ByteString(ca.into()));
            }
            let crt = crt.map(|i| PAIRS[i].0.clone());
            let key = key.map(|i| PAIRS[i].1.clone());
            let pair = [("tls.crt", crt), ("tls.key", key)].into_iter();
            let pair = pair.filter_map(|(k, v)| Some((k.to_owned(), v?)));
            if as_strings {
                secret.string_data = Some(pair.collect());
            } else {
                data.extend(pair.map(|(k, v)| (k, ByteString(v.into_bytes()))));
            }
            secret.data = Some(data);
            Object::Secret(secret)
        },
    )
}

fn hostname() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("abc.example.com"),
        4 => Just("other.example.com"),
        1 => Just("Not A Host"),
    ]
}

/// Mostly none; the configuration is made of them too.
fn subject_alt_names() -> impl Strategy<Value = Option<Vec<SubjectAltName>>> {
    let san = |type_: &str, hostname: Option<&str>, uri: Option<&str>| {
        Some(vec![SubjectAltName {
            type_: type_.into(),
            hostname: hostname.map(Into::into),
            uri: uri.map(Into::into),
        }])
    };
    prop_oneof![
        3 => Just(None),
        1 => Just(san(SubjectAltName::HOSTNAME, Some("*.example.com"), None)),
        1 => Just(san(SubjectAltName::URI, None, Some("spiffe://example.com/ns/a/sa/b"))),
    ]
}

/// Mostly none; else one of ours (`example.com`), good or bad, or another
/// domain's.
fn options() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    prop_oneof![
        6 => Just(None),
        2 => Just(Some(("example.com/min-tls-version", "1.3"))),
        2 => Just(Some(("example.com/alpn-protocols", "h2"))),
        1 => Just(Some(("example.com/min-tls-version", "1.4"))),
        1 => Just(Some(("example.com/cipher-suites", "TLS13_NOPE"))),
        2 => Just(Some(("other.example.org/anything", "x"))),
    ]
    .prop_map(|option| option.map(|(key, value)| [(key.to_owned(), value.to_owned())].into()))
}

fn policy() -> BoxedStrategy<Object> {
    let target = (
        prop_oneof![3 => Just(BackendKind::Service), 1 => Just(BackendKind::ServiceImport)],
        prop::sample::select(&["s1", "s2"][..]),
        prop::sample::select(&[None, Some("https"), Some("alt"), Some("nope")][..]),
    )
        .prop_map(|(kind, name, section)| LocalPolicyTargetReferenceWithSectionName {
            group: kind.group().into(),
            kind: kind.kind().into(),
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
        // Mostly CA references (several, to merge anchors), else a
        // well-known set (System, or the implementation's), rarely both
        // (invalid).
        prop_oneof![
            6 => prop::collection::vec(ca_ref.clone(), 1..4).prop_map(|refs| (refs, None)),
            1 => Just((Vec::new(), Some("System"))),
            2 => Just((Vec::new(), Some("example.com/corp"))),
            1 => (prop::collection::vec(ca_ref, 0..2), Just(Some("System"))),
        ],
        hostname(),
        subject_alt_names(),
        options(),
        (0..2i64, 1..3i64),
    )
        .prop_map(
            |(
                ns,
                name,
                targets,
                (refs, well_known),
                hostname,
                san,
                options,
                (created, generation),
            )| {
                let mut policy = v1::BackendTlsPolicy::new(
                    name,
                    v1::BackendTlsPolicySpec {
                        target_refs: targets,
                        validation: v1::BackendTlsPolicyValidation {
                            ca_certificate_refs: (!refs.is_empty()).then_some(refs),
                            well_known_ca_certificates: well_known.map(Into::into),
                            hostname: hostname.into(),
                            subject_alt_names: san,
                        },
                        options,
                    },
                );
                policy.metadata.namespace = Some(ns.into());
                policy.metadata.creation_timestamp =
                    Some(Time(Timestamp::from_second(1_800_000_000 + created).unwrap()));
                policy.metadata.generation = Some(generation);
                Object::Policy(policy)
            },
        )
        // (Boxed: unboxed, the strategy's value tree overflows the test
        // thread's stack in debug builds.)
        .boxed()
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
    let object =
        prop_oneof![service(), service_import(), config_map(), secret(), policy(), grant()];
    // Deleting is named by an object of the kind, for its key.
    let edit = prop_oneof![
        hostname().prop_map(Edit::Hostname),
        subject_alt_names().prop_map(Edit::SubjectAltNames),
        options().prop_map(Edit::Options),
    ];
    let policy_key = (namespace(), prop::sample::select(&["p1", "p2", "p3"][..]))
        .prop_map(|(namespace, name)| ObjectKey::new(namespace, name));
    let seen = prop_oneof![
        3 => object.clone().prop_map(Change::Apply),
        1 => object.prop_map(|o| Change::Delete(o.kind(), o.key())),
        1 => (policy_key, edit).prop_map(|(key, edit)| Change::Edit(key, edit)),
    ];
    prop_oneof![
        8 => seen.clone(),
        1 => seen.prop_map(|change| Change::Missed(Box::new(change))),
        2 => prop::sample::select(&KINDS[..]).prop_map(Change::Relist),
        1 => any::<bool>().prop_map(Change::CorpRoots),
        1 => any::<bool>().prop_map(Change::OptionsDomain),
        2 => Just(Change::Tick),
        1 => Just(Change::Rewind),
    ]
}

/// Everything a caller can see of an index, one line per thing asked.
fn observe(index: &Index) -> Vec<String> {
    let mut seen = vec![format!("policies {:?}", index.policy_keys())];
    for namespace in NAMESPACES {
        for name in ["p1", "p2", "p3"] {
            let key = ObjectKey::new(namespace, name);
            seen.push(format!("{key}: {:?}", index.policy_conditions(&key)));
        }
        for from in NAMESPACES {
            for service in ["s1", "s2"] {
                for (kind, port) in BACKEND_KINDS.into_iter().flat_map(|k| [(k, 443), (k, 8443)]) {
                    let route = Referrer::gateway_api("HTTPRoute", from);
                    let backend =
                        BackendRef { kind, ..BackendRef::service(route, namespace, service, port) };
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

/// A short stand-in for many bytes (System's roots are over a hundred
/// anchors).
fn digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for part in parts {
        hasher.write(part);
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

fn anchors(roots: &RootCertStore) -> String {
    let parts = roots.roots.iter().flat_map(|anchor| {
        let constraints = anchor.name_constraints.as_ref().map_or(&[][..], |c| c.as_ref());
        [anchor.subject.as_ref(), anchor.subject_public_key_info.as_ref(), constraints]
    });
    format!("{} anchors {:x}", roots.roots.len(), digest(parts))
}

fn resolution(index: &Index, backend: &BackendRef) -> String {
    let resolution = index.resolve(backend);
    let outcome = match resolution.outcome() {
        Outcome::Policy(applied) => format!(
            "policy {} section {:?} usable {:?} sources {:?} {:?}",
            applied.policy_key(),
            applied.section(),
            applied.usable(),
            applied
                .ca_sources()
                .iter()
                .map(|source| {
                    let certificates = source.certificates.iter().map(|c| c.der().as_ref());
                    (source.index, digest([&*source.pem]), digest(certificates))
                })
                .collect::<Vec<_>>(),
            applied.roots().map(|roots| anchors(roots)),
        ),
        other => format!("{other:?}"),
    };
    format!("{backend}: {outcome}; {:?}", resolution.candidates())
}

/// The client certificate of a Gateway in `namespace` naming the Secret
/// `client` in `secret_namespace`.
fn client_certificate(index: &Index, namespace: &str, secret_namespace: &str) -> String {
    let certificate =
        index.client_certificate_from_ref(namespace, &client_secret(secret_namespace));
    // (A key's `Debug` hides it.)
    let certificate = certificate.as_ref().map(key_pair);
    format!("gateway {namespace} → Secret {secret_namespace}/client: {certificate:?}")
}

fn key_pair(certificate: &ClientCertificate) -> (&[CertificateDer<'static>], &[u8]) {
    (certificate.chain(), certificate.key().secret_der())
}

/// A configuration a [`TlsCache`] handed out, and what it is made of.
#[derive(Clone)]
struct Handed {
    made_of: String,
    config: Arc<ClientConfig>,
}

/// The configurations a [`TlsCache`] hands out for the usable backends of
/// the first namespace (with the client certificate of a Gateway there).
fn hand_out(
    index: &Index,
    cache: &TlsCache,
    provider: &Arc<CryptoProvider>,
) -> BTreeMap<String, Handed> {
    let certificate =
        index.client_certificate_from_ref(NAMESPACES[0], &client_secret(NAMESPACES[0]));
    let params = TlsParams { client_certificate: certificate.map(Some), ..Default::default() };
    let mut configs = BTreeMap::new();
    for kind in BACKEND_KINDS {
        for (service, port) in [("s1", 443), ("s1", 8443), ("s2", 443), ("s2", 8443)] {
            let route = Referrer::gateway_api("HTTPRoute", NAMESPACES[0]);
            let backend =
                BackendRef { kind, ..BackendRef::service(route, NAMESPACES[0], service, port) };
            let Outcome::Policy(applied) = index.resolve(&backend).into_outcome() else {
                continue;
            };
            let Ok(policy) = applied.usable() else { continue };
            let made_of = format!(
                "{policy:?} {:?} {:?} {:?}",
                applied.options_domain(),
                applied.roots().map(|roots| anchors(roots)),
                params.client_certificate.as_ref().map(|c| c.as_ref().map(key_pair))
            );
            let tls = cache.client_config_with_provider(&applied, &params, provider.clone());
            // An unusable client certificate fails every configuration;
            // without a provider to check a client key with, a key that
            // does not fit is refused only here.
            let Ok(tls) = tls.map_err(|e| match e {
                TlsError::ClientCertificate(_) => assert!(params.client_certificate.is_err()),
                e => assert!(crate::tls::check_provider().is_none(), "{e}"),
            }) else {
                continue;
            };
            configs.insert(backend.to_string(), Handed { made_of, config: tls.config });
        }
    }
    configs
}

/// A Gateway's reference to the Secret `client` in `namespace`.
fn client_secret(namespace: &str) -> SecretObjectReference {
    SecretObjectReference {
        name: "client".into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

/// Checks that every CA bundle the index holds has the verdict reading its
/// text at `now` gives: reuse across objects and times never keeps one
/// that time has changed.
fn check_bundles(index: &Index, now: UnixTime) -> Result<(), TestCaseError> {
    let ders = |certificates: &[Arc<CaCertificate>]| {
        certificates.iter().map(|c| c.der().clone()).collect::<Vec<_>>()
    };
    for data in index.ca_data() {
        let CaData::Present(bundle) = data else { continue };
        let held = bundle.verdict.as_ref().map(|b| ders(&b.certificates));
        let afresh = crate::tls::ca::parse_bundle(&bundle.pem, now);
        prop_assert_eq!(held, afresh.as_ref().map(|c| ders(c)));
    }
    Ok(())
}

/// The index built afresh from `objects`, with what they name before
/// policies (so that building it does not need the updates a policy gets
/// when what it names changes), or, `policies_first`, after.
fn afresh(cluster: &Cluster, objects: &Objects, policies_first: bool) -> Index {
    let mut index = Index::default();
    index.set_options_domain(cluster.options_domain).unwrap();
    index.set_well_known_roots(corp(), cluster.corp_roots.clone());
    // `Kind` order puts policies first.
    let mut objects: Vec<&Object> = objects.values().collect();
    if !policies_first {
        objects.reverse();
    }
    for object in objects {
        object.apply(&mut index, cluster.clock);
    }
    index
}

proptest! {
    // Many kinds of change share the sequences: more cases than the
    // default, so that each kind meets the others often enough.
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn changes_one_at_a_time_agree_with_building_afresh(
        changes in prop::collection::vec(change(), 1..50),
    ) {
        let mut index = Index::default();
        index.set_options_domain(Some(OPTIONS_DOMAIN)).unwrap();
        let mut cluster = Cluster::default();
        let cache = TlsCache::default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Every configuration handed out, kept so that no address is reused.
        let mut handed: Vec<Handed> = Vec::new();
        let mut last: BTreeMap<String, Handed> = BTreeMap::new();
        for (step, change) in changes.iter().enumerate() {
            let reconciles = matches!(change, Change::Relist(kind) if cluster.missed(*kind));
            change.happen(&mut index, &mut cluster);
            check_bundles(&index, cluster.clock)?;
            // The index is what it was told, built afresh in either order.
            let ours = observe(&index);
            for policies_first in [false, true] {
                let theirs = observe(&afresh(&cluster, &cluster.told, policies_first));
                if let Some((ours, theirs)) = ours.iter().zip(&theirs).find(|(a, b)| a != b) {
                    prop_assert!(false, "after step {} ({:?}):\n{}\nafresh (policies first: {}):\n{}", step, change, ours, policies_first, theirs);
                }
            }
            for (backend, now) in hand_out(&index, &cache, &provider) {
                // One configuration is never made of two things.
                let twin = handed.iter().find(|h| Arc::ptr_eq(&h.config, &now.config));
                if let Some(twin) = twin {
                    prop_assert_eq!(&twin.made_of, &now.made_of, "{} after {:?}", backend, change);
                }
                handed.push(now.clone());
                // A relist that finds nothing new keeps every one.
                if let (Change::Relist(_), false, Some(was)) = (change, reconciles, last.get(&backend)) {
                    prop_assert!(Arc::ptr_eq(&now.config, &was.config), "{} has a new configuration after {:?}", backend, change);
                }
                last.insert(backend, now);
            }
        }
    }
}
