//! Creating the cluster CA and node certificates (`haagent certs init` / `certs issue`).
//!
//! Keys are ECDSA P-256. Private keys are created with mode 0600 from the first byte (never
//! written to a file that is, even briefly, readable by others), and nothing is overwritten
//! unless the caller passes `force`, in which case the new file is written beside the old one
//! and renamed over it.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use super::load::check_key_mode;
use super::{validate_node_name, CertError, Written, CA_CERT_FILE, CA_KEY_FILE};

/// Validity starts this long before "now", so peers whose clocks lag a little accept it.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Creates the cluster CA: `DIR/ca.pem` and `DIR/ca-key.pem`, valid from one hour ago for
/// `days` days, subject `CN=<cluster> haagent CA`. Creates `DIR` (mode 0700) if missing.
/// Refuses to replace existing files unless `force`.
pub fn init_ca(dir: &Path, cluster: &str, days: u32, force: bool) -> Result<Written, CertError> {
    validate_cluster(cluster)?;
    let written = Written {
        cert: dir.join(CA_CERT_FILE),
        key: dir.join(CA_KEY_FILE),
    };
    create_dir(dir)?;
    refuse_existing(&written, force)?;
    let generate = |e: rcgen::Error| CertError::Generate {
        path: written.cert.clone(),
        reason: e.to_string(),
    };
    let (not_before, not_after) = validity(SystemTime::now(), days);
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{cluster} haagent CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_offset(not_before);
    params.not_after = to_offset(not_after);
    params.serial_number = Some(random_serial(&written.cert)?);
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    write_file(&written.key, key.serialize_pem().as_bytes(), 0o600, force)?;
    write_file(&written.cert, cert.pem().as_bytes(), 0o644, force)?;
    Ok(written)
}

/// Issues a node certificate `DIR/NAME.pem` + `DIR/NAME-key.pem`, signed by `DIR/ca.pem` and
/// `DIR/ca-key.pem`, valid from one hour ago for `days` days. Subject `CN=NAME`;
/// subjectAltName: DNS `NAME` and every address in `ips`; extended key usage TLS server and
/// TLS client (every node is both). Refuses to replace existing files unless `force`.
pub fn issue(
    dir: &Path,
    name: &str,
    ips: &[IpAddr],
    days: u32,
    force: bool,
) -> Result<Written, CertError> {
    let (not_before, not_after) = validity(SystemTime::now(), days);
    issue_with_validity(dir, name, ips, not_before, not_after, force)
}

/// Renews `DIR/NAME.pem` (and its key): a new key and a new certificate from the CA in
/// `DIR`, valid from one hour ago for `days` days, with the same IP addresses as the current
/// certificate (the DNS name is `NAME`, as with [`issue`]). The old files are replaced
/// atomically; a running agent picks the new ones up on `haagent reload`.
pub fn renew(dir: &Path, name: &str, days: u32) -> Result<Written, CertError> {
    validate_node_name(name)?;
    let current = dir.join(format!("{name}.pem"));
    let der = super::inspect::read_certs(&current)?;
    let summary = super::inspect::summarize_at(&der[0], &current)?;
    issue(dir, name, &summary.ips, days, true)
}

