//! Hand-built ARP frames from a host that is not a member (issue 9's forged claims), as
//! tests/arp_attack.rs sends them: a broadcast reply "the VIP is at MAC", sent with a raw
//! Ethernet channel on `eth0` of the sender's namespace.
#![allow(dead_code)] // each test file uses a different part

use std::net::Ipv4Addr;
use std::time::Duration;

use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::MutablePacket;

/// `aa:bb:cc:dd:ee:ff` as bytes; panics on anything else (a harness value, not input).
pub fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// A broadcast ARP reply from `src` saying "`vip` is at `claimed`" (not gratuitous in
/// Linux's sense: the target MAC is broadcast).
pub fn forged_reply(src: [u8; 6], claimed: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; 42];
    let mut eth = MutableEthernetPacket::new(&mut frame).unwrap();
    eth.set_destination([0xff; 6].into());
    eth.set_source(src.into());
    eth.set_ethertype(EtherTypes::Arp);
    let mut arp = MutableArpPacket::new(eth.payload_mut()).unwrap();
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Reply);
    arp.set_sender_hw_addr(claimed.into());
    arp.set_sender_proto_addr(vip);
    arp.set_target_hw_addr([0xff; 6].into());
    arp.set_target_proto_addr(vip);
    frame
}

/// Sends `frames` on `eth0` of the namespace `ns`, `gap` apart.
pub fn send_from(ns: &str, frames: Vec<Vec<u8>>, gap: Duration) {
    super::veth::send_frames(ns, "eth0", frames, gap);
}
