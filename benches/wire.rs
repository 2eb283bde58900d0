//! Decoding a `BackendTLSPolicy` as a kube watcher does, against the cost of
//! merely parsing the same JSON into an untyped value (the baseline, measured
//! in the same run).

use backend_tls_policy::api::v1::BackendTlsPolicy;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const POLICY: &str = r#"{
  "apiVersion": "gateway.networking.k8s.io/v1",
  "kind": "BackendTLSPolicy",
  "metadata": {"name": "shop", "namespace": "shop", "generation": 3,
               "creationTimestamp": "2026-11-01T10:00:00Z", "uid": "0b3c4d5e"},
  "spec": {
    "targetRefs": [{"group": "", "kind": "Service", "name": "shop", "sectionName": "https"}],
    "validation": {
      "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "shop-ca"}],
      "hostname": "shop.example.com",
      "subjectAltNames": [{"type": "URI", "uri": "spiffe://cluster.local/ns/shop/sa/shop"}]
    }
  },
  "status": {"ancestors": [{"ancestorRef": {"name": "edge", "namespace": "infra"},
    "controllerName": "example.com/gateway",
    "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                    "observedGeneration": 3, "lastTransitionTime": "2026-11-01T10:00:00Z"}]}]}
}"#;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_policy");
    group.bench_function("untyped_value_baseline", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(POLICY)).unwrap())
    });
    group.bench_function("backend_tls_policy", |b| {
        b.iter(|| serde_json::from_str::<BackendTlsPolicy>(black_box(POLICY)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
