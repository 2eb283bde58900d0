//! Property test: on generated specs, the CEL rules this crate evaluates in
//! Rust report exactly what kube's CEL evaluator reports when it runs the
//! rules of the generated CRD.
//!
//! The generator stays inside the limits that make the API server skip CEL
//! (item counts, lengths, enums) and draws names from small pools, so that
//! duplicates, empty strings and mixed sections are common.

use backend_tls_policy::{
    api::v1,
    crd,
    policy::{Problem, ValidatedPolicy},
};
use kube::core::cel::Validator;
use proptest::prelude::*;
use serde_json::{Value, json};

fn target() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["", "example.com"]),
        prop::sample::select(vec!["Service", "ServiceImport"]),
        prop::sample::select(vec!["a", "b"]),
        prop::option::of(prop::sample::select(vec!["", "http", "https"])),
    )
        .prop_map(|(group, kind, name, section)| {
            let mut target = json!({"group": group, "kind": kind, "name": name});
            if let Some(section) = section {
                target["sectionName"] = section.into();
            }
            target
        })
}

fn san() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["Hostname", "URI"]),
        prop::option::of(prop::sample::select(vec!["", "a.example.com"])),
        prop::option::of(prop::sample::select(vec!["", "spiffe://a/b"])),
    )
        .prop_map(|(type_, hostname, uri)| {
            let mut san = json!({"type": type_});
            if let Some(hostname) = hostname {
                san["hostname"] = hostname.into();
            }
            if let Some(uri) = uri {
                san["uri"] = uri.into();
            }
            san
        })
}

fn spec() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(target(), 1..=5),
        prop::option::of(prop::collection::vec(
            Just(json!({"group": "", "kind": "ConfigMap", "name": "ca"})),
            0..=2,
        )),
        prop::option::of(prop::sample::select(vec!["", "System"])),
        prop::option::of(prop::collection::vec(san(), 0..=3)),
    )
        .prop_map(|(targets, refs, well_known, sans)| {
            let mut validation = json!({"hostname": "backend.example.com"});
            if let Some(refs) = refs {
                validation["caCertificateRefs"] = refs.into();
            }
            if let Some(well_known) = well_known {
                validation["wellKnownCACertificates"] = well_known.into();
            }
            if let Some(sans) = sans {
                validation["subjectAltNames"] = sans.into();
            }
            json!({"targetRefs": targets, "validation": validation})
        })
}

fn crd_schema() -> Value {
    let crd = crd::backend_tls_policies();
    let version = crd.spec.versions.iter().find(|v| v.name == "v1").unwrap();
    serde_json::to_value(version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap())
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rules_agree_with_kube_cel(spec in spec()) {
        let object = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "BackendTLSPolicy",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": spec,
        });
        let mut theirs: Vec<(String, String)> = match Validator::new().validate(&crd_schema(), &object, None) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(|e| (e.field_path.clone(), e.message.clone())).collect(),
        };
        theirs.sort();

        let typed: v1::BackendTlsPolicySpec = serde_json::from_value(object["spec"].clone()).unwrap();
        let validated = ValidatedPolicy::try_from(&typed);
        match &validated {
            // wire → validated → wire → validated is the identity.
            Ok(policy) => {
                let wire = v1::BackendTlsPolicySpec::from(policy);
                prop_assert_eq!(&ValidatedPolicy::try_from(&wire).unwrap(), policy);
            }
            // A rejected spec always says why, at a field under `spec`.
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                prop_assert!(errors.iter().all(|e| e.path().starts_with("spec.")));
            }
        }
        let mut ours: Vec<(String, String)> = match validated {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .filter_map(|e| match e.problem() {
                    Problem::Rule(message) => Some((e.path().to_owned(), (*message).to_owned())),
                    _ => None,
                })
                .collect(),
        };
        ours.sort();
        prop_assert_eq!(ours, theirs, "spec: {}", object["spec"]);
    }
}

/// The property above is not vacuous: the evaluator does report the rules,
/// at the paths this crate uses.
#[test]
fn kube_cel_reports_rules_at_our_paths() {
    let object = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "BackendTLSPolicy",
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "a"}, {"group": "", "kind": "Service", "name": "a"}],
            "validation": {"hostname": "a.example.com", "subjectAltNames": [{"type": "URI"}]},
        },
    });
    let errors = Validator::new().validate(&crd_schema(), &object, None).unwrap_err();
    let mut got: Vec<_> =
        errors.iter().map(|e| (e.field_path.as_str(), e.message.as_str())).collect();
    got.sort();
    use backend_tls_policy::policy::rule;
    assert_eq!(
        got,
        [
            ("spec.targetRefs", rule::SECTION_NAME_UNIQUE),
            ("spec.validation", rule::EITHER_CA_SOURCE),
            ("spec.validation.subjectAltNames[0]", rule::SAN_NEEDS_URI),
        ]
    );
}
