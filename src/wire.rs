//! The advert datagram: what one node tells its peers every advert interval.
//!
//! Adverts travel as unreliable QUIC datagrams on an already authenticated connection, so this
//! format carries no secrets and no signature; it only has to be small, versioned, and decoded
//! strictly, so that a buggy or newer peer is rejected with a precise [`WireError`] instead of
//! being half-understood by the election.
//!
//! # Layout (version 1, all integers big-endian)
//!
//! | offset | size | field                | rule                                                        |
//! |-------:|-----:|----------------------|-------------------------------------------------------------|
//! | 0      | 2    | magic                | `b"HA"`                                                     |
//! | 2      | 1    | version              | [`WIRE_VERSION`] (1)                                        |
//! | 3      | 1    | message type         | 1 = advert                                                  |
//! | 4      | 1    | state                | 0 init, 1 backup, 2 master, 3 fault                         |
//! | 5      | 1    | priority             | 0 = leaving (shutting down), 1..=254 normal, 255 invalid    |
//! | 6      | 2    | reserved             | must be 0 (strict in v1; a future version bumps `version`)  |
//! | 8      | 2    | advert_interval_ms   | >= [`MIN_ADVERT_INTERVAL_MS`] (10)                          |
//! | 10     | 8    | epoch                | any                                                         |
//! | 18     | 8    | seq                  | any                                                         |
//! | 26     | 6    | mac                  | the sender's MAC on the VIP interface (any value)           |
//! | 32     | 16   | fingerprint          | 4 × u32: hashes of the settings that must match (any value) |
//! | 48     | 1    | name_len             | 1..=[`MAX_NAME_LEN`] (64)                                   |
//! | 49     | n    | name                 | ASCII `[A-Za-z0-9._-]`, not starting with `-`               |
//!
//! Message type 2 is an advert that also hands the VIPs over: after the name comes
//! `target_len` (1 byte, 1..=64) and the target node's name, with the same rules.
//!
//! The datagram is exactly as long as its fields; trailing bytes are an error.

use std::fmt;

/// The wire format version this build writes and accepts.
pub const WIRE_VERSION: u8 = 1;

/// Length of the fixed part of an advert, before the name.
pub const HEADER_LEN: usize = 49;

/// Longest node name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Smallest advert interval a peer may announce, in milliseconds.
pub const MIN_ADVERT_INTERVAL_MS: u16 = 10;

/// Largest advert interval the 2-byte field carries, in milliseconds. The election clamps its
/// own interval into `MIN_ADVERT_INTERVAL_MS..=MAX_ADVERT_INTERVAL_MS`; the config allows a
/// narrower range (at most 10 s, docs/configuration.md).
pub const MAX_ADVERT_INTERVAL_MS: u16 = u16::MAX;

/// The priority of a node that is leaving (shutting down or handing over).
pub const LEAVING_PRIORITY: u8 = 0;

/// Lowest priority a running node advertises.
pub const MIN_PRIORITY: u8 = 1;

/// Highest priority a node advertises; 255 is invalid on the wire (RFC 9568 §6.1 keeps it for
/// the address owner, which haagent never is).
pub const MAX_PRIORITY: u8 = 254;

const MAGIC: [u8; 2] = *b"HA";
const TYPE_ADVERT: u8 = 1;
const TYPE_HANDOVER: u8 = 2;

/// A node's election state, as advertised and as reported by the status command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not started yet, or shut down.
    Init,
    /// Following a master; ready to take over.
    Backup,
    /// Holding the VIPs.
    Master,
    /// A health check failed: never takes over until the fault clears.
    Fault,
}

impl State {
    /// Every state, in wire-byte order.
    pub const ALL: [State; 4] = [State::Init, State::Backup, State::Master, State::Fault];

