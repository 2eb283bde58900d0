//! `options` of a policy: the keys this crate understands, under the domain
//! prefix the embedding implementation chooses.
//!
//! With the prefix `example.com`, the keys are:
//!
//! | key | value |
//! | --- | --- |
//! | `example.com/min-tls-version` | `1.2` or `1.3` |
//! | `example.com/max-tls-version` | `1.2` or `1.3` |
//! | `example.com/cipher-suites` | comma-separated names as rustls writes them, e.g. `TLS13_AES_128_GCM_SHA256` (the IANA name `TLS_AES_128_GCM_SHA256` is taken too) or `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256` |
//! | `example.com/key-exchange-groups` | comma-separated names: `X25519`, `secp256r1`, `secp384r1`, `X25519MLKEM768`, … |
//! | `example.com/alpn-protocols` | comma-separated protocols, e.g. `h2,http/1.1` |
//!
//! Suite and group names are compared without regard to case. The prefix
//! is set with [`Index::set_options_domain`]. An unknown key under it, or a
//! bad value, makes the policy `Invalid` (and unusable); keys under other
//! prefixes belong to someone else and are ignored. A cipher suite or group
//! that the crypto provider does not offer is refused when a configuration
//! is built with it ([`TlsError::Options`]). Unprefixed keys were already
//! refused by validation. Options only narrow what the crypto provider
//! offers; they never add anything.

use rustls::{
    SupportedProtocolVersion,
    crypto::{CryptoProvider, SupportedKxGroup},
    version::{TLS12, TLS13},
};

use crate::policy::ValidatedPolicy;
#[cfg(doc)]
use crate::{index::Index, tls::TlsError};

/// A problem with one option.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionError {
    /// A key under the implementation's prefix that this crate does not
    /// know.
    #[error(
        "options[{key}]: unknown option (known: min-tls-version, max-tls-version, cipher-suites, key-exchange-groups, alpn-protocols)"
    )]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A value that does not parse or names something the provider lacks.
    #[error("options[{key}]: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The TLS settings that options and the caller decide.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) versions: Vec<&'static SupportedProtocolVersion>,
    pub(crate) provider: CryptoProvider,
    pub(crate) alpn: Option<Vec<Vec<u8>>>,
}

/// The policy's options under `domain`, read without a crypto provider.
struct Options<'a> {
    min: Version,
    max: Version,
    /// Cipher suite and key-exchange group names, each known to rustls.
    suites: Option<Vec<&'a str>>,
    groups: Option<Vec<&'a str>>,
    alpn: Option<Vec<Vec<u8>>>,
}

/// Reads the policy's options under `domain`: every problem that does not
/// depend on the crypto provider (an unknown key, a bad version, a name
/// that is no TLS cipher suite or group, an ALPN protocol too long).
fn read<'a>(
    policy: &'a ValidatedPolicy,
    domain: Option<&str>,
) -> Result<Options<'a>, Vec<OptionError>> {
    let mut errors = Vec::new();
    let mut options = Options {
        min: Version::Tls12,
        max: Version::Tls13,
        suites: None,
        groups: None,
        alpn: None,
    };
    let ours = policy.options().iter().filter(|(key, _)| Some(key.domain()) == domain);
    for (key, value) in ours {
        let bad = |reason: String| OptionError::BadValue { key: key.to_string(), reason };
        let result = match key.name() {
            "min-tls-version" => Version::parse(value).map(|v| options.min = v).map_err(bad),
            "max-tls-version" => Version::parse(value).map(|v| options.max = v).map_err(bad),
            "cipher-suites" => known(value, &registry().suites, "TLS cipher suite")
                .map(|names| options.suites = Some(names))
                .map_err(bad),
            "key-exchange-groups" => known(value, &registry().groups, "TLS key-exchange group")
                .map(|names| options.groups = Some(names))
                .map_err(bad),
            "alpn-protocols" => list(value)
                .and_then(|protocols| match protocols.iter().find(|p| p.len() > 255) {
                    // The protocol's length is one byte on the wire.
                    Some(long) => Err(format!("{long:?} is longer than 255 bytes")),
                    None => Ok(protocols),
                })
                .map(|protocols| {
                    options.alpn =
                        Some(protocols.into_iter().map(|p| p.as_bytes().to_vec()).collect())
                })
                .map_err(bad),
            _ => Err(OptionError::UnknownKey { key: key.to_string() }),
        };
        if let Err(error) = result {
            errors.push(error);
        }
    }
    if options.min > options.max {
        errors.push(OptionError::BadValue {
            key: key_name(domain, "min-tls-version"),
            reason: "is above max-tls-version".into(),
        });
    }
    if errors.is_empty() { Ok(options) } else { Err(errors) }
}

/// What is wrong with the policy's options under `domain` whatever the
/// crypto provider: what status reports. Whether the suites and groups
/// named leave something for the allowed versions is a property of those
/// suites and groups, judged with a provider that offers them all; a name
/// the provider at hand does not offer is refused only by [`settings`].
pub(crate) fn check(policy: &ValidatedPolicy, domain: &str) -> Vec<OptionError> {
    let options = match read(policy, Some(domain)) {
        Ok(options) => options,
        Err(errors) => return errors,
    };
    let Some(provider) = super::check_provider() else { return Vec::new() };
    let offers = |names: &Option<Vec<&str>>, offered: &[&str]| {
        names.iter().flatten().all(|name| offered.contains(name))
    };
    let suites: Vec<_> = provider.cipher_suites.iter().filter_map(|s| s.suite().as_str()).collect();
    let groups: Vec<_> = provider.kx_groups.iter().filter_map(|g| g.name().as_str()).collect();
    if !offers(&options.suites, &suites) || !offers(&options.groups, &groups) {
        return Vec::new();
    }
    apply(options, Some(domain), &provider).err().unwrap_or_default()
}

