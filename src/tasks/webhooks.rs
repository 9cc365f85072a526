//! The webhook delivery worker: one background thread that sends what the outbox
//! (`store::webhooks`) holds, signs each webhook with its subscription's secret, and records
//! every attempt. A 2xx answer within `webhook_timeout` delivers; anything else is retried on the
//! `webhook_retry_delays` schedule until `webhook_give_up_after` has passed since the event.
//!
//! One thread on purpose: deliveries of one app to one subscription must go out in order anyway,
//! and a single sender never holds more than one slow receiver's connection at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use crate::auth::jws::SigningKey;
use crate::auth::sealing::Sealer;
use crate::domain::webhooks::{retry_delay_ms, DeliveryClaims};
use crate::outbound::download::DownloadError;
use crate::outbound::policy::OutboundPolicy;
use crate::store::webhooks::{self as outbox, Attempt, DueDelivery};
use crate::store::{Store, StoreResult};

/// The header carrying the delivery token [compat].
pub const HEADER: &str = "x-rockit-subscriptions";

/// How often an idle worker looks for due deliveries when the outbox bell does not ring (it rings
/// after each commit that records deliveries): retries become due without one.
const POLL: Duration = Duration::from_millis(200);

/// Deliveries taken per look; each is the head of its (subscription, app) queue.
const BATCH: i64 = 32;

/// How the worker delivers; from the settings.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    pub outbound: OutboundPolicy,
    pub timeout: Duration,
    pub retry_delays: Vec<Duration>,
    pub give_up_after: Duration,
    pub retention: Duration,
}

/// Starts the delivery thread. It runs for the life of the process: a delivery cut off by a stop
/// is still `pending` and goes out again (same `jti`) after the next start.
pub fn start(store: Store, sealer: Arc<Sealer>, policy: DeliveryPolicy) -> std::io::Result<()> {
    std::thread::Builder::new().name("webhooks".into()).spawn(move || Worker { store, sealer, policy }.run())?;
    Ok(())
}

struct Worker {
    store: Store,
    sealer: Arc<Sealer>,
    policy: DeliveryPolicy,
}

