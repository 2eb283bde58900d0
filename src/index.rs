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
//! policy `Accepted=False/Invalid` here.

use std::{
    collections::{BTreeMap, HashMap, btree_map},
    fmt,
    sync::Arc,
};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret, Service},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};

use crate::{
    api::{v1, v1beta1},
    grant::{Grants, Permission, Referrer},
    policy::{CaCertificateRef, TrustAnchors, ValidatedPolicy, ValidationErrors, WellKnownCa},
    status::RefProblem,
};

mod conditions;
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

    fn of(group: &str, kind: &str) -> Option<Self> {
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

/// One port of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendPort {
    /// The port's name; `sectionName` refers to it.
    pub name: Option<String>,
    /// The port number routes refer to.
    pub port: i32,
    /// Whether the port carries UDP, to which TLS policies do not apply.
    pub udp: bool,
}

impl BackendPort {
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{} ({name})", self.port),
            None => self.port.to_string(),
        }
    }
}

/// Maps of maps so that lookups borrow `&str` keys instead of building an
/// owned key.
#[derive(Clone, Debug)]
struct Namespaced<V>(HashMap<String, HashMap<String, V>>);

impl<V> Default for Namespaced<V> {
    fn default() -> Self {
        Self(HashMap::new())
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
        self.0.values().map(HashMap::len).sum()
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
    key: ObjectKey,
}

/// A policy as the index holds it.
#[derive(Debug)]
pub(crate) struct PolicyEntry {
    key: ObjectKey,
    policy: v1::BackendTlsPolicy,
    validated: Result<ValidatedPolicy, ValidationErrors>,
    rank: Rank,
    attachments: Vec<(usize, AttachKey)>,
    unsupported_targets: Vec<usize>,
}

/// CA material found in a ConfigMap or Secret under [`CA_CERT_KEY`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum CaData {
    /// The key is there with this (non-empty) content.
    Present(Arc<[u8]>),
    /// The object has no such key.
    Missing,
    /// The key is there but empty.
    Empty,
}

impl CaData {
    fn from_bytes(bytes: Option<&[u8]>) -> Self {
        match bytes {
            None => Self::Missing,
            Some(b) if b.iter().all(u8::is_ascii_whitespace) => Self::Empty,
            Some(b) => Self::Present(b.into()),
        }
    }
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
/// let mut index = Index::default();
/// index.apply(&serde_json::from_value::<Service>(json!({
///     "metadata": {"namespace": "shop", "name": "shop"},
///     "spec": {"ports": [{"name": "https", "port": 443}]},
/// }))?);
/// index.apply(&serde_json::from_value::<ConfigMap>(json!({
///     "metadata": {"namespace": "shop", "name": "shop-ca"},
///     "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n…"},
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
/// let Outcome::Policy(applied) = resolution.outcome() else { panic!("{resolution}") };
/// assert_eq!(applied.policy_key().name, "shop-tls");
/// assert!(applied.usable().is_ok());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Index {
    policies: Namespaced<Arc<PolicyEntry>>,
    attachments: HashMap<AttachKey, BTreeMap<Rank, Arc<PolicyEntry>>>,
    backends: HashMap<(BackendKind, String, String), Vec<BackendPort>>,
    config_maps: Namespaced<CaData>,
    secrets: Namespaced<CaData>,
    grants: Grants,
}

mod sealed {
    pub trait Sealed {}
}

/// The kinds an [`Index`] holds: `BackendTLSPolicy` (v1 and v1alpha3),
/// `ReferenceGrant` (v1 and v1beta1), `Service`, `ConfigMap` and `Secret`.
pub trait Indexed: sealed::Sealed {
    #[doc(hidden)]
    fn apply_to(&self, index: &mut Index);
    #[doc(hidden)]
    fn delete_from(key: &ObjectKey, index: &mut Index);
}

impl Index {
    /// Adds an object, or replaces the one with its namespace and name.
    /// Objects without a namespace or name are ignored.
    pub fn apply<K: Indexed>(&mut self, object: &K) {
        object.apply_to(self);
    }

    /// Removes the object of kind `K` with this key, if present.
    pub fn delete<K: Indexed>(&mut self, key: &ObjectKey) {
        K::delete_from(key, self);
    }

