//! The agent under systemd's notify protocol, without systemd: the test creates the
//! `NOTIFY_SOCKET` (a Unix datagram socket in a temp dir), runs the real binary in a
//! namespace with it, and reads what arrives: `READY=1`, `STATUS=`, periodic `WATCHDOG=1`;
//! and with only the election loop stalled (the debug-build fault injection
//! `HAAGENT_TEST_STALL_LOOP_AFTER_MS`), no more `WATCHDOG=1`. Needs root, like the other
//! namespace tests.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use haagent_lab::Launch;
use support::*;

/// The notify socket systemd would create, bound in `dir`.
fn notify_socket(dir: &Path) -> (UnixDatagram, String) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    (sock, path.display().to_string())
}

/// Receives datagrams until `done` holds for the messages so far or `timeout` passes;
/// returns every message (one `KEY=VALUE` per line, as sent) with its arrival time.
fn receive_until(
    sock: &UnixDatagram,
    timeout: Duration,
    done: impl Fn(&[(Instant, String)]) -> bool,
) -> Vec<(Instant, String)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    got
}

fn lines(got: &[(Instant, String)]) -> impl Iterator<Item = &str> {
    got.iter().flat_map(|(_, m)| m.lines())
}

fn watchdogs(got: &[(Instant, String)]) -> usize {
    lines(got).filter(|l| *l == "WATCHDOG=1").count()
}

fn launch(notify: &str, watchdog_usec: u64, extra: &[(&str, &str)]) -> Launch {
    let mut env = vec![
        ("NOTIFY_SOCKET".to_string(), notify.to_string()),
        ("WATCHDOG_USEC".to_string(), watchdog_usec.to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Launch {
        wrapper: Vec::new(),
        env,
    }
}

#[test]
fn notify_socket_gets_ready_status_and_periodic_watchdog() {
    if !require_root("notify_socket_gets_ready_status_and_periodic_watchdog") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    let (sock, path) = notify_socket(c.dir.path());
    c.start("n2");
    // 400 ms: the loop pings every 200 ms.
    c.start_with("n1", &launch(&path, 400_000, &[]));

    let got = receive_until(&sock, CONVERGE, |g| lines(g).any(|l| l == "READY=1"));
    assert!(
        lines(&got).any(|l| l == "READY=1"),
        "no READY=1 within {CONVERGE:?}: {got:?}\n{}",
        c.logs()
    );
    assert!(
        lines(&got).any(|l| l.starts_with("STATUS=")),
        "READY=1 comes with a STATUS= line: {got:?}"
    );
    // The status follows the state: n1 takes over and hears n2.
    let wanted = "STATUS=master, 192.0.2.100/24, 1 of 1 peers";
    let later = receive_until(&sock, CONVERGE, |g| lines(g).any(|l| l == wanted));
    assert!(
        lines(&later).any(|l| l == wanted),
        "no {wanted:?}: {later:?}\n{}",
        c.logs()
    );
    c.wait_sole_holder("n1", CONVERGE);
    // Periodic pings: five of them, no gap over 1 s (the period is 200 ms; the bound is
    // loose for a loaded machine, the measured widest gap is printed).
    let pings = receive_until(&sock, Duration::from_secs(5), |g| watchdogs(g) >= 5);
    assert!(
        watchdogs(&pings) >= 5,
        "expected 5 WATCHDOG=1 within 5 s, got {pings:?}"
    );
    let times: Vec<Instant> = pings
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    eprintln!(
        "watchdog pings: widest gap {} ms (period 200 ms)",
        widest.as_millis()
    );
    assert!(widest < Duration::from_millis(1000), "gap {widest:?}");

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC (systemd 253+ needs it), then READY=1.
    c.lab.agent("n1").unwrap().signal(libc::SIGHUP).unwrap();
    let reload = receive_until(&sock, CONVERGE, |g| {
        lines(g)
            .skip_while(|l| *l != "RELOADING=1")
            .any(|l| l == "READY=1")
    });
    let said: Vec<&str> = lines(&reload).filter(|l| *l != "WATCHDOG=1").collect();
    assert!(
        said.len() >= 3
            && said[0] == "RELOADING=1"
            && said[1].starts_with("MONOTONIC_USEC=")
            && said[2] == "READY=1",
        "reload said {said:?}"
    );

    // SIGTERM: STOPPING=1 before the agent exits.
    c.lab.agent("n1").unwrap().signal(libc::SIGTERM).unwrap();
    let stop = receive_until(&sock, CONVERGE, |g| lines(g).any(|l| l == "STOPPING=1"));
    assert!(
        lines(&stop).any(|l| l == "STOPPING=1"),
        "no STOPPING=1: {stop:?}"
    );
}

#[test]
fn watchdog_pings_stop_when_only_the_election_loop_stalls() {
    if !require_root("watchdog_pings_stop_when_only_the_election_loop_stalls") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    let (sock, path) = notify_socket(c.dir.path());
    // Pings every 100 ms; the loop stalls 2 s after it started.
    c.start_with(
        "n1",
        &launch(
            &path,
            200_000,
            &[("HAAGENT_TEST_STALL_LOOP_AFTER_MS", "2000")],
        ),
    );
    let got = receive_until(&sock, CONVERGE, |g| watchdogs(g) >= 3);
    assert!(
        lines(&got).any(|l| l == "READY=1") && watchdogs(&got) >= 3,
        "READY=1 and pings before the stall: {got:?}\n{}",
        c.logs()
    );
    // Read on (so the socket never fills) until a second passes without a ping, ten ping
    // periods; the stall starts 2 s after the start, so within the bound.
    let mut last_ping = Instant::now();
    let mut silent = false;
    let deadline = Instant::now() + CONVERGE;
    while Instant::now() < deadline {
        let after = receive_until(&sock, Duration::from_secs(1), |g| watchdogs(g) > 0);
        if watchdogs(&after) == 0 {
            silent = true;
            break;
        }
        last_ping = Instant::now();
    }
    assert!(silent, "the pings never stopped\n{}", c.logs());
    // The silence is the stall, logged by the loop as it stopped, and the agent runs on.
    c.wait_log("n1", "the election loop stalls now", Duration::ZERO);
    let agent = c.lab.agent("n1").unwrap();
    assert!(
        agent.wait_exit(Duration::ZERO).is_none(),
        "the agent must still run"
    );
    eprintln!(
        "last watchdog ping {} ms before the end of a 1 s silence",
        last_ping.elapsed().as_millis()
    );
}
