//! `[[group]]` tables: accepted shapes, each rule with its located message, fingerprints,
//! reload classification and the printed round trip.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::tests::{errors, parse};
use super::Setting;
use super::*;
use crate::health::Weight;
use crate::net::{RouteSpec, VipScope, VipSpec};

/// Two groups on two interfaces, with checks, hooks and routes.
pub(super) const GROUPS: &str = r#"[node]
name = "n1"
interface = "eth0"
priority = 100
listen = "192.0.2.11"

[[peer]]
name = "n2"
address = "192.0.2.12"

[election]
preempt_delay_ms = 500

[notify]
master = ["/usr/local/bin/node-master"]
timeout_ms = 3000

[[check]]
name = "nginx"
kind = "http"
url = "http://127.0.0.1/"

[[check]]
name = "disk"
kind = "file"
path = "/run/disk-ok"
weight = -10

[[group]]
name = "web-a"
id = 51
vips = ["192.0.2.100/24", { address = "198.51.100.100/24", interface = "eth1", label = "eth1:vip", scope = "global" }]
priority = 150
track = ["nginx", { check = "disk", weight = -20 }]
[group.notify]
master = ["/usr/local/bin/web-a-master"]
[[group.route]]
to = "default"
via = "198.51.100.1"
src = "198.51.100.100"
metric = 10
table = 100
[[group.route]]
to = "203.0.113.7/24"
via = "192.0.2.1"

[[group]]
name = "web-b"
vips = ["192.0.2.101/24"]
nopreempt = true
"#;

/// Node, peer and two checks: the part of a file the group tests do not vary.
const BASE: &str = r#"[node]
name = "n1"
interface = "eth0"
listen = "192.0.2.11"
[[peer]]
name = "n2"
address = "192.0.2.12"
[[check]]
name = "nginx"
kind = "http"
url = "http://127.0.0.1/"
[[check]]
name = "disk"
kind = "file"
path = "/run/disk-ok"
weight = -10
"#;

fn with_groups(groups: &str) -> String {
    format!("{BASE}{groups}")
}

/// `t.toml:LINE:COL` of the last occurrence of `needle` in `text` (the groups come last).
fn place_of(text: &str, needle: &str) -> String {
    let offset = text
        .rfind(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}"));
    let loc = super::error::Location::from_offset("t.toml", text, offset);
    loc.to_string()
}

/// Asserts that `text` fails with exactly one error, at `needle`, saying `message`.
#[track_caller]
fn only_error(text: &str, needle: &str, message: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got:\n{errs}");
    assert_eq!(
        errs.iter().next().unwrap().to_string(),
        format!("{}: {message}", place_of(text, needle))
    );
}

/// A VIP (`IpCidr`) or a route destination (`Ipv4Cidr`), by what the caller wants.
fn cidr<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn vip(s: &str, interface: &str) -> VipSpec {
    VipSpec {
        cidr: cidr(s),
        interface: interface.into(),
        label: None,
        scope: VipScope::Global,
    }
}

// ---------------------------------------------------------------- accepted files

#[test]
fn groups_load_with_every_key_and_the_node_defaults() {
    let c = parse(GROUPS).unwrap();
    assert!(!c.has_implicit_group());
    assert_eq!(c.groups.len(), 2);
    let a = &c.groups[0];
    assert_eq!(
        *a,
        GroupConfig {
            name: "web-a".into(),
            id: 51,
            mode: crate::config::GroupMode::L2,
            bird_socket: None,
            vips: vec![
                vip("192.0.2.100/24", "eth0"),
                VipSpec {
                    label: Some("eth1:vip".into()),
                    ..vip("198.51.100.100/24", "eth1")
                },
            ],
            priority: 150,
            preempt: true,
            preempt_delay: Duration::from_millis(500),
            track: vec![
                TrackCheck {
                    check: "nginx".into(),
                    weight: Weight::Fault
                },
                TrackCheck {
                    check: "disk".into(),
                    weight: Weight::Adjust(-20)
                },
            ],
            notify: NotifySettings {
                command: None,
                master: Some(Hook::plain(vec!["/usr/local/bin/web-a-master".into()])),
                backup: None,
                fault: None,
                stop: None,
                claim_blocked: None,
                conflict_won: None,
                // Not given in [group.notify]: the node's [notify] timeout_ms.
                timeout: Duration::from_millis(3000),
            },
            routes: vec![
                RouteSpec {
                    to: cidr("0.0.0.0/0"),
                    via: Some(Ipv4Addr::new(198, 51, 100, 1).into()),
                    src: Some(Ipv4Addr::new(198, 51, 100, 100).into()),
                    // The interface of the VIP whose subnet holds `via`.
                    dev: "eth1".into(),
                    metric: Some(10),
                    table: Some(100),
                },
                RouteSpec {
                    // Normalised to the network address.
                    to: cidr("203.0.113.0/24"),
                    via: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
                    src: None,
                    dev: "eth0".into(),
                    metric: None,
                    table: None,
                },
            ],
            mover: None,
        }
    );
    assert_eq!(a.interfaces(), vec!["eth0", "eth1"]);
    // web-b: everything from the node.
    let b = &c.groups[1];
    assert_eq!(b.id, group_id_from_name("web-b"));
    assert_eq!(b.priority, 100, "[node] priority");
    assert!(!b.preempt, "nopreempt = true");
    assert_eq!(b.preempt_delay, Duration::from_millis(500), "[election]");
    assert_eq!(
        b.track,
        vec![
            TrackCheck {
                check: "nginx".into(),
                weight: Weight::Fault
            },
            TrackCheck {
                check: "disk".into(),
                weight: Weight::Adjust(-10)
            },
        ],
        "every check with its own weight"
    );
    assert_eq!(b.notify, c.notify, "the node's [notify]");
    assert!(b.routes.is_empty());
    // Config.vips: every group's VIPs in group order.
    assert_eq!(
        c.vips,
        vec![
            cidr("192.0.2.100/24"),
            cidr("198.51.100.100/24"),
            cidr("192.0.2.101/24")
        ]
    );
    assert_eq!(c.node.priority, 100);
}

