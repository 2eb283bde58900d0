//! End to end against the real API server (feature `runtime`): policies
//! created through kube's `Api` reach the index through a real watch, and
//! the status the crate writes is checked as the server stores it.

use std::time::Duration;

use backend_tls_policy::{
    Index,
    api::{
        v1::{BackendTlsPolicy, ParentReference, ReferenceGrant},
        v1alpha3,
    },
    grant::Referrer,
    index::{BackendRef, Indexed, ObjectKey, Outcome, Resolution},
    name::ControllerName,
    runtime::{
        Feeder, NotSynced, SharedIndex, StatusError, StatusWrite, write_all_status, write_status,
    },
};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret, Service},
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::watcher::Event,
};
use serde_json::json;

use crate::apiserver::{client, namespace};

static CONTROLLER: std::sync::LazyLock<ControllerName> = std::sync::LazyLock::new(|| {
    ControllerName::try_from("example.com/backend-tls-policy-tests").unwrap()
});
const CA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki/ca.crt"));

fn policy(ns: &str, name: &str, hostname: &str) -> BackendTlsPolicy {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "svc"}],
            "validation": {
                "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}],
                "hostname": hostname,
            },
        },
    }))
    .unwrap()
}

/// Waits until `ready` holds for the index (the watch delivered), at most 10 s.
async fn until(index: &SharedIndex, what: &str, ready: impl Fn(&Index) -> bool) {
    for _ in 0..200 {
        if ready(&index.read()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The stored `Accepted` reason and its observedGeneration.
async fn stored(api: &Api<BackendTlsPolicy>, name: &str) -> (String, Option<i64>) {
    let policy = api.get_status(name).await.unwrap();
    let ancestors = policy.status.expect("status written").ancestors;
    let accepted = ancestors[0].conditions.iter().find(|c| c.type_ == "Accepted").unwrap();
    (accepted.reason.clone(), accepted.observed_generation)
}

#[tokio::test]
async fn status_follows_the_cluster() {
    let Some(client) = client().await else { return };
    let ns = namespace("rt");
    let index = SharedIndex::default();
    // Core objects come from fixtures: this API server has no core API.
    index.update(|index| {
        index.apply(
            &serde_json::from_value::<Service>(json!({
                "metadata": {"namespace": ns, "name": "svc"},
                "spec": {"ports": [{"name": "https", "port": 443}]},
            }))
            .unwrap(),
        );
        index.apply(
            &serde_json::from_value::<ConfigMap>(json!({
                "metadata": {"namespace": ns, "name": "ca"}, "data": {"ca.crt": CA},
            }))
            .unwrap(),
        );
    });
    let policies: Api<BackendTlsPolicy> = Api::namespaced(client.clone(), &ns);
    let grants: Api<ReferenceGrant> = Api::namespaced(client.clone(), &ns);
    let watches =
        [tokio::spawn(index.watch(policies.clone())), tokio::spawn(index.watch(grants.clone()))];
    // Status is written once both watches have listed.
    assert!(!index.is_synced());
    tokio::time::timeout(Duration::from_secs(10), index.synced()).await.unwrap();
    let gateway = ParentReference {
        namespace: Some("infra".into()),
        name: "edge".into(),
        ..Default::default()
    };
    let write = || write_all_status(&index, &client, &CONTROLLER, |_| Some(vec![gateway.clone()]));

    // Conflict: both created in the same second, so the name decides.
    policies
        .create(&PostParams::default(), &policy(&ns, "conflicted-1", "other.example.com"))
        .await
        .unwrap();
    policies
        .create(&PostParams::default(), &policy(&ns, "conflicted-2", "abc.example.com"))
        .await
        .unwrap();
    until(&index, "both policies", |i| i.policy_count() == 2).await;
    let written = write().await;
    assert_eq!(written.len(), 2, "both policies tried");
    for (_, result) in written {
        assert_eq!(result.unwrap(), StatusWrite::Written);
    }
    assert_eq!(stored(&policies, "conflicted-1").await, ("Accepted".into(), Some(1)));
    assert_eq!(stored(&policies, "conflicted-2").await, ("Conflicted".into(), Some(1)));

    // Written twice: nothing sent the second time, resourceVersion unchanged.
    let version = policies.get("conflicted-1").await.unwrap().metadata.resource_version;
    until(&index, "our own status write", |i| {
        i.policy(&ObjectKey::new(&ns, "conflicted-1")).unwrap().metadata.resource_version == version
    })
    .await;
    let again = write().await;
    assert_eq!(again.len(), 2, "both policies tried");
    for (_, result) in again {
        assert_eq!(result.unwrap(), StatusWrite::Unchanged);
    }
    assert_eq!(policies.get("conflicted-1").await.unwrap().metadata.resource_version, version);

    // ObservedGenerationBump: a spec change bumps generation; status follows.
    let stale = policies.get("conflicted-1").await.unwrap();
    let patch = json!({"spec": {"validation": {"hostname": "foo.example.com"}}});
    policies.patch("conflicted-1", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    // A write from the stale copy is refused, typed.
    let differs = Condition {
        type_: "Accepted".into(),
        status: "False".into(),
        reason: "Invalid".into(),
        message: "from a stale copy".into(),
        observed_generation: Some(1),
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    };
    let outcome =
        write_status(&policies, &stale, &CONTROLLER, [(gateway.clone(), vec![differs])]).await;
    assert!(matches!(outcome, Err(StatusError::Conflict(_))), "{outcome:?}");
    let key = ObjectKey::new(&ns, "conflicted-1");
    until(&index, "generation 2", |i| i.policy(&key).unwrap().metadata.generation == Some(2)).await;
    write().await;
    assert_eq!(stored(&policies, "conflicted-1").await, ("Accepted".into(), Some(2)));

    // Deleting the winner promotes the loser.
    policies.delete("conflicted-1", &DeleteParams::default()).await.unwrap();
    until(&index, "the delete", |i| i.policy_count() == 1).await;
    write().await;
    assert_eq!(stored(&policies, "conflicted-2").await, ("Accepted".into(), Some(1)));

    // A ReferenceGrant created and deleted on the server changes the decision.
    let from_web = BackendRef::service(Referrer::gateway_api("HTTPRoute", "web"), &ns, "svc", 443);
    let permitted = |i: &Index| !matches!(i.resolve(&from_web).outcome(), Outcome::RefNotPermitted);
    assert!(!permitted(&index.read()));
    let grant: ReferenceGrant = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": "web"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "web"}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }))
    .unwrap();
    grants.create(&PostParams::default(), &grant).await.unwrap();
    until(&index, "the grant", permitted).await;
    grants.delete("web", &DeleteParams::default()).await.unwrap();
    until(&index, "the grant's removal", |i| !permitted(i)).await;

    watches.iter().for_each(tokio::task::JoinHandle::abort);
    let _ = policies.delete("conflicted-2", &DeleteParams::default()).await;
}

/// A CA that expires while the controller runs is refused at that moment,
/// without any object changing: rustls would keep trusting it.
#[tokio::test]
async fn a_ca_expiring_while_running_is_refused() {
    let mut params = rcgen::CertificateParams::new(vec!["short-lived-ca.example".into()]).unwrap();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let ca = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
    // The tracker starts with nothing to track; the CA arrives later.
    let index = SharedIndex::default();
    let tracker = tokio::spawn({
        let index = index.clone();
        async move { index.track_ca_validity().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    index.update(|index| {
        index.apply(
            &serde_json::from_value::<Service>(json!({
                "metadata": {"namespace": "shop", "name": "svc"},
                "spec": {"ports": [{"name": "https", "port": 443}]},
            }))
            .unwrap(),
        );
        index.apply(
            &serde_json::from_value::<ConfigMap>(json!({
                "metadata": {"namespace": "shop", "name": "ca"}, "data": {"ca.crt": ca},
            }))
            .unwrap(),
        );
        index.apply(&policy("shop", "p", "abc.example.com"));
    });
    let backend = shop_svc();
    let usable = |i: &Index| match i.resolve(&backend).outcome() {
        Outcome::Policy(applied) => applied.usable().is_ok(),
        other => panic!("{other:?}"),
    };
    assert!(usable(&index.read()));
    until(&index, "the CA to expire", |i| !usable(i)).await;
    let conditions = index.read().policy_conditions(&ObjectKey::new("shop", "p")).unwrap();
    assert_eq!(conditions.resolved_refs.reason.as_str(), "ExpiredCertificate");
    assert!(conditions.resolved_refs.message.contains("expired at"), "{conditions:?}");
    tracker.abort();
}

fn service(ns: &str, name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"ports": [{"name": "https", "port": 443}]},
    }))
    .unwrap()
}

/// Which of `services` (namespace/name) the index holds.
fn held(index: &SharedIndex, services: &[(&str, &str)]) -> Vec<String> {
    let index = index.read();
    services
        .iter()
        .filter(|(ns, name)| {
            let backend =
                BackendRef::service(Referrer::gateway_api("HTTPRoute", *ns), *ns, *name, 443);
            !matches!(index.resolve(&backend).outcome(), Outcome::BackendNotFound)
        })
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect()
}

/// Two watches of one kind (say, one per namespace) and objects applied
/// otherwise (from files): a relist removes only what its own watch fed
/// and no longer lists. No API server needed: the events are made here.
#[test]
fn a_relist_speaks_for_its_own_watch() {
    let index = SharedIndex::default();
    index.update(|i| i.apply(&service("files", "z")));
    let (mut a, mut b) = (index.feeder::<Service>("a"), index.feeder::<Service>("b"));
    for (feeder, ns, name) in [(&mut a, "a", "x"), (&mut b, "b", "y")] {
        list(feeder, &[service(ns, name)]);
    }
    let all = [("a", "x"), ("a", "w"), ("b", "y"), ("files", "z")];
    assert_eq!(held(&index, &all), ["a/x", "b/y", "files/z"]);
    // `a` sees a/w appear, then restarts; a/w went while it was down.
    a.handle(Event::Apply(service("a", "w")));
    assert_eq!(held(&index, &all), ["a/x", "a/w", "b/y", "files/z"]);
    list(&mut a, &[service("a", "x")]);
    assert_eq!(held(&index, &all), ["a/x", "b/y", "files/z"]);
    // An empty relist of `b` removes b/y only.
    list(&mut b, &[]);
    assert_eq!(held(&index, &all), ["a/x", "files/z"]);
}

/// Status is not written from a half-listed index: not before every feeder
/// has had its first list, and never once one went before it. Uses an
/// address nothing listens on, so a write that is tried fails; one that is
/// not tried gives nothing.
#[tokio::test]
async fn status_waits_for_every_first_list() {
    let index = SharedIndex::default();
    index.update(|i| i.apply(&policy("shop", "p", "abc.example.com")));
    let nowhere = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(nowhere).unwrap();
    let write = || {
        write_all_status(&index, &client, &CONTROLLER, |_| Some(vec![ParentReference::default()]))
    };
    // Without a BackendTLSPolicy watch, every policy would read as absent.
    assert!(!index.is_synced(), "no policy watch yet");
    assert_eq!(index.waiting_for(), ["BackendTLSPolicy"]);
    let mut policies = index.feeder::<BackendTlsPolicy>("");
    list(&mut policies, &[]);
    assert!(index.is_synced());
    let (mut first, mut second) = (index.feeder::<ConfigMap>(""), index.feeder::<Service>(""));
    assert!(!index.is_synced());
    assert_eq!(index.waiting_for(), ["ConfigMap", "Service"]);
    assert!(write().await.is_empty(), "written before the lists");
    list(&mut first, &[]);
    assert!(!index.is_synced(), "one list to go");
    assert_eq!(index.waiting_for(), ["Service"]);
    assert!(write().await.is_empty());
    let changes = index.changes();
    list(&mut second, &[]);
    assert!(index.is_synced());
    assert!(index.waiting_for().is_empty());
    assert!(changes.has_changed().unwrap(), "being synced is signalled");
    tokio::time::timeout(Duration::from_secs(1), index.synced()).await.unwrap();
    let written = write().await;
    assert_eq!(written.len(), 1, "tried once synced");
    assert!(matches!(written[0].1, Err(StatusError::Api { .. })), "{:?}", written[0].1);

    // Nor during a relist: what went while the watch was down is still
    // held until it ends. The data path goes on meanwhile.
    first.handle(Event::Init);
    assert!(index.is_synced());
    assert_eq!(index.relisting(), ["ConfigMap"]);
    assert!(write().await.is_empty(), "written during a relist");
    let mut changes = index.changes();
    changes.borrow_and_update();
    first.handle(Event::InitDone);
    assert!(changes.has_changed().unwrap(), "the relist's end is signalled, nothing deleted");
    assert!(index.relisting().is_empty());
    assert_eq!(write().await.len(), 1);
    // A relist opened by `InitApply` alone counts as one, and ends.
    first.handle(Event::InitApply(ca_config_map("shop", "ca")));
    assert!(write().await.is_empty(), "written during a relist");
    first.handle(Event::InitDone);
    assert_eq!(write().await.len(), 1);

    // A watch that ends before its first list leaves its kind incomplete:
    // nothing is written from then on.
    drop(index.feeder::<Secret>(""));
    assert!(!index.is_synced());
    assert_eq!(index.waiting_for(), ["Secret"]);
    assert!(write().await.is_empty());
}

fn ca_config_map(ns: &str, name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name}, "data": {"ca.crt": CA},
    }))
    .unwrap()
}

