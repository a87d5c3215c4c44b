//! haagent's configuration: a strict TOML file and/or command-line flags, validated into one
//! [`Config`] that the rest of the program trusts.
//!
//! # Flow
//!
//! ```text
//! TOML text ──parse (raw.rs)──┐
//!                             ├─> RawConfig (every value with its origin) ──validate.rs──> Config
//! Overrides (flags) ──────────┘                                               └──> ConfigErrors
//! ```
//!
//! * Every table rejects unknown keys (`deny_unknown_fields`), with the key's line.
//! * Validation reports **every** problem at once, each as `FILE:LINE:COL: message`
//!   (or `--flag VALUE: message` for a flag).
//! * Quick mode: with no config file, the flags alone describe the node
//!   (`haagent --interface eth0 --vip 10.0.0.100/24 --peer 10.0.0.12`).
//! * [`Config::fingerprint_settings`] (v1), [`Config::fingerprint_v2_settings`] with
//!   [`GroupConfig::vips_fingerprint`] (v2) and [`Config::election_changes`] tell the daemon
//!   which settings peers must share and which changes a reload cannot apply quietly.
//! * [`Config::to_toml_string`] prints the resolved settings as a config file
//!   (`haagent check-config`); that output loads again to the same `Config`.
//!
//! # Files
//!
//! `raw.rs` (serde shapes with origins), `validate.rs` (the main tables → `Config`),
//! `checks.rs` (`[[check]]` tables), `groups.rs` (`[[group]]` tables, and the one implicit
//! group of a file without them), `checker.rs` (collects located errors; checks one
//! integer or duration), `values.rs` (rules for single values: names, endpoints, VIPs, …),
//! `limits.rs` (ranges and defaults), `error.rs`, `reload.rs`, `render.rs`.
//!
//! The reference for every key is docs/configuration.md.

mod checker;
mod checks;
mod error;
mod groups;
mod limits;
mod mover;
mod raw;
mod reload;
mod render;
mod validate;
mod values;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_checks;
#[cfg(test)]
mod tests_groups;
#[cfg(test)]
mod tests_mover;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, ErrorPlace, Location};
pub use reload::{Fingerprint, Setting, SettingChange};
/// The VIP rules of `[vip] addresses` / `vips`, for the keepalived importer.
pub(crate) use values::bad_vip;

use crate::net::IpCidr;

