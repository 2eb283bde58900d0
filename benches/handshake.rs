//! Full in-memory handshakes with our configurations against the same
//! handshake with a stock rustls configuration (the WebPKI verifier over
//! the same roots), in the same run. The server neither stores sessions
//! nor sends tickets, so every handshake is a full one and the client
//! verifies the certificate each time (checked before timing).
//!
//! ```text
//! cargo bench --bench handshake
//! ```

mod common;

use std::sync::Arc;

use backend_tls_policy::tls::{self, TlsParams};
use common::{applied, bare_config, bundle, index_with, provider};
use criterion::{Criterion, criterion_group, criterion_main};
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection,
    pki_types::ServerName, server::NoServerSessionStorage,
};
use serde_json::json;

/// A handshake in memory, no sockets; what kind it was.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Option<HandshakeKind> {
    let name = ServerName::try_from("abc.example.com").unwrap();
    let mut client = ClientConnection::new(client.clone(), name).unwrap();
    let mut server = ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::new();
    while client.is_handshaking() || server.is_handshaking() {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets().unwrap();
    }
    client.handshake_kind()
}

fn handshakes(c: &mut Criterion) {
    let provider = provider();
    let (pem, chain, key) = bundle(1);
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    // No resumption: a resumed handshake would not verify anything.
    server.session_storage = Arc::new(NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let server = Arc::new(server);
    let stock = bare_config(&pem, &provider);
    let hostname_mode = tls::client_config_with_provider(
        &applied(&index_with(&pem, json!(null))),
        &TlsParams::default(),
        provider.clone(),
    )
    .unwrap()
    .config;
    let sans = json!([{"type": "URI", "uri": "spiffe://abc.example.com/id"}]);
    let san_mode = tls::client_config_with_provider(
        &applied(&index_with(&pem, sans)),
        &TlsParams::default(),
        provider,
    )
    .unwrap()
    .config;
    for config in [&stock, &hostname_mode, &san_mode] {
        for _ in 0..3 {
            assert_eq!(handshake(config, &server), Some(HandshakeKind::Full));
        }
    }
    let mut group = c.benchmark_group("handshake");
    group.bench_function("stock_rustls_baseline", |b| b.iter(|| handshake(&stock, &server)));
    group.bench_function("hostname_mode", |b| b.iter(|| handshake(&hostname_mode, &server)));
    group.bench_function("subject_alt_names_mode", |b| b.iter(|| handshake(&san_mode, &server)));
    group.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
