//! Moving the virtual IP: the address itself (rtnetlink) and telling the LAN
//! about it (gratuitous ARP).
//!
//! - [`VipManager`] adds, refreshes, lists and deletes the VIPs on one interface,
//!   optionally with a kernel lifetime so a frozen master loses the VIP by itself.
//! - [`GarpSender`] sends one gratuitous ARP (request- and reply-style) for a VIP.
//! - [`CarrierWatch`] reports the interface losing or regaining its link, and follows it
//!   by name when it is re-created (new index) or changes its MAC.
//! - [`AddressWatch`] reports the VIPs' addresses appearing and vanishing, whoever did it.
//! - [`Announcer`] repeats them in a burst after a takeover and as a slow refresh
//!   while master.
//! - [`RouteManager`] adds and removes the routes that follow a group's VIPs (protocol 98);
//!   [`remove_stale_routes`] clears what a killed run left.
//!
//! The daemon owns one of each and drives them from its event loop; nothing here
//! decides *when* to hold the VIP — that is the election's job.

mod addrwatch;
mod announce;
mod arp;
mod carrier;
mod error;
mod frame;
mod garp;
mod netlink;
mod packet;
mod routes;

pub use addrwatch::{AddressEvent, AddressWatch};
pub use announce::Announcer;
pub use arp::{ArpConflict, ArpProbe, ArpWatch};
pub use carrier::{CarrierWatch, LinkState};
pub use error::VipError;
pub use garp::GarpSender;
pub use netlink::VipManager;
pub use routes::{remove_stale_routes, RouteError, RouteManager};

/// Fuzzing hook (not API): the ARP parser the probe and the watch apply to every frame
/// from the segment. Returns the sender MAC and IPv4 address of an IPv4-over-Ethernet ARP
/// frame, `None` for anything else.
#[doc(hidden)]
pub fn fuzz_parse_claim(frame: &[u8]) -> Option<([u8; 6], std::net::Ipv4Addr)> {
    frame::parse_claim(frame).map(|c| (c.sender_mac.octets(), c.sender_ip))
}

/// Fuzzing hook (not API): the gratuitous ARP request and reply `GarpSender` puts on the
/// wire for `vip` from `mac`, and the RFC 5227 probe `ArpProbe` sends.
#[doc(hidden)]
pub fn fuzz_frames(mac: [u8; 6], vip: std::net::Ipv4Addr) -> [Vec<u8>; 3] {
    let mac = pnet_base::MacAddr::from(mac);
    [
        frame::garp_frame(mac, vip, pnet_packet::arp::ArpOperations::Request).to_vec(),
        frame::garp_frame(mac, vip, pnet_packet::arp::ArpOperations::Reply).to_vec(),
        frame::probe_frame(mac, vip).to_vec(),
    ]
}
