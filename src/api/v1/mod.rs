//! The `gateway.networking.k8s.io/v1` kinds this crate handles, the
//! reference and status types they share, and the part of a `Gateway` it
//! reads.

mod backend_tls_policy;
mod gateway;
mod reference;
mod reference_grant;
mod status;

pub use backend_tls_policy::{
    BackendTlsPolicy, BackendTlsPolicySpec, BackendTlsPolicyValidation, SubjectAltName,
};
pub use gateway::{Gateway, GatewayBackendTls, GatewaySpec, GatewayTlsConfig};
pub use reference::{
    LocalObjectReference, LocalPolicyTargetReferenceWithSectionName, ParentReference,
    SecretObjectReference,
};
pub use reference_grant::{
    ReferenceGrant, ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
};
pub use status::{PolicyAncestorStatus, PolicyStatus};
