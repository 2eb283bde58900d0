//! The in-memory index of the objects that decide backend TLS, and
//! [`Index::resolve`], which answers "which policy applies to this backend,
//! and can it be used?".
//!
//! Pure data: no I/O, no async. Feed it objects with [`Index::apply`] and
//! [`Index::delete`] (from a kube reflector, a manifests folder or a test);
//! every lookup on the resolve path is a hash lookup, so resolving one backend
//! costs the same in a cluster of ten policies as in one of ten thousand.
//!
//! # Which policy applies
//!
//! For a backend (Service and port), the policies targeting that Service's
//! port by name (`sectionName`) come first; only when there are none do the
//! policies targeting the whole Service apply. Among equally specific
//! policies the oldest `creationTimestamp` wins (an object without one counts
//! as newest), then the first `{namespace}/{name}` in alphabetical order.
//! Every other policy for the same target and section loses and is reported
//! `Conflicted`. A whole-Service policy is never in conflict with a
//! port-specific one: it keeps serving the Service's other ports.
//!
//! A policy attaches through its `targetRefs` as written, even when the
//! policy is invalid: an invalid policy that wins makes its backends fail
//! (the caller answers 5xx), never fall back to plaintext.
//!
//! # Target kinds
//!
//! `Service` (core group) is the kind Gateway API defines. `ServiceImport`
//! (`multicluster.x-k8s.io`) is supported as an implementation-specific
//! extension, fed with [`Index::apply_service_import`]. Other kinds make the
//! policy `Accepted=False/Invalid` here, unless it is in effect on another
//! of its targets (then its `Accepted` message says which it skips).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::Arc,
};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret, Service},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};

use rustls::pki_types::UnixTime;

use crate::{
    api::{v1, v1beta1},
    grant::{Grants, Permission, Referent, Referrer},
    name::{DomainPrefixedName, NameError},
    policy::{CaCertificateRef, TrustAnchors, ValidatedPolicy, ValidationErrors, WellKnownCa},
    status::RefProblem,
    tls::{
        ClientCertificate, KeyPairError, SecretKeyPair,
        ca::{BundlePool, CaCertificate, ReadBundle},
    },
};

mod conditions;
#[cfg(test)]
mod replay_tests;
mod resolve;
#[cfg(test)]
mod tests;

pub use resolve::{
    AppliedPolicy, BackendRef, Candidate, Outcome, PolicyProblem, Resolution, Verdict,
};

/// The key of a CA bundle in a ConfigMap or Secret.
pub const CA_CERT_KEY: &str = "ca.crt";

/// A namespaced object's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }

    /// The key of an object, if it has both a namespace and a name.
    pub fn of(meta: &ObjectMeta) -> Option<Self> {
        Some(Self::new(meta.namespace.clone()?, meta.name.clone()?))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The kinds of backend a policy can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BackendKind {
    /// A core `Service`.
    Service,
    /// A `multicluster.x-k8s.io` `ServiceImport` (implementation-specific).
    ServiceImport,
}

impl BackendKind {
    /// The kind's API group.
    pub fn group(self) -> &'static str {
        match self {
            Self::Service => "",
            Self::ServiceImport => "multicluster.x-k8s.io",
        }
    }

    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::ServiceImport => "ServiceImport",
        }
    }

    /// The kind a reference's group and kind name (a Route's `backendRef`
    /// after the API server's defaults: group `""`, kind `Service`), if it
    /// is one the index holds.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        [Self::Service, Self::ServiceImport]
            .into_iter()
            .find(|k| k.group() == group && k.kind() == kind)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// One port of a backend. Build one with [`BackendPort::new`] (more
/// fields may come, such as the port's `appProtocol`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendPort {
    /// The port's name; `sectionName` refers to it.
    pub name: Option<String>,
    /// The port number routes refer to.
    pub port: i32,
    /// The port's protocol: TLS policies apply to TCP ports only.
    pub protocol: PortProtocol,
}

/// The protocol of a backend port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortProtocol {
    /// TCP, the default: what TLS runs over.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// A protocol Kubernetes does not allow (from a file, say).
    Other,
}

impl PortProtocol {
    /// A Service port's `protocol`, TCP when unset.
    pub fn of_service_port(protocol: Option<&str>) -> Self {
        match protocol {
            None | Some("TCP") => Self::Tcp,
            Some("UDP") => Self::Udp,
            Some("SCTP") => Self::Sctp,
            Some(_) => Self::Other,
        }
    }

    /// Whether TLS (and so a BackendTLSPolicy) can apply to the port.
    pub fn is_tcp(self) -> bool {
        self == Self::Tcp
    }

    /// Whether a whole-Service policy passes the port over: UDP and SCTP.
    /// A protocol Kubernetes does not know is not passed over: the policy
    /// applies there and fails closed.
    pub(crate) fn passed_over(self) -> bool {
        matches!(self, Self::Udp | Self::Sctp)
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
            Self::Other => "not TCP",
        })
    }
}

impl BackendPort {
    /// A port: its name (which `sectionName` refers to), number and
    /// protocol.
    pub fn new(name: Option<String>, port: i32, protocol: PortProtocol) -> Self {
        Self { name, port, protocol }
    }

    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{} ({name})", self.port),
            None => self.port.to_string(),
        }
    }
}

