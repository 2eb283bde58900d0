//! Wire types: the Gateway API objects as the API server stores them.
//!
//! These mirror the upstream CRDs (Gateway API v1.6.1; the standard and
//! experimental channels share their schemas) field for field, with the
//! same limits, patterns and CEL rules in their schemas, so the CRDs generated from them (see [`crate::crd`]) are the
//! upstream ones. They are permissive on purpose: anything the API server
//! could hand over deserializes.
//!
//! | kind | versions |
//! | --- | --- |
//! | `BackendTLSPolicy` | [`v1`] (served, stored), [`v1alpha3`] (deprecated; served on the experimental channel only) |
//! | `ReferenceGrant` | [`v1`] (served), [`v1beta1`] (served, stored) |
//! | `Gateway` (read for `spec.tls.backend` only; its CRD is not ours) | [`v1`] |

pub(crate) mod pattern;
pub mod v1;
pub mod v1alpha3;
pub mod v1beta1;

/// The Gateway API group, `gateway.networking.k8s.io`.
pub const GROUP: &str = "gateway.networking.k8s.io";
