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
//! pnet's layer-2 channel is an `AF_PACKET` socket bound with `ETH_P_ALL`, which
//! would receive a copy of every frame on the interface that nobody reads. We open
//! the socket ourselves and attach a drop-everything BPF filter before pnet binds
//! it, so it only sends. Promiscuous mode stays off.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use pnet_base::MacAddr;
use pnet_datalink::{Channel, Config, DataLinkSender};
use pnet_packet::arp::{ArpHardwareTypes, ArpOperation, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};

use super::VipError;

/// The capability a packet socket needs.
const CAP_NET_RAW: &str = "CAP_NET_RAW";

/// Ethernet header (14) + ARP for IPv4 over Ethernet (28), padded to the 60-byte
/// minimum frame (without FCS) so no driver has to pad it.
pub(crate) const GARP_FRAME_LEN: usize = 60;

/// How long one send may wait for room in the socket's send buffer.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// Sends gratuitous ARP frames on one interface.
pub struct GarpSender {
    tx: Box<dyn DataLinkSender>,
    ifname: String,
    mac: MacAddr,
}

impl std::fmt::Debug for GarpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarpSender")
            .field("interface", &self.ifname)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl GarpSender {
    /// Opens a send-only packet socket on `interface` (needs `CAP_NET_RAW`).
    ///
    /// The socket is created in the calling thread's network namespace and stays
    /// there, whichever thread later sends on it.
    pub fn open(interface: &str) -> Result<Self, VipError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| VipError::InterfaceNotFound {
                interface: interface.to_string(),
            })?;
        let mac =
            iface
                .mac
                .filter(|m| *m != MacAddr::zero())
                .ok_or_else(|| VipError::NoMacAddress {
                    interface: interface.to_string(),
                })?;

        let socket = send_only_packet_socket()
            .map_err(|e| VipError::from_io(interface, "open packet socket", CAP_NET_RAW, e))?;
        let config = Config {
            write_timeout: Some(WRITE_TIMEOUT),
            promiscuous: false,
            // pnet takes ownership of the descriptor (and closes it on error).
            socket_fd: Some(socket.into_raw_fd()),
            ..Config::default()
        };
        let tx = match pnet_datalink::channel(&iface, config) {
            Ok(Channel::Ethernet(tx, _rx)) => tx,
            Ok(_) => {
                return Err(VipError::Io {
                    interface: interface.to_string(),
                    operation: "open packet socket".to_string(),
                    source: io::Error::other("pnet returned a non-Ethernet channel"),
                })
            }
            Err(e) => {
                return Err(VipError::from_io(
                    interface,
                    "bind packet socket",
                    CAP_NET_RAW,
                    e,
                ))
            }
        };
        Ok(Self {
            tx,
            ifname: interface.to_string(),
            mac,
        })
    }

    /// The interface this sender sends on.
    pub fn interface(&self) -> &str {
        &self.ifname
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
            let frame = garp_frame(self.mac, vip, op);
            match self.tx.send_to(&frame, None) {
                Some(Ok(())) => {}
                Some(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(VipError::SendBufferFull {
                        interface: self.ifname.clone(),
                        vip,
                    })
                }
                Some(Err(e)) => {
                    return Err(VipError::from_io(
                        &self.ifname,
                        format!("send gratuitous ARP for {vip}"),
                        CAP_NET_RAW,
                        e,
                    ))
                }
                None => {
                    return Err(VipError::Io {
                        interface: self.ifname.clone(),
                        operation: format!("send gratuitous ARP for {vip}"),
                        source: io::Error::other("frame larger than the write buffer"),
                    })
                }
            }
        }
        Ok(())
    }

    /// Frames each [`GarpSender::send`] puts on the wire.
    pub const FRAMES_PER_SEND: u64 = 2;
}

/// Builds one gratuitous ARP frame for `vip` from `mac`: broadcast destination,
/// sender IP = target IP = `vip`. Request-style frames carry a zero target MAC,
/// reply-style frames carry `mac` as target MAC.
pub(crate) fn garp_frame(mac: MacAddr, vip: Ipv4Addr, op: ArpOperation) -> [u8; GARP_FRAME_LEN] {
    let mut frame = [0u8; GARP_FRAME_LEN];
    {
        let Some(mut eth) = MutableEthernetPacket::new(&mut frame) else {
            return frame; // unreachable: 60 bytes always hold an Ethernet header
        };
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[14..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(op);
        arp.set_sender_hw_addr(mac);
        arp.set_sender_proto_addr(vip);
        let target_mac = if op == ArpOperations::Reply {
            mac
        } else {
            MacAddr::zero()
        };
        arp.set_target_hw_addr(target_mac);
        arp.set_target_proto_addr(vip);
    }
    frame
}

/// An `AF_PACKET` raw socket that receives nothing: created with protocol 0 (no
/// receive hook yet) and given a BPF program that drops every frame, so when
/// pnet binds it with `ETH_P_ALL` no frame is ever queued to it.
fn send_only_packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // BPF_RET | BPF_K with k = 0: accept zero bytes of every packet.
    let mut drop_all = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let program = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    // SAFETY: program points at a live one-instruction filter for the call's duration.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::arp::ArpPacket;
    use pnet_packet::ethernet::EthernetPacket;

    const MAC: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x0a);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    fn parse(frame: &[u8]) -> (MacAddr, MacAddr, ArpPacket<'_>) {
        let eth = EthernetPacket::new(frame).unwrap();
        assert_eq!(eth.get_ethertype(), EtherTypes::Arp);
        let (dst, src) = (eth.get_destination(), eth.get_source());
        (dst, src, ArpPacket::new(&frame[14..]).unwrap())
    }

    #[test]
    fn request_style_announcement_has_zero_target_mac() {
        let frame = garp_frame(MAC, VIP, ArpOperations::Request);
        assert_eq!(frame.len(), 60);
        let (dst, src, arp) = parse(&frame);
        assert_eq!(dst, MacAddr::broadcast());
        assert_eq!(src, MAC);
        assert_eq!(arp.get_operation(), ArpOperations::Request);
        assert_eq!(arp.get_hardware_type(), ArpHardwareTypes::Ethernet);
        assert_eq!(arp.get_protocol_type(), EtherTypes::Ipv4);
        assert_eq!((arp.get_hw_addr_len(), arp.get_proto_addr_len()), (6, 4));
        assert_eq!(arp.get_sender_hw_addr(), MAC);
        assert_eq!(arp.get_sender_proto_addr(), VIP);
        assert_eq!(arp.get_target_hw_addr(), MacAddr::zero());
        assert_eq!(arp.get_target_proto_addr(), VIP);
    }

    #[test]
    fn reply_style_announcement_targets_own_mac() {
        let frame = garp_frame(MAC, VIP, ArpOperations::Reply);
        let (dst, _, arp) = parse(&frame);
        assert_eq!(dst, MacAddr::broadcast());
        assert_eq!(arp.get_operation(), ArpOperations::Reply);
        // Linux only treats a reply as gratuitous when target MAC = sender MAC.
        assert_eq!(arp.get_target_hw_addr(), MAC);
        assert_eq!(arp.get_sender_proto_addr(), VIP);
        assert_eq!(arp.get_target_proto_addr(), VIP);
    }

    #[test]
    fn missing_interface_is_named() {
        let e = GarpSender::open("havip-nonexistent0").unwrap_err();
        assert_eq!(e.to_string(), "interface havip-nonexistent0 not found");
    }
}
