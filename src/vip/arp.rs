//! Seeing other owners of the VIPs on the LAN: a probe before taking them (RFC 5227 ARP
//! probe for IPv4, RFC 4862 DAD Neighbor Solicitation for IPv6), and a watch for
//! conflicting ARP and Neighbor Advertisements while holding them.
//!
//! The election only knows what the peers it can hear say. A peer behind a broken
//! QUIC path, a misconfigured host or a stale keepalived may still answer ARP or
//! Neighbor Discovery for the VIP; the segment is the ground truth of who holds it.
//!
//! - [`ArpProbe::probe`] asks "who has these VIPs?" in one window: for an IPv4 VIP the
//!   RFC 5227 way (sender IP 0.0.0.0, so no neighbour caches are touched), for an IPv6 VIP
//!   with a DAD NS (from `::` to the VIP's solicited-node group, RFC 4862 §5.4.2), and
//!   reports the first VIP another MAC answers or claims. Linux answers both kinds of
//!   probe for its own addresses.
//! - [`ArpWatch`] reads ARP and ND in a background thread and reports every frame in
//!   which another MAC claims one of the VIPs: an ARP frame with the VIP as sender IP
//!   (e.g. another node's gratuitous ARP), or a Neighbor Advertisement with the VIP as
//!   target (another node's unsolicited NA, or its answer to someone's NS).
//!
//! # What counts as a claim
//!
//! | family | claim | not a claim |
//! |--------|-------|-------------|
//! | IPv4 | any ARP frame whose sender IP is the VIP | an RFC 5227 probe (sender IP 0.0.0.0) |
//! | IPv6 | an NA whose target is the VIP (RFC 4862 §5.4.4: the tentative address is a duplicate) | a DAD NS for the VIP (§5.4.3: another host probing at the same moment) |
//!
//! The two "not a claim" rows match: another host that probes for the VIP does not hold
//! it (yet); if it takes it, its announcement (gratuitous ARP, unsolicited NA) is a claim.
//! RFC 4862 §5.4.3 would have both probers give the address up; we leave that to the
//! election, which hears its peers. ND frames count only if a receiving kernel would
//! accept them (`ndp::parse_nd`: RFC 4861 §7.1 validation, hop limit 255, checksum).
//!
//! # The socket
//!
//! Both use a [`PacketSocket`] whose BPF filter passes only incoming ARP frames and
//! Neighbor Solicitations/Advertisements: our own probes and announcements
//! (`PACKET_OUTGOING`) and all other traffic never reach user space. Frames whose sender
//! MAC (ARP sender hardware address; an NA's Target Link-Layer Address option, else its
//! Ethernet source) is ours are ignored as well. Both reopen the socket by name when the
//! interface is re-created, changes its MAC or comes back up.
//!
//! The NA that answers a DAD NS goes to the all-nodes group ff02::1 (RFC 4861 §7.2.4),
//! which every interface with IPv6 enabled receives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pnet_base::MacAddr;

use crate::net::format_mac;
use tokio::sync::mpsc;

use super::frame::{parse_claim, probe_frame};
use super::ndp::{dad_probe_frame, parse_nd, NdKind};
use super::packet::{Filter, PacketSocket, CAP_NET_RAW};
use super::VipError;

/// Read timeout while probing: how late the probe may notice its next send time
/// or the end of its window.
const PROBE_POLL: Duration = Duration::from_millis(2);

/// Read timeout of the watch thread: how long a stopped (dropped or replaced) watch may
/// linger before its thread ends. Its socket is the only thing it holds meanwhile, and it
/// reports nothing once stopped (checked before every report). Every timeout is a wake-up
/// of an idle agent, so it is long (issue 12: 100 ms cost 10 wake-ups a second).
const WATCH_POLL: Duration = Duration::from_secs(1);

/// Pause before the watch retries a failed receive (and reopens its socket).
const WATCH_RETRY: Duration = Duration::from_millis(100);

/// At most one [`ArpConflict`] per (VIP, MAC) within this time.
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// Capacity of the conflict channel; further reports are dropped (and logged)
/// while the daemon does not read.
const CONFLICT_CAPACITY: usize = 64;

/// Opens the ARP and ND socket of the probe and the watch.
fn open_arp(interface: &str, read_timeout: Duration) -> Result<PacketSocket, VipError> {
    PacketSocket::open(interface, Filter::IncomingArpAndNd, Some(read_timeout))
}