/// The data path refuses until every watch has listed: with the Services
/// listed and the policies not yet, the index alone says that no policy
/// applies, which a gateway would take for plaintext.
#[tokio::test]
async fn resolve_refuses_until_every_first_list() {
    let index = SharedIndex::default();
    let backend = shop_svc();
    let outcome = || index.resolve(&backend).map(Resolution::into_outcome);
    let (mut services, mut policies) =
        (index.feeder::<Service>(""), index.feeder::<BackendTlsPolicy>(""));
    list(&mut services, &[service("shop", "svc")]);
    assert!(matches!(index.read().resolve(&backend).outcome(), Outcome::NoPolicy));
    assert!(matches!(outcome(), Err(NotSynced { .. })));
    list(&mut policies, &[policy("shop", "p", "abc.example.com")]);
    let Ok(Outcome::Policy(applied)) = outcome() else { panic!("the policy applies") };
    assert_eq!(applied.policy_key(), &ObjectKey::new("shop", "p"));

    // A feeder made later (another namespace watched) holds it back again.
    let mut later = index.feeder::<Service>("elsewhere");
    assert!(matches!(outcome(), Err(NotSynced { .. })));
    assert_eq!(index.waiting_for(), ["Service (elsewhere)"]);
    list(&mut later, &[service("elsewhere", "svc")]);
    assert!(matches!(outcome(), Ok(Outcome::Policy(_))));
    // Retired on purpose, it takes its objects along and is not waited for,
    // listed or not.
    let both = [("elsewhere", "svc"), ("shop", "svc")];
    assert_eq!(held(&index, &both), ["elsewhere/svc", "shop/svc"]);
    later.retire();
    assert_eq!(held(&index, &both), ["shop/svc"]);
    index.feeder::<Service>("never listed").retire();
    assert!(matches!(outcome(), Ok(Outcome::Policy(_))));
    // But with the last policy watch retired, no policy would read as none.
    policies.retire();
    assert!(matches!(outcome(), Err(NotSynced { .. })));
    assert_eq!(index.waiting_for(), ["BackendTLSPolicy"]);
}