/// Applies the policy's options under `domain` to a copy of `provider`.
pub(crate) fn settings(
    policy: &ValidatedPolicy,
    domain: Option<&str>,
    provider: &CryptoProvider,
) -> Result<Settings, Vec<OptionError>> {
    apply(read(policy, domain)?, domain, provider)
}

/// Applies options read under `domain` to a copy of `provider`.
fn apply(
    options: Options<'_>,
    domain: Option<&str>,
    provider: &CryptoProvider,
) -> Result<Settings, Vec<OptionError>> {
    let mut errors = Vec::new();
    let mut provider = provider.clone();
    let bad =
        |name: &str, reason: String| OptionError::BadValue { key: key_name(domain, name), reason };
    if let Some(names) = &options.suites {
        match offered(names, &provider.cipher_suites, |s| s.suite().as_str().unwrap_or_default()) {
            Ok(suites) => provider.cipher_suites = suites,
            Err(reason) => errors.push(bad("cipher-suites", reason)),
        }
    }
    if let Some(names) = &options.groups {
        match offered(names, &provider.kx_groups, |g: &&dyn SupportedKxGroup| {
            g.name().as_str().unwrap_or_default()
        }) {
            Ok(groups) => provider.kx_groups = groups,
            Err(reason) => errors.push(bad("key-exchange-groups", reason)),
        }
    }
    let versions: Vec<_> = [(Version::Tls12, &TLS12), (Version::Tls13, &TLS13)]
        .into_iter()
        .filter(|(v, _)| (options.min..=options.max).contains(v))
        .map(|(_, version)| version)
        .collect();
    // Suites of versions left out go too (rustls would otherwise want key
    // exchange groups for them); a version needs a suite left.
    provider.cipher_suites.retain(|s| versions.iter().any(|v| v.version == s.version().version));
    let usable = !provider.cipher_suites.is_empty();
    if errors.is_empty() && !usable {
        errors
            .push(bad("cipher-suites", "no cipher suite left for the allowed TLS versions".into()));
    }
    // Nor without a key-exchange group for it (some are TLS 1.3 only).
    let usable =
        versions.iter().any(|v| provider.kx_groups.iter().any(|g| g.usable_for_version(v.version)));
    if errors.is_empty() && !usable {
        errors.push(bad(
            "key-exchange-groups",
            "no key-exchange group left for the allowed TLS versions".into(),
        ));
    }
    if errors.is_empty() {
        Ok(Settings { versions, provider, alpn: options.alpn })
    } else {
        Err(errors)
    }
}

fn key_name(domain: Option<&str>, name: &str) -> String {
    format!("{}/{name}", domain.unwrap_or_default())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Tls12,
    Tls13,
}

impl Version {
    fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "1.2" => Ok(Self::Tls12),
            "1.3" => Ok(Self::Tls13),
            other => Err(format!("{other:?} is not a TLS version (1.2 or 1.3)")),
        }
    }
}

/// A comma-separated list without empty entries.
fn list(value: &str) -> Result<Vec<&str>, String> {
    let items: Vec<_> = value.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(format!("{value:?} is not a comma-separated list"));
    }
    Ok(items)
}

/// The names in `value`, each a name of `registry` (any case), written as
/// the registry writes it. rustls writes the TLS 1.3 suites `TLS13_…`
/// where IANA writes `TLS_…`: both are taken.
fn known<'a>(value: &str, registry: &[&'static str], what: &str) -> Result<Vec<&'a str>, String> {
    let find = |wanted: &str| registry.iter().find(|name| name.eq_ignore_ascii_case(wanted));
    list(value)?
        .into_iter()
        .map(|wanted| {
            let iana_tls13 = || {
                let rest = wanted.get(..4).filter(|p| p.eq_ignore_ascii_case("TLS_"))?;
                find(&format!("TLS13_{}", &wanted[rest.len()..]))
            };
            find(wanted).or_else(iana_tls13).copied().ok_or_else(|| {
                format!("{wanted:?} is not a {what} (names as rustls writes them, any case)")
            })
        })
        .collect()
}

/// The entries of `available` named in `names`, in that order.
fn offered<T: Clone>(
    names: &[&str],
    available: &[T],
    name: impl Fn(&T) -> &'static str,
) -> Result<Vec<T>, String> {
    names
        .iter()
        .map(|wanted| {
            available.iter().find(|item| name(item) == *wanted).cloned().ok_or_else(|| {
                let known: Vec<_> = available.iter().map(&name).collect();
                format!(
                    "{wanted:?} is not offered by the crypto provider (offered: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// The cipher suite and key-exchange group names rustls knows (its copies
/// of the IANA registries, TLS 1.3 suites spelled `TLS13_…`), read once.
struct Registry {
    suites: Vec<&'static str>,
    groups: Vec<&'static str>,
}

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| {
        let codes = || 0..=u16::MAX;
        Registry {
            suites: codes().filter_map(|c| rustls::CipherSuite::from(c).as_str()).collect(),
            groups: codes().filter_map(|c| rustls::NamedGroup::from(c).as_str()).collect(),
        }
    })
}
