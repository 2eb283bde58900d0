//! Building a `ClientConfig` for a policy, against the floor measured in the
//! same run: parsing the same PEM into a `RootCertStore` and building a bare
//! rustls config with the stock WebPKI verifier. Also a cache hit.
//!
//! Our path has two halves: a CA object is parsed when it is applied to the
//! index (every block checked with x509-parser and webpki, validity
//! checked), and configurations are built from the index. Measured:
//!
//! - `build`: from an index that holds the parsed CA;
//! - `apply_new_ca_and_build`: a ConfigMap whose every certificate is new to
//!   the index, applied, then the config built;
//! - `apply_one_new_and_build`: a rotation, one of the certificates new;
//! - `apply_known_and_build`: a bundle the index holds already in another
//!   object (trust-manager updates its copy in every namespace), applied,
//!   then the config built;
//! - `apply_unchanged_and_build`: the ConfigMap applied again as it was (a
//!   watcher's relist), then the config built;
//! - `parsers_alone`: x509-parser and webpki reading the same certificates,
//!   already decoded, and nothing else: what `apply_new_ca_and_build` cannot
//!   do without (and `apply_one_new_and_build` for its new certificate);
//! - `floor_pem_alone`: the floor's PEM decoding on its own;
//! - `*/mozilla`: the same for Mozilla's TLS roots valid today;
//! - `tls_secret/apply`: a TLS Secret (a P-256 pair, as rcgen makes it)
//!   applied to an index, against `tls_secret/parse_pair`, reading its
//!   pair as a Gateway's reference does: the index reads a pair only then,
//!   since most TLS Secrets are no Gateway's client certificate.
//!
//! Both sides are timed alike: one iteration at a time, what they build
//! dropped outside the timing (`iter_batched`, `PerIteration`).
//!
//! ```text
//! cargo bench --bench client_config
//! ```

mod common;

use std::{hint::black_box, sync::Arc};

use backend_tls_policy::{
    index::Index,
    tls::{self, ClientCertificate, TlsCache, TlsParams},
};
use common::{
    applied, bare_config, bundle, ca_bundle, config_map, index_with, mozilla_roots, provider,
};
use criterion::{BatchSize, Bencher, BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rustls::{
    RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, pem::PemObject},
};
use serde_json::json;
use x509_parser::{certificate::X509CertificateParser, nom::Parser};

fn build(c: &mut Criterion) {
    let provider = provider();
    let mut group = c.benchmark_group("client_config");
    for n in [1, 150] {
        let (pem, _, _) = bundle(n);
        group.bench_with_input(BenchmarkId::new("bare_rustls_floor", n), &pem, |b, pem| {
            per_iteration(b, || bare_config(black_box(pem), &provider))
        });
        group.bench_with_input(BenchmarkId::new("floor_pem_alone", n), &pem, |b, pem| {
            b.iter(|| floor_pem_alone(black_box(pem)))
        });
        group.bench_with_input(BenchmarkId::new("parsers_alone", n), &ders(&pem), |b, ders| {
            per_iteration(b, || parsers_alone(black_box(ders)))
        });
        let index = index_with(&pem, json!(null));
        let ready = applied(&index);
        group.bench_with_input(BenchmarkId::new("build", n), &n, |b, _| {
            b.iter(|| {
                tls::client_config_with_provider(
                    black_box(&ready),
                    &TlsParams::default(),
                    provider.clone(),
                )
                .unwrap()
            })
        });
        // Each iteration starts from its own index (set-up not timed), so
        // the new certificates are new to it.
        let known = ca_bundle(n);
        let mut holding_known = index.clone();
        let mut copy = config_map(&known);
        copy.metadata.namespace = Some("copy".into());
        holding_known.apply(&copy);
        let rotations = [
            ("apply_new_ca_and_build", &index, ca_bundle(n)),
            ("apply_one_new_and_build", &index, one_replaced(&pem)),
            ("apply_known_and_build", &holding_known, known),
            ("apply_unchanged_and_build", &index, pem.clone()),
        ];
        for (name, index, rotated) in rotations {
            if n == 1 && name == "apply_one_new_and_build" {
                continue;
            }
            let cm = config_map(&rotated);
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                apply_and_build(b, index, &cm, &provider)
            });
        }
    }
    // A real trust bundle: RSA and ECDSA roots with full names and the
    // usual extensions. The floor's base64 grows with certificates' size,
    // the parsers' work with their structure.
    let (pem, _, _) = bundle(1);
    let index = index_with(&pem, json!(null));
    // (Named without the count, which falls as roots expire.)
    let roots = mozilla_roots();
    group.bench_with_input(BenchmarkId::new("bare_rustls_floor", "mozilla"), &roots, |b, pem| {
        per_iteration(b, || bare_config(black_box(pem), &provider))
    });
    group.bench_with_input(BenchmarkId::new("floor_pem_alone", "mozilla"), &roots, |b, pem| {
        b.iter(|| floor_pem_alone(black_box(pem)))
    });
    group.bench_with_input(
        BenchmarkId::new("parsers_alone", "mozilla"),
        &ders(&roots),
        |b, ders| per_iteration(b, || parsers_alone(black_box(ders))),
    );
    let cm = config_map(&roots);
    group.bench_function(BenchmarkId::new("apply_new_ca_and_build", "mozilla"), |b| {
        apply_and_build(b, &index, &cm, &provider)
    });
    let applied = applied(&index);
    let cache = TlsCache::default();
    let params = TlsParams::default();
    cache.client_config_with_provider(&applied, &params, provider.clone()).unwrap();
    group.bench_function("cache_hit", |b| {
        b.iter(|| {
            cache
                .client_config_with_provider(black_box(&applied), &params, provider.clone())
                .unwrap()
        })
    });
    group.finish();
}

