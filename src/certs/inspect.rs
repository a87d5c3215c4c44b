//! Reading certificates: the facts haagent needs from one ([`CertSummary`]), a human-readable
//! description for `haagent certs show`, and the small PEM/time helpers shared by the module.
//! The transport uses [`summarize`] on peers' certificates to map them to configured peers.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::CertError;

/// The facts haagent uses from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// DNS names in the subjectAltName extension.
    pub names: Vec<String>,
    /// IP addresses in the subjectAltName extension.
    pub ips: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Subject distinguished name, e.g. `CN=n1`.
    pub subject: String,
    /// Issuer distinguished name, e.g. `CN=prod haagent CA`.
    pub issuer: String,
    /// Whether the certificate is a CA (basicConstraints cA).
    pub is_ca: bool,
    /// Whether the certificate allows TLS server authentication (EKU serverAuth or none).
    pub server_auth: bool,
    /// Whether the certificate allows TLS client authentication (EKU clientAuth or none).
    pub client_auth: bool,
    /// The serial number in lowercase hex, without separators (what `certs show` prints and
    /// `status` shows per peer, to tell a renewed certificate from the old one).
    pub serial: String,
}

/// Extracts names, addresses, validity and issuer from a DER certificate.
///
/// Used on this node's certificate and on the certificates peers present. The path in an
/// error is empty because the certificate may come from the network.
pub fn summarize(der: &CertificateDer<'_>) -> Result<CertSummary, CertError> {
    summarize_at(der, Path::new(""))
}

pub(crate) fn summarize_at(
    der: &CertificateDer<'_>,
    path: &Path,
) -> Result<CertSummary, CertError> {
    let bad = |reason: String| CertError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let mut names = Vec::new();
    let mut ips = Vec::new();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("subjectAltName: {e}")))?
    {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => names.push((*n).to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ips.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let (server_auth, client_auth) = match cert
        .extended_key_usage()
        .map_err(|e| bad(format!("extendedKeyUsage: {e}")))?
    {
        Some(eku) => (
            eku.value.any || eku.value.server_auth,
            eku.value.any || eku.value.client_auth,
        ),
        None => (true, true),
    };
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| bad(format!("basicConstraints: {e}")))?
        .is_some_and(|bc| bc.value.ca);
    Ok(CertSummary {
        names,
        ips,
        not_before: system_time(cert.validity().not_before.timestamp()),
        not_after: system_time(cert.validity().not_after.timestamp()),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        is_ca,
        server_auth,
        client_auth,
        serial: cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

/// Describes every certificate in a PEM file for humans: subject, subjectAltNames, issuer,
/// validity (RFC 3339, UTC) and how long until it expires (or that it has expired).
pub fn show(file: &Path) -> Result<String, CertError> {
    let certs = read_certs(file)?;
    let now = SystemTime::now();
    let mut out = String::new();
    for (i, der) in certs.iter().enumerate() {
        let s = summarize_at(der, file)?;
        if certs.len() > 1 {
            let _ = writeln!(out, "certificate {} of {}:", i + 1, certs.len());
        }
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut usages = Vec::new();
        if s.is_ca {
            usages.push("CA");
        }
        if s.server_auth {
            usages.push("TLS server");
        }
        if s.client_auth {
            usages.push("TLS client");
        }
        let _ = writeln!(out, "subject:      {}", s.subject);
        let _ = writeln!(out, "DNS names:    {}", list(s.names.clone()));
        let _ = writeln!(
            out,
            "IP addresses: {}",
            list(s.ips.iter().map(ToString::to_string).collect())
        );
        let _ = writeln!(out, "serial:       {}", s.serial);
        let _ = writeln!(out, "issuer:       {}", s.issuer);
        let _ = writeln!(out, "usage:        {}", usages.join(", "));
        let _ = writeln!(out, "not before:   {}", rfc3339(s.not_before));
        let _ = writeln!(
            out,
            "not after:    {} ({})",
            rfc3339(s.not_after),
            expiry_words(s.not_after, now)
        );
    }
    Ok(out)
}

/// "expired N days ago" / "expires in N days" (whole days, rounded down).
pub(crate) fn expiry_words(not_after: SystemTime, now: SystemTime) -> String {
    const DAY: u64 = 86_400;
    match not_after.duration_since(now) {
        Ok(left) => match left.as_secs() / DAY {
            0 => format!("expires in {} hours", left.as_secs() / 3600),
            1 => "expires in 1 day".to_string(),
            d => format!("expires in {d} days"),
        },
        Err(e) => match e.duration().as_secs() / DAY {
            0 => "expired today".to_string(),
            1 => "expired 1 day ago".to_string(),
            d => format!("expired {d} days ago"),
        },
    }
}

/// Whole days from `now` until `not_after`, rounded down; negative once expired (a
/// certificate that expired 1 hour ago has -1: it is no longer valid today).
pub fn days_left(not_after: SystemTime, now: SystemTime) -> i64 {
    const DAY: u64 = 86_400;
    match not_after.duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs() / DAY).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs().div_ceil(DAY)).unwrap_or(i64::MAX),
    }
}

/// Reads all PEM `CERTIFICATE` blocks of a file (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificate {
            path: path.to_path_buf(),
            reason: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Formats a time as RFC 3339 UTC with second precision, e.g. `2025-01-31T12:00:00Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

pub(crate) fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_rounds_down_and_goes_negative_once_expired() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(days_left(now + day * 30, now), 30);
        assert_eq!(days_left(now + day * 30 - Duration::from_secs(1), now), 29);
        assert_eq!(days_left(now + Duration::from_secs(5), now), 0);
        assert_eq!(days_left(now - Duration::from_secs(5), now), -1);
        assert_eq!(days_left(now - day * 2, now), -2);
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(system_time(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(system_time(1_735_689_599)), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339(system_time(-1)), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn expiry_in_words() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            expiry_words(now + day * 10 + day / 2, now),
            "expires in 10 days"
        );
        assert_eq!(expiry_words(now - day * 3, now), "expired 3 days ago");
    }
}
