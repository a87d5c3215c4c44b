//! The human form of `haagent status`.

use std::fmt::Write;

use super::Status;

fn opt<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v}{unit}"))
}

/// Renders a status for a terminal: a summary, then peers, checks and transitions.
///
/// With two or more groups, the summary is a table of the groups (GROUP STATE PRIO EPOCH
/// MASTER VIPS ROUTES) and a line for each group's maintenance, faults, blocked claim,
/// handover and failed routes; with one group (or an agent older than groups) it is the
/// single-group summary, followed by that group's routes if it has any.
pub fn render_status(s: &Status) -> String {
    let mut out = if s.groups.len() > 1 {
        render_groups(s)
    } else {
        render_single(s)
    };
    if s.counters.arp_ignored > 0 {
        let _ = writeln!(
            out,
            "ARP frames ignored ([vip] ignore_arp_from): {}",
            s.counters.arp_ignored
        );
    }
    render_node(s, &mut out);
    out
}

/// The summary of a node with one group: its state, priority, master and VIPs.
fn render_single(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} for {:.1} s, epoch {}{}",
        s.node,
        s.cluster,
        s.state,
        s.state_age_ms as f64 / 1000.0,
        s.epoch,
        if s.maintenance { ", MAINTENANCE" } else { "" }
    );
    let _ = write!(
        out,
        "priority {} (base {})",
        s.priority.effective, s.priority.base
    );
    for r in &s.priority.reasons {
        let _ = write!(out, "; {r}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "master: {}",
        s.master.as_deref().unwrap_or("none known")
    );
    for v in &s.vips {
        let _ = writeln!(
            out,
            "vip {}: {}",
            v.address,
            if v.held_here { "held here" } else { "not here" }
        );
    }
    for g in &s.groups {
        if g.mode != "l2" {
            let _ = writeln!(
                out,
                "mode: {} (the VIPs are host routes for the node's routing daemon)",
                g.mode
            );
        }
        for r in &g.routes {
            let _ = writeln!(out, "route {}: {}", r.route, route_words(r));
        }
        for line in g.export.iter().flat_map(export_lines) {
            let _ = writeln!(out, "{line}");
        }
    }
    for f in &s.faults {
        let _ = writeln!(out, "FAULT ({}): {}", f.cause, f.reason);
    }
    if let Some(b) = &s.claim_blocked {
        let _ = writeln!(
            out,
            "NOT CLAIMING THE VIPS: {} ({}) answers for them, for {:.1} s",
            b.mac,
            b.member.as_deref().unwrap_or("not a cluster member"),
            b.for_ms as f64 / 1000.0
        );
        if let Some(p) = &b.policy {
            let _ = writeln!(out, "  policy: {p}");
        }
    }
    for m in s.groups.iter().filter_map(|g| g.mover.as_ref()) {
        let _ = writeln!(out, "mover: {}", mover_words(m));
    }
    out
}

/// A group's cloud mover in words: `claim ok (1 attempt, 812 ms)`, `claim running (attempt
/// 2), the claim waits for it`, `claim FAILED after 3 attempts: why`.
fn mover_words(m: &crate::mover::MoverView) -> String {
    use crate::mover::MoverState;
    let action = m.action.map_or("no run yet", |a| a.label());
    let attempts = |n: u32| format!("{n} attempt{}", if n == 1 { "" } else { "s" });
    let mut out = match m.state {
        MoverState::Idle => "idle (no run yet)".to_string(),
        MoverState::Running => format!("{action} running (attempt {})", m.attempts),
        MoverState::Ok => format!(
            "{action} ok ({}, {} ms)",
            attempts(m.attempts),
            m.last_duration_ms.unwrap_or(0)
        ),
        MoverState::Failed => format!(
            "{action} FAILED after {}: {}",
            attempts(m.attempts),
            m.last_error.as_deref().unwrap_or("unknown error")
        ),
    };
    if m.state == MoverState::Running {
        if let Some(e) = &m.last_error {
            let _ = write!(out, ", last error: {e}");
        }
    }
    if m.claim_waiting {
        out.push_str(", the claim waits for it (wait = true): not master yet");
    }
    if m.queued > 0 {
        let _ = write!(out, ", {} queued", m.queued);
    }
    out
}