#[test]
fn without_groups_and_in_quick_mode_there_is_one_implicit_group() {
    let c = parse(super::tests::MINIMAL).unwrap();
    assert!(c.has_implicit_group());
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].name, LEGACY_GROUP);
    assert_eq!(c.groups[0].id, group_id_from_name(LEGACY_GROUP));
    assert_eq!(c.groups[0].vips, vec![vip("192.0.2.100/24", "eth0")]);
    let q = from_flags_with_host(&super::tests::quick_flags(), Some("n1".into())).unwrap();
    assert!(q.has_implicit_group());
    assert_eq!(q.groups[0].cidrs(), q.vips);
}

#[test]
fn a_group_may_track_nothing_and_scope_and_dev_are_read() {
    let c = parse(&with_groups(
        r#"[[group]]
name = "g"
vips = [{ address = "192.0.2.100/24", scope = "link" }, { address = "192.0.2.101/32", interface = "eth1", scope = "host", label = "eth1" }]
track = []
[[group.route]]
to = "203.0.113.0/24"
dev = "eth2"
[[group.route]]
to = "198.51.100.0/24"
via = "203.0.113.1"
"#,
    ))
    .unwrap();
    let g = &c.groups[0];
    assert!(g.track.is_empty());
    assert_eq!(g.vips[0].scope, VipScope::Link);
    assert_eq!(g.vips[0].interface, "eth0");
    assert_eq!(g.vips[1].scope, VipScope::Host);
    assert_eq!(g.vips[1].label.as_deref(), Some("eth1"));
    assert_eq!(g.routes[0].dev, "eth2");
    // `via` on no VIP's subnet: the group's first VIP's interface.
    assert_eq!(g.routes[1].dev, "eth0");
}

#[test]
fn flags_for_the_node_become_group_defaults() {
    let o = Overrides {
        priority: Some(77),
        nopreempt: true,
        ..Overrides::default()
    };
    let c = super::tests::parse_with(
        &with_groups("[[group]]\nname = \"g\"\nvips = [\"192.0.2.100/24\"]\n"),
        &o,
    )
    .unwrap();
    assert_eq!((c.groups[0].priority, c.groups[0].preempt), (77, false));
}

// ---------------------------------------------------------------- mistakes, located

#[test]
fn group_name_rules() {
    let g = |name: &str| {
        with_groups(&format!(
            "[[group]]\nname = {name}\nvips = [\"192.0.2.100/24\"]\n"
        ))
    };
    only_error(
        &g("\"-web\""),
        "\"-web\"",
        "group name `-web` starts with `-`",
    );
    only_error(
        &g("\"web a\""),
        "\"web a\"",
        "group name `web a` contains ' '; use only letters A-Z a-z, digits, `.`, `_`, `-`",
    );
    let long = format!("\"{}\"", "a".repeat(33));
    only_error(
        &g(&long),
        &long,
        &format!("group name `{}` is longer than 32 bytes", "a".repeat(33)),
    );
    only_error(&g("\"\""), "\"\"\nvips", "group name is empty");
    only_error(
        &g("\"default\""),
        "\"default\"",
        "group name `default` is reserved for the one group of a config without [[group]] tables; choose another name",
    );
    let text = with_groups("[[group]]\nvips = [\"192.0.2.100/24\"]\n");
    only_error(
        &text,
        "[[group]]",
        "[[group]] has no `name` (required, e.g. name = \"web-a\")",
    );
    let text = with_groups(
        "[[group]]\nname = \"web\"\nvips = [\"192.0.2.100/24\"]\n[[group]]\nname = \"web\" # again\nvips = [\"192.0.2.101/24\"]\n",
    );
    let line = super::tests::line_of(&text, "name = \"web\"");
    only_error(
        &text,
        "\"web\" # again",
        &format!("duplicate group name `web` (first at line {line})"),
    );
}

#[test]
fn group_ids_are_in_range_and_unique() {
    let g = |id: &str| {
        with_groups(&format!(
            "[[group]]\nname = \"g\"\nid = {id}\nvips = [\"192.0.2.100/24\"]\n"
        ))
    };
    only_error(&g("0"), "0\n", "group id must be 1..=65535, not 0");
    only_error(
        &g("65536"),
        "65536",
        "group id must be 1..=65535, not 65536",
    );
    // Explicit against explicit.
    let text = with_groups(
        "[[group]]\nname = \"a\"\nid = 7\nvips = [\"192.0.2.100/24\"]\n[[group]]\nname = \"b\"\nid = 7 # again\nvips = [\"192.0.2.101/24\"]\n",
    );
    let line = super::tests::line_of(&text, "id = 7");
    only_error(
        &text,
        "7 # again",
        &format!(
            "group `b` has id 7, the same id as group `a` (line {line}); give one of them another \
             explicit `id` (1..=65535); every node must use the same id for a group"
        ),
    );
    // A name's default id against an explicit one.
    let id = group_id_from_name("web-b");
    let text = with_groups(&format!(
        "[[group]]\nname = \"x\"\nid = {id}\nvips = [\"192.0.2.100/24\"]\n[[group]]\nname = \"web-b\"\nvips = [\"192.0.2.101/24\"]\n"
    ));
    let line = super::tests::line_of(&text, &format!("id = {id}"));
    only_error(
        &text,
        "\"web-b\"",
        &format!(
            "group `web-b` gets id {id} from its name, the same id as group `x` (line {line}); \
             give one of them another explicit `id` (1..=65535); every node must use the same id \
             for a group"
        ),
    );
}