impl Worker {
    fn run(self) {
        // A short retention is checked as often as it needs (tests use seconds), a long one hourly.
        let prune_every = (self.policy.retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        // `None`: not yet pruned (an `Instant` in the past could underflow right after boot).
        let mut pruned: Option<Instant> = None;
        let mut rings = self.store.outbox_bell().rings();
        loop {
            if pruned.is_none_or(|at| at.elapsed() >= prune_every) {
                pruned = Some(Instant::now());
                match self.prune() {
                    Ok(0) => {}
                    Ok(n) => log::info!("removed {n} finished webhook deliveries past webhook_retention"),
                    Err(e) => log::warn!("cannot remove old webhook deliveries: {e}"),
                }
            }
            let now = crate::store::now_rfc3339();
            let due = match self.store.read_blocking(move |c| outbox::due(c, &now, BATCH)) {
                Ok(due) => due,
                Err(e) => {
                    log::error!("webhooks: cannot read the outbox: {e}");
                    Vec::new()
                }
            };
            if due.is_empty() {
                rings = self.store.outbox_bell().wait_after(rings, POLL);
                continue;
            }
            for delivery in due {
                let attempt = self.attempt(&delivery);
                if let Attempt::Failed { error, retry_at, .. } = &attempt {
                    // The subscription's name, never its URL: a Slack URL is itself a secret.
                    log::warn!(
                        "webhook delivery {} to subscription `{}` failed (attempt {}): {error}; {}",
                        delivery.jti,
                        delivery.subscription,
                        delivery.attempts + 1,
                        retry_at.as_deref().map_or_else(|| "given up".to_string(), |at| format!("next try {at}"))
                    );
                }
                let id = delivery.id;
                if let Err(e) = self.store.write_blocking(move |c| outbox::record_attempt(c, id, &attempt)) {
                    log::error!("webhooks: cannot record a delivery attempt: {e}");
                }
            }
        }
    }

    fn prune(&self) -> StoreResult<usize> {
        let cutoff = cutoff(self.policy.retention);
        self.store.write_blocking(move |c| outbox::remove_finished_before(c, &cutoff))
    }

    /// Sends one delivery and says how it went, with the next attempt's time if one follows.
    fn attempt(&self, d: &DueDelivery) -> Attempt {
        match self.send(d) {
            Ok(http_status) => Attempt::Delivered { http_status },
            Err((http_status, error)) => Attempt::Failed { http_status, error, retry_at: self.next_attempt(d) },
        }
    }

    /// When to try again after this failed attempt; `None` once `give_up_after` has passed.
    fn next_attempt(&self, d: &DueDelivery) -> Option<String> {
        let now = chrono::Utc::now();
        let created = chrono::DateTime::parse_from_rfc3339(&d.created).map(|t| t.with_timezone(&chrono::Utc)).ok()?;
        let give_up = chrono::Duration::from_std(self.policy.give_up_after).ok()?;
        let deadline = created.checked_add_signed(give_up)?;
        if now >= deadline {
            return None;
        }
        let delay = chrono::Duration::milliseconds(retry_delay_ms(&self.policy.retry_delays, d.attempts + 1));
        // The last attempt falls on the deadline itself, so a receiver gets the whole window.
        let next = now.checked_add_signed(delay).unwrap_or(deadline).min(deadline);
        Some(next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    /// One POST; `Ok(status)` for a 2xx, else the status (if any) and why.
    fn send(&self, d: &DueDelivery) -> Result<u16, (Option<u16>, String)> {
        let fail = |why: String| (None, why);
        let url = Url::parse(&d.url).map_err(|_| fail("the subscription URL cannot be parsed".into()))?;
        let addrs = crate::outbound::resolve_checked(&url, self.policy.outbound).map_err(|e| fail(describe(&e)))?;
        let agent = crate::outbound::agent(self.policy.timeout, addrs);
        let mut request = agent.post(url.as_str()).timeout(self.policy.timeout).set("Content-Type", "application/json");
        if d.kind == "webhook" {
            let context = crate::resources::Resources::context("subscription", d.org_id, &d.subscription, "secret");
            let secret = self
                .sealer
                .open(&context, &d.sealed_secret)
                .map_err(|_| fail("the subscription's secret cannot be unsealed".into()))?;
            let claims =
                DeliveryClaims::new(&d.subscription, &d.jti, d.body.as_bytes(), chrono::Utc::now().timestamp());
            let token = SigningKey::new("sub", secret.as_bytes()).sign_claims(&claims);
            request = request.set(HEADER, &token);
        }
        match request.send_string(&d.body) {
            Ok(response) if (200..300).contains(&response.status()) => Ok(response.status()),
            // No redirects are followed (each hop would need the policy check): a 3xx is a failure.
            Ok(response) => Err((Some(response.status()), format!("the receiver answered HTTP {}", response.status()))),
            Err(ureq::Error::Status(status, _)) => Err((Some(status), format!("the receiver answered HTTP {status}"))),
            Err(ureq::Error::Transport(t)) => {
                // Kind and message only: the error's URL may hold a Slack secret.
                let detail = t.message().map(|m| format!(": {m}")).unwrap_or_default();
                Err((None, format!("{}{detail}", t.kind())))
            }
        }
    }
}

/// Why the receiver's address was not reached, without the URL.
fn describe(e: &DownloadError) -> String {
    match e {
        DownloadError::Refused { host, class } => {
            format!("the receiver's host {host} is {}, which this server may not connect to", class.describe())
        }
        DownloadError::Network(why) => why.clone(),
        DownloadError::BadUrl(why) => format!("the subscription URL is not usable: {why}"),
        other => other.to_string(),
    }
}

fn cutoff(retention: Duration) -> String {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = chrono::Utc::now().checked_sub_signed(retention).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
