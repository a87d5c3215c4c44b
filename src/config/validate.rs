//! Turns raw settings (file + flags) into a [`Config`] the rest of haagent can trust.
//!
//! This is the one place where defaults are filled in and rules are checked. It never stops at
//! the first problem: every check runs and every problem is reported with its place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors, ErrorPlace, Location};
use super::raw::{Item, Origin, RawConfig, RawWitness};
use super::{
    Config, ElectionSettings, GarpSettings, GatewaySetting, LogFormat, LogSettings, NodeConfig,
    NotifySettings, PeerConfig, ProbeSettings, TlsPaths, WitnessSettings, DEFAULT_CERTS_DIR,
    DEFAULT_CLUSTER, DEFAULT_PORT,
};
use crate::net::Ipv4Cidr;

/// Allowed values and defaults, shared with the documentation (docs/configuration.md).
pub(crate) mod limits {
    /// `node.priority`
    pub(crate) const PRIORITY: (i64, i64, i64) = (1, 254, 100);
    /// `election.advert_interval_ms`
    pub(crate) const ADVERT_INTERVAL_MS: (i64, i64, i64) = (10, 10_000, 50);
    /// `election.down_multiplier`
    pub(crate) const DOWN_MULTIPLIER: (i64, i64, i64) = (2, 20, 3);
    /// `election.preempt_delay_ms`
    pub(crate) const PREEMPT_DELAY_MS: (i64, i64, i64) = (0, 3_600_000, 0);
    /// `garp.count`
    pub(crate) const GARP_COUNT: (i64, i64, i64) = (1, 20, 3);
    /// `garp.spread_ms`
    pub(crate) const GARP_SPREAD_MS: (i64, i64, i64) = (0, 60_000, 500);
    /// `garp.refresh_ms` (0 = off, otherwise at least the minimum)
    pub(crate) const GARP_REFRESH_MS: (i64, i64, i64) = (1_000, 86_400_000, 30_000);
    /// `notify.timeout_ms`
    pub(crate) const NOTIFY_TIMEOUT_MS: (i64, i64, i64) = (1, 600_000, 5_000);
    /// `vip.lease_ms` (0 = off, otherwise within the range and a whole number of seconds)
    pub(crate) const LEASE_MS: (i64, i64, i64) = (1_000, 3_600_000, 2_000);
    /// `vip.probe_count` (0 = off)
    pub(crate) const PROBE_COUNT: (i64, i64, i64) = (0, 20, 3);
    /// `vip.probe_window_ms`
    pub(crate) const PROBE_WINDOW_MS: (i64, i64, i64) = (5, 2_000, 30);
    /// `vip.foreign_holder_timeout_ms` (0 = wait for ever)
    pub(crate) const FOREIGN_HOLDER_TIMEOUT_MS: (i64, i64, i64) = (0, 86_400_000, 0);
    /// `witness.interval_ms`
    pub(crate) const WITNESS_INTERVAL_MS: (i64, i64, i64) = (10, 60_000, 200);
    /// `witness.timeout_ms`: at least this; at most `interval_ms`, which is also the default.
    pub(crate) const WITNESS_TIMEOUT_MIN_MS: i64 = 1;
    /// `witness.fall`
    pub(crate) const WITNESS_FALL: (i64, i64, i64) = (1, 100, 3);
    /// `witness.rise`
    pub(crate) const WITNESS_RISE: (i64, i64, i64) = (1, 100, 2);
    /// `election.quorum` defaults to "majority" from this many nodes (peers + this one) on.
    pub(crate) const QUORUM_DEFAULT_NODES: usize = 3;
}

/// `election.quorum` value meaning "a majority is required".
pub(crate) const QUORUM_MAJORITY: &str = "majority";
/// `election.quorum` value meaning "no quorum".
pub(crate) const QUORUM_OFF: &str = "off";

