//! The IPv6 Neighbor Discovery frames of the VIP module, built and parsed in one place: the
//! IPv6 counterpart of [`super::frame`] (groundwork for IPv6 VIPs, issue 13).
//!
//! - [`unsolicited_na_frame`]: the unsolicited Neighbor Advertisement (NA) that announces a
//!   VIP, as a gratuitous ARP does for IPv4 (RFC 4861 §7.2.6).
//! - [`dad_probe_frame`]: the Duplicate Address Detection (DAD) Neighbor Solicitation (NS)
//!   that asks whether anyone holds an address, as an RFC 5227 ARP probe does (RFC 4862
//!   §5.4.2).
//! - [`parse_nd`]: the claim read from a frame on the segment, validated as a receiving
//!   kernel validates it (RFC 4861 §7.1.1, §7.1.2), so a frame the neighbours would drop
//!   never counts as a claim.
//! - [`solicited_node`] and [`multicast_mac`]: where a DAD NS goes (RFC 4291 §2.7.1,
//!   RFC 2464 §7).
//!
//! Pure functions over bytes: no socket, no clock, no allocation.
//!
//! # Frame layout
//!
//! Both frames are untagged Ethernet II carrying IPv6 with no extension header (byte
//! offsets from the start of the frame, lengths in bytes):
//!
//! | offset | length | field |
//! |-------:|-------:|-------|
//! | 0 | 6 | Ethernet destination: `33:33` + the last 4 bytes of the IPv6 destination (RFC 2464 §7) |
//! | 6 | 6 | Ethernet source |
//! | 12 | 2 | ethertype `0x86dd` (IPv6) |
//! | 14 | 4 | IPv6 version 6, traffic class 0, flow label 0 |
//! | 18 | 2 | IPv6 payload length: the ICMPv6 message's length |
//! | 20 | 1 | next header 58 (ICMPv6) |
//! | 21 | 1 | hop limit 255 (RFC 4861 §7.1.1, §7.1.2: receivers drop anything else) |
//! | 22 | 16 | IPv6 source |
//! | 38 | 16 | IPv6 destination |
//! | 54 | 1 | ICMPv6 type: 135 NS, 136 NA |
//! | 55 | 1 | ICMPv6 code 0 |
//! | 56 | 2 | ICMPv6 checksum over the IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1) |
//! | 58 | 4 | NA: flags Router `0x80`, Solicited `0x40`, Override `0x20` in byte 58, rest reserved (RFC 4861 §4.4); NS: reserved (§4.3) |
//! | 62 | 16 | target address |
//! | 78 | … | options, each type (1 byte), length in 8-byte units (1 byte), data (RFC 4861 §4.6) |

use std::net::Ipv6Addr;

use pnet_base::MacAddr;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    Icmpv6Codes, MutableNdpOptionPacket, MutableNeighborAdvertPacket, MutableNeighborSolicitPacket,
    NdpOptionType, NdpOptionTypes, NeighborAdvertFlags, NeighborAdvertPacket,
    NeighborSolicitPacket,
};
use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types, MutableIcmpv6Packet};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};

/// Ethernet II header: destination (6), source (6), ethertype (2).
const ETHERNET_HEADER_LEN: usize = 14;
/// The fixed IPv6 header (RFC 8200 §3).
const IPV6_HEADER_LEN: usize = 40;
/// Where the ICMPv6 message starts in a frame.
const ICMPV6_AT: usize = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
/// An NS or NA without options: type, code, checksum (4), flags/reserved (4), target (16)
/// (RFC 4861 §4.3, §4.4); §7.1.1 and §7.1.2 drop a shorter ICMPv6 message.
const ND_MESSAGE_LEN: usize = 24;
/// A Source/Target Link-Layer Address option for Ethernet: type, length 1, 6-byte MAC
/// (RFC 4861 §4.6.1, RFC 2464 §6).
const LLA_OPTION_LEN: usize = 8;
/// The hop limit of every ND message; receivers drop any other value, so a frame from off
/// the link (a router decrements it) is never taken for a neighbour's (RFC 4861 §7.1.1,
/// §7.1.2).
const ND_HOP_LIMIT: u8 = 255;
/// The solicited-node multicast prefix ff02::1:ff00:0/104 (RFC 4291 §2.7.1): its first 13
/// bytes.
const SOLICITED_NODE_PREFIX: [u8; 13] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff];

