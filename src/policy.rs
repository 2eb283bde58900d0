//! The validated form of a `BackendTLSPolicy` spec, and the errors that keep
//! a wire object from becoming one.
//!
//! [`ValidatedPolicy`] is reachable only through `TryFrom` from the wire
//! spec. Validation reproduces the API server (schema limits, patterns,
//! enums and the 8 CEL rules, with the upstream messages) and reports every
//! problem with its field path, so an object the API server accepts is
//! accepted here and one it rejects is rejected here, with these documented
//! exceptions where this crate is stricter:
//!
//! - `spec.validation.hostname`, or a SAN hostname, whose last label is a
//!   number (`10.0.0.1`, `a.123`): it reads as an IP address, IPs are not
//!   allowed (see [`Hostname`]), and as a SAN it could never match;
//! - a hostname label (in `hostname` or a SAN hostname) longer than 63
//!   characters: not a DNS name;
//! - an `options` key that is not domain-prefixed (`example.com/name`):
//!   unprefixed keys are reserved for Gateway API, and the API server does not
//!   check keys at all.

use std::{collections::BTreeMap, fmt};

use crate::{
    api::v1,
    name::{self, DomainPrefixedName, Hostname, NameError, SanHostname, SanUri, SectionName},
};

/// A group and kind, as named by a reference (`""` is the core group).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    /// The API group; empty for the core group.
    pub group: String,
    /// The kind.
    pub kind: String,
}

impl GroupKind {
    /// A group and kind.
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        Self { group: group.into(), kind: kind.into() }
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}/{}", self.group, self.kind)
        }
    }
}

/// One validated entry of `spec.targetRefs`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetRef {
    /// Group and kind of the target.
    pub group_kind: GroupKind,
    /// Name of the target, in the policy's namespace.
    pub name: String,
    /// The section (for a Service, the port name), or `None` for the whole
    /// target.
    pub section: Option<SectionName>,
}

/// One validated entry of `spec.validation.caCertificateRefs`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaCertificateRef {
    /// Group and kind of the referent (supported: `ConfigMap` and `Secret`
    /// of the core group; others are reported as `InvalidKind`).
    pub group_kind: GroupKind,
    /// Name of the referent, in the policy's namespace.
    pub name: String,
}

/// Where the trust anchors come from: exactly one of the two sources.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustAnchors {
    /// CA certificates from these objects, in order (1 to 8).
    CaCertificateRefs(Vec<CaCertificateRef>),
    /// A set of CA certificates the implementation knows by name.
    WellKnown(WellKnownCa),
}

/// A value of `wellKnownCACertificates`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WellKnownCa {
    /// `System`: the usual public roots.
    System,
    /// A domain-prefixed name of an implementation's own set.
    ImplementationSpecific(DomainPrefixedName),
}

/// A subject alternative name the backend's certificate may present.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubjectAltName {
    /// A DNS name, possibly a `*.` wildcard.
    Hostname(SanHostname),
    /// A URI, such as a SPIFFE ID, compared exactly.
    Uri(SanUri),
}

/// A `BackendTLSPolicy` spec that passed validation.
///
/// # Examples
///
/// ```
/// use backend_tls_policy::{api::v1::BackendTlsPolicySpec, policy::ValidatedPolicy};
///
/// let spec: BackendTlsPolicySpec = serde_json::from_value(serde_json::json!({
///     "targetRefs": [{"group": "", "kind": "Service", "name": "shop"}],
///     "validation": {"wellKnownCACertificates": "System", "hostname": "shop.example.com"},
/// }))?;
/// let policy = ValidatedPolicy::try_from(&spec).expect("valid");
/// assert_eq!(policy.hostname().as_str(), "shop.example.com");
///
/// let mut bad = spec.clone();
/// bad.validation.hostname = "10.0.0.1".into();
/// let errors = ValidatedPolicy::try_from(&bad).unwrap_err();
/// assert_eq!(errors.iter().next().unwrap().path(), "spec.validation.hostname");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedPolicy {
    targets: Vec<TargetRef>,
    trust_anchors: TrustAnchors,
    hostname: Hostname,
    subject_alt_names: Vec<SubjectAltName>,
    options: BTreeMap<DomainPrefixedName, String>,
}

