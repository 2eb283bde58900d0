//! The Gateway's backend client certificate (GEP-3155):
//! `Gateway.spec.tls.backend.clientCertificateRef`, a Secret with `tls.crt`
//! and `tls.key`, presented to every backend the Gateway dials over TLS.

use std::{
    fmt,
    sync::{Arc, OnceLock, Weak},
};

use rustls::{
    CertificateError,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    sign::CertifiedKey,
};

use super::ca::{BlockError, BlockProblem, Validity};
use crate::{
    api::v1::{Gateway, SecretObjectReference},
    grant::{Permission, Referent, Referrer},
    index::{Index, ObjectKey},
    status::Reason,
};

/// A certificate chain and its private key, from a Secret or made with
/// [`ClientCertificate::new`]. Cheap to clone; clones are the same
/// certificate (for caching).
#[derive(Clone)]
pub struct ClientCertificate(Arc<KeyPair>);

struct KeyPair {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The leaf's. (The other certificates' are left to the backend: a
    /// chain may carry an expired cross-sign that path building skips.)
    validity: Validity,
}

/// See [`ClientCertificate::held`].
pub(crate) struct HeldKeyPair(Weak<KeyPair>);

impl HeldKeyPair {
    pub(crate) fn is_held(&self) -> bool {
        self.0.strong_count() > 0
    }
}

impl ClientCertificate {
    /// Parses `tls.crt` (a PEM chain, leaf first, every block a
    /// certificate, read as strictly as CA bundles) and `tls.key` (a PEM
    /// private key), and checks that the key belongs to the leaf (with the
    /// process-default crypto provider, else one the crate's features build
    /// in; with neither, rustls checks when a configuration is built).
    ///
    /// # Errors
    ///
    /// [`KeyPairError`], saying what is missing or wrong.
    pub fn from_pem(chain: Option<&[u8]>, key: Option<&[u8]>) -> Result<Self, KeyPairError> {
        let (chain_pem, key_pem) = match (chain, key) {
            (Some(chain), Some(key)) => (chain, key),
            (None, None) => return Err(KeyPairError::MissingBoth),
            (None, _) => return Err(KeyPairError::MissingCertificate),
            _ => return Err(KeyPairError::MissingKey),
        };
        // Read as strictly as CA bundles: a block that is not a certificate
        // is refused, not skipped, so that a chain missing a certificate
        // says why instead of failing at the backend.
        let (mut chain, mut validity) = (Vec::new(), None);
        for (i, read) in super::pem::blocks(chain_pem).enumerate() {
            let problem = match read {
                Err(error) => BlockProblem::Pem(error.to_string()),
                Ok((b"CERTIFICATE", der)) => match x509_parser::parse_x509_certificate(&der) {
                    Ok(([], certificate)) => {
                        validity.get_or_insert(Validity::of(&certificate));
                        chain.push(CertificateDer::from(der));
                        continue;
                    }
                    Ok((rest, _)) => BlockProblem::Unparsable(format!(
                        "{} bytes after the certificate",
                        rest.len()
                    )),
                    Err(error) => BlockProblem::Unparsable(error.to_string()),
                },
                Ok((label, _)) => super::ca::not_a_certificate(label),
            };
            return Err(KeyPairError::Chain(BlockError { block: i + 1, problem }));
        }
        let Some(validity) = validity else { return Err(KeyPairError::EmptyChain) };
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| KeyPairError::NoPrivateKey)?;
        // The key check needs a provider; with none at all, rustls still
        // refuses a mismatched key when the config is built.
        if let Some(provider) = super::check_provider() {
            CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
                .map_err(KeyPairError::Mismatch)?;
        }
        Ok(Self(Arc::new(KeyPair { chain, key, validity })))
    }

    /// A chain (leaf first) and its private key from elsewhere than a
    /// Secret, such as the SPIFFE Workload API, checked with `provider` to
    /// belong together. Keep the value while the certificate stays the
    /// same: [`TlsCache`](super::TlsCache) knows a certificate by its
    /// value, so a new one, even of the same content, builds a new
    /// configuration.
    ///
    /// # Errors
    ///
    /// rustls' error when the chain is empty, the leaf does not parse
    /// (`BadEncoding`), the key cannot be loaded, or it does not belong to
    /// the leaf (when the provider can tell: one that cannot say what a
    /// key's public half is, as with some hardware keys, lets any key
    /// through).
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        provider: &CryptoProvider,
    ) -> Result<Self, rustls::Error> {
        // (rustls checks the key against the leaf only when its provider
        // can say what the key's public half is; an empty chain would pass.)
        let leaf = chain.first().ok_or(rustls::Error::NoCertificatesPresented)?;
        let validity = match x509_parser::parse_x509_certificate(leaf) {
            Ok(([], certificate)) => Validity::of(&certificate),
            _ => return Err(rustls::Error::InvalidCertificate(CertificateError::BadEncoding)),
        };
        CertifiedKey::from_der(chain.clone(), key.clone_key(), provider)?;
        Ok(Self(Arc::new(KeyPair { chain, key, validity })))
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.0.chain
    }

    /// The private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.0.key
    }

    /// The start of the leaf's validity.
    pub fn not_before(&self) -> UnixTime {
        self.0.validity.not_before()
    }

    /// The last second of the leaf's validity: a Gateway's `ResolvedRefs`
    /// turns `False` the second after, when a controller should requeue it.
    /// (The other certificates' validity is left to the backend: a chain
    /// may carry an expired cross-sign that path building skips.)
    pub fn not_after(&self) -> UnixTime {
        self.0.validity.not_after()
    }

    /// Whether two values are one certificate: clones of one value, or one
    /// Secret applied to the index again unchanged.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// A handle that tells whether this content is still held, without
    /// holding it (nor letting its address be reused).
    pub(crate) fn held(&self) -> HeldKeyPair {
        HeldKeyPair(Arc::downgrade(&self.0))
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("ClientCertificate")
            .field("certificates", &self.chain().len())
            .finish_non_exhaustive()
    }
}

