//! The verifier for policies with `subjectAltNames`: the chain is verified
//! against the trust anchors exactly as rustls' WebPKI verifier does, then
//! the leaf must carry at least one of the configured names. The SNI
//! hostname is not used for authentication.

use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_cert_signed_by_trust_anchor, verify_server_name,
    },
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, DnsName, ServerName, UnixTime},
    server::ParsedCertificate,
};
use x509_parser::extensions::GeneralName;

use crate::{name::SanHostname, policy::SubjectAltName};

/// Verifies the chain, then accepts the leaf if any configured subject
/// alternative name matches one of its SANs: DNS names by RFC 6125 rules
/// (one wildcard label, leftmost only), URIs exactly.
#[derive(Debug)]
pub(crate) struct SubjectAltNameVerifier {
    roots: Arc<RootCertStore>,
    names: Vec<SubjectAltName>,
    provider: Arc<CryptoProvider>,
}

impl SubjectAltNameVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        names: Vec<SubjectAltName>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self { roots, names, provider }
    }
}

impl ServerCertVerifier for SubjectAltNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let certificate = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &certificate,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let presented = PresentedNames::of(end_entity)?;
        let matched = self.names.iter().any(|name| match name {
            SubjectAltName::Hostname(hostname) if hostname.is_wildcard() => {
                presented.dns.iter().any(|dns| wildcard_matches(hostname, dns))
            }
            // webpki's own matching, which knows presented wildcards.
            SubjectAltName::Hostname(hostname) => {
                DnsName::try_from(hostname.as_str()).is_ok_and(|dns| {
                    verify_server_name(&certificate, &ServerName::DnsName(dns)).is_ok()
                })
            }
            SubjectAltName::Uri(uri) => presented.uris.iter().any(|p| p == uri.as_str()),
        });
        if matched {
            return Ok(ServerCertVerified::assertion());
        }
        Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: server_name.to_owned(),
            presented: presented.dns.into_iter().chain(presented.uris).collect(),
        }))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The DNS and URI subject alternative names of a certificate.
struct PresentedNames {
    dns: Vec<String>,
    uris: Vec<String>,
}

impl PresentedNames {
    fn of(certificate: &CertificateDer<'_>) -> Result<Self, Error> {
        let bad = |_| Error::InvalidCertificate(CertificateError::BadEncoding);
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate).map_err(bad)?;
        let mut names = Self { dns: Vec::new(), uris: Vec::new() };
        let san = parsed
            .subject_alternative_name()
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => names.dns.push((*dns).to_owned()),
                GeneralName::URI(uri) => names.uris.push((*uri).to_owned()),
                _ => {}
            }
        }
        Ok(names)
    }
}

/// Whether a configured `*.suffix` covers a presented DNS name: exactly one
/// non-empty label before the suffix (`a.example.com`, not
/// `a.b.example.com` nor `example.com`), or the same wildcard. DNS names
/// compare without regard to ASCII case. Presented names webpki would skip
/// are skipped: malformed ones, absolute ones (`a.example.com.`), and
/// wildcards over fewer than two labels.
fn wildcard_matches(configured: &SanHostname, presented: &str) -> bool {
    let suffix = &configured.as_str()[1..]; // ".example.com"
    if presented.ends_with('.') {
        return false;
    }
    if let Some(covered) = presented.strip_prefix("*.") {
        let well_formed = covered.contains('.') && DnsName::try_from(covered).is_ok();
        return well_formed && presented.eq_ignore_ascii_case(configured.as_str());
    }
    if DnsName::try_from(presented).is_err() {
        return false;
    }
    let Some(split) = presented.len().checked_sub(suffix.len()) else { return false };
    let (label, rest) = presented.split_at_checked(split).unwrap_or(("", ""));
    !label.is_empty() && !label.contains(['.', '*']) && rest.eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        let pattern = SanHostname::try_from("*.example.com").unwrap();
        for (presented, matches) in [
            ("a.example.com", true),
            ("A.Example.COM", true),
            ("a.example.com.", false),
            ("*.example.com.", false),
            ("*.example.com", true),
            ("a.b.example.com", false),
            ("example.com", false),
            (".example.com", false),
            ("aexample.com", false),
            ("a.example.org", false),
            ("*.b.example.com", false),
            ("a_b.example.com", true),
            ("a b.example.com", false),
            ("-a.example.com", false),
        ] {
            assert_eq!(wildcard_matches(&pattern, presented), matches, "{presented}");
        }
        // A presented wildcard over one label is no name webpki takes.
        let broad = SanHostname::try_from("*.com").unwrap();
        assert!(!wildcard_matches(&broad, "*.com"));
        assert!(wildcard_matches(&broad, "a.com"));
    }
}
