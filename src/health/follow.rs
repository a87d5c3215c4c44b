//! The task of one `process` check: find the process (pidfile or name), open a pidfd on it
//! and wait for whichever comes first, its exit or the next interval.
//!
//! - At every interval (and at start) the process is looked up again, as a poll would: the
//!   result is a run like any other check's (`fall` / `rise` apply), and a pidfile that
//!   now names another live PID (a binary upgrade) moves the pidfd to that PID.
//! - When the pidfd says the process exited, the pidfile (or `/proc`, for a name) is read
//!   once more at once: a new live PID there is followed without a failure (the upgrade
//!   whose old process exits before the next interval); otherwise the result is
//!   [`CheckError::Exited`] with [`Cause::Exit`], which fails the check at once.
//! - After an open, the PID is checked again (pidfile, comm, alive), so a PID that died and
//!   was reused between the lookup and pidfd_open is not followed.
//! - `ENOSYS` / `EPERM` from pidfd_open (old kernel, seccomp) make the check poll for good;
//!   the first such check logs it, once per process.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::pidfd::{self, Watch};
use super::process::{self, Found};
use super::runner::{self, CheckError, Passed};
use super::spec::{CheckKind, CheckSpec};
use super::{Cause, RunResult};

/// How a pidfd is opened: [`pidfd::open`], or a stand-in in tests.
pub(super) type Opener = fn(u32) -> io::Result<OwnedFd>;

/// Set once the lack of pidfds has been logged (once per process, not per check).
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// Attempts at find + open + check again before a run gives up (each failed attempt means
/// the PID changed in between).
const ATTEMPTS: usize = 3;

/// The process followed now.
struct Followed {
    found: Found,
    watch: Watch,
}

/// What woke the task.
enum Wake {
    /// The interval.
    Tick,
    /// The followed process exited.
    Exit,
}

/// What a lookup did about a pidfd.
enum Opened {
    /// The PID is the one already followed; keep its pidfd.
    Same,
    /// A new pidfd, checked to be the found process.
    Fd(OwnedFd),
    /// No pidfd: pidfds are unavailable (this error), or the check already polls (None).
    Unsupported(Option<io::Error>),
    /// pidfd_open failed otherwise (EMFILE, ...): poll this round, try again next time.
    Failed(io::Error),
}

/// Runs a process check forever (see the module documentation).
pub(super) async fn task(
    index: usize,
    spec: CheckSpec,
    results: mpsc::UnboundedSender<RunResult>,
    open: Opener,
) {
    let CheckKind::Process { pidfile, name } = spec.kind.clone() else {
        return;
    };
    let check = spec.name.clone();
    let mut ticker = tokio::time::interval(spec.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut followed: Option<Followed> = None;
    let mut polling = false;
    loop {
        let wake = match &followed {
            Some(f) => tokio::select! {
                biased;
                exited = f.watch.exited() => match exited {
                    Ok(()) => Wake::Exit,
                    Err(e) => {
                        tracing::warn!(check = %check, pid = f.found.pid, error = %e,
                            "check {check}: waiting on the pidfd of PID {} failed; polling from now on",
                            f.found.pid);
                        polling = true;
                        followed = None;
                        Wake::Tick
                    }
                },
                _ = ticker.tick() => Wake::Tick,
            },
            None => {
                ticker.tick().await;
                Wake::Tick
            }
        };
        let start = Instant::now();
        let old = match wake {
            Wake::Exit => followed.take(),
            Wake::Tick => None,
        };
        let current = followed.as_ref().map(|f| f.found.pid);
        let looked = look(&spec, pidfile.clone(), name.clone(), current, open, polling).await;
        let (outcome, cause) = match (old, looked) {
            (Some(old), Ok((found, opened))) if found.pid != old.found.pid => {
                tracing::info!(check = %check, old = old.found.pid, pid = found.pid,
                    "check {check}: PID {} exited, {} {} is now PID {}",
                    old.found.pid, old.found.label(), found.by, found.pid);
                (
                    Ok(adopt(&check, found, opened, &mut followed, &mut polling)),
                    Cause::Run,
                )
            }
            (Some(old), _) => {
                let Found { pid, comm, by, .. } = old.found;
                (Err(CheckError::Exited { comm, pid, by }), Cause::Exit)
            }
            (None, Ok((found, opened))) => (
                Ok(adopt(&check, found, opened, &mut followed, &mut polling)),
                Cause::Run,
            ),
            (None, Err(e)) => {
                followed = None;
                (Err(e), Cause::Run)
            }
        };
        let result = RunResult {
            index,
            outcome,
            latency: start.elapsed(),
            cause,
            following: followed.as_ref().map(|f| f.found.pid),
        };
        if results.send(result).is_err() {
            return;
        }
    }
}

/// Makes `found` the followed process (with the pidfd the lookup opened) and returns the
/// passing run.
fn adopt(
    check: &str,
    found: Found,
    opened: Opened,
    followed: &mut Option<Followed>,
    polling: &mut bool,
) -> Passed {
    let passed = Passed {
        detail: found.detail.clone(),
        file_value: None,
    };
    let pid = found.pid;
    match opened {
        Opened::Same => {
            if let Some(f) = followed.as_mut() {
                f.found = found;
            }
        }
        Opened::Fd(fd) => match Watch::new(fd) {
            Ok(watch) => {
                tracing::debug!(check = %check, pid, "check {check}: following {} (pid {pid}, {}) with a pidfd",
                    found.label(), found.by);
                *followed = Some(Followed { found, watch });
            }
            Err(e) => {
                tracing::warn!(check = %check, pid, error = %e,
                    "check {check}: cannot wait on the pidfd of PID {pid}; polling from now on");
                *polling = true;
                *followed = None;
            }
        },
        Opened::Unsupported(error) => {
            *polling = true;
            *followed = None;
            if let Some(e) = error {
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(check = %check, error = %e,
                        "pidfd_open is not available ({e}); process checks poll every interval \
                         instead of seeing an exit at once");
                }
            }
        }
        Opened::Failed(e) => {
            tracing::debug!(check = %check, pid, error = %e,
                "check {check}: pidfd_open for PID {pid} failed; polling this run");
            *followed = None;
        }
    }
    passed
}

