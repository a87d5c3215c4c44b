//! Failures in words and kinds: a failed handshake as a [`RejectKind`] and a reason, a close
//! as a phrase, a bind error with its likely cause.

use std::net::SocketAddr;

use quinn::ConnectionError;

use super::verify::Refusal;
use super::{RejectKind, TransportError, MAX_QUOTED_REASON};

pub(super) fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Whether a failed handshake failed on TLS (a certificate judged and refused).
pub(super) fn is_certificate_failure(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::TransportError(t) => is_crypto(t.code),
        ConnectionError::ConnectionClosed(c) => is_crypto(c.error_code),
        _ => false,
    }
}

/// A handshake that failed on TLS ([`is_certificate_failure`]), as a kind and in words.
///
/// - We refused the peer (a local `TransportError`): the kind comes from the verifier's
///   record (`local`), or, when the refusal happened outside the verifier (no certificate at
///   all), from the alert we sent.
/// - The peer refused us (`ConnectionClosed`): only its alert is known.
pub(super) fn handshake_rejection(
    e: &ConnectionError,
    local: Option<Refusal>,
) -> (RejectKind, String) {
    let from_code = |code: quinn::TransportErrorCode| {
        RejectKind::from_crypto_code(u64::from(code)).unwrap_or(RejectKind::Other)
    };
    let with_hint = |mut words: String, hint: &str| {
        if !hint.is_empty() {
            words.push_str(&format!(" ({hint})"));
        }
        words
    };
    match e {
        ConnectionError::TransportError(t) => {
            // The verifier's own words are rustls's Display of the error it returned, the
            // same text quinn puts in `t.reason`.
            let (kind, detail, clock) = match local {
                Some(r) => (r.kind, r.words, r.clock),
                None if t.reason.is_empty() => (from_code(t.code), t.code.to_string(), None),
                None => (from_code(t.code), t.reason.clone(), None),
            };
            let words = format!("TLS handshake failed: {detail}");
            let mut words = with_hint(words, kind.local_hint());
            if let Some(clock) = clock {
                words.push_str(&format!("; {clock}"));
            }
            (kind, words)
        }
        ConnectionError::ConnectionClosed(c) => {
            let kind = from_code(c.error_code);
            let reason = quoted(&c.reason);
            let words = if reason.is_empty() {
                format!("the peer aborted the handshake: {}", c.error_code)
            } else {
                format!("the peer aborted the handshake: {reason}")
            };
            (kind, with_hint(words, kind.remote_hint()))
        }
        other => (RejectKind::Other, format!("handshake failed: {other}")),
    }
}

/// A peer's close reason fit for a log line: printable ASCII only (no line breaks or
/// terminal escapes an attacker could plant), at most [`MAX_QUOTED_REASON`] bytes.
pub(super) fn quoted(reason: &[u8]) -> String {
    let text = String::from_utf8_lossy(reason);
    let mut out: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_QUOTED_REASON)
        .collect();
    if text.chars().count() > MAX_QUOTED_REASON {
        out.push_str("...");
    }
    out
}

/// Why a connection closed, in words.
pub(super) fn close_words(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(a) => {
            let reason = quoted(&a.reason);
            if reason.is_empty() {
                format!("closed by the peer (code {})", a.error_code)
            } else {
                format!("closed by the peer: {reason}")
            }
        }
        ConnectionError::LocallyClosed => "closed locally".to_string(),
        ConnectionError::TimedOut => "idle timeout".to_string(),
        other => other.to_string(),
    }
}

pub(super) fn bind_error(addr: SocketAddr, e: std::io::Error) -> TransportError {
    let reason = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "address already in use (is another haagent or service on this port?)".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "address not available on this host (listen on an address the node owns, not the VIP)"
                .to_string()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_string()
        }
        _ => e.to_string(),
    };
    TransportError::Bind {
        addr,
        reason,
        source: e,
    }
}