    /// Lower-case name, as in status, logs and `haagent_state{state}`.
    pub const fn label(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            State::Init => 0,
            State::Backup => 1,
            State::Master => 2,
            State::Fault => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(State::Init),
            1 => Some(State::Backup),
            2 => Some(State::Master),
            3 => Some(State::Fault),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One advert: who sends it, in which state, with which priority and epoch. (Serde is for
/// the election's golden traces and tools; the wire format is [`encode`] / [`decode`].)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Advert {
    /// The sender's node name (unique in the cluster; see [`valid_node_name`]).
    pub name: String,
    /// The sender's election state.
    pub state: State,
    /// The sender's priority: 1..=254, or 0 when it is leaving.
    pub priority: u8,
    /// The sender's epoch: the epoch of its takeover if master, else the highest it has seen.
    pub epoch: u64,
    /// How often the sender advertises, in milliseconds (>= 10).
    pub advert_interval_ms: u16,
    /// The sender's advert counter, +1 per advert (shows lost adverts; not used for ordering).
    pub seq: u64,
    /// The sender's MAC on the VIP interface, so that an ARP answer for a VIP can be traced
    /// to the peer that sent it (conflict resolution and the "answered by" log lines).
    pub mac: [u8; 6],
    /// Hashes of the settings every node must share (cluster name, VIPs, advert interval,
    /// quorum mode), compared by the receiver to report configuration drift.
    pub fingerprint: [u32; 4],
    /// A planned handover: the master asks this node to take the VIPs now.
    pub handover_to: Option<String>,
}

/// Why a datagram is not a valid advert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the fixed header.
    #[error("advert too short: {len} bytes, the header alone is {HEADER_LEN}")]
    TooShort {
        /// Length of the datagram received.
        len: usize,
    },
    /// Does not start with `HA`.
    #[error("bad magic {0:02x?}: not a haagent advert")]
    BadMagic([u8; 2]),
    /// A wire version this build does not speak.
    #[error("unsupported wire version {0} (this build speaks version {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    /// A message type other than advert.
    #[error("unknown message type {0} (1 = advert)")]
    UnknownType(u8),
    /// A state byte outside 0..=3.
    #[error("bad state byte {0} (0..=3)")]
    BadState(u8),
    /// Priority 255.
    #[error("bad priority {0} ({LEAVING_PRIORITY} = leaving, {MIN_PRIORITY}..={MAX_PRIORITY})")]
    BadPriority(u8),
    /// The reserved field is not zero.
    #[error("reserved field is {0:#06x}, must be 0 in wire version {WIRE_VERSION}")]
    ReservedNotZero(u16),
    /// An advert interval below 10 ms.
    #[error("advert interval {0} ms is below the minimum {MIN_ADVERT_INTERVAL_MS} ms")]
    IntervalTooSmall(u16),
    /// A name length of 0 or above 64.
    #[error("bad name length {0} (1..={MAX_NAME_LEN})")]
    BadNameLength(usize),
    /// The name has a byte outside `[A-Za-z0-9._-]` or starts with `-`.
    #[error("bad node name {0:?}: only A-Z a-z 0-9 . _ - allowed, not starting with '-'")]
    BadName(String),
    /// The datagram length does not match header + name length.
    #[error("advert length mismatch: expected {expected} bytes, got {got}")]
    LengthMismatch {
        /// Header + name_len.
        expected: usize,
        /// Length of the datagram received.
        got: usize,
    },
}

/// What breaks the node-name rule (see [`node_name_problem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// The name starts with `-`.
    LeadingDash,
    /// The name contains this character, which is not in `[A-Za-z0-9._-]`.
    BadChar(char),
}

/// The node-name rule, the one home for it: 1..=[`MAX_NAME_LEN`] ASCII bytes of
/// `[A-Za-z0-9._-]`, not starting with `-`. Returns the first problem, checked in this order:
/// empty, too long, leading `-`, a bad character. The wire ([`valid_node_name`]), the config
/// (node, peer and cluster names) and the certificates (`certs::validate_node_name`, which adds
/// the DNS-name rules of a certificate on top) all use it and word the problem their way.
pub fn node_name_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Some(NameProblem::TooLong);
    }
    if name.starts_with('-') {
        return Some(NameProblem::LeadingDash);
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(NameProblem::BadChar)
}

/// Whether `name` is a valid node name: [`node_name_problem`] finds nothing. The same rule
/// applies on the wire and in the config.
pub fn valid_node_name(name: &str) -> bool {
    node_name_problem(name).is_none()
}

