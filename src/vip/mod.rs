//! Moving the virtual IP: the address itself (rtnetlink) and telling the LAN
//! about it (gratuitous ARP).
//!
//! - [`VipManager`] adds, refreshes, lists and deletes the VIPs on one interface,
//!   optionally with a kernel lifetime so a frozen master loses the VIP by itself.
//! - [`GarpSender`] announces a VIP once: a gratuitous ARP (request- and reply-style) for
//!   IPv4, an unsolicited Neighbor Advertisement for IPv6.
//! - [`ArpProbe`] and [`ArpWatch`] look for other holders of the VIPs (ARP and Neighbor
//!   Discovery).
//! - [`CarrierWatch`] reports the interface losing or regaining its link, and follows it
//!   by name when it is re-created (new index) or changes its MAC.
//! - [`AddressWatch`] reports the VIPs' addresses appearing and vanishing, whoever did it.
//! - [`Announcer`] repeats them in a burst after a takeover and as a slow refresh
//!   while master.
//! - [`RouteManager`] adds and removes the routes that follow a group's VIPs (protocol 98);
//!   [`remove_stale_routes`] clears what a killed run left.
//!
//! - `ndp` (private) builds and reads the IPv6 Neighbor Discovery frames, the IPv6
//!   counterpart of gratuitous ARP and the ARP probe, that the drivers above send and read
//!   for the IPv6 VIPs of issue 13.
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
mod ndp;
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

/// Fuzzing hook (not API): the Neighbor Discovery parser `ArpProbe` and `ArpWatch` apply to
/// every frame from the segment (IPv6 VIPs, issue 13). For an NA or a DAD NS a receiving
/// kernel would accept, returns `(flags, target, sender MAC, IPv6 source)`, where `flags` is
/// `Some([override, solicited, router])` for an NA and `None` for a DAD NS; `None` for
/// anything else.
#[doc(hidden)]
pub fn fuzz_parse_nd(frame: &[u8]) -> Option<FuzzNdClaim> {
    ndp::parse_nd(frame).map(|c| {
        let flags = match c.kind {
            ndp::NdKind::Advert {
                override_flag,
                solicited,
                router,
            } => Some([override_flag, solicited, router]),
            ndp::NdKind::DadSolicit => None,
        };
        (flags, c.target, c.sender_mac.octets(), c.source)
    })
}

/// What [`fuzz_parse_nd`] returns for a claim (not API): NA flags `[override, solicited,
/// router]` (`None` for a DAD NS), target, sender MAC, IPv6 source.
#[doc(hidden)]
pub type FuzzNdClaim = (
    Option<[bool; 3]>,
    std::net::Ipv6Addr,
    [u8; 6],
    std::net::Ipv6Addr,
);

/// Fuzzing hook (not API): the unsolicited NA that announces `target` from `mac` and the
/// DAD NS that probes for it, as `GarpSender` and `ArpProbe` send them.
#[doc(hidden)]
pub fn fuzz_nd_frames(mac: [u8; 6], target: std::net::Ipv6Addr) -> [Vec<u8>; 2] {
    let mac = pnet_base::MacAddr::from(mac);
    [
        ndp::unsolicited_na_frame(mac, target, false).to_vec(),
        ndp::dad_probe_frame(mac, target).to_vec(),
    ]
}
