//! Dialling: one loop per peer that dials, waits on the accepted connection, redials (fast
//! contact or backoff), and classifies a failed dial.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quinn::{ConnectionError, VarInt};
use tracing::debug;

use super::failure::{close_words, handshake_rejection, is_certificate_failure};
use super::identity::{ips_words, peer_names};
use super::inbound::read_loop;
use super::links::{ended, Contact, Dir, Shared, MIN_REDIAL};
use super::verify::Verdict;
use super::{
    PeerSpec, RejectKind, ACCEPTED, CLOSE_SHUTDOWN, CLOSE_UNKNOWN_PEER, HANDSHAKE_TIMEOUT,
    MAX_BACKOFF, MIN_BACKOFF,
};

/// How a dial attempt failed.
pub(super) enum DialError {
    /// An identity problem (either side refused the other's certificate).
    Rejected(RejectKind, String),
    /// Fast contact: the peer did not answer at all within the redial interval (it is
    /// unreachable, or our Initial was lost); dialled afresh at once.
    NoAnswer,
    /// Anything else (peer down, timeout, ...): retried quietly.
    Other(String),
}

/// What ended the wait on our accepted outbound connection.
pub(super) enum Wake {
    /// It closed.
    Closed,
    /// Fast contact: the peer has been silent too long; dial beside it.
    Silent,
    /// This node's certificate changed: dial beside it, so the peer sees the new one.
    Refresh,
}

