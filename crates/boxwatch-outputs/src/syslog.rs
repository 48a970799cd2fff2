//! Syslog output: every alert as one RFC 5424 message whose MSG is the
//! alert's Falco JSON (the line in alerts.jsonl), over UDP (RFC 5426), TCP
//! with octet-counting framing (RFC 6587) or a local datagram socket
//! (`unix:///dev/log`). Like the webhook, a background thread drains a
//! bounded queue with retries and backoff, so a slow or dead collector never
//! blocks the daemon; what does not fit the queue is counted.
//!
//! ```text
//! <132>1 2024-05-01T10:00:00.123456Z node-1 boxwatch 4242 - [boxwatch@32473 rule="Shell spawned in a container" priority="Warning" container="3ad7b9f4a5c1"] {"hostname":"node-1",...}
//! ```
//!
//! PRI = facility (local0 unless configured) * 8 + the Falco priority as a
//! syslog severity (Emergency 0 … Debug 7). Delivery is at most once: UDP
//! and datagram sockets have no acknowledgement, and neither has syslog over
//! TCP, so an alert written just before the collector dies is lost.
//!

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use boxwatch_rules::{Alert, Priority};

use crate::endpoint;
use crate::error::{Error, Result};
use crate::outbox::{DeliveryStats, Outbox, count_drop};
use crate::{AlertOut, AlertSubscriber, Sink, SinkStat};

macro_rules! bail {
    ($($t:tt)*) => { return Err(Error::Invalid(format!($($t)*))) };
}

/// Settings of the syslog output (`--syslog`, `[syslog]`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `udp://host:514`, `tcp://host:601` or `unix:///dev/log`.
    pub target: String,
    /// Alerts queued while the collector is slow or down.
    pub queue: usize,
    /// Facility number (0-23), see [`parse_facility`]; `None`: local0.
    pub facility: Option<u8>,
}

/// `local0`, the default facility.
pub const LOCAL0: u8 = 16;
/// The SD-ID of boxwatch's structured data. 32473 is the IANA "example"
/// enterprise number (RFC 5612), as used by RFC 5424's own examples.
pub const SD_ID: &str = "boxwatch@32473";

/// Facility names by number (RFC 5424 table 1, as rsyslog spells them).
const FACILITIES: &str = "kern user mail daemon auth syslog lpr news uucp cron authpriv ftp ntp security \
                          console solaris-cron local0 local1 local2 local3 local4 local5 local6 local7";

/// A facility by name (`local0` … `local7`, `daemon`, `auth`, …) or number (0-23).
pub fn parse_facility(s: &str) -> Result<u8> {
    if let Ok(n) = s.parse::<u8>()
        && n < 24
    {
        return Ok(n);
    }
    match FACILITIES.split_ascii_whitespace().position(|f| f.eq_ignore_ascii_case(s)) {
        Some(i) => Ok(i as u8),
        None => bail!("unknown syslog facility {s:?} (known: {FACILITIES:?}, or 0-23)"),
    }
}

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Udp(String, u16),
    Tcp(String, u16),
    Unix(PathBuf),
}

impl Target {
    /// `udp://host[:514]`, `tcp://host[:601]` or `unix:///absolute/path`.
    pub fn parse(s: &str) -> Result<Target> {
        const WHAT: &str = "syslog target";
        if s.trim().starts_with("unix:") {
            let e = endpoint::parse(WHAT, s, &[("unix", 0)], false)?;
            return Ok(Target::Unix(e.path.into()));
        }
        let e = endpoint::parse(WHAT, s, &[("udp", 514), ("tcp", 601), ("unix", 0)], true)?;
        if e.path != "/" || e.user.is_some() {
            return Err(Error::Url {
                what: WHAT,
                url: s.into(),
                reason: "expected only host and port".into(),
            });
        }
        Ok(if e.scheme == "tcp" { Target::Tcp(e.host, e.port) } else { Target::Udp(e.host, e.port) })
    }
}

/// The syslog severity of a Falco priority (they are the same scale).
pub fn severity(p: Priority) -> u8 {
    match p {
        Priority::Emergency => 0,
        Priority::Alert => 1,
        Priority::Critical => 2,
        Priority::Error => 3,
        Priority::Warning => 4,
        Priority::Notice => 5,
        Priority::Informational => 6,
        Priority::Debug => 7,
    }
}

