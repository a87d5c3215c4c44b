//! Start-up: the validated [`Config`] into the drivers the daemon owns (control socket,
//! metrics endpoint, certificates, VIP manager, link and address watches, ARP sockets,
//! witness, announcer, QUIC transport, health checks) and the election.
//!
//! One convention: the config is read here and nowhere else at start-up, by one function
//! per driver, named after it (`vip_manager`, `announcer`, `witness`, `transport`,
//! `election`, …), which takes `&Config` first, then the facts learnt while starting (the
//! interface's MAC, the node's own address), and returns the started driver. Drivers that
//! take a settings struct get it built inside that function. A reload builds three of them
//! again with the same functions ([`notifier`], [`health`], [`metrics_server`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc::{self, Receiver};

use crate::certs::{self, CertError, NodeIdentity};
use crate::config::{Config, GatewaySetting};
use crate::control::{ControlError, ControlRequest, ControlServer};
use crate::election::{Election, ElectionConfig, Reconfig};
use crate::health::{HealthMonitor, Verdict};
use crate::metrics::{self, Metrics, MetricsError, MetricsServer};
use crate::net::Ipv4Cidr;
use crate::notify::{Hooks, Notifier};
use crate::transport::{PeerSpec, Transport, TransportConfig, TransportError, TransportEvent};
use crate::vip::{
    AddressEvent, AddressWatch, Announcer, ArpConflict, ArpProbe, ArpWatch, CarrierWatch,
    GarpSender, LinkState, VipError, VipManager,
};
use crate::witness::{Gateway, Witness, WitnessConfig, WitnessError, WitnessEvent};

use super::admission::{Admission, GroupKey, Intake};
use super::execute::{unix_secs, Arp, Executor, PeerLinks, Record, Vips};
use super::operator::OwnCert;

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

/// What `start` hands the loop: the election and every driver, grouped as they are owned.
pub(super) struct Started {
    pub(super) election: Election,
    pub(super) exec: Executor,
    pub(super) intake: Intake,
    /// The operator side's drivers (see `operator::Operator::new`).
    pub(super) control: ControlServer,
    pub(super) health: HealthMonitor,
    pub(super) metrics: Arc<Metrics>,
    pub(super) metrics_server: Option<MetricsServer>,
    /// This node's certificate (expiry and serial).
    pub(super) cert: OwnCert,
    /// Drivers that only report through [`Inputs`].
    pub(super) carrier: CarrierWatch,
    pub(super) address_watch: AddressWatch,
    pub(super) witness: Option<Witness>,
    /// The link as it was when the watch started; the loop applies it first.
    pub(super) link: LinkState,
}

/// Everything the loop listens to besides timers and signals, one receiver per driver.
pub(super) struct Inputs {
    pub(super) transport: Receiver<TransportEvent>,
    pub(super) probes: Receiver<Option<[u8; 6]>>,
    pub(super) conflicts: Receiver<ArpConflict>,
    pub(super) witness: Option<Receiver<WitnessEvent>>,
    pub(super) control: Receiver<ControlRequest>,
    pub(super) verdicts: Receiver<Verdict>,
    pub(super) carrier: Receiver<LinkState>,
    pub(super) addresses: Receiver<AddressEvent>,
}

/// Starts every driver from `config`, in dependency order: control socket and metrics
/// first (so a failing start-up is visible there), then certificates, the interface's
/// drivers, the transport and the checks.
pub(super) async fn start(config: &Config) -> Result<(Started, Inputs), DaemonError> {
    let (control, control_rx) = control(config)?;
    let metrics = Metrics::new(&config.node.name);
    let metrics_server = metrics_server(config, &metrics).await?;
    let identity = load_identity(config)?;
    metrics.set_cert_expiry("node", unix_secs(identity.not_after));
    let cert = OwnCert::of(&identity);

    let vips = vip_manager(config).await?;
    let (carrier, link, carrier_rx) = CarrierWatch::spawn(&config.node.interface).await?;
    let (address_watch, address_rx) = address_watch(config)?;
    let announcer = announcer(config)?;
    let (arp_watch, conflicts) = arp_watch(config, vips.mac())?;
    let prober = prober(config)?;
    let (witness, witness_rx) = match witness(config, &vips).await? {
        Some((witness, rx)) => (Some(witness), Some(rx)),
        None => (None, None),
    };
    let (transport, transport_rx) = transport(config, &vips, identity).await?;
    let (health, verdicts) = health(config);
    tracing::info!(
        node = %config.node.name,
        priority = config.node.priority,
        listen = %transport.local_addr(),
        interface = %config.node.interface,
        vips = %vip_list(config),
        peers = config.peers.len(),
        "haagent started"
    );
    metrics.set_priority(config.node.priority, config.node.priority);
    let election = election(config, vips.mac(), prober.is_some());
    let (probe_results, probes) = mpsc::channel(4);
    let exec = Executor {
        peers: PeerLinks {
            transport,
            specs: peer_specs(config),
            own_ip: own_ip(config),
            redial_kicked: None,
        },
        vips: Vips {
            manager: vips,
            lease: config.lease,
            check_at: None,
            conflict_check: None,
            held: None,
        },
        arp: Arp {
            announcer,
            watch: arp_watch,
            prober,
            probe_count: config.probe.count,
            probe_window: config.probe.window,
            vip_addrs: vip_addrs(config),
            probe_results,
        },
        record: Record::new(Arc::clone(&metrics), notifier(config)),
    };
    let started = Started {
        election,
        exec,
        intake: intake(config),
        control,
        health,
        metrics,
        metrics_server,
        cert,
        carrier,
        address_watch,
        witness,
        link,
    };
    let inputs = Inputs {
        transport: transport_rx,
        probes,
        conflicts,
        witness: witness_rx,
        control: control_rx,
        verdicts,
        carrier: carrier_rx,
        addresses: address_rx,
    };
    Ok((started, inputs))
}