/// The hash map of the index. Keys are names from the cluster, which
/// tenants choose, so the hasher is randomly seeded (foldhash's quality
/// variant: much faster than std's SipHash on short strings, and not open to
/// precomputed collisions).
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

type Set<T> = std::collections::HashSet<T, foldhash::quality::RandomState>;

/// Maps of maps so that lookups borrow `&str` keys instead of building an
/// owned key.
#[derive(Clone, Debug)]
struct Namespaced<V>(Map<String, Map<String, V>>);

impl<V> Default for Namespaced<V> {
    fn default() -> Self {
        Self(Map::default())
    }
}

impl<V> Namespaced<V> {
    fn get(&self, namespace: &str, name: &str) -> Option<&V> {
        self.0.get(namespace)?.get(name)
    }

    fn insert(&mut self, key: &ObjectKey, value: V) -> Option<V> {
        self.0.entry(key.namespace.clone()).or_default().insert(key.name.clone(), value)
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<V> {
        let names = self.0.get_mut(&key.namespace)?;
        let removed = names.remove(&key.name);
        if names.is_empty() {
            self.0.remove(&key.namespace);
        }
        removed
    }

    fn len(&self) -> usize {
        self.0.values().map(Map::len).sum()
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.0.values().flat_map(Map::values)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &str, &mut V)> {
        self.0.iter_mut().flat_map(|(namespace, names)| {
            names.iter_mut().map(move |(name, value)| (namespace.as_str(), name.as_str(), value))
        })
    }

    fn keys(&self) -> impl Iterator<Item = ObjectKey> + '_ {
        self.0.iter().flat_map(|(ns, names)| names.keys().map(move |name| ObjectKey::new(ns, name)))
    }
}

impl<V: Default> Namespaced<V> {
    /// The value at `namespace/name`, inserted empty if absent.
    fn entry(&mut self, namespace: &str, name: &str) -> &mut V {
        let names = match self.0.get_mut(namespace) {
            Some(_) => self.0.get_mut(namespace).unwrap(),
            None => self.0.entry(namespace.to_owned()).or_default(),
        };
        if !names.contains_key(name) {
            names.insert(name.to_owned(), V::default());
        }
        names.get_mut(name).expect("inserted above")
    }

    /// Changes the value at `namespace/name` and drops it once `empty`.
    fn update(
        &mut self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut V),
        empty: impl Fn(&V) -> bool,
    ) {
        change(self.entry(namespace, name));
        if empty(self.entry(namespace, name)) {
            self.remove(&ObjectKey::new(namespace, name));
        }
    }
}

/// Policies ranked best first.
type Ranked = BTreeMap<Rank, Arc<PolicyEntry>>;

/// A backend (Service or ServiceImport) and the policies attached to it, so
/// that one lookup answers both.
#[derive(Clone, Debug, Default)]
struct Target {
    /// The backend's ports; `None` while the backend object is absent.
    ports: Option<Vec<BackendPort>>,
    /// Policies naming the whole backend.
    whole: Ranked,
    /// Policies naming one port, by port name.
    sections: Map<Arc<str>, Ranked>,
}

impl Target {
    fn ranked_mut(&mut self, attach: &AttachKey) -> &mut Ranked {
        match &attach.section {
            None => &mut self.whole,
            Some(section) => self.sections.entry(Arc::from(section.as_str())).or_default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.ports.is_none() && self.whole.is_empty() && self.sections.is_empty()
    }

    fn ranked(&self, section: Option<&str>) -> Option<(&Ranked, Option<&Arc<str>>)> {
        match section {
            None => Some((&self.whole, None)),
            Some(section) => {
                self.sections.get_key_value(section).map(|(name, ranked)| (ranked, Some(name)))
            }
        }
    }
}

/// Where a policy attaches: a backend and, optionally, one of its ports by
/// name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AttachKey {
    kind: BackendKind,
    namespace: String,
    name: String,
    section: Option<String>,
}

/// Conflict order: older first (no timestamp counts as newest), then
/// `{namespace}/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    undated: bool,
    created: Option<Time>,
    key: Arc<ObjectKey>,
}

/// What the index derives from a policy object alone.
#[derive(Debug)]
pub(crate) struct PolicyState {
    key: Arc<ObjectKey>,
    policy: v1::BackendTlsPolicy,
    /// Shared with the policy's previous version when the spec is the same
    /// (a status write changes only the object's version), so that the
    /// configurations built from it stay cached.
    validated: Result<Arc<ValidatedPolicy>, ValidationErrors>,
    rank: Rank,
    attachments: Vec<(usize, AttachKey)>,
    unsupported_targets: Vec<usize>,
}

