//! The one error type of the VIP module.
//!
//! Every variant names the interface it concerns, so a log line such as
//! "add 192.0.2.100/24 on interface eth0 needs CAP_NET_ADMIN" is enough for an
//! operator to act on without reading code.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// Why moving or announcing a virtual IP failed.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    /// No interface with this name exists (in this network namespace).
    #[error("interface {interface} not found")]
    InterfaceNotFound {
        /// The configured interface name.
        interface: String,
    },

    /// The interface has no Ethernet MAC address (loopback-style, tun, WireGuard…),
    /// so gratuitous ARP cannot announce anything on it.
    #[error("interface {interface} has no Ethernet MAC address; gratuitous ARP needs one")]
    NoMacAddress {
        /// The configured interface name.
        interface: String,
    },

    /// The kernel refused the operation for lack of a capability.
    #[error("{operation} on interface {interface}: permission denied, needs {capability} (run as root or grant the capability)")]
    PermissionDenied {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "add 192.0.2.100/24".
        operation: String,
        /// The Linux capability that is missing: `CAP_NET_ADMIN` or `CAP_NET_RAW`.
        capability: &'static str,
    },

    /// The interface is administratively down, so nothing can be sent on it.
    #[error("{operation} on interface {interface}: the interface is down")]
    InterfaceDown {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "send gratuitous ARP for 192.0.2.100".
        operation: String,
    },

    /// A netlink request got no answer in time.
    #[error("{operation} on interface {interface}: no answer from the kernel within {after:?}")]
    Timeout {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "list addresses".
        operation: String,
        /// How long we waited.
        after: Duration,
    },

    /// The kernel answered a netlink request with an error (or an unexpected message).
    #[error("{operation} on interface {interface}: {source}")]
    Netlink {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "delete 192.0.2.100/24".
        operation: String,
        /// The error from rtnetlink.
        #[source]
        source: rtnetlink::Error,
    },

    /// A socket-level failure (netlink socket creation, packet socket, send).
    #[error("{operation} on interface {interface}: {source}")]
    Io {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "open packet socket".
        operation: String,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },

    /// The packet socket's send buffer stayed full (pnet's write timeout ran out) while
    /// announcing a VIP: a gratuitous ARP for an IPv4 VIP, an unsolicited neighbour
    /// advertisement for an IPv6 one.
    #[error(
        "send {} for {vip} on interface {interface}: the send buffer stayed full",
        announcement(vip)
    )]
    SendBufferFull {
        /// The configured interface name.
        interface: String,
        /// The VIP being announced.
        vip: IpAddr,
    },

    /// A routed group's host routes (`VIP/32 … proto 98`) could not be installed after its
    /// VIPs: without them the node's routing daemon announces nothing, so the claim failed.
    #[error("the VIPs' host routes ({routes}) could not be installed: {reason}; a routed group announces its VIPs only through them")]
    HostRoutes {
        /// The host routes, in `ip route` words.
        routes: String,
        /// The kernel's answer.
        reason: String,
    },

    /// The kernel refused an IPv6 address because IPv6 is off on the interface
    /// (`net.ipv6.conf.<interface>.disable_ipv6 = 1`, or the `ipv6.disable=1` boot option):
    /// Linux answers EACCES, which is no missing capability.
    #[error("{operation} on interface {interface}: IPv6 is disabled there (sysctl net.ipv6.conf.{interface}.disable_ipv6 = 1); enable it or remove the IPv6 VIPs")]
    Ipv6Disabled {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "add 2001:db8::100/64".
        operation: String,
    },
}

/// What announces `vip` on the segment, for messages: "gratuitous ARP" (IPv4) or
/// "unsolicited neighbour advertisement" (IPv6, RFC 4861 §7.2.6).
pub(crate) fn announcement(vip: &IpAddr) -> &'static str {
    match vip {
        IpAddr::V4(_) => "gratuitous ARP",
        IpAddr::V6(_) => "unsolicited neighbour advertisement",
    }
}

impl VipError {
    /// Sorts an OS error from a socket operation into the variant an operator
    /// can act on: EPERM/EACCES → missing `capability`, ENODEV/ENXIO → interface not
    /// found, ENETDOWN → interface down, anything else → [`VipError::Io`].
    pub(crate) fn from_io(
        interface: &str,
        operation: impl Into<String>,
        capability: &'static str,
        source: io::Error,
    ) -> Self {
        let interface = interface.to_string();
        let operation = operation.into();
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Self::PermissionDenied {
                interface,
                operation,
                capability,
            },
            Some(libc::ENODEV) | Some(libc::ENXIO) => Self::InterfaceNotFound { interface },
            Some(libc::ENETDOWN) => Self::InterfaceDown {
                interface,
                operation,
            },
            _ => Self::Io {
                interface,
                operation,
                source,
            },
        }
    }
}