/// Collects problems while validating.
pub(crate) struct Checker<'a> {
    /// The file name, or `None` in quick mode (flags only).
    file: Option<&'a str>,
    /// The file's text, to turn byte offsets into lines.
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Checker<'a> {
    /// A checker for `file` with contents `text`, or for flags only (`file` = `None`).
    pub(crate) fn new(file: Option<&'a str>, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// Records a problem found before validation (syntax, unknown key, wrong type).
    pub(crate) fn push_raw(&mut self, span: Option<&std::ops::Range<usize>>, message: String) {
        let file = self.file.unwrap_or("command line");
        match span {
            Some(span) => self
                .errors
                .push(ConfigError::at_span(file, self.text, span, message)),
            None => self.errors.push(ConfigError::file(file, message)),
        }
    }

    /// The problems collected so far, sorted.
    pub(crate) fn into_errors(self) -> ConfigErrors {
        let mut errors = ConfigErrors(self.errors);
        errors.sort();
        errors
    }

    fn place(&self, origin: &Origin) -> ErrorPlace {
        match origin {
            Origin::Span(span) => ErrorPlace::At(Location::from_offset(
                self.file.unwrap_or("command line"),
                self.text,
                span.start,
            )),
            Origin::Flag(flag) => ErrorPlace::Flag(flag.clone()),
        }
    }

    /// A short human reference to where a value was given: "line 7" or "--peer 192.0.2.1".
    pub(crate) fn refer(&self, origin: &Origin) -> String {
        match self.place(origin) {
            ErrorPlace::At(loc) => format!("line {}", loc.line),
            ErrorPlace::Flag(flag) => flag,
            ErrorPlace::File(f) => f,
            ErrorPlace::CommandLine => "the command line".to_string(),
        }
    }

    pub(crate) fn err(&mut self, origin: &Origin, message: impl Into<String>) {
        let place = self.place(origin);
        self.errors.push(ConfigError {
            place,
            message: message.into(),
        });
    }

    fn whole(&mut self, message: impl Into<String>) {
        let place = match self.file {
            Some(f) => ErrorPlace::File(f.to_string()),
            None => ErrorPlace::CommandLine,
        };
        self.errors.push(ConfigError {
            place,
            message: message.into(),
        });
    }

    /// A required value is missing: point at its table header if there is one.
    fn missing(&mut self, raw: &RawConfig, table: &'static str, key: &str, flag: &str) {
        if raw.broken.contains(table) || raw.broken.contains(&format!("{table}.{key}")) {
            return; // already reported as malformed
        }
        if self.file.is_none() {
            self.whole(format!("{flag} is required"));
            return;
        }
        match raw.headers.get(table) {
            Some(span) => {
                let origin = Origin::Span(span.clone());
                self.err(
                    &origin,
                    format!("[{table}] has no `{key}` (required; or give {flag})"),
                );
            }
            None => self.whole(format!(
                "no [{table}] table: `{key}` is required (or give {flag})"
            )),
        }
    }

    /// An integer setting within `lo..=hi`, or its default when absent.
    pub(crate) fn int(
        &mut self,
        item: &Option<Item<i64>>,
        name: &str,
        (lo, hi, default): (i64, i64, i64),
    ) -> i64 {
        match item {
            None => default,
            Some(it) if (lo..=hi).contains(&it.value) => it.value,
            Some(it) => {
                self.err(
                    &it.origin,
                    format!("{name} must be {lo}..={hi}, not {}", it.value),
                );
                default
            }
        }
    }

    fn millis(
        &mut self,
        item: &Option<Item<i64>>,
        name: &str,
        limits: (i64, i64, i64),
    ) -> Duration {
        let ms = self.int(item, name, limits);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

/// Checks a node (or cluster) name: ASCII letters, digits, `.`, `_`, `-`; 1..=64 characters;
/// not starting with `-`. Returns what is wrong.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".to_string());
    }
    if name.len() > 64 {
        return Err(format!("name `{name}` is longer than 64 characters"));
    }
    if name.starts_with('-') {
        return Err(format!("name `{name}` starts with `-`"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "name `{name}` contains {c:?}; use only letters A-Z a-z, digits, `.`, `_`, `-`"
        ));
    }
    Ok(())
}

/// Checks a Linux interface name (1..=15 bytes, no `/`, `:` or white space).
pub(crate) fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".to_string());
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name `{name}` is longer than 15 bytes (the Linux limit)"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not an interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name `{name}` contains {c:?} (labels like eth0:1 are not interfaces)"
        ));
    }
    Ok(())
}

/// Parses `ADDR` or `ADDR:PORT` (IPv6 as `[ADDR]:PORT` or bare `ADDR`); the port defaults to
/// [`DEFAULT_PORT`].
pub(crate) fn parse_endpoint(text: &str) -> Result<SocketAddr, String> {
    parse_endpoint_with_port(text, DEFAULT_PORT)
}

