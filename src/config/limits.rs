//! Allowed values and defaults of the main settings, shared with the documentation
//! (docs/configuration.md). The `[[check]]` limits live beside their checks (checks.rs).
//! The priority range and the smallest advert interval are the wire format's ([`crate::wire`]).

use crate::wire::{MAX_PRIORITY, MIN_ADVERT_INTERVAL_MS, MIN_PRIORITY};

/// `node.priority`
pub(crate) const PRIORITY: (i64, i64, i64) = (MIN_PRIORITY as i64, MAX_PRIORITY as i64, 100);
/// `election.advert_interval_ms`: from the wire's minimum to 10 s, a configuration bound
/// narrower than what the wire carries ([`crate::wire::MAX_ADVERT_INTERVAL_MS`]).
pub(crate) const ADVERT_INTERVAL_MS: (i64, i64, i64) = (MIN_ADVERT_INTERVAL_MS as i64, 10_000, 50);
/// `election.down_multiplier`
pub(crate) const DOWN_MULTIPLIER: (i64, i64, i64) = (2, 20, 3);
/// `election.preempt_delay_ms`
pub(crate) const PREEMPT_DELAY_MS: (i64, i64, i64) = (0, 3_600_000, 0);
/// `garp.count`
pub(crate) const GARP_COUNT: (i64, i64, i64) = (1, 20, 3);
/// `garp.spread_ms`
pub(crate) const GARP_SPREAD_MS: (i64, i64, i64) = (0, 60_000, 500);
/// `garp.refresh_ms` (0 = off, otherwise at least the minimum)
pub(crate) const GARP_REFRESH_MS: (i64, i64, i64) = (1_000, 86_400_000, 30_000);
/// `notify.timeout_ms`
pub(crate) const NOTIFY_TIMEOUT_MS: (i64, i64, i64) = (1, 600_000, 5_000);
/// `mover.timeout_ms`
pub(crate) const MOVER_TIMEOUT_MS: (i64, i64, i64) = (100, 600_000, 10_000);
/// `mover.retries`
pub(crate) const MOVER_RETRIES: (i64, i64, i64) = (0, 10, 2);
/// `mover.retry_delay_ms`
pub(crate) const MOVER_RETRY_DELAY_MS: (i64, i64, i64) = (0, 60_000, 1_000);
/// `vip.ignore_arp_from`: at most this many MACs.
pub(crate) const IGNORE_ARP_FROM_MAX: usize = 16;
/// `vip.lease_ms` (0 = off, otherwise within the range and a whole number of seconds)
pub(crate) const LEASE_MS: (i64, i64, i64) = (1_000, 3_600_000, 2_000);
/// `vip.probe_count` (0 = off)
pub(crate) const PROBE_COUNT: (i64, i64, i64) = (0, 20, 3);
/// `vip.probe_window_ms`
pub(crate) const PROBE_WINDOW_MS: (i64, i64, i64) = (5, 2_000, 30);
/// `vip.foreign_holder_timeout_ms` (0 = wait for ever)
pub(crate) const FOREIGN_HOLDER_TIMEOUT_MS: (i64, i64, i64) = (0, 86_400_000, 0);
/// `witness.interval_ms`
pub(crate) const WITNESS_INTERVAL_MS: (i64, i64, i64) = (10, 60_000, 200);
/// `witness.timeout_ms`: at least this; at most `interval_ms`, which is also the default.
pub(crate) const WITNESS_TIMEOUT_MIN_MS: i64 = 1;
/// `witness.fall`
pub(crate) const WITNESS_FALL: (i64, i64, i64) = (1, 100, 3);
/// `witness.rise`
pub(crate) const WITNESS_RISE: (i64, i64, i64) = (1, 100, 2);
/// `election.quorum` defaults to "majority" from this many nodes (peers + this one) on.
pub(crate) const QUORUM_DEFAULT_NODES: usize = 3;

/// `election.quorum` value meaning "a majority is required".
pub(crate) const QUORUM_MAJORITY: &str = "majority";
/// `election.quorum` value meaning "no quorum".
pub(crate) const QUORUM_OFF: &str = "off";

/// `group.id`: the wire's group id is 16 bits and 0 means "no group".
pub(crate) const GROUP_ID: (i64, i64) = (1, 65_535);
/// At most this many `[[group]]` tables (one election each). Every datagram carries one
/// 18-byte entry per group: with the longest node name (64 bytes) and 8 MACs, 48 groups make
/// 1009 bytes (docs/wire-format.md), inside what a QUIC datagram carries on the smallest
/// path QUIC allows (1200-byte packets, less its own headers). 64 (the wire's bound) would
/// make 1297: too big, and such adverts would never leave.
pub(crate) const MAX_GROUPS: usize = 48;
/// At most this many distinct VIP interfaces per node: the v2 advert carries one MAC per
/// interface, at most 8 ([`crate::wire`]).
pub(crate) const MAX_INTERFACES: usize = 8;
/// Longest group name, in bytes.
pub(crate) const GROUP_NAME_MAX: usize = 32;
/// Longest VIP label: `IFNAMSIZ` (16) minus the NUL, as the kernel stores `IFA_LABEL`.
pub(crate) const LABEL_MAX: usize = 15;
/// `group.route.table`: 0 is `RT_TABLE_UNSPEC`; the rest of the 32-bit range is valid.
pub(crate) const ROUTE_TABLE: (i64, i64) = (1, u32::MAX as i64);
/// `group.route.metric`: any 32-bit value (`RTA_PRIORITY`).
pub(crate) const ROUTE_METRIC: (i64, i64) = (0, u32::MAX as i64);
