//! Why a connection was refused, as a type: [`RejectKind`].
//!
//! The kind is decided where the typed error exists, never from error text:
//!
//! - on the side that refused the peer's certificate, from the rustls error its verifier
//!   returned ([`RejectKind::from_tls_error`]; the verifier is wrapped to record it, see
//!   `verify.rs`), or from the TLS alert that side sent when the refusal happened outside
//!   the verifier (no certificate at all);
//! - on the side that was refused, only the alert in the peer's QUIC `CONNECTION_CLOSE` is
//!   known: a QUIC crypto error code is 0x100 + the TLS alert number (RFC 9001 §4.8), read
//!   by [`RejectKind::from_crypto_code`];
//! - haagent's own identity check (the certificate chains to the CA but names no configured
//!   peer) closes with [`super::CLOSE_UNKNOWN_PEER`], which the refused side also maps to
//!   [`RejectKind::UnknownPeer`].

use rustls::{AlertDescription, CertificateError};

/// The reason class of a refused connection (either direction), for metrics, tests and the
/// log de-duplication. [`RejectKind::label`] is its metric label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// The certificate does not chain to the cluster CA: an unknown issuer, or an issuer of
    /// the right name whose signature does not verify (a different CA of the same name).
    UnknownCa,
    /// The peer presented no certificate (or we presented none and the peer wanted one).
    NoCertificate,
    /// The certificate's validity ended. On the refused side this also covers "not yet
    /// valid": TLS has one alert for both (certificate_expired, RFC 8446 §6.2).
    Expired,
    /// The certificate's validity has not begun (known only on the side that checked it).
    NotYetValid,
    /// The certificate chains to the CA but carries no name or address of a configured
    /// peer; or the peer closed us with [`super::CLOSE_UNKNOWN_PEER`] or a bad_certificate
    /// alert (our certificate does not carry the name it dialled).
    UnknownPeer,
    /// Anything else (wrong key usage, unreadable certificate, other alerts).
    Other,
}

impl RejectKind {
    /// Every kind, in declaration order.
    pub const ALL: [RejectKind; 6] = [
        RejectKind::UnknownCa,
        RejectKind::NoCertificate,
        RejectKind::Expired,
        RejectKind::NotYetValid,
        RejectKind::UnknownPeer,
        RejectKind::Other,
    ];