impl Advert {
    /// Checks every field against the wire rules: `Ok` means [`decode`] will accept
    /// [`encode`]'s output.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.priority > MAX_PRIORITY {
            return Err(WireError::BadPriority(self.priority));
        }
        if self.advert_interval_ms < MIN_ADVERT_INTERVAL_MS {
            return Err(WireError::IntervalTooSmall(self.advert_interval_ms));
        }
        if !(1..=MAX_NAME_LEN).contains(&self.name.len()) {
            return Err(WireError::BadNameLength(self.name.len()));
        }
        if !valid_node_name(&self.name) {
            return Err(WireError::BadName(self.name.clone()));
        }
        if let Some(target) = &self.handover_to {
            if !(1..=MAX_NAME_LEN).contains(&target.len()) {
                return Err(WireError::BadNameLength(target.len()));
            }
            if !valid_node_name(target) {
                return Err(WireError::BadName(target.clone()));
            }
        }
        Ok(())
    }
}

/// Encodes an advert. Never fails; an advert that breaks the wire rules (see
/// [`Advert::validate`]) encodes to bytes that [`decode`] rejects.
pub fn encode(advert: &Advert) -> Vec<u8> {
    let name = advert.name.as_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + name.len());
    out.extend_from_slice(&MAGIC);
    out.push(WIRE_VERSION);
    out.push(if advert.handover_to.is_some() {
        TYPE_HANDOVER
    } else {
        TYPE_ADVERT
    });
    out.push(advert.state.to_byte());
    out.push(advert.priority);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&advert.advert_interval_ms.to_be_bytes());
    out.extend_from_slice(&advert.epoch.to_be_bytes());
    out.extend_from_slice(&advert.seq.to_be_bytes());
    out.extend_from_slice(&advert.mac);
    for word in advert.fingerprint {
        out.extend_from_slice(&word.to_be_bytes());
    }
    // An over-long name gets a saturated length byte: decode then reports the mismatch.
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name);
    if let Some(target) = &advert.handover_to {
        out.push(u8::try_from(target.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(target.as_bytes());
    }
    out
}

/// Decodes one datagram strictly: every field is checked, in layout order.
pub fn decode(buf: &[u8]) -> Result<Advert, WireError> {
    let header: &[u8; HEADER_LEN] = buf
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::TooShort { len: buf.len() })?;
    let u16_at = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[i..i + 8]);
        u64::from_be_bytes(b)
    };

    let magic = [header[0], header[1]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    if header[2] != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion(header[2]));
    }
    let handover = match header[3] {
        TYPE_ADVERT => false,
        TYPE_HANDOVER => true,
        other => return Err(WireError::UnknownType(other)),
    };
    let state = State::from_byte(header[4]).ok_or(WireError::BadState(header[4]))?;
    let priority = header[5];
    if priority > MAX_PRIORITY {
        return Err(WireError::BadPriority(priority));
    }
    let reserved = u16_at(6);
    if reserved != 0 {
        return Err(WireError::ReservedNotZero(reserved));
    }
    let advert_interval_ms = u16_at(8);
    if advert_interval_ms < MIN_ADVERT_INTERVAL_MS {
        return Err(WireError::IntervalTooSmall(advert_interval_ms));
    }
    let epoch = u64_at(10);
    let seq = u64_at(18);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&header[26..32]);
    let mut fingerprint = [0u32; 4];
    for (i, word) in fingerprint.iter_mut().enumerate() {
        let at = 32 + 4 * i;
        *word = u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    }
    let name_len = usize::from(header[48]);
    if !(1..=MAX_NAME_LEN).contains(&name_len) {
        return Err(WireError::BadNameLength(name_len));
    }
    let mut expected = HEADER_LEN + name_len;
    let target_len = if handover {
        let len = usize::from(*buf.get(expected).ok_or(WireError::LengthMismatch {
            expected: expected + 1,
            got: buf.len(),
        })?);
        if !(1..=MAX_NAME_LEN).contains(&len) {
            return Err(WireError::BadNameLength(len));
        }
        expected += 1 + len;
        len
    } else {
        0
    };
    if buf.len() != expected {
        return Err(WireError::LengthMismatch {
            expected,
            got: buf.len(),
        });
    }
    let name = name_at(&buf[HEADER_LEN..HEADER_LEN + name_len])?;
    let handover_to = if handover {
        Some(name_at(&buf[expected - target_len..])?)
    } else {
        None
    };
    Ok(Advert {
        name,
        state,
        priority,
        epoch,
        advert_interval_ms,
        seq,
        mac,
        fingerprint,
        handover_to,
    })
}