/// A policy as the index holds it: its own state, shared between versions
/// that differ only in the CA objects, and what those objects make of it.
/// Every change to either gives a new `Arc<PolicyEntry>`;
/// [`TlsCache`](crate::tls::TlsCache) keys on the parts TLS is built from,
/// the validated policy and the trust anchors, which are kept from one
/// entry to the next while they stay the same.
#[derive(Debug)]
pub(crate) struct PolicyEntry {
    state: Arc<PolicyState>,
    /// What keeps the policy from being used, given the CA objects.
    problems: Vec<PolicyProblem>,
    /// The CA data of the references that resolve.
    ca_sources: Arc<[CaSource]>,
    /// The trust anchors, when the policy has no problems, and when they
    /// were made ([`Index`]'s `roots_made`).
    roots: Option<(Arc<rustls::RootCertStore>, u64)>,
    /// The domain whose `options` apply ([`Index::set_options_domain`]).
    options_domain: Option<Arc<str>>,
}

impl std::ops::Deref for PolicyEntry {
    type Target = PolicyState;

    fn deref(&self) -> &PolicyState {
        &self.state
    }
}

/// CA material found in a ConfigMap or Secret under [`CA_CERT_KEY`],
/// read once when the object is applied.
#[derive(Clone, Debug)]
enum CaData {
    /// The key is there with this (non-empty) content.
    Present(Arc<ReadBundle>),
    /// The object has no such key.
    Missing,
    /// The key is there but empty.
    Empty,
}

impl CaData {
    /// The data of `ca.crt` as it stands at `now`.
    fn read(bytes: Option<&[u8]>, pool: &mut BundlePool, now: UnixTime) -> Self {
        match bytes {
            None => Self::Missing,
            Some(b) if b.iter().all(u8::is_ascii_whitespace) => Self::Empty,
            Some(pem) => Self::Present(pool.read(pem, now)),
        }
    }

    fn recheck_at(&self) -> Option<UnixTime> {
        match self {
            Self::Present(bundle) => bundle.recheck_at,
            Self::Missing | Self::Empty => None,
        }
    }

    /// Whether this is what `old` was, so that nothing naming the object
    /// needs to change (a relist applies every object again).
    fn is_unchanged_from(&self, old: Option<&Self>) -> bool {
        match (old, self) {
            (Some(Self::Present(old)), Self::Present(new)) => Arc::ptr_eq(old, new),
            (Some(Self::Missing), Self::Missing) | (Some(Self::Empty), Self::Empty) => true,
            _ => false,
        }
    }
}

/// What the index keeps of a Secret: its CA bundle and its key pair.
#[derive(Clone, Debug)]
struct SecretData {
    ca: CaData,
    key_pair: Arc<SecretKeyPair>,
}

/// The objects that decide backend TLS in a cluster, indexed for
/// [`Index::resolve`].
///
/// # Examples
///
/// ```
/// use backend_tls_policy::{
///     api::v1::BackendTlsPolicy,
///     grant::Referrer,
///     index::{BackendRef, Index, Outcome},
/// };
/// use k8s_openapi::api::core::v1::{ConfigMap, Service};
/// use serde_json::json;
///
/// // A PEM CA bundle, as a ConfigMap's `ca.crt` holds it.
/// const CA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki/ca.crt"));
/// let mut index = Index::default();
/// index.apply(&serde_json::from_value::<Service>(json!({
///     "metadata": {"namespace": "shop", "name": "shop"},
///     "spec": {"ports": [{"name": "https", "port": 443}]},
/// }))?);
/// index.apply(&serde_json::from_value::<ConfigMap>(json!({
///     "metadata": {"namespace": "shop", "name": "shop-ca"},
///     "data": {"ca.crt": CA},
/// }))?);
/// index.apply(&serde_json::from_value::<BackendTlsPolicy>(json!({
///     "metadata": {"namespace": "shop", "name": "shop-tls"},
///     "spec": {
///         "targetRefs": [{"group": "", "kind": "Service", "name": "shop"}],
///         "validation": {
///             "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "shop-ca"}],
///             "hostname": "shop.example.com",
///         },
///     },
/// }))?);
///
/// let route = Referrer::gateway_api("HTTPRoute", "shop");
/// let resolution = index.resolve(&BackendRef::service(route, "shop", "shop", 443));
/// let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution:?}") };
/// assert_eq!(applied.policy_key().name, "shop-tls");
/// assert!(applied.usable().is_ok());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Index {
    policies: Namespaced<Arc<PolicyEntry>>,
    /// Backends and their policies: Services, then ServiceImports.
    targets: [Namespaced<Target>; 2],
    config_maps: Namespaced<CaData>,
    secrets: Namespaced<SecretData>,
    /// The policies naming each CA object name, whatever its kind.
    ca_dependents: Namespaced<Set<Arc<ObjectKey>>>,
    /// The CA bundles of `config_maps` and `secrets`, and their
    /// certificates, by content.
    ca_bundles: BundlePool,
    /// The implementation's own `wellKnownCACertificates` sets.
    well_known_roots: Map<DomainPrefixedName, Arc<rustls::RootCertStore>>,
    /// The domain under which the implementation reads `options`.
    options_domain: Option<Arc<str>>,
    grants: Grants,
    /// How many trust anchor sets were made: the newest has the highest
    /// number, so that a cache can tell a policy's former anchors.
    roots_made: u64,
}

mod sealed {
    pub trait Sealed {}
}