impl ValidatedPolicy {
    /// The targets, in order; at least one.
    pub fn targets(&self) -> &[TargetRef] {
        &self.targets
    }

    /// Where the trust anchors come from.
    pub fn trust_anchors(&self) -> &TrustAnchors {
        &self.trust_anchors
    }

    /// The SNI hostname, also verified unless subject alternative names are
    /// set.
    pub fn hostname(&self) -> &Hostname {
        &self.hostname
    }

    /// The names the certificate may match instead of the hostname; empty
    /// when the hostname is verified.
    pub fn subject_alt_names(&self) -> &[SubjectAltName] {
        &self.subject_alt_names
    }

    /// The options, keyed by domain-prefixed name.
    pub fn options(&self) -> &BTreeMap<DomainPrefixedName, String> {
        &self.options
    }
}

/// Every problem that keeps a spec from validating, in the order the fields
/// appear. Never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// The problems, one per field and rule.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// How many problems there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a `ValidationErrors` has at least one problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One problem, at one field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct FieldError {
    path: String,
    problem: Problem,
}

impl FieldError {
    /// The field, as the API server writes it:
    /// `spec.validation.subjectAltNames[1].uri`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A string that is not a valid value for its field.
    #[error("invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The rejected value.
        value: String,
        /// Why.
        reason: NameError,
    },
    /// A list or map with too many entries.
    #[error("must have at most {max} items, not {len}")]
    TooMany {
        /// The limit.
        max: usize,
        /// The number of entries.
        len: usize,
    },
    /// A list with too few entries.
    #[error("must have at least {min} items")]
    TooFew {
        /// The minimum.
        min: usize,
    },
    /// A value outside a fixed set.
    #[error("unsupported value {value:?}: supported values are {}", .supported.join(", "))]
    Unsupported {
        /// The rejected value.
        value: String,
        /// The values allowed.
        supported: &'static [&'static str],
    },
    /// One of the upstream CEL rules failed; the message is upstream's.
    #[error("{0}")]
    Rule(&'static str),
}

/// The upstream CEL messages, by rule.
pub mod rule {
    /// `spec.targetRefs`: mixed entries with and without section for one target.
    pub const SECTION_NAME_SPECIFIED: &str = "sectionName must be specified when targetRefs includes 2 or more references to the same target";
    /// `spec.targetRefs`: the same target and section twice.
    pub const SECTION_NAME_UNIQUE: &str = "sectionName must be unique when targetRefs includes 2 or more references to the same target";
    /// `spec.validation`: both CA sources.
    pub const NOT_BOTH_CA_SOURCES: &str =
        "must not contain both CACertificateRefs and WellKnownCACertificates";
    /// `spec.validation`: neither CA source.
    pub const EITHER_CA_SOURCE: &str =
        "must specify either CACertificateRefs or WellKnownCACertificates";
    /// `subjectAltNames[i]`: type Hostname without hostname.
    pub const SAN_NEEDS_HOSTNAME: &str =
        "SubjectAltName element must contain Hostname, if Type is set to Hostname";
    /// `subjectAltNames[i]`: hostname on a non-Hostname entry.
    pub const SAN_NO_HOSTNAME: &str =
        "SubjectAltName element must not contain Hostname, if Type is not set to Hostname";
    /// `subjectAltNames[i]`: type URI without uri.
    pub const SAN_NEEDS_URI: &str =
        "SubjectAltName element must contain URI, if Type is set to URI";
    /// `subjectAltNames[i]`: uri on a non-URI entry.
    pub const SAN_NO_URI: &str =
        "SubjectAltName element must not contain URI, if Type is not set to URI";
}

/// Collects problems while walking a spec.
///
/// Like the API server, the CEL rules are not reported when a value broke
/// a maximum (items, properties, length) or an enum: the server does not
/// run them then ("some validation rules were not checked").
#[derive(Default)]
struct Errors {
    schema: Vec<FieldError>,
    rules: Vec<FieldError>,
    rules_blocked: bool,
}

