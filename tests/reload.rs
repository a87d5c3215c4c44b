//! `haagent reload` on a running cluster, end to end with the real binary in network
//! namespaces: a renewed certificate and a CA rotation through a trust bundle (the runbook in
//! docs/certificates.md), a changed advert interval, peers and VIPs are applied without a
//! restart, without a transition, and without the peers losing each other; a change that
//! needs a restart exits non-zero and stays visible as pending. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

/// How long the holder is watched after a reload.
const STEADY: Duration = Duration::from_millis(500);

fn started_pair() -> Cluster {
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    for n in ["n1", "n2"] {
        c.wait_status(n, CONVERGE, |s| s["peers"][0]["connected"] == true);
    }
    c
}

fn certs_dir(c: &Cluster) -> PathBuf {
    c.dir.path().join("certs")
}

fn transitions(c: &Cluster, name: &str) -> usize {
    c.status(name)["transitions"].as_array().unwrap().len()
}

/// `haagent reload` on `name`, which must succeed; returns its answer.
fn reload_ok(c: &Cluster, name: &str) -> String {
    let out = c.ctl(name, &["reload"]);
    assert!(
        out.status.success(),
        "reload of {name} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `peer` sees `name`'s current certificate serial on its link; returns it.
fn wait_peer_sees_serial(c: &Cluster, name: &str, peer: &str) -> String {
    let serial = c.status(name)["cert_serial"]
        .as_str()
        .expect("own serial")
        .to_string();
    c.wait_status(peer, CONVERGE, |s| {
        s["peers"][0]["cert_serial"] == serial.as_str() && s["peers"][0]["connected"] == true
    });
    serial
}

/// Nothing moved: the same holder, no new transition on either node, both links up.
fn assert_nothing_moved(c: &Cluster, before: (usize, usize)) {
    c.assert_holders_stay(&["n1"], STEADY);
    assert_eq!((transitions(c, "n1"), transitions(c, "n2")), before);
    for n in ["n1", "n2"] {
        let st = c.status(n);
        assert_eq!(st["peers"][0]["connected"], true, "{n}: {st:#}");
        assert_eq!(st["peers"][0]["alive"], true, "{n}: {st:#}");
    }
}

fn install(from: &Path, to: &Path, name: &str) {
    for f in [format!("{name}.pem"), format!("{name}-key.pem")] {
        // Beside, then renamed over: the agent never reads half a file.
        let tmp = to.join(format!(".{f}.new"));
        std::fs::copy(from.join(&f), &tmp).unwrap();
        std::fs::rename(&tmp, to.join(&f)).unwrap();
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_renewed_certificate_is_used_without_a_transition_and_the_peer_sees_its_serial() {
    if !require_root(
        "a_renewed_certificate_is_used_without_a_transition_and_the_peer_sees_its_serial",
    ) {
        return;
    }
    let c = started_pair();
    let before = (transitions(&c, "n1"), transitions(&c, "n2"));
    let old = wait_peer_sees_serial(&c, "n1", "n2");
    let st = c.status("n1");
    assert!(st["cert_days_left"].as_i64().unwrap() > 800, "{st:#}");
    assert_eq!(st["warnings"].as_array().unwrap().len(), 0, "{st:#}");

    let dir = certs_dir(&c);
    run_ok(&[
        "certs",
        "renew",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        "n1",
        "--days",
        "20",
    ]);
    let answer = reload_ok(&c, "n1");
    assert!(answer.contains("certificate (serial"), "{answer}");
    let new = wait_peer_sees_serial(&c, "n1", "n2");
    assert_ne!(new, old);
    assert_nothing_moved(&c, before);

    // 20 days left: a warning in status (and the log), on both sides.
    let st = c.status("n1");
    assert_eq!(st["cert_days_left"], 19, "{st:#}");
    let warnings = st["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("this node's certificate expires in 19 days")),
        "{st:#}"
    );
    let st = c.status("n2");
    assert_eq!(st["peers"][0]["cert_days_left"], 19, "{st:#}");
    assert!(
        st["warnings"].to_string().contains("peer n1's certificate"),
        "{st:#}"
    );
    let text = String::from_utf8_lossy(&c.ctl("n2", &["status"]).stdout).into_owned();
    assert!(
        text.contains("WARNING: peer n1's certificate expires in 19 days"),
        "{text}"
    );
    assert!(c.logs().contains("certificate expires in 19 days"));
}

/// The CA rotation runbook of docs/certificates.md, step by step: trust both CAs, move every
/// node to a certificate from the new CA, drop the old CA. No transition at any step.
#[test]
fn the_ca_rotation_runbook_keeps_the_cluster_up() {
    if !require_root("the_ca_rotation_runbook_keeps_the_cluster_up") {
        return;
    }
    let c = started_pair();
    let before = (transitions(&c, "n1"), transitions(&c, "n2"));
    let dir = certs_dir(&c);
    let new_ca = c.dir.path().join("new-ca");
    let new_ca_s = new_ca.to_str().unwrap();

    // 1. A new CA, beside the old one.
    run_ok(&["certs", "init", "--dir", new_ca_s, "--cluster", "test"]);
    // 2. Every node trusts both: ca.pem becomes the bundle old + new; reload each.
    let old_ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut bundle = old_ca.clone();
    bundle.extend(std::fs::read(new_ca.join("ca.pem")).unwrap());
    write_atomically(&dir.join("ca.pem"), &bundle);
    for n in ["n1", "n2"] {
        reload_ok(&c, n);
    }
    assert_nothing_moved(&c, before);
    // 3. Every node gets a certificate from the new CA; reload each. The peer sees it.
    for n in ["n1", "n2"] {
        let addr = c.lab.host(n).unwrap().addr.to_string();
        run_ok(&[
            "certs", "issue", "--dir", new_ca_s, "--name", n, "--ip", &addr,
        ]);
        install(&new_ca, &dir, n);
        let answer = reload_ok(&c, n);
        assert!(answer.contains("certificate (serial"), "{answer}");
        let other = if n == "n1" { "n2" } else { "n1" };
        wait_peer_sees_serial(&c, n, other);
        assert_nothing_moved(&c, before);
    }
    // 4. The old CA goes: ca.pem holds only the new one; reload each. Connections that
    //    still carried an old-CA certificate are closed and replaced, the links stay up.
    write_atomically(
        &dir.join("ca.pem"),
        &std::fs::read(new_ca.join("ca.pem")).unwrap(),
    );
    for n in ["n1", "n2"] {
        reload_ok(&c, n);
        assert_nothing_moved(&c, before);
    }
    for (n, other) in [("n1", "n2"), ("n2", "n1")] {
        wait_peer_sees_serial(&c, n, other);
    }
    // A node still on the old CA's certificate could no longer join: the old CA is gone.
    let st = c.status("n1");
    assert_eq!(st["state"], "master", "{st:#}");
}

/// Appends `toml` to `name`'s config file (the harness writes no `[election]` table, so
/// this adds one).
fn append_config(c: &Cluster, name: &str, toml: &str) {
    let path = c.config_path(name);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(toml);
    std::fs::write(&path, text).unwrap();
}

#[test]
fn a_changed_advert_interval_is_advertised_at_once_without_a_transition() {
    if !require_root("a_changed_advert_interval_is_advertised_at_once_without_a_transition") {
        return;
    }
    let c = started_pair();
    let before = (transitions(&c, "n1"), transitions(&c, "n2"));
    append_config(&c, "n1", "[election]\nadvert_interval_ms = 80\n");
    let answer = reload_ok(&c, "n1");
    assert!(answer.contains("advert_interval_ms 50 → 80"), "{answer}");
    // n1's adverts carry the new interval (and fingerprint): n2 sees the drift at once.
    c.wait_status("n2", CONVERGE, |s| {
        s["peers"][0]["config_drift"]
            .to_string()
            .contains("advert_interval_ms")
    });
    assert_nothing_moved(&c, before);
    append_config(&c, "n2", "[election]\nadvert_interval_ms = 80\n");
    reload_ok(&c, "n2");
    for n in ["n1", "n2"] {
        c.wait_status(n, CONVERGE, |s| {
            s["peers"][0]["config_drift"].as_array().unwrap().is_empty()
        });
    }
    assert_nothing_moved(&c, before);
}

#[test]
fn a_change_that_needs_a_restart_exits_non_zero_and_stays_pending() {
    if !require_root("a_change_that_needs_a_restart_exits_non_zero_and_stays_pending") {
        return;
    }
    let c = started_pair();
    let before = (transitions(&c, "n1"), transitions(&c, "n2"));
    let path = c.config_path("n1");
    let original = std::fs::read_to_string(&path).unwrap();
    // One change that needs a restart, one that applies live, in the same reload.
    let edited = original
        .replace("interface = \"eth0\"", "interface = \"eth9\"")
        .replace("priority = 200", "priority = 190");
    std::fs::write(&path, &edited).unwrap();
    let out = c.ctl("n1", &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("applied priority 200 → 190"), "{err}");
    assert!(
        err.contains("NOT applied, restart the agent to apply: interface eth0 → eth9"),
        "{err}"
    );
    let st = c.status("n1");
    assert_eq!(st["priority"]["base"], 190, "{st:#}");
    assert_eq!(
        st["pending_restart"],
        serde_json::json!(["interface eth0 → eth9"]),
        "{st:#}"
    );
    let text = String::from_utf8_lossy(&c.ctl("n1", &["status"]).stdout).into_owned();
    assert!(
        text.contains("PENDING RESTART: interface eth0 → eth9"),
        "{text}"
    );
    // Another reload of the same file says so again: never "nothing changed".
    let out = c.ctl("n1", &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("interface eth0 → eth9"));
    assert_nothing_moved(&c, before);
    // Back to the running interface: nothing pending any more.
    std::fs::write(&path, edited.replace("eth9", "eth0")).unwrap();
    reload_ok(&c, "n1");
    assert_eq!(c.status("n1")["pending_restart"], serde_json::json!([]));
}

#[test]
fn a_third_peer_added_by_reload_joins_without_a_transition() {
    if !require_root("a_third_peer_added_by_reload_joins_without_a_transition") {
        return;
    }
    let all = [node("n1", 200), node("n2", 100), node("n3", 50)];
    let mut c = Cluster::new(&all);
    let certs = certs_dir(&c);
    // n1 and n2 start as a pair; n3's config already names both.
    for n in &all[..2] {
        c.write_config(n, &all[..2], &certs);
    }
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    for n in ["n1", "n2"] {
        c.wait_status(n, CONVERGE, |s| s["peers"][0]["connected"] == true);
    }
    let before = (transitions(&c, "n1"), transitions(&c, "n2"));
    for n in &all[..2] {
        c.write_config(n, &all, &certs);
        let answer = reload_ok(&c, n.name);
        assert!(answer.contains("peers "), "{answer}");
    }
    c.start("n3");
    for n in ["n1", "n2", "n3"] {
        c.wait_status(n, CONVERGE, |s| {
            let peers = s["peers"].as_array().unwrap();
            peers.len() == 2
                && peers
                    .iter()
                    .all(|p| p["connected"] == true && p["alive"] == true)
        });
    }
    assert_eq!(c.status("n3")["state"], "backup");
    c.assert_holders_stay(&["n1"], STEADY);
    assert_eq!((transitions(&c, "n1"), transitions(&c, "n2")), before);
    let st = c.status("n1");
    assert_eq!(st["quorum"]["cluster_size"], 3, "{st:#}");
    assert_eq!(
        st["peers"][0]["name"], "n2",
        "the old peer keeps its place: {st:#}"
    );
}

#[test]
fn a_peer_s_new_address_is_dialled_after_reload_without_a_transition() {
    if !require_root("a_peer_s_new_address_is_dialled_after_reload_without_a_transition") {
        return;
    }
    let mut c = started_pair();
    let before = transitions(&c, "n1");
    // n2 moves to another address (a second one on its interface) and restarts there.
    let old = c.lab.host("n2").unwrap().addr.to_string();
    let new = "192.0.2.40";
    c.lab
        .host("n2")
        .unwrap()
        .ns
        .ip(&["addr", "add", &format!("{new}/24"), "dev", "eth0"])
        .unwrap();
    let agent = c.lab.agent("n2").unwrap();
    agent.signal(libc::SIGTERM).unwrap();
    agent.wait_exit(Duration::from_secs(5)).expect("n2 stops");
    let path = c.config_path("n2");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            &format!("listen = \"{old}\""),
            &format!("listen = \"{new}\""),
            1,
        ),
    )
    .unwrap();
    c.start("n2");
    // n1 learns the new address by reload and dials it.
    let path = c.config_path("n1");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            &format!("address = \"{old}\""),
            &format!("address = \"{new}\""),
            1,
        ),
    )
    .unwrap();
    let answer = reload_ok(&c, "n1");
    assert!(answer.contains(&format!("n2 ({new}:5798)")), "{answer}");
    c.wait_status("n1", CONVERGE, |s| {
        s["peers"][0]["address"] == format!("{new}:5798").as_str()
            && s["peers"][0]["connected"] == true
            && s["peers"][0]["alive"] == true
    });
    c.wait_log("n1", &format!("remote={new}:5798 dir=Outbound"), CONVERGE);
    c.assert_holders_stay(&["n1"], STEADY);
    assert_eq!(transitions(&c, "n1"), before);
    assert_eq!(c.status("n1")["state"], "master");
}

