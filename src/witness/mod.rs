//! The gateway witness: can this node still reach its default gateway?
//!
//! Split-brain resistance needs a tie-breaker that does not depend on the peers.
//! A node that hears no peer *and* cannot reach the gateway is the isolated one —
//! its cable, switch port or NIC is gone — and must not hold (or take) the VIP;
//! a node that hears no peer but still reaches the gateway is the one that should.
//! The witness pings the gateway through the VIP interface every `interval` (ICMP echo to
//! an IPv4 gateway, ICMPv6 echo to an IPv6 one, see `icmp.rs`) and reports a stable verdict;
//! the election (a pure state machine) decides with it.
//!
//! - [`Witness::spawn`] resolves the gateway ([`Gateway::Auto`] reads the default
//!   route, see [`resolve_gateway`]), opens an ICMP socket and starts a task;
//! - [`Hysteresis`] turns single echo results into a verdict that changes only
//!   after `fall` lost or `rise` answered echoes in a row;
//! - [`WitnessEvent`]s reach the daemon over a channel: one first verdict, then
//!   one per change. [`Witness::reachable`] and [`Witness::last_rtt`] can be read
//!   at any time (status output).

mod error;
mod hysteresis;
pub(crate) mod icmp;
mod route;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub use error::WitnessError;
pub use hysteresis::Hysteresis;
pub use route::resolve_gateway;

use icmp::{EchoFailure, Pinger};

/// Default time between two echoes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
/// Default number of consecutive lost echoes before the gateway is unreachable.
pub const DEFAULT_FALL: u32 = 3;
/// Default number of consecutive answered echoes before it is reachable again.
pub const DEFAULT_RISE: u32 = 2;

/// Capacity of the event channel. Events are rare (one per change); if the
/// daemon ever falls this far behind, newer events are dropped with a warning and
/// [`Witness::reachable`] still tells the truth.
const EVENT_CAPACITY: usize = 16;

/// Fuzzing hook, not part of the API: the reply matcher (`icmp::match_reply`) with plain
/// arguments, for `tests/fuzz` and `tests/fuzz_stable.rs`. `raw`: the packet starts with its
/// IPv4 header (raw socket), else it is the bare ICMP message (datagram socket). `Err` carries
/// the mismatch's name.
#[doc(hidden)]
pub fn fuzz_match_reply(
    raw: bool,
    source: Ipv4Addr,
    data: &[u8],
    gateway: Ipv4Addr,
    (id, seq, token): (u16, u16, [u8; icmp::TOKEN_LEN]),
) -> Result<(), String> {
    let kind = if raw {
        icmp::SocketKind::Raw
    } else {
        icmp::SocketKind::Datagram
    };
    let echo = icmp::Outstanding { id, seq, token };
    icmp::match_reply(kind, source, data, gateway, &echo).map_err(|m| format!("{m:?}"))
}

/// Fuzzing hook, not part of the API: the ICMPv6 reply matcher (`icmp::match_reply_v6`)
/// with plain arguments. `data` is the bare ICMPv6 message (both socket kinds), received
/// from `source` at `destination` (the pseudo-header's addresses). `Err` carries the
/// mismatch's name.
#[doc(hidden)]
pub fn fuzz_match_reply_v6(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    data: &[u8],
    gateway: Ipv6Addr,
    (id, seq, token): (u16, u16, [u8; icmp::TOKEN_LEN]),
) -> Result<(), String> {
    let echo = icmp::Outstanding { id, seq, token };
    icmp::match_reply_v6(source, destination, data, gateway, &echo).map_err(|m| format!("{m:?}"))
}

/// Which gateway the witness pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    /// The gateway of the IPv4 default route through the witness interface, or if it has
    /// none, of its IPv6 default route (see [`resolve_gateway`]).
    Auto,
    /// This address: IPv4, or IPv6 (global, or link-local `fe80::/10`, whose scope is the
    /// witness interface).
    Addr(IpAddr),
}

