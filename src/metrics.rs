//! Prometheus metrics for the failover agent.
//!
//! Operators want to see, from their monitoring system, which node holds the VIP, why it moved,
//! how healthy the peers and checks are, and when certificates run out. This module keeps those
//! numbers in a [`prometheus_client`] registry and serves them as OpenMetrics text on
//! `GET /metrics` (off by default; `metrics.listen = "127.0.0.1:9798"` turns it on).
//!
//! # Design
//! - The daemon loop calls the cheap setters on [`Metrics`] (atomics; label families take a
//!   read lock in the common case). Nothing here blocks or does I/O.
//! - Names follow Prometheus conventions: `haagent_` prefix, base units (`_seconds`), `_total`
//!   for counters. The node name is not repeated on every series: it is in `haagent_info`.
//! - Label values for states, transition and notice causes and rejection reasons come only
//!   from the `label()` of their enums ([`State`], [`Cause`], [`NoticeCause`],
//!   [`RejectReason`]): the label sets are the enums, so a metric cannot disagree with the
//!   code that decides, and nothing from the network becomes a label value. Peer, check and
//!   certificate names are bounded by the configuration.
//! - [`serve`] is a deliberately tiny HTTP/1.1 server (no hyper): one request per connection,
//!   request head capped at 8 KiB and 2 s, `Connection: close`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;

use crate::daemon::AdmissionKind;
use crate::election::{Cause, NoticeCause};
use crate::transport::RejectKind;
use crate::wire::State;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Why an advert or a peer connection was rejected: the label set of
/// `haagent_adverts_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// A datagram on an authenticated connection failed advert admission.
    Admission(AdmissionKind),
    /// The transport refused a connection (TLS or peer identity).
    Connection(RejectKind),
}

impl RejectReason {
    /// Every reason: each admission kind, then each connection kind.
    pub fn all() -> impl Iterator<Item = RejectReason> {
        AdmissionKind::ALL
            .into_iter()
            .map(RejectReason::Admission)
            .chain(RejectKind::ALL.into_iter().map(RejectReason::Connection))
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::Admission(k) => k.label(),
            RejectReason::Connection(k) => k.label(),
        }
    }
}

/// The scrape answer's content type (OpenMetrics text format 1.0.0).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest request head the server reads before answering 431.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head (and to take the answer).
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read and discarded after answering (see `handle_connection`).
const MAX_DRAIN: usize = 64 * 1024;
/// Connections served at once; further ones are closed straight away.
const MAX_CONNECTIONS: usize = 16;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    to: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    cert: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    peer: String,
    setting: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    node: String,
    version: &'static str,
}

/// A gauge holding seconds as a float.
type SecondsGauge = Gauge<f64, AtomicU64>;

