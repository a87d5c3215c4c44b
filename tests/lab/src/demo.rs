//! `haagent-lab demo`: the README's first command. Builds a throwaway three-node lab,
//! starts haagent on it, shows who holds the VIP and how the client fares, kills the
//! master, prints the measured outage, brings the master back, and cleans everything up —
//! also on Ctrl-C. With a terminal it waits for Enter before each fault; without one it
//! runs straight through, so it can be scripted.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use super::bench::{holder_times, longest_outage};
use super::interrupt;
use super::testbed::{Testbed, TestbedOptions, NODES, PRIORITIES, VIP};
use super::LabError;

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// The node that took over when the master died.
    pub new_master: String,
    /// Client-observed outage when the master died.
    pub failover: Duration,
    /// Client-observed outage when the master came back and took the VIP back.
    pub failback: Duration,
    /// Requests that failed in the whole demo.
    pub failed_requests: usize,
    /// All requests in the whole demo.
    pub requests: usize,
    /// Time during which the dead master's stale address and the new master's overlapped.
    pub two_holders: Duration,
}

struct View {
    tty: bool,
    enter: Option<Receiver<()>>,
    last_plain: Instant,
}

impl View {
    fn new(interactive: bool) -> Self {
        let enter = interactive.then(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                    if tx.send(()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
            rx
        });
        Self {
            tty: std::io::stdout().is_terminal(),
            enter,
            last_plain: Instant::now(),
        }
    }

    fn say(&mut self, text: &str) {
        if self.tty {
            print!("\r\x1b[2K");
        }
        println!("{text}");
    }

    fn status(&mut self, tb: &mut Testbed) {
        let mask = tb.holders_mask();
        let holders: Vec<String> = (0..NODES.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| {
                if tb.agent_running(i) {
                    NODES[i].to_string()
                } else {
                    format!("{} (agent dead, stale address)", NODES[i])
                }
            })
            .collect();
        let recent = tb.probe.recent(Duration::from_secs(1));
        let ok = recent.iter().filter(|s| s.ok).count();
        let rate = if recent.is_empty() {
            0.0
        } else {
            ok as f64 * 100.0 / recent.len() as f64
        };
        let served = recent
            .iter()
            .rev()
            .find_map(|s| s.server.clone())
            .unwrap_or_else(|| "-".into());
        let line = format!(
            "  VIP {VIP} on: {:<40} client (last 1 s): {ok:>3}/{:<3} ok ({rate:5.1} %), served by {served}",
            if holders.is_empty() {
                "nobody".to_string()
            } else {
                holders.join(", ")
            },
            recent.len()
        );
        if self.tty {
            print!("\r\x1b[2K{line}");
            let _ = std::io::stdout().flush();
        } else if self.last_plain.elapsed() >= Duration::from_millis(500) {
            println!("{line}");
            self.last_plain = Instant::now();
        }
    }

