//! Smoke test of `haagent-lab`: the benchmark's short run (haagent only, one run per
//! scenario) and the demo without a terminal. Needs root (network namespaces); without it
//! the tests say SKIPPED, and with HAAGENT_REQUIRE_NETNS=1 (as CI sets) a skip is a failure.
//!
//! This package has no `haagent` binary of its own (Cargo sets `CARGO_BIN_EXE_*` only for
//! a package's own binaries), so the agent is `haagent-lab` itself: the benchmark runs it
//! the default way (as the README's commands do), the demo through `--agent-bin` and a
//! two-line wrapper, so both ways of naming the agent are covered.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use haagent_lab::{is_root, require_root};

fn lab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haagent-lab"));
    cmd.stdin(Stdio::null());
    cmd
}

/// An executable `haagent` in `dir` that runs `haagent-lab` as the agent, for `--agent-bin`.
fn agent_wrapper(dir: &Path) -> PathBuf {
    let path = dir.join("haagent");
    let script = format!(
        "#!/bin/sh\n{}=haagent exec '{}' \"$@\"\n",
        haagent_lab::testbed::AS_AGENT_ENV,
        env!("CARGO_BIN_EXE_haagent-lab")
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const SCENARIOS: [&str; 6] = [
    "link-down",
    "agent-kill",
    "server-stop",
    "graceful-stop",
    "peer-block",
    "isolate",
];

#[test]
fn bench_smoke_reports_every_scenario_with_numbers() {
    if !require_root("bench_smoke_reports_every_scenario_with_numbers") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let svg_dir = dir.path().join("svg");
    let out = lab()
        .args(["bench", "--smoke", "--json"])
        .arg(&json_path)
        .arg("--svg-dir")
        .arg(&svg_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench --smoke failed\n{stdout}\n{stderr}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report["errors"].as_array().unwrap().len(), 0, "{stderr}");
    let summary = report["summary"].as_array().unwrap();
    for scenario in SCENARIOS {
        let row = summary
            .iter()
            .find(|r| r["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no summary row for {scenario}\n{report:#}"));
        assert_eq!(row["implementation"], "haagent");
        assert_eq!(row["runs"], 1);
        for field in ["outage_median_ms", "outage_p95_ms", "two_holders_median_ms"] {
            let v = row[field].as_f64();
            assert!(
                v.is_some_and(|v| v >= 0.0),
                "{scenario}: {field} is not a number: {row}"
            );
        }
    }
    // The agent at default timers fails over within a second when the master's link goes
    // down, and hands over at once on SIGTERM.
    let outage = |s: &str| {
        summary.iter().find(|r| r["scenario"] == s).unwrap()["outage_median_ms"]
            .as_f64()
            .unwrap()
    };
    assert!(outage("link-down") < 1000.0, "{report:#}");
    assert!(outage("graceful-stop") < 500.0, "{report:#}");
    let idle = report["idle"].as_array().unwrap();
    assert!(
        idle[0]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["rss_kib"].as_u64() > Some(0)),
        "{report:#}"
    );

    // The table has a row per scenario, and the idle table.
    for describe in [
        "master's link down",
        "agent SIGKILLed",
        "HTTP server stopped on master",
        "graceful stop (SIGTERM)",
        "peer traffic blocked (nft)",
        "master isolated (bridge nft)",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("| default | ") && l.contains(describe)),
            "no table row for {describe}\n{stdout}"
        );
    }
    assert!(stdout.contains("| haagent | default |"), "{stdout}");

    // Issue 12: the cold starts, the idle matrix, failback, and a picture per scenario.
    let startup = report["startup"].as_array().unwrap();
    assert_eq!(startup.len(), 2, "{report:#}");
    for start in startup {
        assert!(start["master_transitions"].as_u64() >= Some(1), "{start}");
        assert!(start["first_holder_ms"].as_f64().is_some(), "{start}");
    }
    let matrix = report["idle_matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 2, "election only and with checks: {report:#}");
    assert!(
        matrix
            .iter()
            .all(|m| m["nodes"][0]["wakeups_per_s"].as_f64() > Some(0.0)),
        "{report:#}"
    );
    let failback = summary
        .iter()
        .find(|r| r["scenario"] == "failback")
        .unwrap();
    assert_eq!(failback["runs"], 1, "{failback}");
    assert!(stdout.contains("| 50 ms | election only |"), "{stdout}");
    assert!(stdout.contains("cold starts"), "{stdout}");
    let saturated_ran = summary.iter().any(|r| r["scenario"] == "saturated");
    let saturated_skipped = report["skipped"].as_array().unwrap().iter().any(|s| {
        s.as_str()
            .is_some_and(|s| s.contains("stress-ng is not installed"))
    });
    assert!(saturated_ran != saturated_skipped, "{report:#}");
    for name in [
        "haagent-default-link-down.svg",
        "haagent-default-failback.svg",
        "haagent-default-startup.svg",
    ] {
        let svg = std::fs::read_to_string(svg_dir.join(name)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("client"), "{name}");
    }
}

#[test]
fn demo_runs_through_without_a_terminal() {
    if !require_root("demo_runs_through_without_a_terminal") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = lab()
        .args(["demo", "--agent-bin"])
        .arg(agent_wrapper(dir.path()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\n{stdout}\n{stderr}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary line\n{stdout}"));
    let outage: u64 = summary
        .split("failover outage ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no measured outage in {summary:?}"));
    // The master died at default timers (master-down ~150-190 ms): the client is served
    // again well within a second.
    assert!(outage < 1000, "{summary}");
    assert!(summary.contains("took over"), "{summary}");
}

#[test]
fn demo_without_root_says_what_to_do_in_one_line() {
    if is_root() {
        // Drop privileges for the child: run it as nobody.
        let out = lab().arg("demo").uid_gid(65534).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("needs root"), "{stderr}");
    } else {
        let out = lab().arg("demo").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("needs root"), "{stderr}");
    }
}

trait UidGid {
    fn uid_gid(&mut self, id: u32) -> &mut Self;
}

impl UidGid for Command {
    fn uid_gid(&mut self, id: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.gid(id).uid(id)
    }
}

#[test]
fn a_lab_process_takes_its_orphaned_children_with_it() {
    if !require_root("a_lab_process_takes_its_orphaned_children_with_it") {
        return;
    }
    use haagent_lab::proc::Proc;
    use haagent_lab::{unique_tag, Netns};
    let ns = Netns::create(&unique_tag("orph")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    // The parent exits at once and leaves a child behind, as an Nginx master that dies
    // before its worker does.
    let script = format!("sleep 300 & echo $! > {}; exit 0", pidfile.display());
    let mut proc = Proc::spawn(
        "orphan maker",
        &ns,
        "sh",
        &["-c".to_string(), script],
        &[],
        &dir.path().join("log"),
    )
    .unwrap();
    assert!(proc.wait_exit(std::time::Duration::from_secs(5)));
    let child: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    assert!(
        alive(child),
        "the orphan should run until the Proc is dropped"
    );
    drop(proc);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(child) {
        assert!(
            std::time::Instant::now() < deadline,
            "orphan {child} outlived the Proc that started it"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
