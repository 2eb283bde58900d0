//! Validated names: each type here can only hold a value the API server (and
//! rustls, where it matters) accepts, so code that has one never checks it
//! again.
//!
//! The rules are those of the upstream schema patterns, written out by hand
//! (no regex engine). Where this crate is stricter than the API server, the
//! type says so.

use std::{borrow::Borrow, fmt, str::FromStr};

use rustls::pki_types::{DnsName, ServerName};

/// Why a string is not a valid name of some kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The string is empty where at least one character is needed.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than the limit.
    #[error("must be at most {max} characters long, not {len}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The string's length.
        len: usize,
    },
    /// The string does not have the required shape.
    #[error("must be {expected}")]
    Malformed {
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A DNS label is longer than 63 characters (the API server's pattern
    /// allows it; DNS and TLS do not).
    #[error("label {label:?} is longer than 63 characters")]
    LabelTooLong {
        /// The offending label.
        label: String,
    },
    /// An IP address, or a name whose last label is a number and so reads as
    /// one (the API server's pattern allows these; Gateway API says IPs are
    /// not allowed).
    #[error("must be a DNS name, not an IP address (its last label is a number)")]
    IpAddress,
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain (a-z, 0-9, '-' and '.')";

/// Checks the upstream subdomain pattern
/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`:
/// dot-separated, non-empty labels of `[a-z0-9-]` that neither start nor end
/// with `-`.
fn is_subdomain(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_label)
}

fn is_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => *first != b'-' && *last != b'-' && bytes.iter().all(inner),
        _ => false,
    }
}

/// Length check shared by every name: `min..=max` characters, counted as the
/// API server counts them (Unicode scalar values).
fn check_len(s: &str, min: usize, max: usize) -> Result<(), NameError> {
    let len = s.chars().count();
    if len > max {
        Err(NameError::TooLong { max, len })
    } else if len < min {
        Err(NameError::Empty)
    } else {
        Ok(())
    }
}

/// Checks a domain prefix, the part of a [`DomainPrefixedName`] before its
/// `/`: the upstream subdomain pattern and limit.
pub(crate) fn check_domain(s: &str) -> Result<(), NameError> {
    check_len(s, 1, 253)?;
    if is_subdomain(s) { Ok(()) } else { Err(NameError::Malformed { expected: SUBDOMAIN }) }
}

/// Checks a subdomain (upstream pattern and limit) that must also be a DNS
/// name rustls accepts: labels of at most 63 characters.
fn check_dns_subdomain(s: &str) -> Result<(), NameError> {
    check_len(s, 1, 253)?;
    if !is_subdomain(s) {
        return Err(NameError::Malformed { expected: SUBDOMAIN });
    }
    if let Some(label) = s.split('.').find(|l| l.len() > 63) {
        return Err(NameError::LabelTooLong { label: label.to_owned() });
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;

            /// Takes the string without copying it.
            ///
            /// # Errors
            ///
            /// [`NameError`] saying why the string is not a valid name.
            fn try_from(s: String) -> Result<Self, NameError> {
                let check: fn(&str) -> Result<(), NameError> = $check;
                check(&s)?;
                Ok(Self(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;

            /// # Errors
            ///
            /// [`NameError`] saying why the string is not a valid name.
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::try_from(s.to_owned())
            }
        }

        impl FromStr for $name {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::try_from(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }
    };
}

string_newtype!(
    /// A precise hostname (`validation.hostname`): a lowercase RFC 1123
    /// subdomain of at most 253 characters, no wildcard.
    ///
    /// Stricter than the API server in two documented ways. A name whose
    /// last label is a number, which reads as an IPv4 address (`10.0.0.1`,
    /// `a.123`, `a.0x1f`), is refused: the upstream pattern lets these
    /// through although Gateway API says IPs are not allowed. And a label
    /// longer than 63 characters is refused: it is not a DNS name. Every `Hostname` is
    /// therefore a valid SNI value: see [`Hostname::server_name`].
    ///
    /// # Examples
    ///
    /// ```
    /// use backend_tls_policy::name::{Hostname, NameError};
    ///
    /// let name = Hostname::try_from("shop.example.com")?;
    /// assert_eq!(name.as_str(), "shop.example.com");
    /// assert_eq!(Hostname::try_from("10.0.0.1"), Err(NameError::IpAddress));
    /// assert!(Hostname::try_from("Shop.example.com").is_err());
    /// assert!(Hostname::try_from("*.example.com").is_err());
    /// # Ok::<(), NameError>(())
    /// ```
    Hostname,
    |s| {
        check_dns_subdomain(s)?;
        if ends_in_a_number(s) {
            return Err(NameError::IpAddress);
        }
        Ok(())
    }
);

/// Whether the last label is a decimal or `0x` hexadecimal number, which
/// makes the name readable as an IPv4 address (`10.0.0.1`, `a.123`,
/// `a.0x1f`). This is the WHATWG "ends in a number" rule that rustls applies
/// to DNS names.
fn ends_in_a_number(s: &str) -> bool {
    let last = s.rsplit('.').next().unwrap_or(s);
    let hex = last.strip_prefix("0x").is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || last.bytes().all(|b| b.is_ascii_digit())
}

impl Hostname {
    /// The name to send as SNI and, without subject alternative names, to
    /// verify the certificate against.
    pub fn server_name(&self) -> ServerName<'static> {
        ServerName::DnsName(self.dns_name())
    }

    fn dns_name(&self) -> DnsName<'static> {
        // Invariant: a `Hostname` is lowercase LDH labels of 1..=63
        // characters, at most 253 in all, and not an IP address: exactly
        // what `DnsName` accepts. `hostnames_are_dns_names` checks the table.
        DnsName::try_from(self.0.clone()).expect("every Hostname is a DnsName")
    }
}

