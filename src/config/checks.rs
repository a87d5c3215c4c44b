//! `[[check]]` tables (and `--check-http` flags) → [`CheckSpec`]s for the health monitor.
//!
//! Kept apart from validate.rs because checks have their own shape: one table per check, a
//! `kind` that decides which keys are allowed, and defaults that depend on the kind (network
//! checks are fast, local ones slower). The same rules as everywhere else apply: every
//! problem is reported with its place, and a key that does not belong to the check's kind is
//! an error, not silently ignored.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::checker::Checker;
use super::raw::{Item, Origin, RawCheck, RawConfig, RawWeight};
use super::values::{bad_argv, check_interface, check_name};
use crate::health::{CheckKind, CheckSpec, Weight};

/// Allowed values and defaults, shared with the documentation (docs/configuration.md).
pub(crate) mod limits {
    /// `interval_ms`: range.
    pub(crate) const INTERVAL_MS: (i64, i64) = (10, 600_000);
    /// `interval_ms` default for http and tcp checks.
    pub(crate) const FAST_INTERVAL_MS: i64 = 100;
    /// `interval_ms` default for the other kinds.
    pub(crate) const SLOW_INTERVAL_MS: i64 = 1_000;
    /// `timeout_ms`: at least this, at most `interval_ms` and this maximum.
    pub(crate) const TIMEOUT_MS: (i64, i64) = (1, 60_000);
    /// `timeout_ms` default for http and tcp checks (never more than `interval_ms`).
    pub(crate) const FAST_TIMEOUT_MS: i64 = 200;
    /// `timeout_ms` default for the other kinds (never more than `interval_ms`).
    pub(crate) const SLOW_TIMEOUT_MS: i64 = 1_000;
    /// `fall`: range.
    pub(crate) const FALL: (i64, i64) = (1, 100);
    /// `fall` default for http and tcp checks.
    pub(crate) const FAST_FALL: i64 = 2;
    /// `fall` default for the other kinds.
    pub(crate) const SLOW_FALL: i64 = 3;
    /// `rise`: range and default.
    pub(crate) const RISE: (i64, i64, i64) = (1, 100, 2);
    /// `weight` as an integer (0 means fault): at most the whole priority range either way.
    pub(crate) const WEIGHT: (i64, i64) = (
        -(crate::wire::MAX_PRIORITY as i64),
        crate::wire::MAX_PRIORITY as i64,
    );
    /// `expect_status` elements.
    pub(crate) const STATUS: (i64, i64) = (100, 599);
    /// Longest process name the kernel keeps in `/proc/PID/comm`.
    pub(crate) const COMM_LEN: usize = 15;
}

/// The check kinds, as written in `kind = "..."`.
pub(crate) const KINDS: [&str; 6] = ["http", "tcp", "exec", "process", "interface", "file"];

/// `weight = "fault"`.
pub(crate) const WEIGHT_FAULT: &str = "fault";

/// The kind-specific keys each kind takes.
fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "http" => &["url", "expect_status", "body_contains"],
        "tcp" => &["address"],
        "exec" => &["command"],
        "process" => &["pidfile", "process"],
        "interface" => &["interface"],
        "file" => &["path"],
        _ => &[],
    }
}

/// Network checks get fast defaults; local ones are cheap to get wrong quickly.
fn is_fast(kind: &str) -> bool {
    matches!(kind, "http" | "tcp")
}

/// The kind-specific keys present in `c`, with their origins.
fn present_kind_keys(c: &RawCheck) -> Vec<(&'static str, &Origin)> {
    [
        ("url", c.url.as_ref().map(|i| &i.origin)),
        ("expect_status", c.expect_status.as_ref().map(|i| &i.origin)),
        ("body_contains", c.body_contains.as_ref().map(|i| &i.origin)),
        ("address", c.address.as_ref().map(|i| &i.origin)),
        ("command", c.command.as_ref().map(|i| &i.origin)),
        ("pidfile", c.pidfile.as_ref().map(|i| &i.origin)),
        ("process", c.process.as_ref().map(|i| &i.origin)),
        ("interface", c.interface.as_ref().map(|i| &i.origin)),
        ("path", c.path.as_ref().map(|i| &i.origin)),
    ]
    .into_iter()
    .filter_map(|(key, origin)| Some((key, origin?)))
    .collect()
}

