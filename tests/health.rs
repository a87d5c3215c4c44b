//! The health monitor against real things on this host: a tiny HTTP server on loopback that
//! can be switched between 200, 500 and hanging, TCP ports, commands, processes, `lo` and
//! track files. No root needed; every wait is for an event, with a generous limit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use haagent::health::{CheckKind, CheckSpec, CheckStatus, HealthMonitor, Verdict, Weight};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(5);

const OK: u8 = 0;
const ERROR: u8 = 1;
const HANG: u8 = 2;

/// A loopback HTTP server whose answer can be switched; stops when dropped.
struct Server {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(mode: u8, body: &'static str) -> Server {
        Self::start_on("127.0.0.1:0", mode, body).await
    }

    /// [`Server::start`] on `bind` (e.g. `[::1]:0`).
    async fn start_on(bind: &str, mode: u8, body: &'static str) -> Server {
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(mode));
        let m = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let status = match m.load(Ordering::SeqCst) {
                        OK => "200 OK",
                        ERROR => "500 Internal Server Error",
                        _ => return std::future::pending().await,
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Server { addr, mode, task }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spec(name: &str, kind: CheckKind, weight: Weight) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        kind,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
        fall: 1,
        rise: 1,
        weight,
    }
}

fn http(url: String, body_contains: Option<&str>) -> CheckKind {
    CheckKind::Http {
        url,
        expect_status: vec![],
        body_contains: body_contains.map(String::from),
    }
}

fn exec(argv: &[&str]) -> CheckKind {
    CheckKind::Exec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
    }
}

/// Waits for a verdict that satisfies `pred` (verdicts before it are skipped).
async fn wait_for(
    rx: &mut Receiver<Verdict>,
    what: &str,
    pred: impl Fn(&Verdict) -> bool,
) -> Verdict {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(v)) if pred(&v) => return v,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("verdict channel closed while waiting for {what}"),
            Err(_) => panic!("no verdict with {what} within {WAIT:?}"),
        }
    }
}

async fn settled(rx: &mut Receiver<Verdict>) -> Verdict {
    wait_for(rx, "settled", |v| v.settled).await
}

fn status<'a>(statuses: &'a [CheckStatus], name: &str) -> &'a CheckStatus {
    statuses.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test]
async fn http_fault_follows_fall_and_rise() {
    let server = Server::start(OK, "ok").await;
    let mut nginx = spec("nginx", http(server.url(), None), Weight::Fault);
    nginx.fall = 2;
    nginx.rise = 2;
    let (monitor, mut rx) = HealthMonitor::spawn(vec![nginx]);

    let v = settled(&mut rx).await;
    assert_eq!(v.fault, None, "{v:?}");
    assert_eq!(monitor.verdict().fault, None);
    let st = &monitor.statuses()[0];
    assert!(st.healthy && st.kind == "http", "{st:?}");
    assert!(st.last_result.starts_with("200 OK in "), "{st:?}");

    server.set(ERROR);
    let v = wait_for(&mut rx, "a fault", |v| v.fault.is_some()).await;
    let fault = v.fault.unwrap();
    assert!(
        fault.starts_with("check nginx failed 2×: GET http://127.0.0.1:"),
        "{fault}"
    );
    assert!(fault.contains("500 Internal Server Error"), "{fault}");
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    assert_eq!(monitor.verdict().fault.as_deref(), Some(fault.as_str()));

    server.set(OK);
    let v = wait_for(&mut rx, "the fault cleared", |v| v.fault.is_none()).await;
    assert!(v.reasons.is_empty() && v.settled, "{v:?}");
    let st = &monitor.statuses()[0];
    assert!(st.healthy, "{st:?}");
    assert!(st.consecutive_ok >= 2, "recovered before rise: {st:?}");
    assert!(st.failures >= 2 && st.runs > st.failures, "{st:?}");
}

/// Issue 13 item 6: a check against an IPv6 URL (`http://[::1]:PORT/health`) connects over
/// IPv6 and says the bracketed address in its words.
#[tokio::test]
async fn http_checks_reach_an_ipv6_url() {
    let server = Server::start_on("[::1]:0", OK, "ok").await;
    let url = server.url();
    assert!(url.starts_with("http://[::1]:"), "{url}");
    let (monitor, mut rx) =
        HealthMonitor::spawn(vec![spec("nginx6", http(url.clone(), None), Weight::Fault)]);
    let v = settled(&mut rx).await;
    assert_eq!(v.fault, None, "{v:?}");
    assert!(
        monitor.statuses()[0].last_result.starts_with("200 OK in "),
        "{:?}",
        monitor.statuses()[0]
    );
    server.set(ERROR);
    let v = wait_for(&mut rx, "a fault", |v| v.fault.is_some()).await;
    let fault = v.fault.unwrap();
    assert!(
        fault.contains(&format!("GET {url}")) && fault.contains("500 Internal Server Error"),
        "{fault}"
    );
}

