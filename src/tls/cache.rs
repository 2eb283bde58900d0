//! Configurations already built, by the identity of their inputs.

use std::{
    hash::BuildHasher,
    sync::{Arc, Mutex, PoisonError, Weak},
};

use rustls::{RootCertStore, crypto::CryptoProvider};

use super::{BackendTls, TlsError, TlsParams, client_cert::HeldKeyPair, default_provider};
use crate::{index::AppliedPolicy, index::Map, policy::ValidatedPolicy};

/// Configurations already built, so that asking again with unchanged inputs
/// returns the same `Arc<ClientConfig>` (connection pools and session
/// resumption rely on that).
///
/// The key is the identity of the inputs: the validated policy and its
/// trust anchors as the [`Index`] holds them (a change to the policy's spec,
/// to a CA object it names, or to the roots given to
/// [`Index::set_well_known_roots`] makes new ones; a status write or a
/// relist does not), the client certificate (one value: one Secret's
/// content), the
/// `Arc<CryptoProvider>`, the options domain
/// ([`Index::set_options_domain`]) and the ALPN. A hit is a hash
/// lookup under a mutex that allocates nothing, and a clone of the
/// [`BackendTls`] (an `Arc` and the hostname); a miss builds outside it.
///
/// What was built from a policy version, client certificate or provider
/// that nothing holds any more (the index let go of it, and no caller keeps an
/// [`AppliedPolicy`] or [`ClientCertificate`](super::ClientCertificate)) is
/// dropped once the cache has grown to twice what it held after the last
/// sweep; configurations built with a policy's former trust anchors are
/// dropped at its first miss with the new ones, and a caller still holding
/// an [`AppliedPolicy`] from before gets configurations that are not
/// cached.
///
/// [`Index`]: crate::index::Index
/// [`Index::set_well_known_roots`]: crate::index::Index::set_well_known_roots
/// [`Index::set_options_domain`]: crate::index::Index::set_options_domain
#[derive(Default)]
pub struct TlsCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By the address of the validated policy.
    policies: Map<usize, PolicyConfigs>,
    /// How many configurations `policies` holds.
    len: usize,
    /// The size at which what nothing holds is swept.
    sweep_at: usize,
}

/// What was built for one validated policy.
struct PolicyConfigs {
    /// Weak, so that the cache does not keep the policy alive, while its
    /// address is not reused.
    policy: Weak<ValidatedPolicy>,
    /// The anchors `configs` were built with; newer ones replace them all,
    /// older ones are not cached.
    roots: Arc<RootCertStore>,
    /// When `roots` were made (higher is newer).
    roots_made: u64,
    configs: Map<ConfigKey, Cached>,
}

/// Identities, and a hash of the parameters (compared in full on a hit),
/// so that a lookup does not allocate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ConfigKey {
    client_certificate: Option<usize>,
    provider: usize,
    params: u64,
}

/// A built configuration, and its inputs, held so that their addresses (in
/// the key) cannot be reused by other values.
struct Cached {
    client_certificate: Option<HeldKeyPair>,
    /// Weak, so that a provider the caller dropped lets the entry go,
    /// while its address is not reused.
    provider: Weak<CryptoProvider>,
    options_domain: Option<Arc<str>>,
    alpn: Vec<Vec<u8>>,
    tls: BackendTls,
}

impl Cached {
    fn is_for(&self, options_domain: Option<&Arc<str>>, params: &TlsParams) -> bool {
        self.options_domain.as_ref() == options_domain && self.alpn == params.alpn
    }

    fn is_held(&self) -> bool {
        self.provider.strong_count() > 0
            && self.client_certificate.as_ref().is_none_or(HeldKeyPair::is_held)
    }
}

impl Inner {
    /// What was built for `policy` with `roots`, for `key`. Anchors made
    /// anew with the same content are the same `Arc` under a newer number:
    /// the configs keep the newest number seen, so that an older caller
    /// does not take them for stale.
    fn get(
        &mut self,
        policy: usize,
        (roots, made): (&Arc<RootCertStore>, u64),
        key: &ConfigKey,
    ) -> Option<&Cached> {
        let built = self.policies.get_mut(&policy).filter(|p| Arc::ptr_eq(&p.roots, roots))?;
        built.roots_made = built.roots_made.max(made);
        built.configs.get(key)
    }

    /// Drops what nothing holds any more.
    fn sweep(&mut self) {
        self.policies.retain(|_, p| {
            p.configs.retain(|_, cached| cached.is_held());
            p.policy.strong_count() > 0 && !p.configs.is_empty()
        });
        self.len = self.policies.values().map(|p| p.configs.len()).sum();
        self.sweep_at = 2 * self.len + 64;
    }
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
        let (Some((policy, roots, roots_made)), Ok(client_certificate)) =
            (applied.tls_inputs(), &params.client_certificate)
        else {
            return super::client_config_with_provider(applied, params, provider);
        };
        let id = Arc::as_ptr(policy) as usize;
        let domain = applied.options_domain();
        let key = |inner: &Inner| ConfigKey {
            client_certificate: client_certificate.as_ref().map(|c| c.identity()),
            provider: Arc::as_ptr(&provider) as usize,
            params: inner.policies.hasher().hash_one((domain, &params.alpn)),
        };
        {
            let mut inner = self.lock();
            let key = key(&inner);
            let cached =
                inner.get(id, (roots, roots_made), &key).filter(|c| c.is_for(domain, params));
            if let Some(cached) = cached {
                return Ok(cached.tls.clone());
            }
        }
        // Built without the lock, so that hits for other backends do not
        // wait; two callers racing here end up with the first one's.
        let tls = super::client_config_with_provider(applied, params, provider.clone())?;
        let mut inner = self.lock();
        let key = key(&inner);
        if let Some(cached) =
            inner.get(id, (roots, roots_made), &key).filter(|c| c.is_for(domain, params))
        {
            return Ok(cached.tls.clone());
        }
        if inner.len >= inner.sweep_at {
            inner.sweep();
        }
        let Inner { policies, len, .. } = &mut *inner;
        let built = policies.entry(id).or_insert_with(|| PolicyConfigs {
            policy: Arc::downgrade(policy),
            roots: roots.clone(),
            roots_made,
            configs: Map::default(),
        });
        if !Arc::ptr_eq(&built.roots, roots) {
            if roots_made < built.roots_made {
                // A caller still holding the policy as it was before its CA
                // objects changed: not cached, so that it does not evict
                // what callers with the current anchors share.
                return Ok(tls);
            }
            // The policy's CA objects changed.
            *len -= built.configs.len();
            built.roots = roots.clone();
            built.roots_made = roots_made;
            built.configs.clear();
        }
        let cached = Cached {
            client_certificate: client_certificate.as_ref().map(|c| c.held()),
            provider: Arc::downgrade(&provider),
            options_domain: domain.cloned(),
            alpn: params.alpn.clone(),
            tls: tls.clone(),
        };
        // A hash collision of parameters replaces the other's config.
        if built.configs.insert(key, cached).is_none() {
            *len += 1;
        }
        Ok(tls)
    }

    /// How many configurations the cache holds for inputs still held
    /// (it drops the others first).
    pub fn len(&self) -> usize {
        let mut inner = self.lock();
        inner.sweep();
        inner.len
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many configurations the cache holds, swept or not.
    #[cfg(test)]
    pub(crate) fn unswept_len(&self) -> usize {
        self.lock().len
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
