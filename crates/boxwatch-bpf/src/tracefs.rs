//! Locating (and if needed mounting) tracefs, which `tp/` attachment needs.

use std::path::{Path, PathBuf};

use crate::Error;

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs mount point, if tracefs is mounted.
pub fn find() -> Option<PathBuf> {
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.join("events").is_dir())
}

/// The tracefs mount point, mounting tracefs at /sys/kernel/tracing if missing.
pub fn ensure() -> Result<PathBuf, Error> {
    if let Some(p) = find() {
        return Ok(p);
    }
    let target = Path::new(CANDIDATES[0]);
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in literal");
    let (src, dst, fs) = (c("nodev"), c(CANDIDATES[0]), c("tracefs"));
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call; data is NULL.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(Error::Tracefs { path: target.into(), source: std::io::Error::last_os_error() });
    }
    Ok(target.into())
}

/// Whether tracepoint `category/name` exists (per tracefs).
pub fn tracepoint_exists(tracefs: &Path, category: &str, name: &str) -> bool {
    tracefs.join("events").join(category).join(name).is_dir()
}