/// The kinds an [`Index`] holds: `BackendTLSPolicy` (v1 and v1alpha3),
/// `ReferenceGrant` (v1 and v1beta1), `Service`, `ConfigMap` and `Secret`.
pub trait Indexed: sealed::Sealed + kube::Resource {
    /// The kind and, where the index takes two, its version, for logs.
    #[doc(hidden)]
    const NAME: &'static str;
    /// Where the index keeps it: versions of one kind share one store.
    #[doc(hidden)]
    const STORE: &'static str = Self::NAME;
    /// Reads what the object holds as of `now` (CA certificates'
    /// validity).
    #[doc(hidden)]
    fn apply_to(&self, index: &mut Index, now: UnixTime);
    #[doc(hidden)]
    fn delete_from(key: &ObjectKey, index: &mut Index);
    #[doc(hidden)]
    fn keys_in(index: &Index) -> Vec<ObjectKey>;
    #[doc(hidden)]
    fn key(&self) -> Option<ObjectKey> {
        ObjectKey::of(self.meta())
    }
}

impl Index {
    /// Adds an object, or replaces the one with its namespace and name.
    /// Objects without a namespace or name are ignored.
    pub fn apply<K: Indexed>(&mut self, object: &K) {
        self.apply_at(object, UnixTime::now());
    }

    /// [`Index::apply`] as of `now` (tests move the clock).
    fn apply_at<K: Indexed>(&mut self, object: &K, now: UnixTime) {
        object.apply_to(self, now);
    }

    /// Removes the object of kind `K` with this key, if present.
    pub fn delete<K: Indexed>(&mut self, key: &ObjectKey) {
        K::delete_from(key, self);
    }

    /// Makes `objects` the complete set of kind `K`: objects of that kind not
    /// among them are deleted (the relist of a watcher that sees the whole
    /// kind, after which objects deleted while it was disconnected must
    /// disappear). For a watch of part of a kind, `runtime::Feeder` removes
    /// only what its own watch fed.
    pub fn replace<K: Indexed>(&mut self, objects: impl IntoIterator<Item = K>) {
        self.replace_at(objects, UnixTime::now());
    }

    /// [`Index::replace`] as of `now` (tests move the clock), one time for
    /// every object.
    fn replace_at<K: Indexed>(&mut self, objects: impl IntoIterator<Item = K>, now: UnixTime) {
        let objects: Vec<K> = objects.into_iter().collect();
        let keep: std::collections::HashSet<ObjectKey> =
            objects.iter().filter_map(K::key).collect();
        for key in K::keys_in(self) {
            if !keep.contains(&key) {
                K::delete_from(&key, self);
            }
        }
        for object in &objects {
            object.apply_to(self, now);
        }
    }

    /// Adds or replaces a `multicluster.x-k8s.io` `ServiceImport` by its
    /// ports (implementation-specific target kind).
    pub fn apply_service_import(&mut self, key: &ObjectKey, ports: Vec<BackendPort>) {
        self.set_ports(BackendKind::ServiceImport, key, Some(ports));
    }

    /// Removes a `ServiceImport`.
    pub fn delete_service_import(&mut self, key: &ObjectKey) {
        self.set_ports(BackendKind::ServiceImport, key, None);
    }

    /// Makes `imports` the complete set of `ServiceImport`s, as
    /// [`Index::replace`] does for the other kinds (a watcher's relist).
    pub fn replace_service_imports(
        &mut self,
        imports: impl IntoIterator<Item = (ObjectKey, Vec<BackendPort>)>,
    ) {
        let imports: Map<ObjectKey, Vec<BackendPort>> = imports.into_iter().collect();
        for key in self.backend_keys(BackendKind::ServiceImport) {
            if !imports.contains_key(&key) {
                self.delete_service_import(&key);
            }
        }
        for (key, ports) in imports {
            self.apply_service_import(&key, ports);
        }
    }

    /// How many policies the index holds.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// How many objects of every kind the index holds.
    pub fn object_count(&self) -> usize {
        self.policies.len()
            + self.targets.iter().flat_map(Namespaced::values).filter(|t| t.ports.is_some()).count()
            + self.config_maps.len()
            + self.secrets.len()
            + self.grants.len()
    }

    /// When a CA object's verdict next changes with time alone (a
    /// certificate expires, or one not yet valid begins): the time to call
    /// [`Index::recheck_ca_validity`] ([`Index::needs_ca_recheck`] also
    /// tells a clock set back). `None` when nothing is pending.
    pub fn next_ca_validity_change(&self) -> Option<UnixTime> {
        self.ca_data().filter_map(CaData::recheck_at).min()
    }

    /// Whether [`Index::recheck_ca_validity`] at `now` would read a CA
    /// object again: a certificate's validity began or ended by `now`, or
    /// an object was read at a later time (the clock was set back since).
    pub fn needs_ca_recheck(&self, now: UnixTime) -> bool {
        self.ca_data().any(|data| matches!(data, CaData::Present(b) if !b.holds_at(now)))
    }

