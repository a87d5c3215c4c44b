//! Repeating gratuitous ARP (IPv4 VIPs) and unsolicited Neighbor Advertisements (IPv6
//! VIPs) while this node is master.
//!
//! One burst right after taking over (a single frame can be lost, and some
//! switches learn slowly), then a slow refresh for as long as we stay master, so
//! a neighbour that flushed its cache or a switch that rebooted learns again.
//!
//! The policy is the same for both families: each round announces every VIP once through
//! [`GarpSender::send`] (two ARP frames for IPv4, one NA for IPv6). RFC 4861 §7.2.6 lets a
//! node send up to MAX_NEIGHBOR_ADVERTISEMENT (3) unsolicited NAs after a link-layer
//! address change; the burst count (`[garp] count`, a few by default) is the operator's
//! to keep within that. The refresh rounds are later, separate announcements (a switch
//! that rebooted, a neighbour that flushed its cache), as for ARP.
//!
//! The timing lives in a tokio task driven by a pure [`Schedule`]; the frames are
//! sent on a dedicated std thread, because pnet's send is a blocking syscall
//! (bounded to ~100 ms by its write timeout) that must not stall a runtime worker.
//! The task hands the thread one "send a round" token at a time; if the thread is
//! still busy, the round is merged into the pending one instead of queueing up.
//!
//! The first round of a burst is the exception: [`Announcer::announce`] sends it on the
//! caller's thread before it returns. A new master installs the VIPs, announces, then
//! sends the advert that makes the old master let go; the clients must learn the new
//! MAC before the old holder drops the address, or requests sent in between are lost.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::announcement;
use super::{GarpSender, VipError};

/// Something that can announce one VIP on the wire: gratuitous ARP for IPv4, an
/// unsolicited Neighbor Advertisement for IPv6.
pub(crate) trait ArpSink: Send + 'static {
    /// Sends one announcement for `vip`; returns how many frames went out.
    fn announce(&mut self, vip: IpAddr) -> Result<u64, VipError>;
    /// The interface, for log lines.
    fn interface(&self) -> &str;
    /// Reopens whatever the sink sends on, after the interface was re-created, changed
    /// its MAC or came back up. Returns the MAC it announces from now on, if it has one.
    fn reopen(&mut self) -> Result<Option<[u8; 6]>, VipError> {
        Ok(None)
    }
}

impl ArpSink for GarpSender {
    fn announce(&mut self, vip: IpAddr) -> Result<u64, VipError> {
        self.send(vip)
    }

    fn interface(&self) -> &str {
        GarpSender::interface(self)
    }

    fn reopen(&mut self) -> Result<Option<[u8; 6]>, VipError> {
        GarpSender::reopen(self)?;
        Ok(Some(self.mac()))
    }
}

/// What the owner last asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Command {
    /// `true` between `announce()` and `stop()`.
    active: bool,
    /// Bumped by every `announce()`, so a repeated call restarts the burst.
    generation: u64,
}

/// Announces the VIPs (gratuitous ARP for IPv4, unsolicited NA for IPv6) in bursts and
/// refreshes, from a background task. Dropping it stops the task and the sending thread.
pub struct Announcer {
    control: watch::Sender<Command>,
    sent: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    task: JoinHandle<()>,
    /// Shared with the sending thread, for the first round of each burst.
    sink: Arc<Mutex<dyn ArpSink>>,
    /// Shared with the sending thread; replaced by [`Announcer::set_vips`].
    vips: Arc<Mutex<Vec<IpAddr>>>,
    /// Between `announce` and `stop`; the sending thread skips queued rounds otherwise.
    active: Arc<AtomicBool>,
}

/// How many rounds may wait for the sending thread: the longest burst (`[garp] count` is at
/// most 20) and a refresh.
const ROUNDS_QUEUED: usize = 21;

