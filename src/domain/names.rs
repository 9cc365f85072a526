//! Name rules of API.md §1.3. A malformed name is a 400 `invalid-param`, never a 404.

use crate::error::{ApiError, ApiResult};

fn check(param: &str, value: &str, extra: &[char]) -> ApiResult<()> {
    let ok = (2..=50).contains(&value.chars().count())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        let allowed = if extra.is_empty() { "letters, digits and _" } else { "letters, digits, _, [ and ]" };
        Err(ApiError::invalid(param, format!("`{param}` must be 2 to 50 {allowed}")))
    }
}

/// Organization, user, role, app and subscription names: `^[A-Za-z0-9_]{2,50}$`.
pub fn validate(param: &str, value: &str) -> ApiResult<()> {
    check(param, value, &[])
}

/// Deployment names: `^[A-Za-z0-9_\[\]]{2,50}$`.
pub fn validate_deployment(param: &str, value: &str) -> ApiResult<()> {
    check(param, value, &['[', ']'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_patterns() {
        for good in ["ab", "acme_games", "A1", &"x".repeat(50)] {
            assert!(validate("name", good).is_ok(), "{good}");
        }
        for bad in ["a", "", "with space", "dash-name", "ünïcode", &"x".repeat(51), "br[ack]et"] {
            assert!(validate("name", bad).is_err(), "{bad}");
        }
        assert!(validate_deployment("name", "cdn[eu]").is_ok());
        assert!(validate_deployment("name", "cdn-eu").is_err());
    }
}
