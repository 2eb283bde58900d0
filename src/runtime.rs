//! kube-rs glue (feature `runtime`): keep an [`Index`] current from
//! watchers, and write policy status with server-side apply.
//!
//! The core stays free of I/O; this module only moves objects in and status
//! out. If the controller already runs its own watchers or reflectors, hand
//! their events to a [`Feeder`] instead of starting a second watch. Watches
//! of one kind may be split (per namespace, per selector) if each has a
//! scope of its own ([`SharedIndex::feed`], [`SharedIndex::feeder`];
//! [`SharedIndex::watch`] uses the `Api`'s namespace): feeders of one kind
//! and scope are one watch, restarted.
//!
//! ```no_run
//! use backend_tls_policy::{api::v1::BackendTlsPolicy, runtime::SharedIndex};
//! use k8s_openapi::api::core::v1::{ConfigMap, Service};
//! use kube::{Api, Client};
//!
//! # async fn run() -> Result<(), kube::Error> {
//! let client = Client::try_default().await?;
//! let index = SharedIndex::default();
//! tokio::spawn(index.watch(Api::<BackendTlsPolicy>::all(client.clone())));
//! tokio::spawn(index.watch(Api::<Service>::all(client.clone())));
//! tokio::spawn(index.watch(Api::<ConfigMap>::all(client.clone())));
//! // … ReferenceGrant and Secret likewise. CA certificates that expire are
//! // refused when they do:
//! tokio::spawn({
//!     let index = index.clone();
//!     async move { index.track_ca_validity().await }
//! });
//! // The data path resolves with `index.resolve(&backend)`, which refuses
//! // (`NotSynced`) until every watch has listed, and again while a watch
//! // that ended is not restarted: a policy not yet listed would read as
//! // none, and the connection as plaintext.
//! // Status is written once every watch has listed:
//! index.synced().await;
//! # Ok(()) }
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fmt::{self, Debug},
    ops::Deref,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use rustls::pki_types::UnixTime;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{
    api::{
        v1::{BackendTlsPolicy, ParentReference},
        v1alpha3,
    },
    index::{BackendRef, Index, Indexed, ObjectKey, Resolution},
    name::ControllerName,
    status,
};

/// An [`Index`] shared between watchers (writers) and the data or control
/// path (readers), with a signal for every change.
#[derive(Clone)]
pub struct SharedIndex {
    index: Arc<RwLock<Index>>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Where the feeders are with their lists.
    listing: Arc<tokio::sync::watch::Sender<Listing>>,
    /// How many feeders (live, or gone and not yet taken over) hold each
    /// object, by store: an object leaves the index with the last of them
    /// (a delete seen by one watch lets go of that watch's claim only).
    claims: Arc<Mutex<HashMap<(&'static str, ObjectKey), usize>>>,
}

/// A watch: the kind its feeder takes, and the scope it covers (a
/// namespace, a selector; empty for everything the watch sees).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Watch {
    kind: &'static str,
    scope: String,
}

impl fmt::Display for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope.as_str() {
            "" => f.write_str(self.kind),
            scope => write!(f, "{} ({scope})", self.kind),
        }
    }
}

/// Where the feeders are with their lists.
#[derive(Default)]
struct Listing {
    /// Feeders still to finish their first list.
    pending: BTreeMap<Watch, usize>,
    /// What feeders gone without retiring had fed, until a feeder of the
    /// same watch takes it over: its first list then deletes what it
    /// lacks. Meanwhile the index may hold objects the cluster deleted, and
    /// lack some it has.
    abandoned: BTreeMap<Watch, HashSet<ObjectKey>>,
    /// Feeders in a relist (after their first list): their objects arrive
    /// one by one, and those deleted meanwhile go only at its end.
    relisting: BTreeMap<Watch, usize>,
    /// Live feeders past their first list.
    listed: BTreeMap<Watch, usize>,
    /// Feeders letting go of what a gone feeder held: until done, the
    /// index may hold objects the cluster deleted.
    releasing: usize,
}