    /// Adds or replaces a `multicluster.x-k8s.io` `ServiceImport` by its
    /// ports (implementation-specific target kind).
    pub fn apply_service_import(&mut self, key: &ObjectKey, ports: Vec<BackendPort>) {
        self.backends
            .insert((BackendKind::ServiceImport, key.namespace.clone(), key.name.clone()), ports);
    }

    /// Removes a `ServiceImport`.
    pub fn delete_service_import(&mut self, key: &ObjectKey) {
        self.backends.remove(&(
            BackendKind::ServiceImport,
            key.namespace.clone(),
            key.name.clone(),
        ));
    }

    /// How many policies the index holds.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// How many objects of every kind the index holds.
    pub fn object_count(&self) -> usize {
        self.policies.len()
            + self.backends.len()
            + self.config_maps.len()
            + self.secrets.len()
            + self.grants.len()
    }

    /// The keys of every policy, in `{namespace}/{name}` order, for writing
    /// status for each.
    pub fn policy_keys(&self) -> Vec<ObjectKey> {
        let mut keys: Vec<_> =
            self.policies.0.values().flat_map(|m| m.values().map(|e| e.key.clone())).collect();
        keys.sort();
        keys
    }

    /// A policy as last applied.
    pub fn policy(&self, key: &ObjectKey) -> Option<&v1::BackendTlsPolicy> {
        self.policies.get(&key.namespace, &key.name).map(|e| &e.policy)
    }

    /// Whether `from` may refer to the object `group`/`kind` `namespace/name`
    /// under the ReferenceGrants in the index (Gateway → Secret for a client
    /// certificate, Route → Service for a backend).
    pub fn permission(
        &self,
        from: &Referrer,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Permission {
        self.grants.permits(from, group, kind, namespace, name)
    }

    fn apply_policy(&mut self, policy: &v1::BackendTlsPolicy) {
        let Some(key) = ObjectKey::of(&policy.metadata) else { return };
        self.delete_policy(&key);
        let rank = Rank {
            undated: policy.metadata.creation_timestamp.is_none(),
            created: policy.metadata.creation_timestamp.clone(),
            key: key.clone(),
        };
        let mut attachments = Vec::new();
        let mut unsupported_targets = Vec::new();
        for (i, target) in policy.spec.target_refs.iter().enumerate() {
            match BackendKind::of(&target.group, &target.kind) {
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
        let entry = Arc::new(PolicyEntry {
            key: key.clone(),
            validated: ValidatedPolicy::try_from(&policy.spec),
            policy: policy.clone(),
            rank,
            attachments,
            unsupported_targets,
        });
        for (_, attach) in &entry.attachments {
            self.attachments
                .entry(attach.clone())
                .or_default()
                .insert(entry.rank.clone(), entry.clone());
        }
        self.policies.insert(&key, entry);
    }

    fn delete_policy(&mut self, key: &ObjectKey) {
        let Some(entry) = self.policies.remove(key) else { return };
        for (_, attach) in &entry.attachments {
            if let Some(ranked) = self.attachments.get_mut(attach) {
                ranked.remove(&entry.rank);
                if ranked.is_empty() {
                    self.attachments.remove(attach);
                }
            }
        }
    }

    /// The policies attached at one point, best first.
    fn ranked(&self, attach: &AttachKey) -> btree_map::Values<'_, Rank, Arc<PolicyEntry>> {
        static EMPTY: BTreeMap<Rank, Arc<PolicyEntry>> = BTreeMap::new();
        self.attachments.get(attach).unwrap_or(&EMPTY).values()
    }

    fn backend_ports(
        &self,
        kind: BackendKind,
        namespace: &str,
        name: &str,
    ) -> Option<&[BackendPort]> {
        // The tuple key needs owned strings; backends are looked up once per
        // resolve.
        self.backends.get(&(kind, namespace.to_owned(), name.to_owned())).map(Vec::as_slice)
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
            let objects = match (ca_ref.group_kind.group.as_str(), ca_ref.group_kind.kind.as_str())
            {
                ("", "ConfigMap") => &self.config_maps,
                ("", "Secret") => &self.secrets,
                _ => {
                    problems.push(RefProblem::InvalidKind { index, reference: ca_ref.clone() });
                    continue;
                }
            };
            match objects.get(namespace, &ca_ref.name) {
                None => problems.push(RefProblem::NotFound { index, reference: ca_ref.clone() }),
                Some(CaData::Missing) => {
                    problems.push(RefProblem::MissingKey { index, reference: ca_ref.clone() })
                }
                Some(CaData::Empty) => {
                    problems.push(RefProblem::EmptyKey { index, reference: ca_ref.clone() })
                }
                Some(CaData::Present(pem)) => sources.push(CaSource {
                    reference: ca_ref.clone(),
                    namespace: namespace.to_owned(),
                    pem: pem.clone(),
                }),
            }
        }
        (problems, sources)
    }
}

/// PEM data found under [`CA_CERT_KEY`] of a referenced ConfigMap or Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSource {
    /// The reference it came from.
    pub reference: CaCertificateRef,
    /// The namespace of the referent (the policy's).
    pub namespace: String,
    /// The bytes under `ca.crt`, not yet parsed.
    pub pem: Arc<[u8]>,
}

