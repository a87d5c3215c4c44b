//! `haagent doctor` in network namespaces: a healthy node prints only ✔ and exits 0; a
//! peer that is down, a peer with other cluster settings or a foreign CA, a wrong
//! interface, the peer port dropped by nftables and an expired certificate each give their
//! ✘ line and exit 1.

mod support;

use std::process::Output;
use std::time::{Duration, SystemTime};

use support::{nft, node, require_root, Cluster, GATEWAY};

/// n1 and n2 with the gateway witness on (so the doctor pings the gateway too).
fn cluster() -> Cluster {
    Cluster::with(
        &[node("n1", 150), node("n2", 100)],
        &format!("[witness]\ngateway = \"{GATEWAY}\"\n"),
    )
}

/// `haagent doctor --config n1.toml` inside n1's namespace.
fn doctor(c: &Cluster) -> Output {
    let host = c.lab.host("n1").expect("n1");
    host.ns
        .command(support::haagent())
        .args(["doctor", "--config"])
        .arg(c.config_path("n1"))
        .output()
        .expect("run haagent doctor")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit 1 and a ✘ line starting with `check` (and carrying a fix).
fn assert_fails_with(out: &Output, check: &str) {
    let stdout = text(out);
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("✘ {check}")))
        .unwrap_or_else(|| panic!("no ✘ {check} line in:\n{stdout}"));
    assert!(line.contains(" — fix: "), "{line}");
}

#[test]
fn healthy_node_passes_and_a_down_peer_fails() {
    if !require_root("healthy_node_passes_and_a_down_peer_fails") {
        return;
    }
    let mut c = cluster();

    // n2's agent is not running: its host answers ping, its QUIC port does not.
    let out = doctor(&c);
    assert_fails_with(&out, "peer n2");
    assert!(text(&out).contains("answers ping"), "{}", text(&out));

    c.start("n2");
    c.wait_holder("n2", support::CONVERGE);
    let out = doctor(&c);
    let stdout = text(&out);
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("✔ ")), "{stdout}");
    for expected in [
        "✔ interface eth0",
        "✔ peer n2",
        "same cluster fingerprint",
        "✔ gateway",
        "✔ certificate names",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    // The probe is no peer connection: n1's agent never runs, so n2 accepted none.
    assert!(
        !c.logs().contains("connection accepted"),
        "the doctor probe was taken for a peer connection:\n{}",
        c.logs()
    );

    // --json: the same verdict, machine-readable.
    let host = c.lab.host("n1").expect("n1");
    let json = host
        .ns
        .command(support::haagent())
        .args(["doctor", "--json", "--config"])
        .arg(c.config_path("n1"))
        .output()
        .expect("doctor --json");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn wrong_interface_dropped_port_and_expired_certificate_fail() {
    if !require_root("wrong_interface_dropped_port_and_expired_certificate_fail") {
        return;
    }
    let mut c = cluster();
    c.start("n2");
    let config = c.config_path("n1");
    let good = std::fs::read_to_string(&config).expect("config");

    std::fs::write(
        &config,
        good.replace("interface = \"eth0\"", "interface = \"eth9\""),
    )
    .expect("write config");
    assert_fails_with(&doctor(&c), "interface eth9");
    std::fs::write(&config, &good).expect("write config");

    // Another advert interval than n2's: the fingerprint in n2's advert differs.
    c.wait_holder("n2", support::CONVERGE);
    std::fs::write(
        &config,
        format!("{good}\n[election]\nadvert_interval_ms = 100\n"),
    )
    .expect("write config");
    let out = doctor(&c);
    assert_fails_with(&out, "peer n2");
    assert!(
        text(&out).contains("settings differ from this node's: advert_interval_ms"),
        "{}",
        text(&out)
    );
    std::fs::write(&config, &good).expect("write config");

    nft(
        &c,
        "n1",
        "table inet doctor_test {\n  chain input {\n    type filter hook input priority 0;\n    udp dport 5798 drop\n  }\n}\n",
    );
    assert_fails_with(&doctor(&c), "nftables UDP 5798");
    nft(&c, "n1", "delete table inet doctor_test\n");

    // Re-issue n1's certificate so that it ended an hour ago.
    let certs = c.dir.path().join("certs");
    let addr = std::net::IpAddr::V4(c.lab.host("n1").expect("n1").addr);
    let now = SystemTime::now();
    haagent::certs::issue_with_validity(
        &certs,
        "n1",
        &[addr],
        now - Duration::from_secs(86_400),
        now - Duration::from_secs(3600),
        true,
    )
    .expect("issue an expired certificate");
    let out = doctor(&c);
    assert_fails_with(&out, "certificate");
    assert!(text(&out).contains("expired"), "{}", text(&out));
}

/// Beside a running cluster: the port held by this node's own agent is ✔, and the probe to
/// the live peer neither replaces the agents' connection nor moves the VIP.
#[test]
fn doctor_beside_running_agents_disturbs_nothing() {
    if !require_root("doctor_beside_running_agents_disturbs_nothing") {
        return;
    }
    let mut c = cluster();
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", support::CONVERGE);
    c.wait_log("n2", "connection accepted", support::CONVERGE);
    // Let the start-up dials settle (both directions dial; one connection may replace another).
    std::thread::sleep(Duration::from_millis(500));
    let count = |c: &Cluster, what: &str| c.logs().matches(what).count();
    let accepted_before = count(&c, "connection accepted");
    let closed_before = count(&c, "connection closed");

    let out = doctor(&c);
    let stdout = text(&out);
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("✔ ")), "{stdout}");
    assert!(stdout.contains("held by the running haagent"), "{stdout}");

    c.assert_holders_stay(&["n1"], Duration::from_secs(1));
    assert_eq!(
        count(&c, "connection accepted"),
        accepted_before,
        "the probe was taken for a peer connection:\n{}",
        c.logs()
    );
    assert_eq!(
        count(&c, "connection closed"),
        closed_before,
        "a peer connection closed:\n{}",
        c.logs()
    );
}

/// A peer whose certificate comes from another CA fails the handshake: ✘, exit 1.
#[test]
fn a_peer_with_a_foreign_ca_fails() {
    if !require_root("a_peer_with_a_foreign_ca_fails") {
        return;
    }
    let mut c = cluster();
    let rogue = c.dir.path().join("rogue");
    let rogue_s = rogue.to_str().expect("utf-8 path");
    support::run_ok(&["certs", "init", "--dir", rogue_s, "--cluster", "rogue"]);
    let n2_addr = c.lab.host("n2").expect("n2").addr.to_string();
    support::run_ok(&[
        "certs", "issue", "--dir", rogue_s, "--name", "n2", "--ip", &n2_addr,
    ]);
    let cfg = std::fs::read_to_string(c.config_path("n2"))
        .expect("n2 config")
        .replace(&c.dir.path().join("certs").display().to_string(), rogue_s);
    std::fs::write(c.config_path("n2"), cfg).expect("write n2 config");
    c.start("n2");
    c.wait_holder("n2", support::CONVERGE);

    let out = doctor(&c);
    assert_fails_with(&out, "peer n2");
    assert!(!text(&out).contains("no answer"), "{}", text(&out));
}
