//! Connections this server opens on its own: build downloads (and, later, webhook deliveries and
//! S3 publishing). One outbound address policy for all of them ([`policy`]), checked on every hop
//! and pinned for the connection, so a DNS answer that changes between the check and the connect
//! (rebinding) cannot reach a forbidden address.

pub mod disk;
pub mod download;
pub mod policy;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use url::Url;

use self::download::DownloadError;
use self::policy::OutboundPolicy;

/// Resolves the URL's host and keeps the addresses the policy permits; only http(s) URLs.
pub fn resolve_checked(url: &Url, policy: OutboundPolicy) -> Result<Vec<SocketAddr>, DownloadError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DownloadError::BadUrl(format!("scheme `{}` is not http or https", url.scheme())));
    }
    let host = url.host_str().ok_or_else(|| DownloadError::BadUrl("the URL has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    // `host_str` keeps IPv6 literals in brackets; the resolver wants them bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| DownloadError::Network(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(DownloadError::Network(format!("{host} has no address")));
    }
    policy.filter(addrs).map_err(|class| DownloadError::Refused { host: host.to_string(), class })
}

/// Hands the HTTP client exactly the addresses that passed the policy.
struct PinnedResolver(Vec<SocketAddr>);

impl ureq::Resolver for PinnedResolver {
    fn resolve(&self, _netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        Ok(self.0.clone())
    }
}

/// A client for one hop: no automatic redirects (each hop is checked by the caller), timeouts on
/// connect, every read and every write, and connections only to `addrs`.
pub fn agent(timeout: Duration, addrs: Vec<SocketAddr>) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .user_agent(concat!("rockit-edge/", env!("CARGO_PKG_VERSION")))
        .resolver(PinnedResolver(addrs))
        .build()
}