const POLICY_KINDS: [&str; 2] = [BackendTlsPolicy::NAME, v1alpha3::BackendTlsPolicy::NAME];

impl Listing {
    fn is_complete(&self) -> bool {
        self.has_policy_watch()
            && self.pending.is_empty()
            && self.abandoned.is_empty()
            && self.releasing == 0
    }

    /// Whether a live BackendTLSPolicy feeder has listed: without one,
    /// every backend reads as having no policy.
    fn has_policy_watch(&self) -> bool {
        self.listed.keys().any(|w| POLICY_KINDS.contains(&w.kind))
    }

    fn is_settled(&self) -> bool {
        self.is_complete() && self.relisting.is_empty()
    }
}

/// Counts a feeder of `watch` in or out of `counts`.
fn count(counts: &mut BTreeMap<Watch, usize>, watch: &Watch, add: bool) {
    if add {
        *counts.entry(watch.clone()).or_default() += 1;
    } else if let Some(n) = counts.get_mut(watch) {
        *n -= 1;
        if *n == 0 {
            counts.remove(watch);
        }
    }
}

impl Default for SharedIndex {
    fn default() -> Self {
        Self {
            index: Arc::default(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            listing: Arc::new(tokio::sync::watch::channel(Listing::default()).0),
            claims: Arc::default(),
        }
    }
}

impl SharedIndex {
    /// Read access, for `policy_conditions` and the like. Hold it briefly:
    /// watchers wait while it is held. (What holds the index may change;
    /// only `Deref` is promised.) The data path resolves with
    /// [`Self::resolve`], which knows whether the index is complete.
    pub fn read(&self) -> impl Deref<Target = Index> + '_ {
        // The index has no invariants a panicking writer could break
        // half-way that a reader could not survive; keep serving.
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// What applies to `backend`, for the data path: [`Index::resolve`],
    /// refused until the index [is synced](Self::is_synced).
    ///
    /// Before a BackendTLSPolicy watch and every other watch have listed,
    /// the policy for a backend may not be in the index yet, and
    /// `Outcome::NoPolicy` would send its traffic in plaintext. A feeder
    /// made later (a new namespace watched, say) holds every backend back
    /// again until it has listed. A feeder gone without
    /// [retiring](Feeder::retire) (its watch task ended, panicked or was
    /// aborted) holds them back until a feeder for the same scope takes
    /// over and lists (unless one already has): meanwhile what it was to
    /// bring may never arrive, and what the cluster deleted may stay. A
    /// watch that can never list
    /// (RBAC forbids it, the CRD is not installed) holds them back too, so
    /// every request fails until it is fixed; its errors are logged as they
    /// come, and [`Self::waiting_for`] names its kind.
    ///
    /// # Errors
    ///
    /// [`NotSynced`]: answer 503, as for a policy that cannot be satisfied.
    pub fn resolve(&self, backend: &BackendRef) -> Result<Resolution, NotSynced> {
        // Checked under the lock: a feeder leaving changes the counts before
        // it deletes, so a resolution never sees the deletions as synced.
        let index = self.read();
        if !self.is_synced() {
            return Err(NotSynced);
        }
        Ok(index.resolve(backend))
    }

    /// Changes the index and signals the change.
    pub fn update(&self, change: impl FnOnce(&mut Index)) {
        change(&mut self.index.write().unwrap_or_else(PoisonError::into_inner));
        self.changes.send_modify(|n| *n += 1);
    }

    /// A receiver that sees a new value after every change.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A feeder for watcher events of kind `K` from one watch; `scope` names
    /// what the watch covers (a namespace, a selector; `""` when it is the
    /// only watch of its kind). Distinct watches of one kind need distinct
    /// scopes: feeders of one scope are one watch, restarted.
    ///
    /// Until it has handled its first `InitDone`, the index is not
    /// [synced](Self::is_synced). Made for the scope of a feeder that went
    /// without [retiring](Feeder::retire) (a restarted watch), it takes
    /// over what that one fed: its first list deletes what the cluster no
    /// longer has, and only then is the index synced again.
    pub fn feeder<K: Indexed>(&self, scope: &str) -> Feeder<K> {
        let watch = Watch { kind: K::NAME, scope: scope.to_owned() };
        let mut orphans = None;
        self.change_listing(|l| {
            orphans = l.abandoned.remove(&watch);
            count(&mut l.pending, &watch, true);
        });
        // It takes over what a gone feeder of this watch held, claims and
        // all: its first list lets go of what the cluster no longer has.
        Feeder {
            index: self.clone(),
            watch,
            relist: None,
            fed: orphans.unwrap_or_default(),
            listing: true,
            retired: false,
            objects: std::marker::PhantomData,
        }
    }

