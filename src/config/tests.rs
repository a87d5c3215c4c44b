//! What a user sees: accepted files, and for each mistake the line and a clear message.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A complete, valid file. Tests replace one line to break it.
pub(super) const FULL: &str = r#"# test config
[cluster]
name = "web"

[node]
name = "n1"
priority = 150
interface = "eth0"
listen = "192.0.2.11:5798"

[[peer]]
name = "n2"
address = "192.0.2.12"

[[peer]]
name = "n3"
address = "192.0.2.13:6000"

[vip]
addresses = ["192.0.2.100/24", "192.0.2.101/32"]
lease_ms = 5000
probe_count = 2
probe_window_ms = 50

[election]
advert_interval_ms = 100
down_multiplier = 4
preempt = true
preempt_delay_ms = 2000
quorum = "off"

[witness]
gateway = "192.0.2.1"
interval_ms = 250
timeout_ms = 80
fall = 4
rise = 5

[garp]
count = 5
spread_ms = 1000
refresh_ms = 0

[tls]
dir = "/srv/certs"
key = "/secret/n1.key"

[notify]
command = ["/usr/local/bin/on-transition", "--verbose"]
master = ["/usr/local/bin/became-master"]
timeout_ms = 2500

[log]
format = "json"
level = "debug"
"#;

pub(super) const MINIMAL: &str = r#"[node]
interface = "eth0"
[[peer]]
name = "n2"
address = "192.0.2.12"
[vip]
addresses = ["192.0.2.100/24"]
"#;

pub(super) fn parse(text: &str) -> Result<Config, ConfigErrors> {
    from_toml_with_host(text, "t.toml", &Overrides::default(), Some("n1".into()))
}

pub(super) fn parse_with(text: &str, o: &Overrides) -> Result<Config, ConfigErrors> {
    from_toml_with_host(text, "t.toml", o, Some("n1".into()))
}

pub(super) fn errors(text: &str) -> ConfigErrors {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e,
    }
}

/// `FULL` with the line `old` replaced by `new` (which must exist once).
fn full_with(old: &str, new: &str) -> String {
    assert_eq!(FULL.matches(old).count(), 1, "`{old}` not unique in FULL");
    FULL.replace(old, new)
}

/// The 1-based number of the first line of `text` that contains `needle`.
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in text"))
        + 1
}

/// The one error whose message contains `fragment`.
pub(super) fn find<'a>(errs: &'a ConfigErrors, fragment: &str) -> &'a ConfigError {
    let found: Vec<_> = errs
        .iter()
        .filter(|e| e.message.contains(fragment))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one error containing `{fragment}`, got:\n{errs}"
    );
    found[0]
}

/// Asserts an error containing `fragment` at `line` of t.toml, and that it is the only error.
pub(super) fn assert_only_error_at(text: &str, line: usize, fragment: &str) {
    let errs = errors(text);
    let e = find(&errs, fragment);
    let loc = e.location().unwrap_or_else(|| panic!("no line in `{e}`"));
    assert_eq!((loc.file.as_str(), loc.line), ("t.toml", line), "{e}");
    assert_eq!(errs.len(), 1, "expected only one error:\n{errs}");
    assert!(e.to_string().starts_with(&format!("t.toml:{line}:")), "{e}");
}

pub(super) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- accepted files

#[test]
fn full_file_gives_every_value() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.source, "t.toml");
    assert_eq!(c.cluster, "web");
    assert_eq!(
        c.node,
        NodeConfig {
            name: "n1".into(),
            priority: 150,
            interface: "eth0".into(),
            listen: sa("192.0.2.11:5798"),
        }
    );
    assert_eq!(
        c.peers,
        vec![
            PeerConfig {
                name: Some("n2".into()),
                address: sa("192.0.2.12:5798")
            },
            PeerConfig {
                name: Some("n3".into()),
                address: sa("192.0.2.13:6000")
            },
        ]
    );
    assert_eq!(
        c.vips,
        vec![
            "192.0.2.100/24".parse().unwrap(),
            "192.0.2.101/32".parse().unwrap()
        ]
    );
    assert_eq!(
        c.election,
        ElectionSettings {
            advert_interval: Duration::from_millis(100),
            down_multiplier: 4,
            preempt: true,
            preempt_delay: Duration::from_secs(2),
            quorum: false,
        }
    );
    assert_eq!(c.lease, Some(Duration::from_secs(5)));
    assert_eq!(
        c.probe,
        ProbeSettings {
            count: 2,
            window: Duration::from_millis(50),
            foreign_holder_timeout: None,
            ignore_arp_from: Vec::new(),
        }
    );
    assert_eq!(
        c.witness,
        Some(WitnessSettings {
            gateway: GatewaySetting::Addr("192.0.2.1".parse().unwrap()),
            interval: Duration::from_millis(250),
            timeout: Duration::from_millis(80),
            fall: 4,
            rise: 5,
        })
    );
    assert_eq!(
        c.garp,
        GarpSettings {
            count: 5,
            spread: Duration::from_secs(1),
            refresh: Duration::ZERO,
        }
    );
    assert_eq!(
        c.tls,
        TlsPaths {
            ca: "/srv/certs/ca.pem".into(),
            cert: "/srv/certs/n1.pem".into(),
            key: "/secret/n1.key".into(),
        }
    );
    assert_eq!(
        c.notify.command,
        Some(Hook::plain(vec![
            "/usr/local/bin/on-transition".to_string(),
            "--verbose".to_string()
        ]))
    );
    assert_eq!(
        c.notify.master,
        Some(Hook::plain(
            vec!["/usr/local/bin/became-master".to_string()]
        ))
    );
    assert_eq!(c.notify.backup, None);
    assert_eq!(c.notify.timeout, Duration::from_millis(2500));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, "debug");
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.cluster, "haagent");
    assert_eq!(c.node.name, "n1", "default name is the host name");
    assert_eq!(c.node.priority, 100);
    assert_eq!(c.node.listen, sa("0.0.0.0:5798"));
    assert_eq!(c.election.advert_interval, Duration::from_millis(50));
    assert_eq!(c.election.down_multiplier, 3);
    assert!(c.election.preempt);
    assert_eq!(c.election.preempt_delay, Duration::ZERO);
    assert!(!c.election.quorum, "two nodes: no quorum by default");
    assert_eq!(c.lease, Some(Duration::from_secs(2)));
    assert_eq!(
        c.probe,
        ProbeSettings {
            count: 3,
            window: Duration::from_millis(30),
            foreign_holder_timeout: None,
            ignore_arp_from: Vec::new(),
        }
    );
    assert_eq!(c.witness, None, "no [witness] table: no witness");
    assert_eq!(c.garp.count, 3);
    assert_eq!(c.garp.spread, Duration::from_millis(500));
    assert_eq!(c.garp.refresh, Duration::from_secs(30));
    assert_eq!(c.tls.ca, PathBuf::from("/etc/haagent/certs/ca.pem"));
    assert_eq!(c.tls.cert, PathBuf::from("/etc/haagent/certs/n1.pem"));
    assert_eq!(c.tls.key, PathBuf::from("/etc/haagent/certs/n1-key.pem"));
    assert_eq!(c.notify.command, None);
    assert_eq!(c.notify.timeout, Duration::from_secs(5));
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "info");
}

