//! NATS output for fleets: publishes each alert's Falco JSON to a subject,
//! speaking the NATS client protocol over plain TCP itself (INFO, CONNECT,
//! PUB/HPUB, SUB, PING/PONG; verbose and pedantic off). Like the webhook, a
//! background thread drains a bounded queue with retries, exponential
//! backoff and reconnects, so a slow or dead server never blocks the daemon;
//! what does not fit the queue is counted.
//!
//! Core NATS (`jetstream: false`): alerts are published in batches, each
//! followed by a PING; they count as sent once the server's PONG shows it
//! read them (delivery to subscribers is not acknowledged by core NATS).
//!
//! JetStream (`jetstream: true`): each alert is published with a reply
//! subject on a per-connection inbox (`SUB _INBOX.<random>.* 1`) and counts
//! as sent only once the stream's PubAck (`{"stream":…,"seq":N}`) arrives. An
//! `{"error":…}` ack, a 503 "no responders" status (no stream captures the
//! subject) or a timeout is retried. Retries carry the same `Nats-Msg-Id`
//! header, so the stream's duplicate window drops copies whose first ack was
//! lost: exactly-once within that window (2 minutes by default).
//!
//! No TLS (`tls_required` servers are refused); credentials may be given as
//! `nats://user:pass@host:port` or `nats://token@host:port`.

use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::endpoint;
use crate::error::{Error, Result};
use crate::outbox::{DeliveryStats, Outbox, count_drop};
use crate::{AlertOut, AlertSubscriber, Sink, SinkStat};

/// A parsed `nats://[user:pass@|token@]host[:port]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
}

impl Server {
    /// `nats://[user:pass@|token@]host[:4222]`.
    pub fn parse(s: &str) -> Result<Server> {
        let e = endpoint::parse("NATS URL", s, &[("nats", 4222)], true).map_err(|e| match e {
            Error::Url { what, url, reason } if reason.starts_with("unsupported scheme") => {
                Error::Url { what, url, reason: format!("{reason}; no TLS: tls:// is not supported") }
            }
            e => e,
        })?;
        let (mut user, mut pass, mut token) = (None, None, None);
        match (e.user, e.password) {
            (Some(u), Some(p)) => (user, pass) = (Some(u), Some(p)),
            (Some(t), None) => token = Some(t),
            _ => {}
        }
        Ok(Server { host: e.host, port: e.port, user, pass, token })
    }
}

/// A subject fit to publish to: dot-separated non-empty tokens, no
/// whitespace, no wildcards.
pub fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|t| !t.is_empty() && t != "*" && t != ">")
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Settings of the NATS output (`--nats`, `[nats]`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `nats://[user:pass@|token@]host[:4222]`.
    pub url: String,
    /// Subject alerts are published to.
    pub subject: String,
    /// Publish through JetStream: an alert counts as sent once a stream stored it.
    pub jetstream: bool,
    /// Alerts queued while the server is slow or down.
    pub queue: usize,
}

/// The NATS output. Its [`DeliveryStats`]: `sent` counts alerts the server read (core)
/// or the stream stored (JetStream), `retries` alerts published again after a failure,
/// `reconnects` connections opened after the first, `dropped_failed` alerts given up
/// after every retry (or larger than max_payload).
pub struct Nats {
    outbox: Outbox<String>,
    describe: String,
    pub stats: Arc<DeliveryStats>,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").field("stats", &self.stats).finish()
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES: u32 = 8;
const BATCH: usize = 64;

/// `2 * n` random hex digits (unique names, not secrets): std's hasher keys
/// come from the OS's randomness.
fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let words =
        (0..n.div_ceil(8)).map(|_| std::collections::hash_map::RandomState::new().build_hasher().finish());
    words.map(|w| format!("{w:016x}")).collect::<String>()[..2 * n].to_string()
}

fn io_err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

struct Item {
    id: String,
    payload: String,
}

/// What the server sent.
enum Frame {
    /// PING (answered), INFO, +OK: nothing for the caller.
    Handled,
    Pong,
    Msg {
        subject: String,
        status: Option<String>,
        payload: Vec<u8>,
    },
}

struct Conn {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
    max_payload: usize,
    headers: bool,
    inbox: String,
    next_reply: u64,
    /// Lost track of the conversation (an ack timed out, a read failed): reconnect.
    broken: bool,
}

