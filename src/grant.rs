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
//! Lookups are hash lookups by the two namespaces involved, so their cost
//! does not depend on how many grants the cluster holds.
//!
//! A grant the API server would refuse (no `from` or `to` entry, more than
//! 16, a group, kind, namespace or name its schema does not allow) grants
//! nothing: no cluster holds one, so one read from a file must not allow
//! what the cluster would not.

use crate::{
    api::v1,
    index::{Map, ObjectKey},
};

/// Whether the API server's schema takes `spec`.
fn schema_allows(spec: &v1::ReferenceGrantSpec) -> bool {
    use crate::name::{check_group, check_kind, check_namespace, check_object_name};
    let from = |f: &v1::ReferenceGrantFrom| {
        check_group(&f.group).is_ok()
            && check_kind(&f.kind).is_ok()
            && check_namespace(&f.namespace).is_ok()
    };
    let to = |t: &v1::ReferenceGrantTo| {
        check_group(&t.group).is_ok()
            && check_kind(&t.kind).is_ok()
            && t.name.as_deref().is_none_or(|name| check_object_name(name).is_ok())
    };
    (1..=16).contains(&spec.from.len())
        && (1..=16).contains(&spec.to.len())
        && spec.from.iter().all(from)
        && spec.to.iter().all(to)
}

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

/// One `from` × `to` pair of one grant.
#[derive(Clone, Debug)]
struct Rule {
    grant: ObjectKey,
    from_group: String,
    from_kind: String,
    to_group: String,
    to_kind: String,
    /// `None`: every object of the group and kind.
    to_name: Option<String>,
}

/// The ReferenceGrants of a cluster, indexed for permission checks: by the
/// namespace referred to, then the referrer's namespace. Only the rules
/// between those two namespaces are looked at.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grants {
    rules: Map<String, Map<String, Vec<Rule>>>,
    /// The referrer namespaces of each grant, to delete it.
    grants: Map<ObjectKey, Vec<String>>,
}

impl Grants {
    pub(crate) fn apply(&mut self, grant: &v1::ReferenceGrant) {
        let Some(key) = ObjectKey::of(&grant.metadata) else { return };
        self.delete(&key);
        if !schema_allows(&grant.spec) {
            return;
        }
        let by_from = self.rules.entry(key.namespace.clone()).or_default();
        let mut from_namespaces = Vec::new();
        for from in &grant.spec.from {
            let rules = by_from.entry(from.namespace.clone()).or_default();
            for to in &grant.spec.to {
                rules.push(Rule {
                    grant: key.clone(),
                    from_group: from.group.clone(),
                    from_kind: from.kind.clone(),
                    to_group: to.group.clone(),
                    to_kind: to.kind.clone(),
                    to_name: to.name.clone(),
                });
            }
            from_namespaces.push(from.namespace.clone());
        }
        self.grants.insert(key, from_namespaces);
    }

    pub(crate) fn delete(&mut self, grant: &ObjectKey) {
        let Some(from_namespaces) = self.grants.remove(grant) else { return };
        let Some(by_from) = self.rules.get_mut(&grant.namespace) else { return };
        for from in from_namespaces {
            if let Some(rules) = by_from.get_mut(&from) {
                rules.retain(|rule| rule.grant != *grant);
                if rules.is_empty() {
                    by_from.remove(&from);
                }
            }
        }
        if by_from.is_empty() {
            self.rules.remove(&grant.namespace);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.grants.len()
    }

    pub(crate) fn keys(&self) -> Vec<ObjectKey> {
        self.grants.keys().cloned().collect()
    }

    /// The grant that lets `from` refer to `to`.
    fn find(&self, from: &Referrer, to: &Referent<'_>) -> Option<&Rule> {
        self.rules.get(to.namespace)?.get(&from.namespace)?.iter().find(|rule| {
            rule.from_group == from.group
                && rule.from_kind == from.kind
                && rule.to_group == to.group
                && rule.to_kind == to.kind
                && rule.to_name.as_deref().is_none_or(|n| n == to.name)
        })
    }

    /// Whether `from` may refer to `to`; unlike [`Grants::permits`], it
    /// allocates nothing (the resolve path).
    pub(crate) fn allows(&self, from: &Referrer, to: &Referent<'_>) -> bool {
        from.namespace == to.namespace || self.find(from, to).is_some()
    }

    /// Whether `from` may refer to `to`, naming the grant that allows it.
    pub(crate) fn permits(&self, from: &Referrer, to: &Referent<'_>) -> Permission {
        if from.namespace == to.namespace {
            return Permission::SameNamespace;
        }
        match self.find(from, to) {
            Some(rule) => Permission::Granted(rule.grant.clone()),
            None => Permission::Denied,
        }
    }
}

/// The object a reference points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Referent<'a> {
    /// API group; `""` for the core group.
    pub group: &'a str,
    /// Kind, such as `Service` or `Secret`.
    pub kind: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
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
