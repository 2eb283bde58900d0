//! CA bundles: PEM text to trust-anchor certificates, every block accounted
//! for.
//!
//! Each `-----BEGIN …-----` block must be a certificate that parses and is
//! valid at the time of checking; otherwise the bundle is refused with the
//! block's number and the reason. Nothing is skipped silently: a private key
//! pasted into `ca.crt`, a truncated block, or an expired CA makes the
//! bundle (and so the policy) unusable, and the status message says which
//! block of which reference is wrong. Text between blocks is allowed
//! (RFC 7468 explanatory text). Duplicate certificates are harmless and
//! kept. A certificate that is not a CA (a self-signed backend certificate,
//! say) is accepted as a trust anchor: it pins that certificate's key, which
//! is what such a bundle asks for.
//!
//! Bounds: at most [`MAX_BUNDLE_BYTES`] bytes and [`MAX_BUNDLE_CERTIFICATES`]
//! blocks per bundle; past either the bundle is refused, unparsed, so the
//! work per object stays linear and small.

use std::fmt;

use x509_parser::{certificate::X509CertificateParser, nom::Parser};

use rustls::pki_types::{
    CertificateDer, UnixTime,
    pem::{self, PemObject, SectionKind},
};

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
    /// A block whose label this crate does not know.
    #[error("a PEM block of an unknown type, not a CERTIFICATE")]
    UnknownLabel,
    /// A CERTIFICATE block whose content is not an X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Unparsable(String),
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

/// The certificates of a PEM CA bundle, each checked to parse and to be
/// valid at `now`.
///
/// # Errors
///
/// [`BundleError`] listing every block that is not a valid certificate, or
/// saying that there is none.
pub fn parse_bundle(
    pem: &[u8],
    now: UnixTime,
) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    if pem.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge { bytes: pem.len(), max: MAX_BUNDLE_BYTES });
    }
    let mut certificates = Vec::new();
    let mut errors = Vec::new();
    let mut sections = 0;
    for (i, section) in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem).enumerate() {
        let block = i + 1;
        if block > MAX_BUNDLE_CERTIFICATES {
            return Err(BundleError::TooManyBlocks { max: MAX_BUNDLE_CERTIFICATES });
        }
        sections = block;
        let problem = match section {
            Err(error) => {
                // The reader cannot resynchronise after broken framing.
                errors.push(BlockError { block, problem: BlockProblem::Pem(pem_error(&error)) });
                break;
            }
            Ok((SectionKind::Certificate, der)) => match check_certificate(&der, now) {
                Ok(()) => {
                    certificates.push(CertificateDer::from(der));
                    continue;
                }
                Err(problem) => problem,
            },
            Ok((kind, _)) => BlockProblem::NotACertificate(label(kind)),
        };
        errors.push(BlockError { block, problem });
    }
    // Blocks with labels the PEM reader does not know are skipped by it;
    // count the BEGIN lines to catch them.
    let begins = pem
        .split(|b| *b == b'\n')
        .filter(|line| line.trim_ascii_start().starts_with(b"-----BEGIN "))
        .count();
    if errors.is_empty() && begins > sections {
        errors.push(BlockError { block: sections + 1, problem: BlockProblem::UnknownLabel });
    }
    match (errors.is_empty(), certificates.is_empty()) {
        (false, _) => Err(BundleError::Blocks(errors)),
        (true, true) => Err(BundleError::NoCertificates),
        (true, false) => Ok(certificates),
    }
}

fn check_certificate(der: &[u8], now: UnixTime) -> Result<(), BlockProblem> {
    // Extensions are checked for structure, not decoded: nothing here reads
    // them, and decoding them is most of the parse.
    let (rest, certificate) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
        .map_err(|e| BlockProblem::Unparsable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(BlockProblem::Unparsable(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    let validity = certificate.validity();
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now > validity.not_after.timestamp() {
        return Err(BlockProblem::Expired(validity.not_after.to_string()));
    }
    if now < validity.not_before.timestamp() {
        return Err(BlockProblem::NotYetValid(validity.not_before.to_string()));
    }
    Ok(())
}

fn label(kind: SectionKind) -> String {
    match kind {
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "non-certificate",
    }
    .to_owned()
}

fn pem_error(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a block has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(detail) => format!("bad base64 ({detail})"),
        other => DebugLower(other).to_string(),
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
        parse_bundle(
            pem.as_bytes(),
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW)),
        )
        .unwrap_err()
    }

    #[test]
    fn every_block_is_accounted_for() {
        let cert = self_signed();
        let unknown = "-----BEGIN SOMETHING ELSE-----\nAAAA\n-----END SOMETHING ELSE-----\n";
        assert_eq!(
            problems(&format!("{cert}{unknown}")),
            BundleError::Blocks(vec![BlockError { block: 2, problem: BlockProblem::UnknownLabel }])
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
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW));
        assert_eq!(parse_bundle(two.as_bytes(), now).unwrap().len(), 2);
    }

    #[test]
    fn bounds() {
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW));
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
        let long_ago = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_000_000));
        let BundleError::Blocks(errors) = parse_bundle(cert.as_bytes(), long_ago).unwrap_err()
        else {
            panic!()
        };
        assert!(matches!(errors[0].problem, BlockProblem::NotYetValid(_)));
    }
}
