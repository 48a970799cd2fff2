//! The webhook delivers to an `https://` receiver on 127.0.0.1 whose certificate is
//! signed by a CA made here (rcgen): with that CA given as the extra CA file, every
//! alert arrives, byte for byte; without it, the receiver is not trusted and the alert
//! is counted as failed after the retries. Loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use boxwatch_outputs::webhook::{Config, Webhook};
use boxwatch_outputs::{AlertOut, AlertSubscriber, StatKind};
use boxwatch_rules::{Alert, Priority};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Tls {
    dir: PathBuf,
    ca_pem: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it.
fn tls() -> Tls {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "boxwatch test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();

    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("bw-webhook-tls-{}-{nonce:x}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    let server =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
    Tls { dir, ca_pem, server: Arc::new(server) }
}

/// An HTTPS receiver on 127.0.0.1: each request's (request line, body) goes to the channel.
fn receiver(cfg: Arc<rustls::ServerConfig>) -> (String, Receiver<(String, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/falco", l.local_addr().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let (cfg, tx) = (Arc::clone(&cfg), tx.clone());
            std::thread::spawn(move || {
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                // Several requests may come over one kept-alive connection.
                loop {
                    let mut r = BufReader::new(&mut tls);
                    let mut first = String::new();
                    if r.read_line(&mut first).unwrap_or(0) == 0 {
                        return; // closed, or the handshake failed (untrusted)
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    drop(r);
                    let _ = tx.send((first.trim_end().to_string(), String::from_utf8(body).unwrap()));
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = tls.flush();
                }
            });
        }
    });
    (url, rx)
}

fn alert(i: usize) -> Alert {
    let mut f = std::collections::BTreeMap::new();
    f.insert("boxwatch.test.seq", serde_json::json!(i));
    Alert {
        time: format!("2026-01-01T00:00:00.{i:09}Z"),
        rule: format!("TLS test {i}"),
        priority: Priority::Warning,
        output: format!("alert {i} (file=/etc/x\u{1b}[31m)"),
        output_fields: f,
        tags: vec!["test".into()],
        source: "syscall",
        hostname: "node-1".into(),
    }
}

fn stat(w: &Webhook, name: &str) -> u64 {
    w.stats().iter().find(|s| s.name == name).map(|s| s.value).unwrap()
}

#[test]
fn https_delivery_with_a_private_ca() {
    let t = tls();
    let (url, got) = receiver(Arc::clone(&t.server));
    let mut w = Webhook::start(&Config { url, queue: 100, ca_file: Some(t.ca_pem.clone()) }).unwrap();
    assert!(w.describe().starts_with("webhook https://127.0.0.1:"), "{}", w.describe());
    let alerts: Vec<Alert> = (0..5).map(alert).collect();
    for a in &alerts {
        w.alert(&AlertOut::new(a, None));
    }
    for a in &alerts {
        let (first, body) = got.recv_timeout(Duration::from_secs(20)).expect("an HTTPS request");
        assert_eq!(first, "POST /falco HTTP/1.1");
        assert_eq!(body, serde_json::to_string(a).unwrap(), "the alerts.jsonl line, byte for byte");
    }
    w.close(Duration::from_secs(5));
    assert_eq!((stat(&w, "sent"), stat(&w, "failed"), stat(&w, "queue_full")), (5, 0, 0));
    let kinds: Vec<StatKind> = w.stats().iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&StatKind::Retries) && kinds.contains(&StatKind::DeliveryFailure));
}

#[test]
fn an_untrusted_https_receiver_gets_nothing_and_the_failure_is_counted() {
    let t = tls();
    let (url, got) = receiver(Arc::clone(&t.server));
    // No CA file: only the Mozilla roots, which never signed this test CA.
    let mut w = Webhook::start(&Config { url, queue: 10, ca_file: None }).unwrap();
    w.alert(&AlertOut::new(&alert(0), None));
    let t0 = Instant::now();
    while stat(&w, "failed") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the alert was never given up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(got.try_recv().is_err(), "nothing may reach an untrusted receiver");
    // A certificate error is not retried: it will not get better.
    assert_eq!((stat(&w, "sent"), stat(&w, "retries")), (0, 0));
    w.close(Duration::from_secs(1));
}