/// Why a Secret's `tls.crt` and `tls.key` are not a usable client
/// certificate.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyPairError {
    /// The Secret has neither `tls.crt` nor `tls.key`.
    #[error("has no tls.crt and no tls.key")]
    MissingBoth,
    /// The Secret has no `tls.crt`.
    #[error("has no tls.crt")]
    MissingCertificate,
    /// The Secret has no `tls.key`.
    #[error("has no tls.key")]
    MissingKey,
    /// A block of `tls.crt` is not a certificate that parses (broken PEM,
    /// another label such as a private key, bad DER): every block must be
    /// one.
    #[error("tls.crt {0}")]
    Chain(BlockError),
    /// `tls.crt` holds no certificate.
    #[error("tls.crt holds no certificate")]
    EmptyChain,
    /// `tls.key` holds no PEM private key.
    #[error("tls.key holds no PEM private key")]
    NoPrivateKey,
    /// The key is not the leaf certificate's, or cannot be loaded.
    #[error("tls.key does not fit tls.crt: {0}")]
    Mismatch(rustls::Error),
}

/// A Secret's `tls.crt` and `tls.key` as applied, parsed the first time a
/// Gateway's reference asks for them: most TLS Secrets in a cluster are
/// no Gateway's client certificate, and loading a private key costs.
pub(crate) struct SecretKeyPair {
    chain: Option<Box<[u8]>>,
    key: Option<Box<[u8]>>,
    parsed: OnceLock<Result<ClientCertificate, KeyPairError>>,
}

impl SecretKeyPair {
    /// `old` when it was read from the same bytes (a Secret applied again
    /// unchanged keeps its certificate, and what was built with it).
    pub(crate) fn read(
        chain: Option<&[u8]>,
        key: Option<&[u8]>,
        old: Option<&Arc<Self>>,
    ) -> Arc<Self> {
        match old {
            Some(old) if (old.chain.as_deref(), old.key.as_deref()) == (chain, key) => old.clone(),
            _ => Arc::new(Self {
                chain: chain.map(Into::into),
                key: key.map(Into::into),
                parsed: OnceLock::new(),
            }),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }

    /// The parsed pair, or why it cannot be used.
    pub(crate) fn get(&self) -> Result<&ClientCertificate, &KeyPairError> {
        let (chain, key) = (self.chain.as_deref(), self.key.as_deref());
        self.parsed.get_or_init(|| ClientCertificate::from_pem(chain, key)).as_ref()
    }
}

impl fmt::Debug for SecretKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("SecretKeyPair").field("parsed", &self.parsed.get()).finish_non_exhaustive()
    }
}

/// Why a Gateway's client certificate cannot be used; each maps to the
/// Gateway's `ResolvedRefs=False` reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientCertificateError {
    /// The reference is to another namespace and no ReferenceGrant allows
    /// it.
    #[error("clientCertificateRef to Secret {secret} is not permitted by any ReferenceGrant")]
    RefNotPermitted {
        /// The Secret referred to.
        secret: ObjectKey,
    },
    /// The reference is of another kind, the Secret is missing, or its
    /// content is unusable.
    #[error("clientCertificateRef {reference}: {reason}")]
    InvalidClientCertificateRef {
        /// The reference, as `kind namespace/name`.
        reference: String,
        /// Why.
        reason: String,
    },
}

impl ClientCertificateError {
    /// The Gateway `ResolvedRefs` reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::RefNotPermitted { .. } => Reason::RefNotPermitted,
            Self::InvalidClientCertificateRef { .. } => Reason::InvalidClientCertificateRef,
        }
    }
}

impl Index {
    /// The client certificate a Gateway presents to backends: `Ok(None)` when
    /// it names none.
    ///
    /// # Errors
    ///
    /// As [`Index::client_certificate_from_ref`].
    pub fn client_certificate(
        &self,
        gateway: &Gateway,
    ) -> Result<Option<ClientCertificate>, ClientCertificateError> {
        let Some(reference) = gateway.client_certificate_ref() else { return Ok(None) };
        let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
        self.client_certificate_from_ref(namespace, reference).map(Some)
    }

