//! A stop that answers every request that reached the server. actix's graceful stop finishes the
//! requests it is already running but closes keep-alive connections whose next request sits
//! unread in the socket; a request sent a moment before SIGTERM was lost that way. So on SIGTERM
//! (or SIGINT) the server first tells every client to close its connection after the current
//! answer (`Connection: close`) and keeps serving until no new request has started for a short
//! quiet time, and only then hands over to actix's graceful stop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{web, Error};

/// How long no request may have started before the stop goes ahead.
const QUIET: Duration = Duration::from_millis(250);
/// The longest the quiet time is waited for, so a client that keeps sending cannot delay a stop.
const MOST: Duration = Duration::from_secs(3);

/// Shared between the signal task and the middleware.
pub struct Drain {
    draining: AtomicBool,
    epoch: Instant,
    /// Milliseconds since `epoch` at which the latest request started.
    last_start: AtomicU64,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain { draining: AtomicBool::new(false), epoch: Instant::now(), last_start: AtomicU64::new(0) })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Listens for SIGTERM and SIGINT right away (call it inside the runtime, before the server
    /// announces itself, so an early signal is never missed), and answers a future that resolves
    /// once one arrived and the server has gone quiet; meant for `HttpServer::shutdown_signal`,
    /// which then starts actix's graceful stop.
    pub fn stop_signal(self: Arc<Self>) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
        use actix_web::rt::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => log::info!("SIGTERM: answering the requests that arrived, then stopping"),
                _ = int.recv() => log::info!("SIGINT: answering the requests that arrived, then stopping"),
            }
            self.draining.store(true, Ordering::Release);
            let began = Instant::now();
            loop {
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                let idle = self.now_ms().saturating_sub(self.last_start.load(Ordering::Acquire));
                if idle >= QUIET.as_millis() as u64 || began.elapsed() >= MOST {
                    break;
                }
            }
        })
    }
}

/// Notes when each request starts and, once a stop is under way, asks the client to close the
/// connection after this answer so it does not send the next request into a closing socket.
pub async fn mark_connections(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let drain = req.app_data::<web::Data<Drain>>().cloned();
    if let Some(drain) = &drain {
        drain.last_start.store(drain.now_ms(), Ordering::Release);
    }
    let mut res = next.call(req).await?;
    if drain.is_some_and(|d| d.draining.load(Ordering::Acquire)) {
        res.response_mut().head_mut().set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}
