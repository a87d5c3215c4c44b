//! Notify hooks: an operator's command run on every state transition.
//!
//! Commands run without a shell (argv as configured), with the transition described in
//! environment variables, under a timeout. They run in their own tokio task so a slow or
//! hanging hook can never hold up the election loop; failures are logged, never propagated.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

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
/// `claim_blocked` hook: the MAC whose ARP answers keep us from claiming the VIPs.
pub const ENV_BLOCKED_BY: &str = "HAAGENT_BLOCKED_BY";
/// `claim_blocked` hook: the member that MAC belongs to, or empty for a non-member.
pub const ENV_BLOCKED_BY_MEMBER: &str = "HAAGENT_BLOCKED_BY_MEMBER";

/// Which commands to run for which transition.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Run on every transition.
    pub every: Option<Vec<String>>,
    /// Run on a transition to master.
    pub master: Option<Vec<String>>,
    /// Run on a transition to backup.
    pub backup: Option<Vec<String>>,
    /// Run on a transition to fault.
    pub fault: Option<Vec<String>>,
    /// Run when the agent stops.
    pub stop: Option<Vec<String>>,
    /// Run when a probe answer first keeps us from claiming the VIPs.
    pub claim_blocked: Option<Vec<String>>,
    /// How long a hook may run before it is killed.
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
            timeout: n.timeout,
        }
    }
}

/// Runs the hooks of one VIP group for its transitions; cheap to call from the daemon loop.
///
/// One per group ([`Notifier::for_group`]): each group has its own hooks
/// (`[group.notify]`, default the node's `[notify]`) and VIP list. The group's name comes
/// with each event ([`TransitionEvent::group`], the `group` of
/// [`Notifier::fire_claim_blocked`]).
#[derive(Debug, Clone)]
pub struct Notifier {
    hooks: Hooks,
    node: String,
    vips: String,
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
    /// Which rule decided.
    pub cause: Cause,
    /// Why, in words.
    pub reason: &'a str,
    /// Whether this transition is the agent stopping.
    pub stopping: bool,
    /// The group whose state changed (`[[group]] name`): `HAAGENT_GROUP`.
    pub group: String,
}

impl Notifier {
    /// A notifier for `node` announcing `vips` (already formatted, space separated).
    pub fn new(hooks: Hooks, node: String, vips: String) -> Self {
        Self { hooks, node, vips }
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

    /// The `HAAGENT_VIPS` value this notifier passes (space separated `address/prefix`).
    pub fn vips(&self) -> &str {
        &self.vips
    }

    /// Starts every hook that applies to this transition and returns at once; each hook is
    /// waited for (and killed at its timeout) in a background task. Returns the tasks so
    /// that a stopping agent can wait for its "stop" hooks.
    pub fn fire(&self, event: &TransitionEvent<'_>) -> Vec<tokio::task::JoinHandle<()>> {
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
        [&self.hooks.every, specific]
            .into_iter()
            .flatten()
            .filter_map(|argv| {
                let (program, args) = argv.split_first()?;
                let mut cmd = Command::new(program);
                cmd.args(args)
                    .env(ENV_STATE, &state_name)
                    .env(ENV_OLD_STATE, event.from.to_string())
                    .env(ENV_REASON, event.reason)
                    .env(ENV_CAUSE, event.cause.label())
                    .env(ENV_VIPS, &self.vips)
                    .env(ENV_GROUP, &event.group)
                    .env(ENV_NODE, &self.node)
                    .env(ENV_EPOCH, event.epoch.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                let timeout = self.hooks.timeout;
                let shown = argv.join(" ");
                Some(tokio::spawn(run_hook(cmd, shown, timeout)))
            })
            .collect()
    }
}

impl Notifier {
    /// Runs the `claim_blocked` hook, if configured: a probe answer from `block.mac` keeps
    /// this backup from claiming the VIPs of `group` (`HAAGENT_STATE=backup`, the reason in
    /// `HAAGENT_REASON`, the MAC and member in `HAAGENT_BLOCKED_BY[_MEMBER]`, the group in
    /// `HAAGENT_GROUP`).
    pub fn fire_claim_blocked(
        &self,
        group: &str,
        block: &crate::election::ClaimBlock,
        reason: &str,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let Some((program, args)) = self
            .hooks
            .claim_blocked
            .as_ref()
            .and_then(|a| a.split_first())
        else {
            return Vec::new();
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env(ENV_STATE, "backup")
            .env(ENV_REASON, reason)
            .env(
                ENV_CAUSE,
                crate::election::NoticeCause::ClaimBlocked.label(),
            )
            .env(ENV_BLOCKED_BY, crate::net::format_mac(&block.mac))
            .env(ENV_BLOCKED_BY_MEMBER, block.member.as_deref().unwrap_or(""))
            .env(ENV_VIPS, &self.vips)
            .env(ENV_GROUP, group)
            .env(ENV_NODE, &self.node)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let shown = self
            .hooks
            .claim_blocked
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        vec![tokio::spawn(run_hook(cmd, shown, self.hooks.timeout))]
    }
}

async fn run_hook(mut cmd: Command, shown: String, timeout: Duration) {
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(hook = %shown, error = %e, "notify hook could not be started");
            return;
        }
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => {
            tracing::debug!(hook = %shown, "notify hook finished");
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            tracing::warn!(hook = %shown, status = %out.status, stderr = %stderr.trim(), "notify hook failed");
        }
        Ok(Err(e)) => {
            tracing::warn!(hook = %shown, error = %e, "notify hook could not be waited for")
        }
        Err(_) => {
            // Dropping the wait future drops the child, and kill_on_drop ends it.
            tracing::warn!(hook = %shown, timeout_ms = timeout.as_millis() as u64, "notify hook timed out and was killed");
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
            cause: Cause::MasterDown,
            reason: "no advert from n1 for 182 ms",
            stopping: false,
            group: "web-a".into(),
        }
    }

    /// Runs `script` with `/bin/sh -c` as the `hooks` field `set` chooses, and returns what
    /// it wrote to `$OUT`.
    async fn run_script(
        set: impl FnOnce(&mut Hooks, Vec<String>),
        fire: impl FnOnce(&Notifier) -> Vec<tokio::task::JoinHandle<()>>,
        script: &str,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let mut hooks = Hooks {
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let argv = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("{script} > {}", out.display()),
        ];
        set(&mut hooks, argv);
        let n = Notifier::new(hooks, "n2".into(), "192.0.2.100/24".into());
        for task in fire(&n) {
            task.await.unwrap();
        }
        std::fs::read_to_string(&out).unwrap().trim().to_string()
    }

    #[tokio::test]
    async fn hook_sees_the_transition_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let script = format!(
            "echo \"$HAAGENT_STATE|$HAAGENT_OLD_STATE|$HAAGENT_EPOCH|$HAAGENT_VIPS|$HAAGENT_NODE|$HAAGENT_REASON\" > {}",
            out.display()
        );
        let hooks = Hooks {
            master: Some(vec!["/bin/sh".into(), "-c".into(), script]),
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n2".into(), "192.0.2.100/24".into());
        for task in n.fire(&event(State::Master)) {
            task.await.unwrap();
        }
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text.trim(),
            "master|backup|7|192.0.2.100/24|n2|no advert from n1 for 182 ms"
        );
    }