/// Every metric the agent exports. Create once with [`Metrics::new`], share as `Arc<Metrics>`.
///
/// All setters are cheap (atomics, plus a read lock on a label family) and never fail.
pub struct Metrics {
    registry: Registry,
    /// One gauge per entry of [`State::ALL`], same order.
    state: [Gauge; 4],
    epoch: Gauge<u64, AtomicU64>,
    priority_base: Gauge,
    priority_effective: Gauge,
    transitions: Family<TransitionLabels, Counter>,
    notices: Family<CauseLabels, Counter>,
    adverts_sent: Counter,
    adverts_received: Family<PeerLabels, Counter>,
    adverts_rejected: Family<ReasonLabels, Counter>,
    peer_rtt: Family<PeerLabels, SecondsGauge>,
    peer_last_seen: Family<PeerLabels, SecondsGauge>,
    peer_up: Family<PeerLabels, Gauge>,
    check_up: Family<CheckLabels, Gauge>,
    check_latency: Family<CheckLabels, SecondsGauge>,
    garp_sent: Counter,
    /// The announcer's running total at the last [`Metrics::set_garps_sent`].
    garp_last_total: AtomicU64,
    vip_conflicts: Counter,
    claim_blocked: SecondsGauge,
    cert_expiry: Family<CertLabels, Gauge>,
    config_drift: Family<DriftLabels, Gauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the registry for node `node`: `haagent_info{node, version} 1`, every state
    /// gauge at 0, and every bounded rejection reason at 0 (so `rate()` works from the start).
    pub fn new(node: &str) -> Arc<Metrics> {
        let mut root = Registry::default();

        // `Info` encodes as `haagent_info{..} 1` with `# TYPE haagent info`; Prometheus ingests
        // it as a gauge. It sits in the root registry because the encoder appends `_info` to
        // the name; every other metric lives under the `haagent_` prefix.
        root.register(
            "haagent",
            "Static facts about this agent; always 1",
            Info::new(InfoLabels {
                node: node.to_owned(),
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let registry = root.sub_registry_with_prefix("haagent");

        let state_family = Family::<StateLabels, Gauge>::default();
        let state =
            State::ALL.map(|s| state_family.get_or_create_owned(&StateLabels { state: s.label() }));
        registry.register(
            "state",
            "Current election state: 1 for the current one, 0 for the others",
            state_family,
        );

        let epoch = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "epoch",
            "Election epoch this node currently believes in",
            epoch.clone(),
        );

        let priority = Family::<KindLabels, Gauge>::default();
        let priority_base = priority.get_or_create_owned(&KindLabels { kind: "base" });
        let priority_effective = priority.get_or_create_owned(&KindLabels { kind: "effective" });
        registry.register(
            "priority",
            "VRRP priority: configured base and effective (after health-check penalties)",
            priority,
        );

        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "transitions",
            "State transitions by target state and cause",
            transitions.clone(),
        );

        let notices = Family::<CauseLabels, Counter>::default();
        for cause in NoticeCause::ALL {
            notices.get_or_create_owned(&CauseLabels {
                cause: cause.label(),
            });
        }
        registry.register(
            "notices",
            "Election decisions that changed no state (a claim blocked by an ARP probe answer, \
             no quorum to take over, a VIP conflict, a handover started or refused), by cause",
            notices.clone(),
        );

        let adverts_sent = Counter::default();
        registry.register(
            "adverts_sent",
            "Priority adverts sent to peers",
            adverts_sent.clone(),
        );

        let adverts_received = Family::<PeerLabels, Counter>::default();
        registry.register(
            "adverts_received",
            "Valid priority adverts received, by peer",
            adverts_received.clone(),
        );

        let adverts_rejected = Family::<ReasonLabels, Counter>::default();
        for reason in RejectReason::all() {
            let reason = reason.label();
            adverts_rejected.get_or_create_owned(&ReasonLabels { reason });
        }
        registry.register(
            "adverts_rejected",
            "Adverts or peer connections rejected, by bounded reason",
            adverts_rejected.clone(),
        );

        let peer_rtt = Family::<PeerLabels, SecondsGauge>::default();
        registry.register_with_unit(
            "peer_rtt",
            "Last measured round-trip time to the peer",
            Unit::Seconds,
            peer_rtt.clone(),
        );

        let peer_last_seen = Family::<PeerLabels, SecondsGauge>::default();
        registry.register_with_unit(
            "peer_last_seen",
            "Time since the last valid advert from the peer (an age, not a timestamp)",
            Unit::Seconds,
            peer_last_seen.clone(),
        );

        let peer_up = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_up",
            "1 if the peer is reachable and sending adverts, else 0",
            peer_up.clone(),
        );

        let check_up = Family::<CheckLabels, Gauge>::default();
        registry.register(
            "check_up",
            "1 if the health check passes, else 0",
            check_up.clone(),
        );

        let check_latency = Family::<CheckLabels, SecondsGauge>::default();
        registry.register_with_unit(
            "check_latency",
            "Duration of the last run of the health check",
            Unit::Seconds,
            check_latency.clone(),
        );

        let garp_sent = Counter::default();
        registry.register(
            "garp_sent",
            "Gratuitous ARP frames sent for the VIPs",
            garp_sent.clone(),
        );

        let vip_conflicts = Counter::default();
        registry.register(
            "vip_conflicts",
            "Times another host was seen answering for one of our VIPs",
            vip_conflicts.clone(),
        );

        let claim_blocked = SecondsGauge::default();
        registry.register_with_unit(
            "claim_blocked",
            "How long ARP probe answers have kept this backup from claiming the VIPs after \
             master-down (0 when not blocked)",
            Unit::Seconds,
            claim_blocked.clone(),
        );

        let cert_expiry = Family::<CertLabels, Gauge>::default();
        registry.register_with_unit(
            "cert_expiry_timestamp",
            "Certificate notAfter as a Unix timestamp",
            Unit::Seconds,
            cert_expiry.clone(),
        );

        let config_drift = Family::<DriftLabels, Gauge>::default();
        registry.register(
            "config_drift",
            "1 if the peer reports a different value for the setting, else 0",
            config_drift.clone(),
        );

        Arc::new(Metrics {
            registry: root,
            state,
            epoch,
            priority_base,
            priority_effective,
            transitions,
            notices,
            adverts_sent,
            adverts_received,
            adverts_rejected,
            peer_rtt,
            peer_last_seen,
            peer_up,
            check_up,
            check_latency,
            garp_sent,
            garp_last_total: AtomicU64::new(0),
            vip_conflicts,
            claim_blocked,
            cert_expiry,
            config_drift,
        })
    }

