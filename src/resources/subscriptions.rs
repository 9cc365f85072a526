//! Subscriptions (API.md §9): where build events are delivered. The signing secret is generated
//! here, shown once, and kept sealed because the server needs it to sign every delivery.

use serde_json::Value;

use super::Resources;
use crate::auth::{b64url_encode, random_bytes};
use crate::domain::permissions::{Resource, CREATE, DELETE, READ};
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::Principal;
use crate::store::subscriptions::{self, NewSubscription, Subscription};
use crate::store::webhooks::{self, Delivery};
use crate::store::{Listed, Page};

/// Task types and events a subscription can ask for [compat].
/// Every task type that sends events: the build chain, then the tasks of publishing, FastStart,
/// transfers and housekeeping (an empty `events` list already receives them all).
pub const EVENT_TYPES: [&str; 9] = ["dltar", "mkraw", "deploy", "commit", "sync", "mkfast", "prune", "export", "hello"];
pub const EVENTS: [&str; 4] = ["submit", "begin", "end", "error"];

/// How many of a subscription's newest deliveries its details show.
pub const DELIVERIES_SHOWN: i64 = 50;

/// The rule of `validate_url` as a pattern for the document: a host right after the scheme, no
/// whitespace or control character anywhere.
pub const URL_PATTERN: &str = r"^https?://[^\s\x00-\x1f\x7f-\x9f/?#:][^\s\x00-\x1f\x7f-\x9f]*$";

