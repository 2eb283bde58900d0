//! The part of a `Gateway` this crate reads: its identity and
//! `spec.tls.backend.clientCertificateRef` (GEP-3155).
//!
//! Not the Gateway type family: this crate neither owns nor installs the
//! Gateway CRD. Deserializing a whole Gateway into [`Gateway`] keeps these
//! fields and ignores the others. A controller with its own Gateway type
//! passes the reference to `Index::client_certificate_from_ref` instead.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::SecretObjectReference;

/// A Gateway, reduced to what its backend client certificate needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Gateway {
    /// The Gateway's metadata; its namespace is where a reference without
    /// one points, and where a cross-namespace reference comes from.
    pub metadata: ObjectMeta,
    /// `spec`, reduced to `tls.backend`.
    #[serde(default)]
    pub spec: GatewaySpec,
}

/// `Gateway.spec`, reduced to `tls.backend`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySpec {
    /// `spec.tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTlsConfig>,
}

/// `Gateway.spec.tls`, reduced to `backend`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayTlsConfig {
    /// `spec.tls.backend`: the Gateway as a TLS client of its backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<GatewayBackendTls>,
}

/// `Gateway.spec.tls.backend`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayBackendTls {
    /// The Secret with the certificate and key the Gateway presents to
    /// backends that ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<SecretObjectReference>,
}

impl Gateway {
    /// `spec.tls.backend.clientCertificateRef`, if set.
    pub fn client_certificate_ref(&self) -> Option<&SecretObjectReference> {
        self.spec.tls.as_ref()?.backend.as_ref()?.client_certificate_ref.as_ref()
    }
}