impl Conn {
    fn open(srv: &Server, jetstream: bool) -> std::io::Result<Conn> {
        let addr = (srv.host.as_str(), srv.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io_err(format!("{} does not resolve", srv.host)))?;
        let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(TIMEOUT))?;
        let mut c = Conn {
            r: BufReader::new(s.try_clone()?),
            w: BufWriter::with_capacity(64 * 1024, s),
            max_payload: 1 << 20,
            headers: false,
            inbox: format!("_INBOX.{}", random_hex(11)),
            next_reply: 0,
            broken: false,
        };
        let deadline = Instant::now() + TIMEOUT;
        let line = c.read_line(deadline)?;
        let Some(info) = line.strip_prefix("INFO ") else {
            return Err(io_err(format!("not a NATS server: {line:?}")));
        };
        let info: serde_json::Value =
            serde_json::from_str(info).map_err(|e| io_err(format!("bad INFO: {e}")))?;
        if info["tls_required"] == true {
            return Err(io_err("the NATS server requires TLS, which boxwatch does not speak"));
        }
        c.max_payload = info["max_payload"].as_u64().map_or(c.max_payload, |m| m as usize);
        c.headers = info["headers"] == true;
        let mut connect = serde_json::json!({
            "verbose": false, "pedantic": false, "tls_required": false, "name": "boxwatch",
            "lang": "rust", "version": env!("CARGO_PKG_VERSION"), "protocol": 1, "echo": false,
            "headers": c.headers, "no_responders": c.headers,
        });
        for (k, v) in [("user", &srv.user), ("pass", &srv.pass), ("auth_token", &srv.token)] {
            if let Some(v) = v {
                connect[k] = v.as_str().into();
            }
        }
        write!(c.w, "CONNECT {connect}\r\n")?;
        if jetstream {
            write!(c.w, "SUB {}.* 1\r\n", c.inbox)?;
        }
        c.w.write_all(b"PING\r\n")?;
        c.w.flush()?;
        // -ERR (authorization, …) or PONG: the server accepted us.
        loop {
            if let Frame::Pong = c.read_frame(deadline)? {
                return Ok(c);
            }
        }
    }

    fn read_line(&mut self, deadline: Instant) -> std::io::Result<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(ErrorKind::TimedOut, "NATS server did not answer in time"));
        }
        self.r.get_ref().set_read_timeout(Some(left))?;
        let mut buf = Vec::new();
        if self.r.read_until(b'\n', &mut buf)? == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "NATS server closed the connection"));
        }
        if !buf.ends_with(b"\r\n") {
            return Err(io_err("truncated NATS protocol line"));
        }
        buf.truncate(buf.len() - 2);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn read_frame(&mut self, deadline: Instant) -> std::io::Result<Frame> {
        let line = self.read_line(deadline)?;
        let mut words = line.split_ascii_whitespace();
        let op = words.next().unwrap_or_default().to_ascii_uppercase();
        match op.as_str() {
            "PING" => {
                self.w.write_all(b"PONG\r\n")?;
                self.w.flush()?;
                Ok(Frame::Handled)
            }
            "PONG" => Ok(Frame::Pong),
            "+OK" | "INFO" => Ok(Frame::Handled),
            "-ERR" => Err(io_err(format!("NATS server: {}", line[4..].trim()))),
            "MSG" | "HMSG" => {
                let args: Vec<&str> = words.collect();
                let n = |s: Option<&&str>| s.and_then(|s| s.parse::<usize>().ok());
                let (hlen, total) = match (op.as_str(), args.len()) {
                    ("MSG", 3 | 4) => (Some(0), n(args.last())),
                    ("HMSG", 4 | 5) => (n(args.get(args.len() - 2)), n(args.last())),
                    _ => (None, None),
                };
                let (Some(hlen), Some(total)) = (hlen, total) else {
                    return Err(io_err(format!("bad NATS message line {line:?}")));
                };
                let mut data = vec![0u8; total + 2];
                self.r.read_exact(&mut data)?;
                data.truncate(total);
                let payload = data.split_off(hlen.min(total));
                // "NATS/1.0 503" (no responders) or "NATS/1.0" (plain headers).
                let status = String::from_utf8_lossy(&data)
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("NATS/1.0"))
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                Ok(Frame::Msg { subject: args[0].to_string(), status, payload })
            }
            _ => Err(io_err(format!("unexpected from NATS server: {line:?}"))),
        }
    }

    /// Answer the server's PINGs and drop stale replies while idle; an error
    /// means the connection is gone (the server closed or reset it).
    fn idle(&mut self) -> std::io::Result<()> {
        loop {
            if self.r.buffer().is_empty() {
                let s = self.r.get_ref();
                s.set_nonblocking(true)?;
                let p = s.peek(&mut [0u8; 1]);
                s.set_nonblocking(false)?;
                match p {
                    Ok(0) => return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed by server")),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            self.read_frame(Instant::now() + TIMEOUT)?;
        }
    }

    /// Core NATS: PUB each, then PING; the PONG means the server read them all.
    fn publish_core(&mut self, subject: &str, batch: &[Item]) -> std::io::Result<Vec<Option<String>>> {
        for it in batch {
            write!(self.w, "PUB {subject} {}\r\n{}\r\n", it.payload.len(), it.payload)?;
        }
        self.w.write_all(b"PING\r\n")?;
        self.w.flush()?;
        let deadline = Instant::now() + TIMEOUT;
        while !matches!(self.read_frame(deadline)?, Frame::Pong) {}
        Ok(vec![None; batch.len()])
    }

    /// JetStream: publish each with its own reply subject, then collect the
    /// PubAcks. Per alert: `None` stored, `Some(why)` not stored.
    fn publish_js(&mut self, subject: &str, batch: &[Item]) -> std::io::Result<Vec<Option<String>>> {
        let first = self.next_reply;
        for it in batch {
            let reply = format!("{}.{}", self.inbox, self.next_reply);
            self.next_reply += 1;
            if self.headers {
                let h = format!("NATS/1.0\r\nNats-Msg-Id: {}\r\n\r\n", it.id);
                let total = h.len() + it.payload.len();
                write!(self.w, "HPUB {subject} {reply} {} {total}\r\n{h}{}\r\n", h.len(), it.payload)?;
            } else {
                write!(self.w, "PUB {subject} {reply} {}\r\n{}\r\n", it.payload.len(), it.payload)?;
            }
        }
        self.w.flush()?;
        let mut out: Vec<Option<Option<String>>> = vec![None; batch.len()];
        let mut pending = batch.len();
        let deadline = Instant::now() + TIMEOUT;
        let prefix = format!("{}.", self.inbox);
        while pending > 0 {
            let (subj, status, payload) = match self.read_frame(deadline) {
                Ok(Frame::Msg { subject, status, payload }) => (subject, status, payload),
                Ok(Frame::Pong | Frame::Handled) => continue,
                // Keep the acks that came; the caller reconnects and retries the rest.
                Err(e) => {
                    self.broken = true;
                    let why = match e.kind() {
                        ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                            format!("no JetStream ack within {TIMEOUT:?}")
                        }
                        _ => e.to_string(),
                    };
                    for slot in out.iter_mut().filter(|s| s.is_none()) {
                        *slot = Some(Some(why.clone()));
                    }
                    break;
                }
            };
            let Some(i) = subj.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()) else { continue };
            let Some(slot) = i.checked_sub(first).and_then(|i| out.get_mut(i as usize)) else { continue };
            if slot.is_some() {
                continue;
            }
            let ack: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
            *slot = Some(match status {
                Some(s) if s.starts_with("503") => {
                    Some("no JetStream stream captures the subject (503)".into())
                }
                Some(s) => Some(format!("JetStream status {s}")),
                None if !ack["error"].is_null() => Some(format!("JetStream error: {}", ack["error"])),
                None if ack["seq"].is_u64() => None,
                None => Some(format!("not a JetStream PubAck: {}", String::from_utf8_lossy(&payload))),
            });
            pending -= 1;
        }
        Ok(out.into_iter().map(|r| r.unwrap_or_else(|| Some("no JetStream ack".into()))).collect())
    }
}

