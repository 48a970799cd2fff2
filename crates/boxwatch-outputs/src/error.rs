//! The one error type of the outputs crate.

/// What went wrong opening or running an output. `Display` is the context (what
/// was being done, with the path or URL); the cause is the error's `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL or target string that does not parse or is not supported.
    #[error("{what} {url:?}: {reason}")]
    Url { what: &'static str, url: String, reason: String },
    /// A setting out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// A file, socket or thread operation failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The alert history (SQLite) failed.
    #[error("{context}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A stored alert is not JSON.
    #[error("{context}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.ctx(|| "what was being done")` on results whose error has an [`Error`] variant.
pub(crate) trait Ctx<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: context(), source })
    }
}

impl<T> Ctx<T> for std::result::Result<T, rusqlite::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sqlite { context: context(), source })
    }
}

impl<T> Ctx<T> for std::result::Result<T, serde_json::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Json { context: context(), source })
    }
}

/// The error and its causes, `: `-separated (what `anyhow`'s `{:#}` prints).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
