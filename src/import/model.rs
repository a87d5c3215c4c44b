//! The haagent configuration the importer builds, and its TOML text (with comments).

use std::fmt::Write as _;

/// A TOML value as the importer writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    List(Vec<String>),
}

impl Val {
    fn render(&self) -> String {
        match self {
            Val::Str(s) => quote(s),
            Val::Int(i) => i.to_string(),
            Val::List(l) => list(l),
        }
    }
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML array of strings.
pub(crate) fn list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", inner.join(", "))
}

/// One `[[check]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) comment: String,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    /// The other keys, in order.
    pub(crate) keys: Vec<(&'static str, Val)>,
}

/// One VIP of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vip {
    pub(crate) address: String,
    pub(crate) interface: Option<String>,
    pub(crate) label: Option<String>,
    pub(crate) scope: Option<String>,
}

/// One `[[group.route]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) to: String,
    pub(crate) via: Option<String>,
    pub(crate) src: Option<String>,
    pub(crate) dev: Option<String>,
    pub(crate) metric: Option<i64>,
    pub(crate) table: Option<i64>,
}

/// A hook: a plain argv list, or the table form with `args = "keepalived"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    pub(crate) argv: Vec<String>,
    pub(crate) keepalived_args: bool,
}

/// One `[[group]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) comment: String,
    pub(crate) name: String,
    pub(crate) id: Option<i64>,
    pub(crate) vips: Vec<Vip>,
    pub(crate) priority: Option<i64>,
    /// The first instance's priority was refused (255): a later instance's priority is not
    /// taken instead (the first instance decides). Not written.
    pub(crate) priority_refused: bool,
    pub(crate) nopreempt: bool,
    pub(crate) preempt_delay_ms: Option<i64>,
    /// `(check name, weight override)`.
    pub(crate) track: Vec<(String, Option<Val>)>,
    /// `(hook key, hook)`, in [`HOOK_ORDER`].
    pub(crate) notify: Vec<(&'static str, Hook)>,
    pub(crate) routes: Vec<Route>,
}

/// The order hooks are written in.
pub(crate) const HOOK_ORDER: [&str; 6] = [
    "command",
    "master",
    "backup",
    "fault",
    "stop",
    "conflict_won",
];

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) source: String,
    pub(crate) name: Option<String>,
    pub(crate) interface: Option<String>,
    pub(crate) listen: Option<String>,
    pub(crate) peers: Vec<String>,
    pub(crate) advert_interval_ms: Option<i64>,
    pub(crate) garp: Vec<(&'static str, i64)>,
    pub(crate) checks: Vec<Check>,
    pub(crate) groups: Vec<Group>,
}

