//! Any string as every kind of name: never a panic, and every accepted
//! `Hostname` is a DNS name rustls accepts (the invariant behind
//! `Hostname::server_name`).
#![no_main]

use backend_tls_policy::name::{DomainPrefixedName, Hostname, SanHostname, SanUri, SectionName};
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::ServerName;

fuzz_target!(|input: &str| {
    if let Ok(hostname) = Hostname::try_from(input) {
        assert_eq!(hostname.server_name(), ServerName::try_from(input).unwrap().to_owned());
    }
    let _ = SanHostname::try_from(input);
    let _ = SanUri::try_from(input);
    let _ = SectionName::try_from(input);
    if let Ok(name) = DomainPrefixedName::try_from(input) {
        assert_eq!(format!("{}/{}", name.domain(), name.name()), input);
    }
});