#[tokio::test]
async fn a_hung_server_fails_at_the_timeout() {
    let server = Server::start(OK, "ok").await;
    let (monitor, mut rx) =
        HealthMonitor::spawn(vec![spec("nginx", http(server.url(), None), Weight::Fault)]);
    assert_eq!(settled(&mut rx).await.fault, None);

    server.set(HANG);
    let hung_at = Instant::now();
    let v = wait_for(&mut rx, "a fault", |v| v.fault.is_some()).await;
    assert!(
        hung_at.elapsed() >= Duration::from_millis(250),
        "{:?}",
        hung_at.elapsed()
    );
    let fault = v.fault.unwrap();
    assert!(fault.contains("timed out after 300 ms"), "{fault}");
    let st = &monitor.statuses()[0];
    assert!(st.last_result.contains("timed out after 300 ms"), "{st:?}");
    assert!(!st.healthy);
}

#[tokio::test]
async fn body_must_contain_the_expected_text() {
    let server = Server::start(OK, "all good here").await;
    let (monitor, mut rx) = HealthMonitor::spawn(vec![
        spec(
            "match",
            http(server.url(), Some("good")),
            Weight::Adjust(-100),
        ),
        spec(
            "mismatch",
            http(server.url(), Some("healthy")),
            Weight::Adjust(-7),
        ),
    ]);
    let v = settled(&mut rx).await;
    assert_eq!(v.priority_delta, -7, "{v:?}");
    let statuses = monitor.statuses();
    assert!(status(&statuses, "match").healthy);
    let bad = status(&statuses, "mismatch");
    assert!(
        bad.last_result
            .contains("200 OK but the body does not contain \"healthy\""),
        "{bad:?}"
    );
}

#[tokio::test]
async fn https_is_refused_with_a_clear_reason() {
    let (monitor, mut rx) = HealthMonitor::spawn(vec![spec(
        "tls",
        http("https://127.0.0.1/health".into(), None),
        Weight::Fault,
    )]);
    let v = settled(&mut rx).await;
    assert!(v.fault.unwrap().contains("https is not supported"));
    assert!(!monitor.statuses()[0].healthy);
}

#[tokio::test]
async fn failing_adjust_weights_add_up() {
    let server = Server::start(ERROR, "").await;
    let open = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (monitor, mut rx) = HealthMonitor::spawn(vec![
        spec("web", http(server.url(), None), Weight::Adjust(-20)),
        spec(
            "closed",
            CheckKind::Tcp { addr: closed },
            Weight::Adjust(-30),
        ),
        spec(
            "open",
            CheckKind::Tcp {
                addr: open.local_addr().unwrap(),
            },
            Weight::Adjust(-1000),
        ),
    ]);
    let v = settled(&mut rx).await;
    assert_eq!(v.priority_delta, -50, "{v:?}");
    assert_eq!(v.fault, None);
    assert_eq!(v.reasons.len(), 2, "{:?}", v.reasons);
    assert!(v
        .reasons
        .iter()
        .any(|r| r.starts_with("check closed failing: ") && r.ends_with("(weight -30)")));
    let statuses = monitor.statuses();
    let closed = status(&statuses, "closed");
    assert!(
        closed.last_result.contains("connection refused"),
        "{closed:?}"
    );
    assert_eq!(closed.kind, "tcp");
    assert!(status(&statuses, "open").healthy);

    server.set(OK);
    let v = wait_for(&mut rx, "web recovered", |v| v.priority_delta == -30).await;
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
}

