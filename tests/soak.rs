//! The soak (issue 9): ten minutes of 10 % random loss on the peer traffic of both nodes of a
//! two-node cluster while every core is busy, with the real binary in network namespaces.
//! Nothing may move: zero transitions on either node, zero samples with two holders, the
//! master holding the VIP in every sample. `ten_percent_loss_for_a_minute_moves_nothing`
//! (tests/partition.rs) is the one-minute version on an idle machine.
//!
//! Ignored (it takes ten minutes); run it as root with
//!
//! ```sh
//! cargo test --test soak -- --ignored --nocapture
//! ```
//!
//! `HAAGENT_SOAK_SECS=20` shortens the loss phase (to check the harness, not the agent).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The witness pings the lab's gateway, as in the partition matrix.
const WITNESS: &str = "[witness]\ngateway = \"192.0.2.1\"\n";
/// The issue's soak length.
const DEFAULT_SECS: u64 = 600;

/// One `yes > /dev/null` per core, so the agents compete for CPU the whole time. Killed by
/// PID (and reaped) on drop.
struct CpuHogs {
    children: Vec<Child>,
}

impl CpuHogs {
    fn start() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let children = (0..cores)
            .map(|_| {
                Command::new("yes")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("`yes` (coreutils) must be installed")
            })
            .collect();
        Self { children }
    }

    /// Panics if a hog has exited: the load must last the whole soak.
    fn assert_running(&mut self) {
        for child in &mut self.children {
            assert!(
                matches!(child.try_wait(), Ok(None)),
                "CPU hog {} exited early",
                child.id()
            );
        }
    }

    /// CPU seconds the hogs have used (user + system, from /proc/PID/stat).
    fn cpu_seconds(&self) -> f64 {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        self.children
            .iter()
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{}/stat", c.id())).ok())
            .filter_map(|stat| {
                // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: f64 = fields.get(11)?.parse().ok()?;
                let stime: f64 = fields.get(12)?.parse().ok()?;
                Some((utime + stime) / ticks)
            })
            .sum()
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn soak_secs() -> u64 {
    match std::env::var("HAAGENT_SOAK_SECS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("HAAGENT_SOAK_SECS={v:?} is not a number of seconds")),
        Err(_) => DEFAULT_SECS,
    }
}

#[test]
#[ignore = "ten-minute soak: cargo test --test soak -- --ignored (as root)"]
fn ten_percent_loss_with_every_core_busy_for_ten_minutes_moves_nothing() {
    if !require_root("ten_percent_loss_with_every_core_busy_for_ten_minutes_moves_nothing") {
        return;
    }
    let secs = soak_secs();
    let mut c = Cluster::with(&[node("n1", 200), node("n2", 100)], WITNESS);
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    let before = (
        transitions_in_log(&mut c, "n1"),
        transitions_in_log(&mut c, "n2"),
    );

    let mut hogs = CpuHogs::start();
    let sampler = HolderSampler::start(&c, &["n1", "n2"]);
    let pinger = ClientPinger::start(&c);
    lossy_peer_traffic(&c, "n1", 10);
    lossy_peer_traffic(&c, "n2", 10);
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        std::thread::sleep(left.min(Duration::from_secs(30)));
        hogs.assert_running();
        eprintln!(
            "SOAK {} s of {secs} s, holders {:?}",
            started.elapsed().as_secs(),
            c.holders()
        );
    }
    let hog_cpu = hogs.cpu_seconds();
    unblock(&c, "n1");
    unblock(&c, "n2");
    drop(hogs);
    let samples = sampler.finish();
    let replies = pinger.finish();
    let after = (
        transitions_in_log(&mut c, "n1"),
        transitions_in_log(&mut c, "n2"),
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    eprintln!(
        "SOAK 10%-loss-busy-{secs}s: transitions {before:?} -> {after:?}, dual-holder samples {} \
         of {}, client outage {} ms, CPU hogs used {hog_cpu:.0} s of {:.0} core-seconds",
        samples.dual(),
        samples.samples.len(),
        replies.outage().as_millis(),
        started.elapsed().as_secs_f64() * cores as f64
    );
    assert_eq!(
        samples.dual(),
        0,
        "two holders seen: {:?}\n{}",
        samples.dual_examples(),
        c.logs()
    );
    assert_eq!(
        before,
        after,
        "loss under CPU load caused a transition\n{}",
        c.logs()
    );
    assert!(
        samples.samples.iter().all(|(_, h)| h == &["n1"]),
        "n1 did not hold the VIP in every sample\n{}",
        c.logs()
    );
    // The samples cover the loss phase (every 10 ms; the sampler itself competes for CPU).
    assert!(
        samples.samples.len() as u64 >= secs * 10,
        "only {} holder samples in {secs} s",
        samples.samples.len()
    );
}
