//! `ReferenceGrant` `gateway.networking.k8s.io/v1beta1`, the version the API
//! server stores.
//!
//! Its schema is the v1 schema; both versions are served. Convert with
//! [`From`].

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::v1;

/// The v1 spec under the v1beta1 version.
#[derive(
    CustomResource, JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1beta1",
    kind = "ReferenceGrant",
    shortname = "refgrant",
    category = "gateway-api",
    namespaced,
    doc = "Permission for objects in other namespaces to refer to objects in this one.",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    annotation(
        "api-approved.kubernetes.io",
        "https://github.com/kubernetes-sigs/gateway-api/pull/4530"
    ),
    annotation("gateway.networking.k8s.io/bundle-version", "v1.6.1"),
    annotation("gateway.networking.k8s.io/channel", "standard")
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct ReferenceGrantSpec(pub v1::ReferenceGrantSpec);

impl From<ReferenceGrant> for v1::ReferenceGrant {
    fn from(grant: ReferenceGrant) -> Self {
        Self { metadata: grant.metadata, spec: grant.spec.0 }
    }
}

impl From<v1::ReferenceGrant> for ReferenceGrant {
    fn from(grant: v1::ReferenceGrant) -> Self {
        Self { metadata: grant.metadata, spec: ReferenceGrantSpec(grant.spec) }
    }
}