/// Length of [`unsolicited_na_frame`]'s frame: Ethernet (14) + IPv6 (40) + NA (24) + one
/// Target Link-Layer Address option (8) = 86 bytes, over the 60-byte Ethernet minimum.
pub(crate) const UNSOLICITED_NA_LEN: usize = ICMPV6_AT + ND_MESSAGE_LEN + LLA_OPTION_LEN;

/// Length of [`dad_probe_frame`]'s frame: Ethernet (14) + IPv6 (40) + NS (24), no option =
/// 78 bytes.
pub(crate) const DAD_NS_LEN: usize = ICMPV6_AT + ND_MESSAGE_LEN;

/// What a Neighbor Discovery frame says about its target address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NdKind {
    /// A Neighbor Advertisement (ICMPv6 type 136, RFC 4861 §4.4): the sender holds the
    /// target, with the flags of byte 58.
    Advert {
        /// Override (O, `0x20`): the advertisement replaces a cached link-layer address.
        override_flag: bool,
        /// Solicited (S, `0x40`): an answer to an NS; always false to a multicast
        /// destination (§7.1.2).
        solicited: bool,
        /// Router (R, `0x80`): the sender is a router.
        router: bool,
    },
    /// A DAD Neighbor Solicitation (ICMPv6 type 135 from `::`, RFC 4862 §5.4.2): another
    /// host is about to take the target and asks whether anyone holds it.
    DadSolicit,
}

/// A frame meaning "someone holds, or is claiming, this address".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NdClaim {
    /// NA or DAD NS, with the NA's flags.
    pub(crate) kind: NdKind,
    /// The ND target address (frame bytes 62..78); never multicast.
    pub(crate) target: Ipv6Addr,
    /// The claimant's MAC: for an NA its Target Link-Layer Address option if it has one,
    /// else the Ethernet source; for a DAD NS the Ethernet source (it has no SLLA option).
    pub(crate) sender_mac: MacAddr,
    /// The IPv6 source address (frame bytes 22..38); `::` for a DAD NS.
    pub(crate) source: Ipv6Addr,
}

/// The solicited-node multicast address of `target`: ff02::1:ff00:0/104 followed by the
/// low-order 24 bits of `target` (RFC 4291 §2.7.1), e.g. ff02::1:ff02:3 for 2001:db8::1:2:3.
/// A DAD NS for `target` goes there (RFC 4862 §5.4.2).
pub(crate) fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    let mut group = [0u8; 16];
    group[..13].copy_from_slice(&SOLICITED_NODE_PREFIX);
    group[13..].copy_from_slice(&t[13..]);
    Ipv6Addr::from(group)
}

/// Whether `addr` is some solicited-node multicast address (in ff02::1:ff00:0/104,
/// RFC 4291 §2.7.1).
fn is_solicited_node(addr: Ipv6Addr) -> bool {
    addr.octets()[..13] == SOLICITED_NODE_PREFIX
}

/// The Ethernet destination of an IPv6 multicast packet to `group`: `33:33` followed by the
/// last 4 bytes of `group` (RFC 2464 §7); ff02::1 maps to 33:33:00:00:00:01.
pub(crate) fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let g = group.octets();
    MacAddr::new(0x33, 0x33, g[12], g[13], g[14], g[15])
}