/// Escape an SD-PARAM value (RFC 5424 6.3.3: `"`, `\` and `]` get a backslash).
pub fn escape_sd(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// An RFC 5424 header field: printable US-ASCII without spaces, `-` if empty.
fn header_field(v: &str, max: usize) -> String {
    let s: String = v.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if s.is_empty() { "-".into() } else { s }
}

/// RFC 3339 as RFC 5424 allows it: at most 6 fractional digits.
fn timestamp(t: &str) -> String {
    let Some(dot) = t.find('.') else { return header_field(t, 64) };
    let frac_end = t[dot + 1..].find(|c: char| !c.is_ascii_digit()).map_or(t.len(), |i| dot + 1 + i);
    let keep = (frac_end - dot - 1).min(6);
    header_field(&format!("{}{}{}", &t[..dot + 1], &t[dot + 1..dot + 1 + keep], &t[frac_end..]), 64)
}

/// One alert as an RFC 5424 message (without transport framing).
pub fn format(alert: &Alert, json: &str, facility: u8, pid: u32) -> String {
    let pri = u32::from(facility) * 8 + u32::from(severity(alert.priority));
    let container = alert.output_fields.get("container.id").and_then(|v| v.as_str()).unwrap_or("host");
    format!(
        "<{pri}>1 {} {} boxwatch {pid} - [{SD_ID} rule=\"{}\" priority=\"{:?}\" container=\"{}\"] {json}",
        timestamp(&alert.time),
        header_field(&alert.hostname, 255),
        escape_sd(&alert.rule),
        alert.priority,
        escape_sd(container),
    )
}

/// The syslog output. Its [`DeliveryStats`]: `sent` counts messages handed to the
/// transport (UDP/unix: the kernel; TCP: the stream), `reconnects` TCP connections
/// opened after the first, `dropped_failed` alerts given up after every retry (or too
/// large to send at all).
pub struct Syslog {
    outbox: Outbox<String>,
    target: String,
    facility: u8,
    pid: u32,
    pub stats: Arc<DeliveryStats>,
}

impl std::fmt::Debug for Syslog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syslog").field("facility", &self.facility).field("stats", &self.stats).finish()
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES: u32 = 8;

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixDatagram),
}

fn resolve(host: &str, port: u16) -> std::io::Result<std::net::SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} does not resolve")))
}

fn connect(t: &Target) -> std::io::Result<Conn> {
    Ok(match t {
        Target::Udp(h, p) => {
            let addr = resolve(h, *p)?;
            let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let s = UdpSocket::bind(local)?;
            s.connect(addr)?;
            Conn::Udp(s)
        }
        Target::Tcp(h, p) => {
            let s = TcpStream::connect_timeout(&resolve(h, *p)?, TIMEOUT)?;
            s.set_write_timeout(Some(TIMEOUT))?;
            s.set_nodelay(true)?;
            Conn::Tcp(s)
        }
        Target::Unix(path) => {
            let s = UnixDatagram::unbound()?;
            s.connect(path)?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Conn::Unix(s)
        }
    })
}

/// Whether the collector closed (or reset) a TCP connection: a write would
/// still succeed once and lose the message, so look before writing.
fn tcp_closed(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let r = s.peek(&mut [0u8; 1]);
    let closed = match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    closed || s.set_nonblocking(false).is_err()
}

fn transmit(conn: &mut Conn, msg: &str) -> std::io::Result<()> {
    match conn {
        Conn::Udp(s) => s.send(msg.as_bytes()).map(drop),
        Conn::Unix(s) => s.send(msg.as_bytes()).map(drop),
        Conn::Tcp(s) => {
            if tcp_closed(s) {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "collector closed"));
            }
            // RFC 6587 octet counting: "LEN SP MSG", no trailer.
            let frame = format!("{} {msg}", msg.len());
            s.write_all(frame.as_bytes())
        }
    }
}

