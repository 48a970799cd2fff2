//! Converting the kernel's CLOCK_MONOTONIC event times to wall-clock time.

fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC now, ns (the clock of `bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC)
}

/// Maps monotonic event times to Unix time. Re-sampled on demand, so a
/// wall-clock step (NTP) is picked up by the next `resync`.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    offset_ns: i128,
}

impl WallClock {
    pub fn new() -> Self {
        let mut c = WallClock { offset_ns: 0 };
        c.resync();
        c
    }
    pub fn resync(&mut self) {
        self.offset_ns = i128::from(now_ns(libc::CLOCK_REALTIME)) - i128::from(monotonic_ns());
    }
    pub fn wall_ns(&self, ktime_ns: u64) -> u64 {
        (i128::from(ktime_ns) + self.offset_ns).max(0) as u64
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}