/// `installed`, `not installed`, or `NOT INSTALLED: why`.
fn route_words(r: &super::RouteStatus) -> String {
    match (&r.error, r.installed) {
        (_, true) => "installed".into(),
        (Some(e), false) => format!("NOT INSTALLED: {e}"),
        (None, false) => "not installed".into(),
    }
}

/// The summary of a node with several groups: a line for the node, the table of groups,
/// then what needs attention in each group.
fn render_groups(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} groups, up {} s{}",
        s.node,
        s.cluster,
        s.groups.len(),
        s.uptime_s,
        if s.groups.iter().all(|g| g.maintenance) {
            ", MAINTENANCE"
        } else {
            ""
        }
    );
    let mut rows = vec![[
        "GROUP", "STATE", "PRIO", "EPOCH", "MASTER", "VIPS", "ROUTES",
    ]
    .map(String::from)];
    for g in &s.groups {
        let prio = if g.priority == g.base_priority {
            g.priority.to_string()
        } else {
            format!("{} (base {})", g.priority, g.base_priority)
        };
        let vips = g
            .vips
            .iter()
            .map(|v| {
                if v.installed {
                    format!("{}*", v.address)
                } else {
                    v.address.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let routes = if g.routes.is_empty() {
            "-".to_string()
        } else {
            let up = g.routes.iter().filter(|r| r.installed).count();
            let failed = g.routes.iter().filter(|r| r.error.is_some()).count();
            let mut cell = format!("{up}/{}", g.routes.len());
            if failed > 0 {
                let _ = write!(cell, " ({failed} FAILED)");
            }
            cell
        };
        let name = if g.mode == "l2" {
            g.name.clone()
        } else {
            format!("{} ({})", g.name, g.mode)
        };
        rows.push([
            name,
            g.state.to_string(),
            prio,
            g.epoch.to_string(),
            g.master.clone().unwrap_or_else(|| "-".into()),
            vips,
            routes,
        ]);
    }
    write_table(&mut out, &rows);
    let _ = writeln!(out, "(* = VIP on this node's interface)");
    for g in &s.groups {
        let name = &g.name;
        if g.maintenance {
            let _ = writeln!(out, "{name}: MAINTENANCE");
        }
        for r in &g.priority_reasons {
            let _ = writeln!(out, "{name}: priority: {r}");
        }
        for f in &g.faults {
            let _ = writeln!(out, "{name}: FAULT ({}): {}", f.cause, f.reason);
        }
        if let Some(b) = &g.claim_blocked {
            let _ = writeln!(
                out,
                "{name}: NOT CLAIMING THE VIPS: {} ({}) answers for them, for {:.1} s",
                b.mac,
                b.member.as_deref().unwrap_or("not a cluster member"),
                b.for_ms as f64 / 1000.0
            );
            if let Some(p) = &b.policy {
                let _ = writeln!(out, "{name}:   policy: {p}");
            }
        }
        if let Some(t) = &g.handover_target {
            let _ = writeln!(out, "{name}: handing over to {t}");
        }
        if let Some(m) = &g.mover {
            let _ = writeln!(out, "{name}: mover: {}", mover_words(m));
        }
        for r in g
            .routes
            .iter()
            .filter(|r| !r.installed && r.error.is_some())
        {
            let _ = writeln!(out, "{name}: route {}: {}", r.route, route_words(r));
        }
        for line in g.export.iter().flat_map(export_lines) {
            let _ = writeln!(out, "{name}: {line}");
        }
    }
    out
}

/// What the node's BIRD exports of a group's VIPs, one line per BGP protocol:
/// `bird uplink (Established): 203.0.113.200/32 exported, checked 0.4 s ago`; or one line
/// for the socket when the check failed, found no BGP protocol or has not run yet.
fn export_lines(e: &super::ExportStatus) -> Vec<String> {
    let age = |ms: Option<u64>| {
        ms.map_or_else(
            || "never checked successfully".to_string(),
            |ms| format!("checked {:.1} s ago", ms as f64 / 1000.0),
        )
    };
    if let Some(err) = &e.error {
        let last = match e.checked_age_ms {
            Some(ms) => format!("last good check {:.1} s ago", ms as f64 / 1000.0),
            None => "never answered".to_string(),
        };
        return vec![format!("bird {}: ERROR: {err} ({last})", e.socket)];
    }
    if e.checked_age_ms.is_none() {
        return vec![format!("bird {}: not checked yet", e.socket)];
    }
    if e.protocols.is_empty() {
        let mut lines = vec![format!(
            "bird {}: no BGP protocol carries the group's VIPs, {}",
            e.socket,
            age(e.checked_age_ms)
        )];
        if e.protocols_left_out > 0 {
            lines.push(format!(
                "bird {}: {} more BGP protocols not looked at",
                e.socket, e.protocols_left_out
            ));
        }
        return lines;
    }
    let mut lines: Vec<String> = e
        .protocols
        .iter()
        .map(|p| {
            let session = if p.established {
                "Established".to_string()
            } else {
                format!("{} {}", p.state, p.info).trim().to_string()
            };
            let vips = p
                .vips
                .iter()
                .map(|v| {
                    let words = if v.exported {
                        "exported"
                    } else {
                        "not exported"
                    };
                    format!("{} {words}", v.address)
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "bird {} ({session}): {vips}, {}",
                p.name,
                age(e.checked_age_ms)
            )
        })
        .collect();
    if e.protocols_left_out > 0 {
        lines.push(format!(
            "bird {}: {} more BGP protocols not looked at",
            e.socket, e.protocols_left_out
        ));
    }
    lines
}

/// Writes `rows` as columns two spaces apart, each as wide as its widest cell (the last
/// column unpadded).
fn write_table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The per-node parts: quorum, witness, warnings, peers, checks, transitions.
fn render_node(s: &Status, out: &mut String) {
    if s.quorum.enabled {
        let _ = writeln!(
            out,
            "quorum: hear {} of {} nodes, need {}",
            s.quorum.heard, s.quorum.cluster_size, s.quorum.needed
        );
    }
    if let Some(w) = &s.witness {
        let verdict = match w.reachable {
            Some(true) => "answers",
            Some(false) => "DOES NOT ANSWER",
            None => "no verdict yet",
        };
        let _ = writeln!(
            out,
            "gateway {}: {verdict} (rtt {})",
            w.gateway,
            opt(w.rtt_ms, " ms")
        );
    }
    for w in &s.warnings {
        let _ = writeln!(out, "WARNING: {w}");
    }
    for p in &s.pending_restart {
        let _ = writeln!(out, "PENDING RESTART: {p}");
    }
    let _ = writeln!(out, "\npeers:");
    for p in &s.peers {
        let _ = writeln!(
            out,
            "  {:<12} {:<22} {:<8} prio {:<4} epoch {:<4} last advert {:<10} rtt {:<10} loss {:<8} {}{}",
            p.name,
            p.address,
            p.state.map_or("-".to_string(), |s| s.to_string()),
            opt(p.priority, ""),
            opt(p.epoch, ""),
            opt(p.last_advert_age_ms.map(|v| format!("{v:.0}")), " ms"),
            opt(p.rtt_ms.map(|v| format!("{v:.2}")), " ms"),
            opt(p.loss_percent.map(|v| format!("{v:.1}")), " %"),
            if p.alive { "alive" } else { "SILENT" },
            if p.config_drift.is_empty() {
                String::new()
            } else {
                format!(", CONFIG DRIFT: {}", p.config_drift.join(", "))
            }
        );
    }
    if !s.checks.is_empty() {
        let _ = writeln!(out, "\nchecks:");
        for c in &s.checks {
            let _ = writeln!(
                out,
                "  {:<12} {:<9} {:<8} {}",
                c.name,
                c.kind,
                if c.healthy { "ok" } else { "FAILING" },
                c.last_result
            );
        }
    }
    if !s.transitions.is_empty() {
        let _ = writeln!(out, "\nrecent transitions:");
        for t in s.transitions.iter().rev().take(10) {
            let group = match &t.group {
                Some(g) if s.groups.len() > 1 => format!("{g} "),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {} {group}{} -> {} (epoch {}): {}",
                t.at, t.from, t.to, t.epoch, t.reason
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{documented_block, documented_example, FaultView, RouteStatus};
    use crate::wire::State;

    /// The table in docs/status.md is what `haagent status` prints for the documented
    /// example, and the node's parts follow it.
    #[test]
    fn several_groups_print_the_documented_table_then_the_node() {
        let text = render_status(&documented_example());
        let table = documented_block("```\n");
        assert!(
            text.starts_with(&table),
            "got:\n{text}\nwanted first:\n{table}"
        );
        let peers = text.find("\npeers:").expect("peers section");
        assert!(text[peers..].contains("n2 "), "{text}");
        assert!(
            text.contains("  2026-11-22T05:51:59Z web-a backup -> master (epoch 3)"),
            "{text}"
        );
    }

    #[test]
    fn the_columns_line_up_whatever_the_cell_widths() {
        let mut s = documented_example();
        s.groups[1].name = "a-much-longer-name".into();
        s.groups[1].priority = 90;
        s.groups[1].master = None;
        let text = render_status(&s);
        let lines: Vec<&str> = text.lines().skip(1).take(3).collect();
        assert!(lines[0].starts_with("GROUP"), "{text}");
        assert!(lines[2].contains("90 (base 100)"), "{text}");
        for column in ["STATE", "PRIO", "EPOCH", "MASTER", "VIPS", "ROUTES"] {
            let at = lines[0].find(column).unwrap();
            for row in &lines[1..] {
                let before = &row[..at];
                assert!(
                    before.ends_with("  ") && !row[at..].starts_with(' '),
                    "{column} misaligned:\n{text}"
                );
            }
        }
    }

    #[test]
    fn what_needs_attention_in_a_group_is_named_with_the_group() {
        let mut s = documented_example();
        let b = &mut s.groups[1];
        b.state = State::Fault;
        b.maintenance = true;
        b.faults = vec![FaultView {
            cause: "link".into(),
            reason: "eth1 lost carrier".into(),
        }];
        let a = &mut s.groups[0];
        a.handover_target = Some("n2".into());
        a.routes.push(RouteStatus {
            route: "0.0.0.0/0 via 198.51.100.1 dev eth1".into(),
            installed: false,
            error: Some("Network is unreachable (os error 101)".into()),
        });
        let text = render_status(&s);
        for line in [
            "web-b: MAINTENANCE",
            "web-b: FAULT (link): eth1 lost carrier",
            "web-a: handing over to n2",
            "web-a: route 0.0.0.0/0 via 198.51.100.1 dev eth1: NOT INSTALLED: Network is unreachable (os error 101)",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        let row = text.lines().find(|l| l.starts_with("web-a ")).unwrap();
        assert!(row.ends_with("1/2 (1 FAILED)"), "{row}");
        let row = text.lines().find(|l| l.starts_with("web-b ")).unwrap();
        assert!(row.contains(" fault "), "{row}");
    }

    /// One group (or an agent older than groups): the summary it always was, with the
    /// group's routes and faults; no table.
    #[test]
    fn one_group_prints_the_single_summary_with_its_routes() {
        let mut s = documented_example();
        s.groups.truncate(1);
        s.faults = vec![FaultView {
            cause: "health_check".into(),
            reason: "nginx: 502".into(),
        }];
        let text = render_status(&s);
        assert!(
            text.starts_with("n1 (web): master for 5.3 s, epoch 3\n"),
            "{text}"
        );
        assert!(!text.contains("GROUP"), "{text}");
        for line in [
            "vip 192.0.2.100/24: held here",
            "route 203.0.113.0/24 via 192.0.2.1 dev eth0 src 192.0.2.100: installed",
            "FAULT (health_check): nginx: 502",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(
            text.contains("  2026-11-22T05:51:59Z backup -> master"),
            "{text}"
        );
        s.groups.clear();
        let old = render_status(&s);
        assert!(old.starts_with("n1 (web): master for 5.3 s"), "{old}");
        assert!(!old.contains("route "), "{old}");
    }
}

#[cfg(test)]
mod mover_tests {
    use super::*;
    use crate::control::documented_example;
    use crate::mover::{MoverAction, MoverState, MoverView};

    fn view(state: MoverState) -> MoverView {
        MoverView {
            action: Some(MoverAction::Claim),
            state,
            attempts: 3,
            last_error: Some("/usr/local/bin/m exit status: 1: quota".into()),
            last_duration_ms: Some(2100),
            queued: 0,
            claim_waiting: false,
        }
    }

    /// Each group's mover gets a line naming the group; a waiting claim says so.
    #[test]
    fn a_groups_mover_is_shown_with_its_outcome() {
        let mut s = documented_example();
        s.groups[0].mover = Some(view(MoverState::Failed));
        s.groups[1].mover = Some(MoverView {
            claim_waiting: true,
            attempts: 2,
            queued: 1,
            ..view(MoverState::Running)
        });
        let text = render_status(&s);
        assert!(
            text.contains(
                "web-a: mover: claim FAILED after 3 attempts: /usr/local/bin/m exit status: 1: quota\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "web-b: mover: claim running (attempt 2), last error: /usr/local/bin/m exit \
                 status: 1: quota, the claim waits for it (wait = true): not master yet, 1 queued\n"
            ),
            "{text}"
        );
        s.groups.truncate(1);
        s.groups[0].mover = Some(MoverView {
            attempts: 1,
            last_error: None,
            ..view(MoverState::Ok)
        });
        let text = render_status(&s);
        assert!(
            text.contains("\nmover: claim ok (1 attempt, 2100 ms)\n"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod export_tests {
    use super::*;
    use crate::control::{documented_example, ExportProtocolStatus, ExportStatus, ExportedVip};

    fn export(exported: bool, error: Option<&str>) -> ExportStatus {
        ExportStatus {
            socket: "/run/bird/bird.ctl".into(),
            checked_at: Some("2026-11-22T05:52:04Z".into()),
            checked_age_ms: Some(400),
            error: error.map(str::to_string),
            protocols: if error.is_some() {
                Vec::new()
            } else {
                vec![ExportProtocolStatus {
                    name: "uplink".into(),
                    state: "up".into(),
                    info: "Established".into(),
                    established: true,
                    exported,
                    vips: vec![ExportedVip {
                        address: "203.0.113.200/32".into(),
                        exported,
                    }],
                }]
            },
            protocols_left_out: 0,
        }
    }

    /// One line per BGP protocol (with one group), named with the group (with several);
    /// a failed check is one ERROR line with BIRD's or birdc's words.
    #[test]
    fn what_bird_exports_is_one_line_per_protocol() {
        let mut s = documented_example();
        s.groups.truncate(1);
        s.groups[0].mode = "routed".into();
        s.groups[0].export = Some(export(true, None));
        let text = render_status(&s);
        assert!(
            text.lines()
                .any(|l| l
                    == "bird uplink (Established): 203.0.113.200/32 exported, checked 0.4 s ago"),
            "{text}"
        );
        s.groups[0].export = Some(export(false, Some("birdc `show protocols` did not answer")));
        let text = render_status(&s);
        assert!(
            text.lines().any(|l| l
                == "bird /run/bird/bird.ctl: ERROR: birdc `show protocols` did not answer \
                    (last good check 0.4 s ago)"),
            "{text}"
        );

        let mut s = documented_example();
        s.groups[1].export = Some(export(false, None));
        let text = render_status(&s);
        assert!(
            text.lines().any(|l| l
                == "web-b: bird uplink (Established): 203.0.113.200/32 not exported, checked \
                    0.4 s ago"),
            "{text}"
        );
        let mut never = export(false, Some("cannot run birdc"));
        never.checked_age_ms = None;
        assert_eq!(
            export_lines(&never),
            ["bird /run/bird/bird.ctl: ERROR: cannot run birdc (never answered)"]
        );
    }
}
