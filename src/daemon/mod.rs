//! The daemon loop: the one place that owns sockets, the clock and the netlink handle.
//!
//! It feeds the pure [`Election`] with time, peer adverts and signals, and carries out the
//! actions it returns: send adverts over QUIC, install or release the VIPs with netlink,
//! announce them with gratuitous ARP, log transitions and run notify hooks.
//!
//! ```text
//!  transport task(s) ──TransportEvent──┐
//!  gateway witness ────WitnessEvent────┤
//!  ARP watch ──────────ArpConflict─────┤
//!  link watch ─────────LinkState───────┤
//!  address watch ──────AddressEvent────┤
//!  ARP probe (blocking pool) ─result───┼──> daemon loop ──> Election::handle(now, input)
//!  lease timer (while master) ─────────┤          │
//!  timer (election.next_deadline) ─────┤          │
//!  shutdown signal ────────────────────┘          │
//!                     actions: Send ─> Transport::broadcast
//!                              InstallVips / ReleaseVips ─> VipManager (rtnetlink, lease)
//!                              Announce ─> Announcer (pnet GARP burst + refresh)
//!                              Probe ─> ArpProbe on the blocking pool
//!                              Transition / Notice ─> log (+ Notifier)
//! ```
//!
//! The VIP lease: while master, the loop re-checks every quarter lease that the kernel still
//! has the VIPs and renews their lifetime. If it finds them gone (we were frozen longer than
//! the lease), it tells the election, which steps down instead of re-adding them: another
//! node may hold them by now.
//!
//! Kernel facts follow kernel notifications: the link watch follows the interface by name
//! (a re-created interface or a new MAC moves the netlink index, the packet sockets and the
//! election's MAC along), and the address watch reports a VIP leaving the interface at once.
//! A VIP removed by someone else while the lease still runs is installed again (see
//! `on_vip_removed` and docs/election.md); the lease check applies the same rule as a
//! backstop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::certs::{self, CertError};
use crate::config::GatewaySetting;
use crate::config::{Config, Overrides};
use crate::control::{ControlError, ControlRequest, ControlServer};
use crate::election::{Action, Cause, Election, ElectionConfig, FaultCause, Input, NoticeCause};
use crate::health::{HealthMonitor, Verdict};
use crate::metrics::{self, Metrics, MetricsError, RejectReason};
use crate::net::{format_mac, Ipv4Cidr};
use crate::notify::{Hooks, Notifier, TransitionEvent};
use crate::transport::{PeerSpec, Transport, TransportConfig, TransportError, TransportEvent};
use crate::vip::{
    AddressEvent, AddressWatch, Announcer, ArpConflict, ArpProbe, ArpWatch, CarrierWatch,
    GarpSender, LinkState, VipError, VipManager,
};
use crate::wire::{self, State};

mod admission;
mod operator;
mod solicit;

use admission::Admission;
pub use admission::{AdmissionError, AdmissionKind, MAX_EPOCH};

use crate::witness::{Gateway, Witness, WitnessConfig, WitnessError, WitnessEvent};

