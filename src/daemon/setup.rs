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
use crate::config::{Config, GatewaySetting, GroupConfig, GroupMode};
use crate::control::{ControlError, ControlRequest, ControlServer};
use crate::election::{Election, ElectionConfig, Reconfig};
use crate::health::{GroupVerdicts, HealthMonitor};
use crate::metrics::{self, Metrics, MetricsError, MetricsServer};
use crate::mover::Mover;
use crate::net::{IpCidr, VipSpec};
use crate::notify::Notifier;
use crate::transport::{PeerSpec, Transport, TransportConfig, TransportError, TransportEvent};
use crate::vip::{
    remove_stale_routes, AddressEvent, AddressWatch, Announcer, ArpConflict, ArpProbe, ArpWatch,
    CarrierWatch, GarpSender, LinkState, RouteManager, VipError, VipManager,
};
use crate::witness::{EchoSource, Gateway, Witness, WitnessConfig, WitnessError, WitnessEvent};

use super::admission::{Admission, GroupKey, Intake};
use super::execute::{
    unix_secs, Arp, Cloud, Counters, GroupExec, Node, PeerLinks, Record, RoutedRoutes, Routes,
    Side, Vips,
};
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

/// What `start` hands the loop: one election and its drivers per group, what the groups
/// share, and the operator side's drivers.
pub(super) struct Started {
    pub(super) groups: Vec<(Election, GroupExec)>,
    pub(super) node: Node,
    pub(super) intake: Intake,
    /// The operator side's drivers (see `operator::Operator::new`).
    pub(super) control: ControlServer,
    pub(super) health: HealthMonitor,
    pub(super) metrics: Arc<Metrics>,
    pub(super) metrics_server: Option<MetricsServer>,
    /// This node's certificate (expiry and serial).
    pub(super) cert: OwnCert,
    pub(super) witness: Option<Witness>,
    /// Each side's link as it was when its watch started; the loop applies them first.
    pub(super) links: Vec<(SideKey, LinkState)>,
}

/// A group's side: (group index, side index).
pub(super) type SideKey = (usize, usize);

/// Everything the loop listens to besides timers and signals. The drivers of every group
/// side report into one channel per kind, tagged with their group (and side).
pub(super) struct Inputs {
    pub(super) transport: Receiver<TransportEvent>,
    pub(super) probes: Receiver<(usize, Option<[u8; 6]>)>,
    pub(super) conflicts: Receiver<(SideKey, ArpConflict)>,
    pub(super) witness: Option<Receiver<WitnessEvent>>,
    pub(super) control: Receiver<ControlRequest>,
    pub(super) verdicts: Receiver<GroupVerdicts>,
    pub(super) carrier: Receiver<(SideKey, LinkState)>,
    pub(super) addresses: Receiver<(SideKey, AddressEvent)>,
    /// Finished cloud mover runs of every group ([`crate::mover::Outcome`]).
    pub(super) movers: mpsc::UnboundedReceiver<crate::mover::Outcome>,
}

/// Capacity of the channels that merge the sides' reports (each side's own channel stays
/// bounded as before; a full merged channel makes the forwarder wait, not grow).
const MERGED_CHANNEL: usize = 64;

/// The senders of the merged channels, handed to each side's forwarders.
struct Merge {
    conflicts: mpsc::Sender<(SideKey, ArpConflict)>,
    carrier: mpsc::Sender<(SideKey, LinkState)>,
    addresses: mpsc::Sender<(SideKey, AddressEvent)>,
}

/// Forwards everything `rx` receives into `tx`, tagged with `key`, until either closes.
fn forward<T: Send + 'static>(mut rx: Receiver<T>, key: SideKey, tx: mpsc::Sender<(SideKey, T)>) {
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            if tx.send((key, item)).await.is_err() {
                break;
            }
        }
    });
}