#[test]
fn listen_address_without_port_gets_default_port() {
    let text = MINIMAL.replace(
        "interface = \"eth0\"",
        "interface = \"eth0\"\nlisten = \"192.0.2.11\"",
    );
    assert_eq!(parse(&text).unwrap().node.listen, sa("192.0.2.11:5798"));
}

#[test]
fn ipv6_peers_are_accepted_with_an_ipv6_listen_address() {
    let text = r#"[node]
interface = "eth0"
listen = "[2001:db8::11]:5798"
[[peer]]
name = "n2"
address = "2001:db8::12"
[[peer]]
name = "n3"
address = "[2001:db8::13]:6000"
[vip]
addresses = ["192.0.2.100/24"]
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.peers[0].address, sa("[2001:db8::12]:5798"));
    assert_eq!(c.peers[1].address, sa("[2001:db8::13]:6000"));
}

#[test]
fn the_default_listen_address_follows_the_peers_family() {
    // Issue 13: quick mode with an IPv6 `--peer` failed, the default listen being 0.0.0.0.
    let o = Overrides {
        peers: vec!["2001:db8::12".into(), "[2001:db8::13]:6000".into()],
        ..quick_flags()
    };
    let c = from_flags_with_host(&o, Some("n1".into())).unwrap();
    assert_eq!(c.node.listen, sa("[::]:5798"));
    assert_eq!(c.peers[0].address, sa("[2001:db8::12]:5798"));
    let c = from_flags_with_host(&quick_flags(), Some("n1".into())).unwrap();
    assert_eq!(c.node.listen, sa("0.0.0.0:5798"));

    let text = r#"[node]
interface = "eth0"
[[peer]]
address = "2001:db8::12"
[vip]
addresses = ["192.0.2.100/24"]
"#;
    assert_eq!(parse(text).unwrap().node.listen, sa("[::]:5798"));
}

#[test]
fn peers_of_two_families_are_refused_at_the_odd_one() {
    let text = r#"[node]
interface = "eth0"
[[peer]]
address = "2001:db8::12"
[[peer]]
address = "192.0.2.13"
[vip]
addresses = ["192.0.2.100/24"]
"#;
    assert_only_error_at(
        text,
        line_of(text, "192.0.2.13"),
        "peer address `192.0.2.13:5798` is not in the same address family as the other \
         peers: one QUIC endpoint (default listen `[::]:5798`",
    );
    let o = Overrides {
        peers: vec!["2001:db8::12".into(), "192.0.2.13".into()],
        ..quick_flags()
    };
    let shown = from_flags_with_host(&o, Some("n1".into()))
        .unwrap_err()
        .to_string();
    assert!(
        shown.starts_with("--peer 192.0.2.13: peer address `192.0.2.13:5798` is not in the same"),
        "{shown}"
    );
    // An explicit IPv4 listen address with an IPv6 peer names the listen address.
    let text = r#"[node]
interface = "eth0"
listen = "192.0.2.11"
[[peer]]
address = "2001:db8::12"
[vip]
addresses = ["192.0.2.100/24"]
"#;
    assert_only_error_at(
        text,
        line_of(text, "2001:db8::12"),
        "peer address `[2001:db8::12]:5798` is not in the same address family as the listen \
         address `192.0.2.11:5798`",
    );
}

#[test]
fn nopreempt_is_accepted_alone() {
    let text = full_with("preempt = true", "nopreempt = true");
    assert!(!parse(&text).unwrap().election.preempt);
    let text = full_with("preempt = true", "preempt = false\nnopreempt = true");
    assert!(!parse(&text).unwrap().election.preempt, "agreeing is fine");
}

#[test]
fn host_name_is_checked_when_used_as_node_name() {
    let e = from_toml_with_host(
        MINIMAL,
        "t.toml",
        &Overrides::default(),
        Some("bad host".into()),
    )
    .unwrap_err();
    let e = find(&e, "host name cannot be used");
    assert_eq!(e.place, ErrorPlace::File("t.toml".into()));
    assert!(e.message.contains("set [node] name"), "{e}");
}

// ---------------------------------------------------------------- one mistake each

#[test]
fn priority_zero_and_300_are_rejected_with_their_line() {
    let line = line_of(FULL, "priority = 150");
    assert_only_error_at(
        &full_with("priority = 150", "priority = 0"),
        line,
        "priority must be 1..=254, not 0",
    );
    assert_only_error_at(
        &full_with("priority = 150", "priority = 300"),
        line,
        "priority must be 1..=254, not 300",
    );
}

#[test]
fn duplicate_peer_name_is_rejected() {
    let text = full_with("name = \"n3\"", "name = \"n2\"");
    let line = line_of(&text, "address = \"192.0.2.13:6000\"") - 1;
    assert_only_error_at(&text, line, "duplicate peer name `n2` (first at line 12)");
}

#[test]
fn duplicate_peer_address_is_rejected_even_with_default_port_spelled_out() {
    let text = full_with(
        "address = \"192.0.2.13:6000\"",
        "address = \"192.0.2.12:5798\"",
    );
    let line = line_of(&text, "address = \"192.0.2.12:5798\"");
    assert_only_error_at(&text, line, "duplicate peer address `192.0.2.12:5798`");
}

#[test]
fn vip_that_is_not_a_cidr_says_what_is_wrong() {
    let line = line_of(FULL, "addresses = [");
    let text = full_with("\"192.0.2.101/32\"", "\"192.0.2.101\"");
    assert_only_error_at(&text, line, "not in address/prefix form");
    let text = full_with("\"192.0.2.101/32\"", "\"192.0.2.101/33\"");
    assert_only_error_at(&text, line, "prefix `33` is not a number from 0 to 32");
    let text = full_with("\"192.0.2.101/32\"", "\"192.0.2/24\"");
    assert_only_error_at(&text, line, "`192.0.2` is not an IPv4 or IPv6 address");
    let text = full_with("\"192.0.2.101/32\"", "\"2001:db8::101/129\"");
    assert_only_error_at(&text, line, "prefix `129` is not a number from 0 to 128");
}