    /// Whether a BackendTLSPolicy feeder has listed, every feeder has
    /// finished its first list, every one gone without retiring (and with
    /// no listed feeder of its watch left) has been taken over by a list of
    /// its watch, and what such a list let go has left the index: until
    /// then the index may lack
    /// objects the cluster has (or hold some it deleted), so conditions
    /// computed from it would be wrong (a CA ConfigMap not yet listed reads
    /// as missing), and so would "no policy applies".
    pub fn is_synced(&self) -> bool {
        self.listing.borrow().is_complete()
    }

    /// The watches the index waits for, as `Kind` or `Kind (scope)`:
    /// `BackendTLSPolicy` until a feeder of it has listed, those whose
    /// feeder has not finished its first list, and those whose feeder went
    /// without retiring. Empty when [synced](Self::is_synced). For logs and
    /// readiness probes: a watch that stays here cannot list, or is gone.
    pub fn waiting_for(&self) -> Vec<String> {
        let listing = self.listing.borrow();
        let watches = listing.pending.keys().chain(listing.abandoned.keys());
        let mut waiting: BTreeSet<String> = watches.clone().map(ToString::to_string).collect();
        if !listing.has_policy_watch()
            && !watches.into_iter().any(|w| POLICY_KINDS.contains(&w.kind))
        {
            waiting.insert(BackendTlsPolicy::NAME.to_owned());
        }
        waiting.into_iter().collect()
    }

    /// The watches in a relist, as `Kind` or `Kind (scope)`: status is not
    /// written until they end. One that stays here keeps failing to list.
    pub fn relisting(&self) -> Vec<String> {
        self.listing.borrow().relisting.keys().map(ToString::to_string).collect()
    }

    /// Changes where the feeders are, and signals it as a change: the index
    /// may be synced, or settled, now.
    fn change_listing(&self, change: impl FnOnce(&mut Listing)) {
        self.listing.send_modify(change);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Gives up one claim on each of `keys` (objects of `K`'s store), and
    /// deletes from the index those no feeder claims any more.
    fn release<K: Indexed>(&self, keys: impl IntoIterator<Item = ObjectKey>) {
        let claims = || self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        let unclaimed: Vec<ObjectKey> = {
            let mut claims = claims();
            keys.into_iter()
                .filter(|key| {
                    let claim = (K::STORE, key.clone());
                    match claims.get_mut(&claim) {
                        Some(n) if *n > 1 => {
                            *n -= 1;
                            false
                        }
                        _ => claims.remove(&claim).is_some(),
                    }
                })
                .collect()
        };
        if !unclaimed.is_empty() {
            self.update(|index| {
                // (Lock order: the index, then the claims; nothing holds the
                // claims while it waits for the index.)
                let claims = claims();
                for key in &unclaimed {
                    // Claimed again meanwhile: another feeder applied it.
                    if !claims.contains_key(&(K::STORE, key.clone())) {
                        index.delete::<K>(key);
                    }
                }
            });
        }
    }

    /// Whether status may be written: synced, and no relist in progress
    /// (until one ends, objects deleted meanwhile are still held).
    fn is_settled(&self) -> bool {
        self.listing.borrow().is_settled()
    }

    /// Waits until [`Self::is_synced`] (forever, if a watch never lists).
    pub async fn synced(&self) {
        let mut listing = self.listing.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = listing.wait_for(Listing::is_complete).await;
    }

    /// Feeds a watcher stream of kind `K` (for example one the controller
    /// already runs) into the index until it ends, through a
    /// [feeder](Self::feeder) for `scope`. Watcher errors are logged; the
    /// watcher's own backoff decides what follows. The feeder counts from
    /// this call, not from the first poll. A stream that ends is logged as
    /// an error and, like the future dropped, leaves the index unsynced
    /// until a feeder of the same kind and scope lists (unless one already
    /// has).
    pub fn feed<K, S>(&self, scope: &str, events: S) -> impl Future<Output = ()> + use<K, S>
    where
        K: Indexed,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    {
        let mut feeder = self.feeder::<K>(scope);
        async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => feeder.handle(event),
                    Err(error) => {
                        tracing::warn!(%error, watch = %feeder.watch, "watch failed; retrying")
                    }
                }
            }
            // (Kube's watcher never ends; a task aborted on purpose, as at
            // shutdown, does not get here and says nothing.)
            tracing::error!(
                watch = %feeder.watch,
                "a watch ended: unless another feeder of it has listed, backends are refused \
                 (NotSynced) and status is not written until it is restarted"
            );
        }
    }

