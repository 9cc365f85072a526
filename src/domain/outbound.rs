//! Where the server may be told to send requests of its own (webhooks, S3 endpoints), checked
//! when such a target is created or changed: not the link-local range, where cloud metadata
//! services hand out credentials (169.254.169.254, fd00:ec2::254), nor other addresses that are
//! never a real service. The classification of addresses is the one the connections themselves
//! obey ([`crate::outbound::policy::classify`]), so the two rules cannot drift; this module only
//! reads the ways a host can be spelled. Private and loopback addresses stay allowed here: an
//! edge box talks to the CI server and the MinIO next to it (whether loopback may actually be
//! connected to is the outbound policy's decision at connect time).

use std::net::IpAddr;

use crate::outbound::policy::{classify, AddressClass};

/// Host names of metadata services, which resolve to link-local addresses.
const METADATA_NAMES: [&str; 5] =
    ["metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"];

/// Why `host` (a URL's host, maybe with `:port` or in `[…]`) may not be the target of a request
/// the server makes; `None` if it may.
pub fn refused_host(host: &str) -> Option<&'static str> {
    // `user:password@host` in a URL's authority: the host is after the last `@`.
    let host = host.trim().rsplit('@').next().unwrap_or("");
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None if host.matches(':').count() == 1 => host.split(':').next().unwrap_or(""),
        None => host,
    };
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    if METADATA_NAMES.contains(&name.as_str()) {
        return Some("a cloud metadata service");
    }
    let ip = name.parse::<IpAddr>().ok().or_else(|| loose_ipv4(&name).map(IpAddr::V4))?;
    match classify(ip) {
        class @ (AddressClass::LinkLocal | AddressClass::Unroutable) => Some(class.describe()),
        AddressClass::Loopback | AddressClass::Ordinary => None,
    }
}

/// The other spellings of an IPv4 address that resolvers accept (`inet_aton`): one to four parts,
/// each decimal, `0x` hex or `0` octal, the last filling the remaining bytes — `2852039166`,
/// `0xa9fea9fe` and `169.254.43518` are all 169.254.169.254.
fn loose_ipv4(text: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<u64> = text.split('.').map(number).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|p| *p > 255) {
        return None;
    }
    let room = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << room {
        return None;
    }
    let value = leading.iter().enumerate().fold(*last, |acc, (i, p)| acc | (p << (24 - 8 * i as u32)));
    Some(std::net::Ipv4Addr::from(value as u32))
}

fn number(part: &str) -> Option<u64> {
    if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if part.len() > 1 && part.starts_with('0') {
        return u64::from_str_radix(&part[1..], 8).ok();
    }
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_addresses_in_every_spelling_are_refused() {
        for host in [
            "169.254.169.254",
            "169.254.169.254:80",
            "2852039166",
            "0xa9fea9fe",
            "0251.0376.0251.0376",
            "169.254.43518",
            "[fe80::1]",
            "[fe80::1]:443",
            "[::ffff:169.254.169.254]",
            "[fd00:ec2::254]",
            "metadata.google.internal",
            "METADATA.google.internal.",
            "instance-data",
            "user:pw@169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(refused_host(host).is_some(), "{host} must be refused");
        }
    }

    #[test]
    fn services_on_the_lan_loopback_and_internet_are_allowed() {
        for host in [
            "ci.example.com",
            "hooks.slack.com",
            "10.0.0.5:9000",
            "192.168.1.20",
            "127.0.0.1:8080",
            "[::1]:9000",
            "minio.local:9000",
            "s3.us-east-1.amazonaws.com",
            "1e100.net",
        ] {
            assert_eq!(refused_host(host), None, "{host} must be allowed");
        }
    }
}
