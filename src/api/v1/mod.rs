//! The `gateway.networking.k8s.io/v1` kinds this crate handles, and the
//! reference and status types they share.

mod backend_tls_policy;
mod reference;
mod reference_grant;
mod status;

pub use backend_tls_policy::{
    BackendTlsPolicy, BackendTlsPolicySpec, BackendTlsPolicyValidation, SubjectAltName,
};
pub use reference::{
    LocalObjectReference, LocalPolicyTargetReferenceWithSectionName, ParentReference,
};
pub use reference_grant::{
    ReferenceGrant, ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
};
pub use status::{PolicyAncestorStatus, PolicyStatus};
