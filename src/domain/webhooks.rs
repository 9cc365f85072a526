//! What a webhook or Slack subscription receives about a task event (API.md §9, PIPELINE.md
//! "Webhooks and Slack"): the compat body, the Slack line, the JWT claims, and which
//! subscriptions an event goes to. Pure rules: no SQL, no HTTP.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// The task events a subscription can receive [compat].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskEvent {
    /// The task row was inserted.
    Submit,
    /// A worker claimed it.
    Begin,
    /// It finished successfully.
    End,
    /// It failed for good (not an automatic retry).
    Error,
}

impl TaskEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskEvent::Submit => "submit",
            TaskEvent::Begin => "begin",
            TaskEvent::End => "end",
            TaskEvent::Error => "error",
        }
    }
}

impl fmt::Display for TaskEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about a task when one of its events is recorded.
#[derive(Clone, Debug)]
pub struct EventFacts {
    pub org_name: String,
    pub task_type: String,
    pub task_name: String,
    pub app_name: Option<String>,
    pub build_id: Option<i64>,
    pub build_name: Option<String>,
    pub dxf_name: Option<String>,
    pub exception: Option<Value>,
}

/// The webhook body, compat fields in the documented order. Task inputs (which may carry a build
/// server's credentials) are never part of it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody<'a> {
    #[serde(rename = "type")]
    task_type: &'a str,
    event: &'a str,
    org_name: &'a str,
    app_name: Option<&'a str>,
    build_name: Option<&'a str>,
    dxf_name: Option<&'a str>,
    task_name: &'a str,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<&'a Value>,
    /// Beyond the compat fields: the build number, which `buildName` (optional) may not give.
    build_id: Option<i64>,
}

/// The JSON a `webhook` subscription receives.
pub fn webhook_body(facts: &EventFacts, event: TaskEvent, time: &str) -> String {
    let body = WebhookBody {
        task_type: &facts.task_type,
        event: event.as_str(),
        org_name: &facts.org_name,
        app_name: facts.app_name.as_deref(),
        build_name: facts.build_name.as_deref(),
        dxf_name: facts.dxf_name.as_deref(),
        task_name: &facts.task_name,
        time,
        exception: facts.exception.as_ref(),
        build_id: facts.build_id,
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// The JSON a `slack` subscription receives: one human line, e.g.
/// `deploy end: acme/game build 3 (dxf 9f2c…), task deploy-0a1b2c`.
pub fn slack_body(facts: &EventFacts, event: TaskEvent) -> String {
    let mut line = format!("{} {}: {}", facts.task_type, event, facts.org_name);
    if let Some(app) = &facts.app_name {
        line.push_str(&format!("/{app}"));
    }
    if let Some(id) = facts.build_id {
        line.push_str(&format!(" build {id}"));
    }
    if let Some(name) = &facts.build_name {
        line.push_str(&format!(" \"{name}\""));
    }
    if let Some(dxf) = &facts.dxf_name {
        line.push_str(&format!(" (dxf {dxf})"));
    }
    line.push_str(&format!(", task {}", facts.task_name));
    if event == TaskEvent::Error {
        if let Some(message) = facts.exception.as_ref().and_then(|e| e.get("message")).and_then(Value::as_str) {
            line.push_str(&format!(": {message}"));
        }
    }
    serde_json::json!({ "text": line }).to_string()
}

/// Whether a subscription's `events` (`[{"type","event"}]`, empty = every event) ask for this one.
pub fn wants(events: &Value, task_type: &str, event: TaskEvent) -> bool {
    match events.as_array() {
        None => true,
        Some(items) if items.is_empty() => true,
        Some(items) => items.iter().any(|item| {
            item.get("type").and_then(Value::as_str) == Some(task_type)
                && item.get("event").and_then(Value::as_str) == Some(event.as_str())
        }),
    }
}

/// The issuer claim of every delivery token.
pub const ISSUER: &str = "rockit-edge";

/// How long a delivery token is valid after it was signed (each attempt signs anew).
pub const TOKEN_TTL_SECS: i64 = 300;

/// The claims of `x-rockit-subscriptions`: who sent it (`iss`), to which subscription (`sub`),
/// when, the delivery id (`jti`, the same on every retry) and the SHA-256 of the exact body bytes
/// (hex), without which the signature would not protect the body.
#[derive(Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryClaims {
    pub iss: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub body_sha256: String,
}

impl DeliveryClaims {
    pub fn new(subscription: &str, jti: &str, body: &[u8], now: i64) -> Self {
        DeliveryClaims {
            iss: ISSUER.into(),
            sub: subscription.into(),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            jti: jti.into(),
            body_sha256: crate::auth::hex(&crate::auth::sha256(body)),
        }
    }
}

/// When the attempt after `attempts` failed ones is due: the schedule's entry for it (the last
/// entry repeats), in milliseconds from now.
pub fn retry_delay_ms(schedule: &[std::time::Duration], attempts: i64) -> i64 {
    let index = (attempts.max(1) - 1) as usize;
    let delay = schedule.get(index).or(schedule.last()).copied().unwrap_or(std::time::Duration::from_secs(60));
    i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn facts() -> EventFacts {
        EventFacts {
            org_name: "acme".into(),
            task_type: "deploy".into(),
            task_name: "deploy-0a1b".into(),
            app_name: Some("game".into()),
            build_id: Some(3),
            build_name: Some("nightly".into()),
            dxf_name: Some("9f2c".into()),
            exception: None,
        }
    }

    #[test]
    fn the_webhook_body_starts_with_the_compat_fields_in_order() {
        let body = webhook_body(&facts(), TaskEvent::End, "2026-11-26T10:00:00.000Z");
        assert!(body.starts_with(
            r#"{"type":"deploy","event":"end","orgName":"acme","appName":"game","buildName":"nightly","dxfName":"9f2c","taskName":"deploy-0a1b","time":"2026-11-26T10:00:00.000Z""#
        ), "{body}");
        assert!(!body.contains("exception"), "no exception key without one: {body}");
    }

    #[test]
    fn a_slack_line_names_the_event_app_build_and_error_message() {
        let mut failed = facts();
        failed.exception = Some(json!({"message": "deployment `cdn` refused the upload", "httpStatus": 403}));
        let body: Value = serde_json::from_str(&slack_body(&failed, TaskEvent::Error)).unwrap();
        assert_eq!(
            body,
            json!({"text": "deploy error: acme/game build 3 \"nightly\" (dxf 9f2c), task deploy-0a1b: deployment `cdn` refused the upload"})
        );
    }

    #[test]
    fn an_empty_event_list_wants_everything_and_a_list_only_what_it_names() {
        assert!(wants(&json!([]), "mkraw", TaskEvent::Begin));
        let only = json!([{"type": "deploy", "event": "end"}]);
        assert!(wants(&only, "deploy", TaskEvent::End));
        assert!(!wants(&only, "deploy", TaskEvent::Begin));
        assert!(!wants(&only, "mkraw", TaskEvent::End));
    }

    #[test]
    fn retries_follow_the_schedule_and_repeat_its_last_step() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(300)];
        assert_eq!(retry_delay_ms(&schedule, 1), 5_000);
        assert_eq!(retry_delay_ms(&schedule, 2), 300_000);
        assert_eq!(retry_delay_ms(&schedule, 7), 300_000);
    }
}
