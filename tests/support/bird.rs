//! One BIRD 2 daemon inside a network namespace, for the routed-mode tests (issue 15):
//! [`Bird::start`] writes its config into a temporary directory, starts `bird -f` in the
//! namespace with its own control socket and PID file, and waits until `birdc` answers;
//! dropping the [`Bird`] SIGKILLs that process (by PID, through [`Proc`]) and reaps it.
//!
//! The helpers read `birdc` output as BIRD 2.0.12 prints it, tolerantly: lines that do not
//! look as expected are skipped, never a panic.
#![allow(dead_code)] // each test file uses a different part

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use haagent_lab::proc::Proc;
use haagent_lab::{LabError, Netns};

/// How long [`Bird::start`] waits for the control socket to answer.
pub const BIRD_READY: Duration = Duration::from_secs(10);

/// Renders a shipped BIRD config (configs/bird-*.conf) for the lab: each `define NAME = …;`
/// line whose NAME is in `defines` gets the value given, and `log syslog all;` becomes
/// `log stderr all;` (the log then lands in the [`Bird`]'s log file). Everything else is
/// kept, so the test runs the file an operator copies.
pub fn render(template: &str, defines: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    for line in template.lines() {
        let trimmed = line.trim_start();
        let replaced = defines.iter().find_map(|(name, value)| {
            let rest = trimmed.strip_prefix("define ")?.trim_start();
            let rest = rest.strip_prefix(name)?;
            rest.trim_start()
                .starts_with('=')
                .then(|| format!("define {name} = {value};"))
        });
        match replaced {
            Some(l) => out.push_str(&l),
            None if trimmed.starts_with("log syslog") => out.push_str("log stderr all;"),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The shipped config `configs/NAME` (e.g. `bird-node.conf`).
pub fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A route as `birdc show route … all` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The next hop (`via A.B.C.D on IF`, `via 2001:db8:1::11 on IF`).
    pub via: IpAddr,
    /// `BGP.local_pref`, when the route carries one.
    pub local_pref: Option<u32>,
    /// The protocol that brought it (`[n1 12:00:00.000]` → `n1`).
    pub protocol: String,
}

/// One running BIRD; killed by PID and reaped when dropped.
pub struct Bird {
    /// What it is, e.g. `bird in router`.
    pub label: String,
    /// Its control socket (`birdc -s`).
    pub socket: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    proc: Proc,
    // Last: removed after the process is dead.
    dir: tempfile::TempDir,
}

impl Bird {
    /// Writes `config` into a fresh temporary directory and runs `bird -f -c CONF -s SOCK
    /// -P PIDFILE` inside `ns`; returns once `birdc show status` answers.
    pub fn start(label: &str, ns: &Netns, config: &str) -> Result<Self, LabError> {
        let dir = tempfile::Builder::new()
            .prefix("haagent-bird-")
            .tempdir()
            .map_err(|source| LabError::File {
                path: std::env::temp_dir(),
                source,
            })?;
        let conf = dir.path().join("bird.conf");
        std::fs::write(&conf, config).map_err(|source| LabError::File {
            path: conf.clone(),
            source,
        })?;
        let socket = dir.path().join("bird.ctl");
        let pidfile = dir.path().join("bird.pid");
        let log = dir.path().join("bird.log");
        let args: Vec<String> = [
            "-f".as_ref(),
            "-c".as_ref(),
            conf.as_os_str(),
            "-s".as_ref(),
            socket.as_os_str(),
            "-P".as_ref(),
            pidfile.as_os_str(),
        ]
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
        let proc = Proc::spawn(label, ns, "bird", &args, &[], &log)?;
        let mut bird = Self {
            label: label.to_string(),
            socket,
            config: conf,
            proc,
            dir,
        };
        let start = Instant::now();
        loop {
            if let Ok(status) = bird.try_birdc(&["show", "status"]) {
                if status.contains("Daemon is up") || status.contains("BIRD 2") {
                    return Ok(bird);
                }
            }
            if !bird.proc.running() {
                return Err(LabError::Setup(format!(
                    "{label} exited at start:\n{}",
                    bird.log()
                )));
            }
            if start.elapsed() > BIRD_READY {
                return Err(LabError::Setup(format!(
                    "{label}: birdc never answered within {BIRD_READY:?}:\n{}",
                    bird.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs this BIRD (by PID) and waits for it to exit; its control socket file
    /// stays, refusing connections. Panics if it does not exit within 5 s.
    pub fn kill(&mut self) {
        if self.proc.running() {
            self.proc.signal(libc::SIGKILL).expect("SIGKILL bird");
            assert!(
                self.proc.wait_exit(Duration::from_secs(5)),
                "{} did not exit",
                self.label
            );
        }
    }

    /// The process id of `bird`.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// What BIRD logged so far (stderr, `log stderr all`).
    pub fn log(&self) -> String {
        self.proc.log_text()
    }

    /// `birdc -s SOCK ARGS…`'s output, or why it failed.
    pub fn try_birdc(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run birdc (bird2 installed?): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "birdc {args:?}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `birdc -s SOCK ARGS…`'s output; panics (with BIRD's log) if birdc fails.
    pub fn birdc(&self, args: &[&str]) -> String {
        self.try_birdc(args)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", self.label, self.log()))
    }

    /// The best route BIRD has for exactly `prefix` (`show route for PREFIX all` picks the
    /// longest match, so the prefix is checked), or None.
    pub fn best_route(&self, prefix: &str) -> Option<Route> {
        let text = self
            .try_birdc(&["show", "route", prefix, "primary", "all"])
            .ok()?;
        parse_routes(&text, prefix).into_iter().next()
    }

    /// Every route BIRD has for `prefix`, the best one first.
    pub fn routes(&self, prefix: &str) -> Vec<Route> {
        self.try_birdc(&["show", "route", prefix, "all"])
            .map(|t| parse_routes(&t, prefix))
            .unwrap_or_default()
    }

    /// The prefixes in BIRD's table (`show route`), in order.
    pub fn prefixes(&self) -> Vec<String> {
        self.try_birdc(&["show", "route"])
            .map(|t| parse_prefixes(&t))
            .unwrap_or_default()
    }

    /// The prefixes exported on `protocol` (`show route export PROTOCOL`).
    pub fn exported(&self, protocol: &str) -> Vec<String> {
        self.try_birdc(&["show", "route", "export", protocol])
            .map(|t| parse_prefixes(&t))
            .unwrap_or_default()
    }

    /// The state and info of `protocol` (`show protocols NAME`: `("up", "Established")`).
    pub fn protocol_state(&self, protocol: &str) -> Option<(String, String)> {
        let text = self.try_birdc(&["show", "protocols", protocol]).ok()?;
        text.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            if words.next()? != protocol {
                return None;
            }
            // Name Proto Table State Since Info…; `Since` may be a date plus a time.
            let rest: Vec<&str> = words.collect();
            let state_at = rest
                .iter()
                .position(|w| matches!(*w, "up" | "down" | "start" | "stop" | "flush" | "feed"))?;
            let info = rest
                .iter()
                .skip(state_at + 1)
                .skip_while(|w| w.contains(':') || w.contains('-'))
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            Some((rest[state_at].to_string(), info))
        })
    }

    /// Whether BGP `protocol` is up and Established.
    pub fn established(&self, protocol: &str) -> bool {
        matches!(self.protocol_state(protocol), Some((s, i)) if s == "up" && i.starts_with("Established"))
    }

    /// The state of the BFD session with `neighbor` (`show bfd sessions`: `Up`, `Down`,
    /// `Init`), if there is one.
    pub fn bfd_state(&self, neighbor: impl Into<IpAddr>) -> Option<String> {
        let text = self.try_birdc(&["show", "bfd", "sessions"]).ok()?;
        let want = neighbor.into().to_string();
        text.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == want).then_some(())?;
            let _iface = words.next()?;
            words.next().map(str::to_string)
        })
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        // Proc's own Drop SIGKILLs the PID (and only its descendants) and reaps it; the
        // temporary directory goes after that (field order).
        if std::env::var_os("HAAGENT_TEST_LOGS").is_some() {
            eprintln!("----- {} -----\n{}", self.label, self.log());
        }
    }
}

/// Whether a line starts a route entry: the prefix, then a `unicast`/`unreachable`/...
/// type. BIRD prints the prefix only on its first route; further routes of the same
/// prefix start with whitespace.
fn route_head(line: &str) -> Option<(&str, &str)> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let mut words = line.split_whitespace();
    let prefix = words.next()?;
    if !prefix.contains('/') || !prefix.chars().next()?.is_ascii_digit() {
        return None;
    }
    let rest = line[prefix.len()..].trim_start();
    is_route_type(rest).then_some((prefix, rest))
}

/// Whether `rest` (a line after its prefix) starts with a route type and a `[proto …]`.
fn is_route_type(rest: &str) -> bool {
    let mut words = rest.split_whitespace();
    matches!(
        words.next(),
        Some("unicast" | "unreachable" | "blackhole" | "prohibit" | "multipath")
    ) && words.next().is_some_and(|w| w.starts_with('['))
}

/// The prefixes of a `show route` listing.
pub fn parse_prefixes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(route_head)
        .map(|(p, _)| p.to_string())
        .collect()
}

/// The routes for `prefix` in a `show route … all` listing, in BIRD's order (the best,
/// marked `*`, first in BIRD 2).
pub fn parse_routes(text: &str, prefix: &str) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut current: Option<(bool, Option<IpAddr>, Option<u32>, String)> = None;
    let mut in_prefix = false;
    let flush = |c: Option<(bool, Option<IpAddr>, Option<u32>, String)>,
                 routes: &mut Vec<(bool, Route)>| {
        if let Some((best, Some(via), local_pref, protocol)) = c {
            routes.push((
                best,
                Route {
                    via,
                    local_pref,
                    protocol,
                },
            ));
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        // A new route: `PREFIX  unicast [proto time] * (100) [i]` or, for the same prefix,
        // an indented `unicast [proto time] (100) [i]`.
        let head = match route_head(line) {
            Some((p, rest)) => {
                in_prefix = p == prefix;
                Some(rest)
            }
            None if line.starts_with(char::is_whitespace) && is_route_type(trimmed) => {
                Some(trimmed)
            }
            None => None,
        };
        if let Some(rest) = head {
            flush(current.take(), &mut routes);
            if in_prefix {
                let protocol = rest
                    .split('[')
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
                let best = rest.split(']').nth(1).is_some_and(|s| s.contains('*'));
                current = Some((best, None, None, protocol));
            }
            continue;
        }
        let Some(c) = current.as_mut() else { continue };
        if let Some(v) = trimmed.strip_prefix("via ") {
            if c.1.is_none() {
                c.1 = v.split_whitespace().next().and_then(|a| a.parse().ok());
            }
        } else if let Some(v) = trimmed.strip_prefix("BGP.local_pref:") {
            c.2 = v.trim().parse().ok();
        }
    }
    flush(current.take(), &mut routes);
    // The best first, then BIRD's order.
    routes.sort_by_key(|(best, _)| !*best);
    routes.into_iter().map(|(_, r)| r).collect()
}
