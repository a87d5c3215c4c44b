//! Raw, unvalidated settings: what the TOML file and the command-line flags said, nothing more.
//!
//! Every value keeps its [`Origin`] (a byte span in the file, or the flag that set it) so that
//! `validate` can point at it. The file is read one table at a time, and a key that fails to
//! deserialize (unknown key, wrong type) is reported, dropped and the table read again, so one
//! mistake never hides the others.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::Overrides;

/// Where a raw value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Byte range of the value in the config file.
    Span(Range<usize>),
    /// The command-line flag and its value as the user would type it, e.g. `--priority 300`.
    Flag(String),
}

impl Default for Origin {
    /// No place yet; set once the value's place is known.
    fn default() -> Self {
        no_origin()
    }
}

/// A raw value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item<T> {
    pub(crate) value: T,
    pub(crate) origin: Origin,
}

impl<T> Item<T> {
    /// A value set by a command-line flag.
    pub(crate) fn flag(value: T, flag: String) -> Self {
        Self {
            value,
            origin: Origin::Flag(flag),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<T>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(Self {
            value: spanned.into_inner(),
            origin: Origin::Span(span),
        })
    }
}

/// `[cluster]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub(crate) name: Option<Item<String>>,
}

/// `[node]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub(crate) name: Option<Item<String>>,
    pub(crate) priority: Option<Item<i64>>,
    pub(crate) interface: Option<Item<String>>,
    pub(crate) listen: Option<Item<String>>,
}

/// One `[[peer]]` table, or one `--peer` flag.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    pub(crate) name: Option<Item<String>>,
    pub(crate) address: Option<Item<String>>,
    /// Where the whole peer was given (the `[[peer]]` header or the flag).
    #[serde(skip, default = "no_origin")]
    pub(crate) origin: Origin,
}

fn no_origin() -> Origin {
    Origin::Span(0..0)
}

/// `[vip]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVip {
    pub(crate) addresses: Option<Item<Vec<Item<String>>>>,
    pub(crate) lease_ms: Option<Item<i64>>,
    pub(crate) probe_count: Option<Item<i64>>,
    pub(crate) probe_window_ms: Option<Item<i64>>,
    pub(crate) foreign_holder_timeout_ms: Option<Item<i64>>,
    pub(crate) ignore_arp_from: Option<Item<Vec<Item<String>>>>,
}

/// `[election]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawElection {
    pub(crate) advert_interval_ms: Option<Item<i64>>,
    pub(crate) down_multiplier: Option<Item<i64>>,
    pub(crate) preempt: Option<Item<bool>>,
    pub(crate) nopreempt: Option<Item<bool>>,
    pub(crate) preempt_delay_ms: Option<Item<i64>>,
    pub(crate) quorum: Option<Item<String>>,
}

/// `[witness]` (its presence enables the gateway witness)
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWitness {
    pub(crate) gateway: Option<Item<String>>,
    pub(crate) interval_ms: Option<Item<i64>>,
    pub(crate) timeout_ms: Option<Item<i64>>,
    pub(crate) fall: Option<Item<i64>>,
    pub(crate) rise: Option<Item<i64>>,
}

/// `[garp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGarp {
    pub(crate) count: Option<Item<i64>>,
    pub(crate) spread_ms: Option<Item<i64>>,
    pub(crate) refresh_ms: Option<Item<i64>>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) dir: Option<Item<PathBuf>>,
    pub(crate) ca: Option<Item<PathBuf>>,
    pub(crate) cert: Option<Item<PathBuf>>,
    pub(crate) key: Option<Item<PathBuf>>,
}

/// `[notify]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    pub(crate) command: Option<Item<RawHook>>,
    pub(crate) master: Option<Item<RawHook>>,
    pub(crate) backup: Option<Item<RawHook>>,
    pub(crate) fault: Option<Item<RawHook>>,
    pub(crate) stop: Option<Item<RawHook>>,
    pub(crate) claim_blocked: Option<Item<RawHook>>,
    pub(crate) conflict_won: Option<Item<RawHook>>,
    pub(crate) timeout_ms: Option<Item<i64>>,
}

