//! Small network value types shared by the config, the VIP manager and the daemon.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 address with its prefix length, as written `192.0.2.100/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    /// The address itself (the VIP), not the network address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// Whether `ip` is in this address's subnet (`addr/prefix`).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix.min(32)))
            .unwrap_or(0);
        u32::from(self.addr) & mask == u32::from(ip) & mask
    }
}

/// Why a string is not an `address/prefix` pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/` in the text.
    #[error("`{0}` is not in address/prefix form (e.g. 192.0.2.100/24)")]
    MissingPrefix(String),
    /// The part before `/` is not an IPv4 address.
    #[error("`{0}` is not an IPv4 address")]
    BadAddress(String),
    /// The part after `/` is not a number in 0..=32.
    #[error("prefix `{0}` is not a number from 0 to 32")]
    BadPrefix(String),
    /// No `/` in the text of an address of either family.
    #[error("`{0}` is not in address/prefix form (e.g. 192.0.2.100/24 or 2001:db8::100/64)")]
    MissingPrefixIp(String),
    /// The part before `/` is neither an IPv4 nor an IPv6 address.
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    BadIpAddress(String),
    /// The part after `/` of an IPv6 address is not a number in 0..=128.
    #[error("prefix `{0}` is not a number from 0 to 128")]
    BadPrefix6(String),
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| CidrError::MissingPrefix(s.to_string()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| CidrError::BadPrefix(prefix.to_string()))?;
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An address of either family with its prefix length, as written `192.0.2.100/24` or
/// `2001:db8::100/64`: what a VIP is (issue 13: IPv4 and IPv6 VIPs, mixed in one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpCidr {
    /// The address itself (the VIP), not the network address.
    pub addr: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl IpCidr {
    /// `addr/prefix`; `None` if `prefix` is longer than the family's address (32 or 128).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= max_prefix(addr)).then_some(Self { addr, prefix })
    }

    /// Whether this is an IPv4 address.
    pub const fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The IPv4 form, if this is an IPv4 address.
    pub fn v4(&self) -> Option<Ipv4Cidr> {
        match self.addr {
            IpAddr::V4(addr) => Some(Ipv4Cidr {
                addr,
                prefix: self.prefix,
            }),
            IpAddr::V6(_) => None,
        }
    }

    /// The address as 128 bits (IPv4 in the low 32) and the family's width (32 or 128).
    fn bits(addr: IpAddr) -> (u128, u32) {
        match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    /// Whether `ip` is in this address's subnet (`addr/prefix`); never for the other
    /// family.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let ((a, width), (b, _)) = (Self::bits(self.addr), Self::bits(ip));
        let host = width - u32::from(self.prefix).min(width);
        a.checked_shr(host).unwrap_or(0) == b.checked_shr(host).unwrap_or(0)
    }

    /// The network address (`addr` with the host bits cleared), same prefix.
    pub fn network(&self) -> Self {
        let (a, width) = Self::bits(self.addr);
        let host = width - u32::from(self.prefix).min(width);
        let net = a
            .checked_shr(host)
            .and_then(|n| n.checked_shl(host))
            .unwrap_or(0);
        let addr = match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(net).unwrap_or(0))),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(net)),
        };
        Self { addr, ..*self }
    }

    /// A sort key that orders IPv4 before IPv6, then by address, then by prefix.
    pub fn sort_key(&self) -> (bool, u128, u8) {
        (!self.is_ipv4(), Self::bits(self.addr).0, self.prefix)
    }
}

impl From<Ipv4Cidr> for IpCidr {
    fn from(c: Ipv4Cidr) -> Self {
        Self {
            addr: IpAddr::V4(c.addr),
            prefix: c.prefix,
        }
    }
}

