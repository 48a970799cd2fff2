//! Converting the kernel's CLOCK_MONOTONIC event times to wall-clock time.

use std::time::Duration;

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

/// CLOCK_REALTIME now, Unix ns.
pub fn realtime_ns() -> u64 {
    now_ns(libc::CLOCK_REALTIME)
}

/// Maps monotonic event times to Unix time with an offset sampled from both clocks. The offset
/// moves when the wall clock is stepped (NTP) and across a suspend (CLOCK_MONOTONIC stops, the
/// wall clock does not), so it is re-sampled every `every` ([`WallClock::maybe_resync`]).
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    offset_ns: i128,
    every_ns: u64,
    /// CLOCK_MONOTONIC of the last sample.
    sampled_at: u64,
}

impl WallClock {
    /// Sampled now from the real clocks; re-sampled every `every`.
    pub fn new(every: Duration) -> Self {
        Self::from_sample(realtime_ns(), monotonic_ns(), every)
    }

    /// From one sample of both clocks (pure: tests pass fixtures).
    pub fn from_sample(realtime_ns: u64, monotonic_ns: u64, every: Duration) -> Self {
        let mut c = WallClock {
            offset_ns: 0,
            every_ns: u64::try_from(every.as_nanos()).unwrap_or(u64::MAX),
            sampled_at: 0,
        };
        c.resync_with(realtime_ns, monotonic_ns);
        c
    }

    pub fn resync_with(&mut self, realtime_ns: u64, monotonic_ns: u64) {
        self.offset_ns = i128::from(realtime_ns) - i128::from(monotonic_ns);
        self.sampled_at = monotonic_ns;
    }

    /// Re-sample with `realtime_ns()` when `every` has passed since the last sample at
    /// `monotonic_now`; whether it did.
    pub fn maybe_resync_with(&mut self, monotonic_now: u64, realtime_ns: impl FnOnce() -> u64) -> bool {
        if monotonic_now.saturating_sub(self.sampled_at) < self.every_ns {
            return false;
        }
        self.resync_with(realtime_ns(), monotonic_now);
        true
    }

    /// [`WallClock::maybe_resync_with`] the real clocks.
    pub fn maybe_resync(&mut self, monotonic_now: u64) -> bool {
        self.maybe_resync_with(monotonic_now, realtime_ns)
    }

    pub fn wall_ns(&self, ktime_ns: u64) -> u64 {
        (i128::from(ktime_ns) + self.offset_ns).max(0) as u64
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_wall_clock_step_is_picked_up_at_the_next_resync() {
        // Booted 10 s ago; wall clock 1000 s.
        let mut c = WallClock::from_sample(1000 * S, 10 * S, Duration::from_secs(10));
        assert_eq!(c.wall_ns(11 * S), 1001 * S);
        // NTP steps the wall clock forward by an hour at monotonic 12 s.
        let stepped = |mono: u64| mono + 990 * S + 3600 * S;
        assert!(!c.maybe_resync_with(12 * S, || stepped(12 * S)), "not due: sampled 2 s ago");
        assert_eq!(c.wall_ns(12 * S), 1002 * S, "stale until the resync");
        assert!(c.maybe_resync_with(20 * S, || stepped(20 * S)), "due: 10 s since the last sample");
        assert_eq!(c.wall_ns(21 * S), 4611 * S);
        assert!(!c.maybe_resync_with(29 * S, || unreachable!("sampled only when due")));
    }

    #[test]
    fn a_suspend_is_picked_up_too() {
        // CLOCK_MONOTONIC stops during a 300 s suspend; the wall clock does not.
        let mut c = WallClock::from_sample(1000 * S, 10 * S, Duration::from_secs(10));
        assert!(c.maybe_resync_with(25 * S, || (1015 + 300) * S));
        assert_eq!(c.wall_ns(26 * S), 1316 * S);
    }

    #[test]
    fn the_real_clocks_agree_with_the_system_time() {
        let c = WallClock::new(Duration::from_secs(10));
        let sys =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let diff = c.wall_ns(monotonic_ns()).abs_diff(sys);
        assert!(diff < S / 10, "{diff} ns apart");
    }
}
