//! HTTP(S) webhook output: POSTs each alert's Falco-format JSON to a URL
//! (falcosidekick's root endpoint, or any receiver), through `ureq` with rustls.
//! `https://` receivers are verified against the bundled Mozilla roots plus the CA
//! certificates of `--webhook-ca FILE` (PEM), for receivers behind a private CA. A
//! background thread drains a bounded queue, retrying with exponential backoff, so a
//! slow or dead receiver never blocks the daemon; what does not fit the queue or keeps
//! failing is counted, never silently lost (it is in alerts.jsonl too).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::endpoint::{self, Endpoint};
use crate::error::{Ctx, Error, Result};
use crate::outbox::{DeliveryStats, Outbox, count_drop};
use crate::{AlertOut, AlertSubscriber, Sink, SinkStat};

/// Settings of the webhook output (`--webhook`, `[webhook]`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `http://` or `https://` URL the alerts are POSTed to.
    pub url: String,
    /// Alerts queued while the receiver is slow or down.
    pub queue: usize,
    /// PEM file of CA certificates trusted for `https://`, besides the Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

/// Parse a webhook URL (`http://` or `https://`, default ports 80 and 443).
pub fn parse_url(url: &str) -> Result<Endpoint> {
    endpoint::parse("webhook URL", url, &[("http", 80), ("https", 443)], true)
}

pub struct Webhook {
    outbox: Outbox<String>,
    url: Endpoint,
    pub stats: Arc<DeliveryStats>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("stats", &self.stats).finish()
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
/// As syslog and NATS: with backoff doubling from 100 ms to 5 s, about 16 s of outage.
const RETRIES: u32 = 8;

/// The CA certificates of a PEM file (at least one).
fn read_ca(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).ctx(|| format!("read webhook CA file {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(Error::Invalid(format!("webhook CA file {}: {e}", path.display()))),
        }
    }
    if certs.is_empty() {
        return Err(Error::Invalid(format!("webhook CA file {}: no PEM certificate in it", path.display())));
    }
    Ok(certs)
}

fn agent(ca_file: Option<&Path>) -> Result<ureq::Agent> {
    let roots = match ca_file {
        None => RootCerts::WebPki,
        Some(p) => {
            let mut all: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()))
                .collect();
            all.extend(read_ca(p)?);
            RootCerts::from(all)
        }
    };
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .user_agent("boxwatch")
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .new_agent())
}

/// Why a POST got no HTTP status.
enum Failure {
    /// The receiver's certificate or the TLS setup: retrying will not help.
    Tls(String),
    /// Network, timeout, protocol: retried.
    Transient(String),
}

fn is_tls(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    }
}

/// One POST: the HTTP status, or why there was none.
fn post(agent: &ureq::Agent, url: &str, body: &str) -> std::result::Result<u16, Failure> {
    match agent.post(url).content_type("application/json").send(body) {
        Ok(mut resp) => {
            // Read the (small) body so the connection can be reused.
            let _ = resp.body_mut().with_config().limit(64 * 1024).read_to_vec();
            Ok(resp.status().as_u16())
        }
        Err(e) if is_tls(&e) => Err(Failure::Tls(e.to_string())),
        Err(e) => Err(Failure::Transient(e.to_string())),
    }
}

fn run(agent: ureq::Agent, url: String, rx: Receiver<String>, stats: Arc<DeliveryStats>) {
    loop {
        let body = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match post(&agent, &url, &body) {
                Ok(code) if (200..300).contains(&code) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // A 4xx other than 429 will not get better by retrying.
                Ok(code) if (400..500).contains(&code) && code != 429 => {
                    stats.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("boxwatch: webhook rejected an alert with HTTP {code}; dropped");
                    break;
                }
                Err(Failure::Tls(why)) => {
                    stats.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("boxwatch: webhook: TLS failed ({why}); alert dropped (see --webhook-ca)");
                    break;
                }
                r if attempt >= RETRIES => {
                    stats.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    let why = match r {
                        Ok(code) => format!("HTTP {code}"),
                        Err(Failure::Transient(e) | Failure::Tls(e)) => e,
                    };
                    eprintln!("boxwatch: webhook unreachable after {RETRIES} retries ({why}); alert dropped");
                    break;
                }
                _ => {
                    attempt += 1;
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

impl Webhook {
    /// Check the URL and CA file and start the delivery thread. Nothing is sent until
    /// the first alert, so an unreachable receiver is reported by the counters.
    pub fn start(cfg: &Config) -> Result<Webhook> {
        let url = parse_url(&cfg.url)?;
        if cfg.ca_file.is_some() && url.scheme != "https" {
            return Err(Error::Invalid(format!("--webhook-ca is for https:// URLs, not {:?}", cfg.url)));
        }
        let agent = agent(cfg.ca_file.as_deref())?;
        let stats = Arc::new(DeliveryStats::default());
        let s2 = Arc::clone(&stats);
        let target = url.url.to_string();
        let outbox = Outbox::start("webhook", cfg.queue, move |rx| run(agent, target, rx, s2))?;
        Ok(Webhook { outbox, url, stats })
    }

    /// Queue one alert's JSON; never blocks.
    pub fn send(&self, json: &str) {
        count_drop(self.outbox.send(json.to_string()), &self.stats.dropped_queue_full);
    }

    /// Deliver what is queued (bounded by `deadline`), then stop.
    pub fn finish(&mut self, deadline: Duration) {
        self.outbox.finish(deadline);
    }
}

impl AlertSubscriber for Webhook {
    fn describe(&self) -> String {
        format!(
            "webhook {}://{}:{}{}",
            self.url.scheme,
            self.url.url.host_str().unwrap_or(""),
            self.url.port,
            self.url.path
        )
    }

    fn alert(&mut self, a: &AlertOut<'_>) {
        self.send(a.json());
    }

    fn close(&mut self, deadline: Duration) {
        self.finish(deadline);
    }

    fn stats(&self) -> Vec<SinkStat> {
        self.stats.sink_stats("webhook", true, false)
    }
}

impl Sink for Webhook {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_and_https_urls() {
        let u = parse_url("http://sidekick:2801").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("sidekick", 2801, "/"));
        let u = parse_url("http://127.0.0.1:8080/hook/x").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 8080, "/hook/x"));
        assert_eq!(parse_url("http://h/p").unwrap().port, 80);
        assert_eq!(parse_url("https://h/p").unwrap().port, 443);
        assert!(parse_url("http://[::1").unwrap_err().to_string().contains("webhook URL \"http://[::1\""));
        assert!(parse_url("http://:80").is_err());
        assert!(parse_url("http://h:xx").unwrap_err().to_string().contains("port"));
        assert!(parse_url("ftp://h").unwrap_err().to_string().contains("expected http://, https://"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_at_start() {
        let dir = std::env::temp_dir().join(format!("bw-webhook-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let cfg = |url: &str, ca: Option<PathBuf>| Config { url: url.into(), queue: 1, ca_file: ca };
        let e = Webhook::start(&cfg("https://127.0.0.1:1/", Some(p.clone()))).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate") && e.contains("ca.pem"), "{e}");
        let e = Webhook::start(&cfg("https://127.0.0.1:1/", Some(dir.join("missing.pem")))).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = Webhook::start(&cfg("http://127.0.0.1:1/", Some(p))).unwrap_err().to_string();
        assert!(e.contains("https://"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
