//! The properties every decoder of outside input must keep, one function per fuzz target.
//!
//! Shared by the cargo-fuzz targets (`tests/fuzz/fuzz_targets/*.rs`, through this crate's
//! lib) and the randomized test on stable (`tests/fuzz_stable.rs`, through `#[path]`), so the
//! two cannot drift apart. Each function takes arbitrary bytes and panics with a message
//! when a property fails; "no panic" alone is the weakest of them.

use std::net::{Ipv4Addr, Ipv6Addr};

use haagent::config::{self, ErrorPlace, Overrides};
use haagent::control::{Request, Response};
use haagent::wire::{self, Advert, Decoded, GroupEntry, NodeAdvert, State};

/// A property: panics when `input` breaks it.
pub type Property = fn(&[u8]);

/// The fuzz targets, by name (the directory names under `tests/fuzz/corpus/`).
pub const TARGETS: [(&str, Property); 9] = [
    ("wire", wire),
    ("wire_v2", wire_v2),
    ("arp_frame", arp_frame),
    ("nd_frame", nd_frame),
    ("icmp_reply", icmp_reply),
    ("http_head", http_head),
    ("control_request", control_request),
    ("control_response", control_response),
    ("config", config),
];

/// Reads fields off the front of the input; missing bytes read as zero.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let head = self.take(N);
        out[..head.len()].copy_from_slice(head);
        out
    }

    fn byte(&mut self) -> u8 {
        self.array::<1>()[0]
    }
}

/// The ARP parser the probe and the watch apply to every frame on the segment (anyone can
/// send them).
///
/// - It accepts exactly IPv4-over-Ethernet ARP: ethertype 0x0806, hardware type 1, protocol
///   0x0800, address lengths 6 and 4, at least 42 bytes — checked against the bytes
///   themselves — and returns the sender MAC and IP from their RFC 826 offsets.
/// - Read as a MAC and an address: the gratuitous ARP request and reply and the probe that
///   haagent sends parse back to that MAC and to the VIP (the probe: to `0.0.0.0`, RFC 5227
///   §2.1.1), so a probe is never taken for a claim.
pub fn arp_frame(data: &[u8]) {
    let parsed = haagent::vip::fuzz_parse_claim(data);
    let be16 = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
    let is_arp = data.len() >= 42
        && be16(12) == 0x0806
        && be16(14) == 1
        && be16(16) == 0x0800
        && data[18] == 6
        && data[19] == 4;
    match parsed {
        Some((mac, ip)) => {
            assert!(is_arp, "accepted a frame that is not IPv4 ARP: {data:02x?}");
            assert_eq!(mac[..], data[22..28], "sender MAC from the wrong offset");
            assert_eq!(
                ip.octets()[..],
                data[28..32],
                "sender IP from the wrong offset"
            );
        }
        None => assert!(!is_arp, "refused an IPv4 ARP frame: {data:02x?}"),
    }
    let mut c = Cursor(data);
    let mac: [u8; 6] = c.array();
    let vip = Ipv4Addr::from(c.array::<4>());
    let [request, reply, probe] = haagent::vip::fuzz_frames(mac, vip);
    for frame in [&request, &reply] {
        assert_eq!(
            haagent::vip::fuzz_parse_claim(frame),
            Some((mac, vip)),
            "our own announcement does not parse back"
        );
    }
    assert_eq!(
        haagent::vip::fuzz_parse_claim(&probe),
        Some((mac, Ipv4Addr::UNSPECIFIED)),
        "a probe must carry sender IP 0.0.0.0"
    );
}