#[test]
fn vip_rules() {
    let g = |vips: &str| with_groups(&format!("[[group]]\nname = \"g\"\nvips = {vips}\n"));
    only_error(
        &g("[]"),
        "[]",
        "no VIPs: `vips` needs at least one ADDR/PREFIX, e.g. [\"192.0.2.100/24\"]",
    );
    only_error(
        &with_groups("[[group]]\nname = \"g\"\n"),
        "[[group]]",
        "[[group]] `g` has no `vips` (required, e.g. vips = [\"192.0.2.100/24\"])",
    );
    only_error(
        &g("[\"192.0.2.100\"]"),
        "\"192.0.2.100\"",
        "bad VIP: `192.0.2.100` is not in address/prefix form (e.g. 192.0.2.100/24 or \
         2001:db8::100/64)",
    );
    only_error(
        &g("[\"192.0.2.0/24\"]"),
        "\"192.0.2.0/24\"",
        "VIP `192.0.2.0/24` is the network address of its /24 subnet",
    );
    only_error(
        &g("[\"192.0.2.11/24\"]"),
        "\"192.0.2.11/24\"",
        "VIP `192.0.2.11/24` is this node's own listen address",
    );
    let text = g("[\"192.0.2.100/24\", \"192.0.2.100/32\"]");
    let line = super::tests::line_of(&text, "vips =");
    only_error(
        &text,
        "\"192.0.2.100/32\"",
        &format!("duplicate VIP `192.0.2.100` (first at line {line})"),
    );
    only_error(
        &g("[{ interface = \"eth1\" }]"),
        "{ interface",
        "this `vips` entry has no `address` (required, e.g. { address = \"192.0.2.100/24\", interface = \"eth1\" })",
    );
    only_error(
        &g("[{ address = \"192.0.2.100/24\", interface = \"eth0:1\" }]"),
        "\"eth0:1\"",
        "interface name `eth0:1` contains ':' (labels like eth0:1 are not interfaces)",
    );
    only_error(
        &g("[{ address = \"192.0.2.100/24\", label = \"eth0:0123456789a\" }]"),
        "\"eth0:0123456789a\"",
        "label `eth0:0123456789a` is longer than 15 bytes (the kernel's limit)",
    );
    only_error(
        &g("[{ address = \"192.0.2.100/24\", interface = \"eth1\", label = \"eth0:vip\" }]"),
        "\"eth0:vip\"",
        "label `eth0:vip` does not start with its interface name and a colon, as the kernel tools require: write e.g. \"eth1:vip\"",
    );
    only_error(
        &g("[{ address = \"192.0.2.100/24\", label = \"eth0x\" }]"),
        "\"eth0x\"",
        "label `eth0x` does not start with its interface name and a colon, as the kernel tools require: write e.g. \"eth0:vip\"",
    );
    only_error(
        &g("[{ address = \"192.0.2.100/24\", scope = \"site\" }]"),
        "\"site\"",
        "unknown VIP scope `site`: use \"global\", \"link\" or \"host\"",
    );
    only_error(
        &g("[{ address = \"192.0.2.100/24\", lable = \"eth0:a\" }]"),
        "lable",
        "[[group]] vips: unknown field `lable`, expected one of `address`, `interface`, `label`, `scope`",
    );
    // The list names the sub-tables too (read apart from the group's own keys).
    only_error(
        &with_groups("[[group]]\nname = \"web-a\"\nvips = [\"192.0.2.100/24\"]\nmovr = 1\n"),
        "movr",
        "[[group]]: unknown field `movr`, expected one of `name`, `id`, `mode`, `bird_socket`, `vips`, \
         `priority`, `preempt`, `nopreempt`, `preempt_delay_ms`, `track`, `notify`, `mover`, `route`",
    );
    only_error(
        &g("[5]"),
        "5]",
        "[[group]] vips: invalid type: integer `5`, expected \"ADDR/PREFIX\" or a table { address, interface, label, scope }",
    );
}

#[test]
fn a_vip_belongs_to_one_group() {
    let text = with_groups(
        "[[group]]\nname = \"a\"\nvips = [\"192.0.2.100/24\"]\n[[group]]\nname = \"b\"\nvips = [\"192.0.2.100/32\"]\n",
    );
    let line = super::tests::line_of(&text, "\"192.0.2.100/24\"");
    only_error(
        &text,
        "\"192.0.2.100/32\"",
        &format!(
            "VIP `192.0.2.100` is already in group `a` (line {line}); a VIP belongs to one group"
        ),
    );
}

#[test]
fn at_most_eight_interfaces_and_sixty_four_groups() {
    let entries: Vec<String> = (0..9)
        .map(|i| {
            format!(
                "{{ address = \"192.0.2.{}/24\", interface = \"eth{i}\" }}",
                100 + i
            )
        })
        .collect();
    let text = with_groups(&format!(
        "[[group]]\nname = \"g\"\nvips = [{}]\n",
        entries.join(", ")
    ));
    only_error(
        &text,
        "{ address = \"192.0.2.108/24\"",
        "interface `eth8` would be this node's 9th VIP interface; the VIPs of all groups may use \
         at most 8 interfaces (eth0, eth1, eth2, eth3, eth4, eth5, eth6, eth7), because an advert \
         carries at most 8 interface MACs",
    );
    let groups: String = (0..49)
        .map(|i| {
            format!(
                "[[group]] # {i}\nname = \"g{i}\"\nvips = [\"198.51.100.{}/24\"]\n",
                i + 1
            )
        })
        .collect();
    let text = with_groups(&groups);
    only_error(
        &text,
        "[[group]] # 48",
        "too many groups: at most 48 [[group]] tables (this is number 49)",
    );
}

#[test]
fn priority_preemption_and_delay_are_checked_per_group() {
    let g = |extra: &str| {
        with_groups(&format!(
            "[[group]]\nname = \"g\"\nvips = [\"192.0.2.100/24\"]\n{extra}\n"
        ))
    };
    only_error(
        &g("priority = 255"),
        "255",
        "group priority must be 1..=254, not 255",
    );
    only_error(
        &g("preempt_delay_ms = -1"),
        "-1",
        "preempt_delay_ms must be 0..=3600000, not -1",
    );
    let text = g("preempt = true\nnopreempt = true");
    let line = super::tests::line_of(&text, "preempt = true");
    only_error(
        &text,
        "true\n",
        &format!("`nopreempt = true` contradicts `preempt = true` (line {line}); keep one of them"),
    );
}