/// One lookup on the blocking pool, under the check's timeout: find the process and, when
/// it is not the one followed, open and check its pidfd.
async fn look(
    spec: &CheckSpec,
    pidfile: Option<PathBuf>,
    name: Option<String>,
    current: Option<u32>,
    open: Opener,
    polling: bool,
) -> Result<(Found, Opened), CheckError> {
    let blocking = tokio::task::spawn_blocking(move || {
        find_and_open(pidfile, name, current, (!polling).then_some(open))
    });
    match tokio::time::timeout(spec.timeout, blocking).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(CheckError::Process(format!("process check aborted: {e}"))),
        Err(_) => Err(CheckError::Timeout {
            target: runner::target(&spec.kind),
            ms: spec.timeout.as_millis(),
        }),
    }
}

/// Finds the process; opens a pidfd unless it is `current` or `open` is None; checks after
/// the open that the PID is still that process (else finds again, up to [`ATTEMPTS`]).
fn find_and_open(
    pidfile: Option<PathBuf>,
    name: Option<String>,
    current: Option<u32>,
    open: Option<Opener>,
) -> Result<(Found, Opened), CheckError> {
    let mut changed = String::new();
    for _ in 0..ATTEMPTS {
        let found = process::find(pidfile.as_deref(), name.as_deref(), current)?;
        if Some(found.pid) == current {
            return Ok((found, Opened::Same));
        }
        let Some(open) = open else {
            return Ok((found, Opened::Unsupported(None)));
        };
        match open(found.pid) {
            Ok(fd) => match process::still(&found) {
                Ok(()) => return Ok((found, Opened::Fd(fd))),
                Err(why) => changed = why,
            },
            // Gone between the lookup and the open: the next lookup says so.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                changed = format!("PID {} exited while being opened", found.pid)
            }
            Err(e) if pidfd::unsupported(&e) => return Ok((found, Opened::Unsupported(Some(e)))),
            Err(e) => return Ok((found, Opened::Failed(e))),
        }
    }
    Err(CheckError::Process(format!(
        "PID changed {ATTEMPTS} times while being opened ({changed})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Weight;
    use std::process::{Child, Command};

    fn sleeper() -> Child {
        Command::new("sleep").arg("1000").spawn().unwrap()
    }

    fn spec(pidfile: PathBuf, interval: Duration) -> CheckSpec {
        CheckSpec {
            name: "svc".into(),
            kind: CheckKind::Process {
                pidfile: Some(pidfile),
                name: None,
            },
            interval,
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 1,
            weight: Weight::Fault,
        }
    }

    fn enosys(_: u32) -> io::Result<OwnedFd> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<RunResult>) -> RunResult {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a result within 5 s")
            .expect("the task runs")
    }

    #[tokio::test]
    async fn without_pidfds_the_check_polls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.pid");
        let mut child = sleeper();
        std::fs::write(&path, child.id().to_string()).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(task(0, spec(path, Duration::from_millis(30)), tx, enosys));
        let first = next(&mut rx).await;
        assert!(first.outcome.is_ok(), "{:?}", first.outcome);
        assert_eq!((first.cause, first.following), (Cause::Run, None));
        child.kill().unwrap();
        child.wait().unwrap();
        let failed = loop {
            let r = next(&mut rx).await;
            if r.outcome.is_err() {
                break r;
            }
        };
        assert_eq!(failed.cause, Cause::Run, "a poll, not an exit event");
        let why = failed.outcome.unwrap_err().to_string();
        assert!(why.contains("is not running"), "{why}");
        task.abort();
    }

    #[test]
    fn an_open_that_races_a_pidfile_change_is_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.pid");
        let (mut a, mut b) = (sleeper(), sleeper());
        std::fs::write(&path, a.id().to_string()).unwrap();
        // The "open" rewrites the pidfile first: the first attempt must be thrown away.
        static RACE: std::sync::Mutex<Option<(PathBuf, String)>> = std::sync::Mutex::new(None);
        fn open_then_move(pid: u32) -> io::Result<OwnedFd> {
            if let Some((path, next)) = RACE.lock().unwrap().take() {
                std::fs::write(path, next)?;
            }
            pidfd::open(pid)
        }
        *RACE.lock().unwrap() = Some((path.clone(), b.id().to_string()));
        let (found, opened) = find_and_open(Some(path), None, None, Some(open_then_move)).unwrap();
        assert_eq!(found.pid, b.id());
        assert!(matches!(opened, Opened::Fd(_)));
        for c in [&mut a, &mut b] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}
