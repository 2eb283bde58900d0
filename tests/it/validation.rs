//! `ValidatedPolicy::try_from` against the table in
//! `tests/fixtures/validation-cases.yaml`, which `apiserver.rs` checks
//! against a real API server: the same objects are accepted and rejected,
//! at the same field paths, with the same CEL messages, except where the
//! table lists what this crate adds (`ours`).

use backend_tls_policy::{
    api::v1,
    policy::{Problem, ValidatedPolicy},
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    spec: serde_json::Value,
    errors: Vec<ServerError>,
    #[serde(default)]
    ours: Vec<String>,
}

#[derive(Deserialize)]
struct ServerError {
    field: String,
    message: String,
}

/// `(field, CEL message)` for a rule, `(field, None)` for a schema error.
type Reported = (String, Option<String>);

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validation-cases.yaml");
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn validation_agrees_with_the_api_server_table() {
    let cel_messages = [
        backend_tls_policy::policy::rule::SECTION_NAME_SPECIFIED,
        backend_tls_policy::policy::rule::SECTION_NAME_UNIQUE,
        backend_tls_policy::policy::rule::NOT_BOTH_CA_SOURCES,
        backend_tls_policy::policy::rule::EITHER_CA_SOURCE,
        backend_tls_policy::policy::rule::SAN_NEEDS_HOSTNAME,
        backend_tls_policy::policy::rule::SAN_NO_HOSTNAME,
        backend_tls_policy::policy::rule::SAN_NEEDS_URI,
        backend_tls_policy::policy::rule::SAN_NO_URI,
    ];
    let mut mismatches = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 40, "the table lost cases: {}", cases.len());
    for case in cases {
        let spec: v1::BackendTlsPolicySpec = serde_json::from_value(case.spec).unwrap();
        let mut expected: Vec<Reported> = case
            .errors
            .iter()
            .filter(|e| e.field != "<nil>") // the server's "rules not checked" note
            .map(|e| {
                let rule = cel_messages.contains(&e.message.as_str()).then(|| e.message.clone());
                (e.field.clone(), rule)
            })
            .chain(case.ours.iter().map(|field| (field.clone(), None)))
            .collect();
        expected.sort();
        let mut got: Vec<Reported> = match ValidatedPolicy::try_from(&spec) {
            Ok(_) => Vec::new(),
            Err(errors) => {
                assert!(!errors.is_empty());
                errors
                    .iter()
                    .map(|e| {
                        let rule = match e.problem() {
                            Problem::Rule(message) => Some((*message).to_owned()),
                            _ => None,
                        };
                        (e.path().to_owned(), rule)
                    })
                    .collect()
            }
        };
        got.sort();
        if got != expected {
            mismatches.push(format!("{}:\n  expected {expected:?}\n  ours     {got:?}", case.name));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn errors_read_well() {
    let spec: v1::BackendTlsPolicySpec = serde_json::from_value(serde_json::json!({
        "targetRefs": [{"group": "", "kind": "Service", "name": "a"}],
        "validation": {
            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}],
            "hostname": "10.0.0.1",
            "subjectAltNames": [{"type": "URI", "uri": "spiffe://a"}, {"type": "URI", "uri": "a.example"}],
        },
    }))
    .unwrap();
    let errors = ValidatedPolicy::try_from(&spec).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "spec.validation.hostname: invalid value \"10.0.0.1\": must be a DNS name, not an IP address \
         (its last label is a number); spec.validation.subjectAltNames[1].uri: invalid value \
         \"a.example\": must be an absolute URI (scheme://authority…)"
    );
}
