//! Prints a resolved [`Config`] as a config file, for `haagent check-config`.
//!
//! Every default is written out, so the output shows exactly what the agent will do, and it
//! loads again to the same `Config` (tested).

use serde::Serialize;

use super::checks::WEIGHT_FAULT;
use super::limits::{QUORUM_MAJORITY, QUORUM_OFF};
use super::values::path_str;
use super::Config;
use crate::health::{CheckKind, CheckSpec, Weight};

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
            weight: match c.weight {
                Weight::Fault => OutWeight::Word(WEIGHT_FAULT),
                Weight::Adjust(n) => OutWeight::Adjust(n),
            },
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

#[derive(Serialize)]
struct OutVip {
    addresses: Vec<String>,
    lease_ms: u64,
    probe_count: u32,
    probe_window_ms: u64,
    foreign_holder_timeout_ms: u64,
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
    command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    master: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_blocked: Option<Vec<String>>,
    timeout_ms: u64,
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
    pub fn to_toml_string(&self) -> String {
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
                addresses: self.vips.iter().map(|v| v.to_string()).collect(),
                lease_ms: self.lease.map_or(0, ms),
                probe_count: self.probe.count,
                probe_window_ms: ms(self.probe.window),
                foreign_holder_timeout_ms: self.probe.foreign_holder_timeout.map_or(0, ms),
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
            notify: OutNotify {
                command: self.notify.command.clone(),
                master: self.notify.master.clone(),
                backup: self.notify.backup.clone(),
                fault: self.notify.fault.clone(),
                stop: self.notify.stop.clone(),
                claim_blocked: self.notify.claim_blocked.clone(),
                timeout_ms: ms(self.notify.timeout),
            },
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
        let body = toml::to_string(&out)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"));
        let source = self.source.replace(['\n', '\r'], " ");
        format!("# haagent configuration resolved from {source}\n\n{body}")
    }
}