#[test]
fn track_names_defined_checks() {
    let g = |track: &str| {
        with_groups(&format!(
            "[[group]]\nname = \"g\"\nvips = [\"192.0.2.100/24\"]\ntrack = {track}\n"
        ))
    };
    only_error(
        &g("[\"ngnix\"]"),
        "\"ngnix\"",
        "track: no check named `ngnix`; the defined checks are `disk`, `nginx`",
    );
    only_error(
        &g("[{ check = \"dsk\", weight = -5 }]"),
        "\"dsk\"",
        "track: no check named `dsk`; the defined checks are `disk`, `nginx`",
    );
    let text = g("[\"nginx\", { check = \"nginx\", weight = -5 }]");
    let line = super::tests::line_of(&text, "track =");
    only_error(
        &text,
        "\"nginx\", weight",
        &format!("check `nginx` is tracked twice (first at line {line})"),
    );
    only_error(
        &g("[{ check = \"disk\", weight = -300 }]"),
        "-300",
        "track weight must be -254..=254 or \"fault\", not -300",
    );
    only_error(
        &g("[{ check = \"disk\", weight = \"heavy\" }]"),
        "\"heavy\"",
        "track weight must be an integer -254..=254 or \"fault\", not \"heavy\"",
    );
    only_error(
        &g("[{ weight = -5 }]"),
        "{ weight",
        "this `track` entry has no `check` (required, e.g. { check = \"nginx\", weight = -20 })",
    );
    let text = "[node]\nname = \"n1\"\ninterface = \"eth0\"\n[[peer]]\naddress = \"192.0.2.12\"\n\
                [[group]]\nname = \"g\"\nvips = [\"192.0.2.100/24\"]\ntrack = [\"nginx\"]\n";
    only_error(
        text,
        "\"nginx\"",
        "track: no check named `nginx`; no [[check]] tables are defined",
    );
    // A `fault` weight and 0 mean fault, as in [[check]].
    let c = parse(&g(
        "[{ check = \"disk\", weight = 0 }, { check = \"nginx\", weight = 5 }]",
    ))
    .unwrap();
    assert_eq!(c.groups[0].track[0].weight, Weight::Fault);
    assert_eq!(c.groups[0].track[1].weight, Weight::Adjust(5));
}

#[test]
fn group_notify_has_the_rules_of_notify() {
    let g = |notify: &str| {
        with_groups(&format!(
            "[[group]]\nname = \"g\"\nvips = [\"192.0.2.100/24\"]\n[group.notify]\n{notify}\n"
        ))
    };
    only_error(
        &g("master = []"),
        "[]",
        "notify master is an empty list; give the program and its arguments, e.g. [\"/usr/local/bin/on-transition\"]",
    );
    only_error(
        &g("mastr = [\"/bin/true\"]"),
        "mastr",
        "[group.notify]: unknown field `mastr`, expected one of `command`, `master`, `backup`, `fault`, `stop`, `claim_blocked`, `conflict_won`, `timeout_ms`",
    );
    only_error(
        &g("timeout_ms = 0"),
        "0\n",
        "notify timeout_ms must be 1..=600000, not 0",
    );
    let c = parse(&g("timeout_ms = 100")).unwrap();
    assert_eq!(c.groups[0].notify.timeout, Duration::from_millis(100));
    assert_eq!(
        c.groups[0].notify.master, None,
        "[group.notify] replaces [notify]"
    );
}

#[test]
fn route_rules() {
    let g = |route: &str| {
        with_groups(&format!(
            "[[group]]\nname = \"g\"\nvips = [\"192.0.2.100/24\", {{ address = \"198.51.100.100/24\", interface = \"eth1\" }}]\n[[group.route]]\n{route}\n"
        ))
    };
    only_error(
        &g("via = \"192.0.2.1\""),
        "[[group.route]]",
        "[[group.route]] has no `to` (required: \"default\" or a destination such as \"203.0.113.0/24\")",
    );
    only_error(
        &g("to = \"203.0.113.0\""),
        "\"203.0.113.0\"",
        "bad route `to`: `203.0.113.0` is not in address/prefix form (e.g. 192.0.2.100/24); use \"default\" or ADDR/PREFIX",
    );
    only_error(
        &g("to = 5"),
        "5\n",
        "[[group.route]] to: invalid type: integer `5`, expected a string",
    );
    only_error(
        &g("to = \"default\"\nvia = \"224.0.0.1\""),
        "\"224.0.0.1\"",
        "route via `224.0.0.1` is not a unicast address (unspecified, broadcast, multicast or loopback)",
    );
    only_error(
        &g("to = \"default\"\nvia = \"192.0.2.100\""),
        "\"192.0.2.100\"\n",
        "route via `192.0.2.100` is a VIP of group `g`; the gateway must be another machine (e.g. the router)",
    );
    only_error(
        &g("to = \"default\"\nvia = \"gw\""),
        "\"gw\"",
        "route via must be an IPv4 address (e.g. \"198.51.100.1\"), not `gw`",
    );
    only_error(
        &g("to = \"default\"\nsrc = \"192.0.2.11\""),
        "\"192.0.2.11\"\n",
        "route src `192.0.2.11` is not one of group `g`'s VIPs (192.0.2.100, 198.51.100.100): a \
         route with `src` can only be installed while that address is on this host, and this node \
         holds the group's addresses only while it is master; use one of the group's VIPs or \
         remove `src`",
    );
    only_error(
        &g("to = \"default\"\ndev = \"eth 1\""),
        "\"eth 1\"",
        "interface name `eth 1` contains ' ' (labels like eth0:1 are not interfaces)",
    );
    only_error(
        &g("to = \"default\"\nmetric = -1"),
        "-1",
        "route metric must be 0..=4294967295, not -1",
    );
    only_error(
        &g("to = \"default\"\ntable = 0"),
        "0\n",
        "route table must be 1..=4294967295, not 0",
    );
    only_error(
        &g("to = \"default\"\ngateway = \"192.0.2.1\""),
        "gateway",
        "[[group.route]]: unknown field `gateway`, expected one of `to`, `via`, `src`, `dev`, `metric`, `table`",
    );
    // The kernel's key: destination (as a network), table, metric.
    let text = g(
        "to = \"203.0.113.0/24\"\n[[group.route]] # again\nto = \"203.0.113.9/24\"\ntable = 254",
    );
    let line = super::tests::line_of(&text, "[[group.route]]");
    only_error(
        &text,
        "[[group.route]] # again",
        &format!(
            "a route to 203.0.113.0/24 in table 254 with metric 0 is already defined in this group \
             (line {line}); the kernel keeps one route per destination, table and metric"
        ),
    );
    let text = with_groups(
        "[[group]]\nname = \"a\"\nvips = [\"192.0.2.100/24\"]\n[[group.route]]\nto = \"default\"\n\
         [[group]]\nname = \"b\"\nvips = [\"192.0.2.101/24\"]\n[[group.route]] # b\nto = \"0.0.0.0/0\"\n",
    );
    let line = super::tests::line_of(&text, "[[group.route]]");
    only_error(
        &text,
        "[[group.route]] # b",
        &format!(
            "a route to default in table 254 with metric 0 is already defined in group `a` (line \
             {line}); the kernel keeps one route per destination, table and metric"
        ),
    );
    // Another metric is another route.
    parse(&g("to = \"default\"\nvia = \"192.0.2.1\"\n[[group.route]]\nto = \"default\"\nvia = \"198.51.100.1\"\nmetric = 100")).unwrap();
}

