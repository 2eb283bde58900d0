//! Reading Kubernetes manifests (YAML or JSON files, or folders of them)
//! into an [`Index`], shared by the examples.

use std::path::PathBuf;

use backend_tls_policy::{
    Index,
    api::{v1, v1alpha3, v1beta1},
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde_json::Value;

/// Every document in the files and folders given, as JSON values.
pub(crate) fn read(paths: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut documents = Vec::new();
    for path in paths {
        let files = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let parsed: Vec<Value> = if file.extension().is_some_and(|e| e == "json") {
                vec![serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?]
            } else {
                serde_saphyr::from_multiple(&text)
                    .map_err(|e| format!("{}: {e}", file.display()))?
            };
            documents.extend(parsed.into_iter().filter(|d| !d.is_null()));
        }
    }
    Ok(documents)
}

/// Feeds the documents to the index; returns the Gateways. Only the
/// objects whose `apiVersion` and `kind` `take` accepts are taken.
pub(crate) fn load(
    index: &mut Index,
    documents: Vec<Value>,
    take: impl Fn(&str, &str) -> bool,
) -> Result<Vec<v1::Gateway>, String> {
    let mut gateways = Vec::new();
    for mut document in documents {
        let what = document["kind"].as_str().unwrap_or("a document").to_owned();
        if !document.is_object()
            || !(document["metadata"].is_object() || document["metadata"].is_null())
        {
            return Err(format!("{what} is not a Kubernetes object (a mapping with metadata)"));
        }
        if document["metadata"]["namespace"].is_null() {
            document["metadata"]["namespace"] = "default".into();
        }
        let api_version = document["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        let name = format!("{kind} {}", document["metadata"]["name"].as_str().unwrap_or("?"));
        let bad = |e: serde_json::Error| format!("{name}: {e}");
        if !take(&api_version, &kind) {
            continue;
        }
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Service") => {
                index.apply(&serde_json::from_value::<Service>(document).map_err(bad)?)
            }
            ("v1", "ConfigMap") => {
                index.apply(&serde_json::from_value::<ConfigMap>(document).map_err(bad)?)
            }
            ("v1", "Secret") => {
                index.apply(&serde_json::from_value::<Secret>(document).map_err(bad)?)
            }
            ("gateway.networking.k8s.io/v1", "BackendTLSPolicy") => {
                index.apply(&serde_json::from_value::<v1::BackendTlsPolicy>(document).map_err(bad)?)
            }
            ("gateway.networking.k8s.io/v1alpha3", "BackendTLSPolicy") => index.apply(
                &serde_json::from_value::<v1alpha3::BackendTlsPolicy>(document).map_err(bad)?,
            ),
            ("gateway.networking.k8s.io/v1", "ReferenceGrant") => {
                index.apply(&serde_json::from_value::<v1::ReferenceGrant>(document).map_err(bad)?)
            }
            ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant") => index
                .apply(&serde_json::from_value::<v1beta1::ReferenceGrant>(document).map_err(bad)?),
            ("gateway.networking.k8s.io/v1", "Gateway") => {
                gateways.push(serde_json::from_value(document).map_err(bad)?)
            }
            _ => eprintln!("ignoring {api_version} {name} in the manifests"),
        }
    }
    Ok(gateways)
}