    /// Checks the CA objects' certificates again at `now`. A bundle is
    /// checked when its object is applied; rustls does not check a trust
    /// anchor's validity, so without this a CA that expires later would be
    /// trusted until its object changes. A bundle with a certificate that
    /// has expired since is now refused (its references become
    /// `ExpiredCertificate`, and configurations built from then on
    /// fail closed); one refused for a certificate not yet valid is read
    /// again. A bundle read at a time later than `now` (the clock was set
    /// back) is read again too, so a CA not valid at the corrected time is
    /// refused. Returns the objects read again.
    pub fn recheck_ca_validity(&mut self, now: UnixTime) -> Vec<ObjectKey> {
        let Self { config_maps, secrets, ca_bundles, .. } = self;
        let secrets = secrets.iter_mut().map(|(ns, name, secret)| (ns, name, &mut secret.ca));
        let mut changed = Vec::new();
        for (namespace, name, data) in config_maps.iter_mut().chain(secrets) {
            let CaData::Present(bundle) = data else { continue };
            // (A clock set back before the bundle was read counts too.)
            if bundle.holds_at(now) {
                continue;
            }
            // Objects holding the same text find it read again already.
            *bundle = ca_bundles.read(&bundle.pem.clone(), now);
            changed.push(ObjectKey::new(namespace, name));
        }
        // (A ConfigMap and a Secret may share a name.)
        changed.sort();
        changed.dedup();
        for key in &changed {
            self.refresh_dependents(key);
        }
        changed
    }

    /// Makes `wellKnownCACertificates: {name}` mean `roots`: a CA set of the
    /// implementation's own, under its domain (Gateway API leaves such names
    /// to implementations). A policy naming a set that is not here (or is
    /// empty) is `Invalid`. `None` removes the set. The policies naming it are
    /// recomputed, so configurations built from then on use the new roots.
    pub fn set_well_known_roots(
        &mut self,
        name: DomainPrefixedName,
        roots: Option<Arc<rustls::RootCertStore>>,
    ) {
        let unchanged = match (&roots, self.well_known_roots.get(&name)) {
            (Some(new), Some(old)) => Arc::ptr_eq(new, old),
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return;
        }
        let naming: Vec<_> = self
            .policies
            .values()
            .filter(|entry| {
                let anchors = entry.validated.as_ref().map(|policy| policy.trust_anchors());
                matches!(anchors, Ok(TrustAnchors::WellKnown(WellKnownCa::ImplementationSpecific(n))) if *n == name)
            })
            .map(|entry| entry.state.clone())
            .collect();
        match roots {
            Some(roots) => self.well_known_roots.insert(name, roots),
            None => self.well_known_roots.remove(&name),
        };
        for state in naming {
            self.insert_entry(state, None);
        }
    }

    /// Reads the policies' `options` under `domain`: `example.com` reads
    /// `example.com/min-tls-version` and the other keys of
    /// [`crate::tls::options`]; keys of other domains belong to someone else
    /// and are ignored. `None`, the default, reads none.
    ///
    /// A policy with an unknown key or a bad value under the domain is
    /// `Invalid`, its status says which option and why, and it cannot be
    /// used (connections fail closed). A cipher suite or key-exchange group
    /// must be one rustls knows by name; whether the crypto provider offers
    /// it is known only when a configuration is built with it
    /// ([`crate::tls::TlsError::Options`]). Configurations built from then
    /// on apply the options.
    ///
    /// # Errors
    ///
    /// [`NameError`] when `domain` is not a lowercase RFC 1123 subdomain;
    /// nothing changes then.
    pub fn set_options_domain(&mut self, domain: Option<&str>) -> Result<(), NameError> {
        if let Some(domain) = domain {
            crate::name::check_domain(domain)?;
        }
        if self.options_domain.as_deref() == domain {
            return Ok(());
        }
        self.options_domain = domain.map(Arc::from);
        let entries: Vec<_> = self.policies.values().cloned().collect();
        for entry in entries {
            self.insert_entry(entry.state.clone(), Some(&entry));
        }
        Ok(())
    }

