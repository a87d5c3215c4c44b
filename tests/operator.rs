//! The operator's view, end to end with real Nginx in every node namespace and a client
//! probing the VIP over HTTP every 10 ms: health checks move the VIP, `status --json`
//! matches reality, `handover` loses no request, `maintenance` keeps the VIP away, metrics
//! scrape, and reloads neither flap nor accept a broken file. Needs root.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use haagent_lab::probe::{HttpProbe, ProbeSample};
use support::*;

/// The quick-mode default check: GET / on the local Nginx, fault after 2 failures.
const NGINX_CHECK: &str =
    "[[check]]\nname = \"nginx\"\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\n\
                           interval_ms = 100\ntimeout_ms = 100\nfall = 2\nrise = 2\n";

fn nodes() -> [Node; 2] {
    [
        Node {
            name: "n1",
            priority: 200,
            extra: NGINX_CHECK,
        },
        Node {
            name: "n2",
            priority: 100,
            extra: NGINX_CHECK,
        },
    ]
}

fn probe(c: &Cluster) -> HttpProbe {
    let client = c.lab.host("client").unwrap().ns.name().to_string();
    HttpProbe::start(&client, SocketAddr::from((VIP, 80))).unwrap()
}

/// The longest run of failed requests, from the first failure to the next success.
fn outage(samples: &[ProbeSample]) -> Duration {
    let mut worst = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for s in samples {
        match (s.ok, since) {
            (false, None) => since = Some(s.at),
            (true, Some(t)) => {
                worst = worst.max(s.at - t);
                since = None;
            }
            _ => {}
        }
    }
    worst
}

fn wait_all_ok(p: &HttpProbe, server: &str, timeout: Duration) {
    if let Err(recent) = p.wait_steady_from(server, timeout) {
        panic!(
            "client never got steady answers from {server}: {:?}",
            recent.last()
        );
    }
}

fn started_cluster() -> (Cluster, Vec<haagent_lab::proc::Proc>) {
    let mut c = Cluster::new(&nodes());
    let servers = vec![c.start_nginx("n1"), c.start_nginx("n2")];
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    (c, servers)
}

#[test]
fn nginx_dying_on_the_master_moves_the_vip() {
    if !require_root("nginx_dying_on_the_master_moves_the_vip") {
        return;
    }
    let (c, mut servers) = started_cluster();
    let p = probe(&c);
    wait_all_ok(&p, "n1", CONVERGE);
    let t0 = Instant::now();
    haagent_lab::web::stop(&mut servers[0]);
    let took = c.wait_sole_holder("n2", Duration::from_secs(5));
    wait_all_ok(&p, "n2", Duration::from_secs(5));
    let samples = p.between(t0, Instant::now());
    eprintln!(
        "nginx stopped on the master: n2 holds the VIP after {} ms, client outage {} ms ({} of {} requests failed)",
        took.as_millis(),
        outage(&samples).as_millis(),
        samples.iter().filter(|s| !s.ok).count(),
        samples.len()
    );
    let st = c.status("n1");
    assert_eq!(st["state"], "fault", "{st:#}");
    assert_eq!(st["checks"][0]["healthy"], false);
}

