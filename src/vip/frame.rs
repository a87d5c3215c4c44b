//! The ARP frames of the VIP module, built and parsed in one place: the gratuitous ARP
//! that announces a VIP ([`garp_frame`]), the RFC 5227 probe that asks who has it
//! ([`probe_frame`]) and the claim read from any ARP frame ([`parse_claim`]). They go
//! through the [`super::packet::PacketSocket`] of the sender, the probe and the watch.

use std::net::Ipv4Addr;

use pnet_base::MacAddr;
use pnet_packet::arp::{
    ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket,
};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};

/// Ethernet header (14) + ARP for IPv4 over Ethernet (28), padded to the 60-byte
/// minimum frame (without FCS) so no driver has to pad it.
pub(crate) const ARP_FRAME_LEN: usize = 60;

/// Builds one gratuitous ARP frame for `vip` from `mac`: broadcast destination,
/// sender IP = target IP = `vip`. Request-style frames carry a zero target MAC,
/// reply-style frames carry `mac` as target MAC.
pub(crate) fn garp_frame(mac: MacAddr, vip: Ipv4Addr, op: ArpOperation) -> [u8; ARP_FRAME_LEN] {
    let mut frame = [0u8; ARP_FRAME_LEN];
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

/// The sender fields of an ARP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) sender_mac: MacAddr,
    pub(crate) sender_ip: Ipv4Addr,
}

/// The ARP sender of an Ethernet frame, if it is IPv4-over-Ethernet ARP.
pub(crate) fn parse_claim(frame: &[u8]) -> Option<Claim> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(frame.get(14..)?)?;
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return None;
    }
    Some(Claim {
        sender_mac: arp.get_sender_hw_addr(),
        sender_ip: arp.get_sender_proto_addr(),
    })
}

/// An RFC 5227 ARP probe for `vip` from `mac`: broadcast request, sender IP
/// 0.0.0.0, target MAC zero, target IP `vip`.
pub(crate) fn probe_frame(mac: MacAddr, vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut frame = [0u8; ARP_FRAME_LEN];
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[14..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac);
        arp.set_sender_proto_addr(Ipv4Addr::UNSPECIFIED);
        arp.set_target_hw_addr(MacAddr::zero());
        arp.set_target_proto_addr(vip);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr(0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee);
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
    fn probe_frame_follows_rfc5227() {
        let frame = probe_frame(MAC, VIP);
        let eth = EthernetPacket::new(&frame).unwrap();
        assert_eq!(eth.get_destination(), MacAddr::broadcast());
        assert_eq!(eth.get_source(), MAC);
        assert_eq!(eth.get_ethertype(), EtherTypes::Arp);
        let arp = ArpPacket::new(&frame[14..]).unwrap();
        assert_eq!(arp.get_operation(), ArpOperations::Request);
        assert_eq!(arp.get_sender_hw_addr(), MAC);
        assert_eq!(arp.get_sender_proto_addr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(arp.get_target_hw_addr(), MacAddr::zero());
        assert_eq!(arp.get_target_proto_addr(), VIP);
    }

    #[test]
    fn a_probe_claims_nothing_but_an_announcement_claims_the_vip() {
        // Our own probe has sender IP 0.0.0.0: it never looks like a claim on VIP.
        let probe = parse_claim(&probe_frame(MAC, VIP)).unwrap();
        assert_eq!(probe.sender_ip, Ipv4Addr::UNSPECIFIED);
        let garp = garp_frame(MAC, VIP, ArpOperations::Request);
        assert_eq!(
            parse_claim(&garp),
            Some(Claim {
                sender_mac: MAC,
                sender_ip: VIP
            })
        );
    }

    #[test]
    fn non_arp_and_short_frames_are_ignored() {
        let mut frame = probe_frame(MAC, VIP);
        frame[12..14].copy_from_slice(&[0x08, 0x00]); // IPv4 ethertype
        assert_eq!(parse_claim(&frame), None);
        assert_eq!(parse_claim(&probe_frame(MAC, VIP)[..20]), None);
        assert_eq!(parse_claim(&[]), None);
    }
}
