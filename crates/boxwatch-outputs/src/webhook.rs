//! HTTP webhook output: POSTs each alert's Falco-format JSON to a URL
//! (falcosidekick's root endpoint, or any receiver). A background thread
//! drains a bounded queue, retrying with exponential backoff, so a slow or
//! dead receiver never blocks the daemon; what does not fit the queue is
//! counted, never silently lost. Plain `http://` only (in-cluster
//! falcosidekick); put a TLS-terminating proxy in front for anything else.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::outbox::{Outbox, count_drop};

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url> {
        let Some(rest) = s.strip_prefix("http://") else {
            bail!("webhook URL {s:?}: only http:// is supported (put a TLS proxy in front for https)");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => {
                (h, p.parse().with_context(|| format!("webhook URL {s:?}: bad port {p:?}"))?)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            bail!("webhook URL {s:?}: no host");
        }
        Ok(Url { host: host.trim_matches(['[', ']']).to_string(), port, path: path.to_string() })
    }
}

/// Counters of the webhook output.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub sent: AtomicU64,
    pub retries: AtomicU64,
    /// Alerts not accepted because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Alerts given up after every retry failed.
    pub dropped_failed: AtomicU64,
}

pub struct Webhook {
    outbox: Outbox<String>,
    pub stats: Arc<WebhookStats>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("stats", &self.stats).finish()
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES: u32 = 5;

fn post(url: &Url, body: &str) -> std::io::Result<u16> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{} does not resolve", url.host)))?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nUser-Agent: boxwatch\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.path,
        url.host,
        url.port,
        body.len()
    )?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {line:?}")))
}

fn run(url: Url, rx: Receiver<String>, stats: Arc<WebhookStats>) {
    loop {
        let body = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match post(&url, &body) {
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
                _ if attempt >= RETRIES => {
                    stats.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("boxwatch: webhook unreachable after {RETRIES} retries; alert dropped");
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
    pub fn start(url: &str, queue: usize) -> Result<Webhook> {
        let url = Url::parse(url)?;
        let stats = Arc::new(WebhookStats::default());
        let s2 = Arc::clone(&stats);
        let outbox = Outbox::start("webhook", queue, move |rx| run(url, rx, s2))?;
        Ok(Webhook { outbox, stats })
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

#[cfg(test)]
mod tests {
    use super::Url;

    #[test]
    fn parses_http_urls() {
        assert_eq!(
            Url::parse("http://sidekick:2801").unwrap(),
            Url { host: "sidekick".into(), port: 2801, path: "/".into() }
        );
        assert_eq!(
            Url::parse("http://127.0.0.1:8080/hook/x").unwrap(),
            Url { host: "127.0.0.1".into(), port: 8080, path: "/hook/x".into() }
        );
        assert_eq!(Url::parse("http://h/p").unwrap().port, 80);
        assert!(Url::parse("https://h").unwrap_err().to_string().contains("only http://"));
        assert!(Url::parse("http://:80").is_err());
        assert!(Url::parse("http://h:xx").unwrap_err().to_string().contains("bad port"));
    }
}