/// Where haagent looks for its config file when none is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/haagent/haagent.toml";
/// Default directory of the CA, node certificate and key.
pub const DEFAULT_CERTS_DIR: &str = "/etc/haagent/certs";
/// Default UDP port for the QUIC endpoint (listen and peers).
pub const DEFAULT_PORT: u16 = 5798;
/// Default cluster name.
pub const DEFAULT_CLUSTER: &str = "haagent";
/// The `source` of a configuration built from flags only.
pub const COMMAND_LINE: &str = "command line";
/// Default path of the control socket (`[control] socket`, `--socket`).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/haagent/haagent.sock";
/// Default directory of the agent's persistent state (`[state] dir`): systemd's
/// `StateDirectory=haagent`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/haagent";
/// Port of `[metrics] listen` (`--metrics-listen`) when only an address is given.
pub const DEFAULT_METRICS_PORT: u16 = 9798;
/// Accepted `[log] level` values.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Located notes that do not make the config invalid, one line each
    /// (`FILE:LINE:COL: note: ...`), e.g. that a positive weight now means keepalived's
    /// "added while the check succeeds"; `haagent check-config` prints them on stderr.
    pub notes: Vec<String>,
    /// The config file path, or `"command line"` in quick mode.
    pub source: String,
    /// Cluster name (default `"haagent"`).
    pub cluster: String,
    /// This node.
    pub node: NodeConfig,
    /// The other nodes (at least one; never this node).
    pub peers: Vec<PeerConfig>,
    /// The floating addresses, at least one, no duplicates: every group's VIPs, in group
    /// order (for a config without `[[group]]`, `[vip] addresses`).
    pub vips: Vec<IpCidr>,
    /// Kernel lifetime of each installed VIP (`[vip] lease_ms`, default 2 s, a whole number of
    /// seconds); the master keeps refreshing it, so the kernel removes the VIP by itself when
    /// the agent dies or freezes. `None` = no lifetime (`lease_ms = 0`).
    pub lease: Option<Duration>,
    /// ARP probing (RFC 5227) before claiming a VIP after losing contact with the master.
    pub probe: ProbeSettings,
    /// Election timing, preemption and quorum.
    pub election: ElectionSettings,
    /// The gateway witness; `None` when there is no `[witness]` table and no `--gateway`.
    pub witness: Option<WitnessSettings>,
    /// Gratuitous ARP after taking the VIPs.
    pub garp: GarpSettings,
    /// Certificate and key files (not read here).
    pub tls: TlsPaths,
    /// Commands run on state transitions.
    pub notify: NotifySettings,
    /// The node's cloud mover (`[mover]`): the mover of the implicit group, and of every
    /// `[[group]]` without a `[group.mover]`. `None`: no mover.
    pub mover: Option<MoverSettings>,
    /// Logging.
    pub log: LogSettings,
    /// Health checks (`[[check]]` tables, or `--check-http` flags which replace them), in
    /// file order, with unique names. Empty: no checks.
    pub checks: Vec<crate::health::CheckSpec>,
    /// Where the Prometheus metrics endpoint listens (`[metrics] listen`,
    /// `--metrics-listen`); `None` = no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// The control socket used by the CLI (`[control] socket`, `--socket`); an absolute path,
    /// default [`DEFAULT_CONTROL_SOCKET`].
    pub control_socket: PathBuf,
    /// `[control] group`: the socket is made mode 0660 owned by `root:GROUP` so that members
    /// of the group can use the CLI. `None`: mode 0600, root only. The name is not looked up
    /// here (the daemon does that when it creates the socket).
    pub control_group: Option<String>,
    /// Where the agent keeps what must survive a restart (maintenance mode): `[state] dir`,
    /// an absolute path, default [`DEFAULT_STATE_DIR`]. Created when first written.
    pub state_dir: PathBuf,
    /// The VIP groups, one election each (`[[group]]` tables), in file order; never empty.
    /// A config without `[[group]]` (and quick mode) has exactly one group,
    /// [`LEGACY_GROUP`], built from `[node] priority`/`interface`, `[vip] addresses`,
    /// `[election] preempt`/`preempt_delay_ms`, every `[[check]]` and `[notify]`.
    pub groups: Vec<GroupConfig>,
}

/// The name of the one group of a config that has no `[[group]]` tables.
pub const LEGACY_GROUP: &str = "default";

/// One VIP group: its own election over its own VIPs (keepalived's `vrrp_instance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `name`: 1..=32 bytes of `[A-Za-z0-9._-]`, not starting with `-`; unique; a
    /// `[[group]]` cannot be named [`LEGACY_GROUP`].
    pub name: String,
    /// `id`, 1..=65535, the group's id on the wire (keepalived's `virtual_router_id`); every
    /// node must use the same id for the same group. Default [`group_id_from_name`].
    pub id: u16,
    /// `mode`: how the master makes its VIPs reachable (default [`GroupMode::L2`]).
    pub mode: GroupMode,
    /// `bird_socket`: the control socket of the node's BIRD (an absolute path of at most
    /// 107 bytes), whose view of the group's announcement `status` and the metrics show
    /// (`birdc -s PATH`, [`crate::bird`]); routed groups only, `None` = not queried.
    /// Information only: it never reaches the election.
    pub bird_socket: Option<PathBuf>,
    /// The group's VIPs, at least one; no VIP belongs to two groups.
    pub vips: Vec<crate::net::VipSpec>,
    /// This node's priority in this group, 1..=254 (default `[node] priority`).
    pub priority: u8,
    /// Default `[election] preempt` (`nopreempt = true` is accepted too).
    pub preempt: bool,
    /// Default `[election] preempt_delay_ms`.
    pub preempt_delay: Duration,
    /// The checks this group follows, by name, each with the weight it has here. Default:
    /// every `[[check]]` with its own weight.
    pub track: Vec<TrackCheck>,
    /// Hooks run on this group's transitions (`[group.notify]`, same keys as `[notify]`);
    /// default: the node's `[notify]`.
    pub notify: NotifySettings,
    /// Routes installed while this group is master (`[[group.route]]`).
    pub routes: Vec<crate::net::RouteSpec>,
    /// The command that moves this group's addresses through a cloud provider's API on
    /// claim and release (`[group.mover]`; default the node's `[mover]`); `None`: no mover.
    pub mover: Option<MoverSettings>,
}

