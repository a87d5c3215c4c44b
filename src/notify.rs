//! Notify hooks: an operator's command run on every state transition.
//!
//! Commands run without a shell (argv as configured, plus keepalived's positional arguments
//! with `args = "keepalived"`), with the transition described in environment variables.
//!
//! # Order and queue
//! Each group's [`Notifier`] owns one queue: hooks run one at a time, in the order of the
//! transitions that asked for them, each after the previous one ended. The daemon loop only
//! enqueues ([`Notifier::fire`] returns at once), so a slow hook delays the next hook, never
//! the election. At most [`MAX_PENDING`] hooks wait; when one more comes, the oldest waiting
//! hook that is not a `stop` hook is dropped with a WARN naming it. The newest is never
//! dropped, so the last transition's hooks always run, last (master → backup → master in
//! quick succession: the last hook to run is told master).
//!
//! # Timeout
//! Each hook runs in its own process group (`setpgid(0, 0)`); at its timeout the whole group
//! gets SIGTERM, then SIGKILL after [`KILL_GRACE`], so a hook's background children (an `aws`
//! call, `sleep 100 &`) end with it. Failures are logged, never propagated.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::config::{Hook, HookArgs};
use crate::election::Cause;
use crate::wire::State;

/// The new state (`master`, `backup`, `fault`, or `stop` when the agent stops). Every
/// `HAAGENT_*` variable a hook receives is listed in docs/configuration.md (`[notify]`).
pub const ENV_STATE: &str = "HAAGENT_STATE";
/// The state before the transition.
pub const ENV_OLD_STATE: &str = "HAAGENT_OLD_STATE";
/// The reason for the transition, in words.
pub const ENV_REASON: &str = "HAAGENT_REASON";
/// The cause of the transition, as a stable word ([`Cause::label`], e.g. `master_down`):
/// match on this, not on the reason's words.
pub const ENV_CAUSE: &str = "HAAGENT_CAUSE";
/// The group's VIPs, space separated, `address/prefix`.
pub const ENV_VIPS: &str = "HAAGENT_VIPS";
/// The name of the VIP group whose state changed (`[[group]] name`; `default` for a config
/// without groups).
pub const ENV_GROUP: &str = "HAAGENT_GROUP";
/// The node's name.
pub const ENV_NODE: &str = "HAAGENT_NODE";
/// The epoch after the transition.
pub const ENV_EPOCH: &str = "HAAGENT_EPOCH";
/// The group's effective priority after the transition (0..=255).
pub const ENV_PRIORITY: &str = "HAAGENT_PRIORITY";
/// `claim_blocked` hook: the MAC whose ARP answers keep us from claiming the VIPs.
pub const ENV_BLOCKED_BY: &str = "HAAGENT_BLOCKED_BY";
/// `claim_blocked` hook: the member that MAC belongs to, or empty for a non-member.
pub const ENV_BLOCKED_BY_MEMBER: &str = "HAAGENT_BLOCKED_BY_MEMBER";
/// `conflict_won` hook: the MAC that also answered for our VIPs and that we outrank.
pub const ENV_CONFLICT_MAC: &str = "HAAGENT_CONFLICT_MAC";
/// `conflict_won` hook: the member that MAC belongs to, or empty for a non-member.
pub const ENV_CONFLICT_MEMBER: &str = "HAAGENT_CONFLICT_MEMBER";

/// Most hooks that wait in one group's queue (not counting the one running); see the module
/// docs for which one is dropped when one more comes.
pub const MAX_PENDING: usize = 64;

/// After SIGTERM to a timed-out hook's process group, how long before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_millis(500);

/// Most bytes of a failed hook's stderr kept for the log.
const STDERR_KEPT: usize = 4096;

/// Which commands to run for which transition.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Run on every transition.
    pub every: Option<Hook>,
    /// Run on a transition to master.
    pub master: Option<Hook>,
    /// Run on a transition to backup.
    pub backup: Option<Hook>,
    /// Run on a transition to fault.
    pub fault: Option<Hook>,
    /// Run when the agent stops.
    pub stop: Option<Hook>,
    /// Run when a probe answer first keeps us from claiming the VIPs.
    pub claim_blocked: Option<Hook>,
    /// Run when, as master, we win a VIP conflict and re-announce.
    pub conflict_won: Option<Hook>,
    /// How long a hook may run before its process group is killed.
    pub timeout: Duration,
}

