//! The polling task of one routed group and the snapshot it keeps for `status`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::task::JoinHandle;

use super::birdc::{self, Birdc, Checked};
use super::POLL_INTERVAL;
use crate::config::{GroupConfig, GroupMode};
use crate::control::{ExportProtocolStatus, ExportStatus, ExportedVip};
use crate::metrics::Metrics;

/// What one group's watch asks about: which BIRD, for which VIPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The group's name (logs).
    pub group: String,
    /// The group's index in the configuration (its metric series).
    pub index: usize,
    /// BIRD's control socket (`[[group]] bird_socket`).
    pub socket: PathBuf,
    /// The group's VIPs (host addresses of either family: a routed group has no others).
    pub vips: Vec<IpAddr>,
}

impl WatchSpec {
    /// The watch `group` (index `index`) asks for: `None` unless it is routed and has a
    /// `bird_socket`.
    pub fn of(group: &GroupConfig, index: usize) -> Option<Self> {
        if group.mode != GroupMode::Routed {
            return None;
        }
        Some(Self {
            group: group.name.clone(),
            index,
            socket: group.bird_socket.clone()?,
            vips: group.vips.iter().map(|v| v.cidr.addr).collect(),
        })
    }
}

/// One BGP protocol of the node's BIRD at the last successful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolExport {
    /// The protocol's name in BIRD (`uplink`).
    pub name: String,
    /// BIRD's protocol state (`up`, `start`, `stop`, `down`, `flush`).
    pub state: String,
    /// BIRD's Info column: the BGP state and the last error (`Active Socket: Connection
    /// refused`).
    pub info: String,
    /// Up and Established.
    pub established: bool,
    /// The group's VIPs of the families the protocol carries, in the group's order (all
    /// of them while its session is not Established).
    pub carried: Vec<IpAddr>,
    /// Those of `carried` BIRD exports to it, in the group's order (empty unless up).
    pub exported: Vec<IpAddr>,
}

/// What a group's watch knows now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// When the last check succeeded (wall clock, for `checked_at`).
    pub checked_at: Option<SystemTime>,
    /// The same on the monotonic clock (for its age).
    pub checked: Option<Instant>,
    /// Why the last check failed; `None` after a success and before the first check.
    pub error: Option<String>,
    /// The BGP protocols found by the last check, in BIRD's order; empty after a failed
    /// check (nothing is known then).
    pub protocols: Vec<ProtocolExport>,
    /// BGP protocols not looked at: beyond [`super::MAX_PROTOCOLS`], or with a name that
    /// cannot be quoted.
    pub left_out: usize,
}

/// A running watch of one routed group's BIRD (see the module docs of [`crate::bird`]).
/// Dropping it stops the task and removes the group's export metrics.
#[derive(Debug)]
pub struct ExportWatch {
    spec: WatchSpec,
    shared: Arc<Mutex<Snapshot>>,
    task: JoinHandle<()>,
    metrics: Option<Arc<Metrics>>,
}

impl ExportWatch {
    /// Starts polling `spec.socket` with `birdc` every [`POLL_INTERVAL`] (the first check
    /// at once), updating `metrics` when given. Needs a tokio runtime; never blocks.
    pub fn start(spec: WatchSpec, metrics: Option<Arc<Metrics>>) -> Self {
        let birdc = birdc::for_socket(&spec.socket);
        Self::start_with(spec, birdc, metrics)
    }

    /// [`ExportWatch::start`] with another `birdc` (a test's script).
    pub(crate) fn start_with(spec: WatchSpec, birdc: Birdc, metrics: Option<Arc<Metrics>>) -> Self {
        let shared = Arc::new(Mutex::new(Snapshot::default()));
        let task = tokio::spawn(poll(
            birdc,
            spec.clone(),
            Arc::clone(&shared),
            metrics.clone(),
        ));
        Self {
            spec,
            shared,
            task,
            metrics,
        }
    }

    /// What it watches.
    pub fn spec(&self) -> &WatchSpec {
        &self.spec
    }