/// The IPv6 Neighbor Discovery parser the IPv6 VIP path (issue 13) will apply to every frame
/// on the segment (anyone can send them).
///
/// - It accepts exactly the NAs and DAD NSs that RFC 4861 §7.1 has a receiver accept, with
///   the claim from the RFC's offsets: it agrees with [`nd_oracle`], on the input and on the
///   input with its ICMPv6 checksum made right (most mutations break the checksum, which
///   would hide every later rule). A claim's target is never multicast.
/// - Read as a MAC and an IPv6 target: the unsolicited NA and the DAD NS that haagent builds
///   parse back to that kind, target and MAC (the NA: Override only, from the target; the
///   NS: from `::`), and a multicast target makes neither a claim.
pub fn nd_frame(data: &[u8]) {
    let mut fixed = data.to_vec();
    nd_fix_checksum(&mut fixed);
    for frame in [data, &fixed] {
        let parsed = haagent::vip::fuzz_parse_nd(frame);
        assert_eq!(
            parsed,
            nd_oracle(frame),
            "parser and RFC 4861 disagree on {frame:02x?}"
        );
        if let Some((_, target, _, _)) = parsed {
            assert!(!target.is_multicast(), "claimed multicast target {target}");
        }
    }

    let mut c = Cursor(data);
    let mac: [u8; 6] = c.array();
    let target = Ipv6Addr::from(c.array::<16>());
    let [na, ns] = haagent::vip::fuzz_nd_frames(mac, target);
    assert_eq!((na.len(), ns.len()), (86, 78), "frame lengths");
    let (na_claim, ns_claim) = (
        haagent::vip::fuzz_parse_nd(&na),
        haagent::vip::fuzz_parse_nd(&ns),
    );
    if target.is_multicast() {
        assert_eq!(na_claim, None, "an NA for multicast {target} parses");
        assert_eq!(ns_claim, None, "a DAD NS for multicast {target} parses");
        return;
    }
    assert_eq!(
        na_claim,
        Some((Some([true, false, false]), target, mac, target)),
        "our own unsolicited NA does not parse back"
    );
    assert_eq!(
        ns_claim,
        Some((None, target, mac, Ipv6Addr::UNSPECIFIED)),
        "our own DAD NS does not parse back"
    );
    assert_eq!(nd_oracle(&na), na_claim, "our NA breaks RFC 4861");
    assert_eq!(nd_oracle(&ns), ns_claim, "our DAD NS breaks RFC 4861");
}

/// An IPv6 frame's ICMPv6 message and its pseudo-header (RFC 8200 §8.1: source,
/// destination, 32-bit length, 3 zero bytes, next header 58), as one buffer to sum; `None`
/// when the frame does not hold the message its IPv6 payload length says.
fn nd_summed(data: &[u8]) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([*data.get(18)?, *data.get(19)?]));
    let message = data.get(54..54 + len)?;
    let mut summed = data[22..54].to_vec();
    summed.extend_from_slice(&(len as u32).to_be_bytes());
    summed.extend_from_slice(&[0, 0, 0, 58]);
    summed.extend_from_slice(message);
    Some(summed)
}

/// Writes the ICMPv6 checksum (frame bytes 56..58) that makes the message verify.
fn nd_fix_checksum(data: &mut [u8]) {
    if let Some(mut summed) = nd_summed(data) {
        if summed.len() >= 44 {
            fix_checksum(&mut summed, 42);
            data[56..58].copy_from_slice(&summed[42..44]);
        }
    }
}

