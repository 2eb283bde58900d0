//! CA bundles: PEM text to trust-anchor certificates, every block accounted
//! for.
//!
//! Each `-----BEGIN …-----` block must be a certificate that x509-parser
//! parses, that rustls (webpki) accepts as a trust anchor, and that is valid
//! at the time of checking; otherwise the bundle is refused with the block's
//! number and the reason. Nothing is skipped silently: a private key pasted
//! into `ca.crt`, a truncated block, or an expired CA makes the bundle (and
//! so the policy) unusable, and the status message says which block of
//! which reference is wrong.
//!
//! Text between blocks is allowed (RFC 7468 explanatory text). Where PEM
//! readers disagree — a BEGIN or END marker not at the start of its line, a
//! line ended by CR alone, blanks other than spaces and tabs, padding inside
//! the base64 — the bundle is refused, so that a data plane reading the same
//! `ca.crt` with OpenSSL, Go or rustls does not find other certificates in
//! it (the `ca_bundle` fuzz target checks this against rustls' reader).
//! Duplicate certificates are harmless and kept. A certificate that is not
//! a CA (a self-signed backend certificate, say) is accepted as a trust
//! anchor, as rustls takes it. Like any anchor it is then a CA to webpki,
//! which does not check an anchor's basic constraints: its key can sign
//! other certificates that the policy trusts (see SECURITY.md).
//!
//! Bounds: at most [`MAX_BUNDLE_BYTES`] bytes and [`MAX_BUNDLE_CERTIFICATES`]
//! blocks per bundle; past either the bundle is refused unparsed, so the
//! work per object stays linear and small.

use std::{fmt, sync::Arc, time::Duration};

use rustls::{
    CertificateError, RootCertStore,
    pki_types::{CertificateDer, TrustAnchor, UnixTime},
};
use x509_parser::{
    certificate::{X509Certificate, X509CertificateParser},
    nom::Parser,
    time::ASN1Time,
};

use super::pem;

mod pool;

pub(crate) use pool::{BundlePool, ReadBundle};

/// Why one block of a CA bundle cannot be a trust anchor.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockProblem {
    /// The PEM framing or base64 is broken.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// A PEM block of another type, such as a private key.
    #[error("a {0} block, not a CERTIFICATE")]
    NotACertificate(String),
    /// A block whose label is empty, or too long to repeat.
    #[error("a PEM block of an unknown type, not a CERTIFICATE")]
    UnknownLabel,
    /// A CERTIFICATE block whose content is not an X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Unparsable(String),
    /// A certificate that rustls cannot use as a trust anchor, such as one
    /// with an extension webpki cannot decode.
    #[error("not usable as a trust anchor: {0}")]
    NotAnAnchor(String),
    /// The certificate's validity ended.
    #[error("expired at {0}")]
    Expired(String),
    /// The certificate's validity has not begun.
    #[error("not valid before {0}")]
    NotYetValid(String),
}

/// A problem with one block (numbered from 1) of a CA bundle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("block {block}: {problem}")]
#[non_exhaustive]
pub struct BlockError {
    /// The block's position in the bundle, from 1.
    pub block: usize,
    /// What is wrong with it.
    pub problem: BlockProblem,
}

/// The most bytes of `ca.crt` read from one object: more than a ConfigMap
/// can hold (1 MiB), so a real bundle never reaches it.
pub const MAX_BUNDLE_BYTES: usize = 1 << 20;

/// The most certificates in one bundle: several times the public root set
/// (about 150), so that parsing stays bounded whatever a tenant writes.
pub const MAX_BUNDLE_CERTIFICATES: usize = 1000;

/// Why a CA bundle cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle is larger than [`MAX_BUNDLE_BYTES`]; it is not parsed.
    #[error("is {bytes} bytes, more than the {max} this crate reads")]
    TooLarge {
        /// The bundle's size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The bundle holds more than [`MAX_BUNDLE_CERTIFICATES`] blocks.
    #[error("holds more than {max} PEM blocks")]
    TooManyBlocks {
        /// The limit.
        max: usize,
    },
    /// The bundle holds no PEM block at all.
    #[error("holds no PEM CERTIFICATE block")]
    NoCertificates,
    /// Some blocks are wrong (every one is listed).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Blocks(Vec<BlockError>),
}

/// A CA certificate that x509-parser parsed and rustls accepts as a trust
/// anchor, with its validity period.
#[derive(Clone, Debug)]
pub struct CaCertificate {
    der: CertificateDer<'static>,
    anchor: TrustAnchor<'static>,
    validity: Validity,
}

/// A certificate's validity period, as x509-parser read it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Validity {
    not_before: ASN1Time,
    not_after: ASN1Time,
}

impl Validity {
    pub(crate) fn of(certificate: &X509Certificate<'_>) -> Self {
        let validity = certificate.validity();
        Self { not_before: validity.not_before, not_after: validity.not_after }
    }