impl From<&crate::config::NotifySettings> for Hooks {
    fn from(n: &crate::config::NotifySettings) -> Self {
        Hooks {
            every: n.command.clone(),
            master: n.master.clone(),
            backup: n.backup.clone(),
            fault: n.fault.clone(),
            stop: n.stop.clone(),
            claim_blocked: n.claim_blocked.clone(),
            conflict_won: n.conflict_won.clone(),
            timeout: n.timeout,
        }
    }
}

/// Runs the hooks of one VIP group for its transitions, one at a time, in order; cheap to
/// call from the daemon loop (it only enqueues).
///
/// One per group ([`Notifier::for_group`]): each group has its own hooks
/// (`[group.notify]`, default the node's `[notify]`), VIP list and queue. The group's name
/// comes with each event ([`TransitionEvent::group`], the `group` of
/// [`Notifier::fire_claim_blocked`]). Clones share the queue.
#[derive(Debug, Clone)]
pub struct Notifier {
    hooks: Hooks,
    node: String,
    vips: String,
    queue: Arc<Mutex<Queue>>,
}

/// One group's hooks waiting to run, and the task running them.
#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<Job>,
    /// The task running the queue, if one was started; it ends when the queue is empty.
    worker: Option<JoinHandle<()>>,
    /// Whether that task still takes jobs (set under the lock, so none is left behind).
    running: bool,
}

/// One hook to run: the command, ready to start, and how it is named in logs.
#[derive(Debug)]
struct Job {
    cmd: Command,
    shown: String,
    timeout: Duration,
    /// A `stop` hook: never dropped from a full queue.
    keep: bool,
}

/// What one transition looks like to a hook.
#[derive(Debug, Clone)]
pub struct TransitionEvent<'a> {
    /// State before.
    pub from: State,
    /// State after; `Init` after a shutdown is reported as "stop".
    pub to: State,
    /// Epoch after the transition.
    pub epoch: u64,
    /// The group's effective priority after the transition (`HAAGENT_PRIORITY`, and the
    /// last keepalived argument of `command`).
    pub priority: u8,
    /// Which rule decided.
    pub cause: Cause,
    /// Why, in words.
    pub reason: &'a str,
    /// Whether this transition is the agent stopping.
    pub stopping: bool,
    /// The group whose state changed (`[[group]] name`): `HAAGENT_GROUP`.
    pub group: String,
}

/// The MAC that lost a VIP conflict to us, and whose it is (the `conflict_won` hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictWon {
    /// The MAC that also answered for our VIPs.
    pub mac: [u8; 6],
    /// The member it belongs to by the adverts, if any.
    pub member: Option<String>,
}

impl Notifier {
    /// A notifier for `node` announcing `vips` (already formatted, space separated), with an
    /// empty queue (its task starts with the first hook).
    pub fn new(hooks: Hooks, node: String, vips: String) -> Self {
        Self {
            hooks,
            node,
            vips,
            queue: Arc::default(),
        }
    }

    /// The notifier of one group: its hooks from `group.notify` (which the config loader
    /// fills from the node's `[notify]` when the group has no `[group.notify]`) and its VIPs
    /// in `HAAGENT_VIPS`, for node `node`.
    pub fn for_group(group: &crate::config::GroupConfig, node: &str) -> Self {
        let vips = group
            .cidrs()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        Self::new(Hooks::from(&group.notify), node.to_owned(), vips)
    }

    /// Takes `new`'s hooks, node and VIPs (a reload) and keeps this notifier's queue, so
    /// that hooks already queued still run first, in order.
    pub fn reconfigure(&mut self, new: Notifier) {
        self.hooks = new.hooks;
        self.node = new.node;
        self.vips = new.vips;
    }

    /// The `HAAGENT_VIPS` value this notifier passes (space separated `address/prefix`).
    pub fn vips(&self) -> &str {
        &self.vips
    }

