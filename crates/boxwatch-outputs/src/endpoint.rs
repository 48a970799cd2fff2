//! The one URL parser of the network outputs (webhook, syslog, NATS), on the
//! `url` crate: every output states which schemes it speaks and gets the same
//! parts and the same clear errors (`http://[::1` is refused, not guessed at).

use url::Url;

use crate::error::{Error, Result};

/// A parsed output URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Lower-case scheme, one of those the output accepts.
    pub scheme: String,
    /// Host name or address, IPv6 without brackets; empty for `unix://`.
    pub host: String,
    /// The port in the URL, or the output's default for the scheme.
    pub port: u16,
    /// Path (`/` when absent), with the query if any.
    pub path: String,
    /// Percent-decoded user name, when given.
    pub user: Option<String>,
    /// Percent-decoded password, when given.
    pub password: Option<String>,
    /// The normalised URL.
    pub url: Url,
}

fn decode(s: &str) -> String {
    // Percent-decoding of userinfo; invalid UTF-8 is replaced, never an error.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) =
                (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `s` for output `what` ("webhook URL", "syslog target", …). `schemes` lists
/// (scheme, default port) pairs accepted; `needs_host` is false for socket paths.
pub fn parse(what: &'static str, s: &str, schemes: &[(&str, u16)], needs_host: bool) -> Result<Endpoint> {
    let err = |reason: String| Error::Url { what, url: s.to_string(), reason };
    let url = Url::parse(s.trim()).map_err(|e| err(e.to_string()))?;
    let scheme = url.scheme().to_ascii_lowercase();
    let Some(&(_, default_port)) = schemes.iter().find(|(sc, _)| *sc == scheme) else {
        let known: Vec<String> = schemes.iter().map(|(sc, _)| format!("{sc}://")).collect();
        return Err(err(format!("unsupported scheme {scheme}:// (expected {})", known.join(", "))));
    };
    let host = url.host_str().unwrap_or("").trim_matches(['[', ']']).to_string();
    if needs_host && host.is_empty() {
        return Err(err("no host".into()));
    }
    if !needs_host && !host.is_empty() {
        return Err(err(format!("expected an absolute path after {scheme}:// (e.g. {scheme}:///dev/log)")));
    }
    let port = url.port().unwrap_or(default_port);
    let mut path = url.path().to_string();
    if path.is_empty() {
        path.push('/');
    }
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let user = (!url.username().is_empty()).then(|| decode(url.username()));
    let password = url.password().map(decode);
    Ok(Endpoint { scheme, host, port, path, user, password, url })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: &[(&str, u16)] = &[("http", 80), ("https", 443)];

    #[test]
    fn parses_and_refuses_clearly() {
        let e = parse("webhook URL", "http://sidekick:2801", HTTP, true).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("sidekick", 2801, "/"));
        let e = parse("webhook URL", "https://[::1]/hook?x=1", HTTP, true).unwrap();
        assert_eq!(
            (e.scheme.as_str(), e.host.as_str(), e.port, e.path.as_str()),
            ("https", "::1", 443, "/hook?x=1")
        );
        let e = parse("NATS URL", "nats://bw:s%40cret@nats.svc:4333/", &[("nats", 4222)], true).unwrap();
        assert_eq!((e.user.as_deref(), e.password.as_deref()), (Some("bw"), Some("s@cret")));
        let e = parse("syslog target", "unix:///dev/log", &[("unix", 0)], false).unwrap();
        assert_eq!(e.path, "/dev/log");
        for (bad, why) in [
            ("http://[::1", "invalid IPv6"),
            ("http://:80", "empty host"),
            ("http://h:xx", "invalid port"),
            ("http://h:99999", "invalid port"),
            ("ftp://h", "unsupported scheme ftp:// (expected http://, https://)"),
            ("sidekick:2801", "unsupported scheme"),
            ("no url", "relative URL without a base"),
        ] {
            let e = parse("webhook URL", bad, HTTP, true).unwrap_err().to_string();
            assert!(e.starts_with(&format!("webhook URL {bad:?}: ")) && e.contains(why), "{bad}: {e}");
        }
        let e = parse("syslog target", "unix://dev/log", &[("unix", 0)], false).unwrap_err().to_string();
        assert!(e.contains("absolute path"), "{e}");
    }
}
