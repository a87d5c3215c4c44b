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
//!
//! # Layout (version 2, all integers big-endian)
//!
//! One datagram per peer per interval carries the node's header and one entry per VIP group
//! ([`NodeAdvert`], [`encode_v2`], [`decode_v2`]). A connection negotiates the version by ALPN
//! (`haagent/2`, then `haagent/1`; `src/transport/tls.rs`); a peer that only speaks v1 gets
//! exact v1 datagrams for the first group (docs/wire-format.md, "Rolling upgrade").
//!
//! | offset | size | field                | rule                                                        |
//! |-------:|-----:|----------------------|-------------------------------------------------------------|
//! | 0      | 2    | magic                | `b"HA"` (the prefix every version shares)                   |
//! | 2      | 1    | version              | [`WIRE_VERSION_2`] (2)                                      |
//! | 3      | 1    | message type         | 1 = node advert                                             |
//! | 4      | 2    | advert_interval_ms   | >= [`MIN_ADVERT_INTERVAL_MS`] (10)                          |
//! | 6      | 8    | seq                  | any                                                         |
//! | 14     | 16   | fingerprint          | 4 × u32 (any value)                                         |
//! | 30     | 1    | name_len             | 1..=[`MAX_NAME_LEN`] (64)                                   |
//! | 31     | n    | name                 | the node-name rule ([`valid_node_name`])                    |
//! | 31+n   | 1    | mac_count            | 1..=[`MAX_MACS`] (8)                                        |
//! | 32+n   | 6·m  | macs                 | the first: the MAC on the node's `[node] interface`        |
//! | ..     | 1    | group_count          | 1..=[`MAX_GROUPS`] (64)                                     |
//! | ..     | ..   | group entries        | `group_count` times, see below                              |
//! | ..     | ..   | extensions           | TLVs up to the end of the datagram, see below               |
//!
//! A group entry:
//!
//! | offset | size | field                | rule                                                        |
//! |-------:|-----:|----------------------|-------------------------------------------------------------|
//! | 0      | 1    | entry_len            | bytes of the entry after this one: >= its known fields      |
//! | 1      | 2    | id                   | 1..=65535, unique in the datagram                           |
//! | 3      | 1    | state                | 0 init, 1 backup, 2 master, 3 fault                         |
//! | 4      | 1    | priority             | 0 = leaving, 1..=254, 255 invalid                           |
//! | 5      | 8    | epoch                | any (admission bounds it)                                   |
//! | 13     | 4    | vips_fingerprint     | hash of the group's VIPs (any value)                        |
//! | 17     | 1    | flags                | bit 0: a handover target follows; bits 1..=7 must be 0      |
//! | 18     | 1    | target_len           | only with flag bit 0: 1..=64                                |
//! | 19     | t    | target               | only with flag bit 0: the node-name rule                    |
//! | ..     | ..   | (later fields)       | up to `entry_len`: skipped by a v2 decoder                  |
//!
//! An extension: type u8 (0 is reserved and rejected), length u16, then `length` bytes of
//! value. Type 1, `heard`, is defined (decoded strictly: exactly 8 bytes, at most once): the
//! seq (u64) of the latest datagram the sender received from this datagram's receiver, so
//! each peer gets its own datagram ([`NodeAdvert::heard`], [`with_heard`]); builds from
//! before it skip it. Every other type 2..=255 is skipped. A type defined later is decoded
//! strictly the same way, and those a decoder does not know are still skipped. The datagram must end exactly at the end of an extension (or of
//! the last entry): a partial extension is an error.
//!
//! So a v2 decoder accepts: everything above; more bytes in an entry than it knows (skipped);
//! extensions of types 2..=255 (skipped). It rejects: any field outside its rule, a count of
//! 0 or above the maximum, a group id of 0 or twice, flag bits 1..=7, an entry shorter than
//! its known fields, extension type 0, a `heard` extension that is not 8 bytes or comes
//! twice, and any length that runs past the datagram. [`encode_v2`] writes no entry tail
//! and no extension but `heard`, so what it writes is canonical.
//!
//! Sizes: 33 + name + 6 per MAC, plus 18 per group (+ 1 + target for a handover), + 11 with
//! `heard`. A 16-byte
//! name with 2 MACs and 16 groups is 349 bytes; 64 groups with 8 MACs and a 64-byte name
//! are 1297 bytes, more than a QUIC datagram holds on a 1280-byte-MTU path (quinn's
//! `Connection::max_datagram_size`; the transport then drops it, logged at debug).

use std::fmt;

/// Wire format version 1: one advert per datagram, one VIP group (the only one before VIP
/// groups; [`encode`] / [`decode`]).
pub const WIRE_VERSION: u8 = 1;

/// Wire format version 2: one datagram per node carrying every group ([`encode_v2`] /
/// [`decode_v2`]).
pub const WIRE_VERSION_2: u8 = 2;

/// Most MACs a v2 node header carries (one per interface a VIP lives on).
pub const MAX_MACS: usize = 8;

/// Most group entries a v2 datagram carries.
pub const MAX_GROUPS: usize = 64;