/// `[mover]` / `[group.mover]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMover {
    pub(crate) command: Option<Item<Vec<String>>>,
    pub(crate) timeout_ms: Option<Item<i64>>,
    pub(crate) retries: Option<Item<i64>>,
    pub(crate) retry_delay_ms: Option<Item<i64>>,
    pub(crate) wait: Option<Item<bool>>,
    /// Where the whole table was given (its header), for a missing `command`.
    #[serde(skip, default = "no_origin")]
    pub(crate) origin: Origin,
}

/// One hook key of `[notify]`: an argv list, or a table `{ command = [...], args = "..." }`
/// (`validate` checks `command` is there and `args` is a known word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawHook {
    /// `master = ["/usr/local/bin/x", "arg"]`
    List(Vec<String>),
    /// `master = { command = [...], args = "keepalived" }`
    Table(RawHookTable),
}

/// The table form of a hook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHookTable {
    pub(crate) command: Option<Item<Vec<String>>>,
    pub(crate) args: Option<Item<String>>,
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawHook;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a list (the program and its arguments) or a table \
                     { command = [...], args = \"keepalived\" | \"none\" }",
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawHook, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(RawHook::List)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawHook, A::Error> {
                RawHookTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawHook::Table)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) format: Option<Item<String>>,
    pub(crate) level: Option<Item<String>>,
}

/// `weight` of a `[[check]]`: an integer or a word (only `"fault"` is valid; `validate`
/// says so for any other word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawWeight {
    /// `weight = -20`
    Int(i64),
    /// `weight = "fault"`
    Word(String),
}

impl<'de> Deserialize<'de> for RawWeight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawWeight;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let (lo, hi) = super::checks::limits::WEIGHT;
                write!(f, "an integer {lo}..={hi} or \"fault\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawWeight, E> {
                Ok(RawWeight::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawWeight, E> {
                Ok(RawWeight::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawWeight, E> {
                Ok(RawWeight::Word(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// One `[[check]]` table, or one `--check-http` flag. It takes the keys of every kind; which
/// of them belong to the check's `kind` is decided in `validate`, so that a key of the wrong
/// kind gets its own message (not just "unknown field").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub(crate) name: Option<Item<String>>,
    pub(crate) kind: Option<Item<String>>,
    pub(crate) interval_ms: Option<Item<i64>>,
    pub(crate) timeout_ms: Option<Item<i64>>,
    pub(crate) fall: Option<Item<i64>>,
    pub(crate) rise: Option<Item<i64>>,
    pub(crate) weight: Option<Item<RawWeight>>,
    // http
    pub(crate) url: Option<Item<String>>,
    pub(crate) expect_status: Option<Item<Vec<Item<i64>>>>,
    pub(crate) body_contains: Option<Item<String>>,
    // tcp
    pub(crate) address: Option<Item<String>>,
    // exec
    pub(crate) command: Option<Item<Vec<String>>>,
    // process
    pub(crate) pidfile: Option<Item<PathBuf>>,
    pub(crate) process: Option<Item<String>>,
    // interface
    pub(crate) interface: Option<Item<String>>,
    // file
    pub(crate) path: Option<Item<PathBuf>>,
    /// Where the whole check was given (the `[[check]]` table or the flag).
    #[serde(skip, default = "no_origin")]
    pub(crate) origin: Origin,
    /// Keys of this check already reported as malformed and dropped.
    #[serde(skip)]
    pub(crate) broken: BTreeSet<String>,
}

/// `[metrics]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) listen: Option<Item<String>>,
}

/// `[control]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub(crate) socket: Option<Item<PathBuf>>,
    pub(crate) group: Option<Item<String>>,
}

/// `[state]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub(crate) dir: Option<Item<PathBuf>>,
}

/// One entry of a group's `vips`: `"192.0.2.100/24"` or
/// `{ address = "192.0.2.100/24", interface = "eth1", label = "eth1:vip", scope = "global" }`.
#[derive(Debug)]
pub(crate) enum RawVipEntry {
    /// `"ADDR/PREFIX"`: the node's interface, no label, scope global.
    Plain(String),
    /// The table form.
    Table(RawVipTable),
}

/// The table form of a `vips` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVipTable {
    pub(crate) address: Option<Item<String>>,
    pub(crate) interface: Option<Item<String>>,
    pub(crate) label: Option<Item<String>>,
    pub(crate) scope: Option<Item<String>>,
}

/// One entry of a group's `track`: `"nginx"` or `{ check = "disk", weight = -20 }`.
#[derive(Debug)]
pub(crate) enum RawTrack {
    /// `"NAME"`: the check with its own weight.
    Plain(String),
    /// The table form.
    Table(RawTrackTable),
}

/// The table form of a `track` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrackTable {
    pub(crate) check: Option<Item<String>>,
    pub(crate) weight: Option<Item<RawWeight>>,
}

/// A string, or a table deserialized as `T` (the two forms of a `vips` or `track` entry).
fn string_or_table<'de, D, T, R>(
    deserializer: D,
    what: &'static str,
    plain: fn(String) -> R,
    table: fn(T) -> R,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T, R> {
        what: &'static str,
        plain: fn(String) -> R,
        table: fn(T) -> R,
    }
    impl<'de, T: Deserialize<'de>, R> serde::de::Visitor<'de> for V<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.what)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.plain)(v.to_string()))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(self.table)
        }
    }
    deserializer.deserialize_any(V { what, plain, table })
}

