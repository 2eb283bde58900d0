//! Configurations already built, by the identity of their inputs.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use rustls::{RootCertStore, crypto::CryptoProvider};

use super::{BackendTls, TlsError, TlsParams, client_cert::HeldKeyPair, default_provider};
use crate::{index::AppliedPolicy, index::Map, policy::ValidatedPolicy};

/// Configurations already built, so that asking again with unchanged inputs
/// returns the same `Arc<ClientConfig>` (connection pools and session
/// resumption rely on that).
///
/// The key is the identity of the inputs: the validated policy and its
/// trust anchors as the [`Index`] holds them (a change to the policy's spec,
/// or to a CA object it names, makes new ones; a status write or a relist
/// does not), the client certificate's Secret content, the crypto
/// provider, and the options domain and ALPN. A hit is a hash lookup
/// under a mutex; nothing is parsed or built. What was built from a policy
/// version, or a client certificate, that the index no longer holds is
/// dropped at the next miss.
///
/// [`Index`]: crate::index::Index
#[derive(Default)]
pub struct TlsCache {
    /// By the address of the validated policy.
    policies: Mutex<Map<usize, PolicyConfigs>>,
}

/// What was built for one validated policy.
struct PolicyConfigs {
    /// Weak, so that the cache does not keep the policy alive (it is gone
    /// when the index lets go of it) while its address is not reused.
    policy: Weak<ValidatedPolicy>,
    /// The anchors `configs` were built with; others replace them all.
    roots: Arc<RootCertStore>,
    configs: Map<ConfigKey, Cached>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ConfigKey {
    client_certificate: Option<usize>,
    provider: usize,
    options_domain: Option<String>,
    alpn: Vec<Vec<u8>>,
}

/// A built configuration, and its inputs, held so that their addresses (in
/// the key) cannot be reused by other values.
struct Cached {
    client_certificate: Option<HeldKeyPair>,
    _provider: Arc<CryptoProvider>,
    tls: BackendTls,
}

impl TlsCache {
    /// Like [`client_config`](super::client_config), through the cache.
    ///
    /// # Errors
    ///
    /// As [`client_config`](super::client_config); errors are not cached.
    pub fn client_config(
        &self,
        applied: &AppliedPolicy,
        params: &TlsParams,
    ) -> Result<BackendTls, TlsError> {
        self.client_config_with_provider(applied, params, default_provider()?)
    }

    /// Like [`client_config_with_provider`](super::client_config_with_provider),
    /// through the cache.
    ///
    /// # Errors
    ///
    /// As [`client_config_with_provider`](super::client_config_with_provider);
    /// errors are not cached.
    pub fn client_config_with_provider(
        &self,
        applied: &AppliedPolicy,
        params: &TlsParams,
        provider: Arc<CryptoProvider>,
    ) -> Result<BackendTls, TlsError> {
        let Some((policy, roots)) = applied.tls_inputs() else {
            return super::client_config_with_provider(applied, params, provider);
        };
        let key = ConfigKey {
            client_certificate: params.client_certificate.as_ref().map(|c| c.identity()),
            provider: Arc::as_ptr(&provider) as usize,
            options_domain: params.options_domain.clone(),
            alpn: params.alpn.clone(),
        };
        let mut policies = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        let id = Arc::as_ptr(policy) as usize;
        let built = policies.get(&id).filter(|p| Arc::ptr_eq(&p.roots, roots));
        if let Some(cached) = built.and_then(|p| p.configs.get(&key)) {
            return Ok(cached.tls.clone());
        }
        let tls = super::client_config_with_provider(applied, params, provider.clone())?;
        policies.retain(|_, p| p.policy.strong_count() > 0);
        let configs = policies.entry(id).or_insert_with(|| PolicyConfigs {
            policy: Arc::downgrade(policy),
            roots: roots.clone(),
            configs: Map::default(),
        });
        if !Arc::ptr_eq(&configs.roots, roots) {
            // The policy's CA objects changed.
            configs.roots = roots.clone();
            configs.configs.clear();
        }
        configs
            .configs
            .retain(|_, c| c.client_certificate.as_ref().is_none_or(HeldKeyPair::is_held));
        let cached = Cached {
            client_certificate: params.client_certificate.as_ref().map(|c| c.held()),
            _provider: provider,
            tls: tls.clone(),
        };
        configs.configs.insert(key, cached);
        Ok(tls)
    }

    /// How many configurations the cache holds.
    pub fn len(&self) -> usize {
        let policies = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        policies.values().map(|p| p.configs.len()).sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