/// What an NA or DAD NS frame claims by RFC 4861 §7.1.1/§7.1.2 (and RFC 4862 §5.4.2, RFC
/// 2464 §6), read from the bytes and written independently of `src/vip/ndp.rs`: `None`
/// where a receiver would drop it or it claims nothing.
fn nd_oracle(data: &[u8]) -> Option<haagent::vip::FuzzNdClaim> {
    let be16 = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
    let addr = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&data[at..at + 16]).unwrap());
    if data.len() < 54 || be16(12) != 0x86dd || data[14] >> 4 != 6 {
        return None;
    }
    // Next header 58 directly (no extension header), hop limit 255.
    if data[20] != 58 || data[21] != 255 {
        return None;
    }
    let len = usize::from(be16(18));
    if len < 24 || 54 + len > data.len() || data[55] != 0 {
        return None;
    }
    if ones_sum(&nd_summed(data)?) != 0xffff {
        return None;
    }
    let (source, destination, target) = (addr(22), addr(38), addr(62));
    if target.is_multicast() {
        return None;
    }
    let message = &data[54..54 + len];
    let (mut slla, mut first_tlla) = (false, None);
    let mut at = 24;
    while at < len {
        if at + 2 > len {
            return None;
        }
        let option_len = usize::from(message[at + 1]) * 8;
        if option_len == 0 || at + option_len > len {
            return None;
        }
        match message[at] {
            1 => slla = true,
            2 if first_tlla.is_none() => first_tlla = Some(&message[at..at + option_len]),
            _ => {}
        }
        at += option_len;
    }
    let ethernet_source: [u8; 6] = data[6..12].try_into().unwrap();
    match data[54] {
        136 => {
            let b = data[58];
            let (override_flag, solicited, router) = (b & 0x20 != 0, b & 0x40 != 0, b & 0x80 != 0);
            if solicited && destination.is_multicast() {
                return None;
            }
            let mac = match first_tlla {
                None => ethernet_source,
                Some(option) if option.len() == 8 => option[2..].try_into().unwrap(),
                Some(_) => return None,
            };
            Some((
                Some([override_flag, solicited, router]),
                target,
                mac,
                source,
            ))
        }
        135 if source.is_unspecified() => {
            let solicited_node = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
            if destination.octets()[..13] != solicited_node || slla {
                return None;
            }
            Some((None, target, ethernet_source, source))
        }
        _ => None,
    }
}

/// The advert datagram (`wire::decode`, what a peer sends).
///
/// - Bytes that decode are a valid advert (`Advert::validate`) and re-encode to exactly the
///   same bytes (the format is canonical), which decode to the same advert.
/// - Read as the fields of an advert (any values, names of any length and bytes):
///   `validate` is `Ok` exactly when `decode(encode(advert))` gives the advert back.
pub fn wire(data: &[u8]) {
    if let Ok(advert) = wire::decode(data) {
        assert_eq!(
            advert.validate(),
            Ok(()),
            "decoded advert breaks the wire rules"
        );
        let bytes = wire::encode(&advert);
        assert_eq!(bytes, data, "accepted bytes do not re-encode identically");
        assert_eq!(wire::decode(&bytes).as_ref(), Ok(&advert));
    }

    let mut c = Cursor(data);
    let flags = c.byte();
    let name = |c: &mut Cursor| {
        let len = usize::from(c.byte());
        String::from_utf8_lossy(c.take(len)).into_owned()
    };
    let advert = Advert {
        state: State::ALL[usize::from(flags & 3)],
        priority: c.byte(),
        epoch: u64::from_be_bytes(c.array()),
        advert_interval_ms: u16::from_be_bytes(c.array()),
        seq: u64::from_be_bytes(c.array()),
        mac: c.array(),
        fingerprint: [0; 4].map(|_: u32| u32::from_be_bytes(c.array())),
        name: name(&mut c),
        handover_to: (flags & 4 != 0).then(|| name(&mut c)),
        extra_macs: Vec::new(),
        heard_us_at: None,
    };
    let back = wire::decode(&wire::encode(&advert));
    match advert.validate() {
        Ok(()) => assert_eq!(back, Ok(advert), "a valid advert does not round-trip"),
        Err(why) => assert!(
            back.is_err(),
            "validate refuses ({why}) an advert that decodes: {advert:?}"
        ),
    }
}