/// The address `frame` claims for its sender and the sender's MAC (see the module
/// documentation): an ARP frame's sender IP and sender MAC, an NA's target and its Target
/// Link-Layer Address (else Ethernet source). `None` for a DAD NS and anything else.
fn claim(frame: &[u8]) -> Option<(IpAddr, MacAddr)> {
    if let Some(c) = parse_claim(frame) {
        return Some((IpAddr::V4(c.sender_ip), c.sender_mac));
    }
    let nd = parse_nd(frame)?;
    match nd.kind {
        NdKind::Advert { .. } => Some((IpAddr::V6(nd.target), nd.sender_mac)),
        // RFC 4862 §5.4.3: another host probing for the address does not hold it.
        NdKind::DadSolicit => None,
    }
}

/// What a probe for `vip` is called in logs and errors.
fn probe_name(vip: &IpAddr) -> &'static str {
    match vip {
        IpAddr::V4(_) => "ARP probe",
        IpAddr::V6(_) => "NDP probe (DAD NS)",
    }
}

/// Sends one frame, naming `what` in the error.
fn send(channel: &mut PacketSocket, frame: &[u8], what: &str) -> Result<(), VipError> {
    channel
        .send(frame)
        .map_err(|e| VipError::from_io(channel.interface(), what, CAP_NET_RAW, e))
}

/// Probes for VIPs on one interface and listens for anyone who has them: RFC 5227 ARP
/// probes for IPv4 VIPs, DAD Neighbor Solicitations (RFC 4862 §5.4.2) for IPv6 VIPs.
pub struct ArpProbe {
    channel: PacketSocket,
    mac: MacAddr,
}

impl std::fmt::Debug for ArpProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArpProbe")
            .field("interface", &self.channel.interface())
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl ArpProbe {
    /// Opens a packet channel on `interface` that sends and receives ARP and Neighbor
    /// Discovery (needs `CAP_NET_RAW`). The socket stays in the calling thread's network
    /// namespace.
    pub fn open(interface: &str) -> Result<Self, VipError> {
        let channel = open_arp(interface, PROBE_POLL)?;
        let mac = channel.mac().ok_or_else(|| VipError::NoMacAddress {
            interface: interface.to_string(),
        })?;
        Ok(Self { channel, mac })
    }

    /// Opens a new socket on the interface that now carries the name and takes its
    /// current MAC (after a re-creation, a MAC change or a link flap). On error the probe
    /// keeps its old socket.
    pub fn reopen(&mut self) -> Result<(), VipError> {
        *self = Self::open(self.channel.interface())?;
        Ok(())
    }

    /// The MAC address the probes are sent from.
    pub fn mac(&self) -> [u8; 6] {
        self.mac.octets()
    }

    /// The interface probed on.
    pub fn interface(&self) -> &str {
        self.channel.interface()
    }

    /// Probes for all of `vips` in one `window` starting now, sending `count` probes for
    /// each VIP, evenly spread over the window (all VIPs at each of the `count` times):
    ///
    /// - IPv4 VIP: an RFC 5227 ARP probe (request, sender MAC = ours, sender IP =
    ///   0.0.0.0, target MAC zero, target IP = the VIP, to broadcast). An answer is an ARP
    ///   frame from another MAC whose sender IP is the VIP (a reply, or a
    ///   request/announcement claiming it).
    /// - IPv6 VIP: a DAD NS (from `::` to the VIP's solicited-node group, target = the VIP,
    ///   no options; RFC 4862 §5.4.2). An answer is a Neighbor Advertisement from another
    ///   MAC whose target is the VIP (RFC 4862 §5.4.4: any NA for a tentative address
    ///   means it is a duplicate). A DAD NS from another host for the same VIP (§5.4.3:
    ///   it probes at the same moment) is *not* an answer, as an ARP probe from 0.0.0.0
    ///   is none for IPv4.
    ///
    /// Returns the first (VIP, MAC) seen, as soon as it is seen, or `None` after `window`
    /// (give or take a few milliseconds) if nobody claimed any of `vips`. An empty `vips`
    /// sends nothing and waits out the window.
    ///
    /// Frames queued before the call are discarded first. Blocking: run it on
    /// `spawn_blocking`.
    pub fn probe(
        &mut self,
        vips: &[IpAddr],
        count: u32,
        window: Duration,
    ) -> Result<Option<(IpAddr, [u8; 6])>, VipError> {
        self.probe_ignoring(vips, count, window, &[], &mut 0)
    }

    /// [`ArpProbe::probe`], where a frame (of either family) from a MAC in `ignore`
    /// (`[vip] ignore_arp_from`: a network that answers ARP or ND for every address
    /// itself) is no answer: it is counted in `ignored` and the probe goes on listening,
    /// so a real holder that answers after the network's own reply is still seen.
    pub fn probe_ignoring(
        &mut self,
        vips: &[IpAddr],
        count: u32,
        window: Duration,
        ignore: &[[u8; 6]],
        ignored: &mut u64,
    ) -> Result<Option<(IpAddr, [u8; 6])>, VipError> {
        self.channel.drain();
        let probes: Vec<(IpAddr, Vec<u8>)> = vips
            .iter()
            .map(|vip| {
                let frame = match vip {
                    IpAddr::V4(v4) => probe_frame(self.mac, *v4).to_vec(),
                    IpAddr::V6(v6) => dad_probe_frame(self.mac, *v6).to_vec(),
                };
                (*vip, frame)
            })
            .collect();
        let ifname = self.channel.interface().to_string();
        let start = Instant::now();
        let end = start + window;
        let mut sent = 0u32;
        loop {
            let now = Instant::now();
            while sent < count && now >= start + window.mul_f64(f64::from(sent) / f64::from(count))
            {
                for (vip, frame) in &probes {
                    let what = format!("send {} for {vip}", probe_name(vip));
                    send(&mut self.channel, frame, &what)?;
                }
                sent += 1;
            }
            if now >= end {
                return Ok(None);
            }
            let frame = self.channel.next().map_err(|e| {
                VipError::from_io(&ifname, "receive ARP/ND while probing", CAP_NET_RAW, e)
            })?;
            if let Some((vip, mac)) = frame.and_then(claim) {
                if vips.contains(&vip) && mac != self.mac {
                    let mac = mac.octets();
                    if ignore.contains(&mac) {
                        *ignored += 1;
                        continue;
                    }
                    return Ok(Some((vip, mac)));
                }
            }
        }
    }
}

