//! The peer table: per peer, its accepted connections (outbound and inbound, the newest one
//! sends), what fast contact knows (when we last heard it), and the state the tasks share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use quinn::VarInt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::reject_log::{self, LogDecision, RejectLog};
use super::tls::TlsContext;
use super::{
    PeerSpec, RejectKind, TransportEvent, CLOSE_RECONFIGURED, CLOSE_REPLACED, CLOSE_SHUTDOWN,
    EVENT_RESERVE,
};

pub(super) fn redial_ms(interval: Duration) -> u64 {
    if interval.is_zero() {
        0
    } else {
        u64::try_from(interval.max(MIN_REDIAL).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Shortest redial interval of fast contact: a peer's first answer to a dial takes a few
/// milliseconds, but a debug build on two busy cores needs tens.
pub(super) const MIN_REDIAL: Duration = Duration::from_millis(100);

/// Stops everything when the last [`Transport`] clone goes away.
pub(super) struct Handle {
    pub(super) shared: Arc<Shared>,
    pub(super) local_addr: SocketAddr,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// State shared by the handle and the tasks.
pub(super) struct Shared {
    pub(super) endpoint: quinn::Endpoint,
    /// What each connection's TLS configuration is built from; replaced when certificates
    /// are reloaded.
    pub(super) tls: Mutex<Arc<TlsContext>>,
    /// Per peer: its spec and what fast contact knows, same order as `links`; replaced
    /// (index by index) by [`Transport::set_peers`]. Lock order: `links` before `contact`.
    pub(super) contact: Mutex<Vec<Arc<Contact>>>,
    pub(super) links: Mutex<Vec<Link>>,
    pub(super) events: mpsc::Sender<TransportEvent>,
    pub(super) shutdown: watch::Sender<bool>,
    pub(super) logged: Mutex<RejectLog>,
    pub(super) next_seq: AtomicU64,
    /// What `Contact::heard_ms` counts from.
    pub(super) base: std::time::Instant,
    /// Fast contact's redial interval in ms; 0: off (exponential backoff only).
    pub(super) redial_ms: AtomicU64,
    /// The last advert broadcast (its v1 copy when it had one, else the v2 datagram): a
    /// doctor probe gets a copy (to compare fingerprints).
    pub(super) last_advert: Mutex<Option<Bytes>>,
}

/// One configured peer: its spec, what fast contact knows about it, and whether a reload
/// has retired it (its dial loop then ends).
pub(super) struct Contact {
    /// Who the peer is and where to dial it.
    pub(super) spec: PeerSpec,
    /// Set when a reload removed or changed this peer.
    pub(super) retired: watch::Sender<bool>,
    /// When a datagram from this peer last arrived (or a connection to it was accepted), in
    /// ms since `Shared::base`.
    pub(super) heard_ms: AtomicU64,
    /// Set by [`Transport::redial_now`]; the dial loop takes it.
    pub(super) kick: tokio::sync::Notify,
    /// Set when this node's certificate changed: the dial loop dials beside the live
    /// outbound connection once, so the peer sees the new certificate.
    pub(super) refresh: std::sync::atomic::AtomicBool,
    /// Wakes the dial loop for `refresh`.
    pub(super) refresh_kick: tokio::sync::Notify,
}

impl Contact {
    pub(super) fn new(spec: PeerSpec) -> Arc<Contact> {
        Arc::new(Contact {
            spec,
            retired: watch::channel(false).0,
            heard_ms: AtomicU64::default(),
            kick: tokio::sync::Notify::new(),
            refresh: std::sync::atomic::AtomicBool::default(),
            refresh_kick: tokio::sync::Notify::new(),
        })
    }

    pub(super) fn is_retired(&self) -> bool {
        *self.retired.borrow()
    }
}

/// Resolves when the transport stops or a reload retires `contact`.
pub(super) async fn ended(shared: &Shared, contact: &Contact) {
    let mut rx = contact.retired.subscribe();
    tokio::select! {
        () = stopped(shared) => {}
        _ = rx.wait_for(|r| *r) => {}
    }
}

#[derive(Default)]
pub(super) struct Link {
    pub(super) outbound: Option<Live>,
    pub(super) inbound: Option<Live>,
}

impl Link {
    /// The most recently accepted connection.
    pub(super) fn best(&self) -> Option<&Live> {
        match (&self.outbound, &self.inbound) {
            (Some(o), Some(i)) => Some(if i.seq > o.seq { i } else { o }),
            (o, i) => o.as_ref().or(i.as_ref()),
        }
    }

    pub(super) fn slot(&mut self, dir: Dir) -> &mut Option<Live> {
        match dir {
            Dir::Outbound => &mut self.outbound,
            Dir::Inbound => &mut self.inbound,
        }
    }
}

/// An accepted connection.
pub(super) struct Live {
    pub(super) conn: quinn::Connection,
    pub(super) seq: u64,
    /// Datagram send-buffer space of the idle connection, to tell when it has drained.
    pub(super) idle_space: usize,
    /// The wire version negotiated by ALPN (1 or 2, [`super::tls::negotiated_version`]).
    pub(super) version: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Outbound,
    Inbound,
}

impl Shared {
    pub(super) fn lock_links(&self) -> MutexGuard<'_, Vec<Link>> {
        // A panic while holding the lock cannot leave the links inconsistent in a way that
        // matters more than stopping would; keep going with the data.
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn stop(&self) {
        self.shutdown.send_replace(true);
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutting down");
    }

    pub(super) fn stopped(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Emits an event unless the channel is nearly full (`Up`/`Down` may use the reserve).
    pub(super) fn emit(&self, event: TransportEvent) {
        let reserved = matches!(
            event,
            TransportEvent::Up { .. } | TransportEvent::Down { .. }
        );
        if !reserved && self.events.capacity() <= EVENT_RESERVE {
            debug!(?event, "event channel full; dropping event");
            return;
        }
        if let Err(e) = self.events.try_send(event) {
            debug!(error = %e, "event not delivered");
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock_contact(&self) -> MutexGuard<'_, Vec<Arc<Contact>>> {
        self.contact.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Peer number `peer` as configured now.
    pub(super) fn contact(&self, peer: usize) -> Option<Arc<Contact>> {
        self.lock_contact().get(peer).cloned()
    }

    /// Every peer as configured now (indices as in events).
    pub(super) fn contacts(&self) -> Vec<Arc<Contact>> {
        self.lock_contact().clone()
    }

    /// The peer's name and address, for log lines.
    pub(super) fn describe(&self, peer: usize) -> String {
        self.contact(peer)
            .map_or_else(|| format!("peer #{peer}"), |c| c.spec.describe())
    }

    pub(super) fn heard(&self, peer: usize) {
        if let Some(c) = self.contact(peer) {
            c.heard_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// How long since a datagram from `peer` arrived.
    pub(super) fn silent_for(&self, peer: usize) -> Duration {
        let heard = self
            .contact(peer)
            .map_or(0, |c| c.heard_ms.load(Ordering::Relaxed));
        Duration::from_millis(self.now_ms().saturating_sub(heard))
    }

    /// Fast contact's redial interval, if on.
    pub(super) fn redial(&self) -> Option<Duration> {
        match self.redial_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub(super) fn tls(&self) -> Arc<TlsContext> {
        Arc::clone(&self.tls.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn reject_log(&self) -> MutexGuard<'_, RejectLog> {
        self.logged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs a rejection at WARN once per (source IP, kind), within the bounds of
    /// [`RejectLog`], and always emits the event.
    pub(super) fn reject(&self, source: SocketAddr, kind: RejectKind, reason: String) {
        let decision = self
            .reject_log()
            .decide(std::time::Instant::now(), source.ip(), kind);
        match decision {
            LogDecision::Warn => warn!(%source, %kind, %reason, "rejected a connection"),
            LogDecision::Repeat => {
                debug!(%source, %kind, %reason, "rejected a connection (again)");
            }
            LogDecision::Counted => {
                debug!(%source, %kind, %reason, "rejected a connection (counted for the summary)");
            }
        }
        self.emit(TransportEvent::Rejected {
            source,
            kind,
            reason,
        });
    }

    /// Records an accepted connection to `contact`, peer number `peer`; emits `Up` if it
    /// is the peer's first. `None` (and the connection closed) when a reload has retired
    /// that peer meanwhile.
    pub(super) fn register(
        &self,
        peer: usize,
        contact: &Arc<Contact>,
        dir: Dir,
        conn: &quinn::Connection,
    ) -> Option<u64> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut links = self.lock_links();
        let current = self.contact(peer).is_some_and(|c| Arc::ptr_eq(&c, contact));
        let Some(link) = links.get_mut(peer).filter(|_| current) else {
            conn.close(VarInt::from_u32(CLOSE_RECONFIGURED), b"peer reconfigured");
            return None;
        };
        let was_up = link.best().is_some();
        self.heard(peer);
        let version = super::tls::negotiated_version(conn);
        let live = Live {
            conn: conn.clone(),
            seq,
            idle_space: conn.datagram_send_buffer_space(),
            version,
        };
        if let Some(old) = link.slot(dir).replace(live) {
            old.conn.close(
                VarInt::from_u32(CLOSE_REPLACED),
                b"replaced by a newer connection",
            );
        }
        info!(peer = %contact.spec.describe(), remote = %conn.remote_address(), ?dir, wire_version = version, "connection accepted");
        if !was_up {
            self.emit(TransportEvent::Up {
                peer,
                remote: conn.remote_address(),
            });
        }
        Some(seq)
    }

    /// Forgets a closed connection; emits `Down` if it was the peer's last.
    pub(super) fn unregister(&self, peer: usize, dir: Dir, seq: u64, reason: &str) {
        let mut links = self.lock_links();
        let Some(link) = links.get_mut(peer) else {
            return;
        };
        let slot = link.slot(dir);
        if slot.as_ref().is_some_and(|l| l.seq == seq) {
            *slot = None;
            info!(peer = %self.describe(peer), ?dir, %reason, "connection closed");
            if link.best().is_none() {
                self.emit(TransportEvent::Down {
                    peer,
                    reason: reason.to_string(),
                });
            }
        }
    }
}

/// Logs the summary of rejections that were only counted, once per period.
pub(super) async fn summary_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(reject_log::SUMMARY_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&shared) => break,
            _ = tick.tick() => {}
        }
        let summary = shared.reject_log().summary(std::time::Instant::now());
        if let Some(summary) = summary {
            warn!(%summary, "rejected connections (summary)");
        }
    }
}

/// Resolves when the transport is told to stop.
pub(super) async fn stopped(shared: &Shared) {
    let mut rx = shared.shutdown.subscribe();
    let _ = rx.wait_for(|stop| *stop).await;
}
