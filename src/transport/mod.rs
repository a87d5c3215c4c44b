//! The links between nodes: one QUIC endpoint, mutual TLS, unreliable datagrams.
//!
//! Adverts are small, periodic and only the latest one matters, so they travel as QUIC
//! datagrams (no retransmission, no head-of-line blocking) over connections that are
//! mutually authenticated with the cluster CA ([`tls`]).
//!
//! Each node dials every configured peer (redialling with exponential backoff) and accepts
//! inbound connections on the same endpoint, so a pair of nodes normally has two connections.
//!
//! Fast contact ([`TransportConfig::redial_interval`], which the daemon turns on): a peer we
//! have not heard a datagram from for two redial intervals is dialled again, every redial
//! interval, even while its old connection still looks alive to QUIC (that one is replaced
//! when the new one is accepted). A dial the peer does not answer at all within the interval
//! is abandoned and made afresh, so the first Initial after a partition heals goes out at
//! most one interval later instead of at quinn's backed-off retransmission (~1 s for a first
//! Initial); only a peer that answers but rejects us backs off, up to 2 s.
//! [`Transport::redial_now`] starts that dial at once.
//! A connection is *accepted* only after haagent's own identity check, on top of TLS:
//!
//! - inbound: the client's certificate (already verified against the CA by rustls) must carry
//!   the DNS name of a configured named peer, or, for a peer configured only by address
//!   ("quick mode"), that peer's IP address. Otherwise the connection is closed with
//!   [`CLOSE_UNKNOWN_PEER`] and a [`TransportEvent::Rejected`] is emitted. An accepted
//!   connection gets a short confirmation on a unidirectional stream.
//! - outbound: rustls checked the server certificate against the CA and the configured name
//!   (or IP). Because in TLS 1.3 the client's handshake completes before the server has
//!   judged the client's certificate, an outbound connection counts as accepted only when the
//!   server's confirmation arrives; a server that rejects us closes the connection instead,
//!   which is reported as [`TransportEvent::Rejected`].
//!
//! Every rejection carries a [`RejectKind`], decided from typed errors (`reject.rs`,
//! `verify.rs`), and is logged at WARN once per source and kind within a bounded table; a
//! flood from many sources is summarised (`reject_log.rs`).
//!
//! Datagrams are read only from accepted connections. Sending uses one connection per peer:
//! the most recently accepted one. Normally that is whichever of the two came up last; after a
//! peer restarts, it is the new connection, not the old one that looks alive until the idle
//! timeout.
//!
//! Nothing here blocks the caller: all work runs in tokio tasks that end when
//! [`Transport::close`] is called or the last [`Transport`] handle is dropped. Events are
//! delivered with `try_send` on a bounded channel; when the daemon falls behind, datagrams
//! and rejections are dropped first (a reserve is kept for `Up`/`Down`).

mod congestion;
mod probe;
mod reject;
mod reject_log;
pub mod tls;
mod verify;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use quinn::{ConnectionError, VarInt};
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::certs::{self, NodeIdentity};
use reject_log::{LogDecision, RejectLog};
use tls::TlsContext;
use verify::{Refusal, Verdict};

pub use probe::{probe, ProbeAnswer, ProbeError, DOCTOR_ALPN};
pub use reject::RejectKind;
pub use tls::{client_config, server_config, ALPN};

/// Application close code: the certificate matches no configured peer.
pub const CLOSE_UNKNOWN_PEER: u32 = 0x10;
/// Application close code: replaced by a newer connection from the same peer.
pub const CLOSE_REPLACED: u32 = 0x11;
/// Application close code: the node shuts down.
pub const CLOSE_SHUTDOWN: u32 = 0x0;

const ACCEPTED: &[u8] = b"haagent accepted";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// [`TransportConfig::redial_interval`] in whole ms, at least [`MIN_REDIAL`]; 0 = off.
fn redial_ms(interval: Duration) -> u64 {
    if interval.is_zero() {
        0
    } else {
        u64::try_from(interval.max(MIN_REDIAL).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Shortest redial interval of fast contact: a peer's first answer to a dial takes a few
/// milliseconds, but a debug build on two busy cores needs tens.
const MIN_REDIAL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const EVENT_CAPACITY: usize = 1024;
/// Channel slots kept free for `Up`/`Down` events.
const EVENT_RESERVE: usize = 64;
/// Most bytes of a peer's close reason quoted in a log line (it is the peer's text).
const MAX_QUOTED_REASON: usize = 160;
/// How long [`Transport::close`] waits for queued datagrams to leave, and then for the
/// connections to close.
const FLUSH_BOUND: Duration = Duration::from_millis(100);
const CLOSE_BOUND: Duration = Duration::from_millis(200);

/// A configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's node name, which must be a DNS name in its certificate. `None` ("quick
    /// mode"): the peer is recognised by its address, which must be an IP address in its
    /// certificate.
    pub name: Option<String>,
    /// Where to dial the peer.
    pub addr: SocketAddr,
}

impl PeerSpec {
    /// The TLS server name we dial: the node name, or the IP address in quick mode.
    pub(crate) fn server_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.addr.ip().to_string(),
        }
    }

    /// Whether a certificate with these DNS names and IP addresses identifies this peer.
    ///
    /// Names compare byte for byte, case-sensitively, as the election compares the name in
    /// an advert with the certificate's names: a certificate for `N2` is not peer `n2` (DNS
    /// names are case-insensitive in TLS name checks, RFC 6125 §6.4.1, but node names are
    /// identities here, and one rule must hold everywhere).
    fn matches(&self, names: &[String], ips: &[IpAddr]) -> bool {
        match &self.name {
            Some(n) => names.iter().any(|c| c == n),
            None => {
                let want = self.addr.ip().to_canonical();
                ips.iter().any(|ip| ip.to_canonical() == want)
            }
        }
    }

    fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.addr),
            None => self.addr.to_string(),
        }
    }
}

