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

pub use addrwatch::{AddressEvent, AddressWatch};
pub use announce::Announcer;
pub use arp::{ArpConflict, ArpProbe, ArpWatch};
pub use carrier::{CarrierWatch, LinkState};
pub use error::VipError;
pub use garp::GarpSender;
pub use netlink::VipManager;
