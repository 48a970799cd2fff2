//! Docker Engine API: `GET /containers/{id}/json` over the unix socket, HTTP/1.1 with
//! `Connection: close` (one short connection per lookup). The unversioned path is served by
//! every Engine version with its own default API version; only long-stable fields are read.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{LookupError, socket_path_error};
use crate::meta::{self, Metadata};

/// Largest answer accepted (an inspect document is a few KiB).
const MAX_ANSWER: usize = 4 << 20;
const MAX_HEADER: usize = 64 << 10;

/// Looks `id` up; `Ok(None)` when Docker answers 404. `id` must already be validated (it goes
/// into the request line).
pub(crate) async fn lookup(socket: &Path, id: &str) -> Result<Option<Metadata>, LookupError> {
    let path = format!("/containers/{id}/json");
    let mut stream = UnixStream::connect(socket).await.map_err(|e| socket_path_error(socket, &e))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: boxwatch-runtime/{}\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let io_err = |e: std::io::Error| LookupError::Connect {
        socket: socket.to_path_buf(),
        reason: format!("GET {path}: {e}"),
    };
    stream.write_all(request.as_bytes()).await.map_err(io_err)?;

    let protocol = |detail: String| LookupError::Protocol {
        socket: socket.to_path_buf(),
        detail: format!("GET {path}: {detail}"),
    };
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    let (status, body) = loop {
        let n = stream.read(&mut chunk).await.map_err(io_err)?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_ANSWER {
            return Err(protocol(format!("answer larger than {MAX_ANSWER} bytes")));
        }
        match parse_response(&buf, n == 0).map_err(protocol)? {
            Some(done) => break done,
            None if n == 0 => {
                return Err(protocol("connection closed before the answer was complete".into()));
            }
            None => {}
        }
    };
    match status {
        200 => meta::from_docker_json(&body).map(Some).map_err(protocol),
        404 => Ok(None),
        _ => Err(LookupError::Http {
            socket: socket.to_path_buf(),
            path,
            status,
            message: error_message(&body),
        }),
    }
}

/// Docker's error body is `{"message": "..."}`; fall back to the (truncated) text.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Err {
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Err>(body) {
        return e.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Parses an HTTP/1.1 response read so far: `Ok(None)` if more bytes are needed, else the
/// status and the (de-chunked) body. `eof` says the peer closed the connection.
pub(crate) fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some(head_len) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEADER {
            return Err("HTTP header too large".into());
        }
        return if eof && !buf.is_empty() { Err("not an HTTP response".into()) } else { Ok(None) };
    };
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| "HTTP header is not UTF-8".to_string())?;
    let body = &buf[head_len + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 response: {status_line:?}"));
    }
    let status: u16 = code.parse().map_err(|_| format!("bad HTTP status line {status_line:?}"))?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad HTTP header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| format!("bad Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().split(',').any(|t| t.trim() == "chunked");
        }
    }
    let body = match length {
        _ if chunked => dechunk(body)?,
        Some(n) => body.get(..n).map(<[u8]>::to_vec),
        None if eof => Some(body.to_vec()),
        None => None,
    };
    Ok(body.map(|b| (status, b)))
}

/// Decodes a chunked body: `Ok(None)` while incomplete.
fn dechunk(mut body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(body, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size line".to_string())?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        let rest = &body[line_end + 2..];
        if size == 0 {
            // Trailers (none expected) end with an empty line; the body is complete either way
            // once the last chunk is seen.
            return Ok(Some(out));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("chunk not terminated by CRLF".into());
        }
        out.extend_from_slice(&rest[..size]);
        body = &rest[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(r, false), Ok(Some((200, b"{}".to_vec()))));
        assert_eq!(parse_response(&r[..r.len() - 1], false), Ok(None));
        assert_eq!(parse_response(&r[..20], false), Ok(None));
        assert_eq!(parse_response(b"", true), Ok(None));
    }

    #[test]
    fn chunked() {
        let r = b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"me\r\n9;x=y\r\nssage\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(r, false), Ok(Some((404, b"{\"message\":1}".to_vec()))));
        for n in 0..r.len() - 5 {
            assert_eq!(parse_response(&r[..n], false), Ok(None), "prefix {n}");
        }
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse_response(bad, false).is_err());
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n";
        assert!(parse_response(bad, false).is_err());
    }

    #[test]
    fn until_eof() {
        let r = b"HTTP/1.0 500 Internal Server Error\r\n\r\noops";
        assert_eq!(parse_response(r, false), Ok(None));
        assert_eq!(parse_response(r, true), Ok(Some((500, b"oops".to_vec()))));
    }

    #[test]
    fn garbage() {
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
        assert!(parse_response(b"\x00\x00\x12\x04", true).is_err());
        assert!(parse_response(&vec![b'a'; MAX_HEADER + 1], false).is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(error_message(br#"{"message":"page not found"}"#), "page not found");
        assert_eq!(error_message(b"  plain  "), "plain");
        assert_eq!(error_message("é".repeat(300).as_bytes()).chars().count(), 201);
    }
}