impl GroupConfig {
    /// The interfaces this group's VIPs use, in the order they first appear.
    pub fn interfaces(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in &self.vips {
            if !out.contains(&v.interface) {
                out.push(v.interface.clone());
            }
        }
        out
    }

    /// The VIP addresses with prefixes, in config order.
    pub fn cidrs(&self) -> Vec<IpCidr> {
        self.vips.iter().map(|v| v.cidr).collect()
    }
}

/// How a group's master makes its VIPs reachable (`[[group]] mode`; docs/routed.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum GroupMode {
    /// `"l2"` (the default): the VIPs are addresses on a shared segment, moved by
    /// gratuitous ARP / unsolicited NA, probed (RFC 5227, RFC 4862 DAD) before a claim.
    #[default]
    L2,
    /// `"routed"`: each VIP is an IPv4 host address (`/32`) on a local interface (`lo` by
    /// default) plus a host route `VIP/32 dev IF src VIP proto 98 metric EPOCH` that a BGP
    /// daemon (BIRD, FRR) exports; no ARP, no probe. The route goes with the address, which
    /// has the lease as its kernel lifetime; the metric is the election epoch, so the
    /// newest master wins at the router (LOCAL_PREF = metric, or MED = 2^32-1 - metric).
    Routed,
}

impl GroupMode {
    /// The config word: `"l2"` or `"routed"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupMode::L2 => "l2",
            GroupMode::Routed => "routed",
        }
    }
}

/// A check a group follows (`track = ["nginx", { check = "disk", weight = -20 }]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackCheck {
    /// The `[[check]]` name.
    pub check: String,
    /// What its failing does in this group (default: the check's own `weight`).
    pub weight: crate::health::Weight,
}

/// The default wire id of a group: the first two bytes of the SHA-256 of its name, big
/// endian, with 0 mapped to 1 (0 is never a group id).
pub fn group_id_from_name(name: &str) -> u16 {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let b = digest.as_ref();
    u16::from_be_bytes([b[0], b[1]]).max(1)
}

/// This node's identity and network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Node name (also the name in its certificate); default: the host name.
    pub name: String,
    /// Election priority, 1..=254 (higher wins); default 100.
    pub priority: u8,
    /// Interface that carries the VIPs.
    pub interface: String,
    /// Local QUIC endpoint; default `0.0.0.0:5798`, or `[::]:5798` when the peers are IPv6.
    pub listen: SocketAddr,
}

/// Another node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's node name (must match its certificate). `None` when the peer was given by
    /// address only (`--peer ADDR`, or a `[[peer]]` without `name`).
    pub name: Option<String>,
    /// Where the peer's QUIC endpoint is.
    pub address: SocketAddr,
}

