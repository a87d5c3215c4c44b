//! Following the VIP interface's link from kernel notifications.
//!
//! A master whose cable is pulled (or whose veth peer or switch port goes down) must drop
//! the VIP at once: its backups take over after the master-down interval, and until then
//! the unplugged node would be a second holder that nobody can reach. Polling
//! `/sys/class/net/*/carrier` would cost a wakeup per poll and still lag by the poll
//! period; an `RTMGRP_LINK` subscription costs nothing while idle and reports the change
//! within microseconds.
//!
//! The watch follows the interface by *name*, not by the index it had at start: deleting
//! an interface and creating it again under the same name (what a network restart does to
//! a VLAN or a bond) reports the removal, then the new interface's index, MAC and link
//! state. A MAC change (`RTM_NEWLINK` with another `IFLA_ADDRESS`) is reported too. The
//! daemon moves everything that holds the index or the MAC (netlink requests, packet
//! sockets, the MAC in adverts) over to what the latest [`LinkState`] says.

use futures_util::stream::{StreamExt, TryStreamExt};
use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::netlink::bounded;
use super::VipError;

/// Whether the interface can carry traffic, with the kernel's view in words, and which
/// interface carries the name right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Administratively up and with carrier.
    pub usable: bool,
    /// E.g. "eth0 lost carrier", "eth0 is administratively down", "eth0 has carrier".
    pub detail: String,
    /// The kernel's index of the interface that carries the name; `None` while there is
    /// no such interface.
    pub ifindex: Option<u32>,
    /// Its Ethernet MAC (`IFLA_ADDRESS`), if it has one.
    pub mac: Option<[u8; 6]>,
}

impl LinkState {
    fn of(interface: &str, link: &LinkMessage) -> Self {
        let flags = link.header.flags;
        let (usable, detail) = if !flags.contains(LinkFlags::Up) {
            (false, format!("{interface} is administratively down"))
        } else if !flags.contains(LinkFlags::LowerUp) {
            (false, format!("{interface} lost carrier"))
        } else {
            (true, format!("{interface} has carrier"))
        };
        Self {
            usable,
            detail,
            ifindex: Some(link.header.index),
            mac: link_mac(link),
        }
    }

    fn removed(interface: &str) -> Self {
        Self {
            usable: false,
            detail: format!("{interface} was removed"),
            ifindex: None,
            mac: None,
        }
    }
}

/// The name in a link message (`IFLA_IFNAME`; the kernel always sends it).
fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

/// The Ethernet MAC in a link message (`IFLA_ADDRESS` of six bytes).
pub(crate) fn link_mac(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
        _ => None,
    })
}

/// Follows one interface name through link notifications.
#[derive(Debug)]
struct Follower {
    name: String,
    /// The index that carries the name, as far as we know.
    ifindex: Option<u32>,
}

impl Follower {
    /// What a link notification means for our interface, if anything: `NEWLINK` for the
    /// index we follow (a rename away counts as removal) or for a new interface with our
    /// name (it is adopted), `DELLINK` for the index we follow.
    fn on_message(&mut self, message: &RouteNetlinkMessage) -> Option<LinkState> {
        match message {
            RouteNetlinkMessage::NewLink(link) => {
                let ours = link_name(link) == Some(self.name.as_str());
                if Some(link.header.index) == self.ifindex && !ours {
                    self.ifindex = None;
                    return Some(LinkState::removed(&self.name));
                }
                if !ours {
                    return None;
                }
                self.ifindex = Some(link.header.index);
                Some(LinkState::of(&self.name, link))
            }
            RouteNetlinkMessage::DelLink(link) if Some(link.header.index) == self.ifindex => {
                self.ifindex = None;
                Some(LinkState::removed(&self.name))
            }
            _ => None,
        }
    }
}

/// Reads the state of the interface called `name` now (removed if there is none).
async fn read_state(handle: &Handle, name: &str) -> Result<LinkState, VipError> {
    let mut links = Box::pin(handle.link().get().match_name(name.to_string()).execute());
    let lookup = async move { links.try_next().await };
    match bounded(name, "read link state", lookup).await {
        Ok(Some(link)) => Ok(LinkState::of(name, &link)),
        Ok(None) | Err(VipError::InterfaceNotFound { .. }) => Ok(LinkState::removed(name)),
        Err(e) => Err(e),
    }
}

/// Watches one interface; dropping it stops the watch.
#[derive(Debug)]
pub struct CarrierWatch {
    connection: JoinHandle<()>,
    task: JoinHandle<()>,
}

