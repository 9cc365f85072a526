//! A fixed-bucket histogram of atomics: recording is a few relaxed increments, never a lock, so
//! it can sit on every request.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of observations at or below each bound (non-cumulative; made cumulative on render),
/// their number and their sum, in integer units (microseconds, jobs, …).
pub struct Histogram {
    bounds: &'static [u64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        // Bounds are few and sorted: a linear scan beats a binary search at this size.
        if let Some(i) = self.bounds.iter().position(|bound| value <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of `name{labels}`; values are divided
    /// by `scale` (1e6 turns microseconds into the seconds Prometheus expects).
    pub fn render(&self, out: &mut String, name: &str, labels: &str, scale: f64) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / scale;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        // Read the count after the buckets, so +Inf is never below the last finite bucket.
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", count.max(cumulative));
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum.load(Ordering::Relaxed) as f64 / scale);
        let _ = writeln!(out, "{name}_count{braces} {}", count.max(cumulative));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_render_cumulatively_with_sum_and_count() {
        let histogram = Histogram::new(&[10, 100]);
        for value in [5, 50, 500] {
            histogram.observe(value);
        }
        let mut out = String::new();
        histogram.render(&mut out, "x", "route=\"/a\"", 1.0);
        assert_eq!(
            out,
            "x_bucket{route=\"/a\",le=\"10\"} 1\nx_bucket{route=\"/a\",le=\"100\"} 2\n\
             x_bucket{route=\"/a\",le=\"+Inf\"} 3\nx_sum{route=\"/a\"} 555\nx_count{route=\"/a\"} 3\n"
        );
    }
}
