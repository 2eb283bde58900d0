//! Resolving one backend in clusters of growing size, against the way most
//! implementations look policies up: a scan over every policy (the
//! baseline, measured in the same run). Also: applying and deleting one
//! object, and rebuilding an index from scratch.
//!
//! ```text
//! cargo bench --bench resolve
//! ```

use std::hint::black_box;

use backend_tls_policy::{
    api::v1,
    grant::Referrer,
    index::{BackendRef, Index, ObjectKey, Outcome},
};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Service},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use serde_json::json;

const CA: &str = include_str!("../tests/fixtures/pki/ca.crt");

/// `n` of each: Services, policies, CA ConfigMaps and ReferenceGrants,
/// spread over `n / 10` namespaces.
struct Cluster {
    services: Vec<Service>,
    policies: Vec<v1::BackendTlsPolicy>,
    config_maps: Vec<ConfigMap>,
    grants: Vec<v1::ReferenceGrant>,
}

fn namespace(i: usize) -> String {
    format!("ns-{}", i % 1000)
}

fn cluster(n: usize) -> Cluster {
    let services = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"namespace": namespace(i), "name": format!("svc-{i}")},
                "spec": {"ports": [{"name": "https", "port": 443}, {"name": "admin", "port": 8443}]},
            }))
            .unwrap()
        })
        .collect();
    let policies = (0..n)
        .map(|i| {
            let mut target = json!({"group": "", "kind": "Service", "name": format!("svc-{i}")});
            if i % 2 == 0 {
                target["sectionName"] = "https".into();
            }
            let mut policy: v1::BackendTlsPolicy = serde_json::from_value(json!({
                "metadata": {"namespace": namespace(i), "name": format!("policy-{i}")},
                "spec": {
                    "targetRefs": [target],
                    "validation": {
                        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": format!("ca-{i}")}],
                        "hostname": format!("svc-{i}.example.com"),
                    },
                },
            }))
            .unwrap();
            policy.metadata.creation_timestamp =
                Some(Time(Timestamp::from_second(1_800_000_000 + i as i64).unwrap()));
            policy
        })
        .collect();
    let config_maps = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"namespace": namespace(i), "name": format!("ca-{i}")},
                // One CA shared by all, as trust-manager distributes it.
                "data": {"ca.crt": CA},
            }))
            .unwrap()
        })
        .collect();
    let grants = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"namespace": namespace(i), "name": format!("grant-{i}")},
                "spec": {
                    "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": format!("routes-{i}")}],
                    "to": [{"group": "", "kind": "Service", "name": format!("svc-{i}")}],
                },
            }))
            .unwrap()
        })
        .collect();
    Cluster { services, policies, config_maps, grants }
}

fn index_of(cluster: &Cluster) -> Index {
    let mut index = Index::default();
    cluster.services.iter().for_each(|o| index.apply(o));
    cluster.config_maps.iter().for_each(|o| index.apply(o));
    cluster.grants.iter().for_each(|o| index.apply(o));
    cluster.policies.iter().for_each(|o| index.apply(o));
    index
}

/// The baseline: scan every policy for ones targeting the Service (port
/// name first), keep the oldest.
fn scan<'a>(
    policies: &'a [v1::BackendTlsPolicy],
    namespace: &str,
    service: &str,
    port_name: &str,
) -> Option<&'a v1::BackendTlsPolicy> {
    let targets = |p: &v1::BackendTlsPolicy, section: Option<&str>| {
        p.metadata.namespace.as_deref() == Some(namespace)
            && p.spec.target_refs.iter().any(|t| {
                t.group.is_empty()
                    && t.kind == "Service"
                    && t.name == service
                    && t.section_name.as_deref() == section
            })
    };
    let oldest = |section| {
        policies
            .iter()
            .filter(|p| targets(p, section))
            .min_by_key(|p| (p.metadata.creation_timestamp.clone(), p.metadata.name.clone()))
    };
    oldest(Some(port_name)).or_else(|| oldest(None))
}

fn resolve(c: &mut Criterion) {
    let mut group = c.benchmark_group("resolve");
    for n in [100, 1_000, 10_000] {
        let cluster = cluster(n);
        let index = index_of(&cluster);
        // A Service in the middle, referenced from a granted namespace.
        let i = n / 2;
        let backend = BackendRef::service(
            Referrer::gateway_api("HTTPRoute", format!("routes-{i}")),
            namespace(i),
            format!("svc-{i}"),
            443,
        );
        assert!(
            matches!(index.resolve(&backend).outcome(), Outcome::Policy(p) if p.usable().is_ok())
        );
        assert!(scan(&cluster.policies, &namespace(i), &format!("svc-{i}"), "https").is_some());

        group.bench_with_input(BenchmarkId::new("index", n), &backend, |b, backend| {
            b.iter(|| index.resolve(black_box(backend)))
        });
        let (ns, svc) = (namespace(i), format!("svc-{i}"));
        group.bench_with_input(BenchmarkId::new("linear_scan_baseline", n), &n, |b, _| {
            b.iter(|| scan(black_box(&cluster.policies), &ns, &svc, "https"))
        });
    }
    group.finish();
}

fn churn(c: &mut Criterion) {
    let cluster = cluster(10_000);
    let mut index = index_of(&cluster);
    let mut extra = cluster.policies[0].clone();
    extra.metadata.name = Some("extra".into());
    let key = ObjectKey::new(namespace(0), "extra");
    c.bench_function("apply_then_delete_policy/10000", |b| {
        b.iter(|| {
            index.apply(black_box(&extra));
            index.delete::<v1::BackendTlsPolicy>(black_box(&key));
        })
    });
    let mut config_map = cluster.config_maps[0].clone();
    config_map.metadata.name = Some("extra".into());
    c.bench_function("apply_then_delete_config_map/10000", |b| {
        b.iter(|| {
            index.apply(black_box(&config_map));
            index.delete::<ConfigMap>(black_box(&key));
        })
    });
    // What `SharedIndex::track_ca_validity` computes after every change.
    c.bench_function("next_ca_validity_change/10000", |b| {
        b.iter(|| black_box(&index).next_ca_validity_change())
    });
}

fn rebuild(c: &mut Criterion) {
    // 10,000 objects: 2,500 of each kind.
    let cluster = cluster(2_500);
    let mut group = c.benchmark_group("rebuild");
    group.sample_size(10);
    group.bench_function("10000_objects", |b| b.iter(|| index_of(black_box(&cluster))));
    group.finish();
}

/// A relist of 10,000 policies that all name one CA ConfigMap (one
/// company CA): each re-applied policy leaves and rejoins the ConfigMap's
/// dependents.
fn relist_sharing_a_ca(c: &mut Criterion) {
    let cluster = cluster(10_000);
    let policies: Vec<v1::BackendTlsPolicy> = cluster
        .policies
        .iter()
        .map(|policy| {
            let mut policy = policy.clone();
            policy.metadata.namespace = Some(namespace(0));
            let refs = policy.spec.validation.ca_certificate_refs.as_mut().unwrap();
            refs[0].name = "shared-ca".into();
            policy
        })
        .collect();
    let mut index = index_of(&cluster);
    index.replace(policies.clone());
    let mut group = c.benchmark_group("relist");
    group.sample_size(10);
    group.bench_function("10000_policies_sharing_a_ca", |b| {
        b.iter_batched(
            || policies.clone(),
            |policies| index.replace(black_box(policies)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, resolve, churn, rebuild, relist_sharing_a_ca);
criterion_main!(benches);