/// Bytes of a v2 group entry's known fields after its length byte (id, state, priority,
/// epoch, vips_fingerprint, flags), without a handover target.
pub const GROUP_ENTRY_LEN: usize = 17;

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
const TYPE_NODE_ADVERT: u8 = 1;
const FLAG_HANDOVER: u8 = 1;
const EXTENSION_RESERVED: u8 = 0;
/// Extension type 1, `heard`: the seq (u64) of the receiver's latest datagram the sender has
/// received (per-peer datagrams; [`NodeAdvert::heard`]).
pub const EXTENSION_HEARD: u8 = 1;
/// Bytes the `heard` extension adds to a datagram (type, length, u64).
pub const HEARD_EXTENSION_LEN: usize = 11;

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
    /// The sender's MACs on its other interfaces (a v2 node header's MACs after the first),
    /// so that an ARP answer from any of them is traced to this peer. v1 never carries it:
    /// empty for a v1 advert, and [`encode`] ignores it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_macs: Vec<[u8; 6]>,
    /// Not on the wire as such: when **we** sent the datagram that the sender says it heard
    /// last from us (its v2 [`NodeAdvert::heard`], looked up by the daemon in its log of
    /// recent sends). Proves two-way contact (the election's preemption rule). `None` from
    /// a v1 peer, a peer that has heard nothing from us, or a seq too old to be in the log.
    #[serde(skip)]
    pub heard_us_at: Option<std::time::Instant>,
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
    #[error("unsupported wire version {0} (this build speaks versions {WIRE_VERSION} and {WIRE_VERSION_2})")]
    UnsupportedVersion(u8),
    /// A version this build speaks, handed to the decoder of the other one (use
    /// [`decode_any`]).
    #[error("wire version {got} where version {expected} was expected")]
    WrongVersion {
        /// The version the decoder reads.
        expected: u8,
        /// The version byte of the datagram.
        got: u8,
    },
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
    /// A v2 datagram ends inside a field.
    #[error("advert truncated in its {what}: needs {need} bytes, has {got}")]
    Truncated {
        /// The field that runs past the end.
        what: &'static str,
        /// Bytes the datagram needs up to the end of that field.
        need: usize,
        /// Length of the datagram received.
        got: usize,
    },
    /// A v2 MAC count of 0 or above 8.
    #[error("bad MAC count {0} (1..={MAX_MACS})")]
    BadMacCount(usize),
    /// A v2 group count of 0 or above 64.
    #[error("bad group count {0} (1..={MAX_GROUPS})")]
    BadGroupCount(usize),
    /// A v2 group entry with id 0.
    #[error("group id 0 (ids are 1..=65535)")]
    ZeroGroupId,
    /// A v2 group id that appears twice in one datagram.
    #[error("group id {0} appears twice")]
    DuplicateGroupId(u16),
    /// A v2 group entry's length byte is shorter than the fields it must hold.
    #[error("group entry length {len} is shorter than its fields ({needed} bytes)")]
    BadEntryLength {
        /// The entry's length byte.
        len: usize,
        /// Bytes its fields need.
        needed: usize,
    },
    /// A v2 group entry with flag bits other than bit 0 set.
    #[error("group {id} has reserved flag bits set ({flags:#04x}; only bit 0 is defined)")]
    ReservedFlags {
        /// The group id.
        id: u16,
        /// The flags byte.
        flags: u8,
    },
    /// A v2 extension of type 0 (reserved, so that zero padding is not taken for one).
    #[error("extension type 0 is reserved")]
    ReservedExtension,
    /// The `heard` extension (type 1) is not exactly 8 bytes long.
    #[error("heard extension of {0} bytes (exactly 8)")]
    BadHeardLength(usize),
    /// The `heard` extension (type 1) appears twice.
    #[error("heard extension appears twice")]
    DuplicateHeard,
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
    match header[2] {
        WIRE_VERSION => {}
        WIRE_VERSION_2 => {
            return Err(WireError::WrongVersion {
                expected: WIRE_VERSION,
                got: WIRE_VERSION_2,
            })
        }
        other => return Err(WireError::UnsupportedVersion(other)),
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
        extra_macs: Vec::new(),
        heard_us_at: None,
    })
}

fn name_at(bytes: &[u8]) -> Result<String, WireError> {
    match std::str::from_utf8(bytes) {
        Ok(s) if valid_node_name(s) => Ok(s.to_string()),
        _ => Err(WireError::BadName(String::from_utf8_lossy(bytes).into())),
    }
}

/// One node's v2 advert: the node header and one entry per VIP group (layout in the module
/// doc). The election's per-group view of it is [`NodeAdvert::advert`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeAdvert {
    /// The sender's node name ([`valid_node_name`]).
    pub name: String,
    /// How often the sender advertises, in milliseconds (>= 10).
    pub advert_interval_ms: u16,
    /// The sender's datagram counter, +1 per datagram (one for all groups).
    pub seq: u64,
    /// Hashes of the node-wide settings every node must share (cluster name first).
    pub fingerprint: [u32; 4],
    /// The sender's MACs, 1..=[`MAX_MACS`]: the first on its first group's VIP interface,
    /// then those of its other VIP interfaces.
    pub macs: Vec<[u8; 6]>,
    /// One entry per group, 1..=[`MAX_GROUPS`], ids unique (the sender's config order).
    pub groups: Vec<GroupEntry>,
    /// Extension type 1: the seq of the latest datagram the sender received from the
    /// receiver of this one (each peer gets its own datagram); `None` = none yet. With the
    /// receiver's own send log it proves contact in both directions (docs/election.md,
    /// "Preemption"). A decoder of an older v2 build skips it.
    #[serde(default)]
    pub heard: Option<u64>,
}

