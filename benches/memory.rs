//! Heap held by an index of 10,000 policies (and 10,000 each of Services and
//! CA ConfigMaps, which share one certificate), counted by a global
//! allocator; then 10,000 CA ConfigMaps that do not share their certificate;
//! then trust-manager's shape, one 150-certificate bundle in 1,000 objects;
//! then 10,000 TLS Secrets (cert-manager's, P-256), no Gateway's client
//! certificate.
//!
//! ```text
//! cargo bench --bench memory
//! ```

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicIsize, Ordering},
};

use backend_tls_policy::{Index, api::v1};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde_json::json;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let ca = include_str!("../tests/fixtures/pki/ca.crt");
    let n = 10_000;
    let ns = |i: usize| format!("ns-{}", i % 1000);
    let policies: Vec<v1::BackendTlsPolicy> = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"namespace": ns(i), "name": format!("policy-{i}"), "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {
                    "targetRefs": [{"group": "", "kind": "Service", "name": format!("svc-{i}"), "sectionName": "https"}],
                    "validation": {
                        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": format!("ca-{i}")}],
                        "hostname": format!("svc-{i}.example.com"),
                    },
                },
            }))
            .unwrap()
        })
        .collect();
    let services: Vec<Service> = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"namespace": ns(i), "name": format!("svc-{i}")},
                "spec": {"ports": [{"name": "https", "port": 443}]},
            }))
            .unwrap()
        })
        .collect();
    let config_map = |i: usize, pem: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"namespace": ns(i), "name": format!("ca-{i}")}, "data": {"ca.crt": pem}}))
            .unwrap()
    };
    let config_maps: Vec<ConfigMap> = (0..n).map(|i| config_map(i, ca)).collect();

    let before = LIVE.load(Ordering::Relaxed);
    let mut index = Index::default();
    services.iter().for_each(|o| index.apply(o));
    let services_bytes = LIVE.load(Ordering::Relaxed) - before;
    config_maps.iter().for_each(|o| index.apply(o));
    let with_cas = LIVE.load(Ordering::Relaxed) - before;
    policies.iter().for_each(|o| index.apply(o));
    let total = LIVE.load(Ordering::Relaxed) - before;
    let mib = |bytes: isize| bytes as f64 / (1 << 20) as f64;
    println!("index of {n} Services: {:.1} MiB", mib(services_bytes));
    println!(
        "+ {n} CA ConfigMaps ({} bytes of PEM each): {:.1} MiB",
        ca.len(),
        mib(with_cas - services_bytes)
    );
    println!(
        "+ {n} policies: {:.1} MiB ({:.1} KiB per policy)",
        mib(total - with_cas),
        (total - with_cas) as f64 / n as f64 / 1024.0
    );
    println!("total: {:.1} MiB", mib(total));
    drop(index);

    // The ConfigMaps above share one certificate, which the index holds
    // once; here each has its own.
    let own: Vec<ConfigMap> = (0..n)
        .map(|i| {
            let mut params =
                rcgen::CertificateParams::new(vec![format!("ca-{i}.example")]).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            config_map(i, &params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem())
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut index = Index::default();
    own.iter().for_each(|o| index.apply(o));
    println!(
        "{n} CA ConfigMaps, each with its own certificate: {:.1} MiB",
        mib(LIVE.load(Ordering::Relaxed) - before)
    );
    drop(index);

    // trust-manager's shape: one 150-certificate bundle copied into 1,000
    // namespaces, one policy in each naming its copy.
    let bundle: String =
        own[..150].iter().map(|cm| cm.data.as_ref().unwrap()["ca.crt"].as_str()).collect();
    let m = 1000;
    let before = LIVE.load(Ordering::Relaxed);
    let mut index = Index::default();
    (0..m).for_each(|i| index.apply(&config_map(i, &bundle)));
    let cas = LIVE.load(Ordering::Relaxed) - before;
    policies[..m].iter().for_each(|o| index.apply(o));
    println!(
        "{m} copies of a 150-certificate bundle: {:.1} MiB; + {m} policies naming them: {:.1} MiB",
        mib(cas),
        mib(LIVE.load(Ordering::Relaxed) - before - cas)
    );
    drop(index);

    // Every TLS Secret of a cluster, when the controller watches them all:
    // the index keeps their text and reads none (no Gateway asks).
    let secrets: Vec<Secret> = (0..n)
        .map(|i| {
            let pair = rcgen::generate_simple_self_signed(vec![format!("svc-{i}.example")]).unwrap();
            serde_json::from_value(json!({
                "metadata": {"namespace": ns(i), "name": format!("tls-{i}")},
                "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": pair.cert.pem(), "tls.key": pair.signing_key.serialize_pem()},
            }))
            .unwrap()
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut index = Index::default();
    secrets.iter().for_each(|o| index.apply(o));
    let unread = LIVE.load(Ordering::Relaxed) - before;
    // Then as if a Gateway named each one.
    for i in 0..n {
        let reference =
            v1::SecretObjectReference { name: format!("tls-{i}"), ..Default::default() };
        index.client_certificate_from_ref(&ns(i), &reference).unwrap();
    }
    println!(
        "{n} TLS Secrets: {:.1} MiB; with every pair read: {:.1} MiB",
        mib(unread),
        mib(LIVE.load(Ordering::Relaxed) - before)
    );
}
