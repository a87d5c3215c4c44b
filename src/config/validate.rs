//! Turns raw settings (file + flags) into a [`Config`] the rest of haagent can trust.
//!
//! This is the one place where defaults are filled in and rules are checked. It never stops at
//! the first problem: every check runs and every problem is reported with its place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::checker::Checker;
use super::error::ConfigErrors;
use super::groups::{implicit_group, preempt_of, validate_groups, GroupDefaults};
use super::limits::{self, QUORUM_MAJORITY, QUORUM_OFF};
use super::raw::{Item, Origin, RawConfig, RawHook, RawNotify, RawWitness};
use super::values::{
    bad_argv, bad_group_name, bad_node_ip, bad_socket_path, bad_state_dir, bad_vip,
    check_interface, check_name, parse_endpoint, parse_endpoint_with_port,
};
use super::{
    Config, ElectionSettings, GarpSettings, GatewaySetting, GroupConfig, Hook, HookArgs, LogFormat,
    LogSettings, NodeConfig, NotifySettings, PeerConfig, ProbeSettings, TlsPaths, WitnessSettings,
    DEFAULT_CERTS_DIR, DEFAULT_CLUSTER, DEFAULT_PORT,
};
use crate::net::IpCidr;

/// Validates everything; `host_name` is the default node name.
pub(crate) fn validate(
    raw: &RawConfig,
    mut ck: Checker<'_>,
    source: &str,
    host_name: Option<String>,
) -> Result<Config, ConfigErrors> {
    // [cluster]
    let cluster = match &raw.cluster.name {
        None => DEFAULT_CLUSTER.to_string(),
        Some(it) => {
            if let Err(e) = check_name(&it.value) {
                ck.err(&it.origin, format!("bad cluster name: {e}"));
            }
            it.value.clone()
        }
    };

    // [node]
    let node_name = match &raw.node.name {
        Some(it) => {
            if let Err(e) = check_name(&it.value) {
                ck.err(&it.origin, format!("bad node name: {e}"));
            }
            it.value.clone()
        }
        None if raw.broken.contains("node.name") || raw.broken.contains("node") => String::new(),
        None => {
            match host_name {
                Some(h) => {
                    if let Err(e) = check_name(&h) {
                        ck.whole(format!(
                            "no node name given and the host name cannot be used: {e}; \
                         set [node] name or --name"
                        ));
                    }
                    h
                }
                None => {
                    ck.whole("no node name given and the host name is unknown; set [node] name or --name");
                    String::new()
                }
            }
        }
    };
    let priority = ck.int(&raw.node.priority, "priority", limits::PRIORITY);
    let interface = match &raw.node.interface {
        Some(it) => {
            if let Err(e) = check_interface(&it.value) {
                ck.err(&it.origin, e);
            }
            it.value.clone()
        }
        None => {
            ck.missing(raw, "node", "interface", "--interface IFACE");
            String::new()
        }
    };
    // The default listen address is the unspecified address of the peers' family (the
    // first peer whose address parses decides): `0.0.0.0:5798`, or `[::]:5798` for IPv6
    // peers. One QUIC endpoint serves every peer, so the peers must share its family.
    let ipv6_peers = raw
        .peers
        .iter()
        .filter_map(|p| p.address.as_ref())
        .find_map(|a| parse_endpoint(&a.value).ok())
        .is_some_and(|a| a.is_ipv6());
    let default_listen = if ipv6_peers {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), DEFAULT_PORT)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT)
    };
    let listen = match &raw.node.listen {
        None => default_listen,
        Some(it) => match parse_endpoint(&it.value) {
            Ok(sa) => {
                if sa.ip().is_multicast() || sa.ip() == IpAddr::V4(Ipv4Addr::BROADCAST) {
                    ck.err(
                        &it.origin,
                        format!("listen address `{}` is not unicast", it.value),
                    );
                }
                sa
            }
            Err(e) => {
                ck.err(&it.origin, format!("bad listen address: {e}"));
                default_listen
            }
        },
    };

    // [[peer]]
    let mut peers = Vec::new();
    let mut seen_names: HashMap<String, Origin> = HashMap::new();
    let mut seen_addrs: HashMap<SocketAddr, Origin> = HashMap::new();
    for peer in &raw.peers {
        let mut name = None;
        if let Some(it) = &peer.name {
            match check_name(&it.value) {
                Err(e) => ck.err(&it.origin, format!("bad peer name: {e}")),
                Ok(()) if it.value == node_name => ck.err(
                    &it.origin,
                    format!(
                        "peer `{}` is this node's own name; list only the other nodes",
                        it.value
                    ),
                ),
                Ok(()) => {
                    if let Some(first) = seen_names.get(&it.value) {
                        let first = ck.refer(first);
                        ck.err(
                            &it.origin,
                            format!("duplicate peer name `{}` (first at {first})", it.value),
                        );
                    } else {
                        seen_names.insert(it.value.clone(), it.origin.clone());
                    }
                }
            }
            name = Some(it.value.clone());
        }
        let Some(addr_item) = &peer.address else {
            if !raw.broken.contains("peer.address") {
                ck.err(&peer.origin, "[[peer]] has no `address` (required)");
            }
            continue;
        };
        let address = match parse_endpoint(&addr_item.value) {
            Ok(sa) => sa,
            Err(e) => {
                ck.err(&addr_item.origin, format!("bad peer address: {e}"));
                continue;
            }
        };
        if let Some(why) = bad_node_ip(address.ip()) {
            ck.err(
                &addr_item.origin,
                format!("peer address `{}` {why}", addr_item.value),
            );
        } else if address.port() == 0 {
            ck.err(
                &addr_item.origin,
                format!("peer address `{}` has port 0", addr_item.value),
            );
        } else if address == listen {
            ck.err(
                &addr_item.origin,
                format!(
                    "peer address `{address}` is this node's own listen address; list only the \
                     other nodes"
                ),
            );
        } else if let Some(first) = seen_addrs.get(&address) {
            let first = ck.refer(first);
            ck.err(
                &addr_item.origin,
                format!("duplicate peer address `{address}` (first at {first})"),
            );
        } else if address.is_ipv4() != listen.is_ipv4() {
            ck.err(
                &addr_item.origin,
                if raw.node.listen.is_some() {
                    format!(
                        "peer address `{address}` is not in the same address family as the \
                         listen address `{listen}`"
                    )
                } else {
                    format!(
                        "peer address `{address}` is not in the same address family as the \
                         other peers: one QUIC endpoint (default listen `{listen}`, from the \
                         first peer's family) talks to every peer, so list every peer in one \
                         family"
                    )
                },
            );
        } else {
            seen_addrs.insert(address, addr_item.origin.clone());
        }
        peers.push(PeerConfig { name, address });
    }
    if raw.peers.is_empty() && !raw.broken.contains("peer") {
        if ck.file.is_none() {
            ck.whole("--peer ADDR[:PORT] is required (at least one peer)");
        } else {
            ck.whole(
                "no peers: add a [[peer]] table (name, address) for each other node, or --peer",
            );
        }
    }

    // [vip]
    // With [[group]] tables, the VIPs are the groups' (checked with them below).
    let grouped = !raw.groups.is_empty() || raw.broken.contains("group");
    let mut vips: Vec<IpCidr> = Vec::new();
    let mut seen_vips: HashMap<IpAddr, Origin> = HashMap::new();
    match &raw.vip.addresses {
        Some(list) if grouped => match &list.origin {
            Origin::Flag(_) => ck.err(
                &list.origin,
                "--vip cannot be used with [[group]] tables in the config file: add the \
                 address to a [[group]]'s `vips` instead",
            ),
            Origin::Span(_) => ck.err(
                &list.origin,
                "`addresses` cannot be used together with [[group]] tables: move \
                 `addresses` into a [[group]]'s `vips` (vips = [...]); [vip] keeps lease_ms \
                 and the probe_* keys for every group",
            ),
        },
        None if grouped => {}
        None => ck.missing(raw, "vip", "addresses", "--vip ADDR/PREFIX"),
        Some(list) if list.value.is_empty() => ck.err(
            &list.origin,
            "no VIPs: `addresses` needs at least one ADDR/PREFIX, e.g. [\"192.0.2.100/24\"]",
        ),
        Some(list) => {
            for it in &list.value {
                let cidr = match it.value.trim().parse::<IpCidr>() {
                    Ok(c) => c,
                    Err(e) => {
                        ck.err(&it.origin, format!("bad VIP: {e}"));
                        continue;
                    }
                };
                if let Some(why) = bad_vip(&cidr) {
                    ck.err(&it.origin, why);
                    continue;
                }
                if let Some(first) = seen_vips.get(&cidr.addr) {
                    let first = ck.refer(first);
                    ck.err(
                        &it.origin,
                        format!("duplicate VIP `{}` (first at {first})", cidr.addr),
                    );
                    continue;
                }
                let vip_ip = cidr.addr;
                if listen.ip() == vip_ip {
                    ck.err(
                        &it.origin,
                        format!("VIP `{cidr}` is this node's own listen address"),
                    );
                } else if let Some(p) = peers.iter().find(|p| p.address.ip() == vip_ip) {
                    ck.err(
                        &it.origin,
                        format!("VIP `{cidr}` is the address of peer {}", p.address),
                    );
                }
                seen_vips.insert(cidr.addr, it.origin.clone());
                vips.push(cidr);
            }
        }
    }

    let lease = match &raw.vip.lease_ms {
        None => Some(Duration::from_millis(limits::LEASE_MS.2 as u64)),
        Some(it) if it.value == 0 => None,
        Some(it) if !(limits::LEASE_MS.0..=limits::LEASE_MS.1).contains(&it.value) => {
            ck.err(
                &it.origin,
                format!(
                    "lease_ms must be 0 (off) or {}..={}, not {}",
                    limits::LEASE_MS.0,
                    limits::LEASE_MS.1,
                    it.value
                ),
            );
            None
        }
        Some(it) if it.value % 1000 != 0 => {
            let down = it.value / 1000 * 1000;
            ck.err(
                &it.origin,
                format!(
                    "lease_ms must be a whole number of seconds (the kernel counts address \
                     lifetimes in seconds), not {}; use {} or {}",
                    it.value,
                    down.max(limits::LEASE_MS.0),
                    (down + 1000).min(limits::LEASE_MS.1)
                ),
            );
            None
        }
        Some(it) => Some(Duration::from_millis(u64::try_from(it.value).unwrap_or(0))),
    };
    let probe_count = ck.int(&raw.vip.probe_count, "probe_count", limits::PROBE_COUNT);
    let foreign_holder_timeout = ck.millis(
        &raw.vip.foreign_holder_timeout_ms,
        "foreign_holder_timeout_ms",
        limits::FOREIGN_HOLDER_TIMEOUT_MS,
    );
    let probe_window = ck.millis(
        &raw.vip.probe_window_ms,
        "probe_window_ms",
        limits::PROBE_WINDOW_MS,
    );

    // [election]
    let e = &raw.election;
    let advert_interval = ck.millis(
        &e.advert_interval_ms,
        "advert_interval_ms",
        limits::ADVERT_INTERVAL_MS,
    );
    // Unset, the probe window follows the advert interval (capped at the 30 ms default):
    // with 10 ms adverts a 30 ms probe would double the takeover time, and a live holder
    // on the same segment answers within a millisecond.
    let probe_window = match raw.vip.probe_window_ms {
        Some(_) => probe_window,
        None => {
            let (min, _, default) = limits::PROBE_WINDOW_MS;
            advert_interval.clamp(
                Duration::from_millis(min.unsigned_abs()),
                Duration::from_millis(default.unsigned_abs()),
            )
        }
    };
    let down_multiplier = ck.int(
        &e.down_multiplier,
        "down_multiplier",
        limits::DOWN_MULTIPLIER,
    );
    let preempt = preempt_of(&mut ck, &e.preempt, &e.nopreempt, true);
    let preempt_delay = ck.millis(
        &e.preempt_delay_ms,
        "preempt_delay_ms",
        limits::PREEMPT_DELAY_MS,
    );
    let quorum = match &e.quorum {
        None => raw.peers.len() + 1 >= limits::QUORUM_DEFAULT_NODES,
        Some(it) if it.value == QUORUM_MAJORITY => true,
        Some(it) if it.value == QUORUM_OFF => false,
        Some(it) => {
            ck.err(
                &it.origin,
                format!(
                    "unknown quorum `{}`: use \"{QUORUM_MAJORITY}\" or \"{QUORUM_OFF}\"",
                    it.value
                ),
            );
            false
        }
    };

    // [garp]
    let g = &raw.garp;
    let garp_count = ck.int(&g.count, "garp count", limits::GARP_COUNT);
    let spread = ck.millis(&g.spread_ms, "spread_ms", limits::GARP_SPREAD_MS);
    let refresh = match &g.refresh_ms {
        Some(it) if it.value == 0 => Duration::ZERO,
        Some(it)
            if !(limits::GARP_REFRESH_MS.0..=limits::GARP_REFRESH_MS.1).contains(&it.value) =>
        {
            ck.err(
                &it.origin,
                format!(
                    "refresh_ms must be 0 (off) or {}..={}, not {}",
                    limits::GARP_REFRESH_MS.0,
                    limits::GARP_REFRESH_MS.1,
                    it.value
                ),
            );
            Duration::from_millis(limits::GARP_REFRESH_MS.2 as u64)
        }
        other => ck.millis(other, "refresh_ms", limits::GARP_REFRESH_MS),
    };

    // [tls]
    let t = &raw.tls;
    let mut path_of = |item: &Option<Item<PathBuf>>, key: &str| -> Option<PathBuf> {
        let it = item.as_ref()?;
        if it.value.as_os_str().is_empty() {
            ck.err(&it.origin, format!("tls {key} is an empty path"));
        }
        Some(it.value.clone())
    };
    let dir = path_of(&t.dir, "dir").unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_DIR));
    let tls = TlsPaths {
        ca: path_of(&t.ca, "ca").unwrap_or_else(|| dir.join("ca.pem")),
        cert: path_of(&t.cert, "cert").unwrap_or_else(|| dir.join(format!("{node_name}.pem"))),
        key: path_of(&t.key, "key").unwrap_or_else(|| dir.join(format!("{node_name}-key.pem"))),
    };

    // [notify]
    let notify = validate_notify(
        &mut ck,
        &raw.notify,
        Duration::from_millis(limits::NOTIFY_TIMEOUT_MS.2.unsigned_abs()),
    );

    // [mover], [vip] ignore_arp_from
    let mover = raw.mover.as_ref().and_then(|m| {
        super::mover::validate_mover(&mut ck, m, "mover", raw.broken.contains("mover.command"))
    });
    let ignore_arp_from = super::mover::validate_ignore_arp_from(&mut ck, &raw.vip.ignore_arp_from);

    // [log]
    let format = match &raw.log.format {
        None => LogFormat::Text,
        Some(it) => match it.value.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                ck.err(
                    &it.origin,
                    format!("unknown log format `{other}`: use \"text\" or \"json\""),
                );
                LogFormat::Text
            }
        },
    };
    let level = match &raw.log.level {
        None => "info".to_string(),
        Some(it) => {
            if !super::LOG_LEVELS.contains(&it.value.as_str()) {
                ck.err(
                    &it.origin,
                    format!(
                        "unknown log level `{}`: use one of {}",
                        it.value,
                        super::LOG_LEVELS.join(", ")
                    ),
                );
            }
            it.value.clone()
        }
    };

    // [[check]]
    let checks = super::checks::validate_checks(raw, &mut ck);

    // [[group]]
    let defaults = GroupDefaults {
        interface: &interface,
        priority,
        preempt,
        preempt_delay,
        checks: &checks,
        notify: &notify,
        mover: mover.as_ref(),
        listen,
        peers: &peers,
    };
    let groups = grouped.then(|| validate_groups(raw, &mut ck, &defaults));
    if let Some(groups) = &groups {
        vips = groups.iter().flat_map(GroupConfig::cidrs).collect();
        // A routed group's announcement ends with its address's lifetime (docs/routed.md):
        // without a lease a dead agent's route would stay until someone removes it.
        if let (None, Some(it), Some(g)) = (
            lease,
            &raw.vip.lease_ms,
            groups.iter().find(|g| g.mode == super::GroupMode::Routed),
        ) {
            ck.err(
                &it.origin,
                format!(
                    "lease_ms = 0 with a routed group (`{}`): a routed VIP's host route ends \
                     with the address's lifetime, so a dead agent's announcement would never \
                     end; give a lease (default 2000)",
                    g.name
                ),
            );
        }
    }

    // [witness]
    let witness = raw
        .witness
        .as_ref()
        .map(|w| validate_witness(w, &mut ck, &vips));

    // [metrics]
    let metrics_listen =
        raw.metrics.listen.as_ref().and_then(|it| {
            match parse_endpoint_with_port(&it.value, super::DEFAULT_METRICS_PORT) {
                Ok(sa) if sa.port() == 0 => {
                    ck.err(
                        &it.origin,
                        format!("metrics listen `{}` has port 0", it.value),
                    );
                    None
                }
                Ok(sa) if sa.ip().is_multicast() || sa.ip() == IpAddr::V4(Ipv4Addr::BROADCAST) => {
                    ck.err(
                        &it.origin,
                        format!("metrics listen address `{}` is not unicast", it.value),
                    );
                    None
                }
                Ok(sa) => Some(sa),
                Err(e) => {
                    ck.err(&it.origin, format!("bad metrics listen address: {e}"));
                    None
                }
            }
        });

    // [control]
    let control_socket = match &raw.control.socket {
        None => PathBuf::from(super::DEFAULT_CONTROL_SOCKET),
        Some(it) => {
            if let Some(why) = bad_socket_path(&it.value) {
                ck.err(&it.origin, why);
            }
            it.value.clone()
        }
    };
    let control_group = raw.control.group.as_ref().map(|it| {
        if let Some(why) = bad_group_name(&it.value) {
            ck.err(&it.origin, why);
        }
        it.value.clone()
    });

    // [state]
    let state_dir = match &raw.state.dir {
        None => PathBuf::from(super::DEFAULT_STATE_DIR),
        Some(it) => {
            if let Some(why) = bad_state_dir(&it.value) {
                ck.err(&it.origin, why);
            }
            it.value.clone()
        }
    };

    let notes = std::mem::take(&mut ck.notes);
    let errors = ck.into_errors();
    if !errors.is_empty() {
        return Err(errors);
    }
    let groups = groups.unwrap_or_else(|| {
        vec![implicit_group(
            &defaults,
            &vips,
            u8::try_from(priority).unwrap_or(100),
        )]
    });
    Ok(Config {
        notes,
        source: source.to_string(),
        cluster,
        node: NodeConfig {
            name: node_name,
            priority: u8::try_from(priority).unwrap_or(100),
            interface,
            listen,
        },
        peers,
        vips,
        lease,
        probe: ProbeSettings {
            count: u32::try_from(probe_count).unwrap_or(3),
            window: probe_window,
            foreign_holder_timeout: (!foreign_holder_timeout.is_zero())
                .then_some(foreign_holder_timeout),
            ignore_arp_from,
        },
        election: ElectionSettings {
            advert_interval,
            down_multiplier: u32::try_from(down_multiplier).unwrap_or(3),
            preempt,
            preempt_delay,
            quorum,
        },
        witness,
        garp: GarpSettings {
            count: u32::try_from(garp_count).unwrap_or(3),
            spread,
            refresh,
        },
        tls,
        notify,
        mover,
        log: LogSettings { format, level },
        checks,
        metrics_listen,
        control_socket,
        control_group,
        state_dir,
        groups,
    })
}

