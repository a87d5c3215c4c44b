//! Accepting: the accept loop, haagent's identity check of an inbound connection on top of
//! TLS, and the datagram read loop of every accepted connection (either direction).

use std::sync::Arc;

use quinn::{ConnectionError, VarInt};
use tracing::{debug, warn};

use super::failure::{close_words, handshake_rejection, is_certificate_failure};
use super::identity::{ips_words, match_peer, peer_names};
use super::links::{stopped, Dir, Shared};
use super::{
    RejectKind, TransportEvent, ACCEPTED, CLOSE_SHUTDOWN, CLOSE_UNKNOWN_PEER, HANDSHAKE_TIMEOUT,
};

pub(super) async fn accept_loop(shared: Arc<Shared>) {
    loop {
        let incoming = tokio::select! {
            _ = stopped(&shared) => break,
            incoming = shared.endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        tokio::spawn(handle_inbound(Arc::clone(&shared), incoming));
    }
    debug!("accept loop ended");
}

pub(super) async fn handle_inbound(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    // This connection's own TLS configuration, so its verifier can say why it refused.
    let (server, verdict) = match shared.tls().server() {
        Ok(s) => s,
        Err(e) => {
            warn!(%remote, error = %e, "cannot build the TLS configuration for an inbound connection");
            incoming.refuse();
            return;
        }
    };
    let connecting = match incoming.accept_with(Arc::new(server)) {
        Ok(c) => c,
        Err(e) => {
            debug!(%remote, error = %e, "inbound connection not accepted");
            return;
        }
    };
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(ConnectionError::TimedOut | ConnectionError::LocallyClosed)) | Err(_) => {
            debug!(%remote, "inbound handshake did not complete");
            return;
        }
        Ok(Err(e)) if is_certificate_failure(&e) => {
            let (kind, reason) = handshake_rejection(&e, verdict.take());
            shared.reject(remote, kind, reason);
            return;
        }
        Ok(Err(e)) => {
            // A dialler that gives up mid-handshake (it is shutting down, say) is not a
            // rejection: nothing about its certificate was judged.
            debug!(%remote, reason = %close_words(&e), "inbound handshake abandoned");
            return;
        }
    };
    let (names, ips) = match peer_names(&conn) {
        Ok(n) => n,
        Err((kind, reason)) => {
            conn.close(
                VarInt::from_u32(CLOSE_UNKNOWN_PEER),
                b"unusable certificate",
            );
            shared.reject(remote, kind, reason);
            return;
        }
    };
    let contacts = shared.contacts();
    let specs: Vec<_> = contacts.iter().map(|c| c.spec.clone()).collect();
    let Some(peer) = match_peer(&specs, &names, &ips, remote) else {
        conn.close(
            VarInt::from_u32(CLOSE_UNKNOWN_PEER),
            b"certificate matches no configured peer",
        );
        shared.reject(
            remote,
            RejectKind::UnknownPeer,
            format!(
                "certificate names {names:?} (IP addresses {}) match no configured peer",
                ips_words(&ips)
            ),
        );
        return;
    };
    // The doctor's probe (its own ALPN): confirmed and closed, never a peer connection.
    if super::probe::is_probe(&conn) {
        debug!(peer = %shared.describe(peer), %remote, "doctor probe answered");
        let advert = shared.last_advert.lock().ok().and_then(|a| a.clone());
        super::probe::answer(conn, advert, HANDSHAKE_TIMEOUT).await;
        return;
    }
    // Tell the client it is accepted (see the module doc).
    let confirmed = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
        stream
            .write_all(ACCEPTED)
            .await
            .map_err(|e| e.to_string())?;
        stream.finish().map_err(|e| e.to_string())
    })
    .await;
    match confirmed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(%remote, error = %e, "could not confirm an inbound connection");
            return;
        }
        Err(_) => {
            debug!(%remote, "could not confirm an inbound connection in time");
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"confirmation timed out");
            return;
        }
    }
    let Some(seq) = shared.register(peer, &contacts[peer], Dir::Inbound, &conn) else {
        return;
    };
    let reason = read_loop(&shared, peer, names, &conn).await;
    shared.unregister(peer, Dir::Inbound, seq, &reason);
}

/// Forwards datagrams of an accepted connection until it closes; returns why it closed.
pub(super) async fn read_loop(
    shared: &Shared,
    peer: usize,
    names: Vec<String>,
    conn: &quinn::Connection,
) -> String {
    loop {
        tokio::select! {
            _ = stopped(shared) => return "shutting down".to_string(),
            r = conn.read_datagram() => match r {
                Ok(payload) => {
                    shared.heard(peer);
                    shared.emit(TransportEvent::Datagram {
                        peer,
                        names: names.clone(),
                        payload,
                    });
                }
                Err(e) => return close_words(&e),
            },
        }
    }
}
