//! [`Index::resolve`]: from a backend reference to the policy that applies.

use std::{fmt, sync::Arc};

use super::{BackendKind, CaSource, Index, ObjectKey, PolicyEntry, PortProtocol};
use crate::{
    api::v1,
    grant::{Referent, Referrer},
    policy::{TrustAnchors, ValidatedPolicy, ValidationErrors},
    status::{Reason, RefProblem},
    tls::OptionError,
};

/// A reference to a backend, as a Route's `backendRef` makes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendRef {
    /// The object making the reference (its group, kind and namespace).
    pub from: Referrer,
    /// The kind of backend.
    pub kind: BackendKind,
    /// The backend's namespace.
    pub namespace: String,
    /// The backend's name.
    pub name: String,
    /// The backend port the reference names (the Service port, not the
    /// target port).
    pub port: i32,
}

impl BackendRef {
    /// A reference to a Service port.
    pub fn service(
        from: Referrer,
        namespace: impl Into<String>,
        name: impl Into<String>,
        port: i32,
    ) -> Self {
        Self {
            from,
            kind: BackendKind::Service,
            namespace: namespace.into(),
            name: name.into(),
            port,
        }
    }
}

impl fmt::Display for BackendRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{} port {}", self.kind, self.namespace, self.name, self.port)
    }
}

/// The answer of [`Index::resolve`]: what happens to traffic for one
/// backend, and which policies were considered.
#[derive(Clone, Debug)]
pub struct Resolution {
    outcome: Outcome,
    candidates: Vec<Candidate>,
}

impl Resolution {
    /// What applies.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// What applies, for a caller that keeps nothing else.
    pub fn into_outcome(self) -> Outcome {
        self.outcome
    }

    /// Every policy that targets the backend's Service and could have
    /// applied to this port, with why it did or did not.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The "why" for logs and tools: the decision for `backend` (the
    /// reference this resolution answers), then each candidate policy.
    pub fn explain<'a>(&'a self, backend: &'a BackendRef) -> impl fmt::Display + 'a {
        Explanation { resolution: self, backend }
    }
}

struct Explanation<'a> {
    resolution: &'a Resolution,
    backend: &'a BackendRef,
}

/// What applies to a backend.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The reference crosses namespaces and no ReferenceGrant allows it.
    /// Nothing else is revealed (not even whether the backend exists).
    RefNotPermitted,
    /// No such backend.
    BackendNotFound,
    /// The backend has no such port.
    PortNotFound,
    /// No policy applies to this port: BackendTLSPolicy does not ask for
    /// TLS.
    NoPolicy,
    /// A policy applies. Use it only through [`AppliedPolicy::usable`]:
    /// when that fails, connections to the backend must fail (HTTP 5xx).
    Policy(AppliedPolicy),
}

impl Outcome {
    /// The reason to report on the referring Route's `ResolvedRefs=False`
    /// condition: `RefNotPermitted`, or `BackendNotFound` for a backend
    /// that does not exist. `None` otherwise, including for a port the
    /// backend lacks, for which Gateway API names no reason.
    pub fn route_reason(&self) -> Option<Reason> {
        match self {
            Self::RefNotPermitted => Some(Reason::RefNotPermitted),
            Self::BackendNotFound => Some(Reason::BackendNotFound),
            _ => None,
        }
    }
}

/// The policy that applies to a backend port.
#[derive(Clone, Debug)]
pub struct AppliedPolicy {
    entry: Arc<PolicyEntry>,
    section: Option<Arc<str>>,
    problems: Vec<PolicyProblem>,
}

impl AppliedPolicy {
    /// The policy's namespace and name.
    pub fn policy_key(&self) -> &ObjectKey {
        &self.entry.key
    }

    /// The policy object, without its `managedFields`.
    pub fn policy(&self) -> &v1::BackendTlsPolicy {
        &self.entry.policy
    }

    /// The port name the policy targets, or `None` for a whole-Service
    /// policy.
    pub fn section(&self) -> Option<&str> {
        self.section.as_deref()
    }

    /// Everything that keeps the policy from being used; empty when it can
    /// be.
    pub fn problems(&self) -> &[PolicyProblem] {
        &self.problems
    }

    /// The CA data of the references that resolved, in reference order.
    pub fn ca_sources(&self) -> &[CaSource] {
        &self.entry.ca_sources
    }

    /// What TLS is built from when the policy is usable: the validated
    /// policy and its trust anchors, both kept from one index version to
    /// the next while they stay the same, and when the anchors were made (a
    /// higher number is newer).
    pub(crate) fn tls_inputs(
        &self,
    ) -> Option<(&Arc<ValidatedPolicy>, &Arc<rustls::RootCertStore>, u64)> {
        match (&self.entry.validated, &self.entry.roots) {
            (Ok(policy), Some((roots, made))) if self.problems.is_empty() => {
                Some((policy, roots, *made))
            }
            _ => None,
        }
    }

    /// The domain whose `options` apply ([`Index::set_options_domain`]).
    pub(crate) fn options_domain(&self) -> Option<&Arc<str>> {
        self.entry.options_domain.as_ref()
    }