/// The v2 datagram (`wire::decode_v2`, one per node with every group) and the dispatch on
/// the version byte (`wire::decode_any`).
///
/// - Bytes that decode are a valid node advert (`NodeAdvert::validate`); re-encoded they
///   decode to the same advert and are never longer (a v2 decoder skips entry tails and
///   extensions, which `encode_v2` does not write); when as long, they are the same bytes.
/// - `decode_any` gives exactly what `decode` (version byte 1) or `decode_v2` (2) gives,
///   and an error for any other version.
/// - Read as the fields of a node advert (any counts, ids, values, names of any length):
///   `validate` is `Ok` exactly when `decode_v2(encode_v2(advert))` gives it back.
pub fn wire_v2(data: &[u8]) {
    if let Ok(a) = wire::decode_v2(data) {
        assert_eq!(
            a.validate(),
            Ok(()),
            "decoded node advert breaks the wire rules"
        );
        let bytes = wire::encode_v2(&a);
        assert!(bytes.len() <= data.len(), "re-encoded bytes are longer");
        if bytes.len() == data.len() {
            assert_eq!(
                bytes, data,
                "accepted canonical bytes do not re-encode identically"
            );
        }
        assert_eq!(wire::decode_v2(&bytes).as_ref(), Ok(&a));
    }
    let any = wire::decode_any(data);
    match data.get(2) {
        Some(1) if data.starts_with(b"HA") => {
            assert_eq!(
                any,
                wire::decode(data).map(Decoded::V1),
                "decode_any and decode disagree"
            );
        }
        Some(2) if data.starts_with(b"HA") => {
            assert_eq!(
                any,
                wire::decode_v2(data).map(Decoded::V2),
                "decode_any and decode_v2 disagree"
            );
        }
        _ => assert!(any.is_err(), "decode_any accepted {data:02x?}"),
    }

    let mut c = Cursor(data);
    let name = |c: &mut Cursor| {
        let len = usize::from(c.byte());
        String::from_utf8_lossy(c.take(len)).into_owned()
    };
    let advert_interval_ms = u16::from_be_bytes(c.array());
    let seq = u64::from_be_bytes(c.array());
    let fingerprint = [0; 4].map(|_: u32| u32::from_be_bytes(c.array()));
    let node_name = name(&mut c);
    let macs = (0..c.byte() % 11).map(|_| c.array()).collect();
    let groups = (0..c.byte() % 70)
        .map(|_| {
            let flags = c.byte();
            GroupEntry {
                id: u16::from_be_bytes(c.array()) % 128,
                state: State::ALL[usize::from(flags & 3)],
                priority: c.byte(),
                epoch: u64::from_be_bytes(c.array()),
                vips_fingerprint: u32::from_be_bytes(c.array()),
                handover_to: (flags & 4 != 0).then(|| name(&mut c)),
            }
        })
        .collect();
    let advert = NodeAdvert {
        name: node_name,
        advert_interval_ms,
        seq,
        fingerprint,
        macs,
        groups,
        // The heard extension too, in a third of the cases.
        heard: (seq % 3 == 0).then_some(seq.rotate_left(7)),
    };
    let back = wire::decode_v2(&wire::encode_v2(&advert));
    match advert.validate() {
        Ok(()) => assert_eq!(back, Ok(advert), "a valid node advert does not round-trip"),
        Err(why) => assert!(
            back.is_err(),
            "validate refuses ({why}) a node advert that decodes: {advert:?}"
        ),
    }
}

/// Marker at the start of every witness echo's payload (as in `src/witness/icmp.rs`).
const ICMP_MARKER: &[u8; 16] = b"haagent-witness\0";