fn control(config: &Config) -> Result<(ControlServer, Receiver<ControlRequest>), ControlError> {
    ControlServer::bind(&config.control_socket, config.control_group.as_deref())
}

/// Loads the node's certificate and key and warns when the certificate does not carry the
/// node's own name.
fn load_identity(config: &Config) -> Result<NodeIdentity, CertError> {
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
    Ok(identity)
}

/// The metrics endpoint, if `[metrics] listen` is set.
pub(super) async fn metrics_server(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Option<MetricsServer>, MetricsError> {
    let Some(listen) = config.metrics_listen else {
        return Ok(None);
    };
    let server = metrics::serve(listen, Arc::clone(metrics)).await?;
    tracing::info!(addr = %server.local_addr(), "metrics endpoint listening");
    Ok(Some(server))
}

/// The notify hooks (built again by a reload that changes them).
pub(super) fn notifier(config: &Config) -> Notifier {
    Notifier::new(
        Hooks::from(&config.notify),
        config.node.name.clone(),
        vip_list(config),
    )
}

/// The health checks and their verdicts (started again by a reload that changes them).
pub(super) fn health(config: &Config) -> (HealthMonitor, Receiver<Verdict>) {
    HealthMonitor::spawn(config.checks.clone())
}

/// The VIP manager on the interface, after removing VIPs an earlier run left behind.
async fn vip_manager(config: &Config) -> Result<VipManager, VipError> {
    let vips = VipManager::open(&config.node.interface, config.vips.clone(), config.lease).await?;
    for stale in vips.remove_stale().await? {
        tracing::warn!(vip = %stale, interface = %config.node.interface,
            "removed VIP left on the interface (stale from an earlier crash) before joining");
    }
    Ok(vips)
}

fn address_watch(config: &Config) -> Result<(AddressWatch, Receiver<AddressEvent>), VipError> {
    AddressWatch::spawn(&config.node.interface, vip_addrs(config))
}

fn arp_watch(config: &Config, mac: [u8; 6]) -> Result<(ArpWatch, Receiver<ArpConflict>), VipError> {
    ArpWatch::spawn(&config.node.interface, mac, vip_addrs(config))
}

/// The ARP probe, unless probing is off (`[probe] count = 0`).
fn prober(config: &Config) -> Result<Option<Arc<Mutex<ArpProbe>>>, VipError> {
    if config.probe.count == 0 {
        return Ok(None);
    }
    let probe = ArpProbe::open(&config.node.interface)?;
    Ok(Some(Arc::new(Mutex::new(probe))))
}

fn announcer(config: &Config) -> Result<Announcer, VipError> {
    let garp = GarpSender::open(&config.node.interface)?;
    Ok(Announcer::spawn(
        garp,
        vip_addrs(config),
        config.garp.count,
        config.garp.spread,
        config.garp.refresh,
    ))
}

/// The gateway witness, if `[witness]` is set; it sends from the node's own address.
async fn witness(
    config: &Config,
    vips: &VipManager,
) -> Result<Option<(Witness, Receiver<WitnessEvent>)>, DaemonError> {
    let Some(w) = &config.witness else {
        return Ok(None);
    };
    let settings = WitnessConfig {
        gateway: match w.gateway {
            GatewaySetting::Auto => Gateway::Auto,
            GatewaySetting::Addr(a) => Gateway::Addr(a),
        },
        interface: config.node.interface.clone(),
        interval: w.interval,
        timeout: w.timeout,
        fall: w.fall,
        rise: w.rise,
        source: own_source(config, vips).await?,
    };
    let (witness, events) = Witness::spawn(settings).await?;
    tracing::info!(gateway = %witness.gateway(), "gateway witness started");
    Ok(Some((witness, events)))
}

/// The QUIC endpoint, bound where [`peer_listen_address`] says.
async fn transport(
    config: &Config,
    vips: &VipManager,
    identity: NodeIdentity,
) -> Result<(Transport, Receiver<TransportEvent>), DaemonError> {
    let settings = TransportConfig {
        listen: peer_listen_address(config, vips).await?,
        peers: peer_specs(config),
        identity: Arc::new(identity),
        // Fast contact: a silent peer is redialled every two advert intervals (issue 9,
        // fault 9).
        redial_interval: config.election.advert_interval * 2,
    };
    Ok(Transport::start(settings).await?)
}

fn election(config: &Config, mac: [u8; 6], probe: bool) -> Election {
    let settings = ElectionConfig {
        name: config.node.name.clone(),
        priority: config.node.priority,
        advert_interval: config.election.advert_interval,
        down_multiplier: config.election.down_multiplier,
        preempt: config.election.preempt,
        preempt_delay: config.election.preempt_delay,
        mac,
        probe,
        cluster_size: config.peers.len() + 1,
        quorum: config.election.quorum,
        fingerprint: config.fingerprint().words,
        foreign_holder_timeout: config.probe.foreign_holder_timeout,
    };
    Election::new(settings, Instant::now())
}

/// What a reload hands the running election: the timers, preemption, cluster size and
/// fingerprint of `config`.
pub(super) fn reconfig(config: &Config) -> Reconfig {
    Reconfig {
        advert_interval: config.election.advert_interval,
        down_multiplier: config.election.down_multiplier,
        preempt: config.election.preempt,
        preempt_delay: config.election.preempt_delay,
        cluster_size: config.peers.len() + 1,
        quorum: config.election.quorum,
        fingerprint: config.fingerprint().words,
    }
}

fn intake(config: &Config) -> Intake {
    let crate::config::Fingerprint { words, names } = config.fingerprint();
    let rules = Admission {
        name: config.node.name.clone(),
        cluster: config.cluster.clone(),
        cluster_word: words[0],
        peers: peer_specs(config),
    };
    let mut intake = Intake::new(rules, words, names);
    intake.set_groups(config.groups.iter().map(GroupKey::of).collect());
    intake
}

/// The peers of `config` for a running transport that has `running`: a peer still
/// configured (same name, or same address in quick mode) keeps its index, with its new
/// address; new peers come after them. So a reload that adds or re-addresses a peer leaves
/// the others' connections alone (a removed one shifts those after it).
pub(super) fn arrange_peers(running: &[PeerSpec], config: &Config) -> Vec<PeerSpec> {
    let mut fresh = peer_specs(config);
    let same = |a: &PeerSpec, b: &PeerSpec| match (&a.name, &b.name) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.addr == b.addr,
        _ => false,
    };
    let mut out = Vec::with_capacity(fresh.len());
    for old in running {
        if let Some(i) = fresh.iter().position(|f| same(old, f)) {
            out.push(fresh.remove(i));
        }
    }
    out.extend(fresh);
    out
}

