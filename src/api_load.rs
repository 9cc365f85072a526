//! Whether API requests are being served, so that bulk transfers yield to them. An 8 GiB upload
//! over loopback took both cores of a 2-core box for 9 s (the client, the kernel's TCP, the
//! body's reception and the disk writes): the list workload's p99 while it streamed was 8–25 ms
//! against 1.5 ms idle, and it alone pushed the p99 of a whole import past 3× idle (5.3× in
//! bench/results/2026-11-27T1404-pipeline.md). The same import with the upload pausing 4 ms
//! after each MiB: 2.3–2.6 ms while it streamed, 1.7× idle over the import (T1412). So while
//! other requests are in flight, an upload (and a build download) pauses after each MiB: at most
//! 256 MiB/s while the API is busy, which no upload over a 1 or 2.5 Gbit/s link reaches, and
//! full speed otherwise. mkraw reads the tar the same way ([`Paced`]): at idle priority its
//! threads still took the caches and the disk from the API (p99 3.4–3.8 ms while it ran, T1423;
//! 2.2–2.5 ms paced, T1429).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Requests being served (the `count_in_flight` middleware), long transfers included. Process-
/// wide: one server per process (the counters' only test is in `http::middleware`).
pub(crate) static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Of those, the ones streaming a request body to disk: they yield, so they are no load for
/// each other.
pub(crate) static STREAMING: AtomicUsize = AtomicUsize::new(0);

/// Holds one count until dropped.
pub struct Counted(&'static AtomicUsize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a request being served, until the guard drops.
pub fn request() -> Counted {
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    Counted(&IN_FLIGHT)
}

/// Counts the calling request as one that streams its body (and yields), until the guard drops.
pub fn streaming() -> Counted {
    STREAMING.fetch_add(1, Ordering::Relaxed);
    Counted(&STREAMING)
}

/// Whether any request is being served besides the streaming ones.
pub fn busy() -> bool {
    IN_FLIGHT.load(Ordering::Relaxed) > STREAMING.load(Ordering::Relaxed)
}

/// When a transfer pauses: after each [`Pacer::STEP`] bytes, for [`Pacer::PAUSE`], if the API is
/// busy then.
#[derive(Debug, Default)]
pub struct Pacer {
    since_check: u64,
}

impl Pacer {
    pub const STEP: u64 = 1 << 20;
    pub const PAUSE: Duration = Duration::from_millis(4);

    /// After `bytes` more bytes: how long to pause now, given whether the API is `busy`.
    pub fn after(&mut self, bytes: u64, busy: impl FnOnce() -> bool) -> Option<Duration> {
        self.since_check += bytes;
        if self.since_check < Self::STEP {
            return None;
        }
        self.since_check = 0;
        busy().then_some(Self::PAUSE)
    }
}

/// A reader that pauses as a transfer does: mkraw reads the build's tar through it, so the
/// import's chunking and compression (at idle priority already) also stop competing for the
/// caches, the memory bus and the disk while requests are served.
pub struct Paced<R> {
    inner: R,
    pacer: Pacer,
}

impl<R> Paced<R> {
    pub fn new(inner: R) -> Paced<R> {
        Paced { inner, pacer: Pacer::default() }
    }
}

impl<R: std::io::Read> std::io::Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(pause) = self.pacer.after(n as u64, busy) {
            std::thread::sleep(pause);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_transfer_pauses_after_each_mebibyte_only_while_the_api_is_busy() {
        let mut pacer = Pacer::default();
        let asked = Cell::new(0);
        let busy = |answer: bool| {
            let asked = &asked;
            move || {
                asked.set(asked.get() + 1);
                answer
            }
        };
        assert_eq!(pacer.after(600 << 10, busy(true)), None, "not a MiB yet");
        assert_eq!(pacer.after(600 << 10, busy(true)), Some(Pacer::PAUSE));
        assert_eq!(pacer.after(1 << 20, busy(false)), None, "idle: full speed");
        assert_eq!(pacer.after(1 << 20, busy(true)), Some(Pacer::PAUSE));
        assert_eq!(asked.get(), 3, "busy() is asked once a MiB");
    }

    #[test]
    fn a_paced_reader_reads_every_byte_of_what_it_wraps() {
        use std::io::Read;
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut read = Vec::new();
        Paced::new(&data[..]).read_to_end(&mut read).unwrap();
        assert!(read == data, "{} of {} bytes, or different ones", read.len(), data.len());
    }
}