    /// Queues every hook that applies to this transition (the state's own — `master`,
    /// `backup`, `fault`, `stop` — first, then `command`: keepalived's order, vrrp_notify.c
    /// runs notify_master/backup/fault/stop before `notify`) and returns at once with how
    /// many were queued. Needs a tokio runtime.
    pub fn fire(&self, event: &TransitionEvent<'_>) -> usize {
        let state_name = if event.stopping {
            "stop".to_string()
        } else {
            event.to.to_string()
        };
        let specific = if event.stopping {
            &self.hooks.stop
        } else {
            match event.to {
                State::Master => &self.hooks.master,
                State::Backup => &self.hooks.backup,
                State::Fault => &self.hooks.fault,
                State::Init => &None,
            }
        };
        let mut queued = 0;
        for (hook, every) in [(specific, false), (&self.hooks.every, true)] {
            let Some(hook) = hook else { continue };
            // keepalived's `notify`: INSTANCE <name> <STATE> <priority>; nothing for the
            // state-specific hooks (keepalived.conf(5)).
            let extra = match (hook.args, every) {
                (HookArgs::Keepalived, true) => vec![
                    "INSTANCE".to_string(),
                    event.group.clone(),
                    state_name.to_uppercase(),
                    event.priority.to_string(),
                ],
                _ => Vec::new(),
            };
            let Some(mut cmd) = self.command(hook, &extra) else {
                continue;
            };
            cmd.env(ENV_STATE, &state_name)
                .env(ENV_OLD_STATE, event.from.to_string())
                .env(ENV_REASON, event.reason)
                .env(ENV_CAUSE, event.cause.label())
                .env(ENV_GROUP, &event.group)
                .env(ENV_EPOCH, event.epoch.to_string())
                .env(ENV_PRIORITY, event.priority.to_string());
            self.enqueue(cmd, hook, &extra, event.stopping);
            queued += 1;
        }
        queued
    }

    /// Queues the `claim_blocked` hook, if configured: a probe answer from `block.mac`
    /// keeps this backup from claiming the VIPs of `group` (`HAAGENT_STATE=backup`, the
    /// reason in `HAAGENT_REASON`, the MAC and member in `HAAGENT_BLOCKED_BY[_MEMBER]`, the
    /// group in `HAAGENT_GROUP`). Returns how many hooks were queued (0 or 1).
    pub fn fire_claim_blocked(
        &self,
        group: &str,
        block: &crate::election::ClaimBlock,
        reason: &str,
    ) -> usize {
        let Some(hook) = &self.hooks.claim_blocked else {
            return 0;
        };
        let Some(mut cmd) = self.command(hook, &[]) else {
            return 0;
        };
        cmd.env(ENV_STATE, "backup")
            .env(ENV_REASON, reason)
            .env(
                ENV_CAUSE,
                crate::election::NoticeCause::ClaimBlocked.label(),
            )
            .env(ENV_BLOCKED_BY, crate::net::format_mac(&block.mac))
            .env(ENV_BLOCKED_BY_MEMBER, block.member.as_deref().unwrap_or(""))
            .env(ENV_GROUP, group);
        self.enqueue(cmd, hook, &[], false);
        1
    }

    /// Queues the `conflict_won` hook, if configured: as master of `group` we outrank
    /// `won.mac`, which also answered for our VIPs, and re-announce (keepalived's
    /// `notify_master_rx_lower_pri`). `HAAGENT_STATE=master`, the MAC and member in
    /// `HAAGENT_CONFLICT_MAC`/`_MEMBER`. Returns how many hooks were queued (0 or 1).
    pub fn fire_conflict_won(&self, group: &str, won: &ConflictWon, reason: &str) -> usize {
        let Some(hook) = &self.hooks.conflict_won else {
            return 0;
        };
        let Some(mut cmd) = self.command(hook, &[]) else {
            return 0;
        };
        cmd.env(ENV_STATE, "master")
            .env(ENV_REASON, reason)
            .env(ENV_CAUSE, crate::election::NoticeCause::ConflictWon.label())
            .env(ENV_CONFLICT_MAC, crate::net::format_mac(&won.mac))
            .env(ENV_CONFLICT_MEMBER, won.member.as_deref().unwrap_or(""))
            .env(ENV_GROUP, group);
        self.enqueue(cmd, hook, &[], false);
        1
    }