    /// Keeps the CA objects' verdicts current as time passes: whenever a
    /// certificate expires or one not yet valid begins, runs
    /// [`Index::recheck_ca_validity`] (policies naming an expired CA fail
    /// closed from then on, and their status says why), and when the clock
    /// was set back (a CA valid at the later time may not be at the
    /// corrected one). Run it beside the watchers; it never returns.
    pub async fn track_ca_validity(&self) {
        // Sleeps run on the monotonic clock and deadlines on the wall
        // clock: reading it again this often notices a clock set back, or
        // a host that slept past a deadline.
        const AT_MOST: Duration = Duration::from_secs(60);
        let mut changes = self.changes();
        loop {
            let now = UnixTime::now();
            if self.read().needs_ca_recheck(now) {
                self.update(|index| {
                    let changed = index.recheck_ca_validity(now);
                    tracing::info!(?changed, "CA certificate validity changed");
                });
                continue;
            }
            let next = self.read().next_ca_validity_change();
            let wait = next.map_or(AT_MOST, |at| {
                // (A deadline already past: the clock moved since `now`.)
                Duration::from_secs(at.as_secs().saturating_sub(now.as_secs())).min(AT_MOST)
            });
            tokio::select! {
                _ = changes.changed() => {
                    // A relist changes the index once per object: scan at
                    // most once a second. (Objects applied meanwhile had
                    // their validity checked as they came.)
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    changes.borrow_and_update();
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Watches every object `api` can see (with kube's default backoff) and
    /// keeps the index current. Runs until dropped. Its scope is `api`'s
    /// namespace (empty for all namespaces).
    pub fn watch<K>(&self, api: Api<K>) -> impl Future<Output = ()> + Send + 'static
    where
        K: Indexed + Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        let scope = api.namespace().unwrap_or_default().to_owned();
        self.feed(&scope, watcher(api, watcher::Config::default()).default_backoff())
    }
}

/// [`SharedIndex::resolve`] while the index is not
/// [synced](SharedIndex::is_synced) (a watch has not listed yet, or ended
/// and is not restarted): whether a BackendTLSPolicy applies is not known,
/// so no connection may be made. [`SharedIndex::waiting_for`] says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the index is not synced (a watch has not listed, or has ended): whether a BackendTLSPolicy applies is unknown"
)]
#[non_exhaustive]
pub struct NotSynced;

/// Applies watcher events of one watch to a [`SharedIndex`], with the
/// watcher's restart semantics: the objects of a list are applied as they
/// come (`InitApply`), and at its end (`InitDone`) what this feeder had fed
/// that the list lacks is let go (it went while the watch was down). Only
/// their keys are kept meanwhile, and the index is locked per object, so a
/// relist of many large objects neither holds them all nor stalls readers.
///
/// A relist or a delete speaks for its own watch only: an object leaves
/// the index when no feeder holds it any more, so watches of one kind may
/// overlap (a namespace watched twice, both versions of BackendTLSPolicy),
/// and objects applied to the index otherwise (say, from files) stay until
/// a feeder that fed them lets go.
///
/// Objects are applied as they come from each watch: with overlapping
/// watches, one that lags may put an older copy of an object over a newer
/// one until it catches up.
///
/// A feeder is meant to live as long as its watch. One dropped (its task
/// ended, panicked or was aborted) leaves the index unsynced until a
/// feeder for the same scope takes over and lists, since nothing follows
/// its objects meanwhile (one dropped while another feeder of its watch
/// has listed leaves the rest to that one); to stop following a watch on
/// purpose, [retire](Self::retire) it. Restart a watch once its old task
/// is gone (abort it and await it): a successor that lists while the old
/// one still runs takes what the old one saw after that list (an object
/// created meanwhile) for gone, until its own watch brings it.
pub struct Feeder<K: Indexed> {
    index: SharedIndex,
    watch: Watch,
    /// The keys of the list in progress.
    relist: Option<HashSet<ObjectKey>>,
    /// The objects this feeder (or the one it took over from) put in the
    /// index and has not deleted.
    fed: HashSet<ObjectKey>,
    /// Whether the first list is still to come.
    listing: bool,
    /// Whether it left on purpose, taking its objects along.
    retired: bool,
    /// Takes events of `K` (and is `Send` whatever `K` is).
    objects: std::marker::PhantomData<fn(K)>,
}

impl<K: Indexed> Feeder<K> {
    /// Applies one event.
    pub fn handle(&mut self, event: watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                if let Some(key) = object.key() {
                    // (Not sent during a list by kube's watcher; if it is,
                    // the list's end keeps it.)
                    if let Some(list) = self.relist.as_mut() {
                        list.insert(key.clone());
                    }
                    self.claim(key);
                }
                self.index.update(|index| index.apply(&object));
            }
            watcher::Event::Delete(object) => {
                // Gone from the cluster, or only from this watch's scope (a
                // label no longer matching): it leaves the index once no
                // watch holds it.
                if let Some(key) = object.key().filter(|key| self.fed.remove(key)) {
                    if let Some(list) = self.relist.as_mut() {
                        list.remove(&key);
                    }
                    self.index.release::<K>([key]);
                }
            }
            watcher::Event::Init => self.list().clear(),
            watcher::Event::InitApply(object) => {
                if let Some(key) = object.key() {
                    self.list().insert(key.clone());
                    self.claim(key);
                }
                self.index.update(|index| index.apply(&object));
            }
            watcher::Event::InitDone => {
                let relisted = self.relist.is_some() && !self.listing;
                let listed = self.relist.take().unwrap_or_default();
                let gone: Vec<ObjectKey> = self.fed.difference(&listed).cloned().collect();
                self.fed.retain(|key| listed.contains(key));
                self.index.release::<K>(gone);
                let first = std::mem::take(&mut self.listing);
                // The list speaks for its watch: what a gone feeder of it
                // left (one that went after this one was made, say: a task
                // aborted once its successor was spawned) is let go, the
                // index unsynced until that is done.
                let mut orphans = None;
                self.index.change_listing(|l| {
                    if first {
                        count(&mut l.pending, &self.watch, false);
                        count(&mut l.listed, &self.watch, true);
                    } else if relisted {
                        count(&mut l.relisting, &self.watch, false);
                    }
                    orphans = l.abandoned.remove(&self.watch);
                    l.releasing += usize::from(orphans.is_some());
                });
                if let Some(orphans) = orphans {
                    self.index.release::<K>(orphans);
                    self.index.change_listing(|l| l.releasing -= 1);
                }
            }
        }
    }

