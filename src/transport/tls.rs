//! TLS and QUIC settings for the links between nodes.
//!
//! Every node is both TLS server and TLS client with the same certificate. The server
//! requires a client certificate signed by the cluster CA ([`WebPkiClientVerifier`]); the
//! client checks the server's certificate against the CA and against the name (or IP address)
//! configured for that peer. TLS 1.3 only, *ring* only, no session resumption (every
//! connection checks the certificates again, so an expired or replaced certificate is noticed
//! at the next reconnect), ALPN [`ALPNS`] (`haagent/2`, then `haagent/1`).
//!
//! QUIC timers: keep-alive 1 s and idle timeout 10 s only keep NAT/conntrack state warm and
//! eventually clean up dead connections. They are deliberately NOT the failure detector: QUIC
//! declares a connection dead only after the idle timeout, several seconds after a cut (3.5 s
//! for a 3 s timeout was measured), and a shorter idle timeout would make a connection flap on
//! a brief loss burst and force a new handshake. The election notices a dead peer from missed
//! adverts (a few advert intervals), independent of what QUIC thinks of the connection.
//!
//! Each connection gets its own rustls configuration around the shared verifiers and key
//! (`TlsContext`), so its verifier can record why it refused the peer (`verify.rs`): quinn
//! passes only an error code and a text on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::ring::default_provider;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SignatureScheme};

use super::verify::{Recorder, RecordingClientVerifier, RecordingServerVerifier, Verdict};
use super::TransportError;
use crate::certs::{self, NodeIdentity};

/// The ALPN protocol of wire version 2 (one datagram per node, every VIP group).
pub const ALPN_V2: &[u8] = b"haagent/2";

/// The ALPN protocol of wire version 1 (one advert, one group), what every release before
/// VIP groups offers and the only one it accepts.
pub const ALPN_V1: &[u8] = b"haagent/1";

/// The peer protocols this build offers as a client and accepts as a server, preferred
/// first: a server picks the first of its list the client also offers, so two new nodes
/// speak v2 and a new node and a v1-only one speak v1 (docs/wire-format.md).
pub const ALPNS: [&[u8]; 2] = [ALPN_V2, ALPN_V1];

/// [`ALPN_V1`], under its name from before wire version 2.
pub const ALPN: &[u8] = ALPN_V1;

/// The wire version a connection negotiated by ALPN: 2 for [`ALPN_V2`], else 1 (also for a
/// connection without ALPN, which only a v1-era peer could have made).
pub(crate) fn negotiated_version(conn: &quinn::Connection) -> u8 {
    let protocol = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol);
    if protocol.as_deref() == Some(ALPN_V2) {
        crate::wire::WIRE_VERSION_2
    } else {
        crate::wire::WIRE_VERSION
    }
}

/// QUIC keep-alive interval.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// QUIC idle timeout (connection clean-up, not failure detection: see the module doc).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Size of the per-connection datagram send buffer (adverts are ~100 bytes).
pub(crate) const DATAGRAM_SEND_BUFFER: usize = 64 * 1024;
/// Size of the per-connection datagram receive buffer.
pub(crate) const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;

fn roots(id: &NodeIdentity) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for ca in &id.ca {
        roots.add(ca.clone()).map_err(TransportError::Tls)?;
    }
    Ok(roots)
}

/// Everything a connection's TLS configuration is built from, prepared once per identity:
/// the CA verifiers, the node's certificate and key, the QUIC transport parameters.
pub(crate) struct TlsContext {
    provider: Arc<CryptoProvider>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<dyn ServerCertVerifier>,
    key: Arc<CertifiedKey>,
    ca_not_before: Option<SystemTime>,
    /// Server settings without the per-connection crypto.
    server_base: quinn::ServerConfig,
    transport: Arc<quinn::TransportConfig>,
}