/// Like [`issue`], with an explicit validity period (tests use it to make expired or
/// not-yet-valid certificates; operators normally want [`issue`]).
pub fn issue_with_validity(
    dir: &Path,
    name: &str,
    ips: &[IpAddr],
    not_before: SystemTime,
    not_after: SystemTime,
    force: bool,
) -> Result<Written, CertError> {
    validate_node_name(name)?;
    let written = Written {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_pem = read_string(&ca_cert_path)?;
    check_key_mode(&ca_key_path)?;
    let ca_key_pem = read_string(&ca_key_path)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| CertError::BadKey {
        path: ca_key_path.clone(),
        reason: e.to_string(),
    })?;
    // The CA key must belong to the CA certificate, or every node certificate would be useless.
    let ca_der = super::inspect::read_certs(&ca_cert_path)?;
    let ca_parsed =
        super::inspect::parse(ca_der[0].as_ref()).ok_or_else(|| CertError::BadCertificate {
            path: ca_cert_path.clone(),
            reason: "cannot parse the CA certificate".to_string(),
        })?;
    if ca_parsed.public_key().subject_public_key.data.as_ref() != ca_key.public_key_raw() {
        return Err(CertError::KeyMismatch {
            key: ca_key_path,
            cert: ca_cert_path,
        });
    }
    let issuer =
        Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| CertError::BadCertificate {
            path: ca_cert_path.clone(),
            reason: e.to_string(),
        })?;
    refuse_existing(&written, force)?;

    let generate = |e: rcgen::Error| CertError::Generate {
        path: written.cert.clone(),
        reason: e.to_string(),
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    let dns = name
        .to_string()
        .try_into()
        .map_err(|e: rcgen::Error| CertError::InvalidName {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    params.subject_alt_names = std::iter::once(SanType::DnsName(dns))
        .chain(ips.iter().map(|ip| SanType::IpAddress(*ip)))
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = to_offset(not_before);
    params.not_after = to_offset(not_after);
    params.serial_number = Some(random_serial(&written.cert)?);
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.signed_by(&key, &issuer).map_err(generate)?;
    write_file(&written.key, key.serialize_pem().as_bytes(), 0o600, force)?;
    write_file(&written.cert, cert.pem().as_bytes(), 0o644, force)?;
    Ok(written)
}

fn validate_cluster(cluster: &str) -> Result<(), CertError> {
    let bad = |reason: &str| {
        Err(CertError::InvalidCluster {
            name: cluster.to_string(),
            reason: reason.to_string(),
        })
    };
    if cluster.trim().is_empty() || cluster.len() > 64 {
        return bad("must be 1 to 64 characters long");
    }
    if cluster.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

fn validity(now: SystemTime, days: u32) -> (SystemTime, SystemTime) {
    (
        now - CLOCK_SKEW,
        now + Duration::from_secs(u64::from(days) * 86_400),
    )
}

fn to_offset(t: SystemTime) -> time::OffsetDateTime {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    // Out-of-range times (year > 9999) are clamped to the maximum X.509 can express.
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or_else(|_| rcgen::date_time_ymd(9999, 12, 31))
}

/// A random positive 16-byte serial number.
fn random_serial(path: &Path) -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        CertError::Generate {
            path: path.to_path_buf(),
            reason: "the system random number generator failed".to_string(),
        }
    })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

fn refuse_existing(written: &Written, force: bool) -> Result<(), CertError> {
    if force {
        return Ok(());
    }
    for path in [&written.cert, &written.key] {
        if path.symlink_metadata().is_ok() {
            return Err(CertError::Exists { path: path.clone() });
        }
    }
    Ok(())
}

fn read_string(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `data` to `path` created with `mode` (never readable by others in between).
/// Without `force` the file must not exist (O_EXCL); with `force` a temporary file in the same
/// directory is renamed over the old one.
fn write_file(path: &Path, data: &[u8], mode: u32, force: bool) -> Result<(), CertError> {
    let target = if force {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        PathBuf::from(tmp)
    } else {
        path.to_path_buf()
    };
    let write_err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)?;
        f.write_all(data)?;
        f.sync_all()?;
        if force {
            std::fs::rename(&target, path)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !force => {
            Err(CertError::Exists {
                path: path.to_path_buf(),
            })
        }
        Err(e) => {
            if force {
                let _ = std::fs::remove_file(&target);
            }
            Err(write_err(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{show, summarize};
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_ca_creates_private_dir_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let w = init_ca(&dir, "prod", 30, false).unwrap();
        assert_eq!(w.cert, dir.join("ca.pem"));
        assert_eq!(w.key, dir.join("ca-key.pem"));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&w.key), 0o600);
        let der = crate::certs::inspect::read_certs(&w.cert).unwrap();
        let s = summarize(&der[0]).unwrap();
        assert_eq!(s.subject, "CN=prod haagent CA");
        assert_eq!(s.issuer, s.subject);
        assert!(s.is_ca);
        let now = SystemTime::now();
        let before = now.duration_since(s.not_before).unwrap().as_secs();
        assert!((3590..=3610).contains(&before), "not_before {before}s ago");
        let after = s.not_after.duration_since(now).unwrap().as_secs();
        assert!(after.abs_diff(30 * 86_400) < 10, "not_after in {after}s");
    }

    #[test]
    fn renew_keeps_the_addresses_and_changes_serial_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init_ca(dir, "c", 30, false).unwrap();
        let ips: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let w = issue(dir, "n1", &ips, 10, false).unwrap();
        let read = |p: &Path| summarize(&crate::certs::inspect::read_certs(p).unwrap()[0]).unwrap();
        let old = read(&w.cert);
        let old_key = std::fs::read(&w.key).unwrap();
        let renewed = renew(dir, "n1", 20).unwrap();
        assert_eq!(renewed.cert, w.cert);
        let new = read(&renewed.cert);
        assert_eq!(new.ips, old.ips);
        assert_eq!(new.names, vec!["n1".to_string()]);
        assert_ne!(new.serial, old.serial);
        assert!(new.not_after > old.not_after);
        assert_ne!(std::fs::read(&renewed.key).unwrap(), old_key);
        assert_eq!(mode(&renewed.key), 0o600);
        // Nothing to renew: the error names the missing file.
        let err = renew(dir, "n9", 20).unwrap_err().to_string();
        assert!(err.contains("n9.pem"), "{err}");
    }

    #[test]
    fn force_is_needed_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init_ca(dir, "c", 30, false).unwrap();
        let first = std::fs::read(dir.join("ca-key.pem")).unwrap();
        let err = init_ca(dir, "c", 30, false).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ca.pem") && msg.contains("--force"), "{msg}");
        assert_eq!(std::fs::read(dir.join("ca-key.pem")).unwrap(), first);

        // A stale, world-readable key is replaced by a 0600 one.
        std::fs::set_permissions(dir.join("ca-key.pem"), PermissionsExt::from_mode(0o644)).unwrap();
        init_ca(dir, "c", 30, true).unwrap();
        assert_ne!(std::fs::read(dir.join("ca-key.pem")).unwrap(), first);
        assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);

        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        issue(dir, "n1", &[ip], 10, false).unwrap();
        // Only the key exists: still refused, naming the key.
        std::fs::remove_file(dir.join("n1.pem")).unwrap();
        let msg = issue(dir, "n1", &[ip], 10, false).unwrap_err().to_string();
        assert!(
            msg.contains("n1-key.pem") && msg.contains("--force"),
            "{msg}"
        );
        issue(dir, "n1", &[ip], 10, true).unwrap();
        assert_eq!(mode(&dir.join("n1-key.pem")), 0o600);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn issue_sets_sans_and_usages() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init_ca(dir, "test", 30, false).unwrap();
        let ips: Vec<IpAddr> = vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        let w = issue(dir, "node-a", &ips, 825, false).unwrap();
        assert_eq!(w.cert, dir.join("node-a.pem"));
        assert_eq!(w.key, dir.join("node-a-key.pem"));
        assert_eq!(mode(&w.key), 0o600);
        let der = crate::certs::inspect::read_certs(&w.cert).unwrap();
        let s = summarize(&der[0]).unwrap();
        assert_eq!(s.names, vec!["node-a".to_string()]);
        assert_eq!(s.ips, ips);
        assert_eq!(s.subject, "CN=node-a");
        assert_eq!(s.issuer, "CN=test haagent CA");
        assert!(s.server_auth && s.client_auth && !s.is_ca);
        // The generated pair loads as an identity.
        let id =
            crate::certs::load_identity(&dir.join("ca.pem"), &w.cert, &w.key, SystemTime::now())
                .unwrap();
        assert_eq!(id.names, vec!["node-a".to_string()]);
        assert_eq!(id.ips, ips);

        let text = show(&w.cert).unwrap();
        for want in [
            "CN=node-a",
            "node-a",
            "192.0.2.10",
            "2001:db8::1",
            "CN=test haagent CA",
            "TLS server, TLS client",
            "expires in 824 days",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(text.contains("Z ("), "RFC 3339 UTC times expected:\n{text}");
    }

    #[test]
    fn issue_refuses_bad_names_and_missing_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let err = issue(dir, "n1", &[], 10, false).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        init_ca(dir, "c", 30, false).unwrap();
        let err = issue(dir, "../evil", &[], 10, false).unwrap_err();
        assert!(matches!(err, CertError::InvalidName { .. }), "{err}");
        let err = init_ca(dir, "", 30, true).unwrap_err();
        assert!(matches!(err, CertError::InvalidCluster { .. }), "{err}");
    }

    #[test]
    fn show_reports_expired() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init_ca(dir, "c", 30, false).unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let w = issue_with_validity(dir, "old", &[], now - day * 20, now - day * 5, false).unwrap();
        let text = show(&w.cert).unwrap();
        assert!(text.contains("expired 5 days ago"), "{text}");
        let err = show(&dir.join("missing.pem")).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = show(&w.key).unwrap_err();
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err}");
    }
}
