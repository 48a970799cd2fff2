//! An append-only JSON-lines log with size and age rotation (`alerts.jsonl` →
//! `alerts.jsonl.1` → … → `alerts.jsonl.<keep>`, oldest dropped) and a
//! documented durability policy:
//!
//! - every line is handed to the kernel (`write`) when the sink flushes: at once for
//!   alerts, at least every poll interval for events;
//! - `sync_data` (fsync) runs at most once per `sync_every` and always at shutdown and,
//!   for a file with a `sync_every`, before a rotation, so a power loss costs at most
//!   that much of the file. A bulk log (events, no `sync_every`) is not fsync'd at
//!   rotation: at 100k events/s that was a 100 MiB fsync on the processor thread every
//!   few seconds (tens of ms of stall); the kernel writes it back;
//! - a rotation renames, never copies, so nothing is written twice or lost.
//!
//! [`LogSink`] is the output: `alerts.jsonl` (every alert, flushed at once, fsync'd at
//! most once a second) and `events.jsonl` (every event and container line; optional).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Ctx, Result};
use crate::{AlertOut, AlertSubscriber, ContainerOut, EventOut, Sink, SinkStat, StatKind};

/// Rotation and durability settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Rotate when the file reaches this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotate when the current file has been written for this long (None: never).
    pub max_age: Option<Duration>,
    /// Rotated files kept (`.1` … `.keep`).
    pub keep: u32,
    /// fsync at most this often and before a rotation (None: only at shutdown).
    pub sync_every: Option<Duration>,
}

#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
    policy: Policy,
    last_sync: Instant,
    /// When the current file was opened (or rotated in).
    opened: Instant,
    dirty: bool,
}

fn open(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    let f = OpenOptions::new().create(true).append(true).mode(0o640).open(path)?;
    let len = f.metadata()?.len();
    Ok((BufWriter::with_capacity(64 * 1024, f), len))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl LogFile {
    pub fn open(path: &Path, policy: Policy) -> std::io::Result<LogFile> {
        let (out, bytes) = open(path)?;
        let now = Instant::now();
        Ok(LogFile {
            path: path.to_path_buf(),
            out,
            bytes,
            policy,
            last_sync: now,
            opened: now,
            dirty: false,
        })
    }

    /// Append one line (a newline is added).
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let too_big = self.policy.max_bytes > 0 && self.bytes + line.len() as u64 + 1 > self.policy.max_bytes;
        let too_old = self.policy.max_age.is_some_and(|age| self.opened.elapsed() >= age);
        if (too_big || too_old) && self.bytes > 0 {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.bytes += line.len() as u64 + 1;
        self.dirty = true;
        Ok(())
    }

    /// Hand buffered lines to the kernel; fsync if the policy says it is time.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if let Some(every) = self.policy.sync_every
            && self.dirty
            && self.last_sync.elapsed() >= every
        {
            self.sync()?;
        }
        Ok(())
    }

    /// Flush and fsync now (shutdown; rotation of a synced log).
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        self.last_sync = Instant::now();
        self.dirty = false;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.policy.sync_every.is_some() {
            self.sync()?;
        } else {
            self.out.flush()?;
        }
        let keep = self.policy.keep.max(1);
        let _ = std::fs::remove_file(rotated(&self.path, keep));
        for n in (1..keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        let (out, bytes) = open(&self.path)?;
        self.out = out;
        self.bytes = bytes;
        self.opened = Instant::now();
        Ok(())
    }
}

/// Settings of the log directory's files.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Write events.jsonl (alerts.jsonl is always written).
    pub events: bool,
    /// Rotate at this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotate after this long (None: never).
    pub max_age: Option<Duration>,
    /// Rotated files kept.
    pub keep: u32,
}

/// `alerts.jsonl` and `events.jsonl` in the log directory (created with mode 0750).
#[derive(Debug)]
pub struct LogSink {
    alerts: LogFile,
    events: Option<LogFile>,
    write_errors: u64,
}

fn open_log(dir: &Path, name: &str, policy: Policy) -> Result<LogFile> {
    let path = dir.join(name);
    LogFile::open(&path, policy).ctx(|| format!("open log file {}", path.display()))
}