/// Writes the Ethernet and IPv6 headers of an ND frame (offsets 0..54, see the module
/// documentation): from `mac` to the multicast MAC of `destination`, IPv6 payload length =
/// the rest of `frame`, next header 58, hop limit 255.
fn write_headers(frame: &mut [u8], mac: MacAddr, source: Ipv6Addr, destination: Ipv6Addr) {
    // Both callers' frames are a few dozen bytes: the length fits.
    let payload_len = u16::try_from(frame.len().saturating_sub(ICMPV6_AT)).unwrap_or(0);
    if let Some(mut eth) = MutableEthernetPacket::new(frame) {
        eth.set_destination(multicast_mac(destination));
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Ipv6);
    }
    if let Some(mut ip) = frame
        .get_mut(ETHERNET_HEADER_LEN..)
        .and_then(MutableIpv6Packet::new)
    {
        ip.set_version(6);
        ip.set_payload_length(payload_len);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(ND_HOP_LIMIT);
        ip.set_source(source);
        ip.set_destination(destination);
    }
}

/// Fills in the ICMPv6 checksum (bytes 56..58) of the message the IPv6 header's payload
/// length delimits, over the pseudo-header of its source and destination (RFC 4443 §2.3,
/// RFC 8200 §8.1).
fn fill_checksum(frame: &mut [u8]) {
    let Some(ip) = frame.get(ETHERNET_HEADER_LEN..).and_then(Ipv6Packet::new) else {
        return;
    };
    let (source, destination) = (ip.get_source(), ip.get_destination());
    let end = ICMPV6_AT + usize::from(ip.get_payload_length());
    let Some(message) = frame.get_mut(ICMPV6_AT..end) else {
        return;
    };
    let Some(icmp) = Icmpv6Packet::new(message) else {
        return;
    };
    let sum = icmpv6::checksum(&icmp, &source, &destination);
    if let Some(mut icmp) = MutableIcmpv6Packet::new(message) {
        icmp.set_checksum(sum);
    }
}

/// The unsolicited NA that announces `target` (the VIP) at `mac` (RFC 4861 §7.2.6), 86
/// bytes:
///
/// - Ethernet from `mac` to 33:33:00:00:00:01, ethertype IPv6;
/// - IPv6 from `target` itself (as keepalived's ndisc.c sends it) to all-nodes ff02::1,
///   hop limit 255, next header 58;
/// - ICMPv6 type 136 code 0, Override = 1 (neighbours replace the MAC they cached),
///   Solicited = 0 (§7.2.6: an unsolicited advertisement, and §7.1.2 drops a solicited one
///   to a multicast destination), Router = `router`, target = `target`;
/// - one Target Link-Layer Address option (type 2, length 1) carrying `mac` (bytes 78..86);
/// - the checksum over the pseudo-header.
///
/// `router`: whether the sending interface forwards IPv6 (`net.ipv6.conf.IF.forwarding`),
/// as Linux sets it in its own NAs: a neighbour that sees the flag go from 1 to 0 removes
/// the sender from its default-router list (RFC 4861 §7.2.5), so a forwarding master must
/// keep it set.
pub(crate) fn unsolicited_na_frame(
    mac: MacAddr,
    target: Ipv6Addr,
    router: bool,
) -> [u8; UNSOLICITED_NA_LEN] {
    let mut frame = [0u8; UNSOLICITED_NA_LEN];
    write_headers(
        &mut frame,
        mac,
        target,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    );
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut frame[ICMPV6_AT..]) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Codes::NoCode);
        let r = if router {
            NeighborAdvertFlags::Router
        } else {
            0
        };
        na.set_flags(NeighborAdvertFlags::Override | r);
        na.set_target_addr(target);
    }
    if let Some(mut tlla) = MutableNdpOptionPacket::new(&mut frame[ICMPV6_AT + ND_MESSAGE_LEN..]) {
        tlla.set_option_type(NdpOptionTypes::TargetLLAddr);
        tlla.set_length(1);
        tlla.set_data(&mac.octets());
    }
    fill_checksum(&mut frame);
    frame
}

