//! `ReferenceGrant` `gateway.networking.k8s.io/v1`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::pattern;

/// Permission, given by the owner of a namespace, for objects of some kinds
/// in other namespaces to refer to objects in this one.
///
/// The grant lives in the namespace of the objects referred *to*. A reference
/// is allowed when any `from` entry matches the referring object and any
/// `to` entry matches the referent.
#[derive(
    CustomResource, JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "ReferenceGrant",
    shortname = "refgrant",
    category = "gateway-api",
    namespaced,
    doc = "Permission for objects in other namespaces to refer to objects in this one.",
    storage = false,
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct ReferenceGrantSpec {
    /// The objects, by group, kind and namespace, that may refer to objects
    /// in this namespace. Between 1 and 16 entries.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub from: Vec<ReferenceGrantFrom>,

    /// The objects in this namespace, by group and kind and optionally name,
    /// that may be referred to. Between 1 and 16 entries.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub to: Vec<ReferenceGrantTo>,
}

/// Objects in another namespace that a grant lets refer into its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ReferenceGrantFrom {
    /// API group of the referring objects; the empty string means the core
    /// group.
    #[schemars(length(max = 253), pattern(pattern::GROUP))]
    pub group: String,

    /// Kind of the referring objects, for example `HTTPRoute` or `Gateway`.
    #[schemars(length(min = 1, max = 63), pattern(pattern::KIND))]
    pub kind: String,

    /// Namespace of the referring objects.
    #[schemars(length(min = 1, max = 63), pattern(pattern::NAMESPACE))]
    pub namespace: String,
}

/// Objects in the grant's namespace that may be referred to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ReferenceGrantTo {
    /// API group of the referents; the empty string means the core group.
    #[schemars(length(max = 253), pattern(pattern::GROUP))]
    pub group: String,

    /// Kind of the referents, for example `Service` or `Secret`.
    #[schemars(length(min = 1, max = 63), pattern(pattern::KIND))]
    pub kind: String,

    /// Name of the one referent allowed; when absent, every object of this
    /// group and kind in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
}
