//! `[mover]`, `[group.mover]` and `[vip] ignore_arp_from`: accepted shapes and defaults,
//! each rule with its located message, the printed round trip and the reload class.

use std::time::Duration;

use super::tests::{errors, parse};
use super::*;

/// A node without groups, with `[mover]` and `ignore_arp_from`.
const NODE: &str = r#"[node]
name = "n1"
interface = "eth0"
listen = "192.0.2.11"
[[peer]]
name = "n2"
address = "192.0.2.12"
[vip]
addresses = ["192.0.2.100/24"]
ignore_arp_from = ["02:00:00:00:00:FE", "02:00:00:00:00:fd"]
[mover]
command = ["/usr/local/bin/move-ip", "--region", "eu"]
"#;

/// Two groups: web-a with its own mover, web-b inheriting `[mover]`.
const GROUPED: &str = r#"[node]
name = "n1"
interface = "eth0"
listen = "192.0.2.11"
[[peer]]
name = "n2"
address = "192.0.2.12"
[mover]
command = ["/usr/local/bin/move-ip"]
timeout_ms = 20000
[[group]]
name = "web-a"
vips = ["192.0.2.100/24"]
[group.mover]
command = ["/usr/local/bin/move-web-a"]
timeout_ms = 100
retries = 0
retry_delay_ms = 0
wait = true
[[group]]
name = "web-b"
vips = ["192.0.2.101/24"]
"#;

fn lines(text: &str) -> Vec<String> {
    errors(text).iter().map(ToString::to_string).collect()
}

#[test]
fn a_mover_without_groups_belongs_to_the_default_group_with_defaults() {
    let c = parse(NODE).unwrap();
    let want = MoverSettings {
        command: vec![
            "/usr/local/bin/move-ip".into(),
            "--region".into(),
            "eu".into(),
        ],
        timeout: Duration::from_secs(10),
        retries: 2,
        retry_delay: Duration::from_secs(1),
        wait: false,
    };
    assert_eq!(c.mover.as_ref(), Some(&want));
    assert_eq!(c.groups[0].name, LEGACY_GROUP);
    assert_eq!(c.groups[0].mover.as_ref(), Some(&want));
    assert_eq!(
        c.probe.ignore_arp_from,
        vec![[2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 0xfd]]
    );
    let none = parse(&NODE.replace(
        "[mover]\ncommand = [\"/usr/local/bin/move-ip\", \"--region\", \"eu\"]\n",
        "",
    ))
    .unwrap();
    assert_eq!(none.groups[0].mover, None);
}

#[test]
fn a_group_has_its_own_mover_or_inherits_the_node_one() {
    let c = parse(GROUPED).unwrap();
    let a = c.groups[0].mover.as_ref().unwrap();
    assert_eq!(a.command, ["/usr/local/bin/move-web-a"]);
    assert_eq!(
        (a.timeout, a.retries, a.retry_delay, a.wait),
        (Duration::from_millis(100), 0, Duration::ZERO, true)
    );
    let b = c.groups[1].mover.as_ref().unwrap();
    assert_eq!(b.command, ["/usr/local/bin/move-ip"]);
    assert_eq!(
        (b.timeout, b.retries, b.wait),
        (Duration::from_secs(20), 2, false)
    );
}

#[test]
fn mover_mistakes_are_located() {
    let text = NODE.replace(
        "[mover]\n",
        "[mover]\ntimeout_ms = 99\nretries = 11\nretry_delay_ms = 60001\nwaits = true\n",
    );
    assert_eq!(
        lines(&text),
        [
            "t.toml:12:14: mover timeout_ms must be 100..=600000, not 99",
            "t.toml:13:11: mover retries must be 0..=10, not 11",
            "t.toml:14:18: mover retry_delay_ms must be 0..=60000, not 60001",
            "t.toml:15:1: [mover]: unknown field `waits`, expected one of `command`, \
             `timeout_ms`, `retries`, `retry_delay_ms`, `wait`",
        ]
    );
    let relative = NODE.replace("\"/usr/local/bin/move-ip\", ", "\"move-ip\", ");
    assert_eq!(
        lines(&relative),
        [
            "t.toml:12:11: mover command: the program `move-ip` must be an absolute path \
          (no PATH lookup), e.g. \"/usr/local/bin/haagent-mover\""
        ]
    );
    let empty = NODE.replace("[\"/usr/local/bin/move-ip\", \"--region\", \"eu\"]", "[]");
    assert_eq!(
        lines(&empty),
        [
            "t.toml:12:11: mover command is an empty list; give the program and its \
          arguments, e.g. [\"/usr/local/bin/on-transition\"]"
        ]
    );
    let missing = GROUPED.replace("command = [\"/usr/local/bin/move-web-a\"]\n", "");
    assert_eq!(
        lines(&missing),
        [
            "t.toml:14:1: [group.mover] has no `command` (required): the program and its \
          arguments, e.g. command = [\"/usr/local/bin/haagent-mover\"]"
        ]
    );
    // A malformed command is reported once, not again as missing.
    let wrong_type = GROUPED.replace("[\"/usr/local/bin/move-web-a\"]", "\"/bin/x\"");
    assert_eq!(lines(&wrong_type).len(), 1, "{:?}", lines(&wrong_type));
    let not_table = NODE.replace("[mover]\ncommand", "mover = 1\n[x]\ncommand");
    assert!(!lines(&not_table).is_empty());
}

