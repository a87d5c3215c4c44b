//! Which configured peer a certificate identifies, and what a certificate tells us (names,
//! addresses, expiry).

use std::net::{IpAddr, SocketAddr};

use rustls_pki_types::CertificateDer;

use super::{PeerSpec, RejectKind};
use crate::certs;

impl PeerSpec {
    /// The TLS server name we dial: the node name, or the IP address in quick mode.
    pub(crate) fn server_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.addr.ip().to_string(),
        }
    }

    /// Whether a certificate with these DNS names and IP addresses identifies this peer.
    ///
    /// Names compare byte for byte, case-sensitively, as the election compares the name in
    /// an advert with the certificate's names: a certificate for `N2` is not peer `n2` (DNS
    /// names are case-insensitive in TLS name checks, RFC 6125 §6.4.1, but node names are
    /// identities here, and one rule must hold everywhere).
    pub(super) fn matches(&self, names: &[String], ips: &[IpAddr]) -> bool {
        match &self.name {
            Some(n) => names.iter().any(|c| c == n),
            None => {
                let want = self.addr.ip().to_canonical();
                ips.iter().any(|ip| ip.to_canonical() == want)
            }
        }
    }

    pub(super) fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.addr),
            None => self.addr.to_string(),
        }
    }
}

/// Maps a certificate to the configured peer it identifies: named peers by DNS name,
/// address-only peers by IP address. When several match, the one configured with the
/// connection's source address wins.
pub(crate) fn match_peer(
    peers: &[PeerSpec],
    names: &[String],
    ips: &[IpAddr],
    remote: SocketAddr,
) -> Option<usize> {
    let mut candidates = peers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.matches(names, ips))
        .map(|(i, _)| i)
        .peekable();
    let first = *candidates.peek()?;
    let remote_ip = remote.ip().to_canonical();
    candidates
        .find(|&i| peers[i].addr.ip().to_canonical() == remote_ip)
        .or(Some(first))
}

/// DNS names and IP addresses of the peer's certificate.
pub(super) fn peer_names(
    conn: &quinn::Connection,
) -> Result<(Vec<String>, Vec<IpAddr>), (RejectKind, String)> {
    let none = || {
        (
            RejectKind::NoCertificate,
            "the peer presented no certificate".to_string(),
        )
    };
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(none)?;
    let first = certs.first().ok_or_else(none)?;
    let summary = certs::summarize(first).map_err(|e| {
        (
            RejectKind::Other,
            format!("unreadable peer certificate: {e}"),
        )
    })?;
    Ok((summary.names, summary.ips))
}

/// The certificate chain the peer presented on `conn`.
pub(super) fn peer_chain(conn: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    conn.peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()
        .map(|b| *b)
}

/// What the peer's certificate on `conn` says about itself.
pub(super) fn peer_summary(conn: &quinn::Connection) -> Option<certs::CertSummary> {
    certs::summarize(peer_chain(conn)?.first()?).ok()
}

pub(super) fn ips_words(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        "none".to_string()
    } else {
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: Option<&str>, addr: &str) -> PeerSpec {
        PeerSpec {
            name: name.map(str::to_string),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn peers_match_by_name_or_ip() {
        let peers = vec![
            spec(Some("n2"), "192.0.2.2:7400"),
            spec(None, "192.0.2.3:7400"),
            spec(None, "[2001:db8::4]:7400"),
        ];
        let remote: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(match_peer(&peers, &n(&["n2"]), &[], remote), Some(0));
        // Names are identities and compare exactly, as in the election: "N2" is not "n2".
        assert_eq!(match_peer(&peers, &n(&["N2"]), &[], remote), None);
        assert_eq!(match_peer(&peers, &n(&["N2", "n2"]), &[], remote), Some(0));
        assert_eq!(
            match_peer(&peers, &n(&["n3"]), &[ip("192.0.2.3")], remote),
            Some(1)
        );
        assert_eq!(
            match_peer(&peers, &[], &[ip("2001:db8::4")], remote),
            Some(2)
        );
        // A named peer is not matched by its IP address, nor a quick-mode peer by a name.
        assert_eq!(
            match_peer(&peers, &n(&["x"]), &[ip("192.0.2.2")], remote),
            None
        );
        assert_eq!(match_peer(&peers, &n(&["192.0.2.3"]), &[], remote), None);
        // Ambiguous: the peer configured with the source address wins.
        let both = [ip("192.0.2.3"), ip("2001:db8::4")];
        assert_eq!(match_peer(&peers, &[], &both, remote), Some(1));
        let from4: SocketAddr = "[2001:db8::4]:1".parse().unwrap();
        assert_eq!(match_peer(&peers, &[], &both, from4), Some(2));
        // IPv4-mapped source addresses (dual-stack sockets) compare as IPv4.
        let mapped: SocketAddr = "[::ffff:192.0.2.3]:1".parse().unwrap();
        assert_eq!(match_peer(&peers, &[], &both, mapped), Some(1));
    }

    #[test]
    fn quick_mode_dials_the_ip_as_server_name() {
        assert_eq!(spec(None, "192.0.2.3:7400").server_name(), "192.0.2.3");
        assert_eq!(spec(Some("n2"), "192.0.2.3:7400").server_name(), "n2");
    }
}
