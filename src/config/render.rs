//! Prints a resolved [`Config`] as a config file, for `haagent check-config`.
//!
//! Every default is written out, so the output shows exactly what the agent will do, and it
//! loads again to the same `Config` (tested).

use serde::Serialize;

use super::checks::WEIGHT_FAULT;
use super::groups::route_to_words;
use super::limits::{QUORUM_MAJORITY, QUORUM_OFF};
use super::values::path_str;
use super::{
    Config, GroupConfig, GroupMode, Hook, HookArgs, MoverSettings, NotifySettings, TrackCheck,
};
use crate::health::{CheckKind, CheckSpec, Weight};
use crate::net::{VipScope, VipSpec};

#[derive(Serialize)]
struct Out {
    cluster: OutCluster,
    node: OutNode,
    peer: Vec<OutPeer>,
    vip: OutVip,
    election: OutElection,
    #[serde(skip_serializing_if = "Option::is_none")]
    witness: Option<OutWitness>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    check: Vec<OutCheck>,
    garp: OutGarp,
    tls: OutTls,
    notify: OutNotify,
    #[serde(skip_serializing_if = "Option::is_none")]
    mover: Option<OutMover>,
    log: OutLog,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<OutMetrics>,
    control: OutControl,
    state: OutState,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutWeight {
    Adjust(i32),
    Word(&'static str),
}

#[derive(Serialize)]
struct OutCheck {
    name: String,
    kind: &'static str,
    interval_ms: u64,
    timeout_ms: u64,
    fall: u32,
    rise: u32,
    weight: OutWeight,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_status: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pidfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

impl OutCheck {
    fn new(c: &CheckSpec) -> Self {
        let mut out = OutCheck {
            name: c.name.clone(),
            kind: "",
            interval_ms: ms(c.interval),
            timeout_ms: ms(c.timeout),
            fall: c.fall,
            rise: c.rise,
            weight: out_weight(c.weight),
            url: None,
            expect_status: None,
            body_contains: None,
            address: None,
            command: None,
            pidfile: None,
            process: None,
            interface: None,
            path: None,
        };
        match &c.kind {
            CheckKind::Http {
                url,
                expect_status,
                body_contains,
            } => {
                out.kind = "http";
                out.url = Some(url.clone());
                out.expect_status = Some(expect_status.clone());
                out.body_contains = body_contains.clone();
            }
            CheckKind::Tcp { addr } => {
                out.kind = "tcp";
                out.address = Some(addr.to_string());
            }
            CheckKind::Exec { argv } => {
                out.kind = "exec";
                out.command = Some(argv.clone());
            }
            CheckKind::Process { pidfile, name } => {
                out.kind = "process";
                out.pidfile = pidfile.as_deref().map(path_str);
                out.process = name.clone();
            }
            CheckKind::Interface { name } => {
                out.kind = "interface";
                out.interface = Some(name.clone());
            }
            CheckKind::File { path } => {
                out.kind = "file";
                out.path = Some(path_str(path));
            }
        }
        out
    }
}

#[derive(Serialize)]
struct OutMetrics {
    listen: String,
}

#[derive(Serialize)]
struct OutControl {
    socket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
}

#[derive(Serialize)]
struct OutState {
    dir: String,
}

#[derive(Serialize)]
struct OutCluster {
    name: String,
}

#[derive(Serialize)]
struct OutNode {
    name: String,
    priority: u8,
    interface: String,
    listen: String,
}

#[derive(Serialize)]
struct OutPeer {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    address: String,
}

/// A `vips` entry: the plain string when the VIP is on the node's interface with no label
/// and scope global, the inline table otherwise.
fn vip_value(v: &VipSpec, node_interface: &str) -> toml::Value {
    if v.interface == node_interface && v.label.is_none() && v.scope == VipScope::Global {
        return toml::Value::String(v.cidr.to_string());
    }
    let mut t = toml::Table::new();
    t.insert("address".into(), toml::Value::String(v.cidr.to_string()));
    t.insert("interface".into(), toml::Value::String(v.interface.clone()));
    if let Some(l) = &v.label {
        t.insert("label".into(), toml::Value::String(l.clone()));
    }
    t.insert("scope".into(), toml::Value::String(v.scope.as_str().into()));
    toml::Value::Table(t)
}

/// A `track` entry: the check's name when it keeps its own weight, the table otherwise.
fn track_value(t: &TrackCheck, checks: &[CheckSpec]) -> toml::Value {
    if checks
        .iter()
        .any(|c| c.name == t.check && c.weight == t.weight)
    {
        return toml::Value::String(t.check.clone());
    }
    let mut table = toml::Table::new();
    table.insert("check".into(), toml::Value::String(t.check.clone()));
    let weight = match t.weight {
        Weight::Fault => toml::Value::String(WEIGHT_FAULT.into()),
        Weight::Adjust(n) => toml::Value::Integer(i64::from(n)),
    };
    table.insert("weight".into(), weight);
    toml::Value::Table(table)
}

/// One `[[group]]` as text. `vips` and `track` are written as one-line arrays (the
/// serializer would turn a list of tables into `[[group.vips]]` tables).
fn group_text(g: &GroupConfig, node_interface: &str, checks: &[CheckSpec]) -> String {
    #[derive(Serialize)]
    struct Doc {
        group: [OutGroup; 1],
    }
    let doc = Doc {
        group: [OutGroup::new(g)],
    };
    let text = toml::to_string(&doc).unwrap_or_else(|e| format!("# cannot render group: {e}\n"));
    let vips = toml::Value::Array(
        g.vips
            .iter()
            .map(|v| vip_value(v, node_interface))
            .collect(),
    );
    let track = toml::Value::Array(g.track.iter().map(|t| track_value(t, checks)).collect());
    let mut out = String::with_capacity(text.len() + 128);
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if line.starts_with("id = ") {
            out.push_str(&format!("vips = {vips}\n"));
        } else if line.starts_with("preempt_delay_ms = ") {
            out.push_str(&format!("track = {track}\n"));
        }
    }
    out
}

#[derive(Serialize)]
struct OutRoute {
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    dev: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
}

/// A `[[group]]` without `vips` and `track` (see [`group_text`]).
#[derive(Serialize)]
struct OutGroup {
    name: String,
    id: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bird_socket: Option<String>,
    priority: u8,
    preempt: bool,
    preempt_delay_ms: u64,
    notify: OutNotify,
    #[serde(skip_serializing_if = "Option::is_none")]
    mover: Option<OutMover>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    route: Vec<OutRoute>,
}

/// `[mover]` / `[group.mover]`, every default written out.
#[derive(Serialize)]
struct OutMover {
    command: Vec<String>,
    timeout_ms: u64,
    retries: u32,
    retry_delay_ms: u64,
    wait: bool,
}

impl OutMover {
    fn new(m: &Option<MoverSettings>) -> Option<Self> {
        let m = m.as_ref()?;
        Some(OutMover {
            command: m.command.clone(),
            timeout_ms: ms(m.timeout),
            retries: m.retries,
            retry_delay_ms: ms(m.retry_delay),
            wait: m.wait,
        })
    }
}

impl OutGroup {
    fn new(g: &GroupConfig) -> Self {
        OutGroup {
            name: g.name.clone(),
            id: g.id,
            mode: (g.mode != GroupMode::L2).then_some(g.mode.as_str()),
            bird_socket: g.bird_socket.as_deref().map(super::values::path_str),
            priority: g.priority,
            preempt: g.preempt,
            preempt_delay_ms: ms(g.preempt_delay),
            notify: OutNotify::new(&g.notify),
            mover: OutMover::new(&g.mover),
            route: g
                .routes
                .iter()
                .map(|r| OutRoute {
                    to: route_to_words(&r.to),
                    via: r.via.map(|a| a.to_string()),
                    src: r.src.map(|a| a.to_string()),
                    dev: r.dev.clone(),
                    metric: r.metric,
                    table: r.table,
                })
                .collect(),
        }
    }
}

fn out_weight(w: Weight) -> OutWeight {
    match w {
        Weight::Fault => OutWeight::Word(WEIGHT_FAULT),
        Weight::Adjust(n) => OutWeight::Adjust(n),
    }
}

#[derive(Serialize)]
struct OutVip {
    /// Absent with `[[group]]` tables (the VIPs are in the groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    addresses: Option<Vec<String>>,
    lease_ms: u64,
    probe_count: u32,
    probe_window_ms: u64,
    foreign_holder_timeout_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignore_arp_from: Vec<String>,
}

#[derive(Serialize)]
struct OutElection {
    advert_interval_ms: u64,
    down_multiplier: u32,
    preempt: bool,
    preempt_delay_ms: u64,
    quorum: &'static str,
}

#[derive(Serialize)]
struct OutWitness {
    gateway: String,
    interval_ms: u64,
    timeout_ms: u64,
    fall: u32,
    rise: u32,
}

#[derive(Serialize)]
struct OutGarp {
    count: u32,
    spread_ms: u64,
    refresh_ms: u64,
}

#[derive(Serialize)]
struct OutTls {
    ca: String,
    cert: String,
    key: String,
}

#[derive(Serialize)]
struct OutNotify {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<OutHook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    master: Option<OutHook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<OutHook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<OutHook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<OutHook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_blocked: Option<OutHook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict_won: Option<OutHook>,
    timeout_ms: u64,
}

/// A hook as written: the plain list when nothing is appended, else the table form.
#[derive(Serialize)]
#[serde(untagged)]
enum OutHook {
    List(Vec<String>),
    Table {
        command: Vec<String>,
        args: &'static str,
    },
}

impl OutHook {
    fn new(h: &Option<Hook>) -> Option<Self> {
        let h = h.as_ref()?;
        Some(match h.args {
            HookArgs::None => OutHook::List(h.argv.clone()),
            args => OutHook::Table {
                command: h.argv.clone(),
                args: args.word(),
            },
        })
    }
}

impl OutNotify {
    fn new(n: &NotifySettings) -> Self {
        OutNotify {
            command: OutHook::new(&n.command),
            master: OutHook::new(&n.master),
            backup: OutHook::new(&n.backup),
            fault: OutHook::new(&n.fault),
            stop: OutHook::new(&n.stop),
            claim_blocked: OutHook::new(&n.claim_blocked),
            conflict_won: OutHook::new(&n.conflict_won),
            timeout_ms: ms(n.timeout),
        }
    }
}

#[derive(Serialize)]
struct OutLog {
    format: &'static str,
    level: String,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Config {
    /// The resolved configuration as TOML, every default written out, with a header comment
    /// naming its source. Loading the output gives back an equal `Config` (except `source`).
    ///
    /// A config with `[[group]]` tables prints each group with every value resolved (its
    /// `id`, priority, preemption, `track`, `[group.notify]`, each route's `dev`), and no
    /// `[vip] addresses`; a config with the implicit group prints as it did before groups.
    pub fn to_toml_string(&self) -> String {
        let implicit = self.has_implicit_group();
        let out = Out {
            cluster: OutCluster {
                name: self.cluster.clone(),
            },
            node: OutNode {
                name: self.node.name.clone(),
                priority: self.node.priority,
                interface: self.node.interface.clone(),
                listen: self.node.listen.to_string(),
            },
            peer: self
                .peers
                .iter()
                .map(|p| OutPeer {
                    name: p.name.clone(),
                    address: p.address.to_string(),
                })
                .collect(),
            vip: OutVip {
                addresses: implicit.then(|| self.vips.iter().map(|v| v.to_string()).collect()),
                lease_ms: self.lease.map_or(0, ms),
                probe_count: self.probe.count,
                probe_window_ms: ms(self.probe.window),
                foreign_holder_timeout_ms: self.probe.foreign_holder_timeout.map_or(0, ms),
                ignore_arp_from: self
                    .probe
                    .ignore_arp_from
                    .iter()
                    .map(crate::net::format_mac)
                    .collect(),
            },
            election: OutElection {
                advert_interval_ms: ms(self.election.advert_interval),
                down_multiplier: self.election.down_multiplier,
                preempt: self.election.preempt,
                preempt_delay_ms: ms(self.election.preempt_delay),
                quorum: if self.election.quorum {
                    QUORUM_MAJORITY
                } else {
                    QUORUM_OFF
                },
            },
            witness: self.witness.as_ref().map(|w| OutWitness {
                gateway: w.gateway.to_string(),
                interval_ms: ms(w.interval),
                timeout_ms: ms(w.timeout),
                fall: w.fall,
                rise: w.rise,
            }),
            garp: OutGarp {
                count: self.garp.count,
                spread_ms: ms(self.garp.spread),
                refresh_ms: ms(self.garp.refresh),
            },
            tls: OutTls {
                ca: path_str(&self.tls.ca),
                cert: path_str(&self.tls.cert),
                key: path_str(&self.tls.key),
            },
            notify: OutNotify::new(&self.notify),
            mover: OutMover::new(&self.mover),
            log: OutLog {
                format: self.log.format.as_str(),
                level: self.log.level.clone(),
            },
            check: self.checks.iter().map(OutCheck::new).collect(),
            metrics: self.metrics_listen.map(|a| OutMetrics {
                listen: a.to_string(),
            }),
            control: OutControl {
                socket: path_str(&self.control_socket),
                group: self.control_group.clone(),
            },
            state: OutState {
                dir: path_str(&self.state_dir),
            },
        };
        // Serializing plain strings, integers, booleans and lists cannot fail; the fallback
        // still yields a comment rather than a panic.
        let mut body = toml::to_string(&out)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"));
        if !implicit {
            // After the checks they track, before [garp].
            let groups: String = self
                .groups
                .iter()
                .map(|g| group_text(g, &self.node.interface, &self.checks) + "\n")
                .collect();
            let at = body.find("\n[garp]\n").map_or(body.len(), |i| i + 1);
            body.insert_str(at, &groups);
        }
        let source = self.source.replace(['\n', '\r'], " ");
        format!("# haagent configuration resolved from {source}\n\n{body}")
    }
}