/// Another MAC claiming a VIP, seen by an [`ArpWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpConflict {
    /// The VIP claimed: an ARP frame's sender IP (IPv4), an NA's target (IPv6).
    pub vip: IpAddr,
    /// The MAC claiming it: the ARP sender MAC, or the NA's Target Link-Layer Address
    /// (its Ethernet source if it has none).
    pub mac: [u8; 6],
}

/// A background thread reporting ARP frames and Neighbor Advertisements in which another
/// MAC claims one of our VIPs. Dropping it stops the thread (within its 1 s read timeout).
#[derive(Debug)]
pub struct ArpWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    interface: String,
    vips: Vec<IpAddr>,
    /// Kept so that [`ArpWatch::reopen`] feeds the same receiver.
    tx: mpsc::Sender<ArpConflict>,
}

impl ArpWatch {
    /// Opens a packet channel on `interface` (needs `CAP_NET_RAW`; the socket
    /// stays in the calling thread's network namespace) and starts a thread reading
    /// ARP and ND. Every frame from a MAC that is not `own_mac` claiming one of `vips`
    /// (IPv4: ARP sender IP; IPv6: an NA's target; see the module documentation) becomes
    /// an [`ArpConflict`] on the returned receiver, at most one per (VIP, MAC) every
    /// 500 ms. A DAD NS for a VIP is no conflict.
    pub fn spawn(
        interface: &str,
        own_mac: [u8; 6],
        vips: Vec<IpAddr>,
    ) -> Result<(ArpWatch, mpsc::Receiver<ArpConflict>), VipError> {
        let (tx, rx) = mpsc::channel(CONFLICT_CAPACITY);
        Ok((Self::start(interface, own_mac, vips, tx)?, rx))
    }

    /// Restarts the watch on a new socket on the interface that now carries the name, with
    /// `own_mac` as our MAC: after the interface was re-created, changed its MAC or came
    /// back up. Conflicts keep arriving on the receiver [`ArpWatch::spawn`] returned. On
    /// error the old watch keeps running.
    pub fn reopen(&mut self, own_mac: [u8; 6]) -> Result<(), VipError> {
        let fresh = Self::start(&self.interface, own_mac, self.vips.clone(), self.tx.clone())?;
        *self = fresh; // dropping the old one stops its thread
        Ok(())
    }