/// Parses `http://IP[:PORT][/PATH]` (IPv6 as `[ADDR]`) into where to connect and the path
/// (with query) of the request line, `/` when the URL has none; says what is wrong otherwise.
pub(crate) fn parse_http_url(url: &str) -> Result<(SocketAddr, String), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "`{url}`: https is not supported (the http check speaks plain HTTP only); check a \
             plain http:// endpoint such as http://127.0.0.1/health, or use an exec check that \
             runs curl"
        ));
    }
    if !lower.starts_with("http://") {
        return Err(format!(
            "`{url}` does not start with http:// (e.g. \"http://127.0.0.1/health\")"
        ));
    }
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{url}` contains {c:?}; encode it (e.g. %20)"));
    }
    let rest = &url["http://".len()..];
    if rest.contains('#') {
        return Err(format!(
            "`{url}` has a #fragment, which is never sent to the server; remove it"
        ));
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if authority.contains('@') {
        return Err(format!(
            "`{url}`: user:password@ in the URL is not supported"
        ));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let Some((h, after)) = inner.split_once(']') else {
            return Err(format!("`{url}`: `[` without `]` around an IPv6 address"));
        };
        match after {
            "" => (h, None),
            a => match a.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(format!("`{url}`: unexpected `{a}` after the address")),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "`{url}` has no host (e.g. http://127.0.0.1/health)"
        ));
    }
    let ip: IpAddr = host.parse().map_err(|_| {
        format!(
            "`{url}`: host `{host}` is not an IP address; host names are not resolved (use \
             e.g. http://127.0.0.1/health)"
        )
    })?;
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!(
            "`{url}`: host `{ip}` is not a unicast address (e.g. 127.0.0.1)"
        ));
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "`{url}`: port `{p}` is not a number from 1 to 65535"
                ))
            }
            Ok(n) => n,
        },
    };
    Ok((SocketAddr::new(ip, port), path))
}

/// Parses a tcp check's `IP:PORT`; says what is wrong otherwise.
fn parse_tcp_address(text: &str) -> Result<SocketAddr, String> {
    let sa: SocketAddr = text.trim().parse().map_err(|_| {
        format!(
            "`{text}` is not IP:PORT (e.g. \"127.0.0.1:5432\" or \"[::1]:5432\"); the port is \
             required and host names are not resolved"
        )
    })?;
    if sa.port() == 0 {
        return Err(format!("`{text}` has port 0"));
    }
    let ip = sa.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!("`{text}` is not a unicast address"));
    }
    Ok(sa)
}

/// What is wrong with a process name, if anything.
fn bad_process_name(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("process name is empty".to_string())
    } else if name.contains('/') || name.contains('\0') {
        Some(format!(
            "process name `{name}` contains `/` or NUL; give the name as in /proc/PID/comm \
             (e.g. \"nginx\"), not a path"
        ))
    } else if name.len() > limits::COMM_LEN {
        let cut: String = name.chars().take(limits::COMM_LEN).collect();
        Some(format!(
            "process name `{name}` is longer than {} bytes, the most the kernel keeps in \
             /proc/PID/comm, so it would never match; write `{cut}` or use `pidfile`",
            limits::COMM_LEN
        ))
    } else {
        None
    }
}

/// An absolute path, or the reason it is not acceptable.
fn absolute_path(ck: &mut Checker<'_>, it: &Item<PathBuf>, what: &str) -> PathBuf {
    if it.value.as_os_str().is_empty() {
        ck.err(&it.origin, format!("check {what} is an empty path"));
    } else if !it.value.is_absolute() {
        ck.err(
            &it.origin,
            format!(
                "check {what} `{}` is not an absolute path (start it with /)",
                it.value.display()
            ),
        );
    }
    it.value.clone()
}

/// Validates every check; returns the valid ones (with errors, the caller returns no
/// `Config`, so the list is only complete when there are none).
pub(crate) fn validate_checks(raw: &RawConfig, ck: &mut Checker<'_>) -> Vec<CheckSpec> {
    let mut specs = Vec::new();
    let mut names: HashMap<String, Origin> = HashMap::new();
    let mut per_kind: HashMap<&'static str, usize> = HashMap::new();
    for c in &raw.checks {
        let kind: Option<&'static str> = match &c.kind {
            Some(it) => match KINDS.iter().find(|k| **k == it.value) {
                Some(k) => Some(*k),
                None => {
                    ck.err(
                        &it.origin,
                        format!(
                            "unknown check kind `{}`: use one of {}",
                            it.value,
                            KINDS.map(|k| format!("\"{k}\"")).join(", ")
                        ),
                    );
                    None
                }
            },
            None => {
                if !c.broken.contains("check.kind") {
                    ck.err(
                        &c.origin,
                        format!(
                            "[[check]] has no `kind` (required: one of {})",
                            KINDS.map(|k| format!("\"{k}\"")).join(", ")
                        ),
                    );
                }
                None
            }
        };
        let number = kind.map(|k| {
            let n = per_kind.entry(k).or_insert(0);
            *n += 1;
            *n
        });

        // Name: explicit, or "<kind>-<n>".
        let name = match (&c.name, kind, number) {
            (Some(it), _, _) => match check_name(&it.value) {
                Ok(()) => Some((it.value.clone(), it.origin.clone(), false)),
                Err(e) => {
                    ck.err(&it.origin, format!("bad check name: {e}"));
                    None
                }
            },
            (None, Some(k), Some(n)) if !c.broken.contains("check.name") => {
                Some((format!("{k}-{n}"), c.origin.clone(), true))
            }
            _ => None,
        };
        if let Some((name, origin, defaulted)) = &name {
            if let Some(first) = names.get(name) {
                let first = ck.refer(first);
                let msg = if *defaulted {
                    format!(
                        "this check's default name `{name}` is already used (at {first}); give \
                         it a `name`"
                    )
                } else {
                    format!("duplicate check name `{name}` (first at {first})")
                };
                ck.err(origin, msg);
            } else {
                names.insert(name.clone(), origin.clone());
            }
        }

        // Keys of other kinds.
        if let Some(k) = kind {
            let allowed = kind_keys(k);
            for (key, origin) in present_kind_keys(c) {
                if !allowed.contains(&key) {
                    let owner = KINDS
                        .iter()
                        .find(|other| kind_keys(other).contains(&key))
                        .map_or(String::new(), |o| format!("; `{key}` is for {o} checks"));
                    let takes = allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    ck.err(
                        origin,
                        format!(
                            "`{key}` does not belong to a {k} check (a {k} check takes \
                             {takes}{owner})"
                        ),
                    );
                }
            }
        }

        // Timing.
        let fast = kind.is_some_and(is_fast);
        let (interval_default, timeout_default, fall_default) = if fast {
            (
                limits::FAST_INTERVAL_MS,
                limits::FAST_TIMEOUT_MS,
                limits::FAST_FALL,
            )
        } else {
            (
                limits::SLOW_INTERVAL_MS,
                limits::SLOW_TIMEOUT_MS,
                limits::SLOW_FALL,
            )
        };
        let (lo, hi) = limits::INTERVAL_MS;
        let interval_ok = c
            .interval_ms
            .as_ref()
            .is_none_or(|it| (lo..=hi).contains(&it.value));
        let interval_ms = ck.int(
            &c.interval_ms,
            "check interval_ms",
            (lo, hi, interval_default),
        );
        let (tlo, thi) = limits::TIMEOUT_MS;
        let timeout_ms = match &c.timeout_ms {
            None => timeout_default.min(interval_ms),
            Some(it) if !(tlo..=thi).contains(&it.value) => {
                ck.err(
                    &it.origin,
                    format!("check timeout_ms must be {tlo}..={thi}, not {}", it.value),
                );
                timeout_default.min(interval_ms)
            }
            Some(it) if interval_ok && it.value > interval_ms => {
                ck.err(
                    &it.origin,
                    format!(
                        "check timeout_ms ({}) is longer than interval_ms ({interval_ms}); it \
                         must be at most interval_ms",
                        it.value
                    ),
                );
                interval_ms
            }
            Some(it) => it.value,
        };
        let fall = ck.int(
            &c.fall,
            "check fall",
            (limits::FALL.0, limits::FALL.1, fall_default),
        );
        let rise = ck.int(&c.rise, "check rise", limits::RISE);

        // Weight.
        let weight = match &c.weight {
            None if kind == Some("file") => Weight::Adjust(1),
            None => Weight::Fault,
            Some(it) => weight_of(ck, it, "check weight", kind != Some("file")),
        };

        let spec_kind = match kind {
            Some(k) => validate_kind(k, c, ck),
            None => None,
        };
        if let (Some(kind), Some((name, _, _))) = (spec_kind, name) {
            let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
            specs.push(CheckSpec {
                name,
                kind,
                interval: ms(interval_ms),
                timeout: ms(timeout_ms),
                fall: u32::try_from(fall).unwrap_or(2),
                rise: u32::try_from(rise).unwrap_or(2),
                weight,
            });
        }
    }
    specs
}

/// A `weight` value (`"fault"`, 0 = fault, or -254..=254); `what` names it in the error
/// (`"check weight"`, `"track weight"`). A bad value is reported and reads as fault.
///
/// With `note_positive`, a positive weight gets a located note that its meaning changed
/// (keepalived's: added while the check succeeds); `file` checks pass `false`, their
/// "value × weight" did not change.
pub(crate) fn weight_of(
    ck: &mut Checker<'_>,
    it: &Item<RawWeight>,
    what: &str,
    note_positive: bool,
) -> Weight {
    let (wlo, whi) = limits::WEIGHT;
    match &it.value {
        RawWeight::Int(0) => Weight::Fault,
        RawWeight::Int(n) => match i32::try_from(*n) {
            Ok(w) if (wlo..=whi).contains(n) => {
                if w > 0 && note_positive {
                    ck.note(
                        &it.origin,
                        format!(
                            "{what} +{w} is added to the priority while the check succeeds \
                             (keepalived's meaning; haagent 0.1 before issue 14 added it while \
                             failing)"
                        ),
                    );
                }
                Weight::Adjust(w)
            }
            _ => {
                ck.err(
                    &it.origin,
                    format!("{what} must be {wlo}..={whi} or \"{WEIGHT_FAULT}\", not {n}"),
                );
                Weight::Fault
            }
        },
        RawWeight::Word(w) => {
            if w != WEIGHT_FAULT {
                ck.err(
                    &it.origin,
                    format!(
                        "{what} must be an integer {wlo}..={whi} or \"{WEIGHT_FAULT}\", not \"{w}\""
                    ),
                );
            }
            Weight::Fault
        }
    }
}

/// The kind-specific keys of one check of kind `kind`.
fn validate_kind(kind: &str, c: &RawCheck, ck: &mut Checker<'_>) -> Option<CheckKind> {
    let missing = |ck: &mut Checker<'_>, key: &str, example: &str| {
        if !c.broken.contains(&format!("check.{key}")) {
            ck.err(
                &c.origin,
                format!("[[check]] of kind {kind} has no `{key}` (required, e.g. {example})"),
            );
        }
    };
    match kind {
        "http" => {
            let Some(url) = &c.url else {
                missing(ck, "url", "url = \"http://127.0.0.1/health\"");
                return None;
            };
            if let Err(e) = parse_http_url(&url.value) {
                ck.err(&url.origin, format!("bad check url: {e}"));
            }
            let mut expect_status = Vec::new();
            if let Some(list) = &c.expect_status {
                let (lo, hi) = limits::STATUS;
                for it in &list.value {
                    match u16::try_from(it.value) {
                        Ok(s) if (lo..=hi).contains(&it.value) => expect_status.push(s),
                        _ => ck.err(
                            &it.origin,
                            format!("expect_status codes must be {lo}..={hi}, not {}", it.value),
                        ),
                    }
                }
            }
            let body_contains = c.body_contains.as_ref().map(|it| {
                if it.value.is_empty() {
                    ck.err(
                        &it.origin,
                        "body_contains is empty (every body contains it); remove the key",
                    );
                }
                it.value.clone()
            });
            Some(CheckKind::Http {
                url: url.value.clone(),
                expect_status,
                body_contains,
            })
        }
        "tcp" => {
            let Some(it) = &c.address else {
                missing(ck, "address", "address = \"127.0.0.1:5432\"");
                return None;
            };
            match parse_tcp_address(&it.value) {
                Ok(addr) => Some(CheckKind::Tcp { addr }),
                Err(e) => {
                    ck.err(&it.origin, format!("bad check address: {e}"));
                    None
                }
            }
        }
        "exec" => {
            let Some(it) = &c.command else {
                missing(ck, "command", "command = [\"/usr/local/bin/check-db\"]");
                return None;
            };
            if let Some(why) = bad_argv(&it.value) {
                ck.err(&it.origin, format!("check command {why}"));
            }
            Some(CheckKind::Exec {
                argv: it.value.clone(),
            })
        }
        "process" => {
            let pidfile = c
                .pidfile
                .as_ref()
                .map(|it| absolute_path(ck, it, "pidfile"));
            let name = c.process.as_ref().map(|it| {
                if let Some(why) = bad_process_name(&it.value) {
                    ck.err(&it.origin, why);
                }
                it.value.clone()
            });
            match (&c.pidfile, &c.process) {
                (Some(p), Some(n)) => {
                    ck.err(
                        &n.origin,
                        format!(
                            "a process check takes `pidfile` or `process`, not both (pidfile \
                             at {})",
                            ck.refer(&p.origin)
                        ),
                    );
                    None
                }
                (None, None) => {
                    if !c.broken.contains("check.pidfile") && !c.broken.contains("check.process") {
                        ck.err(
                            &c.origin,
                            "[[check]] of kind process has no `pidfile` or `process` (give \
                             one: pidfile = \"/run/nginx.pid\" or process = \"nginx\")",
                        );
                    }
                    None
                }
                _ => Some(CheckKind::Process { pidfile, name }),
            }
        }
        "interface" => {
            let Some(it) = &c.interface else {
                missing(ck, "interface", "interface = \"eth1\"");
                return None;
            };
            if let Err(e) = check_interface(&it.value) {
                ck.err(&it.origin, e);
            }
            Some(CheckKind::Interface {
                name: it.value.clone(),
            })
        }
        _ => {
            let Some(it) = &c.path else {
                missing(ck, "path", "path = \"/etc/haagent/track/maintenance\"");
                return None;
            };
            Some(CheckKind::File {
                path: absolute_path(ck, it, "path"),
            })
        }
    }
}
