//! Gratuitous ARP (IPv4) and unsolicited Neighbor Advertisements (IPv6): telling the LAN
//! that the VIP now lives at this node's MAC.
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
//! # IPv6: an unsolicited Neighbor Advertisement
//!
//! For an IPv6 VIP, [`GarpSender::send`] puts one frame on the wire: the unsolicited NA of
//! RFC 4861 §7.2.6 (Override set, Solicited clear, Target Link-Layer Address = our MAC,
//! from the VIP to the all-nodes group ff02::1; built by `ndp::unsolicited_na_frame`). With
//! Override a neighbour that has an entry for the VIP replaces the cached MAC at once; like
//! the ARP case, a neighbour without an entry does not create one.
//!
//! # The socket
//!
//! A send-only [`PacketSocket`] (its filter drops every incoming frame), reopened by name
//! when the interface is re-created, changes its MAC or comes back up, and once by itself
//! when a send fails on a stale socket (see [`super::packet`]).

use std::io;
use std::net::IpAddr;

use pnet_base::MacAddr;
use pnet_packet::arp::ArpOperations;

use super::error::announcement;
use super::frame::garp_frame;
use super::ndp::unsolicited_na_frame;
use super::packet::{Filter, PacketSocket, CAP_NET_RAW};
use super::VipError;

/// Sends gratuitous ARP (IPv4 VIPs) and unsolicited Neighbor Advertisements (IPv6 VIPs) on
/// one interface.
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

    /// Announces `vip` once and returns how many frames went on the wire:
    ///
    /// - IPv4: one gratuitous ARP, i.e. a request-style and a reply-style frame (see the
    ///   module documentation for why both): 2 frames;
    /// - IPv6: one unsolicited Neighbor Advertisement with Override (RFC 4861 §7.2.6):
    ///   1 frame.
    ///
    /// If a frame went out on a socket that had to be reopened and the interface has
    /// another MAC by now, it is sent once more from the new MAC (counted too). Returns
    /// after the frames were handed to the kernel; at most ~100 ms per frame when the
    /// send buffer is full ([`VipError::SendBufferFull`]).
    pub fn send(&mut self, vip: IpAddr) -> Result<u64, VipError> {
        match vip {
            IpAddr::V4(v4) => {
                let mut sent = 0;
                for op in [ArpOperations::Request, ArpOperations::Reply] {
                    sent += self.send_following_mac(vip, |mac| garp_frame(mac, v4, op))?;
                }
                Ok(sent)
            }
            IpAddr::V6(v6) => {
                let router = forwards_ipv6(self.socket.interface());
                self.send_following_mac(vip, |mac| unsolicited_na_frame(mac, v6, router))
            }
        }
    }

    /// Sends `build(our MAC)`; returns the frames sent (1, or 2 after a MAC change).
    fn send_following_mac<const N: usize>(
        &mut self,
        vip: IpAddr,
        build: impl Fn(MacAddr) -> [u8; N],
    ) -> Result<u64, VipError> {
        self.send_frame(&build(self.mac), vip)?;
        // A stale socket is reopened inside the send (see `PacketSocket::send`); if the
        // interface has another MAC by now, that frame announced the old one: send it
        // again from the new MAC, which is the one clients must learn.
        if let Some(mac) = self.socket.mac().filter(|m| *m != self.mac) {
            self.mac = mac;
            self.send_frame(&build(mac), vip)?;
            return Ok(2);
        }
        Ok(1)
    }

    fn send_frame(&mut self, frame: &[u8], vip: IpAddr) -> Result<(), VipError> {
        self.socket.send(frame).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                VipError::SendBufferFull {
                    interface: self.socket.interface().to_string(),
                    vip,
                }
            } else {
                VipError::from_io(
                    self.socket.interface(),
                    format!("send {} for {vip}", announcement(&vip)),
                    CAP_NET_RAW,
                    e,
                )
            }
        })
    }
}

/// Whether `interface` forwards IPv6 now (`/proc/sys/net/ipv6/conf/IF/forwarding` is not
/// `0`): an NA from a router carries the Router flag (RFC 4861 §7.2.5). Read at each send,
/// so it follows the sysctl; `false` when it cannot be read (no IPv6 on the interface).
fn forwards_ipv6(interface: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{interface}/forwarding"))
        .is_ok_and(|v| v.trim() != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let e = GarpSender::open("havip-nonexistent0").unwrap_err();
        assert_eq!(e.to_string(), "interface havip-nonexistent0 not found");
    }

    #[test]
    fn a_full_send_buffer_names_the_announcement_of_the_family() {
        let full = |vip: IpAddr| {
            VipError::SendBufferFull {
                interface: "eth0".to_string(),
                vip,
            }
            .to_string()
        };
        assert_eq!(
            full("192.0.2.100".parse().unwrap()),
            "send gratuitous ARP for 192.0.2.100 on interface eth0: the send buffer stayed full"
        );
        assert_eq!(
            full("2001:db8::100".parse().unwrap()),
            "send unsolicited neighbour advertisement for 2001:db8::100 on interface eth0: \
             the send buffer stayed full"
        );
    }
}
