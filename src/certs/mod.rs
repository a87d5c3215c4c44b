//! Certificates for the cluster's mutual TLS.
//!
//! Every haagent node proves who it is with a certificate signed by a small private CA that
//! belongs to the cluster (`haagent certs init`, `haagent certs issue`). This module
//! creates that CA and the node certificates, prints them for humans, and loads a node's
//! identity at start-up, refusing anything that would only fail later as an obscure TLS
//! alert: a missing or unreadable file, an expired certificate, a key that does not belong to
//! the certificate, a key readable by other users, or a certificate the CA did not sign.
//!
//! Layout: `issue.rs` writes (CA, node certificates), `load.rs` reads and checks a node
//! identity, `inspect.rs` turns a certificate into facts ([`CertSummary`]) and text,
//! `clock.rs` tells an out-of-date certificate from a wrong local clock.

pub(crate) mod clock;
mod inspect;
mod issue;
mod load;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::wire::{self, NameProblem, MAX_NAME_LEN};

pub(crate) use clock::{clock_suspicion, ClockSuspicion};
pub use inspect::{days_left, show, summarize, CertSummary};
pub(crate) use inspect::{expiry_words, rfc3339};
pub use issue::{init_ca, issue, issue_with_validity, renew};
pub use load::load_identity;

/// The command that creates the cluster CA (`certs init` in src/cli.rs).
pub const INIT_COMMAND: &str = "haagent certs init";
/// The command that issues a node certificate (`certs issue` in src/cli.rs).
pub const ISSUE_COMMAND: &str = "haagent certs issue";
/// The command that renews a node certificate with the same names (`certs renew`).
pub const RENEW_COMMAND: &str = "haagent certs renew";
/// From this many days before a certificate expires, the agent warns (log line at start-up,
/// and on reload; a line in `status`).
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// The command that prints a certificate's names and dates (`certs show` in src/cli.rs).
pub const SHOW_COMMAND: &str = "haagent certs show";

/// Which certificate a [`CertError`] is about, for the hint on how to replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// The cluster CA certificate (`ca.pem`).
    Ca,
    /// A node certificate.
    Node,
}

impl CertRole {
    /// What the operator runs to replace an expired certificate of this role.
    pub fn renew_hint(self) -> String {
        match self {
            CertRole::Ca => format!(
                "the cluster CA itself expired: create a new CA with `{INIT_COMMAND}` (--force \
                 replaces the old files), then issue every node a new certificate with \
                 `{ISSUE_COMMAND}`"
            ),
            CertRole::Node => format!("issue a new one with `{ISSUE_COMMAND}`"),
        }
    }
}

/// File name of the CA certificate inside a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a certificate directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// The files a successful [`init_ca`] or [`issue`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The certificate (PEM, mode 0644).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
}

/// Everything a node needs for mutual TLS, loaded and checked by [`load_identity`].
#[derive(Debug)]
pub struct NodeIdentity {
    /// Trust anchors: the cluster CA certificate(s). Peers must present a certificate they signed.
    pub ca: Vec<CertificateDer<'static>>,
    /// This node's certificate chain, end-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// This node's private key (matches `chain[0]`). Use [`NodeIdentity::clone_key`] for a copy.
    pub key: PrivateKeyDer<'static>,
    /// DNS names in the node certificate's subjectAltName.
    pub names: Vec<String>,
    /// IP addresses in the node certificate's subjectAltName.
    pub ips: Vec<IpAddr>,
    /// End of the node certificate's validity.
    pub not_after: SystemTime,
}

/// The serial number of `identity`'s own certificate (lowercase hex).
pub fn serial_of(identity: &NodeIdentity) -> Option<String> {
    identity
        .chain
        .first()
        .and_then(|c| summarize(c).ok())
        .map(|s| s.serial)
}