fn run(target: Target, rx: Receiver<String>, stats: Arc<DeliveryStats>) {
    let mut conn: Option<Conn> = None;
    let mut connected_once = false;
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let r = match conn.as_mut() {
                Some(c) => transmit(c, &msg),
                None => connect(&target).and_then(|mut c| {
                    if connected_once {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    connected_once = true;
                    let r = transmit(&mut c, &msg);
                    conn = Some(c);
                    r
                }),
            };
            match r {
                Ok(()) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // Larger than a datagram may be: retrying will not help.
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    stats.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "boxwatch: syslog: alert of {} bytes too large to send ({e}); dropped",
                        msg.len()
                    );
                    break;
                }
                Err(e) if attempt >= RETRIES => {
                    stats.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("boxwatch: syslog unreachable after {RETRIES} retries ({e}); alert dropped");
                    conn = None;
                    break;
                }
                Err(_) => {
                    attempt += 1;
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

impl Syslog {
    /// Start the output. `target`: `udp://host:port` (514 if omitted),
    /// `tcp://host:port` (601) or `unix:///dev/log`; `facility`: see
    /// [`parse_facility`], `None` for local0. Nothing is sent until the first
    /// alert, so an unreachable collector is reported by the counters.
    pub fn start(cfg: &Config) -> Result<Syslog> {
        let target = Target::parse(&cfg.target)?;
        let facility = cfg.facility.unwrap_or(LOCAL0);
        if facility > 23 {
            bail!("syslog facility {facility} out of range (0-23)");
        }
        let stats = Arc::new(DeliveryStats::default());
        let s2 = Arc::clone(&stats);
        let outbox = Outbox::start("syslog", cfg.queue, move |rx| run(target, rx, s2))?;
        Ok(Syslog { outbox, target: cfg.target.clone(), facility, pid: std::process::id(), stats })
    }

    /// Queue one alert whose JSON line is `json`; never blocks.
    pub fn send(&self, alert: &Alert, json: &str) {
        let sent = self.outbox.send(format(alert, json, self.facility, self.pid));
        count_drop(sent, &self.stats.dropped_queue_full);
    }

    /// Deliver what is queued (bounded by `deadline`), then stop.
    pub fn finish(&mut self, deadline: Duration) {
        self.outbox.finish(deadline);
    }
}

impl AlertSubscriber for Syslog {
    fn describe(&self) -> String {
        format!("syslog {}", self.target)
    }

    fn alert(&mut self, a: &AlertOut<'_>) {
        self.send(a.alert, a.json());
    }

    fn close(&mut self, deadline: Duration) {
        self.finish(deadline);
    }

    fn stats(&self) -> Vec<SinkStat> {
        self.stats.sink_stats("syslog", true, true)
    }
}

impl Sink for Syslog {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn alert(rule: &str, p: Priority, container: &str) -> Alert {
        let mut f = BTreeMap::new();
        f.insert("container.id", serde_json::json!(container));
        Alert {
            time: "2024-05-01T10:00:00.123456789Z".into(),
            rule: rule.into(),
            priority: p,
            output: "x".into(),
            output_fields: f,
            tags: vec![],
            source: "syscall",
            hostname: "node-1".into(),
        }
    }

    #[test]
    fn formats_rfc5424() {
        let a = alert("Shell spawned", Priority::Warning, "3ad7b9f4a5c1");
        assert_eq!(
            format(&a, "{}", LOCAL0, 42),
            "<132>1 2024-05-01T10:00:00.123456Z node-1 boxwatch 42 - \
             [boxwatch@32473 rule=\"Shell spawned\" priority=\"Warning\" container=\"3ad7b9f4a5c1\"] {}"
        );
        let mut a = alert("r", Priority::Emergency, "host");
        a.hostname = "bad host\n".into();
        assert!(format(&a, "{}", 3, 1).starts_with("<24>1 2024-05-01T10:00:00.123456Z badhost boxwatch 1 "));
        a.hostname.clear();
        a.priority = Priority::Debug;
        a.output_fields.clear();
        let m = format(&a, "{\"a\":1}", 23, 7);
        assert!(m.starts_with("<191>1 2024-05-01T10:00:00.123456Z - boxwatch 7 - "), "{m}");
        assert!(m.ends_with("container=\"host\"] {\"a\":1}"), "{m}");
    }

    #[test]
    fn severities_follow_falco_priorities() {
        use Priority::*;
        let all = [Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug];
        assert_eq!(all.map(severity), [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn escapes_sd_values() {
        assert_eq!(escape_sd(r#"a "b" \c] [d"#), r#"a \"b\" \\c\] [d"#);
        let a = alert(r#"x"]\"#, Priority::Notice, "c]");
        assert!(format(&a, "{}", LOCAL0, 1).contains(r#"rule="x\"\]\\" priority="Notice" container="c\]"]"#));
    }

    #[test]
    fn timestamps_keep_at_most_microseconds() {
        assert_eq!(timestamp("2024-05-01T10:00:00.123456789Z"), "2024-05-01T10:00:00.123456Z");
        assert_eq!(timestamp("2024-05-01T10:00:00.12Z"), "2024-05-01T10:00:00.12Z");
        assert_eq!(timestamp("2024-05-01T10:00:00.123456789+02:00"), "2024-05-01T10:00:00.123456+02:00");
        assert_eq!(timestamp("2024-05-01T10:00:00Z"), "2024-05-01T10:00:00Z");
    }

    #[test]
    fn parses_targets_and_facilities() {
        assert_eq!(Target::parse("udp://127.0.0.1:5514").unwrap(), Target::Udp("127.0.0.1".into(), 5514));
        assert_eq!(Target::parse("tcp://[::1]:601").unwrap(), Target::Tcp("::1".into(), 601));
        assert_eq!(Target::parse("udp://collector").unwrap(), Target::Udp("collector".into(), 514));
        assert_eq!(Target::parse("unix:///dev/log").unwrap(), Target::Unix("/dev/log".into()));
        assert!(Target::parse("unix://dev/log").is_err());
        assert!(
            Target::parse("http://h:1").unwrap_err().to_string().contains("expected udp://, tcp://, unix://")
        );
        assert!(Target::parse("tcp://h:x").unwrap_err().to_string().contains("invalid port"));
        assert!(Target::parse("tcp://:5").is_err());
        assert!(Target::parse("udp://[::1").unwrap_err().to_string().contains("IPv6"));
        assert_eq!(parse_facility("local0").unwrap(), 16);
        assert_eq!(parse_facility("LOCAL7").unwrap(), 23);
        assert_eq!(parse_facility("daemon").unwrap(), 3);
        assert_eq!(parse_facility("4").unwrap(), 4);
        assert!(parse_facility("24").is_err());
        assert!(parse_facility("bogus").unwrap_err().to_string().contains("local0"));
    }
}
