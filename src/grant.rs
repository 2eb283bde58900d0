//! ReferenceGrant rules: when an object may refer to an object in another
//! namespace.
//!
//! A reference from `(group, kind, namespace)` to `(group, kind, name)` in
//! namespace `to` is allowed when it stays in one namespace, or when a
//! ReferenceGrant in namespace `to` has a `from` entry matching the referrer
//! and a `to` entry matching the referent (and its name, when the entry names
//! one). Grants only add permissions; deleting one takes its permissions
//! away.
//!
//! Lookups are hash lookups keyed by everything but the referent's name, so
//! their cost does not depend on how many grants the cluster holds.

use std::collections::{BTreeMap, HashMap};

use crate::{api::v1, index::ObjectKey};

/// The object making a reference: a Route, a Gateway…
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Referrer {
    /// API group of the referrer (`gateway.networking.k8s.io` for routes).
    pub group: String,
    /// Kind of the referrer, such as `HTTPRoute`.
    pub kind: String,
    /// Namespace of the referrer.
    pub namespace: String,
}

impl Referrer {
    /// A referrer of the Gateway API group, such as an `HTTPRoute`.
    pub fn gateway_api(kind: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self { group: crate::api::GROUP.into(), kind: kind.into(), namespace: namespace.into() }
    }
}

/// Everything a grant matches on except the referent's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PermitKey {
    to_namespace: String,
    to_group: String,
    to_kind: String,
    from: Referrer,
}

/// What one grant allows for one [`PermitKey`]: every name, or these.
#[derive(Clone, Debug, Default)]
struct Names {
    any: bool,
    names: Vec<String>,
}

/// The ReferenceGrants of a cluster, indexed for permission checks.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grants {
    /// Per key, per grant: what that grant allows.
    permits: HashMap<PermitKey, BTreeMap<ObjectKey, Names>>,
    /// Per grant, its keys, to delete it.
    keys: HashMap<ObjectKey, Vec<PermitKey>>,
}

impl Grants {
    pub(crate) fn apply(&mut self, grant: &v1::ReferenceGrant) {
        let Some(key) = ObjectKey::of(&grant.metadata) else { return };
        self.delete(&key);
        let mut keys = Vec::new();
        for from in &grant.spec.from {
            for to in &grant.spec.to {
                let permit = PermitKey {
                    to_namespace: key.namespace.clone(),
                    to_group: to.group.clone(),
                    to_kind: to.kind.clone(),
                    from: Referrer {
                        group: from.group.clone(),
                        kind: from.kind.clone(),
                        namespace: from.namespace.clone(),
                    },
                };
                let names =
                    self.permits.entry(permit.clone()).or_default().entry(key.clone()).or_default();
                match &to.name {
                    None => names.any = true,
                    Some(name) => names.names.push(name.clone()),
                }
                keys.push(permit);
            }
        }
        self.keys.insert(key, keys);
    }

    pub(crate) fn delete(&mut self, grant: &ObjectKey) {
        for permit in self.keys.remove(grant).unwrap_or_default() {
            if let Some(by_grant) = self.permits.get_mut(&permit) {
                by_grant.remove(grant);
                if by_grant.is_empty() {
                    self.permits.remove(&permit);
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `from` may refer to the object `group`/`kind` `namespace/name`.
    /// The grant that allows it, if one is needed.
    pub(crate) fn permits(
        &self,
        from: &Referrer,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Permission {
        if from.namespace == namespace {
            return Permission::SameNamespace;
        }
        let key = PermitKey {
            to_namespace: namespace.to_owned(),
            to_group: group.to_owned(),
            to_kind: kind.to_owned(),
            from: from.clone(),
        };
        let granted = self.permits.get(&key).and_then(|by_grant| {
            by_grant
                .iter()
                .find(|(_, names)| names.any || names.names.iter().any(|n| n == name))
                .map(|(grant, _)| grant.clone())
        });
        match granted {
            Some(grant) => Permission::Granted(grant),
            None => Permission::Denied,
        }
    }
}

/// The answer to "may this object refer to that one?".
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Permission {
    /// Both are in one namespace: no grant needed.
    SameNamespace,
    /// A ReferenceGrant (this one) allows it.
    Granted(ObjectKey),
    /// Another namespace, and no grant allows it.
    Denied,
}

impl Permission {
    /// Whether the reference is allowed.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Self::Denied)
    }
}
