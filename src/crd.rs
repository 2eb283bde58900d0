//! The CustomResourceDefinitions of the kinds in [`crate::api`], equal in
//! schema to the upstream Gateway API v1.6.1 CRDs of either release
//! channel ([`Channel`]).
//!
//! Install them from code, or write them out as YAML with
//! `cargo run --example crdgen` (the files in `crd-yaml/`, and
//! `crd-yaml/experimental/`). Install the channel the cluster runs: the
//! standard CRDs on an experimental cluster stop serving `v1alpha3`.
//!
//! kube's derive gives one CRD per version; this module merges the versions
//! and smooths what the derive adds but upstream does not have (`nullable`
//! on optional fields, a `title`, `required` in declaration order), so the
//! result is the upstream schema and not merely a compatible one.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceSubresources, JSONSchemaProps, JSONSchemaPropsOrArray,
    JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::api::{v1, v1alpha3, v1beta1};

/// The `backendtlspolicies.gateway.networking.k8s.io` CRD: `v1` served and
/// stored, the deprecated `v1alpha3` listed but not served.
pub fn backend_tls_policies() -> CustomResourceDefinition {
    normalize(v1::BackendTlsPolicy::crd(), [v1alpha3::BackendTlsPolicy::crd()])
}

/// The `referencegrants.gateway.networking.k8s.io` CRD: `v1` served,
/// `v1beta1` served and stored.
pub fn reference_grants() -> CustomResourceDefinition {
    normalize(v1::ReferenceGrant::crd(), [v1beta1::ReferenceGrant::crd()])
}

/// Every CRD of this crate, in the order to apply them (standard channel).
pub fn all() -> [CustomResourceDefinition; 2] {
    [backend_tls_policies(), reference_grants()]
}

/// A Gateway API release channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// The standard channel: `v1alpha3` of BackendTLSPolicy listed, not
    /// served.
    Standard,
    /// The experimental channel: the same schemas, with `v1alpha3` of
    /// BackendTLSPolicy served.
    Experimental,
}

impl Channel {
    /// The value of the `gateway.networking.k8s.io/channel` annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Experimental => "experimental",
        }
    }
}

/// Every CRD of this crate for `channel`, in the order to apply them.
pub fn all_for(channel: Channel) -> [CustomResourceDefinition; 2] {
    all().map(|mut crd| {
        let annotations = crd.metadata.annotations.get_or_insert_default();
        annotations.insert(CHANNEL_ANNOTATION.to_owned(), channel.as_str().to_owned());
        if channel == Channel::Experimental {
            // Every version is served there; on the standard channel,
            // v1alpha3 of BackendTLSPolicy is listed only.
            crd.spec.versions.iter_mut().for_each(|version| version.served = true);
        }
        crd
    })
}

const CHANNEL_ANNOTATION: &str = "gateway.networking.k8s.io/channel";

/// Merges the single-version CRDs `others` into `first` (versions stay in
/// this order, as upstream lists them) and brings the result to upstream's
/// shape.
///
/// Labels and annotations come from whichever version sets them: the derive
/// puts them on one version's CRD only.
fn normalize(
    mut crd: CustomResourceDefinition,
    others: impl IntoIterator<Item = CustomResourceDefinition>,
) -> CustomResourceDefinition {
    for other in others {
        let meta = &mut crd.metadata;
        meta.labels = meta.labels.take().or(other.metadata.labels);
        meta.annotations = meta.annotations.take().or(other.metadata.annotations);
        crd.spec.versions.extend(other.spec.versions);
    }

    let names = &mut crd.spec.names;
    names.list_kind = Some(format!("{}List", names.kind));

    for version in &mut crd.spec.versions {
        // Upstream writes `subresources: {}` for kinds without status.
        version.subresources.get_or_insert_with(CustomResourceSubresources::default);
        let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        schema.title = None;
        let properties = schema.properties.get_or_insert_default();
        for (name, type_) in [("apiVersion", "string"), ("kind", "string"), ("metadata", "object")]
        {
            properties.entry(name.to_owned()).or_insert_with(|| JSONSchemaProps {
                type_: Some(type_.to_owned()),
                ..Default::default()
            });
        }
        tidy(schema);
    }
    crd
}

/// Removes `nullable` (kube marks every `Option` with it; upstream has none)
/// and sorts `required` (schemars keeps declaration order; upstream sorts),
/// all the way down.
fn tidy(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    if let Some(required) = &mut schema.required {
        required.sort();
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        tidy(child);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => tidy(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(tidy),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &mut schema.additional_properties {
        tidy(values);
    }
}
