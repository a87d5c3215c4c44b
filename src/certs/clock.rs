//! Telling "the peer's certificate is out of date" from "this node's clock is wrong".
//!
//! A node whose clock jumped (a dead RTC battery, a bad NTP source: 900 days was seen)
//! rejects every peer's certificate as expired or not yet valid, and the natural reading of
//! that log line — "renew the peer's certificate" — is wrong. Certificate rotation leaves a
//! certificate at most days out of date; a margin beyond [`ROTATION_MARGIN`], or a clock that
//! reads earlier than the cluster CA's own start of validity, points at the local clock.

use std::time::{Duration, SystemTime};

use super::rfc3339;

/// How far outside its validity window a certificate can plausibly be because a rotation
/// was missed or is under way (30 days). Beyond it, the local clock is the likely culprit.
pub(crate) const ROTATION_MARGIN: Duration = Duration::from_secs(30 * 86_400);

/// Why the local clock is suspected, see [`clock_suspicion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClockClue {
    /// The clock reads this long after the certificate's end of validity.
    FarPastEnd(Duration),
    /// The clock reads this long before the certificate's start of validity.
    FarBeforeStart(Duration),
    /// The clock reads earlier than the start of the cluster CA's own validity, which no
    /// certificate of this cluster can predate.
    BeforeCa,
}

/// A rejection that the local clock explains better than the certificate: the facts for
/// the log line (its `Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClockSuspicion {
    /// What this node's clock read when it checked the certificate.
    pub(crate) now: SystemTime,
    /// The peer certificate's start of validity.
    pub(crate) not_before: SystemTime,
    /// The peer certificate's end of validity.
    pub(crate) not_after: SystemTime,
    /// Which rule fired.
    pub(crate) clue: ClockClue,
}

/// Decides whether a peer certificate judged expired or not yet valid at `now` (this node's
/// clock) more likely says that this node's clock is wrong: `now` is more than
/// [`ROTATION_MARGIN`] outside `not_before..=not_after`, or earlier than `ca_not_before` (the
/// start of validity of this node's own CA). `None` when the certificate's own dates
/// explain the rejection (or it is not out of its window at all).
pub(crate) fn clock_suspicion(
    now: SystemTime,
    not_before: SystemTime,
    not_after: SystemTime,
    ca_not_before: Option<SystemTime>,
) -> Option<ClockSuspicion> {
    let clue = if ca_not_before.is_some_and(|ca| now < ca) {
        ClockClue::BeforeCa
    } else if let Ok(late) = now.duration_since(not_after) {
        (late > ROTATION_MARGIN).then_some(ClockClue::FarPastEnd(late))?
    } else if let Ok(early) = not_before.duration_since(now) {
        (early > ROTATION_MARGIN).then_some(ClockClue::FarBeforeStart(early))?
    } else {
        return None;
    };
    Some(ClockSuspicion {
        now,
        not_before,
        not_after,
        clue,
    })
}

impl std::fmt::Display for ClockSuspicion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = |d: Duration| d.as_secs() / 86_400;
        write!(
            f,
            "this node's own clock is the likely culprit: it reads {}, the certificate is \
             valid from {} to {}",
            rfc3339(self.now),
            rfc3339(self.not_before),
            rfc3339(self.not_after)
        )?;
        match self.clue {
            ClockClue::FarPastEnd(d) => write!(
                f,
                " ({} days after its end, more than a missed rotation explains)",
                days(d)
            )?,
            ClockClue::FarBeforeStart(d) => write!(
                f,
                " ({} days before its start, more than a fresh rotation explains)",
                days(d)
            )?,
            ClockClue::BeforeCa => write!(
                f,
                " (and the clock reads earlier than this cluster's CA was created)"
            )?,
        }
        f.write_str("; check this node's time (timedatectl, NTP) before replacing certificates")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days: u32) -> SystemTime {
        UNIX_EPOCH + DAY * 20_000 + DAY * days
    }

    #[test]
    fn a_certificate_just_out_of_date_is_not_the_clock() {
        // Valid days 0..=10.
        let (nb, na) = (at(0), at(10));
        assert_eq!(clock_suspicion(at(11), nb, na, Some(at(0))), None);
        assert_eq!(clock_suspicion(at(40), nb, na, Some(at(0))), None);
        // A certificate issued for tomorrow (a clock a little behind the issuer's).
        assert_eq!(clock_suspicion(at(0) - DAY, at(0), na, None), None);
        // Inside the window: nothing to explain.
        assert_eq!(clock_suspicion(at(5), nb, na, Some(at(0))), None);
    }

    #[test]
    fn a_clock_jump_is_named_with_the_local_time_and_the_window() {
        let (nb, na) = (at(0), at(10));
        // 900 days ahead.
        let s = clock_suspicion(at(910), nb, na, Some(at(0))).expect("suspected");
        assert_eq!(s.clue, ClockClue::FarPastEnd(DAY * 900));
        let words = s.to_string();
        assert!(
            words.contains("this node's own clock is the likely culprit"),
            "{words}"
        );
        assert!(words.contains(&rfc3339(at(910))), "{words}");
        assert!(
            words.contains(&format!("valid from {} to {}", rfc3339(nb), rfc3339(na))),
            "{words}"
        );
        assert!(words.contains("900 days after its end"), "{words}");
        // Just past the margin ahead of the start.
        let s = clock_suspicion(at(100) - DAY * 31, at(100), at(110), None).expect("suspected");
        assert_eq!(s.clue, ClockClue::FarBeforeStart(DAY * 31));
        assert!(s.to_string().contains("31 days before its start"));
    }

    #[test]
    fn a_clock_before_the_ca_is_always_suspect() {
        // Only a day before the certificate, but before the CA itself.
        let s = clock_suspicion(at(0), at(1), at(10), Some(at(1))).expect("suspected");
        assert_eq!(s.clue, ClockClue::BeforeCa);
        assert!(s.to_string().contains("earlier than this cluster's CA"));
    }
}
