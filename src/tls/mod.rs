//! From an applied policy to a ready `rustls` client configuration:
//! [`client_config`] and [`client_config_with_provider`] give a
//! [`BackendTls`] — the `Arc<ClientConfig>` and the `ServerName` to dial
//! with — or a [`TlsError`] the caller answers with HTTP 5xx.
//!
//! There is no way to get a configuration that skips verification:
//!
//! - without `subjectAltNames`, rustls' WebPKI verifier checks the chain
//!   against the policy's trust anchors and the certificate against
//!   `hostname`;
//! - with them, the chain is checked the same way, `hostname` is only the
//!   SNI, and the certificate must carry one of the listed names (DNS names
//!   with one leftmost wildcard label at most, URIs such as SPIFFE IDs
//!   exactly).
//!
//! The SNI is always `validation.hostname`. TLS 1.2 and 1.3 are allowed
//! unless the policy's [`options`] narrow them.

pub mod ca;
mod cache;
mod client_cert;
pub mod options;
mod pem;
mod verify;

use std::sync::Arc;

use rustls::{
    ClientConfig, RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::ServerName,
};

pub use cache::TlsCache;
pub(crate) use client_cert::SecretKeyPair;
pub use client_cert::{ClientCertificate, ClientCertificateError, KeyPairError};
pub use options::OptionError;

use crate::{
    index::{AppliedPolicy, CaSource, ObjectKey, PolicyProblem},
    name::DomainPrefixedName,
    policy::{TrustAnchors, ValidatedPolicy, WellKnownCa},
};

/// What a connection to the backend needs: the configuration and the name
/// to send as SNI (and, without subject alternative names, to verify).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BackendTls {
    /// The client configuration; the same `Arc` for unchanged inputs when
    /// built through a [`TlsCache`].
    pub config: Arc<ClientConfig>,
    /// `validation.hostname`.
    pub server_name: ServerName<'static>,
}

/// What the embedding implementation adds to the policy. Start from
/// `TlsParams::default()` and set the fields (more may come):
///
/// ```
/// let mut params = backend_tls_policy::tls::TlsParams::default();
/// params.alpn = vec![b"h2".to_vec()];
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsParams {
    /// ALPN protocols to offer, for example from the Service port's
    /// `appProtocol`; the policy's `alpn-protocols` option takes precedence.
    /// Each must be 1 to 255 bytes long ([`TlsError::InvalidAlpn`]).
    pub alpn: Vec<Vec<u8>>,
    /// The Gateway's client certificate (GEP-3155): what
    /// [`Index::client_certificate`](crate::Index::client_certificate)
    /// returned, `Ok(None)` (the default) when it names none. An error
    /// makes every configuration fail ([`TlsError::ClientCertificate`]):
    /// a connection without the certificate the Gateway names would reach
    /// a backend that takes clients without one as anonymous.
    pub client_certificate: Result<Option<ClientCertificate>, ClientCertificateError>,
}

impl Default for TlsParams {
    fn default() -> Self {
        Self { alpn: Vec::new(), client_certificate: Ok(None) }
    }
}