impl Drop for CarrierWatch {
    fn drop(&mut self) {
        self.task.abort();
        self.connection.abort();
    }
}

impl CarrierWatch {
    /// Subscribes to link notifications, then reads the state of the interface called
    /// `interface` (in that order, so no change can fall between the two). Returns the
    /// current state and a channel that receives every later change of it: link state,
    /// index (the interface deleted and created again) or MAC.
    ///
    /// If the kernel drops notifications (the socket overran, `ENOBUFS`), the state is
    /// read again by name and reported if it differs.
    ///
    /// Must be called from inside a tokio runtime.
    pub async fn spawn(
        interface: &str,
    ) -> Result<(Self, LinkState, mpsc::Receiver<LinkState>), VipError> {
        let subscribe = "subscribe to link notifications";
        let (mut connection, handle, mut messages) = rtnetlink::new_connection()
            .map_err(|e| VipError::from_io(interface, subscribe, "CAP_NET_ADMIN", e))?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|e| VipError::from_io(interface, subscribe, "CAP_NET_ADMIN", e))?;
        let connection = tokio::spawn(connection);

        let current = match read_state(&handle, interface).await {
            Ok(state) => state,
            Err(e) => {
                connection.abort();
                return Err(e);
            }
        };

        let (tx, rx) = mpsc::channel(16);
        let mut follower = Follower {
            name: interface.to_string(),
            ifindex: current.ifindex,
        };
        let mut last = current.clone();
        let task = tokio::spawn(async move {
            while let Some((message, _)) = messages.next().await {
                let state = match message.payload {
                    NetlinkPayload::InnerMessage(m) => match follower.on_message(&m) {
                        Some(state) => state,
                        None => continue,
                    },
                    NetlinkPayload::Overrun(_) => {
                        tracing::warn!(interface = %follower.name,
                            "link notifications were lost (netlink overrun): reading the link again");
                        match read_state(&handle, &follower.name).await {
                            Ok(state) => {
                                follower.ifindex = state.ifindex;
                                state
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "cannot read the link state");
                                continue;
                            }
                        }
                    }
                    _ => continue,
                };
                // The kernel repeats NEWLINK for changes we do not care about (MTU,
                // statistics, promiscuity); pass on only what changes our verdict.
                if state != last {
                    last = state.clone();
                    if tx.send(state).await.is_err() {
                        return;
                    }
                }
            }
            tracing::error!(interface = %follower.name,
                "link notifications stopped: carrier changes are no longer seen");
        });
        Ok((Self { connection, task }, current, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, mac: [u8; 6], flags: LinkFlags) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = flags;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        m
    }

    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn follows_the_name_through_delete_and_recreate() {
        let up = LinkFlags::Up | LinkFlags::LowerUp;
        let mut f = Follower {
            name: "eth0".into(),
            ifindex: Some(3),
        };
        // Another interface: none of our business.
        assert_eq!(
            f.on_message(&RouteNetlinkMessage::NewLink(link(4, "eth1", MAC2, up))),
            None
        );
        let gone = f
            .on_message(&RouteNetlinkMessage::DelLink(link(3, "eth0", MAC1, up)))
            .unwrap();
        assert!(!gone.usable && gone.ifindex.is_none(), "{gone:?}");
        assert_eq!(gone.detail, "eth0 was removed");
        // Created again under the same name: new index and MAC adopted.
        let back = f
            .on_message(&RouteNetlinkMessage::NewLink(link(9, "eth0", MAC2, up)))
            .unwrap();
        assert_eq!(
            (back.usable, back.ifindex, back.mac),
            (true, Some(9), Some(MAC2))
        );
        // A DELLINK for the old index no longer concerns us.
        assert_eq!(
            f.on_message(&RouteNetlinkMessage::DelLink(link(3, "eth0", MAC1, up))),
            None
        );
    }

    #[test]
    fn a_rename_away_is_a_removal_and_the_mac_is_reported() {
        let mut f = Follower {
            name: "eth0".into(),
            ifindex: Some(3),
        };
        let down = f
            .on_message(&RouteNetlinkMessage::NewLink(link(
                3,
                "eth0",
                MAC2,
                LinkFlags::empty(),
            )))
            .unwrap();
        assert_eq!((down.usable, down.mac), (false, Some(MAC2)));
        assert_eq!(down.detail, "eth0 is administratively down");
        let renamed = f
            .on_message(&RouteNetlinkMessage::NewLink(link(
                3,
                "old0",
                MAC2,
                LinkFlags::Up,
            )))
            .unwrap();
        assert_eq!(renamed.ifindex, None);
    }
}