/// What the transport needs to run.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Local UDP address for the QUIC endpoint (server and client).
    pub listen: SocketAddr,
    /// The peers; events refer to them by index in this list.
    pub peers: Vec<PeerSpec>,
    /// This node's certificates and key.
    pub identity: Arc<NodeIdentity>,
    /// Fast contact (see the module doc): a peer silent for two of these is redialled every
    /// one (at least 100 ms) until it answers; `Duration::ZERO` = off (exponential backoff
    /// only). The daemon passes two advert intervals. Part of the config, not a setter, so
    /// that the very first dial already uses it.
    pub redial_interval: Duration,
}

/// What the transport reports to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// A datagram from an accepted connection.
    Datagram {
        /// Index of the sending peer in [`TransportConfig::peers`].
        peer: usize,
        /// DNS names of the peer's certificate.
        names: Vec<String>,
        /// The datagram's bytes.
        payload: Bytes,
    },
    /// A handshake or identity check failed (in either direction). Logged at WARN once per
    /// source IP and kind (bounded, see `reject_log.rs`); the event is emitted every time,
    /// for counting.
    Rejected {
        /// The remote address.
        source: SocketAddr,
        /// Why, as a class (metric label: [`RejectKind::label`]).
        kind: RejectKind,
        /// Why, in words (for people; may quote the peer's close reason).
        reason: String,
    },
    /// The first accepted connection to this peer is up.
    Up {
        /// Index of the peer.
        peer: usize,
        /// The peer's address as seen on that connection.
        remote: SocketAddr,
    },
    /// The last accepted connection to this peer closed.
    Down {
        /// Index of the peer.
        peer: usize,
        /// Why the connection closed.
        reason: String,
    },
}

/// Link state of one peer, see [`Transport::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerLinkStats {
    /// Whether an accepted connection exists.
    pub connected: bool,
    /// QUIC's smoothed round-trip time on the connection used for sending.
    pub rtt: Option<Duration>,
    /// The peer's address on that connection.
    pub remote: Option<SocketAddr>,
    /// When the peer's certificate on that connection expires.
    pub cert_not_after: Option<std::time::SystemTime>,
}

/// Errors starting the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot listen on UDP {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why, with a hint.
        reason: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificates could not be turned into a TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// Another configuration problem.
    #[error("transport configuration: {0}")]
    Config(String),
}

/// Handle on the running transport; cheap to clone. Dropping the last handle stops it.
#[derive(Clone)]
pub struct Transport {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

/// Stops everything when the last [`Transport`] clone goes away.
struct Handle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// State shared by the handle and the tasks.
struct Shared {
    endpoint: quinn::Endpoint,
    /// What each connection's TLS configuration is built from; replaced when certificates
    /// are reloaded.
    tls: Mutex<Arc<TlsContext>>,
    peers: Vec<PeerSpec>,
    links: Mutex<Vec<Link>>,
    events: mpsc::Sender<TransportEvent>,
    shutdown: watch::Sender<bool>,
    logged: Mutex<RejectLog>,
    next_seq: AtomicU64,
    /// Per peer, same order as `peers`.
    contact: Vec<Contact>,
    /// What `Contact::heard_ms` counts from.
    base: std::time::Instant,
    /// Fast contact's redial interval in ms; 0: off (exponential backoff only).
    redial_ms: AtomicU64,
    /// The last advert broadcast: a doctor probe gets a copy (to compare fingerprints).
    last_advert: Mutex<Option<Bytes>>,
}

/// What fast contact knows about one peer.
#[derive(Default)]
struct Contact {
    /// When a datagram from this peer last arrived (or a connection to it was accepted), in
    /// ms since `Shared::base`.
    heard_ms: AtomicU64,
    /// Set by [`Transport::redial_now`]; the dial loop takes it.
    kick: tokio::sync::Notify,
}

#[derive(Default)]
struct Link {
    outbound: Option<Live>,
    inbound: Option<Live>,
}

impl Link {
    /// The most recently accepted connection.
    fn best(&self) -> Option<&Live> {
        match (&self.outbound, &self.inbound) {
            (Some(o), Some(i)) => Some(if i.seq > o.seq { i } else { o }),
            (o, i) => o.as_ref().or(i.as_ref()),
        }
    }

