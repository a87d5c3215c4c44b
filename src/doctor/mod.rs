//! `haagent doctor`: the preflight an operator runs before the first start and whenever
//! something is wrong. Every check prints one line, ✔ or ✘, and a ✘ line carries a one-line
//! fix; the exit status is 0 when every line is ✔, else 1.
//!
//! - `host.rs`: the interface, capabilities, the UDP port, the sysctls.
//! - `nft.rs`: whether local nftables rules drop the peer port (`nft -j list ruleset`).
//! - `tls.rs`: the certificate, its SANs, its chain to the CA, the key's permissions.
//! - `reach.rs`: every peer (a QUIC handshake with the doctor ALPN), the gateway, the health
//!   checks' targets.
//!
//! The doctor only reads: it installs nothing, and its probe connections use their own
//! ALPN ([`crate::transport::DOCTOR_ALPN`]), which a running agent answers and closes
//! without treating it as a peer connection.

use serde::Serialize;

use crate::config::{Config, ConfigErrors};

mod host;
mod nft;
mod reach;
mod tls;

/// The exit codes of `haagent doctor` (its `--help` and man page).
pub const EXIT_STATUS: &str = "\
Exit status:
  0  every check passed (only ✔ lines)
  1  at least one check failed (a ✘ line, with its fix)
  2  usage error";

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `interface eth0`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it (failed checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A failing check with its fix.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The text line: `✔ name: detail` or `✘ name: detail — fix: …`.
    pub fn line(&self) -> String {
        match &self.fix {
            None if self.ok => format!("✔ {}: {}", self.name, self.detail),
            fix => format!(
                "✘ {}: {} — fix: {}",
                self.name,
                self.detail,
                fix.as_deref().unwrap_or("see the detail")
            ),
        }
    }
}

/// Every check's result, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether every check passed.
    pub ok: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    pub(crate) fn new(checks: Vec<Check>) -> Report {
        Report {
            ok: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

/// Runs every check against a loaded (or refused) configuration.
pub async fn run(config: &Result<Config, ConfigErrors>) -> Report {
    let config = match config {
        Ok(config) => config,
        Err(errors) => {
            let first = errors.to_string();
            let first = first.lines().next().unwrap_or("invalid").to_string();
            return Report::new(vec![Check::fail(
                "config",
                first,
                "correct the file; `haagent check-config` lists every error",
            )]);
        }
    };
    let mut checks = vec![Check::pass("config", format!("{} is valid", config.source))];
    let own = host::interface(config, &mut checks).await;
    checks.push(host::capabilities());
    checks.push(host::port(config));
    checks.push(nft::port_not_dropped(config.node.listen.port()));
    let identity = tls::check(config, &own, &mut checks);
    reach::peers(config, identity.as_ref(), &mut checks).await;
    reach::gateway(config, &mut checks).await;
    checks.extend(host::sysctls(config));
    reach::health_targets(config, &mut checks).await;
    Report::new(checks)
}

impl Report {
    /// The text form: one line per check.
    pub fn lines(&self) -> String {
        self.checks.iter().map(|c| c.line() + "\n").collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_their_mark_and_fix() {
        assert_eq!(Check::pass("port", "free").line(), "✔ port: free");
        let line = Check::fail("port", "in use", "stop the other agent").line();
        assert_eq!(line, "✘ port: in use — fix: stop the other agent");
        assert!(!Report::new(vec![Check::pass("a", "b"), Check::fail("c", "d", "e")]).ok);
    }
}