/// Election timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionSettings {
    /// Time between adverts (10 ms..=10 s, default 50 ms).
    pub advert_interval: Duration,
    /// A master is declared down after `down_multiplier` missed adverts (2..=20, default 3).
    pub down_multiplier: u32,
    /// Whether a higher-priority node takes over from a running master (default true).
    pub preempt: bool,
    /// How long a higher-priority node waits before preempting (default 0).
    pub preempt_delay: Duration,
    /// True: a node serves only while it is in contact with a majority of the cluster
    /// (`quorum = "majority"`, the default with 3 or more nodes); false: `quorum = "off"`
    /// (the default with 2 nodes).
    pub quorum: bool,
}

/// ARP probes (RFC 5227) sent for each VIP before claiming it after losing contact with the
/// master: an answer means another node still holds the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Probes per VIP (0..=20, default 3); 0 = no probing.
    pub count: u32,
    /// The window the probes for one VIP are spread over and answers awaited (5 ms..=2 s,
    /// default the advert interval, at most 30 ms).
    pub window: Duration,
    /// How long a backup keeps not claiming while only hosts that are **not** cluster
    /// members answer its probes, before it claims anyway; `None` (the default,
    /// `foreign_holder_timeout_ms = 0`) = never. An answer from a member always blocks.
    pub foreign_holder_timeout: Option<Duration>,
    /// `[vip] ignore_arp_from` (at most 16 unicast MACs, default none): ARP frames sent by
    /// these MACs are no evidence of a holder, neither as probe answers nor as conflict or
    /// defence frames: for clouds whose virtual network answers ARP for every address itself
    /// (docs/cloud.md). They are counted, never acted on.
    pub ignore_arp_from: Vec<[u8; 6]>,
}

/// Which address the gateway witness watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewaySetting {
    /// The gateway of the default route on the node's interface, looked up when the agent
    /// starts (`gateway = "auto"`): the IPv4 default route's, else the IPv6 one's.
    Auto,
    /// This unicast address: IPv4, or IPv6 (global, or link-local `fe80::/10` reached
    /// through the node's interface).
    Addr(IpAddr),
}

impl fmt::Display for GatewaySetting {
    /// `auto` or the address, as written in the config file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewaySetting::Auto => f.write_str("auto"),
            GatewaySetting::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// The gateway witness: a node that cannot reach the gateway does not serve the VIPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessSettings {
    /// The address probed (default [`GatewaySetting::Auto`]).
    pub gateway: GatewaySetting,
    /// Time between probes (10 ms..=60 s, default 200 ms).
    pub interval: Duration,
    /// A probe without an answer after this long failed (1 ms..=`interval`, default `interval`).
    pub timeout: Duration,
    /// Consecutive failed probes before the gateway counts as unreachable (1..=100, default 3).
    pub fall: u32,
    /// Consecutive answered probes before it counts as reachable again (1..=100, default 2).
    pub rise: u32,
}

/// Gratuitous ARP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpSettings {
    /// How many GARPs per VIP after becoming master (1..=20, default 3).
    pub count: u32,
    /// Over how long the `count` GARPs are spread (default 500 ms).
    pub spread: Duration,
    /// Repeat the GARPs this often while master; zero = never (default 30 s).
    pub refresh: Duration,
}

/// Paths of this node's TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

/// One notify hook: the program and its own arguments (no shell), and which extra arguments
/// haagent appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The program and the operator's own arguments; never empty, the program never blank.
    pub argv: Vec<String>,
    /// What haagent appends after `argv` (`args`, default [`HookArgs::None`]).
    pub args: HookArgs,
}

impl Hook {
    /// A hook given as a plain argv list (`master = ["/usr/local/bin/x", "arg"]`): nothing
    /// appended.
    pub fn plain(argv: Vec<String>) -> Self {
        Self {
            argv,
            args: HookArgs::None,
        }
    }
}

