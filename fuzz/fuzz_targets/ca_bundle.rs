//! Any bytes as a `ca.crt`: never a panic, and an accepted bundle is never
//! empty.
#![no_main]

use backend_tls_policy::tls::ca::parse_bundle;
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::UnixTime;

fuzz_target!(|data: &[u8]| {
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
    if let Ok(certificates) = parse_bundle(data, now) {
        assert!(!certificates.is_empty());
    }
});
