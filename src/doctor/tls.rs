//! The node's certificate: readable, valid now and for the next 30 days, chaining to the CA,
//! naming this node and its listen address, its key private to the agent's user.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::Check;
use crate::certs::{self, CertError, NodeIdentity};
use crate::config::Config;
use crate::net::IpCidr;

/// A certificate that ends sooner than this is a ✘ (renew it now, not during an outage).
pub(super) const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// Adds the certificate lines; returns the identity for the peer probes when it loads.
pub(super) fn check(
    config: &Config,
    own: &[IpCidr],
    checks: &mut Vec<Check>,
) -> Option<NodeIdentity> {
    let tls = &config.tls;
    let now = SystemTime::now();
    let name = format!("certificate {}", tls.cert.display());
    let identity = match certs::load_identity(&tls.ca, &tls.cert, &tls.key, now) {
        Ok(id) => id,
        Err(e) => {
            let fix = match &e {
                CertError::KeyPermissions { path, .. } => format!(
                    "chmod 600 {} (owned by the user the agent runs as)",
                    path.display()
                ),
                CertError::Expired { .. } | CertError::NotYetValid { .. } => format!(
                    "{} --dir CA_DIR --name {} --ip ADDR --force, then copy it here",
                    certs::ISSUE_COMMAND,
                    config.node.name
                ),
                CertError::NotSignedByCa { .. } => format!(
                    "issue the certificate from the cluster CA in {} ({})",
                    tls.ca.display(),
                    certs::ISSUE_COMMAND
                ),
                _ => format!(
                    "check the files in [tls]; `{} FILE` shows a certificate",
                    certs::SHOW_COMMAND
                ),
            };
            checks.push(Check::fail(name, e.to_string(), fix));
            return None;
        }
    };
    let left = identity.not_after.duration_since(now).unwrap_or_default();
    let days = left.as_secs() / 86_400;
    if left < RENEW_BEFORE {
        checks.push(Check::fail(
            name.clone(),
            format!("signed by the CA, but expires in {days} days"),
            format!(
                "renew it: {} --dir CA_DIR --name {} --ip ADDR --force, then `haagent reload`",
                certs::ISSUE_COMMAND,
                config.node.name
            ),
        ));
    } else {
        checks.push(Check::pass(
            name.clone(),
            format!("signed by the CA, expires in {days} days, key mode 0600"),
        ));
    }
    checks.push(names(config, own, &identity));
    Some(identity)
}

/// The SANs name this node and the address peers reach it at.
fn names(config: &Config, own: &[IpCidr], id: &NodeIdentity) -> Check {
    let node = &config.node.name;
    let name = "certificate names";
    if !id.names.iter().any(|n| n == node) {
        return Check::fail(
            name,
            format!(
                "DNS names {:?} do not include the node name {node:?}",
                id.names
            ),
            format!("issue it with --name {node}, or set [node] name to the certificate's name"),
        );
    }
    let listen = config.node.listen.ip();
    let addresses: Vec<IpAddr> = if listen.is_unspecified() {
        own.iter().map(|a| a.addr).collect()
    } else {
        vec![listen]
    };
    match addresses.iter().find(|a| id.ips.contains(a)) {
        Some(a) => Check::pass(name, format!("{node} and {a}")),
        None if addresses.is_empty() => Check::pass(name, node.clone()),
        None => Check::fail(
            name,
            format!(
                "IP addresses {:?} include none of this node's {:?}",
                id.ips, addresses
            ),
            format!(
                "re-issue with --ip {} (peers given by address dial it)",
                addresses[0]
            ),
        ),
    }
}
