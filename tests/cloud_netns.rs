//! Issue 14, clouds: a network that answers ARP for every address itself (a host on the
//! segment, [`support::arp_responder`]), and the cloud mover of docs/cloud.md. The real
//! binary in namespaces.
//!
//! Needs root. Without it every test prints `SKIPPED …`; with `HAAGENT_REQUIRE_NETNS` set
//! (as CI does) a skip is a failure.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::arp_responder::ArpResponder;
use support::*;

/// The host that answers ARP for everyone (the "fabric").
const FABRIC_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

/// n1 (200) and n2 (100) with the metrics endpoint, a recording mover each (one line per
/// run: `ACTION NODE OLD_HOLDER`, appended to `<dir>/<node>-mover.log`), `vip_extra` in
/// each `[vip]`, and the fabric host (not answering yet). Returns the fabric's MAC too.
fn cloud_pair(ignore_fabric: bool) -> (Cluster, String) {
    let mut c = Cluster::with(
        &[node("n1", 200), node("n2", 100)],
        "[metrics]\nlisten = \"127.0.0.1:9798\"\n",
    );
    c.lab.add_host("fabric", FABRIC_ADDR).unwrap();
    let fabric = support::veth::mac(&c.lab.host("fabric").unwrap().ns, "eth0");
    for name in ["n1", "n2"] {
        if ignore_fabric {
            add_vip_setting(&c, name, &format!("ignore_arp_from = [\"{fabric}\"]"));
        }
        let log = mover_log(&c, name);
        let path = c.config_path(name);
        let text = std::fs::read_to_string(&path).unwrap()
            + &format!(
                "\n[mover]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$HAAGENT_MOVER_ACTION \
                 $HAAGENT_NODE $HAAGENT_OLD_HOLDER\\\" >> {}\"]\ntimeout_ms = 5000\n",
                log.display()
            );
        std::fs::write(&path, text).unwrap();
    }
    (c, fabric)
}

fn mover_log(c: &Cluster, name: &str) -> PathBuf {
    c.dir.path().join(format!("{name}-mover.log"))
}

