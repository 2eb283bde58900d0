//! `BackendTLSPolicy` `gateway.networking.k8s.io/v1`.

// `KubeSchema` copies each struct, `pub` included, into a private scope to
// attach the CEL rules; the copies trip this lint.
#![allow(unreachable_pub)]
// The derive's expansion does not count as a use of imported rule types, so
// the rules name them by path.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::{LocalObjectReference, LocalPolicyTargetReferenceWithSectionName, PolicyStatus};
use crate::api::pattern;

/// How a Gateway connects to a backend over TLS: which objects the policy
/// applies to and how the backend's certificate is verified.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "BackendTLSPolicy",
    root = "BackendTlsPolicy",
    plural = "backendtlspolicies",
    shortname = "btlspolicy",
    category = "gateway-api",
    namespaced,
    doc = "A policy telling Gateways how to connect to a backend Service over TLS.",
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    annotation(
        "api-approved.kubernetes.io",
        "https://github.com/kubernetes-sigs/gateway-api/pull/4530"
    ),
    annotation("gateway.networking.k8s.io/bundle-version", "v1.6.1"),
    annotation("gateway.networking.k8s.io/channel", "standard"),
    label("gateway.networking.k8s.io/policy", "Direct")
)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    /// The objects the policy applies to, in the policy's namespace: usually
    /// one Service, optionally narrowed to one port by `sectionName`.
    ///
    /// Entries for the same object must all name distinct sections, or there
    /// must be just one entry for it without a section.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        merge_strategy = kube::core::ListMerge::Atomic,
        validation = kube::core::Rule::new("self.all(p1, self.all(p2, p1.group == p2.group && p1.kind == p2.kind && p1.name == p2.name ? ((!has(p1.sectionName) || p1.sectionName == '') == (!has(p2.sectionName) || p2.sectionName == '')) : true))")
            .message("sectionName must be specified when targetRefs includes 2 or more references to the same target"),
        validation = kube::core::Rule::new("self.all(p1, self.exists_one(p2, p1.group == p2.group && p1.kind == p2.kind && p1.name == p2.name && (((!has(p1.sectionName) || p1.sectionName == '') && (!has(p2.sectionName) || p2.sectionName == '')) || (has(p1.sectionName) && has(p2.sectionName) && p1.sectionName == p2.sectionName))))")
            .message("sectionName must be unique when targetRefs includes 2 or more references to the same target"),
    )]
    pub target_refs: Vec<LocalPolicyTargetReferenceWithSectionName>,

    /// How the backend's certificate is verified.
    pub validation: BackendTlsPolicyValidation,

    /// Further TLS settings, as keys defined by the implementation under a
    /// domain prefix (`example.com/min-tls-version`). Keys without a prefix
    /// are reserved for Gateway API. At most 16 entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "options_schema")]
    pub options: Option<BTreeMap<String, String>>,
}

/// What the backend's certificate is verified against.
///
/// Exactly one source of trust anchors is given: `caCertificateRefs` or
/// `wellKnownCACertificates`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(r#"!(has(self.caCertificateRefs) && size(self.caCertificateRefs) > 0 && has(self.wellKnownCACertificates) && self.wellKnownCACertificates != "")"#)
        .message("must not contain both CACertificateRefs and WellKnownCACertificates"),
    validation = kube::core::Rule::new(r#"(has(self.caCertificateRefs) && size(self.caCertificateRefs) > 0 || has(self.wellKnownCACertificates) && self.wellKnownCACertificates != "")"#)
        .message("must specify either CACertificateRefs or WellKnownCACertificates"),
)]
pub struct BackendTlsPolicyValidation {
    /// Objects in the policy's namespace holding PEM-encoded CA certificates
    /// to trust, such as a ConfigMap with the key `ca.crt`. At most 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Atomic)]
    pub ca_certificate_refs: Option<Vec<LocalObjectReference>>,

    /// A named set of CA certificates chosen by the implementation instead
    /// of `caCertificateRefs`: `System` for the usual public roots, or a
    /// domain-prefixed name of the implementation's own.
    #[serde(rename = "wellKnownCACertificates", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(pattern::WELL_KNOWN_CA_CERTIFICATES))]
    pub well_known_ca_certificates: Option<String>,

    /// The name sent as SNI to the backend. Unless `subjectAltNames` is set,
    /// the backend's certificate must also be valid for this name.
    #[schemars(length(min = 1, max = 253), pattern(pattern::SUBDOMAIN))]
    pub hostname: String,

    /// Names the backend's certificate may present instead of `hostname`.
    /// When set, `hostname` is not used to authenticate the backend and the
    /// certificate must carry at least one of these. At most 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Atomic)]
    pub subject_alt_names: Option<Vec<SubjectAltName>>,
}

/// One name the backend's certificate may carry as a subject alternative
/// name.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[x_kube(
    validation = kube::core::Rule::new(r#"!(self.type == "Hostname" && (!has(self.hostname) || self.hostname == ""))"#)
        .message("SubjectAltName element must contain Hostname, if Type is set to Hostname"),
    validation = kube::core::Rule::new(r#"!(self.type != "Hostname" && has(self.hostname) && self.hostname != "")"#)
        .message("SubjectAltName element must not contain Hostname, if Type is not set to Hostname"),
    validation = kube::core::Rule::new(r#"!(self.type == "URI" && (!has(self.uri) || self.uri == ""))"#)
        .message("SubjectAltName element must contain URI, if Type is set to URI"),
    validation = kube::core::Rule::new(r#"!(self.type != "URI" && has(self.uri) && self.uri != "")"#)
        .message("SubjectAltName element must not contain URI, if Type is not set to URI"),
)]
pub struct SubjectAltName {
    /// Which field holds the name: [`SubjectAltName::HOSTNAME`] or
    /// [`SubjectAltName::URI`].
    #[serde(rename = "type")]
    #[schemars(extend("enum" = [SubjectAltName::HOSTNAME, SubjectAltName::URI]))]
    pub type_: String,

    /// A DNS name, possibly with a leading `*.` wildcard label; set when
    /// `type` is `Hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(pattern::WILDCARD_HOSTNAME))]
    pub hostname: Option<String>,

    /// An absolute URI such as a SPIFFE ID
    /// (`spiffe://cluster.local/ns/shop/sa/cart`); set when `type` is `URI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(pattern::ABSOLUTE_URI))]
    pub uri: Option<String>,
}

impl SubjectAltName {
    /// The `type` of a DNS-name entry.
    pub const HOSTNAME: &str = "Hostname";
    /// The `type` of a URI entry.
    pub const URI: &str = "URI";

    /// An entry of type `Hostname`.
    pub fn hostname(hostname: impl Into<String>) -> Self {
        Self { type_: Self::HOSTNAME.into(), hostname: Some(hostname.into()), uri: None }
    }

    /// An entry of type `URI`.
    pub fn uri(uri: impl Into<String>) -> Self {
        Self { type_: Self::URI.into(), hostname: None, uri: Some(uri.into()) }
    }
}

/// The schema of `options`: a string map of at most 16 entries, values of at
/// most 4096 characters (the API server does not check the keys).
fn options_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 16,
        "additionalProperties": {
            "type": "string",
            "minLength": 0,
            "maxLength": 4096,
        },
    })
}
