//! Unary gRPC calls over HTTP/2 (the `h2` crate) on a unix socket: just what talking to
//! containerd needs. Requests are one length-prefixed protobuf message; the answer is one
//! message plus the `grpc-status`/`grpc-message` trailers (or a trailers-only response).
//! No compression, no TLS, no streaming.

use std::path::Path;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderMap, Method, Request};
use tokio::net::UnixStream;

use crate::error::{LookupError, socket_path_error};

/// Largest answer accepted (containerd's own default receive limit is 16 MiB).
pub(crate) const MAX_MESSAGE: usize = 16 << 20;
const WINDOW: u32 = 4 << 20;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The server answered with a gRPC status other than OK.
    Status { code: u32, message: String },
    /// The connection broke (or the server reset the stream): reconnecting may help.
    Transport(String),
    /// The answer is not gRPC as expected.
    Protocol(String),
}

/// Connects to `socket` and performs the HTTP/2 handshake. The connection is driven by a task
/// spawned on the current runtime; it ends when every [`SendRequest`] clone is dropped.
pub(crate) async fn connect(socket: &Path) -> Result<SendRequest<Bytes>, LookupError> {
    let stream = UnixStream::connect(socket).await.map_err(|e| socket_path_error(socket, &e))?;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(|e| LookupError::Connect {
            socket: socket.to_path_buf(),
            reason: format!("HTTP/2 handshake failed: {e}"),
        })?;
    tokio::spawn(async move {
        // The error (if any) surfaces on the next request; nothing to do with it here.
        let _ = conn.await;
    });
    Ok(send)
}

/// One unary call of `method` (`/package.Service/Method`) with the encoded `message`, with an
/// optional `containerd-namespace` header. Returns the encoded answer.
pub(crate) async fn unary(
    send: &SendRequest<Bytes>,
    method: &str,
    namespace: Option<&str>,
    message: &[u8],
) -> Result<Bytes, CallError> {
    let mut send = send.clone().ready().await.map_err(|e| CallError::Transport(e.to_string()))?;
    let mut req = Request::builder()
        .method(Method::POST)
        // The authority is not used by containerd; gRPC clients for unix sockets send "localhost".
        .uri(format!("http://localhost{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", concat!("boxwatch-runtime/", env!("CARGO_PKG_VERSION")));
    if let Some(ns) = namespace {
        req = req.header("containerd-namespace", ns);
    }
    let req = req.body(()).map_err(|e| CallError::Protocol(format!("cannot build request: {e}")))?;

    let (response, mut body_out) =
        send.send_request(req, false).map_err(|e| CallError::Transport(e.to_string()))?;
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    body_out.send_data(Bytes::from(frame), true).map_err(|e| CallError::Transport(e.to_string()))?;

    let response = response.await.map_err(|e| CallError::Transport(e.to_string()))?;
    let (parts, mut body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(CallError::Protocol(format!("HTTP status {} instead of 200", parts.status)));
    }
    // A "trailers-only" answer carries the status in the headers (how errors usually come).
    if let Some((code, message)) = grpc_status(&parts.headers)?
        && code != 0
    {
        return Err(CallError::Status { code, message });
    }

    let mut data: Vec<u8> = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| CallError::Transport(e.to_string()))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > MAX_MESSAGE + 5 {
            return Err(CallError::Protocol(format!("answer larger than {MAX_MESSAGE} bytes")));
        }
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.map_err(|e| CallError::Transport(e.to_string()))?;
    match trailers.as_ref().map(grpc_status).transpose()?.flatten() {
        Some((0, _)) => {}
        Some((code, message)) => return Err(CallError::Status { code, message }),
        None if grpc_status(&parts.headers)?.is_some() => {}
        None => return Err(CallError::Protocol("answer without grpc-status".into())),
    }
    parse_frame(&data).map(Bytes::copy_from_slice)
}

/// The single length-prefixed message of a unary answer.
fn parse_frame(data: &[u8]) -> Result<&[u8], CallError> {
    if data.len() < 5 {
        return Err(CallError::Protocol(format!("answer of {} bytes has no gRPC message", data.len())));
    }
    if data[0] != 0 {
        return Err(CallError::Protocol("compressed answer (no compression was offered)".into()));
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    data.get(5..5 + len).ok_or_else(|| CallError::Protocol(format!("gRPC message of {len} bytes truncated")))
}

/// `grpc-status` and (percent-decoded) `grpc-message`, if the status is present.
fn grpc_status(h: &HeaderMap) -> Result<Option<(u32, String)>, CallError> {
    let Some(v) = h.get("grpc-status") else {
        return Ok(None);
    };
    let code = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| CallError::Protocol(format!("bad grpc-status {v:?}")))?;
    let message = h.get("grpc-message").map(|m| percent_decode(m.as_bytes())).unwrap_or_default();
    Ok(Some((code, message)))
}

fn percent_decode(s: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"container%20%22x%22: not found"), "container \"x\": not found");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        assert_eq!(percent_decode(b"%E2%9C%93"), "\u{2713}");
        assert_eq!(percent_decode(b"%ff"), "\u{fffd}");
    }

    #[test]
    fn frames() {
        assert_eq!(parse_frame(&[0, 0, 0, 0, 2, 7, 8, 9]).ok(), Some(&[7u8, 8][..]));
        assert_eq!(parse_frame(&[0, 0, 0, 0, 0]).ok(), Some(&[][..]));
        assert!(matches!(parse_frame(&[0, 0, 0, 0, 3, 1]), Err(CallError::Protocol(_))));
        assert!(matches!(parse_frame(&[1, 0, 0, 0, 0]), Err(CallError::Protocol(_))));
        assert!(matches!(parse_frame(&[0, 0]), Err(CallError::Protocol(_))));
        assert!(matches!(parse_frame(&[0, 0xff, 0xff, 0xff, 0xff]), Err(CallError::Protocol(_))));
    }

    #[test]
    fn status_headers() {
        let mut h = HeaderMap::new();
        assert!(matches!(grpc_status(&h), Ok(None)));
        h.insert("grpc-status", "5".parse().unwrap());
        h.insert(
            "grpc-message",
            "container%20%22x%22%20in%20namespace%20%22y%22:%20not%20found".parse().unwrap(),
        );
        let (code, msg) = grpc_status(&h).unwrap().unwrap();
        assert_eq!((code, msg.as_str()), (5, "container \"x\" in namespace \"y\": not found"));
        h.insert("grpc-status", "five".parse().unwrap());
        assert!(matches!(grpc_status(&h), Err(CallError::Protocol(_))));
    }
}