/// `cm` applied to a copy of `index` (set-up not timed), then the config
/// built.
fn apply_and_build(
    b: &mut Bencher<'_>,
    index: &Index,
    cm: &ConfigMap,
    provider: &Arc<CryptoProvider>,
) {
    b.iter_batched(
        || index.clone(),
        |mut index| {
            index.apply(black_box(cm));
            let params = TlsParams::default();
            let built =
                tls::client_config_with_provider(&applied(&index), &params, provider.clone());
            (built.unwrap(), index)
        },
        BatchSize::PerIteration,
    )
}

/// `routine` timed as `apply_and_build` times ours: one iteration at a
/// time, its result dropped outside the timing.
fn per_iteration<T>(b: &mut Bencher<'_>, mut routine: impl FnMut() -> T) {
    b.iter_batched(|| (), |()| routine(), BatchSize::PerIteration)
}

/// The floor's PEM decoding, every block kept.
fn floor_pem_alone(pem: &str) {
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        black_box(der.unwrap());
    }
}

/// The certificates of `pem`, decoded.
fn ders(pem: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).map(|der| der.unwrap().to_vec()).collect()
}

/// What any reading that keeps the crate's contract does at least:
/// x509-parser and webpki each parse every certificate (base64 aside).
fn parsers_alone(ders: &[Vec<u8>]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for der in ders {
        let parsed =
            X509CertificateParser::new().with_deep_parse_extensions(false).parse(der).unwrap();
        black_box(parsed);
        roots.add(CertificateDer::from(der.as_slice())).unwrap();
    }
    roots
}

/// `pem` with its first certificate replaced by a new one.
fn one_replaced(pem: &str) -> String {
    let rest: String = pem.split_inclusive("-----END CERTIFICATE-----\n").skip(1).collect();
    ca_bundle(1) + &rest
}

/// A TLS Secret applied, against reading its pair (what applying one cost
/// when the index read every pair).
fn tls_secrets(c: &mut Criterion) {
    let mut group = c.benchmark_group("tls_secret");
    let pair = rcgen::generate_simple_self_signed(vec!["gw.example".into()]).unwrap();
    let (crt, key) = (pair.cert.pem(), pair.signing_key.serialize_pem());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"namespace": "infra", "name": "client"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key},
    }))
    .unwrap();
    group.bench_function("apply", |b| {
        b.iter_batched(
            Index::default,
            |mut index| {
                index.apply(black_box(&secret));
                index
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("parse_pair", |b| {
        b.iter(|| {
            ClientCertificate::from_pem(Some(black_box(crt.as_bytes())), Some(key.as_bytes()))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, build, tls_secrets);
criterion_main!(benches);