#[test]
fn ipv6_vips_are_accepted_next_to_ipv4_ones() {
    let text = full_with("\"192.0.2.101/32\"", "\"2001:db8::100/64\"");
    let config = parse(&text).unwrap();
    let vips: Vec<String> = config.vips.iter().map(ToString::to_string).collect();
    assert_eq!(vips, ["192.0.2.100/24", "2001:db8::100/64"]);
    assert_eq!(
        config.groups[0].vips[1].cidr.to_string(),
        "2001:db8::100/64"
    );
}

#[test]
fn ipv6_vips_that_are_no_unicast_host_address_are_refused() {
    let line = line_of(FULL, "addresses = [");
    for (vip, why) in [
        ("ff02::1/64", "not a unicast host address"),
        ("::1/128", "not a unicast host address"),
        ("::/64", "not a unicast host address"),
        ("::ffff:192.0.2.7/96", "IPv4-mapped"),
        ("2001:db8::/64", "subnet-router anycast"),
        ("2001:db8::100/0", "prefix /0"),
    ] {
        let text = full_with("\"192.0.2.101/32\"", &format!("\"{vip}\""));
        assert_only_error_at(&text, line, why);
    }
    // The same address twice, in two spellings, is one duplicate.
    let text = full_with(
        "\"192.0.2.101/32\"",
        "\"2001:db8::100/64\", \"2001:0db8:0:0::100/64\"",
    );
    assert_only_error_at(&text, line, "duplicate VIP `2001:db8::100`");
}

#[test]
fn vip_error_points_at_the_element_on_its_own_line() {
    let text = full_with(
        "addresses = [\"192.0.2.100/24\", \"192.0.2.101/32\"]",
        "addresses = [\n  \"192.0.2.100/24\",\n  \"192.0.2.300/24\",\n]",
    );
    let line = line_of(&text, "192.0.2.300");
    let errs = errors(&text);
    let loc = find(&errs, "192.0.2.300").location().unwrap().clone();
    assert_eq!((loc.line, loc.column), (line, 3));
}

#[test]
fn duplicate_vip_is_rejected() {
    let text = full_with("\"192.0.2.101/32\"", "\"192.0.2.100/32\"");
    assert_only_error_at(
        &text,
        line_of(FULL, "addresses = ["),
        "duplicate VIP `192.0.2.100`",
    );
}

#[test]
fn vip_network_address_is_rejected() {
    let text = full_with("\"192.0.2.101/32\"", "\"192.0.2.0/24\"");
    assert_only_error_at(&text, line_of(FULL, "addresses = ["), "network address");
}

#[test]
fn vip_equal_to_a_peer_address_is_rejected() {
    let text = full_with("\"192.0.2.101/32\"", "\"192.0.2.12/24\"");
    assert_only_error_at(
        &text,
        line_of(FULL, "addresses = ["),
        "is the address of peer 192.0.2.12:5798",
    );
}

#[test]
fn own_name_as_peer_is_rejected() {
    let text = full_with("name = \"n3\"", "name = \"n1\"");
    assert_only_error_at(
        &text,
        line_of(FULL, "name = \"n3\""),
        "peer `n1` is this node's own name",
    );
}

#[test]
fn own_listen_address_as_peer_is_rejected() {
    let text = full_with("address = \"192.0.2.13:6000\"", "address = \"192.0.2.11\"");
    assert_only_error_at(
        &text,
        line_of(&text, "address = \"192.0.2.11\""),
        "is this node's own listen address",
    );
}

#[test]
fn no_peers_is_rejected() {
    let text = "[node]\ninterface = \"eth0\"\n[vip]\naddresses = [\"192.0.2.100/24\"]\n";
    let errs = errors(text);
    let e = find(&errs, "no peers");
    assert_eq!(e.place, ErrorPlace::File("t.toml".into()));
    assert_eq!(errs.len(), 1, "{errs}");
    assert!(e.to_string().starts_with("t.toml: no peers"), "{e}");
}

#[test]
fn no_vips_is_rejected_missing_or_empty() {
    // [vip] present without addresses: points at the table header.
    let text = MINIMAL.replace("addresses = [\"192.0.2.100/24\"]", "");
    assert_only_error_at(&text, line_of(&text, "[vip]"), "[vip] has no `addresses`");
    // Empty list: points at the list.
    let text = MINIMAL.replace("[\"192.0.2.100/24\"]", "[]");
    assert_only_error_at(&text, line_of(&text, "addresses"), "no VIPs");
    // No [vip] at all: the whole file.
    let text = MINIMAL.replace("[vip]\naddresses = [\"192.0.2.100/24\"]\n", "");
    let errs = errors(&text);
    let e = find(&errs, "no [vip] table");
    assert_eq!(e.place, ErrorPlace::File("t.toml".into()));
}

#[test]
fn no_interface_is_rejected() {
    let text = MINIMAL.replace("interface = \"eth0\"\n", "priority = 10\n");
    assert_only_error_at(&text, 1, "[node] has no `interface`");
}

#[test]
fn bad_interface_name_is_rejected() {
    let text = full_with("interface = \"eth0\"", "interface = \"eth0:1\"");
    assert_only_error_at(&text, line_of(FULL, "interface ="), "labels like eth0:1");
}

#[test]
fn advert_interval_below_10ms_is_rejected() {
    let text = full_with("advert_interval_ms = 100", "advert_interval_ms = 5");
    assert_only_error_at(
        &text,
        line_of(FULL, "advert_interval_ms"),
        "advert_interval_ms must be 10..=10000, not 5",
    );
}

#[test]
fn bad_node_and_peer_names_are_rejected() {
    let text = full_with("name = \"n1\"", "name = \"-n1\"");
    assert_only_error_at(&text, line_of(FULL, "name = \"n1\""), "starts with `-`");
    let text = full_with("name = \"n2\"", "name = \"n 2\"");
    assert_only_error_at(&text, line_of(FULL, "name = \"n2\""), "contains ' '");
    let long = "a".repeat(65);
    let text = full_with("name = \"n2\"", &format!("name = \"{long}\""));
    assert_only_error_at(&text, line_of(FULL, "name = \"n2\""), "longer than 64");
    let text = full_with("name = \"n2\"", "name = \"\"");
    assert_only_error_at(&text, line_of(FULL, "name = \"n2\""), "name is empty");
}

#[test]
fn unknown_log_format_is_rejected() {
    let text = full_with("format = \"json\"", "format = \"yaml\"");
    assert_only_error_at(
        &text,
        line_of(FULL, "format = \"json\""),
        "unknown log format `yaml`",
    );
}