impl Errors {
    fn push(&mut self, path: impl Into<String>, problem: Problem) {
        self.rules_blocked |= matches!(
            problem,
            Problem::TooMany { .. }
                | Problem::Unsupported { .. }
                | Problem::InvalidValue { reason: NameError::TooLong { .. }, .. }
        );
        self.schema.push(FieldError { path: path.into(), problem });
    }

    /// Runs a string check and records its failure; returns the parsed value.
    fn check<'v, T>(
        &mut self,
        path: impl Into<String>,
        value: &'v str,
        parse: impl FnOnce(&'v str) -> Result<T, NameError>,
    ) -> Option<T> {
        parse(value)
            .map_err(|reason| {
                self.push(path, Problem::InvalidValue { value: value.to_owned(), reason })
            })
            .ok()
    }

    fn max_items(&mut self, path: &str, len: usize, max: usize) {
        if len > max {
            self.push(path, Problem::TooMany { max, len });
        }
    }

    fn rule(&mut self, path: impl Into<String>, holds: bool, message: &'static str) {
        if !holds {
            self.rules.push(FieldError { path: path.into(), problem: Problem::Rule(message) });
        }
    }

    fn finish(mut self) -> Result<(), ValidationErrors> {
        if !self.rules_blocked {
            self.schema.append(&mut self.rules);
        }
        if self.schema.is_empty() { Ok(()) } else { Err(ValidationErrors(self.schema)) }
    }
}

const SAN_TYPES: &[&str] = &[v1::SubjectAltName::HOSTNAME, v1::SubjectAltName::URI];

/// `""` counts as absent in the CEL rules.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

impl TryFrom<&v1::BackendTlsPolicySpec> for ValidatedPolicy {
    type Error = ValidationErrors;

    /// Validates a spec as the API server and this crate's stricter rules
    /// do.
    ///
    /// # Errors
    ///
    /// [`ValidationErrors`] with every problem found, each with its field
    /// path.
    fn try_from(spec: &v1::BackendTlsPolicySpec) -> Result<Self, ValidationErrors> {
        let mut errors = Errors::default();
        let targets = validate_targets(&spec.target_refs, &mut errors);
        let v = &spec.validation;

        let ca_refs = v.ca_certificate_refs.as_deref().unwrap_or_default();
        errors.max_items("spec.validation.caCertificateRefs", ca_refs.len(), 8);
        let ca_refs: Vec<_> = ca_refs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let path = format!("spec.validation.caCertificateRefs[{i}]");
                let group = errors.check(format!("{path}.group"), &r.group, name::check_group);
                let kind = errors.check(format!("{path}.kind"), &r.kind, name::check_kind);
                let name = errors.check(format!("{path}.name"), &r.name, name::check_object_name);
                Some(CaCertificateRef {
                    group_kind: GroupKind::new(&r.group, &r.kind),
                    name: r.name.clone(),
                })
                .filter(|_| group.is_some() && kind.is_some() && name.is_some())
            })
            .collect();

        let well_known = v.well_known_ca_certificates.as_deref().and_then(|value| {
            errors.check("spec.validation.wellKnownCACertificates", value, |s| match s {
                "System" => Ok(WellKnownCa::System),
                other => {
                    DomainPrefixedName::try_from(other).map(WellKnownCa::ImplementationSpecific)
                }
            })
        });

        let hostname = errors.check("spec.validation.hostname", &v.hostname, Hostname::try_from);

        let sans = v.subject_alt_names.as_deref().unwrap_or_default();
        errors.max_items("spec.validation.subjectAltNames", sans.len(), 5);
        let subject_alt_names: Vec<_> = sans
            .iter()
            .enumerate()
            .filter_map(|(i, san)| {
                validate_san(&format!("spec.validation.subjectAltNames[{i}]"), san, &mut errors)
            })
            .collect();

        // CEL rules on `spec.validation`, evaluated as written.
        let has_refs = !v.ca_certificate_refs.as_deref().unwrap_or_default().is_empty();
        let has_well_known = non_empty(&v.well_known_ca_certificates).is_some();
        errors.rule("spec.validation", !(has_refs && has_well_known), rule::NOT_BOTH_CA_SOURCES);
        errors.rule("spec.validation", has_refs || has_well_known, rule::EITHER_CA_SOURCE);

        let options = validate_options(spec.options.as_ref(), &mut errors);

        errors.finish()?;
        let trust_anchors = match well_known {
            Some(well_known) => TrustAnchors::WellKnown(well_known),
            None => TrustAnchors::CaCertificateRefs(ca_refs),
        };
        Ok(Self {
            targets,
            trust_anchors,
            hostname: hostname.expect("no errors, so the hostname parsed"),
            subject_alt_names,
            options,
        })
    }
}