#[test]
fn vip_addresses_and_the_vip_flag_are_refused_beside_groups() {
    let text = with_groups("[vip]\naddresses = [\"192.0.2.100/24\"]\n[[group]]\nname = \"g\"\nvips = [\"192.0.2.101/24\"]\n");
    only_error(
        &text,
        "[\"192.0.2.100/24\"]",
        "`addresses` cannot be used together with [[group]] tables: move `addresses` into a \
         [[group]]'s `vips` (vips = [...]); [vip] keeps lease_ms and the probe_* keys for every group",
    );
    let text = with_groups("[[group]]\nname = \"g\"\nvips = [\"192.0.2.101/24\"]\n");
    let o = Overrides {
        vips: vec!["192.0.2.100/24".into()],
        ..Overrides::default()
    };
    let errs = super::tests::parse_with(&text, &o).unwrap_err();
    assert_eq!(
        errs.to_string(),
        "--vip: --vip cannot be used with [[group]] tables in the config file: add the address \
         to a [[group]]'s `vips` instead"
    );
    only_error(
        &format!("group = 5\n{BASE}"),
        "5\n",
        "`group` must be an array of tables: write [[group]] for each group",
    );
}

#[test]
fn every_group_problem_is_reported_together() {
    let text = with_groups(
        "[[group]]\nname = \"-a\"\nid = 0\nvips = [\"192.0.2.0/24\"]\npriority = 0\ntrack = [\"x\"]\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 5, "{errs}");
}

// ---------------------------------------------------------------- fingerprints

#[test]
fn the_v1_fingerprint_of_a_file_without_groups_is_unchanged() {
    // The words a v1 peer computes for MINIMAL: SHA-256 of "haagent", "192.0.2.100/24",
    // "50" and "off", first 4 bytes big endian (fixed here, so any change shows).
    let c = parse(super::tests::MINIMAL).unwrap();
    let f = c.fingerprint();
    assert_eq!(f.names, ["cluster", "vips", "advert_interval_ms", "quorum"]);
    assert_eq!(f.words, V1_MINIMAL_WORDS, "{:08x?}", f.words);
    // The implicit group's VIP word is the v1 `vips` word.
    assert_eq!(c.groups[0].vips_fingerprint(), f.words[1]);
}

const V1_MINIMAL_WORDS: [u32; 4] = [0x4d1b_ce72, 0xc5d8_3f13, 0x1a65_6259, 0xb4dc_66dd];

#[test]
fn the_v2_fingerprint_covers_the_group_set_and_each_group_its_vips() {
    let c = parse(GROUPS).unwrap();
    let id_b = group_id_from_name("web-b");
    assert_eq!(
        c.fingerprint_v2_settings(),
        vec![
            ("cluster", "haagent".to_string()),
            ("groups", format!("51:web-a,{id_b}:web-b")),
            ("advert_interval_ms", "50".to_string()),
            ("quorum", "off".to_string()),
        ]
    );
    let f = c.fingerprint_v2();
    assert_eq!(
        f.names,
        ["cluster", "groups", "advert_interval_ms", "quorum"]
    );
    // Priorities, routes, hooks and the group order are node-local.
    let mut other = c.clone();
    other.groups.reverse();
    other.groups[0].priority = 1;
    other.groups[1].routes.clear();
    assert_eq!(other.fingerprint_v2(), f);
    // Renaming a group is drift in `groups`.
    let mut renamed = c.clone();
    renamed.groups[1].name = "web-c".into();
    assert_eq!(f.differences(&renamed.fingerprint_v2().words), ["groups"]);
    // A group's VIP word: same text as v1's `vips` word, sorted, interfaces left out.
    let legacy = parse(&super::tests::MINIMAL.replace(
        "addresses = [\"192.0.2.100/24\"]",
        "addresses = [\"198.51.100.100/24\", \"192.0.2.100/24\"]",
    ))
    .unwrap();
    assert_eq!(
        c.groups[0].vips_fingerprint(),
        legacy.fingerprint().words[1]
    );
    assert_ne!(
        c.groups[0].vips_fingerprint(),
        c.groups[1].vips_fingerprint()
    );
    let mut moved = c.groups[0].clone();
    moved.vips[0].interface = "eth5".into();
    moved.vips.reverse();
    assert_eq!(moved.vips_fingerprint(), c.groups[0].vips_fingerprint());
}

// ---------------------------------------------------------------- reload

fn changed(old: &Config, f: &dyn Fn(&mut Config)) -> Vec<String> {
    let mut new = old.clone();
    f(&mut new);
    old.election_changes(&new)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn group_changes_are_named_with_their_group() {
    let old = parse(GROUPS).unwrap();
    assert!(old.election_changes(&old).is_empty());
    let id_b = group_id_from_name("web-b");
    assert_eq!(
        changed(&old, &|c| c.groups[0].priority = 120),
        ["group web-a priority 150 → 120"]
    );
    assert_eq!(
        changed(&old, &|c| c.groups[1].preempt = true),
        ["group web-b preempt false → true"]
    );
    assert_eq!(
        changed(&old, &|c| c.groups[1].preempt_delay = Duration::ZERO),
        ["group web-b preempt_delay_ms 500 → 0"]
    );
    assert_eq!(
        changed(&old, &|c| c.groups[1].vips[0].cidr = cidr("192.0.2.102/24")),
        ["group web-b vips 192.0.2.101/24 dev eth0 → 192.0.2.102/24 dev eth0"]
    );
    assert_eq!(
        changed(&old, &|c| c.groups[1].vips[0].interface = "eth1".into()),
        [
            "group web-b interface eth0 → eth1",
            "group web-b vips 192.0.2.101/24 dev eth0 → 192.0.2.101/24 dev eth1"
        ]
    );
    assert_eq!(
        changed(&old, &|c| c.groups[0].routes.truncate(1)),
        [
            "group web-a routes 0.0.0.0/0 via 198.51.100.1 dev eth1 src 198.51.100.100 metric 10 \
          table 100; 203.0.113.0/24 via 192.0.2.1 dev eth0 → 0.0.0.0/0 via 198.51.100.1 dev eth1 \
          src 198.51.100.100 metric 10 table 100"
        ]
    );
    assert_eq!(
        changed(&old, &|c| c.groups[1].track.pop().map(drop).unwrap_or(())),
        ["group web-b track disk -10, nginx fault → nginx fault"]
    );
    assert_eq!(
        changed(&old, &|c| c.groups[1].notify.master = None),
        ["group web-b notify master /usr/local/bin/node-master, timeout_ms 3000 → timeout_ms 3000"]
    );
    assert_eq!(
        changed(&old, &|c| c.groups.truncate(1)),
        [format!("groups 51:web-a, {id_b}:web-b → 51:web-a")]
    );
    // The node-wide defaults are not compared themselves: their effect is in the groups.
    assert!(changed(&old, &|c| c.node.priority = 1).is_empty());
    assert!(changed(&old, &|c| c.election.preempt = false).is_empty());
    // Reordering is no change.
    assert!(changed(&old, &|c| c.groups.reverse()).is_empty());
}

#[test]
fn a_reload_applies_group_settings_live_and_waits_for_a_restart_for_the_rest() {
    let old = parse(GROUPS).unwrap();
    let mut new = old.clone();
    new.groups[0].priority = 120;
    new.groups[0].routes.clear();
    new.groups[0].track.clear();
    new.groups[1].vips[0].interface = "eth1".into();
    new.groups[1].notify.master = None;
    new.groups.push(GroupConfig {
        name: "web-c".into(),
        id: 9,
        mode: crate::config::GroupMode::L2,
        bird_socket: None,
        ..new.groups[1].clone()
    });
    let changes = old.election_changes(&new);
    let settings: Vec<_> = changes
        .iter()
        .map(|c| (c.group.as_deref(), c.setting, c.setting.applies_live()))
        .collect();
    assert_eq!(
        settings,
        vec![
            (None, Setting::Groups, false),
            (Some("web-a"), Setting::Priority, true),
            (Some("web-a"), Setting::Routes, false),
            (Some("web-a"), Setting::Track, true),
            (Some("web-b"), Setting::Interface, false),
            (Some("web-b"), Setting::Vips, true),
            (Some("web-b"), Setting::Notify, true),
        ]
    );
    let applied = new.applied_over(&old);
    let left: Vec<_> = old
        .election_changes(&applied)
        .into_iter()
        .map(|c| (c.group, c.setting))
        .collect();
    assert_eq!(
        left,
        vec![
            (Some("web-a".to_string()), Setting::Priority),
            (Some("web-a".to_string()), Setting::Track),
            (Some("web-b".to_string()), Setting::Notify),
        ]
    );
    // What stayed as running: the group set, web-a's routes, web-b's VIPs (interfaces).
    assert_eq!(applied.groups.len(), 2);
    assert_eq!(applied.groups[0].routes, old.groups[0].routes);
    assert_eq!(applied.groups[1].vips, old.groups[1].vips);
    assert_eq!(applied.vips, old.vips);
    // VIPs that stay on their interfaces apply, and Config.vips follows.
    let mut new = old.clone();
    new.groups[1].vips[0].cidr = cidr("192.0.2.102/24");
    let applied = new.applied_over(&old);
    assert_eq!(applied.groups[1].vips, new.groups[1].vips);
    assert_eq!(applied.vips[2], cidr("192.0.2.102/24"));
}

#[test]
fn moving_from_one_implicit_group_to_group_tables_waits_for_a_restart() {
    let old = parse(super::tests::MINIMAL).unwrap();
    let new = parse(&with_groups(
        "[[group]]\nname = \"g\"\nvips = [\"192.0.2.100/24\"]\npriority = 20\n",
    ))
    .unwrap();
    let changes = old.election_changes(&new);
    assert!(
        changes
            .iter()
            .any(|c| c.setting == Setting::Groups && !c.setting.applies_live()),
        "{changes:?}"
    );
    let applied = new.applied_over(&old);
    assert!(applied.has_implicit_group());
    assert!(old
        .election_changes(&applied)
        .iter()
        .all(|c| c.setting.applies_live()));
    assert_eq!(applied.groups[0].priority, old.groups[0].priority);
    // And back.
    let applied = old.applied_over(&new);
    assert_eq!(applied.groups, new.groups);
}

#[test]
fn without_groups_a_reload_reports_as_before() {
    let old = parse(super::tests::FULL).unwrap();
    assert_eq!(
        changed(&old, &|c| c.node.priority = 120),
        ["priority 150 → 120"]
    );
    assert!(changed(&old, &|c| c.notify.master = None).is_empty());
    let mut new = old.clone();
    new.node.interface = "eth9".into();
    new.node.priority = 7;
    let applied = new.applied_over(&old);
    assert_eq!(
        applied.groups[0].vips[0].interface, "eth0",
        "interface waits"
    );
    assert_eq!(applied.groups[0].priority, 7);
}

// ---------------------------------------------------------------- check-config

#[test]
fn groups_print_as_group_tables_and_load_back_the_same() {
    let c = parse(GROUPS).unwrap();
    let text = c.to_toml_string();
    assert!(
        text.contains("[[group]]\nname = \"web-a\"\nid = 51\n"),
        "{text}"
    );
    assert!(
        text.contains("track = [\"nginx\", { check = \"disk\", weight = -20 }]"),
        "{text}"
    );
    assert!(text.contains("[group.notify]"), "{text}");
    assert!(
        text.contains("[[group.route]]\nto = \"default\"\n"),
        "{text}"
    );
    assert!(!text.contains("addresses"), "{text}");
    let back = super::from_toml_with_host(&text, "printed", &Overrides::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(
        back,
        Config {
            source: "printed".into(),
            ..c
        }
    );
    // Tables only in `vips`, an empty `track`, scopes and labels print inline and load back.
    let c = parse(&with_groups(
        "[[group]]\nname = \"g\"\nvips = [{ address = \"192.0.2.100/24\", label = \"eth0:a\" }, \
         { address = \"192.0.2.101/32\", interface = \"eth1\", scope = \"host\" }]\ntrack = []\n",
    ))
    .unwrap();
    let text = c.to_toml_string();
    assert!(
        text.contains(
            "vips = [{ address = \"192.0.2.100/24\", interface = \"eth0\", label = \"eth0:a\", \
             scope = \"global\" }, { address = \"192.0.2.101/32\", interface = \"eth1\", scope = \
             \"host\" }]\n"
        ),
        "{text}"
    );
    assert!(text.contains("track = []\n"), "{text}");
    let back = super::from_toml_with_host(&text, "t.toml", &Overrides::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(back, c);
    // Without groups: no [[group]] table, as before.
    let c = parse(super::tests::FULL).unwrap();
    assert!(!c.to_toml_string().contains("[[group]]"));
}

/// The largest advert the limits allow (the longest node name, 8 MACs, every group, a
/// handover target in one entry) fits in a QUIC datagram on the smallest path QUIC allows
/// (1200-byte packets; quinn keeps about 1150 of them for the datagram).
#[test]
fn the_largest_advert_the_limits_allow_fits_in_one_quic_datagram() {
    use crate::wire::{self, GroupEntry, NodeAdvert, State};
    let name = "n".repeat(wire::MAX_NAME_LEN);
    let groups = (0..limits::MAX_GROUPS)
        .map(|i| GroupEntry {
            id: u16::try_from(i + 1).unwrap_or(1),
            state: State::Master,
            priority: 254,
            epoch: u64::MAX,
            vips_fingerprint: u32::MAX,
            handover_to: (i == 0).then(|| name.clone()),
        })
        .collect();
    let advert = NodeAdvert {
        name: name.clone(),
        advert_interval_ms: 50,
        seq: u64::MAX,
        fingerprint: [u32::MAX; 4],
        macs: vec![[2, 0, 0, 0, 0, 1]; limits::MAX_INTERFACES],
        groups,
        heard: Some(u64::MAX),
    };
    assert!(advert.validate().is_ok());
    let len = wire::encode_v2(&advert).len();
    assert!(len <= 1100, "{len} bytes");
}

/// `[group.notify]` takes the table form of a hook too, and prints it so that it loads back.
#[test]
fn group_hook_tables_load_back_the_same() {
    let text = GROUPS.replace(
        "[group.notify]\nmaster = [\"/usr/local/bin/web-a-master\"]\n",
        "[group.notify]\nmaster = [\"/usr/local/bin/web-a-master\"]\n\
         command = { command = [\"/etc/keepalived/notify.sh\", \"-v\"], args = \"keepalived\" }\n\
         conflict_won = { command = [\"/usr/local/bin/won\"], args = \"keepalived\" }\n",
    );
    assert_ne!(text, GROUPS);
    let c = parse(&text).unwrap();
    assert_eq!(
        c.groups[0].notify.command,
        Some(Hook {
            argv: vec!["/etc/keepalived/notify.sh".into(), "-v".into()],
            args: HookArgs::Keepalived
        })
    );
    assert_eq!(
        c.groups[0].notify.conflict_won.as_ref().map(|h| h.args),
        Some(HookArgs::Keepalived)
    );
    let printed = c.to_toml_string();
    let back = super::from_toml_with_host(&printed, "printed", &Overrides::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n---\n{printed}"));
    assert_eq!(back.groups, c.groups, "{printed}");
    only_error(
        &text.replace("args = \"keepalived\" }\nconflict", "args = 1 }\nconflict"),
        "1 }",
        "[group.notify] command: invalid type: integer `1`, expected a string",
    );
}

// ---------------------------------------------------------------- routed mode (issue 15)

#[test]
fn a_routed_group_puts_its_host_vips_on_lo_and_prints_back() {
    let text = with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"203.0.113.200/32\", \
         { address = \"203.0.113.201/32\", interface = \"dummy0\" }]\n",
    );
    let c = parse(&text).unwrap();
    let g = &c.groups[0];
    assert_eq!(g.mode, GroupMode::Routed);
    assert_eq!(
        g.vips,
        [
            vip("203.0.113.200/32", "lo"),
            vip("203.0.113.201/32", "dummy0")
        ]
    );
    let printed = c.to_toml_string();
    assert!(printed.contains("mode = \"routed\""), "{printed}");
    assert_eq!(parse(&printed).unwrap().groups, c.groups, "{printed}");
    // An l2 group says nothing about its mode.
    let l2 = parse(&with_groups(
        "[[group]]\nname = \"web\"\nvips = [\"192.0.2.100/24\"]\n",
    ))
    .unwrap();
    assert_eq!(l2.groups[0].mode, GroupMode::L2);
    assert!(!l2.to_toml_string().contains("mode ="));
}

#[test]
fn routed_group_rules_are_located() {
    let text =
        with_groups("[[group]]\nname = \"edge\"\nmode = \"bgp\"\nvips = [\"203.0.113.200/32\"]\n");
    only_error(
        &text,
        "\"bgp\"",
        "unknown group mode `bgp`: use \"l2\" (the default) or \"routed\"",
    );
    let text = with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"203.0.113.200/24\"]\n",
    );
    only_error(
        &text,
        "\"203.0.113.200/24\"",
        "VIP `203.0.113.200/24`: a routed group's VIP is a host address; write \
         203.0.113.200/32 (the router learns the /32 route, no subnet is shared)",
    );
    let text = with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"2001:db8::200/64\"]\n",
    );
    only_error(
        &text,
        "\"2001:db8::200/64\"",
        "VIP `2001:db8::200/64`: a routed group's VIP is a host address; write \
         2001:db8::200/128 (the router learns the /128 route, no subnet is shared)",
    );
    for ll in ["fe80::200/128", "169.254.0.200/32"] {
        let text = with_groups(&format!(
            "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"{ll}\"]\n"
        ));
        only_error(
            &text,
            &format!("\"{ll}\""),
            &format!(
                "VIP `{ll}`: a link-local address is never routed (RFC 3927 §7, RFC 4291 \
                 §2.5.6); a routed group's VIP must be a global address"
            ),
        );
    }
    // IPv6 host addresses are routed VIPs, next to IPv4 ones, on `lo`.
    let c = parse(&with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\n\
         vips = [\"203.0.113.200/32\", \"2001:db8::200/128\"]\n",
    ))
    .unwrap();
    let edge = &c.groups[0];
    assert_eq!(
        edge.cidrs(),
        [
            "203.0.113.200/32".parse().unwrap(),
            "2001:db8::200/128".parse().unwrap()
        ]
    );
    assert!(edge.vips.iter().all(|v| v.interface == "lo"));
}

#[test]
fn a_mode_change_waits_for_a_restart() {
    let old = parse(&with_groups(
        "[[group]]\nname = \"edge\"\nvips = [\"203.0.113.200/32\"]\n",
    ))
    .unwrap();
    let new = parse(&with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"203.0.113.200/32\"]\n",
    ))
    .unwrap();
    let changes = old.election_changes(&new);
    let mode = changes
        .iter()
        .find(|c| c.setting == Setting::Mode)
        .unwrap_or_else(|| panic!("{changes:?}"));
    assert_eq!((mode.old.as_str(), mode.new.as_str()), ("l2", "routed"));
    assert!(!Setting::Mode.applies_live());
}

#[test]
fn a_routed_groups_routes_leave_through_the_node_interface_by_default() {
    let text = with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"203.0.113.200/32\"]\n\
         [[group.route]]\nto = \"198.51.100.0/24\"\nvia = \"192.0.2.1\"\n",
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.groups[0].routes[0].dev, "eth0",
        "not lo, where the VIP is"
    );
}

