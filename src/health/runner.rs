//! Runs one check once and says whether it passed, with a line a human can read. The
//! monitor wraps every run in the spec's timeout, so nothing here needs its own deadline;
//! everything here only talks to what the config names. The monitor runs `process` checks
//! in `follow` instead (event-driven, with a pidfd); `run` looks such a process up once
//! (`haagent doctor`).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::http;
use super::process::{self, FoundBy};
use super::spec::CheckKind;

/// Why a check run failed. The text ends up in logs, `haagent status` and the fault reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    /// An http check failed (connect, protocol, status or body).
    #[error("GET {url}: {reason}")]
    Http {
        /// The configured URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A tcp connect failed.
    #[error("connect to {addr}: {reason}")]
    Tcp {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// A command could not run or exited nonzero.
    #[error("{program}: {reason}")]
    Exec {
        /// The program (argv\[0\]).
        program: String,
        /// What went wrong, with the first line of stderr.
        reason: String,
    },
    /// A process check found no live process.
    #[error("{0}")]
    Process(String),
    /// The process a `process` check followed with a pidfd exited (and nothing took its
    /// place): `nginx (pid 1234, from /run/nginx.pid) exited`.
    #[error("{comm} (pid {pid}, {by}) exited")]
    Exited {
        /// Its name (`/proc/PID/comm`) when it was found.
        comm: String,
        /// Its PID.
        pid: u32,
        /// Where the PID came from.
        by: FoundBy,
    },
    /// An interface is missing, down or without carrier.
    #[error("interface {name}: {reason}")]
    Interface {
        /// The interface name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A track file is missing, unreadable or not an integer; its value counts as 0.
    #[error("{path}: {reason} (counted as 0, like keepalived)")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The run did not finish within the spec's timeout (and was abandoned).
    #[error("{target}: timed out after {ms} ms")]
    Timeout {
        /// What was being checked (`GET http://..`, `connect to ..`, the program, ..).
        target: String,
        /// The timeout.
        ms: u128,
    },
}

/// A passing run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passed {
    /// What was seen (`200 OK`, `exit 0`, `PID 42 running`, ...).
    pub(crate) detail: String,
    /// For file checks: the value read.
    pub(crate) file_value: Option<i64>,
}

impl Passed {
    fn new(detail: impl Into<String>) -> Self {
        Passed {
            detail: detail.into(),
            file_value: None,
        }
    }
}

/// A short name of what a check looks at, for the timeout message.
pub(crate) fn target(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Http { url, .. } => format!("GET {url}"),
        CheckKind::Tcp { addr } => format!("connect to {addr}"),
        CheckKind::Exec { argv } => argv.first().cloned().unwrap_or_else(|| "exec".into()),
        CheckKind::Process { pidfile, name } => match (pidfile, name) {
            (Some(p), _) => format!("pidfile {}", p.display()),
            (None, Some(n)) => format!("process {n}"),
            (None, None) => "process".into(),
        },
        CheckKind::Interface { name } => format!("interface {name}"),
        CheckKind::File { path } => path.display().to_string(),
    }
}

/// The `kind` string of `haagent status` and metrics.
pub(crate) fn kind_name(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Http { .. } => "http",
        CheckKind::Tcp { .. } => "tcp",
        CheckKind::Exec { .. } => "exec",
        CheckKind::Process { .. } => "process",
        CheckKind::Interface { .. } => "interface",
        CheckKind::File { .. } => "file",
    }
}

/// Runs the check once (without a timeout: the caller adds it).
pub(crate) async fn run(kind: &CheckKind) -> Result<Passed, CheckError> {
    match kind {
        CheckKind::Http {
            url,
            expect_status,
            body_contains,
        } => http::get(url, expect_status, body_contains.as_deref())
            .await
            .map(Passed::new)
            .map_err(|reason| CheckError::Http {
                url: url.clone(),
                reason,
            }),
        CheckKind::Tcp { addr } => match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => Ok(Passed::new(format!("connected to {addr}"))),
            Err(e) => Err(CheckError::Tcp {
                addr: *addr,
                reason: io_reason(&e),
            }),
        },
        CheckKind::Exec { argv } => exec(argv).await,
        CheckKind::Process { pidfile, name } => {
            let (pidfile, name) = (pidfile.clone(), name.clone());
            let find = move || process::find(pidfile.as_deref(), name.as_deref(), None);
            match tokio::task::spawn_blocking(find).await {
                Ok(r) => r.map(|found| Passed::new(found.detail)),
                Err(e) => Err(CheckError::Process(format!("process check aborted: {e}"))),
            }
        }
        CheckKind::Interface { name } => interface(name).await,
        CheckKind::File { path } => file(path).await,
    }
}

