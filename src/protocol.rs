//! Protocol-level errors (a malformed request line, method, version or header, a request head
//! over actix-http's limits) answered with the JSON error envelope like every other failure,
//! and logged at `warn`: the client is at fault, not the server.
//!
//! actix-http's HTTP/1 dispatcher answers these itself with an empty 400 or 431
//! (`h1/dispatcher.rs`, `poll_request`) before any service or middleware runs, and has no hook
//! to change that answer. So every connection passes through [`Guarded`], an I/O wrapper between
//! the socket (after TLS) and the dispatcher, which decodes the bytes the dispatcher is about to
//! read with actix-http's own request decoder (`h1::Codec`, the same code and limits). When a
//! request head fails to decode, the guard withholds that head and everything after it and shows
//! the dispatcher the end of the stream instead: the dispatcher then answers the requests before
//! it (pipelined or kept alive, in order) and shuts the connection down, and at that shutdown
//! the guard writes the envelope and closes.
//!
//! Why this rather than the alternatives: recognising the dispatcher's own bodyless 400 in the
//! outgoing bytes would mean parsing our response stream (HEAD answers, chunked bodies, bodies
//! that contain such bytes), and a hand-written pre-parser of request heads would disagree with
//! actix-http on some input sooner or later; the same decoder cannot disagree. The cost is one
//! copy of the bytes read and a second parse of each head. Errors inside a request body (a
//! corrupt chunked encoding) are the dispatcher's as before: the request already reached its
//! handler, and the guard stops watching that connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_codec::{AsyncRead, AsyncWrite, Decoder, ReadBuf};
use actix_http::error::ParseError;
use actix_http::h1::{Codec, Message, MessageType};
use actix_http::ServiceConfig;
use actix_web::web::{Bytes, BytesMut};
use actix_web::ResponseError;

use crate::error::ApiError;

/// A connection's I/O, watched for request heads that actix-http will refuse.
pub struct Guarded<T> {
    io: T,
    peer: Option<SocketAddr>,
    /// Whether the connection is TLS: the refusal then carries HSTS like every other answer.
    tls: bool,
    /// `None` once the stream can no longer be followed (an error inside a body).
    watch: Option<Watch>,
    /// Set when a head was refused: reads end there, and the answer goes out at shutdown.
    refusal: Option<Refusal>,
}

struct Watch {
    codec: Codec,
    /// Bytes read but not yet decoded: the same bytes the dispatcher's own buffer holds.
    unread: BytesMut,
    /// Whether the decoder is inside a request body.
    in_body: bool,
}

struct Refusal {
    answer: Bytes,
    written: usize,
}

/// What the bytes read so far mean for the connection.
enum Verdict {
    /// Nothing wrong (yet).
    Pass,
    /// A body could not be decoded: the dispatcher handles that itself; stop watching.
    Lost,
    /// A request head was refused; the last `withheld` bytes read belong to it or come after it.
    Refuse { withheld: usize, error: ParseError },
}

impl Watch {
    fn new(config: &ServiceConfig) -> Watch {
        Watch { codec: Codec::new(config.clone()), unread: BytesMut::new(), in_body: false }
    }

    fn inspect(&mut self, read: &[u8]) -> Verdict {
        self.unread.extend_from_slice(read);
        loop {
            // An erroring decode may already have consumed the head it refused.
            let pending = self.unread.len();
            match self.codec.decode(&mut self.unread) {
                Ok(Some(Message::Item(_))) => self.in_body = self.codec.message_type() != MessageType::None,
                Ok(Some(Message::Chunk(None))) => self.in_body = false,
                Ok(Some(Message::Chunk(Some(_)))) => {}
                Ok(None) => return Verdict::Pass,
                Err(_) if self.in_body => return Verdict::Lost,
                Err(error) => return Verdict::Refuse { withheld: pending, error },
            }
        }
    }
}

impl<T> Guarded<T> {
    /// Wraps a new connection from `peer`; `tls` adds HSTS to a refusal like to every answer.
    /// `config` only serves the decoder (which reads none of it); one per worker thread is
    /// enough, as a new `ServiceConfig` starts a date-keeping task.
    pub fn new(io: T, peer: Option<SocketAddr>, tls: bool, config: &ServiceConfig) -> Guarded<T> {
        Guarded { io, peer, tls, watch: Some(Watch::new(config)), refusal: None }
    }

