//! Status: the condition types and reasons Gateway API defines for
//! `BackendTLSPolicy`, the conditions of one policy, and [`merge`], which
//! writes this controller's ancestor entries into a `PolicyStatus`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    api::v1::{BackendTlsPolicy, ParentReference, PolicyAncestorStatus, PolicyStatus},
    index::PortProtocol,
    policy::{CaCertificateRef, GroupKind},
    tls::ca::{BlockError, BlockProblem, BundleError},
};

/// The most ancestor entries a `PolicyStatus` may hold (the API server
/// rejects the whole write past it).
pub const MAX_ANCESTORS: usize = 16;

/// The most conditions one ancestor entry holds (the CRD's `maxItems`).
pub const MAX_CONDITIONS: usize = 8;

/// A condition type of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConditionType {
    /// Whether the policy is accepted and in effect.
    Accepted,
    /// Whether every reference of the policy resolved.
    ResolvedRefs,
}

impl ConditionType {
    /// The condition type as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::ResolvedRefs => "ResolvedRefs",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `Accepted=True`.
    Accepted,
    /// `Accepted=False`: another policy for the same target and section wins.
    Conflicted,
    /// `Accepted=False`: the policy is invalid or unsupported.
    Invalid,
    /// `Accepted=False`: a target (or its section) does not exist.
    TargetNotFound,
    /// `Accepted=False`: none of the CA certificate references resolved.
    NoValidCACertificate,
    /// `ResolvedRefs=True`.
    ResolvedRefs,
    /// `ResolvedRefs=False`: a CA certificate reference is missing or
    /// malformed.
    InvalidCACertificateRef,
    /// `ResolvedRefs=False`: a CA certificate reference names an
    /// unsupported kind.
    InvalidKind,
    /// `ResolvedRefs=False`: a CA certificate reference holds certificates
    /// that parse but at least one of which has expired (the rest, if any,
    /// are not valid yet). Implementation-specific: Gateway API asks for a
    /// reason of the implementation's own when it checks certificates'
    /// content, such as expiry; this is GEP-1897's example.
    ExpiredCertificate,
    /// `ResolvedRefs=False`: a CA certificate reference holds certificates
    /// that parse but at least one of which is not valid yet (clock skew, or
    /// a CA published early). Implementation-specific, like
    /// [`Self::ExpiredCertificate`].
    NotYetValidCertificate,
    /// A cross-namespace reference that no ReferenceGrant allows (for the
    /// Route's or Gateway's `ResolvedRefs`).
    RefNotPermitted,
    /// The Gateway's backend client certificate reference is unusable (for
    /// the Gateway's `ResolvedRefs`).
    InvalidClientCertificateRef,
    /// A Route's backend reference names a backend that does not exist
    /// (for the Route's `ResolvedRefs`).
    BackendNotFound,
}

