//! The client's address, for rate limiting. `X-Forwarded-For` is believed only when the peer is
//! a configured trusted proxy; then the nearest address that is not itself a trusted proxy wins.

use std::net::IpAddr;

use actix_web::HttpRequest;

pub fn client_address(req: &HttpRequest, trusted: &[IpAddr]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else { return "unknown".into() };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded.iter().rev().find(|ip| !trusted.contains(ip)).copied().unwrap_or(peer).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "1.2.3.4, 10.0.0.1"))
            .to_http_request();
        assert_eq!(client_address(&req, &[proxy]), "1.2.3.4");
        assert_eq!(client_address(&req, &[]), "10.0.0.1");
        let spoofed = TestRequest::default()
            .peer_addr("9.9.9.9:5000".parse().unwrap())
            .insert_header(("x-forwarded-for", "1.2.3.4"))
            .to_http_request();
        assert_eq!(client_address(&spoofed, &[proxy]), "9.9.9.9");
    }
}