/// One group's entry in a [`NodeAdvert`]: what [`Advert`] says per group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupEntry {
    /// The group's wire id, 1..=65535 (`GroupConfig::id`, the same on every node).
    pub id: u16,
    /// The sender's election state in this group.
    pub state: State,
    /// The sender's priority in this group: 1..=254, or 0 when it is leaving.
    pub priority: u8,
    /// The sender's epoch in this group.
    pub epoch: u64,
    /// Hash of the group's VIPs, compared by the receiver to report drift (any value).
    pub vips_fingerprint: u32,
    /// A planned handover of this group: the master asks this node to take its VIPs now.
    pub handover_to: Option<String>,
}

/// A datagram of either version, as [`decode_any`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Version 1: one advert, one group.
    V1(Advert),
    /// Version 2: the node header and every group.
    V2(NodeAdvert),
}

impl NodeAdvert {
    /// Checks every field against the v2 wire rules: `Ok` means [`decode_v2`] gives
    /// [`encode_v2`]'s output back unchanged.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.advert_interval_ms < MIN_ADVERT_INTERVAL_MS {
            return Err(WireError::IntervalTooSmall(self.advert_interval_ms));
        }
        check_name(&self.name)?;
        if !(1..=MAX_MACS).contains(&self.macs.len()) {
            return Err(WireError::BadMacCount(self.macs.len()));
        }
        if !(1..=MAX_GROUPS).contains(&self.groups.len()) {
            return Err(WireError::BadGroupCount(self.groups.len()));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.id == 0 {
                return Err(WireError::ZeroGroupId);
            }
            if self.groups[..i].iter().any(|earlier| earlier.id == g.id) {
                return Err(WireError::DuplicateGroupId(g.id));
            }
            if g.priority > MAX_PRIORITY {
                return Err(WireError::BadPriority(g.priority));
            }
            if let Some(target) = &g.handover_to {
                check_name(target)?;
            }
        }
        Ok(())
    }

    /// The election's view of one of this node's groups: name, interval, seq and
    /// fingerprint from the node header; state, priority, epoch and handover target from
    /// `entry`; `mac` = the first MAC (zero if there is none), `extra_macs` = the others.
    pub fn advert(&self, entry: &GroupEntry) -> Advert {
        Advert {
            name: self.name.clone(),
            state: entry.state,
            priority: entry.priority,
            epoch: entry.epoch,
            advert_interval_ms: self.advert_interval_ms,
            seq: self.seq,
            mac: self.macs.first().copied().unwrap_or_default(),
            fingerprint: self.fingerprint,
            handover_to: entry.handover_to.clone(),
            extra_macs: self.macs.get(1..).unwrap_or_default().to_vec(),
            heard_us_at: None,
        }
    }
}

/// `datagram` (an [`encode_v2`] output without a `heard` extension) with the `heard`
/// extension for one peer appended: type 1, length 8, `seq` big-endian (+11 bytes).
pub fn with_heard(datagram: &[u8], seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(datagram.len() + HEARD_EXTENSION_LEN);
    out.extend_from_slice(datagram);
    push_heard(&mut out, seq);
    out
}

fn push_heard(out: &mut Vec<u8>, seq: u64) {
    out.push(EXTENSION_HEARD);
    out.extend_from_slice(&8u16.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
}

/// Builds the v2 datagram's content from the per-group adverts of the elections.
///
/// The node header comes from the arguments, never from the adverts: `name`,
/// `advert_interval_ms` (ms), `seq` (the node's datagram counter), `fingerprint` (node-wide
/// settings), `macs` (first = the first group's VIP interface). Each `(id, vips_fingerprint,
/// advert)` of `groups`, in order (config order), becomes one entry with the group's wire
/// id and VIP hash and the advert's state, priority, epoch and handover target; the
/// advert's name, interval, seq, MACs and fingerprint are ignored. Nothing is checked here:
/// [`NodeAdvert::validate`] tells whether the result is valid (1..=8 MACs, 1..=64 groups,
/// ids nonzero and unique, ...).
pub fn node_advert(
    name: &str,
    advert_interval_ms: u16,
    seq: u64,
    fingerprint: [u32; 4],
    macs: &[[u8; 6]],
    groups: &[(u16, u32, &Advert)],
) -> NodeAdvert {
    NodeAdvert {
        name: name.to_string(),
        advert_interval_ms,
        seq,
        fingerprint,
        macs: macs.to_vec(),
        groups: groups
            .iter()
            .map(|(id, vips_fingerprint, a)| GroupEntry {
                id: *id,
                state: a.state,
                priority: a.priority,
                epoch: a.epoch,
                vips_fingerprint: *vips_fingerprint,
                handover_to: a.handover_to.clone(),
            })
            .collect(),
        heard: None,
    }
}

fn check_name(name: &str) -> Result<(), WireError> {
    if !(1..=MAX_NAME_LEN).contains(&name.len()) {
        return Err(WireError::BadNameLength(name.len()));
    }
    if !valid_node_name(name) {
        return Err(WireError::BadName(name.to_string()));
    }
    Ok(())
}

/// A length as its one wire byte; an over-long value saturates, so the decoder rejects it.
fn len_byte(len: usize) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}

