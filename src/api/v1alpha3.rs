//! The deprecated `gateway.networking.k8s.io/v1alpha3` version of
//! `BackendTLSPolicy`.
//!
//! Its schema is the v1 schema. The standard channel lists it in the CRD but
//! does not serve it; it exists here so the CRD matches upstream and so
//! manifests still written against `v1alpha3` can be read and converted with
//! [`From`].

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::v1;

/// The v1 spec under the v1alpha3 version.
#[derive(CustomResource, JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1alpha3",
    kind = "BackendTLSPolicy",
    root = "BackendTlsPolicy",
    plural = "backendtlspolicies",
    shortname = "btlspolicy",
    category = "gateway-api",
    namespaced,
    doc = "A policy telling Gateways how to connect to a backend Service over TLS.",
    status = "v1::PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    served = false,
    storage = false,
    deprecated = "The v1alpha3 version of BackendTLSPolicy has been deprecated and will be removed in a future release of the API. Please upgrade to v1."
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct BackendTlsPolicySpec(pub v1::BackendTlsPolicySpec);

impl From<BackendTlsPolicy> for v1::BackendTlsPolicy {
    fn from(policy: BackendTlsPolicy) -> Self {
        Self { metadata: policy.metadata, spec: policy.spec.0, status: policy.status }
    }
}

impl From<v1::BackendTlsPolicy> for BackendTlsPolicy {
    fn from(policy: v1::BackendTlsPolicy) -> Self {
        Self {
            metadata: policy.metadata,
            spec: BackendTlsPolicySpec(policy.spec),
            status: policy.status,
        }
    }
}