/// RFC 1071 ones' complement sum, folded, written independently of the product's.
fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for (i, b) in data.iter().enumerate() {
        sum += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum field value that makes `data`'s sum verify (with the field zeroed first).
fn fix_checksum(data: &mut [u8], at: usize) {
    if data.len() >= at + 2 {
        data[at..at + 2].copy_from_slice(&[0, 0]);
        let sum = !ones_sum(data);
        data[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// What the gateway's reply to `(id, seq, token)` must be, checked from the RFCs (791, 792)
/// rather than from the product's code.
fn icmp_oracle(raw: bool, source: Ipv4Addr, data: &[u8], gateway: Ipv4Addr, echo: Echo) -> bool {
    if source != gateway {
        return false;
    }
    let icmp = if raw {
        let Some(&first) = data.first() else {
            return false;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 || data.len() < ihl {
            return false;
        }
        let h = &data[..ihl];
        let whole = usize::from(u16::from_be_bytes([h[2], h[3]])) == data.len()
            && u16::from_be_bytes([h[6], h[7]]) & 0x3fff == 0;
        if !whole || ones_sum(h) != 0xffff || h[9] != 1 || h[12..16] != gateway.octets() {
            return false;
        }
        &data[ihl..]
    } else {
        data
    };
    let (id, seq, token) = echo;
    icmp.len() == 8 + ICMP_MARKER.len() + token.len()
        && icmp[..2] == [0, 0]
        && ones_sum(icmp) == 0xffff
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && icmp[8..24] == ICMP_MARKER[..]
        && icmp[24..] == token
}

type Echo = (u16, u16, [u8; 8]);

/// The gateway witness's echo-reply matcher (`match_reply`, fed with any ICMP packet the host
/// receives).
///
/// Input: a flags byte (bit 0 raw socket, bit 1 source is not the gateway, bit 2 take the
/// echo's id, sequence number and token from the packet itself, bit 3 repair the IPv4 total
/// length and both checksums, bit 4 ICMPv6: see [`icmp6_reply`]), the echo (id, seq,
/// token), the gateway, then the packet.
///
/// - The matcher accepts exactly what the RFC-derived oracle accepts.
/// - An accepted packet with any single bit flipped is refused.
pub fn icmp_reply(data: &[u8]) {
    let mut c = Cursor(data);
    let flags = c.byte();
    if flags & 16 != 0 {
        return icmp6_reply(flags, c);
    }
    let raw = flags & 1 != 0;
    let mut echo: Echo = (
        u16::from_be_bytes(c.array()),
        u16::from_be_bytes(c.array()),
        c.array(),
    );
    let gateway = Ipv4Addr::from(c.array::<4>());
    let source = if flags & 2 != 0 {
        Ipv4Addr::from(u32::from(gateway) ^ 1)
    } else {
        gateway
    };
    let mut packet = c.0.to_vec();
    let ihl = match (raw, packet.first()) {
        (false, _) => 0,
        (true, Some(first)) => usize::from(first & 0x0f) * 4,
        (true, None) => return,
    };
    if flags & 4 != 0 && packet.len() >= ihl + 32 {
        let p = &packet[ihl..];
        echo.0 = u16::from_be_bytes([p[4], p[5]]);
        echo.1 = u16::from_be_bytes([p[6], p[7]]);
        echo.2.copy_from_slice(&p[24..32]);
    }
    if flags & 8 != 0 && packet.len() >= ihl {
        fix_checksum(&mut packet[ihl..], 2);
        if raw && ihl >= 20 {
            if let Ok(len) = u16::try_from(packet.len()) {
                packet[2..4].copy_from_slice(&len.to_be_bytes());
            }
            fix_checksum(&mut packet[..ihl], 10);
        }
    }

    let matched = haagent::witness::fuzz_match_reply(raw, source, &packet, gateway, echo);
    let expected = icmp_oracle(raw, source, &packet, gateway, echo);
    assert_eq!(
        matched.is_ok(),
        expected,
        "matcher says {matched:?}, the RFCs say {expected} (raw {raw}, echo {echo:?})"
    );
    if matched.is_ok() {
        for bit in 0..packet.len() * 8 {
            let mut flipped = packet.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                haagent::witness::fuzz_match_reply(raw, source, &flipped, gateway, echo).is_err(),
                "an accepted reply with bit {bit} flipped is still accepted"
            );
        }
    }
}

/// The ICMPv6 echo-reply matcher (`match_reply_v6`), the `icmp_reply` target's inputs with
/// flag bit 4: after the flags and the echo, the gateway (16 bytes), our address (the
/// destination, 16 bytes), then the bare ICMPv6 message (both socket kinds deliver no IPv6
/// header). Bits 1 and 2 as for IPv4; bit 3 repairs the checksum over the pseudo-header.
///
/// - The matcher accepts exactly what the RFC-derived oracle accepts (RFC 4443 §2.3, §4.2).
/// - An accepted message with any single bit flipped, or received at another destination
///   (the pseudo-header), is refused.
fn icmp6_reply(flags: u8, mut c: Cursor<'_>) {
    let mut echo: Echo = (
        u16::from_be_bytes(c.array()),
        u16::from_be_bytes(c.array()),
        c.array(),
    );
    let gateway = Ipv6Addr::from(c.array::<16>());
    let destination = Ipv6Addr::from(c.array::<16>());
    let source = if flags & 2 != 0 {
        Ipv6Addr::from(u128::from(gateway) ^ 1)
    } else {
        gateway
    };
    let mut packet = c.0.to_vec();
    if flags & 4 != 0 && packet.len() >= 32 {
        echo.0 = u16::from_be_bytes([packet[4], packet[5]]);
        echo.1 = u16::from_be_bytes([packet[6], packet[7]]);
        echo.2.copy_from_slice(&packet[24..32]);
    }
    if flags & 8 != 0 && packet.len() >= 4 {
        let mut whole = pseudo_header_v6(source, destination, packet.len());
        whole.extend_from_slice(&packet);
        fix_checksum(&mut whole, 42);
        packet.copy_from_slice(&whole[40..]);
    }
    let matched = |packet: &[u8], destination| {
        haagent::witness::fuzz_match_reply_v6(source, destination, packet, gateway, echo)
    };
    let result = matched(&packet, destination);
    let expected = icmp6_oracle(source, destination, &packet, gateway, echo);
    assert_eq!(
        result.is_ok(),
        expected,
        "matcher says {result:?}, the RFCs say {expected} (echo {echo:?})"
    );
    if result.is_ok() {
        for bit in 0..packet.len() * 8 {
            let mut flipped = packet.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matched(&flipped, destination).is_err(),
                "an accepted reply with bit {bit} flipped is still accepted"
            );
        }
        let elsewhere = Ipv6Addr::from(u128::from(destination) ^ 0x100);
        assert!(
            matched(&packet, elsewhere).is_err(),
            "an accepted reply is still accepted at another destination"
        );
    }
}

/// RFC 8200 §8.1: source, destination, 32-bit upper-layer length, 3 zero bytes, 58.
fn pseudo_header_v6(source: Ipv6Addr, destination: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut header = Vec::with_capacity(40 + len);
    header.extend_from_slice(&source.octets());
    header.extend_from_slice(&destination.octets());
    header.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 58]);
    header
}

/// What the gateway's ICMPv6 reply to `(id, seq, token)` must be, from RFC 4443.
fn icmp6_oracle(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    icmp: &[u8],
    gateway: Ipv6Addr,
    echo: Echo,
) -> bool {
    let mut whole = pseudo_header_v6(source, destination, icmp.len());
    whole.extend_from_slice(icmp);
    let (id, seq, token) = echo;
    source == gateway
        && icmp.len() == 8 + ICMP_MARKER.len() + token.len()
        && icmp[..2] == [129, 0]
        && ones_sum(&whole) == 0xffff
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && icmp[8..24] == ICMP_MARKER[..]
        && icmp[24..] == token
}

/// The HTTP health check's response-head parser (a remote server's bytes).
///
/// - Ok only for a status line `HTTP/… NNN …` with a three-digit code 100..=999; the reason
///   is trimmed and free of control characters; a length or `chunked` is only reported if
///   the head says so.
/// - An error message stays short and free of control characters, whatever the server sent
///   (both end up in text logs and `haagent status`).
/// - The final empty line makes no difference (the doc: "without the final empty line or
///   with it").
/// - `head_end` finds the first `\r\n\r\n`.
pub fn http_head(data: &[u8]) {
    let parsed = haagent::health::fuzz_parse_head(data);
    let text = String::from_utf8_lossy(data);
    let lower = text.to_ascii_lowercase();
    match &parsed {
        Ok((status, reason, content_length, chunked)) => {
            let first = text.split("\r\n").next().unwrap_or("");
            assert!(first.starts_with("HTTP/"), "accepted status line {first:?}");
            let code = first.split(' ').nth(1).unwrap_or("");
            assert!(
                code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
                "accepted status code {code:?}"
            );
            assert_eq!(code.parse::<u16>().ok(), Some(*status));
            assert!((100..=999).contains(status));
            assert_eq!(reason.trim(), reason, "reason not trimmed");
            // It is logged as text: a bare CR or LF would start a forged log line.
            assert!(
                !reason.chars().any(char::is_control),
                "reason carries control characters: {reason:?}"
            );
            if let Some(n) = content_length {
                assert!(lower.contains("content-length") && lower.contains(&n.to_string()));
            }
            if *chunked {
                assert!(lower.contains("transfer-encoding") && lower.contains("chunked"));
            }
        }
        Err(message) => {
            assert!(
                message.chars().count() <= 120,
                "error message of {} characters",
                message.chars().count()
            );
            assert!(
                !message.chars().any(char::is_control),
                "error message carries control characters: {message:?}"
            );
        }
    }
    let mut terminated = data.to_vec();
    terminated.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        haagent::health::fuzz_parse_head(&terminated),
        parsed,
        "the final empty line changed the result"
    );
    let first_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    assert_eq!(haagent::health::fuzz_head_end(data), first_end);
}

