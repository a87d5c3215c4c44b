//! Telling the service manager (systemd, `Type=notify`) how the agent is doing, through the
//! `sd-notify` crate: `READY=1` once it has joined, a one-line `STATUS=` on every change,
//! `WATCHDOG=1` from the election loop itself, `RELOADING=1` around a reload, `STOPPING=1`
//! on shutdown. Without `NOTIFY_SOCKET` in the environment nothing is ever sent.
//!
//! Sending never blocks the loop: a thread of its own writes to the socket (see
//! [`Supervisor`]).
//!
//! The watchdog follows `sd_watchdog_enabled(3)`: `WATCHDOG_USEC` set (non-zero) and
//! `WATCHDOG_PID` unset or ours; the loop pings at half that interval, so one late ping is
//! not a restart.
//!
//! Test-only fault injection (debug builds only): with `HAAGENT_TEST_STALL_LOOP_AFTER_MS=N`
//! the election loop stops iterating `N` ms after it started (it awaits forever), while
//! every other task (transport, watches, control server) keeps running; the watchdog pings
//! stop with it. A release build ignores the variable.

use std::sync::mpsc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::wire::State;

/// The environment variable of the test-only loop stall (honoured in debug builds only).
pub(crate) const STALL_ENV: &str = "HAAGENT_TEST_STALL_LOOP_AFTER_MS";

/// The service manager's side of the daemon: what was last said, and the watchdog period.
///
/// Messages go to the socket from a thread of their own, in order, through a bounded
/// queue: a notify socket that is not read (its queue full) blocks that thread, never the
/// loop; what does not fit in the queue is dropped (and said once).
pub(super) struct Supervisor {
    /// `None` without `NOTIFY_SOCKET` (nothing is sent), or when the thread could not start.
    out: Option<Sender>,
    /// How often the loop pings (half of `WATCHDOG_USEC`), if the watchdog is on.
    ping_every: Option<Duration>,
    /// The last `STATUS=` sent, so that only changes are sent.
    last_status: String,
    /// One warning for a full queue, not one per message.
    warned: bool,
}

/// The queue to the sending thread, and the thread's "all sent" signal.
struct Sender {
    queue: mpsc::SyncSender<Vec<Message>>,
    done: mpsc::Receiver<()>,
}

/// One notification, owned so that it can cross to the sending thread.
enum Message {
    Ready,
    Reloading,
    Stopping,
    Watchdog,
    Status(String),
}

/// How many notifications may wait for the socket.
const QUEUE: usize = 64;
/// How long a stopping agent waits for its last notifications (`STOPPING=1`) to go out.
const FLUSH: Duration = Duration::from_millis(500);

impl Supervisor {
    /// From the environment systemd set (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub(super) fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let out = if enabled { spawn_sender() } else { None };
        let ping_every = if out.is_some() {
            sd_notify::watchdog_enabled()
                .filter(|usec| !usec.is_zero())
                .map(|usec| usec / 2)
        } else {
            None
        };
        if let Some(every) = ping_every {
            tracing::info!(
                every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
                "systemd watchdog on: the election loop pings it"
            );
        }
        Self {
            out,
            ping_every,
            last_status: String::new(),
            warned: false,
        }
    }

    /// How often the loop must ping the watchdog, if systemd asked for it.
    pub(super) fn ping_every(&self) -> Option<Duration> {
        self.ping_every
    }

    /// The agent has joined: `READY=1` with its first status line.
    pub(super) fn ready(&mut self, status: String) {
        self.last_status.clone_from(&status);
        self.send(vec![Message::Ready, Message::Status(status)]);
    }

    /// `STATUS=line`, if it differs from the last one sent.
    pub(super) fn status(&mut self, line: String) {
        if line == self.last_status {
            return;
        }
        self.last_status.clone_from(&line);
        self.send(vec![Message::Status(line)]);
    }

    /// `WATCHDOG=1`: the election loop is alive.
    pub(super) fn ping(&mut self) {
        self.send(vec![Message::Watchdog]);
    }

    /// `RELOADING=1` (with the monotonic time systemd 253+ requires).
    pub(super) fn reloading(&mut self) {
        self.send(vec![Message::Reloading]);
    }

    /// The reload is done: `READY=1` again.
    pub(super) fn reloaded(&mut self) {
        self.send(vec![Message::Ready]);
    }

    /// `STOPPING=1`: the agent is handing over and stopping.
    pub(super) fn stopping(&mut self) {
        self.send(vec![Message::Stopping, Message::Status("stopping".into())]);
    }

    fn send(&mut self, messages: Vec<Message>) {
        let Some(out) = &self.out else {
            return;
        };
        if out.queue.try_send(messages).is_err() && !self.warned {
            self.warned = true;
            tracing::warn!("systemd does not read its notify socket; dropping notifications");
        }
    }
}