impl Reason {
    /// The reason as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::Conflicted => "Conflicted",
            Self::Invalid => "Invalid",
            Self::TargetNotFound => "TargetNotFound",
            Self::NoValidCACertificate => "NoValidCACertificate",
            Self::ResolvedRefs => "ResolvedRefs",
            Self::InvalidCACertificateRef => "InvalidCACertificateRef",
            Self::InvalidKind => "InvalidKind",
            Self::ExpiredCertificate => "ExpiredCertificate",
            Self::NotYetValidCertificate => "NotYetValidCertificate",
            Self::RefNotPermitted => "RefNotPermitted",
            Self::InvalidClientCertificateRef => "InvalidClientCertificateRef",
            Self::BackendNotFound => "BackendNotFound",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a CA certificate reference does not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefProblem {
    /// The reference names a kind other than a core ConfigMap or Secret.
    InvalidKind {
        /// Its position in `caCertificateRefs`.
        index: usize,
        /// The reference.
        reference: CaCertificateRef,
    },
    /// No such object in the policy's namespace.
    NotFound {
        /// Its position in `caCertificateRefs`.
        index: usize,
        /// The reference.
        reference: CaCertificateRef,
    },
    /// The object has no `ca.crt` key.
    MissingKey {
        /// Its position in `caCertificateRefs`.
        index: usize,
        /// The reference.
        reference: CaCertificateRef,
    },
    /// The object's `ca.crt` is empty.
    EmptyKey {
        /// Its position in `caCertificateRefs`.
        index: usize,
        /// The reference.
        reference: CaCertificateRef,
    },
    /// The object's `ca.crt` holds something other than valid
    /// certificates: every bad block is named.
    InvalidBundle {
        /// Its position in `caCertificateRefs`.
        index: usize,
        /// The reference.
        reference: CaCertificateRef,
        /// What is wrong with the bundle.
        error: BundleError,
    },
}

impl RefProblem {
    /// The `ResolvedRefs` reason for this problem: `InvalidKind`, or for
    /// a bundle whose only fault is its certificates' validity
    /// `ExpiredCertificate` or `NotYetValidCertificate`, else
    /// `InvalidCACertificateRef` (missing, empty or malformed).
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidKind { .. } => Reason::InvalidKind,
            Self::InvalidBundle { error: BundleError::Blocks(blocks), .. } => {
                let expired = |b: &BlockError| matches!(b.problem, BlockProblem::Expired(_));
                let early = |b: &BlockError| matches!(b.problem, BlockProblem::NotYetValid(_));
                if !blocks.iter().all(|b| expired(b) || early(b)) {
                    Reason::InvalidCACertificateRef
                } else if blocks.iter().any(expired) {
                    Reason::ExpiredCertificate
                } else {
                    Reason::NotYetValidCertificate
                }
            }
            _ => Reason::InvalidCACertificateRef,
        }
    }
}

impl fmt::Display for RefProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Self::InvalidKind { index, reference }
        | Self::NotFound { index, reference }
        | Self::MissingKey { index, reference }
        | Self::EmptyKey { index, reference }
        | Self::InvalidBundle { index, reference, .. }) = self;
        let what =
            format!("caCertificateRefs[{index}] {} {}", reference.group_kind, reference.name);
        match self {
            Self::InvalidKind { .. } => {
                write!(f, "{what}: kind is not supported (use a core ConfigMap or Secret)")
            }
            Self::NotFound { .. } => write!(f, "{what}: not found"),
            Self::MissingKey { .. } => write!(f, "{what}: has no key ca.crt"),
            Self::EmptyKey { .. } => write!(f, "{what}: ca.crt is empty"),
            Self::InvalidBundle { error, .. } => write!(f, "{what}: ca.crt {error}"),
        }
    }
}

/// Why a policy's target does not take the policy (the messages of its
/// `Accepted` condition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TargetProblem {
    /// A target kind this crate does not support.
    UnsupportedKind {
        /// Its position in `targetRefs`.
        index: usize,
        /// Its group and kind.
        group_kind: GroupKind,
    },
    /// No such target.
    NotFound {
        /// Its position in `targetRefs`.
        index: usize,
        /// Its kind and name, as `Service shop`.
        target: String,
    },
    /// The target has no port with the section's name.
    NoSuchPort {
        /// Its position in `targetRefs`.
        index: usize,
        /// Its kind and name.
        target: String,
        /// The section name.
        section: String,
    },
    /// The section names a port that is not TCP; TLS policies apply to TCP
    /// only.
    NotTcp {
        /// Its position in `targetRefs`.
        index: usize,
        /// Its kind and name.
        target: String,
        /// The section name.
        section: String,
        /// The port's protocol.
        protocol: PortProtocol,
    },
    /// The whole target is named and none of its ports is TCP.
    NoTcpPorts {
        /// Its position in `targetRefs`.
        index: usize,
        /// Its kind and name.
        target: String,
    },
}

