//! Any JSON as a BackendTLSPolicy: deserialization, validation, indexing,
//! resolution and status never panic; a rejected spec has at least one
//! error.
#![no_main]

use backend_tls_policy::{
    Index, ValidatedPolicy,
    api::v1::BackendTlsPolicy,
    grant::Referrer,
    index::{BackendRef, ObjectKey},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut policy) = serde_json::from_slice::<BackendTlsPolicy>(data) else { return };
    if let Err(errors) = ValidatedPolicy::try_from(&policy.spec) {
        assert!(errors.len() > 0);
        let _ = errors.to_string();
    }
    policy.metadata.namespace.get_or_insert_with(|| "ns".into());
    policy.metadata.name.get_or_insert_with(|| "p".into());
    let key = ObjectKey::of(&policy.metadata).unwrap();
    let mut index = Index::default();
    index.apply(&policy);
    let _ = index.policy_conditions(&key);
    for target in &policy.spec.target_refs {
        let backend = BackendRef::service(Referrer::gateway_api("HTTPRoute", "ns"), &key.namespace, &target.name, 443);
        let resolution = index.resolve(&backend);
        let _ = resolution.explain(&backend).to_string();
    }
    index.delete::<BackendTlsPolicy>(&key);
    assert_eq!(index.policy_count(), 0);
});