#[test]
fn unknown_log_level_is_rejected() {
    let text = full_with("level = \"debug\"", "level = \"verbose\"");
    assert_only_error_at(
        &text,
        line_of(FULL, "level = \"debug\""),
        "unknown log level `verbose`",
    );
}

#[test]
fn unknown_key_is_rejected_with_its_line_and_name() {
    let text = full_with("priority = 150", "priority = 150\nprioirty = 10");
    assert_only_error_at(
        &text,
        line_of(&text, "prioirty"),
        "[node]: unknown field `prioirty`",
    );
    let text = full_with("count = 5", "count = 5\nburst = 2");
    assert_only_error_at(&text, line_of(&text, "burst"), "unknown field `burst`");
    let text = full_with("name = \"n2\"", "name = \"n2\"\nport = 1");
    assert_only_error_at(
        &text,
        line_of(&text, "port = 1"),
        "[[peer]]: unknown field `port`",
    );
}

#[test]
fn unknown_table_is_rejected_with_its_line() {
    let text = format!("{FULL}\n[health]\ncheck = 1\n");
    assert_only_error_at(&text, line_of(&text, "[health]"), "unknown table `health`");
}

#[test]
fn wrong_type_is_rejected_with_its_line() {
    let text = full_with("priority = 150", "priority = \"high\"");
    assert_only_error_at(
        &text,
        line_of(FULL, "priority = 150"),
        "[node] priority: invalid type: string \"high\", expected an integer",
    );
}

#[test]
fn notify_command_that_is_an_empty_list_is_rejected() {
    let text = full_with(
        "command = [\"/usr/local/bin/on-transition\", \"--verbose\"]",
        "command = []",
    );
    assert_only_error_at(
        &text,
        line_of(&text, "command = []"),
        "notify command is an empty list",
    );
    let text = full_with(
        "master = [\"/usr/local/bin/became-master\"]",
        "master = [\"\"]",
    );
    assert_only_error_at(&text, line_of(&text, "master = "), "empty program name");
}

#[test]
fn contradicting_preempt_and_nopreempt_are_rejected() {
    let text = full_with("preempt = true", "preempt = true\nnopreempt = true");
    assert_only_error_at(
        &text,
        line_of(&text, "nopreempt"),
        "`nopreempt = true` contradicts `preempt = true`",
    );
}

#[test]
fn syntax_error_has_a_line() {
    let text = full_with("[garp]", "[garp");
    let errs = errors(&text);
    let e = find(&errs, "TOML syntax error");
    assert_eq!(e.location().unwrap().line, line_of(FULL, "[garp]"));
}

#[test]
fn table_given_as_a_value_is_rejected_once() {
    let text = MINIMAL.replace("[node]\ninterface = \"eth0\"\n", "node = \"eth0\"\n");
    // One error: the missing interface is not reported again.
    assert_only_error_at(&text, 1, "`node` must be a table: write [node]");
}

#[test]
fn garp_refresh_zero_means_off_and_small_values_are_rejected() {
    let text = full_with("refresh_ms = 0", "refresh_ms = 10");
    assert_only_error_at(
        &text,
        line_of(FULL, "refresh_ms"),
        "must be 0 (off) or 1000..",
    );
}

// ---------------------------------------------------------------- split-brain layers