impl<'de> Deserialize<'de> for RawVipEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(
            deserializer,
            "\"ADDR/PREFIX\" or a table { address, interface, label, scope }",
            RawVipEntry::Plain,
            RawVipEntry::Table,
        )
    }
}

impl<'de> Deserialize<'de> for RawTrack {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_table(
            deserializer,
            "a check name or a table { check, weight }",
            RawTrack::Plain,
            RawTrack::Table,
        )
    }
}

/// One `[[group.route]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) to: Option<Item<String>>,
    pub(crate) via: Option<Item<String>>,
    pub(crate) src: Option<Item<String>>,
    pub(crate) dev: Option<Item<String>>,
    pub(crate) metric: Option<Item<i64>>,
    pub(crate) table: Option<Item<i64>>,
    /// Where the whole route was given (its `[[group.route]]` table).
    #[serde(skip, default = "no_origin")]
    pub(crate) origin: Origin,
    /// Keys of this route (`group.route.to`, ...) already reported as malformed.
    #[serde(skip)]
    pub(crate) broken: BTreeSet<String>,
}

/// One `[[group]]` table. `[group.notify]` and `[[group.route]]` are read on their own (so
/// that their errors name them), into `notify` and `routes`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub(crate) name: Option<Item<String>>,
    pub(crate) id: Option<Item<i64>>,
    pub(crate) mode: Option<Item<String>>,
    pub(crate) bird_socket: Option<Item<PathBuf>>,
    pub(crate) vips: Option<Item<Vec<Item<RawVipEntry>>>>,
    pub(crate) priority: Option<Item<i64>>,
    pub(crate) preempt: Option<Item<bool>>,
    pub(crate) nopreempt: Option<Item<bool>>,
    pub(crate) preempt_delay_ms: Option<Item<i64>>,
    pub(crate) track: Option<Item<Vec<Item<RawTrack>>>>,
    /// `[group.notify]`, when present.
    #[serde(skip)]
    pub(crate) notify: Option<RawNotify>,
    /// `[group.mover]`, when present.
    #[serde(skip)]
    pub(crate) mover: Option<RawMover>,
    /// `[[group.route]]` tables, in file order.
    #[serde(skip)]
    pub(crate) routes: Vec<RawRoute>,
    /// Where the whole group was given (its `[[group]]` table).
    #[serde(skip, default = "no_origin")]
    pub(crate) origin: Origin,
    /// Keys of this group (`group.vips`, `group.notify`, ...) already reported as malformed.
    #[serde(skip)]
    pub(crate) broken: BTreeSet<String>,
}

