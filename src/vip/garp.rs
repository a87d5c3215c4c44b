//! Gratuitous ARP: telling the LAN that the VIP now lives at this node's MAC.
//!
//! After the VIP moves, switches and neighbours still send its traffic to the old
//! master's MAC until their ARP caches expire (minutes). A gratuitous ARP makes
//! every host that already has an entry for the VIP update it at once. (Hosts
//! without an entry do not create one while `arp_accept=0`; they ask when they
//! need it and the new master answers.)
//!
//! # Which kind of gratuitous ARP
//!
//! Each [`GarpSender::send`] puts two frames on the wire, both to the broadcast
//! MAC with sender IP = target IP = VIP and sender MAC = our MAC:
//! 1. an ARP *request* (op 1, target MAC zero): the RFC 5227 "ARP announcement",
//!    what `arping -U` and keepalived send. Linux treats it as gratuitous and
//!    overrides its neighbour entry even inside the 1 s `locktime`;
//! 2. an ARP *reply* (op 2, target MAC = our MAC): for older stacks and some
//!    switches that only learn from replies. The target MAC must be our own, not
//!    broadcast: Linux counts a reply as gratuitous only when target MAC = sender
//!    MAC, and otherwise ignores it inside `locktime`.
//!
//! # The socket
//!
//! A send-only [`PacketSocket`] (its filter drops every incoming frame), reopened by name
//! when the interface is re-created, changes its MAC or comes back up, and once by itself
//! when a send fails on a stale socket (see [`super::packet`]).

use std::io;
use std::net::Ipv4Addr;

use pnet_base::MacAddr;
use pnet_packet::arp::ArpOperations;

use super::frame::garp_frame;
use super::packet::{Filter, PacketSocket, CAP_NET_RAW};
use super::VipError;

/// Sends gratuitous ARP frames on one interface.
pub struct GarpSender {
    socket: PacketSocket,
    mac: MacAddr,
}

impl std::fmt::Debug for GarpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarpSender")
            .field("interface", &self.socket.interface())
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl GarpSender {
    /// Opens a send-only packet socket on `interface` (needs `CAP_NET_RAW`).
    ///
    /// The socket is created in the calling thread's network namespace and stays
    /// there, whichever thread later sends on it.
    ///
    /// Errors: [`VipError::InterfaceNotFound`], [`VipError::NoMacAddress`],
    /// [`VipError::PermissionDenied`], [`VipError::Io`].
    pub fn open(interface: &str) -> Result<Self, VipError> {
        let socket = PacketSocket::open(interface, Filter::DropAll, None)?;
        let mac = socket.mac().ok_or_else(|| VipError::NoMacAddress {
            interface: interface.to_string(),
        })?;
        Ok(Self { socket, mac })
    }

    /// Opens a new socket on the interface that now carries the name and takes its
    /// current MAC: call it when the interface was re-created (new index), changed its
    /// MAC or came back up. On error the sender keeps its old socket and MAC.
    pub fn reopen(&mut self) -> Result<(), VipError> {
        let fresh = Self::open(self.socket.interface())?;
        *self = fresh;
        Ok(())
    }

    /// The interface this sender sends on.
    pub fn interface(&self) -> &str {
        self.socket.interface()
    }

    /// The MAC address announced as the VIP's new home.
    pub fn mac(&self) -> [u8; 6] {
        self.mac.octets()
    }

    /// Sends one gratuitous ARP for `vip`: a request-style and a reply-style frame
    /// (see the module documentation for why both). Returns after both frames were
    /// handed to the kernel; at most ~100 ms when the send buffer is full.
    pub fn send(&mut self, vip: Ipv4Addr) -> Result<(), VipError> {
        for op in [ArpOperations::Request, ArpOperations::Reply] {
            self.send_frame(&garp_frame(self.mac, vip, op), vip)?;
            // A stale socket is reopened inside the send (see `PacketSocket::send`); if the
            // interface has another MAC by now, that frame announced the old one: send it
            // again from the new MAC, which is the one clients must learn.
            if let Some(mac) = self.socket.mac().filter(|m| *m != self.mac) {
                self.mac = mac;
                self.send_frame(&garp_frame(mac, vip, op), vip)?;
            }
        }
        Ok(())
    }

    fn send_frame(&mut self, frame: &[u8], vip: Ipv4Addr) -> Result<(), VipError> {
        self.socket.send(frame).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                VipError::SendBufferFull {
                    interface: self.socket.interface().to_string(),
                    vip,
                }
            } else {
                VipError::from_io(
                    self.socket.interface(),
                    format!("send gratuitous ARP for {vip}"),
                    CAP_NET_RAW,
                    e,
                )
            }
        })
    }

    /// Frames each [`GarpSender::send`] puts on the wire.
    pub const FRAMES_PER_SEND: u64 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let e = GarpSender::open("havip-nonexistent0").unwrap_err();
        assert_eq!(e.to_string(), "interface havip-nonexistent0 not found");
    }
}