/// [`parse_endpoint`] with another default port.
pub(crate) fn parse_endpoint_with_port(
    text: &str,
    default_port: u16,
) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, default_port));
        }
    }
    if let Some((host, port)) = t.rsplit_once(':') {
        if host.parse::<IpAddr>().is_ok() && !host.contains(':') {
            return Err(format!(
                "`{text}`: port `{port}` is not a number from 0 to 65535"
            ));
        }
    }
    Err(format!(
        "`{text}` is not ADDR or ADDR:PORT with an IP address (e.g. 192.0.2.12 or \
         192.0.2.12:{default_port}); host names are not resolved"
    ))
}

/// What is wrong with `ip` as the address of a node, if anything.
fn bad_node_ip(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("is the unspecified address")
    } else if ip.is_multicast() {
        Some("is a multicast address")
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("is the broadcast address")
    } else {
        None
    }
}

/// What is wrong with a VIP, if anything (beyond its syntax).
fn bad_vip(cidr: &Ipv4Cidr) -> Option<String> {
    let a = cidr.addr;
    if cidr.prefix == 0 {
        return Some(format!("VIP `{cidr}` has prefix /0"));
    }
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
        return Some(format!(
            "VIP `{cidr}` is not a unicast host address (unspecified, broadcast, multicast or \
             loopback)"
        ));
    }
    if cidr.prefix <= 30 {
        let mask = u32::MAX << (32 - u32::from(cidr.prefix));
        let bits = u32::from(a);
        if bits & !mask == 0 {
            return Some(format!(
                "VIP `{cidr}` is the network address of its /{} subnet",
                cidr.prefix
            ));
        }
        if bits & !mask == !mask {
            return Some(format!(
                "VIP `{cidr}` is the broadcast address of its /{} subnet",
                cidr.prefix
            ));
        }
    }
    None
}

/// What is wrong with a notify argv, if anything.
pub(crate) fn bad_argv(argv: &[String]) -> Option<String> {
    match argv.first() {
        None => Some(
            "is an empty list; give the program and its arguments, e.g. \
                      [\"/usr/local/bin/on-transition\"]"
                .to_string(),
        ),
        Some(prog) if prog.trim().is_empty() => Some("has an empty program name".to_string()),
        Some(_) if argv.iter().any(|a| a.contains('\0')) => {
            Some("contains a NUL character".to_string())
        }
        Some(_) => None,
    }
}

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
    let default_listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT);
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
                format!(
                    "peer address `{address}` is not in the same address family as the listen \
                     address `{listen}`"
                ),
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
    let mut vips: Vec<Ipv4Cidr> = Vec::new();
    let mut seen_vips: HashMap<Ipv4Addr, Origin> = HashMap::new();
    match &raw.vip.addresses {
        None => ck.missing(raw, "vip", "addresses", "--vip ADDR/PREFIX"),
        Some(list) if list.value.is_empty() => ck.err(
            &list.origin,
            "no VIPs: `addresses` needs at least one ADDR/PREFIX, e.g. [\"192.0.2.100/24\"]",
        ),
        Some(list) => {
            for it in &list.value {
                let cidr = match it.value.trim().parse::<Ipv4Cidr>() {
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
                let vip_ip = IpAddr::V4(cidr.addr);
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
    let preempt = match (&e.preempt, &e.nopreempt) {
        (Some(p), Some(np)) if p.value == np.value => {
            ck.err(
                &np.origin,
                format!(
                    "`nopreempt = {}` contradicts `preempt = {}` ({}); keep one of them",
                    np.value,
                    p.value,
                    ck.refer(&p.origin)
                ),
            );
            p.value
        }
        (Some(p), _) => p.value,
        (None, Some(np)) => !np.value,
        (None, None) => true,
    };
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

    // [witness]
    let witness = raw
        .witness
        .as_ref()
        .map(|w| validate_witness(w, &mut ck, &vips));

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
    let n = &raw.notify;
    let mut argv = |item: &Option<Item<Vec<String>>>, key: &str| -> Option<Vec<String>> {
        let it = item.as_ref()?;
        if let Some(why) = bad_argv(&it.value) {
            ck.err(&it.origin, format!("notify {key} {why}"));
        }
        Some(it.value.clone())
    };
    let notify = NotifySettings {
        command: argv(&n.command, "command"),
        master: argv(&n.master, "master"),
        backup: argv(&n.backup, "backup"),
        fault: argv(&n.fault, "fault"),
        stop: argv(&n.stop, "stop"),
        claim_blocked: argv(&n.claim_blocked, "claim_blocked"),
        timeout: ck.millis(
            &n.timeout_ms,
            "notify timeout_ms",
            limits::NOTIFY_TIMEOUT_MS,
        ),
    };

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

    let errors = ck.into_errors();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
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
        log: LogSettings { format, level },
        checks,
        metrics_listen,
        control_socket,
        control_group,
        state_dir,
    })
}

/// What is wrong with a state directory, if anything (it need not exist yet).
fn bad_state_dir(path: &Path) -> Option<String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        Some("state dir is an empty path".to_string())
    } else if !path.is_absolute() {
        Some(format!(
            "state dir `{shown}` is not an absolute path (e.g. \"{}\")",
            super::DEFAULT_STATE_DIR
        ))
    } else if path
        .to_str()
        .is_none_or(|s| s.chars().any(char::is_control))
    {
        Some(format!(
            "state dir `{shown}` has control characters or is not UTF-8"
        ))
    } else {
        None
    }
}