/// Everything the file and the flags said, before validation.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub(crate) cluster: RawCluster,
    pub(crate) node: RawNode,
    pub(crate) peers: Vec<RawPeer>,
    /// `--peer` flags replaced the file's peers.
    pub(crate) peers_from_flags: bool,
    pub(crate) vip: RawVip,
    pub(crate) election: RawElection,
    /// `Some` when a `[witness]` table or `--gateway` was given.
    pub(crate) witness: Option<RawWitness>,
    pub(crate) garp: RawGarp,
    pub(crate) tls: RawTls,
    pub(crate) notify: RawNotify,
    /// `[mover]`, when present.
    pub(crate) mover: Option<RawMover>,
    pub(crate) log: RawLog,
    pub(crate) checks: Vec<RawCheck>,
    /// `[[group]]` tables, in file order (empty: one implicit group).
    pub(crate) groups: Vec<RawGroup>,
    pub(crate) metrics: RawMetrics,
    pub(crate) control: RawControl,
    pub(crate) state: RawState,
    /// Span of each table header present in the file (`node`, `vip`, ...), to point at
    /// when a required key is missing.
    pub(crate) headers: BTreeMap<&'static str, Range<usize>>,
    /// Tables (`node`) and keys (`node.interface`) that were already reported as broken and
    /// dropped: a "missing" error for them would only repeat the first one.
    pub(crate) broken: BTreeSet<String>,
}

/// A problem found while reading the file: a message and the byte range it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawError {
    pub(crate) span: Option<Range<usize>>,
    pub(crate) message: String,
}

/// The top-level tables, in the order they are documented.
pub(crate) const TABLES: [&str; 16] = [
    "cluster", "node", "peer", "vip", "election", "witness", "check", "group", "garp", "tls",
    "notify", "mover", "log", "metrics", "control", "state",
];

/// Parses a TOML document into a [`RawConfig`], collecting every syntax error, unknown key and
/// type mismatch. A syntax error stops there (the rest of the file cannot be trusted).
pub(crate) fn parse_document(text: &str) -> Result<(RawConfig, Vec<RawError>), Vec<RawError>> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax
            .into_iter()
            .map(|e| RawError {
                span: e.span(),
                message: e.message().trim().to_string(),
            })
            .collect());
    }
    let mut raw = RawConfig::default();
    let mut errors = Vec::new();
    for (key, value) in root.into_inner() {
        let span = value.span();
        let Some(&table) = TABLES.iter().find(|t| **t == key.get_ref().as_ref()) else {
            errors.push(RawError {
                span: Some(key.span()),
                message: format!(
                    "unknown table `{}`, expected one of {}",
                    key.get_ref(),
                    TABLES.map(|t| format!("`{t}`")).join(", ")
                ),
            });
            continue;
        };
        raw.headers.insert(table, span);
        let mut ctx = SectionCtx {
            errors: &mut errors,
            broken: &mut raw.broken,
        };
        match table {
            "cluster" => raw.cluster = ctx.section(table, value).unwrap_or_default(),
            "node" => raw.node = ctx.section(table, value).unwrap_or_default(),
            "vip" => raw.vip = ctx.section(table, value).unwrap_or_default(),
            "election" => raw.election = ctx.section(table, value).unwrap_or_default(),
            "witness" => raw.witness = Some(ctx.section(table, value).unwrap_or_default()),
            "garp" => raw.garp = ctx.section(table, value).unwrap_or_default(),
            "tls" => raw.tls = ctx.section(table, value).unwrap_or_default(),
            "notify" => raw.notify = ctx.section(table, value).unwrap_or_default(),
            "mover" => raw.mover = ctx.mover(table, value),
            "log" => raw.log = ctx.section(table, value).unwrap_or_default(),
            "metrics" => raw.metrics = ctx.section(table, value).unwrap_or_default(),
            "control" => raw.control = ctx.section(table, value).unwrap_or_default(),
            "state" => raw.state = ctx.section(table, value).unwrap_or_default(),
            "check" => raw.checks = ctx.checks(value),
            "group" => raw.groups = ctx.groups(value),
            _ => raw.peers = ctx.peers(value),
        }
    }
    Ok((raw, errors))
}