    /// Waits until every queued hook has run (each ends by its timeout at the latest): a
    /// stopping agent's `stop` hooks.
    pub async fn drained(&self) {
        loop {
            let worker = match self.queue.lock() {
                Ok(mut q) => q.worker.take(),
                Err(_) => return,
            };
            match worker {
                Some(task) => {
                    let _ = task.await;
                }
                None => return,
            }
        }
    }

    /// `hook`'s argv plus `extra`, with the environment every hook gets; `None` for an
    /// empty argv (which the config loader rejects).
    fn command(&self, hook: &Hook, extra: &[String]) -> Option<Command> {
        let (program, args) = hook.argv.split_first()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .args(extra)
            .env(ENV_VIPS, &self.vips)
            .env(ENV_NODE, &self.node)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout can end its children too.
            .process_group(0)
            .kill_on_drop(true);
        Some(cmd)
    }

    fn enqueue(&self, cmd: Command, hook: &Hook, extra: &[String], keep: bool) {
        let shown = hook
            .argv
            .iter()
            .chain(extra)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let job = Job {
            cmd,
            shown,
            timeout: self.hooks.timeout,
            keep,
        };
        let Ok(mut q) = self.queue.lock() else {
            tracing::error!(hook = %job.shown, "notify queue unusable; hook not run");
            return;
        };
        if q.pending.len() >= MAX_PENDING {
            let at = q.pending.iter().position(|j| !j.keep).unwrap_or(0);
            if let Some(dropped) = q.pending.remove(at) {
                tracing::warn!(hook = %dropped.shown, pending = MAX_PENDING,
                    "notify queue full: dropping the oldest waiting hook (a later transition's hooks will run)");
            }
        }
        q.pending.push_back(job);
        if !q.running {
            q.running = true;
            q.worker = Some(tokio::spawn(work(Arc::clone(&self.queue))));
        }
    }
}

/// Runs `queue`'s hooks one after the other until it is empty.
async fn work(queue: Arc<Mutex<Queue>>) {
    loop {
        let job = {
            let Ok(mut q) = queue.lock() else { return };
            match q.pending.pop_front() {
                Some(job) => job,
                None => {
                    q.running = false;
                    return;
                }
            }
        };
        run_hook(job).await;
    }
}

async fn run_hook(job: Job) {
    let Job {
        mut cmd,
        shown,
        timeout,
        ..
    } = job;
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(hook = %shown, error = %e, "notify hook could not be started");
            return;
        }
    };
    let status = wait_bounded(&mut child, timeout, STDERR_KEPT).await;
    match status {
        Bounded::Exited(st, _) if st.success() => {
            tracing::debug!(hook = %shown, "notify hook finished");
        }
        Bounded::Exited(st, stderr) => {
            tracing::warn!(hook = %shown, status = %st, stderr = %stderr, "notify hook failed");
        }
        Bounded::WaitFailed(e) => {
            tracing::warn!(hook = %shown, error = %e, "notify hook could not be waited for")
        }
        Bounded::TimedOut(end) => {
            tracing::warn!(hook = %shown, timeout_ms = timeout.as_millis() as u64, status = ?end,
                "notify hook timed out; it and its process group were killed");
        }
    }
}

/// How a command run by [`wait_bounded`] ended.
#[derive(Debug)]
pub(crate) enum Bounded {
    /// It exited (any status) within the timeout, with the first bytes of its stderr
    /// (trimmed, lossy UTF-8; empty when it did not finish writing within 100 ms of exiting).
    Exited(std::process::ExitStatus, String),
    /// Waiting for it failed.
    WaitFailed(std::io::Error),
    /// Still running at the timeout: it and its process group were killed
    /// ([`kill_group`]); how it ended then.
    TimedOut(Option<std::process::ExitStatus>),
}

