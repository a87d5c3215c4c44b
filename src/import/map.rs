//! keepalived keywords → the haagent [`Model`], with a report line for each occurrence.
//!
//! The keyword meanings are keepalived 2.x's (keepalived.conf(5), doc/keepalived.conf.SYNOPSIS).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

/// What `gna_interval` becomes: haagent's unsolicited neighbour advertisements (the IPv6
/// gratuitous ARP, RFC 4861 §7.2.6) follow the `[garp]` schedule of the gratuitous ARPs.
const GNA_SCHEDULE: &str = "IPv6 VIPs get unsolicited neighbour advertisements on the [garp] \
     schedule (count, spread_ms, refresh_ms), the same as the gratuitous ARPs of IPv4 VIPs";

use super::model::{Check, Group, Hook, Model, Route, Val, Vip, HOOK_ORDER};
use super::parse::{Node, Parsed, Place};
use super::report::{Line, Outcome, Report};

/// Options of one import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--peer ADDR`: the other nodes' addresses; they replace the `unicast_peer`s.
    pub peers: Vec<String>,
    /// `--name NAME`: this node's name (else `router_id`).
    pub name: Option<String>,
}

impl Options {
    /// Checks the flags before anything is read: `--name` must be a haagent node name (1..=64
    /// of `A-Z a-z 0-9 . _ -`, not starting with `-`) and each `--peer` an `ADDR`,
    /// `ADDR:PORT`, `[ADDR]` or `[ADDR]:PORT` with an IP address (no host names).
    ///
    /// Errors: a message naming the flag and the value (the CLI exits 2 with it: a bad
    /// argument is a usage error).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = &self.name {
            if !valid_name(n, 64) {
                return Err(format!(
                    "--name `{n}`: not a haagent node name (1..64 of A-Z a-z 0-9 . _ -, not \
                     starting with -)"
                ));
            }
        }
        for p in &self.peers {
            if !valid_peer(p) {
                return Err(format!(
                    "--peer `{p}`: not an IP address, ADDR:PORT or [ADDR]:PORT"
                ));
            }
        }
        Ok(())
    }
}

/// `ADDR`, `ADDR:PORT`, `[ADDR]` or `[ADDR]:PORT` with an IP address.
fn valid_peer(text: &str) -> bool {
    text.parse::<std::net::SocketAddr>().is_ok()
        || text.parse::<IpAddr>().is_ok()
        || text
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Why a script only tracked with `weight W reverse` is not written.
const REVERSE_TRACK: &str =
    "every track_script of it has a `reverse` weight, which haagent cannot express";

const MAIL: &str = "a [group.notify] hook that sends the mail";
const FIREWALL: &str = "haagent adds no firewall rules; allow UDP 5798 between the nodes";
const AS_HAAGENT: &str =
    "haagent runs checks and hooks as its own unprivileged user (haagent), never as root";

struct Mapper<'a> {
    opts: &'a Options,
    order: HashMap<(String, usize), usize>,
    lines: Vec<Line>,
    model: Model,
    scripts: BTreeMap<String, &'a Node>,
    files: BTreeMap<String, &'a Node>,
    processes: BTreeMap<String, &'a Node>,
    /// keepalived object (kind, name) → the check written for it.
    made: HashMap<(&'static str, String), String>,
    /// keepalived objects (kind, name) that cannot be written, with the reason: every track
    /// of them is refused with it, and no "tracked by no vrrp_instance" line follows.
    refused: HashMap<(&'static str, String), String>,
    /// Used check names.
    check_names: Vec<String>,
    /// Advert intervals seen: (ms, instance place).
    adverts: Vec<(i64, Place, String, bool)>,
    garp_seen: BTreeMap<&'static str, (i64, String)>,
    /// `garp_interval`/`vrrp_garp_interval` lines, mapped after every other garp key (their
    /// spread depends on the final `count`).
    garp_intervals: Vec<&'a Node>,
    /// Every garp key but the intervals has been read.
    garp_final: bool,
    auth_seen: bool,
    first_auth: Option<Place>,
    /// The reader's problems; `true` once reported with the statement they spoil.
    problems: Vec<(super::parse::Problem, bool)>,
    /// The `unicast_peer` block whose addresses are the peers.
    peer_block: Option<Place>,
    /// Routes of the group being built, reported once its VIPs are known.
    pending_routes: Vec<(Place, Outcome)>,
}

/// Maps a parsed keepalived config.
pub(crate) fn map(parsed: &Parsed, source: &str, opts: &Options) -> (Model, Report) {
    let mut order = HashMap::new();
    fn walk(nodes: &[Node], order: &mut HashMap<(String, usize), usize>) {
        for n in nodes {
            // Even numbers: the odd ones between are for lines without a statement.
            let len = order.len() * 2 + 2;
            order
                .entry((n.place.file.clone(), n.place.line))
                .or_insert(len);
            walk(n.kids(), order);
        }
    }
    walk(&parsed.nodes, &mut order);
    let mut m = Mapper {
        opts,
        order,
        lines: Vec::new(),
        model: Model {
            source: source.to_string(),
            // `--name` wins over `router_id` and names the node without one too.
            name: opts.name.clone(),
            ..Model::default()
        },
        scripts: BTreeMap::new(),
        files: BTreeMap::new(),
        processes: BTreeMap::new(),
        made: HashMap::new(),
        refused: HashMap::new(),
        check_names: Vec::new(),
        adverts: Vec::new(),
        garp_seen: BTreeMap::new(),
        garp_intervals: Vec::new(),
        garp_final: false,
        auth_seen: false,
        first_auth: None,
        problems: Vec::new(),
        peer_block: None,
        pending_routes: Vec::new(),
    };
    m.problems = parsed.problems.iter().map(|p| (p.clone(), false)).collect();
    m.run(&parsed.nodes);
    for (p, used) in std::mem::take(&mut m.problems) {
        if !used {
            m.push(
                Some(&p.place),
                &p.keyword,
                unsupported(
                    p.message,
                    p.instead
                        .unwrap_or_else(|| "fix the keepalived config, then import again".into()),
                ),
            );
        }
    }
    let mut report = Report { lines: m.lines };
    report.lines.sort_by_key(|l| l.order);
    (m.model, report)
}

fn mapped(s: impl Into<String>) -> Outcome {
    Outcome::Mapped(s.into())
}
fn approx(s: impl Into<String>) -> Outcome {
    Outcome::Approximated(s.into())
}
fn unsupported(why: impl Into<String>, instead: impl Into<String>) -> Outcome {
    Outcome::NotSupported {
        why: why.into(),
        instead: Some(instead.into()),
    }
}
fn nothing(why: &str) -> Outcome {
    mapped(format!("nothing: {why}"))
}

/// A keepalived decimal number of seconds → milliseconds.
fn seconds_ms(text: &str) -> Option<i64> {
    let v: f64 = text.parse().ok()?;
    (v.is_finite() && (0.0..=1e9).contains(&v)).then(|| (v * 1000.0).round() as i64)
}

fn int(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// haagent's name rule (docs/configuration.md): 1..=max bytes of `A-Z a-z 0-9 . _ -`, not
/// starting with `-`.
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// haagent's interface name rule: 1..=15 bytes, no `/`, `:` or whitespace.
fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains(['/', ':']) && !s.contains(char::is_whitespace)
}

/// Splits a command line into words as keepalived does for `script` and `notify*`:
/// whitespace separated, with single and double quotes and backslash escapes.
pub(crate) fn split_command(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a `vrrp_script` command is.
#[derive(Debug, PartialEq)]
enum Recognised {
    Http {
        url: String,
        fail: bool,
        how: String,
    },
    Process {
        name: String,
        how: String,
    },
    /// bash's `</dev/tcp/IP/PORT`: a TCP connect.
    Tcp {
        address: String,
        how: String,
    },
    Exec {
        how: String,
    },
}

/// `</dev/tcp/IP/PORT` (bash's redirection: a TCP connect, exit 0 when it succeeds) → the
/// socket address `IP:PORT` (IPv6 as `[IP]:PORT`). Host names are not resolved: `None`.
fn dev_tcp(word: &str) -> Option<String> {
    let rest = word.trim().strip_prefix('<')?.trim_start();
    let rest = rest.strip_prefix("/dev/tcp/")?;
    let (ip, port) = rest.rsplit_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some(std::net::SocketAddr::new(ip, port).to_string())
}

/// Whether `url` is one haagent's http check takes: `http://`, host an IP literal.
fn http_url_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    if rest.contains(['@', '#']) {
        return false;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) => {
                if !(port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| p.parse::<u16>().is_ok()))
                {
                    return false;
                }
                h.to_string()
            }
            None => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => {
                if p.parse::<u16>().is_err() {
                    return false;
                }
                h.to_string()
            }
            None => authority.to_string(),
        }
    };
    host.parse::<IpAddr>().is_ok()
}