/// MINIMAL with `extra` appended (a new table, or keys for the last table, `[vip]`).
pub(super) fn minimal_plus(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// MINIMAL with a third node.
fn three_nodes(extra: &str) -> String {
    MINIMAL.replace(
        "[vip]",
        "[[peer]]\nname = \"n3\"\naddress = \"192.0.2.13\"\n[vip]",
    ) + extra
}

#[test]
fn quorum_defaults_to_majority_from_three_nodes_on() {
    assert!(!parse(MINIMAL).unwrap().election.quorum, "2 nodes: off");
    assert!(
        parse(&three_nodes("")).unwrap().election.quorum,
        "3 nodes: majority"
    );
    let explicit = |text: String| parse(&text).unwrap().election.quorum;
    assert!(
        explicit(minimal_plus("[election]\nquorum = \"majority\"\n")),
        "majority is allowed with 2 nodes"
    );
    assert!(!explicit(three_nodes("[election]\nquorum = \"off\"\n")));
}

#[test]
fn quorum_flag_overrides_the_file_and_the_default() {
    let o = |q: &str| Overrides {
        quorum: Some(q.into()),
        ..Overrides::default()
    };
    assert!(parse_with(MINIMAL, &o("majority")).unwrap().election.quorum);
    assert!(
        !parse_with(&three_nodes(""), &o("off"))
            .unwrap()
            .election
            .quorum
    );
    let errs = parse_with(MINIMAL, &o("always")).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert_eq!(
        errs.to_string(),
        "--quorum always: unknown quorum `always`: use \"majority\" or \"off\""
    );
}

#[test]
fn unknown_quorum_is_rejected_with_its_line() {
    let text = full_with("quorum = \"off\"", "quorum = \"half\"");
    assert_only_error_at(
        &text,
        line_of(FULL, "quorum ="),
        "unknown quorum `half`: use \"majority\" or \"off\"",
    );
    let text = full_with("quorum = \"off\"", "quorum = false");
    assert_only_error_at(&text, line_of(FULL, "quorum ="), "[election] quorum");
}

#[test]
fn lease_zero_means_no_lifetime() {
    let c = parse(&minimal_plus("lease_ms = 0\n")).unwrap();
    assert_eq!(c.lease, None);
    let c = parse(&minimal_plus("lease_ms = 3600000\n")).unwrap();
    assert_eq!(c.lease, Some(Duration::from_secs(3600)));
}

#[test]
fn lease_out_of_range_or_not_whole_seconds_is_rejected() {
    let line = line_of(FULL, "lease_ms");
    for bad in ["500", "-1000", "3601000"] {
        let text = full_with("lease_ms = 5000", &format!("lease_ms = {bad}"));
        assert_only_error_at(
            &text,
            line,
            &format!("lease_ms must be 0 (off) or 1000..=3600000, not {bad}"),
        );
    }
    let text = full_with("lease_ms = 5000", "lease_ms = 1500");
    assert_only_error_at(
        &text,
        line,
        "lease_ms must be a whole number of seconds (the kernel counts address lifetimes in \
         seconds), not 1500; use 1000 or 2000",
    );
}

#[test]
fn probe_settings_are_checked() {
    let c = parse(&minimal_plus("probe_count = 0\n")).unwrap();
    assert_eq!(c.probe.count, 0, "0 turns probing off");
    let line = line_of(FULL, "probe_count");
    let text = full_with("probe_count = 2", "probe_count = 21");
    assert_only_error_at(&text, line, "probe_count must be 0..=20, not 21");
    let line = line_of(FULL, "probe_window_ms");
    for bad in ["4", "2001"] {
        let text = full_with("probe_window_ms = 50", &format!("probe_window_ms = {bad}"));
        assert_only_error_at(
            &text,
            line,
            &format!("probe_window_ms must be 5..=2000, not {bad}"),
        );
    }
}

#[test]
fn foreign_holder_timeout_and_the_claim_blocked_hook_are_read_and_checked() {
    let c = parse(FULL).unwrap();
    assert_eq!(
        c.probe.foreign_holder_timeout, None,
        "waits for ever by default"
    );
    let text = full_with(
        "probe_window_ms = 50",
        "probe_window_ms = 50\nforeign_holder_timeout_ms = 5000",
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.probe.foreign_holder_timeout,
        Some(Duration::from_millis(5000))
    );
    let text = full_with(
        "probe_window_ms = 50",
        "probe_window_ms = 50\nforeign_holder_timeout_ms = -1",
    );
    let line = line_of(&text, "foreign_holder_timeout_ms");
    assert_only_error_at(
        &text,
        line,
        "foreign_holder_timeout_ms must be 0..=86400000, not -1",
    );
    let c = parse(&minimal_plus(
        "[notify]\nclaim_blocked = [\"/usr/local/bin/page-oncall\", \"blocked\"]\n",
    ))
    .unwrap();
    assert_eq!(
        c.notify.claim_blocked,
        Some(Hook::plain(vec![
            "/usr/local/bin/page-oncall".into(),
            "blocked".into()
        ]))
    );
}

#[test]
fn empty_witness_table_enables_the_witness_with_defaults() {
    let c = parse(&minimal_plus("[witness]\n")).unwrap();
    assert_eq!(
        c.witness,
        Some(WitnessSettings {
            gateway: GatewaySetting::Auto,
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(200),
            fall: 3,
            rise: 2,
        })
    );
    let c = parse(&minimal_plus(
        "[witness]\ngateway = \"auto\"\ninterval_ms = 500\n",
    ))
    .unwrap();
    let w = c.witness.unwrap();
    assert_eq!(w.gateway, GatewaySetting::Auto);
    assert_eq!(
        w.timeout,
        Duration::from_millis(500),
        "timeout defaults to the interval"
    );
}

#[test]
fn witness_gateway_must_be_auto_or_a_unicast_address() {
    let line = line_of(FULL, "gateway =");
    for bad in ["router.example", "2001:db8::/64", "192.0.2.1/24", ""] {
        let text = full_with("gateway = \"192.0.2.1\"", &format!("gateway = \"{bad}\""));
        assert_only_error_at(
            &text,
            line,
            &format!(
                "witness gateway must be \"auto\" or an IPv4 or IPv6 address (e.g. \
                 \"192.0.2.1\", \"2001:db8::1\" or \"fe80::1\"), not `{bad}`"
            ),
        );
    }
    for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.18", "127.0.0.1"] {
        let text = full_with("gateway = \"192.0.2.1\"", &format!("gateway = \"{bad}\""));
        assert_only_error_at(&text, line, "is not a unicast address");
    }
    let text = full_with("gateway = \"192.0.2.1\"", "gateway = \"192.0.2.100\"");
    assert_only_error_at(
        &text,
        line,
        "witness gateway `192.0.2.100` is one of the VIPs",
    );
}

#[test]
fn witness_gateway_may_be_a_global_or_link_local_ipv6_address() {
    for (written, addr) in [
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1", "fe80::1"),
        (" FE80::0:1 ", "fe80::1"),
    ] {
        let text = full_with(
            "gateway = \"192.0.2.1\"",
            &format!("gateway = \"{written}\""),
        );
        let w = parse(&text).unwrap().witness.unwrap();
        let addr: IpAddr = addr.parse().unwrap();
        assert_eq!(w.gateway, GatewaySetting::Addr(addr), "{written}");
        // `check-config` prints it back as an address the file accepts again.
        assert_eq!(w.gateway.to_string(), addr.to_string());
    }
}

#[test]
fn a_bad_ipv6_witness_gateway_is_named_at_its_line() {
    let line = line_of(FULL, "gateway =");
    for (bad, message) in [
        (
            "::",
            "witness gateway `::` is not a unicast address (unspecified, multicast or loopback)",
        ),
        ("::1", "witness gateway `::1` is not a unicast address"),
        (
            "ff02::2",
            "witness gateway `ff02::2` is not a unicast address",
        ),
        (
            "::ffff:192.0.2.1",
            "witness gateway `::ffff:192.0.2.1` is an IPv4-mapped IPv6 address: write the IPv4 \
             address (`192.0.2.1`)",
        ),
        (
            "fe80::1%eth1",
            "witness gateway `fe80::1%eth1`: write it without `%eth1`; the witness always pings \
             through [node] interface, which is the scope of a link-local gateway",
        ),
    ] {
        let text = full_with("gateway = \"192.0.2.1\"", &format!("gateway = \"{bad}\""));
        assert_only_error_at(&text, line, message);
    }
}

#[test]
fn witness_timing_is_checked() {
    let line = line_of(FULL, "interval_ms = 250");
    let text = full_with("interval_ms = 250", "interval_ms = 5");
    assert_only_error_at(&text, line, "witness interval_ms must be 10..=60000, not 5");

    let line = line_of(FULL, "timeout_ms = 80");
    let text = full_with("timeout_ms = 80", "timeout_ms = 300");
    assert_only_error_at(
        &text,
        line,
        "witness timeout_ms must be 1..=interval_ms (250), not 300",
    );
    let text = full_with("timeout_ms = 80", "timeout_ms = 0");
    assert_only_error_at(
        &text,
        line,
        "witness timeout_ms must be 1..=interval_ms (250), not 0",
    );
    let ok = full_with("timeout_ms = 80", "timeout_ms = 250");
    assert_eq!(
        parse(&ok).unwrap().witness.unwrap().timeout,
        Duration::from_millis(250),
        "the timeout may equal the interval"
    );

    let line = line_of(FULL, "fall = 4");
    let text = full_with("fall = 4", "fall = 0");
    assert_only_error_at(&text, line, "witness fall must be 1..=100, not 0");
    let line = line_of(FULL, "rise = 5");
    let text = full_with("rise = 5", "rise = 101");
    assert_only_error_at(&text, line, "witness rise must be 1..=100, not 101");
}

