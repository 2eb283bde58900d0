//! Any bytes as a `ca.crt`: never a panic, an accepted bundle is never
//! empty, and it holds the certificates rustls' own PEM reader finds there.
#![no_main]

use backend_tls_policy::tls::ca::parse_bundle;
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::{CertificateDer, UnixTime, pem::PemObject};

fuzz_target!(|data: &[u8]| {
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
    if let Ok(certificates) = parse_bundle(data, now) {
        assert!(!certificates.is_empty());
        let ours: Vec<&[u8]> = certificates.iter().map(|c| c.der().as_ref()).collect();
        let theirs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(data)
            .collect::<Result<_, _>>()
            .expect("rustls reads a bundle this crate accepts");
        assert_eq!(ours, theirs.iter().map(|c| c.as_ref()).collect::<Vec<_>>());
    }
});