fn recognise(argv: &[String]) -> Recognised {
    let prog = argv
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("");
    let args = argv.get(1..).unwrap_or(&[]);
    let exec = |how: &str| Recognised::Exec { how: how.into() };
    // `</dev/tcp/IP/PORT` alone (keepalived 2 runs scripts without a shell, where this is no
    // program: approximated), or under `bash -c` (what it means there).
    match argv {
        [one] => {
            if let Some(address) = dev_tcp(one) {
                return Recognised::Tcp {
                    address,
                    how: "bash's </dev/tcp redirection; keepalived 2 runs a script without a \
                          shell, where it is no program and always fails: mapped to what it \
                          means in bash"
                        .into(),
                };
            }
        }
        [_, c, cmd] if matches!(prog, "bash") && c == "-c" => {
            if let Some(address) = dev_tcp(cmd) {
                return Recognised::Tcp {
                    address,
                    how: "bash -c '</dev/tcp/...'".into(),
                };
            }
        }
        _ => {}
    }
    match prog {
        "curl" => {
            let mut url = None;
            let mut fail = false;
            let mut i = 0;
            while i < args.len() {
                let a = args[i].as_str();
                match a {
                    "--fail" => fail = true,
                    "--silent" | "--show-error" | "-q" => {}
                    "-o" | "--output" | "-m" | "--max-time" | "--connect-timeout" => i += 1,
                    _ if a.starts_with("--") => {
                        return exec("curl with an option the http check has no equivalent for");
                    }
                    _ if a.starts_with('-') => {
                        let flags = &a[1..];
                        if let Some(pos) = flags.find(['o', 'm']) {
                            // `-fsSo FILE` / `-m N`: the last flag takes the next word.
                            if pos + 1 != flags.len() {
                                return exec(
                                    "curl with an option the http check has no equivalent for",
                                );
                            }
                            i += 1;
                        }
                        for c in flags.chars() {
                            match c {
                                'f' => fail = true,
                                's' | 'S' | 'o' | 'm' => {}
                                _ => {
                                    return exec(
                                        "curl with an option the http check has no equivalent for",
                                    )
                                }
                            }
                        }
                    }
                    _ => {
                        if url.is_some() {
                            return exec("curl of more than one URL");
                        }
                        url = Some(a.to_string());
                    }
                }
                i += 1;
            }
            match url {
                Some(u) if http_url_ok(&u) => Recognised::Http {
                    url: u,
                    fail,
                    how: "curl".into(),
                },
                Some(_) => {
                    exec("curl of a URL the http check does not take (https, or a host name)")
                }
                None => exec("curl without a URL"),
            }
        }
        "wget" => {
            let mut url = None;
            let mut i = 0;
            while i < args.len() {
                let a = args[i].as_str();
                match a {
                    "-q" | "--quiet" | "--spider" | "-O-" | "-qO-" => {}
                    "-O" | "-qO" | "-T" | "-t" | "--output-document" | "--timeout" | "--tries" => {
                        i += 1
                    }
                    _ if a.starts_with("--output-document=")
                        || a.starts_with("--timeout=")
                        || a.starts_with("--tries=")
                        || a.starts_with("-T")
                        || a.starts_with("-O") => {}
                    _ if a.starts_with('-') => {
                        return exec("wget with an option the http check has no equivalent for")
                    }
                    _ => {
                        if url.is_some() {
                            return exec("wget of more than one URL");
                        }
                        url = Some(a.to_string());
                    }
                }
                i += 1;
            }
            match url {
                Some(u) if http_url_ok(&u) => Recognised::Http {
                    url: u,
                    fail: true,
                    how: "wget".into(),
                },
                Some(_) => {
                    exec("wget of a URL the http check does not take (https, or a host name)")
                }
                None => exec("wget without a URL"),
            }
        }
        "pidof" | "pgrep" | "killall" => {
            let (flags, names): (Vec<&String>, Vec<&String>) =
                args.iter().partition(|a| a.starts_with('-'));
            let allowed: &[&str] = match prog {
                "pidof" => &["-s", "-x"],
                "pgrep" => &["-x"],
                _ => &["-0"],
            };
            let exact = prog != "pgrep" || flags.iter().any(|f| *f == "-x");
            let needs_zero = prog == "killall" && !flags.iter().any(|f| *f == "-0");
            if flags.iter().any(|f| !allowed.contains(&f.as_str())) || needs_zero {
                return exec(&format!(
                    "{prog} with options a process check cannot express"
                ));
            }
            let [name] = names.as_slice() else {
                return exec(&format!("{prog} of more than one process"));
            };
            if !exact
                && name.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            {
                return exec("pgrep of a pattern, not a name");
            }
            if name.is_empty() || name.len() > 15 || name.contains('/') {
                return exec(&format!(
                    "{prog} of `{name}`, longer than a process name (15 bytes) or a path"
                ));
            }
            let shown: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
            let shown = if shown.is_empty() {
                String::new()
            } else {
                format!("{} ", shown.join(" "))
            };
            Recognised::Process {
                name: name.to_string(),
                how: if exact {
                    format!("{prog} {shown}{name}")
                } else {
                    format!("pgrep {name} (haagent matches the exact name; pgrep without -x matches a part of it)")
                },
            }
        }
        "systemctl" if args.first().is_some_and(|a| a == "is-active") => exec(
            "systemctl is-active: the same command as an exec check (a unit is not a process name)",
        ),
        _ => exec("the same command"),
    }
}

impl<'a> Mapper<'a> {
    fn push(&mut self, place: Option<&Place>, keyword: &str, outcome: Outcome) {
        // A line without a statement (a skipped `@ID` line, a problem between statements)
        // sorts right after the statement before it in its file.
        let order = place
            .and_then(|p| {
                self.order
                    .get(&(p.file.clone(), p.line))
                    .copied()
                    .or_else(|| {
                        self.order
                            .iter()
                            .filter(|((f, l), _)| *f == p.file && *l < p.line)
                            .max_by_key(|((_, l), _)| *l)
                            .map(|(_, o)| o + 1)
                            .or_else(|| {
                                self.order
                                    .iter()
                                    .filter(|((f, _), _)| *f == p.file)
                                    .map(|(_, o)| *o)
                                    .min()
                                    .map(|o| o.saturating_sub(1))
                            })
                    })
            })
            .unwrap_or(usize::MAX);
        self.lines.push(Line {
            place: place.cloned(),
            keyword: keyword.to_string(),
            outcome,
            order,
        });
    }

    fn say(&mut self, n: &Node, outcome: Outcome) {
        self.push(Some(&n.place), &n.keyword, outcome);
    }

    fn bad_value(&mut self, n: &Node, what: &str) {
        let got = n.arg_texts().join(" ");
        self.say(
            n,
            unsupported(
                format!("`{got}` is not {what}"),
                "fix the keepalived config, then import again",
            ),
        );
    }

    /// Reports a tainted node (the parser already said why) and says whether it was.
    fn tainted(&mut self, n: &Node) -> bool {
        if n.tainted {
            let mut why: Vec<String> = Vec::new();
            for (p, used) in self.problems.iter_mut() {
                if !*used && p.place == n.place {
                    *used = true;
                    why.push(p.message.clone());
                }
            }
            if why.is_empty() {
                why.push("not read: an undefined macro or a placeholder is in it".into());
            }
            self.say(
                n,
                unsupported(
                    why.join("; "),
                    "define the macro or fill in the template, then import again",
                ),
            );
        }
        n.tainted
    }

    fn run(&mut self, nodes: &'a [Node]) {
        let mut instances: Vec<&'a Node> = Vec::new();
        let mut syncs: Vec<&'a Node> = Vec::new();
        let mut globals: Vec<&'a Node> = Vec::new();
        for n in nodes {
            if self.tainted(n) {
                continue;
            }
            let name = n.args.first().map(|w| w.text.clone());
            match (n.keyword.as_str(), name) {
                ("global_defs", _) => globals.push(n),
                ("vrrp_instance", Some(_)) => instances.push(n),
                ("vrrp_sync_group", Some(_)) => syncs.push(n),
                ("vrrp_script", Some(s)) => {
                    self.scripts.insert(s, n);
                }
                ("track_file" | "vrrp_track_file", Some(s)) => {
                    self.files.insert(s, n);
                }
                // keepalived's vrrp_parser.c registers only `vrrp_track_process` at the top
                // level; `track_process { NAME }` is the instance's reference to it.
                ("vrrp_track_process", Some(s)) => {
                    self.processes.insert(s, n);
                }
                ("track_process", _) => self.say(
                    n,
                    unsupported(
                        "`track_process` is not a keepalived top-level keyword (keepalived \
                         rejects it): did you mean vrrp_track_process?",
                        "rename it vrrp_track_process NAME { ... }, then import again",
                    ),
                ),
                (
                    "vrrp_instance" | "vrrp_sync_group" | "vrrp_script" | "track_file"
                    | "vrrp_track_file" | "vrrp_track_process",
                    None,
                ) => {
                    self.bad_value(n, "a block with a name");
                }
                ("virtual_server" | "virtual_server_group", _) => self.say(
                    n,
                    unsupported(
                        "haagent moves addresses, it does no load balancing (LVS)",
                        "ipvsadm or nftables rules of their own, or haproxy/nginx on the VIP",
                    ),
                ),
                ("static_ipaddress" | "static_routes" | "static_rules", _) => self.say(
                    n,
                    unsupported(
                        "haagent manages only the addresses and routes that follow a group",
                        "the system's network configuration",
                    ),
                ),
                ("linkbeat_use_polling" | "net_namespace" | "instance", _) => {
                    self.say(n, unsupported("a keepalived process option", "none needed"))
                }
                (k, _) => {
                    let k = k.to_string();
                    self.say(
                        n,
                        unsupported(
                            format!("`{k}` is not a keepalived keyword the importer knows"),
                            "check its spelling; map it by hand",
                        ),
                    )
                }
            }
        }
        for g in globals {
            self.global_defs(g);
        }
        self.node_wide(&instances);
        // Instance name → sync group.
        let mut member_of: HashMap<String, &'a Node> = HashMap::new();
        for s in &syncs {
            for grp in s.kids().iter().filter(|k| k.keyword == "group") {
                for member in grp.kids() {
                    member_of.insert(member.keyword.clone(), s);
                }
            }
        }
        let mut done_sync: Vec<String> = Vec::new();
        for inst in &instances {
            let iname = inst.args[0].text.clone();
            match member_of.get(&iname) {
                Some(sync) => {
                    let sname = sync.args[0].text.clone();
                    if done_sync.contains(&sname) {
                        continue;
                    }
                    done_sync.push(sname);
                    let members: Vec<&'a Node> = instances
                        .iter()
                        .copied()
                        .filter(|i| {
                            member_of
                                .get(&i.args[0].text)
                                .is_some_and(|s| std::ptr::eq(*s, *sync))
                        })
                        .collect();
                    self.group(Some(sync), &members);
                }
                None => self.group(None, &[inst]),
            }
        }
        for s in &syncs {
            let sname = s.args[0].text.clone();
            if !done_sync.contains(&sname) {
                self.say(
                    s,
                    unsupported(
                        format!("sync group {sname} lists no vrrp_instance of this config"),
                        "list the instances that must move together",
                    ),
                );
            }
        }
        for (name, node) in self.scripts.clone() {
            if let Some(why) = self.refused.get(&("script", name.clone())) {
                if !self.made.contains_key(&("script", name.clone())) {
                    let why = why.clone();
                    self.say(
                        node,
                        unsupported(
                            format!("vrrp_script {name} is not written: {why}"),
                            "see the `reverse` line(s)",
                        ),
                    );
                }
            } else if !self.made.contains_key(&("script", name.clone())) {
                self.say(
                    node,
                    approx(format!(
                        "vrrp_script {name} is tracked by no vrrp_instance: not written \
                         (keepalived does not run it either)"
                    )),
                );
            }
        }
        for (kind, map) in [
            ("file", self.files.clone()),
            ("process", self.processes.clone()),
        ] {
            for (name, node) in map {
                if !self.made.contains_key(&(
                    if kind == "file" { "file" } else { "process" },
                    name.clone(),
                )) {
                    self.say(
                        node,
                        approx(format!(
                            "{} {name} is tracked by no vrrp_instance: not written",
                            node.keyword
                        )),
                    );
                }
            }
        }
        self.finish_node_wide(&instances);
    }

