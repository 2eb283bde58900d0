//! The generated CRDs: schema parity with upstream Gateway API v1.6.1 and
//! no drift between the types and the committed `crd-yaml/` files.

use std::path::{Path, PathBuf};

use backend_tls_policy::crd;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

#[path = "../../examples/crdgen.rs"]
#[allow(dead_code)]
mod crdgen;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The upstream CRDs live in the read-only `shared/` folder beside the
/// project; `UPSTREAM_CRDS` points elsewhere.
fn upstream_dir() -> PathBuf {
    std::env::var_os("UPSTREAM_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../shared/upstream/standard"))
}

fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// Drops every `description`: the schema keyword, not a property that
/// happens to be called so.
fn strip_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("description");
            for (key, child) in map.iter_mut() {
                if key == "properties" {
                    // Keys here are property names; recurse into the schemas.
                    for schema in child.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                        strip_descriptions(schema);
                    }
                } else {
                    strip_descriptions(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// Every difference between two JSON values, one line each, with its path.
/// Versions are matched by name, numbers by value (`65535` = `65535.0`).
fn diff(path: &str, ours: &Value, upstream: &Value, out: &mut Vec<String>) {
    match (ours, upstream) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, theirs) in b {
                match a.get(key) {
                    Some(mine) => diff(&format!("{path}.{key}"), mine, theirs, out),
                    None => out.push(format!("{path}.{key}: missing in ours (upstream {theirs})")),
                }
            }
            for (key, mine) in a {
                if !b.contains_key(key) {
                    out.push(format!("{path}.{key}: only in ours ({mine})"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if path.ends_with(".versions") => {
            let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_owned();
            let names = |vs: &[Value]| vs.iter().map(name).collect::<Vec<_>>();
            if names(a) != names(b) {
                out.push(format!("{path}: versions {:?}, upstream {:?}", names(a), names(b)));
            }
            for theirs in b {
                if let Some(mine) = a.iter().find(|v| name(v) == name(theirs)) {
                    diff(&format!("{path}[{}]", name(theirs)), mine, theirs, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (mine, theirs)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), mine, theirs, out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: ours {a}, upstream {b}")),
    }
}

/// The differences between `ours` and an upstream CRD file, descriptions
/// aside.
fn differences_from_upstream(mut ours: Value, upstream_file: &str) -> Vec<String> {
    let mut upstream = load_yaml(&upstream_dir().join(upstream_file));
    strip_descriptions(&mut upstream);
    strip_descriptions(&mut ours);
    let mut differences = Vec::new();
    diff("", &ours, &upstream, &mut differences);
    differences
}

fn assert_schema_equal(ours: &CustomResourceDefinition, upstream_file: &str) {
    let differences = differences_from_upstream(serde_json::to_value(ours).unwrap(), upstream_file);
    assert!(
        differences.is_empty(),
        "{} differences from upstream {upstream_file}:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn backend_tls_policies_match_upstream() {
    assert_schema_equal(
        &crd::backend_tls_policies(),
        "gateway.networking.k8s.io_backendtlspolicies.yaml",
    );
}

#[test]
fn reference_grants_match_upstream() {
    assert_schema_equal(&crd::reference_grants(), "gateway.networking.k8s.io_referencegrants.yaml");
}

/// The comparison itself must see a difference when there is one.
#[test]
fn parity_check_reports_a_changed_limit() {
    let mut ours = serde_json::to_value(crd::backend_tls_policies()).unwrap();
    let spec = &mut ours["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["properties"]["targetRefs"]["maxItems"] = 17.into();
    spec["required"] = serde_json::json!(["targetRefs"]);
    assert_eq!(
        differences_from_upstream(ours, "gateway.networking.k8s.io_backendtlspolicies.yaml"),
        [
            ".spec.versions[v1alpha3].schema.openAPIV3Schema.properties.spec.properties.targetRefs.maxItems: ours 17, upstream 16",
            r#".spec.versions[v1alpha3].schema.openAPIV3Schema.properties.spec.required: ours ["targetRefs"], upstream ["targetRefs","validation"]"#,
        ]
    );
}

/// `crd-yaml/` is what `cargo run --example crdgen` writes, byte for byte.
/// After changing the types, run that command and commit the files.
#[test]
fn crd_yaml_is_up_to_date() {
    for crd in crd::all() {
        let path = manifest_dir().join("crd-yaml").join(crdgen::file_name(&crd));
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            committed == crdgen::render(&crd),
            "{} is out of date: run `cargo run --example crdgen` and commit it",
            path.display()
        );
    }
}

/// The committed YAML parses back to the CRD it was rendered from.
#[test]
fn crd_yaml_parses_back() {
    for crd in crd::all() {
        let path = manifest_dir().join("crd-yaml").join(crdgen::file_name(&crd));
        let parsed: CustomResourceDefinition =
            serde_json::from_value(load_yaml(&path)).expect("crd-yaml holds CRDs");
        assert_eq!(parsed, crd, "{}", path.display());
    }
}
