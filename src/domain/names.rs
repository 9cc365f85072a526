//! Name rules of API.md §1.3. A malformed name is a 400 `invalid-param`, never a 404.

use super::{Checked, Refusal};

use super::text::{DeploymentName, Name};

fn refuse(param: &str, rule: &str) -> Refusal {
    Refusal::invalid(param, format!("`{param}` {rule}"))
}

/// Organization, user, role, app and subscription names: `^[A-Za-z0-9_]{2,50}$`.
pub fn validate(param: &str, value: &str) -> Checked<()> {
    Name::parse(value).map(drop).map_err(|rule| refuse(param, rule))
}

/// Deployment names: `^[A-Za-z0-9_\[\]]{2,50}$`.
pub fn validate_deployment(param: &str, value: &str) -> Checked<()> {
    DeploymentName::parse(value).map(drop).map_err(|rule| refuse(param, rule))
}