    #[tokio::test]
    async fn hook_is_told_its_group_and_cause() {
        let text = run_script(
            |h, argv| h.every = Some(argv),
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
            |h, argv| h.claim_blocked = Some(argv),
            |n| n.fire_claim_blocked("web-b", &block, "n3 answers"),
            "echo \"$HAAGENT_GROUP|$HAAGENT_STATE|$HAAGENT_CAUSE|$HAAGENT_BLOCKED_BY|$HAAGENT_BLOCKED_BY_MEMBER|$HAAGENT_VIPS|$HAAGENT_REASON\"",
        )
        .await;
        assert_eq!(
            text,
            "web-b|backup|claim_blocked|02:00:00:00:00:0b|n3|192.0.2.100/24|n3 answers"
        );
    }

    /// A group's notifier runs the group's hooks and announces the group's VIPs only.
    #[test]
    fn a_group_notifier_has_the_group_hooks_and_vips() {
        let group = crate::config::GroupConfig {
            name: "web-b".into(),
            id: 7,
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
                master: Some(vec!["/bin/true".into()]),
                backup: None,
                fault: None,
                stop: None,
                claim_blocked: None,
                timeout: Duration::from_secs(1),
            },
            routes: Vec::new(),
        };
        let n = Notifier::for_group(&group, "n1");
        assert_eq!(n.vips(), "192.0.2.101/24 198.51.100.101/24");
        assert_eq!(n.node, "n1");
        assert_eq!(n.hooks.master, Some(vec!["/bin/true".to_string()]));
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
            ENV_BLOCKED_BY,
            ENV_BLOCKED_BY_MEMBER,
        ] {
            assert!(doc.contains(&format!("| `{name}` |")), "{name} missing");
        }
        // And the list above has every variable this file defines.
        let defined = include_str!("notify.rs")
            .lines()
            .filter(|l| l.starts_with("pub const ENV_"))
            .count();
        assert_eq!(
            defined, 10,
            "a new ENV_ constant: add it to the list and the docs"
        );
    }

    #[tokio::test]
    async fn only_matching_state_hooks_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hooks = Hooks {
            backup: Some(vec!["/usr/bin/touch".into(), marker.display().to_string()]),
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        assert!(n.fire(&event(State::Master)).is_empty());
        for task in n.fire(&event(State::Backup)) {
            task.await.unwrap();
        }
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn hanging_hook_is_killed_at_its_timeout() {
        let hooks = Hooks {
            every: Some(vec!["/bin/sleep".into(), "30".into()]),
            timeout: Duration::from_millis(100),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        let tasks = n.fire(&event(State::Fault));
        assert_eq!(tasks.len(), 1);
        // The task ends because of the timeout, long before sleep(30) would.
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("hook task must end at its timeout")
                .unwrap();
        }
    }

    #[tokio::test]
    async fn missing_program_is_logged_not_fatal() {
        let hooks = Hooks {
            every: Some(vec!["/nonexistent/hook".into()]),
            timeout: Duration::from_secs(1),
            ..Hooks::default()
        };
        let n = Notifier::new(hooks, "n1".into(), String::new());
        for task in n.fire(&event(State::Master)) {
            task.await.unwrap();
        }
    }
}