    /// The `wellKnownCACertificates` name of `policy` when it is neither
    /// `System` nor a non-empty set of [`Index::set_well_known_roots`].
    fn unsupported_well_known<'p>(
        &self,
        policy: &'p ValidatedPolicy,
    ) -> Option<&'p DomainPrefixedName> {
        match policy.trust_anchors() {
            TrustAnchors::WellKnown(WellKnownCa::ImplementationSpecific(name))
                if self.well_known_roots.get(name).is_none_or(|roots| roots.is_empty()) =>
            {
                Some(name)
            }
            _ => None,
        }
    }

    /// The CA data of every ConfigMap and Secret.
    fn ca_data(&self) -> impl Iterator<Item = &CaData> {
        self.config_maps.values().chain(self.secrets.values().map(|secret| &secret.ca))
    }

    /// The keys of every policy, in `{namespace}/{name}` order, for writing
    /// status for each.
    pub fn policy_keys(&self) -> Vec<ObjectKey> {
        let mut keys: Vec<_> = self.policies.values().map(|e| ObjectKey::clone(&e.key)).collect();
        keys.sort();
        keys
    }

    /// A policy as last applied, without its `managedFields` (the API
    /// server's bookkeeping, often larger than the spec).
    pub fn policy(&self, key: &ObjectKey) -> Option<&v1::BackendTlsPolicy> {
        self.policies.get(&key.namespace, &key.name).map(|e| &e.policy)
    }

    /// Whether `from` may refer to `to` under the ReferenceGrants in the
    /// index (Gateway → Secret for a client certificate, Route → Service for
    /// a backend).
    pub fn permission(&self, from: &Referrer, to: &Referent<'_>) -> Permission {
        self.grants.permits(from, to)
    }

    fn apply_policy(&mut self, policy: &v1::BackendTlsPolicy) {
        let Some(key) = ObjectKey::of(&policy.metadata) else { return };
        let previous = self.delete_policy(&key);
        let rank = Rank {
            undated: policy.metadata.creation_timestamp.is_none(),
            created: policy.metadata.creation_timestamp.clone(),
            key: Arc::new(key.clone()),
        };
        let mut attachments = Vec::new();
        let mut unsupported_targets = Vec::new();
        for (i, target) in policy.spec.target_refs.iter().enumerate() {
            match BackendKind::from_group_kind(&target.group, &target.kind) {
                Some(kind) => attachments.push((
                    i,
                    AttachKey {
                        kind,
                        namespace: key.namespace.clone(),
                        name: target.name.clone(),
                        section: target.section_name.clone().filter(|s| !s.is_empty()),
                    },
                )),
                None => unsupported_targets.push(i),
            }
        }
        let validated = match &previous {
            Some(previous) if previous.policy.spec == policy.spec => previous.validated.clone(),
            _ => ValidatedPolicy::try_from(&policy.spec).map(Arc::new),
        };
        for name in ca_ref_names(&validated) {
            self.ca_dependents.entry(&key.namespace, name).insert(rank.key.clone());
        }
        let mut policy = policy.clone();
        policy.metadata.managed_fields = None;
        let state = Arc::new(PolicyState {
            key: rank.key.clone(),
            validated,
            policy,
            rank,
            attachments,
            unsupported_targets,
        });
        self.insert_entry(state, previous.as_deref());
    }

    /// Computes what the CA objects make of a policy and puts the result
    /// where resolution finds it, replacing the previous entry. Resolving
    /// never looks CA objects up: this runs when the policy or a CA object
    /// it names changes. `previous`, the entry this one replaces, lends its
    /// trust anchors when they would come out the same.
    fn insert_entry(&mut self, state: Arc<PolicyState>, previous: Option<&PolicyEntry>) {
        let (mut problems, ca_sources) =
            self.usage_problems(&state.key.namespace, &state.validated);
        // Anchors merged from several CA objects are made anew only when
        // one of those objects changed.
        let kept = previous
            .filter(|p| !ca_sources.is_empty() && same_anchors(&p.ca_sources, &ca_sources))
            .and_then(|p| p.roots.clone());
        let roots = match &state.validated {
            Ok(policy) if problems.is_empty() => kept
                .map(Ok)
                .unwrap_or_else(|| {
                    let made = crate::tls::trust_roots(policy, &ca_sources, |name| {
                        self.well_known_roots.get(name).cloned()
                    });
                    self.roots_made += 1;
                    made.map(|roots| (roots, self.roots_made))
                })
                .map_err(|p| problems.push(p))
                .ok(),
            _ => None,
        };
        let entry = Arc::new(PolicyEntry {
            state,
            problems,
            ca_sources: ca_sources.into(),
            roots,
            options_domain: self.options_domain.clone(),
        });
        for (_, attach) in &entry.attachments {
            let (rank, value) = (entry.rank.clone(), entry.clone());
            self.targets[attach.kind as usize]
                .entry(&attach.namespace, &attach.name)
                .ranked_mut(attach)
                .insert(rank, value);
        }
        let key = ObjectKey::clone(&entry.key);
        self.policies.insert(&key, entry);
    }

    /// Removes a policy, returning what the index held of it.
    fn delete_policy(&mut self, key: &ObjectKey) -> Option<Arc<PolicyEntry>> {
        let entry = self.policies.remove(key)?;
        for name in ca_ref_names(&entry.validated) {
            self.ca_dependents.update(
                &key.namespace,
                name,
                |dependents| {
                    dependents.remove(key);
                },
                Set::is_empty,
            );
        }
        for (_, attach) in &entry.attachments {
            self.targets[attach.kind as usize].update(
                &attach.namespace,
                &attach.name,
                |target| {
                    let ranked = target.ranked_mut(attach);
                    ranked.remove(&entry.rank);
                    if let (true, Some(section)) = (ranked.is_empty(), &attach.section) {
                        target.sections.remove(section.as_str());
                    }
                },
                Target::is_empty,
            );
        }
        Some(entry)
    }

    /// The parsed `tls.crt`/`tls.key` of a Secret, if the Secret exists.
    pub(crate) fn secret_key_pair(
        &self,
        key: &ObjectKey,
    ) -> Option<Result<&ClientCertificate, &KeyPairError>> {
        Some(self.secrets.get(&key.namespace, &key.name)?.key_pair.get())
    }

    /// Recomputes the policies that name the CA object `key` (ConfigMap or
    /// Secret) after it changed.
    fn refresh_dependents(&mut self, key: &ObjectKey) {
        let dependents =
            self.ca_dependents.get(&key.namespace, &key.name).cloned().unwrap_or_default();
        for dependent in dependents {
            if let Some(entry) = self.policies.get(&dependent.namespace, &dependent.name).cloned() {
                self.insert_entry(entry.state.clone(), Some(&entry));
            }
        }
    }

    /// Sets (or, with `None`, removes) a backend's ports.
    fn set_ports(&mut self, kind: BackendKind, key: &ObjectKey, ports: Option<Vec<BackendPort>>) {
        self.targets[kind as usize].update(
            &key.namespace,
            &key.name,
            |t| t.ports = ports,
            Target::is_empty,
        );
    }

    /// The backends of one kind the index holds.
    fn backend_keys(&self, kind: BackendKind) -> Vec<ObjectKey> {
        self.targets[kind as usize]
            .0
            .iter()
            .flat_map(|(ns, names)| {
                names
                    .iter()
                    .filter(|(_, t)| t.ports.is_some())
                    .map(move |(name, _)| ObjectKey::new(ns, name))
            })
            .collect()
    }

    fn target(&self, kind: BackendKind, namespace: &str, name: &str) -> Option<&Target> {
        self.targets[kind as usize].get(namespace, name)
    }

    /// The policies attached at one point, best first.
    fn ranked(&self, attach: &AttachKey) -> impl Iterator<Item = &Arc<PolicyEntry>> {
        self.target(attach.kind, &attach.namespace, &attach.name)
            .and_then(|t| t.ranked(attach.section.as_deref()))
            .into_iter()
            .flat_map(|(ranked, _)| ranked.values())
    }

    fn backend_ports(
        &self,
        kind: BackendKind,
        namespace: &str,
        name: &str,
    ) -> Option<&[BackendPort]> {
        self.target(kind, namespace, name)?.ports.as_deref()
    }

    /// Checks the CA references of a validated policy: what each refers to,
    /// and the CA data of those that resolve.
    fn check_ca_refs(
        &self,
        namespace: &str,
        refs: &[CaCertificateRef],
    ) -> (Vec<RefProblem>, Vec<CaSource>) {
        let mut problems = Vec::new();
        let mut sources = Vec::new();
        for (index, ca_ref) in refs.iter().enumerate() {
            let data = match (ca_ref.group_kind.group.as_str(), ca_ref.group_kind.kind.as_str()) {
                ("", "ConfigMap") => self.config_maps.get(namespace, &ca_ref.name),
                ("", "Secret") => self.secrets.get(namespace, &ca_ref.name).map(|s| &s.ca),
                _ => {
                    problems.push(RefProblem::InvalidKind { index, reference: ca_ref.clone() });
                    continue;
                }
            };
            match data {
                None => problems.push(RefProblem::NotFound { index, reference: ca_ref.clone() }),
                Some(CaData::Missing) => {
                    problems.push(RefProblem::MissingKey { index, reference: ca_ref.clone() })
                }
                Some(CaData::Empty) => {
                    problems.push(RefProblem::EmptyKey { index, reference: ca_ref.clone() })
                }
                Some(CaData::Present(read)) => match &read.verdict {
                    Err(error) => problems.push(RefProblem::InvalidBundle {
                        index,
                        reference: ca_ref.clone(),
                        error: error.clone(),
                    }),
                    Ok(bundle) => sources.push(CaSource {
                        index,
                        pem: read.pem.clone(),
                        certificates: bundle.certificates.clone(),
                        roots: bundle.roots.clone(),
                    }),
                },
            }
        }
        (problems, sources)
    }
}

