//! A minimal, real controller: watches BackendTLSPolicies and
//! ReferenceGrants (and Services, ConfigMaps and Secrets where the cluster
//! serves them), and keeps every policy's status current, reported against
//! one Gateway.
//!
//! ```text
//! cargo run --example controller --features runtime -- --gateway NAMESPACE/NAME \
//!     [--controller-name example.com/backend-tls-policy] [--manifests PATH ...]
//! ```
//!
//! `--manifests` contributes only core objects (Services, ConfigMaps,
//! Secrets) of the kinds the cluster does not serve or does not let it
//! list (403);
//! policies and grants always come from the API server.
//!
//! It connects with the usual kubeconfig or in-cluster configuration. An API
//! server without the core API (such as the CRD-only server used by this
//! crate's tests) has no Services, ConfigMaps or Secrets: the controller
//! says so and takes them from `--manifests` instead. Ctrl-C or SIGTERM
//! stops it.

use std::{collections::HashMap, path::PathBuf, process::ExitCode, time::Duration};

use backend_tls_policy::{
    api::v1::{BackendTlsPolicy, ParentReference, ReferenceGrant},
    index::{Indexed, ObjectKey},
    name::ControllerName,
    runtime::{SharedIndex, StatusError, StatusWrite, write_all_status},
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::{Api, Client, Resource, api::ListParams};
use serde::de::DeserializeOwned;
use tokio::{task::JoinSet, time::Instant};
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
    // Installed first, so that a signal that comes early is not lost.
    let stop = match shutdown_signal() {
        Ok(stop) => stop,
        Err(e) => {
            error!(error = %e, "cannot listen for signals");
            return ExitCode::FAILURE;
        }
    };
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
    // A signal while starting (a slow API server at a rollout) stops it too.
    let mut stop = std::pin::pin!(stop);
    let (client, index, mut tasks) = tokio::select! {
        () = &mut stop => {
            info!("stopped while starting");
            return ExitCode::SUCCESS;
        }
        started = start(&args) => match started {
            Ok(started) => started,
            Err(code) => return code,
        },
    };

    // Every policy is reported for this one Gateway: a simplification. A
    // controller reports a policy only for the Gateways whose routes reach
    // its targets (Gateway API: only the ancestors it is responsible for).
    let ancestor = ParentReference {
        namespace: Some(args.gateway.namespace.clone()),
        name: args.gateway.name.clone(),
        ..Default::default()
    };
    let mut changes = index.changes();
    // Per policy whose write failed (RBAC, admission, an API server in
    // trouble): when to try again, and the wait, doubling while it fails.
    // The other policies' writes go on meanwhile.
    let mut backoff: HashMap<ObjectKey, (Instant, Duration)> = HashMap::new();
    info!(gateway = %args.gateway, controller = %args.controller_name, "keeping BackendTLSPolicy status current");
    loop {
        let (waiting, relisting) = (index.waiting_for(), index.relisting());
        if !waiting.is_empty() {
            info!(?waiting, "waiting for these watches' first list before writing status");
        } else if !relisting.is_empty() {
            info!(?relisting, "waiting for these watches' relist before writing status");
        }
        let now = Instant::now();
        let pass = write_all_status(&index, &client, &args.controller_name, |policy| {
            let waiting = backoff.get(policy).is_some_and(|(until, _)| *until > now);
            (!waiting).then(|| vec![ancestor.clone()])
        });
        let results = tokio::select! {
            _ = &mut stop => break,
            results = pass => results,
        };
        for (policy, result) in results {
            let failed = match result {
                Ok(StatusWrite::Written) => {
                    info!(%policy, "status written");
                    None
                }
                Ok(_) => None,
                // Our copy is older than the stored one, or gone: the watch
                // brings the news, and the next pass writes from it.
                Err(e @ (StatusError::Conflict(_) | StatusError::NotFound(_))) => {
                    info!(%policy, reason = %e, "status not written; will write from the next copy");
                    None
                }
                // What fits was written; trying again changes nothing.
                Err(e @ StatusError::TooManyAncestors { .. }) => {
                    warn!(%policy, error = %e, "status written in part");
                    None
                }
                Err(e) => Some(e),
            };
            let Some(e) = failed else {
                backoff.remove(&policy);
                continue;
            };
            let (until, wait) = backoff.entry(policy.clone()).or_insert((now, Duration::ZERO));
            *wait = (*wait * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
            *until = now + *wait;
            let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
            warn!(%policy, error = %e, %cause, retry_in = ?wait, "status not written");
        }
        backoff.retain(|policy, _| index.read().policy(policy).is_some());
        // Retry the first policy due, and pick up anything missed.
        let next =
            backoff.values().map(|(until, _)| *until).fold(now + Duration::from_secs(30), Ord::min);
        tokio::select! {
            _ = &mut stop => break,
            done = tasks.join_next() => {
                error!(?done, "a task ended (a watch, or CA validity tracking); the index would go stale");
                return ExitCode::FAILURE;
            }
            _ = changes.changed() => {
                // Let a burst of events settle before writing.
                tokio::time::sleep(Duration::from_millis(200)).await;
                changes.borrow_and_update();
            }
            () = tokio::time::sleep_until(next) => {}
        }
    }
    info!("shutting down");
    ExitCode::SUCCESS
}

/// Connects, starts the watches (and CA validity tracking) and loads
/// `--manifests`: the index and the tasks that keep it current.
async fn start(args: &Args) -> Result<(Client, SharedIndex, JoinSet<()>), ExitCode> {
    let client = match Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            error!(error = %e, "cannot connect to a Kubernetes API server");
            return Err(ExitCode::FAILURE);
        }
    };
    let index = SharedIndex::default();
    // Each runs for good; one that ends stops the controller.
    let mut tasks = JoinSet::new();
    tasks.spawn(index.watch(Api::<BackendTlsPolicy>::all(client.clone())));
    tasks.spawn(index.watch(Api::<ReferenceGrant>::all(client.clone())));
    // Refuses CA objects as their certificates expire.
    tasks.spawn({
        let index = index.clone();
        async move { index.track_ca_validity().await }
    });
    // Each core kind is watched only if it can be listed: status waits for
    // every watch's first list, and one that can never list would hold it
    // back for good.
    let from_files = !args.manifests.is_empty();
    let mut unwatched = Vec::new();
    for (kind, watched) in [
        ("Service", watch_if_listable::<Service>(&index, &client, from_files, &mut tasks).await),
        (
            "ConfigMap",
            watch_if_listable::<ConfigMap>(&index, &client, from_files, &mut tasks).await,
        ),
        ("Secret", watch_if_listable::<Secret>(&index, &client, from_files, &mut tasks).await),
    ] {
        match watched {
            Ok(true) => {}
            Ok(false) => unwatched.push(kind),
            Err(e) => {
                error!(error = %e, "cannot watch a kind the policies need");
                return Err(ExitCode::FAILURE);
            }
        }
    }
    if !args.manifests.is_empty() {
        // Only kinds not watched: a file's copy of a watched object would
        // race the cluster's.
        let take = |api_version: &str, kind: &str| api_version == "v1" && unwatched.contains(&kind);
        let loaded = manifests::read(&args.manifests).map(|documents| {
            let mut gateways = Ok(Vec::new());
            index.update(|i| gateways = manifests::load(i, documents, take));
            gateways
        });
        if let Err(message) | Ok(Err(message)) = loaded {
            error!(%message, "cannot read --manifests");
            return Err(ExitCode::from(2));
        }
        info!(objects = index.read().object_count(), "loaded manifests");
    }
    Ok((client, index, tasks))
}

