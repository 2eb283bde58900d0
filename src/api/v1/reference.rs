//! References between objects, shared by the v1 kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::pattern;

/// A reference from a policy to the object it applies to, in the policy's
/// own namespace, optionally narrowed to one section of that object.
///
/// For a Service the section is a port, named by the port's `name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalPolicyTargetReferenceWithSectionName {
    /// API group of the target; the empty string means the core group.
    #[schemars(length(max = 253), pattern(pattern::GROUP))]
    pub group: String,

    /// Kind of the target, for example `Service`.
    #[schemars(length(min = 1, max = 63), pattern(pattern::KIND))]
    pub kind: String,

    /// Name of the target.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Section of the target the policy applies to. For a Service this is
    /// the name of one of its ports. When absent, the policy applies to the
    /// whole target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(pattern::SUBDOMAIN))]
    pub section_name: Option<String>,
}

/// A reference to an object in the referring object's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    /// API group of the referent; the empty string means the core group.
    #[schemars(length(max = 253), pattern(pattern::GROUP))]
    pub group: String,

    /// Kind of the referent, for example `ConfigMap`.
    #[schemars(length(min = 1, max = 63), pattern(pattern::KIND))]
    pub kind: String,

    /// Name of the referent.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to a parent of a route or an ancestor of a policy, usually a
/// Gateway.
///
/// `group` and `kind` are optional on the wire; the API server fills in
/// [`ParentReference::DEFAULT_GROUP`] and [`ParentReference::DEFAULT_KIND`]
/// when they are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the parent; defaults to the Gateway API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), pattern(pattern::GROUP))]
    #[schemars(extend("default" = ParentReference::DEFAULT_GROUP))]
    pub group: Option<String>,

    /// Kind of the parent; defaults to `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(pattern::KIND))]
    #[schemars(extend("default" = ParentReference::DEFAULT_KIND))]
    pub kind: Option<String>,

    /// Namespace of the parent; when absent, the namespace of the object
    /// that holds this reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(pattern::NAMESPACE))]
    pub namespace: Option<String>,

    /// Name of the parent.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Section of the parent, for a Gateway the name of a listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(pattern::SUBDOMAIN))]
    pub section_name: Option<String>,

    /// Network port of the parent, for a Gateway the port of its listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

impl ParentReference {
    /// The group the API server assumes when `group` is absent.
    pub const DEFAULT_GROUP: &str = crate::api::GROUP;
    /// The kind the API server assumes when `kind` is absent.
    pub const DEFAULT_KIND: &str = "Gateway";

    /// The group, with the API server's default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(Self::DEFAULT_GROUP)
    }

    /// The kind, with the API server's default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(Self::DEFAULT_KIND)
    }
}

/// A reference to a Secret, possibly in another namespace (then a
/// ReferenceGrant there must allow it), as a Gateway's
/// `spec.tls.backend.clientCertificateRef` holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretObjectReference {
    /// API group of the referent; defaults to the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,

    /// Kind of the referent; defaults to `Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Name of the referent.
    pub name: String,

    /// Namespace of the referent; when absent, the namespace of the object
    /// that holds this reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl SecretObjectReference {
    /// The group the API server assumes when `group` is absent: the core
    /// group.
    pub const DEFAULT_GROUP: &str = "";
    /// The kind the API server assumes when `kind` is absent.
    pub const DEFAULT_KIND: &str = "Secret";

    /// The group, with the API server's default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(Self::DEFAULT_GROUP)
    }

    /// The kind, with the API server's default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(Self::DEFAULT_KIND)
    }
}