    fn global_defs(&mut self, g: &'a Node) {
        self.say(g, mapped("the node-wide settings below"));
        for k in g.kids() {
            if self.tainted(k) {
                continue;
            }
            let arg = k.args.first().map(|w| w.text.clone()).unwrap_or_default();
            match k.keyword.as_str() {
                "router_id" => {
                    if let Some(n) = &self.opts.name {
                        let n = n.clone();
                        self.say(k, approx(format!("replaced by --name {n}")));
                    } else if valid_name(&arg, 64) {
                        self.model.name = Some(arg.clone());
                        self.say(k, mapped(format!("[node] name = \"{arg}\"")));
                    } else {
                        self.say(
                            k,
                            unsupported(
                                format!("`{arg}` is not a haagent node name (1..64 of A-Z a-z 0-9 . _ -)"),
                                "import with --name NAME",
                            ),
                        );
                    }
                }
                "notification_email"
                | "notification_email_from"
                | "smtp_server"
                | "smtp_connect_timeout"
                | "smtp_helo_name"
                | "email_faults" => self.say(k, unsupported("haagent sends no mail", MAIL)),
                "enable_script_security" | "script_user" => self.say(k, approx(AS_HAAGENT)),
                "vrrp_iptables" | "vrrp_ipsets" | "vrrp_nftables" => self.say(k, nothing(FIREWALL)),
                "vrrp_strict"
                | "vrrp_skip_check_adv_addr"
                | "vrrp_check_unicast_src"
                | "vrrp_version"
                | "vrrp_mcast_group4"
                | "vrrp_mcast_group6"
                | "vrrp_priority"
                | "checker_priority"
                | "bfd_priority"
                | "vrrp_no_swap"
                | "checker_no_swap"
                | "max_auto_priority"
                | "dynamic_interfaces"
                | "vrrp_higher_prio_send_advert"
                | "vrrp_rx_bufs_policy"
                | "process_names" => self.say(
                    k,
                    nothing("haagent speaks its own protocol over QUIC; there is nothing to set"),
                ),
                "enable_snmp_vrrp"
                | "enable_snmp_keepalived"
                | "enable_snmp_rfcv2"
                | "enable_snmp_rfcv3"
                | "enable_snmp_checker"
                | "enable_traps"
                | "snmp_socket" => self.say(
                    k,
                    unsupported("haagent has no SNMP agent", "[metrics] listen (Prometheus)"),
                ),
                "enable_dbus" => self.say(
                    k,
                    unsupported("haagent has no D-Bus interface", "`haagent status --json`"),
                ),
                "vrrp_gna_interval" => self.say(k, nothing(GNA_SCHEDULE)),
                "vrrp_garp_interval"
                | "vrrp_garp_master_delay"
                | "vrrp_garp_master_repeat"
                | "vrrp_garp_master_refresh"
                | "vrrp_garp_master_refresh_repeat"
                | "vrrp_garp_lower_prio_delay"
                | "vrrp_garp_lower_prio_repeat" => {
                    let key = k.keyword.trim_start_matches("vrrp_").to_string();
                    self.garp(k, &key);
                }
                kw if kw.starts_with("lvs_") || kw.starts_with("checker_") => self.say(
                    k,
                    nothing("an LVS/checker setting: haagent does no load balancing"),
                ),
                _ => self.say(
                    k,
                    unsupported(
                        "a global_defs key the importer does not know",
                        "check whether haagent needs it; map it by hand",
                    ),
                ),
            }
        }
    }

    /// `garp_*` (instance) and `vrrp_garp_*` (global_defs) → `[garp]`.
    fn garp(&mut self, k: &'a Node, key: &str) {
        let arg = k.args.first().map(|w| w.text.clone()).unwrap_or_default();
        let (target, value, outcome) = match key {
            "garp_master_repeat" => match int(&arg) {
                Some(n) if n >= 1 => {
                    let c = n.min(20);
                    let how = if c == n {
                        mapped(format!("[garp] count = {c}"))
                    } else {
                        approx(format!("[garp] count = {c} (haagent sends at most 20)"))
                    };
                    ("count", c, how)
                }
                _ => return self.bad_value(k, "a number of ARPs (1 or more)"),
            },
            "garp_master_refresh" => match int(&arg) {
                Some(0) => (
                    "refresh_ms",
                    0,
                    mapped("[garp] refresh_ms = 0 (no refresh)"),
                ),
                Some(s) if (1..=86400).contains(&s) => (
                    "refresh_ms",
                    s * 1000,
                    mapped(format!("[garp] refresh_ms = {}", s * 1000)),
                ),
                _ => return self.bad_value(k, "a refresh interval of 0..=86400 s"),
            },
            "garp_interval" => match seconds_ms(&arg) {
                // Reported once every key is read: spread_ms depends on the final count.
                Some(_) if !self.garp_final => {
                    self.garp_intervals.push(k);
                    return;
                }
                Some(ms) => {
                    let count = self.garp_seen.get("count").map(|(c, _)| *c).unwrap_or(3);
                    let spread = (ms * (count - 1).max(0)).min(60000);
                    (
                        "spread_ms",
                        spread,
                        approx(format!(
                            "[garp] spread_ms = {spread}: haagent spreads the `count` ({count}) ARPs of \
                             each VIP evenly over spread_ms, {ms} ms apart; keepalived paces all ARPs of \
                             the interface"
                        )),
                    )
                }
                None => return self.bad_value(k, "a number of seconds"),
            },
            "garp_master_delay" => {
                return self.say(
                    k,
                    approx(
                        "haagent sends one burst on becoming master and then refreshes every \
                         [garp] refresh_ms; there is no delayed second burst",
                    ),
                )
            }
            "garp_master_refresh_repeat" => {
                return self.say(k, approx("each haagent refresh sends one ARP per VIP"))
            }
            _ => {
                return self.say(
                    k,
                    unsupported(
                        "haagent sends no ARPs when a lower-priority advert arrives",
                        "none needed: haagent elects over QUIC, not by adverts on the segment",
                    ),
                )
            }
        };
        if let Some((old, at)) = self.garp_seen.get(target) {
            if *old != value {
                let at = at.clone();
                return self.say(
                    k,
                    approx(format!(
                        "[garp] is node-wide: {target} = {old} from {at} is used for every group"
                    )),
                );
            }
        } else {
            self.garp_seen.insert(target, (value, k.place.to_string()));
            self.model.garp.push((target, value));
        }
        self.say(k, outcome);
    }

