//! The human form of `haagent status`.

use std::fmt::Write;

use super::Status;

fn opt<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v}{unit}"))
}

/// Renders a status for a terminal: a summary, then peers, checks and transitions.
pub fn render_status(s: &Status) -> String {
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
    if s.quorum.enabled {
        let _ = writeln!(
            out,
            "quorum: hear {} of {} nodes, need {}",
            s.quorum.heard, s.quorum.cluster_size, s.quorum.needed
        );
    }
    if let Some(b) = &s.claim_blocked {
        let _ = writeln!(
            out,
            "NOT CLAIMING THE VIPS: {} ({}) answers for them, for {:.1} s",
            b.mac,
            b.member.as_deref().unwrap_or("not a cluster member"),
            b.for_ms as f64 / 1000.0
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
            let _ = writeln!(
                out,
                "  {} {} -> {} (epoch {}): {}",
                t.at, t.from, t.to, t.epoch, t.reason
            );
        }
    }
    out
}
