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
//! Each connection negotiates the wire version by ALPN ([`ALPNS`]: `haagent/2`, then
//! `haagent/1` for a peer of a release before VIP groups); [`Transport::broadcast_versioned`]
//! sends each peer the datagram of its connection's version (docs/wire-format.md).
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
//!
//! # Files
//!
//! This file holds the API ([`Transport`], its config, events and errors) and the endpoint's
//! set-up. `links.rs`: the peer table (accepted connections per peer, fast contact's clock,
//! the state the tasks share). `dial.rs`: the per-peer dial loop. `inbound.rs`: accepting,
//! the inbound identity check and the datagram read loop. `identity.rs`: which peer a
//! certificate names. `failure.rs`: failures as kinds and words. `tls.rs`, `verify.rs`,
//! `reject.rs`, `reject_log.rs`, `congestion.rs`: TLS set-up, certificate verification,
//! rejection kinds, rejection logging, the congestion controller.

mod congestion;
mod dial;
mod failure;
mod identity;
mod inbound;
mod links;
mod probe;
mod reject;
mod reject_log;
mod runtime;
pub mod tls;
mod verify;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quinn::VarInt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use crate::certs::{self, NodeIdentity};
use dial::dial_loop;
use failure::bind_error;
use identity::{peer_chain, peer_summary};
use inbound::accept_loop;
use links::{redial_ms, summary_loop, Contact, Handle, Link, Shared};
use reject_log::RejectLog;
use tls::TlsContext;

pub use probe::{probe, ProbeAnswer, ProbeError, DOCTOR_ALPN};
pub use reject::RejectKind;
pub use tls::{client_config, server_config, ALPN, ALPNS, ALPN_V1, ALPN_V2};

fn validate_peers(peers: &[PeerSpec]) -> Result<(), TransportError> {
    for p in peers {
        if let Some(name) = &p.name {
            certs::validate_node_name(name)
                .map_err(|e| TransportError::Config(format!("peer {}: {e}", p.addr)))?;
        }
    }
    Ok(())
}

/// Application close code: the certificate matches no configured peer.
pub const CLOSE_UNKNOWN_PEER: u32 = 0x10;
/// Application close code: replaced by a newer connection from the same peer.
pub const CLOSE_REPLACED: u32 = 0x11;
/// Application close code: after a reload, the peer's certificate no longer verifies
/// against this node's CA (a trust bundle without the peer's CA).
pub const CLOSE_UNTRUSTED: u32 = 0x12;
/// Application close code: a reload removed this peer or changed its address.
pub const CLOSE_RECONFIGURED: u32 = 0x13;
/// Application close code: the node shuts down.
pub const CLOSE_SHUTDOWN: u32 = 0x0;

const ACCEPTED: &[u8] = b"haagent accepted";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// [`TransportConfig::redial_interval`] in whole ms, at least [`MIN_REDIAL`]; 0 = off.
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
    /// The serial number of the peer's certificate on that connection (lowercase hex).
    pub cert_serial: Option<String>,
    /// The wire version that connection negotiated by ALPN: 2 (`haagent/2`) or 1
    /// (`haagent/1`, a peer of a release before VIP groups), see
    /// [`Transport::broadcast_versioned`].
    pub wire_version: Option<u8>,
}

