//! Writes the CRDs of this crate as YAML, one file per CRD, named like the
//! upstream files (`gateway.networking.k8s.io_backendtlspolicies.yaml`):
//! the standard channel's in the directory, the experimental channel's in
//! its `experimental/` folder, as upstream lays them out.
//!
//! ```text
//! cargo run --example crdgen                      # into crd-yaml/ of this crate
//! cargo run --example crdgen -- DIR               # into DIR
//! cargo run --example crdgen -- -                 # the standard CRDs to stdout, as one stream
//! cargo run --example crdgen -- - experimental    # the experimental ones
//! ```

use std::{path::PathBuf, process::ExitCode};

use backend_tls_policy::crd::{self, Channel};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let usage = || {
        eprintln!("usage: crdgen [DIR] | crdgen - [standard|experimental]");
        ExitCode::from(2)
    };
    let target = args.first().cloned();
    if target.as_deref() == Some("-".as_ref()) {
        let channel = match args.get(1).map(|a| a.to_str()) {
            None | Some(Some("standard")) => Channel::Standard,
            Some(Some("experimental")) => Channel::Experimental,
            Some(_) => return usage(),
        };
        if args.len() > 2 {
            return usage();
        }
        let docs: Vec<String> = crd::all_for(channel).iter().map(render).collect();
        print!("{}", docs.join("---\n"));
        return ExitCode::SUCCESS;
    }
    if args.len() > 1 {
        return usage();
    }
    let dir = target
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crd-yaml"));
    for (channel, dir) in
        [(Channel::Standard, dir.clone()), (Channel::Experimental, dir.join("experimental"))]
    {
        if let Err(error) = std::fs::create_dir_all(&dir) {
            eprintln!("crdgen: cannot create {}: {error}", dir.display());
            return ExitCode::FAILURE;
        }
        for crd in &crd::all_for(channel) {
            let path = dir.join(file_name(crd));
            if let Err(error) = std::fs::write(&path, render(crd)) {
                eprintln!("crdgen: cannot write {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// The upstream file name of a CRD: `{group}_{plural}.yaml`.
pub(crate) fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// The YAML of a CRD, with whole numbers written as integers (k8s-openapi
/// holds `minimum`/`maximum` as floats, upstream writes `65535`).
pub(crate) fn render(crd: &CustomResourceDefinition) -> String {
    let mut value = serde_json::to_value(crd).expect("a CRD always serializes to JSON");
    integers(&mut value);
    serde_saphyr::to_string(&value).expect("JSON values always serialize to YAML")
}

fn integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && n.is_f64()) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integers),
        Value::Object(map) => map.values_mut().for_each(integers),
        _ => {}
    }
}