impl LogSink {
    pub fn open(dir: &Path, cfg: &Config) -> Result<LogSink> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .ctx(|| format!("create log directory {}", dir.display()))?;
        let policy = Policy {
            max_bytes: cfg.max_bytes,
            max_age: cfg.max_age,
            keep: cfg.keep,
            // Alerts: fsync at most once a second (and at rotation and shutdown).
            sync_every: Some(Duration::from_secs(1)),
        };
        Ok(LogSink {
            // Events are bulk data: fsync only at shutdown.
            events: if cfg.events {
                Some(open_log(dir, "events.jsonl", Policy { sync_every: None, ..policy })?)
            } else {
                None
            },
            alerts: open_log(dir, "alerts.jsonl", policy)?,
            write_errors: 0,
        })
    }

    fn count(&mut self, r: std::io::Result<()>) {
        if r.is_err() {
            self.write_errors += 1;
        }
    }
}

impl AlertSubscriber for LogSink {
    fn describe(&self) -> String {
        let files = if self.events.is_some() { "alerts.jsonl + events.jsonl" } else { "alerts.jsonl" };
        files.to_string()
    }

    fn alert(&mut self, a: &AlertOut<'_>) {
        let r = self.alerts.write_line(a.json()).and_then(|_| self.alerts.flush());
        self.count(r);
    }

    fn flush(&mut self) {
        if let Some(w) = self.events.as_mut() {
            let r = w.flush();
            self.count(r);
        }
        let r = self.alerts.flush();
        self.count(r);
    }

    /// Flush and fsync both files.
    fn close(&mut self, _deadline: Duration) {
        self.flush();
        if let Some(w) = self.events.as_mut() {
            let r = w.sync();
            self.count(r);
        }
        let r = self.alerts.sync();
        self.count(r);
    }

    fn stats(&self) -> Vec<SinkStat> {
        vec![SinkStat::new("logfiles", "write_errors", StatKind::WriteErrors, self.write_errors)]
    }
}

impl Sink for LogSink {
    fn wants_events(&self) -> bool {
        self.events.is_some()
    }

    fn event(&mut self, e: &EventOut<'_>) {
        if let Some(w) = self.events.as_mut()
            && w.write_line(e.json()).is_err()
        {
            self.write_errors += 1;
        }
    }

    fn container(&mut self, c: &ContainerOut<'_>) {
        if let Some(w) = self.events.as_mut()
            && w.write_line(c.json()).is_err()
        {
            self.write_errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("bw-logfile-{}-{:?}", std::process::id(), Instant::now()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rotates_by_size_keeping_n_files_and_loses_no_line() {
        let d = tmpdir();
        let p = d.join("alerts.jsonl");
        let policy = Policy { max_bytes: 1000, max_age: None, keep: 3, sync_every: Some(Duration::ZERO) };
        let mut f = LogFile::open(&p, policy).unwrap();
        let line = "x".repeat(99); // 100 bytes with the newline
        for i in 0..35 {
            f.write_line(&format!("{i:02}{}", &line[2..])).unwrap();
        }
        f.sync().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        // 35 lines of 100 bytes, 10 per file: current holds 5, .1 and .2 and .3 hold 10 each.
        assert_eq!(read(&p).lines().count(), 5);
        assert_eq!(read(&rotated(&p, 1)).lines().count(), 10);
        assert_eq!(read(&rotated(&p, 3)).lines().count(), 10);
        assert!(!rotated(&p, 4).exists(), "only 3 rotated files are kept");
        assert!(read(&rotated(&p, 3)).starts_with("00"));
        assert!(read(&p).lines().last().unwrap().starts_with("34"));
        // Reopening appends after what is there.
        drop(f);
        let mut f = LogFile::open(&p, policy).unwrap();
        f.write_line("35").unwrap();
        f.sync().unwrap();
        assert_eq!(read(&p).lines().count(), 6);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn rotates_by_age() {
        let d = tmpdir();
        let p = d.join("alerts.jsonl");
        let policy =
            Policy { max_bytes: 0, max_age: Some(Duration::from_millis(50)), keep: 2, sync_every: None };
        let mut f = LogFile::open(&p, policy).unwrap();
        f.write_line("old").unwrap();
        std::thread::sleep(Duration::from_millis(80));
        f.write_line("new").unwrap();
        f.sync().unwrap();
        assert_eq!(std::fs::read_to_string(rotated(&p, 1)).unwrap(), "old\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn no_rotation_when_unbounded() {
        let d = tmpdir();
        let p = d.join("events.jsonl");
        let mut f =
            LogFile::open(&p, Policy { max_bytes: 0, max_age: None, keep: 5, sync_every: None }).unwrap();
        for _ in 0..100 {
            f.write_line("0123456789").unwrap();
        }
        f.flush().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 1100);
        assert!(!rotated(&p, 1).exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