impl sealed::Sealed for v1::BackendTlsPolicy {}
impl Indexed for v1::BackendTlsPolicy {
    fn apply_to(&self, index: &mut Index) {
        index.apply_policy(self);
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.delete_policy(key);
    }
}

impl sealed::Sealed for crate::api::v1alpha3::BackendTlsPolicy {}
impl Indexed for crate::api::v1alpha3::BackendTlsPolicy {
    fn apply_to(&self, index: &mut Index) {
        index.apply_policy(&v1::BackendTlsPolicy::from(self.clone()));
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.delete_policy(key);
    }
}

impl sealed::Sealed for v1::ReferenceGrant {}
impl Indexed for v1::ReferenceGrant {
    fn apply_to(&self, index: &mut Index) {
        index.grants.apply(self);
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.grants.delete(key);
    }
}

impl sealed::Sealed for v1beta1::ReferenceGrant {}
impl Indexed for v1beta1::ReferenceGrant {
    fn apply_to(&self, index: &mut Index) {
        index.grants.apply(&v1::ReferenceGrant::from(self.clone()));
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.grants.delete(key);
    }
}

impl sealed::Sealed for Service {}
impl Indexed for Service {
    fn apply_to(&self, index: &mut Index) {
        let Some(key) = ObjectKey::of(&self.metadata) else { return };
        let ports = self
            .spec
            .iter()
            .flat_map(|spec| spec.ports.iter().flatten())
            .map(|p| BackendPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: p.port,
                udp: p.protocol.as_deref() == Some("UDP"),
            })
            .collect();
        index.backends.insert((BackendKind::Service, key.namespace, key.name), ports);
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.backends.remove(&(BackendKind::Service, key.namespace.clone(), key.name.clone()));
    }
}

impl sealed::Sealed for ConfigMap {}
impl Indexed for ConfigMap {
    fn apply_to(&self, index: &mut Index) {
        let Some(key) = ObjectKey::of(&self.metadata) else { return };
        let text = self.data.as_ref().and_then(|d| d.get(CA_CERT_KEY)).map(String::as_bytes);
        let binary =
            self.binary_data.as_ref().and_then(|d| d.get(CA_CERT_KEY)).map(|b| b.0.as_slice());
        index.config_maps.insert(&key, CaData::from_bytes(text.or(binary)));
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.config_maps.remove(key);
    }
}

impl sealed::Sealed for Secret {}
impl Indexed for Secret {
    fn apply_to(&self, index: &mut Index) {
        let Some(key) = ObjectKey::of(&self.metadata) else { return };
        let data = self
            .data
            .as_ref()
            .and_then(|d| d.get(CA_CERT_KEY))
            .map(|b: &ByteString| b.0.as_slice());
        let string_data =
            self.string_data.as_ref().and_then(|d| d.get(CA_CERT_KEY)).map(String::as_bytes);
        index.secrets.insert(&key, CaData::from_bytes(data.or(string_data)));
    }
    fn delete_from(key: &ObjectKey, index: &mut Index) {
        index.secrets.remove(key);
    }
}

/// Whether a validated policy names a CA set this crate cannot provide.
fn unsupported_well_known(policy: &ValidatedPolicy) -> Option<&WellKnownCa> {
    match policy.trust_anchors() {
        TrustAnchors::WellKnown(ca @ WellKnownCa::ImplementationSpecific(_)) => Some(ca),
        _ => None,
    }
}