/// PEM data found under [`CA_CERT_KEY`] of a referenced ConfigMap or Secret.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CaSource {
    /// The position of its reference in `caCertificateRefs`.
    pub index: usize,
    /// The bytes under `ca.crt`.
    pub pem: Arc<[u8]>,
    /// The certificates in them, each checked to parse, and to be valid
    /// when the bundle was last read (it is read again whenever one of its
    /// certificates begins or ends being valid).
    pub certificates: Arc<[Arc<CaCertificate>]>,
    /// The same certificates as rustls trusts them, shared by every policy
    /// naming this object.
    pub roots: Arc<rustls::RootCertStore>,
}

/// `roots` is made from `certificates`, so it is left out.
impl PartialEq for CaSource {
    fn eq(&self, other: &Self) -> bool {
        (self.index, &self.pem, &self.certificates)
            == (other.index, &other.pem, &other.certificates)
    }
}

impl Eq for CaSource {}

impl sealed::Sealed for v1::BackendTlsPolicy {}
impl Indexed for v1::BackendTlsPolicy {
    const NAME: &'static str = "BackendTLSPolicy";

    fn apply_to(&self, index: &mut Index, _now: UnixTime) {
        index.apply_policy(self);
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.delete_policy(key);
    }
    fn keys_in(index: &Index) -> Vec<ObjectKey> {
        index.policy_keys()
    }
}

impl sealed::Sealed for crate::api::v1alpha3::BackendTlsPolicy {}
impl Indexed for crate::api::v1alpha3::BackendTlsPolicy {
    const NAME: &'static str = "BackendTLSPolicy v1alpha3";
    const STORE: &'static str = "BackendTLSPolicy";

