//! Following the VIPs' addresses from kernel notifications.
//!
//! The agent's idea of which VIPs it holds must follow the kernel's, not the other way
//! round: something else may delete a VIP while we are master (`ip addr del`, a network
//! manager restarting and flushing the interface, deleting the primary address while
//! `promote_secondaries` is off, which takes the secondaries with it), and the kernel
//! deletes a VIP by itself when its lifetime runs out. All of these arrive as
//! `RTM_DELADDR` on the `RTMGRP_IPV4_IFADDR` and `RTMGRP_IPV6_IFADDR` groups, within microseconds; waiting for the
//! next lease check would cost up to a quarter lease, and without a lease nothing would
//! ever notice.
//!
//! The watch only reports; the daemon decides (see its `on_vip_removed`). It does not know
//! which deletions are our own: the daemon ignores removals while it does not hold the
//! VIPs ([`super::VipManager::held`]).
//!
//! Netlink may drop notifications when its socket buffer overruns (`ENOBUFS`); the watch
//! then reports [`AddressEvent::Resync`] so the daemon lists the addresses again.

use std::net::IpAddr;

use futures_util::stream::StreamExt;
use rtnetlink::constants::{RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::VipError;
use crate::net::IpCidr;

/// A change of one of the VIPs' addresses, on any interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressEvent {
    /// `RTM_DELADDR`: the address left the interface (whoever removed it).
    Removed {
        /// The interface it was on (kernel index).
        ifindex: u32,
        /// The address and its prefix.
        cidr: IpCidr,
    },
    /// `RTM_NEWADDR`: the address was added (or changed, e.g. its lifetime renewed).
    Added {
        /// The interface it is on (kernel index).
        ifindex: u32,
        /// The address and its prefix.
        cidr: IpCidr,
    },
    /// Notifications were lost (netlink overrun): list the addresses again.
    Resync,
}

/// Watches the addresses (IPv4 and IPv6) whose IP is one of the VIPs; dropping it stops the
/// watch.
#[derive(Debug)]
pub struct AddressWatch {
    connection: JoinHandle<()>,
    task: JoinHandle<()>,
    /// The VIPs watched, shared with the task; replaced by [`AddressWatch::set_vips`].
    vips: std::sync::Arc<std::sync::Mutex<Vec<IpAddr>>>,
}

impl Drop for AddressWatch {
    fn drop(&mut self) {
        self.task.abort();
        self.connection.abort();
    }
}

/// How many events may wait for the daemon; beyond that the task waits, the netlink
/// socket fills up, and the overrun becomes a [`AddressEvent::Resync`].
const CAPACITY: usize = 64;

impl AddressWatch {
    /// Subscribes to address notifications of both families (`RTMGRP_IPV4_IFADDR`,
    /// `RTMGRP_IPV6_IFADDR`) and reports every addition or removal
    /// of an address whose IP is one of `vips` (any prefix, any interface: the daemon
    /// compares both with what it installed). `interface` only names the socket in errors.
    ///
    /// Errors: [`VipError::PermissionDenied`] or [`VipError::Io`] when the netlink socket
    /// cannot be opened or bound. Must be called from inside a tokio runtime.
    pub fn spawn(
        interface: &str,
        vips: Vec<IpAddr>,
    ) -> Result<(Self, mpsc::Receiver<AddressEvent>), VipError> {
        let subscribe = "subscribe to address notifications";
        let (mut connection, _handle, mut messages) = rtnetlink::new_connection()
            .map_err(|e| VipError::from_io(interface, subscribe, "CAP_NET_ADMIN", e))?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            .map_err(|e| VipError::from_io(interface, subscribe, "CAP_NET_ADMIN", e))?;
        let connection = tokio::spawn(connection);
        let (tx, rx) = mpsc::channel(CAPACITY);
        let name = interface.to_string();
        let vips = std::sync::Arc::new(std::sync::Mutex::new(vips));
        let watched = std::sync::Arc::clone(&vips);
        let task = tokio::spawn(async move {
            while let Some((message, _)) = messages.next().await {
                let event = match message.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        match classify(&m, &watched.lock().unwrap_or_else(|p| p.into_inner())) {
                            Some(event) => event,
                            None => continue,
                        }
                    }
                    NetlinkPayload::Overrun(_) => {
                        tracing::warn!(interface = %name,
                            "address notifications were lost (netlink overrun): listing the VIPs again");
                        AddressEvent::Resync
                    }
                    _ => continue,
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            tracing::error!(interface = %name,
                "address notifications stopped: VIPs removed by others are seen only by the lease check");
        });
        Ok((
            Self {
                connection,
                task,
                vips,
            },
            rx,
        ))
    }

