//! Network events from inside a real container: socket, bind, listen,
//! connect, accept (peer address) and sendto over IPv4, IPv6 and unix
//! sockets, plus a raw AF_PACKET socket. A server and its client run in the
//! same container (its own network namespace: the fixed ports are free).

use serde_json::{Value, json};

use crate::probe::*;
use crate::support::*;

#[test]
fn socket_syscalls_in_container() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let t = run_python(
        &ctrd,
        &d,
        r#"
def pair(fam, srv_addr, cli_addr, backlog):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind(srv_addr)
    s.listen(backlog)
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.bind(cli_addr)
    c.connect(srv_addr)
    a, peer = s.accept()
    return [s.fileno(), c.fileno(), a.fileno()], (s, c, a)
out["v4"], keep4 = pair(socket.AF_INET, ("127.0.0.1", 47011), ("127.0.0.1", 47012), 7)
out["v6"], keep6 = pair(socket.AF_INET6, ("::1", 47013), ("::1", 47014), 3)
out["unix"], keepu = pair(socket.AF_UNIX, "/tmp/bw-srv.sock", "/tmp/bw-cli.sock", 2)
u = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
out["unreach_fd"] = u.fileno()
try:
    u.connect(("10.213.7.9", 4444))
except OSError as e:
    out["unreach"] = -e.errno
ab = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
out["abstract_fd"] = ab.fileno()
try:
    ab.connect("\0bw-abstract-probe")
except OSError as e:
    out["abstract"] = -e.errno
g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out["udp_fd"] = g.fileno()
out["sendto"] = g.sendto(b"bw", ("127.0.0.1", 47020))
out["packet"] = err(libc.socket(17, 3, 0x300))  # AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)
"#,
    );
    for v in &t.events {
        assert_attributed(v, &t.id);
    }
    let inet = |ip: &str, port: u16| json!({"family": "inet", "ip": ip, "port": port});
    let inet6 = |ip: &str, port: u16| json!({"family": "inet6", "ip": ip, "port": port});
    let unix = |path: &str, abs: bool| json!({"family": "unix", "path": path, "abstract": abs});
    let fds = |key: &str| -> [i64; 3] {
        let a = t.out[key].as_array().unwrap_or_else(|| panic!("no {key} in {}", t.out));
        [0, 1, 2].map(|i| a[i].as_i64().unwrap())
    };
    const SOCK_CLOEXEC: u64 = 0o2000000;

    for (key, domain, srv, cli, backlog) in [
        ("v4", 2, inet("127.0.0.1", 47011), inet("127.0.0.1", 47012), 7),
        ("v6", 10, inet6("::1", 47013), inet6("::1", 47014), 3),
        ("unix", 1, unix("/tmp/bw-srv.sock", false), unix("/tmp/bw-cli.sock", false), 2),
    ] {
        let [s, c, a] = fds(key);
        let what = |w: &str| format!("{key}: {w}");
        // socket(): python adds SOCK_CLOEXEC to SOCK_STREAM (1)
        let sock =
            t.one("python3", "socket", &what("server socket"), |v| ret_is(v, s) && v["domain"] == domain);
        assert_eq!(
            (&sock["sock_type"], &sock["protocol"]),
            (&json!(1 | SOCK_CLOEXEC), &json!(0)),
            "{}",
            brief(sock)
        );
        let b = t.one("python3", "bind", &what("server bind"), |v| v["addr"] == srv);
        assert_eq!((b["fd"].as_i64(), ret(b)), (Some(s), 0));
        let b = t.one("python3", "bind", &what("client bind"), |v| v["addr"] == cli);
        assert_eq!((b["fd"].as_i64(), ret(b)), (Some(c), 0));
        let l = t.one("python3", "listen", &what("listen"), |v| v["backlog"] == backlog);
        assert_eq!((l["fd"].as_i64(), ret(l)), (Some(s), 0));
        let k = t.one("python3", "connect", &what("connect"), |v| v["addr"] == srv);
        assert_eq!((k["fd"].as_i64(), ret(k)), (Some(c), 0));
        // accept: the peer is the client's bound address
        let acc = t.one("python3", "accept", &what("accept"), |v| v["peer"] == cli);
        assert_eq!((acc["fd"].as_i64(), ret(acc)), (Some(s), a), "{}", brief(acc));
        assert_eq!(acc["syscall"], "accept4");
    }

    let fd = |k: &str| Some(t.out_i64(k));
    assert_eq!(t.out_i64("unreach"), ENETUNREACH, "only lo in the container's netns: {}", t.out);
    let k = t.one("python3", "connect", "unreachable IPv4", |v| v["addr"] == inet("10.213.7.9", 4444));
    assert_eq!((k["fd"].as_i64(), ret(k)), (fd("unreach_fd"), ENETUNREACH));
    let k = t.one("python3", "connect", "abstract unix", |v| v["addr"] == unix("bw-abstract-probe", true));
    assert_eq!((k["fd"].as_i64(), ret(k)), (fd("abstract_fd"), t.out_i64("abstract")));
    assert!(ret(k) < 0, "{}", brief(k));

    let st = t.one("python3", "sendto", "UDP sendto", |v| v["addr"] == inet("127.0.0.1", 47020));
    assert_eq!((st["fd"].as_i64(), ret(st)), (fd("udp_fd"), 2));
    let sock =
        t.one("python3", "socket", "UDP socket", |v| v["domain"] == 2 && ret_is(v, t.out_i64("udp_fd")));
    assert_eq!(sock["sock_type"], json!(2 | SOCK_CLOEXEC));

    // The runc default spec keeps CAP_NET_RAW: the raw packet socket opens.
    let p = t.one("python3", "socket", "AF_PACKET", |v| v["domain"] == 17);
    assert_eq!((&p["sock_type"], &p["protocol"]), (&json!(3), &json!(0x300)), "{}", brief(p));
    assert_eq!(ret(p), t.out_i64("packet"));
    assert!(ret(p) >= 3, "raw socket refused: {}", brief(p));
    assert_ne!(p["process"]["cap_effective"].as_u64().unwrap() & (1 << 13), 0, "CAP_NET_RAW");
    d.stop();
}

fn ret_is(v: &Value, r: i64) -> bool {
    v["ret"].as_i64() == Some(r)
}