/// Encodes a v2 datagram (canonical: no entry tail, no extension but `heard` when set). Never fails; a node
/// advert that breaks the wire rules (see [`NodeAdvert::validate`]) encodes to bytes that
/// [`decode_v2`] rejects.
pub fn encode_v2(a: &NodeAdvert) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        33 + a.name.len() + 6 * a.macs.len() + (1 + GROUP_ENTRY_LEN) * a.groups.len(),
    );
    out.extend_from_slice(&MAGIC);
    out.push(WIRE_VERSION_2);
    out.push(TYPE_NODE_ADVERT);
    out.extend_from_slice(&a.advert_interval_ms.to_be_bytes());
    out.extend_from_slice(&a.seq.to_be_bytes());
    for word in a.fingerprint {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.push(len_byte(a.name.len()));
    out.extend_from_slice(a.name.as_bytes());
    out.push(len_byte(a.macs.len()));
    for mac in &a.macs {
        out.extend_from_slice(mac);
    }
    out.push(len_byte(a.groups.len()));
    for g in &a.groups {
        let target = g.handover_to.as_deref().map(str::as_bytes);
        out.push(len_byte(
            GROUP_ENTRY_LEN + target.map_or(0, |t| 1 + t.len()),
        ));
        out.extend_from_slice(&g.id.to_be_bytes());
        out.push(g.state.to_byte());
        out.push(g.priority);
        out.extend_from_slice(&g.epoch.to_be_bytes());
        out.extend_from_slice(&g.vips_fingerprint.to_be_bytes());
        match target {
            Some(t) => {
                out.push(FLAG_HANDOVER);
                out.push(len_byte(t.len()));
                out.extend_from_slice(t);
            }
            None => out.push(0),
        }
    }
    if let Some(seq) = a.heard {
        push_heard(&mut out, seq);
    }
    out
}

/// Reads fields off a byte slice; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let need = self.at.saturating_add(n);
        let bytes = self.buf.get(self.at..need).ok_or(WireError::Truncated {
            what,
            need,
            got: self.buf.len(),
        })?;
        self.at = need;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }
}

/// The version byte of a datagram after its `HA` magic.
fn prefix(buf: &[u8]) -> Result<u8, WireError> {
    let p = buf.get(..3).ok_or(WireError::Truncated {
        what: "prefix",
        need: 3,
        got: buf.len(),
    })?;
    if p[..2] != MAGIC {
        return Err(WireError::BadMagic([p[0], p[1]]));
    }
    Ok(p[2])
}

/// Decodes one v2 datagram strictly, in layout order (what it accepts and rejects: the
/// module doc). Skipped entry tails and extensions leave no trace in the result.
pub fn decode_v2(buf: &[u8]) -> Result<NodeAdvert, WireError> {
    match prefix(buf)? {
        WIRE_VERSION_2 => {}
        WIRE_VERSION => {
            return Err(WireError::WrongVersion {
                expected: WIRE_VERSION_2,
                got: WIRE_VERSION,
            })
        }
        other => return Err(WireError::UnsupportedVersion(other)),
    }
    let mut r = Reader { buf, at: 3 };
    let kind = r.u8("message type")?;
    if kind != TYPE_NODE_ADVERT {
        return Err(WireError::UnknownType(kind));
    }
    let advert_interval_ms = r.u16("advert interval")?;
    if advert_interval_ms < MIN_ADVERT_INTERVAL_MS {
        return Err(WireError::IntervalTooSmall(advert_interval_ms));
    }
    let seq = r.u64("seq")?;
    let mut fingerprint = [0u32; 4];
    for word in &mut fingerprint {
        *word = r.u32("fingerprint")?;
    }
    let name = read_name(&mut r, "name")?;
    let mac_count = usize::from(r.u8("MAC count")?);
    if !(1..=MAX_MACS).contains(&mac_count) {
        return Err(WireError::BadMacCount(mac_count));
    }
    let mut macs = Vec::with_capacity(mac_count);
    for _ in 0..mac_count {
        macs.push(r.array("MACs")?);
    }
    let group_count = usize::from(r.u8("group count")?);
    if !(1..=MAX_GROUPS).contains(&group_count) {
        return Err(WireError::BadGroupCount(group_count));
    }
    let mut groups: Vec<GroupEntry> = Vec::with_capacity(group_count);
    for _ in 0..group_count {
        let len = usize::from(r.u8("group entry length")?);
        if len < GROUP_ENTRY_LEN {
            return Err(WireError::BadEntryLength {
                len,
                needed: GROUP_ENTRY_LEN,
            });
        }
        let body = r.take(len, "group entry")?;
        let entry = read_entry(body)?;
        if groups.iter().any(|g| g.id == entry.id) {
            return Err(WireError::DuplicateGroupId(entry.id));
        }
        groups.push(entry);
    }
    let mut heard = None;
    while r.remaining() > 0 {
        let kind = r.u8("extension type")?;
        let len = usize::from(r.u16("extension length")?);
        let value = r.take(len, "extension value")?;
        match kind {
            EXTENSION_RESERVED => return Err(WireError::ReservedExtension),
            EXTENSION_HEARD => {
                let bytes: [u8; 8] = value
                    .try_into()
                    .map_err(|_| WireError::BadHeardLength(len))?;
                if heard.replace(u64::from_be_bytes(bytes)).is_some() {
                    return Err(WireError::DuplicateHeard);
                }
            }
            // Every other type is skipped (module doc).
            _ => {}
        }
    }
    Ok(NodeAdvert {
        name,
        advert_interval_ms,
        seq,
        fingerprint,
        macs,
        groups,
        heard,
    })
}