#[tokio::test]
async fn exec_checks_exit_status_and_timeout() {
    let mut sleeper = spec("sleep", exec(&["sleep", "10"]), Weight::Adjust(-100));
    sleeper.timeout = Duration::from_millis(200);
    let started = Instant::now();
    let (monitor, mut rx) = HealthMonitor::spawn(vec![
        spec("true", exec(&["/bin/true"]), Weight::Adjust(-1)),
        spec("false", exec(&["/bin/false"]), Weight::Adjust(-10)),
        sleeper,
    ]);
    let v = settled(&mut rx).await;
    assert_eq!(v.priority_delta, -110, "{v:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let statuses = monitor.statuses();
    assert!(status(&statuses, "true").healthy);
    let f = status(&statuses, "false");
    assert!(
        !f.healthy && f.last_result.starts_with("/bin/false: exit status: 1"),
        "{f:?}"
    );
    let s = status(&statuses, "sleep");
    assert!(s.last_result.contains("timed out after 200 ms"), "{s:?}");
}

#[tokio::test]
async fn process_checks_by_pidfile_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own.pid");
    std::fs::write(&own, format!("{}\n", std::process::id())).unwrap();
    let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let dead = dir.path().join("dead.pid");
    std::fs::write(&dead, dead_pid.to_string()).unwrap();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let comm = comm.trim_end().to_string();
    let missing_name = format!("haagent-no-{}", std::process::id());

    let process =
        |pidfile: Option<PathBuf>, name: Option<String>| CheckKind::Process { pidfile, name };
    let (monitor, mut rx) = HealthMonitor::spawn(vec![
        spec("own", process(Some(own), None), Weight::Adjust(-1)),
        spec("dead", process(Some(dead), None), Weight::Adjust(-10)),
        spec("by-name", process(None, Some(comm)), Weight::Adjust(-100)),
        spec(
            "no-such-name",
            process(None, Some(missing_name.clone())),
            Weight::Adjust(-1000),
        ),
    ]);
    let v = settled(&mut rx).await;
    assert_eq!(v.priority_delta, -1010, "{v:?}");
    let statuses = monitor.statuses();
    let d = status(&statuses, "dead");
    assert!(
        d.last_result
            .contains(&format!("PID {dead_pid} is not running")),
        "{d:?}"
    );
    let n = status(&statuses, "no-such-name");
    assert!(
        n.last_result
            .contains(&format!("no process named {missing_name}")),
        "{n:?}"
    );
    assert!(status(&statuses, "own").healthy && status(&statuses, "by-name").healthy);
}

#[tokio::test]
async fn interface_checks() {
    let missing = format!("hanone{}", std::process::id() % 100_000);
    let (monitor, mut rx) = HealthMonitor::spawn(vec![
        spec(
            "lo",
            CheckKind::Interface { name: "lo".into() },
            Weight::Adjust(-1),
        ),
        spec(
            "missing",
            CheckKind::Interface {
                name: missing.clone(),
            },
            Weight::Adjust(-10),
        ),
    ]);
    let v = settled(&mut rx).await;
    assert_eq!(v.priority_delta, -10, "{v:?}");
    let statuses = monitor.statuses();
    assert!(status(&statuses, "lo").healthy);
    let m = status(&statuses, "missing");
    assert_eq!(
        m.last_result,
        format!("interface {missing}: does not exist")
    );
}

#[tokio::test]
async fn track_file_value_times_weight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prio");
    std::fs::write(&path, "5\n").unwrap();
    let (monitor, mut rx) = HealthMonitor::spawn(vec![spec(
        "prio",
        CheckKind::File { path: path.clone() },
        Weight::Adjust(-10),
    )]);
    let v = settled(&mut rx).await;
    assert_eq!(v.priority_delta, -50, "{v:?}");
    let st = &monitor.statuses()[0];
    assert_eq!(
        (st.kind, st.file_value, st.healthy),
        ("file", Some(5), true)
    );

    std::fs::write(&path, "-2").unwrap();
    wait_for(&mut rx, "delta +20", |v| v.priority_delta == 20).await;

    std::fs::remove_file(&path).unwrap();
    wait_for(&mut rx, "delta 0", |v| v.priority_delta == 0).await;
    let st = &monitor.statuses()[0];
    assert_eq!(st.file_value, None);
    assert!(!st.healthy);
    assert!(st.last_result.contains("counted as 0"), "{st:?}");
}

#[tokio::test]
async fn track_file_with_fault_weight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maintenance");
    std::fs::write(&path, "").unwrap();
    let (_monitor, mut rx) = HealthMonitor::spawn(vec![spec(
        "maint",
        CheckKind::File { path: path.clone() },
        Weight::Fault,
    )]);
    assert_eq!(settled(&mut rx).await.fault, None);
    std::fs::write(&path, "1").unwrap();
    let v = wait_for(&mut rx, "a fault", |v| v.fault.is_some()).await;
    assert!(v.fault.unwrap().contains("holds 1"));
}

#[tokio::test]
async fn no_checks_is_settled_at_once_and_drop_stops_everything() {
    let (monitor, mut rx) = HealthMonitor::spawn(vec![]);
    let v = settled(&mut rx).await;
    assert_eq!(
        v,
        Verdict {
            fault: None,
            priority_delta: 0,
            reasons: vec![],
            settled: true
        }
    );
    drop(monitor);

    let (monitor, mut rx) =
        HealthMonitor::spawn(vec![spec("t", exec(&["/bin/true"]), Weight::Fault)]);
    settled(&mut rx).await;
    drop(monitor);
    let closed = tokio::time::timeout(WAIT, async { while rx.recv().await.is_some() {} }).await;
    assert!(closed.is_ok(), "the verdict channel stayed open after drop");
}