#[test]
fn bad_witness_interval_does_not_add_a_second_error_for_the_timeout() {
    let text = minimal_plus("[witness]\ninterval_ms = 100000\ntimeout_ms = 500\n");
    assert_only_error_at(
        &text,
        line_of(&text, "interval_ms"),
        "witness interval_ms must be 10..=60000, not 100000",
    );
}

#[test]
fn unknown_witness_key_and_non_table_witness_are_rejected() {
    let text = full_with("fall = 4", "fal = 4");
    assert_only_error_at(
        &text,
        line_of(FULL, "fall = 4"),
        "[witness]: unknown field `fal`, expected one of `gateway`, `interval_ms`, `timeout_ms`, \
         `fall`, `rise`",
    );
    let text = format!("witness = true\n{MINIMAL}");
    assert_only_error_at(&text, 1, "`witness` must be a table: write [witness]");
}

#[test]
fn gateway_flag_enables_the_witness_or_replaces_the_files_gateway() {
    let o = Overrides {
        gateway: Some("auto".into()),
        ..quick_flags()
    };
    let c = from_flags_with_host(&o, Some("n1".into())).unwrap();
    assert_eq!(
        c.witness,
        Some(WitnessSettings {
            gateway: GatewaySetting::Auto,
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(200),
            fall: 3,
            rise: 2,
        })
    );
    assert!(c.election.quorum, "quick mode with two --peer: three nodes");

    let o = Overrides {
        gateway: Some("192.0.2.254".into()),
        ..Overrides::default()
    };
    let w = parse_with(FULL, &o).unwrap().witness.unwrap();
    assert_eq!(
        w.gateway,
        GatewaySetting::Addr("192.0.2.254".parse().unwrap())
    );
    assert_eq!(
        w.interval,
        Duration::from_millis(250),
        "the rest from the file"
    );

    let o = Overrides {
        gateway: Some("gw".into()),
        ..quick_flags()
    };
    let errs = from_flags_with_host(&o, Some("n1".into())).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert!(
        errs.to_string().starts_with(
            "--gateway gw: witness gateway must be \"auto\" or an IPv4 or IPv6 address"
        ),
        "{errs}"
    );

    let o = Overrides {
        gateway: Some("fe80::1".into()),
        ..quick_flags()
    };
    let w = from_flags_with_host(&o, Some("n1".into()))
        .unwrap()
        .witness
        .unwrap();
    assert_eq!(w.gateway, GatewaySetting::Addr("fe80::1".parse().unwrap()));
}

#[test]
fn new_key_errors_are_reported_together_in_file_order() {
    let text = r#"[node]
interface = "eth0"
[[peer]]
address = "192.0.2.12"
[vip]
addresses = ["192.0.2.100/24"]
lease_ms = 2500
probe_count = -1
[election]
quorum = "most"
[witness]
gateway = "gw"
fall = 0
"#;
    let errs = errors(text);
    let got: Vec<(usize, &str)> = errs
        .iter()
        .map(|e| (e.location().map_or(0, |l| l.line), e.message.as_str()))
        .collect();
    let expected = [
        (7, "whole number of seconds"),
        (8, "probe_count must be 0..=20"),
        (10, "unknown quorum `most`"),
        (12, "witness gateway must be"),
        (13, "witness fall must be"),
    ];
    assert_eq!(got.len(), expected.len(), "{errs}");
    for ((line, msg), (want_line, want_msg)) in got.iter().zip(expected) {
        assert_eq!(*line, want_line, "{errs}");
        assert!(msg.contains(want_msg), "`{msg}` lacks `{want_msg}`\n{errs}");
    }
}

#[test]
fn to_toml_string_prints_the_split_brain_settings_and_round_trips() {
    // Lease off, explicit majority with two nodes, witness on "auto".
    let c = parse(&minimal_plus(
        "lease_ms = 0\nprobe_count = 0\n[election]\nquorum = \"majority\"\n[witness]\n",
    ))
    .unwrap();
    let text = c.to_toml_string();
    for line in [
        "lease_ms = 0",
        "probe_count = 0",
        "probe_window_ms = 30",
        "quorum = \"majority\"",
        "[witness]",
        "gateway = \"auto\"",
        "interval_ms = 200",
        "timeout_ms = 200",
        "fall = 3",
        "rise = 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    let back = from_toml_with_host(&text, "t.toml", &Overrides::default(), None).unwrap();
    assert_eq!(back, c);

    // Defaults: no witness table printed; the quorum default printed as its word.
    let c = parse(MINIMAL).unwrap();
    let text = c.to_toml_string();
    assert!(!text.contains("[witness]"), "{text}");
    assert!(text.lines().any(|l| l == "quorum = \"off\""), "{text}");
    assert!(text.lines().any(|l| l == "lease_ms = 2000"), "{text}");
}

// ---------------------------------------------------------------- many at once

#[test]
fn every_problem_is_reported_together_in_file_order() {
    let text = r#"[node]
name = "n1"
priority = 300
interface = "eth0"
colour = "blue"

[[peer]]
name = "n1"
address = "192.0.2.12"

[vip]
addresses = ["192.0.2.100", "192.0.2.101/24", "192.0.2.101/24"]

[election]
advert_interval_ms = 1

[log]
format = "xml"
"#;
    let errs = errors(text);
    let got: Vec<(usize, &str)> = errs
        .iter()
        .map(|e| (e.location().map_or(0, |l| l.line), e.message.as_str()))
        .collect();
    let expected = [
        (3, "priority must be 1..=254"),
        (5, "unknown field `colour`"),
        (8, "this node's own name"),
        (12, "not in address/prefix form"),
        (12, "duplicate VIP `192.0.2.101`"),
        (15, "advert_interval_ms must be 10..=10000"),
        (18, "unknown log format `xml`"),
    ];
    assert_eq!(got.len(), expected.len(), "{errs}");
    for ((line, msg), (want_line, want_msg)) in got.iter().zip(expected) {
        assert_eq!(*line, want_line, "{errs}");
        assert!(msg.contains(want_msg), "`{msg}` lacks `{want_msg}`\n{errs}");
    }
    // Displayed one per line, each starting with FILE:LINE:COL.
    let shown = errs.to_string();
    assert_eq!(shown.lines().count(), expected.len());
    assert!(shown.lines().all(|l| l.starts_with("t.toml:")), "{shown}");
    assert!(
        shown.starts_with("t.toml:3:12: priority must be"),
        "{shown}"
    );
}

#[test]
fn several_unknown_keys_in_one_table_are_all_reported() {
    let text = full_with("count = 5", "cuont = 5\nspred_ms = 3");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs}");
    find(&errs, "unknown field `cuont`");
    find(&errs, "unknown field `spred_ms`");
}

// ---------------------------------------------------------------- round trip

