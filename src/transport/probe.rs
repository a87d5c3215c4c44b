//! The doctor's probe connection: a QUIC handshake with its own ALPN ([`DOCTOR_ALPN`]), so
//! that a running agent answers it (confirms that it accepts our certificate) and closes it,
//! and never takes it for a peer connection that would replace the live one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use quinn::VarInt;

use super::dial::{dial_error, DialError};
use super::identity::peer_names;
use super::tls::TlsContext;
use super::{PeerSpec, ACCEPTED, CLOSE_SHUTDOWN};
use crate::certs::NodeIdentity;

/// The ALPN of the doctor's probe. An agent offers it beside [`super::ALPNS`]; a connection
/// that negotiated it is confirmed and closed, never registered as a peer.
pub const DOCTOR_ALPN: &[u8] = b"haagent-doctor/1";

/// What a peer that answered the probe presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// DNS names of its certificate (rustls already checked them against the dialled name).
    pub names: Vec<String>,
    /// IP addresses of its certificate.
    pub ips: Vec<IpAddr>,
    /// The last advert the peer's agent sent (wire format, v1 or v2: decode it with
    /// [`crate::wire::decode_any`]), if it has sent one yet. An agent that sends both
    /// versions answers with the v1 copy, which doctors of every release can read.
    pub advert: Option<Vec<u8>>,
}

/// Most bytes read as the peer's advert (a name is at most 64 bytes; see `wire.rs`).
const MAX_ADVERT: usize = 512;
/// How long the doctor waits for the advert stream after the confirmation.
const ADVERT_WAIT: Duration = Duration::from_millis(500);

/// Why the probe failed, in words for the doctor's line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered within the timeout.
    #[error("no QUIC answer within {0:?}")]
    NoAnswer(Duration),
    /// One side refused the other's certificate, or the peer refused the probe.
    #[error("{0}")]
    Refused(String),
}

/// Dials `peer` from `bind` with this node's identity and the doctor ALPN and waits for the
/// peer's confirmation that it accepts us; then closes the connection.
pub async fn probe(
    identity: &NodeIdentity,
    bind: SocketAddr,
    peer: &PeerSpec,
    timeout: Duration,
) -> Result<ProbeAnswer, ProbeError> {
    let refused = |e: String| ProbeError::Refused(e);
    let tls = TlsContext::new(identity).map_err(|e| refused(e.to_string()))?;
    let (client, verdict) = tls
        .client_with_alpns(&[DOCTOR_ALPN])
        .map_err(|e| refused(e.to_string()))?;
    let endpoint =
        quinn::Endpoint::client(bind).map_err(|e| refused(format!("cannot bind {bind}: {e}")))?;
    let words = |e: DialError| match e {
        DialError::Rejected(_, reason) | DialError::Other(reason) => refused(reason),
        DialError::NoAnswer => ProbeError::NoAnswer(timeout),
    };
    let attempt = async {
        let connecting = endpoint
            .connect_with(client, peer.addr, &peer.server_name())
            .map_err(|e| refused(format!("cannot dial: {e}")))?;
        let conn = connecting
            .await
            .map_err(|e| words(dial_error(&e, &verdict)))?;
        let (names, ips) = peer_names(&conn).map_err(|(_, reason)| refused(reason))?;
        let mut stream = conn
            .accept_uni()
            .await
            .map_err(|e| words(dial_error(&e, &verdict)))?;
        let got = stream
            .read_to_end(ACCEPTED.len())
            .await
            .map_err(|e| refused(format!("no confirmation: {e}")))?;
        if got != ACCEPTED {
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"doctor done");
            return Err(refused("bad confirmation".into()));
        }
        // A second stream carries the peer's last advert; empty when it has sent none yet.
        let advert = async {
            let mut stream = conn.accept_uni().await.ok()?;
            stream.read_to_end(MAX_ADVERT).await.ok()
        };
        let advert = tokio::time::timeout(ADVERT_WAIT, advert)
            .await
            .ok()
            .flatten()
            .filter(|a| !a.is_empty());
        conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"doctor done");
        Ok(ProbeAnswer { names, ips, advert })
    };
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::NoAnswer(timeout)),
    };
    endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"doctor done");
    let _ = tokio::time::timeout(Duration::from_millis(200), endpoint.wait_idle()).await;
    result
}

/// Server side: the connection negotiated [`DOCTOR_ALPN`].
pub(super) fn is_probe(conn: &quinn::Connection) -> bool {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
        .is_some_and(|p| p == DOCTOR_ALPN)
}

/// Server side: confirms an accepted probe, sends a copy of the last advert (if any) and
/// closes the connection once the doctor has read them.
pub(super) async fn answer(conn: quinn::Connection, advert: Option<bytes::Bytes>, bound: Duration) {
    let confirm = async {
        let mut stream = conn.open_uni().await.ok()?;
        stream.write_all(ACCEPTED).await.ok()?;
        stream.finish().ok()?;
        let mut stream = conn.open_uni().await.ok()?;
        stream
            .write_all(advert.as_deref().unwrap_or_default())
            .await
            .ok()?;
        stream.finish().ok()?;
        conn.closed().await;
        Some(())
    };
    let _ = tokio::time::timeout(bound, confirm).await;
    conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"doctor probe answered");
}

/// The server's ALPN list: the peer protocols (v2 preferred, [`super::tls::ALPNS`]), then
/// the probe's.
pub(super) fn server_alpns() -> Vec<Vec<u8>> {
    super::tls::ALPNS
        .iter()
        .chain([&DOCTOR_ALPN])
        .map(|a| a.to_vec())
        .collect()
}