#[test]
fn ipv6_vips_refuse_label_and_scope_that_linux_would_drop() {
    let text = with_groups(
        "[[group]]\nname = \"web\"\nvips = [{ address = \"2001:db8::100/64\", label = \"eth0:v6\" }]\n",
    );
    only_error(
        &text,
        "\"eth0:v6\"",
        "VIP `2001:db8::100/64`: `label` is IPv4 only (Linux keeps no label on an IPv6 \
         address); remove it",
    );
    let text = with_groups(
        "[[group]]\nname = \"web\"\nvips = [{ address = \"2001:db8::100/64\", scope = \"host\" }]\n",
    );
    only_error(
        &text,
        "\"host\"",
        "VIP `2001:db8::100/64`: `scope` is IPv4 only (Linux derives an IPv6 address's scope \
         from the address: fe80::/10 is link, the rest global); remove it",
    );
    // scope = "global" says what the kernel does anyway.
    let ok = with_groups(
        "[[group]]\nname = \"web\"\nvips = [{ address = \"2001:db8::100/64\", scope = \"global\" }]\n",
    );
    assert!(parse(&ok).is_ok());
}

#[test]
fn a_routed_group_needs_a_lease() {
    let text = format!(
        "{}\n[vip]\nlease_ms = 0\n\n[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"203.0.113.200/32\"]\n",
        BASE
    );
    only_error(
        &text,
        "0\n\n[[group]]",
        "lease_ms = 0 with a routed group (`edge`): a routed VIP's host route ends with the \
         address's lifetime, so a dead agent's announcement would never end; give a lease \
         (default 2000)",
    );
}