/// Validates a `[notify]` (or `[group.notify]`) table; `default_timeout` applies when it has
/// no `timeout_ms`.
pub(super) fn validate_notify(
    ck: &mut Checker<'_>,
    n: &RawNotify,
    default_timeout: Duration,
) -> NotifySettings {
    let mut hook = |item: &Option<Item<RawHook>>, key: &str| -> Option<Hook> {
        let it = item.as_ref()?;
        let (argv, origin, args) = match &it.value {
            RawHook::List(argv) => (argv.clone(), &it.origin, HookArgs::None),
            RawHook::Table(t) => {
                let args = match &t.args {
                    None => HookArgs::None,
                    Some(a) => match a.value.as_str() {
                        "none" => HookArgs::None,
                        "keepalived" => HookArgs::Keepalived,
                        other => {
                            ck.err(
                                &a.origin,
                                format!(
                                    "notify {key} args must be \"keepalived\" or \"none\", \
                                     not \"{other}\""
                                ),
                            );
                            HookArgs::None
                        }
                    },
                };
                match &t.command {
                    Some(c) => (c.value.clone(), &c.origin, args),
                    None => {
                        ck.err(
                            &it.origin,
                            format!(
                                "notify {key} has no command; give the program and its \
                                 arguments, e.g. {{ command = [\"/etc/keepalived/notify.sh\"], \
                                 args = \"keepalived\" }}"
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        if let Some(why) = bad_argv(&argv) {
            ck.err(origin, format!("notify {key} {why}"));
        }
        Some(Hook { argv, args })
    };
    let command = hook(&n.command, "command");
    let master = hook(&n.master, "master");
    let backup = hook(&n.backup, "backup");
    let fault = hook(&n.fault, "fault");
    let stop = hook(&n.stop, "stop");
    let claim_blocked = hook(&n.claim_blocked, "claim_blocked");
    let conflict_won = hook(&n.conflict_won, "conflict_won");
    let (lo, hi, _) = limits::NOTIFY_TIMEOUT_MS;
    let default_ms = i64::try_from(default_timeout.as_millis()).unwrap_or(hi);
    NotifySettings {
        command,
        master,
        backup,
        fault,
        stop,
        claim_blocked,
        conflict_won,
        timeout: ck.millis(&n.timeout_ms, "notify timeout_ms", (lo, hi, default_ms)),
    }
}

/// `[witness] gateway` (or `--gateway`): `auto`, or a unicast IPv4 or IPv6 address that is
/// not one of `vips`. An IPv6 address may be link-local (`fe80::/10`, RFC 4291 §2.5.6): the
/// witness always pings through the node's interface, which is its scope, so a `%zone`
/// suffix is refused with that explanation. `Err` is the message for the file's location.
fn gateway_setting(text: &str, vips: &[IpCidr]) -> Result<GatewaySetting, String> {
    let text = text.trim();
    if text == "auto" {
        return Ok(GatewaySetting::Auto);
    }
    if let Some((addr, zone)) = text.split_once('%') {
        if addr.parse::<Ipv6Addr>().is_ok() {
            return Err(format!(
                "witness gateway `{text}`: write it without `%{zone}`; the witness always \
                 pings through [node] interface, which is the scope of a link-local gateway"
            ));
        }
    }
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(a))
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() =>
        {
            Err(format!(
                "witness gateway `{a}` is not a unicast address (unspecified, broadcast, \
                 multicast or loopback)"
            ))
        }
        Ok(IpAddr::V6(a)) if a.is_unspecified() || a.is_multicast() || a.is_loopback() => {
            Err(format!(
                "witness gateway `{a}` is not a unicast address (unspecified, multicast or \
                 loopback)"
            ))
        }
        Ok(IpAddr::V6(a)) if a.to_ipv4_mapped().is_some() => Err(format!(
            "witness gateway `{a}` is an IPv4-mapped IPv6 address: write the IPv4 address \
             (`{}`)",
            a.to_canonical()
        )),
        Ok(IpAddr::V4(a)) if vips.iter().any(|v| v.addr == a) => Err(format!(
            "witness gateway `{a}` is one of the VIPs; the witness must be another machine, \
             e.g. the router"
        )),
        Ok(a) => Ok(GatewaySetting::Addr(a)),
        Err(_) => Err(format!(
            "witness gateway must be \"auto\" or an IPv4 or IPv6 address (e.g. \"192.0.2.1\", \
             \"2001:db8::1\" or \"fe80::1\"), not `{text}`"
        )),
    }
}

/// Validates the `[witness]` table (and `--gateway`); `vips` are the valid VIPs.
fn validate_witness(w: &RawWitness, ck: &mut Checker<'_>, vips: &[IpCidr]) -> WitnessSettings {
    let gateway = match &w.gateway {
        None => GatewaySetting::Auto,
        Some(it) => gateway_setting(&it.value, vips).unwrap_or_else(|message| {
            ck.err(&it.origin, message);
            GatewaySetting::Auto
        }),
    };
    let interval_ok = w.interval_ms.as_ref().is_none_or(|it| {
        (limits::WITNESS_INTERVAL_MS.0..=limits::WITNESS_INTERVAL_MS.1).contains(&it.value)
    });
    let interval_ms = ck.int(
        &w.interval_ms,
        "witness interval_ms",
        limits::WITNESS_INTERVAL_MS,
    );
    // With a bad interval (already reported), check the timeout against the widest range only.
    let timeout_max = if interval_ok {
        interval_ms
    } else {
        limits::WITNESS_INTERVAL_MS.1
    };
    let timeout_ms = match &w.timeout_ms {
        None => interval_ms,
        Some(it) if (limits::WITNESS_TIMEOUT_MIN_MS..=timeout_max).contains(&it.value) => it.value,
        Some(it) => {
            ck.err(
                &it.origin,
                format!(
                    "witness timeout_ms must be {}..=interval_ms ({timeout_max}), not {}",
                    limits::WITNESS_TIMEOUT_MIN_MS,
                    it.value
                ),
            );
            interval_ms
        }
    };
    let fall = ck.int(&w.fall, "witness fall", limits::WITNESS_FALL);
    let rise = ck.int(&w.rise, "witness rise", limits::WITNESS_RISE);
    let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    WitnessSettings {
        gateway,
        interval: ms(interval_ms),
        timeout: ms(timeout_ms),
        fall: u32::try_from(fall).unwrap_or(3),
        rise: u32::try_from(rise).unwrap_or(2),
    }
}