/// The `args` of a hook table (`{ command = [...], args = "keepalived" }`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HookArgs {
    /// `"none"`: the argv as configured, nothing appended (the default, and what a plain
    /// list means).
    #[default]
    None,
    /// `"keepalived"`: keepalived's positional arguments. For `command` (keepalived's
    /// `notify`): `INSTANCE <group> <MASTER|BACKUP|FAULT|STOP> <priority>`; keepalived
    /// appends nothing to `notify_master`/`_backup`/`_fault`/`_stop`, so neither do we for
    /// the other hooks (keepalived.conf(5), `notify`).
    Keepalived,
}

impl HookArgs {
    /// The config word: `none` or `keepalived`.
    pub fn word(self) -> &'static str {
        match self {
            HookArgs::None => "none",
            HookArgs::Keepalived => "keepalived",
        }
    }
}

/// Commands run on transitions, as argv lists (no shell), one queue per group (see
/// [`crate::notify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// Run on every transition (keepalived's `notify`; the new state in the environment, and
    /// as arguments with `args = "keepalived"`).
    pub command: Option<Hook>,
    /// Run on becoming master.
    pub master: Option<Hook>,
    /// Run on becoming backup.
    pub backup: Option<Hook>,
    /// Run on entering fault.
    pub fault: Option<Hook>,
    /// Run when the agent stops.
    pub stop: Option<Hook>,
    /// Run when an ARP probe answer first keeps a backup from claiming the VIPs after
    /// master-down (and again after each change of the answering MAC).
    pub claim_blocked: Option<Hook>,
    /// Run when a master wins a VIP conflict and re-announces (keepalived's
    /// `notify_master_rx_lower_pri`); at most once per conflict notice interval.
    pub conflict_won: Option<Hook>,
    /// A command still running after this long is killed with its process group (default 5 s).
    pub timeout: Duration,
}

/// A cloud mover (`[mover]`, `[group.mover]`): a command run after a claim installed the
/// group's VIPs and after a release removed them, for networks where gratuitous ARP moves
/// nothing and only the provider's API does (docs/cloud.md; [`crate::mover`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoverSettings {
    /// `command`: the program (an absolute path) and its arguments, no shell.
    pub command: Vec<String>,
    /// `timeout_ms` (100..=600000, default 10000): one attempt still running after this long
    /// is killed with its process group.
    pub timeout: Duration,
    /// `retries` (0..=10, default 2): attempts after a failed one.
    pub retries: u32,
    /// `retry_delay_ms` (0..=60000, default 1000): the pause before each retry.
    pub retry_delay: Duration,
    /// `wait` (default false): the claim counts as done (status, `master` hook, metrics)
    /// only once the claim mover succeeded; a claim whose every attempt failed puts the
    /// group in fault for a hold-down, so that another node takes over.
    pub wait: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in the config file: `"text"` or `"json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Output format (default text).
    pub format: LogFormat,
    /// One of [`LOG_LEVELS`] (default `"info"`).
    pub level: String,
}

/// Values from command-line flags. They override the file; with no file they are the whole
/// configuration (quick mode). Plain data: the CLI fills it. Flag names used in messages are
/// given on each field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--cluster NAME`
    pub cluster: Option<String>,
    /// `--name NAME`
    pub name: Option<String>,
    /// `--priority N` (wide type so that an out-of-range value is reported, not truncated)
    pub priority: Option<i64>,
    /// `--interface IFACE`
    pub interface: Option<String>,
    /// `--listen ADDR[:PORT]`
    pub listen: Option<String>,
    /// `--vip ADDR/PREFIX`, repeatable; non-empty replaces the file's VIPs (an error when
    /// the file has `[[group]]` tables).
    pub vips: Vec<String>,
    /// `--peer ADDR[:PORT]`, repeatable; non-empty replaces the file's peers (peers by address,
    /// without names).
    pub peers: Vec<String>,
    /// `--certs DIR`: ca.pem, NAME.pem, NAME-key.pem in DIR (replaces the whole `[tls]` table).
    pub certs_dir: Option<PathBuf>,
    /// `--advert-interval-ms MS`
    pub advert_interval_ms: Option<u64>,
    /// `--nopreempt`
    pub nopreempt: bool,
    /// `--quorum majority|off`
    pub quorum: Option<String>,
    /// `--gateway auto|IP`: enables the gateway witness (defaults for the rest of
    /// `[witness]`) and replaces the file's `gateway`.
    pub gateway: Option<String>,
    /// `--log-format text|json`
    pub log_format: Option<String>,
    /// `--log-level LEVEL`
    pub log_level: Option<String>,
    /// `--check-http URL`, repeatable; non-empty replaces the file's `[[check]]` tables with
    /// http checks named `http-1`, `http-2`, ... with the fast defaults (interval 100 ms,
    /// timeout 100 ms, fall 2, rise 2, weight fault).
    pub check_http: Vec<String>,
    /// `--metrics-listen ADDR[:PORT]`
    pub metrics_listen: Option<String>,
    /// `--socket PATH`
    pub socket: Option<PathBuf>,
}