impl Announcer {
    /// Starts the announcer task on the current tokio runtime (must be called
    /// inside one). Nothing is sent until [`Announcer::announce`].
    ///
    /// Each [`Announcer::announce`] sends `count` announcements per VIP (gratuitous ARP
    /// for an IPv4 VIP, unsolicited NA for an IPv6 one; `vips` may mix both) spread
    /// evenly over `spread` (count 3 over 500 ms → at 0, 250 and 500 ms), then one
    /// round every `refresh` until [`Announcer::stop`]. A `count` of 0 is treated
    /// as 1; a zero `refresh` turns the refresh off.
    pub fn spawn(
        sender: GarpSender,
        vips: Vec<IpAddr>,
        count: u32,
        spread: Duration,
        refresh: Duration,
    ) -> Announcer {
        Self::spawn_with_sink(sender, vips, Schedule::new(count, spread, refresh))
    }

    /// [`Announcer::spawn`] with any [`ArpSink`] (tests use a recording one).
    pub(crate) fn spawn_with_sink(
        sink: impl ArpSink,
        vips: Vec<IpAddr>,
        schedule: Schedule,
    ) -> Announcer {
        let (control, control_rx) = watch::channel(Command::default());
        let sent = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        // Rounds the sending thread has not taken yet wait (up to a whole burst and a
        // refresh), so a thread starved of CPU for a while still sends every round of the
        // burst, late, instead of silently fewer (a dropped round was a shorter burst under
        // load). Bounded: beyond ROUNDS_QUEUED, rounds are coalesced.
        let (rounds_tx, rounds_rx) = mpsc::sync_channel::<()>(ROUNDS_QUEUED);
        let sink: Arc<Mutex<dyn ArpSink>> = Arc::new(Mutex::new(sink));
        let vips = Arc::new(Mutex::new(vips));
        // Cleared by `stop`: rounds still queued then are not sent (we no longer hold the
        // VIPs).
        let active = Arc::new(AtomicBool::new(false));
        {
            let (sent, failures) = (sent.clone(), failures.clone());
            let (sink, vips) = (sink.clone(), vips.clone());
            let active = active.clone();
            std::thread::Builder::new()
                .name("haagent-garp".to_string())
                .spawn(move || {
                    while rounds_rx.recv().is_ok() {
                        if active.load(Ordering::Acquire) {
                            send_round(&sink, &current(&vips), &sent, &failures);
                        }
                    }
                })
                .map_err(|e| tracing::error!(error = %e, "cannot start the gratuitous ARP thread"))
                .ok();
        }
        let task = tokio::spawn(drive(control_rx, rounds_tx, schedule));
        Announcer {
            control,
            sent,
            failures,
            task,
            sink,
            vips,
            active,
        }
    }

    /// Starts a burst now (restarting one in progress), followed by the refresh. The
    /// burst's first round is on the wire when this returns (a blocking send of two
    /// frames per IPv4 VIP and one per IPv6 VIP, bounded by the socket's write timeout).
    pub fn announce(&self) {
        self.active.store(true, Ordering::Release);
        send_round(&self.sink, &current(&self.vips), &self.sent, &self.failures);
        self.control.send_modify(|c| {
            c.active = true;
            c.generation = c.generation.wrapping_add(1);
        });
    }

    /// Reopens the gratuitous ARP socket on the interface that now carries the name (after
    /// it was re-created, changed its MAC or came back up), waiting for a round in progress
    /// to finish. Returns the MAC announced from now on. On error the old socket stays.
    pub fn reopen(&self) -> Result<Option<[u8; 6]>, VipError> {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        sink.reopen()
    }

    /// Announces `vips` from the next round on (a reload changed them); a burst in
    /// progress goes on with the new list.
    pub fn set_vips(&self, vips: Vec<IpAddr>) {
        *self.vips.lock().unwrap_or_else(PoisonError::into_inner) = vips;
    }

