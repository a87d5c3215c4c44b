//! Issue 14, part 3 in namespaces: the `conflict_won` hook. A master that hears another
//! MAC answer for its VIPs, outranks it and re-announces (keepalived's
//! `notify_master_rx_lower_pri`) runs the hook with the conflicting MAC and the member it
//! belongs to in its environment (docs/configuration.md, `[notify]`): once for a forged
//! claim with the live backup's MAC (member `n2`), once for one with a MAC no member has
//! (member empty). The VIP stays on the master throughout.
//!
//! The setup is tests/arp_attack.rs's: a rogue host on the segment sends hand-built ARP
//! replies. Needs root; see `support::require_root`.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::arp::{forged_reply, parse_mac, send_from};
use support::*;

const ROGUE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);

/// A MAC no member or host of the lab has (locally administered).
const STRANGER_MAC: &str = "02:00:5e:14:00:01";

/// The hook's lines in `out`.
fn hook_lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Forges "the VIP is at `claimed`" from the rogue every 300 ms until the hook has written
/// `n` lines; panics after `timeout`.
fn forge_until_hook_ran(
    c: &Cluster,
    claimed: &str,
    out: &Path,
    n: usize,
    timeout: Duration,
) -> Vec<String> {
    let rogue = c.lab.host("rogue").unwrap();
    let rogue_ns = rogue.ns.name().to_string();
    let frame = forged_reply(
        parse_mac(&support::veth::mac(&rogue.ns, "eth0")),
        parse_mac(claimed),
        VIP,
    );
    let start = Instant::now();
    loop {
        send_from(&rogue_ns, vec![frame.clone()], Duration::ZERO);
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            let lines = hook_lines(out);
            if lines.len() >= n {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            start.elapsed() < timeout,
            "the conflict_won hook never ran for {claimed} within {timeout:?}: {:?}\n{}",
            hook_lines(out),
            c.logs()
        );
    }
}

#[test]
fn a_master_that_wins_a_conflict_runs_conflict_won_with_the_mac() {
    if !require_root("a_master_that_wins_a_conflict_runs_conflict_won_with_the_mac") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    c.lab.add_host("rogue", ROGUE_ADDR).unwrap();
    let out = c.dir.path().join("conflict-won.txt");
    let path = c.config_path("n1");
    let text = std::fs::read_to_string(&path).unwrap()
        + &format!(
            "\n[notify]\nconflict_won = [\"/bin/sh\", \"-c\", \
             \"echo \\\"$HAAGENT_CONFLICT_MAC|$HAAGENT_CONFLICT_MEMBER|$HAAGENT_STATE|$HAAGENT_CAUSE|$HAAGENT_GROUP\\\" >> {}\"]\n",
            out.display()
        );
    std::fs::write(&path, text).unwrap();
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    // n2 must be a live, connected backup: its MAC is known from its adverts.
    c.wait_status("n1", CONVERGE, |s| s["peers"][0]["alive"] == true);
    assert!(
        hook_lines(&out).is_empty(),
        "no conflict yet: {:?}",
        hook_lines(&out)
    );
    let n2_mac = support::veth::mac(&c.lab.host("n2").unwrap().ns, "eth0");

    // A forged claim with the live backup's MAC: n1 outranks it and re-announces.
    let lines = forge_until_hook_ran(&c, &n2_mac, &out, 1, CONVERGE);
    assert_eq!(
        lines,
        [format!("{n2_mac}|n2|master|conflict_won|default")],
        "\n{}",
        c.logs()
    );
    // A claim with a MAC that is no member's (after the notice interval, 1 s).
    let lines = forge_until_hook_ran(&c, STRANGER_MAC, &out, 2, CONVERGE);
    assert_eq!(
        lines[1],
        format!("{STRANGER_MAC}||master|conflict_won|default"),
        "{lines:?}\n{}",
        c.logs()
    );
    assert_eq!(c.holders(), vec!["n1".to_string()], "{}", c.logs());
    let status = c.status("n1");
    assert_eq!(status["state"], "master", "{status:#}");
}

/// Appends a check running `check_program` (`/bin/true` or `/bin/false`) with weight
/// "fault" and a keepalived-style `command` hook writing its arguments to a file to
/// `name`'s config; returns that file.
fn with_check_and_hook(c: &Cluster, name: &str, check_program: &str) -> std::path::PathBuf {
    let out = c.dir.path().join(format!("{name}-notify.log"));
    let extra = format!(
        "\n[[check]]\nname = \"svc\"\nkind = \"exec\"\ncommand = [\"{check_program}\"]\n\
         interval_ms = 100\ntimeout_ms = 100\nfall = 1\nrise = 1\nweight = \"fault\"\n\n\
         [notify]\ncommand = {{ command = [\"/bin/sh\", \"-c\", \"echo \\\"$*\\\" >> {}\", \"sh\"], \
         args = \"keepalived\" }}\n",
        out.display()
    );
    let path = c.config_path(name);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&extra);
    std::fs::write(&path, text).unwrap();
    out
}

#[test]
fn the_start_wait_for_checks_runs_no_fault_hook_but_a_failing_check_does() {
    if !require_root("the_start_wait_for_checks_runs_no_fault_hook_but_a_failing_check_does") {
        return;
    }
    // keepalived runs no FAULT script while its scripts have not reported yet; an imported
    // notify script must not see "FAULT" at every start. n1's check passes, n2's fails.
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    let n1_log = with_check_and_hook(&c, "n1", "/bin/true");
    let n2_log = with_check_and_hook(&c, "n2", "/bin/false");
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    let deadline = Instant::now() + CONVERGE;
    let (n1, n2) = loop {
        let (n1, n2) = (hook_lines(&n1_log), hook_lines(&n2_log));
        if n1.len() >= 2 && !n2.is_empty() || Instant::now() > deadline {
            break (n1, n2);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        n1,
        ["INSTANCE default BACKUP 200", "INSTANCE default MASTER 200"],
        "{}",
        c.logs()
    );
    assert_eq!(n2, ["INSTANCE default FAULT 100"], "{}", c.logs());
}
