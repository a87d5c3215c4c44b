//! What this node must reach: every peer (a QUIC handshake with the doctor ALPN, whose
//! certificate must name the peer), the gateway (ICMP echo), the health checks' targets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Check;
use crate::certs::NodeIdentity;
use crate::config::{Config, GatewaySetting};
use crate::transport::{self, PeerSpec, ProbeError};
use crate::witness::{self, icmp::Pinger};

/// How long a peer gets to complete the probe handshake.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one echo to the gateway or a peer waits; three are sent.
const ECHO_TIMEOUT: Duration = Duration::from_millis(500);

/// One line per peer: it completed the probe handshake and its certificate names it.
pub(super) async fn peers(
    config: &Config,
    identity: Option<&NodeIdentity>,
    checks: &mut Vec<Check>,
) {
    let port = config.node.listen.port();
    for peer in &config.peers {
        let who = peer
            .name
            .clone()
            .unwrap_or_else(|| peer.address.ip().to_string());
        let name = format!("peer {who} ({})", peer.address);
        let Some(identity) = identity else {
            checks.push(Check::fail(
                name,
                "not probed: this node's certificate did not load",
                "fix the certificate first (see above)",
            ));
            continue;
        };
        let spec = PeerSpec {
            name: peer.name.clone(),
            addr: peer.address,
        };
        let bind = SocketAddr::new(config.node.listen.ip(), 0);
        match transport::probe(identity, bind, &spec, PEER_TIMEOUT).await {
            Ok(answer) => {
                let named = answer
                    .names
                    .first()
                    .cloned()
                    .or_else(|| answer.ips.first().map(ToString::to_string))
                    .unwrap_or_default();
                checks.push(match same_settings(config, answer.advert.as_deref()) {
                    Ok(settings) => Check::pass(
                        name,
                        format!("QUIC handshake, certificate names {named}, it accepts this node, {settings}"),
                    ),
                    Err(differ) => Check::fail(
                        name,
                        format!("QUIC handshake fine, but its settings differ from this node's: {differ}"),
                        "make cluster name, [vip] addresses, advert_interval_ms and quorum the same on every node",
                    ),
                });
            }
            Err(ProbeError::NoAnswer(_)) => {
                // ICMP echo or ICMPv6 echo, as the witness pings (issue 13).
                let host = ping(&config.node.interface, peer.address.ip()).await.is_ok();
                let (detail, fix) = if host {
                    (
                        "the host answers ping, but no QUIC answer on its port".to_string(),
                        format!("start haagent on {who}, or open UDP {} between the nodes", peer.address.port()),
                    )
                } else {
                    (
                        "no answer (neither QUIC nor ping)".to_string(),
                        format!("check that {who} is up and reachable from {}; UDP {port} must pass", config.node.interface),
                    )
                };
                checks.push(Check::fail(name, detail, fix));
            }
            Err(ProbeError::Refused(reason)) => checks.push(Check::fail(
                name,
                reason,
                "both nodes need certificates from the same cluster CA, naming each node as the other's config does",
            )),
        }
    }
}

/// Compares the peer's advert fingerprint (cluster name, VIPs, advert interval, quorum) with
/// this node's: `Ok(words)` when they match or the peer has sent no advert yet, else
/// `Err(the settings that differ)`.
fn same_settings(config: &Config, advert: Option<&[u8]>) -> Result<&'static str, String> {
    let Some(advert) = advert else {
        return Ok("no advert from it yet (settings not compared)");
    };
    let theirs = match crate::wire::decode_any(advert) {
        Ok(crate::wire::Decoded::V1(a)) => a.fingerprint,
        Ok(crate::wire::Decoded::V2(a)) => a.fingerprint,
        Err(e) => return Err(format!("advert ({e}) and so its settings")),
    };
    let differ = config.fingerprint().differences(&theirs);
    if differ.is_empty() {
        Ok("same cluster fingerprint")
    } else {
        Err(differ.join(", "))
    }
}

/// Sends up to three echoes to `target` from the interface; the first reply's RTT.
async fn ping(interface: &str, target: IpAddr) -> Result<Duration, String> {
    let mut pinger = Pinger::open(interface, target, witness::EchoSource::default())
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for _ in 0..3 {
        let echo = pinger.next_echo().map_err(|e| e.to_string())?;
        match pinger.echo(&echo, ECHO_TIMEOUT).await {
            Ok(rtt) => return Ok(rtt),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// The witness's gateway answers echoes (only when a `[witness]` is configured).
pub(super) async fn gateway(config: &Config, checks: &mut Vec<Check>) {
    let Some(w) = &config.witness else {
        return;
    };
    let iface = &config.node.interface;
    let gw = match w.gateway {
        GatewaySetting::Addr(ip) => ip,
        GatewaySetting::Auto => match witness::resolve_gateway(iface).await {
            Ok(ip) => ip,
            Err(e) => {
                checks.push(Check::fail(
                    "gateway",
                    e.to_string(),
                    format!("add a default route via {iface}, or set [witness] gateway"),
                ));
                return;
            }
        },
    };
    let name = format!("gateway {gw}");
    checks.push(match ping(iface, gw).await {
        Ok(rtt) => Check::pass(name, format!("answers ping ({} µs)", rtt.as_micros())),
        Err(e) => Check::fail(
            name,
            format!("no echo reply: {e}"),
            "let the gateway answer ICMP echo from this node, or set [witness] gateway to one that does",
        ),
    });
}

/// Every health check runs once and passes.
pub(super) async fn health_targets(config: &Config, checks: &mut Vec<Check>) {
    for spec in &config.checks {
        let name = format!("check {}", spec.name);
        let target = crate::health::runner::target(&spec.kind);
        let run = tokio::time::timeout(spec.timeout, crate::health::runner::run(&spec.kind));
        checks.push(match run.await {
            Ok(Ok(passed)) => Check::pass(name, passed.detail),
            Ok(Err(e)) => Check::fail(
                name,
                e.to_string(),
                format!("start what the check looks at ({target}), or correct the [[check]]"),
            ),
            Err(_) => Check::fail(
                name,
                format!(
                    "{target} did not answer within {} ms",
                    spec.timeout.as_millis()
                ),
                "start the service, or raise the check's timeout_ms",
            ),
        });
    }
}