impl From<&Hostname> for ServerName<'static> {
    fn from(hostname: &Hostname) -> Self {
        hostname.server_name()
    }
}

string_newtype!(
    /// A hostname in `subjectAltNames`: a [`Hostname`]-like subdomain that
    /// may start with a `*.` wildcard label.
    ///
    /// Like [`Hostname`], stricter than the API server for labels longer than
    /// 63 characters and for a last label that is a number (`10.0.0.1`):
    /// such a name could never match, since a DNS name cannot end in a
    /// number, and Gateway API says IPs are not allowed.
    ///
    /// # Examples
    ///
    /// ```
    /// use backend_tls_policy::name::SanHostname;
    ///
    /// let wildcard = SanHostname::try_from("*.example.com")?;
    /// assert!(wildcard.is_wildcard());
    /// assert!(SanHostname::try_from("a.*.example.com").is_err());
    /// # Ok::<(), backend_tls_policy::name::NameError>(())
    /// ```
    SanHostname,
    |s| {
        check_len(s, 1, 253)?;
        check_dns_subdomain(s.strip_prefix("*.").unwrap_or(s)).map_err(|e| match e {
            NameError::Malformed { .. } => NameError::Malformed {
                expected: "a lowercase RFC 1123 subdomain, optionally starting with '*.'",
            },
            other => other,
        })?;
        if ends_in_a_number(s) {
            return Err(NameError::IpAddress);
        }
        Ok(())
    }
);