/// The longest prefix of `addr`'s family: 32 or 128.
const fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl FromStr for IpCidr {
    type Err = CidrError;

    /// `192.0.2.100/24` or `2001:db8::100/64`; errors as [`Ipv4Cidr`]'s, with the IPv6
    /// range (0..=128) in [`CidrError::BadPrefix6`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| CidrError::MissingPrefixIp(s.to_string()))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::BadIpAddress(addr.to_string()))?;
        let bad = || match addr {
            IpAddr::V4(_) => CidrError::BadPrefix(prefix.to_string()),
            IpAddr::V6(_) => CidrError::BadPrefix6(prefix.to_string()),
        };
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Self::new(addr, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A MAC address as `02:aa:bb:cc:dd:ee`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let c: Ipv4Cidr = "192.0.2.100/24".parse().unwrap();
        assert_eq!(c.addr, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(c.prefix, 24);
        assert_eq!(c.to_string(), "192.0.2.100/24");
    }

    #[test]
    fn rejects_malformed_text() {
        assert!(matches!(
            "192.0.2.100".parse::<Ipv4Cidr>(),
            Err(CidrError::MissingPrefix(_))
        ));
        assert!(matches!(
            "192.0.2/24".parse::<Ipv4Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        assert!(matches!(
            "192.0.2.1/33".parse::<Ipv4Cidr>(),
            Err(CidrError::BadPrefix(_))
        ));
        assert!(matches!(
            "192.0.2.1/x".parse::<Ipv4Cidr>(),
            Err(CidrError::BadPrefix(_))
        ));
    }
}

#[cfg(test)]
mod ip_cidr_tests {
    use super::*;

    #[test]
    fn either_family_parses_and_prints_round_trip() {
        for text in ["192.0.2.100/24", "2001:db8::100/64", "2001:db8::1/128"] {
            let c: IpCidr = text.parse().unwrap();
            assert_eq!(c.to_string(), text);
        }
        let c: IpCidr = "2001:db8::100/64".parse().unwrap();
        assert!(!c.is_ipv4());
        assert_eq!(c.v4(), None);
        let v4: IpCidr = "192.0.2.100/24".parse().unwrap();
        assert_eq!(v4.v4(), Some("192.0.2.100/24".parse().unwrap()));
    }

    #[test]
    fn prefixes_are_checked_per_family() {
        assert!(matches!(
            "2001:db8::1/129".parse::<IpCidr>(),
            Err(CidrError::BadPrefix6(_))
        ));
        assert!(matches!(
            "192.0.2.1/33".parse::<IpCidr>(),
            Err(CidrError::BadPrefix(_))
        ));
        assert!(matches!(
            "2001:db8::zz/64".parse::<IpCidr>(),
            Err(CidrError::BadIpAddress(_))
        ));
        assert!(matches!(
            "2001:db8::1".parse::<IpCidr>(),
            Err(CidrError::MissingPrefixIp(_))
        ));
    }

    #[test]
    fn subnet_and_network_follow_the_prefix_in_both_families() {
        let c: IpCidr = "2001:db8::100/64".parse().unwrap();
        assert!(c.contains("2001:db8::ffff".parse().unwrap()));
        assert!(!c.contains("2001:db8:0:1::1".parse().unwrap()));
        assert!(
            !c.contains("192.0.2.1".parse().unwrap()),
            "never the other family"
        );
        assert_eq!(c.network().to_string(), "2001:db8::/64");
        let v4: IpCidr = "192.0.2.100/24".parse().unwrap();
        assert!(v4.contains("192.0.2.7".parse().unwrap()));
        assert_eq!(v4.network().to_string(), "192.0.2.0/24");
        let all: IpCidr = "2001:db8::1/0".parse().unwrap();
        assert!(all.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(all.network().to_string(), "::/0");
    }
}

#[cfg(test)]
mod contains_tests {
    use super::*;

    #[test]
    fn subnet_membership_follows_the_prefix() {
        let c = Ipv4Cidr {
            addr: Ipv4Addr::new(192, 0, 2, 11),
            prefix: 24,
        };
        assert!(c.contains(Ipv4Addr::new(192, 0, 2, 200)));
        assert!(!c.contains(Ipv4Addr::new(192, 0, 3, 1)));
        let host = Ipv4Cidr { prefix: 32, ..c };
        assert!(host.contains(Ipv4Addr::new(192, 0, 2, 11)));
        assert!(!host.contains(Ipv4Addr::new(192, 0, 2, 12)));
        let all = Ipv4Cidr { prefix: 0, ..c };
        assert!(all.contains(Ipv4Addr::new(203, 0, 113, 9)));
    }
}

/// The scope of an installed VIP (`ip addr add ... scope SCOPE`; keepalived's `scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VipScope {
    /// `global` (the default): reachable from anywhere.
    #[default]
    Global,
    /// `link`: only on the attached link.
    Link,
    /// `host`: only inside this host.
    Host,
}

impl VipScope {
    /// The name used in config files and `ip addr`: `global`, `link` or `host`.
    pub const fn as_str(self) -> &'static str {
        match self {
            VipScope::Global => "global",
            VipScope::Link => "link",
            VipScope::Host => "host",
        }
    }

    /// The kernel's `RT_SCOPE_*` value (`<linux/rtnetlink.h>`): 0, 253, 254.
    pub const fn rt_scope(self) -> u8 {
        match self {
            VipScope::Global => 0,
            VipScope::Link => 253,
            VipScope::Host => 254,
        }
    }
}

/// One VIP as a group installs it: the address, its interface and its optional attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VipSpec {
    /// The address and prefix, e.g. `192.0.2.100/24` or `2001:db8::100/64`.
    pub cidr: IpCidr,
    /// The interface it goes on (default: the node's `[node] interface`).
    pub interface: String,
    /// `IFA_LABEL` (`ip addr ... label eth0:vip`): at most 15 bytes and starting with the
    /// interface name, as the kernel requires; `None` = no label.
    pub label: Option<String>,
    /// Its scope (default global).
    pub scope: VipScope,
}

/// One route that follows a group's VIPs (keepalived's `virtual_routes`): installed after the
/// group's VIPs are up, removed before they go, with the routing protocol
/// [`RTPROT_HAAGENT`] so that a restarted agent can find and remove what a killed one left.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Destination (`0.0.0.0/0` for `default`); the address part is the network address.
    /// `[[group.route]]`s are IPv4; a routed group's host routes are of the VIP's family
    /// (`VIP/32` or `VIP/128`).
    pub to: IpCidr,
    /// Gateway, if any (`via`), of the destination's family.
    pub via: Option<IpAddr>,
    /// Preferred source address (`src`), normally one of the group's VIPs. An IPv4 route
    /// with `src` disappears with the VIP when its lease runs out; an IPv6 one stays and
    /// only loses its `src` (Linux `rt6_remove_prefsrc`), see docs/routed.md.
    pub src: Option<IpAddr>,
    /// Outgoing interface (`dev`); resolved by name whenever the route is installed.
    pub dev: String,
    /// Route metric (`metric`, RTA_PRIORITY); `None` = the kernel's default (0).
    pub metric: Option<u32>,
    /// Routing table (`table`); `None` = main (254).
    pub table: Option<u32>,
}

/// The routing protocol number haagent marks its routes with (`ip route ... proto 98`;
/// `/etc/iproute2/rt_protos` may name it `haagent`). keepalived uses 18 for the same purpose.
pub const RTPROT_HAAGENT: u8 = 98;

impl fmt::Display for RouteSpec {
    /// In `ip route` words: `0.0.0.0/0 via 192.0.2.1 dev eth0 src 192.0.2.100 metric 10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        write!(f, " dev {}", self.dev)?;
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if let Some(t) = self.table {
            write!(f, " table {t}")?;
        }
        Ok(())
    }
}
