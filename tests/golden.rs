//! Golden traces of the election, in the style of holo-vrrp's conformance tests: for each
//! scenario under `tests/golden/<name>/`, `inputs.jsonl` is fed to one real
//! [`Election`] on a virtual clock and every action it returns must equal `expected.jsonl`,
//! line for line. Any change to what the election decides, or when, fails a trace.
//!
//! `inputs.jsonl`: the first line is the node (`{"node": {"name", "priority",
//! "interval_ms", "preempt", "preempt_delay_ms", "probe", "cluster_size", "quorum"}}`),
//! then one `{"at_us": T, "input": INPUT}` per line (INPUT in the serde form of
//! [`Input`]: `"start"`, `{"advert": {...}}`, …), times in µs from the start, increasing.
//! Before each input, and up to the last line's `{"until_us": T}`, the runner fires
//! `Input::Timeout` at every deadline the election asks for, as the daemon does.
//!
//! `expected.jsonl`: one `{"at_us": T, "action": ACTION}` per action. To bless new output
//! after an intended change: `HAAGENT_BLESS=1 cargo nextest run --test golden`, then read
//! the diff of every `expected.jsonl` before committing it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use haagent::election::{Election, ElectionConfig, Input, DEFAULT_DOWN_MULTIPLIER};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    name: String,
    priority: u8,
    interval_ms: u64,
    #[serde(default = "yes")]
    preempt: bool,
    #[serde(default)]
    preempt_delay_ms: u64,
    #[serde(default)]
    probe: bool,
    #[serde(default = "two")]
    cluster_size: usize,
    #[serde(default)]
    quorum: bool,
}

fn yes() -> bool {
    true
}

fn two() -> usize {
    2
}

#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum Line {
    Node { node: NodeSpec },
    Input { at_us: u64, input: Input },
    Until { until_us: u64 },
}

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Runs one scenario; returns the actions as JSONL.
fn run(dir: &Path) -> String {
    let inputs = std::fs::read_to_string(dir.join("inputs.jsonl")).unwrap();
    let t0 = Instant::now();
    let mut election: Option<Election> = None;
    let mut out = String::new();
    let record = |at: Instant, actions: Vec<haagent::election::Action>, out: &mut String| {
        for a in actions {
            let at_us = (at - t0).as_micros();
            let line = serde_json::json!({ "at_us": at_us, "action": a });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    };
    let mut last = 0;
    for (n, text) in inputs.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", dir.display(), n + 1));
        let (until_us, input) = match line {
            Line::Node { node } => {
                let cfg = ElectionConfig {
                    name: node.name,
                    priority: node.priority,
                    advert_interval: Duration::from_millis(node.interval_ms),
                    down_multiplier: DEFAULT_DOWN_MULTIPLIER,
                    preempt: node.preempt,
                    preempt_delay: Duration::from_millis(node.preempt_delay_ms),
                    mac: [2, 0, 0, 0, 0, 0x01],
                    probe: node.probe,
                    // The daemon's default window: the advert interval, at most 30 ms.
                    probe_window: Duration::from_millis(node.interval_ms.min(30)),
                    cluster_size: node.cluster_size,
                    quorum: node.quorum,
                    fingerprint: [0; 4],
                    foreign_holder_timeout: None,
                };
                election = Some(Election::new(cfg, t0));
                continue;
            }
            Line::Input { at_us, input } => (at_us, Some(input)),
            Line::Until { until_us } => (until_us, None),
        };
        assert!(
            until_us >= last,
            "{}:{}: time goes back",
            dir.display(),
            n + 1
        );
        last = until_us;
        let e = election
            .as_mut()
            .unwrap_or_else(|| panic!("{}: the node line comes first", dir.display()));
        let until = t0 + Duration::from_micros(until_us);
        while let Some(t) = e.next_deadline().filter(|t| *t <= until) {
            let acts = e.handle(t, Input::Timeout);
            record(t, acts, &mut out);
        }
        if let Some(input) = input {
            let acts = e.handle(until, input);
            record(until, acts, &mut out);
        }
    }
    out
}

#[test]
fn golden_traces_match() {
    let dirs = scenarios();
    assert!(dirs.len() >= 6, "{} scenarios", dirs.len());
    let bless = std::env::var_os("HAAGENT_BLESS").is_some();
    let mut failed = Vec::new();
    for dir in &dirs {
        let got = run(dir);
        let path = dir.join("expected.jsonl");
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with HAAGENT_BLESS=1)", path.display()));
        let want: Vec<serde_json::Value> = want
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<serde_json::Value> = got
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if want != got {
            let first = want
                .iter()
                .zip(&got)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.len()));
            failed.push(format!(
                "{}: first difference at action {}:\n  want {}\n  got  {}",
                dir.display(),
                first + 1,
                want.get(first).map_or("(none)".into(), |v| v.to_string()),
                got.get(first).map_or("(none)".into(), |v| v.to_string()),
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The runner is deterministic: the same inputs give the same actions twice (a trace that
/// depended on the wall clock would be useless).
#[test]
fn traces_are_deterministic() {
    for dir in scenarios() {
        assert_eq!(run(&dir), run(&dir), "{}", dir.display());
    }
}