/// How the witness pings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessConfig {
    /// The gateway to ping.
    pub gateway: Gateway,
    /// The interface the echoes leave through (the VIP interface).
    pub interface: String,
    /// Time between two echoes (default 200 ms). Must not be zero.
    pub interval: Duration,
    /// How long to wait for each reply (default = `interval`). A reply that comes
    /// later counts as lost. Must not be zero; if it exceeds `interval`, the next
    /// echo waits for it.
    pub timeout: Duration,
    /// Consecutive lost echoes that make the gateway unreachable (default 3).
    pub fall: u32,
    /// Consecutive answered echoes that make it reachable again (default 2).
    pub rise: u32,
    /// The node's own addresses the echoes leave from, one per family (the gateway's
    /// family picks; see [`EchoSource`]). The default lets the kernel pick.
    pub source: EchoSource,
}

/// The node's own addresses on the witness interface that echoes are sent from, so that
/// they never leave from a VIP: a gateway answers a VIP's echo to whoever holds the VIP
/// now, and that is no proof this node reaches it.
///
/// Without one the kernel picks, and it can pick a VIP:
/// - IPv4: the subnet's primary address, which a VIP becomes once it was promoted
///   (`promote_secondaries`, when the own address is deleted and added again).
/// - IPv6: RFC 6724 §5 source selection. A VIP on the gateway's prefix ties with the own
///   address on every rule; Linux caps rule 8 (longest matching prefix) at the address's
///   own prefix length, so two /64s tie there too, and the newest address wins: a VIP
///   added after the own address is the source.
///
/// A link-local IPv6 gateway (`fe80::/10`, what router advertisements give) gets no pinned
/// source: rule 2 (appropriate scope) then makes the kernel pick the interface's own
/// link-local address, which is never a VIP unless one is configured in `fe80::/10`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoSource {
    /// Source of echoes to an IPv4 gateway.
    pub v4: Option<Ipv4Addr>,
    /// Source of echoes to a global (non-link-local) IPv6 gateway.
    pub v6: Option<Ipv6Addr>,
}

impl EchoSource {
    /// The address to bind for echoes to `gateway`, if any.
    pub fn for_gateway(&self, gateway: IpAddr) -> Option<IpAddr> {
        match gateway {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(g) if g.is_unicast_link_local() => None,
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }
}

impl WitnessConfig {
    /// The defaults (200 ms interval and timeout, fall 3, rise 2) for `interface`.
    pub fn new(interface: impl Into<String>, gateway: Gateway) -> Self {
        Self {
            gateway,
            interface: interface.into(),
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_INTERVAL,
            fall: DEFAULT_FALL,
            rise: DEFAULT_RISE,
            source: EchoSource::default(),
        }
    }
}

/// A verdict of the witness, sent when it changes (plus the first one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessEvent {
    /// `rise` echoes in a row were answered.
    Reachable {
        /// The gateway pinged.
        gateway: IpAddr,
        /// Round-trip time of the echo that decided.
        rtt: Duration,
    },
    /// `fall` echoes in a row were lost.
    Unreachable {
        /// The gateway pinged.
        gateway: IpAddr,
        /// For the log, e.g. "3 echoes to 192.0.2.1 unanswered (fall 3 × 200 ms)".
        reason: String,
    },
}

/// What the task shares with the [`Witness`] handle.
#[derive(Debug, Default)]
struct Shared {
    reachable: Option<bool>,
    last_rtt: Option<Duration>,
    /// The gateway pinged now (`auto`: follows the default route).
    gateway: Option<IpAddr>,
}

