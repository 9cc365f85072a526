//! Bounds on what one client can hold: the time a request body may take to arrive, and the number
//! of connections open from one peer address. Together with actix's own timeout for the request
//! head they keep slow or idle connections from piling up until other clients are starved.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, ConnectionType};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{web, Error, HttpMessage, ResponseError};
use futures_util::Stream;

use crate::error::ApiError;

/// Connections currently open per peer address.
pub struct PeerConnections {
    max_per_peer: usize,
    /// Peers exempt from the cap: trusted proxies carry many clients on their connections.
    exempt: Vec<IpAddr>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Held in a connection's data for as long as the connection lives; gives its place back on drop.
pub struct PeerSlot {
    peers: Arc<PeerConnections>,
    ip: IpAddr,
    /// This connection went beyond the cap: its requests are refused and it is closed.
    over: bool,
}

impl PeerConnections {
    pub fn new(max_per_peer: usize, exempt: Vec<IpAddr>) -> Arc<Self> {
        Arc::new(PeerConnections { max_per_peer, exempt, open: Mutex::new(HashMap::new()) })
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> PeerSlot {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        *count += 1;
        let over = *count > self.max_per_peer && !self.exempt.contains(&ip);
        PeerSlot { peers: self.clone(), ip, over }
    }

    /// For each new connection, plain or TLS: counts it against its peer address.
    pub fn on_connect(self: &Arc<Self>, peer: Option<std::net::SocketAddr>, data: &mut Extensions) {
        if let Some(peer) = peer {
            data.insert(self.admit(peer.ip()));
        }
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Refuses requests on a connection beyond its peer's cap (503 `unavailable`, then closed),
/// before any body is read, and gives every request body a deadline.
pub async fn limit_peers_and_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if req.conn_data::<PeerSlot>().is_some_and(|slot| slot.over) {
        let error = ApiError::Unavailable {
            message: "too many connections from this address; close some and try again".into(),
            retry_after: 1,
        };
        let mut res = req.into_response(error.error_response());
        res.response_mut().head_mut().set_connection_type(ConnectionType::Close);
        return Ok(res.map_into_right_body());
    }
    let body_timeout = req.app_data::<web::Data<BodyTimeout>>().map(|t| t.0);
    if let Some(limit) = body_timeout.filter(|_| has_body(&req)) {
        let payload = req.take_payload();
        let deadline = Box::pin(actix_web::rt::time::sleep(limit));
        let idle = streams_large_body(req.path()).then_some(limit);
        req.set_payload(Payload::Stream { payload: Box::pin(Deadline { payload, deadline, expired: false, idle }) });
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The one-time upload URLs (a build tar, an organization bundle) take bodies of gigabytes that
/// no whole-body deadline fits: there `body_timeout` bounds each pause between pieces instead,
/// which still closes a connection that stalls.
fn streams_large_body(path: &str) -> bool {
    path.starts_with("/be/v1/uploads/") || path.starts_with("/be/v1/imports/")
}

/// The `body_timeout` setting, as app data for [`limit_peers_and_bodies`].
pub struct BodyTimeout(pub Duration);

fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0")
}

/// A request body that fails with a timeout once its deadline has passed, so a client that
/// announces a body and then sends nothing (or a byte a second) cannot hold the connection.
struct Deadline {
    payload: Payload,
    deadline: Pin<Box<actix_web::rt::time::Sleep>>,
    expired: bool,
    /// Large uploads: the deadline moves this far ahead with every piece that arrives.
    idle: Option<Duration>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.payload).poll_next(cx) {
            if let (Some(idle), Some(Ok(_))) = (self.idle, &item) {
                let next = actix_web::rt::time::Instant::now() + idle;
                self.deadline.as_mut().reset(next);
            }
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body arrived too slowly");
            return Poll::Ready(Some(Err(PayloadError::Io(timed_out))));
        }
        Poll::Pending
    }
}
