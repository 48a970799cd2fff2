//! [`LookupError`]: why a lookup produced no metadata. Every variant that involves a runtime
//! names its socket, so a `<NA>` can always be traced to a path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a lookup failed. Cloneable and comparable so callers can cache or dedupe failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The id is not a container id any runtime accepts (`[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
    /// 256 bytes); nothing was sent.
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    /// The namespace hint is not a containerd namespace name; nothing was sent.
    #[error("invalid containerd namespace {0:?}")]
    InvalidNamespace(String),
    /// None of the configured sockets exists.
    #[error("no container runtime socket found: {}", Paths(.sockets))]
    NoSocket { sockets: Vec<PathBuf> },
    /// The socket exists but connecting (or the HTTP/2 handshake) failed.
    #[error("cannot connect to runtime socket {}: {reason}", .socket.display())]
    Connect { socket: PathBuf, reason: String },
    /// The runtime did not answer in time.
    #[error("runtime socket {} did not answer within {after:?}", .socket.display())]
    Timeout { socket: PathBuf, after: Duration },
    /// Every runtime that was asked says it has no such container.
    #[error("container {id} not found ({searched})")]
    NotFound { id: String, searched: String },
    /// containerd answered with a gRPC error other than NotFound.
    #[error("containerd at {}: {method} failed with gRPC status {code} ({}): {message}",
        .socket.display(), grpc_code_name(*.code))]
    Rpc { socket: PathBuf, method: &'static str, code: u32, message: String },
    /// Docker answered with an HTTP error other than 404.
    #[error("docker at {}: GET {path} returned HTTP {status}: {message}", .socket.display())]
    Http { socket: PathBuf, path: String, status: u16, message: String },
    /// The runtime's answer could not be understood.
    #[error("malformed answer from runtime socket {}: {detail}", .socket.display())]
    Protocol { socket: PathBuf, detail: String },
    /// The enricher's worker could not be started (see [`crate::Enricher::start`]).
    #[error("container enrichment is unavailable: {0}")]
    Unavailable(String),
}

impl LookupError {
    /// Whether another attempt may succeed: the container may not be registered yet (a lookup
    /// right at cgroup creation races the runtime), or the runtime is restarting or slow.
    pub fn is_retryable(&self) -> bool {
        match self {
            LookupError::NotFound { .. } | LookupError::Timeout { .. } | LookupError::Connect { .. } => true,
            // UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED.
            LookupError::Rpc { code, .. } => matches!(code, 14 | 4 | 10 | 8),
            LookupError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

struct Paths<'a>(&'a [PathBuf]);

impl fmt::Display for Paths<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("none is configured"),
            [one] => write!(f, "{} does not exist", one.display()),
            many => {
                f.write_str("none of ")?;
                for (i, p) in many.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", p.display())?;
                }
                f.write_str(" exists")
            }
        }
    }
}

/// The canonical name of a gRPC status code.
pub(crate) fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "unknown code",
    }
}

/// An id or namespace is safe to put in a URL path and an HTTP header: containerd's identifier
/// grammar `[A-Za-z0-9]+([._-][A-Za-z0-9]+)*` (Docker names and ids fit it too), relaxed to
/// allow repeated separators, at most 256 bytes.
pub(crate) fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub(crate) fn socket_path_error(socket: &Path, e: &std::io::Error) -> LookupError {
    LookupError::Connect { socket: socket.to_path_buf(), reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_socket() {
        let e = LookupError::NoSocket { sockets: vec!["/nope/containerd.sock".into()] };
        assert_eq!(e.to_string(), "no container runtime socket found: /nope/containerd.sock does not exist");
        let e = LookupError::NoSocket { sockets: vec!["/a".into(), "/b".into(), "/c".into()] };
        assert_eq!(e.to_string(), "no container runtime socket found: none of /a, /b, /c exists");
        let e = LookupError::NoSocket { sockets: vec![] };
        assert_eq!(e.to_string(), "no container runtime socket found: none is configured");
        let e = LookupError::Rpc {
            socket: "/run/c.sock".into(),
            method: "Containers/Get",
            code: 7,
            message: "denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "containerd at /run/c.sock: Containers/Get failed with gRPC status 7 (PERMISSION_DENIED): denied"
        );
        assert!(!e.is_retryable());
        let e = LookupError::Timeout { socket: "/s".into(), after: Duration::from_millis(1500) };
        assert_eq!(e.to_string(), "runtime socket /s did not answer within 1.5s");
        assert!(e.is_retryable());
    }

    #[test]
    fn identifiers() {
        for ok in ["a", "0123abcdef", "k8s.io", "my_ctr-1.2", "x".repeat(256).as_str()] {
            assert!(valid_identifier(ok), "{ok}");
        }
        for bad in ["", "-a", ".", "a/b", "a b", "a\r\nHost: x", "é", "x".repeat(257).as_str(), "a?b", "a%2f"]
        {
            assert!(!valid_identifier(bad), "{bad:?}");
        }
    }
}