struct Cfg {
    server: Server,
    subject: String,
    jetstream: bool,
}

fn run(cfg: Cfg, rx: Receiver<String>, stats: Arc<DeliveryStats>) {
    let boot = random_hex(8);
    let mut seq = 0u64;
    let mut conn: Option<Conn> = None;
    let mut connected_once = false;
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(p) => p,
            Err(RecvTimeoutError::Timeout) => {
                if conn.as_mut().is_some_and(|c| c.idle().is_err()) {
                    conn = None;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = Vec::with_capacity(BATCH);
        for payload in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok()).take(BATCH - 1))
        {
            seq += 1;
            batch.push(Item { id: format!("{boot}-{seq}"), payload });
        }
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let mut why = String::new();
            if conn.as_mut().is_some_and(|c| c.idle().is_err()) {
                conn = None;
            }
            if conn.is_none() {
                match Conn::open(&cfg.server, cfg.jetstream) {
                    Ok(c) => {
                        if connected_once {
                            stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        connected_once = true;
                        conn = Some(c);
                    }
                    Err(e) => why = format!("connect to {}:{}: {e}", cfg.server.host, cfg.server.port),
                }
            }
            if let Some(c) = conn.as_mut() {
                // Never fits: the server would close the connection on it.
                let max = c.max_payload.saturating_sub(64);
                let before = batch.len();
                batch.retain(|it| it.payload.len() <= max);
                if batch.len() < before {
                    stats.dropped_failed.fetch_add((before - batch.len()) as u64, Ordering::Relaxed);
                    eprintln!("boxwatch: NATS: alert larger than the server's max_payload ({max}); dropped");
                }
                let r = if batch.is_empty() {
                    Ok(vec![])
                } else if cfg.jetstream {
                    c.publish_js(&cfg.subject, &batch)
                } else {
                    c.publish_core(&cfg.subject, &batch)
                };
                match r {
                    Ok(results) => {
                        let mut results = results.into_iter();
                        batch.retain(|_| match results.next().flatten() {
                            Some(e) => {
                                why = e;
                                true
                            }
                            None => {
                                stats.sent.fetch_add(1, Ordering::Relaxed);
                                false
                            }
                        });
                        if c.broken {
                            conn = None;
                        }
                    }
                    Err(e) => {
                        why = e.to_string();
                        conn = None;
                    }
                }
            }
            if batch.is_empty() {
                break;
            }
            if attempt >= RETRIES {
                stats.dropped_failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                eprintln!("boxwatch: NATS: {} alert(s) dropped after {RETRIES} retries: {why}", batch.len());
                break;
            }
            attempt += 1;
            stats.retries.fetch_add(batch.len() as u64, Ordering::Relaxed);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

impl Nats {
    /// Start the output. Nothing is sent until the first alert, so an
    /// unreachable server is reported by the counters (and stderr).
    pub fn start(c: &Config) -> Result<Nats> {
        let server = Server::parse(&c.url)?;
        let subject = &c.subject;
        if !valid_subject(subject) {
            return Err(Error::Invalid(format!(
                "NATS subject {subject:?}: expected dot-separated tokens without spaces or wildcards"
            )));
        }
        let describe = format!(
            "nats {}:{} {subject}{}",
            server.host,
            server.port,
            if c.jetstream { " (JetStream)" } else { "" }
        );
        let stats = Arc::new(DeliveryStats::default());
        let s2 = Arc::clone(&stats);
        let cfg = Cfg { server, subject: subject.to_string(), jetstream: c.jetstream };
        let outbox = Outbox::start("NATS", c.queue, move |rx| run(cfg, rx, s2))?;
        Ok(Nats { outbox, describe, stats })
    }

    /// Queue one alert's JSON; never blocks.
    pub fn send(&self, alert_json: &str) {
        count_drop(self.outbox.send(alert_json.to_string()), &self.stats.dropped_queue_full);
    }

    /// Deliver what is queued (bounded by `deadline`), then stop.
    pub fn finish(&mut self, deadline: Duration) {
        self.outbox.finish(deadline);
    }
}

impl AlertSubscriber for Nats {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn alert(&mut self, a: &AlertOut<'_>) {
        self.send(a.json());
    }

    fn close(&mut self, deadline: Duration) {
        self.finish(deadline);
    }

    fn stats(&self) -> Vec<SinkStat> {
        self.stats.sink_stats("nats", true, true)
    }
}

impl Sink for Nats {}

#[cfg(test)]
mod tests {
    use super::{Server, valid_subject};

    #[test]
    fn parses_nats_urls() {
        let s = Server::parse("nats://127.0.0.1:4222").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.user, s.token), ("127.0.0.1", 4222, None, None));
        assert_eq!(Server::parse("nats://nats").unwrap().port, 4222);
        let s = Server::parse("nats://bw:s3cr3t@nats.svc:4333/").unwrap();
        assert_eq!((s.user.as_deref(), s.pass.as_deref(), s.port), (Some("bw"), Some("s3cr3t"), 4333));
        assert_eq!(Server::parse("nats://tok@[::1]:1").unwrap().token.as_deref(), Some("tok"));
        assert_eq!(Server::parse("nats://tok@[::1]:1").unwrap().host, "::1");
        assert!(Server::parse("tls://h:1").unwrap_err().to_string().contains("nats://"));
        assert!(Server::parse("nats://:1").is_err());
        assert!(Server::parse("nats://h:x").unwrap_err().to_string().contains("invalid port"));
        assert!(Server::parse("nats://[::1").unwrap_err().to_string().contains("IPv6"));
    }

    #[test]
    fn checks_subjects() {
        assert!(valid_subject("boxwatch.alerts"));
        assert!(valid_subject("fleet.node-1.alerts"));
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "a\tb"] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
    }
}
