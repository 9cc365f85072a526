//! The engine's one error type. `FileReadFailed` carries the compat exception fields so the task
//! layer can put them into a task's `exception` object as they are.

use serde::Serialize;

/// The compat `fileReadFailed` exception object: which entry (or the input itself) could not be
/// read, what was expected there and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReadFailed {
    pub filename: String,
    pub type_expected: String,
    pub type_detected: String,
}

impl FileReadFailed {
    pub fn new(filename: impl Into<String>, expected: impl Into<String>, detected: impl Into<String>) -> Self {
        FileReadFailed { filename: filename.into(), type_expected: expected.into(), type_detected: detected.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The input is not an acceptable build (not a tar, or an entry the engine refuses).
    #[error("{}: expected {}, found {}", .0.filename, .0.type_expected, .0.type_detected)]
    FileReadFailed(FileReadFailed),
    /// The caller's cancel check answered true.
    #[error("cancelled")]
    Cancelled,
    /// Stored or published data does not match what its index or manifest says.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A request the engine cannot serve (missing build, bad argument).
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub fn file_read_failed(filename: impl Into<String>, expected: &str, detected: impl Into<String>) -> Self {
        EngineError::FileReadFailed(FileReadFailed::new(filename, expected, detected))
    }

    /// The compat exception object, when this error is one.
    pub fn file_read_failed_fields(&self) -> Option<&FileReadFailed> {
        match self {
            EngineError::FileReadFailed(f) => Some(f),
            _ => None,
        }
    }
}

/// Adds what was being done to an I/O error, so a failure names its file.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, EngineError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, EngineError> {
        self.map_err(|source| EngineError::Io { context: context(), source })
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
