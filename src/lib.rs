//! haagent: a unicast-only, split-brain-resistant failover agent for a virtual IP.
//!
//! # Layout
//!
//! - [`election`]: the pure VRRP-style state machine. No I/O, no clock reads: it takes
//!   `(now, input)` and returns actions (each decision with a typed [`election::Cause`])
//!   and its next deadline. Simulated in its tests, replayed as golden traces in
//!   `tests/golden/`.
//! - [`wire`]: the advert datagram, a small versioned binary format with strict decoding.
//! - [`transport`]: one QUIC endpoint (quinn) with mutual TLS 1.3; dials every peer, accepts
//!   only certificates from the cluster CA that name a configured peer, carries adverts as
//!   QUIC datagrams.
//! - [`vip`]: installs and removes the VIPs with rtnetlink and announces them with
//!   gratuitous ARP (pnet); follows the interface (by name: index, MAC, link) and the VIPs'
//!   addresses through netlink notifications.
//! - [`certs`]: the certificate bootstrap (`haagent certs`) and the start-up checks of the
//!   node's own certificate and key.
//! - [`config`]: strict TOML plus command-line overrides → one validated [`config::Config`];
//!   every problem reported with its file and line.
//! - [`witness`]: the gateway witness, ICMP or ICMPv6 echoes to the gateway (checksummed, random id
//!   and token) with fall/rise hysteresis.
//! - [`health`]: the health checks (http, tcp, exec, process, interface, file) and their
//!   verdict: a priority adjustment or a fault.
//! - [`import`]: `haagent import keepalived`, a keepalived.conf translated into a haagent
//!   config and a report of what each keyword became.
//! - [`notify`]: operator hooks on transitions, run without a shell, under a timeout.
//! - [`mover`]: the per-group cloud mover run on claim and release (docs/cloud.md).
//! - [`bird`]: what the node's BIRD exports of a routed group's VIPs, asked with `birdc`
//!   every second (status and metrics only; docs/routed.md).
//! - [`control`]: the local control socket (`haagent status|handover|maintenance|reload`)
//!   and the status document.
//! - [`metrics`]: the Prometheus metrics and their tiny HTTP endpoint.
//! - [`net`]: small address types shared by the others (`Ipv4Cidr`, MAC formatting).
//! - [`daemon`]: the one loop that owns sockets, clock and netlink and carries out the
//!   election's actions, split by job: `setup` (config into drivers), `admission` (pure:
//!   which adverts reach the election; loss and drift per peer), `run` (the loop),
//!   `execute` (carrying out actions), `operator` (control requests, status document),
//!   `supervisor` (systemd notify: ready, status, watchdog), `state` (what survives a restart),
//!   `solicit` (one ARP request to a peer whose path is back).
//! - [`doctor`]: `haagent doctor`, the preflight: config, interface, capabilities, port and
//!   nftables, certificate, peers (a probe handshake with its own ALPN), gateway, sysctls,
//!   health check targets; one ✔/✘ line each.
//! - [`cli`]: argument parsing; `src/main.rs` only calls [`cli::main`]. Its hidden
//!   `generate` renders the man pages and completions for the Debian package
//!   (`packaging/`, `docs/packaging.md`).
//! - [`logging`]: text or JSON lines on stderr, with syslog priorities when stderr is the
//!   journal (`JOURNAL_STREAM`).
//!
//! Not in this library: the namespace lab behind `haagent-lab demo` and `bench` and the
//! end-to-end tests is its own crate, `tests/lab` (package `haagent-lab`), a dev-dependency
//! of this one.
//!
//! How the pieces fit, who owns which socket and timer, and where each split-brain rule
//! lives: `docs/architecture.md`.
//!
//! ```text
//!             ┌────────────── daemon loop (one tokio task) ──────────────┐
//!  QUIC  ───> │ transport events ─┐                                      │
//!  timer ───> │ next_deadline ────┼─> Election::handle(now, input) ─> actions
//!  signal ──> │ SIGTERM/SIGINT ───┘                                      │
//!             └──┬──────────────┬──────────────┬─────────────┬───────────┘
//!                v              v              v             v
//!           broadcast      netlink add/del   GARP burst   log + notify hook
//! ```

pub mod bird;
pub mod certs;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod election;
pub mod health;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod mover;
pub mod net;
pub mod notify;
pub mod transport;
pub mod vip;
pub mod wire;
pub mod witness;
