//! The rolling upgrade (issue 11, build item 3), end to end: a two-node cluster of the
//! previous release is upgraded node by node to the binary of this tree while a client
//! requests the VIP over HTTP every 10 ms, and no request fails. Needs root.
//!
//! "The previous release" is the agent built from a pinned commit (`PREVIOUS_COMMIT` in
//! tests/support/previous.sh: main before the groups work, wire v1 only, ALPN `haagent/1`),
//! found through `HAAGENT_PREVIOUS_BIN` (.ci/run sets it) or built by that script on first
//! use (a fresh clone: ~2 min, once; later runs find the binary in target/previous/).
//! docs/upgrade.md describes the sequence for operators.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use haagent_lab::probe::{HolderSample, HolderSampler, HttpProbe, ProbeSample};
use haagent_lab::Launch;
use support::{haagent, require_root, Cluster, Node, CONVERGE, TAKEOVER, VIP};

/// The quick-mode check of tests/operator.rs: GET / on the local Nginx, fault after 2
/// failures. Part of the upgrade on purpose: a restarted node stays in fault until its check
/// has passed `rise` times, as it would in production.
const NGINX_CHECK: &str =
    "[[check]]\nname = \"nginx\"\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\n\
     interval_ms = 100\ntimeout_ms = 100\nfall = 2\nrise = 2\n";

/// Bit of each node in a [`HolderSample`] mask (the sampler's namespace order).
const N1: u32 = 1;
const N2: u32 = 2;

/// Longest run of two-holder samples allowed on a planned move, in samples (10 ms each).
///
/// A planned move (handover, preemption of a master that is still heard) is
/// make-before-break: the new master adds the VIP and sends its gratuitous ARP, then its
/// advert (higher epoch) makes the old one release it, ~1 ms later on an idle host
/// (docs/benchmarks.md). A 10 ms sampler therefore sees both holders in at most a sample or
/// two; outside the moves it must never see two. Two samples leave room for a loaded CI host.
const MAX_OVERLAP_SAMPLES: usize = 2;

/// How long a steady state is watched after a restart or a handover: longer than the 1 s of
/// contact a backup needs before it may preempt (docs/election.md), so a wrong preemption
/// would show.
const HOLD: Duration = Duration::from_millis(1500);