/// A running gateway witness. Dropping it stops the pinging task.
#[derive(Debug)]
pub struct Witness {
    gateway: IpAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Witness {
    /// Resolves the gateway, opens the ICMP (IPv4 gateway) or ICMPv6 (IPv6 gateway) socket
    /// (a datagram ping socket, or a raw socket needing `CAP_NET_RAW` where
    /// `net.ipv4.ping_group_range` forbids it), and starts pinging on the current tokio
    /// runtime.
    ///
    /// The socket lives in the calling thread's network namespace. The receiver
    /// gets the first verdict after `rise` answered or `fall` lost echoes, then
    /// one event per change.
    pub async fn spawn(
        cfg: WitnessConfig,
    ) -> Result<(Witness, mpsc::Receiver<WitnessEvent>), WitnessError> {
        for (value, name) in [(cfg.interval, "interval"), (cfg.timeout, "timeout")] {
            if value.is_zero() {
                return Err(WitnessError::InvalidConfig {
                    interface: cfg.interface.clone(),
                    reason: format!("{name} must be greater than zero"),
                });
            }
        }
        let gateway = match cfg.gateway {
            Gateway::Auto => resolve_gateway(&cfg.interface).await?,
            Gateway::Addr(addr) => addr,
        };
        let (pinger, pinned) = open_pinger(&cfg.interface, gateway, cfg.source)?;
        tracing::info!(
            interface = %cfg.interface,
            %gateway,
            socket = ?pinger.kind(),
            interval_ms = cfg.interval.as_millis() as u64,
            fall = cfg.fall,
            rise = cfg.rise,
            "gateway witness started"
        );
        let shared = Arc::new(Mutex::new(Shared {
            gateway: Some(gateway),
            ..Shared::default()
        }));
        let routes = match cfg.gateway {
            Gateway::Auto => Some(route::DefaultRouteWatch::spawn(&cfg.interface)?),
            Gateway::Addr(_) => None,
        };
        let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
        let socket = Socket {
            pinger,
            pinned,
            repin_at: Instant::now() + REPIN_INTERVAL,
        };
        let task = tokio::spawn(run(socket, cfg, gateway, routes, Arc::clone(&shared), tx));
        Ok((
            Witness {
                gateway,
                shared,
                task,
            },
            rx,
        ))
    }

    /// The gateway being pinged now (resolved if the config said `auto`, and resolved
    /// again on every default-route change the kernel announces).
    pub fn gateway(&self) -> IpAddr {
        lock(&self.shared).gateway.unwrap_or(self.gateway)
    }

    /// The current verdict; `None` until the first one.
    pub fn reachable(&self) -> Option<bool> {
        lock(&self.shared).reachable
    }

    /// The round-trip time of the last answered echo, if any was answered.
    pub fn last_rtt(&self) -> Option<Duration> {
        lock(&self.shared).last_rtt
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The verdict to report after a result, if any: the first settled verdict, then
/// every change.
fn verdict_to_report(hysteresis: &Hysteresis, reported: Option<bool>) -> Option<bool> {
    let state = hysteresis.reachable();
    match reported {
        None if hysteresis.settled() => Some(state),
        Some(previous) if previous != state => Some(state),
        _ => None,
    }
}

/// The pinging task: one echo per tick, results through the hysteresis, verdicts
/// out as events.
async fn run(
    mut socket: Socket,
    cfg: WitnessConfig,
    mut gateway: IpAddr,
    routes: Option<(route::DefaultRouteWatch, mpsc::Receiver<()>)>,
    shared: Arc<Mutex<Shared>>,
    events: mpsc::Sender<WitnessEvent>,
) {
    let (_route_watch, mut route_changes) = match routes {
        Some((watch, rx)) => (Some(watch), Some(rx)),
        None => (None, None),
    };
    // Start "unreachable": the first verdict is then either a rise to reachable
    // or `fall` failures (see `verdict_to_report`).
    let mut hysteresis = Hysteresis::new(cfg.fall, cfg.rise, false);
    let mut reported = None;
    let mut last_failure = None;
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(()) = next_change(&mut route_changes) => {
                follow_default_route(&mut socket, &cfg, &mut gateway, &shared).await;
                continue;
            }
        }
        socket.repin_if_due(&cfg, gateway);
        let result = match socket.pinger.next_echo() {
            Ok(echo) => socket
                .pinger
                .echo(&echo, cfg.timeout)
                .await
                .map_err(|failure| (Some(echo.seq), failure)),
            Err(failure) => Err((None, failure)),
        };
        let rtt = match result {
            Ok(rtt) => {
                lock(&shared).last_rtt = Some(rtt);
                hysteresis.record(true);
                Some(rtt)
            }
            Err((seq, failure)) => {
                tracing::debug!(interface = %cfg.interface, %gateway, ?seq, %failure, "gateway echo lost");
                if matches!(failure, EchoFailure::Send(_)) {
                    socket.reopen(&cfg, gateway);
                }
                hysteresis.record(false);
                last_failure = Some(failure);
                None
            }
        };
        let Some(now_reachable) = verdict_to_report(&hysteresis, reported) else {
            continue;
        };
        reported = Some(now_reachable);
        lock(&shared).reachable = Some(now_reachable);
        let event = if now_reachable {
            let rtt = rtt.unwrap_or_default();
            tracing::info!(interface = %cfg.interface, %gateway, rtt_us = rtt.as_micros() as u64, "gateway reachable");
            WitnessEvent::Reachable { gateway, rtt }
        } else {
            let (_, lost) = hysteresis.consecutive();
            let mut reason = format!(
                "{lost} echoes to {gateway} unanswered (fall {} × {} ms)",
                hysteresis.fall(),
                cfg.interval.as_millis()
            );
            if let Some(failure) = &last_failure {
                reason.push_str(&format!("; last: {failure}"));
            }
            tracing::warn!(interface = %cfg.interface, %gateway, %reason, "gateway unreachable");
            // Our own source address may be gone (sends from it still succeed, replies
            // never come): bind again, which finds out.
            if socket.pinned && cfg.source.for_gateway(gateway).is_some() {
                socket.reopen(&cfg, gateway);
            }
            WitnessEvent::Unreachable { gateway, reason }
        };
        if let Err(mpsc::error::TrySendError::Full(event)) = events.try_send(event) {
            tracing::warn!(
                ?event,
                "witness event dropped: the daemon is not reading them"
            );
        }
    }
}

/// The next default-route change, or never without a watch (a configured address).
async fn next_change(changes: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// `gateway = "auto"` after a default-route change: resolves the gateway again and, if it
/// moved, pings the new one from now on (a fresh socket: the family may have changed). The
/// verdict carries over; the next echoes judge the new gateway. Without a default route
/// now, the old gateway stays (and is then likely to become unreachable, which is the
/// truth: the node has no way out).
async fn follow_default_route(
    socket: &mut Socket,
    cfg: &WitnessConfig,
    gateway: &mut IpAddr,
    shared: &Mutex<Shared>,
) {
    let fresh = match resolve_gateway(&cfg.interface).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(interface = %cfg.interface, gateway = %gateway, error = %e,
                "witness: the default route changed and none is left; still pinging the old gateway");
            return;
        }
    };
    if fresh == *gateway {
        return;
    }
    match open_pinger(&cfg.interface, fresh, cfg.source) {
        Ok((p, pinned)) => {
            tracing::info!(interface = %cfg.interface, old = %gateway, new = %fresh,
                "witness: the default route now goes via another gateway; pinging it");
            socket.pinger = p;
            socket.pinned = pinned;
            *gateway = fresh;
            lock(shared).gateway = Some(fresh);
        }
        Err(e) => tracing::warn!(interface = %cfg.interface, new = %fresh, error = %e,
            "witness: cannot open a socket for the new gateway; still pinging the old one"),
    }
}