    /// The trust anchors, present when the policy has no problems of its
    /// own (a problem of the port, such as UDP, leaves them).
    pub(crate) fn roots(&self) -> Option<&Arc<rustls::RootCertStore>> {
        self.entry.roots.as_ref().map(|(roots, _)| roots)
    }

    /// The validated policy to build TLS from, or, when anything is wrong,
    /// the problems: then connections to the backend must fail (HTTP 5xx),
    /// never go out in plaintext.
    ///
    /// # Errors
    ///
    /// The problems, when there is at least one.
    pub fn usable(&self) -> Result<&ValidatedPolicy, &[PolicyProblem]> {
        match &self.entry.validated {
            Ok(policy) if self.problems.is_empty() => Ok(policy),
            _ => Err(&self.problems),
        }
    }
}

/// Something that keeps an applied policy from being used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyProblem {
    /// The spec does not validate.
    Invalid(ValidationErrors),
    /// The `options` under the implementation's domain
    /// ([`Index::set_options_domain`]) are unknown or bad.
    Options(Vec<OptionError>),
    /// `wellKnownCACertificates` names a set neither this crate (`System`)
    /// nor the implementation ([`Index::set_well_known_roots`]) provides.
    UnsupportedWellKnown(String),
    /// The policy targets a port that is not TCP (UDP, SCTP).
    NotTcp {
        /// The port.
        port: i32,
        /// Its protocol.
        protocol: PortProtocol,
    },
    /// A CA certificate reference does not resolve.
    CaRef(RefProblem),
    /// No CA certificate reference resolves.
    NoValidCACertificate,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(errors) => write!(f, "invalid: {errors}"),
            Self::Options(errors) => {
                let errors: Vec<_> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&errors.join("; "))
            }
            Self::UnsupportedWellKnown(name) => {
                write!(
                    f,
                    "wellKnownCACertificates {name:?} is not a CA set this implementation provides"
                )
            }
            Self::NotTcp { port, protocol } => {
                write!(f, "port {port} is {protocol}; TLS policies apply to TCP only")
            }
            Self::CaRef(problem) => problem.fmt(f),
            Self::NoValidCACertificate => f.write_str("no CA certificate reference resolves"),
        }
    }
}

/// A policy considered for a backend port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The policy.
    pub policy: Arc<ObjectKey>,
    /// The port name it targets, or `None` for the whole Service.
    pub section: Option<Arc<str>>,
    /// What became of it.
    pub verdict: Verdict,
}

/// Why a candidate policy applies or not.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// It applies.
    Applies,
    /// Another policy for the same target and section wins: older, or as
    /// old and first by `{namespace}/{name}`.
    Conflicted {
        /// The winner.
        winner: Arc<ObjectKey>,
    },
    /// A whole-Service policy, set aside for this port by a policy naming the
    /// port.
    Shadowed {
        /// The port-specific policy that applies instead.
        by: Arc<ObjectKey>,
    },
    /// A whole-Service policy does not apply to a port that is not TCP.
    NotTcp,
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = self.backend;
        match &self.resolution.outcome {
            Outcome::RefNotPermitted => write!(
                f,
                "{backend}: reference from {} {}/{} is not permitted (no ReferenceGrant in {} allows it)",
                backend.from.group, backend.from.kind, backend.from.namespace, backend.namespace
            )?,
            Outcome::BackendNotFound => write!(f, "{backend}: {} not found", backend.kind)?,
            Outcome::PortNotFound => write!(f, "{backend}: the {} has no such port", backend.kind)?,
            Outcome::NoPolicy => write!(f, "{backend}: no BackendTLSPolicy applies")?,
            Outcome::Policy(applied) => {
                write!(f, "{backend}: BackendTLSPolicy {} applies", applied.policy_key())?;
                match applied.usable() {
                    Ok(_) => f.write_str(" and is usable")?,
                    Err(problems) => {
                        f.write_str(" but cannot be used; connections must fail:")?;
                        for problem in problems {
                            write!(f, "\n  - {problem}")?;
                        }
                    }
                }
            }
        }
        for candidate in &self.resolution.candidates {
            let target = match &candidate.section {
                Some(section) => format!("port {section}"),
                None => "the whole Service".to_owned(),
            };
            write!(f, "\n  {} (targets {target}): ", candidate.policy)?;
            match &candidate.verdict {
                Verdict::Applies => f.write_str("applies")?,
                Verdict::Conflicted { winner } => write!(
                    f,
                    "conflicted, {winner} wins (older, or same age and first by namespace/name)"
                )?,
                Verdict::Shadowed { by } => {
                    write!(f, "not used for this port, {by} names the port")?
                }
                Verdict::NotTcp => f.write_str("not used, the port is not TCP")?,
            }
        }
        Ok(())
    }
}