    /// Stops the burst and the refresh (we are no longer master).
    pub fn stop(&self) {
        self.active.store(false, Ordering::Release);
        self.control.send_modify(|c| c.active = false);
    }

    /// Frames sent so far, as handed to the kernel: two per IPv4 VIP and round (ARP
    /// request and reply), one per IPv6 VIP and round (NA), plus any resend after a MAC
    /// change.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Rounds-per-VIP that failed to send so far (each one was logged).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("vips", &self.vips)
            .field("sent", &self.sent())
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        // Ends the task; its end drops the round channel, which ends the thread.
        self.task.abort();
    }
}

/// The timing task: follows the owner's commands and hands rounds to the thread.
async fn drive(
    mut control: watch::Receiver<Command>,
    rounds: mpsc::SyncSender<()>,
    mut schedule: Schedule,
) {
    let mut seen_generation = 0;
    loop {
        let command = *control.borrow_and_update();
        if !command.active {
            schedule.stop();
        } else if command.generation != seen_generation {
            seen_generation = command.generation;
            schedule.start(Instant::now());
            // `announce` itself sent the burst's first round.
            schedule.fired();
        }
        let due = schedule.next_due();
        tokio::select! {
            changed = control.changed() => {
                if changed.is_err() {
                    return; // the Announcer is gone
                }
            }
            () = sleep_until(due) => {
                schedule.fired();
                match rounds.try_send(()) {
                    Ok(()) | Err(TrySendError::Full(())) => {}
                    Err(TrySendError::Disconnected(())) => return,
                }
            }
        }
    }
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One announcement per VIP.
/// A copy of the VIP list (the lock is not held while sending).
fn current(vips: &Mutex<Vec<IpAddr>>) -> Vec<IpAddr> {
    vips.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn send_round(sink: &Mutex<dyn ArpSink>, vips: &[IpAddr], sent: &AtomicU64, failures: &AtomicU64) {
    // A panic while sending cannot leave the sink half-updated: it holds no state
    // between frames.
    let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
    for vip in vips {
        match sink.announce(*vip) {
            Ok(frames) => {
                sent.fetch_add(frames, Ordering::Relaxed);
            }
            Err(e) => {
                failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(interface = sink.interface(), vip = %vip, error = %e,
                    "{} failed", announcement(vip));
            }
        }
    }
}

/// When the next round is due: a burst of `count` rounds evenly over `spread`,
/// then one every `refresh`. Pure: the caller passes the time in.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    count: u32,
    spread: Duration,
    refresh: Duration,
    /// Start of the current burst and rounds fired since; `None` when stopped.
    running: Option<(Instant, u32)>,
    next: Option<Instant>,
}

impl Schedule {
    /// A stopped schedule. `count` 0 counts as 1; `refresh` zero means no refresh.
    pub(crate) fn new(count: u32, spread: Duration, refresh: Duration) -> Self {
        Self {
            count: count.max(1),
            spread,
            refresh,
            running: None,
            next: None,
        }
    }

    /// Starts (or restarts) a burst at `now`: the first round is due at once.
    pub(crate) fn start(&mut self, now: Instant) {
        self.running = Some((now, 0));
        self.next = Some(now);
    }

    /// Nothing more is due until the next [`Schedule::start`].
    pub(crate) fn stop(&mut self) {
        self.running = None;
        self.next = None;
    }

    /// When the next round is due, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.next
    }

    /// Records that the round due at [`Schedule::next_due`] was sent. Later rounds
    /// keep their planned times (no drift from a late wake-up).
    pub(crate) fn fired(&mut self) {
        let (Some((start, fired)), Some(previous)) = (self.running, self.next) else {
            return;
        };
        let fired = fired.saturating_add(1);
        self.running = Some((start, fired));
        self.next = if fired < self.count {
            // count > 1 here, so the divisor is not zero.
            let offset = self
                .spread
                .checked_mul(fired)
                .map_or(self.spread, |d| d / (self.count - 1));
            start.checked_add(offset)
        } else if self.refresh.is_zero() {
            None
        } else {
            previous.checked_add(self.refresh)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const MS: Duration = Duration::from_millis(1);

    /// 192.0.2.`last`.
    fn v4(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    /// Runs `schedule` from `t0` for `rounds` rounds and returns their offsets.
    fn offsets(schedule: &mut Schedule, t0: Instant, rounds: usize) -> Vec<Duration> {
        schedule.start(t0);
        let mut out = Vec::new();
        for _ in 0..rounds {
            let Some(at) = schedule.next_due() else { break };
            out.push(at - t0);
            schedule.fired();
        }
        out
    }

    #[test]
    fn burst_is_spread_evenly_then_refreshes() {
        let mut s = Schedule::new(3, 500 * MS, 10_000 * MS);
        let t0 = Instant::now();
        assert_eq!(
            offsets(&mut s, t0, 5),
            vec![Duration::ZERO, 250 * MS, 500 * MS, 10_500 * MS, 20_500 * MS]
        );
    }

    #[test]
    fn single_round_burst_and_no_refresh() {
        let mut s = Schedule::new(1, 500 * MS, Duration::ZERO);
        assert_eq!(offsets(&mut s, Instant::now(), 5), vec![Duration::ZERO]);
        let mut zero = Schedule::new(0, 500 * MS, Duration::ZERO);
        assert_eq!(offsets(&mut zero, Instant::now(), 5), vec![Duration::ZERO]);
    }

    #[test]
    fn restart_begins_a_new_burst_and_stop_ends_everything() {
        let mut s = Schedule::new(3, 500 * MS, 1_000 * MS);
        let t0 = Instant::now();
        s.start(t0);
        s.fired();
        assert_eq!(s.next_due(), Some(t0 + 250 * MS));
        let t1 = t0 + 300 * MS;
        s.start(t1);
        assert_eq!(s.next_due(), Some(t1));
        s.fired();
        assert_eq!(s.next_due(), Some(t1 + 250 * MS));
        s.stop();
        assert_eq!(s.next_due(), None);
        s.fired();
        assert_eq!(s.next_due(), None);
    }

    /// Records every announcement.
    struct Recorder(Arc<Mutex<Vec<IpAddr>>>);

    impl ArpSink for Recorder {
        /// Counts frames as [`GarpSender::send`] does: 2 for IPv4, 1 NA for IPv6.
        fn announce(&mut self, vip: IpAddr) -> Result<u64, VipError> {
            self.0.lock().unwrap().push(vip);
            Ok(if vip.is_ipv4() { 2 } else { 1 })
        }
        fn interface(&self) -> &str {
            "test0"
        }
    }

    /// A [`Recorder`] whose every announcement takes `1` (a sending thread starved of CPU,
    /// or a full socket buffer).
    struct SlowRecorder(Recorder, Duration);

    impl ArpSink for SlowRecorder {
        fn announce(&mut self, vip: IpAddr) -> Result<u64, VipError> {
            std::thread::sleep(self.1);
            self.0.announce(vip)
        }
        fn interface(&self) -> &str {
            "test0"
        }
    }

    /// The burst's rounds fall due while the sending thread is still busy with an earlier
    /// one: they wait and are all sent, late. (With one waiting slot, the fourth of four
    /// rounds was dropped: CI saw the shorter burst as a timed-out test under load.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rounds_due_while_the_thread_is_busy_are_sent_late_not_dropped() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = Announcer::spawn_with_sink(
            SlowRecorder(Recorder(log.clone()), 40 * MS),
            vec![v4(100)],
            Schedule::new(4, 30 * MS, Duration::ZERO),
        );
        a.announce();
        wait_for("four rounds", || log.lock().unwrap().len() == 4).await;
        // Nothing more: the burst was four rounds, and no refresh.
        tokio::time::sleep(100 * MS).await;
        assert_eq!(log.lock().unwrap().len(), 4);
        assert_eq!(a.sent(), 8);
    }

    /// Rounds still waiting when the announcer is stopped are not sent: we no longer hold
    /// the VIPs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rounds_waiting_at_stop_are_not_sent() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = Announcer::spawn_with_sink(
            SlowRecorder(Recorder(log.clone()), 60 * MS),
            vec![v4(100)],
            Schedule::new(5, 20 * MS, Duration::ZERO),
        );
        a.announce();
        // Let the thread take the second round (busy 60 ms) while the rest fall due.
        wait_for("the second round", || log.lock().unwrap().len() == 2).await;
        a.stop();
        tokio::time::sleep(300 * MS).await;
        let n = log.lock().unwrap().len();
        assert!(n <= 3, "{n} rounds: the queued ones were sent after stop");
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(5 * MS).await;
        }
    }

    #[tokio::test]
    async fn announcer_sends_bursts_per_vip_and_stops() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let vips = vec![v4(100), v4(101)];
        let a = Announcer::spawn_with_sink(
            Recorder(log.clone()),
            vips.clone(),
            Schedule::new(3, 20 * MS, Duration::ZERO),
        );
        assert_eq!(a.sent(), 0);
        a.announce();
        // The first round (two frames per VIP) is on the wire when announce returns.
        assert_eq!(a.sent(), 4);
        wait_for("first burst", || a.sent() == 12).await;
        assert_eq!(
            log.lock()
                .unwrap()
                .iter()
                .filter(|v| **v == vips[1])
                .count(),
            3
        );

        a.announce();
        wait_for("second burst", || a.sent() == 24).await;
        assert_eq!(a.failures(), 0);
    }

    #[tokio::test]
    async fn set_vips_changes_what_the_next_rounds_announce() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (old, new) = (v4(100), v4(101));
        let a = Announcer::spawn_with_sink(
            Recorder(log.clone()),
            vec![old],
            Schedule::new(3, 20 * MS, Duration::ZERO),
        );
        a.announce();
        wait_for("first burst", || a.sent() == 6).await;
        a.set_vips(vec![new]);
        log.lock().unwrap().clear();
        a.announce();
        wait_for("burst with the new list", || a.sent() == 12).await;
        assert_eq!(*log.lock().unwrap(), vec![new, new, new]);
    }

    #[tokio::test]
    async fn stop_ends_the_refresh() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = Announcer::spawn_with_sink(
            Recorder(log.clone()),
            vec![v4(100)],
            Schedule::new(1, Duration::ZERO, 10 * MS),
        );
        a.announce();
        wait_for("refresh rounds", || log.lock().unwrap().len() >= 3).await;
        a.stop();
        // Let a round already handed to the thread finish, then expect silence
        // for ten refresh periods.
        tokio::time::sleep(20 * MS).await;
        let after_stop = log.lock().unwrap().len();
        tokio::time::sleep(100 * MS).await;
        assert_eq!(log.lock().unwrap().len(), after_stop);
    }

    /// An IPv6 VIP gets the same burst as an IPv4 one, through the same sink call (which
    /// `GarpSender` turns into an unsolicited NA), and counts one frame per round.
    #[tokio::test]
    async fn an_ipv6_vip_is_announced_in_the_same_burst() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let v6: IpAddr = "2001:db8::100".parse().unwrap();
        let a = Announcer::spawn_with_sink(
            Recorder(log.clone()),
            vec![v4(100), v6],
            Schedule::new(3, 20 * MS, Duration::ZERO),
        );
        a.announce();
        // First round: two ARP frames and one NA.
        assert_eq!(a.sent(), 3);
        wait_for("burst", || a.sent() == 9).await;
        let log = log.lock().unwrap().clone();
        assert_eq!(log.iter().filter(|v| **v == v6).count(), 3);
        assert_eq!(log[..2], [v4(100), v6]);
        assert_eq!(a.failures(), 0);
    }
}