impl SanHostname {
    /// Whether the name starts with a `*.` wildcard label.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

string_newtype!(
    /// A URI in `subjectAltNames`, such as a SPIFFE ID: the upstream
    /// `AbsoluteURI` rule, a scheme followed by `://` and an authority, at
    /// most 253 characters.
    ///
    /// # Examples
    ///
    /// ```
    /// use backend_tls_policy::name::SanUri;
    ///
    /// assert!(SanUri::try_from("spiffe://cluster.local/ns/shop/sa/shop").is_ok());
    /// assert!(SanUri::try_from("shop.example.com").is_err());
    /// ```
    SanUri,
    |s| {
        check_len(s, 1, 253)?;
        // The upstream pattern is not end-anchored, so only its start
        // matters: `[^:/?#]+` then `:` then `//`.
        match s.find([':', '/', '?', '#']) {
            Some(colon) if colon > 0 && s[colon..].starts_with("://") => Ok(()),
            _ => Err(NameError::Malformed { expected: "an absolute URI (scheme://authority…)" }),
        }
    }
);

string_newtype!(
    /// A section name, for a Service the name of one of its ports: a
    /// lowercase RFC 1123 subdomain of at most 253 characters.
    SectionName,
    |s| {
        check_len(s, 1, 253)?;
        if is_subdomain(s) { Ok(()) } else { Err(NameError::Malformed { expected: SUBDOMAIN }) }
    }
);

string_newtype!(
    /// A domain-prefixed name such as `example.com/min-tls-version` or
    /// `example.com/my-ca-set`: a lowercase subdomain, `/`, and a name of 1 to
    /// 63 characters of `[A-Za-z0-9_.-]` that starts and ends alphanumeric.
    ///
    /// # Examples
    ///
    /// ```
    /// use backend_tls_policy::name::DomainPrefixedName;
    ///
    /// let key = DomainPrefixedName::try_from("example.com/min-tls-version")?;
    /// assert_eq!((key.domain(), key.name()), ("example.com", "min-tls-version"));
    /// assert!(DomainPrefixedName::try_from("min-tls-version").is_err());
    /// # Ok::<(), backend_tls_policy::name::NameError>(())
    /// ```
    DomainPrefixedName,
    |s| {
        check_len(s, 1, 253)?;
        const EXPECTED: &str = "a domain-prefixed name such as example.com/name";
        let malformed = NameError::Malformed { expected: EXPECTED };
        let (domain, name) = s.split_once('/').ok_or(malformed.clone())?;
        let bytes = name.as_bytes();
        let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
        let ok = is_subdomain(domain)
            && (1..=63).contains(&bytes.len())
            && alnum(bytes.first())
            && alnum(bytes.last())
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b));
        if ok { Ok(()) } else { Err(malformed) }
    }
);

string_newtype!(
    /// A controller name (`status.ancestors[].controllerName`), such as
    /// `example.com/gateway-controller`: a lowercase subdomain, `/`, and a
    /// path of URI characters (`[A-Za-z0-9/-._~%!$&'()*+,;=:]`).
    ///
    /// Stricter than the API server (253 characters): at most 128, since
    /// status is written with the controller name as the server-side apply
    /// field manager, and the API server refuses longer ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use backend_tls_policy::name::ControllerName;
    ///
    /// assert!(ControllerName::try_from("example.com/gateway-controller").is_ok());
    /// assert!(ControllerName::try_from("gateway-controller").is_err());
    /// # Ok::<(), backend_tls_policy::name::NameError>(())
    /// ```
    ControllerName,
    |s| {
        check_len(s, 1, 128)?;
        let malformed = NameError::Malformed {
            expected: "a controller name such as example.com/gateway-controller",
        };
        let (domain, path) = s.split_once('/').ok_or(malformed.clone())?;
        let path_char = |b: &u8| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(b);
        let ok = is_subdomain(domain) && !path.is_empty() && path.as_bytes().iter().all(path_char);
        if ok { Ok(()) } else { Err(malformed) }
    }
);

impl DomainPrefixedName {
    /// The part before the `/`.
    pub fn domain(&self) -> &str {
        self.0.split_once('/').map_or("", |(domain, _)| domain)
    }

    /// The part after the `/`.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, name)| name)
    }
}

/// Checks the upstream group pattern: empty (the core group) or a lowercase
/// subdomain, at most 253 characters.
pub(crate) fn check_group(s: &str) -> Result<(), NameError> {
    check_len(s, 0, 253)?;
    if s.is_empty() || is_subdomain(s) {
        Ok(())
    } else {
        Err(NameError::Malformed { expected: "empty or a lowercase RFC 1123 subdomain" })
    }
}

/// Checks the upstream kind pattern `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`,
/// 1 to 63 characters.
pub(crate) fn check_kind(s: &str) -> Result<(), NameError> {
    check_len(s, 1, 63)?;
    let bytes = s.as_bytes();
    let ok = bytes[0].is_ascii_alphabetic()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    if ok { Ok(()) } else { Err(NameError::Malformed { expected: "a kind such as ConfigMap" }) }
}

/// Checks a namespace as the schema does: one RFC 1123 label of 1 to 63
/// characters.
pub(crate) fn check_namespace(s: &str) -> Result<(), NameError> {
    check_len(s, 1, 63)?;
    if is_label(s) { Ok(()) } else { Err(NameError::Malformed { expected: "an RFC 1123 label" }) }
}

