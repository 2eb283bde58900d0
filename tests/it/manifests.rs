//! Objects users write deserialize into the wire types and serialize back
//! to the same document: nothing added, nothing lost.

use backend_tls_policy::api::{v1, v1alpha3, v1beta1};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/manifests/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Deserializes `name` as `K`, asserts it serializes back to the same JSON,
/// and returns it.
#[track_caller]
fn round_trip<K: DeserializeOwned + Serialize>(name: &str) -> K {
    let document = fixture(name);
    let object: K = serde_json::from_value(document.clone()).unwrap();
    assert_eq!(serde_json::to_value(&object).unwrap(), document, "{name} changed on the way back");
    object
}

#[test]
fn backend_tls_policy_v1_round_trips() {
    let policy: v1::BackendTlsPolicy = round_trip("backendtlspolicy-v1.yaml");
    assert_eq!(policy.spec.validation.hostname, "shop.example.com");
    let sans = policy.spec.validation.subject_alt_names.as_deref().unwrap();
    assert_eq!(sans[1], v1::SubjectAltName::uri("spiffe://cluster.local/ns/shop/sa/shop"));
    // Defaults the API server would fill in are not invented on the client.
    let ancestor = &policy.status.as_ref().unwrap().ancestors[0].ancestor_ref;
    assert_eq!((ancestor.group.as_deref(), ancestor.kind.as_deref()), (None, None));
    assert_eq!((ancestor.group(), ancestor.kind()), ("gateway.networking.k8s.io", "Gateway"));
}

#[test]
fn backend_tls_policy_v1alpha3_round_trips_and_converts() {
    let old: v1alpha3::BackendTlsPolicy = round_trip("backendtlspolicy-v1alpha3.yaml");
    let new = v1::BackendTlsPolicy::from(old.clone());
    assert_eq!(new.spec.validation.well_known_ca_certificates.as_deref(), Some("System"));
    let mut as_v1 = serde_json::to_value(&new).unwrap();
    assert_eq!(as_v1["apiVersion"], "gateway.networking.k8s.io/v1");
    // Apart from apiVersion the documents are the same.
    as_v1["apiVersion"] = "gateway.networking.k8s.io/v1alpha3".into();
    assert_eq!(as_v1, fixture("backendtlspolicy-v1alpha3.yaml"));
    assert_eq!(v1alpha3::BackendTlsPolicy::from(new), old);
}

#[test]
fn reference_grants_round_trip_in_both_versions() {
    let grant: v1::ReferenceGrant = round_trip("referencegrant-v1.yaml");
    assert_eq!(grant.spec.to[0].name.as_deref(), Some("shop"));
    assert_eq!(grant.spec.to[1].name, None);
    let beta: v1beta1::ReferenceGrant = round_trip("referencegrant-v1beta1.yaml");
    assert_eq!(v1::ReferenceGrant::from(beta).spec.from[0].kind, "Gateway");
}

#[test]
fn well_known_ca_certificates_keeps_its_upstream_spelling() {
    let validation = v1::BackendTlsPolicyValidation {
        well_known_ca_certificates: Some("System".into()),
        hostname: "a.example.com".into(),
        ..Default::default()
    };
    let json = serde_json::to_value(&validation).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"wellKnownCACertificates": "System", "hostname": "a.example.com"})
    );
}