    /// Holds `key` (once).
    fn claim(&mut self, key: ObjectKey) {
        if !self.fed.contains(&key) {
            let mut claims = self.index.claims.lock().unwrap_or_else(PoisonError::into_inner);
            *claims.entry((K::STORE, key.clone())).or_default() += 1;
            self.fed.insert(key);
        }
    }

    /// The keys of the list in progress, opening one if none is (a relist
    /// begun by `InitApply` without `Init` counts too).
    fn list(&mut self) -> &mut HashSet<ObjectKey> {
        if self.relist.is_none() && !self.listing {
            self.index.change_listing(|l| count(&mut l.relisting, &self.watch, true));
        }
        self.relist.get_or_insert_default()
    }

    /// Stops following the watch on purpose (a namespace no longer
    /// watched, say): the index no longer waits for it (it is unsynced
    /// while the retire lets go, and without a BackendTLSPolicy watch left
    /// it waits for one), and what this feeder fed leaves the index unless
    /// another feeder holds it too.
    /// Retiring the last feeder of a watch also lets go of what a feeder
    /// of it gone without retiring left: to forget such a watch, make a
    /// feeder for its scope and retire that.
    pub fn retire(mut self) {
        self.leave(true);
        self.retired = true;
    }

    /// Leaves the counts the feeder is in (first, so that nobody sees what
    /// follows as synced), then what it fed: released if `retiring` or if
    /// another feeder of this watch has listed (it holds what is still
    /// there), else left for the next feeder of this watch to take over.
    fn leave(&mut self, retiring: bool) {
        let relisting = self.relist.take().is_some() && !self.listing;
        let listed = !std::mem::take(&mut self.listing);
        let mut fed = Some(std::mem::take(&mut self.fed));
        let (mut twice, mut orphans) = (Vec::new(), None);
        self.index.change_listing(|l| {
            count(if listed { &mut l.listed } else { &mut l.pending }, &self.watch, false);
            if relisting {
                count(&mut l.relisting, &self.watch, false);
            }
            if retiring || l.listed.contains_key(&self.watch) {
                // What it held goes (what the listed sibling holds stays),
                // the index unsynced until it has. Retiring the last feeder
                // of its watch, what a gone one left goes too: nobody else
                // will list for it.
                let last =
                    !l.pending.contains_key(&self.watch) && !l.listed.contains_key(&self.watch);
                if retiring && last {
                    orphans = l.abandoned.remove(&self.watch);
                }
                l.releasing += 1;
                return;
            }
            let owed = l.abandoned.entry(self.watch.clone()).or_default();
            for key in fed.take().unwrap_or_default() {
                if owed.contains(&key) {
                    twice.push(key); // owed already, with a claim of its own
                } else {
                    owed.insert(key);
                }
            }
        });
        self.index.release::<K>(twice);
        if let Some(fed) = fed {
            self.index.release::<K>(fed.into_iter().chain(orphans.into_iter().flatten()));
            self.index.change_listing(|l| l.releasing -= 1);
        }
    }
}