    /// Sets `haagent_state{state}`: 1 for `state`, 0 for the other three of
    /// init/backup/master/fault.
    pub fn set_state(&self, state: State) {
        for (s, gauge) in State::ALL.iter().zip(&self.state) {
            gauge.set(i64::from(*s == state));
        }
    }

    /// Sets `haagent_epoch`.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.set(epoch);
    }

    /// Sets `haagent_priority{kind="base"}` and `{kind="effective"}`.
    pub fn set_priority(&self, base: u8, effective: u8) {
        self.priority_base.set(i64::from(base));
        self.priority_effective.set(i64::from(effective));
    }

    /// Counts a transition in `haagent_transitions_total{to, reason}`; `reason` is
    /// [`Cause::label`].
    pub fn transition(&self, to: State, cause: Cause) {
        let labels = TransitionLabels {
            to: to.label(),
            reason: cause.label(),
        };
        self.transitions.get_or_create(&labels).inc();
    }

    /// Counts a decision that changed no state in `haagent_notices_total{cause}`.
    pub fn notice(&self, cause: NoticeCause) {
        let labels = CauseLabels {
            cause: cause.label(),
        };
        self.notices.get_or_create(&labels).inc();
    }

    /// Counts an advert sent (`haagent_adverts_sent_total`).
    pub fn advert_sent(&self) {
        self.adverts_sent.inc();
    }

    /// Counts a valid advert from `peer` (`haagent_adverts_received_total{peer}`).
    pub fn advert_received(&self, peer: &str) {
        self.adverts_received
            .get_or_create(&peer_labels(peer))
            .inc();
    }

    /// Counts a rejected advert or connection (`haagent_adverts_rejected_total{reason}`).
    pub fn advert_rejected(&self, reason: RejectReason) {
        let labels = ReasonLabels {
            reason: reason.label(),
        };
        self.adverts_rejected.get_or_create(&labels).inc();
    }

    /// Updates `haagent_peer_rtt_seconds{peer}`, `haagent_peer_last_seen_seconds{peer}` (the age
    /// of the last advert) and `haagent_peer_up{peer}`. `None` (not measured yet, or never
    /// seen) removes that series instead of exporting a made-up number.
    pub fn peer(
        &self,
        peer: &str,
        rtt: Option<Duration>,
        last_seen_age: Option<Duration>,
        up: bool,
    ) {
        let labels = peer_labels(peer);
        set_or_remove(&self.peer_rtt, &labels, rtt);
        set_or_remove(&self.peer_last_seen, &labels, last_seen_age);
        self.peer_up.get_or_create(&labels).set(i64::from(up));
    }

    /// Updates `haagent_check_up{check}` and `haagent_check_latency_seconds{check}` (`None`
    /// removes the latency series, e.g. for a check that timed out without a measurement).
    pub fn check(&self, check: &str, healthy: bool, latency: Option<Duration>) {
        let labels = CheckLabels {
            check: check.to_owned(),
        };
        self.check_up.get_or_create(&labels).set(i64::from(healthy));
        set_or_remove(&self.check_latency, &labels, latency);
    }

    /// Feeds `haagent_garp_sent_total` from the announcer's running total: the counter grows by
    /// the difference to the previous call. A total smaller than the previous one means the
    /// announcer started counting again from zero; the whole new total is then added.
    pub fn set_garps_sent(&self, total: u64) {
        let previous = self.garp_last_total.swap(total, Ordering::Relaxed);
        let delta = if total >= previous {
            total - previous
        } else {
            total
        };
        if delta > 0 {
            self.garp_sent.inc_by(delta);
        }
    }

    /// Sets `haagent_claim_blocked_seconds`: how long probe answers have blocked our claim,
    /// 0 when they do not.
    pub fn set_claim_blocked(&self, blocked_for: Option<Duration>) {
        self.claim_blocked
            .set(blocked_for.map_or(0.0, |d| d.as_secs_f64()));
    }

    /// Counts a VIP conflict (`haagent_vip_conflicts_total`).
    pub fn vip_conflict(&self) {
        self.vip_conflicts.inc();
    }

    /// Sets `haagent_cert_expiry_timestamp_seconds{cert=which}` (`"node"`, `"ca"`,
    /// `"peer:NAME"`) to the certificate's notAfter in Unix seconds.
    pub fn set_cert_expiry(&self, which: &str, not_after_unix: i64) {
        let labels = CertLabels {
            cert: which.to_owned(),
        };
        self.cert_expiry.get_or_create(&labels).set(not_after_unix);
    }

    /// Sets `haagent_config_drift{peer, setting}` to 1 if the peer's value differs, else 0.
    pub fn config_drift(&self, peer: &str, setting: &str, differs: bool) {
        let labels = DriftLabels {
            peer: peer.to_owned(),
            setting: setting.to_owned(),
        };
        self.config_drift
            .get_or_create(&labels)
            .set(i64::from(differs));
    }

    /// Renders every metric as OpenMetrics text, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing into a String cannot fail; a metric's own encoder could. Still end the
            // exposition properly so scrapers see a complete (if partial) answer.
            tracing::warn!(%error, "encoding metrics failed");
            if !out.ends_with("# EOF\n") {
                out.push_str("# EOF\n");
            }
        }
        out
    }
}