impl NodeIdentity {
    /// A copy of the private key (`PrivateKeyDer` is deliberately not `Clone`).
    pub fn clone_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// Why a certificate or key could not be created, read or accepted. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read (missing, unreadable, a directory, ...).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The target file exists and `force` was not given.
    #[error("{} already exists; refusing to overwrite it (use --force to replace it)", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file holds no PEM `CERTIFICATE` block.
    #[error("{} contains no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate could not be parsed.
    #[error("{}: invalid certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file holds no usable PEM private key.
    #[error("{}: no usable private key: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The certificate's validity ended.
    #[error(
        "certificate {} expired at {not_after} ({}){}",
        path.display(),
        role.renew_hint(),
        clock.as_ref().map_or(String::new(), |c| format!("; {c}"))
    )]
    Expired {
        /// The file.
        path: PathBuf,
        /// The CA or a node certificate (decides the hint).
        role: CertRole,
        /// Set when the certificate ended so long ago (more than 30 days) that this node's
        /// clock is the likelier culprit: that sentence, with the clock's reading and the
        /// certificate's validity window.
        clock: Option<String>,
        /// End of validity, RFC 3339 UTC.
        not_after: String,
    },
    /// The certificate's validity has not started yet (check the clock).
    #[error("certificate {} is not valid before {not_before} (is the clock right?)", path.display())]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// Start of validity, RFC 3339 UTC.
        not_before: String,
    },
    /// The private key does not belong to the certificate.
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The private key file is readable or writable by group or others.
    #[error("private key {} is accessible by group or others (mode {mode:04o}); run: chmod 600 {}", path.display(), path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// The certificate is not signed by the cluster CA (or cannot be used for mutual TLS).
    #[error("certificate {} is not accepted by the CA in {}: {reason}", cert.display(), ca.display())]
    NotSignedByCa {
        /// The node certificate file.
        cert: PathBuf,
        /// The CA certificate file.
        ca: PathBuf,
        /// What the verifier said, in words.
        reason: String,
    },
    /// An invalid node name.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An invalid cluster name.
    #[error("invalid cluster name {name:?}: {reason}")]
    InvalidCluster {
        /// The rejected name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Key generation or signing failed.
    #[error("cannot create {}: {reason}", path.display())]
    Generate {
        /// The certificate that was being created.
        path: PathBuf,
        /// The generator's error.
        reason: String,
    },
}

/// Checks a node name: the node-name rule of [`wire::node_name_problem`] (ASCII letters,
/// digits, `.`, `_`, `-`; 1 to 64 characters; not starting with `-`). Because the name is also the certificate's DNS name and the TLS server name, it
/// must not have empty labels (`a..b`, a leading or trailing dot) and must not look like an IP
/// address.
pub fn validate_node_name(name: &str) -> Result<(), CertError> {
    let bad = |reason: &str| {
        Err(CertError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    match wire::node_name_problem(name) {
        None => {}
        Some(NameProblem::Empty | NameProblem::TooLong) => {
            return bad(&format!("must be 1 to {MAX_NAME_LEN} characters long"));
        }
        Some(NameProblem::LeadingDash) => return bad("must not start with '-'"),
        Some(NameProblem::BadChar(c)) => {
            return bad(&format!(
                "character {c:?} is not allowed (use A-Z a-z 0-9 . _ -)"
            ));
        }
    }
    if name.split('.').any(str::is_empty) {
        return bad("must not start or end with '.' or contain '..'");
    }
    if name.parse::<IpAddr>().is_ok() {
        return bad("must be a name, not an IP address (IP addresses go in --ip)");
    }
    if rustls_pki_types::DnsName::try_from(name).is_err() {
        return bad("is not usable as a DNS name in a certificate");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        let long = format!("{}.{}", "x".repeat(31), "y".repeat(32));
        for ok in ["n1", "node-2.example", "a_b", "A", &long] {
            assert!(validate_node_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-n1",
            "n 1",
            "n1/x",
            "é",
            "a..b",
            ".a",
            "a.",
            "10.0.0.1",
            &"x".repeat(64),
            &format!("{long}z"),
        ] {
            let err = validate_node_name(bad).unwrap_err();
            assert!(matches!(err, CertError::InvalidName { .. }), "{bad}: {err}");
        }
    }
}