/// Why no configuration can be built. Every variant means: connections to
/// the backend must fail (HTTP 5xx), never go out in plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The applied policy cannot be used.
    #[error("BackendTLSPolicy {policy} cannot be used: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unusable {
        /// The policy.
        policy: ObjectKey,
        /// Why.
        problems: Vec<PolicyProblem>,
    },
    /// The policy's options ask for what `provider` does not offer (a
    /// suite or group it lacks, or nothing left for the allowed versions).
    /// Options that are wrong whatever the provider make the policy
    /// unusable instead ([`TlsError::Unusable`] with
    /// [`PolicyProblem::Options`]).
    #[error("BackendTLSPolicy {policy} has invalid options: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Options {
        /// The policy.
        policy: ObjectKey,
        /// Every bad option.
        errors: Vec<OptionError>,
    },
    /// No process-wide crypto provider is installed and the crate features
    /// do not name exactly one; use [`client_config_with_provider`].
    #[error("no default rustls crypto provider: install one or pass one explicitly")]
    NoDefaultProvider,
    /// rustls refused the configuration.
    #[error("rustls refused the configuration")]
    Rustls(#[source] rustls::Error),
    /// The Gateway names a client certificate that cannot be used
    /// ([`TlsParams::client_certificate`] holds the error).
    #[error("the Gateway's client certificate cannot be used")]
    ClientCertificate(#[source] ClientCertificateError),
    /// A protocol of [`TlsParams::alpn`] is empty or longer than 255 bytes
    /// (its length is one byte on the wire).
    #[error("TlsParams::alpn holds a protocol of {len} bytes (1 to 255 allowed)")]
    InvalidAlpn {
        /// The protocol's length.
        len: usize,
    },
}

/// Builds the configuration for an applied policy with the process-default
/// crypto provider (the one installed with
/// `CryptoProvider::install_default`, or the one crate feature enabled).
///
/// # Errors
///
/// See [`client_config_with_provider`]; also [`TlsError::NoDefaultProvider`]
/// when there is no unambiguous default provider.
pub fn client_config(applied: &AppliedPolicy, params: &TlsParams) -> Result<BackendTls, TlsError> {
    client_config_with_provider(applied, params, default_provider()?)
}

/// Builds the configuration for an applied policy with `provider`.
///
/// # Errors
///
/// [`TlsError::Unusable`] when the policy has problems (invalid, CA
/// references that do not resolve, a port that is not TCP, options wrong
/// whatever the provider…), [`TlsError::Options`] for options `provider`
/// cannot meet, [`TlsError::InvalidAlpn`] for a protocol of
/// `params.alpn` that cannot go on the wire,
/// [`TlsError::ClientCertificate`] when `params` holds a client
/// certificate error, [`TlsError::Rustls`] when
/// rustls refuses the result (for example a client key that does not match
/// its certificate).
pub fn client_config_with_provider(
    applied: &AppliedPolicy,
    params: &TlsParams,
    provider: Arc<CryptoProvider>,
) -> Result<BackendTls, TlsError> {
    let unusable = |problems: &[PolicyProblem]| TlsError::Unusable {
        policy: applied.policy_key().clone(),
        problems: problems.to_vec(),
    };
    let policy = applied.usable().map_err(unusable)?;
    let roots = applied.roots().ok_or_else(|| unusable(&[PolicyProblem::NoValidCACertificate]))?;
    // rustls writes each protocol's length as one byte (and asserts it is
    // not zero): say so rather than send a malformed ClientHello.
    if let Some(bad) = params.alpn.iter().find(|p| !(1..=255).contains(&p.len())) {
        return Err(TlsError::InvalidAlpn { len: bad.len() });
    }
    let domain = applied.options_domain().map(|d| &**d);
    build(policy, roots.clone(), domain, params, &provider).map_err(|e| match e {
        BuildError::Options(errors) => {
            TlsError::Options { policy: applied.policy_key().clone(), errors }
        }
        BuildError::ClientCertificate(e) => TlsError::ClientCertificate(e),
        BuildError::Rustls(e) => TlsError::Rustls(e),
    })
}

enum BuildError {
    ClientCertificate(ClientCertificateError),
    Options(Vec<OptionError>),
    Rustls(rustls::Error),
}

fn build(
    policy: &ValidatedPolicy,
    roots: Arc<RootCertStore>,
    options_domain: Option<&str>,
    params: &TlsParams,
    provider: &Arc<CryptoProvider>,
) -> Result<BackendTls, BuildError> {
    let settings =
        options::settings(policy, options_domain, provider).map_err(BuildError::Options)?;
    let provider = Arc::new(settings.provider);
    let verifier: Arc<dyn ServerCertVerifier> = if policy.subject_alt_names().is_empty() {
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| BuildError::Rustls(rustls::Error::General(e.to_string())))?
    } else {
        Arc::new(verify::SubjectAltNameVerifier::new(
            roots,
            policy.subject_alt_names().to_vec(),
            provider.clone(),
        ))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&settings.versions)
        .map_err(BuildError::Rustls)?
        .dangerous() // only to install one of the two verifiers above
        .with_custom_certificate_verifier(verifier);
    let mut config = match &params.client_certificate {
        Ok(Some(client)) => builder
            .with_client_auth_cert(client.chain().to_vec(), client.key().clone_key())
            .map_err(BuildError::Rustls)?,
        Ok(None) => builder.with_no_client_auth(),
        Err(e) => return Err(BuildError::ClientCertificate(e.clone())),
    };
    config.alpn_protocols = settings.alpn.unwrap_or_else(|| params.alpn.clone());
    Ok(BackendTls { config: Arc::new(config), server_name: policy.hostname().server_name() })
}

pub(crate) fn default_provider() -> Result<Arc<CryptoProvider>, TlsError> {
    if let Some(provider) = CryptoProvider::get_default() {
        return Ok(provider.clone());
    }
    // rustls' own fallback panics when zero or two providers are built in;
    // pick only when exactly one is.
    let one = cfg!(not(all(feature = "ring", feature = "aws-lc-rs")));
    built_in().filter(|_| one).ok_or(TlsError::NoDefaultProvider)
}