impl Drop for Supervisor {
    /// Lets the last notifications (`STOPPING=1`) go out, for a bounded time.
    fn drop(&mut self) {
        if let Some(Sender { queue, done }) = self.out.take() {
            drop(queue);
            let _ = done.recv_timeout(FLUSH);
        }
    }
}

/// The sending thread: one datagram per batch, in order, until the queue closes.
fn spawn_sender() -> Option<Sender> {
    let (queue, batches) = mpsc::sync_channel::<Vec<Message>>(QUEUE);
    let (finished, done) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("sd-notify".into())
        .spawn(move || {
            let mut warned = false;
            for batch in batches {
                let monotonic = NotifyState::monotonic_usec_now().ok();
                let mut states: Vec<NotifyState<'_>> = Vec::with_capacity(batch.len() + 1);
                for m in &batch {
                    match m {
                        Message::Ready => states.push(NotifyState::Ready),
                        Message::Reloading => {
                            states.push(NotifyState::Reloading);
                            states.extend(monotonic.clone());
                        }
                        Message::Stopping => states.push(NotifyState::Stopping),
                        Message::Watchdog => states.push(NotifyState::Watchdog),
                        Message::Status(line) => states.push(NotifyState::Status(line)),
                    }
                }
                if let Err(e) = sd_notify::notify(&states) {
                    if !warned {
                        warned = true;
                        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET); going on without");
                    }
                }
            }
            let _ = finished.send(());
        });
    match spawned {
        Ok(_) => Some(Sender { queue, done }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the systemd notify thread; not notifying");
            None
        }
    }
}

/// The one-line state systemd shows (`systemctl status`), e.g.
/// `master, 192.0.2.100/24, 2 of 2 peers` or `backup (master n1), 192.0.2.100/24, 1 of 1 peers, maintenance`.
pub(super) fn status_line(
    state: State,
    master: Option<&str>,
    vips: &str,
    alive: usize,
    peers: usize,
    maintenance: bool,
) -> String {
    let mut line = state.to_string();
    if state != State::Master {
        if let Some(m) = master {
            line.push_str(&format!(" (master {m})"));
        }
    }
    line.push_str(&format!(", {vips}, {alive} of {peers} peers"));
    if maintenance {
        line.push_str(", maintenance");
    }
    line
}

/// When the test-only stall starts (debug builds, [`STALL_ENV`] set to a number of ms).
pub(super) fn stall_after() -> Option<Duration> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let ms: u64 = std::env::var(STALL_ENV).ok()?.trim().parse().ok()?;
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_says_state_vips_peers() {
        assert_eq!(
            status_line(State::Master, Some("n1"), "192.0.2.100/24", 2, 2, false),
            "master, 192.0.2.100/24, 2 of 2 peers"
        );
        assert_eq!(
            status_line(State::Backup, Some("n1"), "192.0.2.100/24", 1, 2, true),
            "backup (master n1), 192.0.2.100/24, 1 of 2 peers, maintenance"
        );
        assert_eq!(
            status_line(State::Fault, None, "192.0.2.100/24", 0, 1, false),
            "fault, 192.0.2.100/24, 0 of 1 peers"
        );
    }
}