/// Waits for `child` (spawned with a piped stderr, in its own process group) at most
/// `timeout`, keeping at most `stderr_kept` bytes of its stderr. The pipe is read on the side:
/// a background grandchild that keeps it open does not make us wait past the child's own
/// exit. Shared by the hooks and the cloud mover.
pub(crate) async fn wait_bounded(
    child: &mut tokio::process::Child,
    timeout: Duration,
    stderr_kept: usize,
) -> Bounded {
    let stderr = child.stderr.take().map(|mut pipe| {
        tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = [0u8; 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = stderr_kept.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
    });
    let stderr_text = || async {
        let Some(task) = stderr else {
            return String::new();
        };
        let abort = task.abort_handle();
        match tokio::time::timeout(Duration::from_millis(100), task).await {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_string(),
            _ => {
                abort.abort();
                String::new()
            }
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(st)) if st.success() => Bounded::Exited(st, String::new()),
        Ok(Ok(st)) => Bounded::Exited(st, stderr_text().await),
        Ok(Err(e)) => Bounded::WaitFailed(e),
        Err(_) => Bounded::TimedOut(kill_group(child).await),
    }
}

/// Ends a timed-out hook and everything in its process group: SIGTERM, then SIGKILL after
/// [`KILL_GRACE`]. The hook itself is reaped last, so its pid (the group's id) cannot be
/// reused by another process while we signal the group.
pub(crate) async fn kill_group(child: &mut tokio::process::Child) -> Option<ExitStatus> {
    let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return child.wait().await.ok();
    };
    signal_group(pid, libc::SIGTERM);
    tokio::time::sleep(KILL_GRACE).await;
    signal_group(pid, libc::SIGKILL);
    child.wait().await.ok()
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes no pointers; a negative pid names the process group `pgid`,
    // which the hook leads (`process_group(0)`) and which cannot be recycled while the
    // unreaped hook holds its pid.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, signal, error = %e, "cannot signal a notify hook's process group");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(to: State) -> TransitionEvent<'static> {
        TransitionEvent {
            from: State::Backup,
            to,
            epoch: 7,
            priority: 150,
            cause: Cause::MasterDown,
            reason: "no advert from n1 for 182 ms",
            stopping: false,
            group: "web-a".into(),
        }
    }

    fn sh(script: String) -> Option<Hook> {
        Some(Hook::plain(vec!["/bin/sh".into(), "-c".into(), script]))
    }

    /// Runs `script` with `/bin/sh -c` as the `hooks` field `set` chooses, and returns what
    /// it wrote to `$OUT`.
    async fn run_script(
        set: impl FnOnce(&mut Hooks, Option<Hook>),
        fire: impl FnOnce(&Notifier) -> usize,
        script: &str,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let mut hooks = Hooks {
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        set(&mut hooks, sh(format!("{script} > {}", out.display())));
        let n = Notifier::new(hooks, "n2".into(), "192.0.2.100/24".into());
        assert_eq!(fire(&n), 1);
        n.drained().await;
        std::fs::read_to_string(&out).unwrap().trim().to_string()
    }

    #[tokio::test]
    async fn hook_sees_the_transition_in_its_environment() {
        let text = run_script(
            |h, hook| h.master = hook,
            |n| n.fire(&event(State::Master)),
            "echo \"$HAAGENT_STATE|$HAAGENT_OLD_STATE|$HAAGENT_EPOCH|$HAAGENT_PRIORITY|$HAAGENT_VIPS|$HAAGENT_NODE|$HAAGENT_REASON\"",
        )
        .await;
        assert_eq!(
            text,
            "master|backup|7|150|192.0.2.100/24|n2|no advert from n1 for 182 ms"
        );
    }

    #[tokio::test]
    async fn hook_is_told_its_group_and_cause() {
        let text = run_script(
            |h, hook| h.every = hook,
            |n| n.fire(&event(State::Master)),
            "echo \"$HAAGENT_GROUP|$HAAGENT_CAUSE\"",
        )
        .await;
        assert_eq!(text, "web-a|master_down");
    }

    #[tokio::test]
    async fn claim_blocked_hook_is_told_its_group_and_the_mac() {
        let block = crate::election::ClaimBlock {
            mac: [0x02, 0, 0, 0, 0, 0x0b],
            member: Some("n3".into()),
            since: std::time::Instant::now(),
            foreign_since: None,
        };
        let text = run_script(
            |h, hook| h.claim_blocked = hook,
            |n| n.fire_claim_blocked("web-b", &block, "n3 answers"),
            "echo \"$HAAGENT_GROUP|$HAAGENT_STATE|$HAAGENT_CAUSE|$HAAGENT_BLOCKED_BY|$HAAGENT_BLOCKED_BY_MEMBER|$HAAGENT_VIPS|$HAAGENT_REASON\"",
        )
        .await;
        assert_eq!(
            text,
            "web-b|backup|claim_blocked|02:00:00:00:00:0b|n3|192.0.2.100/24|n3 answers"
        );
    }

    #[tokio::test]
    async fn conflict_won_hook_is_told_the_mac() {
        let won = ConflictWon {
            mac: [0x02, 0, 0, 0, 0, 0x0c],
            member: None,
        };
        let text = run_script(
            |h, hook| h.conflict_won = hook,
            |n| n.fire_conflict_won("web-b", &won, "re-announcing"),
            "echo \"$HAAGENT_GROUP|$HAAGENT_STATE|$HAAGENT_CAUSE|$HAAGENT_CONFLICT_MAC|$HAAGENT_CONFLICT_MEMBER|$HAAGENT_REASON\"",
        )
        .await;
        assert_eq!(
            text,
            "web-b|master|conflict_won|02:00:00:00:00:0c||re-announcing"
        );
    }

    /// `args = "keepalived"` appends keepalived's `notify` arguments to `command` after the
    /// operator's own, and nothing to the state hooks.
    #[tokio::test]
    async fn keepalived_args_are_appended_to_command_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("args.txt");
        let script = format!("echo \"$0|$*\" >> {}", out.display());
        let keepalived = |extra: &str| {
            Some(Hook {
                argv: vec!["/bin/sh".into(), "-c".into(), script.clone(), extra.into()],
                args: HookArgs::Keepalived,
            })
        };
        let hooks = Hooks {
            every: keepalived("every"),
            master: keepalived("master"),
            stop: keepalived("stop"),
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        assert_eq!(n.fire(&event(State::Master)), 2);
        let stop = TransitionEvent {
            to: State::Init,
            stopping: true,
            priority: 0,
            ..event(State::Init)
        };
        assert_eq!(n.fire(&stop), 2);
        n.drained().await;
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            // The state's own hook first, then `command` (keepalived's order).
            "master|\nevery|INSTANCE web-a MASTER 150\nstop|\nevery|INSTANCE web-a STOP 0\n"
        );
    }

    /// Three transitions in quick succession: their hooks run in that order, each after the
    /// previous one ended, and the last to run was told the last state.
    #[tokio::test]
    async fn hooks_run_one_at_a_time_in_transition_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("order.txt");
        let script = format!(
            "echo \"start $HAAGENT_STATE\" >> {0}; sleep 0.2; echo \"end $HAAGENT_STATE\" >> {0}",
            out.display()
        );
        let hooks = Hooks {
            every: sh(script),
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        let started = std::time::Instant::now();
        for to in [State::Master, State::Backup, State::Master] {
            assert_eq!(n.fire(&event(to)), 1);
        }
        // Enqueuing returns at once: the loop is never held up by a hook.
        assert!(started.elapsed() < Duration::from_millis(100));
        n.drained().await;
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "start master\nend master\nstart backup\nend backup\nstart master\nend master\n"
        );
    }

    /// A full queue drops its oldest waiting hooks, never a stop hook, never the newest.
    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_non_stop_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("epochs.txt");
        let hooks = Hooks {
            every: sh(format!("echo $HAAGENT_EPOCH >> {}", out.display())),
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        // On this single-threaded runtime nothing runs before the first await: all 71 hooks
        // are queued at once, 7 more than MAX_PENDING.
        for epoch in 0..=70u64 {
            let e = TransitionEvent {
                epoch,
                stopping: epoch == 0,
                ..event(State::Master)
            };
            assert_eq!(n.fire(&e), 1);
        }
        n.drained().await;
        let expected: Vec<String> = std::iter::once(0)
            .chain(8..=70)
            .map(|e| e.to_string())
            .collect();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
        assert_eq!(expected.len(), MAX_PENDING);
    }

    /// A timed-out hook's background child is killed with it (its process group).
    #[tokio::test]
    async fn a_timed_out_hook_takes_its_children_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let hooks = Hooks {
            every: sh(format!(
                "sleep 30 & echo $! > {}; sleep 30",
                pidfile.display()
            )),
            timeout: Duration::from_millis(1000),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        let started = std::time::Instant::now();
        assert_eq!(n.fire(&event(State::Fault)), 1);
        // `R`, `S`, …, or `Z` for a zombie; `None` once it is gone.
        let state_of = |pid: &str| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat.rsplit(") ").next().and_then(|r| r.chars().next())
        };
        // While the hook runs, its grandchild does (else "gone" below proves nothing).
        let pid = loop {
            let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
            if pid.ends_with('\n') {
                break pid.trim().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no grandchild pid"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let running = state_of(&pid);
        assert!(
            !matches!(running, None | Some('Z')),
            "the grandchild {pid} runs before the timeout: {running:?} after {:?}",
            started.elapsed()
        );
        n.drained().await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
            "killed at its timeout, not before: {took:?}"
        );
        // Gone, or at most a zombie waiting for init to reap it.
        let state = state_of(&pid);
        assert!(
            matches!(state, None | Some('Z')),
            "grandchild {pid} still runs: {state:?}"
        );
    }

    /// A group's notifier runs the group's hooks and announces the group's VIPs only.
    #[test]
    fn a_group_notifier_has_the_group_hooks_and_vips() {
        let group = crate::config::GroupConfig {
            name: "web-b".into(),
            id: 7,
            mode: crate::config::GroupMode::L2,
            bird_socket: None,
            vips: ["192.0.2.101/24", "198.51.100.101/24"]
                .iter()
                .map(|c| crate::net::VipSpec {
                    cidr: c.parse().unwrap(),
                    interface: "eth0".into(),
                    label: None,
                    scope: crate::net::VipScope::Global,
                })
                .collect(),
            priority: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            track: Vec::new(),
            notify: crate::config::NotifySettings {
                command: None,
                master: Some(Hook::plain(vec!["/bin/true".into()])),
                backup: None,
                fault: None,
                stop: None,
                claim_blocked: None,
                conflict_won: None,
                timeout: Duration::from_secs(1),
            },
            routes: Vec::new(),
            mover: None,
        };
        let n = Notifier::for_group(&group, "n1");
        assert_eq!(n.vips(), "192.0.2.101/24 198.51.100.101/24");
        assert_eq!(n.node, "n1");
        assert_eq!(n.hooks.master, Some(Hook::plain(vec!["/bin/true".into()])));
        assert!(n.hooks.every.is_none());
        assert_eq!(n.hooks.timeout, Duration::from_secs(1));
    }

    /// docs/configuration.md lists every variable a hook can receive.
    #[test]
    fn every_hook_variable_is_documented() {
        let doc = include_str!("../docs/configuration.md");
        for name in [
            ENV_STATE,
            ENV_OLD_STATE,
            ENV_REASON,
            ENV_CAUSE,
            ENV_VIPS,
            ENV_GROUP,
            ENV_NODE,
            ENV_EPOCH,
            ENV_PRIORITY,
            ENV_BLOCKED_BY,
            ENV_BLOCKED_BY_MEMBER,
            ENV_CONFLICT_MAC,
            ENV_CONFLICT_MEMBER,
        ] {
            assert!(doc.contains(&format!("| `{name}` |")), "{name} missing");
        }
        // And the list above has every variable this file defines.
        let defined = include_str!("notify.rs")
            .lines()
            .filter(|l| l.starts_with("pub const ENV_"))
            .count();
        assert_eq!(
            defined, 13,
            "a new ENV_ constant: add it to the list and the docs"
        );
    }

    #[tokio::test]
    async fn only_matching_state_hooks_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hooks = Hooks {
            backup: Some(Hook::plain(vec![
                "/usr/bin/touch".into(),
                marker.display().to_string(),
            ])),
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        assert_eq!(n.fire(&event(State::Master)), 0);
        assert_eq!(n.fire(&event(State::Backup)), 1);
        n.drained().await;
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn missing_program_is_logged_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hooks = Hooks {
            every: Some(Hook::plain(vec!["/nonexistent/hook".into()])),
            master: Some(Hook::plain(vec![
                "/usr/bin/touch".into(),
                marker.display().to_string(),
            ])),
            timeout: Duration::from_secs(1),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        assert_eq!(n.fire(&event(State::Master)), 2);
        n.drained().await;
        assert!(
            marker.exists(),
            "the queue goes on after a hook that cannot start"
        );
    }
}