/// Loads the configuration.
///
/// * `config_file` given: it must exist and be readable; flags override its values.
/// * `None`: [`DEFAULT_CONFIG_PATH`] if it exists; otherwise quick mode (flags only).
pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    load_with_default(config_file, Path::new(DEFAULT_CONFIG_PATH), overrides)
}

/// [`load`] with another default path (for tests).
pub(crate) fn load_with_default(
    config_file: Option<&Path>,
    default_path: &Path,
    overrides: &Overrides,
) -> Result<Config, ConfigErrors> {
    let (path, quick_note) = match config_file {
        Some(p) => (p, false),
        None if default_path.exists() => (default_path, false),
        None => (default_path, true),
    };
    if quick_note {
        return from_flags(overrides).map_err(|mut e| {
            e.0.push(ConfigError {
                place: ErrorPlace::CommandLine,
                message: format!(
                    "(no config file: {} does not exist, so the flags are the whole \
                     configuration)",
                    default_path.display()
                ),
            });
            e
        });
    }
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::file(
            &name,
            format!("cannot read config file: {e}"),
        )])
    })?;
    from_toml(&text, &name, overrides)
}

/// Builds the configuration from TOML text (no file I/O); `source_name` names it in errors.
pub fn from_toml(
    text: &str,
    source_name: &str,
    overrides: &Overrides,
) -> Result<Config, ConfigErrors> {
    from_toml_with_host(text, source_name, overrides, host_name())
}

/// Quick mode: the configuration from flags alone.
pub fn from_flags(overrides: &Overrides) -> Result<Config, ConfigErrors> {
    from_flags_with_host(overrides, host_name())
}

pub(crate) fn from_toml_with_host(
    text: &str,
    source_name: &str,
    overrides: &Overrides,
    host: Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut ck = checker::Checker::new(Some(source_name), text);
    let mut raw = match raw::parse_document(text) {
        Ok((raw, errors)) => {
            for e in errors {
                ck.push_raw(e.span.as_ref(), e.message);
            }
            raw
        }
        Err(syntax) => {
            for e in syntax {
                ck.push_raw(e.span.as_ref(), format!("TOML syntax error: {}", e.message));
            }
            return Err(ck.into_errors());
        }
    };
    raw::apply_overrides(&mut raw, overrides);
    validate::validate(&raw, ck, source_name, host)
}

pub(crate) fn from_flags_with_host(
    overrides: &Overrides,
    host: Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut raw = raw::RawConfig::default();
    raw::apply_overrides(&mut raw, overrides);
    validate::validate(&raw, checker::Checker::new(None, ""), COMMAND_LINE, host)
}

/// This machine's host name, if it has one that is valid UTF-8.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for writes of its length; gethostname writes at most that
    // many bytes and we stop at the first NUL (or the end of the buffer).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..len]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}