    pub(crate) fn not_before(&self) -> UnixTime {
        unix_time(self.not_before)
    }

    pub(crate) fn not_after(&self) -> UnixTime {
        unix_time(self.not_after)
    }

    /// [`BlockProblem::Expired`] or [`BlockProblem::NotYetValid`] unless
    /// `now` is within.
    pub(crate) fn check(&self, now: UnixTime) -> Result<(), BlockProblem> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now > self.not_after.timestamp() {
            return Err(BlockProblem::Expired(self.not_after.to_string()));
        }
        if now < self.not_before.timestamp() {
            return Err(BlockProblem::NotYetValid(self.not_before.to_string()));
        }
        Ok(())
    }
}

impl CaCertificate {
    /// Parses one DER certificate.
    ///
    /// # Errors
    ///
    /// [`BlockProblem::Unparsable`] or [`BlockProblem::NotAnAnchor`].
    pub fn from_der(der: Vec<u8>) -> Result<Self, BlockProblem> {
        // Extensions are checked for structure, not decoded: nothing here
        // reads them, and decoding them is most of the parse.
        let (rest, certificate) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(&der)
            .map_err(|e| BlockProblem::Unparsable(e.to_string()))?;
        if !rest.is_empty() {
            return Err(BlockProblem::Unparsable(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        let validity = Validity::of(&certificate);
        // webpki's own reading, the one verification uses.
        let mut store = RootCertStore::empty();
        store.add(CertificateDer::from(der.as_slice())).map_err(|error| {
            BlockProblem::NotAnAnchor(match error {
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
                    "malformed DER (as webpki reads it)".to_owned()
                }
                rustls::Error::InvalidCertificate(reason) => DebugLower(&reason).to_string(),
                other => other.to_string(),
            })
        })?;
        let anchor = store.roots.pop().expect("an anchor was added");
        Ok(Self { der: der.into(), anchor, validity })
    }

    /// The certificate as it was in the bundle.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate as rustls trusts it.
    pub fn trust_anchor(&self) -> &TrustAnchor<'static> {
        &self.anchor
    }

    /// The start of the certificate's validity.
    pub fn not_before(&self) -> UnixTime {
        self.validity.not_before()
    }

    /// The end of the certificate's validity (its last valid second).
    pub fn not_after(&self) -> UnixTime {
        self.validity.not_after()
    }

    /// Whether the certificate is valid at `now`.
    ///
    /// # Errors
    ///
    /// [`BlockProblem::Expired`] or [`BlockProblem::NotYetValid`].
    pub fn check_validity(&self, now: UnixTime) -> Result<(), BlockProblem> {
        self.validity.check(now)
    }

    /// The first instant after `now` at which [`Self::check_validity`]
    /// answers otherwise: the start of the validity, or the second after
    /// its last.
    pub fn next_validity_change(&self, now: UnixTime) -> Option<UnixTime> {
        let after_end = self.not_after().as_secs().saturating_add(1);
        [self.not_before().as_secs(), after_end]
            .into_iter()
            .filter(|at| *at > now.as_secs())
            .min()
            .map(|at| UnixTime::since_unix_epoch(Duration::from_secs(at)))
    }
}

/// Certificates are the same when their encodings are.
impl PartialEq for CaCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for CaCertificate {}

fn unix_time(time: ASN1Time) -> UnixTime {
    let seconds = u64::try_from(time.timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(seconds))
}

/// The certificates of a PEM CA bundle, each checked to parse, to be usable
/// as a trust anchor and to be valid at `now`.
///
/// # Errors
///
/// [`BundleError`] listing every block that is not a valid certificate, or
/// saying that there is none.
pub fn parse_bundle(pem: &[u8], now: UnixTime) -> Result<Vec<Arc<CaCertificate>>, BundleError> {
    parse_bundle_with(pem, now, |der| CaCertificate::from_der(der).map(Arc::new))
}

/// [`parse_bundle`], with `certificate` making each certificate from its
/// DER (the index looks it up among those it holds first).
pub(crate) fn parse_bundle_with(
    pem: &[u8],
    now: UnixTime,
    mut certificate: impl FnMut(Vec<u8>) -> Result<Arc<CaCertificate>, BlockProblem>,
) -> Result<Vec<Arc<CaCertificate>>, BundleError> {
    if pem.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge { bytes: pem.len(), max: MAX_BUNDLE_BYTES });
    }
    // Every block starts with this, so counting it bounds the blocks
    // before any is parsed.
    if memchr::memmem::find_iter(pem, b"-----BEGIN").nth(MAX_BUNDLE_CERTIFICATES).is_some() {
        return Err(BundleError::TooManyBlocks { max: MAX_BUNDLE_CERTIFICATES });
    }
    let mut certificates = Vec::new();
    let mut errors = Vec::new();
    for (i, read) in pem::blocks(pem).enumerate() {
        let block = i + 1;
        let checked = match read {
            Err(error) => Err(BlockProblem::Pem(error.to_string())),
            Ok((b"CERTIFICATE", der)) => {
                certificate(der).and_then(|c| c.check_validity(now).map(|()| c))
            }
            Ok((label, _)) => Err(not_a_certificate(label)),
        };
        match checked {
            Ok(certificate) => certificates.push(certificate),
            Err(problem) => errors.push(BlockError { block, problem }),
        }
    }
    match (errors.is_empty(), certificates.is_empty()) {
        (false, _) => Err(BundleError::Blocks(errors)),
        (true, true) => Err(BundleError::NoCertificates),
        (true, false) => Ok(certificates),
    }
}