/// A watch that goes (its task ended) leaves its objects unfollowed until a
/// feeder for its scope takes over and lists: that first list deletes what
/// the cluster deleted meanwhile. Another scope's watch does not make good.
#[tokio::test]
async fn a_restarted_watch_takes_over_what_the_gone_one_fed() {
    let index = SharedIndex::default();
    let backend = shop_svc();
    let outcome = || index.resolve(&backend).map(Resolution::into_outcome);
    let mut services = index.feeder::<Service>("");
    list(&mut services, &[service("shop", "svc")]);
    let mut shop = index.feeder::<BackendTlsPolicy>("shop");
    list(&mut shop, &[policy("shop", "p", "abc.example.com")]);
    assert!(matches!(outcome(), Ok(Outcome::Policy(_))));

    // Its task ends; `p` is deleted in the cluster meanwhile.
    drop(shop);
    assert!(matches!(outcome(), Err(NotSynced { .. })));
    assert_eq!(index.waiting_for(), ["BackendTLSPolicy (shop)"]);
    let mut web = index.feeder::<BackendTlsPolicy>("web");
    list(&mut web, &[]);
    assert!(matches!(outcome(), Err(NotSynced { .. })), "another namespace's watch listed");
    assert_eq!(index.waiting_for(), ["BackendTLSPolicy (shop)"]);

    // Restarted, its first list lacks `p`: it goes, and "no policy" is true.
    let mut restarted = index.feeder::<BackendTlsPolicy>("shop");
    restarted.handle(Event::Init);
    assert!(matches!(outcome(), Err(NotSynced { .. })));
    restarted.handle(Event::InitDone);
    assert!(matches!(outcome(), Ok(Outcome::NoPolicy)));
    assert!(index.read().policy(&ObjectKey::new("shop", "p")).is_none());

    // Dropped before its first list, a takeover hands back what it took.
    index.update(|i| i.apply(&policy("shop", "q", "abc.example.com")));
    restarted.handle(Event::Apply(policy("shop", "q", "abc.example.com")));
    drop(restarted);
    drop(index.feeder::<BackendTlsPolicy>("shop"));
    let mut third = index.feeder::<BackendTlsPolicy>("shop");
    list(&mut third, &[]);
    assert!(index.read().policy(&ObjectKey::new("shop", "q")).is_none(), "q was handed on");
    assert!(index.is_synced());
}

