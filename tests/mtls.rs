//! Mutual TLS between haagent transports, in process, over loopback with real quinn.
//!
//! Two good nodes (n1, n2) exchange datagrams; nodes with a certificate from another CA,
//! without a client certificate, with an unknown name or with an expired certificate are
//! rejected by n1, and nothing they send ever reaches n1's event receiver. Also the start-up
//! checks of `load_identity`. One test runs the pair inside a network namespace to cut the
//! path between them with nftables.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use haagent::certs::{self, CertError, NodeIdentity};
use haagent::transport::{
    PeerSpec, RejectKind, Transport, TransportConfig, TransportError, TransportEvent,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(10);
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Builds an identity from PEM files WITHOUT the start-up checks, to impersonate bad nodes.
fn raw_identity(ca: &Path, cert: &Path, key: &Path) -> NodeIdentity {
    let ca: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let summary = certs::summarize(&chain[0]).unwrap();
    NodeIdentity {
        ca,
        chain,
        key: PrivateKeyDer::from_pem_file(key).unwrap(),
        names: summary.names,
        ips: summary.ips,
        not_after: summary.not_after,
    }
}

fn bind() -> UdpSocket {
    UdpSocket::bind((LOOPBACK, 0)).unwrap()
}

fn named(name: &str, addr: SocketAddr) -> PeerSpec {
    PeerSpec {
        name: Some(name.to_string()),
        addr,
    }
}

/// An event receiver that remembers everything it has seen.
struct Events {
    rx: Receiver<TransportEvent>,
    seen: Vec<TransportEvent>,
}

impl Events {
    fn new(rx: Receiver<TransportEvent>) -> Self {
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for an event matching `pred`.
    async fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&TransportEvent) -> bool,
    ) -> Option<TransportEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => {
                    self.seen.push(ev.clone());
                    if pred(&ev) {
                        return Some(ev);
                    }
                }
                Ok(None) => panic!("event channel closed while waiting for {what}"),
                Err(_) => return None,
            }
        }
    }

    async fn expect(
        &mut self,
        what: &str,
        pred: impl Fn(&TransportEvent) -> bool,
    ) -> TransportEvent {
        match self.wait_for(what, WAIT, pred).await {
            Some(ev) => ev,
            None => panic!("timed out waiting for {what}; seen: {:#?}", self.seen),
        }
    }

    fn datagrams(&self) -> Vec<(usize, Vec<String>, Bytes)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                TransportEvent::Datagram {
                    peer,
                    names,
                    payload,
                } => Some((*peer, names.clone(), payload.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Broadcasts `payload` from `from` until `to` reports it (datagrams are unreliable).
async fn deliver(from: &Transport, to: &mut Events, payload: &'static [u8]) -> TransportEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        from.broadcast(Bytes::from_static(payload));
        let got = to
            .wait_for("datagram", Duration::from_millis(200), |e| {
                matches!(e, TransportEvent::Datagram { payload: p, .. } if p.as_ref() == payload)
            })
            .await;
        if let Some(ev) = got {
            return ev;
        }
    }
    panic!(
        "datagram {:?} never arrived; seen: {:#?}",
        String::from_utf8_lossy(payload),
        to.seen
    );
}

/// A CA with two good nodes, n1 and n2, connected to each other by name.
struct Pair {
    dir: tempfile::TempDir,
    n1: Transport,
    n1_events: Events,
    n1_addr: SocketAddr,
    n2: Transport,
    n2_events: Events,
}

impl Pair {
    async fn start(quick: bool) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        certs::init_ca(dir.path(), "test", 30, false).unwrap();
        let ca = dir.path().join("ca.pem");
        let mut ids = Vec::new();
        for name in ["n1", "n2"] {
            let w = certs::issue(dir.path(), name, &[LOOPBACK], 10, false).unwrap();
            ids.push(Arc::new(
                certs::load_identity(&ca, &w.cert, &w.key, SystemTime::now()).unwrap(),
            ));
        }
        let (s1, s2) = (bind(), bind());
        let (a1, a2) = (s1.local_addr().unwrap(), s2.local_addr().unwrap());
        let peer = |name: &str, addr| {
            if quick {
                PeerSpec { name: None, addr }
            } else {
                named(name, addr)
            }
        };
        let (n1, rx1) = Transport::start_with_socket(
            TransportConfig {
                listen: a1,
                peers: vec![peer("n2", a2)],
                identity: Arc::clone(&ids[0]),
                redial_interval: Duration::ZERO,
            },
            s1,
        )
        .await
        .unwrap();
        let (n2, rx2) = Transport::start_with_socket(
            TransportConfig {
                listen: a2,
                peers: vec![peer("n1", a1)],
                identity: Arc::clone(&ids[1]),
                redial_interval: Duration::ZERO,
            },
            s2,
        )
        .await
        .unwrap();
        assert_eq!(n1.local_addr(), a1);
        let mut n1_events = Events::new(rx1);
        let mut n2_events = Events::new(rx2);
        n1_events
            .expect("n1: Up n2", |e| {
                matches!(e, TransportEvent::Up { peer: 0, .. })
            })
            .await;
        n2_events
            .expect("n2: Up n1", |e| {
                matches!(e, TransportEvent::Up { peer: 0, .. })
            })
            .await;
        Pair {
            dir,
            n1,
            n1_events,
            n1_addr: a1,
            n2,
            n2_events,
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Starts an extra node that dials n1 (by name), with the given identity.
    async fn intruder(&self, identity: NodeIdentity) -> (Transport, Events) {
        self.intruder_with(identity, Duration::ZERO).await
    }

    /// [`Pair::intruder`] with fast contact at `redial`.
    async fn intruder_with(&self, identity: NodeIdentity, redial: Duration) -> (Transport, Events) {
        let (t, rx) = Transport::start(TransportConfig {
            listen: SocketAddr::new(LOOPBACK, 0),
            peers: vec![named("n1", self.n1_addr)],
            identity: Arc::new(identity),
            redial_interval: redial,
        })
        .await
        .unwrap();
        (t, Events::new(rx))
    }

    /// Waits for n1 to reject `source`, then proves with a fresh n2 -> n1 datagram that the
    /// channel is flowing and that nothing but n2's datagrams reached n1. Returns the kind
    /// and the reason of n1's rejection.
    async fn assert_rejected_by_n1(
        &mut self,
        source: SocketAddr,
        intruder_payload: &[u8],
    ) -> (RejectKind, String) {
        let ev = self
            .n1_events
            .expect(
                "n1: Rejected intruder",
                |e| matches!(e, TransportEvent::Rejected { source: s, .. } if *s == source),
            )
            .await;
        let TransportEvent::Rejected { kind, reason, .. } = ev else {
            unreachable!()
        };
        eprintln!("n1 rejected {source} ({kind}): {reason}");
        deliver(&self.n2, &mut self.n1_events, b"barrier").await;
        for (peer, names, payload) in self.n1_events.datagrams() {
            assert_eq!(peer, 0);
            assert_eq!(names, vec!["n2".to_string()]);
            assert_ne!(
                payload.as_ref(),
                intruder_payload,
                "intruder datagram reached n1"
            );
        }
        (kind, reason)
    }

    /// Issues a certificate for `name` from the cluster CA with the given validity.
    fn issue_with_validity(&self, name: &str, from: SystemTime, until: SystemTime) -> NodeIdentity {
        let dir = self
            .dir
            .path()
            .join(format!("validity-{name}-{}", unique()));
        std::fs::create_dir(&dir).unwrap();
        for f in ["ca.pem", "ca-key.pem"] {
            std::fs::copy(self.dir.path().join(f), dir.join(f)).unwrap();
        }
        let w = certs::issue_with_validity(&dir, name, &[LOOPBACK], from, until, false).unwrap();
        raw_identity(&self.ca(), &w.cert, &w.key)
    }

    /// A good node of the cluster (n1's certificate) dials `dialled` at a server that holds
    /// `server_identity` and has no peers. Returns the kind of the dialler's rejection (its
    /// own verifier judged the server) and of the server's (it only learns the dialler's
    /// alert).
    async fn dial_a_bad_server(
        &self,
        server_identity: NodeIdentity,
        dialled: &str,
    ) -> (RejectKind, RejectKind) {
        let (server, rx) = Transport::start(TransportConfig {
            listen: SocketAddr::new(LOOPBACK, 0),
            peers: vec![],
            identity: Arc::new(server_identity),
            redial_interval: Duration::ZERO,
        })
        .await
        .unwrap();
        let mut server_events = Events::new(rx);
        let dir = self.dir.path();
        let good = certs::load_identity(
            &self.ca(),
            &dir.join("n1.pem"),
            &dir.join("n1-key.pem"),
            SystemTime::now(),
        )
        .unwrap();
        let (dialler, rx) = Transport::start(TransportConfig {
            listen: SocketAddr::new(LOOPBACK, 0),
            peers: vec![named(dialled, server.local_addr())],
            identity: Arc::new(good),
            redial_interval: Duration::ZERO,
        })
        .await
        .unwrap();
        let mut dialler_events = Events::new(rx);
        let dialler_kind = rejected_kind(
            dialler_events
                .expect("dialler: Rejected", |e| {
                    matches!(e, TransportEvent::Rejected { .. })
                })
                .await,
        );
        let server_kind = rejected_kind(
            server_events
                .expect("server: Rejected", |e| {
                    matches!(e, TransportEvent::Rejected { .. })
                })
                .await,
        );
        assert!(!dialler.stats()[0].connected);
        assert!(!dialler_events
            .seen
            .iter()
            .any(|e| matches!(e, TransportEvent::Up { .. })));
        dialler.close().await;
        server.close().await;
        (dialler_kind, server_kind)
    }
}

fn rejected_kind(ev: TransportEvent) -> RejectKind {
    match ev {
        TransportEvent::Rejected { kind, reason, .. } => {
            eprintln!("rejected ({kind}): {reason}");
            kind
        }
        other => panic!("not a rejection: {other:?}"),
    }
}

fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_peers_exchange_datagrams_both_ways() {
    let mut p = Pair::start(false).await;
    let ev = deliver(&p.n1, &mut p.n2_events, b"hello from n1").await;
    assert_eq!(
        ev,
        TransportEvent::Datagram {
            peer: 0,
            names: vec!["n1".to_string()],
            payload: Bytes::from_static(b"hello from n1"),
        }
    );
    let ev = deliver(&p.n2, &mut p.n1_events, b"hello from n2").await;
    assert!(matches!(ev, TransportEvent::Datagram { peer: 0, names, .. } if names == ["n2"]));
    let stats = p.n1.stats();
    assert_eq!(stats.len(), 1);
    assert!(stats[0].connected);
    assert!(stats[0].rtt.is_some());
    assert_eq!(stats[0].remote.map(|a| a.ip()), Some(LOOPBACK));

    // A final datagram sent right before close() still arrives, then the link goes down.
    p.n2.broadcast(Bytes::from_static(b"bye"));
    p.n2.close().await;
    p.n1_events
        .expect(
            "n1: final datagram",
            |e| matches!(e, TransportEvent::Datagram { payload, .. } if payload.as_ref() == b"bye"),
        )
        .await;
    p.n1_events
        .expect("n1: Down n2", |e| {
            matches!(e, TransportEvent::Down { peer: 0, .. })
        })
        .await;
    assert!(!p.n1.stats()[0].connected);
    p.n1.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_matches_ip_and_rejects_other_ips() {
    let mut p = Pair::start(true).await;
    deliver(&p.n1, &mut p.n2_events, b"quick 1").await;
    deliver(&p.n2, &mut p.n1_events, b"quick 2").await;

    // Valid CA, but the certificate carries 127.0.0.2 only, not n1's configured 127.0.0.1.
    let w = certs::issue(
        p.dir.path(),
        "elsewhere",
        &["127.0.0.2".parse().unwrap()],
        10,
        false,
    )
    .unwrap();
    let id = certs::load_identity(&p.ca(), &w.cert, &w.key, SystemTime::now()).unwrap();
    let (t, rx) = Transport::start(TransportConfig {
        listen: SocketAddr::new(LOOPBACK, 0),
        peers: vec![PeerSpec {
            name: None,
            addr: p.n1_addr,
        }],
        identity: Arc::new(id),
        redial_interval: Duration::ZERO,
    })
    .await
    .unwrap();
    let _rx = rx;
    let (kind, reason) = p.assert_rejected_by_n1(t.local_addr(), b"").await;
    assert_eq!(kind, RejectKind::UnknownPeer, "{reason}");
    assert!(reason.contains("match no configured peer"), "{reason}");
    assert!(reason.contains("127.0.0.2"), "{reason}");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_rejected() {
    let mut p = Pair::start(false).await;
    // Another CA issues a certificate for "n2" itself; once with a different CA name, once
    // with the same name (same issuer DN, different key).
    for cluster in ["other", "test"] {
        let other = tempfile::tempdir().unwrap();
        certs::init_ca(other.path(), cluster, 30, false).unwrap();
        let w = certs::issue(other.path(), "n2", &[LOOPBACK], 10, false).unwrap();
        // It trusts the real CA (so it accepts n1's certificate and presents its own).
        let id = raw_identity(&p.ca(), &w.cert, &w.key);
        let (t, mut events) = p.intruder(id).await;
        t.broadcast(Bytes::from_static(b"rogue"));
        let (kind, reason) = p.assert_rejected_by_n1(t.local_addr(), b"rogue").await;
        assert_eq!(kind, RejectKind::UnknownCa, "{cluster}: {reason}");
        assert!(
            reason.contains("not signed by this cluster's CA"),
            "{reason}"
        );
        // The intruder learns it was refused (from n1's alert: unknown_ca for another
        // issuer name, decrypt_error for the same name) and never counts n1 as up.
        let ev = events
            .expect("intruder: Rejected", |e| {
                matches!(e, TransportEvent::Rejected { .. })
            })
            .await;
        assert_eq!(rejected_kind(ev), RejectKind::UnknownCa, "{cluster}");
        assert!(!events
            .seen
            .iter()
            .any(|e| matches!(e, TransportEvent::Up { .. })));
        assert!(!t.stats()[0].connected);
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_rejected() {
    let mut p = Pair::start(false).await;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(p.ca()).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![haagent::transport::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(LOOPBACK, 0)).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let source = endpoint.local_addr().unwrap();
    // In TLS 1.3 the client may well see its handshake succeed: try to send anyway.
    let closed = match endpoint.connect(p.n1_addr, "n1").unwrap().await {
        Ok(conn) => {
            let _ = conn.send_datagram(Bytes::from_static(b"anonymous"));
            tokio::time::timeout(WAIT, conn.closed())
                .await
                .expect("n1 never closed the anonymous connection")
        }
        Err(e) => e,
    };
    let (kind, reason) = p.assert_rejected_by_n1(source, b"anonymous").await;
    assert_eq!(kind, RejectKind::NoCertificate, "{reason}");
    assert!(reason.contains("sent no certificates"), "{reason}");
    // The dialler only sees n1's certificate_required alert (0x100 + 116).
    let quinn::ConnectionError::ConnectionClosed(close) = &closed else {
        panic!("expected a CONNECTION_CLOSE from n1, got {closed:?}");
    };
    assert_eq!(
        RejectKind::from_crypto_code(u64::from(close.error_code)),
        Some(RejectKind::NoCertificate),
        "{closed:?}"
    );
    endpoint.close(0u32.into(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_node_name_is_rejected() {
    let mut p = Pair::start(false).await;
    let w = certs::issue(p.dir.path(), "n3", &[LOOPBACK], 10, false).unwrap();
    let id = certs::load_identity(&p.ca(), &w.cert, &w.key, SystemTime::now()).unwrap();
    let (t, mut events) = p.intruder(id).await;
    t.broadcast(Bytes::from_static(b"n3 says hi"));
    let (kind, reason) = p.assert_rejected_by_n1(t.local_addr(), b"n3 says hi").await;
    assert_eq!(kind, RejectKind::UnknownPeer, "{reason}");
    assert!(
        reason.contains("\"n3\"") && reason.contains("match no configured peer"),
        "{reason}"
    );
    let ev = events
        .expect("n3: Rejected", |e| {
            matches!(e, TransportEvent::Rejected { .. })
        })
        .await;
    let TransportEvent::Rejected {
        source,
        kind,
        reason,
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(source, p.n1_addr);
    assert_eq!(kind, RejectKind::UnknownPeer, "{reason}");
    assert!(
        reason.contains("does not accept our certificate"),
        "{reason}"
    );
    assert!(!t.stats()[0].connected);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_rejected() {
    let mut p = Pair::start(false).await;
    // An expired certificate for the configured name "n2", signed by the right CA.
    let old = p.dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for f in ["ca.pem", "ca-key.pem"] {
        std::fs::copy(p.dir.path().join(f), old.join(f)).unwrap();
    }
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let w = certs::issue_with_validity(&old, "n2", &[LOOPBACK], now - day * 30, now - day, false)
        .unwrap();
    let err = certs::load_identity(&p.ca(), &w.cert, &w.key, now).unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&w.cert.display().to_string()) && msg.contains("expired at"),
        "{msg}"
    );
    assert!(
        msg.contains("issue a new one with `haagent certs issue`"),
        "{msg}"
    );

    let (t, mut events) = p.intruder(raw_identity(&p.ca(), &w.cert, &w.key)).await;
    t.broadcast(Bytes::from_static(b"stale"));
    let (kind, reason) = p.assert_rejected_by_n1(t.local_addr(), b"stale").await;
    assert_eq!(kind, RejectKind::Expired, "{reason}");
    assert!(reason.contains("certificate expired"), "{reason}");
    // One day out of date: a missed rotation, not a clock problem.
    assert!(!reason.contains("clock is the likely culprit"), "{reason}");
    let ev = events
        .expect("intruder: Rejected", |e| {
            matches!(e, TransportEvent::Rejected { .. })
        })
        .await;
    assert_eq!(rejected_kind(ev), RejectKind::Expired);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_yet_valid_certificate_is_rejected() {
    let mut p = Pair::start(false).await;
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let id = p.issue_with_validity("n2", now + day, now + day * 10);
    let (t, mut events) = p.intruder(id).await;
    t.broadcast(Bytes::from_static(b"early"));
    let (kind, reason) = p.assert_rejected_by_n1(t.local_addr(), b"early").await;
    assert_eq!(kind, RejectKind::NotYetValid, "{reason}");
    assert!(reason.contains("not valid yet"), "{reason}");
    // TLS has one alert for "expired" and "not yet valid": the intruder only knows that.
    let ev = events
        .expect("intruder: Rejected", |e| {
            matches!(e, TransportEvent::Rejected { .. })
        })
        .await;
    assert_eq!(rejected_kind(ev), RejectKind::Expired);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_far_outside_its_window_blames_the_local_clock() {
    // n1 sees a certificate that ended 900 days ago: to n1 that looks exactly like its own
    // clock having jumped 900 days ahead, and the log line says so.
    let mut p = Pair::start(false).await;
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let id = p.issue_with_validity("n2", now - day * 1000, now - day * 900);
    let (t, _events) = p.intruder(id).await;
    let (kind, reason) = p.assert_rejected_by_n1(t.local_addr(), b"").await;
    assert_eq!(kind, RejectKind::Expired, "{reason}");
    assert!(
        reason.contains("this node's own clock is the likely culprit"),
        "{reason}"
    );
    assert!(reason.contains("900 days after its end"), "{reason}");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialling_side_names_what_is_wrong_with_the_server() {
    let p = Pair::start(false).await;
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);

    // An expired server certificate: the dialler's verifier says so; the server only hears
    // the certificate_expired alert.
    let expired = p.issue_with_validity("n2", now - day * 30, now - day);
    assert_eq!(
        p.dial_a_bad_server(expired, "n2").await,
        (RejectKind::Expired, RejectKind::Expired)
    );

    // A server certificate from another CA.
    let other = tempfile::tempdir().unwrap();
    certs::init_ca(other.path(), "other", 30, false).unwrap();
    let w = certs::issue(other.path(), "n2", &[LOOPBACK], 10, false).unwrap();
    let foreign = raw_identity(&p.ca(), &w.cert, &w.key);
    assert_eq!(
        p.dial_a_bad_server(foreign, "n2").await,
        (RejectKind::UnknownCa, RejectKind::UnknownCa)
    );

    // The right CA, another name: rustls refuses the name (bad_certificate alert).
    let w = certs::issue(p.dir.path(), "n3", &[LOOPBACK], 10, false).unwrap();
    let n3 = raw_identity(&p.ca(), &w.cert, &w.key);
    assert_eq!(
        p.dial_a_bad_server(n3, "n2").await,
        (RejectKind::UnknownPeer, RejectKind::UnknownPeer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_match_case_sensitively() {
    let mut p = Pair::start(false).await;
    // A cluster certificate for "N2" is not peer "n2" (the election compares names
    // exactly, so the transport must too).
    let w = certs::issue(p.dir.path(), "N2", &[LOOPBACK], 10, false).unwrap();
    let ca = p.ca();
    let upper = || raw_identity(&ca, &w.cert, &w.key);
    let (t, mut events) = p.intruder(upper()).await;
    t.broadcast(Bytes::from_static(b"shouting"));
    let (kind, reason) = p.assert_rejected_by_n1(t.local_addr(), b"shouting").await;
    assert_eq!(kind, RejectKind::UnknownPeer, "{reason}");
    assert!(reason.contains("\"N2\""), "{reason}");
    let ev = events
        .expect("N2: Rejected", |e| {
            matches!(e, TransportEvent::Rejected { .. })
        })
        .await;
    assert_eq!(rejected_kind(ev), RejectKind::UnknownPeer);
    t.close().await;
    // Dialling "n2" and finding "N2": TLS name checks ignore case (RFC 6125), haagent's
    // identity check does not.
    let (dialler, _) = p.dial_a_bad_server(upper(), "n2").await;
    assert_eq!(dialler, RejectKind::UnknownPeer);
}

#[test]
fn load_identity_names_the_file_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    certs::init_ca(dir.path(), "test", 30, false).unwrap();
    let ca = dir.path().join("ca.pem");
    let n1 = certs::issue(dir.path(), "n1", &[LOOPBACK], 10, false).unwrap();
    let n2 = certs::issue(dir.path(), "n2", &[LOOPBACK], 10, false).unwrap();
    let now = SystemTime::now();

    // World-readable key.
    std::fs::set_permissions(&n1.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let msg = certs::load_identity(&ca, &n1.cert, &n1.key, now)
        .unwrap_err()
        .to_string();
    let key = n1.key.display().to_string();
    assert!(msg.contains(&format!("chmod 600 {key}")), "{msg}");
    std::fs::set_permissions(&n1.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    certs::load_identity(&ca, &n1.cert, &n1.key, now).unwrap();

    // Someone else's key.
    let err = certs::load_identity(&ca, &n1.cert, &n2.key, now).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&n2.key.display().to_string()), "{msg}");
    assert!(msg.contains(&n1.cert.display().to_string()), "{msg}");

    // Missing files, each named.
    for (c, cert, key) in [
        (
            dir.path().join("nope-ca.pem"),
            n1.cert.clone(),
            n1.key.clone(),
        ),
        (ca.clone(), dir.path().join("nope.pem"), n1.key.clone()),
        (ca.clone(), n1.cert.clone(), dir.path().join("nope-key.pem")),
    ] {
        let err = certs::load_identity(&c, &cert, &key, now).unwrap_err();
        let missing = [&c, &cert, &key]
            .into_iter()
            .find(|p| !p.exists())
            .unwrap()
            .display()
            .to_string();
        assert!(matches!(err, CertError::Read { .. }), "{err}");
        assert!(err.to_string().contains(&missing), "{err}");
    }

    // A key file where the certificate should be.
    let err = certs::load_identity(&ca, &n1.key, &n1.key, now).unwrap_err();
    assert!(matches!(err, CertError::NoCertificate { .. }), "{err}");
    assert!(err.to_string().contains("n1-key.pem"), "{err}");
}

#[tokio::test]
async fn bind_failure_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    certs::init_ca(dir.path(), "test", 30, false).unwrap();
    let w = certs::issue(dir.path(), "n1", &[LOOPBACK], 10, false).unwrap();
    let id = certs::load_identity(
        &dir.path().join("ca.pem"),
        &w.cert,
        &w.key,
        SystemTime::now(),
    )
    .unwrap();
    let taken = bind();
    let addr = taken.local_addr().unwrap();
    let err = Transport::start(TransportConfig {
        listen: addr,
        peers: vec![],
        identity: Arc::new(id),
        redial_interval: Duration::ZERO,
    })
    .await
    .unwrap_err();
    assert!(matches!(err, TransportError::Bind { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("already in use"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_comes_back_up() {
    let mut p = Pair::start(false).await;
    let a2 = p.n2.local_addr();
    p.n2.close().await;
    drop(p.n2);
    p.n1_events
        .expect("n1: Down n2", |e| {
            matches!(e, TransportEvent::Down { peer: 0, .. })
        })
        .await;
    // The old endpoint releases its port only after its connections have drained (a dial
    // still in its handshake drains for ~3 s): retry the bind for a bounded time.
    let mut socket = None;
    for _ in 0..1000 {
        match UdpSocket::bind(a2) {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let socket = socket.expect("port of the stopped node never became free");
    let dir = p.dir.path();
    let id = certs::load_identity(
        &dir.join("ca.pem"),
        &dir.join("n2.pem"),
        &dir.join("n2-key.pem"),
        SystemTime::now(),
    )
    .unwrap();
    let (n2, rx) = Transport::start_with_socket(
        TransportConfig {
            listen: a2,
            peers: vec![named("n1", p.n1_addr)],
            identity: Arc::new(id),
            redial_interval: Duration::ZERO,
        },
        socket,
    )
    .await
    .unwrap();
    let mut n2_events = Events::new(rx);
    p.n1_events
        .expect("n1: Up n2 again", |e| {
            matches!(e, TransportEvent::Up { peer: 0, .. })
        })
        .await;
    deliver(&n2, &mut p.n1_events, b"back again").await;
    deliver(&p.n1, &mut n2_events, b"welcome back").await;
    n2.close().await;
    p.n1.close().await;
}

/// Sends a numbered datagram every 10 ms (the fast advert interval) from `from`; returns the
/// sender task and the number of the last datagram sent.
fn numbered_sender(from: Transport) -> (tokio::task::JoinHandle<Transport>, Arc<AtomicU64>) {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for n in 1..=800u64 {
            tick.tick().await;
            from.broadcast(Bytes::copy_from_slice(&n.to_be_bytes()));
            counter.store(n, Ordering::SeqCst);
        }
        from
    });
    (task, sent)
}

/// The number in a datagram from [`numbered_sender`].
fn number(ev: &TransportEvent) -> Option<u64> {
    match ev {
        TransportEvent::Datagram { payload, .. } => {
            Some(u64::from_be_bytes(payload.as_ref().try_into().ok()?))
        }
        _ => None,
    }
}

#[test]
fn datagrams_flow_again_at_once_when_a_partition_heals() {
    if !support::require_root("datagrams_flow_again_at_once_when_a_partition_heals") {
        return;
    }
    let lab = support::veth::VethLab::new("tq", "192.0.2.1/24", "192.0.2.2/24");
    let ns = lab.a.name().to_string();
    let healed_after = lab.run_in_a(move || async move {
        let mut p = Pair::start(false).await;
        let (task, sent) = numbered_sender(p.n1);
        p.n2_events
            .expect("n2: first numbered datagram", |e| number(e).is_some())
            .await;
        // Three seconds of partition: enough datagrams go unacknowledged to fill a
        // standard congestion window (~15 KB), and the probe timeout backs off.
        let table = format!("haagent_cut_{}", std::process::id());
        let nft = |script: String| {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "nft", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .map(|mut stdin| stdin.write_all(script.as_bytes()))
                        .transpose()?;
                    child.wait_with_output()
                })
                .expect("nft (apt-get install nftables)");
            assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
        };
        nft(format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0;\n    iifname \"lo\" meta l4proto udp drop\n  }}\n}}\n"
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        nft(format!("delete table inet {table}\n"));
        let healed = std::time::Instant::now();
        let first_after = sent.load(Ordering::SeqCst) + 1;
        p.n2_events
            .expect("n2: a datagram sent after the partition healed", |e| {
                number(e).is_some_and(|n| n >= first_after)
            })
            .await;
        let took = healed.elapsed();
        task.abort();
        p.n2.close().await;
        took
    });
    eprintln!(
        "first datagram through {} ms after the partition healed",
        healed_after.as_millis()
    );
    // Datagrams go out every 10 ms; the bound leaves room for a loaded machine, and a
    // transport that had to reconnect (backoff from 100 ms up) would miss it.
    assert!(
        healed_after < Duration::from_millis(300),
        "datagrams resumed only {healed_after:?} after the partition healed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_identity_is_presented_to_new_connections() {
    let p = Pair::start(false).await;
    // A new certificate for n1 (same CA, same name), valid for 20 days instead of 10.
    let dir = p.dir.path().join("renewed");
    std::fs::create_dir(&dir).unwrap();
    for f in ["ca.pem", "ca-key.pem"] {
        std::fs::copy(p.dir.path().join(f), dir.join(f)).unwrap();
    }
    let w = certs::issue(&dir, "n1", &[LOOPBACK], 20, false).unwrap();
    let renewed = certs::load_identity(&p.ca(), &w.cert, &w.key, SystemTime::now()).unwrap();
    let renewed_not_after = renewed.not_after;
    p.n1.reload_identity(&renewed).unwrap();

    // A new connection from n2's identity sees the renewed certificate.
    let d = p.dir.path();
    let n2 = certs::load_identity(
        &p.ca(),
        &d.join("n2.pem"),
        &d.join("n2-key.pem"),
        SystemTime::now(),
    )
    .unwrap();
    let (t, rx) = Transport::start(TransportConfig {
        listen: SocketAddr::new(LOOPBACK, 0),
        peers: vec![named("n1", p.n1_addr)],
        identity: Arc::new(n2),
        redial_interval: Duration::ZERO,
    })
    .await
    .unwrap();
    let mut events = Events::new(rx);
    events
        .expect("fresh n2: Up n1", |e| {
            matches!(e, TransportEvent::Up { peer: 0, .. })
        })
        .await;
    let seen = t.stats()[0].cert_not_after.expect("peer certificate");
    let secs = |s: SystemTime| s.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs(seen), secs(renewed_not_after));
    t.close().await;
}

/// Polls `t`'s link to peer 0 until `pred` holds (bounded by [`WAIT`]).
async fn wait_link(
    t: &Transport,
    what: &str,
    pred: impl Fn(&haagent::transport::PeerLinkStats) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let link = t.stats()[0].clone();
        if pred(&link) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {link:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_reaches_the_live_peer_without_a_down() {
    let mut p = Pair::start(false).await;
    let d = p.dir.path().to_path_buf();
    let old_serial = p.n2.stats()[0]
        .cert_serial
        .clone()
        .expect("n1's serial at n2");
    let w = certs::renew(&d, "n1", 20).unwrap();
    let renewed = certs::load_identity(&p.ca(), &w.cert, &w.key, SystemTime::now()).unwrap();
    let new_serial = certs::serial_of(&renewed).unwrap();
    assert_ne!(new_serial, old_serial);
    let done = p.n1.reload_identity(&renewed).unwrap();
    assert!(done.certificate_changed);
    assert!(done.closed_untrusted.is_empty());
    // n1 dials n2 anew beside the live connection: n2 sends on the newest one and sees the
    // new serial, and neither side ever loses the peer.
    wait_link(&p.n2, "n2 to see n1's new serial", |l| {
        l.cert_serial.as_deref() == Some(new_serial.as_str())
    })
    .await;
    deliver(&p.n1, &mut p.n2_events, b"after renewal").await;
    deliver(&p.n2, &mut p.n1_events, b"after renewal, back").await;
    let downs = |e: &Events| {
        e.seen
            .iter()
            .filter(|e| matches!(e, TransportEvent::Down { .. }))
            .count()
    };
    assert_eq!(downs(&p.n1_events), 0, "{:#?}", p.n1_events.seen);
    assert_eq!(downs(&p.n2_events), 0, "{:#?}", p.n2_events.seen);
    // The same identity again changes nothing.
    let again = certs::load_identity(&p.ca(), &w.cert, &w.key, SystemTime::now()).unwrap();
    assert!(!p.n1.reload_identity(&again).unwrap().certificate_changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_no_longer_trusts_the_peers_ca_closes_its_connection() {
    let mut p = Pair::start(false).await;
    // n1 moves to a new CA (and a certificate from it) without the old CA in its bundle:
    // n2's certificate, from the old CA, no longer verifies.
    let other = p.dir.path().join("other-ca");
    certs::init_ca(&other, "test", 30, false).unwrap();
    let w = certs::issue(&other, "n1", &[LOOPBACK], 10, false).unwrap();
    let moved =
        certs::load_identity(&other.join("ca.pem"), &w.cert, &w.key, SystemTime::now()).unwrap();
    let done = p.n1.reload_identity(&moved).unwrap();
    assert_eq!(done.closed_untrusted.len(), 1, "{done:?}");
    assert!(done.closed_untrusted[0].contains("n2"), "{done:?}");
    p.n1_events
        .expect("n1: Down n2", |e| {
            matches!(e, TransportEvent::Down { peer: 0, .. })
        })
        .await;

    // With a bundle of both CAs, n1 trusts n2 again and keeps it.
    let bundle = p.dir.path().join("bundle.pem");
    let mut both = std::fs::read(p.ca()).unwrap();
    both.extend(std::fs::read(other.join("ca.pem")).unwrap());
    std::fs::write(&bundle, both).unwrap();
    let bundled = certs::load_identity(&bundle, &w.cert, &w.key, SystemTime::now()).unwrap();
    assert_eq!(bundled.ca.len(), 2);
    let done = p.n1.reload_identity(&bundled).unwrap();
    assert!(done.closed_untrusted.is_empty(), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_peers_keeps_unchanged_peers_and_closes_removed_ones() {
    let mut p = Pair::start(false).await;
    let n2_addr = p.n2.local_addr();
    // A third peer nobody runs: appended, n2 keeps index 0 and its connection.
    let ghost = SocketAddr::new(LOOPBACK, bind().local_addr().unwrap().port());
    p.n1.set_peers(vec![named("n2", n2_addr), named("n3", ghost)])
        .unwrap();
    assert_eq!(p.n1.stats().len(), 2);
    deliver(&p.n2, &mut p.n1_events, b"still here").await;
    assert!(p.n1.stats()[0].connected);
    assert!(!p
        .n1_events
        .seen
        .iter()
        .any(|e| matches!(e, TransportEvent::Down { .. })));
    // n2 removed: its connection closes (Down) and it is not dialled again.
    p.n1.set_peers(vec![]).unwrap();
    p.n1_events
        .expect("n1: Down n2", |e| {
            matches!(e, TransportEvent::Down { peer: 0, .. })
        })
        .await;
    assert!(p.n1.stats().is_empty());
    // Back again: dialled and up.
    p.n1.set_peers(vec![named("n2", n2_addr)]).unwrap();
    p.n1_events
        .expect("n1: Up n2 again", |e| {
            matches!(e, TransportEvent::Up { peer: 0, .. })
        })
        .await;
}

/// Distinct QUIC connections (destination connection IDs of long-header packets) that
/// reached `sink` within `window`.
async fn dials_seen(sink: tokio::net::UdpSocket, window: Duration) -> usize {
    let mut ids = std::collections::HashSet::new();
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, sink.recv(&mut buf)).await {
        // Long header: flags, version (4), DCID length, DCID.
        if n > 6 && buf[0] & 0x80 != 0 {
            let len = usize::from(buf[5]);
            if n >= 6 + len {
                ids.insert(buf[6..6 + len].to_vec());
            }
        }
    }
    ids.len()
}

/// Issue 9, fault 9: with fast contact on, a peer that does not answer at all is dialled
/// afresh every redial interval (the old loop let one dial wait its 5 s handshake timeout,
/// then backed off up to 2 s), while a peer that answers and rejects us keeps the
/// exponential backoff, so it is not hammered. Counts are bounded loosely (2 shared cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_contact_redials_a_silent_peer_often_and_a_rejecting_one_rarely() {
    let p = Pair::start(false).await;
    let dir = p.dir.path().to_path_buf();
    let n2 = certs::load_identity(
        &p.ca(),
        &dir.join("n2.pem"),
        &dir.join("n2-key.pem"),
        SystemTime::now(),
    )
    .unwrap();
    let sink = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let (t, _rx) = Transport::start(TransportConfig {
        listen: SocketAddr::new(LOOPBACK, 0),
        peers: vec![named("n1", sink.local_addr().unwrap())],
        identity: Arc::new(n2),
        redial_interval: Duration::from_millis(100),
    })
    .await
    .unwrap();
    let window = Duration::from_millis(1500);
    let silent = dials_seen(sink, window).await;
    t.close().await;
    eprintln!("fast contact: {silent} dials of a silent peer in {window:?}");
    assert!(
        (5..=17).contains(&silent),
        "{silent} dials of a silent peer in {window:?} (one per 100 ms expected)"
    );

    // An unknown name ("n3") dials n1, which answers and rejects it every time.
    let w = certs::issue(p.dir.path(), "n3", &[LOOPBACK], 10, false).unwrap();
    let id = certs::load_identity(&p.ca(), &w.cert, &w.key, SystemTime::now()).unwrap();
    let (t, mut events) = p.intruder_with(id, Duration::from_millis(100)).await;
    let window = Duration::from_secs(3);
    let _ = events.wait_for("nothing", window, |_| false).await;
    let rejected = events
        .seen
        .iter()
        .filter(|e| matches!(e, TransportEvent::Rejected { .. }))
        .count();
    t.close().await;
    eprintln!("fast contact: {rejected} dials of a rejecting peer in {window:?}");
    assert!(
        (1..=7).contains(&rejected),
        "{rejected} rejected dials in {window:?}: the backoff (100 ms doubling to 2 s) allows 6"
    );
}

// ---- Wire version negotiation (ALPN haagent/2, haagent/1) ----

/// A CA, and identities for n1 and n2 (checked like the agent loads them).
fn cluster_ids() -> (tempfile::TempDir, NodeIdentity, NodeIdentity) {
    let dir = tempfile::tempdir().unwrap();
    certs::init_ca(dir.path(), "test", 30, false).unwrap();
    let ca = dir.path().join("ca.pem");
    let mut ids = ["n1", "n2"].map(|name| {
        let w = certs::issue(dir.path(), name, &[LOOPBACK], 10, false).unwrap();
        Some(certs::load_identity(&ca, &w.cert, &w.key, SystemTime::now()).unwrap())
    });
    let (n1, n2) = (ids[0].take().unwrap(), ids[1].take().unwrap());
    (dir, n1, n2)
}

fn roots_of(id: &NodeIdentity) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in &id.ca {
        roots.add(ca.clone()).unwrap();
    }
    Arc::new(roots)
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A QUIC client of a release before wire v2: mutual TLS with `id`, offering only
/// `haagent/1`.
fn v1_only_client(id: &NodeIdentity) -> quinn::ClientConfig {
    let mut tls = rustls::ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots_of(id))
        .with_client_auth_cert(id.chain.clone(), id.clone_key())
        .unwrap();
    tls.alpn_protocols = vec![b"haagent/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(quic))
}

/// A QUIC server of a release before wire v2: client certificate required, accepting only
/// `haagent/1` (and its doctor's ALPN).
fn v1_only_server(id: &NodeIdentity) -> quinn::ServerConfig {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots_of(id), ring())
            .build()
            .unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.clone_key())
        .unwrap();
    tls.alpn_protocols = vec![b"haagent/1".to_vec(), b"haagent-doctor/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    quinn::ServerConfig::with_crypto(Arc::new(quic))
}

fn alpn_of(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
}

/// What the transport sends a dialler it accepts (transport/mod.rs `ACCEPTED`), as a v1
/// release sends it too.
const CONFIRMATION: &[u8] = b"haagent accepted";

/// Calls `send` until `conn` receives a datagram (bounded); returns it.
async fn first_datagram(conn: &quinn::Connection, send: impl Fn()) -> Bytes {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        send();
        if let Ok(got) =
            tokio::time::timeout(Duration::from_millis(200), conn.read_datagram()).await
        {
            return got.unwrap();
        }
    }
    panic!("no datagram arrived within {WAIT:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_new_nodes_speak_wire_v2_and_get_the_v2_datagram() {
    let mut p = Pair::start(false).await;
    assert_eq!(p.n1.stats()[0].wire_version, Some(2));
    assert_eq!(p.n2.stats()[0].wire_version, Some(2));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        p.n1.broadcast_versioned(Bytes::from_static(b"v2"), Some(Bytes::from_static(b"v1")));
        let got = p
            .n2_events
            .wait_for("datagram", Duration::from_millis(200), |e| {
                matches!(e, TransportEvent::Datagram { .. })
            })
            .await;
        if let Some(TransportEvent::Datagram { payload, .. }) = got {
            assert_eq!(payload.as_ref(), b"v2");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing arrived");
    }
    // The plain broadcast still reaches a v2 peer.
    deliver(&p.n1, &mut p.n2_events, b"plain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_only_client_still_connects_and_gets_exact_v1() {
    let (_dir, n1_id, n2_id) = cluster_ids();
    // n1 knows n2 at an address where nothing answers: only n2's own dial connects them.
    let silent = bind();
    let (n1, rx) = Transport::start(TransportConfig {
        listen: SocketAddr::new(LOOPBACK, 0),
        peers: vec![named("n2", silent.local_addr().unwrap())],
        identity: Arc::new(n1_id),
        redial_interval: Duration::ZERO,
    })
    .await
    .unwrap();
    let mut events = Events::new(rx);
    let endpoint = quinn::Endpoint::client(SocketAddr::new(LOOPBACK, 0)).unwrap();
    let conn = endpoint
        .connect_with(v1_only_client(&n2_id), n1.local_addr(), "n1")
        .unwrap()
        .await
        .unwrap();
    assert_eq!(alpn_of(&conn).as_deref(), Some(&b"haagent/1"[..]));
    let mut confirmation = conn.accept_uni().await.unwrap();
    assert_eq!(
        confirmation.read_to_end(64).await.unwrap(),
        CONFIRMATION,
        "n1 did not accept the v1 client"
    );
    events
        .expect("n1: Up n2", |e| {
            matches!(e, TransportEvent::Up { peer: 0, .. })
        })
        .await;
    assert_eq!(n1.stats()[0].wire_version, Some(1));
    // Without a v1 copy a v1 peer gets nothing; with one, exactly that copy (datagrams on
    // one loopback connection arrive in order, so the first one proves the first sends
    // carried nothing).
    for _ in 0..3 {
        n1.broadcast_versioned(Bytes::from_static(b"v2 only"), None);
    }
    let got = first_datagram(&conn, || {
        n1.broadcast_versioned(Bytes::from_static(b"v2"), Some(Bytes::from_static(b"v1")));
    })
    .await;
    assert_eq!(got.as_ref(), b"v1");
    // And what the v1 client sends reaches n1.
    conn.send_datagram(Bytes::from_static(b"from v1")).unwrap();
    events
        .expect("n1: the v1 client's datagram", |e| {
            matches!(e, TransportEvent::Datagram { payload, .. } if payload.as_ref() == b"from v1")
        })
        .await;
    conn.close(0u32.into(), b"");
    endpoint.close(0u32.into(), b"");
    n1.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_client_speaks_v1_to_a_v1_only_server() {
    let (_dir, n1_id, n2_id) = cluster_ids();
    let server =
        quinn::Endpoint::server(v1_only_server(&n2_id), SocketAddr::new(LOOPBACK, 0)).unwrap();
    let (n1, rx) = Transport::start(TransportConfig {
        listen: SocketAddr::new(LOOPBACK, 0),
        peers: vec![named("n2", server.local_addr().unwrap())],
        identity: Arc::new(n1_id),
        redial_interval: Duration::ZERO,
    })
    .await
    .unwrap();
    let mut events = Events::new(rx);
    let incoming = tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("n1 never dialled")
        .unwrap();
    let conn = incoming.await.unwrap();
    assert_eq!(alpn_of(&conn).as_deref(), Some(&b"haagent/1"[..]));
    let mut stream = conn.open_uni().await.unwrap();
    stream.write_all(CONFIRMATION).await.unwrap();
    stream.finish().unwrap();
    events
        .expect("n1: Up n2", |e| {
            matches!(e, TransportEvent::Up { peer: 0, .. })
        })
        .await;
    assert_eq!(n1.stats()[0].wire_version, Some(1));
    let got = first_datagram(&conn, || {
        n1.broadcast_versioned(Bytes::from_static(b"v2"), Some(Bytes::from_static(b"v1")));
    })
    .await;
    assert_eq!(got.as_ref(), b"v1");
    n1.close().await;
    server.close(0u32.into(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_probe_still_works_and_gets_the_v1_copy() {
    let p = Pair::start(false).await;
    let dir = p.dir.path();
    let n2_id = certs::load_identity(
        &p.ca(),
        &dir.join("n2.pem"),
        &dir.join("n2-key.pem"),
        SystemTime::now(),
    )
    .unwrap();
    p.n1.broadcast_versioned(Bytes::from_static(b"v2"), Some(Bytes::from_static(b"v1")));
    let answer = haagent::transport::probe(
        &n2_id,
        SocketAddr::new(LOOPBACK, 0),
        &named("n1", p.n1_addr),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.names, vec!["n1".to_string()]);
    assert_eq!(answer.advert.as_deref(), Some(&b"v1"[..]));
    p.n1.broadcast_versioned(Bytes::from_static(b"v2"), None);
    let answer = haagent::transport::probe(
        &n2_id,
        SocketAddr::new(LOOPBACK, 0),
        &named("n1", p.n1_addr),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.advert.as_deref(), Some(&b"v2"[..]));
}