/// Starts every driver from `config`, in dependency order: control socket and metrics
/// first (so a failing start-up is visible there), then certificates, each group's
/// interface drivers, the transport and the checks.
pub(super) async fn start(config: &Config) -> Result<(Started, Inputs), DaemonError> {
    let (control, control_rx) = control(config)?;
    let names: Vec<String> = config.groups.iter().map(|g| g.name.clone()).collect();
    let metrics = Metrics::with_groups(&config.node.name, &names);
    let metrics_server = metrics_server(config, &metrics).await?;
    let identity = load_identity(config)?;
    metrics.set_cert_expiry("node", unix_secs(identity.not_after));
    let cert = OwnCert::of(&identity);

    // The node's own interface: its own addresses decide where peer traffic and witness
    // echoes leave from (never a VIP).
    let node_link = VipManager::open(&config.node.interface, Vec::new(), None).await?;
    let (conflicts_tx, conflicts) = mpsc::channel(MERGED_CHANNEL);
    let (carrier_tx, carrier_rx) = mpsc::channel(MERGED_CHANNEL);
    let (addresses_tx, address_rx) = mpsc::channel(MERGED_CHANNEL);
    let merge = Merge {
        conflicts: conflicts_tx,
        carrier: carrier_tx,
        addresses: addresses_tx,
    };
    let (probe_results, probes) = mpsc::channel(4 * config.groups.len().max(1));
    let (mover_tx, movers) = mpsc::unbounded_channel();
    let ignore_arp_from: Arc<[[u8; 6]]> = config.probe.ignore_arp_from.clone().into();
    let mut built = Vec::with_capacity(config.groups.len());
    let mut links = Vec::new();
    for (g, group) in config.groups.iter().enumerate() {
        let mut sides = Vec::new();
        for (s, interface) in group.interfaces().iter().enumerate() {
            let (side, link) = side(config, group, interface, (g, s), &merge).await?;
            links.push(((g, s), link));
            sides.push(side);
        }
        let routes = if group.routes.is_empty() {
            None
        } else {
            Some(Routes {
                manager: RouteManager::open(group.routes.clone()).await?,
                error: None,
                retry_at: None,
                routed: None,
            })
        };
        let host_routes = if group.mode == GroupMode::Routed {
            let (vips, devs) = group
                .vips
                .iter()
                .map(|v| (v.cidr.addr, v.interface.clone()))
                .unzip();
            let routed = RoutedRoutes {
                vips,
                devs,
                epoch: 0,
                defer_release: false,
                release_at: None,
            };
            Some(Routes {
                manager: RouteManager::open(routed.at(0)).await?,
                error: None,
                retry_at: None,
                routed: Some(routed),
            })
        } else {
            None
        };
        let mut exec = GroupExec {
            routes,
            host_routes,
            name: group.name.clone(),
            index: g,
            sides,
            probe_count: config.probe.count,
            probe_window: config.probe.window,
            probe_results: probe_results.clone(),
            record: Record::new(Arc::clone(&metrics), notifier(config, group)),
            ignore_arp_from: Arc::clone(&ignore_arp_from),
            foreign_holder_timeout: config.probe.foreign_holder_timeout,
            cloud: Cloud::new(Mover::for_group(
                group,
                g,
                &config.node.name,
                Some(Arc::clone(&metrics)),
                Some(mover_tx.clone()),
            )),
            export: None,
        };
        exec.follow_export(group, &metrics);
        built.push(exec);
    }
    remove_stale_routes_at_start(config).await;
    let (witness, witness_rx) = match witness(config, &node_link).await? {
        Some((witness, rx)) => (Some(witness), Some(rx)),
        None => (None, None),
    };
    let (transport, transport_rx) = transport(config, &node_link, identity).await?;
    let (health, verdicts) = health(config);
    tracing::info!(
        node = %config.node.name,
        listen = %transport.local_addr(),
        interface = %config.node.interface,
        vips = %vip_list(config),
        groups = %config
            .groups
            .iter()
            .map(|g| format!("{}(priority {})", g.name, g.priority))
            .collect::<Vec<_>>()
            .join(" "),
        peers = config.peers.len(),
        "haagent started"
    );
    metrics.set_priority(config.groups[0].priority, config.groups[0].priority);
    for (g, group) in config.groups.iter().enumerate() {
        metrics.set_group_priority(g, group.priority, group.priority);
    }
    let solicit_link = Some((node_link.ifindex(), node_link.mac()));
    let groups = config
        .groups
        .iter()
        .zip(built)
        .map(|(group, exec)| {
            let mac = exec
                .sides
                .first()
                .map_or(node_link.mac(), |s| s.vips.manager.mac());
            let probe = exec
                .sides
                .iter()
                .any(|s| s.arp.as_ref().is_some_and(|a| a.prober.is_some()));
            (election(config, group, mac, probe), exec)
        })
        .collect();
    let node = Node {
        peers: PeerLinks {
            transport,
            specs: peer_specs(config),
            own_ip: own_ip(config),
            redial_kicked: None,
            solicit_link,
        },
        metrics: Arc::clone(&metrics),
        counters: Counters::default(),
    };
    let started = Started {
        groups,
        node,
        intake: intake(config),
        control,
        health,
        metrics,
        metrics_server,
        cert,
        witness,
        links,
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
        movers,
    };
    Ok((started, inputs))
}