fn peer_labels(peer: &str) -> PeerLabels {
    PeerLabels {
        peer: peer.to_owned(),
    }
}

/// Sets the seconds gauge for `labels`, or removes the series when `value` is `None`.
fn set_or_remove<S>(family: &Family<S, SecondsGauge>, labels: &S, value: Option<Duration>)
where
    S: Clone + std::hash::Hash + Eq,
{
    match value {
        Some(d) => {
            family.get_or_create(labels).set(d.as_secs_f64());
        }
        None => {
            family.remove(labels);
        }
    }
}

/// Errors from starting the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound (in use, not local, or a port below 1024 without
    /// CAP_NET_BIND_SERVICE).
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The configured `metrics.listen` address.
        addr: SocketAddr,
        /// The underlying socket error.
        #[source]
        source: std::io::Error,
    },
}

/// A running metrics endpoint. Dropping it (or calling [`MetricsServer::abort`]) stops it.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and drops the ones being served. The listening socket is
    /// closed once the runtime drops the task, shortly after this returns.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Stops the endpoint and waits until its listening socket is closed.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // Cancelled is the expected outcome; a panic inside the task has nothing left to stop.
        let _ = (&mut self.task).await;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` (and `HEAD`) on `listen`, 404 for other paths, until the returned
/// [`MetricsServer`] is dropped or aborted. Bind with port 0 and read
/// [`MetricsServer::local_addr`] to learn the port.
///
/// Must be called inside a tokio runtime.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<MetricsServer, MetricsError> {
    let bind_error = |source| MetricsError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    tracing::info!(%local_addr, "metrics endpoint listening");
    let task = tokio::spawn(accept_loop(listener, metrics));
    Ok(MetricsServer { local_addr, task })
}

/// Accepts connections until aborted. Connection tasks live in a [`JoinSet`] owned by this
/// future, so aborting it also ends every connection.
async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::debug!(%peer, "metrics: too many connections, closing");
                        drop(stream);
                        continue;
                    }
                    let metrics = Arc::clone(&metrics);
                    connections.spawn(async move {
                        if let Err(error) = handle_connection(stream, &metrics).await {
                            tracing::debug!(%peer, %error, "metrics connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// What the request head asked for, as far as this server cares.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET`/`HEAD` of `/metrics` (`head_only` for HEAD).
    Metrics { head_only: bool },
    /// `GET`/`HEAD` of another path.
    NotFound { head_only: bool },
    /// Another method.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Interprets a complete request head (request line + headers).
