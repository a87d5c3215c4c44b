//! What a health check is, as configured: plain data shared by the config module (which
//! builds it from `[[check]]` tables and `--check-http`) and the health monitor (which runs it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One configured check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// Unique name, used in logs, status and metrics (`nginx`, `http-1`, ...).
    pub name: String,
    /// What to check.
    pub kind: CheckKind,
    /// Time between two runs.
    pub interval: Duration,
    /// A run that takes longer counts as failed (and is abandoned).
    pub timeout: Duration,
    /// Consecutive failures that make a healthy check failing.
    pub fall: u32,
    /// Consecutive successes that make a failing check healthy again.
    pub rise: u32,
    /// What the check does to the priority (keepalived's meaning, see [`Weight`]).
    pub weight: Weight,
}

/// The kinds of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `GET url` (plain http://); healthy when the status is one of `expect_status` and the
    /// body contains `body_contains` (if set).
    Http {
        /// `http://host[:port]/path`.
        url: String,
        /// Accepted status codes; empty = 200..=399.
        expect_status: Vec<u16>,
        /// A substring the body must contain.
        body_contains: Option<String>,
    },
    /// A TCP connect succeeds.
    Tcp {
        /// Where to connect.
        addr: SocketAddr,
    },
    /// A command (argv, no shell) exits 0.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// A process is running: by pidfile (the PID in it is alive) or by exact name
    /// (`/proc/*/comm`).
    Process {
        /// A pidfile to read.
        pidfile: Option<PathBuf>,
        /// A process name to look for.
        name: Option<String>,
    },
    /// A network interface is up with carrier.
    Interface {
        /// Its name.
        name: String,
    },
    /// keepalived's `track_file`: the integer in the file, times `weight`, adjusts the
    /// priority; with `Weight::Fault`, any nonzero value means fault. A missing or
    /// unreadable file counts as failing.
    File {
        /// The file.
        path: PathBuf,
    },
}

/// What a check does to the priority, with keepalived's meaning of `weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// A failing check puts the node in Fault (it releases the VIPs). Config: `weight = 0`
    /// or `"fault"`.
    Fault,
    /// A positive number (1..=254) is added to the priority while the check succeeds; a
    /// negative one (-254..=-1) is added, i.e. subtracted, while it fails (keepalived's
    /// `weight`). Before the check's first result it counts for nothing. For `File` checks
    /// the file's value is multiplied by it instead, whatever the sign.
    Adjust(i32),
}