/// What [`Transport::reload_identity`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityReload {
    /// This node's certificate differs from the one it used before: every peer is dialled
    /// anew beside its live connection, so peers see the new certificate without a gap.
    pub certificate_changed: bool,
    /// Live connections closed because the peer's certificate no longer verifies against
    /// the new CA, by peer (their peers redial; a peer with a trusted certificate comes
    /// back at once).
    pub closed_untrusted: Vec<String>,
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
        validate_peers(&cfg.peers)?;
        let tls = TlsContext::new(&cfg.identity)?;
        // The endpoint's own server configuration is never used for a handshake (each
        // inbound connection gets its own, see `handle_inbound`), but without one quinn
        // refuses every inbound connection.
        let (server, _) = tls.server()?;
        let addr = socket.local_addr().map_err(|e| bind_error(cfg.listen, e))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TransportError::Config(
                "no tokio runtime is running".to_string(),
            ));
        }
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(runtime::ExactTimerRuntime);
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
            contact: Mutex::new(cfg.peers.into_iter().map(Contact::new).collect()),
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
        let contacts = shared.contacts();
        for (peer, contact) in contacts.iter().enumerate() {
            tokio::spawn(dial_loop(Arc::clone(&shared), peer, Arc::clone(contact)));
        }
        info!(%local_addr, peers = contacts.len(), "transport listening");
        Ok((
            Transport {
                handle: Arc::new(Handle { shared, local_addr }),
            },
            rx,
        ))
    }

    /// Uses a new certificate and key (and CA) for every connection from now on. Live
    /// connections whose peer certificate no longer verifies against the new CA are closed
    /// ([`CLOSE_UNTRUSTED`]); the others stay. When this node's own certificate changed,
    /// every peer is dialled anew beside its live connection (the new connection replaces
    /// the old one on both sides without a `Down`), so the peers see the new certificate at
    /// once instead of at the next reconnect.
    pub fn reload_identity(
        &self,
        identity: &NodeIdentity,
    ) -> Result<IdentityReload, TransportError> {
        let tls = Arc::new(TlsContext::new(identity)?);
        let (server, _) = tls.server()?;
        let shared = &self.handle.shared;
        shared.endpoint.set_server_config(Some(server));
        let old = std::mem::replace(
            &mut *shared.tls.lock().unwrap_or_else(|p| p.into_inner()),
            Arc::clone(&tls),
        );
        let certificate_changed = old.own_certificate() != tls.own_certificate();
        let mut closed_untrusted = Vec::new();
        {
            let links = shared.lock_links();
            for (peer, link) in links.iter().enumerate() {
                for live in [&link.outbound, &link.inbound].into_iter().flatten() {
                    let verdict = match peer_chain(&live.conn) {
                        Some(chain) => tls.still_trusts(&chain),
                        None => Err(rustls::Error::NoCertificatesPresented),
                    };
                    if let Err(e) = verdict {
                        let who = shared.describe(peer);
                        tracing::warn!(peer = %who, error = %e, "closing a connection: the peer's certificate no longer verifies against the reloaded CA");
                        live.conn.close(
                            quinn::VarInt::from_u32(CLOSE_UNTRUSTED),
                            b"certificate no longer trusted",
                        );
                        if !closed_untrusted.contains(&who) {
                            closed_untrusted.push(who);
                        }
                    }
                }
            }
        }
        if certificate_changed {
            for c in shared.contacts() {
                c.refresh.store(true, std::sync::atomic::Ordering::Relaxed);
                c.refresh_kick.notify_one();
            }
        }
        Ok(IdentityReload {
            certificate_changed,
            closed_untrusted,
        })
    }

    /// Replaces the peer list (a reload): events refer to the new indices from now on.
    /// Index by index, a peer whose spec is unchanged keeps its connections; a changed one
    /// (another address or name) has its connections closed ([`CLOSE_RECONFIGURED`], a
    /// `Down` if it was up) and is dialled at its new spec; peers beyond the new list are
    /// closed and forgotten, new ones are dialled. Keep unchanged peers at their indices
    /// (append new ones) so that nothing is dropped that need not be.
    pub fn set_peers(&self, peers: Vec<PeerSpec>) -> Result<(), TransportError> {
        validate_peers(&peers)?;
        let shared = &self.handle.shared;
        let mut started = Vec::new();
        {
            // Lock order: links before contact (see `Shared`).
            let mut links = shared.lock_links();
            let mut contact = shared.contact.lock().unwrap_or_else(|p| p.into_inner());
            for i in 0..contact.len().max(peers.len()) {
                if contact.get(i).map(|c| &c.spec) == peers.get(i) {
                    continue;
                }
                if let Some(old) = contact.get(i) {
                    old.retired.send_replace(true);
                    info!(peer = %old.spec.describe(), "peer removed or changed by a reload");
                    if let Some(link) = links.get_mut(i) {
                        let was_up = link.best().is_some();
                        for live in [link.outbound.take(), link.inbound.take()]
                            .into_iter()
                            .flatten()
                        {
                            live.conn
                                .close(VarInt::from_u32(CLOSE_RECONFIGURED), b"peer reconfigured");
                        }
                        if was_up {
                            shared.emit(TransportEvent::Down {
                                peer: i,
                                reason: "removed or changed by a reload".to_string(),
                            });
                        }
                    }
                }
                if let Some(spec) = peers.get(i) {
                    let fresh = Contact::new(spec.clone());
                    if i < contact.len() {
                        contact[i] = Arc::clone(&fresh);
                    } else {
                        contact.push(Arc::clone(&fresh));
                        links.push(Link::default());
                    }
                    started.push((i, fresh));
                }
            }
            contact.truncate(peers.len());
            links.truncate(peers.len());
        }
        for (i, c) in started {
            tokio::spawn(dial_loop(Arc::clone(shared), i, c));
        }
        Ok(())
    }

    /// Changes fast contact's redial interval (see [`TransportConfig::redial_interval`]);
    /// `Duration::ZERO` turns it off. Dial loops use it from their next wait on.
    pub fn set_redial_interval(&self, interval: Duration) {
        self.handle
            .shared
            .redial_ms
            .store(redial_ms(interval), std::sync::atomic::Ordering::Relaxed);
    }

    /// Proof that the path to `peer` (an index in [`TransportConfig::peers`]) works again,
    /// such as a frame from its MAC: with fast contact on, dial it now if we have not heard
    /// it for a redial interval, abandoning a dial that has had no answer yet. A peer that
    /// rejected us keeps its backoff. Calls faster than the dial loop can act coalesce.
    pub fn redial_now(&self, peer: usize) {
        if let Some(c) = self.handle.shared.contact(peer) {
            c.kick.notify_one();
        }
    }

    /// The bound UDP address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr
    }

    /// Sends `payload` as an unreliable datagram to every peer with an accepted connection,
    /// whatever wire version it negotiated. Never blocks; failures are logged at debug level
    /// (the next advert follows anyway).
    pub fn broadcast(&self, payload: Bytes) {
        self.send_each(payload, |_, _, p| Some(p.clone()));
    }

    /// Sends each peer the datagram for the wire version its connection negotiated by ALPN
    /// ([`PeerLinkStats::wire_version`]): `v1` (if `Some`, else nothing) to a connection that
    /// negotiated `haagent/1`, `v2` to every other. The daemon passes the v2 datagram of
    /// every group and, for a v1-only peer of a rolling upgrade, the v1 advert of its first
    /// group (docs/wire-format.md). A doctor probe gets `v1` if `Some`, else `v2` (so that
    /// doctors of every release can read it). Never blocks; failures (such as a datagram
    /// above the connection's `max_datagram_size`) are logged at debug level.
    pub fn broadcast_versioned(&self, v2: Bytes, v1: Option<Bytes>) {
        self.broadcast_heard(v2, v1, &[]);
    }

    /// Like [`Transport::broadcast_versioned`], and a v2 peer number `i` gets `v2` with the
    /// `heard` extension for `heard[i]` appended ([`crate::wire::with_heard`]: the seq of
    /// its latest datagram we received), when that is `Some`.
    pub fn broadcast_heard(&self, v2: Bytes, v1: Option<Bytes>, heard: &[Option<u64>]) {
        let for_doctor = v1.clone().unwrap_or_else(|| v2.clone());
        self.send_each(for_doctor, |peer, version, _| {
            if version == crate::wire::WIRE_VERSION {
                v1.clone()
            } else if let Some(seq) = heard.get(peer).copied().flatten() {
                Some(Bytes::from(crate::wire::with_heard(&v2, seq)))
            } else {
                Some(v2.clone())
            }
        });
    }

    /// Remembers `for_doctor` and sends each peer what `pick(peer, version, for_doctor)`
    /// gives.
    fn send_each(&self, for_doctor: Bytes, pick: impl Fn(usize, u8, &Bytes) -> Option<Bytes>) {
        let shared = &self.handle.shared;
        if let Ok(mut last) = shared.last_advert.lock() {
            *last = Some(for_doctor.clone());
        }
        let links = shared.lock_links();
        for (peer, link) in links.iter().enumerate() {
            let Some(live) = link.best() else { continue };
            let Some(payload) = pick(peer, live.version, &for_doctor) else {
                continue;
            };
            if let Err(e) = live.conn.send_datagram(payload) {
                debug!(peer = %shared.describe(peer), error = %e, "datagram not sent");
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
                    cert_not_after: peer_summary(&live.conn).map(|s| s.not_after),
                    cert_serial: peer_summary(&live.conn).map(|s| s.serial),
                    wire_version: Some(live.version),
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