/// The configured peers, indexed like the transport's peer indices.
fn peer_specs(config: &Config) -> Vec<PeerSpec> {
    config
        .peers
        .iter()
        .map(|p| PeerSpec {
            name: p.name.clone(),
            addr: p.address,
        })
        .collect()
}

/// The configured own address, the sender of ARP solicitations (none when unspecified).
fn own_ip(config: &Config) -> Option<Ipv4Addr> {
    match config.node.listen.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// The node's own address to send from on the VIP interface: the configured `listen`
/// address if it is one of the interface's, else the own address on the peers' subnet,
/// else the first own address; `None` if the interface has only VIPs.
async fn own_source(config: &Config, vips: &VipManager) -> Result<Option<Ipv4Addr>, DaemonError> {
    let own = vips.own_addresses().await?;
    if let IpAddr::V4(ip) = config.node.listen.ip() {
        if own.iter().any(|c| c.addr == ip) {
            return Ok(Some(ip));
        }
    }
    Ok(own_on_peer_subnet(config, &own)
        .or(own.first())
        .map(|c| c.addr))
}

/// The IPv4 addresses of the configured peers.
fn peer_ipv4s(config: &Config) -> Vec<Ipv4Addr> {
    config
        .peers
        .iter()
        .filter_map(|p| match p.address.ip() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// The first of `own` (the node's own addresses on the VIP interface) whose subnet holds a
/// peer: where peer traffic should leave from.
fn own_on_peer_subnet<'a>(config: &Config, own: &'a [Ipv4Cidr]) -> Option<&'a Ipv4Cidr> {
    let peers = peer_ipv4s(config);
    own.iter().find(|c| peers.iter().any(|p| c.contains(*p)))
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
) -> Result<SocketAddr, DaemonError> {
    let listen = config.node.listen;
    let IpAddr::V4(ip) = listen.ip() else {
        return Ok(listen);
    };
    if !ip.is_unspecified() {
        return Ok(listen);
    }
    let own = vips.own_addresses().await?;
    if let Some(mine) = own_on_peer_subnet(config, &own) {
        tracing::info!(address = %mine.addr, interface = %config.node.interface,
            "peer traffic leaves from this node's own address, never from a VIP");
        return Ok(SocketAddr::new(mine.addr.into(), listen.port()));
    }
    if config
        .vips
        .iter()
        .any(|v| peer_ipv4s(config).iter().any(|p| v.contains(*p)))
    {
        return Err(DaemonError::NoOwnAddress {
            interface: config.node.interface.clone(),
        });
    }
    Ok(listen)
}

fn vip_addrs(config: &Config) -> Vec<Ipv4Addr> {
    config.vips.iter().map(|v| v.addr).collect()
}

fn vip_list(config: &Config) -> String {
    config
        .vips
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