/// A feeder gone without retiring leaves its watch abandoned: the index is
/// not [synced](SharedIndex::is_synced) until a feeder of the same kind and
/// scope takes over and lists, so the data path refuses and status is not
/// written. (Gone while another feeder of its watch has listed, it leaves
/// what that one holds.)
impl<K: Indexed> Drop for Feeder<K> {
    fn drop(&mut self) {
        if !self.retired {
            self.leave(false);
        }
    }
}

/// What [`write_status`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusWrite {
    /// The stored status already says this; nothing was sent.
    Unchanged,
    /// The status was written.
    Written,
}

/// Why a status write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The policy no longer exists.
    #[error("BackendTLSPolicy {0} not found")]
    NotFound(ObjectKey),
    /// The policy changed since the copy the status was computed from; try
    /// again with the newer copy.
    #[error("BackendTLSPolicy {0} changed since it was read")]
    Conflict(ObjectKey),
    /// The entries that fit were written; these ancestors did not fit under
    /// the limit of 16, and the policy cannot be reported for them.
    #[error("BackendTLSPolicy {policy}: {} ancestors did not fit under the limit of 16", .dropped.len())]
    TooManyAncestors {
        /// The policy.
        policy: ObjectKey,
        /// The ancestors left out.
        dropped: Vec<ParentReference>,
    },
    /// The policy has no namespace or name.
    #[error("the BackendTLSPolicy has no namespace or name")]
    Unnamed,
    /// Any other API error.
    #[error("writing the status of BackendTLSPolicy {policy}")]
    Api {
        /// The policy.
        policy: ObjectKey,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// Writes this controller's ancestor entries into a policy's status with
/// server-side apply (field manager = `controller_name`), based on
/// `policy` as last read (its stored status and `resourceVersion`).
///
/// Only our entries change (see [`status::merge`]); nothing is sent when
/// the result equals the stored status; an entry whose stored
/// `observedGeneration` is newer than the offered one is kept.
///
/// # Errors
///
/// [`StatusError::Conflict`] when the policy changed since `policy` was read
/// (the write carries its `resourceVersion`), [`StatusError::NotFound`],
/// [`StatusError::TooManyAncestors`] after writing what fits, and
/// [`StatusError::Api`] for anything else.
pub async fn write_status(
    api: &Api<BackendTlsPolicy>,
    policy: &BackendTlsPolicy,
    controller_name: &ControllerName,
    ours: impl IntoIterator<Item = (ParentReference, Vec<Condition>)>,
) -> Result<StatusWrite, StatusError> {
    let key = ObjectKey::of(&policy.metadata).ok_or(StatusError::Unnamed)?;
    let merged = status::merge(policy, controller_name.as_str(), ours);
    let outcome = if merged.changed {
        let body = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "BackendTLSPolicy",
            "metadata": {
                "name": key.name,
                "namespace": key.namespace,
                "resourceVersion": policy.metadata.resource_version,
            },
            "status": merged.status,
        });
        let params = PatchParams::apply(controller_name.as_str()).force();
        api.patch_status(&key.name, &params, &Patch::Apply(&body)).await.map_err(|source| {
            match &source {
                kube::Error::Api(status) if status.code == 404 => {
                    StatusError::NotFound(key.clone())
                }
                kube::Error::Api(status) if status.code == 409 => {
                    StatusError::Conflict(key.clone())
                }
                _ => StatusError::Api { policy: key.clone(), source },
            }
        })?;
        StatusWrite::Written
    } else {
        StatusWrite::Unchanged
    };
    if merged.dropped.is_empty() {
        Ok(outcome)
    } else {
        Err(StatusError::TooManyAncestors { policy: key, dropped: merged.dropped })
    }
}

