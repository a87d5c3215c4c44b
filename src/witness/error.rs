//! The one error type of the gateway witness.
//!
//! Every variant names the interface (and, where it matters, the gateway) so a
//! start-up failure such as "no default route via eth0" tells the operator which
//! config key to set.

use std::io;
use std::time::Duration;

/// Why the gateway witness could not start (or resolve its gateway).
///
/// Once running, the witness never fails: a lost gateway is a
/// [`super::WitnessEvent::Unreachable`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// `gateway = "auto"` but the main routing table has no default route (IPv4 or IPv6)
    /// leaving through this interface.
    #[error("no default route via {interface} (set [witness] gateway = \"<ip>\")")]
    NoDefaultRoute {
        /// The configured interface name.
        interface: String,
    },

    /// No interface with this name exists (in this network namespace).
    #[error("interface {interface} not found")]
    InterfaceNotFound {
        /// The configured interface name.
        interface: String,
    },

    /// The kernel refused for lack of a capability.
    #[error(
        "{operation} on interface {interface}: permission denied, needs {capability} ({hint})"
    )]
    PermissionDenied {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "open ICMP socket".
        operation: String,
        /// The Linux capability that is missing, e.g. `CAP_NET_RAW`.
        capability: &'static str,
        /// What else the operator can do about it.
        hint: &'static str,
    },

    /// A netlink request (route or link lookup) got no answer in time.
    #[error("{operation} on interface {interface}: no answer from the kernel within {after:?}")]
    Timeout {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "read the routing table".
        operation: String,
        /// How long we waited.
        after: Duration,
    },

    /// The kernel answered a netlink request with an error.
    #[error("{operation} on interface {interface}: {source}")]
    Netlink {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "read the routing table".
        operation: String,
        /// The error from rtnetlink.
        #[source]
        source: rtnetlink::Error,
    },

    /// A socket-level failure (netlink or ICMP socket creation, option, registration).
    #[error("{operation} on interface {interface}: {source}")]
    Io {
        /// The configured interface name.
        interface: String,
        /// What we were doing, e.g. "bind ICMP socket to the interface".
        operation: String,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },

    /// The configuration cannot work (a zero interval or timeout).
    #[error("witness on interface {interface}: {reason}")]
    InvalidConfig {
        /// The configured interface name.
        interface: String,
        /// What is wrong, e.g. "interval must be greater than zero".
        reason: String,
    },
}

impl WitnessError {
    /// The kernel refused to bind an address (`EADDRNOTAVAIL`): it is not on the host now,
    /// or is still tentative (IPv6 DAD).
    pub(crate) fn address_unavailable(&self) -> bool {
        matches!(self, WitnessError::Io { source, .. } if source.raw_os_error() == Some(libc::EADDRNOTAVAIL))
    }
}