#[test]
fn status_json_tells_the_truth_in_every_state() {
    if !require_root("status_json_tells_the_truth_in_every_state") {
        return;
    }
    let (c, _servers) = started_cluster();
    // n1 holds the VIP; n2 may still be waiting for its first check result (fault) and
    // n1 learns n2's state from its next advert: wait for the steady state.
    let n2 = c.wait_status("n2", CONVERGE, |s| s["state"] == "backup");
    let n1 = c.wait_status("n1", CONVERGE, |s| s["peers"][0]["state"] == "backup");
    assert_eq!(n1["version"], 1);
    assert_eq!(n1["state"], "master");
    assert_eq!(n1["master"], "n1");
    assert_eq!(n1["vips"][0]["address"], "192.0.2.100/24");
    assert_eq!(n1["vips"][0]["held_here"], true);
    assert_eq!(n1["priority"]["base"], 200);
    assert_eq!(n1["priority"]["effective"], 200);
    assert_eq!(n1["peers"][0]["name"], "n2");
    assert_eq!(n1["peers"][0]["alive"], true);
    assert_eq!(n1["peers"][0]["connected"], true);
    assert_eq!(n1["peers"][0]["state"], "backup");
    assert!(n1["peers"][0]["rtt_ms"].as_f64().is_some());
    assert!(n1["peers"][0]["cert_not_after"].as_str().is_some());
    assert_eq!(n1["checks"][0]["name"], "nginx");
    assert_eq!(n1["checks"][0]["healthy"], true);
    assert!(n1["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["to"] == "master"));
    assert_eq!(n2["state"], "backup");
    assert_eq!(n2["master"], "n1");
    assert_eq!(n2["vips"][0]["held_here"], false);

    let out = c.ctl("n1", &["maintenance", "on"]);
    assert!(out.status.success());
    c.wait_sole_holder("n2", TAKEOVER);
    let n1 = c.status("n1");
    assert_eq!(n1["state"], "fault");
    assert_eq!(n1["maintenance"], true);
    assert_eq!(n1["vips"][0]["held_here"], false);
    let n2 = c.wait_status("n2", CONVERGE, |s| s["peers"][0]["state"] == "fault");
    assert_eq!(n2["state"], "master");
    assert_eq!(n2["vips"][0]["held_here"], true);

    // The human form names the same facts.
    let text = String::from_utf8(c.ctl("n2", &["status"]).stdout).unwrap();
    assert!(text.starts_with("n2 (haagent): master"), "{text}");
    assert!(text.contains("vip 192.0.2.100/24: held here"), "{text}");
}

#[test]
fn handover_loses_no_request() {
    if !require_root("handover_loses_no_request") {
        return;
    }
    let (c, _servers) = started_cluster();
    let p = probe(&c);
    wait_all_ok(&p, "n1", CONVERGE);
    let t0 = Instant::now();
    let out = c.ctl("n1", &["handover", "--to", "n2"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    assert_no_request_lost_moving_to_n2(&c, &p, t0, "handover");
    // n1 outranks n2 but handed over on purpose: it does not take the VIP back.
    c.assert_holders_stay(&["n2"], Duration::from_secs(1));
}

#[test]
fn sigterm_on_the_master_loses_no_request() {
    if !require_root("sigterm_on_the_master_loses_no_request") {
        return;
    }
    let (mut c, _servers) = started_cluster();
    let p = probe(&c);
    wait_all_ok(&p, "n1", CONVERGE);
    let t0 = Instant::now();
    c.lab.agent("n1").unwrap().signal(libc::SIGTERM).unwrap();
    assert_no_request_lost_moving_to_n2(&c, &p, t0, "SIGTERM on the master");
}

/// Waits until n2 alone holds the VIP and serves every request, then asserts that no
/// request since `t0` failed, except at most the ones the move itself cannot save: a
/// connection open at the instant of the gratuitous ARP
/// ([`haagent_lab::probe::unexplained_failures`]).
fn assert_no_request_lost_moving_to_n2(c: &Cluster, p: &HttpProbe, t0: Instant, what: &str) {
    c.wait_sole_holder("n2", TAKEOVER);
    let moved = Instant::now();
    wait_all_ok(p, "n2", Duration::from_secs(5));
    let samples = p.between(t0, Instant::now());
    let (straddled, failed) = haagent_lab::probe::unexplained_failures(&samples, t0, moved);
    eprintln!(
        "{what}: {} failed of {} requests ({straddled} straddled the move)",
        failed.len() + straddled,
        samples.len()
    );
    assert!(
        failed.is_empty(),
        "{what}: requests failed: {failed:?}\n{}",
        c.logs()
    );
}

#[test]
fn maintenance_moves_the_vip_away_and_keeps_it_away() {
    if !require_root("maintenance_moves_the_vip_away_and_keeps_it_away") {
        return;
    }
    let (c, _servers) = started_cluster();
    assert!(c.ctl("n1", &["maintenance", "on"]).status.success());
    c.wait_sole_holder("n2", TAKEOVER);
    // n1 has the higher priority and preempt on: only maintenance keeps it away.
    c.assert_holders_stay(&["n2"], Duration::from_secs(2));
    assert!(c.ctl("n1", &["maintenance", "off"]).status.success());
    c.wait_sole_holder("n1", CONVERGE);
}

/// Maintenance mode survives a restart (issue 10): the flag is persisted in `[state] dir`,
/// and a node that starts with it on stays out of the election (status says so) and does
/// not take the VIP, although it has the higher priority.
#[test]
fn maintenance_survives_a_restart() {
    if !require_root("maintenance_survives_a_restart") {
        return;
    }
    let (mut c, _servers) = started_cluster();
    assert!(c.ctl("n1", &["maintenance", "on"]).status.success());
    c.wait_sole_holder("n2", TAKEOVER);
    let flag = c.state_dir("n1").join("maintenance");
    assert_eq!(std::fs::read_to_string(&flag).unwrap(), "on\n");

    // A crash, not a graceful stop: nothing is written on the way out.
    c.lab.agent("n1").unwrap().signal(libc::SIGKILL).unwrap();
    assert!(c.lab.agent("n1").unwrap().wait_exit(CONVERGE).is_some());
    c.start("n1");
    // The control socket is bound before this line; its requests are served by the loop.
    c.wait_log("n1", "haagent started", CONVERGE);
    let n1 = c.wait_status("n1", CONVERGE, |s| s["maintenance"] == true);
    assert_eq!(n1["state"], "fault", "{n1:#}");
    c.wait_log(
        "n1",
        "maintenance mode persisted by an earlier run",
        CONVERGE,
    );
    // It hears n2 (so nothing but maintenance keeps it away) and never takes the VIP.
    c.wait_status("n1", CONVERGE, |s| s["peers"][0]["alive"] == true);
    c.assert_holders_stay(&["n2"], Duration::from_secs(2));

    // `off` is persisted too, and n1 rejoins and preempts.
    assert!(c.ctl("n1", &["maintenance", "off"]).status.success());
    assert_eq!(std::fs::read_to_string(&flag).unwrap(), "off\n");
    c.wait_sole_holder("n1", CONVERGE);
}

/// n1 and n2 with Nginx and the metrics endpoint on, n1 holding the VIP.
fn metrics_cluster() -> (Cluster, [haagent_lab::proc::Proc; 2]) {
    let mut c = Cluster::with(&nodes(), "[metrics]\nlisten = \"127.0.0.1:9798\"\n");
    let servers = [c.start_nginx("n1"), c.start_nginx("n2")];
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    (c, servers)
}

#[test]
fn metrics_scrape_and_parse() {
    if !require_root("metrics_scrape_and_parse") {
        return;
    }
    let (c, _servers) = metrics_cluster();
    let text = scrape_until(&c, "n1", "haagent_peer_up{peer=\"n2\"}", 1.0, CONVERGE);
    let value = |series: &str| -> f64 {
        series_value(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(value("haagent_state{state=\"master\"}"), 1.0);
    assert_eq!(value("haagent_state{state=\"backup\"}"), 0.0);
    assert!(value("haagent_adverts_sent_total") > 0.0);
    assert!(value("haagent_adverts_received_total{peer=\"n2\"}") > 0.0);
    assert_eq!(value("haagent_peer_up{peer=\"n2\"}"), 1.0);
    assert_eq!(value("haagent_check_up{check=\"nginx\"}"), 1.0);
    assert_eq!(value("haagent_priority{kind=\"effective\"}"), 200.0);
    assert!(value("haagent_cert_expiry_timestamp_seconds{cert=\"node\"}") > 1.7e9);
    assert!(text.trim_end().ends_with("# EOF"));
}

/// A planned handover is counted as one, on both sides, by the real agents' endpoints
/// (it used to be exported as `reason="other"`: the daemon's label table and the metrics
/// allow-list disagreed).
#[test]
fn a_planned_handover_is_counted_as_a_handover_on_both_nodes() {
    if !require_root("a_planned_handover_is_counted_as_a_handover_on_both_nodes") {
        return;
    }
    let (c, _servers) = metrics_cluster();
    let out = c.ctl("n1", &["handover", "--to", "n2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    c.wait_sole_holder("n2", TAKEOVER);
    let n2 = scrape(&c, "n2");
    assert_eq!(
        series_value(
            &n2,
            "haagent_transitions_total{to=\"master\",reason=\"handover\"}"
        ),
        Some(1.0),
        "{n2}"
    );
    let n1 = scrape(&c, "n1");
    assert_eq!(
        series_value(
            &n1,
            "haagent_transitions_total{to=\"backup\",reason=\"handover\"}"
        ),
        Some(1.0),
        "{n1}"
    );
    assert_eq!(
        series_value(&n1, "haagent_notices_total{cause=\"handover_started\"}"),
        Some(1.0),
        "{n1}"
    );
    for (name, text) in [("n1", &n1), ("n2", &n2)] {
        let other = text
            .lines()
            .find(|l| l.starts_with("haagent_transitions_total") && l.contains("\"other\""));
        assert_eq!(other, None, "{name}:\n{text}");
    }
}

#[test]
fn reload_without_election_changes_causes_no_transition_and_a_broken_file_is_refused() {
    if !require_root(
        "reload_without_election_changes_causes_no_transition_and_a_broken_file_is_refused",
    ) {
        return;
    }
    let (c, _servers) = started_cluster();
    let before = c.status("n1")["transitions"].as_array().unwrap().len();
    let path = c.config_path("n1");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{original}[log]\nlevel = \"debug\"\n")).unwrap();
    let out = c.ctl("n1", &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("log level debug"));
    c.assert_holders_stay(&["n1"], Duration::from_millis(500));
    let st = c.status("n1");
    assert_eq!(
        st["transitions"].as_array().unwrap().len(),
        before,
        "{st:#}"
    );
    assert_eq!(st["state"], "master");

    std::fs::write(&path, original.replace("priority = 200", "priority = 300")).unwrap();
    let out = c.ctl("n1", &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:", path.display())) && err.contains("priority"),
        "{err}"
    );
    let st = c.status("n1");
    assert_eq!(
        st["state"], "master",
        "the agent keeps running on its old config"
    );
    assert_eq!(st["priority"]["base"], 200);
}

/// Upper-bound estimate of the master's advert inter-arrival times at the backup, from
/// `(sample time, peers[0].last_advert_age_ms)` samples: `sample − age` is when the backup
/// last heard the master; each distinct value is one arrival. An arrival the sampler missed
/// merges two gaps into one, so the estimate can only err on the long side.
fn advert_gaps(samples: &[(Instant, f64)]) -> Vec<Duration> {
    let mut arrivals: Vec<Instant> = samples
        .iter()
        .filter_map(|(at, age)| at.checked_sub(Duration::from_secs_f64(age / 1000.0)))
        .collect();
    arrivals.sort();
    // The same arrival seen twice differs only by the status round trip's jitter.
    arrivals.dedup_by(|b, a| b.saturating_duration_since(*a) < Duration::from_millis(5));
    arrivals.windows(2).map(|w| w[1] - w[0]).collect()
}

fn gap_summary(gaps: &[Duration]) -> String {
    let mut g = gaps.to_vec();
    g.sort();
    let pick = |q: f64| g[((g.len() - 1) as f64 * q).round() as usize].as_millis();
    if g.is_empty() {
        return "no gaps measured".into();
    }
    format!(
        "{} gaps, median {} ms, p99 {} ms, max {} ms",
        g.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0)
    )
}

/// Samples `name`'s `peers[0].last_advert_age_ms` over raw control requests (no process
/// per sample) until `stop` is set.
fn sample_advert_age(
    c: &Cluster,
    name: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(Instant, f64)>> {
    let socket = c.socket_path(name);
    std::thread::spawn(move || {
        let mut out = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(r) = haagent::control::request(&socket, &haagent::control::Request::Status {})
            {
                let at = Instant::now();
                if let Some(age) = r
                    .status
                    .and_then(|s| s.peers.first().and_then(|p| p.last_advert_age_ms))
                {
                    out.push((at, age));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        out
    })
}

/// Issue 9, fault 6: other inputs must not starve the election. A storm of local status
/// clients against the master for 10 s, with the ARP probe OFF so that it cannot hide a
/// missed advert: no holder change, no transition. The master's advert gaps as the backup
/// saw them are printed (before and during the storm), not asserted: 2 shared cores.
///
/// Before the fix, 1,000 such clients gapped the adverts up to 436 ms against a 171 ms
/// master-down (the loop's timer came after the control arm in its biased select), and
/// without the probe the VIP changed holders 10 times in 20 s.
#[test]
fn a_status_storm_on_the_master_moves_nothing() {
    if !require_root("a_status_storm_on_the_master_moves_nothing") {
        return;
    }
    const CLIENTS: usize = 64;
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    for name in ["n1", "n2"] {
        let path = c.config_path(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen("[vip]\n", "[vip]\nprobe_count = 0\n", 1);
        std::fs::write(&path, text).unwrap();
    }
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    c.wait_status("n2", CONVERGE, |s| s["peers"][0]["alive"] == true);
    let before = (
        transitions_in_log(&mut c, "n1"),
        transitions_in_log(&mut c, "n2"),
    );

    let quiet_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let quiet = sample_advert_age(&c, "n2", quiet_stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    quiet_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let quiet = advert_gaps(&quiet.join().unwrap());

    let sampler = HolderSampler::start(&c, &["n1", "n2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ages = sample_advert_age(&c, "n2", stop.clone());
    let socket = c.socket_path("n1");
    let storm: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (socket, stop) = (socket.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut served, mut busy, mut failed) = (0u64, 0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match haagent::control::request(&socket, &haagent::control::Request::Status {})
                    {
                        Ok(r) if r.ok => served += 1,
                        Ok(r) if r.message.as_deref() == Some(haagent::control::BUSY) => busy += 1,
                        _ => failed += 1,
                    }
                }
                (served, busy, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut served, mut busy, mut failed) = (0, 0, 0);
    for t in storm {
        let (s, b, f) = t.join().unwrap();
        served += s;
        busy += b;
        failed += f;
    }
    let gaps = advert_gaps(&ages.join().unwrap());
    let samples = sampler.finish();
    let after = (
        transitions_in_log(&mut c, "n1"),
        transitions_in_log(&mut c, "n2"),
    );
    eprintln!(
        "STORM {CLIENTS} status clients on the master for 10 s: {served} served, {busy} refused busy, \
         {failed} failed; master's advert gaps at the backup: quiet {}; storm {}",
        gap_summary(&quiet),
        gap_summary(&gaps)
    );
    assert!(served > 0, "the storm never got a status answer");
    assert!(
        samples.samples.iter().all(|(_, h)| h == &["n1"]),
        "the VIP changed holders during the storm: {:?}\n{}",
        samples.samples.iter().find(|(_, h)| h != &["n1"]),
        c.logs()
    );
    assert_eq!(
        before,
        after,
        "a transition happened during the storm\n{}",
        c.logs()
    );
}