/// A length byte then a node name.
fn read_name(r: &mut Reader<'_>, what: &'static str) -> Result<String, WireError> {
    let len = usize::from(r.u8(what)?);
    if !(1..=MAX_NAME_LEN).contains(&len) {
        return Err(WireError::BadNameLength(len));
    }
    name_at(r.take(len, what)?)
}

/// One group entry's bytes after its length byte (at least [`GROUP_ENTRY_LEN`]).
fn read_entry(body: &[u8]) -> Result<GroupEntry, WireError> {
    let len = body.len();
    // The length was checked against the known fields, so these reads cannot fail; the
    // handover target's are checked against the entry length below.
    let mut e = Reader { buf: body, at: 0 };
    let id = e.u16("group id")?;
    if id == 0 {
        return Err(WireError::ZeroGroupId);
    }
    let state_byte = e.u8("group state")?;
    let state = State::from_byte(state_byte).ok_or(WireError::BadState(state_byte))?;
    let priority = e.u8("group priority")?;
    if priority > MAX_PRIORITY {
        return Err(WireError::BadPriority(priority));
    }
    let epoch = e.u64("group epoch")?;
    let vips_fingerprint = e.u32("group VIPs fingerprint")?;
    let flags = e.u8("group flags")?;
    if flags & !FLAG_HANDOVER != 0 {
        return Err(WireError::ReservedFlags { id, flags });
    }
    let handover_to = if flags & FLAG_HANDOVER != 0 {
        let short = |needed| WireError::BadEntryLength { len, needed };
        let target_len = usize::from(
            *body
                .get(GROUP_ENTRY_LEN)
                .ok_or(short(GROUP_ENTRY_LEN + 1))?,
        );
        if !(1..=MAX_NAME_LEN).contains(&target_len) {
            return Err(WireError::BadNameLength(target_len));
        }
        let end = GROUP_ENTRY_LEN + 1 + target_len;
        let target = body.get(GROUP_ENTRY_LEN + 1..end).ok_or(short(end))?;
        Some(name_at(target)?)
    } else {
        None
    };
    // Bytes after the known fields: a later version's fields, skipped.
    Ok(GroupEntry {
        id,
        state,
        priority,
        epoch,
        vips_fingerprint,
        handover_to,
    })
}