#[test]
fn to_toml_string_round_trips() {
    let c = parse(FULL).unwrap();
    let text = c.to_toml_string();
    assert!(text.starts_with("# haagent configuration resolved from t.toml"));
    let back = from_toml_with_host(&text, "printed", &Overrides::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(
        back,
        Config {
            source: "printed".into(),
            ..c
        }
    );
}

#[test]
fn to_toml_string_round_trips_quick_mode_and_defaults() {
    let c = from_flags_with_host(&quick_flags(), Some("n1".into())).unwrap();
    let text = c.to_toml_string();
    let back = from_toml_with_host(&text, "printed", &Overrides::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(
        back,
        Config {
            source: "printed".into(),
            ..c
        }
    );
    let c = parse(MINIMAL).unwrap();
    let back = from_toml_with_host(&c.to_toml_string(), "t.toml", &Overrides::default(), None);
    assert_eq!(back.unwrap(), c);
}

// ---------------------------------------------------------------- flags

pub(super) fn quick_flags() -> Overrides {
    Overrides {
        interface: Some("eth0".into()),
        vips: vec!["10.0.0.100/24".into()],
        peers: vec!["10.0.0.12".into(), "10.0.0.13:6000".into()],
        ..Overrides::default()
    }
}

#[test]
fn quick_mode_builds_a_config_from_flags() {
    let c = from_flags_with_host(&quick_flags(), Some("n1".into())).unwrap();
    assert_eq!(c.source, "command line");
    assert_eq!(c.node.name, "n1");
    assert_eq!(c.node.interface, "eth0");
    assert_eq!(c.node.priority, 100);
    assert_eq!(
        c.peers,
        vec![
            PeerConfig {
                name: None,
                address: sa("10.0.0.12:5798")
            },
            PeerConfig {
                name: None,
                address: sa("10.0.0.13:6000")
            },
        ]
    );
    assert_eq!(c.vips, vec!["10.0.0.100/24".parse().unwrap()]);
    assert_eq!(c.tls.cert, PathBuf::from("/etc/haagent/certs/n1.pem"));

    let o = Overrides {
        name: Some("edge-1".into()),
        priority: Some(90),
        certs_dir: Some("/tmp/certs".into()),
        nopreempt: true,
        ..quick_flags()
    };
    let c = from_flags_with_host(&o, None).unwrap();
    assert_eq!(c.node.name, "edge-1");
    assert_eq!(c.node.priority, 90);
    assert!(!c.election.preempt);
    assert_eq!(
        c.tls,
        TlsPaths {
            ca: "/tmp/certs/ca.pem".into(),
            cert: "/tmp/certs/edge-1.pem".into(),
            key: "/tmp/certs/edge-1-key.pem".into(),
        }
    );
}

#[test]
fn quick_mode_errors_name_the_flag() {
    let o = Overrides {
        priority: Some(300),
        vips: vec!["10.0.0.100".into()],
        peers: vec!["10.0.0.12".into(), "10.0.0.12:5798".into()],
        log_format: Some("xml".into()),
        ..Overrides::default()
    };
    let errs = from_flags_with_host(&o, Some("n1".into())).unwrap_err();
    let shown = errs.to_string();
    for line in [
        "--priority 300: priority must be 1..=254, not 300",
        "--vip 10.0.0.100: bad VIP: `10.0.0.100` is not in address/prefix form",
        "--peer 10.0.0.12:5798: duplicate peer address `10.0.0.12:5798` (first at --peer 10.0.0.12)",
        "--log-format xml: unknown log format `xml`",
        "command line: --interface IFACE is required",
    ] {
        assert!(shown.lines().any(|l| l.starts_with(line)), "missing `{line}` in:\n{shown}");
    }
    assert!(errs.iter().all(|e| e.location().is_none()));
    assert_eq!(errs.len(), 5, "{shown}");
}

#[test]
fn quick_mode_without_anything_lists_every_required_flag() {
    let errs = from_flags_with_host(&Overrides::default(), Some("n1".into())).unwrap_err();
    let shown = errs.to_string();
    assert!(shown.contains("--interface IFACE is required"), "{shown}");
    assert!(shown.contains("--peer ADDR[:PORT] is required"), "{shown}");
    assert!(shown.contains("--vip ADDR/PREFIX is required"), "{shown}");
}

#[test]
fn flags_override_the_file() {
    let o = Overrides {
        priority: Some(42),
        interface: Some("bond0".into()),
        listen: Some("192.0.2.21".into()),
        peers: vec!["192.0.2.22".into()],
        vips: vec!["192.0.2.200/24".into()],
        advert_interval_ms: Some(20),
        nopreempt: true,
        certs_dir: Some("/tmp/c".into()),
        log_format: Some("text".into()),
        log_level: Some("warn".into()),
        cluster: Some("db".into()),
        ..Overrides::default()
    };
    let c = parse_with(FULL, &o).unwrap();
    assert_eq!(c.cluster, "db");
    assert_eq!(c.node.name, "n1", "not overridden: from the file");
    assert_eq!(c.node.priority, 42);
    assert_eq!(c.node.interface, "bond0");
    assert_eq!(c.node.listen, sa("192.0.2.21:5798"));
    assert_eq!(
        c.peers,
        vec![PeerConfig {
            name: None,
            address: sa("192.0.2.22:5798")
        }],
        "--peer replaces the file's peers"
    );
    assert_eq!(c.vips, vec!["192.0.2.200/24".parse().unwrap()]);
    assert_eq!(c.election.advert_interval, Duration::from_millis(20));
    assert_eq!(c.election.down_multiplier, 4, "from the file");
    assert!(!c.election.preempt);
    assert_eq!(
        c.tls.key,
        PathBuf::from("/tmp/c/n1-key.pem"),
        "--certs wins over [tls] key"
    );
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "warn");
}

#[test]
fn flag_fixes_a_missing_file_value_and_flag_errors_mix_with_file_errors() {
    let text = MINIMAL.replace("interface = \"eth0\"\n", "");
    let o = Overrides {
        interface: Some("eth1".into()),
        ..Overrides::default()
    };
    assert_eq!(parse_with(&text, &o).unwrap().node.interface, "eth1");

    let text = full_with("format = \"json\"", "format = \"yaml\"");
    let o = Overrides {
        priority: Some(0),
        ..Overrides::default()
    };
    let errs = parse_with(&text, &o).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs}");
    assert_eq!(
        find(&errs, "priority").place,
        ErrorPlace::Flag("--priority 0".into())
    );
    assert!(find(&errs, "yaml").location().is_some());
}

// ---------------------------------------------------------------- files