    fn slot(&mut self, dir: Dir) -> &mut Option<Live> {
        match dir {
            Dir::Outbound => &mut self.outbound,
            Dir::Inbound => &mut self.inbound,
        }
    }
}

/// An accepted connection.
struct Live {
    conn: quinn::Connection,
    seq: u64,
    /// Datagram send-buffer space of the idle connection, to tell when it has drained.
    idle_space: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Outbound,
    Inbound,
}

impl Transport {
    /// Binds the QUIC endpoint on `cfg.listen` and starts dialling the peers and accepting
    /// connections. Events arrive on the returned receiver.
    pub async fn start(
        cfg: TransportConfig,
    ) -> Result<(Transport, mpsc::Receiver<TransportEvent>), TransportError> {
        let socket =
            std::net::UdpSocket::bind(cfg.listen).map_err(|e| bind_error(cfg.listen, e))?;
        Self::start_with_socket(cfg, socket).await
    }

    /// Like [`Transport::start`], on an already bound UDP socket (`cfg.listen` is ignored).
    /// Lets tests (and socket activation) know every node's port before starting any.
    pub async fn start_with_socket(
        cfg: TransportConfig,
        socket: std::net::UdpSocket,
    ) -> Result<(Transport, mpsc::Receiver<TransportEvent>), TransportError> {
        for p in &cfg.peers {
            if let Some(name) = &p.name {
                certs::validate_node_name(name)
                    .map_err(|e| TransportError::Config(format!("peer {}: {e}", p.addr)))?;
            }
        }
        let tls = TlsContext::new(&cfg.identity)?;
        // The endpoint's own server configuration is never used for a handshake (each
        // inbound connection gets its own, see `handle_inbound`), but without one quinn
        // refuses every inbound connection.
        let (server, _) = tls.server()?;
        let addr = socket.local_addr().map_err(|e| bind_error(cfg.listen, e))?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| TransportError::Config("no tokio runtime is running".to_string()))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )
        .map_err(|e| bind_error(addr, e))?;
        let local_addr = endpoint.local_addr().map_err(|e| bind_error(addr, e))?;

        let (events, rx) = mpsc::channel(EVENT_CAPACITY);
        let (shutdown, _) = watch::channel(false);
        let redial_interval = cfg.redial_interval;
        let shared = Arc::new(Shared {
            endpoint,
            tls: Mutex::new(Arc::new(tls)),
            links: Mutex::new(cfg.peers.iter().map(|_| Link::default()).collect()),
            contact: cfg.peers.iter().map(|_| Contact::default()).collect(),
            peers: cfg.peers,
            events,
            shutdown,
            logged: Mutex::new(RejectLog::new(std::time::Instant::now())),
            next_seq: AtomicU64::new(1),
            base: std::time::Instant::now(),
            redial_ms: AtomicU64::new(redial_ms(redial_interval)),
            last_advert: Mutex::new(None),
        });
        tokio::spawn(accept_loop(Arc::clone(&shared)));
        tokio::spawn(summary_loop(Arc::clone(&shared)));
        for peer in 0..shared.peers.len() {
            tokio::spawn(dial_loop(Arc::clone(&shared), peer));
        }
        info!(%local_addr, peers = shared.peers.len(), "transport listening");
        Ok((
            Transport {
                handle: Arc::new(Handle { shared, local_addr }),
            },
            rx,
        ))
    }

    /// Uses a new certificate and key (and CA) for every connection from now on; live
    /// connections keep the identity they were authenticated with.
    pub fn reload_identity(&self, identity: &NodeIdentity) -> Result<(), TransportError> {
        let tls = TlsContext::new(identity)?;
        let (server, _) = tls.server()?;
        let shared = &self.handle.shared;
        shared.endpoint.set_server_config(Some(server));
        *shared.tls.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(tls);
        Ok(())
    }

    /// Proof that the path to `peer` (an index in [`TransportConfig::peers`]) works again,
    /// such as a frame from its MAC: with fast contact on, dial it now if we have not heard
    /// it for a redial interval, abandoning a dial that has had no answer yet. A peer that
    /// rejected us keeps its backoff. Calls faster than the dial loop can act coalesce.
    pub fn redial_now(&self, peer: usize) {
        if let Some(c) = self.handle.shared.contact.get(peer) {
            c.kick.notify_one();
        }
    }

    /// The bound UDP address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr
    }

    /// Sends `payload` as an unreliable datagram to every peer with an accepted connection.
    /// Never blocks; failures are logged at debug level (the next advert follows anyway).
    pub fn broadcast(&self, payload: Bytes) {
        let shared = &self.handle.shared;
        if let Ok(mut last) = shared.last_advert.lock() {
            *last = Some(payload.clone());
        }
        let links = shared.lock_links();
        for (peer, link) in links.iter().enumerate() {
            if let Some(live) = link.best() {
                if let Err(e) = live.conn.send_datagram(payload.clone()) {
                    debug!(peer = %shared.peers[peer].describe(), error = %e, "datagram not sent");
                }
            }
        }
    }

    /// Per peer (same order as the configuration): connected, RTT and remote address of the
    /// connection used for sending.
    pub fn stats(&self) -> Vec<PeerLinkStats> {
        let links = self.handle.shared.lock_links();
        links
            .iter()
            .map(|link| match link.best() {
                Some(live) => PeerLinkStats {
                    connected: true,
                    rtt: Some(live.conn.rtt()),
                    remote: Some(live.conn.remote_address()),
                    cert_not_after: peer_not_after(&live.conn),
                },
                None => PeerLinkStats::default(),
            })
            .collect()
    }

    /// Closes gracefully: waits (at most ~100 ms) until datagrams already queued, such as a
    /// final priority-0 advert, have left, closes every connection, stops all tasks, and
    /// waits (at most 200 ms) for the peers to acknowledge the close.
    ///
    /// The UDP port is released when quinn has finished draining the connections, which
    /// for a dial still in its handshake takes a few seconds after `close` returns; a new
    /// transport in the same process on the same port must retry its bind (a new process
    /// is not affected).
    pub async fn close(&self) {
        let shared = &self.handle.shared;
        let deadline = tokio::time::Instant::now() + FLUSH_BOUND;
        loop {
            let pending = {
                let links = shared.lock_links();
                let pending = links
                    .iter()
                    .flat_map(|l| [&l.outbound, &l.inbound])
                    .flatten()
                    .any(|l| {
                        l.conn.close_reason().is_none()
                            && l.conn.datagram_send_buffer_space() < l.idle_space
                    });
                pending
            };
            if !pending || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        shared.stop();
        let _ = tokio::time::timeout(CLOSE_BOUND, shared.endpoint.wait_idle()).await;
    }
}

