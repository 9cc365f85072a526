//! Which addresses the server may connect to on its own (build downloads today; webhook
//! receivers and S3 endpoints use the same rule). Build servers and webhook receivers are often on
//! the local network, so private ranges are allowed; cloud metadata and other link-local
//! addresses never are unless configured; loopback only by a setting (the tests use it), because
//! an import URL pointing at `127.0.0.1` would let any `apps` updater probe the box's own ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The outbound address policy; `Default` is the safe production setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Permit 127.0.0.0/8 and ::1 (tests, a build server on the same box).
    pub allow_loopback: bool,
    /// Permit 169.254.0.0/16 and fe80::/10 (never needed in practice; metadata services live there).
    pub allow_link_local: bool,
}

/// What kind of address a destination is, for the policy and for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    LinkLocal,
    /// Unspecified, multicast, broadcast or documentation addresses: never a real server.
    Unroutable,
    /// Everything else: private ranges and public addresses.
    Ordinary,
}

impl AddressClass {
    /// How the class is named in a refusal ("... is a loopback address").
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Loopback => "a loopback address",
            AddressClass::LinkLocal => "a link-local (metadata) address",
            AddressClass::Unroutable => "not a routable address",
            AddressClass::Ordinary => "an ordinary address",
        }
    }
}

/// Classifies an address; IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as their IPv4 form,
/// so they cannot be used to slip past the rule.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_documentation() {
        AddressClass::Unroutable
    } else {
        AddressClass::Ordinary
    }
}

/// The AWS metadata service over IPv6: not in fe80::/10, but as dangerous as 169.254.169.254.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if first & 0xffc0 == 0xfe80 || ip == AWS_METADATA_V6 {
        AddressClass::LinkLocal
    } else if ip.is_unspecified() || ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0x0db8 {
        AddressClass::Unroutable
    } else {
        AddressClass::Ordinary
    }
}

impl OutboundPolicy {
    /// Whether the server may connect to `ip`; `Err` carries the class that forbids it.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            AddressClass::Ordinary => Ok(()),
            AddressClass::Loopback if self.allow_loopback => Ok(()),
            AddressClass::LinkLocal if self.allow_link_local => Ok(()),
            refused => Err(refused),
        }
    }

    /// The permitted subset of resolved addresses, or the class of the first refused one when
    /// none is left (so the message says why).
    pub fn filter(&self, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, AddressClass> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.check(a.ip()) {
                Ok(()) => true,
                Err(class) => {
                    refused.get_or_insert(class);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (true, Some(class)) => Err(class),
            _ => Ok(allowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_public_addresses_are_ordinary() {
        for a in ["10.1.2.3", "172.16.0.9", "192.168.1.1", "8.8.8.8", "fd00::1", "2a00:1450::1"] {
            assert_eq!(classify(ip(a)), AddressClass::Ordinary, "{a}");
        }
    }

    #[test]
    fn metadata_and_link_local_addresses_are_link_local() {
        for a in ["169.254.169.254", "169.254.0.1", "fe80::1", "febf::1", "::ffff:169.254.169.254", "fd00:ec2::254"] {
            assert_eq!(classify(ip(a)), AddressClass::LinkLocal, "{a}");
        }
    }

    #[test]
    fn mapped_loopback_counts_as_loopback() {
        assert_eq!(classify(ip("::ffff:127.0.0.1")), AddressClass::Loopback);
        assert_eq!(classify(ip("127.8.9.10")), AddressClass::Loopback);
        assert_eq!(classify(ip("::1")), AddressClass::Loopback);
    }

    #[test]
    fn unspecified_multicast_and_documentation_addresses_are_unroutable() {
        for a in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.1", "::", "ff02::1", "2001:db8::1"] {
            assert_eq!(classify(ip(a)), AddressClass::Unroutable, "{a}");
        }
    }

    #[test]
    fn the_default_policy_refuses_loopback_and_link_local() {
        let policy = OutboundPolicy::default();
        assert_eq!(policy.check(ip("127.0.0.1")), Err(AddressClass::Loopback));
        assert_eq!(policy.check(ip("169.254.169.254")), Err(AddressClass::LinkLocal));
        assert_eq!(policy.check(ip("192.168.0.10")), Ok(()));
    }

    #[test]
    fn settings_open_loopback_and_link_local_separately() {
        let loopback = OutboundPolicy { allow_loopback: true, allow_link_local: false };
        assert_eq!(loopback.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(loopback.check(ip("169.254.169.254")), Err(AddressClass::LinkLocal));
        let link_local = OutboundPolicy { allow_loopback: false, allow_link_local: true };
        assert_eq!(link_local.check(ip("169.254.169.254")), Ok(()));
        assert_eq!(link_local.check(ip("0.0.0.0")), Err(AddressClass::Unroutable));
    }

    #[test]
    fn filter_keeps_permitted_addresses_and_explains_an_empty_result() {
        let policy = OutboundPolicy::default();
        let mixed = vec!["127.0.0.1:80".parse().unwrap(), "10.0.0.1:80".parse().unwrap()];
        assert_eq!(policy.filter(mixed), Ok(vec!["10.0.0.1:80".parse().unwrap()]));
        let only_metadata = vec!["169.254.169.254:80".parse().unwrap()];
        assert_eq!(policy.filter(only_metadata), Err(AddressClass::LinkLocal));
    }
}