    /// Watches `vips` from now on (a reload changed them), on a fresh socket like
    /// [`ArpWatch::reopen`]. On error the old watch keeps running with the old list.
    pub fn set_vips(&mut self, vips: Vec<IpAddr>, own_mac: [u8; 6]) -> Result<(), VipError> {
        let fresh = Self::start(&self.interface, own_mac, vips, self.tx.clone())?;
        *self = fresh;
        Ok(())
    }

    fn start(
        interface: &str,
        own_mac: [u8; 6],
        vips: Vec<IpAddr>,
        tx: mpsc::Sender<ArpConflict>,
    ) -> Result<ArpWatch, VipError> {
        let channel = open_arp(interface, WATCH_POLL)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let (thread_vips, thread_tx) = (vips.clone(), tx.clone());
        let thread = std::thread::Builder::new()
            .name("haagent-arpwatch".to_string())
            .spawn(move || {
                watch(
                    channel,
                    MacAddr::from(own_mac),
                    thread_vips,
                    thread_tx,
                    thread_stop,
                )
            })
            .map_err(|source| VipError::Io {
                interface: interface.to_string(),
                operation: "start ARP watch thread".to_string(),
                source,
            })?;
        Ok(ArpWatch {
            stop,
            thread: Some(thread),
            interface: interface.to_string(),
            vips,
            tx,
        })
    }
}

impl Drop for ArpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Not joined: the thread notices within WATCH_POLL, and dropping must not
        // block an async task for that long. It reports nothing after this store.
        drop(self.thread.take());
    }
}

/// The watch thread's loop.
fn watch(
    mut channel: PacketSocket,
    own_mac: MacAddr,
    vips: Vec<IpAddr>,
    tx: mpsc::Sender<ArpConflict>,
    stop: Arc<AtomicBool>,
) {
    let mut limiter = RateLimiter::new(REPORT_EVERY);
    let mut failing = false;
    // Reports the daemon could not take, logged at most once per REPORT_EVERY with a count.
    let mut dropped: u64 = 0;
    let mut dropped_logged: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) && !tx.is_closed() {
        let claim = match channel.next() {
            Ok(frame) => {
                failing = false;
                frame.and_then(claim)
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(interface = %channel.interface(), error = %e, "ARP watch: receive failed; retrying");
                    failing = true;
                }
                std::thread::sleep(WATCH_RETRY);
                // A socket whose interface index is gone never recovers: take the one
                // that now carries the name, if any (the daemon restarts us on a MAC change).
                if let Err(e) = channel.reopen() {
                    tracing::debug!(error = %e, "ARP watch: cannot reopen the packet socket yet");
                }
                continue;
            }
        };
        let Some((vip, mac)) = claim else { continue };
        if mac == own_mac || !vips.contains(&vip) {
            continue;
        }
        if stop.load(Ordering::Acquire) {
            // Replaced (reopen, new VIPs) or dropped while this frame was read: the
            // successor reports for the current VIPs and MAC.
            break;
        }
        let conflict = ArpConflict {
            vip,
            mac: mac.octets(),
        };
        if !limiter.allow(conflict, Instant::now()) {
            continue;
        }
        if let Err(mpsc::error::TrySendError::Full(c)) = tx.try_send(conflict) {
            dropped += 1;
            let now = Instant::now();
            if dropped_logged.is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY) {
                dropped_logged = Some(now);
                tracing::warn!(vip = %c.vip, mac = %format_mac(&c.mac), dropped,
                    "ARP conflict reports dropped: the daemon is not reading them fast enough");
                dropped = 0;
            }
        }
    }
}

/// At most one pass per key within `every`, remembering at most [`RateLimiter::CAPACITY`]
/// keys: a flood of frames from random MACs (attacker-chosen keys) cannot grow it. When it
/// is full of recent keys, new ones pass without being remembered (the election rate-limits
/// what it does about them).
struct RateLimiter {
    every: Duration,
    last: HashMap<ArpConflict, Instant>,
}

impl RateLimiter {
    const CAPACITY: usize = 256;

    fn new(every: Duration) -> Self {
        Self {
            every,
            last: HashMap::new(),
        }
    }

