//! Prometheus metrics for the failover agent.
//!
//! Operators want to see, from their monitoring system, which node holds the VIP, why it moved,
//! how healthy the peers and checks are, and when certificates run out. This module keeps those
//! numbers in a [`prometheus_client`] registry and serves them as OpenMetrics text on
//! `GET /metrics` (off by default; `metrics.listen = "127.0.0.1:9798"` turns it on).
//!
//! # Design
//! - The daemon loop calls the cheap setters on [`Metrics`] (atomics; label families take a
//!   read lock in the common case). Nothing here blocks or does I/O.
//! - Names follow Prometheus conventions: `haagent_` prefix, base units (`_seconds`), `_total`
//!   for counters. The node name is not repeated on every series: it is in `haagent_info`.
//! - Label values for states, transition and notice causes and rejection reasons come only
//!   from the `label()` of their enums ([`State`](crate::wire::State),
//!   [`Cause`](crate::election::Cause), [`NoticeCause`](crate::election::NoticeCause),
//!   [`RejectReason`]): the label sets are the enums, so a metric cannot disagree with the
//!   code that decides, and nothing from the network becomes a label value. Peer, check,
//!   certificate and VIP group names are bounded by the configuration (groups also by
//!   [`MAX_GROUPS`]).
//! - Per VIP group: [`Metrics::with_groups`] creates every group's series at start-up, and
//!   its setters take the group's index in the configuration (atomics, no lookup by name).
//! - [`serve`] is a deliberately tiny HTTP/1.1 server (no hyper): one request per connection,
//!   request head capped at 8 KiB and 2 s, `Connection: close`.
//!
//! # Files
//! `registry.rs` ([`Metrics`]: the families and their setters), `labels.rs` (the label sets,
//! [`RejectReason`]), `server.rs` ([`serve`], the HTTP endpoint).

mod labels;
mod registry;
mod server;

pub use labels::RejectReason;
pub use registry::{Metrics, MAX_GROUPS};
pub use server::{serve, MetricsError, MetricsServer};
