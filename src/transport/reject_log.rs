//! Which rejected connections reach the log one by one, and the summary of the rest.
//!
//! Issue 9: handshakes from 613 source addresses beat the old per-(source, reason text)
//! de-duplication, 28,976 WARN lines in 30 s. [`RejectLog`] keys by (source IP,
//! [`RejectKind`]) — never by text an attacker can vary — and holds at most
//! [`MAX_LOGGED_KEYS`] keys:
//!
//! - the first rejection of a kind from a source is a WARN line, if the table has room (an
//!   entry older than [`RETAIN`] is forgotten to make room, and is logged again when it
//!   recurs, as a reminder);
//! - a repeat is a DEBUG line;
//! - a new key while the table is full is only counted, and [`RejectLog::summary`] turns
//!   the count into one line per [`SUMMARY_PERIOD`]: "N more rejected connections from M
//!   sources in the last T s".
//!
//! So in any window of [`RETAIN`], at most [`MAX_LOGGED_KEYS`] WARN lines name a source
//! (every key logged in the window is still in the table at its end, and a key is logged
//! again only after [`RETAIN`]), plus one summary line per [`SUMMARY_PERIOD`]. The table is
//! a pure struct that takes the time as a parameter, so tests drive it with any clock.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::reject::RejectKind;

/// Most (source, kind) keys remembered, hence most sources named in WARN lines per
/// [`RETAIN`]. A cluster has a handful of peers; 64 leaves room for a misconfigured fleet.
pub(crate) const MAX_LOGGED_KEYS: usize = 64;
/// How long a logged key is remembered (10 min): a repeat within it is not logged again at
/// WARN, one after it is.
pub(crate) const RETAIN: Duration = Duration::from_secs(600);
/// At most one summary line of unlogged rejections per period (30 s).
pub(crate) const SUMMARY_PERIOD: Duration = Duration::from_secs(30);
/// Most distinct sources counted for one summary; beyond it the summary says "at least".
const MAX_COUNTED_SOURCES: usize = 4096;

/// What to do with one rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogDecision {
    /// First of its kind from this source (within [`RETAIN`]): a WARN line.
    Warn,
    /// Already logged: a DEBUG line.
    Repeat,
    /// The table is full: counted for the next summary, DEBUG line only.
    Counted,
}

/// Rejections that were not logged one by one during a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// How many.
    pub(crate) rejected: u64,
    /// From how many distinct source addresses (a lower bound when `sources_capped`).
    pub(crate) sources: usize,
    /// More distinct sources than could be counted.
    pub(crate) sources_capped: bool,
    /// Per kind, indexed like [`RejectKind::ALL`].
    pub(crate) by_kind: [u64; RejectKind::ALL.len()],
    /// The length of the period.
    pub(crate) period: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at_least = if self.sources_capped { "at least " } else { "" };
        write!(
            f,
            "{} more rejected connections from {at_least}{} sources in the last {} s (",
            self.rejected,
            self.sources,
            self.period.as_secs()
        )?;
        let mut first = true;
        for kind in RejectKind::ALL {
            let n = self.by_kind[kind.index()];
            if n > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{} {n}", kind.label())?;
                first = false;
            }
        }
        write!(
            f,
            "); the log names at most {MAX_LOGGED_KEYS} sources and kinds per {} min",
            RETAIN.as_secs() / 60
        )
    }
}

/// The log-once table, see the module doc.
#[derive(Debug)]
pub(crate) struct RejectLog {
    logged: HashMap<(IpAddr, RejectKind), Instant>,
    period_start: Instant,
    rejected: u64,
    sources: HashSet<IpAddr>,
    sources_capped: bool,
    by_kind: [u64; RejectKind::ALL.len()],
}

impl RejectLog {
    /// An empty table whose first summary period starts at `now`.
    pub(crate) fn new(now: Instant) -> RejectLog {
        RejectLog {
            logged: HashMap::new(),
            period_start: now,
            rejected: 0,
            sources: HashSet::new(),
            sources_capped: false,
            by_kind: [0; RejectKind::ALL.len()],
        }
    }

    /// Decides how a rejection of `kind` from `source` at `now` is logged, and remembers it.
    pub(crate) fn decide(&mut self, now: Instant, source: IpAddr, kind: RejectKind) -> LogDecision {
        let source = source.to_canonical();
        let key = (source, kind);
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < RETAIN;
        if let Some(at) = self.logged.get_mut(&key) {
            if fresh(at) {
                return LogDecision::Repeat;
            }
            *at = now;
            return LogDecision::Warn;
        }
        if self.logged.len() >= MAX_LOGGED_KEYS {
            self.logged.retain(|_, at| fresh(at));
        }
        if self.logged.len() < MAX_LOGGED_KEYS {
            self.logged.insert(key, now);
            return LogDecision::Warn;
        }
        self.rejected += 1;
        self.by_kind[kind.index()] += 1;
        if self.sources.len() < MAX_COUNTED_SOURCES {
            self.sources.insert(source);
        } else if !self.sources.contains(&source) {
            self.sources_capped = true;
        }
        LogDecision::Counted
    }