    /// The client certificate named by a Gateway's
    /// `spec.tls.backend.clientCertificateRef`, for a controller with its
    /// own Gateway type: `gateway_namespace` is the Gateway's namespace.
    ///
    /// The first call for a Secret's content reads its pair (a private key
    /// to load: microseconds, more for RSA); later calls, and calls after
    /// the Secret is applied again unchanged, return the same value.
    ///
    /// # Errors
    ///
    /// [`ClientCertificateError::RefNotPermitted`] for a cross-namespace
    /// Secret without a ReferenceGrant (checked first, so nothing about the
    /// Secret is revealed); [`ClientCertificateError::InvalidClientCertificateRef`]
    /// for a reference of another group or kind, a missing Secret, one
    /// without a usable `tls.crt`/`tls.key` pair, or one whose leaf
    /// certificate has expired or is not valid yet (now: requeue the Gateway the
    /// second after [`ClientCertificate::not_after`] to report its expiry
    /// on time).
    pub fn client_certificate_from_ref(
        &self,
        gateway_namespace: &str,
        reference: &SecretObjectReference,
    ) -> Result<ClientCertificate, ClientCertificateError> {
        let namespace = reference.namespace.as_deref().unwrap_or(gateway_namespace);
        let (group, kind) = (reference.group(), reference.kind());
        let secret = ObjectKey::new(namespace, reference.name.as_str());
        let invalid = |reason: &str| ClientCertificateError::InvalidClientCertificateRef {
            reference: format!(
                "{}{kind} {secret}",
                if group.is_empty() { String::new() } else { format!("{group}/") }
            ),
            reason: reason.to_owned(),
        };
        let from = Referrer::gateway_api("Gateway", gateway_namespace);
        let to = Referent { group, kind, namespace: &secret.namespace, name: &secret.name };
        if self.permission(&from, &to) == Permission::Denied {
            return Err(ClientCertificateError::RefNotPermitted { secret });
        }
        if (group, kind) != ("", "Secret") {
            return Err(invalid("only core Secrets are supported"));
        }
        match self.secret_key_pair(&secret) {
            None => Err(invalid("not found")),
            Some(Err(problem)) => Err(invalid(&problem.to_string())),
            // Sent, it would be refused by the backend, saying less.
            Some(Ok(certificate)) => match certificate.0.validity.check(UnixTime::now()) {
                Ok(()) => Ok(certificate.clone()),
                Err(problem) => Err(invalid(&format!("the tls.crt certificate {problem}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_pair_is_unusable_is_named() {
        let pair = rcgen::generate_simple_self_signed(vec!["gw.example".into()]).unwrap();
        let (crt, key) = (pair.cert.pem(), pair.signing_key.serialize_pem());
        let other = rcgen::generate_simple_self_signed(vec!["other.example".into()]).unwrap();
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let read = |crt: Option<&str>, key: Option<&str>| {
            ClientCertificate::from_pem(crt.map(str::as_bytes), key.map(str::as_bytes)).err()
        };
        assert_eq!(read(Some(&crt), Some(&key)), None);
        assert_eq!(read(None, None), Some(KeyPairError::MissingBoth));
        assert_eq!(read(None, Some(&key)), Some(KeyPairError::MissingCertificate));
        assert_eq!(read(Some(&crt), None), Some(KeyPairError::MissingKey));
        assert_eq!(read(Some("no PEM here"), Some(&key)), Some(KeyPairError::EmptyChain));
        let block = |error| match error {
            Some(KeyPairError::Chain(BlockError { block, problem })) => (block, problem),
            other => panic!("{other:?}"),
        };
        let (number, problem) = block(read(Some(&format!("{crt}{garbage}")), Some(&key)));
        assert!(number == 2 && matches!(problem, BlockProblem::Unparsable(_)), "{problem}");
        // Blocks other readers skip are refused, not dropped from the chain.
        let trusted = crt.replace("CERTIFICATE", "TRUSTED CERTIFICATE");
        let problem = block(read(Some(&format!("{crt}{trusted}")), Some(&key)));
        assert_eq!(problem, (2, BlockProblem::NotACertificate("TRUSTED CERTIFICATE".into())));
        let problem = block(read(Some(&format!("{crt}{key}")), Some(&key)));
        assert_eq!(problem, (2, BlockProblem::NotACertificate("PRIVATE KEY".into())));
        let truncated = &crt[..crt.len() - 10];
        assert!(matches!(block(read(Some(truncated), Some(&key))), (1, BlockProblem::Pem(_))));
        assert_eq!(read(Some(&crt), Some(&crt)), Some(KeyPairError::NoPrivateKey));
        if super::super::check_provider().is_some() {
            let mismatch = read(Some(&other.cert.pem()), Some(&key));
            assert!(matches!(mismatch, Some(KeyPairError::Mismatch(_))), "{mismatch:?}");
        }
    }
}