/// Dials `peer` for as long as the transport runs; see the module doc for fast contact.
///
/// Without fast contact: after every outcome, a pause that doubles from 100 ms to 2 s (reset
/// by an accepted connection). With it: a dial with no answer is made again at once (it took
/// a redial interval), other failures pause at most a redial interval, and only a rejection
/// keeps the full backoff, so a peer that refuses us sees at most one handshake per 2 s.
///
/// Peer number `peer` is `contact`; the loop ends when the transport stops or a reload
/// retires that peer ([`Transport::set_peers`]).
pub(super) async fn dial_loop(shared: Arc<Shared>, peer: usize, contact: Arc<Contact>) {
    let mut backoff = MIN_BACKOFF;
    let addr = contact.spec.addr;
    let kick = &contact.kick;
    // The read task of our most recent accepted outbound connection.
    let mut outbound: Option<tokio::task::JoinHandle<()>> = None;
    while !shared.stopped() && !contact.is_retired() {
        if let Some(task) = outbound.as_mut() {
            let wake = tokio::select! {
                () = ended(&shared, &contact) => break,
                w = watch_outbound(&shared, peer, &contact, task) => w,
            };
            if let Wake::Closed = wake {
                outbound = None;
                if !pause(&shared, &contact, backoff, true).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        // The dial below takes the current certificate: a refresh asked for before now is
        // done by it (cleared first, so a reload in between asks again).
        contact.refresh.store(false, Ordering::Relaxed);
        let fast = shared.redial();
        let answered = std::sync::atomic::AtomicBool::new(false);
        let started = std::time::Instant::now();
        let attempt = dial_once(&shared, &contact.spec, fast, &answered);
        tokio::pin!(attempt);
        let outcome = loop {
            tokio::select! {
                () = ended(&shared, &contact) => break None,
                o = &mut attempt => break Some(o),
                // Proof the path is back: an attempt that has had no answer yet sent its
                // Initial into the void; send a fresh one now.
                () = kick.notified(), if fast.is_some() => {
                    let min_age = fast.unwrap_or(MIN_REDIAL) / 4;
                    if !answered.load(Ordering::Relaxed) && started.elapsed() >= min_age {
                        break Some(Err(DialError::NoAnswer));
                    }
                }
            }
        };
        let Some(outcome) = outcome else { break };
        match outcome {
            Ok((conn, names)) => {
                backoff = MIN_BACKOFF;
                let Some(seq) = shared.register(peer, &contact, Dir::Outbound, &conn) else {
                    break;
                };
                let shared = Arc::clone(&shared);
                // A previous outbound connection, if still open, was just replaced (closed
                // by `register`); its task ends by itself.
                outbound = Some(tokio::spawn(async move {
                    let reason = read_loop(&shared, peer, names, &conn).await;
                    shared.unregister(peer, Dir::Outbound, seq, &reason);
                }));
                continue;
            }
            Err(DialError::NoAnswer) => {
                debug!(peer = %contact.spec.describe(), "no answer to a dial; dialling afresh");
                continue;
            }
            Err(DialError::Rejected(kind, reason)) => {
                shared.reject(addr, kind, reason);
                if !pause(&shared, &contact, backoff, false).await {
                    break;
                }
            }
            Err(DialError::Other(reason)) => {
                debug!(peer = %contact.spec.describe(), %reason, "dial failed");
                let wait = fast.map_or(backoff, |r| backoff.min(r));
                if !pause(&shared, &contact, wait, true).await {
                    break;
                }
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    if let Some(task) = outbound {
        let _ = task.await;
    }
    debug!(peer = %contact.spec.describe(), "dial loop ended");
}

/// Sleeps `wait`, cut short by [`Transport::redial_now`] when `kickable` and fast contact
/// is on. False when the transport stops or the peer is retired meanwhile.
pub(super) async fn pause(
    shared: &Shared,
    contact: &Contact,
    wait: Duration,
    kickable: bool,
) -> bool {
    let kickable = kickable && shared.redial().is_some();
    tokio::select! {
        () = ended(shared, contact) => false,
        _ = tokio::time::sleep(wait) => true,
        () = contact.kick.notified(), if kickable => true,
    }
}

/// Waits until our outbound connection closes or, with fast contact, until the peer has
/// sent nothing for two redial intervals (or one, after [`Transport::redial_now`]).
pub(super) async fn watch_outbound(
    shared: &Shared,
    peer: usize,
    contact: &Contact,
    task: &mut tokio::task::JoinHandle<()>,
) -> Wake {
    let refresh = &contact.refresh;
    loop {
        let check = shared.redial().unwrap_or(MIN_REDIAL);
        if refresh.swap(false, Ordering::Relaxed) {
            return Wake::Refresh;
        }
        if shared.redial().is_some() && shared.silent_for(peer) > check * 2 {
            return Wake::Silent;
        }
        tokio::select! {
            _ = &mut *task => return Wake::Closed,
            () = contact.refresh_kick.notified() => {}
            () = contact.kick.notified(), if shared.redial().is_some() => {
                if shared.silent_for(peer) > check {
                    return Wake::Silent;
                }
            }
            _ = tokio::time::sleep(check) => {}
        }
    }
}

/// Dials one peer and waits until it has accepted us. With fast contact (`no_answer`), a
/// peer that has not answered at all within that time is [`DialError::NoAnswer`]; `answered`
/// is set once it has.
pub(super) async fn dial_once(
    shared: &Shared,
    spec: &PeerSpec,
    no_answer: Option<Duration>,
    answered: &std::sync::atomic::AtomicBool,
) -> Result<(quinn::Connection, Vec<String>), DialError> {
    // This dial's own TLS configuration, so its verifier can say why it refused the server.
    let (client, verdict) = shared
        .tls()
        .client()
        .map_err(|e| DialError::Other(format!("cannot build the TLS configuration: {e}")))?;
    let mut connecting = shared
        .endpoint
        .connect_with(client, spec.addr, &spec.server_name())
        .map_err(|e| DialError::Other(format!("cannot dial: {e}")))?;
    if let Some(bound) = no_answer {
        // The server's first flight (its handshake data) is the answer.
        match tokio::time::timeout(bound, connecting.handshake_data()).await {
            Err(_) => return Err(DialError::NoAnswer),
            Ok(Err(e)) => return Err(dial_error(&e, &verdict)),
            Ok(Ok(_)) => answered.store(true, Ordering::Relaxed),
        }
    }
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Err(_) => return Err(DialError::Other("handshake timed out".to_string())),
        Ok(Err(e)) => return Err(dial_error(&e, &verdict)),
        Ok(Ok(conn)) => conn,
    };
    // rustls already checked the CA and the name; this keeps the mapping rule in one place.
    let (names, ips) =
        peer_names(&conn).map_err(|(kind, reason)| DialError::Rejected(kind, reason))?;
    if !spec.matches(&names, &ips) {
        conn.close(
            VarInt::from_u32(CLOSE_UNKNOWN_PEER),
            b"certificate does not match the configured peer",
        );
        return Err(DialError::Rejected(
            RejectKind::UnknownPeer,
            format!(
            "server certificate names {names:?} (IP addresses {}) do not match the configured peer",
            ips_words(&ips)
        ),
        ));
    }
    let confirmation = async {
        let mut stream = conn
            .accept_uni()
            .await
            .map_err(|e| dial_error(&e, &verdict))?;
        let got = stream
            .read_to_end(ACCEPTED.len())
            .await
            .map_err(|e| match e {
                quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(e)) => {
                    dial_error(&e, &verdict)
                }
                other => DialError::Other(format!("bad confirmation: {other}")),
            })?;
        if got == ACCEPTED {
            Ok(())
        } else {
            Err(DialError::Other("bad confirmation".to_string()))
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, confirmation).await {
        Ok(Ok(())) => Ok((conn, names)),
        Ok(Err(e)) => {
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"not confirmed");
            Err(e)
        }
        Err(_) => {
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"not confirmed");
            Err(DialError::Other(
                "the peer did not confirm the connection in time".to_string(),
            ))
        }
    }
}

/// Classifies a failed outbound handshake or confirmation; `verdict` is the dial's verifier
/// record.
pub(super) fn dial_error(e: &ConnectionError, verdict: &Verdict) -> DialError {
    match e {
        ConnectionError::ApplicationClosed(a)
            if a.error_code == VarInt::from_u32(CLOSE_UNKNOWN_PEER) =>
        {
            DialError::Rejected(
                RejectKind::UnknownPeer,
                "the peer does not accept our certificate (its names match none of its configured peers)"
                    .to_string(),
            )
        }
        e if is_certificate_failure(e) => {
            let (kind, reason) = handshake_rejection(e, verdict.take());
            DialError::Rejected(kind, reason)
        }
        other => DialError::Other(close_words(other)),
    }
}