impl TargetProblem {
    /// The position of the target in `targetRefs`.
    pub(crate) fn index(&self) -> usize {
        match self {
            Self::UnsupportedKind { index, .. }
            | Self::NotFound { index, .. }
            | Self::NoSuchPort { index, .. }
            | Self::NotTcp { index, .. }
            | Self::NoTcpPorts { index, .. } => *index,
        }
    }

    /// The `Accepted` reason for this problem.
    pub(crate) fn reason(&self) -> Reason {
        match self {
            Self::NotFound { .. } | Self::NoSuchPort { .. } => Reason::TargetNotFound,
            _ => Reason::Invalid,
        }
    }
}

impl fmt::Display for TargetProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedKind { index, group_kind } => write!(
                f,
                "targetRefs[{index}]: kind {group_kind} is not supported \
                 (Service, multicluster.x-k8s.io/ServiceImport)"
            ),
            Self::NotFound { index, target } => {
                write!(f, "targetRefs[{index}]: {target} not found")
            }
            Self::NoSuchPort { index, target, section } => {
                write!(f, "targetRefs[{index}]: {target} has no port named {section}")
            }
            Self::NotTcp { index, target, section, protocol } => write!(
                f,
                "targetRefs[{index}]: port {section} of {target} is {protocol}; TLS policies apply to TCP only"
            ),
            Self::NoTcpPorts { index, target } => write!(
                f,
                "targetRefs[{index}]: no port of {target} is TCP; TLS policies apply to TCP only"
            ),
        }
    }
}

/// The state of one condition: status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionState {
    /// `True` or `False`.
    pub status: bool,
    /// The reason.
    pub reason: Reason,
    /// What a person reads: which object or field, and why.
    pub message: String,
}

/// The conditions a policy carries (for every ancestor alike), computed by
/// [`Index::policy_conditions`](crate::index::Index::policy_conditions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConditions {
    /// The policy's `metadata.generation` the conditions describe.
    pub observed_generation: Option<i64>,
    /// `Accepted`.
    pub accepted: ConditionState,
    /// `ResolvedRefs`.
    pub resolved_refs: ConditionState,
}

impl PolicyConditions {
    /// The conditions as `metav1.Condition`s, stamped `now` (merging keeps
    /// the previous time of a condition whose status did not change).
    pub fn to_conditions(&self, now: &Time) -> Vec<Condition> {
        [
            (ConditionType::Accepted, &self.accepted),
            (ConditionType::ResolvedRefs, &self.resolved_refs),
        ]
        .into_iter()
        .map(|(type_, state)| Condition {
            type_: type_.as_str().to_owned(),
            status: if state.status { "True" } else { "False" }.to_owned(),
            reason: state.reason.as_str().to_owned(),
            // The API server caps messages at 32768 characters.
            message: truncate(&state.message, 32768),
            observed_generation: self.observed_generation,
            last_transition_time: now.clone(),
        })
        .collect()
    }
}

fn truncate(message: &str, max_chars: usize) -> String {
    match message.char_indices().nth(max_chars) {
        Some((end, _)) => message[..end].to_owned(),
        None => message.to_owned(),
    }
}

/// What [`merge`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The status to write.
    pub status: PolicyStatus,
    /// Whether it differs from the status merged into (no write needed
    /// otherwise).
    pub changed: bool,
    /// Our ancestors that did not fit under [`MAX_ANCESTORS`]: the policy
    /// cannot be reported for them, and should be treated as not
    /// implementable for those Gateways.
    pub dropped: Vec<ParentReference>,
}