/// Routes an earlier run left (a killed agent's routes without `src`; those with a VIP as
/// `src` went with the VIP's lease): every route with haagent's protocol in the main table
/// and the tables the groups use. A failure is logged, not fatal.
async fn remove_stale_routes_at_start(config: &Config) {
    let mut tables: Vec<u32> = config
        .groups
        .iter()
        .flat_map(|g| g.routes.iter().filter_map(|r| r.table))
        .collect();
    tables.sort_unstable();
    tables.dedup();
    match remove_stale_routes(&tables).await {
        Ok(removed) => {
            for route in removed {
                tracing::warn!(%route, "removed a route left by an earlier run (stale from a crash) before joining");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not look for routes an earlier run left"),
    }
}

/// One interface of a group: its VIP manager (after removing VIPs an earlier run left
/// there), link and address watches, ARP announcer, watch and probe; their reports go into
/// the merged channels tagged with `key`.
async fn side(
    config: &Config,
    group: &GroupConfig,
    interface: &str,
    key: SideKey,
    merge: &Merge,
) -> Result<(Side, LinkState), DaemonError> {
    let specs: Vec<VipSpec> = group
        .vips
        .iter()
        .filter(|v| v.interface == interface)
        .cloned()
        .collect();
    let cidrs: Vec<IpCidr> = specs.iter().map(|v| v.cidr).collect();
    let ips: Vec<IpAddr> = cidrs.iter().map(|v| v.addr).collect();
    let manager = VipManager::open(interface, cidrs, config.lease).await?;
    let mut manager = manager;
    manager.set_attributes(&specs);
    for stale in manager.remove_stale().await? {
        tracing::warn!(group = %group.name, vip = %stale, %interface,
            "removed VIP left on the interface (stale from an earlier crash) before joining");
    }
    let (carrier, link, carrier_rx) = CarrierWatch::spawn(interface).await?;
    forward(carrier_rx, key, merge.carrier.clone());
    let (address_watch, address_rx) = AddressWatch::spawn(interface, ips.clone())?;
    forward(address_rx, key, merge.addresses.clone());
    // A routed group's VIPs are on no shared segment: nothing to announce, probe or watch
    // (docs/routed.md says which layers replace them).
    let arp = if group.mode == GroupMode::Routed {
        None
    } else {
        let garp = GarpSender::open(interface)?;
        let announcer = Announcer::spawn(
            garp,
            ips.clone(),
            config.garp.count,
            config.garp.spread,
            config.garp.refresh,
        );
        let (watch, conflicts) = ArpWatch::spawn(interface, manager.mac(), ips.clone())?;
        forward(conflicts, key, merge.conflicts.clone());
        let prober = if config.probe.count == 0 {
            None
        } else {
            Some(Arc::new(Mutex::new(ArpProbe::open(interface)?)))
        };
        Some(Arp {
            announcer,
            watch,
            prober,
            vip_addrs: ips,
        })
    };
    let side = Side {
        vips: Vips {
            manager,
            lease: config.lease,
            check_at: None,
            conflict_check: None,
            held: None,
        },
        arp,
        address_watch,
        _carrier: carrier,
        link_down: None,
    };
    Ok((side, link))
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

/// A group's notify hooks (built again by a reload that changes them).
pub(super) fn notifier(config: &Config, group: &GroupConfig) -> Notifier {
    Notifier::for_group(group, &config.node.name)
}

/// The health checks and their verdicts (started again by a reload that changes them).
pub(super) fn health(config: &Config) -> (HealthMonitor, Receiver<GroupVerdicts>) {
    let tracks = config.groups.iter().map(|g| g.track.clone()).collect();
    HealthMonitor::spawn_groups(config.checks.clone(), tracks)
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

/// A group's election: the node-wide timing, cluster and quorum, the group's priority and
/// preemption, `mac` = the node's MAC on the group's primary interface.
fn election(config: &Config, group: &GroupConfig, mac: [u8; 6], probe: bool) -> Election {
    let settings = ElectionConfig {
        name: config.node.name.clone(),
        priority: group.priority,
        advert_interval: config.election.advert_interval,
        down_multiplier: config.election.down_multiplier,
        preempt: group.preempt,
        preempt_delay: group.preempt_delay,
        mac,
        probe,
        cluster_size: config.peers.len() + 1,
        quorum: config.election.quorum,
        fingerprint: config.fingerprint().words,
        foreign_holder_timeout: config.probe.foreign_holder_timeout,
        probe_window: config.probe.window,
    };
    Election::new(settings, Instant::now())
}

/// What a reload hands a group's running election: the timers, cluster size and
/// fingerprint of `config`, the group's preemption.
pub(super) fn reconfig(config: &Config, group: &GroupConfig) -> Reconfig {
    Reconfig {
        advert_interval: config.election.advert_interval,
        down_multiplier: config.election.down_multiplier,
        preempt: group.preempt,
        preempt_delay: group.preempt_delay,
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
    intake.set_fingerprint_v2(config.fingerprint_v2());
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

/// The node's own addresses to send witness echoes from on the VIP interface, as the
/// kernel has them at start (see [`echo_source`]).
async fn own_source(config: &Config, vips: &VipManager) -> Result<EchoSource, DaemonError> {
    Ok(echo_source(config, &vips.own_addresses().await?))
}

/// Per family, the one of `own` (the interface's addresses that are not VIPs) that witness
/// echoes leave from: the configured `listen` address if it is one of them, else the one on
/// a configured gateway's subnet, else the one on the peers' subnet, else the first; `None`
/// if the family has none. IPv6 link-local addresses are never picked (a link-local gateway
/// gets the kernel's pick, [`EchoSource`]).
fn echo_source(config: &Config, own: &[IpCidr]) -> EchoSource {
    let gateway = config.witness.as_ref().and_then(|w| match w.gateway {
        GatewaySetting::Addr(a) => Some(a),
        GatewaySetting::Auto => None,
    });
    let pick = |v4: bool| -> Option<IpAddr> {
        let own: Vec<IpCidr> = own
            .iter()
            .copied()
            .filter(|c| c.is_ipv4() == v4)
            .filter(|c| !matches!(c.addr, IpAddr::V6(a) if a.is_unicast_link_local()))
            .collect();
        let listen = config.node.listen.ip();
        if own.iter().any(|c| c.addr == listen) {
            return Some(listen);
        }
        gateway
            .and_then(|g| own.iter().find(|c| c.contains(g)))
            .or_else(|| own_on_peer_subnet(config, &own))
            .or(own.first())
            .map(|c| c.addr)
    };
    EchoSource {
        v4: match pick(true) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        },
        v6: match pick(false) {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        },
    }
}

/// The addresses of the configured peers (either family).
fn peer_ips(config: &Config) -> Vec<IpAddr> {
    config.peers.iter().map(|p| p.address.ip()).collect()
}

/// The first of `own` (the node's own addresses on the VIP interface) whose subnet holds a
/// peer: where peer traffic should leave from. Families never mix ([`IpCidr::contains`]).
fn own_on_peer_subnet<'a>(config: &Config, own: &'a [IpCidr]) -> Option<&'a IpCidr> {
    let peers = peer_ips(config);
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
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    // `[::]` as much as `0.0.0.0`: an IPv6 VIP on the peers' prefix is as good a source
    // candidate to the kernel (RFC 6724 §5, rule 8: longest matching prefix) as the node's
    // own address, so pin the own address of the listen family.
    let own: Vec<IpCidr> = vips
        .own_addresses()
        .await?
        .into_iter()
        .filter(|c| c.is_ipv4() == listen.is_ipv4())
        .collect();
    if let Some(mine) = own_on_peer_subnet(config, &own) {
        tracing::info!(address = %mine.addr, interface = %config.node.interface,
            "peer traffic leaves from this node's own address, never from a VIP");
        return Ok(SocketAddr::new(mine.addr, listen.port()));
    }
    if config
        .vips
        .iter()
        .any(|v| peer_ips(config).iter().any(|p| v.contains(*p)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_toml_with_host, Overrides};

    fn config(extra_node: &str, peer: &str, vips: &str, witness: &str) -> Config {
        let text = format!(
            "[node]\ninterface = \"eth0\"\n{extra_node}\n[[peer]]\nname = \"n2\"\n\
             address = \"{peer}\"\n[vip]\naddresses = [{vips}]\n{witness}"
        );
        from_toml_with_host(&text, "t.toml", &Overrides::default(), Some("n1".into()))
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn cidrs(list: &[&str]) -> Vec<IpCidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn echoes_leave_from_the_own_address_of_each_family_never_a_link_local_one() {
        let c = config(
            "",
            "192.0.2.12",
            "\"192.0.2.100/24\", \"2001:db8::2/64\"",
            "[witness]\ngateway = \"auto\"",
        );
        let own = cidrs(&["fe80::11/64", "2001:db8::11/64", "192.0.2.11/24"]);
        assert_eq!(
            echo_source(&c, &own),
            EchoSource {
                v4: Some("192.0.2.11".parse().unwrap()),
                v6: Some("2001:db8::11".parse().unwrap()),
            }
        );
        // Only link-local IPv6: the kernel picks (by scope, never a global VIP).
        let own = cidrs(&["fe80::11/64", "192.0.2.11/24"]);
        assert_eq!(echo_source(&c, &own).v6, None);
        assert_eq!(echo_source(&c, &[]), EchoSource::default());
    }

    #[test]
    fn the_listen_address_then_the_gateways_subnet_then_the_peers_subnet_is_picked() {
        let own = cidrs(&[
            "198.51.100.11/24",
            "192.0.2.11/24",
            "203.0.113.11/24",
            "2001:db8:1::11/64",
            "2001:db8::11/64",
        ]);
        let on_peers = config("", "192.0.2.12", "\"192.0.2.100/24\"", "");
        assert_eq!(echo_source(&on_peers, &own).v4, "192.0.2.11".parse().ok());
        let peer6 = config("", "2001:db8::12", "\"2001:db8::100/64\"", "");
        assert_eq!(echo_source(&peer6, &own).v6, "2001:db8::11".parse().ok());
        let gateway = config(
            "",
            "192.0.2.12",
            "\"192.0.2.100/24\"",
            "[witness]\ngateway = \"203.0.113.1\"",
        );
        assert_eq!(echo_source(&gateway, &own).v4, "203.0.113.11".parse().ok());
        let listen = config(
            "listen = \"198.51.100.11\"",
            "192.0.2.12",
            "\"192.0.2.100/24\"",
            "[witness]\ngateway = \"203.0.113.1\"",
        );
        assert_eq!(echo_source(&listen, &own).v4, "198.51.100.11".parse().ok());
        // No subnet matches: the first own address of the family.
        let elsewhere = config("", "192.0.2.12", "\"192.0.2.100/24\"", "");
        assert_eq!(
            echo_source(&elsewhere, &own).v6,
            "2001:db8:1::11".parse().ok()
        );
    }
}