fn parse_request(head: &[u8]) -> Route {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || target.is_empty() {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        Route::Metrics { head_only }
    } else {
        Route::NotFound { head_only }
    }
}

/// Reads bytes until the end of the request head. `Ok(None)` if the client closed first;
/// `Err(())` if the head is larger than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Result<Option<Vec<u8>>, ()>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Ok(None));
        }
        // Only the newly read bytes plus three before them can complete a terminator.
        let search_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        let tail = &head[search_from..];
        if tail.windows(4).any(|w| w == b"\r\n\r\n") || tail.windows(2).any(|w| w == b"\n\n") {
            return Ok(Ok(Some(head)));
        }
        if head.len() >= MAX_HEAD {
            return Ok(Err(()));
        }
    }
}

async fn handle_connection(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_elapsed) => return Ok(()), // slow client: just close
        Ok(result) => result?,
    };
    let response = match head {
        Ok(None) => return Ok(()),
        Err(()) => response(
            431,
            "Request Header Fields Too Large",
            "",
            "text/plain",
            false,
        ),
        Ok(Some(head)) => match parse_request(&head) {
            Route::Metrics { head_only } => {
                response(200, "OK", &metrics.encode(), CONTENT_TYPE, head_only)
            }
            Route::NotFound { head_only } => response(
                404,
                "Not Found",
                "not found; metrics are at /metrics\n",
                "text/plain; charset=utf-8",
                head_only,
            ),
            Route::MethodNotAllowed => response(
                405,
                "Method Not Allowed",
                "only GET and HEAD are supported\n",
                "text/plain; charset=utf-8",
                false,
            ),
            Route::BadRequest => response(
                400,
                "Bad Request",
                "bad request\n",
                "text/plain; charset=utf-8",
                false,
            ),
        },
    };
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        // Lingering close: closing a socket with unread input makes the kernel send a reset,
        // which can destroy the answer before the client reads it (e.g. after a 431). Discard
        // what the client still sends, bounded in bytes and time, until it closes.
        let mut sink = [0u8; 1024];
        let mut drained = 0;
        while drained < MAX_DRAIN {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok(())
    })
    .await
    .unwrap_or(Ok(()))
}