/// Longest request line the control server reads (`MAX_REQUEST` in src/control/mod.rs).
const MAX_REQUEST: usize = 64 * 1024;

/// The control socket's request line, read as the server reads it: at most 64 KiB, up to
/// the first newline, UTF-8, trimmed, then `serde_json` into a `Request`.
///
/// - A request that parses re-serialises to one line of JSON that parses to the same request.
/// - It is one of the four commands, and a handover target is a string the CLI could send.
pub fn control_request(data: &[u8]) {
    let bounded = &data[..data.len().min(MAX_REQUEST)];
    let line = bounded.split(|b| *b == b'\n').next().unwrap_or(bounded);
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(request) = serde_json::from_str::<Request>(text.trim()) else {
        return;
    };
    let json = serde_json::to_string(&request).expect("a parsed request serialises");
    assert!(!json.contains('\n'), "request JSON spans lines: {json}");
    assert_eq!(
        serde_json::from_str::<Request>(&json).ok().as_ref(),
        Some(&request),
        "{json} does not parse back to {request:?}"
    );
}

/// The agent's answer as the CLI parses it (`control::request`).
///
/// - A response that parses re-serialises to one line of JSON that parses to the same
///   response, and serialising that again gives the same text (a fixed point).
pub fn control_response(data: &[u8]) {
    let line = data.split(|b| *b == b'\n').next().unwrap_or(data);
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(response) = serde_json::from_str::<Response>(text.trim()) else {
        return;
    };
    let json = serde_json::to_string(&response).expect("a parsed response serialises");
    assert!(!json.contains('\n'), "response JSON spans lines: {json}");
    let back = serde_json::from_str::<Response>(&json);
    assert_eq!(
        back.as_ref().ok(),
        Some(&response),
        "{json} does not parse back to the same response"
    );
}