/// The previous release's agent: `HAAGENT_PREVIOUS_BIN` if set (it must exist), else what
/// tests/support/previous.sh prints, which builds it when target/previous/ lacks it.
fn previous_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HAAGENT_PREVIOUS_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HAAGENT_PREVIOUS_BIN={} is not a file (tests/support/previous.sh builds it)",
            path.display()
        );
        return path;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/previous.sh");
    // target/debug/haagent → target: the script puts the old build under target/previous.
    let target = haagent()
        .parent()
        .and_then(Path::parent)
        .expect("the test binary's haagent lives in <target>/<profile>/");
    eprintln!(
        "HAAGENT_PREVIOUS_BIN not set: running {} (builds the previous release once)",
        script.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .env("CARGO_TARGET_DIR", target)
        .stderr(Stdio::inherit())
        .output()
        .expect("bash must be installed");
    assert!(
        out.status.success(),
        "{} failed ({}): the upgrade test needs the previous release's binary",
        script.display(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        path.is_file(),
        "{} printed {stdout:?}, not a binary",
        script.display()
    );
    path
}

fn nodes() -> [Node; 2] {
    [
        Node {
            name: "n1",
            priority: 150,
            extra: NGINX_CHECK,
        },
        Node {
            name: "n2",
            priority: 100,
            extra: NGINX_CHECK,
        },
    ]
}

/// Waits until the last 200 ms of settled requests all succeeded, answered by `server`.
fn wait_all_ok(c: &Cluster, p: &HttpProbe, server: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let recent = p.recent(Duration::from_millis(200));
        if recent.len() > 5
            && recent
                .iter()
                .all(|s| s.ok && s.server.as_deref() == Some(server))
        {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "client never got steady answers from {server}: {:?}\n{}",
            recent.last(),
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM to `name`'s agent (a graceful stop, as `systemctl stop` does) and waits for a
/// clean exit.
fn stop_gracefully(c: &mut Cluster, name: &str) {
    let agent = c.lab.agent(name).unwrap();
    agent.signal(libc::SIGTERM).unwrap();
    let status = agent.wait_exit(CONVERGE);
    assert!(
        status.is_some_and(|s| s.success()),
        "{name} did not stop cleanly on SIGTERM: {status:?}\n{}",
        c.logs()
    );
}

/// The status entry `name` keeps for `peer`.
fn peer_entry(status: &serde_json::Value, peer: &str) -> Option<serde_json::Value> {
    status["peers"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == peer)
        .cloned()
}

/// `haagent status --json` of `name` through `binary`'s CLI (the one the node runs, so the
/// status format is the agent's own), or `None` while its control socket is not up yet.
fn status_via(c: &Cluster, binary: &Path, name: &str) -> Option<serde_json::Value> {
    let out = c.ctl_binary(binary, name, &["status", "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until `name` (running `binary`) is in `state`, follows `master`, and hears `peer`
/// in `peer_state` over a live connection; returns its status.
fn wait_settled(
    c: &Cluster,
    (name, binary): (&str, &Path),
    state: &str,
    master: &str,
    (peer, peer_state): (&str, &str),
) -> serde_json::Value {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Some(s) = status_via(c, binary, name) {
            let settled = s["state"] == state
                && s["master"] == master
                && peer_entry(&s, peer).is_some_and(|p| {
                    p["alive"] == true && p["connected"] == true && p["state"] == peer_state
                });
            if settled {
                return s;
            }
            last = Some(s);
        }
        assert!(
            start.elapsed() < CONVERGE,
            "{name} never got to {state} under {master} with {peer} {peer_state}: {last:#?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The new node talks wire v1 with a previous-release peer.
///
/// Today's binary speaks only v1, so there is nothing to tell apart yet. Once wire v2 is
/// merged (both sides offer `haagent/2` then `haagent/1`, spec11.md), the new node must
/// negotiate `haagent/1` with the old one. What this checks, whichever the new binary has:
/// - status: the peer's entry carries the negotiated ALPN as `alpn` (`"haagent/1"`) or the
///   wire version as `wire` / `wire_version` (`1`);
/// - log: a connection line naming the ALPN (`alpn=...`) says `haagent/1`.
///
/// Returns whether anything was checked; when neither exists it says so loudly.
fn assert_talks_v1(c: &mut Cluster, (name, binary): (&str, &Path), peer: &str) -> bool {
    let status = status_via(c, binary, name).unwrap_or_default();
    let entry = peer_entry(&status, peer).unwrap_or_default();
    let mut checked = Vec::new();
    if let Some(alpn) = entry.get("alpn") {
        assert_eq!(alpn, "haagent/1", "{name} ↔ {peer}: {entry:#}");
        checked.push("status alpn");
    }
    for key in ["wire", "wire_version"] {
        if let Some(v) = entry.get(key) {
            assert_eq!(v, 1, "{name} ↔ {peer}: {entry:#}");
            checked.push("status wire version");
        }
    }
    let log = c.lab.agent(name).unwrap().log_text();
    let alpn_lines: Vec<&str> = log.lines().filter(|l| l.contains("alpn=")).collect();
    if !alpn_lines.is_empty() {
        assert!(
            alpn_lines.iter().all(|l| l.contains("haagent/1")),
            "{name} negotiated something other than haagent/1 with {peer}: {alpn_lines:#?}"
        );
        checked.push("log alpn=");
    }
    if checked.is_empty() {
        eprintln!(
            "NOTE wire version with the previous release not asserted: {name}'s status has no \
             alpn/wire field for {peer} and its log names no alpn (today's binary speaks v1 only)"
        );
    } else {
        eprintln!("{name} talks haagent/1 to {peer} ({})", checked.join(", "));
    }
    !checked.is_empty()
}

/// Asserts that no node, old or new, refused an advert of the other or saw config drift
/// over the whole sequence, and that each previous-release agent, stopped gracefully on its
/// upgrade, counted no rejected advert (its `haagent stopped ... rejected={}` line).
fn assert_versions_agreed(c: &mut Cluster) {
    for agent in &c.lab.agents {
        let log = agent.log_text();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ignoring advert") || l.contains("CONFIG DRIFT"))
            .collect();
        assert!(
            bad.is_empty(),
            "{} ({}) refused adverts or saw drift: {bad:#?}",
            agent.host,
            agent.log.display()
        );
    }
    // The first agent of each host is the previous release's (logs n1-0.log, n2-0.log).
    for name in ["n1", "n2"] {
        let agent = c.lab.agents.iter().find(|a| a.host == name).unwrap();
        let log = agent.log_text();
        let stopped = log.lines().find(|l| l.contains("haagent stopped"));
        assert!(
            stopped.is_some_and(|l| l.contains("rejected={}")),
            "the previous release on {name} rejected adverts of the new one: {stopped:?}"
        );
    }
}

/// Runs of equal holder masks: (mask, first sample's time since `t0`, samples in the run).
fn runs(samples: &[HolderSample], t0: Instant) -> Vec<(u32, Duration, usize)> {
    let mut out: Vec<(u32, Duration, usize)> = Vec::new();
    for s in samples {
        match out.last_mut() {
            Some((mask, _, n)) if *mask == s.mask => *n += 1,
            _ => out.push((s.mask, s.at.saturating_duration_since(t0), 1)),
        }
    }
    out
}

fn mask_names(mask: u32) -> String {
    match mask {
        0 => "nobody".into(),
        N1 => "n1".into(),
        N2 => "n2".into(),
        _ => "n1+n2".into(),
    }
}

/// Asserts every sample in `[from, to)` shows `mask` alone (no move in that window).
fn assert_held_only_by(
    c: &Cluster,
    sampler: &HolderSampler,
    from: Instant,
    to: Instant,
    mask: u32,
    what: &str,
) {
    let samples = sampler.between(from, to);
    assert!(!samples.is_empty(), "{what}: no holder samples");
    let wrong = samples.iter().find(|s| s.mask != mask);
    assert!(
        wrong.is_none(),
        "{what}: expected {} alone to hold {VIP} in all {} samples, saw {} after {:?}\n{}",
        mask_names(mask),
        samples.len(),
        mask_names(wrong.map_or(0, |s| s.mask)),
        wrong.map(|s| s.at.saturating_duration_since(from)),
        c.logs()
    );
}

/// Asserts the VIP moved once in `[from, to)`: `before` alone, at most
/// [`MAX_OVERLAP_SAMPLES`] samples of both (make-before-break), then `after` alone; never
/// nobody (a sample taken between the two namespaces' dumps can miss a 1 ms overlap, so one
/// such sample is tolerated). Returns (samples with two holders, with none).
fn assert_one_move(
    c: &Cluster,
    sampler: &HolderSampler,
    from: Instant,
    to: Instant,
    before: u32,
    after: u32,
    what: &str,
) -> (usize, usize) {
    let samples = sampler.between(from, to);
    let r = runs(&samples, from);
    let shown: Vec<String> = r
        .iter()
        .map(|(m, at, n)| format!("{} from {} ms x{n}", mask_names(*m), at.as_millis()))
        .collect();
    let middle: Vec<_> = r
        .iter()
        .filter(|(m, _, _)| *m != before && *m != after)
        .collect();
    let dual: usize = middle
        .iter()
        .filter(|(m, _, _)| *m == N1 | N2)
        .map(|(_, _, n)| n)
        .sum();
    let none: usize = middle
        .iter()
        .filter(|(m, _, _)| *m == 0)
        .map(|(_, _, n)| n)
        .sum();
    let ok_shape = r.first().map(|x| x.0) == Some(before)
        && r.last().map(|x| x.0) == Some(after)
        && r.iter().filter(|(m, _, _)| *m == before).count() == 1
        && r.iter().filter(|(m, _, _)| *m == after).count() == 1
        && middle.len() <= 1
        && dual <= MAX_OVERLAP_SAMPLES
        && none <= 1;
    assert!(
        ok_shape,
        "{what}: expected {} → {} once (at most {MAX_OVERLAP_SAMPLES} samples with both, \
         never a gap), holders were: {shown:?}\n{}",
        mask_names(before),
        mask_names(after),
        c.logs()
    );
    eprintln!("{what}: holders {shown:?}");
    (dual, none)
}

fn failed(samples: &[ProbeSample]) -> usize {
    samples.iter().filter(|s| !s.ok).count()
}

/// The supported rolling upgrade of a two-node cluster, with preempt on (the default):
///
/// 0. n1 (priority 150) and n2 (100) run the previous release; n1 holds the VIP; the client
///    requests it every 10 ms.
/// 1. The backup first: n2 is stopped (SIGTERM) and started with the new binary. It joins as
///    backup (n1 outranks it), and the VIP never moves.
/// 2. `haagent handover` on n1 (the previous release's CLI): n2 takes the VIP,
///    make-before-break. n1 does not take it back: a node that handed over on purpose does
///    not preempt until it restarts.
/// 3. The old master: n1 is stopped (now a backup) and started with the new binary. With
///    preempt on and the higher priority it takes the VIP back once it has heard n2 for 1 s
///    (docs/election.md). That preemption is the same message-coordinated, make-before-break
///    move as a handover (the preempting node adds the VIP and sends its gratuitous ARP, then
///    n2 releases it on its higher-epoch advert; no ARP probe, since n2 is still heard), so it
///    fails no request either: no `preempt = false` or final `handover --to n1` is needed.
///
/// Asserted: who holds the VIP after each step (kernel addresses in each namespace, sampled
/// every 10 ms over the whole sequence), that it moves exactly at steps 2 and 3 with at most
/// [`MAX_OVERLAP_SAMPLES`] samples of two holders on each move and none anywhere else,
/// zero failed client requests over the whole sequence, and that the new node talks wire v1
/// to the old one (see [`assert_talks_v1`]).
#[test]
fn rolling_upgrade_from_the_previous_release_loses_no_request() {
    if !require_root("rolling_upgrade_from_the_previous_release_loses_no_request") {
        return;
    }
    let old = previous_binary();
    let new = haagent().to_path_buf();
    assert_ne!(
        std::fs::read(&old).unwrap(),
        std::fs::read(&new).unwrap(),
        "{} and {} are the same binary: the test would prove nothing",
        old.display(),
        new.display()
    );
    eprintln!(
        "previous release: {}\nnew: {}",
        old.display(),
        new.display()
    );
    let plain = Launch::default();

    let mut c = Cluster::new(&nodes());
    let _servers = [c.start_nginx("n1"), c.start_nginx("n2")];
    c.start_binary("n1", &old, &plain);
    c.start_binary("n2", &old, &plain);
    c.wait_sole_holder("n1", CONVERGE);
    wait_settled(&c, ("n2", &old), "backup", "n1", ("n1", "master"));
    wait_settled(&c, ("n1", &old), "master", "n1", ("n2", "backup"));

    let ns = |n: &str| c.lab.host(n).unwrap().ns.name().to_string();
    let sampler = HolderSampler::start(&[ns("n1"), ns("n2")], VIP).unwrap();
    let probe = HttpProbe::start(&ns("client"), SocketAddr::from((VIP, 80))).unwrap();
    wait_all_ok(&c, &probe, "n1", CONVERGE);
    let t0 = Instant::now();

    // 1. The backup: n2 → new binary; the VIP stays on n1.
    stop_gracefully(&mut c, "n2");
    c.start_binary("n2", &new, &plain);
    wait_settled(&c, ("n2", &new), "backup", "n1", ("n1", "master"));
    wait_settled(&c, ("n1", &old), "master", "n1", ("n2", "backup"));
    // The new backup must not preempt the old master (a misread priority would show after
    // the 1 s of contact that preemption needs): watched for longer than that.
    std::thread::sleep(HOLD);
    let t1 = Instant::now();
    assert_eq!(c.holders(), ["n1"]);
    assert_held_only_by(&c, &sampler, t0, t1, N1, "1. n2 upgraded");
    let v1_checked = assert_talks_v1(&mut c, ("n2", &new), "n1");

    // 2. Planned move with the previous release's CLI: n1 → n2.
    let out = c.ctl_binary(&old, "n1", &["handover"]);
    assert!(
        out.status.success(),
        "handover on n1 failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    let handover_took = c.wait_sole_holder("n2", TAKEOVER);
    wait_settled(&c, ("n2", &new), "master", "n2", ("n1", "backup"));
    wait_all_ok(&c, &probe, "n2", CONVERGE);
    // The old n1 handed over on purpose and must not take the VIP back from the new n2.
    let moved = Instant::now();
    std::thread::sleep(HOLD);
    let t2 = Instant::now();
    assert_held_only_by(&c, &sampler, moved, t2, N2, "2. after the handover");
    let (dual2, none2) = assert_one_move(&c, &sampler, t1, t2, N1, N2, "2. handover");

    // 3. The old master: n1 → new binary; it preempts n2 on its return.
    stop_gracefully(&mut c, "n1");
    let n1_stopped = Instant::now();
    c.start_binary("n1", &new, &plain);
    let preempt_took = c.wait_sole_holder("n1", CONVERGE);
    wait_settled(&c, ("n1", &new), "master", "n1", ("n2", "backup"));
    wait_settled(&c, ("n2", &new), "backup", "n1", ("n1", "master"));
    wait_all_ok(&c, &probe, "n1", CONVERGE);
    let t3 = Instant::now();
    assert_held_only_by(&c, &sampler, t2, n1_stopped, N2, "3. before n1's restart");
    let (dual3, none3) = assert_one_move(&c, &sampler, t2, t3, N2, N1, "3. n1 upgraded");
    assert_eq!(c.holders(), ["n1"]);
    assert_versions_agreed(&mut c);

    // Requests still running are left out: they settle after the probe's timeouts.
    let settled = Instant::now() - Duration::from_millis(100);
    let samples = probe.between(t0, settled);
    let lost = failed(&samples);
    let holder_samples = sampler.between(t0, t3).len();
    eprintln!(
        "UPGRADE previous → new, 2 nodes: {lost} failed of {} requests over {} ms \
         (1. backup upgraded in {} ms; 2. handover in {} ms; 3. old master upgraded in {} ms, \
         VIP back on n1 {} ms after its start); two-holder samples {} + {} and empty {} + {} \
         of {holder_samples}; wire v1 asserted: {v1_checked}",
        samples.len(),
        (settled - t0).as_millis(),
        (t1 - t0).as_millis(),
        handover_took.as_millis(),
        (t3 - t2).as_millis(),
        preempt_took.as_millis(),
        dual2,
        dual3,
        none2,
        none3,
    );
    assert!(
        samples.len() > 100,
        "the client sent only {} requests",
        samples.len()
    );
    let first_failures: Vec<_> = samples
        .iter()
        .filter(|s| !s.ok)
        .take(5)
        .map(|s| s.at.saturating_duration_since(t0))
        .collect();
    assert_eq!(
        lost,
        0,
        "requests failed during the upgrade (first at {first_failures:?} after the start)\n{}",
        c.logs()
    );
}
