//! Diagnostics on stderr through `tracing`: `--log-level` (or `RUST_LOG`; default `info`) and
//! `--log-format text|json`. The text format prints each message as boxwatch always has —
//! `boxwatch: <message>` with no timestamp or level — so the `boxwatch: ready: …` and
//! `boxwatch: stats …` lines that users and tests read stay byte for byte; structured fields
//! follow as ` key=value`. The JSON format is one object per line (timestamp, level, target,
//! message, fields).

use std::fmt;

use anyhow::{Context, Result};
use clap::ValueEnum;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::VisitOutput;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `boxwatch: <message>` lines, as before.
    Text,
    /// One JSON object per line.
    Json,
}

/// `boxwatch: ` + the message and fields.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        w.write_str("boxwatch: ")?;
        let mut v = DefaultVisitor::new(w.by_ref(), true);
        event.record(&mut v);
        v.finish()?;
        writeln!(w)
    }
}

/// The filter: `level` (a level or `tracing` directives such as `boxwatch=debug`), else
/// `RUST_LOG`, else `info`.
pub fn filter(level: Option<&str>) -> Result<EnvFilter> {
    match level {
        Some(l) => EnvFilter::try_new(l).with_context(|| format!("--log-level: cannot parse {l:?}")),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => {
                EnvFilter::try_new(&v).with_context(|| format!("RUST_LOG: cannot parse {v:?}"))
            }
            _ => Ok(EnvFilter::new("info")),
        },
    }
}

/// Install the stderr subscriber for the whole process.
pub fn init(level: Option<&str>, format: LogFormat) -> Result<()> {
    let b = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter(level)?);
    let r = match format {
        LogFormat::Text => b.with_ansi(false).event_format(Plain).try_init(),
        LogFormat::Json => b.json().flatten_event(true).with_current_span(false).try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("install the log subscriber: {e}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let w = buf.clone();
        let b = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_env_filter(filter(Some("info")).unwrap());
        match format {
            LogFormat::Text => {
                tracing::subscriber::with_default(b.with_ansi(false).event_format(Plain).finish(), f)
            }
            LogFormat::Json => tracing::subscriber::with_default(
                b.json().flatten_event(true).with_current_span(false).finish(),
                f,
            ),
        }
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn text_prints_messages_as_before() {
        let out = capture(LogFormat::Text, || {
            tracing::info!("ready: 92 hooks attached, 0 degraded; metrics on http://127.0.0.1:1/metrics");
            tracing::info!("stats kernel_emitted=1 received=1");
            tracing::debug!("not shown at info");
            tracing::warn!(path = "/x", "config reload failed");
        });
        assert_eq!(
            out,
            "boxwatch: ready: 92 hooks attached, 0 degraded; metrics on http://127.0.0.1:1/metrics\n\
             boxwatch: stats kernel_emitted=1 received=1\n\
             boxwatch: config reload failed path=\"/x\"\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line() {
        let out = capture(LogFormat::Json, || tracing::info!(rules = 40, "rules reloaded"));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!((v["level"].as_str(), v["message"].as_str()), (Some("INFO"), Some("rules reloaded")));
        assert_eq!(v["rules"], 40);
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn bad_levels_are_errors() {
        assert!(filter(Some("loud[")).unwrap_err().to_string().contains("--log-level"));
        assert!(filter(Some("debug")).is_ok());
    }
}