/// Watches may overlap, and a watch may be restarted before its old task is
/// gone: an object leaves the index when no feeder holds it any more.
#[tokio::test]
async fn overlapping_and_restarted_watches_keep_what_another_holds() {
    let index = SharedIndex::default();
    let mut policies = index.feeder::<BackendTlsPolicy>("");
    list(&mut policies, &[]);
    let all = [("shop", "a"), ("shop", "b"), ("shop", "c")];

    // Two watches see shop/a; a delete seen by one (a label no longer
    // matching its selector) leaves it to the other.
    let (mut labelled, mut everything) =
        (index.feeder::<Service>("app=shop"), index.feeder::<Service>(""));
    list(&mut labelled, &[service("shop", "a")]);
    list(&mut everything, &[service("shop", "a"), service("shop", "b")]);
    labelled.handle(Event::Delete(service("shop", "a")));
    assert_eq!(held(&index, &all), ["shop/a", "shop/b"]);
    everything.handle(Event::Delete(service("shop", "a")));
    assert_eq!(held(&index, &all), ["shop/b"]);

    // Restarted before the old task is gone: the new watch lists first
    // (shop/b was deleted meanwhile, shop/c created), then the old one goes.
    let mut restarted = index.feeder::<Service>("");
    list(&mut restarted, &[service("shop", "c")]);
    assert_eq!(held(&index, &all), ["shop/b", "shop/c"], "the old one still holds b");
    drop(everything);
    assert!(index.is_synced(), "{:?}", index.waiting_for());
    assert_eq!(held(&index, &all), ["shop/c"]);

    // Or the old one goes before the new one's first list: that list takes
    // over what it held.
    let mut next = index.feeder::<Service>("");
    drop(restarted);
    assert_eq!(index.waiting_for(), ["Service"]);
    list(&mut next, &[]);
    assert!(index.is_synced());
    assert_eq!(held(&index, &all), Vec::<String>::new());
    drop(labelled);
}

