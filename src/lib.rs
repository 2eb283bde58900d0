//! Gateway API [`BackendTLSPolicy`] for Rust: the one implementation of TLS
//! from a gateway to its backends that Gateway API implementations can share.
//!
//! A `BackendTLSPolicy` (GEP-1897, `gateway.networking.k8s.io/v1`) tells a
//! gateway how to reach a backend Service over TLS: which CA certificates to
//! trust, which hostname to send as SNI and verify, which subject alternative
//! names to accept. This crate models it faithfully and, issue by issue,
//! grows into the whole path from those objects to a ready, fail-closed
//! `rustls::ClientConfig`.
//!
//! What is here today:
//!
//! - [`api`]: the wire types — `BackendTLSPolicy` [`v1`](api::v1) (and the
//!   deprecated [`v1alpha3`](api::v1alpha3)), `ReferenceGrant`
//!   [`v1`](api::v1) and [`v1beta1`](api::v1beta1) — with kube's
//!   `CustomResource` derive, so `kube::Api<BackendTlsPolicy>` just works;
//! - [`crd`]: their CustomResourceDefinitions, schema-equal to the upstream
//!   Gateway API v1.6.1 standard channel, CEL rules and messages included.
//!
//! # Getting started
//!
//! ```
//! use backend_tls_policy::api::v1::{BackendTlsPolicy, BackendTlsPolicySpec};
//!
//! // What a user applies; a kube reflector hands over the same type.
//! let policy: BackendTlsPolicy = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "gateway.networking.k8s.io/v1",
//!     "kind": "BackendTLSPolicy",
//!     "metadata": {"name": "shop", "namespace": "shop"},
//!     "spec": {
//!         "targetRefs": [{"group": "", "kind": "Service", "name": "shop"}],
//!         "validation": {
//!             "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "shop-ca"}],
//!             "hostname": "shop.example.com",
//!         },
//!     },
//! }))?;
//! assert_eq!(policy.spec.validation.hostname, "shop.example.com");
//!
//! // The CRD to install, as upstream ships it.
//! let crd = backend_tls_policy::crd::backend_tls_policies();
//! assert_eq!(crd.metadata.name.as_deref(), Some("backendtlspolicies.gateway.networking.k8s.io"));
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Kubernetes version
//!
//! Like every library on k8s-openapi, this crate does not choose the
//! Kubernetes version: the application that uses it enables one of
//! k8s-openapi's version features (for example `k8s-openapi = { version =
//! "0.29", features = ["latest"] }`).
//!
//! # Crate features
//!
//! - `ring` (default): rustls' *ring* crypto provider.
//! - `aws-lc-rs`: rustls' aws-lc-rs crypto provider.
//!
//! [`BackendTLSPolicy`]: https://gateway-api.sigs.k8s.io/api-types/backendtlspolicy/

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
pub mod crd;
pub mod grant;
pub mod index;
pub mod name;
pub mod policy;
pub mod status;

// The README's Rust snippets are doctests too.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