/// Whether `url` is http(s) (https only unless `allow_http`) with a host right after the scheme
/// and no whitespace or control character: exactly what [`URL_PATTERN`] says.
pub fn plausible_url(url: &str, allow_http: bool) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| if allow_http { url.strip_prefix("http://") } else { None });
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !(host.is_empty()
        || host.starts_with(':')
        || url.chars().count() > crate::domain::text::limits::URL
        || url.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// Checks `url`: http or https with a host; Slack incoming webhooks are https only, except on
/// loopback when `loopback_allowed` (the `outbound_allow_loopback` test setting: a Slack stub on
/// this machine speaks plain HTTP). A host the outbound policy forbids is a 403: the request is
/// well-formed, this server may not call there.
pub fn validate_url(kind: &str, url: &str, loopback_allowed: bool) -> ApiResult<()> {
    let http_ok = kind != "slack" || (loopback_allowed && loopback_http(url));
    if !plausible_url(url, http_ok) {
        return Err(ApiError::invalid("url", "`url` must be an http:// or https:// URL with a host"));
    }
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some(why) = crate::domain::outbound::refused_host(host) {
        return Err(ApiError::DeniedParam { param: "url", message: format!("`url` must not point at {why}") });
    }
    Ok(())
}

/// Whether `url` is plain http to a loopback address literal.
fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `events`: a list of `{"type","event"}`; empty or absent means every event.
pub fn validate_events(events: &Value) -> ApiResult<()> {
    let bad = |why: &str| ApiError::invalid("events", why.to_string());
    let items = events.as_array().ok_or_else(|| bad("`events` must be a list of {\"type\",\"event\"}"))?;
    for item in items {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        let event = item.get("event").and_then(Value::as_str).unwrap_or("");
        if !EVENT_TYPES.contains(&kind) {
            return Err(bad(&format!("each event `type` must be one of {}", EVENT_TYPES.join(", "))));
        }
        if !EVENTS.contains(&event) {
            return Err(bad("each `event` must be submit, begin, end or error"));
        }
    }
    Ok(())
}

impl Resources {
    /// Creates the subscription; answers it and its signing secret (shown this once).
    pub async fn create_subscription(
        &self,
        caller: &Principal,
        name: &str,
        kind: &str,
        url: &str,
        events: Value,
    ) -> ApiResult<(Subscription, String)> {
        caller.require(Resource::SUBSCRIPTIONS, CREATE)?;
        let secret = b64url_encode(&random_bytes::<32>());
        let sealed = self.sealer.seal(&Self::context("subscription", caller.org_id, name, "secret"), &secret);
        let (org_id, name_owned, kind, url) = (caller.org_id, name.to_string(), kind.to_string(), url.to_string());
        let created = self
            .store
            .write(move |c| {
                if subscriptions::by_name(c, org_id, &name_owned)?.is_some() {
                    return Ok(None);
                }
                let new = NewSubscription {
                    name: &name_owned,
                    kind: &kind,
                    url: &url,
                    events: &events,
                    sealed_secret: &sealed,
                };
                subscriptions::insert(c, org_id, &new)?;
                subscriptions::by_name(c, org_id, &name_owned)
            })
            .await?;
        let created =
            created.ok_or_else(|| ApiError::AlreadyExists { resource: "subscription", name: name.to_string() })?;
        Ok((created, secret))
    }

    /// One page of subscriptions; the handler renders it.
    pub async fn list_subscriptions(
        &self,
        caller: &Principal,
        name: Option<String>,
        kind: Option<String>,
        page: Page,
    ) -> ApiResult<Listed<Subscription>> {
        caller.require(Resource::SUBSCRIPTIONS, READ)?;
        let org_id = caller.org_id;
        Ok(self.store.read(move |c| subscriptions::list(c, org_id, name.as_deref(), kind.as_deref(), &page)).await?)
    }

    /// A subscription and its newest deliveries (newest first).
    pub async fn subscription(&self, caller: &Principal, name: &str) -> ApiResult<(Subscription, Vec<Delivery>)> {
        caller.require(Resource::SUBSCRIPTIONS, READ)?;
        let (org_id, name) = (caller.org_id, name.to_string());
        let found = self
            .store
            .read(move |c| {
                let Some(subscription) = subscriptions::by_name(c, org_id, &name)? else { return Ok(None) };
                let deliveries = webhooks::recent(c, subscription.id, DELIVERIES_SHOWN)?;
                Ok(Some((subscription, deliveries)))
            })
            .await?;
        found.ok_or(ApiError::NotFound { resource: "subscription" })
    }

    pub async fn delete_subscription(&self, caller: &Principal, name: &str) -> ApiResult<()> {
        caller.require(Resource::SUBSCRIPTIONS, DELETE)?;
        let (org_id, name) = (caller.org_id, name.to_string());
        if self.store.write(move |c| subscriptions::delete(c, org_id, &name)).await? {
            Ok(())
        } else {
            Err(ApiError::NotFound { resource: "subscription" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        assert!(validate_url("webhook", "https://ci.example.com/hook", false).is_ok());
        assert!(validate_url("webhook", "http://10.0.0.5:8080/x", false).is_ok());
        for bad in ["ftp://x", "https://", "hooks.example.com", "https:// space", "javascript:alert(1)"] {
            assert!(validate_url("webhook", bad, false).is_err(), "{bad}");
        }
        assert!(validate_url("slack", "http://hooks.slack.com/x", false).is_err());
    }

    #[test]
    fn plain_http_slack_is_allowed_only_to_loopback_under_the_test_setting() {
        assert!(validate_url("slack", "http://127.0.0.1:9/x", true).is_ok());
        assert!(validate_url("slack", "http://[::1]:9/x", true).is_ok());
        assert!(validate_url("slack", "http://127.0.0.1:9/x", false).is_err());
        assert!(validate_url("slack", "http://hooks.slack.com/x", true).is_err());
        assert!(validate_url("slack", "http://127.0.0.1.evil.example/x", true).is_err());
    }

    #[test]
    fn events_name_known_types_and_events() {
        assert!(validate_events(&json!([{"type": "deploy", "event": "end"}])).is_ok());
        assert!(validate_events(&json!([{"type": "deploy", "event": "done"}])).is_err());
        assert!(validate_events(&json!({"type": "deploy"})).is_err());
    }
}