/// Decodes a datagram of either version: dispatches on the version byte after the `HA`
/// prefix to [`decode`] (1) or [`decode_v2`] (2); any other version is
/// [`WireError::UnsupportedVersion`].
pub fn decode_any(buf: &[u8]) -> Result<Decoded, WireError> {
    match prefix(buf)? {
        WIRE_VERSION => decode(buf).map(Decoded::V1),
        WIRE_VERSION_2 => decode_v2(buf).map(Decoded::V2),
        other => Err(WireError::UnsupportedVersion(other)),
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
            extra_macs: Vec::new(),
            heard_us_at: None,
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
        assert_eq!(
            tweaked(|b| b[2] = 2),
            Err(WireError::WrongVersion {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(tweaked(|b| b[2] = 3), Err(WireError::UnsupportedVersion(3)));
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

    // ---- Version 2 ----

    fn entry(id: u16) -> GroupEntry {
        GroupEntry {
            id,
            state: State::Backup,
            priority: 100,
            epoch: 7,
            vips_fingerprint: 0xdead_beef,
            handover_to: None,
        }
    }

    fn sample_v2() -> NodeAdvert {
        NodeAdvert {
            name: "n1".into(),
            advert_interval_ms: 50,
            seq: 9,
            fingerprint: [1, 2, 3, 4],
            macs: vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
            groups: vec![
                entry(51),
                GroupEntry {
                    id: 52,
                    state: State::Master,
                    priority: 254,
                    epoch: u64::MAX,
                    vips_fingerprint: 0,
                    handover_to: Some("n2".into()),
                },
            ],
            heard: None,
        }
    }

    /// Offset of group entry `n` (its length byte) in `encode_v2(&sample_v2())`.
    const V2_GROUPS_AT: usize = 33 + 2 + 12;

    fn tweaked_v2(f: impl FnOnce(&mut Vec<u8>)) -> Result<NodeAdvert, WireError> {
        let mut b = encode_v2(&sample_v2());
        f(&mut b);
        decode_v2(&b)
    }

    #[test]
    fn v2_layout_matches_the_documented_table() {
        let b = encode_v2(&sample_v2());
        assert_eq!(b.len(), V2_GROUPS_AT + 18 + 18 + 3);
        assert_eq!(b[0..4], [b'H', b'A', 2, 1]);
        assert_eq!(b[4..6], [0, 50]);
        assert_eq!(b[6..14], [0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(b[14..30], [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        assert_eq!(b[30], 2);
        assert_eq!(&b[31..33], b"n1");
        assert_eq!(b[33], 2, "MAC count");
        assert_eq!(b[34..46], [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        assert_eq!(b[46], 2, "group count");
        let g = &b[V2_GROUPS_AT..];
        assert_eq!(g[0], 17, "entry length without a target");
        assert_eq!(g[1..3], [0, 51]);
        assert_eq!(g[3..5], [1, 100]);
        assert_eq!(g[5..13], [0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(g[13..17], [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(g[17], 0, "flags");
        let h = &g[18..];
        assert_eq!(h[0], 17 + 1 + 2, "entry length with a 2-byte target");
        assert_eq!(h[1..5], [0, 52, 2, 254]);
        assert_eq!(h[17], 1, "flag bit 0: target follows");
        assert_eq!(h[18], 2);
        assert_eq!(&h[19..], b"n2");
    }

    #[test]
    fn v2_round_trips_at_its_bounds() {
        let a = sample_v2();
        assert_eq!(a.validate(), Ok(()));
        assert_eq!(decode_v2(&encode_v2(&a)), Ok(a.clone()));
        assert_eq!(decode_any(&encode_v2(&a)), Ok(Decoded::V2(a)));
        let big = NodeAdvert {
            name: "a".repeat(MAX_NAME_LEN),
            advert_interval_ms: u16::MAX,
            seq: u64::MAX,
            fingerprint: [u32::MAX; 4],
            macs: vec![[0xff; 6]; MAX_MACS],
            groups: (1..=MAX_GROUPS as u16)
                .map(|id| GroupEntry {
                    id: id * 1000,
                    state: State::ALL[usize::from(id % 4)],
                    priority: (id % 2) as u8 * 254,
                    handover_to: (id == 64).then(|| "b".repeat(MAX_NAME_LEN)),
                    ..entry(id)
                })
                .collect(),
            heard: Some(u64::MAX),
        };
        assert_eq!(big.validate(), Ok(()));
        let bytes = encode_v2(&big);
        assert_eq!(
            bytes.len(),
            33 + 64 + 48 + 64 * 18 + 65 + HEARD_EXTENSION_LEN
        );
        assert_eq!(decode_v2(&bytes), Ok(big));
    }

    #[test]
    fn v2_heard_is_per_peer_and_skipped_types_stay_skipped() {
        let base = encode_v2(&sample_v2());
        let for_peer = with_heard(&base, 0x0102_0304_0506_0708);
        assert_eq!(for_peer.len(), base.len() + HEARD_EXTENSION_LEN);
        let got = decode_v2(&for_peer).expect("decodes");
        assert_eq!(got.heard, Some(0x0102_0304_0506_0708));
        assert_eq!(
            NodeAdvert {
                heard: None,
                ..got.clone()
            },
            sample_v2()
        );
        // An encoder that sets it writes the same bytes.
        assert_eq!(encode_v2(&got), for_peer);
        // An unknown type beside it is still skipped; the datagram without one has none.
        let mut more = for_peer.clone();
        more.extend_from_slice(&[9, 0, 2, 0xaa, 0xbb]);
        assert_eq!(
            decode_v2(&more).map(|n| n.heard),
            Ok(Some(0x0102_0304_0506_0708))
        );
        assert_eq!(decode_v2(&base).map(|n| n.heard), Ok(None));
    }

    #[test]
    fn v2_rejects_each_bad_field() {
        use WireError as E;
        let g = V2_GROUPS_AT;
        let h = g + 18;
        let cases: Vec<(&str, Result<NodeAdvert, WireError>, WireError)> = vec![
            ("magic", tweaked_v2(|b| b[0] = b'X'), E::BadMagic(*b"XA")),
            (
                "v1 byte",
                tweaked_v2(|b| b[2] = 1),
                E::WrongVersion {
                    expected: 2,
                    got: 1,
                },
            ),
            (
                "version 3",
                tweaked_v2(|b| b[2] = 3),
                E::UnsupportedVersion(3),
            ),
            ("type", tweaked_v2(|b| b[3] = 2), E::UnknownType(2)),
            ("interval", tweaked_v2(|b| b[5] = 9), E::IntervalTooSmall(9)),
            ("name len 0", tweaked_v2(|b| b[30] = 0), E::BadNameLength(0)),
            (
                "name len 65",
                tweaked_v2(|b| b[30] = 65),
                E::BadNameLength(65),
            ),
            (
                "name",
                tweaked_v2(|b| b[31] = b'-'),
                E::BadName("-1".into()),
            ),
            ("no MAC", tweaked_v2(|b| b[33] = 0), E::BadMacCount(0)),
            ("9 MACs", tweaked_v2(|b| b[33] = 9), E::BadMacCount(9)),
            ("no group", tweaked_v2(|b| b[46] = 0), E::BadGroupCount(0)),
            (
                "65 groups",
                tweaked_v2(|b| b[46] = 65),
                E::BadGroupCount(65),
            ),
            (
                "short entry",
                tweaked_v2(|b| b[g] = 16),
                E::BadEntryLength {
                    len: 16,
                    needed: 17,
                },
            ),
            ("id 0", tweaked_v2(|b| b[g + 2] = 0), E::ZeroGroupId),
            (
                "twice",
                tweaked_v2(|b| b[h + 2] = 51),
                E::DuplicateGroupId(51),
            ),
            ("state", tweaked_v2(|b| b[g + 3] = 4), E::BadState(4)),
            (
                "priority",
                tweaked_v2(|b| b[g + 4] = 255),
                E::BadPriority(255),
            ),
            (
                "flags",
                tweaked_v2(|b| b[g + 17] = 2),
                E::ReservedFlags { id: 51, flags: 2 },
            ),
            (
                "flag without room for a target",
                tweaked_v2(|b| b[g + 17] = 1),
                E::BadEntryLength {
                    len: 17,
                    needed: 18,
                },
            ),
            (
                "target len 0",
                tweaked_v2(|b| b[h + 18] = 0),
                E::BadNameLength(0),
            ),
            (
                "target len 65",
                tweaked_v2(|b| b[h + 18] = 65),
                E::BadNameLength(65),
            ),
            (
                "target past its entry",
                tweaked_v2(|b| b[h + 18] = 3),
                E::BadEntryLength {
                    len: 20,
                    needed: 21,
                },
            ),
            (
                "target",
                tweaked_v2(|b| b[h + 20] = b' '),
                E::BadName("n ".into()),
            ),
            (
                "entry past the end",
                tweaked_v2(|b| b[h] = 30),
                E::Truncated {
                    what: "group entry",
                    need: h + 31,
                    got: h + 21,
                },
            ),
            (
                "extension type 0",
                tweaked_v2(|b| b.extend_from_slice(&[0, 0, 0])),
                E::ReservedExtension,
            ),
            (
                "a heard extension of 7 bytes",
                tweaked_v2(|b| b.extend_from_slice(&[1, 0, 7, 0, 0, 0, 0, 0, 0, 0])),
                E::BadHeardLength(7),
            ),
            (
                "two heard extensions",
                tweaked_v2(|b| {
                    let twice = with_heard(&with_heard(b, 1), 2);
                    *b = twice;
                }),
                E::DuplicateHeard,
            ),
            (
                "half an extension header",
                tweaked_v2(|b| b.extend_from_slice(&[7, 0])),
                E::Truncated {
                    what: "extension length",
                    need: h + 24,
                    got: h + 23,
                },
            ),
            (
                "extension value past the end",
                tweaked_v2(|b| b.extend_from_slice(&[7, 0, 5, 1])),
                E::Truncated {
                    what: "extension value",
                    need: h + 29,
                    got: h + 25,
                },
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, Err(want), "{what}");
        }
        assert_eq!(
            decode_v2(b"HA"),
            Err(E::Truncated {
                what: "prefix",
                need: 3,
                got: 2
            })
        );
        assert_eq!(
            decode_v2(b"HA\x02"),
            Err(E::Truncated {
                what: "message type",
                need: 4,
                got: 3
            })
        );
    }

    #[test]
    fn v2_skips_entry_tails_and_unknown_extensions() {
        let a = sample_v2();
        let mut b = encode_v2(&a);
        // A later version appends 3 bytes to the first entry and adds two extensions.
        b[V2_GROUPS_AT] += 3;
        let tail_at = V2_GROUPS_AT + 18;
        b.splice(tail_at..tail_at, [0xaa, 0xbb, 0xcc]);
        b.extend_from_slice(&[2, 0, 0]);
        b.extend_from_slice(&[255, 0, 2, 0, 0]);
        assert_eq!(decode_v2(&b), Ok(a.clone()));
        // The same for the handover entry: the tail follows the target.
        let mut b = encode_v2(&a);
        let h = V2_GROUPS_AT + 18;
        b[h] += 1;
        b.push(0x55);
        assert_eq!(decode_v2(&b), Ok(a));
    }

    #[test]
    fn v2_truncations_are_errors() {
        let good = encode_v2(&sample_v2());
        for n in 0..good.len() {
            assert!(decode_v2(&good[..n]).is_err(), "truncated to {n} accepted");
            assert!(decode_any(&good[..n]).is_err(), "truncated to {n} accepted");
        }
    }

    #[test]
    fn v2_validate_and_encode_agree_on_bad_adverts() {
        let with = |f: fn(&mut NodeAdvert)| {
            let mut a = sample_v2();
            f(&mut a);
            a
        };
        let bad = [
            with(|a| a.advert_interval_ms = 9),
            with(|a| a.name = String::new()),
            with(|a| a.name = "x".repeat(300)),
            with(|a| a.name = "a b".into()),
            with(|a| a.macs.clear()),
            with(|a| a.macs = vec![[0; 6]; 9]),
            with(|a| a.macs = vec![[0; 6]; 300]),
            with(|a| a.groups.clear()),
            with(|a| a.groups = (1..=65).map(entry).collect()),
            with(|a| a.groups = (1..=300).map(entry).collect()),
            with(|a| a.groups[0].id = 0),
            with(|a| a.groups[1].id = 51),
            with(|a| a.groups[0].priority = 255),
            with(|a| a.groups[1].handover_to = Some(String::new())),
            with(|a| a.groups[1].handover_to = Some("x".repeat(65))),
            with(|a| a.groups[1].handover_to = Some("x".repeat(300))),
            with(|a| a.groups[1].handover_to = Some("-x".into())),
        ];
        for a in bad {
            assert!(a.validate().is_err(), "{a:?}");
            assert!(decode_v2(&encode_v2(&a)).is_err(), "{a:?}");
        }
    }

    #[test]
    fn decode_any_dispatches_on_the_version_byte() {
        let v1 = sample();
        assert_eq!(decode_any(&encode(&v1)), Ok(Decoded::V1(v1.clone())));
        let mut v3 = encode(&v1);
        v3[2] = 3;
        assert_eq!(decode_any(&v3), Err(WireError::UnsupportedVersion(3)));
        assert_eq!(decode_any(b"XX\x01\x01"), Err(WireError::BadMagic(*b"XX")));
        assert_eq!(
            decode(&encode_v2(&NodeAdvert {
                name: "n".repeat(20),
                ..sample_v2()
            })),
            Err(WireError::WrongVersion {
                expected: 1,
                got: 2
            })
        );
    }

    /// The bytes an earlier release sent for `sample()`, kept as a literal: v1 must not
    /// change, since a v1-only peer reads it.
    #[test]
    fn v1_is_byte_for_byte_what_it_was() {
        let golden: &[u8] = b"HA\x01\x01\x02\xc8\x00\x00\x00\x32\
            \x01\x02\x03\x04\x05\x06\x07\x08\xff\xff\xff\xff\xff\xff\xff\xff\
            \x02\xaa\xbb\xcc\xdd\xee\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\
            \xff\xff\xff\xff\x0bnode-1.dc_a";
        assert_eq!(encode(&sample()), golden);
        assert_eq!(decode(golden), Ok(sample()));
        assert_eq!(decode_any(golden), Ok(Decoded::V1(sample())));
        // extra_macs never travels in v1.
        let with_macs = Advert {
            extra_macs: vec![[9; 6]],
            heard_us_at: None,
            ..sample()
        };
        assert_eq!(encode(&with_macs), golden);
    }

    #[test]
    fn node_advert_takes_the_header_from_its_arguments_and_the_rest_per_group() {
        let a1 = Advert {
            handover_to: Some("n3".into()),
            ..sample()
        };
        let a2 = Advert {
            name: "ignored".into(),
            state: State::Fault,
            priority: 5,
            epoch: 3,
            seq: 1234,
            ..sample()
        };
        let macs = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
        let n = node_advert(
            "n1",
            40,
            77,
            [5, 6, 7, 8],
            &macs,
            &[(51, 0xa, &a1), (9, 0xb, &a2)],
        );
        assert_eq!(n.validate(), Ok(()));
        assert_eq!(
            (n.name.as_str(), n.advert_interval_ms, n.seq),
            ("n1", 40, 77)
        );
        assert_eq!(n.fingerprint, [5, 6, 7, 8]);
        assert_eq!(n.macs, macs.to_vec());
        assert_eq!(n.groups.iter().map(|g| g.id).collect::<Vec<_>>(), [51, 9]);
        assert_eq!(n.groups[0].vips_fingerprint, 0xa);
        assert_eq!(n.groups[0].handover_to.as_deref(), Some("n3"));
        assert_eq!(
            (n.groups[1].state, n.groups[1].priority, n.groups[1].epoch),
            (State::Fault, 5, 3)
        );
        // Back to the election's view: header fields from the node, MACs split.
        let back = n.advert(&n.groups[1]);
        assert_eq!(back.name, "n1");
        assert_eq!((back.advert_interval_ms, back.seq), (40, 77));
        assert_eq!(back.fingerprint, [5, 6, 7, 8]);
        assert_eq!(
            (back.state, back.priority, back.epoch),
            (State::Fault, 5, 3)
        );
        assert_eq!(back.mac, macs[0]);
        assert_eq!(back.extra_macs, vec![macs[1]]);
        assert_eq!(back.handover_to, None);
        // What a v1 peer gets: the first group's advert in v1, without the other MACs.
        let v1 = decode(&encode(&n.advert(&n.groups[0]))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v1.handover_to.as_deref(), Some("n3"));
        assert!(v1.extra_macs.is_empty());
    }

    #[test]
    fn v2_random_and_mutated_bytes_never_panic_and_accepted_ones_are_canonical_or_longer() {
        let good = encode_v2(&sample_v2());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x4842);
        let mut accepted = 0;
        for i in 0..20_000 {
            let mut buf: Vec<u8> = (0..rng.random_range(0..120))
                .map(|_| rng.random())
                .collect();
            if i % 2 == 0 {
                buf = good.clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..buf.len());
                    buf[at] = rng.random();
                }
            }
            if let Ok(a) = decode_v2(&buf) {
                accepted += 1;
                assert_eq!(a.validate(), Ok(()));
                let again = encode_v2(&a);
                assert!(again.len() <= buf.len());
                if again.len() == buf.len() {
                    assert_eq!(
                        again, buf,
                        "accepted canonical bytes must re-encode identically"
                    );
                }
                assert_eq!(decode_v2(&again), Ok(a));
            }
        }
        assert!(accepted > 0);
    }
}