/// Resolves on Ctrl-C, or on SIGTERM (how Kubernetes stops a pod). The
/// handlers are installed when this is called, not when it is first polled.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut interrupt, mut terminate) =
            (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        let ctrl_c = tokio::signal::ctrl_c();
        Ok(async move {
            let _ = ctrl_c.await;
        })
    }
}

/// The longest wait between passes while status writes fail.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Watches `K` if it can be listed here: the CRD-only test server has no
/// core API; then it comes from `--manifests`, as it does when RBAC forbids
/// it and `--manifests` is given (without, a forbidden kind is an error).
/// Other errors (the API server restarting, a timeout) are retried a few
/// times, then returned: taking a kind for absent because of one would
/// publish wrong status for every policy that names its objects.
async fn watch_if_listable<K>(
    index: &SharedIndex,
    client: &Client,
    from_files: bool,
    tasks: &mut JoinSet<()>,
) -> Result<bool, kube::Error>
where
    K: Indexed + Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    let mut wait = Duration::from_millis(500);
    loop {
        match Api::<K>::all(client.clone()).list(&ListParams::default().limit(1)).await {
            Ok(_) => {
                info!(%kind, "watching");
                tasks.spawn(index.watch(Api::<K>::all(client.clone())));
                return Ok(true);
            }
            // The CRD-only test server answers 404 without a Status body.
            Err(kube::Error::Api(status)) if matches!(status.code, 0 | 404) => {
                warn!(%kind, "not served by this API server; taking them from --manifests");
                return Ok(false);
            }
            Err(kube::Error::Api(status)) if status.code == 403 && from_files => {
                warn!(%kind, message = %status.message, "forbidden; taking them from --manifests");
                return Ok(false);
            }
            Err(e) if wait < Duration::from_secs(8) => {
                warn!(%kind, error = %e, ?wait, "cannot list yet; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}