impl Shared {
    fn lock_links(&self) -> MutexGuard<'_, Vec<Link>> {
        // A panic while holding the lock cannot leave the links inconsistent in a way that
        // matters more than stopping would; keep going with the data.
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop(&self) {
        self.shutdown.send_replace(true);
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutting down");
    }

    fn stopped(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Emits an event unless the channel is nearly full (`Up`/`Down` may use the reserve).
    fn emit(&self, event: TransportEvent) {
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

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn heard(&self, peer: usize) {
        if let Some(c) = self.contact.get(peer) {
            c.heard_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// How long since a datagram from `peer` arrived.
    fn silent_for(&self, peer: usize) -> Duration {
        let heard = self
            .contact
            .get(peer)
            .map_or(0, |c| c.heard_ms.load(Ordering::Relaxed));
        Duration::from_millis(self.now_ms().saturating_sub(heard))
    }

    /// Fast contact's redial interval, if on.
    fn redial(&self) -> Option<Duration> {
        match self.redial_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    fn tls(&self) -> Arc<TlsContext> {
        Arc::clone(&self.tls.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn reject_log(&self) -> MutexGuard<'_, RejectLog> {
        self.logged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs a rejection at WARN once per (source IP, kind), within the bounds of
    /// [`RejectLog`], and always emits the event.
    fn reject(&self, source: SocketAddr, kind: RejectKind, reason: String) {
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

    /// Records an accepted connection; emits `Up` if it is the peer's first.
    fn register(&self, peer: usize, dir: Dir, conn: &quinn::Connection) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut links = self.lock_links();
        let Some(link) = links.get_mut(peer) else {
            return seq;
        };
        let was_up = link.best().is_some();
        self.heard(peer);
        let live = Live {
            conn: conn.clone(),
            seq,
            idle_space: conn.datagram_send_buffer_space(),
        };
        if let Some(old) = link.slot(dir).replace(live) {
            old.conn.close(
                VarInt::from_u32(CLOSE_REPLACED),
                b"replaced by a newer connection",
            );
        }
        info!(peer = %self.peers[peer].describe(), remote = %conn.remote_address(), ?dir, "connection accepted");
        if !was_up {
            self.emit(TransportEvent::Up {
                peer,
                remote: conn.remote_address(),
            });
        }
        seq
    }

    /// Forgets a closed connection; emits `Down` if it was the peer's last.
    fn unregister(&self, peer: usize, dir: Dir, seq: u64, reason: &str) {
        let mut links = self.lock_links();
        let Some(link) = links.get_mut(peer) else {
            return;
        };
        let slot = link.slot(dir);
        if slot.as_ref().is_some_and(|l| l.seq == seq) {
            *slot = None;
            info!(peer = %self.peers[peer].describe(), ?dir, %reason, "connection closed");
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
async fn summary_loop(shared: Arc<Shared>) {
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
async fn stopped(shared: &Shared) {
    let mut rx = shared.shutdown.subscribe();
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn accept_loop(shared: Arc<Shared>) {
    loop {
        let incoming = tokio::select! {
            _ = stopped(&shared) => break,
            incoming = shared.endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        tokio::spawn(handle_inbound(Arc::clone(&shared), incoming));
    }
    debug!("accept loop ended");
}

async fn handle_inbound(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    // This connection's own TLS configuration, so its verifier can say why it refused.
    let (server, verdict) = match shared.tls().server() {
        Ok(s) => s,
        Err(e) => {
            warn!(%remote, error = %e, "cannot build the TLS configuration for an inbound connection");
            incoming.refuse();
            return;
        }
    };
    let connecting = match incoming.accept_with(Arc::new(server)) {
        Ok(c) => c,
        Err(e) => {
            debug!(%remote, error = %e, "inbound connection not accepted");
            return;
        }
    };
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(ConnectionError::TimedOut | ConnectionError::LocallyClosed)) | Err(_) => {
            debug!(%remote, "inbound handshake did not complete");
            return;
        }
        Ok(Err(e)) if is_certificate_failure(&e) => {
            let (kind, reason) = handshake_rejection(&e, verdict.take());
            shared.reject(remote, kind, reason);
            return;
        }
        Ok(Err(e)) => {
            // A dialler that gives up mid-handshake (it is shutting down, say) is not a
            // rejection: nothing about its certificate was judged.
            debug!(%remote, reason = %close_words(&e), "inbound handshake abandoned");
            return;
        }
    };
    let (names, ips) = match peer_names(&conn) {
        Ok(n) => n,
        Err((kind, reason)) => {
            conn.close(
                VarInt::from_u32(CLOSE_UNKNOWN_PEER),
                b"unusable certificate",
            );
            shared.reject(remote, kind, reason);
            return;
        }
    };
    let Some(peer) = match_peer(&shared.peers, &names, &ips, remote) else {
        conn.close(
            VarInt::from_u32(CLOSE_UNKNOWN_PEER),
            b"certificate matches no configured peer",
        );
        shared.reject(
            remote,
            RejectKind::UnknownPeer,
            format!(
                "certificate names {names:?} (IP addresses {}) match no configured peer",
                ips_words(&ips)
            ),
        );
        return;
    };
    // The doctor's probe (its own ALPN): confirmed and closed, never a peer connection.
    if probe::is_probe(&conn) {
        debug!(peer = %shared.peers[peer].describe(), %remote, "doctor probe answered");
        let advert = shared.last_advert.lock().ok().and_then(|a| a.clone());
        probe::answer(conn, advert, HANDSHAKE_TIMEOUT).await;
        return;
    }
    // Tell the client it is accepted (see the module doc).
    let confirmed = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
        stream
            .write_all(ACCEPTED)
            .await
            .map_err(|e| e.to_string())?;
        stream.finish().map_err(|e| e.to_string())
    })
    .await;
    match confirmed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(%remote, error = %e, "could not confirm an inbound connection");
            return;
        }
        Err(_) => {
            debug!(%remote, "could not confirm an inbound connection in time");
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"confirmation timed out");
            return;
        }
    }
    let seq = shared.register(peer, Dir::Inbound, &conn);
    let reason = read_loop(&shared, peer, names, &conn).await;
    shared.unregister(peer, Dir::Inbound, seq, &reason);
}

/// Forwards datagrams of an accepted connection until it closes; returns why it closed.
async fn read_loop(
    shared: &Shared,
    peer: usize,
    names: Vec<String>,
    conn: &quinn::Connection,
) -> String {
    loop {
        tokio::select! {
            _ = stopped(shared) => return "shutting down".to_string(),
            r = conn.read_datagram() => match r {
                Ok(payload) => {
                    shared.heard(peer);
                    shared.emit(TransportEvent::Datagram {
                        peer,
                        names: names.clone(),
                        payload,
                    });
                }
                Err(e) => return close_words(&e),
            },
        }
    }
}

/// How a dial attempt failed.
enum DialError {
    /// An identity problem (either side refused the other's certificate).
    Rejected(RejectKind, String),
    /// Fast contact: the peer did not answer at all within the redial interval (it is
    /// unreachable, or our Initial was lost); dialled afresh at once.
    NoAnswer,
    /// Anything else (peer down, timeout, ...): retried quietly.
    Other(String),
}

/// What ended the wait on our accepted outbound connection.
enum Wake {
    /// It closed.
    Closed,
    /// Fast contact: the peer has been silent too long; dial beside it.
    Silent,
}

/// Dials `peer` for as long as the transport runs; see the module doc for fast contact.
///
/// Without fast contact: after every outcome, a pause that doubles from 100 ms to 2 s (reset
/// by an accepted connection). With it: a dial with no answer is made again at once (it took
/// a redial interval), other failures pause at most a redial interval, and only a rejection
/// keeps the full backoff, so a peer that refuses us sees at most one handshake per 2 s.
async fn dial_loop(shared: Arc<Shared>, peer: usize) {
    let mut backoff = MIN_BACKOFF;
    let addr = shared.peers[peer].addr;
    let kick = &shared.contact[peer].kick;
    // The read task of our most recent accepted outbound connection.
    let mut outbound: Option<tokio::task::JoinHandle<()>> = None;
    while !shared.stopped() {
        if let Some(task) = outbound.as_mut() {
            let wake = tokio::select! {
                _ = stopped(&shared) => break,
                w = watch_outbound(&shared, peer, task) => w,
            };
            if let Wake::Closed = wake {
                outbound = None;
                if !pause(&shared, peer, backoff, true).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        let fast = shared.redial();
        let answered = std::sync::atomic::AtomicBool::new(false);
        let started = std::time::Instant::now();
        let attempt = dial_once(&shared, peer, fast, &answered);
        tokio::pin!(attempt);
        let outcome = loop {
            tokio::select! {
                _ = stopped(&shared) => break None,
                o = &mut attempt => break Some(o),
                // Proof the path is back: an attempt that has had no answer yet sent its
                // Initial into the void; send a fresh one now.
                () = kick.notified(), if fast.is_some() => {
                    let min_age = fast.unwrap_or(MIN_REDIAL) / 4;
                    if !answered.load(Ordering::Relaxed) && started.elapsed() >= min_age {
                        break Some(Err(DialError::NoAnswer));
                    }
                }
            }
        };
        let Some(outcome) = outcome else { break };
        match outcome {
            Ok((conn, names)) => {
                backoff = MIN_BACKOFF;
                let seq = shared.register(peer, Dir::Outbound, &conn);
                let shared = Arc::clone(&shared);
                // A previous outbound connection, if still open, was just replaced (closed
                // by `register`); its task ends by itself.
                outbound = Some(tokio::spawn(async move {
                    let reason = read_loop(&shared, peer, names, &conn).await;
                    shared.unregister(peer, Dir::Outbound, seq, &reason);
                }));
                continue;
            }
            Err(DialError::NoAnswer) => {
                debug!(peer = %shared.peers[peer].describe(), "no answer to a dial; dialling afresh");
                continue;
            }
            Err(DialError::Rejected(kind, reason)) => {
                shared.reject(addr, kind, reason);
                if !pause(&shared, peer, backoff, false).await {
                    break;
                }
            }
            Err(DialError::Other(reason)) => {
                debug!(peer = %shared.peers[peer].describe(), %reason, "dial failed");
                let wait = fast.map_or(backoff, |r| backoff.min(r));
                if !pause(&shared, peer, wait, true).await {
                    break;
                }
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    if let Some(task) = outbound {
        let _ = task.await;
    }
    debug!(peer = %shared.peers[peer].describe(), "dial loop ended");
}

/// Sleeps `wait`, cut short by [`Transport::redial_now`] when `kickable` and fast contact
/// is on. False when the transport stops meanwhile.
async fn pause(shared: &Shared, peer: usize, wait: Duration, kickable: bool) -> bool {
    let kickable = kickable && shared.redial().is_some();
    tokio::select! {
        _ = stopped(shared) => false,
        _ = tokio::time::sleep(wait) => true,
        () = shared.contact[peer].kick.notified(), if kickable => true,
    }
}

/// Waits until our outbound connection closes or, with fast contact, until the peer has
/// sent nothing for two redial intervals (or one, after [`Transport::redial_now`]).
async fn watch_outbound(
    shared: &Shared,
    peer: usize,
    task: &mut tokio::task::JoinHandle<()>,
) -> Wake {
    loop {
        let check = shared.redial().unwrap_or(MIN_REDIAL);
        if shared.redial().is_some() && shared.silent_for(peer) > check * 2 {
            return Wake::Silent;
        }
        tokio::select! {
            _ = &mut *task => return Wake::Closed,
            () = shared.contact[peer].kick.notified(), if shared.redial().is_some() => {
                if shared.silent_for(peer) > check {
                    return Wake::Silent;
                }
            }
            _ = tokio::time::sleep(check) => {}
        }
    }
}

/// Dials one peer and waits until it has accepted us. With fast contact (`no_answer`), a
/// peer that has not answered at all within that time is [`DialError::NoAnswer`]; `answered`
/// is set once it has.
async fn dial_once(
    shared: &Shared,
    peer: usize,
    no_answer: Option<Duration>,
    answered: &std::sync::atomic::AtomicBool,
) -> Result<(quinn::Connection, Vec<String>), DialError> {
    let spec = &shared.peers[peer];
    // This dial's own TLS configuration, so its verifier can say why it refused the server.
    let (client, verdict) = shared
        .tls()
        .client()
        .map_err(|e| DialError::Other(format!("cannot build the TLS configuration: {e}")))?;
    let mut connecting = shared
        .endpoint
        .connect_with(client, spec.addr, &spec.server_name())
        .map_err(|e| DialError::Other(format!("cannot dial: {e}")))?;
    if let Some(bound) = no_answer {
        // The server's first flight (its handshake data) is the answer.
        match tokio::time::timeout(bound, connecting.handshake_data()).await {
            Err(_) => return Err(DialError::NoAnswer),
            Ok(Err(e)) => return Err(dial_error(&e, &verdict)),
            Ok(Ok(_)) => answered.store(true, Ordering::Relaxed),
        }
    }
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Err(_) => return Err(DialError::Other("handshake timed out".to_string())),
        Ok(Err(e)) => return Err(dial_error(&e, &verdict)),
        Ok(Ok(conn)) => conn,
    };
    // rustls already checked the CA and the name; this keeps the mapping rule in one place.
    let (names, ips) =
        peer_names(&conn).map_err(|(kind, reason)| DialError::Rejected(kind, reason))?;
    if !spec.matches(&names, &ips) {
        conn.close(
            VarInt::from_u32(CLOSE_UNKNOWN_PEER),
            b"certificate does not match the configured peer",
        );
        return Err(DialError::Rejected(
            RejectKind::UnknownPeer,
            format!(
            "server certificate names {names:?} (IP addresses {}) do not match the configured peer",
            ips_words(&ips)
        ),
        ));
    }
    let confirmation = async {
        let mut stream = conn
            .accept_uni()
            .await
            .map_err(|e| dial_error(&e, &verdict))?;
        let got = stream
            .read_to_end(ACCEPTED.len())
            .await
            .map_err(|e| match e {
                quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(e)) => {
                    dial_error(&e, &verdict)
                }
                other => DialError::Other(format!("bad confirmation: {other}")),
            })?;
        if got == ACCEPTED {
            Ok(())
        } else {
            Err(DialError::Other("bad confirmation".to_string()))
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, confirmation).await {
        Ok(Ok(())) => Ok((conn, names)),
        Ok(Err(e)) => {
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"not confirmed");
            Err(e)
        }
        Err(_) => {
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"not confirmed");
            Err(DialError::Other(
                "the peer did not confirm the connection in time".to_string(),
            ))
        }
    }
}

/// Maps a certificate to the configured peer it identifies: named peers by DNS name,
/// address-only peers by IP address. When several match, the one configured with the
/// connection's source address wins.
pub(crate) fn match_peer(
    peers: &[PeerSpec],
    names: &[String],
    ips: &[IpAddr],
    remote: SocketAddr,
) -> Option<usize> {
    let mut candidates = peers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.matches(names, ips))
        .map(|(i, _)| i)
        .peekable();
    let first = *candidates.peek()?;
    let remote_ip = remote.ip().to_canonical();
    candidates
        .find(|&i| peers[i].addr.ip().to_canonical() == remote_ip)
        .or(Some(first))
}

/// DNS names and IP addresses of the peer's certificate.
fn peer_names(
    conn: &quinn::Connection,
) -> Result<(Vec<String>, Vec<IpAddr>), (RejectKind, String)> {
    let none = || {
        (
            RejectKind::NoCertificate,
            "the peer presented no certificate".to_string(),
        )
    };
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(none)?;
    let first = certs.first().ok_or_else(none)?;
    let summary = certs::summarize(first).map_err(|e| {
        (
            RejectKind::Other,
            format!("unreadable peer certificate: {e}"),
        )
    })?;
    Ok((summary.names, summary.ips))
}

fn peer_not_after(conn: &quinn::Connection) -> Option<std::time::SystemTime> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    certs::summarize(certs.first()?).ok().map(|s| s.not_after)
}

fn ips_words(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        "none".to_string()
    } else {
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Whether a failed handshake failed on TLS (a certificate judged and refused).
fn is_certificate_failure(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::TransportError(t) => is_crypto(t.code),
        ConnectionError::ConnectionClosed(c) => is_crypto(c.error_code),
        _ => false,
    }
}

/// Classifies a failed outbound handshake or confirmation; `verdict` is the dial's verifier
/// record.
fn dial_error(e: &ConnectionError, verdict: &Verdict) -> DialError {
    match e {
        ConnectionError::ApplicationClosed(a)
            if a.error_code == VarInt::from_u32(CLOSE_UNKNOWN_PEER) =>
        {
            DialError::Rejected(
                RejectKind::UnknownPeer,
                "the peer does not accept our certificate (its names match none of its configured peers)"
                    .to_string(),
            )
        }
        e if is_certificate_failure(e) => {
            let (kind, reason) = handshake_rejection(e, verdict.take());
            DialError::Rejected(kind, reason)
        }
        other => DialError::Other(close_words(other)),
    }
}

/// A handshake that failed on TLS ([`is_certificate_failure`]), as a kind and in words.
///
/// - We refused the peer (a local `TransportError`): the kind comes from the verifier's
///   record (`local`), or, when the refusal happened outside the verifier (no certificate at
///   all), from the alert we sent.
/// - The peer refused us (`ConnectionClosed`): only its alert is known.
fn handshake_rejection(e: &ConnectionError, local: Option<Refusal>) -> (RejectKind, String) {
    let from_code = |code: quinn::TransportErrorCode| {
        RejectKind::from_crypto_code(u64::from(code)).unwrap_or(RejectKind::Other)
    };
    let with_hint = |mut words: String, hint: &str| {
        if !hint.is_empty() {
            words.push_str(&format!(" ({hint})"));
        }
        words
    };
    match e {
        ConnectionError::TransportError(t) => {
            // The verifier's own words are rustls's Display of the error it returned, the
            // same text quinn puts in `t.reason`.
            let (kind, detail, clock) = match local {
                Some(r) => (r.kind, r.words, r.clock),
                None if t.reason.is_empty() => (from_code(t.code), t.code.to_string(), None),
                None => (from_code(t.code), t.reason.clone(), None),
            };
            let words = format!("TLS handshake failed: {detail}");
            let mut words = with_hint(words, kind.local_hint());
            if let Some(clock) = clock {
                words.push_str(&format!("; {clock}"));
            }
            (kind, words)
        }
        ConnectionError::ConnectionClosed(c) => {
            let kind = from_code(c.error_code);
            let reason = quoted(&c.reason);
            let words = if reason.is_empty() {
                format!("the peer aborted the handshake: {}", c.error_code)
            } else {
                format!("the peer aborted the handshake: {reason}")
            };
            (kind, with_hint(words, kind.remote_hint()))
        }
        other => (RejectKind::Other, format!("handshake failed: {other}")),
    }
}

/// A peer's close reason fit for a log line: printable ASCII only (no line breaks or
/// terminal escapes an attacker could plant), at most [`MAX_QUOTED_REASON`] bytes.
fn quoted(reason: &[u8]) -> String {
    let text = String::from_utf8_lossy(reason);
    let mut out: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_QUOTED_REASON)
        .collect();
    if text.chars().count() > MAX_QUOTED_REASON {
        out.push_str("...");
    }
    out
}

/// Why a connection closed, in words.
fn close_words(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(a) => {
            let reason = quoted(&a.reason);
            if reason.is_empty() {
                format!("closed by the peer (code {})", a.error_code)
            } else {
                format!("closed by the peer: {reason}")
            }
        }
        ConnectionError::LocallyClosed => "closed locally".to_string(),
        ConnectionError::TimedOut => "idle timeout".to_string(),
        other => other.to_string(),
    }
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> TransportError {
    let reason = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "address already in use (is another haagent or service on this port?)".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "address not available on this host (listen on an address the node owns, not the VIP)"
                .to_string()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_string()
        }
        _ => e.to_string(),
    };
    TransportError::Bind {
        addr,
        reason,
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: Option<&str>, addr: &str) -> PeerSpec {
        PeerSpec {
            name: name.map(str::to_string),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn peers_match_by_name_or_ip() {
        let peers = vec![
            spec(Some("n2"), "192.0.2.2:7400"),
            spec(None, "192.0.2.3:7400"),
            spec(None, "[2001:db8::4]:7400"),
        ];
        let remote: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(match_peer(&peers, &n(&["n2"]), &[], remote), Some(0));
        // Names are identities and compare exactly, as in the election: "N2" is not "n2".
        assert_eq!(match_peer(&peers, &n(&["N2"]), &[], remote), None);
        assert_eq!(match_peer(&peers, &n(&["N2", "n2"]), &[], remote), Some(0));
        assert_eq!(
            match_peer(&peers, &n(&["n3"]), &[ip("192.0.2.3")], remote),
            Some(1)
        );
        assert_eq!(
            match_peer(&peers, &[], &[ip("2001:db8::4")], remote),
            Some(2)
        );
        // A named peer is not matched by its IP address, nor a quick-mode peer by a name.
        assert_eq!(
            match_peer(&peers, &n(&["x"]), &[ip("192.0.2.2")], remote),
            None
        );
        assert_eq!(match_peer(&peers, &n(&["192.0.2.3"]), &[], remote), None);
        // Ambiguous: the peer configured with the source address wins.
        let both = [ip("192.0.2.3"), ip("2001:db8::4")];
        assert_eq!(match_peer(&peers, &[], &both, remote), Some(1));
        let from4: SocketAddr = "[2001:db8::4]:1".parse().unwrap();
        assert_eq!(match_peer(&peers, &[], &both, from4), Some(2));
        // IPv4-mapped source addresses (dual-stack sockets) compare as IPv4.
        let mapped: SocketAddr = "[::ffff:192.0.2.3]:1".parse().unwrap();
        assert_eq!(match_peer(&peers, &[], &both, mapped), Some(1));
    }

    #[test]
    fn quick_mode_dials_the_ip_as_server_name() {
        assert_eq!(spec(None, "192.0.2.3:7400").server_name(), "192.0.2.3");
        assert_eq!(spec(Some("n2"), "192.0.2.3:7400").server_name(), "n2");
    }
}
