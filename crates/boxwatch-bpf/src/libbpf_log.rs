//! libbpf's own messages (verifier logs, attach failures) are captured here
//! instead of being printed, so an error can carry the lines that explain it
//! and `-v` can show them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use libbpf_rs::PrintLevel;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static ECHO: AtomicBool = AtomicBool::new(false);
const KEEP: usize = 60;

fn sink(level: PrintLevel, msg: String) {
    if ECHO.load(Ordering::Relaxed) {
        eprint!("libbpf: {msg}");
    }
    if matches!(level, PrintLevel::Debug) {
        return;
    }
    if let Ok(mut lines) = LINES.lock() {
        if lines.len() >= KEEP {
            lines.remove(0);
        }
        lines.push(msg.trim_end().to_string());
    }
}

/// Install the capture (idempotent). `echo` also prints libbpf's messages to stderr.
pub(crate) fn install(echo: bool) {
    ECHO.store(echo, Ordering::Relaxed);
    let level = if echo { PrintLevel::Debug } else { PrintLevel::Info };
    libbpf_rs::set_print(Some((level, sink)));
}

/// Take the captured lines, formatted as an indented block ("" if none).
pub(crate) fn take() -> String {
    let lines = match LINES.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(_) => return String::new(),
    };
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nlibbpf said:");
    for l in lines {
        s.push_str("\n  ");
        s.push_str(&l);
    }
    s
}
