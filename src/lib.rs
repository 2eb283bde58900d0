//! Gateway API [`BackendTLSPolicy`] for Rust: the one implementation of TLS
//! from a gateway to its backends that Gateway API implementations can share.
//!
//! A `BackendTLSPolicy` (GEP-1897, `gateway.networking.k8s.io/v1`) tells a
//! gateway how to reach a backend Service over TLS: which CA certificates to
//! trust, which hostname to send as SNI and verify, which subject alternative
//! names to accept. This crate covers the whole path from those objects to
//! a ready, fail-closed `rustls::ClientConfig`.
//!
//! Data flows one way: wire types → validated types → index → resolution
//! → status / TLS.
//!
//! - [`api`]: the wire types — `BackendTLSPolicy` [`v1`](api::v1) (and the
//!   deprecated [`v1alpha3`](api::v1alpha3)), `ReferenceGrant`
//!   [`v1`](api::v1) and [`v1beta1`](api::v1beta1) — with kube's
//!   `CustomResource` derive, so `kube::Api<BackendTlsPolicy>` just works,
//!   and the part of a Gateway read for its client certificate;
//! - [`crd`]: their CustomResourceDefinitions, schema-equal to the upstream
//!   Gateway API v1.6.1 ones of either channel, CEL rules and messages
//!   included;
//! - [`name`] and [`policy`]: validated types. [`ValidatedPolicy`] is
//!   reachable only through `TryFrom` from the wire spec, and the
//!   [`ValidationErrors`] on the way name every problem by field path, in
//!   agreement with the API server (the few places where this crate is
//!   stricter are listed in [`policy`]);
//! - [`index`]: a pure in-memory [`Index`] of policies, Services, CA
//!   ConfigMaps and Secrets, and ReferenceGrants; [`Index::resolve`] says
//!   which policy applies to a backend port and whether it can be used,
//!   with hash lookups only;
//! - [`grant`]: the ReferenceGrant rules;
//! - [`status`]: condition types and reasons, each policy's conditions
//!   ([`Index::policy_conditions`]), and [`status::merge`], which writes this
//!   controller's ancestor entries without touching anyone else's;
//! - [`tls`]: [`tls::client_config`] turns an applied policy into an
//!   `Arc<rustls::ClientConfig>` and the `ServerName` to dial, verifying the
//!   hostname or the subject alternative names (DNS or SPIFFE URI), with the
//!   Gateway's client certificate when it has one, and [`tls::TlsCache`] hands
//!   back the same `Arc` while nothing changed.
//!
//! Policy problems are values, not errors: a policy that applies but cannot
//! be used comes back from [`AppliedPolicy::usable`](index::AppliedPolicy::usable)
//! as the list of problems, and the caller answers HTTP 5xx. There is no
//! plaintext fallback.
//!
//! # Getting started
//!
//! ```
//! use backend_tls_policy::{
//!     api::v1::{BackendTlsPolicy, ParentReference},
//!     grant::Referrer,
//!     index::{BackendRef, Index, ObjectKey, Outcome},
//!     status,
//! };
//! use k8s_openapi::api::core::v1::{ConfigMap, Service};
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
//! use serde_json::{from_value, json};
//!
//! // Objects as a kube reflector (or a manifests folder) hands them over.
//! // A PEM CA bundle, as a ConfigMap's `ca.crt` holds it.
//! const CA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki/ca.crt"));
//! let mut index = Index::default();
//! index.apply(&from_value::<Service>(json!({
//!     "metadata": {"namespace": "shop", "name": "shop"},
//!     "spec": {"ports": [{"name": "https", "port": 443}]},
//! }))?);
//! index.apply(&from_value::<ConfigMap>(json!({
//!     "metadata": {"namespace": "shop", "name": "shop-ca"},
//!     "data": {"ca.crt": CA},
//! }))?);
//! index.apply(&from_value::<BackendTlsPolicy>(json!({
//!     "metadata": {"namespace": "shop", "name": "shop-tls", "generation": 1},
//!     "spec": {
//!         "targetRefs": [{"group": "", "kind": "Service", "name": "shop", "sectionName": "https"}],
//!         "validation": {
//!             "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "shop-ca"}],
//!             "hostname": "shop.example.com",
//!         },
//!     },
//! }))?);
//!
//! // An HTTPRoute in `shop` sends traffic to Service shop, port 443.
//! let backend = BackendRef::service(Referrer::gateway_api("HTTPRoute", "shop"), "shop", "shop", 443);
//! let resolution = index.resolve(&backend);
//! let Outcome::Policy(applied) = resolution.outcome() else { unreachable!() };
//! let policy = applied.usable().expect("usable, or the caller answers 5xx");
//! assert_eq!(policy.hostname().as_str(), "shop.example.com"); // SNI and name to verify
//! println!("{}", resolution.explain(&backend));
//!
//! // What to dial with: `TlsConnector::from(tls.config).connect(tls.server_name, tcp)`.
//! let tls = backend_tls_policy::tls::client_config(applied, &Default::default())?;
//! assert_eq!(tls.server_name, rustls::pki_types::ServerName::try_from("shop.example.com")?);
//!
//! // Status for the policy, reported against the Gateway `infra/edge`.
//! let key = ObjectKey::new("shop", "shop-tls");
//! let conditions = index.policy_conditions(&key).unwrap();
//! assert!(conditions.accepted.status && conditions.resolved_refs.status);
//! let gateway = ParentReference { namespace: Some("infra".into()), name: "edge".into(), ..Default::default() };
//! let now = Time(k8s_openapi::jiff::Timestamp::now());
//! let merged = status::merge(
//!     index.policy(&key).unwrap(),
//!     "example.com/gateway-controller",
//!     [(gateway, conditions.to_conditions(&now))],
//! );
//! assert!(merged.changed && merged.dropped.is_empty()); // patch `merged.status` onto the policy
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Use it in your controller
//!
//! With the `runtime` feature, `runtime::SharedIndex::watch` keeps an
//! index current from kube watchers (or feed it the controller's own
//! watcher streams), the data path calls `runtime::SharedIndex::resolve`
//! (which refuses until every watch has listed, and while a watch that
//! ended is not restarted; resolving through `index.read()` would take a
//! policy not yet listed for none) and
//! [`tls::TlsCache::client_config`] per new connection, and the control path
//! calls `runtime::write_all_status`. Map the outcomes like this:
//!
//! | outcome | what to do |
//! | --- | --- |
//! | `runtime::NotSynced` | answer 503: a policy may not be listed yet (`waiting_for()` says which watch) |
//! | `Outcome::NoPolicy` | connect without BackendTLSPolicy TLS |
//! | `Outcome::Policy` and a `BackendTls` | dial with `config` and `server_name` |
//! | `Outcome::Policy` and a `TlsError` (or `usable()` fails) | answer 502/503, never plaintext |
//! | `Outcome::RefNotPermitted`, `Outcome::BackendNotFound` | Route `ResolvedRefs=False` with `outcome.route_reason()`; answer 500 |
//! | `Outcome::PortNotFound` | answer 500 |
//! | `Index::client_certificate` error | Gateway `ResolvedRefs=False` with `error.reason()`; in `TlsParams::client_certificate` it fails the config |
//!
//! The README has the whole path from `Client::try_default()` to
//! `TlsConnector::connect`, and `examples/controller.rs` a complete
//! controller.
//!
//! # Security
//!
//! The guarantees (fail closed, no plaintext fallback, no way to turn
//! verification off), the limits (no CRL/OCSP, the API server's objects are
//! trusted) and how to report a problem are in
//! [SECURITY.md](https://docs.rs/crate/backend-tls-policy/latest/source/SECURITY.md)
//! (`SECURITY.md` at the root of the crate).
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
//! - `aws-lc-rs`: rustls' aws-lc-rs crypto provider. With `ring` on too
//!   (it is a default feature), neither is the default: install one with
//!   `CryptoProvider::install_default`, pass one to
//!   `tls::client_config_with_provider`, or use `default-features = false,
//!   features = ["aws-lc-rs", "webpki-roots"]`.
//! - `webpki-roots` (default): `wellKnownCACertificates: System` means the
//!   bundled Mozilla roots.
//! - `native-roots`: `System` means the platform's roots (when
//!   `webpki-roots` is off). With neither, `System` is `Invalid`.
//! - `runtime`: the `runtime` module, kube-rs glue — watchers feeding a shared index,
//!   and status written with server-side apply. Pulls in kube's client.
//!
//! [`BackendTLSPolicy`]: https://gateway-api.sigs.k8s.io/api-types/backendtlspolicy/

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod api;
pub mod crd;
pub mod grant;
pub mod index;
pub mod name;
pub mod policy;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub mod runtime;
pub mod status;
pub mod tls;

pub use index::{Index, Resolution};
pub use policy::{ValidatedPolicy, ValidationErrors};

// The README's Rust snippets are doctests too (they use the runtime).
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "runtime"))]
pub struct ReadmeDoctests;
