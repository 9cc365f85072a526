//! The HTTP server, assembled from the parts actix-web's `HttpServer` is made of (actix-server
//! for sockets and workers, actix-tls for rustls, actix-http's `HttpService` for HTTP/1.1) with
//! one addition: every connection, after TLS, goes through [`Guarded`] so that protocol errors
//! are answered with the JSON envelope (see `protocol.rs`). `HttpServer` offers no way to wrap a
//! connection's I/O, so its `listen`/`listen_rustls_0_23` are reproduced here with the same
//! settings: the same keep-alive, request-head and disconnect timeouts, half-closed connections
//! allowed, actix's graceful-stop signal passed to each connection, the `on_connect` hook given
//! the same stream type as before, and the same `AppConfig` (scheme and host) for the app.

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_codec::{AsyncRead, AsyncWrite};
use actix_http::error::DispatchError;
use actix_http::{Extensions, HttpService, Protocol, Request, Response, ServiceConfig};
use actix_server::{GracefulShutdownSignal, Server, ServerBuilder};
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt};
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_tls::accept::TlsError;
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;

use crate::protocol::Guarded;

/// actix-web's `HttpServer` default for `client_disconnect_timeout` (actix-http's own is none).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Called for each new connection with its peer's address, plain or TLS alike.
pub type OnConnect = Arc<dyn Fn(Option<SocketAddr>, &mut Extensions) + Send + Sync>;

/// How the server listens; the rest is actix-web's defaults, as `HttpServer` sets them.
pub struct Options {
    pub tls: Option<rustls::ServerConfig>,
    pub workers: usize,
    pub client_request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub on_connect: OnConnect,
}

/// A server for `listener` running the app `factory` makes (once per worker), stopped by `stop`.
pub fn server<F, I, S, B>(
    listener: TcpListener,
    options: Options,
    factory: F,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as actix_service::Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let builder = ServerBuilder::default()
        .workers(options.workers)
        .shutdown_timeout(options.shutdown_timeout.as_secs().max(1))
        .shutdown_signal(stop);
    let graceful = builder.graceful_shutdown_signal();
    let http = Http {
        factory,
        addr,
        request_timeout: options.client_request_timeout,
        on_connect: options.on_connect,
        graceful,
    };
    let name = format!("rockit-edge-{addr}");
    let builder = match options.tls {
        None => builder.listen(name, listener, move || {
            let http = http.service::<TcpStream, I, S, B>(false);
            let config = ServiceConfig::default();
            fn_service(move |io: TcpStream| {
                let peer = io.peer_addr().ok();
                let guarded = Guarded::new(io, peer, false, &config);
                async move { Ok::<_, DispatchError>((guarded, Protocol::Http1, peer)) }
            })
            .and_then(http)
        })?,
        Some(tls) => builder.listen(name, listener, move || {
            let http = http.service::<TlsStream<TcpStream>, I, S, B>(true);
            let config = ServiceConfig::default();
            // The handshake timeout stays actix-tls's default, as with `HttpServer`.
            Acceptor::new(tls.clone())
                .map_init_err(|_| unreachable!("the TLS acceptor factory cannot fail"))
                .map_err(TlsError::into_service_error)
                .and_then(move |io: TlsStream<TcpStream>| {
                    let peer = io.get_ref().0.peer_addr().ok();
                    let guarded = Guarded::new(io, peer, true, &config);
                    async move { Ok((guarded, Protocol::Http1, peer)) }
                })
                .and_then(http.map_err(TlsError::Service))
        })?,
    };
    Ok(builder.run())
}

/// What each worker needs to make its HTTP service.
#[derive(Clone)]
struct Http<F> {
    factory: F,
    addr: SocketAddr,
    request_timeout: Duration,
    on_connect: OnConnect,
    graceful: GracefulShutdownSignal,
}

impl<F> Http<F> {
    fn service<T, I, S, B>(
        &self,
        secure: bool,
    ) -> impl ServiceFactory<
        (Guarded<T>, Protocol, Option<SocketAddr>),
        Config = (),
        Response = (),
        Error = DispatchError,
        InitError = (),
    >
    where
        T: AsyncRead + AsyncWrite + Unpin + 'static,
        F: Fn() -> I,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as actix_service::Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let graceful = self.graceful.clone();
        let on_connect = self.on_connect.clone();
        let mut builder = HttpService::build()
            .graceful_shutdown_signal(move || {
                let signal = graceful.clone();
                async move { signal.notified().await }
            })
            .client_request_timeout(self.request_timeout)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .h1_allow_half_closed(true)
            .on_connect_ext(move |io: &Guarded<T>, data: &mut Extensions| on_connect(io.peer(), data));
        if !secure {
            // As `HttpServer::listen` does (its TLS variant leaves it unset).
            builder = builder.local_addr(self.addr);
        }
        let app = (self.factory)().into_factory().map_err(|err| err.into().error_response());
        let (host, addr) = (self.addr.to_string(), self.addr);
        // `AppConfig::new` is crate-private; this is the constructor actix-web keeps public for
        // actix-test. It gives `ConnectionInfo` the scheme (https under TLS) and fallback host.
        builder.finish(map_config(app, move |_| AppConfig::__priv_test_new(secure, host.clone(), addr)))
    }
}