struct SectionCtx<'a> {
    errors: &'a mut Vec<RawError>,
    broken: &'a mut BTreeSet<String>,
}

impl SectionCtx<'_> {
    /// Deserializes one table. On an error, reports it, drops the key it concerns and tries
    /// again, so that every bad key in the table is reported.
    /// `None` if the value is not a table at all or an error cannot be tied to one key.
    fn section<T: DeserializeOwned>(
        &mut self,
        table: &str,
        value: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let span = value.span();
        let DeValue::Table(mut entries) = value.into_inner() else {
            self.errors.push(RawError {
                span: Some(span),
                message: format!("`{table}` must be a table: write [{table}]"),
            });
            self.broken.insert(table.to_string());
            return None;
        };
        // Each round removes one entry, so this ends.
        loop {
            let attempt = Spanned::new(span.clone(), DeValue::Table(entries.clone()));
            match T::deserialize(ValueDeserializer::from(attempt)) {
                Ok(parsed) => return Some(parsed),
                Err(err) => {
                    let err_span = err.span();
                    let culprit = err_span.as_ref().and_then(|es| {
                        entries
                            .iter()
                            .find(|(k, v)| overlaps(&k.span(), es) || overlaps(&v.span(), es))
                            .map(|(k, _)| k.get_ref().to_string())
                    });
                    let message = describe_de_error(table, culprit.as_deref(), err.message());
                    self.errors.push(RawError {
                        span: err_span.or(Some(span.clone())),
                        message,
                    });
                    match culprit {
                        Some(key) => {
                            entries.remove(key.as_str());
                            self.broken.insert(format!("{table}.{key}"));
                        }
                        None => {
                            self.broken.insert(table.to_string());
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// The tables of an array of tables (`[[peer]]`, `[[group.route]]`, …) under `key`
    /// (its `header`, e.g. `[[group.route]]`; `noun` for one item): a value that is no array
    /// is reported and marks `broken_key` broken; an item that is no table is reported and
    /// skipped.
    fn array_tables<'de>(
        &mut self,
        value: Spanned<DeValue<'de>>,
        (key, header, noun, broken_key): (&str, &str, &str, &str),
    ) -> Vec<Spanned<DeValue<'de>>> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.errors.push(RawError {
                span: Some(span),
                message: format!(
                    "`{key}` must be an array of tables: write {header} for each {noun}"
                ),
            });
            self.broken.insert(broken_key.to_string());
            return Vec::new();
        };
        let mut tables = Vec::new();
        for item in items.iter() {
            if item.get_ref().is_table() {
                tables.push(item.clone());
            } else {
                self.errors.push(RawError {
                    span: Some(item.span()),
                    message: format!("each {noun} must be a table: write {header} for each {noun}"),
                });
            }
        }
        tables
    }

    /// Deserializes the `[[peer]]` array, each peer on its own.
    fn peers(&mut self, value: Spanned<DeValue<'_>>) -> Vec<RawPeer> {
        let mut peers = Vec::new();
        for item in self.array_tables(value, ("peer", "[[peer]]", "peer", "peer")) {
            let item_span = item.span();
            let Some(mut peer) = self.section::<RawPeer>("peer", item) else {
                continue;
            };
            peer.origin = Origin::Span(item_span);
            peers.push(peer);
        }
        peers
    }

    /// Deserializes the `[[check]]` array, each check on its own, each with its own record of
    /// broken keys (so that a bad `url` in one check does not hide a missing one in another).
    fn checks(&mut self, value: Spanned<DeValue<'_>>) -> Vec<RawCheck> {
        let mut checks = Vec::new();
        for item in self.array_tables(value, ("check", "[[check]]", "check", "check")) {
            let item_span = item.span();
            let mut broken = BTreeSet::new();
            let parsed = SectionCtx {
                errors: &mut *self.errors,
                broken: &mut broken,
            }
            .section::<RawCheck>("check", item);
            let Some(mut check) = parsed else {
                continue;
            };
            check.origin = Origin::Span(item_span);
            check.broken = broken;
            checks.push(check);
        }
        checks
    }
}