#[test]
fn load_reads_the_given_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haagent.toml");
    std::fs::write(
        &path,
        MINIMAL.replace("interface", "name = \"n1\"\ninterface"),
    )
    .unwrap();
    let c = load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(c.source, path.display().to_string());

    let missing = dir.path().join("nope.toml");
    let errs = load(Some(&missing), &quick_flags()).unwrap_err();
    assert_eq!(errs.len(), 1);
    let shown = errs.to_string();
    assert!(
        shown.starts_with(&format!("{}: cannot read config file", missing.display())),
        "{shown}"
    );
}

#[test]
fn load_errors_carry_the_file_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, full_with("priority = 150", "priority = 0")).unwrap();
    let errs = load(Some(&path), &Overrides::default()).unwrap_err();
    let loc = errs.0[0].location().unwrap();
    assert_eq!(loc.file, path.display().to_string());
    assert_eq!(loc.line, line_of(FULL, "priority = 150"));
}

#[test]
fn without_a_file_the_default_path_is_used_if_it_exists_else_quick_mode() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("haagent.toml");
    // Missing default: quick mode.
    let c = load_with_default(None, &default, &quick_flags()).unwrap();
    assert_eq!(c.source, "command line");
    let errs = load_with_default(None, &default, &Overrides::default()).unwrap_err();
    assert!(errs.to_string().contains("does not exist"), "{errs}");
    // Existing default: used, flags on top.
    std::fs::write(
        &default,
        MINIMAL.replace("interface", "name = \"n1\"\ninterface"),
    )
    .unwrap();
    let o = Overrides {
        priority: Some(7),
        ..Overrides::default()
    };
    let c = load_with_default(None, &default, &o).unwrap();
    assert_eq!(c.source, default.display().to_string());
    assert_eq!(c.node.priority, 7);
    assert_eq!(c.peers[0].name.as_deref(), Some("n2"));
}

#[test]
fn location_columns_count_characters() {
    let text = "a = \"é\"\nbé = 1\n";
    let loc = Location::from_offset("f", text, text.find("= 1").unwrap());
    assert_eq!((loc.line, loc.column), (2, 4));
    let loc = Location::from_offset("f", text, 10_000);
    assert_eq!(loc.line, 3);
}

#[test]
fn config_error_display_formats() {
    let e = ConfigError {
        place: ErrorPlace::At(Location {
            file: "f.toml".into(),
            line: 3,
            column: 7,
        }),
        message: "m".into(),
    };
    assert_eq!(e.to_string(), "f.toml:3:7: m");
    let e = ConfigError {
        place: ErrorPlace::Flag("--vip x".into()),
        message: "m".into(),
    };
    assert_eq!(e.to_string(), "--vip x: m");
}

#[test]
fn probe_window_follows_a_short_advert_interval_unless_set() {
    let window = |extra: &str| parse(&minimal_plus(extra)).unwrap().probe.window;
    assert_eq!(window(""), Duration::from_millis(30));
    assert_eq!(
        window("[election]\nadvert_interval_ms = 10\n"),
        Duration::from_millis(10)
    );
    assert_eq!(
        window("[election]\nadvert_interval_ms = 20\n"),
        Duration::from_millis(20)
    );
    assert_eq!(
        window("probe_window_ms = 40\n[election]\nadvert_interval_ms = 10\n"),
        Duration::from_millis(40)
    );
}

/// Issue 9: check-config echoed a multi-line string raw, breaking its one-error-per-line
/// output (and letting a value carry terminal escapes).
#[test]
fn an_error_quoting_a_multi_line_value_stays_on_one_line() {
    let text = FULL.replacen("name = \"n1\"", "name = \"\"\"n1\n\\u001b[2Jx\"\"\"", 1);
    assert_ne!(text, FULL, "the test must change the node name");
    let errors = parse(&text).unwrap_err();
    for e in errors.iter() {
        let shown = e.to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown:?}"
        );
    }
    assert!(
        errors.iter().any(|e| e.to_string().contains("\\n")),
        "{errors}"
    );
}

// ---------------------------------------------------------------- notify hooks

#[test]
fn a_hook_is_a_list_or_a_table_with_args() {
    let c = parse(&minimal_plus(
        "[notify]\n\
         command = { command = [\"/etc/keepalived/notify.sh\"], args = \"keepalived\" }\n\
         master = { command = [\"/usr/local/bin/m\", \"x\"], args = \"none\" }\n\
         backup = { command = [\"/usr/local/bin/b\"] }\n\
         conflict_won = [\"/usr/local/bin/page\", \"won\"]\n",
    ))
    .unwrap();
    assert_eq!(
        c.notify.command,
        Some(Hook {
            argv: vec!["/etc/keepalived/notify.sh".into()],
            args: HookArgs::Keepalived
        })
    );
    assert_eq!(
        c.notify.master,
        Some(Hook::plain(vec!["/usr/local/bin/m".into(), "x".into()]))
    );
    assert_eq!(
        c.notify.backup,
        Some(Hook::plain(vec!["/usr/local/bin/b".into()]))
    );
    assert_eq!(
        c.notify.conflict_won,
        Some(Hook::plain(vec![
            "/usr/local/bin/page".into(),
            "won".into()
        ]))
    );
    // Printed and read again: the same hooks.
    let text = c.to_toml_string();
    assert!(
        text.contains(
            "[notify.command]\ncommand = [\"/etc/keepalived/notify.sh\"]\nargs = \"keepalived\"\n"
        ),
        "{text}"
    );
    let back = from_toml_with_host(&text, "printed", &Overrides::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(back.notify, c.notify);
}

#[test]
fn a_bad_hook_table_is_reported_where_it_is() {
    let one = |line: &str, fragment: &str| {
        let text = minimal_plus(&format!("[notify]\n{line}\n"));
        assert_only_error_at(&text, line_of(&text, line), fragment);
    };
    one(
        "master = { command = [\"/bin/m\"], args = \"keepalive\" }",
        "notify master args must be \"keepalived\" or \"none\", not \"keepalive\"",
    );
    one(
        "command = { args = \"keepalived\" }",
        "notify command has no command; give the program and its arguments",
    );
    one("stop = { command = [] }", "notify stop is an empty list");
    one(
        "fault = { command = [\"/bin/f\"], argz = \"none\" }",
        "[notify] fault: unknown field `argz`, expected `command` or `args`",
    );
    one(
        "backup = \"/bin/b\"",
        "[notify] backup: invalid type: string \"/bin/b\", expected a list (the program and its arguments) or a table",
    );
    one(
        "conflict_won = { command = \"/bin/c\" }",
        "[notify] conflict_won: invalid type: string \"/bin/c\", expected a list",
    );
}