#[test]
fn a_routed_group_names_its_bird_socket_and_prints_it_back() {
    let text = with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nbird_socket = \"/run/bird/bird.ctl\"\n\
         vips = [\"203.0.113.200/32\"]\n",
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.groups[0].bird_socket.as_deref(),
        Some(std::path::Path::new("/run/bird/bird.ctl"))
    );
    let printed = c.to_toml_string();
    assert!(
        printed.contains("bird_socket = \"/run/bird/bird.ctl\""),
        "{printed}"
    );
    assert_eq!(parse(&printed).unwrap().groups, c.groups, "{printed}");
    // Without the key nothing is queried, and nothing is printed.
    let none = parse(&with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"203.0.113.200/32\"]\n",
    ))
    .unwrap();
    assert_eq!(none.groups[0].bird_socket, None);
    assert!(!none.to_toml_string().contains("bird_socket"));
}

#[test]
fn bird_socket_rules_are_located() {
    only_error(
        &with_groups(
            "[[group]]\nname = \"web\"\nbird_socket = \"/run/bird/bird.ctl\"\n\
             vips = [\"192.0.2.100/24\"]\n",
        ),
        "\"/run/bird/bird.ctl\"",
        "`bird_socket` is for routed groups (mode = \"routed\"): group `web` moves its VIPs \
         by ARP, no BGP daemon announces them; remove it or set mode = \"routed\"",
    );
    only_error(
        &with_groups(
            "[[group]]\nname = \"edge\"\nmode = \"routed\"\nbird_socket = \"bird.ctl\"\n\
             vips = [\"203.0.113.200/32\"]\n",
        ),
        "\"bird.ctl\"",
        "bird_socket `bird.ctl` is not an absolute path (e.g. \"/run/bird/bird.ctl\")",
    );
    only_error(
        &with_groups(
            "[[group]]\nname = \"edge\"\nmode = \"routed\"\nbird_socket = 5\n\
             vips = [\"203.0.113.200/32\"]\n",
        ),
        "5\nvips",
        "[[group]] bird_socket: invalid type: integer `5`, expected path string",
    );
}

#[test]
fn a_bird_socket_change_is_no_election_change() {
    let old = parse(&with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"203.0.113.200/32\"]\n",
    ))
    .unwrap();
    let new = parse(&with_groups(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nbird_socket = \"/run/bird/bird.ctl\"\n\
         vips = [\"203.0.113.200/32\"]\n",
    ))
    .unwrap();
    assert_eq!(old.election_changes(&new), []);
    assert_eq!(new.applied_over(&old).groups, new.groups);
}