/// The problem of a block labelled other than `CERTIFICATE`; the label is
/// repeated only when it is short printable text.
pub(super) fn not_a_certificate(label: &[u8]) -> BlockProblem {
    // The reader let through RFC 7468 labels only: printable ASCII.
    match std::str::from_utf8(label) {
        Ok(label) if !label.is_empty() && label.len() <= 64 => {
            BlockProblem::NotACertificate(label.to_owned())
        }
        _ => BlockProblem::UnknownLabel,
    }
}

/// Lowercases a `Debug` rendering for errors without a `Display`.
struct DebugLower<'a, T>(&'a T);

impl<T: fmt::Debug> fmt::Display for DebugLower<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format!("{:?}", self.0).to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn self_signed() -> String {
        rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap().cert.pem()
    }

    fn problems(pem: &str) -> BundleError {
        parse_bundle(pem.as_bytes(), UnixTime::since_unix_epoch(Duration::from_secs(NOW)))
            .unwrap_err()
    }

    #[test]
    fn every_block_is_accounted_for() {
        let cert = self_signed();
        let unknown = "-----BEGIN SOMETHING ELSE-----\nAAAA\n-----END SOMETHING ELSE-----\n";
        assert_eq!(
            problems(&format!("{cert}{unknown}")),
            BundleError::Blocks(vec![BlockError {
                block: 2,
                problem: BlockProblem::NotACertificate("SOMETHING ELSE".into())
            }])
        );
        assert_eq!(problems(""), BundleError::NoCertificates);
        assert_eq!(problems("just text\n"), BundleError::NoCertificates);
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            &problems(garbage),
            BundleError::Blocks(errors) if matches!(errors[0].problem, BlockProblem::Unparsable(_))
        ));
        // Explanatory text between blocks is fine (RFC 7468).
        let two = format!("first CA\n{cert}second CA\n{}", self_signed());
        let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW));
        assert_eq!(parse_bundle(two.as_bytes(), now).unwrap().len(), 2);
    }

    #[test]
    fn bounds() {
        let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW));
        let big = vec![b'a'; MAX_BUNDLE_BYTES + 1];
        assert_eq!(
            parse_bundle(&big, now),
            Err(BundleError::TooLarge { bytes: MAX_BUNDLE_BYTES + 1, max: MAX_BUNDLE_BYTES })
        );
        let cert = self_signed();
        let many = cert.repeat(MAX_BUNDLE_CERTIFICATES + 1);
        assert!(many.len() <= MAX_BUNDLE_BYTES, "the block limit is reachable");
        assert_eq!(
            parse_bundle(many.as_bytes(), now),
            Err(BundleError::TooManyBlocks { max: MAX_BUNDLE_CERTIFICATES })
        );
        let limit = cert.repeat(MAX_BUNDLE_CERTIFICATES);
        assert_eq!(parse_bundle(limit.as_bytes(), now).unwrap().len(), MAX_BUNDLE_CERTIFICATES);
    }

    #[test]
    fn validity_is_checked_at_the_given_time() {
        let cert = self_signed(); // rcgen: valid from 1975 to 4096
        let long_ago = UnixTime::since_unix_epoch(Duration::from_secs(1_000_000));
        let BundleError::Blocks(errors) = parse_bundle(cert.as_bytes(), long_ago).unwrap_err()
        else {
            panic!()
        };
        assert!(matches!(errors[0].problem, BlockProblem::NotYetValid(_)));
    }

    /// x509-parser reads extensions for structure only; webpki decodes
    /// the ones it knows, and its verdict is the one that counts.
    #[test]
    fn a_certificate_webpki_refuses_is_named() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ca.example".into()]).unwrap();
        // basicConstraints whose value is not a SEQUENCE.
        params.custom_extensions =
            vec![rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![4, 1, 0])];
        let pem = params.self_signed(&key).unwrap().pem();
        assert_eq!(
            problems(&pem),
            BundleError::Blocks(vec![BlockError {
                block: 1,
                problem: BlockProblem::NotAnAnchor("malformed DER (as webpki reads it)".into())
            }])
        );
    }
}