impl From<&ValidatedPolicy> for v1::BackendTlsPolicySpec {
    /// The wire spec of a validated policy; validating it again gives the
    /// same policy.
    fn from(policy: &ValidatedPolicy) -> Self {
        let target_refs = policy
            .targets
            .iter()
            .map(|t| v1::LocalPolicyTargetReferenceWithSectionName {
                group: t.group_kind.group.clone(),
                kind: t.group_kind.kind.clone(),
                name: t.name.clone(),
                section_name: t.section.clone().map(String::from),
            })
            .collect();
        let (ca_certificate_refs, well_known_ca_certificates) = match &policy.trust_anchors {
            TrustAnchors::CaCertificateRefs(refs) => (
                Some(
                    refs.iter()
                        .map(|r| v1::LocalObjectReference {
                            group: r.group_kind.group.clone(),
                            kind: r.group_kind.kind.clone(),
                            name: r.name.clone(),
                        })
                        .collect(),
                ),
                None,
            ),
            TrustAnchors::WellKnown(WellKnownCa::System) => (None, Some("System".to_owned())),
            TrustAnchors::WellKnown(WellKnownCa::ImplementationSpecific(name)) => {
                (None, Some(name.to_string()))
            }
        };
        let subject_alt_names = (!policy.subject_alt_names.is_empty()).then(|| {
            policy
                .subject_alt_names
                .iter()
                .map(|san| match san {
                    SubjectAltName::Hostname(h) => v1::SubjectAltName::hostname(h.as_str()),
                    SubjectAltName::Uri(u) => v1::SubjectAltName::uri(u.as_str()),
                })
                .collect()
        });
        let options = (!policy.options.is_empty())
            .then(|| policy.options.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
        Self {
            target_refs,
            validation: v1::BackendTlsPolicyValidation {
                ca_certificate_refs,
                well_known_ca_certificates,
                hostname: policy.hostname.to_string(),
                subject_alt_names,
            },
            options,
        }
    }
}

impl TryFrom<&v1::BackendTlsPolicy> for ValidatedPolicy {
    type Error = ValidationErrors;

    /// Validates the object's spec; see the impl for the spec.
    ///
    /// # Errors
    ///
    /// [`ValidationErrors`] with every problem found.
    fn try_from(policy: &v1::BackendTlsPolicy) -> Result<Self, ValidationErrors> {
        Self::try_from(&policy.spec)
    }
}

fn validate_targets(
    refs: &[v1::LocalPolicyTargetReferenceWithSectionName],
    errors: &mut Errors,
) -> Vec<TargetRef> {
    const PATH: &str = "spec.targetRefs";
    if refs.is_empty() {
        errors.push(PATH, Problem::TooFew { min: 1 });
    }
    errors.max_items(PATH, refs.len(), 16);
    let mut targets = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        let path = format!("{PATH}[{i}]");
        let group = errors.check(format!("{path}.group"), &r.group, name::check_group);
        let kind = errors.check(format!("{path}.kind"), &r.kind, name::check_kind);
        let name = errors.check(format!("{path}.name"), &r.name, name::check_object_name);
        let section = match &r.section_name {
            Some(s) => {
                errors.check(format!("{path}.sectionName"), s, SectionName::try_from).map(Some)
            }
            None => Some(None),
        };
        if let (Some(()), Some(()), Some(()), Some(section)) = (group, kind, name, section) {
            targets.push(TargetRef {
                group_kind: GroupKind::new(&r.group, &r.kind),
                name: r.name.clone(),
                section,
            });
        }
    }