/// A provider to check a private key against its certificate, or what a
/// policy's suites and groups leave for its TLS versions, with: the default
/// one, else any the crate's features build in (two built in are no
/// ambiguity: which one loads a key, or says a suite's version, does not
/// matter).
pub(crate) fn check_provider() -> Option<Arc<CryptoProvider>> {
    default_provider().ok().or_else(built_in)
}

/// A provider the crate's features build in (*ring* first), made once:
/// `TlsCache` keys on the provider's address.
fn built_in() -> Option<Arc<CryptoProvider>> {
    static BUILT_IN: std::sync::OnceLock<Option<Arc<CryptoProvider>>> = std::sync::OnceLock::new();
    BUILT_IN
        .get_or_init(|| {
            #[cfg(feature = "ring")]
            return Some(Arc::new(rustls::crypto::ring::default_provider()));
            #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
            return Some(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
            #[allow(unreachable_code)]
            None
        })
        .clone()
}

/// The trust anchors of a validated policy whose references all resolved,
/// or the problem that keeps it from having any.
pub(crate) fn trust_roots(
    policy: &ValidatedPolicy,
    sources: &[CaSource],
    named: impl FnOnce(&DomainPrefixedName) -> Option<Arc<RootCertStore>>,
) -> Result<Arc<RootCertStore>, PolicyProblem> {
    match policy.trust_anchors() {
        TrustAnchors::WellKnown(WellKnownCa::System) => system_roots(),
        TrustAnchors::WellKnown(WellKnownCa::ImplementationSpecific(name)) => named(name)
            .filter(|roots| !roots.is_empty())
            .ok_or_else(|| PolicyProblem::UnsupportedWellKnown(name.to_string())),
        TrustAnchors::CaCertificateRefs(_) => match sources {
            [] => Err(PolicyProblem::NoValidCACertificate),
            // The common case shares the object's anchors.
            [source] => Ok(source.roots.clone()),
            _ => Ok(Arc::new(RootCertStore {
                roots: sources.iter().flat_map(|s| s.roots.roots.iter().cloned()).collect(),
            })),
        },
    }
}

/// The roots behind `wellKnownCACertificates: System`: the bundled Mozilla
/// set (feature `webpki-roots`), else the platform's (feature
/// `native-roots`), loaded once.
fn system_roots() -> Result<Arc<RootCertStore>, PolicyProblem> {
    static ROOTS: std::sync::OnceLock<Option<Arc<RootCertStore>>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            #[cfg(feature = "webpki-roots")]
            return Some(Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }));
            #[cfg(all(feature = "native-roots", not(feature = "webpki-roots")))]
            {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                return (!roots.is_empty()).then(|| Arc::new(roots));
            }
            #[allow(unreachable_code)]
            None
        })
        .clone()
        .ok_or_else(|| PolicyProblem::UnsupportedWellKnown("System".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one provider feature it is picked; with both, there is no
    /// unambiguous default and the answer is an error, never rustls' panic.
    /// `.ci/run` runs this with `--all-features` too.
    #[test]
    fn default_provider_is_unambiguous_or_an_error() {
        let result = default_provider();
        if cfg!(all(feature = "ring", feature = "aws-lc-rs")) {
            assert!(matches!(result, Err(TlsError::NoDefaultProvider)));
        } else if cfg!(any(feature = "ring", feature = "aws-lc-rs")) {
            // The same one each time, so that the cache can hit.
            assert!(Arc::ptr_eq(&result.unwrap(), &default_provider().unwrap()));
        }
    }

    /// With `native-roots` alone, `System` is the platform's store, read
    /// once (`.ci/run` runs this without `webpki-roots`, on Debian, whose
    /// store carries ISRG Root X1).
    #[cfg(all(feature = "native-roots", not(feature = "webpki-roots")))]
    #[test]
    fn system_roots_are_the_platforms() {
        let roots = system_roots().unwrap();
        let isrg = |anchor: &rustls::pki_types::TrustAnchor<'_>| {
            anchor.subject.as_ref().windows(12).any(|w| w == b"ISRG Root X1")
        };
        assert!(roots.roots.iter().any(isrg), "{} roots, none is ISRG Root X1", roots.len());
        assert!(Arc::ptr_eq(&roots, &system_roots().unwrap()));
    }
}