    /// Whether `key` may be reported at `now` (and if so, remembers it).
    fn allow(&mut self, key: ArpConflict, now: Instant) -> bool {
        if let Some(last) = self.last.get(&key) {
            if now.saturating_duration_since(*last) < self.every {
                return false;
            }
        }
        if self.last.len() >= Self::CAPACITY {
            let every = self.every;
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < every);
        }
        if self.last.len() < Self::CAPACITY {
            self.last.insert(key, now);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 100));

    const V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const OTHER: MacAddr = MacAddr(0x00, 0x00, 0x5e, 0x00, 0x53, 0x02);

    /// The claim the probe and the watch read: ARP sender IP, NA target; never a probe.
    #[test]
    fn claims_are_arp_senders_and_na_targets_but_not_probes() {
        use pnet_packet::arp::ArpOperations;
        let IpAddr::V4(v4) = VIP else { unreachable!() };
        for op in [ArpOperations::Request, ArpOperations::Reply] {
            let garp = super::super::frame::garp_frame(OTHER, v4, op);
            assert_eq!(claim(&garp), Some((VIP, OTHER)));
        }
        // RFC 5227 probe: sender IP 0.0.0.0, which is no VIP.
        let probe = probe_frame(OTHER, v4);
        assert_eq!(
            claim(&probe),
            Some((IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), OTHER))
        );
        let na = super::super::ndp::unsolicited_na_frame(OTHER, V6, false);
        assert_eq!(claim(&na), Some((IpAddr::V6(V6), OTHER)));
        // RFC 4862 §5.4.3: a DAD NS for the VIP is someone else probing, not a holder.
        assert_eq!(claim(&dad_probe_frame(OTHER, V6)), None);
        // An NA a kernel would drop (hop limit 64) is no claim either.
        let mut off_link = na;
        off_link[21] = 64;
        assert_eq!(claim(&off_link), None);
        assert_eq!(claim(&[]), None);
    }

    #[test]
    fn probes_are_named_per_family() {
        assert_eq!(probe_name(&VIP), "ARP probe");
        assert_eq!(probe_name(&IpAddr::V6(V6)), "NDP probe (DAD NS)");
    }

    #[test]
    fn the_rate_limiter_stays_bounded_under_random_macs() {
        let mut limiter = RateLimiter::new(Duration::from_secs(1));
        let now = Instant::now();
        for i in 0u32..10_000 {
            let b = i.to_be_bytes();
            let key = ArpConflict {
                vip: VIP,
                mac: [6, 0xfe, b[0], b[1], b[2], b[3]],
            };
            assert!(limiter.allow(key, now));
        }
        assert_eq!(limiter.last.len(), RateLimiter::CAPACITY);
    }

    #[test]
    fn formats_mac_lowercase_with_colons() {
        assert_eq!(
            format_mac(&[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]),
            "02:aa:bb:cc:dd:ee"
        );
        assert_eq!(format_mac(&[0, 1, 2, 3, 4, 0x0f]), "00:01:02:03:04:0f");
    }

    #[test]
    fn rate_limiter_allows_one_report_per_key_and_period() {
        let mut limiter = RateLimiter::new(Duration::from_millis(500));
        let t0 = Instant::now();
        let a = ArpConflict {
            vip: VIP,
            mac: [2, 0, 0, 0, 0, 1],
        };
        let b = ArpConflict {
            vip: VIP,
            mac: [2, 0, 0, 0, 0, 2],
        };
        assert!(limiter.allow(a, t0));
        assert!(!limiter.allow(a, t0 + Duration::from_millis(499)));
        assert!(limiter.allow(b, t0 + Duration::from_millis(100)));
        assert!(limiter.allow(a, t0 + Duration::from_millis(500)));
    }

    /// The daemon moves the probe into `spawn_blocking` and keeps the watch in
    /// its state.
    #[test]
    fn probe_is_send_and_watch_is_send_sync() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<ArpProbe>();
        send_sync::<ArpWatch>();
        send_sync::<ArpConflict>();
    }

    #[test]
    fn missing_interface_is_named() {
        let e = ArpProbe::open("havip-nonexistent0").unwrap_err();
        assert_eq!(e.to_string(), "interface havip-nonexistent0 not found");
        let e = ArpWatch::spawn("havip-nonexistent0", [2, 0, 0, 0, 0, 1], vec![VIP]).unwrap_err();
        assert_eq!(e.to_string(), "interface havip-nonexistent0 not found");
    }
}
