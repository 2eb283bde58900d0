//! [`Index::policy_conditions`]: the `Accepted` and `ResolvedRefs`
//! conditions of one policy.

use super::{
    BackendPort, BackendRef, Index, ObjectKey, Outcome, PolicyEntry, PolicyProblem, PortProtocol,
    TrustAnchors,
};
use crate::{
    grant::Referrer,
    policy::{CaCertificateRef, GroupKind},
    status::{ConditionState, PolicyConditions, Reason, RefProblem, TargetProblem},
};

impl Index {
    /// The conditions of a policy, or `None` if the index does not hold it.
    ///
    /// `Accepted` is `False` with, in this order of precedence: `Invalid`
    /// (the spec does not validate, has bad options under the
    /// [options domain](Index::set_options_domain), names an unsupported CA
    /// set or target kind, or targets no TCP port), `TargetNotFound` (a target
    /// or its port is missing), `Conflicted` (another policy wins a target),
    /// or `NoValidCACertificate` (no CA reference resolves); otherwise
    /// `True`. Target problems and conflicts count only when the policy is
    /// in effect on none of its targets: a policy with several targetRefs
    /// that is in effect on some is `Accepted=True` (it is used there), its
    /// message naming where it is not and why. `ResolvedRefs` is `False` when any CA reference does not
    /// resolve, whether or not the spec validates, with the first bad
    /// reference's reason among `InvalidKind` and `InvalidCACertificateRef`,
    /// else (certificates that are only outside their validity)
    /// `ExpiredCertificate` or `NotYetValidCertificate`. Messages name every
    /// offending target, reference or field and say why.
    pub fn policy_conditions(&self, key: &ObjectKey) -> Option<PolicyConditions> {
        let entry = self.policies.get(&key.namespace, &key.name)?;
        let mut invalid = Vec::new();
        let mut not_found = Vec::new();
        let mut warnings = Vec::new();

        match &entry.validated {
            Err(errors) => invalid.push(format!("invalid: {errors}")),
            Ok(_) => invalid.extend(
                entry
                    .problems
                    .iter()
                    .filter(|p| {
                        matches!(
                            p,
                            PolicyProblem::UnsupportedWellKnown(_) | PolicyProblem::Options(_)
                        )
                    })
                    .map(ToString::to_string),
            ),
        }
        let target_problems = self.target_problems(entry, &mut warnings);
        let mut conflicts = self.conflicts(entry);
        // Where the data path uses it: asked only where the answer can
        // change something (one target, in order, is in effect or has a
        // problem or conflict that says why not).
        let several = entry.attachments.len() > 1;
        let effective = if several || !target_problems.is_empty() || !conflicts.is_empty() {
            self.effective_targets(entry)
        } else {
            Vec::new()
        };
        let in_effect_somewhere = !effective.is_empty();
        // Where a policy in effect elsewhere is not: said, not refused.
        let mut not_here = Vec::new();
        if several && in_effect_somewhere {
            for (index, attach) in &entry.attachments {
                let explained = target_problems.iter().any(|p| p.index() == *index)
                    || conflicts.iter().any(|(i, _)| i == index);
                if !effective.contains(index) && !explained {
                    not_here.push((
                        *index,
                        format!(
                            "targetRefs[{index}]: no port of {} {} uses it (port policies take them, or none is TCP)",
                            attach.kind, attach.name
                        ),
                    ));
                }
            }
        }
        for problem in target_problems {
            match problem.reason() {
                _ if in_effect_somewhere => not_here.push((problem.index(), problem.to_string())),
                Reason::TargetNotFound => not_found.push(problem.to_string()),
                _ => invalid.push(problem.to_string()),
            }
        }
        if in_effect_somewhere {
            not_here.append(&mut conflicts);
        }
        not_here.sort_by_key(|(index, _)| *index);
        let not_here = match not_here.is_empty() {
            true => String::new(),
            false => {
                let list: Vec<_> = not_here.into_iter().map(|(_, message)| message).collect();
                format!(". Not in effect at: {}", list.join(" | "))
            }
        };
        let conflicts: Vec<String> = conflicts.into_iter().map(|(_, message)| message).collect();
        let (ref_problems, no_valid_ca) = match &entry.validated {
            Ok(policy) => match policy.trust_anchors() {
                TrustAnchors::CaCertificateRefs(refs) => {
                    let (problems, sources) = self.check_ca_refs(&key.namespace, refs);
                    (problems, sources.is_empty())
                }
                TrustAnchors::WellKnown(_) => (Vec::new(), false),
            },
            // A spec this crate refuses (the API server took it) still has
            // its references checked, as they are written.
            Err(_) => {
                let refs: Vec<CaCertificateRef> = entry
                    .policy
                    .spec
                    .validation
                    .ca_certificate_refs
                    .iter()
                    .flatten()
                    .map(|r| CaCertificateRef {
                        group_kind: GroupKind::new(&r.group, &r.kind),
                        name: r.name.clone(),
                    })
                    .collect();
                (self.check_ca_refs(&key.namespace, &refs).0, false)
            }
        };

        let accepted = if !invalid.is_empty() {
            let message = format!("{}{not_here}", invalid.join("; "));
            ConditionState { status: false, reason: Reason::Invalid, message }
        } else if !not_found.is_empty() {
            ConditionState {
                status: false,
                reason: Reason::TargetNotFound,
                message: not_found.join("; "),
            }
        } else if !conflicts.is_empty() {
            ConditionState {
                status: false,
                reason: Reason::Conflicted,
                message: conflicts.join("; "),
            }
        } else if no_valid_ca {
            let refs: Vec<_> = ref_problems.iter().map(ToString::to_string).collect();
            ConditionState {
                status: false,
                reason: Reason::NoValidCACertificate,
                message: format!(
                    "no CA certificate reference resolves: {}{not_here}",
                    refs.join("; ")
                ),
            }
        } else {
            let mut message = "the policy is accepted".to_owned();
            if !not_here.is_empty() {
                message.push_str(" where it is in effect");
                message.push_str(&not_here);
            }
            if !ref_problems.is_empty() {
                // Accepted as Gateway API asks (some references resolve),
                // yet unusable: say so here too.
                message.push_str(
                    ". Connections using it fail until every CA certificate reference resolves (see ResolvedRefs)",
                );
            }
            if !warnings.is_empty() {
                message.push_str(&format!(". Note: {}", warnings.join("; ")));
            }
            ConditionState { status: true, reason: Reason::Accepted, message }
        };
        // Gateway API's own reasons (a reference missing, malformed or of
        // an unsupported kind) before the implementation-specific ones for
        // certificates' validity; among those, the first reference's.
        let standard = |p: &&RefProblem| {
            matches!(p.reason(), Reason::InvalidKind | Reason::InvalidCACertificateRef)
        };
        let resolved_refs = match ref_problems.iter().find(standard).or(ref_problems.first()) {
            None => ConditionState {
                status: true,
                reason: Reason::ResolvedRefs,
                message: "every CA certificate reference resolved".to_owned(),
            },
            Some(first) => ConditionState {
                status: false,
                reason: first.reason(),
                message: ref_problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        };
        Some(PolicyConditions {
            observed_generation: entry.policy.metadata.generation,
            accepted,
            resolved_refs,
        })
    }

    /// The targets (positions in `targetRefs`) the data path uses the
    /// policy on: resolving a port of the target (from the policy's
    /// namespace), the port it names if any, gives this policy on a TCP
    /// port. (Its CA references may still fail it: that is
    /// `NoValidCACertificate` and `ResolvedRefs`.)
    fn effective_targets(&self, entry: &PolicyEntry) -> Vec<usize> {
        let from = Referrer::gateway_api("HTTPRoute", &entry.key.namespace);
        let used = |attach: &super::AttachKey, port: &BackendPort| {
            let backend = BackendRef {
                kind: attach.kind,
                ..BackendRef::service(from.clone(), &attach.namespace, &attach.name, port.port)
            };
            matches!(self.resolve(&backend).outcome(), Outcome::Policy(applied)
                if applied.policy_key() == &*entry.key
                    && !applied.problems().iter().any(|p| matches!(p, PolicyProblem::NotTcp { .. })))
        };
        entry
            .attachments
            .iter()
            .filter(|(_, attach)| {
                let ports = self.backend_ports(attach.kind, &attach.namespace, &attach.name);
                ports.into_iter().flatten().any(|port| match &attach.section {
                    Some(section) => port.name.as_ref() == Some(section) && used(attach, port),
                    None => used(attach, port),
                })
            })
            .map(|(index, _)| *index)
            .collect()
    }

    /// Problems with the policy's targets; warnings (UDP or SCTP ports a
    /// whole-Service policy skips) go to `warnings`.
    fn target_problems(
        &self,
        entry: &PolicyEntry,
        warnings: &mut Vec<String>,
    ) -> Vec<TargetProblem> {
        let mut problems: Vec<_> = entry
            .unsupported_targets
            .iter()
            .map(|&index| {
                let target = &entry.policy.spec.target_refs[index];
                TargetProblem::UnsupportedKind {
                    index,
                    group_kind: GroupKind::new(&target.group, &target.kind),
                }
            })
            .collect();
        for (index, attach) in &entry.attachments {
            let index = *index;
            let target = format!("{} {}", attach.kind, attach.name);
            let Some(ports) = self.backend_ports(attach.kind, &attach.namespace, &attach.name)
            else {
                problems.push(TargetProblem::NotFound { index, target });
                continue;
            };
            match &attach.section {
                Some(section) => match ports.iter().find(|p| p.name.as_ref() == Some(section)) {
                    None => problems.push(TargetProblem::NoSuchPort {
                        index,
                        target,
                        section: section.clone(),
                    }),
                    Some(port) if !port.protocol.is_tcp() => problems.push(TargetProblem::NotTcp {
                        index,
                        target,
                        section: section.clone(),
                        protocol: port.protocol,
                    }),
                    Some(_) => {}
                },
                None => {
                    let other = |p: &&BackendPort| p.protocol.passed_over();
                    let other: Vec<_> =
                        ports.iter().filter(other).map(BackendPort::label).collect();
                    let unknown: Vec<_> = ports
                        .iter()
                        .filter(|p| p.protocol == PortProtocol::Other)
                        .map(BackendPort::label)
                        .collect();
                    if !unknown.is_empty() {
                        warnings.push(format!(
                            "targetRefs[{index}]: ports {} of {target} have a protocol Kubernetes does not know: connections to them fail",
                            unknown.join(", ")
                        ));
                    }
                    if !ports.is_empty() && other.len() == ports.len() {
                        problems.push(TargetProblem::NoTcpPorts { index, target });
                    } else if !other.is_empty() {
                        warnings.push(format!(
                            "targetRefs[{index}]: ports {} of {target} are not TCP and not covered",
                            other.join(", ")
                        ));
                    }
                }
            }
        }
        problems
    }

    /// Where the policy loses to another one: the target's position in
    /// `targetRefs`, and a message.
    fn conflicts(&self, entry: &PolicyEntry) -> Vec<(usize, String)> {
        entry
            .attachments
            .iter()
            .filter_map(|(index, attach)| {
                let winner = self.ranked(attach).next()?;
                (winner.key != entry.key).then(|| {
                    let place = match &attach.section {
                        Some(section) => format!("port {section} of {} {}", attach.kind, attach.name),
                        None => format!("{} {}", attach.kind, attach.name),
                    };
                    (*index, format!("targetRefs[{index}]: {} also targets {place} and takes precedence (older, or same age and first by namespace/name)", winner.key))
                })
            })
            .collect()
    }
}