    /// `[node] interface` and `listen`, the peers.
    fn node_wide(&mut self, instances: &[&'a Node]) {
        let first_if = instances.iter().find_map(|i| {
            i.kids()
                .iter()
                .find(|k| k.keyword == "interface" && !k.tainted)
                .and_then(|k| k.args.first())
                .map(|w| w.text.clone())
        });
        if let Some(i) = first_if.filter(|i| valid_ifname(i)) {
            self.model.interface = Some(i);
        }
        if !self.opts.peers.is_empty() {
            self.model.peers = self.opts.peers.clone();
        }
    }

    fn finish_node_wide(&mut self, instances: &[&'a Node]) {
        self.garp_final = true;
        for k in std::mem::take(&mut self.garp_intervals) {
            self.garp(k, "garp_interval");
        }
        if let Some(min) = self.adverts.iter().map(|(ms, _, _, _)| *ms).min() {
            self.model.advert_interval_ms = Some(min);
        }
        let adverts = std::mem::take(&mut self.adverts);
        let min = self.model.advert_interval_ms;
        for (ms, place, kw, default) in &adverts {
            let outcome = if *default && Some(*ms) == min {
                // Written out: haagent's own default (50 ms) is not keepalived's.
                mapped(format!(
                    "no advert_int: keepalived's default 1 s: written as \
                     [election] advert_interval_ms = {ms}"
                ))
            } else if Some(*ms) == min {
                mapped(format!("[election] advert_interval_ms = {ms}"))
            } else {
                approx(format!(
                    "haagent has one advert interval for the node: advert_interval_ms = {} \
                     (the smallest) is used for every group, not {ms}",
                    min.unwrap_or(*ms)
                ))
            };
            self.push(Some(place), kw, outcome);
        }
        if self.model.peers.is_empty() {
            let place = instances.first().map(|i| i.place.clone());
            self.push(
                place.as_ref(),
                "unicast_peer",
                unsupported(
                    "no unicast_peer: keepalived finds its peers by multicast, haagent talks to \
                     each peer by address",
                    "import again with --peer ADDR for each other node",
                ),
            );
        }
        if let Some(p) = self.first_auth.clone() {
            let name = self.model.name.clone().unwrap_or_else(|| "NAME".into());
            let ip = self
                .model
                .listen
                .clone()
                .unwrap_or_else(|| "THIS_NODE_IP".into());
            let _ = self.auth_seen;
            self.push(
                Some(&p),
                "authentication",
                approx(format!(
                    "replaced by mutual TLS: on one host run `haagent certs init --dir \
                     /etc/haagent/certs --cluster haagent`, then `haagent certs issue --dir \
                     /etc/haagent/certs --name {name} --ip {ip}` for this node and the same with \
                     each peer's name and address; copy ca.pem and each node's NAME.pem and \
                     NAME-key.pem to its /etc/haagent/certs (docs/certificates.md)"
                )),
            );
        }
    }

    /// One `[[group]]` from one instance, or from the instances of a sync group.
    fn group(&mut self, sync: Option<&'a Node>, members: &[&'a Node]) {
        let Some(first) = members.first() else { return };
        let name = match sync {
            Some(s) => s.args[0].text.clone(),
            None => first.args[0].text.clone(),
        };
        let gname = if valid_name(&name, 32) && name != "default" {
            name.clone()
        } else {
            let fixed: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .take(32)
                .collect();
            let fixed = if fixed == "default" || fixed.starts_with('-') {
                format!("g{fixed}")
            } else {
                fixed
            };
            fixed.chars().take(32).collect()
        };
        let mut g = Group {
            name: gname.clone(),
            comment: match sync {
                Some(_) => format!(
                    "keepalived vrrp_sync_group {name}: the instances {} in ONE group, so their VIPs \
                     always move together",
                    members.iter().map(|m| m.args[0].text.as_str()).collect::<Vec<_>>().join(", ")
                ),
                None => format!("keepalived vrrp_instance {name}"),
            },
            ..Group::default()
        };
        if let Some(s) = sync {
            let how = if gname == name {
                format!("[[group]] name = \"{gname}\" with the VIPs of every instance it lists")
            } else {
                format!("[[group]] name = \"{gname}\" (`{name}` is not a group name) with the VIPs of every instance it lists")
            };
            self.say(s, mapped(how));
            for k in s.kids() {
                if self.tainted(k) {
                    continue;
                }
                match k.keyword.as_str() {
                    "group" => {
                        for m in k.kids() {
                            let known = members.iter().any(|i| i.args[0].text == m.keyword);
                            if known {
                                self.say(m, mapped(format!("merged into [[group]] {gname}")));
                            } else {
                                self.say(
                                    m,
                                    unsupported(
                                        "no vrrp_instance of that name",
                                        "define it or drop it from the group",
                                    ),
                                );
                            }
                        }
                    }
                    kw if kw.starts_with("notify") => self.notify(k, &mut g, true),
                    "track_script" | "track_interface" | "track_file" | "track_process" => {
                        self.track(k, &mut g)
                    }
                    "smtp_alert" => self.say(k, unsupported("haagent sends no mail", MAIL)),
                    "global_tracking" | "sync_group_tracking_weight" => self.say(
                        k,
                        nothing("a haagent group has one priority and one set of tracks"),
                    ),
                    _ => self.say(
                        k,
                        unsupported(
                            "a vrrp_sync_group key the importer does not know",
                            "map it by hand",
                        ),
                    ),
                }
            }
        }
        for (idx, inst) in members.iter().enumerate() {
            self.instance(inst, &mut g, idx, sync.is_some());
        }
        self.check_routes(&mut g);
        if g.vips.is_empty() {
            self.push(
                Some(&first.place),
                &first.keyword,
                unsupported(
                    format!(
                        "{name} has no virtual_ipaddress: a haagent group needs at least one VIP"
                    ),
                    "add its VIPs, or drop the instance",
                ),
            );
        }
        g.notify
            .sort_by_key(|(k, _)| HOOK_ORDER.iter().position(|h| h == k));
        self.model.groups.push(g);
    }

    fn instance(&mut self, inst: &'a Node, g: &mut Group, idx: usize, merged: bool) {
        let iname = inst.args[0].text.clone();
        let gname = g.name.clone();
        if !merged {
            let how = if gname == iname {
                format!("[[group]] name = \"{gname}\"")
            } else {
                format!("[[group]] name = \"{gname}\" (`{iname}` is not a group name)")
            };
            self.say(inst, mapped(how));
        } else {
            self.say(
                inst,
                mapped(format!("part of [[group]] {gname} (its sync group)")),
            );
        }
        let iface = inst
            .kids()
            .iter()
            .find(|k| k.keyword == "interface" && !k.tainted)
            .and_then(|k| k.args.first())
            .map(|w| w.text.clone());
        if !inst.kids().iter().any(|k| k.keyword == "advert_int") {
            // keepalived's default advert_int is 1 s.
            self.adverts
                .push((1000, inst.place.clone(), "advert_int".into(), true));
        }
        for k in inst.kids() {
            if self.tainted(k) {
                continue;
            }
            let arg = k.args.first().map(|w| w.text.clone()).unwrap_or_default();
            match k.keyword.as_str() {
                "state" => self.say(
                    k,
                    nothing("haagent elects by priority; the starting state does not matter (nopreempt is its own key)"),
                ),
                "interface" => {
                    if !valid_ifname(&arg) {
                        self.bad_value(k, "an interface name (1..15 bytes, no `/` or `:`)");
                    } else if self.model.interface.as_deref() == Some(arg.as_str()) {
                        self.say(k, mapped(format!("[node] interface = \"{arg}\" (the VIPs that name no dev)")));
                    } else {
                        self.say(k, mapped(format!("`interface = \"{arg}\"` of this instance's VIPs that name no dev")));
                    }
                }
                "virtual_router_id" => match int(&arg) {
                    Some(id) if (1..=255).contains(&id) => {
                        if idx == 0 {
                            g.id = Some(id);
                            self.say(k, mapped(format!("[[group]] id = {id}")));
                        } else {
                            let first = g.id.unwrap_or(0);
                            self.say(k, approx(format!("one group, one id: {gname} uses id {first} of its first instance")));
                        }
                    }
                    _ => self.bad_value(k, "a virtual_router_id (1..=255)"),
                },
                "priority" => match int(&arg) {
                    // A sync group: the first instance's priority decides, also when it was
                    // refused; a later one is not silently taken instead.
                    Some(p) if (1..=255).contains(&p) && g.priority_refused => self.say(
                        k,
                        unsupported(
                            format!("one group, one priority: the first instance's (255, not supported) decides, not {p}"),
                            "priority 254 on the first instance",
                        ),
                    ),
                    Some(p) if (1..=254).contains(&p) => match g.priority {
                        None => {
                            g.priority = Some(p);
                            self.say(k, mapped(format!("[[group]] priority = {p}")));
                        }
                        Some(old) if old == p => self.say(k, mapped(format!("[[group]] priority = {p}"))),
                        Some(old) => self.say(k, approx(format!("one group, one priority: {old} of the first instance"))),
                    },
                    Some(255) => {
                        if g.priority.is_none() {
                            g.priority_refused = true;
                        }
                        self.say(
                        k,
                        unsupported(
                            "priority 255 (the address owner) does not exist in haagent: priorities are 1..=254",
                            "priority 254 and the highest on this node",
                        ),
                    )
                    }
                    _ => self.bad_value(k, "a priority (1..=254)"),
                },
                "advert_int" => match seconds_ms(&arg) {
                    Some(ms) if (10..=10000).contains(&ms) => {
                        self.adverts.push((ms, k.place.clone(), k.keyword.clone(), false))
                    }
                    Some(ms) if ms > 10000 => self.say(
                        k,
                        unsupported(format!("{ms} ms: haagent's advert interval is 10..=10000 ms"), "advert_interval_ms = 10000 at most"),
                    ),
                    _ => self.bad_value(k, "an advert interval in seconds (0.01..=10)"),
                },
                "nopreempt" => {
                    g.nopreempt = true;
                    self.say(k, mapped("[[group]] nopreempt = true"));
                }
                "preempt" => self.say(k, nothing("preempting is haagent's default")),
                "preempt_delay" => match seconds_ms(&arg) {
                    // keepalived's vrrp_parser.c refuses more than 1000 s (and then runs
                    // without a delay): not mapped to a delay keepalived never applied.
                    Some(ms) if ms > 1_000_000 => self.say(
                        k,
                        unsupported(
                            format!(
                                "preempt_delay {arg} is above keepalived's maximum 1000 s: \
                                 keepalived ignores it"
                            ),
                            "preempt_delay of at most 1000 s (preempt_delay_ms = 1000000)",
                        ),
                    ),
                    Some(ms) if ms <= 3_600_000 => {
                        g.preempt_delay_ms = Some(ms);
                        self.say(k, mapped(format!("[[group]] preempt_delay_ms = {ms}")));
                    }
                    _ => self.bad_value(k, "a delay in seconds (0..=3600)"),
                },
                "unicast_src_ip" => match arg.parse::<IpAddr>() {
                    Ok(a) => match &self.model.listen {
                        None => {
                            self.model.listen = Some(a.to_string());
                            self.say(k, mapped(format!("[node] listen = \"{a}\" (port 5798, UDP/QUIC)")));
                        }
                        Some(l) if *l == a.to_string() => {
                            self.say(k, mapped(format!("[node] listen = \"{a}\"")))
                        }
                        Some(l) => {
                            let l = l.clone();
                            self.say(k, approx(format!(
                                "haagent listens on one address for every group: {l}; the peers are \
                                 reached from there, not from {a}"
                            )))
                        }
                    },
                    Err(_) => self.bad_value(k, "an IP address"),
                },
                "mcast_src_ip" => self.say(k, approx("haagent sends no multicast; give the node's address with unicast_src_ip or set [node] listen")),
                "unicast_peer" => self.peers(k),
                "authentication" => {
                    self.auth_seen = true;
                    if self.first_auth.is_none() {
                        self.first_auth = Some(k.place.clone());
                    } else {
                        self.say(k, approx("replaced by mutual TLS (see the first authentication line)"));
                    }
                    for a in k.kids() {
                        self.say(a, nothing("certificates replace keepalived's authentication (see authentication)"));
                    }
                }
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    for v in k.kids() {
                        if !self.tainted(v) {
                            self.vip(v, &k.keyword, iface.as_deref(), g);
                        }
                    }
                }
                "virtual_routes" => {
                    for r in k.kids() {
                        if !self.tainted(r) {
                            self.route(r, g);
                        }
                    }
                }
                "virtual_rules" => self.say(k, unsupported("haagent installs no policy rules", "`ip rule` in the system's network configuration, or in a [group.notify] master hook")),
                "track_script" | "track_interface" | "track_file" | "track_process" => self.track(k, g),
                "track_bfd" => self.say(k, unsupported("haagent has no BFD", "an exec check")),
                kw if kw.starts_with("notify") => self.notify(k, g, false),
                "smtp_alert" => self.say(k, unsupported("haagent sends no mail", MAIL)),
                "garp_master_delay" | "garp_master_repeat" | "garp_master_refresh"
                | "garp_master_refresh_repeat" | "garp_lower_prio_delay" | "garp_lower_prio_repeat"
                | "garp_interval" => {
                    let key = k.keyword.clone();
                    self.garp(k, &key);
                }
                "gna_interval" => self.say(k, nothing(GNA_SCHEDULE)),
                "vrrp_version" | "version" | "strict_mode" | "skip_check_adv_addr" | "check_unicast_src"
                | "unicast_fault_no_peer" | "higher_prio_send_advert" | "debug" | "kernel_rx_buf_size"
                | "unicast_ttl" | "mcast_ttl" | "old_unicast_checksum" => {
                    self.say(k, nothing("haagent speaks its own protocol over QUIC; there is nothing to set"))
                }
                "accept" => self.say(k, nothing("haagent's VIPs are ordinary addresses: the master accepts traffic to them")),
                "no_accept" => self.say(k, unsupported("haagent's VIPs are ordinary addresses: the master always accepts traffic to them", "a firewall rule")),
                "dont_track_primary" => self.say(k, unsupported("haagent always follows the carrier of its VIP interfaces", "none")),
                "use_vmac" | "vmac_xmit_base" => self.say(k, unsupported("haagent moves the VIP to the new master's MAC (gratuitous ARP), it has no virtual MAC", "none: the GARP burst and refresh update the neighbours")),
                "native_ipv6" => self.say(k, nothing("haagent's peers speak the family of their [[peer]] addresses; IPv6 VIPs need nothing else")),
                "lvs_sync_daemon_interface" => self.say(k, unsupported("haagent does no load balancing (LVS)", "ipvsadm's own sync daemon")),
                _ => self.say(k, unsupported("a vrrp_instance key the importer does not know", "map it by hand")),
            }
        }
    }