/// Writes this controller's entries into `policy`'s status.
///
/// `ours` is the complete set of ancestors (usually Gateways) this
/// controller reports the policy for, with their conditions. Entries of
/// other controllers stay as they are, where they are. Our entries for
/// ancestors not in `ours` are removed. A condition whose status did not
/// change keeps its `lastTransitionTime`; condition types we do not offer
/// stay in our entries (conditions are a map by type), up to
/// [`MAX_CONDITIONS`]. An entry of ours whose stored
/// `observedGeneration` is newer than the one offered is kept (we are looking
/// at an old version of the policy). At most [`MAX_ANCESTORS`] entries are
/// written; the ancestors that did not fit come back in [`Merged::dropped`].
/// Ancestors compare with the API server's defaults applied: group and
/// kind written out or not, and no namespace meaning the policy's own. An
/// ancestor offered twice is reported once, with the first conditions
/// offered for it. Merging the result again with the same input changes
/// nothing.
pub fn merge(
    policy: &BackendTlsPolicy,
    controller_name: &str,
    ours: impl IntoIterator<Item = (ParentReference, Vec<Condition>)>,
) -> Merged {
    let existing_ancestors =
        policy.status.as_ref().map(|s| s.ancestors.as_slice()).unwrap_or_default();
    let local = policy.metadata.namespace.as_deref();
    let same_ancestor = |a: &ParentReference, b: &ParentReference| {
        a.group() == b.group()
            && a.kind() == b.kind()
            && a.namespace.as_deref().or(local) == b.namespace.as_deref().or(local)
            && a.name == b.name
            && a.section_name == b.section_name
            && a.port == b.port
    };
    let is_ours = |entry: &PolicyAncestorStatus| entry.controller_name == controller_name;
    // One entry per ancestor (the list is keyed by ancestor and
    // controller): two routes reaching one Gateway name it twice.
    let mut unique: Vec<(ParentReference, Vec<Condition>)> = Vec::new();
    for (ancestor, conditions) in ours {
        if !unique.iter().any(|(a, _)| same_ancestor(a, &ancestor)) {
            unique.push((ancestor, conditions));
        }
    }

    let mut ancestors: Vec<PolicyAncestorStatus> =
        existing_ancestors.iter().filter(|e| !is_ours(e)).cloned().collect();
    let mut dropped = Vec::new();
    // Ancestors we already report keep their place ahead of new ones, so a
    // full list does not churn.
    let (known, new): (Vec<_>, Vec<_>) = unique.into_iter().partition(|(ancestor, _)| {
        existing_ancestors.iter().any(|e| is_ours(e) && same_ancestor(&e.ancestor_ref, ancestor))
    });
    for (ancestor, conditions) in known.into_iter().chain(new) {
        if ancestors.len() >= MAX_ANCESTORS {
            dropped.push(ancestor);
            continue;
        }
        let previous = existing_ancestors
            .iter()
            .find(|e| is_ours(e) && same_ancestor(&e.ancestor_ref, &ancestor));
        let entry = match previous {
            Some(previous) if is_newer(previous, &conditions) => previous.clone(),
            _ => PolicyAncestorStatus {
                conditions: merge_conditions(previous.map(|p| p.conditions.as_slice()), conditions),
                ancestor_ref: previous.map_or(ancestor, |p| p.ancestor_ref.clone()),
                controller_name: controller_name.to_owned(),
            },
        };
        ancestors.push(entry);
    }
    // Keep the stored order when the set of entries is unchanged, so that a
    // second merge is a no-op.
    let position = |entry: &PolicyAncestorStatus| {
        existing_ancestors
            .iter()
            .position(|e| {
                e.controller_name == entry.controller_name
                    && same_ancestor(&e.ancestor_ref, &entry.ancestor_ref)
            })
            .unwrap_or(usize::MAX)
    };
    ancestors.sort_by_key(position);
    let changed = ancestors != existing_ancestors;
    Merged { status: PolicyStatus { ancestors }, changed, dropped }
}

fn is_newer(stored: &PolicyAncestorStatus, offered: &[Condition]) -> bool {
    let generation = |cs: &[Condition]| cs.iter().filter_map(|c| c.observed_generation).max();
    matches!((generation(&stored.conditions), generation(offered)), (Some(s), Some(o)) if s > o)
}

