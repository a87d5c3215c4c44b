//! TLS and QUIC settings for the links between nodes.
//!
//! Every node is both TLS server and TLS client with the same certificate. The server
//! requires a client certificate signed by the cluster CA ([`WebPkiClientVerifier`]); the
//! client checks the server's certificate against the CA and against the name (or IP address)
//! configured for that peer. TLS 1.3 only, *ring* only, no session resumption (every
//! connection checks the certificates again, so an expired or replaced certificate is noticed
//! at the next reconnect), ALPN [`ALPN`].
//!
//! QUIC timers: keep-alive 1 s and idle timeout 10 s only keep NAT/conntrack state warm and
//! eventually clean up dead connections. They are deliberately NOT the failure detector: QUIC
//! declares a connection dead only after the idle timeout, several seconds after a cut (3.5 s
//! for a 3 s timeout was measured), and a shorter idle timeout would make a connection flap on
//! a brief loss burst and force a new handshake. The election notices a dead peer from missed
//! adverts (a few advert intervals), independent of what QUIC thinks of the connection.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring::default_provider;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::TransportError;
use crate::certs::NodeIdentity;

/// The ALPN protocol both sides must offer.
pub const ALPN: &[u8] = b"haagent/1";

/// QUIC keep-alive interval.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// QUIC idle timeout (connection clean-up, not failure detection: see the module doc).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Size of the per-connection datagram send buffer (adverts are ~100 bytes).
pub(crate) const DATAGRAM_SEND_BUFFER: usize = 64 * 1024;
/// Size of the per-connection datagram receive buffer.
pub(crate) const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(default_provider())
}

fn roots(id: &NodeIdentity) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for ca in &id.ca {
        roots.add(ca.clone()).map_err(TransportError::Tls)?;
    }
    Ok(roots)
}

/// Server side: TLS 1.3, client certificate required and verified against `id.ca`.
pub fn server_config(id: &NodeIdentity) -> Result<quinn::ServerConfig, TransportError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(id)?), Arc::clone(&provider))
            .build()
            .map_err(|e| TransportError::Config(format!("client certificate verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.clone_key())
        .map_err(TransportError::Tls)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.send_tls13_tickets = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TransportError::Config(format!("QUIC server: {e}")))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(transport_config()?);
    cfg.migration(false);
    Ok(cfg)
}

/// Client side: TLS 1.3, server verified against `id.ca` and the dialled name, our own
/// certificate presented for client authentication.
pub fn client_config(id: &NodeIdentity) -> Result<quinn::ClientConfig, TransportError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(id.chain.clone(), id.clone_key())
        .map_err(TransportError::Tls)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TransportError::Config(format!("QUIC client: {e}")))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport_config()?);
    Ok(cfg)
}

/// QUIC transport parameters shared by both sides.
pub(crate) fn transport_config() -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(IDLE_TIMEOUT)
        .map_err(|e| TransportError::Config(format!("idle timeout: {e}")))?;
    t.max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
        // No bidirectional streams; one unidirectional stream carries the server's
        // "you are accepted" confirmation.
        .max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(1u32.into());
    t.congestion_controller_factory(Arc::new(super::congestion::FixedWindowFactory));
    Ok(Arc::new(t))
}