    /// Shows the live view until `done` holds, `max` passes, or (interactive) Enter.
    fn live(
        &mut self,
        tb: &mut Testbed,
        max: Duration,
        done: impl Fn(&mut Testbed) -> bool,
    ) -> Result<(), LabError> {
        let start = Instant::now();
        loop {
            interrupt::check()?;
            self.status(tb);
            if done(tb) || start.elapsed() >= max {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Interactive: waits for Enter while showing the live view. Otherwise: shows it for `d`.
    fn pause(&mut self, tb: &mut Testbed, prompt: &str, d: Duration) -> Result<(), LabError> {
        let Some(rx) = self.enter.take() else {
            return self.live(tb, d, |_| false);
        };
        self.say(&format!("{prompt} (Ctrl-C ends the demo and cleans up)"));
        let result = loop {
            interrupt::check()?;
            self.status(tb);
            match rx.try_recv() {
                Ok(()) => break Ok(()),
                Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(100)),
                // stdin closed: go on as if not interactive.
                Err(TryRecvError::Disconnected) => break self.live(tb, d, |_| false),
            }
        };
        self.enter = Some(rx);
        if self.tty {
            // The Enter key moved the cursor down one line; the next status line is fresh.
            print!("\x1b[1A");
        }
        result
    }
}

/// Runs the demo. `interactive` waits for Enter before each step (use it when stdin is a
/// terminal).
pub fn run(opts: TestbedOptions, interactive: bool) -> Result<DemoSummary, LabError> {
    let mut view = View::new(interactive);
    let begin = Instant::now();
    view.say(&format!(
        "Building the lab: a bridge, nodes n1 n2 n3 (192.0.2.11-13, each serving HTTP with {}), \
         a gateway (192.0.2.1) and a client (192.0.2.50), in network namespaces",
        opts.server.name()
    ));
    let mut tb = Testbed::new(opts)?;
    view.say(&format!(
        "Certificates bootstrapped with `haagent certs init` / `haagent certs issue` in {}/certs",
        tb.dir().display()
    ));
    view.say(&format!(
        "Starting three agents: n1 priority {}, n2 {}, n3 {}, adverts every 50 ms over mutual-TLS QUIC",
        PRIORITIES[0], PRIORITIES[1], PRIORITIES[2]
    ));
    tb.start_all()?;
    let up = Instant::now();
    view.live(&mut tb, Duration::from_secs(20), |tb| {
        tb.holders_mask() == 1
            && tb
                .probe
                .recent(Duration::from_millis(300))
                .iter()
                .all(|s| s.ok)
    })?;
    tb.wait_converged(Duration::from_secs(5))?;
    view.say(&format!(
        "n1 holds {VIP} ({} ms after start); the client GETs http://{VIP}/ every 10 ms",
        up.elapsed().as_millis()
    ));
    view.pause(
        &mut tb,
        "Press Enter to kill the master n1 (cable pulled and agent SIGKILLed)",
        Duration::from_secs(2),
    )?;

    view.say("Killing n1: cable pulled at the switch, agent SIGKILLed");
    let fault = Instant::now();
    tb.lab.set_link(NODES[0], false)?;
    tb.kill_agent(0)?;
    view.live(&mut tb, Duration::from_secs(10), |tb| {
        let mask = tb.holders_mask();
        let recent = tb.probe.recent(Duration::from_millis(500));
        mask & 0b110 != 0 && recent.len() >= 30 && recent.iter().all(|s| s.ok)
    })?;
    let after = Instant::now();
    let (failover, recovered) = longest_outage(&tb.probe.between(fault, after), after);
    let mask = tb.holders_mask();
    let new_master = (1..NODES.len())
        .find(|i| mask & (1 << i) != 0)
        .map(|i| NODES[i].to_string())
        .unwrap_or_else(|| "nobody".into());
    if !recovered {
        view.say(&format!(
            "The client was not served again within 10 s of killing n1 (holders: {new_master})\n{}",
            tb.agent_logs()
        ));
        return Err(LabError::Setup("no failover within 10 s".into()));
    }
    view.say(&format!(
        "n1 died -> {new_master} took over {VIP}: the client saw an outage of {} ms",
        failover.as_millis()
    ));
    view.pause(
        &mut tb,
        "Press Enter to bring n1 back",
        Duration::from_secs(1),
    )?;

    view.say("Bringing n1 back: cable plugged in, agent restarted (it removes its stale VIP, then preempts)");
    let back = Instant::now();
    tb.lab.set_link(NODES[0], true)?;
    tb.start_agent(0)?;
    view.live(&mut tb, Duration::from_secs(20), |tb| {
        tb.holders_mask() == 1
            && tb
                .probe
                .recent(Duration::from_millis(500))
                .iter()
                .all(|s| s.ok)
    })?;
    tb.wait_converged(Duration::from_secs(5))?;
    let end = Instant::now();
    let (failback, _) = longest_outage(&tb.probe.between(back, end), end);
    view.say(&format!(
        "n1 holds {VIP} again ({} ms after its restart); outage during the failback: {} ms",
        back.elapsed().as_millis(),
        failback.as_millis()
    ));
    let all = tb.probe.between(begin, end);
    let (two, _) = holder_times(&tb.sampler.between(fault, end));
    let summary = DemoSummary {
        new_master,
        failover,
        failback,
        failed_requests: all.iter().filter(|s| !s.ok).count(),
        requests: all.len(),
        two_holders: two,
    };
    view.say("Cleaning up: stopping agents and servers, deleting the namespaces");
    drop(tb);
    Ok(summary)
}
