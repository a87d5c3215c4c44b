//! One ARP request for a peer's address, sent when a frame from that peer's MAC proves the
//! segment forwards again (issue 9, fault 9).
//!
//! Why: during a partition the kernel's neighbour entry for the peer fails and is retried
//! only every `retrans_time_ms` (1 s by default) while our dials keep it INCOMPLETE, so after
//! the heal both nodes' packets waited up to a second for ARP, while both held the VIP
//! (measured in the namespace test: contact 0.7–1.05 s after the heal with fast redials
//! alone, 40–110 ms with a 100 ms `retrans_time_ms`). A request from our own address makes
//! the peer learn our MAC at once (a host updates its entry for the sender of a request for
//! its own address) and its reply completes our entry; both queues flush.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETH_P_ARP: u16 = 0x0806;
const FRAME_LEN: usize = 42;

/// Builds a broadcast ARP request "who has `peer`? tell `ours` at `mac`".
pub(super) fn request_frame(mac: [u8; 6], ours: Ipv4Addr, peer: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet, IPv4, 6-byte and 4-byte addresses, request.
    f[14..22].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ours.octets());
    // Target MAC stays zero.
    f[38..42].copy_from_slice(&peer.octets());
    f
}

/// Sends [`request_frame`] on interface `ifindex` (needs `CAP_NET_RAW`). The socket has
/// protocol 0, so it never receives anything, and is closed on return.
pub(super) fn send_request(
    ifindex: u32,
    mac: [u8; 6],
    ours: Ipv4Addr,
    peer: Ipv4Addr,
) -> io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let frame = request_frame(mac, ours, peer);
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: frame and `to` outlive the call; the lengths are theirs.
    let rc = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_asks_for_the_peer_from_our_address() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = request_frame(
            mac,
            Ipv4Addr::new(192, 0, 2, 11),
            Ipv4Addr::new(192, 0, 2, 12),
        );
        let eth = pnet_packet::ethernet::EthernetPacket::new(&f).unwrap();
        assert_eq!(eth.get_destination(), pnet_base::MacAddr::broadcast());
        assert_eq!(eth.get_ethertype(), pnet_packet::ethernet::EtherTypes::Arp);
        let arp = pnet_packet::arp::ArpPacket::new(&f[14..]).unwrap();
        assert_eq!(
            arp.get_operation(),
            pnet_packet::arp::ArpOperations::Request
        );
        assert_eq!(arp.get_sender_hw_addr().octets(), mac);
        assert_eq!(arp.get_sender_proto_addr(), Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(arp.get_target_hw_addr(), pnet_base::MacAddr::zero());
        assert_eq!(arp.get_target_proto_addr(), Ipv4Addr::new(192, 0, 2, 12));
        assert_eq!(
            arp.get_hardware_type(),
            pnet_packet::arp::ArpHardwareTypes::Ethernet
        );
        assert_eq!(
            arp.get_protocol_type(),
            pnet_packet::ethernet::EtherTypes::Ipv4
        );
    }
}