fn name_at(bytes: &[u8]) -> Result<String, WireError> {
    match std::str::from_utf8(bytes) {
        Ok(s) if valid_node_name(s) => Ok(s.to_string()),
        _ => Err(WireError::BadName(String::from_utf8_lossy(bytes).into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sample() -> Advert {
        Advert {
            name: "node-1.dc_a".into(),
            state: State::Master,
            priority: 200,
            epoch: 0x0102_0304_0506_0708,
            advert_interval_ms: 50,
            seq: u64::MAX,
            mac: [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee],
            fingerprint: [1, 2, 3, 0xffff_ffff],
            handover_to: None,
        }
    }

    /// `sample()` encoded, with `f` applied to the bytes.
    fn tweaked(f: impl FnOnce(&mut Vec<u8>)) -> Result<Advert, WireError> {
        let mut b = encode(&sample());
        f(&mut b);
        decode(&b)
    }

    #[test]
    fn round_trip_every_state_and_edge_value() {
        for state in [State::Init, State::Backup, State::Master, State::Fault] {
            for (priority, epoch, interval) in [(0, 0, 10), (254, u64::MAX, u16::MAX), (1, 7, 50)] {
                let a = Advert {
                    state,
                    priority,
                    epoch,
                    advert_interval_ms: interval,
                    ..sample()
                };
                assert_eq!(a.validate(), Ok(()));
                assert_eq!(decode(&encode(&a)), Ok(a));
            }
        }
        let long = Advert {
            name: "a".repeat(64),
            ..sample()
        };
        assert_eq!(decode(&encode(&long)), Ok(long));
    }

    #[test]
    fn layout_matches_the_documented_table() {
        let b = encode(&sample());
        assert_eq!(b.len(), HEADER_LEN + 11);
        assert_eq!(&b[0..2], b"HA");
        assert_eq!(b[2..6], [1, 1, 2, 200]);
        assert_eq!(b[6..8], [0, 0]);
        assert_eq!(b[8..10], [0, 50]);
        assert_eq!(b[10..18], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b[18..26], [0xff; 8]);
        assert_eq!(b[26..32], [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        assert_eq!(
            b[32..48],
            [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(b[48], 11);
        assert_eq!(&b[49..], b"node-1.dc_a");
    }

    #[test]
    fn rejects_each_bad_field() {
        assert_eq!(decode(&[]), Err(WireError::TooShort { len: 0 }));
        assert_eq!(
            tweaked(|b| b.truncate(HEADER_LEN - 1)),
            Err(WireError::TooShort {
                len: HEADER_LEN - 1
            })
        );
        assert_eq!(tweaked(|b| b[1] = b'X'), Err(WireError::BadMagic(*b"HX")));
        assert_eq!(tweaked(|b| b[2] = 2), Err(WireError::UnsupportedVersion(2)));
        assert_eq!(tweaked(|b| b[3] = 7), Err(WireError::UnknownType(7)));
        assert_eq!(tweaked(|b| b[4] = 4), Err(WireError::BadState(4)));
        assert_eq!(tweaked(|b| b[5] = 255), Err(WireError::BadPriority(255)));
        assert_eq!(tweaked(|b| b[7] = 1), Err(WireError::ReservedNotZero(1)));
        assert_eq!(
            tweaked(|b| b[8..10].copy_from_slice(&9u16.to_be_bytes())),
            Err(WireError::IntervalTooSmall(9))
        );
        assert_eq!(tweaked(|b| b[48] = 0), Err(WireError::BadNameLength(0)));
        assert_eq!(tweaked(|b| b[48] = 65), Err(WireError::BadNameLength(65)));
        assert_eq!(
            tweaked(|b| b.push(b'x')),
            Err(WireError::LengthMismatch {
                expected: HEADER_LEN + 11,
                got: HEADER_LEN + 12
            })
        );
        assert_eq!(
            tweaked(|b| b.pop().map(drop).unwrap_or(())),
            Err(WireError::LengthMismatch {
                expected: HEADER_LEN + 11,
                got: HEADER_LEN + 10
            })
        );
        assert_eq!(
            tweaked(|b| b[49] = b'-'),
            Err(WireError::BadName("-ode-1.dc_a".into()))
        );
        assert_eq!(
            tweaked(|b| b[50] = b' '),
            Err(WireError::BadName("n de-1.dc_a".into()))
        );
        assert!(matches!(
            tweaked(|b| b[50] = 0xc3),
            Err(WireError::BadName(_))
        ));
    }

    #[test]
    fn handover_advert_round_trips_and_is_strict() {
        let a = Advert {
            handover_to: Some("n2".into()),
            ..sample()
        };
        let b = encode(&a);
        assert_eq!(b[3], TYPE_HANDOVER);
        assert_eq!(decode(&b), Ok(a));
        let mut short = b.clone();
        short.pop();
        assert!(matches!(
            decode(&short),
            Err(WireError::LengthMismatch { .. })
        ));
        let mut no_target = b.clone();
        no_target.truncate(HEADER_LEN + 11);
        assert!(matches!(
            decode(&no_target),
            Err(WireError::LengthMismatch { .. })
        ));
        let mut bad = b;
        let last = bad.len() - 1;
        bad[last] = b' ';
        assert!(matches!(decode(&bad), Err(WireError::BadName(_))));
    }

    #[test]
    fn validate_and_encode_agree_on_bad_adverts() {
        let bad = [
            Advert {
                priority: 255,
                ..sample()
            },
            Advert {
                advert_interval_ms: 9,
                ..sample()
            },
            Advert {
                name: String::new(),
                ..sample()
            },
            Advert {
                name: "x".repeat(65),
                ..sample()
            },
            Advert {
                name: "x".repeat(300),
                ..sample()
            },
            Advert {
                name: "-x".into(),
                ..sample()
            },
            Advert {
                name: "né".into(),
                ..sample()
            },
        ];
        for a in bad {
            assert!(a.validate().is_err(), "{a:?}");
            assert!(decode(&encode(&a)).is_err(), "{a:?}");
        }
    }

    #[test]
    fn node_name_rule() {
        for ok in ["a", "n1", "node-1", "a.b_c-d", "x-", "0"] {
            assert!(valid_node_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a b", "a/b", "ü", "a\n", &"a".repeat(65)] {
            assert!(!valid_node_name(bad), "{bad}");
        }
        assert!(valid_node_name(&"a".repeat(64)));
    }

    #[test]
    fn node_name_problems_come_in_a_fixed_order() {
        assert_eq!(node_name_problem(""), Some(NameProblem::Empty));
        assert_eq!(
            node_name_problem(&"-".repeat(65)),
            Some(NameProblem::TooLong)
        );
        assert_eq!(node_name_problem("-é"), Some(NameProblem::LeadingDash));
        assert_eq!(node_name_problem("a é"), Some(NameProblem::BadChar(' ')));
        assert_eq!(node_name_problem("n1"), None);
    }

    #[test]
    fn truncations_and_random_bytes_never_panic() {
        let good = encode(&sample());
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "truncated to {n} accepted");
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x4841);
        let mut accepted = 0;
        for i in 0..20_000 {
            let len = rng.random_range(0..100);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if i % 2 == 0 {
                // Half the inputs: a valid message with a few random bytes flipped, so the
                // decoder gets past the magic and exercises the later checks.
                buf = good.clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..buf.len());
                    buf[at] = rng.random();
                }
            }
            if let Ok(a) = decode(&buf) {
                accepted += 1;
                assert_eq!(encode(&a), buf, "accepted bytes must re-encode identically");
            }
        }
        assert!(
            accepted > 0,
            "the mutated inputs should sometimes stay valid"
        );
    }
}