/// How often a witness that could not bind the node's own source address (still
/// tentative during IPv6 DAD, or gone) tries it again.
const REPIN_INTERVAL: Duration = Duration::from_secs(5);

/// Opens the pinger bound to the node's own address for `gateway`'s family (`source`,
/// [`EchoSource`]). When the kernel refuses that address (`EADDRNOTAVAIL`: tentative
/// during DAD, or deleted since start), the echoes leave from the kernel's pick for now,
/// with a warning. Returns whether the pinger has the address it should have (`true` when
/// there is nothing to pin).
fn open_pinger(
    interface: &str,
    gateway: IpAddr,
    source: EchoSource,
) -> Result<(Pinger, bool), WitnessError> {
    match Pinger::open(interface, gateway, source) {
        Ok(p) => Ok((p, true)),
        Err(e) if e.address_unavailable() => {
            let own = source.for_gateway(gateway);
            tracing::warn!(interface, %gateway, own = ?own, error = %e,
                "witness: the node's own address cannot be bound now (tentative or gone); echoes leave from the kernel's pick until it can");
            Ok((
                Pinger::open(interface, gateway, EchoSource::default())?,
                false,
            ))
        }
        Err(e) => Err(e),
    }
}

/// The witness's socket and whether it is bound to the node's own address.
struct Socket {
    pinger: Pinger,
    /// Bound to `source.for_gateway(gateway)` (or nothing to bind).
    pinned: bool,
    /// While not pinned: when to try binding again.
    repin_at: Instant,
}