    /// Watches `vips` from now on (a reload changed them): a dropped VIP deleted after
    /// this call is no event.
    pub fn set_vips(&self, vips: Vec<IpAddr>) {
        *self.vips.lock().unwrap_or_else(|p| p.into_inner()) = vips;
    }
}

/// The event an address notification stands for, if it concerns one of `vips`.
fn classify(message: &RouteNetlinkMessage, vips: &[IpAddr]) -> Option<AddressEvent> {
    let (added, m) = match message {
        RouteNetlinkMessage::NewAddress(m) => (true, m),
        RouteNetlinkMessage::DelAddress(m) => (false, m),
        _ => return None,
    };
    if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let addr = local_address(m)?;
    if !vips.contains(&addr) {
        return None;
    }
    let cidr = IpCidr::new(addr, m.header.prefix_len)?;
    let ifindex = m.header.index;
    Some(if added {
        AddressEvent::Added { ifindex, cidr }
    } else {
        AddressEvent::Removed { ifindex, cidr }
    })
}

/// `IFA_LOCAL`, or `IFA_ADDRESS` when there is no separate local address (IPv6 has only
/// `IFA_ADDRESS`); an attribute of the other family than the message's is ignored.
fn local_address(message: &AddressMessage) -> Option<IpAddr> {
    let v6 = message.header.family == AddressFamily::Inet6;
    let find = |local: bool| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local && ip.is_ipv6() == v6 => Some(*ip),
            AddressAttribute::Address(ip) if !local && ip.is_ipv6() == v6 => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    fn message(ip: Ipv4Addr, prefix: u8, index: u32) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        m
    }

    /// An IPv6 address message as Linux sends it: `IFA_ADDRESS` only.
    fn message6(ip: std::net::Ipv6Addr, prefix: u8, index: u32) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Address(IpAddr::V6(ip)));
        m
    }

    #[test]
    fn ipv6_vips_are_reported_like_ipv4_ones() {
        let vip6: std::net::Ipv6Addr = "2001:db8::100".parse().unwrap();
        let vips = [IpAddr::V4(VIP), IpAddr::V6(vip6)];
        let del = RouteNetlinkMessage::DelAddress(message6(vip6, 64, 3));
        assert_eq!(
            classify(&del, &vips),
            Some(AddressEvent::Removed {
                ifindex: 3,
                cidr: "2001:db8::100/64".parse().unwrap()
            })
        );
        let own = RouteNetlinkMessage::DelAddress(message6("2001:db8::11".parse().unwrap(), 64, 3));
        assert_eq!(classify(&own, &vips), None);
        // A prefix the family cannot have is no address.
        let bad = RouteNetlinkMessage::NewAddress(message6(vip6, 129, 3));
        assert_eq!(classify(&bad, &vips), None);
    }

    #[test]
    fn reports_only_the_vips_with_their_prefix_and_interface() {
        let vips = [IpAddr::V4(VIP)];
        let del = RouteNetlinkMessage::DelAddress(message(VIP, 24, 7));
        assert_eq!(
            classify(&del, &vips),
            Some(AddressEvent::Removed {
                ifindex: 7,
                cidr: IpCidr {
                    addr: IpAddr::V4(VIP),
                    prefix: 24
                }
            })
        );
        let add = RouteNetlinkMessage::NewAddress(message(VIP, 32, 2));
        assert!(matches!(
            classify(&add, &vips),
            Some(AddressEvent::Added { ifindex: 2, cidr }) if cidr.prefix == 32
        ));
        // The node's own address is none of our business.
        let own = RouteNetlinkMessage::DelAddress(message(Ipv4Addr::new(192, 0, 2, 11), 24, 7));
        assert_eq!(classify(&own, &vips), None);
    }
}