/// Why the agent could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Certificates or key unusable.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The VIP interface or netlink is unusable.
    #[error(transparent)]
    Vip(#[from] VipError),
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The gateway witness could not be set up.
    #[error(transparent)]
    Witness(#[from] WitnessError),
    /// The control socket could not be created.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The metrics endpoint could not be started.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The peers are on the VIP interface's subnet, but the interface has no address of
    /// its own there: peer traffic would leave from a VIP.
    #[error("{interface} has no address of its own on the peers' subnet (only VIPs): add one, or set [node] listen to the address peer traffic should come from")]
    NoOwnAddress {
        /// The VIP interface.
        interface: String,
    },
}

/// Changes the log level of the running agent (a filter such as `info` or `debug`).
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How the agent was started, for reloads and run-time log changes.
#[derive(Default)]
pub struct RunOptions {
    /// The config file given with `--config`, if any (else the default path or quick mode).
    pub config_file: Option<std::path::PathBuf>,
    /// The command-line flags, re-applied on every reload.
    pub overrides: Overrides,
    /// Changes the log level while running (a reload with a new `[log] level`).
    pub set_log_level: Option<SetLogLevel>,
}

/// Hashes each setting that must match across the cluster into one word of the advert's
/// fingerprint (cluster name, VIPs, advert interval, quorum mode, in that order).
pub(crate) fn fingerprint(config: &Config) -> ([u32; 4], Vec<&'static str>) {
    let settings = config.fingerprint_settings();
    let mut words = [0u32; 4];
    let mut names = Vec::new();
    for (word, (name, value)) in words.iter_mut().zip(settings) {
        let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
        let b = digest.as_ref();
        *word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        names.push(name);
    }
    (words, names)
}

/// Runs the agent until `shutdown` completes, then hands over gracefully: a master to its
/// best live backup first, make-before-break, and every node with a priority-0 advert.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (control, control_rx) =
        ControlServer::bind(&config.control_socket, config.control_group.as_deref())?;
    let metrics = Metrics::new(&config.node.name);
    let metrics_server = match config.metrics_listen {
        Some(listen) => {
            let server = metrics::serve(listen, Arc::clone(&metrics)).await?;
            tracing::info!(addr = %server.local_addr(), "metrics endpoint listening");
            Some(server)
        }
        None => None,
    };
    let identity = certs::load_identity(
        &config.tls.ca,
        &config.tls.cert,
        &config.tls.key,
        SystemTime::now(),
    )?;
    if !identity.names.iter().any(|n| n == &config.node.name) {
        tracing::warn!(
            node = %config.node.name,
            cert = %config.tls.cert.display(),
            names = ?identity.names,
            "this node's certificate does not carry its own name; peers configured by name will reject it"
        );
    }

    let vips = VipManager::open(&config.node.interface, config.vips.clone(), config.lease).await?;
    for stale in vips.remove_stale().await? {
        tracing::warn!(vip = %stale, interface = %config.node.interface,
            "removed VIP left on the interface (stale from an earlier crash) before joining");
    }
    let (carrier, link, carrier_rx) = CarrierWatch::spawn(&config.node.interface).await?;
    let (address_watch, address_rx) = AddressWatch::spawn(
        &config.node.interface,
        config.vips.iter().map(|v| v.addr).collect(),
    )?;
    let garp = GarpSender::open(&config.node.interface)?;
    let vip_addrs: Vec<_> = config.vips.iter().map(|v| v.addr).collect();
    let (arp_watch, conflicts) =
        ArpWatch::spawn(&config.node.interface, vips.mac(), vip_addrs.clone())?;
    let prober = if config.probe.count > 0 {
        Some(Arc::new(std::sync::Mutex::new(ArpProbe::open(
            &config.node.interface,
        )?)))
    } else {
        None
    };
    let (witness, witness_events) = match &config.witness {
        Some(w) => {
            let (witness, events) = Witness::spawn(WitnessConfig {
                gateway: match w.gateway {
                    GatewaySetting::Auto => Gateway::Auto,
                    GatewaySetting::Addr(a) => Gateway::Addr(a),
                },
                interface: config.node.interface.clone(),
                interval: w.interval,
                timeout: w.timeout,
                fall: w.fall,
                rise: w.rise,
                source: own_source(&config, &vips).await?,
            })
            .await?;
            tracing::info!(gateway = %witness.gateway(), "gateway witness started");
            (Some(witness), Some(events))
        }
        None => (None, None),
    };
    let announcer = Announcer::spawn(
        garp,
        config.vips.iter().map(|v| v.addr).collect(),
        config.garp.count,
        config.garp.spread,
        config.garp.refresh,
    );

    let peers: Vec<PeerSpec> = config
        .peers
        .iter()
        .map(|p| PeerSpec {
            name: p.name.clone(),
            addr: p.address,
        })
        .collect();
    metrics.set_cert_expiry("node", unix_secs(identity.not_after));
    let cert_not_after = identity.not_after;
    let listen = peer_listen_address(&config, &vips).await?;
    let (transport, events) = Transport::start(TransportConfig {
        listen,
        peers: peers.clone(),
        identity: Arc::new(identity),
        redial_interval: config.election.advert_interval * 2,
    })
    .await?;
    // Fast contact: a silent peer is redialled every two advert intervals (issue 9, fault 9).
    let (health, verdicts) = HealthMonitor::spawn(config.checks.clone());
    tracing::info!(
        node = %config.node.name,
        priority = config.node.priority,
        listen = %transport.local_addr(),
        interface = %config.node.interface,
        vips = %vip_list(&config),
        peers = config.peers.len(),
        "haagent started"
    );

    let notifier = Notifier::new(
        Hooks::from(&config.notify),
        config.node.name.clone(),
        vip_list(&config),
    );
    let election = Election::new(
        ElectionConfig {
            name: config.node.name.clone(),
            priority: config.node.priority,
            advert_interval: config.election.advert_interval,
            down_multiplier: config.election.down_multiplier,
            preempt: config.election.preempt,
            preempt_delay: config.election.preempt_delay,
            mac: vips.mac(),
            probe: prober.is_some(),
            cluster_size: config.peers.len() + 1,
            quorum: config.election.quorum,
            fingerprint: fingerprint(&config).0,
            foreign_holder_timeout: config.probe.foreign_holder_timeout,
        },
        Instant::now(),
    );
    let admission = Admission {
        name: config.node.name.clone(),
        cluster: config.cluster.clone(),
        cluster_word: fingerprint(&config).0[0],
        peers: peers.clone(),
    };
    let (probe_results, probe_rx) = tokio::sync::mpsc::channel(4);
    let mut daemon = Daemon {
        name: config.node.name.clone(),
        election,
        transport,
        vips,
        vip_addrs,
        lease: config.lease,
        lease_check_at: None,
        conflict_lease_check: None,
        redial_kicked: None,
        prober,
        probe_count: config.probe.count,
        probe_window: config.probe.window,
        probe_results,
        arp_watch,
        _carrier: carrier,
        _address_watch: address_watch,
        _witness: witness,
        announcer,
        notifier,
        peers,
        admission,
        bad_datagrams: HashSet::new(),
        hook_tasks: Vec::new(),
        counters: Counters::default(),
        ops: operator::Operator::new(
            config,
            options,
            control,
            health,
            metrics,
            metrics_server,
            cert_not_after,
        ),
        pending_verdicts: None,
    };
    daemon
        .run_loop(
            Inputs {
                transport: events,
                conflicts,
                probes: probe_rx,
                witness: witness_events,
                control: control_rx,
                verdicts,
                carrier: carrier_rx,
                addresses: address_rx,
            },
            link,
            shutdown,
        )
        .await;
    Ok(())
}