    fn apply_to(&self, index: &mut Index, _now: UnixTime) {
        index.apply_policy(&v1::BackendTlsPolicy::from(self.clone()));
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.delete_policy(key);
    }
    fn keys_in(index: &Index) -> Vec<ObjectKey> {
        index.policy_keys()
    }
}

impl sealed::Sealed for v1::ReferenceGrant {}
impl Indexed for v1::ReferenceGrant {
    const NAME: &'static str = "ReferenceGrant";

    fn apply_to(&self, index: &mut Index, _now: UnixTime) {
        index.grants.apply(self);
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.grants.delete(key);
    }
    fn keys_in(index: &Index) -> Vec<ObjectKey> {
        index.grants.keys()
    }
}

impl sealed::Sealed for v1beta1::ReferenceGrant {}
impl Indexed for v1beta1::ReferenceGrant {
    const NAME: &'static str = "ReferenceGrant v1beta1";
    const STORE: &'static str = "ReferenceGrant";

    fn apply_to(&self, index: &mut Index, _now: UnixTime) {
        index.grants.apply(&v1::ReferenceGrant::from(self.clone()));
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.grants.delete(key);
    }
    fn keys_in(index: &Index) -> Vec<ObjectKey> {
        index.grants.keys()
    }
}

impl sealed::Sealed for Service {}
impl Indexed for Service {
    const NAME: &'static str = "Service";

    fn apply_to(&self, index: &mut Index, _now: UnixTime) {
        let Some(key) = ObjectKey::of(&self.metadata) else { return };
        let ports = self
            .spec
            .iter()
            .flat_map(|spec| spec.ports.iter().flatten())
            .map(|p| BackendPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: p.port,
                protocol: PortProtocol::of_service_port(p.protocol.as_deref()),
            })
            .collect();
        index.set_ports(BackendKind::Service, &key, Some(ports));
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.set_ports(BackendKind::Service, key, None);
    }
    fn keys_in(index: &Index) -> Vec<ObjectKey> {
        index.backend_keys(BackendKind::Service)
    }
}

impl sealed::Sealed for ConfigMap {}
impl Indexed for ConfigMap {
    const NAME: &'static str = "ConfigMap";

    fn apply_to(&self, index: &mut Index, now: UnixTime) {
        let Some(key) = ObjectKey::of(&self.metadata) else { return };
        let text = self.data.as_ref().and_then(|d| d.get(CA_CERT_KEY)).map(String::as_bytes);
        let binary =
            self.binary_data.as_ref().and_then(|d| d.get(CA_CERT_KEY)).map(|b| b.0.as_slice());
        let ca = CaData::read(text.or(binary), &mut index.ca_bundles, now);
        let old = index.config_maps.insert(&key, ca.clone());
        if !ca.is_unchanged_from(old.as_ref()) {
            index.refresh_dependents(&key);
        }
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.config_maps.remove(key);
        index.refresh_dependents(key);
    }
    fn keys_in(index: &Index) -> Vec<ObjectKey> {
        index.config_maps.keys().collect()
    }
}

impl sealed::Sealed for Secret {}
impl Indexed for Secret {
    const NAME: &'static str = "Secret";

    fn apply_to(&self, index: &mut Index, now: UnixTime) {
        let Some(key) = ObjectKey::of(&self.metadata) else { return };
        let value = |name: &str| {
            let data =
                self.data.as_ref().and_then(|d| d.get(name)).map(|b: &ByteString| b.0.as_slice());
            data.or_else(|| {
                self.string_data.as_ref().and_then(|d| d.get(name)).map(String::as_bytes)
            })
        };
        let old = index.secrets.get(&key.namespace, &key.name);
        let key_pair =
            SecretKeyPair::read(value("tls.crt"), value("tls.key"), old.map(|s| &s.key_pair));
        let ca = CaData::read(value(CA_CERT_KEY), &mut index.ca_bundles, now);
        let old = index.secrets.insert(&key, SecretData { ca: ca.clone(), key_pair });
        // Policy entries depend on the CA only; a client certificate is
        // read by `Index::client_certificate` and passed in `TlsParams`.
        if !ca.is_unchanged_from(old.as_ref().map(|s| &s.ca)) {
            index.refresh_dependents(&key);
        }
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.secrets.remove(key);
        index.refresh_dependents(key);
    }
    fn keys_in(index: &Index) -> Vec<ObjectKey> {
        index.secrets.keys().collect()
    }
}

/// The names of the CA objects a policy refers to.
fn ca_ref_names(
    validated: &Result<Arc<ValidatedPolicy>, ValidationErrors>,
) -> impl Iterator<Item = &str> {
    let refs = match validated.as_ref().map(|policy| policy.trust_anchors()) {
        Ok(TrustAnchors::CaCertificateRefs(refs)) => refs.as_slice(),
        _ => &[],
    };
    refs.iter().map(|r| r.name.as_str())
}

/// Whether two lists of CA sources give the same trust anchors: the same
/// positions in `caCertificateRefs`, each with the very same anchors.
fn same_anchors(old: &[CaSource], new: &[CaSource]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(o, n)| o.index == n.index && Arc::ptr_eq(&o.roots, &n.roots))
}