/// Builds a complete `Connection: close` response.
fn response(code: u16, reason: &str, body: &str, content_type: &str, head_only: bool) -> Vec<u8> {
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample lines (no comments) of the exposition.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn metrics_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Metrics>();
    }

    #[test]
    fn fresh_registry_has_info_states_and_ends_with_eof() {
        let m = Metrics::new("n1");
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let info = format!(
            "haagent_info{{node=\"n1\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(has_line(&text, &info), "{text}");
        for s in State::ALL {
            assert!(
                has_line(&text, &format!("haagent_state{{state=\"{s}\"}} 0")),
                "{text}"
            );
        }
        // Rejection reasons start at zero so rate() works before the first rejection.
        assert!(has_line(
            &text,
            "haagent_adverts_rejected_total{reason=\"tls_expired\"} 0"
        ));
        // The node name is not repeated on every series.
        assert_eq!(text.matches("node=").count(), 1, "{text}");
        for line in samples(&text) {
            assert!(line.starts_with("haagent_"), "{line}");
        }
    }

    #[test]
    fn state_is_one_hot() {
        let m = Metrics::new("n1");
        m.set_state(State::Master);
        m.set_state(State::Backup);
        let text = m.encode();
        assert!(has_line(&text, "haagent_state{state=\"backup\"} 1"));
        assert!(has_line(&text, "haagent_state{state=\"master\"} 0"));
        for state in State::ALL {
            m.set_state(state);
            let text = m.encode();
            let on: Vec<_> = samples(&text)
                .into_iter()
                .filter(|l| l.starts_with("haagent_state{") && l.ends_with(" 1"))
                .collect();
            assert_eq!(on, vec![format!("haagent_state{{state=\"{state}\"}} 1")]);
        }
    }

    #[test]
    fn counters_use_total_suffix_and_units_use_seconds() {
        let m = Metrics::new("n1");
        m.advert_sent();
        m.advert_sent();
        m.advert_received("n2");
        m.vip_conflict();
        m.transition(State::Master, Cause::MasterDown);
        m.transition(State::Master, Cause::Handover);
        m.transition(State::Backup, Cause::Handover);
        let text = m.encode();
        assert!(
            has_line(&text, "# TYPE haagent_adverts_sent counter"),
            "{text}"
        );
        assert!(has_line(&text, "haagent_adverts_sent_total 2"), "{text}");
        assert!(has_line(
            &text,
            "haagent_adverts_received_total{peer=\"n2\"} 1"
        ));
        assert!(has_line(&text, "haagent_vip_conflicts_total 1"));
        assert!(has_line(
            &text,
            "haagent_transitions_total{to=\"master\",reason=\"master_down\"} 1"
        ));
        assert!(has_line(
            &text,
            "haagent_transitions_total{to=\"master\",reason=\"handover\"} 1"
        ));
        assert!(has_line(
            &text,
            "haagent_transitions_total{to=\"backup\",reason=\"handover\"} 1"
        ));
    }

    /// The label sets are the enums: every cause, notice and rejection reason is exported
    /// under its own label, and nothing becomes `other`.
    #[test]
    fn every_cause_notice_and_rejection_is_exported_under_its_label() {
        let m = Metrics::new("n1");
        let text = m.encode();
        for cause in NoticeCause::ALL {
            let line = format!("haagent_notices_total{{cause=\"{}\"}} 0", cause.label());
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        for cause in Cause::ALL {
            m.transition(State::Backup, cause);
        }
        for cause in NoticeCause::ALL {
            m.notice(cause);
        }
        for reason in RejectReason::all() {
            m.advert_rejected(reason);
        }
        let text = m.encode();
        for cause in Cause::ALL {
            let line = format!(
                "haagent_transitions_total{{to=\"backup\",reason=\"{}\"}} 1",
                cause.label()
            );
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        for cause in NoticeCause::ALL {
            let line = format!("haagent_notices_total{{cause=\"{}\"}} 1", cause.label());
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        for reason in RejectReason::all() {
            let line = format!(
                "haagent_adverts_rejected_total{{reason=\"{}\"}} 1",
                reason.label()
            );
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        // The transport's catch-all kind is the only "other".
        assert_eq!(text.matches("\"other\"").count(), 1, "{text}");
    }

    #[test]
    fn gauges_carry_their_values() {
        let m = Metrics::new("n1");
        m.set_epoch(42);
        m.set_priority(100, 50);
        m.peer(
            "n2",
            Some(Duration::from_micros(1500)),
            Some(Duration::from_millis(250)),
            true,
        );
        m.check("gw", false, Some(Duration::from_millis(20)));
        m.set_cert_expiry("peer:n2", 1_900_000_000);
        m.config_drift("n2", "advert_interval", true);
        m.config_drift("n2", "vip", false);
        let text = m.encode();
        for line in [
            "haagent_epoch 42",
            "haagent_priority{kind=\"base\"} 100",
            "haagent_priority{kind=\"effective\"} 50",
            "haagent_peer_rtt_seconds{peer=\"n2\"} 0.0015",
            "haagent_peer_last_seen_seconds{peer=\"n2\"} 0.25",
            "haagent_peer_up{peer=\"n2\"} 1",
            "haagent_check_up{check=\"gw\"} 0",
            "haagent_check_latency_seconds{check=\"gw\"} 0.02",
            "haagent_cert_expiry_timestamp_seconds{cert=\"peer:n2\"} 1900000000",
            "haagent_config_drift{peer=\"n2\",setting=\"advert_interval\"} 1",
            "haagent_config_drift{peer=\"n2\",setting=\"vip\"} 0",
        ] {
            assert!(has_line(&text, line), "missing {line:?} in\n{text}");
        }
        // Families with a unit declare it (OpenMetrics `# UNIT`).
        assert!(
            has_line(&text, "# UNIT haagent_peer_rtt_seconds seconds"),
            "{text}"
        );
        assert!(has_line(
            &text,
            "# UNIT haagent_cert_expiry_timestamp_seconds seconds"
        ));
    }

    #[test]
    fn unknown_measurements_remove_the_series() {
        let m = Metrics::new("n1");
        m.peer(
            "n2",
            Some(Duration::from_millis(1)),
            Some(Duration::ZERO),
            true,
        );
        m.peer("n2", None, None, false);
        let text = m.encode();
        assert!(!text.contains("haagent_peer_rtt_seconds{"), "{text}");
        assert!(!text.contains("haagent_peer_last_seen_seconds{"), "{text}");
        assert!(has_line(&text, "haagent_peer_up{peer=\"n2\"} 0"));
    }

    #[test]
    fn garp_counter_follows_running_total_and_survives_reset() {
        let m = Metrics::new("n1");
        m.set_garps_sent(3);
        m.set_garps_sent(3);
        m.set_garps_sent(5);
        assert!(has_line(&m.encode(), "haagent_garp_sent_total 5"));
        // The announcer restarted and has sent 2 since: the counter never goes down.
        m.set_garps_sent(2);
        assert!(has_line(&m.encode(), "haagent_garp_sent_total 7"));
    }

    /// docs/metrics.md lists every label value the enums can produce.
    #[test]
    fn the_metrics_doc_lists_every_label() {
        let doc = include_str!("../docs/metrics.md");
        let labels = Cause::ALL
            .iter()
            .map(|c| c.label())
            .chain(NoticeCause::ALL.iter().map(|c| c.label()))
            .chain(RejectReason::all().map(RejectReason::label));
        for label in labels {
            assert!(doc.contains(&format!("| `{label}` |")), "{label} missing");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new("n1");
        m.advert_rejected(RejectReason::Admission(AdmissionKind::Malformed));
        m.check("say \"hi\"", true, None);
        let text = m.encode();
        assert!(has_line(
            &text,
            "haagent_adverts_rejected_total{reason=\"malformed\"} 1"
        ));
        assert!(
            has_line(&text, "haagent_check_up{check=\"say \\\"hi\\\"\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn request_lines_are_classified() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            parse_request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            parse_request(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Route::NotFound { head_only: false }
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(parse_request(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(parse_request(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
        assert_eq!(
            parse_request(b"GET /metrics SPDY/3\r\n\r\n"),
            Route::BadRequest
        );
    }
}
