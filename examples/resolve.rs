//! The main job, offline: which BackendTLSPolicy applies to a backend, what
//! every policy's status would be, and — with `--connect` — whether a real
//! TLS handshake with the resulting configuration succeeds.
//!
//! ```text
//! cargo run --example resolve -- --demo
//! cargo run --example resolve -- --manifests PATH [--manifests PATH ...] \
//!     --service NAMESPACE/NAME --port NUMBER \
//!     [--from GROUP/KIND/NAMESPACE] [--gateway NAMESPACE/NAME] \
//!     [--options-domain DOMAIN] [--connect HOST:PORT] [--output text|json]
//! ```
//!
//! Exit codes: 0 resolved (and, with `--connect`, the handshake and request
//! succeeded) or no policy applies; 1 connection, handshake or verification
//! failed; 2 usage or unreadable input; 3 a policy applies but cannot be
//! satisfied (the caller must answer 5xx); 4 reference not permitted.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use backend_tls_policy::{
    Index,
    api::v1::Gateway,
    grant::Referrer,
    index::{BackendRef, ObjectKey, Outcome},
    policy::SubjectAltName,
    tls::{self, BackendTls, ClientCertificateError, TlsParams},
};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[path = "common/manifests.rs"]
mod manifests;

const USAGE: &str = "usage: resolve --demo | --manifests PATH [--manifests PATH ...] \
--service NAMESPACE/NAME --port NUMBER [--from GROUP/KIND/NAMESPACE] [--gateway NAMESPACE/NAME] \
[--options-domain DOMAIN] [--connect HOST:PORT] [--output text|json]";

#[derive(Default)]
struct Args {
    manifests: Vec<PathBuf>,
    service: Option<ObjectKey>,
    port: Option<i32>,
    from: Option<Referrer>,
    gateway: Option<ObjectKey>,
    options_domain: Option<String>,
    connect: Option<String>,
    json: bool,
    demo: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--manifests" => args.manifests.push(value()?.into()),
            "--service" => args.service = Some(object_key(&value()?)?),
            "--port" => {
                let port = value()?.parse::<u16>().ok().filter(|p| *p > 0);
                let port = port.ok_or("--port takes a port number (1 to 65535)")?;
                args.port = Some(port.into());
            }
            "--from" => {
                let v = value()?;
                let parts: Vec<_> = v.split('/').collect();
                // The group may be empty (the core group); kind and namespace not.
                let [group, kind, namespace] = parts[..] else {
                    return Err(format!("--from {v:?}: expected GROUP/KIND/NAMESPACE"));
                };
                if kind.is_empty() || namespace.is_empty() {
                    return Err(format!("--from {v:?}: expected GROUP/KIND/NAMESPACE"));
                }
                args.from = Some(Referrer {
                    group: group.into(),
                    kind: kind.into(),
                    namespace: namespace.into(),
                });
            }
            "--gateway" => args.gateway = Some(object_key(&value()?)?),
            "--options-domain" => args.options_domain = Some(value()?),
            "--connect" => args.connect = Some(value()?),
            "--output" => {
                args.json = match value()?.as_str() {
                    "json" => true,
                    "text" => false,
                    other => return Err(format!("--output {other:?}: expected text or json")),
                }
            }
            "--demo" => args.demo = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn object_key(value: &str) -> Result<ObjectKey, String> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(ObjectKey::new(ns, name)),
        _ => Err(format!("{value:?}: expected NAMESPACE/NAME")),
    }
}

