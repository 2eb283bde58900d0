//! Property tests: the hand-written name checks against the upstream
//! schema's own regular expressions (taken from the generated CRD, which the
//! parity test keeps equal to upstream), and CA parsing on arbitrary bytes.

use backend_tls_policy::{
    crd,
    name::{ControllerName, Hostname, SanHostname, SanUri, SectionName},
    tls::ca::parse_bundle,
};
use proptest::prelude::*;
use regex::Regex;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use serde_json::Value;

/// The `pattern` of a property under `spec` (or of one under `status`, the
/// path starting there), from the generated v1 schema,
/// compiled once per path.
fn pattern(path: &[&str]) -> Regex {
    use std::{collections::HashMap, sync::Mutex};
    static CACHE: Mutex<Option<HashMap<String, Regex>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap();
    cache.get_or_insert_default().entry(path.join(".")).or_insert_with(|| compile(path)).clone()
}

fn compile(path: &[&str]) -> Regex {
    let crd = serde_json::to_value(crd::backend_tls_policies()).unwrap();
    let mut node: &Value = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let under_spec = [&["spec"][..], path].concat();
    let path = if path[0] == "status" { path } else { &under_spec };
    for step in path {
        node = match *step {
            "[]" => &node["items"],
            name => &node["properties"][name],
        };
    }
    // Go's RE2 and the regex crate agree on these patterns' syntax.
    Regex::new(node["pattern"].as_str().expect("a pattern")).unwrap()
}

/// Strings over the characters that matter for names, short and long.
fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.*-]{0,12}",
        "[a-zA-Z0-9._*:/?#-]{0,20}",
        "([a-z0-9-]{1,70}\\.){0,4}[a-z0-9-]{0,70}",
        "[a-z]{1,10}://[a-z./]{0,20}",
    ]
}

/// The extras, as rustls' own name type has them (labels ≤ 63, no numeric
/// last label): a hostname rustls refuses could never be sent or matched.
fn rustls_takes(s: &str) -> bool {
    rustls::pki_types::DnsName::try_from(s).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `Hostname` = the upstream pattern and length, plus this crate's two
    /// documented extras (labels ≤ 63, no numeric last label).
    #[test]
    fn hostname_matches_the_schema_plus_documented_extras(s in name_like()) {
        let schema = pattern(&["validation", "hostname"]).is_match(&s) && (1..=253).contains(&s.len());
        let expected = schema && rustls_takes(&s);
        let hostname = Hostname::try_from(s.as_str());
        prop_assert_eq!(hostname.is_ok(), expected, "{:?}", s);
        if let Ok(hostname) = hostname {
            // The SNI is the name itself (and making it does not panic).
            prop_assert_eq!(hostname.server_name(), ServerName::try_from(s).unwrap());
        }
    }

    /// `SanHostname` likewise (labels ≤ 63, no numeric last label).
    #[test]
    fn san_hostname_matches_the_schema_plus_documented_extras(s in name_like()) {
        let schema = pattern(&["validation", "subjectAltNames", "[]", "hostname"]).is_match(&s)
            && (1..=253).contains(&s.len());
        let expected = schema && rustls_takes(s.strip_prefix("*.").unwrap_or(&s));
        prop_assert_eq!(SanHostname::try_from(s.as_str()).is_ok(), expected, "{:?}", s);
    }

    #[test]
    fn san_uri_matches_the_schema(s in name_like()) {
        let schema = pattern(&["validation", "subjectAltNames", "[]", "uri"]).is_match(&s)
            && (1..=253).contains(&s.chars().count());
        prop_assert_eq!(SanUri::try_from(s.as_str()).is_ok(), schema, "{:?}", s);
    }

    /// `ControllerName` = the status schema's pattern, at most 128
    /// characters (the field manager's limit) instead of 253.
    #[test]
    fn controller_name_matches_the_schema_within_128(
        s in prop_oneof![name_like(), "[a-z0-9.-]{0,12}/[A-Za-z0-9/._~%!$&'()*+,;=:#? -]{0,140}"],
    ) {
        let schema = pattern(&["status", "ancestors", "[]", "controllerName"]).is_match(&s)
            && (1..=128).contains(&s.len());
        prop_assert_eq!(ControllerName::try_from(s.as_str()).is_ok(), schema, "{:?}", s);
    }

    #[test]
    fn section_name_matches_the_schema(s in name_like()) {
        let schema = pattern(&["targetRefs", "[]", "sectionName"]).is_match(&s) && (1..=253).contains(&s.len());
        prop_assert_eq!(SectionName::try_from(s.as_str()).is_ok(), schema, "{:?}", s);
    }

    /// Arbitrary bytes, and PEM-shaped text with arbitrary bodies, never
    /// panic the CA parser; what it accepts holds a certificate.
    #[test]
    fn ca_parsing_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        body in "[A-Za-z0-9+/=\n]{0,400}",
        label in prop::sample::select(vec!["CERTIFICATE", "PRIVATE KEY", "X509 CRL", "FOO"]),
    ) {
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
        for input in [bytes, format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n").into_bytes()] {
            if let Ok(certificates) = parse_bundle(&input, now) {
                prop_assert!(!certificates.is_empty());
            }
        }
    }

    /// Real certificates laid out as tools write them (explanatory text,
    /// CRLF, other line lengths, blank lines): the bundle reader sees the
    /// same certificates, in order, as rustls' own PEM reader.
    #[test]
    fn ca_bundles_read_as_rustls_reads_them(
        layout in prop::collection::vec((0usize..3, "[a-z #:]{0,20}", any::<bool>(), 1usize..=76), 1..5),
    ) {
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
        let mut bundle = String::new();
        for (i, (which, text, crlf, width)) in layout.iter().enumerate() {
            let eol = if *crlf { "\r\n" } else { "\n" };
            if i % 2 == 1 {
                bundle.push_str(&format!("{text}{eol}"));
            }
            bundle.push_str(&relaid(&CERTIFICATES[*which], *width, eol));
        }
        let ours: Vec<Vec<u8>> = parse_bundle(bundle.as_bytes(), now)
            .unwrap()
            .iter()
            .map(|c| c.der().to_vec())
            .collect();
        let theirs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(bundle.as_bytes())
            .map(|c| c.unwrap().to_vec())
            .collect();
        prop_assert_eq!(ours, theirs);
    }
}

static CERTIFICATES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (0..3)
        .map(|i| {
            rcgen::generate_simple_self_signed(vec![format!("ca-{i}.example")]).unwrap().cert.pem()
        })
        .collect()
});

/// A PEM certificate with its base64 in lines of `width` and `eol` endings.
fn relaid(pem: &str, width: usize, eol: &str) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let lines: Vec<&str> =
        body.as_bytes().chunks(width).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!(
        "-----BEGIN CERTIFICATE-----{eol}{}{eol}-----END CERTIFICATE-----{eol}",
        lines.join(eol)
    )
}
