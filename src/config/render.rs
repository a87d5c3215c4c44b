//! Prints a resolved [`Config`] as a config file, for `haagent check-config`.
//!
//! Every default is written out, so the output shows exactly what the agent will do, and it
//! loads again to the same `Config` (tested).

use serde::Serialize;

use super::validate::{path_str, QUORUM_MAJORITY, QUORUM_OFF};
use super::Config;

#[derive(Serialize)]
struct Out {
    cluster: OutCluster,
    node: OutNode,
    peer: Vec<OutPeer>,
    vip: OutVip,
    election: OutElection,
    #[serde(skip_serializing_if = "Option::is_none")]
    witness: Option<OutWitness>,
    garp: OutGarp,
    tls: OutTls,
    notify: OutNotify,
    log: OutLog,
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
                timeout_ms: ms(self.notify.timeout),
            },
            log: OutLog {
                format: self.log.format.as_str(),
                level: self.log.level.clone(),
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