/// Both versions of BackendTLSPolicy watched (an experimental-channel
/// cluster), and a move from one watch to per-namespace ones: retiring one
/// leaves what the other holds.
#[tokio::test]
async fn retiring_leaves_what_another_watch_holds() {
    let index = SharedIndex::default();
    let backend = shop_svc();
    let outcome = || index.resolve(&backend).map(Resolution::into_outcome);
    let mut services = index.feeder::<Service>("");
    list(&mut services, &[service("shop", "svc")]);
    let p = || policy("shop", "p", "abc.example.com");
    let mut v1 = index.feeder::<BackendTlsPolicy>("");
    list(&mut v1, &[p()]);
    let mut v1alpha3 = index.feeder::<v1alpha3::BackendTlsPolicy>("");
    list(&mut v1alpha3, &[v1alpha3::BackendTlsPolicy::from(p())]);
    v1alpha3.retire();
    assert!(matches!(outcome(), Ok(Outcome::Policy(_))));

    // The all-namespaces watch dies; a watch of `shop` takes its place, and
    // the old one is forgotten by retiring a feeder for its scope.
    drop(v1);
    assert!(matches!(outcome(), Err(NotSynced { .. })));
    let mut shop = index.feeder::<BackendTlsPolicy>("shop");
    list(&mut shop, &[p()]);
    assert_eq!(index.waiting_for(), ["BackendTLSPolicy"], "the old watch is still owed");
    index.feeder::<BackendTlsPolicy>("").retire();
    assert!(matches!(outcome(), Ok(Outcome::Policy(_))), "shop/p is shop's too");
}