    // The two CEL rules, as written upstream (quadratic, at most 16 × 16).
    let same_target = |a: &v1::LocalPolicyTargetReferenceWithSectionName,
                       b: &v1::LocalPolicyTargetReferenceWithSectionName| {
        a.group == b.group && a.kind == b.kind && a.name == b.name
    };
    let unsectioned =
        |r: &v1::LocalPolicyTargetReferenceWithSectionName| non_empty(&r.section_name).is_none();
    let specified = refs
        .iter()
        .all(|p1| refs.iter().all(|p2| !same_target(p1, p2) || unsectioned(p1) == unsectioned(p2)));
    errors.rule(PATH, specified, rule::SECTION_NAME_SPECIFIED);
    let unique = refs.iter().all(|p1| {
        let matches = refs.iter().filter(|p2| {
            same_target(p1, p2)
                && ((unsectioned(p1) && unsectioned(p2))
                    || (p1.section_name.is_some() && p1.section_name == p2.section_name))
        });
        matches.count() == 1
    });
    errors.rule(PATH, unique, rule::SECTION_NAME_UNIQUE);
    targets
}

// The four rules are written as upstream's CEL, not simplified.
#[allow(clippy::nonminimal_bool)]
fn validate_san(
    path: &str,
    san: &v1::SubjectAltName,
    errors: &mut Errors,
) -> Option<SubjectAltName> {
    if !SAN_TYPES.contains(&san.type_.as_str()) {
        errors.push(
            format!("{path}.type"),
            Problem::Unsupported { value: san.type_.clone(), supported: SAN_TYPES },
        );
    }
    let hostname = san
        .hostname
        .as_deref()
        .and_then(|h| errors.check(format!("{path}.hostname"), h, SanHostname::try_from));
    let uri =
        san.uri.as_deref().and_then(|u| errors.check(format!("{path}.uri"), u, SanUri::try_from));

    let is_hostname = san.type_ == v1::SubjectAltName::HOSTNAME;
    let is_uri = san.type_ == v1::SubjectAltName::URI;
    let has_hostname = non_empty(&san.hostname).is_some();
    let has_uri = non_empty(&san.uri).is_some();
    errors.rule(path, !(is_hostname && !has_hostname), rule::SAN_NEEDS_HOSTNAME);
    errors.rule(path, !(!is_hostname && has_hostname), rule::SAN_NO_HOSTNAME);
    errors.rule(path, !(is_uri && !has_uri), rule::SAN_NEEDS_URI);
    errors.rule(path, !(!is_uri && has_uri), rule::SAN_NO_URI);

    match (is_hostname, is_uri) {
        (true, _) => hostname.map(SubjectAltName::Hostname),
        (_, true) => uri.map(SubjectAltName::Uri),
        _ => None,
    }
}

fn validate_options(
    options: Option<&BTreeMap<String, String>>,
    errors: &mut Errors,
) -> BTreeMap<DomainPrefixedName, String> {
    const PATH: &str = "spec.options";
    let Some(options) = options else { return BTreeMap::new() };
    errors.max_items(PATH, options.len(), 16);
    let mut valid = BTreeMap::new();
    for (raw, value) in options {
        // The API server's path for a map entry: a dot, then the key.
        let key = errors.check(format!("{PATH}.{raw}"), raw, DomainPrefixedName::try_from);
        let len = value.chars().count();
        if len > 4096 {
            let reason = NameError::TooLong { max: 4096, len };
            let problem = Problem::InvalidValue { value: value.clone(), reason };
            errors.push(format!("{PATH}.{raw}"), problem);
        } else if let Some(key) = key {
            valid.insert(key, value.clone());
        }
    }
    valid
}