    /// What it knows now.
    pub fn snapshot(&self) -> Snapshot {
        match self.shared.lock() {
            Ok(s) => s.clone(),
            Err(_) => Snapshot {
                error: Some("the BIRD export snapshot is unusable (a poisoned lock)".into()),
                ..Snapshot::default()
            },
        }
    }

    /// The status view (`groups[].export`), ages counted to `now`.
    pub fn status(&self, now: Instant) -> ExportStatus {
        export_status(&self.spec, &self.snapshot(), now)
    }
}

impl Drop for ExportWatch {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(m) = &self.metrics {
            m.clear_route_export(self.spec.index);
        }
    }
}

/// `snapshot` of `spec`'s BIRD as `status` shows it.
pub(crate) fn export_status(spec: &WatchSpec, snapshot: &Snapshot, now: Instant) -> ExportStatus {
    ExportStatus {
        socket: spec.socket.display().to_string(),
        checked_at: snapshot.checked_at.map(crate::certs::rfc3339),
        checked_age_ms: snapshot.checked.map(|t| {
            u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX)
        }),
        error: snapshot.error.clone(),
        protocols: snapshot
            .protocols
            .iter()
            .map(|p| ExportProtocolStatus {
                name: p.name.clone(),
                state: p.state.clone(),
                info: p.info.clone(),
                established: p.established,
                exported: all_exported(p),
                vips: p
                    .carried
                    .iter()
                    .map(|v| ExportedVip {
                        address: format!("{v}/{}", if v.is_ipv4() { 32 } else { 128 }),
                        exported: p.exported.contains(v),
                    })
                    .collect(),
            })
            .collect(),
        protocols_left_out: snapshot.left_out,
    }
}

/// Whether every VIP of the group that `p` carries is exported to it (none carried: no).
fn all_exported(p: &ProtocolExport) -> bool {
    !p.carried.is_empty() && p.carried.iter().all(|v| p.exported.contains(v))
}

/// A protocol's export state, in words and for change detection: `uplink: Established,
/// 1/1 exported`.
fn summary(p: &ProtocolExport) -> String {
    let n = p.carried.iter().filter(|v| p.exported.contains(v)).count();
    // Not BIRD's info text, which carries the session's last error and changes while a
    // session cycles: the log line is for what changed in the announcement.
    let session = if p.established {
        "Established"
    } else {
        "not established"
    };
    format!("{}: {session}, {n}/{} exported", p.name, p.carried.len())
}