/// The node's own address to send from on the VIP interface: the configured `listen`
/// address if it is one of the interface's, else the own address on the peers' subnet,
/// else the first own address; `None` if the interface has only VIPs.
async fn own_source(
    config: &Config,
    vips: &VipManager,
) -> Result<Option<std::net::Ipv4Addr>, DaemonError> {
    let own = vips.own_addresses().await?;
    if let std::net::IpAddr::V4(ip) = config.node.listen.ip() {
        if own.iter().any(|c| c.addr == ip) {
            return Ok(Some(ip));
        }
    }
    let on_peer_subnet = own.iter().find(|c| {
        config.peers.iter().any(|p| match p.address.ip() {
            std::net::IpAddr::V4(a) => c.contains(a),
            std::net::IpAddr::V6(_) => false,
        })
    });
    Ok(on_peer_subnet.or(own.first()).map(|c| c.addr))
}

/// Where the QUIC endpoint binds. A configured address is used as is. The default
/// (`0.0.0.0`) lets the kernel pick each datagram's source, and it picks the subnet's
/// *primary* address — which is a VIP once the node's own address was deleted and added
/// again under `promote_secondaries` (a DHCP renew does that): the peers then see adverts
/// from the VIP, and after a handover answer into the void (issue 9, kind 3). So when a
/// peer is on the VIP interface's subnet, bind to the node's own address there instead.
async fn peer_listen_address(
    config: &Config,
    vips: &VipManager,
) -> Result<std::net::SocketAddr, DaemonError> {
    let listen = config.node.listen;
    let std::net::IpAddr::V4(ip) = listen.ip() else {
        return Ok(listen);
    };
    if !ip.is_unspecified() {
        return Ok(listen);
    }
    let own = vips.own_addresses().await?;
    let peer_ips: Vec<std::net::Ipv4Addr> = config
        .peers
        .iter()
        .filter_map(|p| match p.address.ip() {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    let on_segment = |c: &Ipv4Cidr| peer_ips.iter().any(|p| c.contains(*p));
    if let Some(mine) = own.iter().find(|c| on_segment(c)) {
        tracing::info!(address = %mine.addr, interface = %config.node.interface,
            "peer traffic leaves from this node's own address, never from a VIP");
        return Ok(std::net::SocketAddr::new(mine.addr.into(), listen.port()));
    }
    if config
        .vips
        .iter()
        .any(|v| peer_ips.iter().any(|p| v.contains(*p)))
    {
        return Err(DaemonError::NoOwnAddress {
            interface: config.node.interface.clone(),
        });
    }
    Ok(listen)
}

fn vip_list(config: &Config) -> String {
    config
        .vips
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts of events that are logged once but must not be lost.
#[derive(Debug, Default)]
struct Counters {
    adverts_sent: u64,
    adverts_received: u64,
    /// By [`RejectReason::label`].
    rejected: HashMap<&'static str, u64>,
    vip_conflicts: u64,
}

fn unix_secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Everything the loop listens to besides timers and the shutdown signal.
struct Inputs {
    transport: tokio::sync::mpsc::Receiver<TransportEvent>,
    conflicts: tokio::sync::mpsc::Receiver<ArpConflict>,
    probes: tokio::sync::mpsc::Receiver<Option<[u8; 6]>>,
    witness: Option<tokio::sync::mpsc::Receiver<WitnessEvent>>,
    control: tokio::sync::mpsc::Receiver<ControlRequest>,
    verdicts: tokio::sync::mpsc::Receiver<Verdict>,
    carrier: tokio::sync::mpsc::Receiver<LinkState>,
    addresses: tokio::sync::mpsc::Receiver<AddressEvent>,
}

struct Daemon {
    name: String,
    election: Election,
    transport: Transport,
    vips: VipManager,
    vip_addrs: Vec<std::net::Ipv4Addr>,
    /// Kernel lifetime of the installed VIPs, if any.
    lease: Option<std::time::Duration>,
    /// While master with a lease: when to verify and renew it next.
    lease_check_at: Option<Instant>,
    /// When a VIP conflict last triggered a lease check.
    conflict_lease_check: Option<Instant>,
    /// When a VIP conflict last made the transport redial an unheard peer.
    redial_kicked: Option<Instant>,
    prober: Option<Arc<std::sync::Mutex<ArpProbe>>>,
    probe_count: u32,
    probe_window: std::time::Duration,
    probe_results: tokio::sync::mpsc::Sender<Option<[u8; 6]>>,
    arp_watch: ArpWatch,
    _carrier: CarrierWatch,
    _address_watch: AddressWatch,
    _witness: Option<Witness>,
    announcer: Announcer,
    notifier: Notifier,
    peers: Vec<PeerSpec>,
    admission: Admission,
    /// (peer, kind) pairs already logged, so a misbehaving peer cannot flood the log: keyed
    /// by kind, never by what the datagram said, so at most peers × kinds entries.
    bad_datagrams: HashSet<(usize, AdmissionKind)>,
    hook_tasks: Vec<tokio::task::JoinHandle<()>>,
    counters: Counters,
    /// Status, control requests, health, metrics, reload and drift.
    ops: operator::Operator,
    /// The verdict channel of health checks restarted by a reload, picked up by the loop.
    pending_verdicts: Option<tokio::sync::mpsc::Receiver<Verdict>>,
}

impl Daemon {
    async fn run_loop(
        &mut self,
        mut inputs: Inputs,
        link: LinkState,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: reload with `haagent reload`");
                None
            }
        };
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        self.hold_until_checks_settle().await;
        self.on_link(link).await;
        self.step(Input::Start).await;
        // Set once a shutdown signal has asked the election to stop: a master hands over
        // first, and the election says when it is done (`stopped()`).
        let mut stopping = false;
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            let deadline = self.election.next_deadline();
            let sleep = sleep_until(deadline);
            let lease_check = sleep_until(self.lease_check_at);
            let witness = async {
                match inputs.witness.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    self.step(Input::Stop).await;
                }
                // First after a stall (SIGSTOP, a long pause): find out whether the kernel
                // dropped our VIPs before acting on anything else.
                () = lease_check => self.check_lease().await,
                event = inputs.transport.recv() => match event {
                    Some(event) => self.on_transport_event(event).await,
                    None => {
                        tracing::error!("transport stopped unexpectedly; shutting down");
                        break;
                    }
                },
                Some(answer) = inputs.probes.recv() => {
                    self.step(Input::ProbeResult { answered_by: answer }).await;
                }
                // The election's timer before every other input (issue 9, fault 6): it used
                // to come after the control socket, so a storm of `status` clients kept the
                // control arm always ready and the master's adverts gapped up to 436 ms
                // against a 171 ms master-down. Peer adverts (above) still come first, so a
                // backup never times out a master whose advert is already queued.
                () = sleep => {
                    self.step(Input::Timeout).await;
                }
                Some(conflict) = inputs.conflicts.recv() => self.on_conflict(conflict).await,
                Some(event) = witness => self.on_witness(event).await,
                Some(link) = inputs.carrier.recv() => self.on_link(link).await,
                Some(event) = inputs.addresses.recv() => self.on_address(event).await,
                Some(verdict) = inputs.verdicts.recv() => self.on_verdict(verdict).await,
                Some(()) = hup => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let answer = self.reload().await;
                    tracing::info!(ok = answer.ok, "{}", answer.message.unwrap_or_default());
                }
                _ = tick.tick() => self.refresh_metrics(),
                // Last, and one request per iteration: operators are served with what the
                // election leaves (the control server also caps its clients at 16).
                Some(req) = inputs.control.recv() => self.on_control(req).await,
            }
            if let Some(verdicts) = self.pending_verdicts.take() {
                inputs.verdicts = verdicts;
            }
            if self.election.stopped() {
                break;
            }
        }
        self.step(Input::Shutdown).await;
        self.announcer.stop();
        // Make sure the VIPs are gone even if we were not master by the election's account
        // (e.g. an install that half-failed).
        if let Err(e) = self.vips.release().await {
            tracing::error!(error = %e, "could not remove the VIPs while stopping");
        }
        self.transport.close().await;
        for task in self.hook_tasks.drain(..) {
            // Each hook task ends by itself at its own timeout.
            let _ = task.await;
        }
        tracing::info!(
            adverts_sent = self.counters.adverts_sent,
            adverts_received = self.counters.adverts_received,
            rejected = ?self.counters.rejected,
            "haagent stopped"
        );
    }

    /// While master: are the VIPs still there? Renew their lease if so; if not, handle it
    /// as a removal (`on_vip_removed`: a lease that ran out steps down, a foreign removal
    /// is repaired).
    async fn check_lease(&mut self) {
        let Some(lease) = self.lease else {
            self.lease_check_at = None;
            return;
        };
        match self.vips.installed().await {
            Ok(present) if present.len() < self.vips.vips().len() => {
                // A backstop for a lost RTM_DELADDR: the same rule as the address watch.
                let missing = self.vips.missing(&present);
                // Checked again in a quarter lease unless the handler decides otherwise.
                self.lease_check_at = Some(Instant::now() + lease / 4);
                self.on_vip_removed(missing).await;
            }
            Ok(_) => {
                if let Err(e) = self.vips.refresh().await {
                    tracing::error!(error = %e, "could not renew the VIP lease");
                }
                self.lease_check_at = Some(Instant::now() + lease / 4);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not list the VIPs to renew their lease");
                self.lease_check_at = Some(Instant::now() + lease / 4);
            }
        }
    }

    async fn on_link(&mut self, link: LinkState) {
        let moved = link.ifindex.is_some_and(|i| i != self.vips.ifindex())
            || link.mac.is_some_and(|m| m != self.vips.mac());
        let came_back = link.usable && self.election.faults().contains_key(&FaultCause::Link);
        if link.usable && (moved || came_back) {
            self.follow_interface(&link).await;
        }
        if link.usable {
            if self.election.faults().contains_key(&FaultCause::Link) {
                tracing::info!("{}", link.detail);
                self.step(Input::FaultCleared {
                    cause: FaultCause::Link,
                })
                .await;
            }
        } else {
            tracing::warn!("{}", link.detail);
            self.step(Input::Fault {
                cause: FaultCause::Link,
                reason: link.detail,
            })
            .await;
        }
    }

    /// The interface was re-created (new index), changed its MAC or came back up: move
    /// everything that holds its index or MAC to what the kernel says now. Packet sockets
    /// are reopened in every case, since one that lived through a down/up flap hands its
    /// next send a stale `ENETDOWN`.
    async fn follow_interface(&mut self, link: &LinkState) {
        let interface = self.vips.interface().to_string();
        let (Some(ifindex), Some(mac)) = (link.ifindex, link.mac) else {
            tracing::warn!(%interface, "the interface has no Ethernet MAC: gratuitous ARP cannot announce the VIPs");
            return;
        };
        let (old_index, old_mac) = (self.vips.ifindex(), self.vips.mac());
        if (ifindex, mac) != (old_index, old_mac) {
            tracing::warn!(%interface, ifindex, mac = %format_mac(&mac), old_ifindex = old_index,
                old_mac = %format_mac(&old_mac), "the interface changed: following it");
            self.vips.set_link(ifindex, mac);
        }
        if mac != old_mac {
            self.step(Input::MacChanged { mac }).await;
        }
        if let Err(e) = self.announcer.reopen() {
            tracing::error!(%interface, error = %e, "cannot reopen the gratuitous ARP socket");
        }
        if let Err(e) = self.arp_watch.reopen(mac) {
            tracing::error!(%interface, error = %e, "cannot restart the ARP watch");
        }
        if self.prober.is_some() {
            match ArpProbe::open(&interface) {
                // A probe running on the old socket finishes there; the next one uses this.
                Ok(p) => self.prober = Some(Arc::new(std::sync::Mutex::new(p))),
                Err(e) => {
                    tracing::error!(%interface, error = %e, "cannot reopen the ARP probe socket")
                }
            }
        }
    }

    async fn on_address(&mut self, event: AddressEvent) {
        match event {
            AddressEvent::Removed { ifindex, cidr } => {
                if ifindex == self.vips.ifindex() && self.vips.vips().contains(&cidr) {
                    self.on_vip_removed(vec![cidr]).await;
                }
            }
            AddressEvent::Added { .. } => {}
            AddressEvent::Resync => {
                if self.election.state() != State::Master || !self.vips.held() {
                    return;
                }
                match self.vips.installed().await {
                    Ok(present) => {
                        let missing = self.vips.missing(&present);
                        if !missing.is_empty() {
                            self.on_vip_removed(missing).await;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not list the VIPs after lost notifications")
                    }
                }
            }
        }
    }

    /// `missing` VIPs left the interface while we hold them. The rule (docs/election.md):
    /// - our own release is not a removal (we no longer hold them: [`VipManager::held`]);
    /// - the lease had run out (we stalled and did not renew it): the kernel deleted them
    ///   and another node may hold them by now, so step down as [`Input::LeaseLost`];
    /// - otherwise someone else removed them (`ip addr del`, a network manager) while we
    ///   are still the elected master: install them again and re-announce; if that fails,
    ///   go to fault so that a backup takes over.
    async fn on_vip_removed(&mut self, missing: Vec<Ipv4Cidr>) {
        if self.election.state() != State::Master || !self.vips.held() {
            return;
        }
        let now = Instant::now();
        let list = missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let interface = self.vips.interface().to_string();
        if self.vips.lease_expired(now) {
            self.lease_check_at = None;
            let lease = self.lease.map_or(0, |l| l.as_millis());
            let detail = format!(
                "{list} no longer on {interface}: the {lease} ms lease ran out while we were not running"
            );
            self.step(Input::LeaseLost { detail }).await;
            return;
        }
        let lease_left_ms = self.vips.lease_left(now).map(|d| d.as_millis());
        tracing::warn!(vips = %list, %interface, ?lease_left_ms,
            "{list} removed from {interface} (not by haagent) while we are master: installing and announcing it again");
        match self.vips.install().await {
            Ok(()) => {
                self.lease_check_at = self.lease.map(|l| Instant::now() + l / 4);
                self.announcer.announce();
            }
            Err(e) => {
                tracing::error!(error = %e, "could not install the VIPs again");
                self.step(Input::Fault {
                    cause: FaultCause::VipInstall,
                    reason: format!(
                        "{list} removed from {interface} (not by haagent) and installing it again failed: {e}"
                    ),
                })
                .await;
            }
        }
    }

    async fn on_conflict(&mut self, conflict: ArpConflict) {
        self.redial_if_unheard(conflict.mac);
        if self.election.state() != State::Master {
            return;
        }
        // Every frame is counted, none logged here: the election says what it does about
        // them, rate-limited (a forger can send thousands of frames a second).
        self.counters.vip_conflicts += 1;
        self.ops.metrics.vip_conflict();
        // If the kernel already dropped the VIP (lease ran out) the conflict is not ours to
        // win: the lease check steps us down. At most once per advert interval, so a flood
        // of frames does not become a flood of netlink requests.
        let now = Instant::now();
        if self.lease.is_some()
            && self
                .conflict_lease_check
                .is_none_or(|t| now >= t + self.election.config().advert_interval)
        {
            self.conflict_lease_check = Some(now);
            self.check_lease().await;
            if self.election.state() != State::Master {
                return;
            }
        }
        self.step(Input::Conflict { mac: conflict.mac }).await;
    }

    /// A frame from the MAC of a member we cannot hear proves the path to it is back (after
    /// a partition heals, both sides are master and claim the VIP): reach it now.
    fn redial_if_unheard(&mut self, mac: [u8; 6]) {
        let now = Instant::now();
        if self.reached_recently(now) {
            // Cheap under a flood of frames: no peer list built.
            return;
        }
        let views = self.election.peers();
        let Some(view) = views.iter().find(|v| v.mac == mac && !v.is_alive(now)) else {
            return;
        };
        match self
            .peers
            .iter()
            .position(|p| p.name.as_deref() == Some(view.name.as_str()))
        {
            Some(i) => self.reach(&[i]),
            // Quick mode (peers known by address): the transport ignores peers it hears.
            None => self.reach(&(0..self.peers.len()).collect::<Vec<_>>()),
        }
    }

    fn reached_recently(&self, now: Instant) -> bool {
        let interval = self.election.config().advert_interval;
        self.redial_kicked.is_some_and(|t| now < t + interval)
    }

    /// The path to these peers works again: the transport redials them now, and an ARP
    /// request for each refreshes both kernels' neighbour entries, which after a partition
    /// wait up to a second for their next retry (see `solicit.rs`). At most once per advert
    /// interval, so a flood of frames stays a trickle.
    fn reach(&mut self, targets: &[usize]) {
        let now = Instant::now();
        if self.reached_recently(now) {
            return;
        }
        self.redial_kicked = Some(now);
        let ours = match self.ops.config.node.listen.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        };
        for &i in targets {
            if let (Some(ours), Some(std::net::IpAddr::V4(peer))) =
                (ours, self.peers.get(i).map(|p| p.addr.ip()))
            {
                let (ifindex, mac) = (self.vips.ifindex(), self.vips.mac());
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = solicit::send_request(ifindex, mac, ours, peer) {
                        tracing::debug!(%peer, error = %e, "could not send an ARP request");
                    }
                });
            }
            self.transport.redial_now(i);
        }
    }

    async fn on_witness(&mut self, event: WitnessEvent) {
        let (reachable, detail) = match event {
            WitnessEvent::Reachable { gateway, rtt } => (
                true,
                format!("gateway {gateway} answers ({} µs)", rtt.as_micros()),
            ),
            WitnessEvent::Unreachable { gateway, reason } => (
                false,
                format!("gateway {gateway} does not answer: {reason}"),
            ),
        };
        if reachable {
            tracing::info!("{detail}");
        } else {
            tracing::warn!("{detail}");
        }
        self.step(Input::Witness { reachable, detail }).await;
    }

    /// Probes every VIP on the blocking pool; the answer comes back through the loop.
    fn start_probe(&self) {
        let Some(prober) = self.prober.clone() else {
            // Without a prober the election is configured not to ask; answer "nobody".
            let _ = self.probe_results.try_send(None);
            return;
        };
        let vips = self.vip_addrs.clone();
        let (count, window) = (self.probe_count, self.probe_window);
        let results = self.probe_results.clone();
        tokio::task::spawn_blocking(move || {
            let mut answer = None;
            let mut prober = match prober.lock() {
                Ok(p) => p,
                Err(poisoned) => poisoned.into_inner(),
            };
            for vip in vips {
                match prober.probe(vip, count, window) {
                    Ok(Some(mac)) => {
                        answer = Some(mac);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(%vip, error = %e, "ARP probe failed"),
                }
            }
            let _ = results.blocking_send(answer);
        });
    }

    async fn on_transport_event(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Datagram {
                peer,
                names,
                payload,
            } => match self.admission.admit(peer, &names, &payload) {
                Ok(advert) => {
                    // Heard again after silence: the peer may not hear us yet (our neighbour
                    // entry for it can still be failed), so reach it too.
                    let now = Instant::now();
                    let was_silent = self
                        .election
                        .peers()
                        .iter()
                        .any(|v| v.name == advert.name && !v.is_alive(now));
                    if was_silent {
                        self.reach(&[peer]);
                    }
                    self.counters.adverts_received += 1;
                    self.ops.metrics.advert_received(&advert.name);
                    self.ops.track_peer_advert(&advert);
                    self.ops.check_drift(&advert);
                    self.step(Input::Advert(advert)).await;
                }
                Err(problem) => {
                    let kind = problem.kind();
                    self.count_rejection(RejectReason::Admission(kind));
                    if self.bad_datagrams.insert((peer, kind)) {
                        tracing::warn!(peer = %self.peer_label(peer), reason = kind.label(),
                            %problem, "ignoring advert (logged once per peer and kind)");
                    }
                }
            },
            TransportEvent::Rejected {
                source,
                kind,
                reason,
            } => {
                // The transport logs each source and kind once (bounded); here it is only
                // counted.
                self.count_rejection(RejectReason::Connection(kind));
                tracing::debug!(%source, reason = kind.label(), %reason, "connection rejected");
            }
            TransportEvent::Up { peer, remote } => {
                tracing::info!(peer = %self.peer_label(peer), %remote, "peer connected");
            }
            TransportEvent::Down { peer, reason } => {
                tracing::info!(peer = %self.peer_label(peer), %reason, "peer connection closed");
            }
        }
    }

    fn count_rejection(&mut self, reason: RejectReason) {
        *self.counters.rejected.entry(reason.label()).or_default() += 1;
        self.ops.metrics.advert_rejected(reason);
    }

    fn peer_label(&self, peer: usize) -> String {
        match self.peers.get(peer) {
            Some(PeerSpec {
                name: Some(name), ..
            }) => name.clone(),
            Some(PeerSpec { addr, .. }) => addr.to_string(),
            None => format!("#{peer}"),
        }
    }

    /// Feeds one input to the election and carries out every action, including the inputs
    /// that carrying them out produces (a failed VIP install becomes a Fault). Returns the
    /// notices, for a caller that answers an operator with them.
    async fn step(&mut self, input: Input) -> Vec<(NoticeCause, String)> {
        let mut notices = Vec::new();
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let actions = self.election.handle(Instant::now(), input);
            for action in actions {
                if let Action::Notice { cause, reason } = &action {
                    notices.push((*cause, reason.clone()));
                }
                if let Some(follow_up) = self.execute(action).await {
                    inputs.push_back(follow_up);
                }
            }
        }
        notices
    }

    async fn execute(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Send(advert) => {
                self.counters.adverts_sent += 1;
                self.ops.metrics.advert_sent();
                self.transport.broadcast(wire::encode(&advert).into());
                None
            }
            Action::InstallVips => {
                self.ops.vips_changed();
                match self.vips.install().await {
                    Ok(()) => {
                        self.lease_check_at = self.lease.map(|l| Instant::now() + l / 4);
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not install the VIPs");
                        Some(Input::Fault {
                            cause: FaultCause::VipInstall,
                            reason: format!("VIP install failed: {e}"),
                        })
                    }
                }
            }
            Action::Announce => {
                self.announcer.announce();
                None
            }
            Action::Probe => {
                self.start_probe();
                None
            }
            Action::Notice { cause, reason } => {
                tracing::warn!(cause = cause.label(), "{reason}");
                self.ops.metrics.notice(cause);
                if cause == NoticeCause::ClaimBlocked {
                    if let Some(block) = self.election.claim_blocked().cloned() {
                        let tasks = self.notifier.fire_claim_blocked(&block, &reason);
                        self.hook_tasks.retain(|t| !t.is_finished());
                        self.hook_tasks.extend(tasks);
                    }
                }
                None
            }
            Action::ReleaseVips => {
                self.lease_check_at = None;
                self.announcer.stop();
                self.ops.vips_changed();
                if let Err(e) = self.vips.release().await {
                    tracing::error!(error = %e, "could not remove the VIPs");
                }
                None
            }
            Action::Transition {
                from,
                to,
                epoch,
                cause,
                reason,
            } => {
                let label = cause.label();
                let stopping = cause == Cause::Shutdown;
                if to == State::Master || from == State::Master || to == State::Fault {
                    tracing::warn!(from = %from, to = %to, epoch, cause = label, "{reason}");
                } else {
                    tracing::info!(from = %from, to = %to, epoch, cause = label, "{reason}");
                }
                let tasks = self.notifier.fire(&TransitionEvent {
                    from,
                    to,
                    epoch,
                    cause,
                    reason: &reason,
                    stopping,
                });
                self.ops.record_transition(from, to, epoch, cause, &reason);
                self.hook_tasks.retain(|t| !t.is_finished());
                self.hook_tasks.extend(tasks);
                None
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
