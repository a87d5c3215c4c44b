//! Loading and checking a node's identity at start-up.
//!
//! Each check here turns what would otherwise be a TLS alert on a peer (or a silent failure to
//! form a cluster) into a one-line reason that names the file to fix.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::ring::default_provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, UnixTime};

use super::inspect::{read_certs, rfc3339, summarize_at};
use super::{clock_suspicion, CertError, CertRole, NodeIdentity};

/// Loads the CA certificate(s), this node's certificate chain and its private key, and checks
/// that they can work: all files readable PEM, the CA and the node certificate valid at `now`,
/// the key file not accessible by group or others, the key matching the certificate, and the
/// certificate signed by the CA for both TLS server and client use.
pub fn load_identity(
    ca: &Path,
    cert: &Path,
    key: &Path,
    now: SystemTime,
) -> Result<NodeIdentity, CertError> {
    let ca_certs = read_certs(ca)?;
    let mut ca_not_before = None;
    for der in &ca_certs {
        let s = summarize_at(der, ca)?;
        check_validity(ca, CertRole::Ca, &s, now, Some(s.not_before))?;
        ca_not_before =
            Some(ca_not_before.map_or(s.not_before, |t: SystemTime| t.min(s.not_before)));
    }
    let chain = read_certs(cert)?;
    let summary = summarize_at(&chain[0], cert)?;
    check_validity(cert, CertRole::Node, &summary, now, ca_not_before)?;

    check_key_mode(key)?;
    let key_bytes = std::fs::read(key).map_err(|source| CertError::Read {
        path: key.to_path_buf(),
        source,
    })?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| CertError::BadKey {
        path: key.to_path_buf(),
        reason: format!("expected a PEM private key: {e}"),
    })?;
    let provider = default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(private_key.clone_key())
        .map_err(|e| CertError::BadKey {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    if CertifiedKey::new(chain.clone(), Arc::clone(&signing_key))
        .keys_match()
        .is_err()
    {
        return Err(CertError::KeyMismatch {
            key: key.to_path_buf(),
            cert: cert.to_path_buf(),
        });
    }

    verify_signed_by(ca, &ca_certs, cert, &chain, now)?;

    Ok(NodeIdentity {
        ca: ca_certs,
        chain,
        key: private_key,
        names: summary.names,
        ips: summary.ips,
        not_after: summary.not_after,
    })
}

/// Refuses a private key file that group or others can access (`mode & 0o077 != 0`).
pub(crate) fn check_key_mode(path: &Path) -> Result<(), CertError> {
    let meta = std::fs::metadata(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CertError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn check_validity(
    path: &Path,
    role: CertRole,
    s: &super::CertSummary,
    now: SystemTime,
    ca_not_before: Option<SystemTime>,
) -> Result<(), CertError> {
    if now > s.not_after {
        let clock = clock_suspicion(now, s.not_before, s.not_after, ca_not_before);
        return Err(CertError::Expired {
            path: path.to_path_buf(),
            role,
            clock: clock.map(|c| c.to_string()),
            not_after: rfc3339(s.not_after),
        });
    }
    if now < s.not_before {
        return Err(CertError::NotYetValid {
            path: path.to_path_buf(),
            not_before: rfc3339(s.not_before),
        });
    }
    Ok(())
}

/// Verifies the chain against the CA as trust anchor, for client and for server use, exactly
/// as the peers' TLS stacks will.
fn verify_signed_by(
    ca_path: &Path,
    ca_certs: &[rustls_pki_types::CertificateDer<'static>],
    cert_path: &Path,
    chain: &[rustls_pki_types::CertificateDer<'static>],
    now: SystemTime,
) -> Result<(), CertError> {
    let refuse = |reason: String| CertError::NotSignedByCa {
        cert: cert_path.to_path_buf(),
        ca: ca_path.to_path_buf(),
        reason,
    };
    let anchors = ca_certs
        .iter()
        .map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .map(|a| a.to_owned())
                .map_err(|e| CertError::BadCertificate {
                    path: ca_path.to_path_buf(),
                    reason: format!("not usable as a trust anchor: {e}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ee = webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|e| refuse(format!("cannot parse the certificate: {e}")))?;
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let algs = default_provider().signature_verification_algorithms.all;
    for (usage, what) in [
        (webpki::KeyUsage::client_auth(), "TLS client"),
        (webpki::KeyUsage::server_auth(), "TLS server"),
    ] {
        ee.verify_for_usage(algs, &anchors, &chain[1..], time, usage, None, None)
            .map_err(|e| refuse(verify_error_words(&e, what)))?;
    }
    Ok(())
}

/// Puts a webpki verification error into words.
pub(crate) fn verify_error_words(e: &webpki::Error, usage: &str) -> String {
    match e {
        webpki::Error::UnknownIssuer => "it was not signed by this CA".to_string(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            format!("it does not allow {usage} use (extended key usage)")
        }
        webpki::Error::InvalidSignatureForPublicKey => {
            "it was not signed by this CA (same issuer name, but the signature does not verify \
             with this CA's key: a different CA of the same name?)"
                .to_string()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{init_ca, issue, issue_with_validity};
    use std::time::Duration;

    fn setup() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        init_ca(tmp.path(), "t", 30, false).unwrap();
        tmp
    }

    #[test]
    fn refuses_not_yet_valid_and_expired_ca() {
        let tmp = setup();
        let dir = tmp.path();
        let w = issue(dir, "n1", &[], 10, false).unwrap();
        let ca = dir.join("ca.pem");
        let future = SystemTime::now() + Duration::from_secs(40 * 86_400);
        let err = load_identity(&ca, &w.cert, &w.key, future).unwrap_err();
        assert!(
            matches!(&err, CertError::Expired { path, role: CertRole::Ca, .. } if path == &ca),
            "{err}"
        );
        // An expired CA is replaced with `certs init`, not by issuing node certificates.
        let msg = err.to_string();
        assert!(
            msg.contains("create a new CA with `haagent certs init`"),
            "{msg}"
        );
        // Ten days past the end: a missed renewal, not the clock.
        assert!(!msg.contains("clock"), "{msg}");
        // 900 days past: the clock is named (a jumped clock stops the node at start-up).
        let jumped = SystemTime::now() + Duration::from_secs(900 * 86_400);
        let msg = load_identity(&ca, &w.cert, &w.key, jumped)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("this node's own clock is the likely culprit"),
            "{msg}"
        );
        let past = SystemTime::now() - Duration::from_secs(2 * 3600);
        let err = load_identity(&ca, &w.cert, &w.key, past).unwrap_err();
        assert!(matches!(&err, CertError::NotYetValid { .. }), "{err}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        // Not yet valid node certificate (CA fine).
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let w2 = issue_with_validity(dir, "n2", &[], now + day, now + day * 2, false).unwrap();
        let err = load_identity(&ca, &w2.cert, &w2.key, now).unwrap_err();
        assert!(
            err.to_string().contains("n2.pem") && err.to_string().contains("not valid before"),
            "{err}"
        );
    }

    #[test]
    fn refuses_certificate_from_another_ca() {
        let tmp = setup();
        let other = setup();
        let w = issue(other.path(), "n1", &[], 10, false).unwrap();
        let ca = tmp.path().join("ca.pem");
        let err = load_identity(&ca, &w.cert, &w.key, SystemTime::now()).unwrap_err();
        assert!(matches!(err, CertError::NotSignedByCa { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("n1.pem") && msg.contains("not signed by this CA"),
            "{msg}"
        );
    }

    #[test]
    fn refuses_garbage_key() {
        let tmp = setup();
        let w = issue(tmp.path(), "n1", &[], 10, false).unwrap();
        std::fs::write(&w.key, "not a key").unwrap();
        let err = load_identity(
            &tmp.path().join("ca.pem"),
            &w.cert,
            &w.key,
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, CertError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("n1-key.pem"), "{err}");
    }
}
