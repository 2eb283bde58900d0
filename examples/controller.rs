//! A minimal, real controller: watches BackendTLSPolicies and
//! ReferenceGrants (and Services, ConfigMaps and Secrets where the cluster
//! serves them), and keeps every policy's status current, reported against
//! one Gateway.
//!
//! ```text
//! cargo run --example controller --features runtime -- --gateway NAMESPACE/NAME \
//!     [--controller-name example.com/backend-tls] [--manifests PATH ...]
//! ```
//!
//! `--manifests` contributes only core objects (Services, ConfigMaps,
//! Secrets); policies and grants always come from the API server.
//!
//! ```text
//! ```
//!
//! It connects with the usual kubeconfig or in-cluster configuration. An API
//! server without the core API (such as the CRD-only server used by this
//! crate's tests) has no Services, ConfigMaps or Secrets: the controller
//! says so and takes them from `--manifests` instead. Ctrl-C stops it.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use backend_tls_policy::{
    api::v1::{BackendTlsPolicy, ParentReference, ReferenceGrant},
    index::ObjectKey,
    name::ControllerName,
    runtime::{SharedIndex, StatusWrite, write_all_status},
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::{Api, Client, Resource, api::ListParams};
use serde::de::DeserializeOwned;
use tracing::{error, info, warn};

#[path = "common/manifests.rs"]
mod manifests;

struct Args {
    gateway: ObjectKey,
    controller_name: ControllerName,
    manifests: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut gateway = None;
    let mut controller_name = "example.com/backend-tls-policy".to_owned();
    let mut manifests = Vec::new();
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--gateway" => {
                let v = value()?;
                let (ns, name) =
                    v.split_once('/').ok_or(format!("--gateway {v:?}: expected NAMESPACE/NAME"))?;
                gateway = Some(ObjectKey::new(ns, name));
            }
            "--controller-name" => controller_name = value()?,
            "--manifests" => manifests.push(value()?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let gateway = gateway.ok_or("--gateway NAMESPACE/NAME is required")?;
    let controller_name = ControllerName::try_from(controller_name.as_str())
        .map_err(|e| format!("--controller-name {controller_name:?}: {e}"))?;
    Ok(Args { gateway, controller_name, manifests })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("controller: {message}");
            eprintln!(
                "usage: controller --gateway NAMESPACE/NAME [--controller-name NAME] [--manifests PATH ...]"
            );
            return ExitCode::from(2);
        }
    };
    let client = match Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            error!(error = %e, "cannot connect to a Kubernetes API server");
            return ExitCode::FAILURE;
        }
    };
    let index = SharedIndex::default();
    let mut tasks = vec![
        tokio::spawn(index.watch(Api::<BackendTlsPolicy>::all(client.clone()))),
        tokio::spawn(index.watch(Api::<ReferenceGrant>::all(client.clone()))),
        // Refuses CA objects as their certificates expire.
        tokio::spawn({
            let index = index.clone();
            async move { index.track_ca_validity().await }
        }),
    ];
    // Each core kind is watched only if it can be listed: status waits for
    // every watch's first list, and one that can never list would hold it
    // back for good.
    if listable::<Service>(&client).await {
        tasks.push(tokio::spawn(index.watch(Api::<Service>::all(client.clone()))));
    }
    if listable::<ConfigMap>(&client).await {
        tasks.push(tokio::spawn(index.watch(Api::<ConfigMap>::all(client.clone()))));
    }
    if listable::<Secret>(&client).await {
        tasks.push(tokio::spawn(index.watch(Api::<Secret>::all(client.clone()))));
    }
    if !args.manifests.is_empty() {
        let loaded = manifests::read(&args.manifests).map(|documents| {
            let mut gateways = Ok(Vec::new());
            index.update(|i| gateways = manifests::load(i, documents, true));
            gateways
        });
        if let Err(message) | Ok(Err(message)) = loaded {
            error!(%message, "cannot read --manifests");
            return ExitCode::from(2);
        }
        info!(objects = index.read().object_count(), "loaded manifests");
    }

    // Every policy is reported for this one Gateway: a simplification. A
    // controller reports a policy only for the Gateways whose routes reach
    // its targets (Gateway API: only the ancestors it is responsible for).
    let ancestor = ParentReference {
        namespace: Some(args.gateway.namespace.clone()),
        name: args.gateway.name.clone(),
        ..Default::default()
    };
    let mut changes = index.changes();
    // Made once: a signal between two waits is not lost.
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    info!(gateway = %args.gateway, controller = %args.controller_name, "keeping BackendTLSPolicy status current");
    loop {
        if !index.is_synced() {
            info!("waiting for every watch's first list before writing status");
        }
        for (policy, result) in
            write_all_status(&index, &client, &args.controller_name, |_| vec![ancestor.clone()])
                .await
        {
            match result {
                Ok(StatusWrite::Written) => info!(%policy, "status written"),
                Ok(_) => {}
                Err(e) => {
                    let cause =
                        std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
                    warn!(%policy, error = %e, %cause, "status not written; will retry");
                }
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = changes.changed() => {
                // Let a burst of events settle before writing.
                tokio::time::sleep(Duration::from_millis(200)).await;
                changes.borrow_and_update();
            }
            // Retry failed writes and pick up anything missed.
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
    info!("shutting down");
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    ExitCode::SUCCESS
}

/// Whether `K` can be listed here: the CRD-only test server has no core
/// API, and RBAC may forbid a kind. If not, it comes from `--manifests`.
async fn listable<K>(client: &Client) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&()).into_owned();
    match Api::<K>::all(client.clone()).list(&ListParams::default().limit(1)).await {
        Ok(_) => {
            info!(%kind, "watching");
            true
        }
        // The CRD-only test server answers 404 without a Status body.
        Err(kube::Error::Api(status)) if matches!(status.code, 0 | 404) => {
            warn!(%kind, "not served by this API server; taking them from --manifests");
            false
        }
        Err(e) => {
            warn!(%kind, error = %e, "cannot list; taking them from --manifests");
            false
        }
    }
}
