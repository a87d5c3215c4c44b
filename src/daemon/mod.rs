//! The daemon: the one place that owns sockets, the clock and the netlink handle. It feeds
//! the pure [`Election`](crate::election::Election) with time, peer adverts and signals,
//! and carries out the actions it returns.
//!
//! Split by job, each file one of them. Each imports only files above it in this list,
//! so no two import each other: `admission`, `solicit`, `state` and `supervisor` import none, `execute` →
//! `admission`, `solicit`; `setup` → `admission`, `execute`; `operator` → `admission`,
//! `execute`, `setup`; `run` → all.
//!
//! | file | job |
//! |---|---|
//! | `admission.rs` | pure: decode, identity, cluster, epoch bound, then loss and drift per peer ([`AdmissionError`]) |
//! | `solicit.rs` | one ARP request for a peer whose path works again |
//! | `execute.rs` | carrying out actions and kernel facts: VIPs and lease, GARP, probe, redial, metrics, hooks |
//! | `setup.rs` | config into drivers and the election, one function per driver; [`DaemonError`] |
//! | `operator.rs` | control-socket requests (status, handover, maintenance, reload), the status document; [`RunOptions`] |
//! | `state.rs` | what survives a restart (`[state] dir`): the maintenance flag, written atomically |
//! | `supervisor.rs` | systemd notify: `READY=1`, `STATUS=`, `WATCHDOG=1` (pinged by the loop), `RELOADING=1`, `STOPPING=1` |
//! | `run.rs` | the one event loop (`select!`) and the only `Election::handle` call |
//!
//! ```text
//!  transport task(s) ──TransportEvent──┐
//!  gateway witness ────WitnessEvent────┤
//!  ARP watch ──────────ArpConflict─────┤
//!  link watch ─────────LinkState───────┤
//!  address watch ──────AddressEvent────┤
//!  ARP probe (blocking pool) ─result───┤
//!  cloud mover (a task per group) ─Outcome─┼──> run loop ──> Election::handle(now, input)
//!  lease timer (while master) ─────────┤          │
//!  timer (election.next_deadline) ─────┤          │
//!  control socket ─────ControlRequest──┤──> operator (status, reload; answers)
//!  shutdown signal ────────────────────┘          │
//!           Executor (execute.rs) carries out the actions:
//!                              Send ─> Transport::broadcast
//!                              InstallVips / ReleaseVips ─> VipManager (rtnetlink, lease)
//!                              Announce ─> Announcer (pnet GARP burst + refresh)
//!                              Probe ─> ArpProbe on the blocking pool
//!                              Transition / Notice ─> log, metrics, history (+ Notifier)
//!                              claim / release ─> Mover (queued; wait = true defers the record)
//! ```
//!
//! Beside the loop, not into it: a routed group's BIRD export watch ([`crate::bird`], a
//! task per group with `bird_socket`) keeps the snapshot `status` reads; no election hears it.
//!
//! Kernel facts follow kernel notifications: the link watch follows the interface by name
//! (a re-created interface or a new MAC moves the netlink index, the packet sockets and the
//! election's MAC along), and the address watch reports a VIP leaving the interface at once
//! (the lease and the repair rule: `execute.rs`).

use std::future::Future;

use crate::config::Config;

mod admission;
mod execute;
mod operator;
mod run;
mod setup;
mod solicit;
mod state;
mod supervisor;

pub use admission::{AdmissionError, AdmissionKind, MAX_EPOCH};
pub use operator::{RunOptions, SetLogLevel};
pub use setup::DaemonError;

/// Runs the agent until `shutdown` completes, then hands over gracefully: a master to its
/// best live backup first, make-before-break, and every node with a priority-0 advert.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    run::run(config, options, shutdown).await
}