impl SectionCtx<'_> {
    /// Deserializes the `[[group]]` array, each group on its own with its own record of
    /// broken keys; `[group.notify]` and each `[[group.route]]` are read as tables of their
    /// own, so that their errors say `[group.notify]` / `[[group.route]]`.
    fn groups(&mut self, value: Spanned<DeValue<'_>>) -> Vec<RawGroup> {
        let mut groups = Vec::new();
        for item in self.array_tables(value, ("group", "[[group]]", "group", "group")) {
            let item_span = item.span();
            let DeValue::Table(entries) = item.get_ref() else {
                continue;
            };
            let mut entries = entries.clone();
            let notify = entries.remove("notify");
            let mover = entries.remove("mover");
            let route = entries.remove("route");
            let mut broken = BTreeSet::new();
            let mut inner = SectionCtx {
                errors: &mut *self.errors,
                broken: &mut broken,
            };
            let parsed = inner.section::<RawGroup>(
                "group",
                Spanned::new(item_span.clone(), DeValue::Table(entries)),
            );
            let notify = notify.and_then(|v| inner.section::<RawNotify>("group.notify", v));
            let mover = mover.and_then(|v| inner.mover("group.mover", v));
            let routes = route.map(|v| inner.routes(v)).unwrap_or_default();
            let Some(mut group) = parsed else {
                continue;
            };
            group.notify = notify;
            group.mover = mover;
            group.routes = routes;
            group.origin = Origin::Span(item_span);
            group.broken = broken;
            groups.push(group);
        }
        groups
    }

    /// Deserializes a `[mover]` or `[group.mover]` table, remembering where it was given.
    /// A malformed table (not a table at all) is `None`, already reported.
    fn mover(&mut self, table: &str, value: Spanned<DeValue<'_>>) -> Option<RawMover> {
        let span = value.span();
        let mut mover = self.section::<RawMover>(table, value)?;
        mover.origin = Origin::Span(span);
        Some(mover)
    }

    /// Deserializes a group's `[[group.route]]` array.
    fn routes(&mut self, value: Spanned<DeValue<'_>>) -> Vec<RawRoute> {
        let mut routes = Vec::new();
        let what = ("route", "[[group.route]]", "route", "group.route");
        for item in self.array_tables(value, what) {
            let item_span = item.span();
            let mut broken = BTreeSet::new();
            let parsed = SectionCtx {
                errors: &mut *self.errors,
                broken: &mut broken,
            }
            .section::<RawRoute>("group.route", item);
            if let Some(mut route) = parsed {
                route.origin = Origin::Span(item_span);
                route.broken = broken;
                routes.push(route);
            }
        }
        routes
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    if b.is_empty() {
        a.start <= b.start && b.start <= a.end
    } else {
        a.start < b.end && b.start < a.end
    }
}

/// Makes serde's wording readable for someone who never wrote Rust.
fn describe_de_error(table: &str, key: Option<&str>, message: &str) -> String {
    let message = message
        .trim()
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected a list")
        .replace("expected struct RawPeer", "expected a table")
        .replace("expected struct RawCheck", "expected a table")
        .replace("expected struct RawGroup", "expected a table")
        .replace("expected struct RawRoute", "expected a table")
        .replace("expected struct RawNotify", "expected a table")
        .replace("expected struct RawMover", "expected a table");
    let header = if matches!(table, "peer" | "check" | "group" | "group.route") {
        format!("[[{table}]]")
    } else {
        format!("[{table}]")
    };
    // `[group.notify]`, `[group.mover]` and `[[group.route]]` are read on their own (serde
    // skips them in RawGroup), so serde's list of a group's keys lacks them.
    let message = if table == "group"
        && message.starts_with("unknown field `")
        && message.ends_with("`preempt_delay_ms`, `track`")
    {
        format!("{message}, `notify`, `mover`, `route`")
    } else {
        message
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // An unknown key inside a key's value (a `vips` entry's table) names that key too.
        let unknown = rest.split('`').next().unwrap_or_default();
        return match key {
            Some(key) if key != unknown => format!("{header} {key}: {message}"),
            _ => format!("{header}: {message}"),
        };
    }
    match key {
        Some(key) => format!("{header} {key}: {message}"),
        None => format!("{header}: {message}"),
    }
}

