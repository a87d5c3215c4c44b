//! What the node's BIRD exports of a routed group's VIPs (issue 15): the "exported, as
//! the engine sees it" half of a routed group's announcement state, next to the host routes
//! haagent installs itself (docs/routed.md, "What BIRD exports").
//!
//! A routed group with `bird_socket` set gets an [`ExportWatch`]: a task of its own that,
//! every [`POLL_INTERVAL`], asks that BIRD with the real `birdc` binary
//!
//! 1. `birdc -v -s SOCKET show protocols`: the BGP protocols, their state and info
//!    (`up` / `Established`);
//! 2. for each BGP protocol that is up, `birdc -v -s SOCKET show route where net ~ [ VIP/32,
//!    … ] export 'PROTO'`: which of the group's VIPs BIRD exports to it (the filter keeps the
//!    answer as short as the VIP list, whatever else BIRD exports).
//!
//! `birdc` rather than a client of BIRD's control socket written here: the socket's reply
//! format is BIRD's own business (numeric codes, continuation lines, the `show route`
//! layout), `birdc` ships with it in the same package and speaks it for every BIRD version
//! the operator runs, and its `-v` output keeps the reply codes, so that this module only
//! reads text (`parse.rs`). Each run is bounded: [`BIRDC_TIMEOUT`], at most
//! [`OUTPUT_LIMIT`] bytes of output, killed when either is exceeded.
//!
//! The result is a [`Snapshot`] that `haagent status` reads (`groups[].export`) and the
//! metrics `haagent_route_exported{group,protocol}` and
//! `haagent_route_export_ok{group}`. A failing check (no `birdc`, socket refused, a
//! timeout, output not understood) becomes the snapshot's `error` and is logged once per
//! change of the error, never at every poll.
//!
//! Information only: nothing here reaches the election. What BIRD says it exports is not
//! cluster state (no peer vouches for it), so it moves no VIP and changes no priority.
//!
//! # Files
//!
//! `parse.rs` (pure: `birdc -v` text → protocols, exported prefixes), `birdc.rs` (one
//! bounded `birdc` run, one check), `watch.rs` (the polling task and its snapshot).

mod birdc;
mod parse;
mod watch;

use std::time::Duration;

pub use watch::{ExportWatch, ProtocolExport, Snapshot, WatchSpec};

/// How often a group's BIRD is asked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long one `birdc` run may take before it is killed. BIRD answers a `show` in well
/// under a millisecond on the lab's 2 cores; a BIRD that is stopped (SIGSTOP) or busy
/// reloading a large config accepts the connection and never answers.
pub const BIRDC_TIMEOUT: Duration = Duration::from_secs(1);

/// Most bytes of one `birdc` run's output that are read; a longer output fails the check
/// (`show protocols` of a route server with thousands of sessions: ask less of it).
pub const OUTPUT_LIMIT: usize = 256 * 1024;

/// Most BGP protocols reported per group (status and metrics labels stay bounded);
/// further ones are left out, and the snapshot says how many.
pub const MAX_PROTOCOLS: usize = 32;

/// The program run: Debian's bird2 package puts it in `/usr/sbin`, which is on systemd's
/// `PATH`.
pub const BIRDC: &str = "birdc";

/// Why one check of a BIRD failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BirdError {
    /// `birdc` could not be started (not installed, not on `PATH`, not executable).
    #[error("cannot run {program}: {reason} (is BIRD 2's birdc installed? Debian: apt-get install bird2)")]
    Spawn {
        /// The program (`birdc`).
        program: String,
        /// The operating system's words.
        reason: String,
    },
    /// `birdc` did not finish within [`BIRDC_TIMEOUT`] and was killed.
    #[error("birdc `{command}` did not answer within {} ms (BIRD stopped or overloaded?); killed", .timeout.as_millis())]
    Timeout {
        /// The BIRD command (`show protocols`).
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// `birdc` printed more than [`OUTPUT_LIMIT`] bytes; it was killed.
    #[error("birdc `{command}` printed more than {limit} bytes; not read further")]
    TooLong {
        /// The BIRD command.
        command: String,
        /// The limit.
        limit: usize,
    },
    /// `birdc` exited with an error of its own (`Unable to connect to server control
    /// socket (/run/bird/bird.ctl): No such file or directory`).
    #[error("birdc `{command}` failed ({status}): {message}")]
    Failed {
        /// The BIRD command.
        command: String,
        /// Its exit status, in words.
        status: String,
        /// What it printed (stderr, else stdout), trimmed, at most 512 bytes.
        message: String,
    },
    /// BIRD answered with an error reply (`8xxx` run-time or `9xxx` syntax error).
    #[error("BIRD refused `{command}`: {code} {message}")]
    Reply {
        /// The BIRD command.
        command: String,
        /// The reply code, 8000..=9999.
        code: u16,
        /// BIRD's words.
        message: String,
    },
    /// The output was not what BIRD 2 prints.
    #[error("birdc `{command}`: output not understood: {what}")]
    Unparseable {
        /// The BIRD command.
        command: String,
        /// What was wrong.
        what: String,
    },
}