async fn exec(argv: &[String]) -> Result<Passed, CheckError> {
    let Some(program) = argv.first() else {
        return Err(CheckError::Exec {
            program: "exec".into(),
            reason: "empty command".into(),
        });
    };
    let fail = |reason: String| CheckError::Exec {
        program: program.clone(),
        reason,
    };
    let output = tokio::process::Command::new(program)
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| fail(format!("cannot run: {}", io_reason(&e))))?;
    if output.status.success() {
        return Ok(Passed::new("exit 0"));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect::<String>());
    Err(fail(match first {
        Some(line) => format!("{}: {line}", output.status),
        None => output.status.to_string(),
    }))
}

async fn interface(name: &str) -> Result<Passed, CheckError> {
    let fail = |reason: String| CheckError::Interface {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(fail("not a valid interface name".into()));
    }
    let dir = Path::new("/sys/class/net").join(name);
    let operstate = match tokio::fs::read_to_string(dir.join("operstate")).await {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(fail("does not exist".into())),
        Err(e) => return Err(fail(format!("cannot read operstate: {}", io_reason(&e)))),
    };
    if operstate == "up" {
        return Ok(Passed::new("up"));
    }
    // Loopback and some virtual devices report "unknown" but have carrier; reading
    // `carrier` fails (EINVAL) while the link is administratively down.
    match tokio::fs::read_to_string(dir.join("carrier")).await {
        Ok(c) if c.trim() == "1" => Ok(Passed::new(format!("{operstate}, carrier"))),
        Ok(_) => Err(fail(format!("{operstate}, no carrier"))),
        Err(_) => Err(fail(format!("{operstate} (administratively down?)"))),
    }
}

async fn file(path: &Path) -> Result<Passed, CheckError> {
    let fail = |reason: String| CheckError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| fail(io_reason(&e)))?;
    let value = parse_file_value(&text).map_err(fail)?;
    Ok(Passed {
        detail: format!("value {value}"),
        file_value: Some(value),
    })
}

/// The integer of a track file: trimmed, empty = 0.
pub(crate) fn parse_file_value(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<i64>().map_err(|_| {
        format!(
            "{:?} is not an integer",
            t.chars().take(40).collect::<String>()
        )
    })
}

/// An I/O error as a short lowercase phrase (`connection refused`), without `(os error N)`.
pub(crate) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::NotFound => "not found".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_values() {
        assert_eq!(parse_file_value(" 5\n"), Ok(5));
        assert_eq!(parse_file_value("-3"), Ok(-3));
        assert_eq!(parse_file_value("\n"), Ok(0));
        assert!(parse_file_value("five")
            .unwrap_err()
            .contains("not an integer"));
        assert!(parse_file_value("99999999999999999999").is_err());
    }

    #[test]
    fn io_reasons_are_short() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&e), "connection refused");
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert!(!io_reason(&e).contains("os error"), "{}", io_reason(&e));
    }

    #[tokio::test]
    async fn exec_reports_the_first_stderr_line() {
        let argv = ["/bin/sh", "-c", "echo oops >&2; echo more >&2; exit 3"].map(String::from);
        let err = exec(&argv).await.unwrap_err().to_string();
        assert!(err.starts_with("/bin/sh: "), "{err}");
        assert!(
            err.contains("3") && err.contains("oops") && !err.contains("more"),
            "{err}"
        );
        let err = exec(&[]).await.unwrap_err().to_string();
        assert!(err.contains("empty command"), "{err}");
        let err = exec(&["/nonexistent/haagent-x".into()]).await.unwrap_err();
        assert!(err.to_string().contains("cannot run"), "{err}");
    }

    #[tokio::test]
    async fn rejects_interface_names_that_are_paths() {
        for bad in ["", ".", "..", "../lo", "a/b"] {
            let err = interface(bad).await.unwrap_err().to_string();
            assert!(err.contains("not a valid interface name"), "{bad}: {err}");
        }
    }
}
