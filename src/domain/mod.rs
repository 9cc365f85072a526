//! Plain types and rules: names, permission bitmasks, validation. No actix, no SQL.

pub mod kinds;
pub mod names;
pub mod origins;
pub mod outbound;
pub mod permissions;
pub mod public_key;
pub mod text;
pub mod webhooks;

/// Why the domain refused a value: the HTTP edge turns it into 400 `invalid-param` /
/// `missing-param` naming `param`. The domain knows nothing of HTTP.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error("missing parameter `{0}`")]
    Missing(String),
    /// Stored data that no longer passes the rules it was stored under.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
}

impl Refusal {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Refusal::Invalid { param: param.to_string(), message: message.into() }
    }

    pub fn missing(param: &str) -> Self {
        Refusal::Missing(param.to_string())
    }
}

/// Result of the domain's checks.
pub type Checked<T> = Result<T, Refusal>;