impl Model {
    /// The config file text.
    pub(crate) fn to_toml(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "# haagent configuration imported from {} by `haagent import keepalived`.\n\
             # Every keepalived keyword and what it became: the import report.\n\
             # Check it with `haagent check-config -c FILE`, then `haagent doctor -c FILE`.",
            self.source
        );
        t.push_str("\n[node]\n");
        match &self.name {
            Some(n) => {
                let _ = writeln!(t, "name = {}", quote(n));
            }
            None => t.push_str(
                "# name: none in the keepalived config (no router_id, no --name): the host name.\n",
            ),
        }
        match &self.interface {
            Some(i) => {
                let _ = writeln!(t, "interface = {}", quote(i));
            }
            None => t.push_str("# interface: none found in the keepalived config (required)\n"),
        }
        if let Some(l) = &self.listen {
            let _ = writeln!(t, "listen = {}", quote(l));
        }
        if self.peers.is_empty() {
            t.push_str(
                "\n# [[peer]]: none. keepalived found its peers by multicast, haagent needs their\n\
                 # addresses: import again with --peer ADDR for each other node.\n",
            );
        }
        for p in &self.peers {
            t.push_str(
                "\n# Known by address only (keepalived does not name its peers); add `name` = the\n\
                 # peer's certificate name to have it checked.\n[[peer]]\n",
            );
            let _ = writeln!(t, "address = {}", quote(p));
        }
        if let Some(ms) = self.advert_interval_ms {
            let _ = writeln!(t, "\n[election]\nadvert_interval_ms = {ms}");
        }
        if !self.garp.is_empty() {
            t.push_str("\n[garp]\n");
            for (k, v) in &self.garp {
                let _ = writeln!(t, "{k} = {v}");
            }
        }
        t.push_str(
            "\n# Certificates replace keepalived's authentication: ca.pem, NAME.pem and\n\
             # NAME-key.pem from `haagent certs init` / `haagent certs issue` (see the report).\n\
             [tls]\ndir = \"/etc/haagent/certs\"\n",
        );
        for c in &self.checks {
            let _ = writeln!(t, "\n# {}\n[[check]]", c.comment);
            let _ = writeln!(t, "name = {}", quote(&c.name));
            let _ = writeln!(t, "kind = {}", quote(c.kind));
            for (k, v) in &c.keys {
                let _ = writeln!(t, "{k} = {}", v.render());
            }
        }
        for g in &self.groups {
            let _ = writeln!(t, "\n# {}\n[[group]]", g.comment);
            let _ = writeln!(t, "name = {}", quote(&g.name));
            if let Some(id) = g.id {
                let _ = writeln!(t, "id = {id}");
            }
            let vips: Vec<String> = g.vips.iter().map(render_vip).collect();
            if vips.len() <= 1 {
                let _ = writeln!(t, "vips = [{}]", vips.join(", "));
            } else {
                let _ = writeln!(t, "vips = [\n    {},\n]", vips.join(",\n    "));
            }
            if let Some(p) = g.priority {
                let _ = writeln!(t, "priority = {p}");
            }
            if g.nopreempt {
                t.push_str("nopreempt = true\n");
            }
            if let Some(d) = g.preempt_delay_ms {
                let _ = writeln!(t, "preempt_delay_ms = {d}");
            }
            let track: Vec<String> = g
                .track
                .iter()
                .map(|(name, w)| match w {
                    None => quote(name),
                    Some(w) => format!("{{ check = {}, weight = {} }}", quote(name), w.render()),
                })
                .collect();
            let _ = writeln!(t, "track = [{}]", track.join(", "));
            if !g.notify.is_empty() {
                t.push_str("[group.notify]\n");
                for (k, h) in &g.notify {
                    if h.keepalived_args {
                        let _ = writeln!(
                            t,
                            "{k} = {{ command = {}, args = \"keepalived\" }}",
                            list(&h.argv)
                        );
                    } else {
                        let _ = writeln!(t, "{k} = {}", list(&h.argv));
                    }
                }
            }
            for r in &g.routes {
                t.push_str("[[group.route]]\n");
                let _ = writeln!(t, "to = {}", quote(&r.to));
                for (k, v) in [("via", &r.via), ("src", &r.src), ("dev", &r.dev)] {
                    if let Some(v) = v {
                        let _ = writeln!(t, "{k} = {}", quote(v));
                    }
                }
                if let Some(m) = r.metric {
                    let _ = writeln!(t, "metric = {m}");
                }
                if let Some(m) = r.table {
                    let _ = writeln!(t, "table = {m}");
                }
            }
        }
        t
    }
}

fn render_vip(v: &Vip) -> String {
    if v.interface.is_none() && v.label.is_none() && v.scope.is_none() {
        return quote(&v.address);
    }
    let mut parts = vec![format!("address = {}", quote(&v.address))];
    if let Some(i) = &v.interface {
        parts.push(format!("interface = {}", quote(i)));
    }
    if let Some(l) = &v.label {
        parts.push(format!("label = {}", quote(l)));
    }
    if let Some(s) = &v.scope {
        parts.push(format!("scope = {}", quote(s)));
    }
    format!("{{ {} }}", parts.join(", "))
}
