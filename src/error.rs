//! The library's error type; the binary turns it into one line and an exit code.

use std::path::PathBuf;

/// Everything that can go wrong in the library, each naming what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The input is not something svodka can work on (empty, binary, undecodable...).
    #[error("{path}: {reason}")]
    BadInput { path: PathBuf, reason: String },
    /// The request is valid but not supported (a language, an engine not built yet).
    #[error("{0}")]
    Unsupported(String),
    /// A model could not be found, fetched or loaded.
    #[error("{0}")]
    Model(String),
    /// An error from candle while running a model.
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bad-input error for `path`.
    pub fn bad_input(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadInput {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The same error again, for another article that took part in the failed work
    /// (the underlying I/O or candle error is kept as its message).
    pub fn replicate(&self) -> Self {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::BadInput { path, reason } => Error::bad_input(path.clone(), reason.clone()),
            Error::Unsupported(s) => Error::Unsupported(s.clone()),
            Error::Model(s) => Error::Model(s.clone()),
            Error::Candle(_) => Error::Model(self.to_string()),
        }
    }
}