struct Report {
    json: Value,
    text: Vec<String>,
    exit: u8,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("resolve: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.demo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        if args.manifests.is_empty() {
            args.manifests.push(root.join("examples/manifests"));
        }
        args.service.get_or_insert(ObjectKey::new("shop", "shop"));
        args.port.get_or_insert(443);
        match demo_backend(root).await {
            Ok(addr) => {
                eprintln!("resolve: demo backend for shop.example.com listening on {addr}");
                args.connect = Some(addr.to_string());
            }
            Err(e) => {
                eprintln!("resolve: cannot start the demo backend: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(service), Some(port)) = (args.service.clone(), args.port) else {
        eprintln!("resolve: --service and --port are required\n{USAGE}");
        return ExitCode::from(2);
    };
    if args.manifests.is_empty() {
        eprintln!("resolve: --manifests is required\n{USAGE}");
        return ExitCode::from(2);
    }
    let mut index = Index::default();
    if let Err(e) = index.set_options_domain(args.options_domain.as_deref()) {
        eprintln!("resolve: --options-domain: {e}");
        return ExitCode::from(2);
    }
    let gateways = match manifests::read(&args.manifests)
        .and_then(|docs| manifests::load(&mut index, docs, |_, _| true))
    {
        Ok(gateways) => gateways,
        Err(message) => {
            eprintln!("resolve: {message}");
            return ExitCode::from(2);
        }
    };
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| Referrer::gateway_api("HTTPRoute", service.namespace.clone()));
    let backend = BackendRef::service(from, service.namespace.clone(), service.name.clone(), port);
    let report = match run(&index, &gateways, &backend, &args).await {
        Ok(report) => report,
        Err(message) => {
            eprintln!("resolve: {message}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json).expect("JSON values serialize"));
    } else {
        println!("{}", report.text.join("\n"));
    }
    ExitCode::from(report.exit)
}

async fn run(
    index: &Index,
    gateways: &[Gateway],
    backend: &BackendRef,
    args: &Args,
) -> Result<Report, String> {
    let gateway = match &args.gateway {
        None => None,
        Some(key) => Some(
            gateways
                .iter()
                .rfind(|g| {
                    g.metadata.namespace.as_deref() == Some(&key.namespace)
                        && g.metadata.name.as_deref() == Some(&key.name)
                })
                .map(|gateway| (key, gateway))
                .ok_or(format!("Gateway {key} is not in the manifests"))?,
        ),
    };
    let resolution = index.resolve(backend);
    let mut text = vec![resolution.explain(backend).to_string()];
    let mut conditions = serde_json::Map::new();
    text.push("conditions:".into());
    for key in index.policy_keys() {
        let c = index.policy_conditions(&key).expect("listed policies exist");
        let mut entries = Vec::new();
        for (type_, state) in [("Accepted", &c.accepted), ("ResolvedRefs", &c.resolved_refs)] {
            let status = if state.status { "True" } else { "False" };
            text.push(format!("  {key}: {type_}={status} ({}) {}", state.reason, state.message));
            entries.push(json!({"type": type_, "status": status, "reason": state.reason.as_str(), "message": state.message}));
        }
        conditions.insert(key.to_string(), entries.into());
    }
    let mut json = json!({"policy": null, "sni": null, "verification": null, "conditions": conditions, "handshake": null});
    let report = |json, text, exit| Ok(Report { json, text, exit });

    let applied = match resolution.outcome() {
        Outcome::RefNotPermitted => return report(json, text, 4),
        Outcome::BackendNotFound | Outcome::PortNotFound => {
            return Err(format!("{backend}: no such Service port in the manifests"));
        }
        Outcome::NoPolicy => {
            if args.connect.is_some() {
                text.push("handshake: not attempted, no BackendTLSPolicy asks for TLS".into());
            }
            return report(json, text, 0);
        }
        Outcome::Policy(applied) => applied,
        other => return Err(format!("unexpected outcome {other:?}")),
    };
    json["policy"] = applied.policy_key().to_string().into();

    let mut params = TlsParams::default();
    if let Some((key, gateway)) = gateway {
        match index.client_certificate(gateway) {
            Ok(certificate) => params.client_certificate = Ok(certificate),
            Err(error) => {
                text.push(format!(
                    "Gateway {key}: ResolvedRefs=False ({}) {error}",
                    error.reason()
                ));
                let exit = match error {
                    ClientCertificateError::RefNotPermitted { .. } => 4,
                    _ => 3,
                };
                return report(json, text, exit);
            }
        }
    }
    let tls = match tls::client_config(applied, &params) {
        Ok(tls) => tls,
        Err(error) => {
            text.push(format!("TLS: {error}; connections must fail (HTTP 5xx)"));
            json["error"] = error.to_string().into();
            return report(json, text, 3);
        }
    };
    let policy = applied.usable().expect("a config was built");
    let sni = match &tls.server_name {
        ServerName::DnsName(name) => name.as_ref().to_owned(),
        other => format!("{other:?}"),
    };
    let (mode, names): (&str, Vec<String>) = if policy.subject_alt_names().is_empty() {
        ("hostname", vec![sni.clone()])
    } else {
        let names = policy.subject_alt_names().iter().map(|san| match san {
            SubjectAltName::Hostname(h) => h.to_string(),
            SubjectAltName::Uri(u) => u.to_string(),
            _ => "?".into(),
        });
        ("subjectAltNames", names.collect())
    };
    text.push(format!("TLS: SNI {sni}; verify {mode} {}", names.join(", ")));
    json["sni"] = sni.clone().into();
    json["verification"] = json!({"mode": mode, "names": names});

    let Some(address) = &args.connect else { return report(json, text, 0) };
    match connect(address, &tls, &sni).await {
        Ok((status, code)) => {
            text.push(format!("handshake: ok; {status}"));
            json["handshake"] = json!({"ok": true, "status": code});
            report(json, text, 0)
        }
        Err(error) => {
            text.push(format!("handshake: failed: {error}"));
            json["handshake"] = json!({"ok": false, "error": error});
            report(json, text, 1)
        }
    }
}

/// Dials `address`, completes the handshake, sends `GET /` and returns the
/// status line and its code.
async fn connect(address: &str, tls: &BackendTls, host: &str) -> Result<(String, u16), String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect {address}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let mut stream =
            connector.connect(tls.server_name.clone(), tcp).await.map_err(|e| e.to_string())?;
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        // The status line is all that is read; a server rejecting the
        // client certificate after a TLS 1.3 handshake says so here.
        let mut line = String::new();
        match BufReader::new(stream).read_line(&mut line).await {
            Ok(0) => return Err("no HTTP response".to_owned()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the response: {e}")),
        }
        let line = line.trim_end().to_owned();
        let code = match line.split(' ').collect::<Vec<_>>()[..] {
            [version, code, ..] if version.starts_with("HTTP/1.") && code.len() == 3 => {
                code.parse::<u16>().ok()
            }
            _ => None,
        };
        code.map(|code| (line.clone(), code)).ok_or(format!("not an HTTP/1 status line: {line:?}"))
    };
    tokio::time::timeout(Duration::from_secs(10), work).await.map_err(|_| "timed out".to_owned())?
}

/// A local TLS backend serving `shop.example.com`'s test certificate, for
/// `--demo`.
async fn demo_backend(root: &Path) -> Result<std::net::SocketAddr, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let pki = root.join("tests/fixtures/pki");
    let chain = CertificateDer::pem_file_iter(pki.join("shop.crt"))
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{e:?}"))?;
    let key = PrivateKeyDer::from_pem_file(pki.join("shop.key")).map_err(|e| format!("{e:?}"))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0; 1024];
                    let _ = tls.read(&mut buf).await;
                    let body = "hello from shop.example.com\n";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Ok(addr)
}