/// Checks an object name as the schema does: 1 to 253 characters.
pub(crate) fn check_object_name(s: &str) -> Result<(), NameError> {
    check_len(s, 1, 253)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(input, valid as Hostname)`.
    const HOSTNAMES: &[(&str, bool)] = &[
        ("a", true),
        ("example.com", true),
        ("a-b.c-d.example", true),
        ("0.example", true),
        ("xn--bcher-kva.example", true),
        ("", false),
        ("Example.com", false),
        ("-a.example", false),
        ("a-.example", false),
        ("a..example", false),
        (".example", false),
        ("example.", false),
        ("*.example.com", false),
        ("a_b.example", false),
        ("bücher.example", false),
        ("10.0.0.1", false),
        ("10.0.0.1.example", true),
        ("1.2.3", false),
        ("a.0", false),
        ("a.0x1f", false),
        ("a.0x", false),
        ("0x1f.example", true),
        ("a.0xg", true),
        ("123", false),
    ];

    #[test]
    fn hostname_table() {
        for (input, valid) in HOSTNAMES {
            assert_eq!(Hostname::try_from(*input).is_ok(), *valid, "{input:?}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert_eq!(
            Hostname::try_from(long_label.as_str()),
            Err(NameError::LabelTooLong { label: "a".repeat(64) })
        );
        let max = [&"a".repeat(63), &"b".repeat(63), &"c".repeat(63), &"d".repeat(61)]
            .map(|s| s.as_str())
            .join(".");
        assert_eq!(max.len(), 253);
        assert!(Hostname::try_from(max.as_str()).is_ok());
        assert_eq!(
            Hostname::try_from(format!("{max}a")),
            Err(NameError::TooLong { max: 253, len: 254 })
        );
    }

    /// The invariant behind `Hostname::dns_name`'s `expect`.
    #[test]
    fn hostnames_are_dns_names() {
        for (input, _) in HOSTNAMES.iter().filter(|(_, valid)| *valid) {
            let hostname = Hostname::try_from(*input).unwrap();
            assert_eq!(hostname.server_name(), ServerName::try_from(*input).unwrap().to_owned());
        }
    }

    #[test]
    fn san_hostnames() {
        for (input, valid) in [
            ("*.example.com", true),
            ("example.com", true),
            ("10.0.0.1", false),
            ("*.example.123", false),
            ("a.0x1f", false),
            ("*", false),
            ("*.", false),
            ("a.*.example.com", false),
            ("**.example.com", false),
            ("*example.com", false),
            ("*.*.example.com", false),
        ] {
            assert_eq!(SanHostname::try_from(input).is_ok(), valid, "{input:?}");
        }
    }

    #[test]
    fn san_uris() {
        for (input, valid) in [
            ("spiffe://cluster.local/ns/a/sa/b", true),
            ("https://example.com", true),
            ("a://", true),
            ("spiffe://x y", true), // not end-anchored upstream: anything may follow
            ("urn:example:a", false),
            ("foo.example.com", false),
            ("://example.com", false),
            ("spiffe:/example.com", false),
            ("/spiffe://a", false),
            ("", false),
        ] {
            assert_eq!(SanUri::try_from(input).is_ok(), valid, "{input:?}");
        }
    }

    #[test]
    fn domain_prefixed_names() {
        for (input, valid) in [
            ("example.com/a", true),
            ("example.com/A.b_c-d", true),
            ("example/a", true),
            ("a", false),
            ("/a", false),
            ("example.com/", false),
            ("example.com/-a", false),
            ("example.com/a-", false),
            ("Example.com/a", false),
            ("example.com/a/b", false),
            ("in..va..lid./x", false),
        ] {
            assert_eq!(DomainPrefixedName::try_from(input).is_ok(), valid, "{input:?}");
        }
        let name63 = format!("example.com/{}", "a".repeat(63));
        assert!(DomainPrefixedName::try_from(name63.as_str()).is_ok());
        assert!(DomainPrefixedName::try_from(format!("{name63}a")).is_err());
    }

    #[test]
    fn groups_and_kinds() {
        assert!(check_group("").is_ok());
        assert!(check_group("multicluster.x-k8s.io").is_ok());
        assert!(check_group("Multicluster").is_err());
        assert!(check_kind("ConfigMap").is_ok());
        assert!(check_kind("Config-Map2").is_ok());
        assert!(check_kind("2Map").is_err());
        assert!(check_kind("Map-").is_err());
        assert!(check_kind("").is_err());
    }
}