/// Writes the status of every policy in the index, reporting each against
/// the ancestors `ancestors` gives for it (usually the Gateways whose routes
/// reach the policy's targets). `None` leaves a policy's status alone in
/// this pass (one backing off after failed writes, say, or one another
/// replica writes). Returns the outcome of each policy written.
///
/// Writes nothing (and returns nothing) until the index
/// [is synced](SharedIndex::is_synced), nor while a watch relists (a pass
/// stops where one begins): a
/// starting controller would otherwise publish the conditions of a
/// half-listed cluster, such as CA references that do not resolve yet, and
/// during a relist objects deleted meanwhile are still held.
pub async fn write_all_status(
    index: &SharedIndex,
    client: &kube::Client,
    controller_name: &ControllerName,
    ancestors: impl Fn(&ObjectKey) -> Option<Vec<ParentReference>>,
) -> Vec<(ObjectKey, Result<StatusWrite, StatusError>)> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let keys = index.read().policy_keys();
    let mut results = Vec::with_capacity(keys.len());
    for key in keys {
        // Checked again for each: a relist may begin during the pass.
        if !index.is_settled() {
            break;
        }
        let Some(ancestors) = ancestors(&key) else { continue };
        // One policy at a time under the lock, and the write without it:
        // the data path and the watches do not wait for a whole pass.
        let read = {
            let index = index.read();
            index.policy_conditions(&key).zip(index.policy(&key).cloned())
        };
        let Some((conditions, policy)) = read else { continue }; // deleted meanwhile
        let conditions = conditions.to_conditions(&now);
        let ours = ancestors.into_iter().map(|ancestor| (ancestor, conditions.clone()));
        let api = Api::namespaced(client.clone(), &key.namespace);
        results.push((key, write_status(&api, &policy, controller_name, ours).await));
    }
    results
}