/// Longest path a Unix socket address can hold (`sun_path` is 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// What is wrong with a control socket path, if anything.
fn bad_socket_path(path: &Path) -> Option<String> {
    let shown = path.display();
    let len = path.as_os_str().len();
    if len == 0 {
        Some("control socket is an empty path".to_string())
    } else if !path.is_absolute() {
        Some(format!(
            "control socket `{shown}` is not an absolute path (e.g. \"{}\")",
            super::DEFAULT_CONTROL_SOCKET
        ))
    } else if len > SUN_PATH_MAX {
        Some(format!(
            "control socket `{shown}` is {len} bytes long; a Unix socket path holds at most \
             {SUN_PATH_MAX}"
        ))
    } else if path.as_os_str().to_string_lossy().ends_with('/') {
        Some(format!(
            "control socket `{shown}` ends with `/`; give the socket's file name (e.g. \
             \"{}\")",
            super::DEFAULT_CONTROL_SOCKET
        ))
    } else {
        None
    }
}

/// What is wrong with a group name, if anything (the group is looked up by the daemon).
fn bad_group_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("control group is empty; remove the key for a root-only socket".into());
    }
    if name.len() > 32 {
        return Some(format!(
            "control group `{name}` is longer than 32 characters"
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.starts_with('-') || !name.trim_end_matches('$').chars().all(ok) {
        return Some(format!(
            "control group `{name}` is not a group name (letters, digits, `_`, `-`, `.`; not \
             starting with `-`)"
        ));
    }
    None
}

/// Validates the `[witness]` table (and `--gateway`); `vips` are the valid VIPs.
fn validate_witness(w: &RawWitness, ck: &mut Checker<'_>, vips: &[Ipv4Cidr]) -> WitnessSettings {
    let gateway = match &w.gateway {
        None => GatewaySetting::Auto,
        Some(it) if it.value.trim() == "auto" => GatewaySetting::Auto,
        Some(it) => match it.value.trim().parse::<Ipv4Addr>() {
            Ok(a)
                if a.is_unspecified()
                    || a.is_broadcast()
                    || a.is_multicast()
                    || a.is_loopback() =>
            {
                ck.err(
                    &it.origin,
                    format!(
                        "witness gateway `{a}` is not a unicast address (unspecified, broadcast, \
                         multicast or loopback)"
                    ),
                );
                GatewaySetting::Auto
            }
            Ok(a) if vips.iter().any(|v| v.addr == a) => {
                ck.err(
                    &it.origin,
                    format!(
                        "witness gateway `{a}` is one of the VIPs; the witness must be another \
                         machine, e.g. the router"
                    ),
                );
                GatewaySetting::Auto
            }
            Ok(a) => GatewaySetting::Addr(a),
            Err(_) => {
                ck.err(
                    &it.origin,
                    format!(
                        "witness gateway must be \"auto\" or an IPv4 address (e.g. \
                         \"192.0.2.1\"), not `{}`",
                        it.value
                    ),
                );
                GatewaySetting::Auto
            }
        },
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

/// `path` shown as the user would write it in TOML.
pub(crate) fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