/// The offered conditions (keeping `lastTransitionTime` where the status
/// holds), then stored ones of other types (the list is a map by type:
/// what another part of the controller set stays), up to the schema's 8.
fn merge_conditions(previous: Option<&[Condition]>, offered: Vec<Condition>) -> Vec<Condition> {
    let previous = previous.unwrap_or_default();
    let mut merged: Vec<Condition> = offered
        .into_iter()
        .map(|mut condition| {
            let same = previous.iter().find(|p| p.type_ == condition.type_);
            if let Some(previous) = same.filter(|p| p.status == condition.status) {
                condition.last_transition_time = previous.last_transition_time.clone();
            }
            condition
        })
        .collect();
    let others: Vec<Condition> =
        previous.iter().filter(|p| !merged.iter().any(|c| c.type_ == p.type_)).cloned().collect();
    merged.extend(others);
    merged.truncate(MAX_CONDITIONS);
    merged
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    const US: &str = "example.com/us";
    const THEM: &str = "example.net/them";

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
    }

    /// A policy in `shop`, as last read.
    fn stored(status: &PolicyStatus) -> BackendTlsPolicy {
        BackendTlsPolicy { status: Some(status.clone()), ..fresh() }
    }

    fn fresh() -> BackendTlsPolicy {
        let mut policy = BackendTlsPolicy::new("shop-tls", Default::default());
        policy.metadata.namespace = Some("shop".into());
        policy
    }

    fn gateway(name: &str) -> ParentReference {
        ParentReference { namespace: Some("infra".into()), name: name.into(), ..Default::default() }
    }

    fn conditions(accepted: bool, generation: i64, now: i64) -> Vec<Condition> {
        let state =
            |status, reason: Reason| ConditionState { status, reason, message: String::new() };
        PolicyConditions {
            observed_generation: Some(generation),
            accepted: if accepted {
                state(true, Reason::Accepted)
            } else {
                state(false, Reason::Conflicted)
            },
            resolved_refs: state(true, Reason::ResolvedRefs),
        }
        .to_conditions(&at(now))
    }

    fn entry(controller: &str, gw: &str) -> PolicyAncestorStatus {
        PolicyAncestorStatus {
            ancestor_ref: gateway(gw),
            controller_name: controller.into(),
            conditions: conditions(true, 1, 0),
        }
    }

    /// Certificates' validity has reasons of its own (Gateway API asks
    /// implementations for theirs); anything else wrong with the bundle is
    /// `InvalidCACertificateRef`, whatever else is wrong beside it.
    #[test]
    fn validity_reasons_only_for_validity_alone() {
        let block = |block, problem| BlockError { block, problem };
        let expired = || BlockProblem::Expired("2020-01-01 0:00:00.0 +00:00:00".into());
        let early = || BlockProblem::NotYetValid("2099-01-01 0:00:00.0 +00:00:00".into());
        let reason = |blocks: Vec<BlockError>| {
            RefProblem::InvalidBundle {
                index: 0,
                reference: CaCertificateRef {
                    group_kind: GroupKind::new("", "ConfigMap"),
                    name: "ca".into(),
                },
                error: BundleError::Blocks(blocks),
            }
            .reason()
        };
        assert_eq!(reason(vec![block(2, expired())]), Reason::ExpiredCertificate);
        assert_eq!(reason(vec![block(1, early())]), Reason::NotYetValidCertificate);
        assert_eq!(
            reason(vec![block(1, early()), block(2, expired())]),
            Reason::ExpiredCertificate
        );
        let key = || BlockProblem::NotACertificate("PRIVATE KEY".into());
        assert_eq!(
            reason(vec![block(1, expired()), block(2, key())]),
            Reason::InvalidCACertificateRef
        );
        assert_eq!(Reason::ExpiredCertificate.as_str(), "ExpiredCertificate");
        assert_eq!(Reason::NotYetValidCertificate.as_str(), "NotYetValidCertificate");
    }

    #[test]
    fn leaves_other_controllers_alone_and_is_idempotent() {
        let existing = PolicyStatus { ancestors: vec![entry(THEM, "a"), entry(US, "old")] };
        let first = merge(&stored(&existing), US, [(gateway("b"), conditions(true, 2, 10))]);
        assert!(first.changed);
        assert_eq!(first.status.ancestors[0], existing.ancestors[0], "theirs untouched, in place");
        assert_eq!(first.status.ancestors.len(), 2, "our stale entry for `old` is gone");
        assert_eq!(first.status.ancestors[1].ancestor_ref.name, "b");

        let second = merge(&stored(&first.status), US, [(gateway("b"), conditions(true, 2, 20))]);
        assert!(!second.changed);
        assert_eq!(second.status, first.status);
    }

    /// Two routes reaching one Gateway: it is one entry, not two that
    /// would stay for good and take two of the sixteen places.
    #[test]
    fn an_ancestor_offered_twice_is_one_entry() {
        let spelled_out = ParentReference {
            group: Some("gateway.networking.k8s.io".into()),
            kind: Some("Gateway".into()),
            ..gateway("a")
        };
        let offered = || {
            [
                (gateway("a"), conditions(true, 1, 0)),
                (gateway("b"), conditions(true, 1, 0)),
                (spelled_out.clone(), conditions(false, 1, 0)),
                (gateway("a"), conditions(false, 1, 0)),
            ]
        };
        let first = merge(&fresh(), US, offered());
        let names: Vec<_> = first.status.ancestors.iter().map(|e| &e.ancestor_ref.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(first.status.ancestors[0].conditions[0].status, "True", "the first offered");
        assert!(!merge(&stored(&first.status), US, offered()).changed);
    }

    #[test]
    fn keeps_transition_time_while_status_holds() {
        let first = merge(&fresh(), US, [(gateway("a"), conditions(true, 1, 0))]);
        let second = merge(&stored(&first.status), US, [(gateway("a"), conditions(true, 2, 50))]);
        let accepted = &second.status.ancestors[0].conditions[0];
        assert_eq!(accepted.last_transition_time, at(0));
        assert_eq!(accepted.observed_generation, Some(2));
        assert!(second.changed, "observedGeneration moved");

        let third = merge(&stored(&second.status), US, [(gateway("a"), conditions(false, 3, 99))]);
        let accepted = &third.status.ancestors[0].conditions[0];
        assert_eq!(
            (accepted.status.as_str(), accepted.last_transition_time.clone()),
            ("False", at(99))
        );
        let resolved = &third.status.ancestors[0].conditions[1];
        assert_eq!(resolved.last_transition_time, at(0), "ResolvedRefs did not change");
    }

    /// Conditions are a map by type: a type we do not offer (another part
    /// of the controller set it) stays, and the entry never passes 8.
    #[test]
    fn keeps_condition_types_it_does_not_offer() {
        let mut ours = entry(US, "a");
        let programmed = |status: &str| Condition {
            type_: "example.com/Programmed".into(),
            status: status.into(),
            reason: "Programmed".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: at(5),
        };
        ours.conditions.push(programmed("True"));
        let existing = PolicyStatus { ancestors: vec![ours] };
        let merged = merge(&stored(&existing), US, [(gateway("a"), conditions(true, 1, 9))]);
        assert!(!merged.changed, "{:?}", merged.status);
        assert_eq!(merged.status.ancestors[0].conditions[2], programmed("True"));

        let mut many = existing;
        many.ancestors[0].conditions.extend(
            (0..8).map(|i| Condition {
                type_: format!("example.com/Other{i}"),
                ..programmed("True")
            }),
        );
        let merged = merge(&stored(&many), US, [(gateway("a"), conditions(false, 2, 9))]);
        let types: Vec<_> =
            merged.status.ancestors[0].conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types.len(), MAX_CONDITIONS);
        assert_eq!(types[..3], ["Accepted", "ResolvedRefs", "example.com/Programmed"]);
    }

    #[test]
    fn never_exceeds_sixteen_and_reports_the_rest() {
        let theirs: Vec<_> = (0..10).map(|i| entry(THEM, &format!("t{i}"))).collect();
        let existing = PolicyStatus { ancestors: theirs };
        let ours: Vec<_> =
            (0..8).map(|i| (gateway(&format!("u{i}")), conditions(true, 1, 0))).collect();
        let merged = merge(&stored(&existing), US, ours);
        assert_eq!(merged.status.ancestors.len(), MAX_ANCESTORS);
        let dropped: Vec<_> = merged.dropped.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(dropped, ["u6", "u7"]);
    }

    #[test]
    fn a_known_ancestor_keeps_its_place_when_full() {
        let mut ancestors: Vec<_> = (0..15).map(|i| entry(THEM, &format!("t{i}"))).collect();
        ancestors.push(entry(US, "mine"));
        let existing = PolicyStatus { ancestors };
        let merged = merge(
            &stored(&existing),
            US,
            [(gateway("new"), conditions(true, 1, 0)), (gateway("mine"), conditions(true, 1, 0))],
        );
        assert_eq!(merged.status.ancestors[15].ancestor_ref.name, "mine");
        assert_eq!(merged.dropped, [gateway("new")]);
        assert!(!merged.changed);
    }

    #[test]
    fn does_not_overwrite_a_newer_generation() {
        let newer = merge(&fresh(), US, [(gateway("a"), conditions(true, 5, 0))]);
        let stale = merge(&stored(&newer.status), US, [(gateway("a"), conditions(false, 4, 10))]);
        assert!(!stale.changed);
        assert_eq!(stale.status, newer.status);
    }

    #[test]
    fn ancestor_defaults_are_applied_when_matching() {
        let explicit = ParentReference {
            group: Some("gateway.networking.k8s.io".into()),
            kind: Some("Gateway".into()),
            ..gateway("a")
        };
        let existing = PolicyStatus {
            ancestors: vec![PolicyAncestorStatus { ancestor_ref: explicit, ..entry(US, "a") }],
        };
        let merged = merge(&stored(&existing), US, [(gateway("a"), conditions(true, 1, 0))]);
        assert!(!merged.changed, "{:?}", merged.status);
    }

    /// An ancestor without a namespace is in the policy's: it is the same
    /// ancestor as one naming that namespace, and not one in another.
    #[test]
    fn no_namespace_is_the_policys_own() {
        let in_shop = |namespace: Option<&str>| ParentReference {
            namespace: namespace.map(Into::into),
            name: "edge".into(),
            ..Default::default()
        };
        let first = merge(
            &fresh(),
            US,
            [
                (in_shop(None), conditions(true, 1, 0)),
                (in_shop(Some("shop")), conditions(false, 1, 0)),
                (in_shop(Some("infra")), conditions(true, 1, 0)),
            ],
        );
        let namespaces: Vec<_> =
            first.status.ancestors.iter().map(|e| e.ancestor_ref.namespace.as_deref()).collect();
        assert_eq!(namespaces, [None, Some("infra")]);

        let spelled_out = merge(
            &stored(&first.status),
            US,
            [
                (in_shop(Some("shop")), conditions(true, 1, 50)),
                (in_shop(Some("infra")), conditions(true, 1, 50)),
            ],
        );
        assert!(!spelled_out.changed, "{:?}", spelled_out.status);
    }

    #[test]
    fn long_messages_are_cut_to_the_api_limit() {
        let state =
            ConditionState { status: false, reason: Reason::Invalid, message: "é".repeat(40_000) };
        let conditions = PolicyConditions {
            observed_generation: None,
            accepted: state.clone(),
            resolved_refs: state,
        }
        .to_conditions(&at(0));
        assert_eq!(conditions[0].message.chars().count(), 32768);
    }
}