impl Socket {
    /// After a failed send, or an unreachable verdict: opens a fresh socket on the
    /// interface that now carries the name, bound to the own address if the kernel has it.
    /// The socket is bound to the interface with `SO_BINDTODEVICE`, which keeps the
    /// *index* it had; once the interface is deleted and created again (a network restart
    /// does that to VLANs and bonds) every send fails with `ENODEV` for good. While there
    /// is no such interface the old socket stays and the next failure tries again.
    fn reopen(&mut self, cfg: &WitnessConfig, gateway: IpAddr) {
        match open_pinger(&cfg.interface, gateway, cfg.source) {
            Ok((fresh, pinned)) => {
                self.pinger = fresh;
                self.pinned = pinned;
            }
            Err(e) => {
                tracing::debug!(interface = %cfg.interface, error = %e, "cannot reopen the ICMP socket yet")
            }
        }
    }

    /// Not pinned and [`REPIN_INTERVAL`] passed: tries the own address again.
    fn repin_if_due(&mut self, cfg: &WitnessConfig, gateway: IpAddr) {
        let now = Instant::now();
        if self.pinned || now < self.repin_at {
            return;
        }
        self.repin_at = now + REPIN_INTERVAL;
        if let Ok(p) = Pinger::open(&cfg.interface, gateway, cfg.source) {
            tracing::info!(interface = %cfg.interface, %gateway, "witness: echoes leave from the node's own address again");
            self.pinger = p;
            self.pinned = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_verdict_after_rise_successes() {
        let mut h = Hysteresis::new(3, 2, false);
        h.record(true);
        assert_eq!(verdict_to_report(&h, None), None);
        h.record(true);
        assert_eq!(verdict_to_report(&h, None), Some(true));
    }

    #[test]
    fn first_verdict_after_fall_failures() {
        let mut h = Hysteresis::new(3, 2, false);
        h.record(false);
        h.record(false);
        assert_eq!(verdict_to_report(&h, None), None);
        h.record(false);
        assert_eq!(verdict_to_report(&h, None), Some(false));
        // Already reported: more failures say nothing.
        h.record(false);
        assert_eq!(verdict_to_report(&h, Some(false)), None);
    }

    #[test]
    fn later_verdicts_only_on_change() {
        let mut h = Hysteresis::new(3, 2, false);
        h.record(true);
        h.record(true);
        assert_eq!(verdict_to_report(&h, Some(true)), None);
        h.record(false);
        h.record(false);
        assert_eq!(verdict_to_report(&h, Some(true)), None);
        h.record(false);
        assert_eq!(verdict_to_report(&h, Some(true)), Some(false));
    }

    /// The daemon spawns these onto a multi-threaded runtime.
    #[test]
    fn handles_and_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Witness>();
        send_sync::<WitnessEvent>();
        send(&Witness::spawn(WitnessConfig::new("eth0", Gateway::Auto)));
        send(&resolve_gateway("eth0"));
    }

    #[tokio::test]
    async fn zero_interval_is_rejected() {
        let mut cfg = WitnessConfig::new("lo", Gateway::Addr(Ipv4Addr::LOCALHOST.into()));
        cfg.interval = Duration::ZERO;
        let e = Witness::spawn(cfg).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "witness on interface lo: interval must be greater than zero"
        );
    }
}