/// A reference from an HTTPRoute in `shop` to Service `shop/svc`, port 443.
fn shop_svc() -> BackendRef {
    BackendRef::service(Referrer::gateway_api("HTTPRoute", "shop"), "shop", "svc", 443)
}

/// One whole list of a watch: `Init`, the objects, `InitDone`.
fn list<K: Indexed + Clone>(feeder: &mut Feeder<K>, objects: &[K]) {
    feeder.handle(Event::Init);
    for object in objects {
        feeder.handle(Event::InitApply(object.clone()));
    }
    feeder.handle(Event::InitDone);
}

/// The feeders against a model: a cluster of Services, watches of the
/// whole cluster or of one namespace that die, restart, list (their first
/// list, or a relist, with the cluster changing meanwhile: those events
/// come after the list, as from kube's watcher) and retire in any order.
/// Whenever the index says it is synced and no list is under way, it holds
/// exactly the cluster's objects within the scopes of the live watches;
/// and it says it is synced exactly when every live watch has listed once
/// and every gone one has been taken over.
mod model {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    // Few of each, so that runs meet the same keys and scopes often.
    const NAMESPACES: [&str; 2] = ["a", "b"];
    const SCOPES: [&str; 2] = ["", "a"];

    #[derive(Clone, Debug)]
    enum Op {
        Create(usize, usize),
        Delete(usize, usize),
        Start(usize),
        /// `Init` and the list's objects (again, if one is under way).
        BeginList(usize),
        /// `InitDone`, then the events held back during the list.
        EndList(usize),
        Drop(usize),
        Retire(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0..2usize, 0..2usize).prop_map(|(ns, n)| Op::Create(ns, n)),
            2 => (0..2usize, 0..2usize).prop_map(|(ns, n)| Op::Delete(ns, n)),
            2 => (0..2usize).prop_map(Op::Start),
            2 => (0..3usize).prop_map(Op::BeginList),
            2 => (0..3usize).prop_map(Op::EndList),
            1 => (0..3usize).prop_map(Op::Drop),
            1 => (0..3usize).prop_map(Op::Retire),
        ]
    }

    type Key = (String, String);

    struct Watch {
        scope: &'static str,
        feeder: Feeder<Service>,
        /// Its first list is done.
        listed: bool,
        /// The events of a list under way, to come after it.
        held_back: Option<Vec<(Key, bool)>>,
    }

    impl Watch {
        fn deliver(&mut self, (ns, name): &Key, created: bool) {
            let object = service(ns, name);
            self.feeder.handle(if created { Event::Apply(object) } else { Event::Delete(object) });
        }
    }

    fn in_scope(scope: &str, (ns, _): &Key) -> bool {
        scope.is_empty() || scope == ns
    }

    fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let index = SharedIndex::default();
        let mut policies = index.feeder::<BackendTlsPolicy>("");
        list(&mut policies, &[]);
        let mut cluster: BTreeSet<Key> = BTreeSet::new();
        let mut watches: Vec<Watch> = Vec::new();
        // Scopes a gone watch left owed, until a watch of that scope lists.
        let mut owed: BTreeSet<&str> = BTreeSet::new();
        let all: Vec<Key> = NAMESPACES
            .iter()
            .flat_map(|ns| ["x", "y"].map(|n| (ns.to_string(), n.to_string())))
            .collect();
        for op in ops {
            match op {
                Op::Create(ns, n) | Op::Delete(ns, n) => {
                    let key = all[ns * 2 + n].clone();
                    let created = matches!(op, Op::Create(..));
                    let changed =
                        if created { cluster.insert(key.clone()) } else { cluster.remove(&key) };
                    if !changed && !created {
                        continue;
                    }
                    for watch in watches.iter_mut().filter(|w| in_scope(w.scope, &key)) {
                        match &mut watch.held_back {
                            Some(events) => events.push((key.clone(), created)),
                            None if watch.listed => watch.deliver(&key, created),
                            // Its first list, when it comes, sees it.
                            None => {}
                        }
                    }
                }
                Op::Start(scope) => {
                    // It takes over what is owed there, and owes it in turn.
                    let scope = SCOPES[scope];
                    owed.remove(scope);
                    let feeder = index.feeder::<Service>(scope);
                    watches.push(Watch { scope, feeder, listed: false, held_back: None });
                }
                Op::BeginList(i) => {
                    let Some(watch) = watches.get_mut(i) else { continue };
                    watch.feeder.handle(Event::Init);
                    for key in cluster.iter().filter(|k| in_scope(watch.scope, k)) {
                        watch.feeder.handle(Event::InitApply(service(&key.0, &key.1)));
                    }
                    watch.held_back = Some(Vec::new());
                }
                Op::EndList(i) => {
                    let Some(watch) = watches.get_mut(i) else { continue };
                    let Some(events) = watch.held_back.take() else { continue };
                    watch.feeder.handle(Event::InitDone);
                    watch.listed = true;
                    owed.remove(watch.scope);
                    for (key, created) in events {
                        watch.deliver(&key, created);
                    }
                }
                Op::Drop(i) => {
                    if i >= watches.len() {
                        continue;
                    }
                    let gone = watches.remove(i);
                    // Gone, listed or not, with no listed watch of its
                    // scope: what it was to bring is owed.
                    if !watches.iter().any(|w| w.listed && w.scope == gone.scope) {
                        owed.insert(gone.scope);
                    }
                }
                Op::Retire(i) => {
                    if i >= watches.len() {
                        continue;
                    }
                    let retired = watches.remove(i);
                    retired.feeder.retire();
                    // The last of its scope: what is owed there goes too.
                    if !watches.iter().any(|w| w.scope == retired.scope) {
                        owed.remove(retired.scope);
                    }
                }
            }
            let synced = watches.iter().all(|w| w.listed) && owed.is_empty();
            prop_assert_eq!(index.is_synced(), synced, "{:?}", index.waiting_for());
            if synced && watches.iter().all(|w| w.held_back.is_none()) {
                let expected: Vec<String> = cluster
                    .iter()
                    .filter(|k| watches.iter().any(|w| in_scope(w.scope, k)))
                    .map(|(ns, n)| format!("{ns}/{n}"))
                    .collect();
                let keys: Vec<(&str, &str)> =
                    all.iter().map(|(ns, n)| (ns.as_str(), n.as_str())).collect();
                prop_assert_eq!(held(&index, &keys), expected);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn feeders_agree_with_the_cluster(ops in proptest::collection::vec(op(), 1..48)) {
            run(ops)?;
        }
    }

    /// Sequences reviews found. Two feeders of one watch holding the same
    /// object, both gone before a third lists without it: it goes.
    #[test]
    fn an_object_held_by_two_gone_feeders_goes() {
        use Op::*;
        run(vec![
            Create(0, 0),
            Start(0),
            BeginList(0),
            EndList(0),
            Start(0),
            BeginList(1),
            Drop(0),
            Drop(0),
            Delete(0, 0),
            Start(0),
            BeginList(0),
            EndList(0),
        ])
        .unwrap();
        // A restart made before the old feeder went, then retired: nothing
        // is owed any more, and what the old one held goes.
        run(vec![Create(0, 0), Start(0), BeginList(0), EndList(0), Start(0), Drop(0), Retire(0)])
            .unwrap();
    }
}