/// The DAD NS that asks whether anyone holds `target` (RFC 4862 §5.4.2), 78 bytes:
///
/// - Ethernet from `mac` to the multicast MAC of the solicited-node group (33:33 + its last
///   4 bytes, RFC 2464 §7), ethertype IPv6;
/// - IPv6 from the unspecified address `::` to [`solicited_node`]`(target)`, hop limit 255,
///   next header 58;
/// - ICMPv6 type 135 code 0, target = `target`, and no Source Link-Layer Address option,
///   which RFC 4861 §4.3 forbids when the source is unspecified;
/// - the checksum over the pseudo-header.
///
/// A holder of `target` answers with an NA to ff02::1 (RFC 4861 §7.2.4).
pub(crate) fn dad_probe_frame(mac: MacAddr, target: Ipv6Addr) -> [u8; DAD_NS_LEN] {
    let mut frame = [0u8; DAD_NS_LEN];
    write_headers(
        &mut frame,
        mac,
        Ipv6Addr::UNSPECIFIED,
        solicited_node(target),
    );
    if let Some(mut ns) = MutableNeighborSolicitPacket::new(&mut frame[ICMPV6_AT..]) {
        ns.set_icmpv6_type(Icmpv6Types::NeighborSolicit);
        ns.set_icmpv6_code(Icmpv6Codes::NoCode);
        ns.set_target_addr(target);
    }
    fill_checksum(&mut frame);
    frame
}

/// The link-layer address options of an ND message.
struct LinkLayerOptions<'a> {
    /// The first Target Link-Layer Address option, whole (type and length included).
    tlla: Option<&'a [u8]>,
    /// Whether a Source Link-Layer Address option is present.
    slla: bool,
}

/// Walks the options after the fixed part of an NS or NA (RFC 4861 §4.6). `None` when an
/// option has length 0 or runs past the message (§7.1.1, §7.1.2). Of several Target
/// Link-Layer Address options the first counts, as in Linux; unknown options are skipped
/// (§4.6).
fn scan_options(mut rest: &[u8]) -> Option<LinkLayerOptions<'_>> {
    let mut found = LinkLayerOptions {
        tlla: None,
        slla: false,
    };
    while !rest.is_empty() {
        let [kind, units, ..] = *rest else {
            return None;
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > rest.len() {
            return None;
        }
        let (option, tail) = rest.split_at(len);
        match NdpOptionType(kind) {
            NdpOptionTypes::SourceLLAddr => found.slla = true,
            NdpOptionTypes::TargetLLAddr if found.tlla.is_none() => found.tlla = Some(option),
            _ => {}
        }
        rest = tail;
    }
    Some(found)
}