impl TlsContext {
    /// Prepares the verifiers (against `id.ca`) and the signing key.
    pub(crate) fn new(id: &NodeIdentity) -> Result<TlsContext, TransportError> {
        let provider = Arc::new(default_provider());
        let roots = Arc::new(roots(id)?);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| TransportError::Config(format!("client certificate verifier: {e}")))?;
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| TransportError::Config(format!("server certificate verifier: {e}")))?;
        let signing = provider
            .key_provider
            .load_private_key(id.clone_key())
            .map_err(TransportError::Tls)?;
        let key = Arc::new(CertifiedKey::new(id.chain.clone(), signing));
        key.keys_match().map_err(TransportError::Tls)?;
        // The earliest start of validity among the CA certificates (see clock.rs).
        let ca_not_before = id
            .ca
            .iter()
            .filter_map(|c| certs::summarize(c).ok())
            .map(|s| s.not_before)
            .min();
        let transport = transport_config()?;
        let recorder = Recorder {
            verdict: Arc::new(Verdict::default()),
            ca_not_before,
        };
        let crypto = server_crypto(&provider, &client_verifier, &key, recorder)?;
        let mut server_base = quinn::ServerConfig::with_crypto(crypto);
        server_base.transport_config(Arc::clone(&transport));
        server_base.migration(false);
        Ok(TlsContext {
            provider,
            client_verifier,
            server_verifier,
            key,
            ca_not_before,
            server_base,
            transport,
        })
    }

    /// Whether a certificate chain a peer presented earlier still verifies against this
    /// context's CA (a reload with a new trust bundle re-checks live connections with it).
    pub(crate) fn still_trusts(
        &self,
        chain: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Result<(), rustls::Error> {
        let (end_entity, intermediates) = chain
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        self.client_verifier
            .verify_client_cert(end_entity, intermediates, rustls_pki_types::UnixTime::now())
            .map(|_| ())
    }

    /// This node's own certificate (the first of its chain).
    pub(crate) fn own_certificate(&self) -> Option<&rustls_pki_types::CertificateDer<'static>> {
        self.key.cert.first()
    }

    fn recorder(&self) -> Recorder {
        Recorder {
            verdict: Arc::new(Verdict::default()),
            ca_not_before: self.ca_not_before,
        }
    }

    /// Server side for one inbound connection: TLS 1.3, client certificate required and
    /// verified against the CA; the verdict tells why the client was refused.
    pub(crate) fn server(&self) -> Result<(quinn::ServerConfig, Arc<Verdict>), TransportError> {
        let recorder = self.recorder();
        let verdict = Arc::clone(&recorder.verdict);
        let crypto = server_crypto(&self.provider, &self.client_verifier, &self.key, recorder)?;
        let mut cfg = self.server_base.clone();
        cfg.crypto = crypto;
        Ok((cfg, verdict))
    }

    /// Client side for one dial: TLS 1.3, the server verified against the CA and the dialled
    /// name, our certificate presented; the verdict tells why the server was refused.
    /// It offers [`ALPNS`].
    pub(crate) fn client(&self) -> Result<(quinn::ClientConfig, Arc<Verdict>), TransportError> {
        self.client_with_alpns(&ALPNS)
    }

    /// [`TlsContext::client`] offering `alpns` instead, preferred first (the doctor's probe).
    pub(crate) fn client_with_alpns(
        &self,
        alpns: &[&[u8]],
    ) -> Result<(quinn::ClientConfig, Arc<Verdict>), TransportError> {
        let recorder = self.recorder();
        let verdict = Arc::clone(&recorder.verdict);
        let verifier = Arc::new(RecordingServerVerifier {
            inner: Arc::clone(&self.server_verifier),
            recorder,
        });
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TransportError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(OneCert(Arc::clone(&self.key))));
        tls.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
        tls.resumption = rustls::client::Resumption::disabled();
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| TransportError::Config(format!("QUIC client: {e}")))?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
        cfg.transport_config(Arc::clone(&self.transport));
        Ok((cfg, verdict))
    }
}

/// The rustls server side around a recording client verifier.
fn server_crypto(
    provider: &Arc<CryptoProvider>,
    client_verifier: &Arc<dyn ClientCertVerifier>,
    key: &Arc<CertifiedKey>,
    recorder: Recorder,
) -> Result<Arc<dyn quinn::crypto::ServerConfig>, TransportError> {
    let verifier = Arc::new(RecordingClientVerifier {
        inner: Arc::clone(client_verifier),
        recorder,
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(OneCert(Arc::clone(key))));
    tls.alpn_protocols = super::probe::server_alpns();
    tls.send_tls13_tickets = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TransportError::Config(format!("QUIC server: {e}")))?;
    Ok(Arc::new(quic))
}

/// Always presents the node's one certificate (as rustls's `with_single_cert` and
/// `with_client_auth_cert` do), without parsing the key again for every connection.
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

impl ResolvesClientCert for OneCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Server side: TLS 1.3, client certificate required and verified against `id.ca`.
pub fn server_config(id: &NodeIdentity) -> Result<quinn::ServerConfig, TransportError> {
    Ok(TlsContext::new(id)?.server()?.0)
}

/// Client side: TLS 1.3, server verified against `id.ca` and the dialled name, our own
/// certificate presented for client authentication.
pub fn client_config(id: &NodeIdentity) -> Result<quinn::ClientConfig, TransportError> {
    Ok(TlsContext::new(id)?.client()?.0)
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