    /// The peer's address, as the listener saw it when it accepted the connection (under TLS
    /// too, where the stream itself is not a `TcpStream`).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// The failure a decoder error stands for; the message names the part, never echoes the bytes.
fn failure(error: &ParseError) -> ApiError {
    match error {
        ParseError::TooLarge => ApiError::HeadTooLarge,
        ParseError::Method => ApiError::MalformedRequest("the request method is not valid"),
        ParseError::Uri(_) => ApiError::MalformedRequest("the request target is not a valid URI"),
        ParseError::Version => ApiError::MalformedRequest("the HTTP version is not supported; send HTTP/1.1"),
        _ => ApiError::MalformedRequest("the request line or a header is malformed (HTTP/1.1 also needs Host)"),
    }
}

/// The whole answer as bytes: the envelope, and `Connection: close` since nothing after a
/// malformed head can be trusted to start a request.
fn render(failure: &ApiError, tls: bool) -> Bytes {
    let body = failure.body().to_string();
    let status = failure.status_code();
    let hsts = match tls {
        true => format!("strict-transport-security: {}\r\n", crate::server::HSTS),
        false => String::new(),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{hsts}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    Bytes::from([head.into_bytes(), body.into_bytes()].concat())
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            // The end of the stream, as far as the dispatcher is concerned.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let Some(watch) = this.watch.as_mut() else { return Poll::Ready(Ok(())) };
        match watch.inspect(&buf.filled()[before..]) {
            Verdict::Pass => {}
            Verdict::Lost => this.watch = None,
            Verdict::Refuse { withheld, error } => {
                let read = buf.filled().len() - before;
                // Bytes of the refused head from earlier reads are an incomplete head to the
                // dispatcher, which it drops at the end of the stream.
                buf.set_filled(before + read.saturating_sub(withheld));
                let failure = failure(&error);
                let peer = this.peer.map_or_else(|| "an unknown peer".to_string(), |p| p.ip().to_string());
                log::warn!("refused a malformed request from {peer} with {}: {error}", failure.status_code().as_u16());
                this.refusal = Some(Refusal { answer: render(&failure, this.tls), written: 0 });
                this.watch = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// The dispatcher has answered every request before a refused head and flushed: the refusal
    /// goes out last, then the connection closes.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(refusal) = this.refusal.as_mut() {
            while refusal.written < refusal.answer.len() {
                let n = ready!(Pin::new(&mut this.io).poll_write(cx, &refusal.answer[refusal.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                refusal.written += n;
            }
            ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(chunks: &[&[u8]]) -> Vec<String> {
        // A `ServiceConfig` needs the actix runtime (it starts a date-keeping task).
        actix_web::rt::System::new().block_on(async {
            let mut watch = Watch::new(&ServiceConfig::default());
            chunks
                .iter()
                .map(|chunk| match watch.inspect(chunk) {
                    Verdict::Pass => "pass".to_string(),
                    Verdict::Lost => "lost".to_string(),
                    Verdict::Refuse { withheld, error } => format!("refuse {withheld}: {}", failure(&error).code()),
                })
                .collect()
        })
    }

    #[test]
    fn a_bad_head_after_good_pipelined_requests_withholds_only_the_bad_head() {
        let good = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let bad = b"GET /b HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n";
        let both = [&good[..], &bad[..]].concat();
        assert_eq!(verdict(&[&both]), vec![format!("refuse {}: malformed-request", bad.len())]);
    }

    #[test]
    fn a_head_split_across_reads_is_refused_where_it_fails() {
        // The whole head (39 bytes) is withheld: the 11 of the last read are held back, the 28
        // handed on before stay an incomplete head to the dispatcher.
        assert_eq!(
            verdict(&[b"GET / HTTP/1.1\r\nHost: x\r\nBad", b" header\r\n\r\n"]),
            vec!["pass".to_string(), "refuse 39: malformed-request".to_string()]
        );
    }

    #[test]
    fn bodies_are_skipped_and_a_broken_chunked_body_is_left_to_the_dispatcher() {
        let with_body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nNo co";
        assert_eq!(verdict(&[with_body, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]), vec!["pass", "pass"]);
        let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(verdict(&[chunked]), vec!["lost"]);
    }

    #[test]
    fn an_oversized_head_is_431_and_the_answer_is_the_envelope() {
        let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}", "a".repeat(140 * 1024));
        assert_eq!(verdict(&[huge.as_bytes()]), vec![format!("refuse {}: request-head-too-large", huge.len())]);
        let answer = render(&ApiError::HeadTooLarge, true);
        let text = std::str::from_utf8(&answer).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{text}");
        assert!(text.contains("\r\nstrict-transport-security: max-age="), "{text}");
        let body: serde_json::Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!((body["status"].as_str(), body["error"].as_str()), (Some("failed"), Some("request-head-too-large")));
    }
}
