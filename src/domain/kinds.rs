//! The closed sets the code branches on: account kinds and task states. Stored and shown as their
//! lowercase names.

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $ty {
            $($variant,)*
        }

        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($name => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        /// Lets `status == "done"` keep reading naturally where a name is at hand.
        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $ty::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(format!("`{text}` is not a {}", stringify!($ty)).into())
                })
            }
        }

        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
    };
}

named_enum! {
    /// A person (logs in with a password) or a machine (uses API keys).
    AccountKind { User = "user", Machine = "machine" }
}

named_enum! {
    /// Where a task is in its life (API.md §9).
    TaskStatus { Submitted = "submitted", Running = "running", Done = "done", Failed = "failed", Expired = "expired" }
}

impl TaskStatus {
    /// Whether the task has ended for good.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Done | TaskStatus::Failed | TaskStatus::Expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for status in [TaskStatus::Submitted, TaskStatus::Running, TaskStatus::Done, TaskStatus::Failed] {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(AccountKind::parse("machine"), Some(AccountKind::Machine));
        assert_eq!(AccountKind::parse("robot"), None);
        assert!(TaskStatus::Expired.is_final() && !TaskStatus::Running.is_final());
    }
}
