//! Following the VIP interface's link from kernel notifications.
//!
//! A master whose cable is pulled (or whose veth peer or switch port goes down) must drop
//! the VIP at once: its backups take over after the master-down interval, and until then
//! the unplugged node would be a second holder that nobody can reach. Polling
//! `/sys/class/net/*/carrier` would cost a wakeup per poll and still lag by the poll
//! period; an `RTMGRP_LINK` subscription costs nothing while idle and reports the change
//! within microseconds.

use futures_util::stream::{StreamExt, TryStreamExt};
use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::LinkFlags;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::netlink::bounded;
use super::VipError;

/// Whether the interface can carry traffic, with the kernel's view in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Administratively up and with carrier.
    pub usable: bool,
    /// E.g. "eth0 lost carrier", "eth0 is administratively down", "eth0 has carrier".
    pub detail: String,
}

impl LinkState {
    fn of(interface: &str, flags: LinkFlags) -> Self {
        if !flags.contains(LinkFlags::Up) {
            Self {
                usable: false,
                detail: format!("{interface} is administratively down"),
            }
        } else if !flags.contains(LinkFlags::LowerUp) {
            Self {
                usable: false,
                detail: format!("{interface} lost carrier"),
            }
        } else {
            Self {
                usable: true,
                detail: format!("{interface} has carrier"),
            }
        }
    }

    fn removed(interface: &str) -> Self {
        Self {
            usable: false,
            detail: format!("{interface} was removed"),
        }
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
    /// Subscribes to link notifications, then reads the interface's current state (in
    /// that order, so no change can fall between the two). Returns the current state and
    /// a channel that receives every later change of [`LinkState::usable`] or its detail.
    ///
    /// Must be called from inside a tokio runtime.
    pub async fn spawn(
        interface: &str,
        ifindex: u32,
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

        let mut links = Box::pin(handle.link().get().match_index(ifindex).execute());
        let lookup = async move { links.try_next().await };
        let current = match bounded(interface, "read link state", lookup).await {
            Ok(Some(link)) => LinkState::of(interface, link.header.flags),
            Ok(None) => LinkState::removed(interface),
            Err(e) => {
                connection.abort();
                return Err(e);
            }
        };

        let (tx, rx) = mpsc::channel(16);
        let name = interface.to_string();
        let mut last = current.clone();
        let task = tokio::spawn(async move {
            while let Some((message, _)) = messages.next().await {
                let state = match message.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
                        if link.header.index == ifindex =>
                    {
                        LinkState::of(&name, link.header.flags)
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link))
                        if link.header.index == ifindex =>
                    {
                        LinkState::removed(&name)
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
            tracing::error!(interface = %name,
                "link notifications stopped: carrier changes are no longer seen");
        });
        Ok((Self { connection, task }, current, rx))
    }
}
