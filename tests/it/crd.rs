//! The generated CRDs: schema parity with upstream Gateway API v1.6.1 and
//! no drift between the types and the committed `crd-yaml/` files.

use std::path::{Path, PathBuf};

use backend_tls_policy::crd::{self, Channel};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

#[path = "../../examples/crdgen.rs"]
#[allow(dead_code)]
mod crdgen;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The upstream CRDs of `channel` live in the read-only `shared/` folder
/// beside the project (`upstream/standard`, `upstream/experimental`);
/// `UPSTREAM_CRDS` names another folder holding those two.
fn upstream_dir(channel: Channel) -> PathBuf {
    std::env::var_os("UPSTREAM_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../shared/upstream"))
        .join(channel.as_str())
}

/// Where `cargo run --example crdgen` writes the CRDs of `channel`.
fn committed_dir(channel: Channel) -> PathBuf {
    let dir = manifest_dir().join("crd-yaml");
    match channel {
        Channel::Experimental => dir.join("experimental"),
        _ => dir,
    }
}

const CHANNELS: [Channel; 2] = [Channel::Standard, Channel::Experimental];

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

/// The differences between `ours` and an upstream CRD file of `channel`,
/// descriptions aside.
fn differences_from_upstream(
    channel: Channel,
    mut ours: Value,
    upstream_file: &str,
) -> Vec<String> {
    let mut upstream = load_yaml(&upstream_dir(channel).join(upstream_file));
    strip_descriptions(&mut upstream);
    strip_descriptions(&mut ours);
    let mut differences = Vec::new();
    diff("", &ours, &upstream, &mut differences);
    differences
}

/// Every CRD of both channels against its upstream file.
#[test]
fn crds_match_upstream_in_both_channels() {
    let mut report = Vec::new();
    for channel in CHANNELS {
        for ours in crd::all_for(channel) {
            let file = crdgen::file_name(&ours);
            let differences =
                differences_from_upstream(channel, serde_json::to_value(&ours).unwrap(), &file);
            if !differences.is_empty() {
                report.push(format!("{channel:?} {file}:\n{}", differences.join("\n")));
            }
        }
    }
    assert!(report.is_empty(), "differences from upstream:\n{}", report.join("\n"));
    // `all` is the standard channel's.
    assert_eq!(crd::all(), crd::all_for(Channel::Standard));
}

/// The comparison itself must see a difference when there is one.
#[test]
fn parity_check_reports_a_changed_limit() {
    let mut ours = serde_json::to_value(crd::backend_tls_policies()).unwrap();
    let spec = &mut ours["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["properties"]["targetRefs"]["maxItems"] = 17.into();
    spec["required"] = serde_json::json!(["targetRefs"]);
    assert_eq!(
        differences_from_upstream(
            Channel::Standard,
            ours,
            "gateway.networking.k8s.io_backendtlspolicies.yaml"
        ),
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
    for (channel, crd) in CHANNELS.into_iter().flat_map(|c| crd::all_for(c).map(|crd| (c, crd))) {
        let path = committed_dir(channel).join(crdgen::file_name(&crd));
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
    for (channel, crd) in CHANNELS.into_iter().flat_map(|c| crd::all_for(c).map(|crd| (c, crd))) {
        let path = committed_dir(channel).join(crdgen::file_name(&crd));
        let parsed: CustomResourceDefinition =
            serde_json::from_value(load_yaml(&path)).expect("crd-yaml holds CRDs");
        assert_eq!(parsed, crd, "{}", path.display());
    }
}
