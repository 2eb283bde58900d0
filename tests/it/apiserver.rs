//! Against a real Kubernetes API server (`../shared/tools/crd-apiserver/`):
//! the generated CRDs install, and the server accepts and rejects objects
//! exactly as `tests/fixtures/validation-cases.yaml` says.
//!
//! Runs when `KUBECONFIG` is set (`.ci/run` starts the server and sets it);
//! otherwise each test prints why it skipped and passes, unless
//! `REQUIRE_APISERVER` is set (as `.ci/run` does), which makes it fail.

use std::time::Duration;

use backend_tls_policy::{
    api::{v1, v1alpha3, v1beta1},
    crd,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::wait::{await_condition, conditions},
};
use serde::Deserialize;
use serde_json::json;

const FIELD_MANAGER: &str = "backend-tls-policy-tests";

/// A connected client with the CRDs installed and established, or `None`
/// (with the reason printed) when no API server is configured.
pub(crate) async fn client() -> Option<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        // CI sets this so that a missing server fails instead of skipping.
        assert!(
            std::env::var_os("REQUIRE_APISERVER").is_none(),
            "REQUIRE_APISERVER is set but KUBECONFIG is not"
        );
        eprintln!(
            "skipped: KUBECONFIG is not set; start ../shared/tools/crd-apiserver/start.sh \
             and export the KUBECONFIG it prints"
        );
        return None;
    }
    // kube's client needs a process-wide rustls provider; another test may
    // have installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.expect("KUBECONFIG is set but unusable");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("the API server refused CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established after 30 s"))
        .unwrap();
    }
    Some(client)
}

/// A namespace of its own for each test and run; the server needs no
/// Namespace object for namespaced custom resources.
pub(crate) fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{test}-{}", nanos.as_micros() % 1_000_000_000)
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), ..Default::default() }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    spec: serde_json::Value,
    errors: Vec<ExpectedError>,
}

#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord, Debug, Clone)]
struct ExpectedError {
    field: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validation-cases.yaml");
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The server's causes in the table's terms: the message without its
/// `Invalid value: "…": `, `Too many: 17: `, `Unsupported value: "…": ` or
/// `Too long: ` lead.
fn reported(status: &kube::core::Status) -> Vec<ExpectedError> {
    let causes = status.details.as_ref().map(|d| d.causes.as_slice()).unwrap_or_default();
    let mut errors: Vec<_> = causes
        .iter()
        .map(|cause| {
            let message = ["Invalid value: ", "Too many: ", "Unsupported value: ", "Too long: "]
                .iter()
                .find_map(|lead| cause.message.strip_prefix(lead))
                .map_or(cause.message.as_str(), |rest| {
                    // The value, JSON-quoted or bare, then `: ` (`Too long`
                    // has no value).
                    let split = if rest.starts_with('"') { "\": " } else { ": " };
                    match cause.message.starts_with("Too long") {
                        true => rest,
                        false => rest.split_once(split).map_or(rest, |(_, m)| m),
                    }
                });
            ExpectedError { field: cause.field.clone(), message: message.to_owned() }
        })
        .collect();
    errors.sort();
    errors
}

#[tokio::test]
async fn api_server_agrees_with_the_validation_table() {
    let Some(client) = client().await else { return };
    let ns = namespace("cel");
    let policies: Api<v1::BackendTlsPolicy> = Api::namespaced(client, &ns);
    let mut mismatches = Vec::new();
    for case in cases() {
        let spec: v1::BackendTlsPolicySpec = serde_json::from_value(case.spec.clone())
            .unwrap_or_else(|e| panic!("case {}: spec does not deserialize: {e}", case.name));
        let policy = v1::BackendTlsPolicy { metadata: meta(&case.name), spec, status: None };
        let mut expected = case.errors.clone();
        expected.sort();
        let got = match policies.create(&PostParams::default(), &policy).await {
            Ok(_) => Vec::new(),
            Err(kube::Error::Api(status)) if status.code == 422 => reported(&status),
            Err(e) => panic!("case {}: unexpected error {e}", case.name),
        };
        if got != expected {
            mismatches
                .push(format!("{}:\n  expected {expected:#?}\n  server   {got:#?}", case.name));
        }
    }
    let _ = policies.delete_collection(&DeleteParams::default(), &ListParams::default()).await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A v1 object read back equals what was written (nothing pruned, nothing
/// defaulted in the spec), status goes through the status subresource, and
/// the v1alpha3 version is listed but not served.
#[tokio::test]
async fn backend_tls_policy_round_trips_through_the_server() {
    let Some(client) = client().await else { return };
    let ns = namespace("btls");
    let policies: Api<v1::BackendTlsPolicy> = Api::namespaced(client.clone(), &ns);
    let spec: v1::BackendTlsPolicySpec = serde_json::from_value(json!({
        "targetRefs": [{"group": "", "kind": "Service", "name": "shop", "sectionName": "https"}],
        "validation": {
            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "shop-ca"}],
            "hostname": "shop.example.com",
            "subjectAltNames": [
                {"type": "Hostname", "hostname": "*.shop.example.com"},
                {"type": "URI", "uri": "spiffe://cluster.local/ns/shop/sa/shop"},
            ],
        },
        "options": {"example.com/min-tls-version": "1.3"},
    }))
    .unwrap();
    let created = policies
        .create(
            &PostParams::default(),
            &v1::BackendTlsPolicy { metadata: meta("shop"), spec: spec.clone(), status: None },
        )
        .await
        .unwrap();
    assert_eq!(created.spec, spec);
    assert_eq!(created.metadata.generation, Some(1));

    // Status: ancestorRef group/kind are defaulted by the server.
    let status = json!({"status": {"ancestors": [{
        "ancestorRef": {"name": "gw", "namespace": "infra"},
        "controllerName": "example.com/gateway",
        "conditions": [{
            "type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
            "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
    }]}});
    let patched = policies
        .patch_status("shop", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let ancestor = &patched.status.as_ref().unwrap().ancestors[0];
    assert_eq!(ancestor.ancestor_ref.group.as_deref(), Some("gateway.networking.k8s.io"));
    assert_eq!(ancestor.ancestor_ref.kind.as_deref(), Some("Gateway"));
    assert_eq!(ancestor.conditions[0].reason, "Accepted");

    // A condition the server's schema forbids (reason with a space).
    let bad = json!({"status": {"ancestors": [{
        "ancestorRef": {"name": "gw"},
        "controllerName": "example.com/gateway",
        "conditions": [{
            "type": "Accepted", "status": "True", "reason": "not a reason", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
    }]}});
    let err = policies.patch_status("shop", &PatchParams::default(), &Patch::Merge(&bad)).await;
    assert!(matches!(err, Err(kube::Error::Api(s)) if s.code == 422), "bad reason accepted");

    let old: Api<v1alpha3::BackendTlsPolicy> = Api::namespaced(client, &ns);
    let err = old.list(&ListParams::default()).await.expect_err("v1alpha3 must not be served");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404), "v1alpha3 served");

    policies.delete_collection(&DeleteParams::default(), &ListParams::default()).await.unwrap();
}

/// ReferenceGrant is served as v1 and v1beta1, and both read the same object.
#[tokio::test]
async fn reference_grant_is_served_in_both_versions() {
    let Some(client) = client().await else { return };
    let ns = namespace("grant");
    let v1_api: Api<v1::ReferenceGrant> = Api::namespaced(client.clone(), &ns);
    let v1beta1_api: Api<v1beta1::ReferenceGrant> = Api::namespaced(client, &ns);
    let spec = v1::ReferenceGrantSpec {
        from: vec![v1::ReferenceGrantFrom {
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            namespace: "frontend".into(),
        }],
        to: vec![v1::ReferenceGrantTo { group: "".into(), kind: "Service".into(), name: None }],
    };
    v1_api
        .create(
            &PostParams::default(),
            &v1::ReferenceGrant { metadata: meta("routes"), spec: spec.clone() },
        )
        .await
        .unwrap();
    let read = v1beta1_api.get("routes").await.unwrap();
    assert_eq!(v1::ReferenceGrant::from(read).spec, spec);

    let empty_from = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ReferenceGrant",
        "metadata": {"name": "empty"}, "spec": {"from": [], "to": spec.to}});
    let err = v1_api
        .patch("empty", &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&empty_from))
        .await
        .expect_err("an empty from list must be rejected");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422));

    v1_api.delete_collection(&DeleteParams::default(), &ListParams::default()).await.unwrap();
}

