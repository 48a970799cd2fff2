//! The plumbing every network output shares (webhook, syslog, NATS): a
//! bounded queue in front of one delivery thread, so `send` never blocks the
//! daemon, a full queue is counted rather than waited on, and shutdown
//! drains what is queued within a deadline. [`DeliveryStats`] are the counters
//! every such output keeps, reported the same way by each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::{SinkStat, StatKind};

/// Counters of an output that delivers through an [`Outbox`].
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Alerts delivered (sent, stored, acknowledged: each output says what counts).
    pub sent: AtomicU64,
    /// Deliveries attempted again after a failure.
    pub retries: AtomicU64,
    /// Connections (re)opened after the first.
    pub reconnects: AtomicU64,
    /// Alerts not accepted because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Alerts given up after every retry failed (or refused for good).
    pub dropped_failed: AtomicU64,
}

impl DeliveryStats {
    /// The counters as [`SinkStat`]s of `output`: `queue_full`, `failed`, `sent`, and
    /// `retries` / `reconnects` for outputs that retry / hold a connection.
    pub fn sink_stats(&self, output: &'static str, retries: bool, reconnects: bool) -> Vec<SinkStat> {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = vec![
            SinkStat::new(output, "queue_full", StatKind::DeliveryFailure, v(&self.dropped_queue_full)),
            SinkStat::new(output, "failed", StatKind::DeliveryFailure, v(&self.dropped_failed)),
            SinkStat::new(output, "sent", StatKind::Delivered, v(&self.sent)),
        ];
        if retries {
            s.push(SinkStat::new(output, "retries", StatKind::Retries, v(&self.retries)));
        }
        if reconnects {
            s.push(SinkStat::new(output, "reconnects", StatKind::Reconnects, v(&self.reconnects)));
        }
        s
    }
}

/// A bounded queue of `T` drained by one named worker thread.
#[derive(Debug)]
pub struct Outbox<T> {
    /// Output name for messages ("webhook", "syslog", "NATS").
    name: &'static str,
    tx: Option<SyncSender<T>>,
    worker: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Outbox<T> {
    /// Start `worker` on its own thread with a queue of `queue` items (at least 1).
    /// The worker returns when the queue is closed and empty.
    pub fn start(
        name: &'static str,
        queue: usize,
        worker: impl FnOnce(Receiver<T>) + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx) = sync_channel(queue.max(1));
        let worker = std::thread::Builder::new()
            .name(format!("bw-{}", name.to_lowercase()))
            .spawn(move || worker(rx))
            .map_err(|source| Error::Io { context: format!("start {name} thread"), source })?;
        Ok(Outbox { name, tx: Some(tx), worker: Some(worker) })
    }

    /// Queue one item without blocking; `false` (the caller counts it) when the queue is
    /// full or the output has stopped.
    pub fn send(&self, item: T) -> bool {
        match &self.tx {
            Some(tx) => {
                !matches!(tx.try_send(item), Err(TrySendError::Full(_) | TrySendError::Disconnected(_)))
            }
            None => false,
        }
    }

    /// Close the queue and let the worker deliver what is queued, for at most `deadline`.
    pub fn finish(&mut self, deadline: Duration) {
        self.tx = None;
        let t = Instant::now();
        if let Some(w) = self.worker.take() {
            while !w.is_finished() && t.elapsed() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if w.is_finished() {
                let _ = w.join();
            } else {
                eprintln!(
                    "boxwatch: {} still delivering after {deadline:?}; undelivered alerts are in alerts.jsonl",
                    self.name
                );
            }
        }
    }
}

/// Count an item that did not fit the queue.
pub fn count_drop(sent: bool, dropped: &AtomicU64) {
    if !sent {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_refuses_and_finish_drains() {
        let got = std::sync::Arc::new(AtomicU64::new(0));
        let g = std::sync::Arc::clone(&got);
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let mut o = Outbox::start("test", 2, move |rx: Receiver<u32>| {
            let _ = gate_rx.recv();
            for _ in rx {
                g.fetch_add(1, Ordering::Relaxed);
            }
        })
        .unwrap();
        assert!(o.send(1) && o.send(2));
        assert!(!o.send(3), "queue of 2 is full while the worker waits");
        gate_tx.send(()).unwrap();
        o.finish(Duration::from_secs(5));
        assert_eq!(got.load(Ordering::Relaxed), 2);
        assert!(!o.send(4), "a finished outbox refuses");
    }
}