    fn peers(&mut self, k: &Node) {
        if !k.args.is_empty() {
            // `unicast_peer ADDR` on one line is not keepalived's grammar.
            self.bad_value(k, "a block of peer addresses");
        }
        let from_flags = !self.opts.peers.is_empty();
        for p in k.kids() {
            if self.tainted(p) {
                continue;
            }
            let Ok(addr) = p.keyword.parse::<IpAddr>() else {
                self.push(
                    Some(&p.place),
                    "unicast_peer",
                    unsupported(
                        format!("`{}` is not an IP address", p.keyword),
                        "fix the keepalived config, then import again",
                    ),
                );
                continue;
            };
            let a = addr.to_string();
            let extra = if p.args.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} ignored: QUIC has no TTL check)",
                    p.arg_texts().join(" ")
                )
            };
            let outcome = if from_flags {
                if self.model.peers.contains(&a) {
                    mapped(format!(
                        "[[peer]] address = \"{a}\" (also given with --peer){extra}"
                    ))
                } else {
                    approx(format!("replaced by the --peer addresses{extra}"))
                }
            } else if self.model.peers.contains(&a) {
                mapped(format!("[[peer]] address = \"{a}\"{extra}"))
            } else if self.peer_block.is_none() || self.peer_block.as_ref() == Some(&k.place) {
                self.peer_block = Some(k.place.clone());
                self.model.peers.push(a.clone());
                mapped(format!("[[peer]] address = \"{a}\" (known by address: keepalived does not name peers){extra}"))
            } else {
                approx(format!(
                    "haagent has one peer list for every group and reaches each peer at one address: \
                     {a} is taken to be one of the peers above, not written (instead: a [[peer]] for it \
                     if it is another node)"
                ))
            };
            self.push(Some(&p.place), "unicast_peer", outcome);
        }
    }

    fn vip(&mut self, v: &Node, block: &str, iface: Option<&str>, g: &mut Group) {
        let mut words = vec![v.keyword.clone()];
        words.extend(v.args.iter().map(|w| w.text.clone()));
        let addr_text = words[0].clone();
        // Without a prefix, a host address: /32 or /128, as `ip addr add` takes it.
        let (ip, prefix) = match addr_text.split_once('/') {
            Some((a, p)) => (a.to_string(), p.parse::<u8>().ok()),
            None => (addr_text.clone(), None),
        };
        let place = v.place.clone();
        let say = |m: &mut Self, o: Outcome| m.push(Some(&place), block, o);
        let ip: IpAddr = match ip.parse() {
            Ok(ip) => ip,
            Err(_) => {
                return say(
                    self,
                    unsupported(
                        format!("`{addr_text}` is not an address"),
                        "fix the keepalived config, then import again",
                    ),
                )
            }
        };
        let longest = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match (addr_text.contains('/'), prefix) {
            (false, _) => Some(longest),
            (true, p) => p,
        };
        let Some(prefix) = prefix.filter(|p| *p <= longest) else {
            return say(
                self,
                unsupported(
                    format!("`{addr_text}` has no valid prefix"),
                    "fix the keepalived config, then import again",
                ),
            );
        };
        // The config's own VIP rules: what `check-config` would refuse is not "mapped".
        if let Some(why) = crate::net::IpCidr::new(ip, prefix)
            .as_ref()
            .and_then(crate::config::bad_vip)
        {
            return say(
                self,
                unsupported(why, "fix the keepalived config, then import again"),
            );
        }
        let mut vip = Vip {
            address: format!("{ip}/{prefix}"),
            interface: None,
            label: None,
            scope: None,
        };
        let mut notes: Vec<String> = Vec::new();
        let mut dev = iface.map(str::to_string);
        let mut i = 1;
        let mut bad: Option<String> = None;
        while i < words.len() {
            let key = words[i].as_str();
            let val = words.get(i + 1).cloned();
            match (key, val) {
                ("dev", Some(d)) => dev = Some(d),
                ("label", Some(l)) => vip.label = Some(l),
                ("scope", Some(s)) => match s.as_str() {
                    "global" | "link" | "host" => vip.scope = (s != "global").then_some(s),
                    "0" => {}
                    "253" => vip.scope = Some("link".into()),
                    "254" => vip.scope = Some("host".into()),
                    _ => bad = Some(format!("scope {s}: haagent takes global, link or host")),
                },
                ("brd" | "broadcast", Some(b)) => notes.push(format!(
                    "brd {b} ignored: haagent adds the VIP without a broadcast address (as `ip addr add` \
                     without brd); the interface's own address keeps the subnet's broadcast"
                )),
                ("preferred_lft", Some(p)) => notes.push(format!(
                    "preferred_lft {p} ignored: haagent gives the VIP a kernel lease ([vip] lease_ms) instead"
                )),
                ("no_track" | "nodad" | "noprefixroute" | "home" | "mngtmpaddr" | "autojoin", None)
                | ("no_track" | "nodad" | "noprefixroute" | "home" | "mngtmpaddr" | "autojoin", Some(_)) => {
                    notes.push(format!("{key} ignored"));
                    i += 1;
                    continue;
                }
                (k, _) => {
                    bad = Some(format!("`{k}` is not a virtual_ipaddress option haagent knows"));
                    break;
                }
            }
            i += 2;
        }
        if !ip.is_ipv4() {
            // Linux keeps no label on an IPv6 address and derives its scope from it.
            if let Some(l) = vip.label.take() {
                notes.push(format!(
                    "label {l} ignored: Linux labels IPv4 addresses only"
                ));
            }
            if let Some(sc) = vip.scope.take() {
                notes.push(format!(
                    "scope {sc} ignored: Linux derives an IPv6 address's scope from the address"
                ));
            }
        }
        if let Some(b) = bad {
            return say(self, unsupported(b, "map this VIP by hand"));
        }
        let Some(dev) = dev else {
            return say(
                self,
                unsupported(
                    "no interface for this VIP (no dev, no interface)",
                    "add `dev IFACE`",
                ),
            );
        };
        if !valid_ifname(&dev) {
            return say(
                self,
                unsupported(
                    format!("`{dev}` is not an interface name"),
                    "fix the keepalived config",
                ),
            );
        }
        if let Some(l) = &vip.label {
            if !(l.len() <= 15 && (*l == dev || l.starts_with(&format!("{dev}:")))) {
                return say(
                    self,
                    unsupported(
                        format!("label {l}: a label is at most 15 bytes and starts with `{dev}:`"),
                        format!("a label such as {dev}:vip"),
                    ),
                );
            }
        }
        if self.model.interface.as_deref() != Some(dev.as_str()) {
            vip.interface = Some(dev.clone());
        }
        if g.vips.iter().any(|x| x.address == vip.address)
            || self
                .model
                .groups
                .iter()
                .any(|gr| gr.vips.iter().any(|x| x.address == vip.address))
        {
            return say(
                self,
                unsupported(
                    format!("{} is already a VIP", vip.address),
                    "list each VIP once",
                ),
            );
        }
        let mut how = format!("[[group]] {} vips: {} on {dev}", g.name, vip.address);
        if let Some(l) = &vip.label {
            how.push_str(&format!(", label {l}"));
        }
        if let Some(s) = &vip.scope {
            how.push_str(&format!(", scope {s}"));
        }
        if block == "virtual_ipaddress_excluded" {
            how.push_str(
                " (a VIP like the others: haagent never puts the VIPs in its adverts, so there is \
                 nothing to exclude them from)",
            );
        }
        if addr_text.find('/').is_none() {
            how.push_str(if ip.is_ipv4() {
                " (no prefix: keepalived's /32)"
            } else {
                " (no prefix: /128, as `ip addr add` takes it)"
            });
        }
        g.vips.push(vip);
        if notes.is_empty() {
            say(self, mapped(how));
        } else {
            say(self, approx(format!("{how}; {}", notes.join("; "))));
        }
    }

    fn route(&mut self, r: &Node, g: &mut Group) {
        let mut words = vec![r.keyword.clone()];
        words.extend(r.args.iter().map(|w| w.text.clone()));
        let mut route = Route::default();
        let mut to: Option<String> = None;
        let mut notes = Vec::new();
        let mut i = 0;
        let place = r.place.clone();
        let fail = |m: &mut Self, why: String| {
            m.push(
                Some(&place),
                "virtual_routes",
                unsupported(
                    why,
                    "map this route by hand, or add it in a [group.notify] master hook",
                ),
            )
        };
        while i < words.len() {
            let key = words[i].as_str();
            let val = words.get(i + 1).cloned();
            let ipv4 = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<Ipv4Addr>().ok());
            match key {
                "src" => match ipv4(&val) {
                    Some(a) => route.src = Some(a.to_string()),
                    None => return fail(self, "src is not an IPv4 address".into()),
                },
                "via" | "gw" => match ipv4(&val) {
                    Some(a) => route.via = Some(a.to_string()),
                    None => {
                        return fail(
                            self,
                            format!("{key} is not an IPv4 address (haagent's routes are IPv4)"),
                        )
                    }
                },
                "dev" | "oif" => match val {
                    Some(d) if valid_ifname(&d) => route.dev = Some(d),
                    _ => return fail(self, "dev is not an interface name".into()),
                },
                "metric" | "preference" | "priority" => {
                    match val.as_deref().and_then(|v| v.parse::<u32>().ok()) {
                        Some(m) => route.metric = Some(i64::from(m)),
                        None => return fail(self, "metric is not 0..=4294967295".into()),
                    }
                }
                "table" => match val.as_deref() {
                    Some("main") | Some("254") => {}
                    Some(t) => match t.parse::<u32>() {
                        Ok(n) if n >= 1 => route.table = Some(i64::from(n)),
                        _ => {
                            return fail(
                                self,
                                format!(
                                "table {t}: haagent takes a table number 1..=4294967295 (or main)"
                            ),
                            )
                        }
                    },
                    None => return fail(self, "table without a value".into()),
                },
                "to" => {
                    to = val;
                }
                "scope" | "proto" | "protocol" => {
                    notes.push(format!("{key} {} ignored (haagent's routes are protocol 98, the kernel picks the scope)", val.unwrap_or_default()));
                }
                "no_track" => {
                    notes.push("no_track ignored".into());
                    i += 1;
                    continue;
                }
                "onlink" | "blackhole" | "unreachable" | "prohibit" | "throw" | "mtu"
                | "advmss" | "realms" | "tos" | "dsfield" | "nexthop" | "weight" | "encap" => {
                    return fail(self, format!("`{key}`: haagent's routes have to, via, src, dev, metric and table only"));
                }
                _ if to.is_none() => {
                    to = Some(key.to_string());
                    i += 1;
                    continue;
                }
                _ => return fail(self, format!("`{key}` is not a route option haagent knows")),
            }
            i += 2;
        }
        let Some(dest) = to else {
            return fail(self, "no destination".into());
        };
        route.to = if dest == "default" || dest == "0.0.0.0/0" {
            "default".into()
        } else {
            let (a, p) = dest.split_once('/').unwrap_or((dest.as_str(), "32"));
            match (a.parse::<Ipv4Addr>(), p.parse::<u8>()) {
                (Ok(a), Ok(p)) if p <= 32 => format!("{a}/{p}"),
                _ => {
                    return fail(
                        self,
                        format!("`{dest}` is not an IPv4 destination (haagent's routes are IPv4)"),
                    )
                }
            }
        };
        let mut how = format!("[[group.route]] of {}: to {}", g.name, route.to);
        for (k, v) in [
            ("via", &route.via),
            ("src", &route.src),
            ("dev", &route.dev),
        ] {
            if let Some(v) = v {
                how.push_str(&format!(", {k} {v}"));
            }
        }
        if let Some(m) = route.metric {
            how.push_str(&format!(", metric {m}"));
        }
        if let Some(t) = route.table {
            how.push_str(&format!(", table {t}"));
        }
        g.routes.push(route);
        let outcome = if notes.is_empty() {
            mapped(how)
        } else {
            approx(format!("{how}; {}", notes.join("; ")))
        };
        // Kept until the group's VIPs are known (src must be one of them).
        self.pending_routes.push((place, outcome));
    }

    /// Checks each route's `src`/`via` against the group's VIPs, then reports the routes.
    fn check_routes(&mut self, g: &mut Group) {
        let pending = std::mem::take(&mut self.pending_routes);
        let vips: Vec<String> = g
            .vips
            .iter()
            .map(|v| v.address.split('/').next().unwrap_or("").to_string())
            .collect();
        let mut keep = Vec::new();
        for (route, (place, outcome)) in std::mem::take(&mut g.routes).into_iter().zip(pending) {
            if let Some(src) = route.src.as_ref().filter(|s| !vips.contains(s)) {
                self.push(Some(&place), "virtual_routes", unsupported(
                    format!("src {src} is not a VIP of {}: haagent installs a route with src only while this node holds that address", g.name),
                    "a VIP of this group as src, or the route in the system's configuration",
                ));
                continue;
            }
            if let Some(via) = route.via.as_ref().filter(|v| vips.contains(v)) {
                self.push(
                    Some(&place),
                    "virtual_routes",
                    unsupported(
                        format!("via {via} is one of the group's VIPs"),
                        "the real gateway",
                    ),
                );
                continue;
            }
            self.push(Some(&place), "virtual_routes", outcome);
            keep.push(route);
        }
        g.routes = keep;
    }

    fn notify(&mut self, k: &Node, g: &mut Group, from_sync: bool) {
        let key: &'static str = match k.keyword.as_str() {
            "notify" => "command",
            "notify_master" => "master",
            "notify_backup" => "backup",
            "notify_fault" => "fault",
            "notify_stop" => "stop",
            "notify_master_rx_lower_pri" => "conflict_won",
            _ => {
                return self.say(k, unsupported(
                    "haagent has no hook for this event",
                    "a `command` hook ([group.notify] command, args = \"keepalived\") sees every transition",
                ))
            }
        };
        let Some(first) = k.args.first() else {
            return self.bad_value(k, "a script");
        };
        let argv = if first.quoted {
            split_command(&first.text)
        } else {
            vec![first.text.clone()]
        };
        if argv.first().is_none_or(|p| p.is_empty()) {
            return self.bad_value(k, "a script");
        }
        let user = k
            .args
            .get(1..)
            .unwrap_or(&[])
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let hook = Hook {
            argv: argv.clone(),
            keepalived_args: key == "command",
        };
        if let Some((_, old)) = g.notify.iter().find(|(hk, _)| *hk == key) {
            if *old == hook {
                return self.say(
                    k,
                    mapped(format!(
                        "[group.notify] {key} of {} (the same command)",
                        g.name
                    )),
                );
            }
            return self.say(
                k,
                unsupported(
                    format!(
                        "{} already has a {key} hook: haagent runs one hook per event and group",
                        g.name
                    ),
                    "call both scripts from one",
                ),
            );
        }
        g.notify.push((key, hook));
        let mut how = format!("[group.notify] {key} = {}", super::model::list(&argv));
        if key == "command" {
            how = format!(
                "[group.notify] command = {{ command = {}, args = \"keepalived\" }}: called with \
                 INSTANCE {} STATE PRIORITY, as keepalived does",
                super::model::list(&argv),
                g.name
            );
            if from_sync {
                how.push_str(" (keepalived calls a sync group's notify with GROUP NAME STATE; haagent says INSTANCE and the group's name)");
                return self.say(k, approx(how));
            }
        }
        if key == "conflict_won" {
            // keepalived runs notify_master_rx_lower_pri when its master receives a VRRP
            // advert of lower priority (another master); haagent's masters see no such
            // adverts (QUIC to known peers): conflict_won runs when another host answers ARP
            // for the VIPs while this master outranks it and re-announces.
            how.push_str(
                ": keepalived runs it when its master hears a lower-priority VRRP advert; \
                 haagent runs it when another host answers for this group's VIPs while this \
                 master outranks it and re-announces (at most once per conflict notice)",
            );
            if !user.is_empty() {
                how.push_str(&format!("; user `{user}` ignored: {AS_HAAGENT}"));
            }
            return self.say(k, approx(how));
        }
        if !user.is_empty() {
            return self.say(
                k,
                approx(format!("{how}; user `{user}` ignored: {AS_HAAGENT}")),
            );
        }
        self.say(k, mapped(how));
    }

    fn unique_name(&mut self, wanted: &str) -> String {
        let mut base: String = wanted
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        if base.is_empty() || base.starts_with('-') {
            base = format!("c{base}");
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.check_names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.check_names.push(name.clone());
        name
    }

    /// `track_script`, `track_interface`, `track_file`, `track_process` of an instance.
    fn track(&mut self, k: &Node, g: &mut Group) {
        for t in k.kids() {
            if self.tainted(t) {
                continue;
            }
            let args = t.arg_texts();
            let weight = match args.as_slice() {
                [] => None,
                ["weight", w] => match int(w) {
                    Some(w) if (-254..=254).contains(&w) => Some(w),
                    _ => {
                        self.push(
                            Some(&t.place),
                            &k.keyword,
                            unsupported(
                                format!("weight {w} is not -254..=254"),
                                "fix the keepalived config",
                            ),
                        );
                        continue;
                    }
                },
                ["weight", _, "reverse"] => {
                    // keepalived: `reverse` applies the weight with the check's result
                    // inverted; haagent has no inverted check, and a wrong weight is worse
                    // than none: no track is written.
                    self.push(
                        Some(&t.place),
                        &k.keyword,
                        unsupported(
                            "`reverse` (the weight applied with the check's result inverted) \
                             cannot be expressed: haagent has no inverted check; no track written",
                            "an exec check whose script inverts the result, tracked with the weight",
                        ),
                    );
                    let kind = match k.keyword.as_str() {
                        "track_script" => "script",
                        "track_file" => "file",
                        "track_process" => "process",
                        _ => "interface",
                    };
                    self.refused
                        .entry((kind, t.keyword.clone()))
                        .or_insert_with(|| REVERSE_TRACK.into());
                    continue;
                }
                _ => {
                    self.push(
                        Some(&t.place),
                        &k.keyword,
                        unsupported(
                            format!("`{}` after the name", args.join(" ")),
                            "fix the keepalived config",
                        ),
                    );
                    continue;
                }
            };
            let name = t.keyword.clone();
            let made = match k.keyword.as_str() {
                "track_script" => self.script_check(&name),
                "track_interface" => Ok(self.interface_check(&name, t)),
                "track_file" => self.file_check(&name),
                _ => self.process_check(&name),
            };
            let check = match made {
                Ok(c) => c,
                Err(why) => {
                    let (why, instead) = if self.refused.contains_key(&("script", name.clone())) {
                        (
                            format!("vrrp_script {name}: {why}"),
                            "see its vrrp_script's weight line",
                        )
                    } else {
                        (why, "define it, or drop the track")
                    };
                    self.push(Some(&t.place), &k.keyword, unsupported(why, instead));
                    continue;
                }
            };
            if g.track.iter().any(|(c, _)| *c == check) {
                self.push(
                    Some(&t.place),
                    &k.keyword,
                    approx(format!("{check} is already tracked by {}: once", g.name)),
                );
                continue;
            }
            let wv = weight.map(|w| {
                if w == 0 {
                    Val::Str("fault".into())
                } else {
                    Val::Int(w)
                }
            });
            let how = match (&wv, k.keyword.as_str()) {
                (Some(w), _) => format!(
                    "[[group]] {} track {{ check = \"{check}\", weight = {} }}",
                    g.name,
                    match w {
                        Val::Int(i) => i.to_string(),
                        _ => "\"fault\"".into(),
                    }
                ),
                (None, "track_interface") => {
                    // keepalived: a tracked interface without weight faults the instance.
                    format!("[[group]] {} track \"{check}\" (no weight: down = fault, as in keepalived)", g.name)
                }
                (None, _) => format!(
                    "[[group]] {} track \"{check}\" (the check's own weight)",
                    g.name
                ),
            };
            let wv = match (wv, k.keyword.as_str()) {
                (None, "track_interface") => None,
                (w, _) => w,
            };
            g.track.push((check, wv));
            self.push(Some(&t.place), &k.keyword, mapped(how));
        }
    }

    fn interface_check(&mut self, ifname: &str, t: &Node) -> String {
        if let Some(c) = self.made.get(&("interface", ifname.to_string())) {
            return c.clone();
        }
        let name = self.unique_name(&format!("if-{ifname}"));
        let _ = t;
        self.model.checks.push(Check {
            comment: format!("keepalived track_interface {ifname}: up with carrier"),
            name: name.clone(),
            kind: "interface",
            keys: vec![
                ("interface", Val::Str(ifname.to_string())),
                // keepalived reacts to the first netlink event: no fall/rise of its own.
                ("fall", Val::Int(1)),
                ("rise", Val::Int(1)),
                ("weight", Val::Str("fault".into())),
            ],
        });
        self.made
            .insert(("interface", ifname.to_string()), name.clone());
        name
    }

    fn script_check(&mut self, sname: &str) -> Result<String, String> {
        if let Some(c) = self.made.get(&("script", sname.to_string())) {
            return Ok(c.clone());
        }
        if let Some(why) = self.refused.get(&("script", sname.to_string())) {
            if why != REVERSE_TRACK {
                return Err(why.clone());
            }
        }
        let Some(node) = self.scripts.get(sname).copied() else {
            return Err(format!("no vrrp_script {sname}"));
        };
        let mut interval_ms = 1000;
        let mut timeout_ms: Option<i64> = None;
        let mut fall = 1;
        let mut rise = 1;
        let mut weight = 0;
        let mut reverse = None;
        let mut argv: Option<Vec<String>> = None;
        let mut script_line: Option<&Node> = None;
        let mut later: Vec<(&Node, Outcome)> = Vec::new();
        for k in node.kids() {
            if self.tainted(k) {
                continue;
            }
            let arg = k.args.first().map(|w| w.text.clone()).unwrap_or_default();
            match k.keyword.as_str() {
                "script" => {
                    let text = k.arg_texts().join(" ");
                    let words = split_command(&text);
                    if words.is_empty() {
                        self.bad_value(k, "a command");
                    } else {
                        argv = Some(words);
                        script_line = Some(k);
                    }
                }
                "interval" => match seconds_ms(&arg) {
                    Some(ms) if (10..=600_000).contains(&ms) => {
                        interval_ms = ms;
                        later.push((k, mapped(format!("interval_ms = {ms}"))));
                    }
                    _ => self.bad_value(k, "an interval of 0.01..=600 s"),
                },
                "timeout" => match seconds_ms(&arg) {
                    Some(ms) if ms >= 1 => timeout_ms = Some(ms),
                    _ => self.bad_value(k, "a timeout in seconds"),
                },
                "fall" | "rise" => match int(&arg) {
                    Some(n) if (1..=100).contains(&n) => {
                        if k.keyword == "fall" { fall = n } else { rise = n }
                        later.push((k, mapped(format!("{} = {n}", k.keyword))));
                    }
                    _ => self.bad_value(k, "a count of 1..=100"),
                },
                "weight" => match k.arg_texts().as_slice() {
                    [w] => match int(w) {
                        Some(w) if (-254..=254).contains(&w) => {
                            weight = w;
                            let how = if w == 0 {
                                "weight = \"fault\" (keepalived's weight 0: failing puts the instance in FAULT)".to_string()
                            } else if w < 0 {
                                format!("weight = {w} (subtracted while the check fails, as in keepalived)")
                            } else {
                                format!("weight = {w} (added while the check succeeds, as in keepalived)")
                            };
                            later.push((k, mapped(how)));
                        }
                        _ => self.bad_value(k, "a weight of -254..=254"),
                    },
                    [w, "reverse"] => reverse = Some((k, w.to_string())),
                    _ => self.bad_value(k, "a weight of -254..=254 [reverse]"),
                },
                "user" => self.say(k, approx(AS_HAAGENT)),
                "init_fail" => self.say(k, approx("haagent's checks start neither healthy nor failing: a group waits for their first verdict")),
                _ => self.say(k, unsupported("a vrrp_script key the importer does not know", "map it by hand")),
            }
        }
        if let Some((k, w)) = reverse {
            // keepalived: `weight W reverse` applies W with the script's result inverted.
            // haagent has no inverted exec check: nothing is written rather than a weight
            // with another meaning.
            let why = format!(
                "its `weight {w} reverse` (the weight applied with the script's result \
                 inverted) cannot be expressed"
            );
            self.say(
                k,
                unsupported(
                    "`reverse` cannot be expressed: haagent has no inverted check; the script \
                     is not written and no instance tracks it (never a weight with another \
                     meaning)",
                    format!(
                        "a script that inverts the result, then weight {} on its check",
                        w.trim_start_matches('+')
                    ),
                ),
            );
            self.refused
                .insert(("script", sname.to_string()), why.clone());
            return Err(why);
        }
        let Some(argv) = argv else {
            self.say(
                node,
                unsupported(
                    format!("vrrp_script {sname} has no usable script"),
                    "give it a script",
                ),
            );
            return Err(format!("vrrp_script {sname} has no usable script"));
        };
        // keepalived's default timeout is the interval; haagent's may not exceed it.
        let mut timeout = timeout_ms.unwrap_or(interval_ms);
        let timeout_line = node.kids().iter().find(|k| k.keyword == "timeout");
        let capped = timeout > interval_ms || timeout > 60_000;
        if capped {
            timeout = timeout.min(interval_ms).min(60_000);
        }
        if let Some(tl) = timeout_line {
            if timeout_ms.is_some() {
                if capped {
                    later.push((tl, approx(format!("timeout_ms = {timeout}: haagent's timeout is at most the interval and 60 s"))));
                } else {
                    later.push((tl, mapped(format!("timeout_ms = {timeout}"))));
                }
            }
        }
        let name = self.unique_name(sname);
        let rec = recognise(&argv);
        let mut keys = Vec::new();
        let (kind, comment, how) = match &rec {
            Recognised::Http { url, fail, how } => {
                keys.push(("url", Val::Str(url.clone())));
                let note = if *fail {
                    String::new()
                } else {
                    " (curl without --fail accepts any answer; the http check wants 200..=399)"
                        .into()
                };
                (
                    "http",
                    format!("keepalived vrrp_script {sname}: {}", argv.join(" ")),
                    format!("http check {name}, url = \"{url}\" (recognised: {how}){note}"),
                )
            }
            Recognised::Process { name: p, how } => {
                keys.push(("process", Val::Str(p.clone())));
                (
                    "process",
                    format!("keepalived vrrp_script {sname}: {}", argv.join(" ")),
                    format!("process check {name}, process = \"{p}\" (recognised: {how})"),
                )
            }
            Recognised::Tcp { address, how } => {
                keys.push(("address", Val::Str(address.clone())));
                (
                    "tcp",
                    format!("keepalived vrrp_script {sname}: {}", argv.join(" ")),
                    format!("tcp check {name}, address = \"{address}\" (recognised: {how})"),
                )
            }
            Recognised::Exec { how } => {
                keys.push(("command", Val::List(argv.clone())));
                ("exec", format!("keepalived vrrp_script {sname}"), format!("exec check {name} running {} ({how}; run without a shell, as keepalived does)", super::model::list(&argv)))
            }
        };
        keys.push(("interval_ms", Val::Int(interval_ms)));
        keys.push(("timeout_ms", Val::Int(timeout)));
        keys.push(("fall", Val::Int(fall)));
        keys.push(("rise", Val::Int(rise)));
        keys.push((
            "weight",
            if weight == 0 {
                Val::Str("fault".into())
            } else {
                Val::Int(weight)
            },
        ));
        self.model.checks.push(Check {
            comment,
            name: name.clone(),
            kind,
            keys,
        });
        let approx_http = matches!(&rec, Recognised::Http { fail: false, .. })
            || matches!(&rec, Recognised::Tcp { how, .. } if how.starts_with("bash's"))
            || matches!(&rec, Recognised::Process { how, .. } if how.starts_with("pgrep") && how.contains("part"));
        self.say(node, mapped(format!("[[check]] {name}")));
        if let Some(sl) = script_line {
            self.say(
                sl,
                if approx_http {
                    approx(how)
                } else {
                    mapped(how)
                },
            );
        }
        for (k, o) in later {
            self.say(k, o);
        }
        self.made
            .insert(("script", sname.to_string()), name.clone());
        Ok(name)
    }

    fn file_check(&mut self, fname: &str) -> Result<String, String> {
        if let Some(c) = self.made.get(&("file", fname.to_string())) {
            return Ok(c.clone());
        }
        let Some(node) = self.files.get(fname).copied() else {
            return Err(format!("no track_file {fname}"));
        };
        let mut path = None;
        let mut weight = 1;
        let mut later = Vec::new();
        for k in node.kids() {
            if self.tainted(k) {
                continue;
            }
            let arg = k.args.first().map(|w| w.text.clone()).unwrap_or_default();
            match k.keyword.as_str() {
                "file" => {
                    if arg.starts_with('/') {
                        path = Some(arg.clone());
                        later.push((k, mapped(format!("path = \"{arg}\""))));
                    } else {
                        self.bad_value(k, "an absolute path");
                    }
                }
                "weight" => match int(&arg) {
                    Some(w) if (-254..=254).contains(&w) => {
                        weight = w;
                        later.push((k, mapped(if w == 0 {
                            "weight = \"fault\": any value but 0 in the file faults the group, as in keepalived".to_string()
                        } else {
                            format!("weight = {w} (the file's number times the weight, as in keepalived)")
                        })));
                    }
                    _ => self.bad_value(k, "a weight of -254..=254"),
                },
                "init_file" => later.push((k, approx(
                    "haagent does not create the file, and a missing file counts as failing: create it \
                     with `0` before the first start",
                ))),
                _ => self.say(k, unsupported("a track_file key the importer does not know", "map it by hand")),
            }
        }
        let Some(path) = path else {
            self.say(
                node,
                unsupported(format!("track_file {fname} has no file"), "give it a file"),
            );
            return Err(format!("track_file {fname} has no file"));
        };
        let name = self.unique_name(fname);
        self.model.checks.push(Check {
            comment: format!("keepalived track_file {fname}"),
            name: name.clone(),
            kind: "file",
            keys: vec![
                ("path", Val::Str(path)),
                (
                    "weight",
                    if weight == 0 {
                        Val::Str("fault".into())
                    } else {
                        Val::Int(weight)
                    },
                ),
            ],
        });
        self.say(node, mapped(format!("[[check]] {name}, kind = \"file\"")));
        for (k, o) in later {
            self.say(k, o);
        }
        self.made.insert(("file", fname.to_string()), name.clone());
        Ok(name)
    }

    fn process_check(&mut self, pname: &str) -> Result<String, String> {
        if let Some(c) = self.made.get(&("process", pname.to_string())) {
            return Ok(c.clone());
        }
        let Some(node) = self.processes.get(pname).copied() else {
            return Err(format!("no vrrp_track_process {pname}"));
        };
        let mut process = None;
        let mut fall = 1;
        let mut weight = 0;
        let mut later = Vec::new();
        for k in node.kids() {
            if self.tainted(k) {
                continue;
            }
            let arg = k.args.first().map(|w| w.text.clone()).unwrap_or_default();
            match k.keyword.as_str() {
                "process" => {
                    let base = arg.rsplit('/').next().unwrap_or(&arg).to_string();
                    if k.args.len() > 1 {
                        self.say(
                            k,
                            unsupported(
                                "process arguments: haagent matches the process name only",
                                "an exec check with pgrep -f",
                            ),
                        );
                    } else if base.is_empty() || base.len() > 15 {
                        self.bad_value(
                            k,
                            "a process name of at most 15 bytes (as in /proc/PID/comm)",
                        );
                    } else {
                        process = Some(base.clone());
                        later.push((k, mapped(format!("process = \"{base}\""))));
                    }
                }
                "quorum" => match int(&arg) {
                    Some(1) => later.push((
                        k,
                        mapped("one running process is enough (haagent's process check)"),
                    )),
                    _ => self.say(
                        k,
                        unsupported(
                            "haagent's process check wants one process, not a count",
                            "an exec check that counts them",
                        ),
                    ),
                },
                "quorum_max" => self.say(
                    k,
                    unsupported(
                        "haagent's process check has no upper bound",
                        "an exec check that counts them",
                    ),
                ),
                "delay" => match int(&arg) {
                    Some(s) if (0..=100).contains(&s) => {
                        fall = s.max(1);
                        later.push((k, approx(format!(
                            "fall = {fall} at interval_ms = 1000: haagent follows the process with a pidfd \
                             and fails the check at its exit, at once (keepalived waits {s} s after the exit \
                             event); fall counts the every-second lookups that find no process"
                        ))));
                    }
                    _ => self.bad_value(k, "a delay of 0..=100 s"),
                },
                "weight" => match int(&arg) {
                    Some(w) if (-254..=254).contains(&w) => {
                        weight = w;
                        later.push((
                            k,
                            mapped(format!(
                                "weight = {}",
                                if w == 0 {
                                    "\"fault\"".into()
                                } else {
                                    w.to_string()
                                }
                            )),
                        ));
                    }
                    _ => self.bad_value(k, "a weight of -254..=254"),
                },
                "terminate_delay" | "fork_delay" => later.push((
                    k,
                    approx(
                        "haagent fails the check at the process's exit (pidfd) and recovers after \
                         rise lookups; no separate delays",
                    ),
                )),
                "full_command" | "param_match" => self.say(
                    k,
                    unsupported(
                        "haagent matches the process name only",
                        "an exec check with pgrep -f",
                    ),
                ),
                _ => self.say(
                    k,
                    unsupported(
                        "a vrrp_track_process key the importer does not know",
                        "map it by hand",
                    ),
                ),
            }
        }
        let Some(process) = process else {
            self.say(
                node,
                unsupported(
                    format!("vrrp_track_process {pname} has no usable process"),
                    "give it a process name",
                ),
            );
            return Err(format!("vrrp_track_process {pname} has no usable process"));
        };
        let name = self.unique_name(pname);
        self.model.checks.push(Check {
            comment: format!("keepalived vrrp_track_process {pname}"),
            name: name.clone(),
            kind: "process",
            keys: vec![
                ("process", Val::Str(process)),
                ("interval_ms", Val::Int(1000)),
                ("fall", Val::Int(fall)),
                ("rise", Val::Int(1)),
                (
                    "weight",
                    if weight == 0 {
                        Val::Str("fault".into())
                    } else {
                        Val::Int(weight)
                    },
                ),
            ],
        });
        self.say(
            node,
            mapped(format!("[[check]] {name}, kind = \"process\"")),
        );
        for (k, o) in later {
            self.say(k, o);
        }
        self.made
            .insert(("process", pname.to_string()), name.clone());
        Ok(name)
    }
}