    /// At the end of a period (`now` at least [`SUMMARY_PERIOD`] after its start): the
    /// summary of what was only counted, if anything was, and a new period begins.
    pub(crate) fn summary(&mut self, now: Instant) -> Option<Summary> {
        let period = now.saturating_duration_since(self.period_start);
        if period < SUMMARY_PERIOD {
            return None;
        }
        let summary = (self.rejected > 0).then_some(Summary {
            rejected: self.rejected,
            sources: self.sources.len(),
            sources_capped: self.sources_capped,
            by_kind: self.by_kind,
            period,
        });
        self.period_start = now;
        self.rejected = 0;
        self.sources.clear();
        self.sources_capped = false;
        self.by_kind = [0; RejectKind::ALL.len()];
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn source(i: u32) -> IpAddr {
        // 10.0.0.0/8 gives 16 M distinct addresses; nothing is sent to them.
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    /// WARN lines plus summary lines for a flood: `per_tick` rejections from new sources
    /// every `tick`, for `ticks` ticks, summaries polled every `tick` (as often as or more
    /// often than the transport's summary task does).
    fn flood(ticks: u32, per_tick: u32, tick: Duration) -> (usize, usize, u64) {
        let t0 = Instant::now();
        let mut log = RejectLog::new(t0);
        let (mut warns, mut summaries, mut summarised) = (0, 0, 0);
        let mut next = 0u32;
        for t in 0..ticks {
            let now = t0 + tick * t;
            for _ in 0..per_tick {
                let kind = RejectKind::ALL[next as usize % RejectKind::ALL.len()];
                if log.decide(now, source(next), kind) == LogDecision::Warn {
                    warns += 1;
                }
                next += 1;
            }
            if let Some(s) = log.summary(now) {
                summaries += 1;
                summarised += s.rejected;
            }
        }
        (warns, summaries, summarised)
    }

    #[test]
    fn a_flood_of_distinct_sources_logs_a_bounded_number_of_lines() {
        // The incident: ~1000 rejections per second from ever new sources, for 30 s.
        let (warns, summaries, summarised) = flood(300, 100, Duration::from_millis(100));
        assert_eq!(warns, MAX_LOGGED_KEYS);
        assert!(summaries <= 1, "{summaries} summaries in 30 s");
        // Nothing vanishes: every rejection is either a WARN or in a summary, except the
        // ones of the last, unfinished period.
        assert!(summarised <= 30_000 - MAX_LOGGED_KEYS as u64);

        // Two hours of the same: per RETAIN window at most MAX_LOGGED_KEYS named sources,
        // plus one summary per SUMMARY_PERIOD.
        let hours = Duration::from_secs(7200);
        let (warns, summaries, _) = flood(7200, 50, Duration::from_secs(1));
        let windows = hours.as_secs().div_ceil(RETAIN.as_secs()) as usize;
        let periods = hours.as_secs().div_ceil(SUMMARY_PERIOD.as_secs()) as usize;
        assert!(
            warns <= MAX_LOGGED_KEYS * (windows + 1),
            "{warns} WARN lines in 2 h"
        );
        assert!(summaries <= periods, "{summaries} summaries in 2 h");
        // 360,000 rejections became about a thousand lines (64 per 10 min, 2 per minute).
        assert!(warns + summaries <= 1_100, "{} lines", warns + summaries);
    }

    #[test]
    fn the_first_of_each_kind_from_each_source_is_logged() {
        let t0 = Instant::now();
        let mut log = RejectLog::new(t0);
        let per_source = RejectKind::ALL.len();
        let sources = (MAX_LOGGED_KEYS / per_source) as u32;
        for i in 0..sources {
            for kind in RejectKind::ALL {
                assert_eq!(log.decide(t0, source(i), kind), LogDecision::Warn);
                // The same again, also through an IPv4-mapped IPv6 address: not logged.
                assert_eq!(log.decide(t0, source(i), kind), LogDecision::Repeat);
                let IpAddr::V4(v4) = source(i) else {
                    unreachable!()
                };
                let mapped = IpAddr::V6(v4.to_ipv6_mapped());
                assert_eq!(log.decide(t0, mapped, kind), LogDecision::Repeat);
            }
        }
        // After RETAIN a persisting problem is logged again, as a reminder.
        let later = t0 + RETAIN;
        assert_eq!(
            log.decide(later, source(0), RejectKind::UnknownCa),
            LogDecision::Warn
        );
    }

    #[test]
    fn when_full_new_sources_are_summarised_then_logged_once_room_returns() {
        let t0 = Instant::now();
        let mut log = RejectLog::new(t0);
        for i in 0..MAX_LOGGED_KEYS as u32 {
            assert_eq!(
                log.decide(t0, source(i), RejectKind::UnknownCa),
                LogDecision::Warn
            );
        }
        let newcomer = source(1_000_000);
        for _ in 0..3 {
            assert_eq!(
                log.decide(t0, newcomer, RejectKind::Expired),
                LogDecision::Counted
            );
        }
        assert_eq!(
            log.decide(t0, source(2_000_000), RejectKind::NoCertificate),
            LogDecision::Counted
        );
        assert_eq!(log.summary(t0 + SUMMARY_PERIOD / 2), None, "too early");
        let s = log.summary(t0 + SUMMARY_PERIOD).expect("a summary");
        assert_eq!((s.rejected, s.sources, s.sources_capped), (4, 2, false));
        assert_eq!(
            s.to_string(),
            "4 more rejected connections from 2 sources in the last 30 s \
             (tls_no_cert 1, tls_expired 3); the log names at most 64 sources and kinds \
             per 10 min"
        );
        // The period restarted with nothing counted.
        assert_eq!(log.summary(t0 + SUMMARY_PERIOD * 2), None);
        // Old entries make room: the newcomer is named once they are past RETAIN.
        assert_eq!(
            log.decide(t0 + RETAIN, newcomer, RejectKind::Expired),
            LogDecision::Warn
        );
    }
}