/// The claim an Ethernet frame makes, if it is an NA or a DAD NS that a receiving kernel
/// would accept; `None` for anything else (any other ICMPv6 message, an NS from a unicast
/// source, anything malformed). Never panics, never allocates.
///
/// Checked in this order:
/// - ethertype IPv6 (`0x86dd`, bytes 12..14) and IPv6 version 6;
/// - the IPv6 payload length (bytes 18..20) fits in the frame; bytes after it are Ethernet
///   padding and ignored;
/// - next header 58 directly: a frame with extension headers is not read;
/// - hop limit 255, ICMPv6 code 0, ICMPv6 length ≥ 24 (RFC 4861 §7.1.1, §7.1.2);
/// - the ICMPv6 checksum over the pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1);
/// - the target (bytes 62..78) is not multicast (§7.1.1, §7.1.2);
/// - every option has a length > 0 and ends within the message (§7.1.1, §7.1.2);
/// - NA (type 136): Solicited = 0 when the destination is multicast (§7.1.2); the (first)
///   Target Link-Layer Address option, if any, is the 8 bytes of one MAC (RFC 4861 §4.6.1,
///   RFC 2464 §6; Linux drops an NA whose option has another length);
/// - NS (type 135): only from `::` (DAD, RFC 4862 §5.4.2), then the destination is a
///   solicited-node address and there is no Source Link-Layer Address option (§7.1.1).
pub(crate) fn parse_nd(frame: &[u8]) -> Option<NdClaim> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new(frame.get(ETHERNET_HEADER_LEN..)?)?;
    if ip.get_version() != 6
        || ip.get_next_header() != IpNextHeaderProtocols::Icmpv6
        || ip.get_hop_limit() != ND_HOP_LIMIT
    {
        return None;
    }
    let end = ICMPV6_AT + usize::from(ip.get_payload_length());
    let message = frame.get(ICMPV6_AT..end)?;
    if message.len() < ND_MESSAGE_LEN {
        return None;
    }
    let icmp = Icmpv6Packet::new(message)?;
    if icmp.get_icmpv6_code() != Icmpv6Codes::NoCode {
        return None;
    }
    let (source, destination) = (ip.get_source(), ip.get_destination());
    // Summed with the stored checksum (no word skipped: pnet's `skipword` out of range
    // skips none), a valid message folds to 0xffff, whose complement is 0. This accepts
    // 0x0000 and 0xffff alike where they mean the same, as the kernel's csum check does.
    let residue = pnet_packet::util::ipv6_checksum(
        message,
        usize::MAX,
        &[],
        &source,
        &destination,
        IpNextHeaderProtocols::Icmpv6,
    );
    if residue != 0 {
        return None;
    }
    let options = scan_options(message.get(ND_MESSAGE_LEN..)?)?;
    match icmp.get_icmpv6_type() {
        Icmpv6Types::NeighborAdvert => {
            let na = NeighborAdvertPacket::new(message)?;
            let target = na.get_target_addr();
            let flags = na.get_flags();
            let solicited = flags & NeighborAdvertFlags::Solicited != 0;
            if target.is_multicast() || (solicited && destination.is_multicast()) {
                return None;
            }
            let sender_mac = match options.tlla {
                None => eth.get_source(),
                Some(&[_, _, a, b, c, d, e, f]) => MacAddr::new(a, b, c, d, e, f),
                // Not one Ethernet address (RFC 2464 §6): Linux drops the NA.
                Some(_) => return None,
            };
            Some(NdClaim {
                kind: NdKind::Advert {
                    override_flag: flags & NeighborAdvertFlags::Override != 0,
                    solicited,
                    router: flags & NeighborAdvertFlags::Router != 0,
                },
                target,
                sender_mac,
                source,
            })
        }
        Icmpv6Types::NeighborSolicit if source.is_unspecified() => {
            let target = NeighborSolicitPacket::new(message)?.get_target_addr();
            if target.is_multicast() || !is_solicited_node(destination) || options.slla {
                return None;
            }
            Some(NdClaim {
                kind: NdKind::DadSolicit,
                target,
                sender_mac: eth.get_source(),
                source,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr(0x00, 0x00, 0x5e, 0x00, 0x53, 0x01);
    const OTHER_MAC: MacAddr = MacAddr(0x00, 0x00, 0x5e, 0x00, 0x53, 0x02);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

    const UNSOLICITED: NdKind = NdKind::Advert {
        override_flag: true,
        solicited: false,
        router: false,
    };

    /// `frame` with the ICMPv6 checksum filled in again after a test changed it.
    fn resummed(mut frame: Vec<u8>) -> Vec<u8> {
        fill_checksum(&mut frame);
        frame
    }

    /// `frame` with `extra` appended to the ICMPv6 message (IPv6 payload length grown).
    fn with_option(frame: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut out = frame.to_vec();
        out.extend_from_slice(extra);
        let len = u16::from_be_bytes([out[18], out[19]]) + extra.len() as u16;
        out[18..20].copy_from_slice(&len.to_be_bytes());
        resummed(out)
    }

    fn na() -> Vec<u8> {
        unsolicited_na_frame(MAC, VIP, false).to_vec()
    }

    fn dad() -> Vec<u8> {
        dad_probe_frame(MAC, VIP).to_vec()
    }

    #[test]
    fn unsolicited_na_has_the_rfc_4861_shape() {
        let frame = unsolicited_na_frame(MAC, VIP, false);
        assert_eq!(frame.len(), 86);
        let eth = EthernetPacket::new(&frame).unwrap();
        assert_eq!(eth.get_destination(), MacAddr::new(0x33, 0x33, 0, 0, 0, 1));
        assert_eq!(eth.get_source(), MAC);
        assert_eq!(eth.get_ethertype(), EtherTypes::Ipv6);
        let ip = Ipv6Packet::new(&frame[14..]).unwrap();
        assert_eq!(ip.get_version(), 6);
        assert_eq!(ip.get_payload_length(), 32);
        assert_eq!(ip.get_next_header(), IpNextHeaderProtocols::Icmpv6);
        assert_eq!(ip.get_hop_limit(), 255);
        assert_eq!(ip.get_source(), VIP);
        assert_eq!(ip.get_destination(), ALL_NODES);
        let na = NeighborAdvertPacket::new(&frame[54..]).unwrap();
        assert_eq!(na.get_icmpv6_type(), Icmpv6Types::NeighborAdvert);
        assert_eq!(na.get_icmpv6_code(), Icmpv6Codes::NoCode);
        assert_eq!(na.get_flags(), 0x20, "Override only");
        assert_eq!(na.get_target_addr(), VIP);
        assert_eq!(&frame[78..80], &[2, 1], "TLLA, one 8-byte unit");
        assert_eq!(&frame[80..86], &MAC.octets());
        let icmp = Icmpv6Packet::new(&frame[54..]).unwrap();
        assert_eq!(
            icmp.get_checksum(),
            icmpv6::checksum(&icmp, &VIP, &ALL_NODES)
        );
        assert_ne!(icmp.get_checksum(), 0);
    }

    #[test]
    fn dad_ns_has_the_rfc_4862_shape() {
        let frame = dad_probe_frame(MAC, VIP);
        assert_eq!(frame.len(), 78);
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x100);
        let eth = EthernetPacket::new(&frame).unwrap();
        assert_eq!(
            eth.get_destination(),
            MacAddr::new(0x33, 0x33, 0xff, 0x00, 0x01, 0x00)
        );
        assert_eq!(eth.get_source(), MAC);
        let ip = Ipv6Packet::new(&frame[14..]).unwrap();
        assert_eq!(ip.get_payload_length(), 24, "no option");
        assert_eq!(ip.get_hop_limit(), 255);
        assert_eq!(ip.get_source(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(ip.get_destination(), group);
        let ns = NeighborSolicitPacket::new(&frame[54..]).unwrap();
        assert_eq!(ns.get_icmpv6_type(), Icmpv6Types::NeighborSolicit);
        assert_eq!(ns.get_icmpv6_code(), Icmpv6Codes::NoCode);
        assert_eq!(ns.get_reserved(), 0);
        assert_eq!(ns.get_target_addr(), VIP);
        let icmp = Icmpv6Packet::new(&frame[54..]).unwrap();
        assert_eq!(
            icmp.get_checksum(),
            icmpv6::checksum(&icmp, &Ipv6Addr::UNSPECIFIED, &group)
        );
    }

    #[test]
    fn solicited_node_keeps_the_low_24_bits() {
        // RFC 4291 §2.7.1: ff02:0:0:0:0:1:ff00::/104 + the low-order 24 bits.
        let addr: Ipv6Addr = "2001:db8::1:2:3".parse().unwrap();
        let expected: Ipv6Addr = "ff02::1:ff02:3".parse().unwrap();
        assert_eq!(solicited_node(addr), expected);
        // The RFC's own example.
        let rfc: Ipv6Addr = "4037::01:800:200e:8c6c".parse().unwrap();
        assert_eq!(
            solicited_node(rfc),
            "ff02::1:ff0e:8c6c".parse::<Ipv6Addr>().unwrap()
        );
        assert!(is_solicited_node(expected));
        assert!(!is_solicited_node(ALL_NODES));
        assert_eq!(
            multicast_mac(expected),
            MacAddr::new(0x33, 0x33, 0xff, 0x02, 0x00, 0x03)
        );
    }

    #[test]
    fn both_frames_parse_back() {
        assert_eq!(
            parse_nd(&na()),
            Some(NdClaim {
                kind: UNSOLICITED,
                target: VIP,
                sender_mac: MAC,
                source: VIP
            })
        );
        assert_eq!(
            parse_nd(&dad()),
            Some(NdClaim {
                kind: NdKind::DadSolicit,
                target: VIP,
                sender_mac: MAC,
                source: Ipv6Addr::UNSPECIFIED
            })
        );
    }

    #[test]
    fn na_sender_is_the_tlla_else_the_ethernet_source() {
        let mut frame = na();
        frame[80..86].copy_from_slice(&OTHER_MAC.octets());
        let claim = parse_nd(&resummed(frame)).unwrap();
        assert_eq!(claim.sender_mac, OTHER_MAC);
        // Without the option: the Ethernet source.
        let mut frame = na();
        frame.truncate(78);
        frame[18..20].copy_from_slice(&24u16.to_be_bytes());
        let claim = parse_nd(&resummed(frame)).unwrap();
        assert_eq!(claim.sender_mac, MAC);
        // A second TLLA is ignored, an unknown option skipped.
        let frame = with_option(&na(), &[2, 1, 9, 9, 9, 9, 9, 9, 99, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse_nd(&frame).unwrap().sender_mac, MAC);
    }

    #[test]
    fn ethernet_padding_is_ignored_but_truncation_is_not() {
        let mut padded = dad();
        padded.extend_from_slice(&[0xee; 10]);
        assert_eq!(parse_nd(&padded), parse_nd(&dad()));
        assert!(parse_nd(&dad()).is_some());
        for len in [0, 13, 14, 53, 54, 77] {
            assert_eq!(parse_nd(&dad()[..len]), None, "{len} bytes");
        }
        assert_eq!(parse_nd(&na()[..85]), None);
    }

    #[test]
    fn hop_limit_below_255_is_rejected() {
        for mut frame in [na(), dad()] {
            frame[21] = 254;
            assert_eq!(parse_nd(&frame), None);
        }
    }

    #[test]
    fn bad_checksum_is_rejected() {
        for mut frame in [na(), dad()] {
            frame[57] ^= 1;
            assert_eq!(parse_nd(&frame), None);
        }
        // A change anywhere the pseudo-header covers, the checksum left as it was.
        let mut frame = na();
        frame[30] ^= 0x80; // IPv6 source
        assert_eq!(parse_nd(&frame), None);
    }

    #[test]
    fn the_checksum_may_be_written_either_way_of_zero() {
        // One's complement has two zeros; a message whose checksum comes out 0x0000 may
        // carry 0xffff instead. Find a target that makes it 0 and try both.
        let found = (0..=u16::MAX).find_map(|low| {
            let target = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, low);
            let frame = unsolicited_na_frame(MAC, target, false);
            (frame[56..58] == [0, 0]).then_some(frame)
        });
        let mut frame = found.expect("some target sums to zero").to_vec();
        assert!(parse_nd(&frame).is_some());
        frame[56..58].copy_from_slice(&[0xff, 0xff]);
        assert!(parse_nd(&frame).is_some());
    }

    #[test]
    fn code_other_than_0_is_rejected() {
        for mut frame in [na(), dad()] {
            frame[55] = 1;
            assert_eq!(parse_nd(&resummed(frame)), None);
        }
    }

    #[test]
    fn truncated_option_is_rejected() {
        // The TLLA says two units (16 bytes) where 8 are left.
        let mut frame = na();
        frame[79] = 2;
        assert_eq!(parse_nd(&resummed(frame)), None);
        // A lone option type byte after the NS.
        assert_eq!(parse_nd(&with_option(&dad(), &[2])), None);
        // A TLLA that does not hold exactly one MAC.
        let mut frame = with_option(&na(), &[0; 8]);
        frame[79] = 2;
        assert_eq!(parse_nd(&resummed(frame)), None);
    }

    #[test]
    fn zero_length_option_is_rejected() {
        assert_eq!(
            parse_nd(&with_option(&dad(), &[14, 0, 0, 0, 0, 0, 0, 0])),
            None
        );
        let mut frame = na();
        frame[79] = 0;
        assert_eq!(parse_nd(&resummed(frame)), None);
    }

    #[test]
    fn multicast_target_is_rejected() {
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
        assert_eq!(parse_nd(&unsolicited_na_frame(MAC, group, false)), None);
        assert_eq!(parse_nd(&dad_probe_frame(MAC, group)), None);
    }

    #[test]
    fn solicited_na_to_multicast_is_rejected_but_to_unicast_accepted() {
        let mut frame = na();
        frame[58] |= 0x40;
        assert_eq!(parse_nd(&resummed(frame.clone())), None);
        // The same NA to a unicast address is a normal answer.
        frame[38..54].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        let claim = parse_nd(&resummed(frame)).unwrap();
        assert_eq!(
            claim.kind,
            NdKind::Advert {
                override_flag: true,
                solicited: true,
                router: false
            }
        );
    }

    #[test]
    fn router_flag_is_reported() {
        let mut frame = na();
        frame[58] = 0x80;
        let claim = parse_nd(&resummed(frame)).unwrap();
        assert_eq!(
            claim.kind,
            NdKind::Advert {
                override_flag: false,
                solicited: false,
                router: true
            }
        );
    }

    #[test]
    fn dad_ns_with_slla_is_rejected() {
        let mut slla = [1, 1, 0, 0, 0, 0, 0, 0];
        slla[2..].copy_from_slice(&MAC.octets());
        assert_eq!(parse_nd(&with_option(&dad(), &slla)), None);
        // A TLLA in an NS means nothing and is skipped, whatever its length.
        slla[0] = 2;
        assert!(parse_nd(&with_option(&dad(), &slla)).is_some());
        let mut frame = with_option(&dad(), &[0; 16]);
        frame[78..80].copy_from_slice(&[2, 2]);
        assert!(parse_nd(&resummed(frame)).is_some());
    }

    #[test]
    fn dad_ns_to_a_non_solicited_node_address_is_rejected() {
        let mut frame = dad();
        frame[38..54].copy_from_slice(&ALL_NODES.octets());
        assert_eq!(parse_nd(&resummed(frame)), None);
    }

    #[test]
    fn ns_from_a_unicast_source_is_not_a_claim() {
        // Address resolution, not DAD: says nothing about who holds the target.
        let mut frame = with_option(&dad(), &[1, 1, 0, 0, 0x5e, 0, 0x53, 1]);
        frame[22..38].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        assert_eq!(parse_nd(&resummed(frame)), None);
    }

    #[test]
    fn extension_header_is_rejected() {
        // A Hop-by-Hop header (next header 0) of 8 bytes in front of the NA, as MLD uses.
        let frame = na();
        let mut out = frame[..54].to_vec();
        out[20] = 0;
        out.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]); // next 58, Router Alert, PadN
        out.extend_from_slice(&frame[54..]);
        out[18..20].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(parse_nd(&out), None);
    }

    #[test]
    fn other_frames_are_ignored() {
        let mut frame = na();
        frame[12..14].copy_from_slice(&[0x08, 0x00]); // IPv4 ethertype
        assert_eq!(parse_nd(&frame), None);
        let mut frame = na();
        frame[14] = 0x40; // version 4 in an IPv6 ethertype
        assert_eq!(parse_nd(&frame), None);
        let mut frame = na();
        frame[54] = 128; // echo request
        assert_eq!(parse_nd(&resummed(frame)), None);
        let mut frame = dad();
        frame[54] = 133; // router solicitation
        assert_eq!(parse_nd(&resummed(frame)), None);
        // An ICMPv6 message shorter than 24 bytes.
        let mut frame = dad();
        frame.truncate(70);
        frame[18..20].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(parse_nd(&resummed(frame)), None);
        assert_eq!(parse_nd(&[]), None);
    }
}