/// A grant the API server refuses grants nothing in the index (one read
/// from a file must not allow what no cluster would): each spec here is
/// refused by the server and ignored by the index; the first, the control,
/// is taken by both.
#[tokio::test]
async fn grants_the_server_refuses_grant_nothing() {
    let Some(client) = client().await else { return };
    let ns = namespace("grants");
    let api: Api<v1::ReferenceGrant> = Api::namespaced(client, &ns);
    let route =
        json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "web"});
    let service = json!({"group": "", "kind": "Service"});
    let filler = |n: usize| {
        let from =
            json!({"group": "gateway.networking.k8s.io", "kind": "GRPCRoute", "namespace": "x"});
        vec![from; n]
    };
    let with = |from: serde_json::Value, to: serde_json::Value| json!({"from": from, "to": to});
    let mut seventeen = filler(16);
    seventeen.push(route.clone());
    // Each refused spec (but `no-to`) also holds the control's entries, so
    // that only the whole grant being refused keeps the index from
    // permitting.
    let cases = [
        ("control", with(json!([route]), json!([service])), true),
        ("seventeen-from", with(json!(seventeen), json!([service])), false),
        ("no-to", with(json!([route]), json!([])), false),
        (
            "bad-kind",
            with(json!([route]), json!([service, {"group": "", "kind": "Service!"}])),
            false,
        ),
        (
            "bad-group",
            with(json!([route]), json!([service, {"group": "Core", "kind": "Service"}])),
            false,
        ),
        (
            "bad-namespace",
            with(
                json!([route, {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "Web"}]),
                json!([service]),
            ),
            false,
        ),
        (
            "empty-name",
            with(json!([route]), json!([service, {"group": "", "kind": "Service", "name": ""}])),
            false,
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, spec, valid) in cases {
        let object = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ReferenceGrant",
            "metadata": {"name": name, "namespace": ns}, "spec": spec});
        let server =
            api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&object)).await;
        let server_took = match server {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 422 => false,
            Err(other) => panic!("{name}: {other}"),
        };
        let grant: v1::ReferenceGrant = serde_json::from_value(object).unwrap();
        let mut index = backend_tls_policy::Index::default();
        index.apply(&grant);
        let from = backend_tls_policy::grant::Referrer::gateway_api("HTTPRoute", "web");
        let backend = backend_tls_policy::index::BackendRef::service(from, &*ns, "svc", 443);
        let permitted = !matches!(
            index.resolve(&backend).outcome(),
            backend_tls_policy::index::Outcome::RefNotPermitted
        );
        if (server_took, permitted) != (valid, valid) {
            mismatches
                .push(format!("{name}: server took it {server_took}, index permits {permitted}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    api.delete_collection(&DeleteParams::default(), &ListParams::default()).await.unwrap();
}