#[test]
fn ignore_arp_from_mistakes_are_located() {
    let bad = NODE.replace(
        "\"02:00:00:00:00:fd\"",
        "\"02:00:00:00:00:fe\", \"01:00:5e:00:00:01\", \"02:00:00:00:00\", \"zz:00:00:00:00:01\"",
    );
    assert_eq!(
        lines(&bad),
        [
            "t.toml:10:41: vip ignore_arp_from lists `02:00:00:00:00:fe` twice",
            "t.toml:10:62: vip ignore_arp_from `01:00:5e:00:00:01` is not a unicast MAC (an \
             ARP sender is always one)",
            "t.toml:10:83: vip ignore_arp_from `02:00:00:00:00` is not a MAC address; write \
             six hex bytes separated by colons, e.g. \"02:00:00:00:00:fe\"",
            "t.toml:10:101: vip ignore_arp_from `zz:00:00:00:00:01` is not a MAC address; \
             write six hex bytes separated by colons, e.g. \"02:00:00:00:00:fe\"",
        ]
    );
    let many: Vec<String> = (0..17)
        .map(|i| format!("\"02:00:00:00:01:{i:02x}\""))
        .collect();
    let too_many = NODE.replace(
        "[\"02:00:00:00:00:FE\", \"02:00:00:00:00:fd\"]",
        &format!("[{}]", many.join(", ")),
    );
    assert_eq!(
        lines(&too_many),
        ["t.toml:10:19: vip ignore_arp_from lists 17 MACs; at most 16"]
    );
}

#[test]
fn movers_and_ignored_macs_print_and_load_back_the_same() {
    for text in [NODE, GROUPED] {
        let c = parse(text).unwrap();
        let printed = c.to_toml_string();
        assert!(printed.contains("[mover]\ncommand = "), "{printed}");
        let back = super::from_toml_with_host(&printed, "printed", &Overrides::default(), None)
            .unwrap_or_else(|e| panic!("{e}\n---\n{printed}"));
        // The notes name their place in each file (the printed one writes web-b's inherited
        // mover out, with its own note).
        assert_eq!(
            back,
            Config {
                source: "printed".into(),
                notes: back.notes.clone(),
                ..c
            }
        );
    }
    let printed = parse(GROUPED).unwrap().to_toml_string();
    assert!(
        printed.contains(
            "[group.mover]\ncommand = [\"/usr/local/bin/move-web-a\"]\ntimeout_ms = 100\n\
             retries = 0\nretry_delay_ms = 0\nwait = true\n"
        ),
        "{printed}"
    );
    let printed = parse(NODE).unwrap().to_toml_string();
    assert!(
        printed.contains("ignore_arp_from = [\"02:00:00:00:00:fe\", \"02:00:00:00:00:fd\"]"),
        "{printed}"
    );
}

/// A mover change is named (per group with `[[group]]`) and waits for a restart; so does
/// `ignore_arp_from` (probing is set up once).
#[test]
fn a_mover_change_waits_for_a_restart() {
    let old = parse(GROUPED).unwrap();
    let new = parse(&GROUPED.replace("timeout_ms = 100", "timeout_ms = 200")).unwrap();
    let changes = old.election_changes(&new);
    assert_eq!(
        changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "group web-a mover command /usr/local/bin/move-web-a, timeout_ms 100, retries 0, \
          retry_delay_ms 0, wait true → command /usr/local/bin/move-web-a, timeout_ms 200, \
          retries 0, retry_delay_ms 0, wait true"
        ]
    );
    assert!(!changes[0].setting.applies_live());
    let applied = new.applied_over(&old);
    assert_eq!(applied.groups[0].mover, old.groups[0].mover);
    assert!(old.election_changes(&applied).is_empty());

    let old = parse(NODE).unwrap();
    let new = parse(
        &NODE
            .replace("\"eu\"]", "\"us\"]")
            .replace(", \"02:00:00:00:00:fd\"", ""),
    )
    .unwrap();
    let changes = old.election_changes(&new);
    let names: Vec<_> = changes.iter().map(|c| c.setting.key()).collect();
    assert_eq!(names, ["ignore_arp_from", "mover"]);
    assert!(changes.iter().all(|c| !c.setting.applies_live()));
    let applied = new.applied_over(&old);
    assert_eq!(applied.groups[0].mover, old.mover);
    assert_eq!(applied.probe, old.probe);
    assert!(old.election_changes(&applied).is_empty());
}

/// A mover that may outlast the shipped unit's TimeoutStopSec (45 s) at shutdown gets a
/// located note; one that fits gets none, the defaults (10 s × 3 + 1 s × 2 = 32 s) too.
#[test]
fn a_mover_longer_than_the_units_stop_timeout_gets_a_note() {
    let c = parse(GROUPED).unwrap();
    let mover_line = GROUPED.lines().position(|l| l == "[mover]").unwrap() + 1;
    assert_eq!(
        c.notes,
        [format!(
            "t.toml:{mover_line}:1: note: [mover] may run for up to 62 s at shutdown \
             (timeout_ms × (retries + 1) + retry_delay_ms × retries), longer than the shipped \
             systemd unit's TimeoutStopSec=45 s: raise TimeoutStopSec in a drop-in \
             (systemctl edit haagent) to at least 67 s"
        )],
        "web-a's mover (100 ms, no retry) fits: no note for it"
    );
    let c = parse(NODE).unwrap();
    assert_eq!(c.notes, Vec::<String>::new(), "the defaults fit");
}