impl Index {
    /// Decides what applies to one backend port.
    ///
    /// First the ReferenceGrant rule: a reference into another namespace
    /// needs a grant there, and without one the answer is
    /// [`Outcome::RefNotPermitted`] and nothing more. Then the backend and
    /// its port, then the policies: the ones naming the port beat the
    /// whole-Service ones; among equals the oldest wins. The applied policy
    /// carries every problem that keeps it from being used.
    pub fn resolve(&self, backend: &BackendRef) -> Resolution {
        let resolution = |outcome, candidates| Resolution { outcome, candidates };
        let kind = backend.kind;
        let (namespace, name) = (backend.namespace.as_str(), backend.name.as_str());
        let to = Referent { group: kind.group(), kind: kind.kind(), namespace, name };
        if !self.grants.allows(&backend.from, &to) {
            return resolution(Outcome::RefNotPermitted, Vec::new());
        }
        let Some(target) = self.target(kind, namespace, name) else {
            return resolution(Outcome::BackendNotFound, Vec::new());
        };
        let Some(ports) = &target.ports else {
            return resolution(Outcome::BackendNotFound, Vec::new());
        };
        // A number may be a UDP port and a TCP port at once (DNS on 53);
        // routes carry TCP, so the TCP port is the one meant.
        let numbered = || ports.iter().filter(|p| p.port == backend.port);
        let Some(port) = numbered().find(|p| p.protocol.is_tcp()).or_else(|| numbered().next())
        else {
            return resolution(Outcome::PortNotFound, Vec::new());
        };

        let mut candidates = Vec::new();
        // Policies naming the port: the first wins, the rest conflict.
        let named = port.name.as_deref().and_then(|n| target.ranked(Some(n)));
        let mut winner: Option<(&Arc<PolicyEntry>, Option<Arc<str>>)> = None;
        for (entry, section) in named
            .into_iter()
            .flat_map(|(ranked, section)| ranked.values().map(move |e| (e, section)))
        {
            let verdict = match &winner {
                None => Verdict::Applies,
                Some((first, _)) => Verdict::Conflicted { winner: first.key.clone() },
            };
            if winner.is_none() {
                winner = Some((entry, section.cloned()));
            }
            candidates.push(Candidate {
                policy: entry.key.clone(),
                section: section.cloned(),
                verdict,
            });
        }
        // Policies naming the whole backend: the first wins among them (the
        // rest conflict, as their status says, whatever the port), and is
        // shadowed by a port policy, or not for UDP or SCTP.
        let mut first_whole: Option<&Arc<PolicyEntry>> = None;
        for entry in target.whole.values() {
            let verdict = match (first_whole, &winner) {
                (Some(first), _) => Verdict::Conflicted { winner: first.key.clone() },
                (None, Some((by, _))) => Verdict::Shadowed { by: by.key.clone() },
                (None, None) if port.protocol.passed_over() => Verdict::NotTcp,
                (None, None) => Verdict::Applies,
            };
            first_whole.get_or_insert(entry);
            candidates.push(Candidate { policy: entry.key.clone(), section: None, verdict });
        }
        let whole_winner = first_whole.filter(|_| !port.protocol.passed_over());

        let Some((entry, section)) = winner.or(whole_winner.map(|entry| (entry, None))) else {
            return resolution(Outcome::NoPolicy, candidates);
        };
        // Cloning an empty Vec does not allocate: the usable path stays free
        // of allocations here.
        let mut problems = entry.problems.clone();
        if !port.protocol.is_tcp() {
            problems.insert(0, PolicyProblem::NotTcp { port: port.port, protocol: port.protocol });
        }
        let applied = AppliedPolicy { entry: entry.clone(), section, problems };
        resolution(Outcome::Policy(applied), candidates)
    }

    /// What keeps a policy from being used anywhere, and its CA data.
    pub(super) fn usage_problems(
        &self,
        namespace: &str,
        validated: &Result<Arc<ValidatedPolicy>, ValidationErrors>,
    ) -> (Vec<PolicyProblem>, Vec<CaSource>) {
        let policy = match validated {
            Err(errors) => return (vec![PolicyProblem::Invalid(errors.clone())], Vec::new()),
            Ok(policy) => policy,
        };
        let mut problems = Vec::new();
        let options = self.option_errors(policy);
        if !options.is_empty() {
            problems.push(PolicyProblem::Options(options));
        }
        if let Some(name) = self.unsupported_well_known(policy) {
            problems.push(PolicyProblem::UnsupportedWellKnown(name.to_string()));
            return (problems, Vec::new());
        }
        let TrustAnchors::CaCertificateRefs(refs) = policy.trust_anchors() else {
            return (problems, Vec::new());
        };
        let (ref_problems, sources) = self.check_ca_refs(namespace, refs);
        problems.extend(ref_problems.into_iter().map(PolicyProblem::CaRef));
        if sources.is_empty() {
            problems.push(PolicyProblem::NoValidCACertificate);
        }
        (problems, sources)
    }

    /// What is wrong with the policy's options under the implementation's
    /// domain, whatever the crypto provider.
    fn option_errors(&self, policy: &ValidatedPolicy) -> Vec<OptionError> {
        match self.options_domain.as_deref() {
            Some(domain) => crate::tls::options::check(policy, domain),
            None => Vec::new(),
        }
    }
}
