//! Prometheus metrics (`GET /metrics`). What the hot path records is atomics only (request
//! counters and latency histograms per route template, writer batches, login failures); what
//! costs a query or a system call (task queue, file sizes, free space) is read at scrape time.

pub mod histogram;
mod render;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use histogram::Histogram;
pub use render::render;

/// Latency bucket bounds in microseconds: 1 ms … 10 s.
const LATENCY_MICROS: &[u64] =
    &[1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 10_000_000];

/// What requests of one route template did.
struct RouteSlot {
    /// Answers by status class: 1xx … 5xx.
    by_class: [AtomicU64; 5],
    latency: Histogram,
}

/// Request counts and latencies, one slot per route template (never per raw path, which would
/// grow without bound and may carry a capability) plus one for everything else.
pub struct RequestMetrics {
    templates: Box<[&'static str]>,
    slots: Box<[RouteSlot]>,
}

/// The label of requests that matched no route of the route table (console, 404s).
const OTHER: &str = "(other)";

impl RequestMetrics {
    /// Slots for `templates` in this order (slot `i` is `templates[i]`), then one for the rest.
    pub fn new(templates: Vec<&'static str>) -> RequestMetrics {
        let mut templates = templates;
        templates.push(OTHER);
        let slots = templates
            .iter()
            .map(|_| RouteSlot { by_class: Default::default(), latency: Histogram::new(LATENCY_MICROS) })
            .collect();
        RequestMetrics { templates: templates.into_boxed_slice(), slots }
    }

    /// The slot of requests that matched no route template.
    pub fn other_slot(&self) -> usize {
        self.slots.len() - 1
    }

    pub fn observe(&self, slot: usize, status: u16, took: Duration) {
        let Some(route) = self.slots.get(slot) else { return };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        route.by_class[class].fetch_add(1, Ordering::Relaxed);
        route.latency.observe(took.as_micros().min(u128::from(u64::MAX)) as u64);
    }
}

/// Counters that the identity layer bumps.
#[derive(Default)]
pub struct SecurityCounters {
    pub login_failures: AtomicU64,
}