/// Copies the command-line flags over the raw settings (flags win over the file).
pub(crate) fn apply_overrides(raw: &mut RawConfig, o: &Overrides) {
    if let Some(v) = &o.cluster {
        raw.cluster.name = Some(Item::flag(v.clone(), format!("--cluster {v}")));
    }
    if let Some(v) = &o.name {
        raw.node.name = Some(Item::flag(v.clone(), format!("--name {v}")));
    }
    if let Some(v) = o.priority {
        raw.node.priority = Some(Item::flag(v, format!("--priority {v}")));
    }
    if let Some(v) = &o.interface {
        raw.node.interface = Some(Item::flag(v.clone(), format!("--interface {v}")));
    }
    if let Some(v) = &o.listen {
        raw.node.listen = Some(Item::flag(v.clone(), format!("--listen {v}")));
    }
    if !o.peers.is_empty() {
        raw.peers_from_flags = true;
        raw.peers = o
            .peers
            .iter()
            .map(|p| RawPeer {
                name: None,
                address: Some(Item::flag(p.clone(), format!("--peer {p}"))),
                origin: Origin::Flag(format!("--peer {p}")),
            })
            .collect();
    }
    if !o.vips.is_empty() {
        let list = o
            .vips
            .iter()
            .map(|v| Item::flag(v.clone(), format!("--vip {v}")))
            .collect();
        raw.vip.addresses = Some(Item::flag(list, "--vip".to_string()));
    }
    if let Some(v) = o.advert_interval_ms {
        let ms = i64::try_from(v).unwrap_or(i64::MAX);
        raw.election.advert_interval_ms = Some(Item::flag(ms, format!("--advert-interval-ms {v}")));
    }
    if o.nopreempt {
        raw.election.preempt = Some(Item::flag(false, "--nopreempt".to_string()));
        raw.election.nopreempt = None;
    }
    if let Some(v) = &o.quorum {
        raw.election.quorum = Some(Item::flag(v.clone(), format!("--quorum {v}")));
    }
    if let Some(v) = &o.gateway {
        raw.witness.get_or_insert_with(RawWitness::default).gateway =
            Some(Item::flag(v.clone(), format!("--gateway {v}")));
    }
    if let Some(dir) = &o.certs_dir {
        raw.tls = RawTls {
            dir: Some(Item::flag(
                dir.clone(),
                format!("--certs {}", dir.display()),
            )),
            ..RawTls::default()
        };
    }
    if let Some(v) = &o.log_format {
        raw.log.format = Some(Item::flag(v.clone(), format!("--log-format {v}")));
    }
    if let Some(v) = &o.log_level {
        raw.log.level = Some(Item::flag(v.clone(), format!("--log-level {v}")));
    }
    if !o.check_http.is_empty() {
        raw.checks = o
            .check_http
            .iter()
            .map(|url| {
                let flag = format!("--check-http {url}");
                RawCheck {
                    kind: Some(Item::flag("http".to_string(), flag.clone())),
                    url: Some(Item::flag(url.clone(), flag.clone())),
                    origin: Origin::Flag(flag),
                    ..RawCheck::default()
                }
            })
            .collect();
    }
    if let Some(v) = &o.metrics_listen {
        raw.metrics.listen = Some(Item::flag(v.clone(), format!("--metrics-listen {v}")));
    }
    if let Some(p) = &o.socket {
        raw.control.socket = Some(Item::flag(p.clone(), format!("--socket {}", p.display())));
    }
}