/// The task: check, publish, log what changed, sleep; until aborted.
async fn poll(
    birdc: Birdc,
    spec: WatchSpec,
    shared: Arc<Mutex<Snapshot>>,
    metrics: Option<Arc<Metrics>>,
) {
    let group = spec.group.as_str();
    let socket = spec.socket.display().to_string();
    let mut last_error: Option<String> = None;
    let mut last_summary = String::new();
    // The protocols that have a `haagent_route_exported` series.
    let mut series: Vec<String> = Vec::new();
    loop {
        let result = birdc.check(&spec.vips).await;
        let (now, wall) = (Instant::now(), SystemTime::now());
        match result {
            Ok(Checked {
                protocols,
                left_out,
            }) => {
                let protocols: Vec<ProtocolExport> = protocols
                    .into_iter()
                    .map(|f| ProtocolExport {
                        established: f.protocol.established(),
                        exported: spec
                            .vips
                            .iter()
                            .copied()
                            .filter(|v| f.exported.contains(v))
                            .collect(),
                        carried: spec
                            .vips
                            .iter()
                            .copied()
                            .filter(|v| f.carried.contains(v))
                            .collect(),
                        name: f.protocol.name,
                        state: f.protocol.state,
                        info: f.protocol.info,
                    })
                    .collect();
                let words = protocols.iter().map(summary).collect::<Vec<_>>().join("; ");
                let words = if words.is_empty() {
                    "no BGP protocol".to_string()
                } else {
                    words
                };
                if let Some(e) = last_error.take() {
                    tracing::info!(%group, %socket, was = %e, "BIRD answers again: {words}");
                } else if words != last_summary {
                    tracing::info!(%group, %socket, "BIRD export: {words}");
                }
                last_summary = words;
                if let Some(m) = &metrics {
                    let values: Vec<(&str, bool)> = protocols
                        .iter()
                        .map(|p| (p.name.as_str(), all_exported(p)))
                        .collect();
                    m.set_route_exported(spec.index, &values);
                    m.set_route_export_ok(spec.index, true);
                    series = protocols.iter().map(|p| p.name.clone()).collect();
                }
                if let Ok(mut s) = shared.lock() {
                    *s = Snapshot {
                        checked_at: Some(wall),
                        checked: Some(now),
                        error: None,
                        protocols,
                        left_out,
                    };
                }
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(%group, %socket, error = %text,
                        "cannot read what BIRD exports (status shows it; logged again when the error changes)");
                    last_error = Some(text.clone());
                }
                last_summary.clear();
                if let Some(m) = &metrics {
                    // Nothing is known: every protocol's series reads 0 (not exported as
                    // far as we can tell), and the check's own gauge says why.
                    let values: Vec<(&str, bool)> =
                        series.iter().map(|n| (n.as_str(), false)).collect();
                    m.set_route_exported(spec.index, &values);
                    m.set_route_export_ok(spec.index, false);
                }
                if let Ok(mut s) = shared.lock() {
                    s.error = Some(text);
                    s.protocols.clear();
                    s.left_out = 0;
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    fn spec(dir: &Path) -> WatchSpec {
        WatchSpec {
            group: "edge".into(),
            index: 0,
            socket: dir.join("bird.ctl"),
            vips: vec![IpAddr::from([203, 0, 113, 200])],
        }
    }

    /// A fake birdc whose answers come from files the test rewrites: `protocols` and
    /// `export` (cat'ed to stdout), `fail` (if present: its text to stderr, exit 1); every
    /// protocol has one IPv4 channel (a captured `show protocols all`).
    fn fake(dir: &Path) -> Birdc {
        let path = dir.join("birdc");
        let d = dir.display();
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nif [ -e {d}/fail ]; then cat {d}/fail >&2; exit 1; fi\n\
                 case \"$*\" in\n*'show protocols') cat {d}/protocols;;\n\
                 *'show protocols all'*) cat {channels};;\n*) cat {d}/export;;\nesac\n",
                channels = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src/bird/testdata/protocols-all-ipv4.txt")
                    .display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Birdc {
            program: path,
            socket: dir.join("bird.ctl"),
            timeout: Duration::from_secs(2),
            limit: 4096,
        }
    }

    /// Writes `dir/to` atomically (the fake birdc never reads half a file).
    fn put(dir: &Path, to: &str, text: &str) {
        let tmp = dir.join(format!("{to}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, dir.join(to)).unwrap();
    }

    fn copy(dir: &Path, data: &str, to: &str) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/bird/testdata")
            .join(data);
        put(dir, to, &std::fs::read_to_string(from).unwrap());
    }

    async fn wait_for(
        watch: &ExportWatch,
        what: &str,
        pred: impl Fn(&Snapshot) -> bool,
    ) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = watch.snapshot();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what}: {s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The export series, sorted (a family keeps no order).
    fn metric_lines(m: &Metrics) -> Vec<String> {
        let mut lines: Vec<String> = m
            .encode()
            .lines()
            .filter(|l| l.starts_with("haagent_route_export"))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    /// Exported, then BIRD gone (the error, metrics at 0), then back: what status and the
    /// metrics show at each step.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_snapshot_and_metrics_follow_bird_and_its_failures() {
        let dir = tempfile::tempdir().unwrap();
        copy(dir.path(), "protocols-two-bgp.txt", "protocols");
        copy(dir.path(), "export-two.txt", "export");
        let metrics = Metrics::with_groups("n1", &["edge".to_string()]);
        let watch = ExportWatch::start_with(
            spec(dir.path()),
            fake(dir.path()),
            Some(Arc::clone(&metrics)),
        );
        let s = wait_for(&watch, "first check", |s| s.checked.is_some()).await;
        assert_eq!(s.error, None);
        let view = export_status(watch.spec(), &s, Instant::now());
        let got: Vec<(&str, bool, bool)> = view
            .protocols
            .iter()
            .map(|p| (p.name.as_str(), p.established, p.exported))
            .collect();
        assert_eq!(
            got,
            [("uplink", true, true), ("backup_router", false, false)]
        );
        assert_eq!(view.protocols[0].vips[0].address, "203.0.113.200/32");
        assert!(view.protocols[0].vips[0].exported);
        assert!(view.checked_at.is_some());
        assert_eq!(
            metric_lines(&metrics),
            [
                "haagent_route_export_ok{group=\"edge\"} 1",
                "haagent_route_exported{group=\"edge\",protocol=\"backup_router\"} 0",
                "haagent_route_exported{group=\"edge\",protocol=\"uplink\"} 1",
            ]
        );

        put(
            dir.path(),
            "fail",
            "Unable to connect to server control socket (/run/bird/bird.ctl): Connection refused\n",
        );
        let s = wait_for(&watch, "the error", |s| s.error.is_some()).await;
        let error = s.error.clone().unwrap();
        assert!(error.contains("Connection refused"), "{error}");
        assert!(s.protocols.is_empty());
        assert!(s.checked_at.is_some(), "the last success is kept");
        let lines = metric_lines(&metrics);
        assert!(
            lines.contains(
                &"haagent_route_exported{group=\"edge\",protocol=\"uplink\"} 0".to_string()
            ) && lines.contains(&"haagent_route_export_ok{group=\"edge\"} 0".to_string()),
            "{lines:?}"
        );

        std::fs::remove_file(dir.path().join("fail")).unwrap();
        copy(dir.path(), "protocols-established.txt", "protocols");
        let s = wait_for(&watch, "back", |s| {
            s.error.is_none() && s.protocols.len() == 1
        })
        .await;
        assert_eq!(s.protocols[0].exported, [IpAddr::from([203, 0, 113, 200])]);
        // backup_router is gone from BIRD: its series too.
        assert_eq!(
            metric_lines(&metrics),
            [
                "haagent_route_export_ok{group=\"edge\"} 1",
                "haagent_route_exported{group=\"edge\",protocol=\"uplink\"} 1",
            ]
        );
        drop(watch);
        assert_eq!(metric_lines(&metrics), Vec::<String>::new());
    }

    #[test]
    fn only_a_routed_group_with_a_socket_is_watched() {
        let mut g = crate::config::GroupConfig {
            name: "edge".into(),
            id: 7,
            mode: GroupMode::Routed,
            bird_socket: Some("/run/bird/bird.ctl".into()),
            vips: vec![crate::net::VipSpec {
                cidr: "203.0.113.200/32".parse().unwrap(),
                interface: "lo".into(),
                label: None,
                scope: crate::net::VipScope::Global,
            }],
            priority: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            track: Vec::new(),
            notify: crate::config::NotifySettings {
                command: None,
                master: None,
                backup: None,
                fault: None,
                stop: None,
                claim_blocked: None,
                conflict_won: None,
                timeout: Duration::from_secs(1),
            },
            routes: Vec::new(),
            mover: None,
        };
        let spec = WatchSpec::of(&g, 2).unwrap();
        assert_eq!(spec.index, 2);
        assert_eq!(spec.vips, [IpAddr::from([203, 0, 113, 200])]);
        g.bird_socket = None;
        assert_eq!(WatchSpec::of(&g, 2), None);
        g.bird_socket = Some("/run/bird/bird.ctl".into());
        g.mode = GroupMode::L2;
        assert_eq!(WatchSpec::of(&g, 2), None);
    }
}