/// The lines of `name`'s mover log once it has `n` of them (or panics after `CONVERGE`).
fn mover_lines(c: &Cluster, name: &str, n: usize) -> Vec<String> {
    let path = mover_log(c, name);
    let deadline = Instant::now() + CONVERGE;
    loop {
        let lines = read_lines(&path);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s mover ran {} times, expected {n}: {lines:?}\n{}",
            lines.len(),
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Starts answering ARP from the fabric host for everything but the real hosts.
fn fabric_answers(c: &Cluster) -> ArpResponder {
    let spare: Vec<Ipv4Addr> = c
        .lab
        .hosts
        .iter()
        .filter(|h| h.name != "fabric")
        .map(|h| h.addr)
        .collect();
    ArpResponder::start(c.lab.host("fabric").unwrap().ns.name(), spare)
}

/// n1 is killed (cable pulled too, so its kernel cannot answer for the VIP either).
fn master_dies(c: &mut Cluster) -> Instant {
    c.lab.agent("n1").unwrap().signal(libc::SIGKILL).unwrap();
    c.lab.set_link("n1", false).unwrap();
    Instant::now()
}

/// The documented cloud setting (`ignore_arp_from` = the fabric's MAC, a mover): the
/// backup takes over at normal speed although every probe is answered, the ignored answers
/// are counted, and the mover runs once per claim and once per release, in order, with
/// the old holder.
#[test]
fn with_the_cloud_setting_the_backup_takes_over_and_the_mover_moves() {
    if !require_root("with_the_cloud_setting_the_backup_takes_over_and_the_mover_moves") {
        return;
    }
    let (mut c, _fabric) = cloud_pair(true);
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    c.wait_status("n1", CONVERGE, |s| s["peers"][0]["alive"] == true);
    let first = mover_lines(&c, "n1", 1);
    assert!(first[0].starts_with("claim n1"), "{first:?}");
    let fabric = fabric_answers(&c);

    let died = master_dies(&mut c);
    c.wait_holder("n2", TAKEOVER);
    let took = died.elapsed();
    eprintln!(
        "n2 claimed {} ms after n1 died, the fabric answered {} ARP requests",
        took.as_millis(),
        fabric.answered()
    );
    assert!(fabric.answered() > 0, "the fabric answered n2's probes");
    // Normal speed: master-down (3 × 50 ms adverts + skew) and a probe window, with room
    // for a loaded machine; a blocked claim would never come.
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(mover_lines(&c, "n2", 1), ["claim n2 n1"]);
    let status = c.wait_status("n2", CONVERGE, |s| {
        s["groups"][0]["mover"]["state"] == "ok" && s["counters"]["arp_ignored"].as_u64() > Some(0)
    });
    assert_eq!(status["groups"][0]["state"], "master");
    assert_eq!(status["groups"][0]["mover"]["action"], "claim");
    assert_eq!(status["groups"][0]["mover"]["attempts"], 1);
    assert!(status["claim_blocked"].is_null(), "{status:#}");
    let text = String::from_utf8(c.ctl("n2", &["status"]).stdout).unwrap();
    assert!(text.contains("mover: claim ok (1 attempt, "), "{text}");
    assert!(
        text.contains("ARP frames ignored ([vip] ignore_arp_from): "),
        "{text}"
    );
    let metrics = scrape(&c, "n2");
    assert!(
        series_value(&metrics, "haagent_arp_ignored_total{kind=\"probe_answer\"}") > Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        series_value(
            &metrics,
            "haagent_mover_runs_total{group=\"default\",action=\"claim\",outcome=\"ok\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // n1 comes back and preempts: n2 releases (its mover runs "release"), n1 claims again.
    c.lab.set_link("n1", true).unwrap();
    c.start("n1");
    c.wait_sole_holder("n1", CONVERGE);
    assert_eq!(mover_lines(&c, "n2", 2), ["claim n2 n1", "release n2 "]);
    let n1 = mover_lines(&c, "n1", 2);
    assert_eq!(n1[1], "claim n1 n2", "{n1:?}");
    // Exactly once each: nothing more comes.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_lines(&mover_log(&c, "n2")).len(), 2);
    assert_eq!(read_lines(&mover_log(&c, "n1")).len(), 2);
    drop(fabric);
}

/// The defaults: every probe is answered by the fabric, a host that is not a member, so
/// the backup does not claim; status, log and metrics say by whom, for how long and which
/// policy keeps it so.
#[test]
fn with_the_defaults_the_fabric_blocks_the_claim_and_says_why() {
    if !require_root("with_the_defaults_the_fabric_blocks_the_claim_and_says_why") {
        return;
    }
    let (mut c, fabric_mac) = cloud_pair(false);
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    c.wait_status("n1", CONVERGE, |s| s["peers"][0]["alive"] == true);
    let fabric = fabric_answers(&c);
    master_dies(&mut c);
    let status = c.wait_status("n2", TAKEOVER * 2, |s| {
        s["claim_blocked"]["for_ms"].as_u64().unwrap_or(0) > 1000
    });
    assert!(fabric.answered() > 0);
    assert_eq!(status["state"], "backup");
    let blocked = &status["groups"][0]["claim_blocked"];
    assert_eq!(blocked["mac"], fabric_mac.as_str(), "{status:#}");
    assert!(blocked["member"].is_null(), "{status:#}");
    let policy = blocked["policy"].as_str().unwrap_or_default();
    assert!(
        policy.starts_with("foreign_holder_timeout_ms = 0 (the default): never claim")
            && policy.contains("[vip] ignore_arp_from"),
        "{policy}"
    );
    assert_eq!(status["counters"]["arp_ignored"], 0);
    let text = String::from_utf8(c.ctl("n2", &["status"]).stdout).unwrap();
    assert!(
        text.contains(&format!(
            "NOT CLAIMING THE VIPS: {fabric_mac} (not a cluster member)"
        )) && text.contains("policy: foreign_holder_timeout_ms = 0 (the default)"),
        "{text}"
    );
    let log = c.lab.agent("n2").unwrap().log_text();
    let line = log
        .lines()
        .find(|l| l.contains("not claiming the VIPs: answered by") && l.contains(&fabric_mac))
        .unwrap_or_else(|| panic!("no claim-blocked line naming {fabric_mac}:\n{log}"));
    assert!(
        line.contains("(not a cluster member)") && line.contains("foreign_holder_timeout_ms = 0"),
        "{line}"
    );
    // The gauge follows the once-a-second metrics refresh.
    let deadline = Instant::now() + CONVERGE;
    let metrics = loop {
        let metrics = scrape(&c, "n2");
        if series_value(&metrics, "haagent_claim_blocked_seconds") > Some(1.0) {
            break metrics;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        series_value(&metrics, "haagent_notices_total{cause=\"claim_blocked\"}") >= Some(1.0),
        "{metrics}"
    );
    // n2 never claimed, so its mover never ran.
    assert!(!c.holders().contains(&"n2".to_string()));
    assert!(read_lines(&mover_log(&c, "n2")).is_empty());
}

/// Appends `toml` to `name`'s config.
fn append(c: &Cluster, name: &str, toml: &str) {
    let path = c.config_path(name);
    let text = std::fs::read_to_string(&path).unwrap() + "\n" + toml;
    std::fs::write(&path, text).unwrap();
}

/// `wait = true`: the group reports master (status, `master` hook, metrics) only once the
/// claim's mover succeeded; until then status says the claim waits for it.
#[test]
fn with_wait_the_group_is_master_only_once_the_mover_succeeded() {
    if !require_root("with_wait_the_group_is_master_only_once_the_mover_succeeded") {
        return;
    }
    let mut c = Cluster::with(
        &[node("n1", 200), node("n2", 100)],
        "[metrics]\nlisten = \"127.0.0.1:9798\"\n",
    );
    let gate = c.dir.path().join("provider-answers");
    let hook = c.dir.path().join("master-hook");
    append(
        &c,
        "n1",
        &format!(
            "[mover]\ncommand = [\"/bin/sh\", \"-c\", \"while [ ! -e {} ]; do sleep 0.02; done\"]\n\
             timeout_ms = 30000\nwait = true\n\n[notify]\nmaster = [\"/usr/bin/touch\", \"{}\"]\n",
            gate.display(),
            hook.display()
        ),
    );
    c.start("n1");
    // The election claimed (the VIPs are installed) but the claim does not count yet.
    c.wait_holder("n1", CONVERGE);
    let status = c.wait_status("n1", CONVERGE, |s| {
        s["groups"][0]["mover"]["claim_waiting"] == true
    });
    assert_eq!(status["groups"][0]["state"], "backup", "{status:#}");
    assert_eq!(status["state"], "backup");
    assert_eq!(status["groups"][0]["mover"]["state"], "running");
    let text = String::from_utf8(c.ctl("n1", &["status"]).stdout).unwrap();
    assert!(
        text.contains("mover: claim running (attempt 1), the claim waits for it"),
        "{text}"
    );
    assert_eq!(
        series_value(&scrape(&c, "n1"), "haagent_state{state=\"master\"}"),
        Some(0.0)
    );
    assert!(!hook.exists(), "the master hook waits for the mover");

    std::fs::write(&gate, "").unwrap();
    let status = c.wait_status("n1", CONVERGE, |s| s["groups"][0]["state"] == "master");
    assert_eq!(status["groups"][0]["mover"]["claim_waiting"], false);
    assert_eq!(status["groups"][0]["mover"]["state"], "ok");
    let deadline = Instant::now() + CONVERGE;
    while !hook.exists() {
        assert!(Instant::now() < deadline, "the master hook never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        series_value(&scrape(&c, "n1"), "haagent_state{state=\"master\"}"),
        Some(1.0)
    );
}

/// `wait = true` and every attempt fails: the node gives up the addresses it could not
/// move (fault, `vip_install`, the mover's error as the reason) and the peer takes over.
#[test]
fn with_wait_a_failed_mover_hands_the_addresses_to_the_peer() {
    if !require_root("with_wait_a_failed_mover_hands_the_addresses_to_the_peer") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    append(
        &c,
        "n1",
        "[mover]\ncommand = [\"/bin/sh\", \"-c\", \"echo 'UnauthorizedOperation' >&2; exit 1\"]\n\
         retries = 1\nretry_delay_ms = 100\nwait = true\n",
    );
    c.start("n1");
    c.start("n2");
    c.wait_log("n1", "mover failed: every attempt failed", CONVERGE);
    let status = c.wait_status("n1", CONVERGE, |s| s["groups"][0]["state"] == "fault");
    let fault = &status["groups"][0]["faults"][0];
    assert_eq!(fault["cause"], "vip_install", "{status:#}");
    let reason = fault["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(
            "cloud mover failed after 2 attempt(s): /bin/sh exit status: 1: UnauthorizedOperation"
        ),
        "{reason}"
    );
    // The release that follows the fault runs the (failing) mover too.
    let mover = &status["groups"][0]["mover"];
    assert!(
        mover["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("UnauthorizedOperation")),
        "{status:#}"
    );
    c.wait_sole_holder("n2", CONVERGE);
    c.wait_log("n1", "mover attempt failed", CONVERGE);
}
