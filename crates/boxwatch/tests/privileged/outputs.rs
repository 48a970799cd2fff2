//! The syslog and NATS outputs against real servers from Debian: a private
//! rsyslogd (UDP, TCP and a unix datagram socket, writing the raw and the
//! parsed message to files) and a private nats-server with JetStream. The
//! outputs are driven through `boxwatch-outputs`' public API. Everything listens
//! on 127.0.0.1 only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use boxwatch_outputs::{nats, syslog};
use boxwatch_rules::{Alert, Priority};
use serde_json::{Value, json};

use crate::support::random_hex;

const T: Duration = Duration::from_secs(30);
const INSTALL: &str = "run `scripts/install-deps.sh --test` (apt-get install rsyslog nats-server)";

fn need(bin: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("{bin} not found: {INSTALL}");
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("boxwatch-{what}-{}", random_hex(6)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port free for TCP and UDP on 127.0.0.1, below the ephemeral range (so
/// no outgoing connection takes it while a server restarts) and never handed
/// out twice by this process.
fn free_port() -> u16 {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut used = USED.lock().unwrap();
    loop {
        let p = 20_000 + u16::from_str_radix(&random_hex(2), 16).unwrap() % 12_000;
        let free = TcpListener::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok();
        if free && !used.contains(&p) {
            used.push(p);
            return p;
        }
    }
}

fn signal(c: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(c.id() as i32, sig) }, 0, "kill({}, {sig})", c.id());
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const PRIOS: [Priority; 8] = {
    use Priority as P;
    [P::Emergency, P::Alert, P::Critical, P::Error, P::Warning, P::Notice, P::Informational, P::Debug]
};

/// `n` alerts tagged with `token`, with every priority and rule names that
/// need SD escaping (`"`, `\`, `]`) and non-ASCII text.
fn alerts(token: &str, n: usize) -> Vec<Alert> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    (0..n)
        .map(|i| {
            let mut f = BTreeMap::new();
            f.insert("container.id", json!(if i % 3 == 0 { "host" } else { "3ad7b9f4a5c1" }));
            f.insert("proc.cmdline", json!("sh -c \"cat /etc/shadow]\" é"));
            f.insert("boxwatch.test.seq", json!(i));
            Alert {
                time: boxwatch_rules::time::rfc3339_ns(now + i as u64),
                rule: format!("Test \"{token}\" \\ [rule] {i}"),
                priority: PRIOS[i % 8],
                output: format!("alert {i} of {token} (café)"),
                output_fields: f,
                tags: vec!["test".into(), "T1059".into()],
                source: "syscall",
                hostname: "node-1".into(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------- rsyslog

struct Rsyslog {
    dir: PathBuf,
    udp: u16,
    tcp: u16,
    sock: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        Rsyslog::start_in(temp_dir("rsyslog"))
    }

    /// Runs in `dir`, with its unix socket at `dir/log.sock`.
    fn start_in(dir: PathBuf) -> Rsyslog {
        let bin = need("rsyslogd");
        let (udp, tcp, sock) = (free_port(), free_port(), dir.join("log.sock"));
        let d = dir.display();
        let conf = format!(
            r#"global(maxMessageSize="64k" workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on" RateLimit.Interval="0")
template(name="raw" type="string" string="%rawmsg%\n")
template(name="parsed" type="string" string="%pri%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
action(type="omfile" file="{d}/raw.log" template="raw")
action(type="omfile" file="{d}/parsed.log" template="parsed")
"#,
            sock = sock.display()
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let check = Command::new(&bin).arg("-N1").arg("-f").arg(dir.join("rsyslog.conf")).output().unwrap();
        assert!(check.status.success(), "rsyslogd -N1: {}", String::from_utf8_lossy(&check.stderr));
        let mut r = Rsyslog { dir, udp, tcp, sock, child: None };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let err = std::fs::File::create(self.dir.join("stderr")).unwrap();
        let f = |name: &str| self.dir.join(name).display().to_string();
        let child = Command::new(need("rsyslogd"))
            .args(["-n", "-f", &f("rsyslog.conf"), "-i", &f("rsyslogd.pid")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn rsyslogd: {e}: {INSTALL}"));
        self.child = Some(child);
        // Ready once a probe through each transport reached the file.
        let token = random_hex(4);
        let probe = |n: &str| format!("<14>1 - - probe - - - ready-{token}-{n}");
        let (udp, tcp, sock) = (self.udp, self.tcp, self.sock.clone());
        wait_until("rsyslogd to listen", Duration::from_secs(10), || {
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            let _ = u.send_to(probe("udp").as_bytes(), ("127.0.0.1", udp));
            if let Ok(mut t) = TcpStream::connect(("127.0.0.1", tcp)) {
                let m = probe("tcp");
                let _ = write!(t, "{} {m}", m.len());
            }
            let _ = UnixDatagram::unbound().unwrap().send_to(probe("unix").as_bytes(), &sock);
            std::thread::sleep(Duration::from_millis(50));
            let raw = self.lines("raw.log", &format!("ready-{token}"));
            ["udp", "tcp", "unix"].iter().all(|n| raw.iter().any(|l| l.ends_with(&format!("-{n}"))))
        });
    }

    /// SIGTERM and wait: rsyslogd closes its sockets and flushes its files.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            c.wait().unwrap();
        }
    }

    fn lines(&self, file: &str, token: &str) -> Vec<String> {
        let s = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        s.lines().filter(|l| l.contains(token)).map(str::to_string).collect()
    }

    /// Checks that exactly `want` arrived (each once), raw and as rsyslog parsed them.
    fn assert_received(&self, token: &str, want: &[Alert], facility: u8) {
        wait_until("rsyslog to write every alert", T, || self.lines("parsed.log", token).len() >= want.len());
        std::thread::sleep(Duration::from_millis(200)); // duplicates would show up now
        let pid = std::process::id();
        let mut expect: Vec<String> = want
            .iter()
            .map(|a| syslog::format(a, &serde_json::to_string(a).unwrap(), facility, pid))
            .collect();
        let mut raw = self.lines("raw.log", token);
        expect.sort();
        raw.sort();
        assert_eq!(raw, expect, "raw messages differ");
        let parsed = self.lines("parsed.log", token);
        assert_eq!(parsed.len(), want.len());
        for a in want {
            let rule = syslog::escape_sd(&a.rule);
            let line =
                parsed.iter().find(|l| l.contains(&rule)).unwrap_or_else(|| panic!("{rule}: {parsed:?}"));
            let f: Vec<&str> = line.splitn(7, '|').collect();
            let pri = u32::from(facility) * 8 + u32::from(syslog::severity(a.priority));
            assert_eq!(
                f[..5],
                [pri.to_string(), "node-1".into(), "boxwatch".into(), pid.to_string(), "-".into()]
            );
            let c = a.output_fields["container.id"].as_str().unwrap();
            let sd =
                format!("[boxwatch@32473 rule=\"{rule}\" priority=\"{:?}\" container=\"{c}\"]", a.priority);
            assert_eq!(f[5], sd);
            assert_eq!(
                serde_json::from_str::<Value>(f[6]).unwrap(),
                serde_json::to_value(a).unwrap(),
                "{line}"
            );
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("rsyslog files kept in {}", self.dir.display());
        }
    }
}

fn finish_syslog(mut s: syslog::Syslog) -> syslog::Syslog {
    let t = Instant::now();
    s.finish(Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(2), "finish took {:?}", t.elapsed());
    s
}

#[test]
fn syslog_udp_delivers_every_alert() {
    let r = Rsyslog::start();
    let token = random_hex(6);
    let want = alerts(&token, 100);
    let s = syslog::Syslog::start(&syslog::Config {
        target: format!("udp://127.0.0.1:{}", r.udp),
        queue: 1000,
        facility: None,
    })
    .unwrap();
    for a in &want {
        s.send(a, &serde_json::to_string(a).unwrap());
    }
    r.assert_received(&token, &want, syslog::LOCAL0);
    let s = finish_syslog(s);
    assert_eq!(s.stats.sent.load(Relaxed), 100);
    assert_eq!(s.stats.dropped_queue_full.load(Relaxed) + s.stats.dropped_failed.load(Relaxed), 0);
}

#[test]
fn syslog_tcp_octet_counting_survives_a_collector_restart() {
    let mut r = Rsyslog::start();
    let token = random_hex(6);
    let want = alerts(&token, 60);
    let daemon = syslog::parse_facility("daemon").unwrap();
    let s = syslog::Syslog::start(&syslog::Config {
        target: format!("tcp://127.0.0.1:{}", r.tcp),
        queue: 1000,
        facility: Some(daemon),
    })
    .unwrap();
    for a in &want[..30] {
        s.send(a, &serde_json::to_string(a).unwrap());
    }
    wait_until("30 written", T, || r.lines("parsed.log", &token).len() == 30);
    // A graceful restart closes the connection: the next alert must notice
    // before writing, reconnect, and lose nothing.
    r.stop();
    r.spawn();
    for a in &want[30..] {
        s.send(a, &serde_json::to_string(a).unwrap());
    }
    r.assert_received(&token, &want, daemon);
    let s = finish_syslog(s);
    assert_eq!(s.stats.sent.load(Relaxed), 60);
    assert!(s.stats.reconnects.load(Relaxed) >= 1, "{:?}", s.stats);
    assert_eq!(s.stats.dropped_queue_full.load(Relaxed) + s.stats.dropped_failed.load(Relaxed), 0);
}

#[test]
fn syslog_unix_datagram_delivers_and_counts_queue_overflow() {
    // The socket does not exist yet: the worker retries the first alert while
    // the queue (5) fills and overflows; once rsyslogd creates the socket,
    // what was held and queued arrives.
    let dir = temp_dir("rsyslog");
    let sock = format!("unix://{}/log.sock", dir.display());
    let early =
        syslog::Syslog::start(&syslog::Config { target: sock.clone(), queue: 5, facility: None }).unwrap();
    let token = random_hex(6);
    let first = alerts(&token, 50);
    early.send(&first[0], &serde_json::to_string(&first[0]).unwrap());
    std::thread::sleep(Duration::from_millis(300)); // the worker holds it, retrying
    for a in &first[1..] {
        early.send(a, &serde_json::to_string(a).unwrap());
    }
    assert_eq!(early.stats.dropped_queue_full.load(Relaxed), 44, "{:?}", early.stats);
    assert_eq!(early.stats.sent.load(Relaxed), 0);
    assert!(early.stats.retries.load(Relaxed) >= 1, "{:?}", early.stats);
    let r = Rsyslog::start_in(dir);
    r.assert_received(&token, &first[..6], syslog::LOCAL0);
    let early = finish_syslog(early);
    assert_eq!(early.stats.sent.load(Relaxed), 6);
    assert_eq!(early.stats.dropped_failed.load(Relaxed), 0);

    let local7 = syslog::parse_facility("local7").unwrap();
    let s = syslog::Syslog::start(&syslog::Config {
        target: format!("unix://{}", r.sock.display()),
        queue: 1000,
        facility: Some(local7),
    })
    .unwrap();
    let token = random_hex(6);
    let want = alerts(&token, 100);
    for a in &want {
        s.send(a, &serde_json::to_string(a).unwrap());
    }
    r.assert_received(&token, &want, local7);
    let s = finish_syslog(s);
    assert_eq!(s.stats.sent.load(Relaxed), 100);
    assert_eq!(s.stats.dropped_queue_full.load(Relaxed) + s.stats.dropped_failed.load(Relaxed), 0);
}

// ---------------------------------------------------------------- NATS

struct NatsServer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    fn start() -> NatsServer {
        need("nats-server");
        let mut n = NatsServer { dir: temp_dir("nats"), port: free_port(), child: None };
        n.spawn();
        // JetStream may need a moment after the port opens (503 until then).
        let cfg = json!({"name": "BOXWATCH", "subjects": ["boxwatch.alerts"], "storage": "file"});
        wait_until("the BOXWATCH stream to be created", Duration::from_secs(10), || {
            let reply = Client::connect(n.port).request("$JS.API.STREAM.CREATE.BOXWATCH", &cfg.to_string());
            reply["config"]["name"] == "BOXWATCH"
        });
        n
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("log")).unwrap();
        let store = self.dir.join("js");
        self.child = Some(
            Command::new(need("nats-server"))
                .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
                .arg(&store)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn nats-server: {e}: {INSTALL}")),
        );
        wait_until("nats-server to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stream_messages(&self) -> u64 {
        let info = Client::connect(self.port).request("$JS.API.STREAM.INFO.BOXWATCH", "");
        info["state"]["messages"].as_u64().unwrap_or_else(|| panic!("stream info: {info}"))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("nats-server files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Just enough of a NATS client to set up streams and watch subjects.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Client { r: BufReader::new(s.try_clone().unwrap()), w: s };
        assert!(c.line().starts_with("INFO "));
        let connect = json!({"verbose": false, "pedantic": false, "headers": true, "no_responders": true});
        write!(c.w, "CONNECT {connect}\r\nPING\r\n").unwrap();
        assert_eq!(c.line(), "PONG");
        c
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }

    /// The next message: (subject, headers, payload).
    fn next(&mut self) -> (String, String, Vec<u8>) {
        loop {
            let l = self.line();
            let w: Vec<&str> = l.split(' ').collect();
            let (hlen, total) = match w[0] {
                "MSG" => (0, w.last().unwrap().parse::<usize>().unwrap()),
                "HMSG" => (w[w.len() - 2].parse().unwrap(), w.last().unwrap().parse().unwrap()),
                "PING" => {
                    self.w.write_all(b"PONG\r\n").unwrap();
                    continue;
                }
                "" => panic!("NATS connection closed"),
                _ => continue,
            };
            let mut data = vec![0u8; total + 2];
            self.r.read_exact(&mut data).unwrap();
            data.truncate(total);
            let payload = data.split_off(hlen);
            return (w[1].to_string(), String::from_utf8(data).unwrap(), payload);
        }
    }

    fn request(&mut self, subject: &str, body: &str) -> Value {
        let inbox = format!("_INBOX.{}", random_hex(8));
        write!(self.w, "SUB {inbox} 99\r\nPUB {subject} {inbox} {}\r\n{body}\r\n", body.len()).unwrap();
        let (_, headers, payload) = self.next();
        write!(self.w, "UNSUB 99\r\n").unwrap();
        serde_json::from_slice(&payload).unwrap_or_else(|_| json!({ "headers": headers }))
    }
}

fn alert_jsons(n: usize) -> Vec<String> {
    alerts(&random_hex(6), n).iter().map(|a| serde_json::to_string(a).unwrap()).collect()
}

fn finish_nats(mut n: nats::Nats) -> nats::Nats {
    let t = Instant::now();
    n.finish(Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(2), "finish took {:?}", t.elapsed());
    n
}

#[test]
fn nats_core_publish_reaches_subscribers() {
    let srv = NatsServer::start();
    let mut sub = Client::connect(srv.port);
    sub.w.write_all(b"SUB boxwatch.core 1\r\nPING\r\n").unwrap();
    assert_eq!(sub.line(), "PONG");
    let want = alert_jsons(100);
    let n = nats::Nats::start(&nats::Config {
        url: srv.url(),
        subject: "boxwatch.core".into(),
        jetstream: false,
        queue: 1000,
    })
    .unwrap();
    for j in &want {
        n.send(j);
    }
    for (i, j) in want.iter().enumerate() {
        let (subject, _, payload) = sub.next();
        assert_eq!(subject, "boxwatch.core");
        assert_eq!(String::from_utf8(payload).unwrap(), *j, "message {i}");
    }
    let n = finish_nats(n);
    assert_eq!(n.stats.sent.load(Relaxed), 100);
    assert_eq!(n.stats.retries.load(Relaxed) + n.stats.dropped_failed.load(Relaxed), 0);
}

#[test]
fn nats_jetstream_stores_exactly_what_was_sent() {
    let srv = NatsServer::start();
    let mut sub = Client::connect(srv.port);
    sub.w.write_all(b"SUB boxwatch.alerts 1\r\nPING\r\n").unwrap();
    assert_eq!(sub.line(), "PONG");
    let want = alert_jsons(200);
    let n = nats::Nats::start(&nats::Config {
        url: srv.url(),
        subject: "boxwatch.alerts".into(),
        jetstream: true,
        queue: 1000,
    })
    .unwrap();
    for j in &want {
        n.send(j);
    }
    wait_until("200 PubAcks", T, || n.stats.sent.load(Relaxed) == 200);
    assert_eq!(srv.stream_messages(), 200);
    for (i, j) in want.iter().enumerate() {
        let (_, headers, payload) = sub.next();
        assert!(headers.contains("Nats-Msg-Id: "), "{headers}");
        assert_eq!(String::from_utf8(payload).unwrap(), *j, "message {i}");
    }
    // A subject no stream captures: 503 from the server, retried, then dropped.
    let lost = nats::Nats::start(&nats::Config {
        url: srv.url(),
        subject: "boxwatch.nowhere".into(),
        jetstream: true,
        queue: 10,
    })
    .unwrap();
    lost.send(&want[0]);
    wait_until("the alert to be given up", T, || lost.stats.dropped_failed.load(Relaxed) == 1);
    assert_eq!((lost.stats.sent.load(Relaxed), lost.stats.retries.load(Relaxed)), (0, 8));
    let n = finish_nats(n);
    assert_eq!(n.stats.retries.load(Relaxed) + n.stats.dropped_failed.load(Relaxed), 0);
}

#[test]
fn nats_jetstream_survives_a_server_kill() {
    let mut srv = NatsServer::start();
    let want = alert_jsons(200);
    let n = nats::Nats::start(&nats::Config {
        url: srv.url(),
        subject: "boxwatch.alerts".into(),
        jetstream: true,
        queue: 1000,
    })
    .unwrap();
    for (i, j) in want.iter().enumerate() {
        n.send(j);
        std::thread::sleep(Duration::from_millis(5));
        if i == 80 {
            let mut c = srv.child.take().unwrap();
            c.kill().unwrap(); // SIGKILL: no goodbye, acks in flight are lost
            c.wait().unwrap();
        }
        if i == 120 {
            wait_until("retries while the server is down", T, || n.stats.retries.load(Relaxed) > 0);
            srv.spawn();
        }
    }
    wait_until("200 PubAcks after the restart", T, || n.stats.sent.load(Relaxed) == 200);
    // Retried alerts carry their first Nats-Msg-Id: no duplicates in the stream.
    assert_eq!(srv.stream_messages(), 200);
    let n = finish_nats(n);
    let s = &n.stats;
    assert!(s.retries.load(Relaxed) > 0 && s.reconnects.load(Relaxed) >= 1, "{s:?}");
    assert_eq!(s.dropped_queue_full.load(Relaxed) + s.dropped_failed.load(Relaxed), 0, "{s:?}");
}

#[test]
fn nats_queue_overflow_is_counted() {
    let srv = NatsServer::start();
    // A stopped server accepts the TCP connection but never says INFO.
    signal(srv.child.as_ref().unwrap(), libc::SIGSTOP);
    let want = alert_jsons(50);
    let n = nats::Nats::start(&nats::Config {
        url: srv.url(),
        subject: "boxwatch.alerts".into(),
        jetstream: true,
        queue: 5,
    })
    .unwrap();
    n.send(&want[0]);
    std::thread::sleep(Duration::from_millis(300)); // the worker holds it, connecting
    for j in &want[1..] {
        n.send(j);
    }
    assert_eq!(n.stats.dropped_queue_full.load(Relaxed), 44, "{:?}", n.stats);
    signal(srv.child.as_ref().unwrap(), libc::SIGCONT);
    wait_until("the 6 queued alerts to be stored", T, || n.stats.sent.load(Relaxed) == 6);
    assert_eq!(srv.stream_messages(), 6);
    let n = finish_nats(n);
    assert_eq!(n.stats.dropped_failed.load(Relaxed), 0, "{:?}", n.stats);
}
#[test]
fn the_daemon_sends_alerts_to_syslog_and_jetstream() {
    use crate::support::{Containerd, Daemon, docker_cgroup, random_container_id};
    let r = Rsyslog::start();
    let srv = NatsServer::start();
    let ctrd = Containerd::start();
    let tcp = format!("tcp://127.0.0.1:{}", r.tcp);
    let d = Daemon::start(&[
        "--syslog",
        &tcp,
        "--syslog-facility",
        "local3",
        "--nats",
        &srv.url(),
        "--nats-jetstream",
    ]);
    let id = random_container_id();
    // Three alerts: the read, the write and the interactive-shell Notice of the last `sh`
    // (its stdin is /dev/null).
    ctrd.run(
        &id,
        &docker_cgroup(&id),
        &["sh", "-c", "cat /etc/shadow >/dev/null; touch /etc/x; sh </dev/null"],
        T,
    )
    .assert_success();
    let mine = |v: &Value| v["output_fields"]["boxwatch.container.full_id"] == id.as_str();
    d.wait_for("shell alert", T, |v| v["rule"] == "Shell spawned in a container" && mine(v));
    let logged: Vec<Value> = std::fs::read_to_string(d.log_dir.join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(mine)
        .collect();
    assert_eq!(logged.len(), 3, "{logged:?}");
    wait_until("3 syslog messages", T, || r.lines("parsed.log", &id).len() == 3);
    wait_until("3 stored in the stream", T, || srv.stream_messages() == 3);
    let stats = d.stop();
    assert!(stats.contains("alerts=3"), "{stats}");
    // local3 (19) * 8 + severity; the message is the alerts.jsonl line.
    for (line, want) in r.lines("parsed.log", &id).iter().zip(&logged) {
        let f: Vec<&str> = line.splitn(7, '|').collect();
        let sev = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"]
            .iter()
            .position(|p| want["priority"] == *p)
            .unwrap();
        assert_eq!(f[0], (19 * 8 + sev).to_string(), "{line}");
        assert_eq!(serde_json::from_str::<Value>(f[6]).unwrap(), *want);
    }
}
