//! Certificate verifiers that remember why they refused a peer.
//!
//! quinn turns a failed TLS handshake into a QUIC error code and a text; the typed rustls
//! error is gone by then. So each connection gets its own wrapper around the shared webpki
//! verifier, with its own [`Verdict`] slot: the wrapper records the typed error (as a
//! [`Refusal`]) on its way out, and the task that drives the handshake reads it back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::reject::RejectKind;
use crate::certs::{self, clock_suspicion, ClockSuspicion};

/// Why this node refused a peer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The class of the error.
    pub(crate) kind: RejectKind,
    /// rustls's description of the error.
    pub(crate) words: String,
    /// Set when the certificate was judged out of date by a margin that points at this
    /// node's clock rather than at the certificate.
    pub(crate) clock: Option<ClockSuspicion>,
}

/// One connection's verdict slot, shared by its verifier and its handshake task.
#[derive(Debug, Default)]
pub(crate) struct Verdict(Mutex<Option<Refusal>>);

impl Verdict {
    /// Keeps the first refusal (the one that ended the handshake).
    fn record(&self, refusal: Refusal) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(refusal);
        }
    }

    /// The recorded refusal, if the verifier refused.
    pub(crate) fn take(&self) -> Option<Refusal> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What both wrappers need besides the inner verifier.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub(crate) verdict: Arc<Verdict>,
    /// Start of validity of this node's CA (see [`clock_suspicion`]).
    pub(crate) ca_not_before: Option<SystemTime>,
}

impl Recorder {
    /// Passes `result` through, recording an error first.
    fn judge<T>(
        &self,
        result: Result<T, rustls::Error>,
        end_entity: Option<&CertificateDer<'_>>,
        now: Option<UnixTime>,
    ) -> Result<T, rustls::Error> {
        if let Err(e) = &result {
            self.verdict
                .record(refusal(e, end_entity, now, self.ca_not_before));
        }
        result
    }
}

/// Classifies a verifier error; for "expired"/"not yet valid", reads the certificate's
/// validity window to decide whether the local clock is to blame.
pub(crate) fn refusal(
    e: &rustls::Error,
    end_entity: Option<&CertificateDer<'_>>,
    now: Option<UnixTime>,
    ca_not_before: Option<SystemTime>,
) -> Refusal {
    let kind = RejectKind::from_tls_error(e);
    let out_of_date = matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    );
    let clock = match (out_of_date, end_entity, now) {
        (true, Some(der), Some(now)) => certs::summarize(der).ok().and_then(|s| {
            let now = UNIX_EPOCH + Duration::from_secs(now.as_secs());
            clock_suspicion(now, s.not_before, s.not_after, ca_not_before)
        }),
        _ => None,
    };
    Refusal {
        kind,
        words: e.to_string(),
        clock,
    }
}

/// The server's check of client certificates, recording refusals.
#[derive(Debug)]
pub(crate) struct RecordingClientVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) recorder: Recorder,
}

impl ClientCertVerifier for RecordingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let result = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        self.recorder.judge(result, Some(end_entity), Some(now))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = self.inner.verify_tls12_signature(message, cert, dss);
        self.recorder.judge(result, None, None)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = self.inner.verify_tls13_signature(message, cert, dss);
        self.recorder.judge(result, None, None)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// The client's check of the server certificate, recording refusals.
#[derive(Debug)]
pub(crate) struct RecordingServerVerifier {
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    pub(crate) recorder: Recorder,
}

impl ServerCertVerifier for RecordingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        self.recorder.judge(result, Some(end_entity), Some(now))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = self.inner.verify_tls12_signature(message, cert, dss);
        self.recorder.judge(result, None, None)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = self.inner.verify_tls13_signature(message, cert, dss);
        self.recorder.judge(result, None, None)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}