/// Name the fuzzed document goes by in errors.
const CONFIG_NAME: &str = "fuzz.toml";

/// Config loading (`config::from_toml`: the raw TOML document parser, then validation).
///
/// - Ok: the printed config (`to_toml_string`) loads back to the same `Config`.
/// - Err: at least one error; each is placed in this file (at a line and column inside the
///   text, or on the file as a whole: never on a flag, none was given) and says something.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::from_toml(text, CONFIG_NAME, &Overrides::default()) {
        Ok(cfg) => {
            let printed = cfg.to_toml_string();
            let back = config::from_toml(&printed, CONFIG_NAME, &Overrides::default());
            assert_eq!(
                back.as_ref().ok(),
                Some(&cfg),
                "the printed config does not load back: {back:?}\n{printed}"
            );
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an error result without errors");
            let lines: Vec<&str> = text.split('\n').collect();
            for e in &errors {
                assert!(!e.message.trim().is_empty(), "an error without a message");
                match &e.place {
                    ErrorPlace::At(loc) => {
                        assert_eq!(loc.file, CONFIG_NAME);
                        assert!(
                            (1..=lines.len()).contains(&loc.line),
                            "line {} of {}: {e}",
                            loc.line,
                            lines.len()
                        );
                        let width = lines[loc.line - 1].chars().count();
                        assert!(
                            (1..=width + 1).contains(&loc.column),
                            "column {} of a {width}-character line: {e}",
                            loc.column
                        );
                    }
                    ErrorPlace::File(file) => assert_eq!(file, CONFIG_NAME, "{e}"),
                    other => panic!("error placed on {other:?} without any flag: {e}"),
                }
                assert!(e.to_string().starts_with(CONFIG_NAME), "{e}");
            }
        }
    }
}
