//! The kernel-to-alert slice: events from inside a container attributed to
//! it, alerts raised, host processes filtered out in the kernel.

use std::time::Duration;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn shadow_read_and_etc_write_in_container_raise_alerts() {
    let ctrd = Containerd::start();
    let d = Daemon::start(&[]);
    let id = random_container_id();
    let out =
        ctrd.run(&id, &docker_cgroup(&id), &["sh", "-c", "cat /etc/shadow >/dev/null; touch /etc/x"], T);
    out.assert_success();
    let open = d.wait_for("open of /etc/shadow in the container", T, |v| {
        v["type"] == "event" && v["container"]["id"] == id.as_str() && v["path"] == "/etc/shadow"
    });
    assert_eq!(open["container"]["runtime"], "docker");
    assert_eq!(open["syscall"], "openat");
    assert!(open["ret"].as_i64().unwrap() >= 0, "{open}");
    assert_eq!(open["process"]["comm"], "cat");
    d.wait_for("sensitive-file alert", T, |v| {
        v["rule"] == "Sensitive file read in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
    });
    let w = d.wait_for("write-below-etc alert", T, |v| {
        v["rule"] == "Write below /etc in a container"
            && v["output_fields"]["boxwatch.container.full_id"] == id.as_str()
    });
    assert_eq!(w["output_fields"]["container.id"], &id[..12]);
    assert_eq!(w["output_fields"]["fd.name"], "/etc/x");
    assert_eq!(w["source"], "syscall");
    let stats = d.stop();
    assert!(stats.contains("kernel_ringbuf_full=0") && stats.contains("userspace_queue_full=0"), "{stats}");
}