    /// The metric label value, e.g. `"tls_unknown_ca"`. These strings are exported: do not
    /// rename one.
    pub fn label(&self) -> &'static str {
        match self {
            RejectKind::UnknownCa => "tls_unknown_ca",
            RejectKind::NoCertificate => "tls_no_cert",
            RejectKind::Expired => "tls_expired",
            RejectKind::NotYetValid => "tls_not_yet_valid",
            RejectKind::UnknownPeer => "tls_unknown_peer",
            RejectKind::Other => "other",
        }
    }

    /// Index of this kind in [`RejectKind::ALL`] (for per-kind counters).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The kind of a certificate error returned by a rustls/webpki verifier.
    pub fn from_certificate_error(e: &CertificateError) -> RejectKind {
        match e {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                RejectKind::UnknownCa
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                RejectKind::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                RejectKind::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                RejectKind::UnknownPeer
            }
            _ => RejectKind::Other,
        }
    }

    /// The kind of a rustls error that ended a handshake on our side.
    pub fn from_tls_error(e: &rustls::Error) -> RejectKind {
        match e {
            rustls::Error::InvalidCertificate(c) => Self::from_certificate_error(c),
            rustls::Error::NoCertificatesPresented => RejectKind::NoCertificate,
            _ => RejectKind::Other,
        }
    }

    /// The kind of a TLS alert (RFC 8446 §6.2), sent by either side, as rustls maps
    /// certificate errors to alerts: unknown_ca (48) for an unknown issuer, decrypt_error
    /// (51) for a bad signature, certificate_expired (45) for expired *and* not yet valid,
    /// bad_certificate (42) for a certificate not valid for the dialled name,
    /// certificate_required (116) for no certificate.
    pub fn from_alert(alert: AlertDescription) -> RejectKind {
        match alert {
            AlertDescription::UnknownCA | AlertDescription::DecryptError => RejectKind::UnknownCa,
            AlertDescription::CertificateExpired => RejectKind::Expired,
            AlertDescription::CertificateRequired => RejectKind::NoCertificate,
            AlertDescription::BadCertificate => RejectKind::UnknownPeer,
            _ => RejectKind::Other,
        }
    }

    /// The kind of a QUIC crypto error code (0x100 + TLS alert, RFC 9001 §4.8); `None` for
    /// a code outside 0x100..=0x1ff.
    pub fn from_crypto_code(code: u64) -> Option<RejectKind> {
        let alert = u8::try_from(code.checked_sub(0x100)?).ok()?;
        Some(Self::from_alert(AlertDescription::from(alert)))
    }

    /// A short explanation for the side that refused the peer, e.g. "certificate not signed
    /// by this cluster's CA".
    pub(crate) fn local_hint(self) -> &'static str {
        match self {
            RejectKind::UnknownCa => "certificate not signed by this cluster's CA",
            RejectKind::NoCertificate => "the client presented no certificate",
            RejectKind::Expired => "the peer's certificate has expired",
            RejectKind::NotYetValid => "the peer's certificate is not valid yet",
            RejectKind::UnknownPeer => {
                "certificate does not carry the configured name or IP address"
            }
            RejectKind::Other => "",
        }
    }

    /// A short explanation for the side that was refused.
    pub(crate) fn remote_hint(self) -> &'static str {
        match self {
            RejectKind::UnknownCa => {
                "the peer does not trust our certificate: not signed by its cluster CA"
            }
            RejectKind::NoCertificate => "the peer wanted a certificate we did not present",
            RejectKind::Expired | RejectKind::NotYetValid => {
                "the peer finds our certificate expired or not yet valid: check its dates \
                 (`haagent certs show FILE`) and both nodes' clocks"
            }
            RejectKind::UnknownPeer => {
                "our certificate does not carry the name or IP address the peer expects"
            }
            RejectKind::Other => "",
        }
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_kind_is_listed_once_with_a_distinct_label() {
        // An exhaustive match: a new variant does not compile until it is placed here, and
        // then the assertions below want it in ALL.
        let position = |k: RejectKind| match k {
            RejectKind::UnknownCa => 0,
            RejectKind::NoCertificate => 1,
            RejectKind::Expired => 2,
            RejectKind::NotYetValid => 3,
            RejectKind::UnknownPeer => 4,
            RejectKind::Other => 5,
        };
        for (i, k) in RejectKind::ALL.iter().enumerate() {
            assert_eq!(position(*k), i, "{k:?} out of place in ALL");
            assert_eq!(k.index(), i);
        }
        let labels: HashSet<_> = RejectKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), RejectKind::ALL.len(), "labels not distinct");
        // The exported label values.
        assert_eq!(RejectKind::UnknownCa.label(), "tls_unknown_ca");
        assert_eq!(RejectKind::NoCertificate.label(), "tls_no_cert");
        assert_eq!(RejectKind::Expired.label(), "tls_expired");
        assert_eq!(RejectKind::NotYetValid.label(), "tls_not_yet_valid");
        assert_eq!(RejectKind::UnknownPeer.label(), "tls_unknown_peer");
        assert_eq!(RejectKind::Other.label(), "other");
    }

    #[test]
    fn typed_errors_map_to_kinds() {
        use rustls::Error;
        let cert = |c| RejectKind::from_tls_error(&Error::InvalidCertificate(c));
        assert_eq!(cert(CertificateError::UnknownIssuer), RejectKind::UnknownCa);
        assert_eq!(cert(CertificateError::BadSignature), RejectKind::UnknownCa);
        assert_eq!(cert(CertificateError::Expired), RejectKind::Expired);
        assert_eq!(cert(CertificateError::NotValidYet), RejectKind::NotYetValid);
        assert_eq!(
            cert(CertificateError::NotValidForName),
            RejectKind::UnknownPeer
        );
        assert_eq!(cert(CertificateError::InvalidPurpose), RejectKind::Other);
        assert_eq!(
            RejectKind::from_tls_error(&Error::NoCertificatesPresented),
            RejectKind::NoCertificate
        );
        assert_eq!(
            RejectKind::from_tls_error(&Error::DecryptError),
            RejectKind::Other
        );
    }

    #[test]
    fn crypto_codes_map_through_the_alert() {
        // 0x100 + RFC 8446 alert numbers.
        assert_eq!(
            RejectKind::from_crypto_code(0x100 + 48),
            Some(RejectKind::UnknownCa)
        );
        assert_eq!(
            RejectKind::from_crypto_code(0x100 + 51),
            Some(RejectKind::UnknownCa)
        );
        assert_eq!(
            RejectKind::from_crypto_code(0x100 + 45),
            Some(RejectKind::Expired)
        );
        assert_eq!(
            RejectKind::from_crypto_code(0x100 + 116),
            Some(RejectKind::NoCertificate)
        );
        assert_eq!(
            RejectKind::from_crypto_code(0x100 + 42),
            Some(RejectKind::UnknownPeer)
        );
        assert_eq!(
            RejectKind::from_crypto_code(0x100 + 43),
            Some(RejectKind::Other)
        );
        // Not crypto codes.
        assert_eq!(RejectKind::from_crypto_code(0x0a), None);
        assert_eq!(RejectKind::from_crypto_code(0x200), None);
    }

    #[test]
    fn rustls_alert_mapping_agrees_with_ours() {
        // What rustls sends for each certificate error, read back as a kind, gives the same
        // kind as the error itself (except not-yet-valid, which shares expired's alert).
        for (e, want) in [
            (CertificateError::UnknownIssuer, RejectKind::UnknownCa),
            (CertificateError::BadSignature, RejectKind::UnknownCa),
            (CertificateError::Expired, RejectKind::Expired),
            (CertificateError::NotValidYet, RejectKind::Expired),
            (CertificateError::NotValidForName, RejectKind::UnknownPeer),
        ] {
            let alert = AlertDescription::from(e.clone());
            assert_eq!(RejectKind::from_alert(alert), want, "{e:?} -> {alert:?}");
        }
    }
}