fn set_vips(c: &Cluster, name: &str, list: &str) {
    let path = c.config_path(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("addresses = [").unwrap();
    let end = start + text[start..].find(']').unwrap() + 1;
    let text = format!("{}addresses = [{list}]{}", &text[..start], &text[end..]);
    std::fs::write(&path, text).unwrap();
}

#[test]
fn vips_added_and_dropped_by_reload_move_on_the_master_without_a_transition() {
    if !require_root("vips_added_and_dropped_by_reload_move_on_the_master_without_a_transition") {
        return;
    }
    let c = started_pair();
    let before = (transitions(&c, "n1"), transitions(&c, "n2"));
    let second = std::net::Ipv4Addr::new(192, 0, 2, 101);
    let holders_of = |vip| c.lab.holders(vip).unwrap();
    let wait_holders = |vip, want: &[&str]| {
        let start = std::time::Instant::now();
        while holders_of(vip) != want {
            assert!(start.elapsed() < CONVERGE, "{vip}: {:?}", holders_of(vip));
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for n in ["n1", "n2"] {
        set_vips(&c, n, &format!("\"{VIP}/24\", \"{second}/24\""));
        let answer = reload_ok(&c, n);
        assert!(
            answer.contains(&format!("vips {VIP}/24 → {VIP}/24, {second}/24")),
            "{answer}"
        );
    }
    wait_holders(second, &["n1"]);
    assert_nothing_moved(&c, before);
    let st = c.status("n1");
    let held: Vec<_> = st["vips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["address"].as_str().unwrap().to_string(),
                v["held_here"] == true,
            )
        })
        .collect();
    assert_eq!(
        held,
        vec![(format!("{VIP}/24"), true), (format!("{second}/24"), true)],
        "{st:#}"
    );
    // The master announced it: the client reaches the new VIP.
    let client = &c.lab.host("client").unwrap().ns;
    let ping = client
        .command("ping")
        .args(["-c", "1", "-W", "2", &second.to_string()])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");
    // No drift between the nodes once both have the same list.
    c.wait_status("n2", CONVERGE, |s| {
        s["peers"][0]["config_drift"].as_array().unwrap().is_empty()
    });

    // The first VIP dropped: the master deletes it, keeps the other, nobody transitions.
    for n in ["n1", "n2"] {
        set_vips(&c, n, &format!("\"{second}/24\""));
        reload_ok(&c, n);
    }
    wait_holders(VIP, &[]);
    for _ in 0..20 {
        assert_eq!(holders_of(second), vec!["n1".to_string()]);
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!((transitions(&c, "n1"), transitions(&c, "n2")), before);
    assert_eq!(c.status("n1")["state"], "master");
    assert_eq!(c.status("n2")["state"], "backup");
}
