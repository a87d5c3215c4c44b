//! ICMP echo to the gateway: the socket, the packets, and matching replies.
//!
//! # Which socket
//!
//! An unprivileged ICMP *datagram* socket (`SOCK_DGRAM, IPPROTO_ICMP`) is tried
//! first: it needs no capability, and the kernel hands it only the replies to its
//! own echo id (it rewrites the id to the socket's "port"). It is only allowed for
//! groups in `net.ipv4.ping_group_range`, which is `"1 0"` (nobody, not even root)
//! on many hosts and in every new network namespace; then `socket()` fails with
//! `EACCES` and we fall back to a *raw* ICMP socket, which needs `CAP_NET_RAW` and
//! sees every ICMP packet the host receives — so replies are matched on source
//! address, echo id and sequence number.
//!
//! Both are bound to the VIP interface (`SO_BINDTODEVICE`), so the echo leaves
//! through it even if another interface has a better route to the gateway.
//!
//! # What counts as an answer
//!
//! Issue 9: a forged reply kept an isolated master serving for 12 s — replies were not
//! checksummed, the echo id was the PID and the sequence number counted from 1, so a
//! guessed pair was enough. Now:
//!
//! - the echo id is random per pinger (on a datagram socket, the id is the socket's bound
//!   "port", so it is bound to a random one), the sequence number starts at a random value,
//!   and every echo carries a fresh random [`TOKEN_LEN`]-byte token after the
//!   `haagent-witness` marker (ring's `SystemRandom`);
//! - a reply counts only if its ICMP checksum verifies (RFC 792: the ones' complement sum of
//!   the whole ICMP message is zero), it comes from the gateway, and its id, sequence number
//!   and entire payload equal the outstanding echo's (an echo reply returns the request's
//!   data unchanged, RFC 792); on raw sockets the IPv4 header must also be sound: version 4,
//!   a header length within the packet, a total length equal to what was received, not a
//!   fragment, protocol ICMP, header checksum valid, source the gateway.
//!
//! [`match_reply`] is that decision as a pure function.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::WitnessError;

/// ICMP type of an echo request.
const ECHO_REQUEST: u8 = 8;
/// ICMP type of an echo reply.
const ECHO_REPLY: u8 = 0;
/// Start of every echo's payload, so a capture shows who sent it.
const MARKER: &[u8; 16] = b"haagent-witness\0";
/// Random bytes after the marker, fresh for every echo.
pub(crate) const TOKEN_LEN: usize = 8;
/// ICMP header (8) + marker + token.
pub(crate) const ECHO_LEN: usize = 8 + MARKER.len() + TOKEN_LEN;
/// IPv4 protocol number of ICMP.
const IPPROTO_ICMP: u8 = 1;
/// How many random ids a datagram socket tries to bind before giving up on a collision.
const BIND_ATTEMPTS: usize = 8;

/// The kind of ICMP socket that could be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// `SOCK_DGRAM` ping socket: no capability; the echo id is the bound "port".
    Datagram,
    /// `SOCK_RAW`: needs `CAP_NET_RAW`, receives every ICMP packet (with IP header).
    Raw,
}

/// Why one echo did not count as answered.
#[derive(Debug)]
pub(crate) enum EchoFailure {
    /// No matching reply before the timeout.
    Timeout(Duration),
    /// The kernel refused to send (no route, neighbour unreachable, interface down…), or
    /// no random token could be drawn.
    Send(io::Error),
    /// The socket reported an error (e.g. an ICMP error for an earlier echo).
    Receive(io::Error),
}

impl std::fmt::Display for EchoFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout(after) => write!(f, "no reply within {} ms", after.as_millis()),
            Self::Send(e) => write!(f, "send failed: {e}"),
            Self::Receive(e) => write!(f, "socket error: {e}"),
        }
    }
}

/// One echo request in flight: what its reply must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outstanding {
    /// The echo id.
    pub(crate) id: u16,
    /// The sequence number.
    pub(crate) seq: u16,
    /// The random token after the marker.
    pub(crate) token: [u8; TOKEN_LEN],
}

/// Why a received packet is not the reply to the outstanding echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// Not a sound IPv4 header (version, lengths, fragment, header checksum).
    BadIpHeader,
    /// Not ICMP.
    NotIcmp,
    /// From another address than the gateway.
    WrongSource,
    /// Shorter or longer than our echo.
    WrongLength,
    /// The ICMP checksum does not verify.
    BadChecksum,
    /// Not an echo reply (type 0, code 0).
    NotEchoReply,
    /// Another echo id.
    WrongId,
    /// Another sequence number (e.g. a late reply to an earlier echo).
    WrongSeq,
    /// The payload (marker and token) differs.
    WrongPayload,
}

/// One ICMP socket pinging one gateway.
#[derive(Debug)]
pub(crate) struct Pinger {
    socket: AsyncFd<Socket>,
    kind: SocketKind,
    gateway: Ipv4Addr,
    /// Our echo id: random; on a datagram socket, the port it is bound to.
    id: u16,
    /// The sequence number of the next echo (random start).
    next_seq: u16,
    random: SystemRandom,
}

impl Pinger {
    /// Opens the socket (datagram first, raw as fallback), binds it to
    /// `interface` (and to `source`, if given, so that echoes never leave from a VIP) and
    /// registers it with the current tokio runtime.
    pub(crate) fn open(
        interface: &str,
        gateway: Ipv4Addr,
        source: Option<Ipv4Addr>,
    ) -> Result<Self, WitnessError> {
        let random = SystemRandom::new();
        let (socket, kind) = match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
            Ok(socket) => (socket, SocketKind::Datagram),
            Err(dgram_error) => {
                tracing::debug!(
                    interface,
                    error = %dgram_error,
                    "ICMP datagram socket refused (net.ipv4.ping_group_range?), trying a raw socket"
                );
                let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
                    .map_err(|e| socket_error(interface, "open ICMP socket", e))?;
                (socket, SocketKind::Raw)
            }
        };
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| socket_error(interface, "bind ICMP socket to the interface", e))?;
        let id = match kind {
            SocketKind::Raw => {
                if let Some(source) = source {
                    socket
                        .bind(&SockAddr::from(SocketAddrV4::new(source, 0)))
                        .map_err(|e| {
                            socket_error(interface, "bind ICMP socket to our address", e)
                        })?;
                }
                random_u16(&random)
                    .map_err(|e| socket_error(interface, "draw a random echo id", e))?
            }
            SocketKind::Datagram => bind_random_id(&socket, &random, source)
                .map_err(|e| socket_error(interface, "bind ICMP socket to a random echo id", e))?,
        };
        let next_seq = random_u16(&random)
            .map_err(|e| socket_error(interface, "draw a random sequence number", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| socket_error(interface, "make ICMP socket non-blocking", e))?;
        // SAFETY: `socket` owns its descriptor, which stays open and unchanged for
        // as long as the AsyncFd (its only owner from here on) lives.
        let socket = unsafe { AsyncFd::register(socket) }.map_err(|e| WitnessError::Io {
            interface: interface.to_string(),
            operation: "register ICMP socket with the runtime".to_string(),
            source: e.into_parts().1,
        })?;
        Ok(Self {
            socket,
            kind,
            gateway,
            id,
            next_seq,
            random,
        })
    }

    /// Which kind of socket was opened.
    pub(crate) fn kind(&self) -> SocketKind {
        self.kind
    }

    /// The next echo: our id, the next sequence number, a fresh random token.
    pub(crate) fn next_echo(&mut self) -> Result<Outstanding, EchoFailure> {
        let mut token = [0u8; TOKEN_LEN];
        self.random
            .fill(&mut token)
            .map_err(|_| EchoFailure::Send(io::Error::other("no random bytes for the token")))?;
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        Ok(Outstanding {
            id: self.id,
            seq,
            token,
        })
    }

    /// Sends `echo` and waits up to `timeout` for its reply (see [`match_reply`]);
    /// returns the round-trip time. Anything else received meanwhile is skipped.
    pub(crate) async fn echo(
        &self,
        echo: &Outstanding,
        timeout: Duration,
    ) -> Result<Duration, EchoFailure> {
        let packet = echo_request(echo);
        let to = SockAddr::from(SocketAddrV4::new(self.gateway, 0));
        let sent = Instant::now();
        self.socket
            .async_io(Interest::WRITABLE, |s| s.send_to(&packet, &to))
            .await
            .map_err(EchoFailure::Send)?;

        let wait = async {
            let mut buf = [0u8; 1500];
            loop {
                let (len, from) = self
                    .socket
                    .async_io(Interest::READABLE, |s| recv_from(s, &mut buf))
                    .await?;
                let Some(source) = from.as_socket_ipv4().map(|a| *a.ip()) else {
                    continue;
                };
                match match_reply(self.kind, source, &buf[..len], self.gateway, echo) {
                    Ok(()) => return Ok::<_, io::Error>(sent.elapsed()),
                    Err(Mismatch::WrongSource | Mismatch::NotIcmp) => {}
                    Err(why) => {
                        tracing::trace!(%source, ?why, seq = echo.seq, "ICMP packet is not our echo reply");
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(rtt)) => Ok(rtt),
            Ok(Err(e)) => Err(EchoFailure::Receive(e)),
            Err(_) => Err(EchoFailure::Timeout(timeout)),
        }
    }
}

/// `recvfrom` into an initialised buffer.
fn recv_from(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and recv only ever writes
    // initialised bytes into the buffer (the pattern socket2's docs recommend).
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    socket.recv_from(uninit)
}

/// Two random bytes.
fn random_u16(random: &SystemRandom) -> io::Result<u16> {
    let mut b = [0u8; 2];
    random
        .fill(&mut b)
        .map_err(|_| io::Error::other("the system random number generator failed"))?;
    Ok(u16::from_be_bytes(b))
}

/// Binds a ping socket to a random "port", which the kernel uses as the echo id of
/// everything the socket sends and filters replies by; retries on a collision.
fn bind_random_id(
    socket: &Socket,
    random: &SystemRandom,
    source: Option<Ipv4Addr>,
) -> io::Result<u16> {
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..BIND_ATTEMPTS {
        // Port 0 would let the kernel pick (predictably): never ask for it.
        let id = random_u16(random)?.max(1);
        match socket.bind(&SockAddr::from(SocketAddrV4::new(
            source.unwrap_or(Ipv4Addr::UNSPECIFIED),
            id,
        ))) {
            Ok(()) => return Ok(id),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Maps a socket error: no permission → `CAP_NET_RAW`, no device → not found.
fn socket_error(interface: &str, operation: &str, error: io::Error) -> WitnessError {
    match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => WitnessError::PermissionDenied {
            interface: interface.to_string(),
            operation: operation.to_string(),
            capability: "CAP_NET_RAW",
            hint: "ICMP datagram sockets are not allowed for this group by \
                   net.ipv4.ping_group_range; run as root, grant CAP_NET_RAW, \
                   or widen ping_group_range",
        },
        Some(libc::ENODEV) => WitnessError::InterfaceNotFound {
            interface: interface.to_string(),
        },
        _ => WitnessError::Io {
            interface: interface.to_string(),
            operation: operation.to_string(),
            source: error,
        },
    }
}

/// An ICMP echo request with the marker, the token and a valid checksum.
pub(crate) fn echo_request(echo: &Outstanding) -> [u8; ECHO_LEN] {
    let mut packet = [0u8; ECHO_LEN];
    packet[0] = ECHO_REQUEST;
    packet[4..6].copy_from_slice(&echo.id.to_be_bytes());
    packet[6..8].copy_from_slice(&echo.seq.to_be_bytes());
    packet[8..8 + MARKER.len()].copy_from_slice(MARKER);
    packet[8 + MARKER.len()..].copy_from_slice(&echo.token);
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// Whether what a socket of `kind` received from `source` is the gateway's reply to
/// `echo`. Raw sockets deliver the IPv4 header first, datagram sockets only the ICMP
/// message. Never panics, whatever `data` holds.
pub(crate) fn match_reply(
    kind: SocketKind,
    source: Ipv4Addr,
    data: &[u8],
    gateway: Ipv4Addr,
    echo: &Outstanding,
) -> Result<(), Mismatch> {
    if source != gateway {
        return Err(Mismatch::WrongSource);
    }
    let icmp = match kind {
        SocketKind::Datagram => data,
        SocketKind::Raw => icmp_in_ipv4(data, gateway)?,
    };
    if icmp.len() != ECHO_LEN {
        return Err(Mismatch::WrongLength);
    }
    // RFC 792: the checksum covers the whole ICMP message; with it, the sum is zero.
    if checksum(icmp) != 0 {
        return Err(Mismatch::BadChecksum);
    }
    if icmp[0] != ECHO_REPLY || icmp[1] != 0 {
        return Err(Mismatch::NotEchoReply);
    }
    if u16::from_be_bytes([icmp[4], icmp[5]]) != echo.id {
        return Err(Mismatch::WrongId);
    }
    if u16::from_be_bytes([icmp[6], icmp[7]]) != echo.seq {
        return Err(Mismatch::WrongSeq);
    }
    let request = echo_request(echo);
    if icmp[8..] != request[8..] {
        return Err(Mismatch::WrongPayload);
    }
    Ok(())
}

/// The ICMP message inside a received IPv4 packet, after checking the header (RFC 791):
/// version 4, header length 20..=60 within the packet, total length equal to the packet's,
/// not a fragment, header checksum valid, protocol ICMP, source `gateway`.
fn icmp_in_ipv4(data: &[u8], gateway: Ipv4Addr) -> Result<&[u8], Mismatch> {
    let first = *data.first().ok_or(Mismatch::BadIpHeader)?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || data.len() < header_len {
        return Err(Mismatch::BadIpHeader);
    }
    let header = &data[..header_len];
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // More fragments, or a fragment offset: not a whole packet.
    let fragment = u16::from_be_bytes([header[6], header[7]]) & 0x3fff;
    if total_len != data.len() || fragment != 0 || checksum(header) != 0 {
        return Err(Mismatch::BadIpHeader);
    }
    if header[9] != IPPROTO_ICMP {
        return Err(Mismatch::NotIcmp);
    }
    if Ipv4Addr::new(header[12], header[13], header[14], header[15]) != gateway {
        return Err(Mismatch::WrongSource);
    }
    Ok(&data[header_len..])
}

/// The Internet checksum (RFC 1071) of `data`.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn echo() -> Outstanding {
        Outstanding {
            id: 0x1234,
            seq: 7,
            token: *b"\x01\x02\x03\x04\x05\x06\x07\x08",
        }
    }

    /// The reply a real gateway sends: the request with type 0 and a new checksum.
    fn reply(echo: &Outstanding) -> Vec<u8> {
        let mut p = echo_request(echo).to_vec();
        p[0] = ECHO_REPLY;
        fix_checksum(&mut p);
        p
    }

    fn fix_checksum(icmp: &mut [u8]) {
        icmp[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    /// `icmp` behind a valid IPv4 header from `src` to the node.
    fn ipv4(src: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let total = (20 + icmp.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, IPPROTO_ICMP, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend(src.octets());
        p.extend(NODE.octets());
        let sum = checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend(icmp);
        p
    }

    fn dgram(data: &[u8]) -> Result<(), Mismatch> {
        match_reply(SocketKind::Datagram, GW, data, GW, &echo())
    }

    fn raw(data: &[u8]) -> Result<(), Mismatch> {
        match_reply(SocketKind::Raw, GW, data, GW, &echo())
    }

    #[test]
    fn echo_request_checksums_to_zero() {
        let packet = echo_request(&echo());
        assert_eq!(packet[0], ECHO_REQUEST);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&packet[8..24], MARKER);
        assert_eq!(&packet[24..], &echo().token);
        // A packet including its own checksum sums to 0 (RFC 1071).
        assert_eq!(checksum(&packet), 0);
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example: sum 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn the_exact_reply_is_accepted_on_both_sockets() {
        assert_eq!(dgram(&reply(&echo())), Ok(()));
        assert_eq!(raw(&ipv4(GW, &reply(&echo()))), Ok(()));
    }

    #[test]
    fn a_bad_checksum_is_rejected() {
        let mut p = reply(&echo());
        p[2] ^= 0x01;
        assert_eq!(dgram(&p), Err(Mismatch::BadChecksum));
        assert_eq!(raw(&ipv4(GW, &p)), Err(Mismatch::BadChecksum));
        // The old forgery: right id and sequence number, checksum left as in the request.
        let mut p = echo_request(&echo()).to_vec();
        p[0] = ECHO_REPLY;
        assert_eq!(dgram(&p), Err(Mismatch::BadChecksum));
    }

    #[test]
    fn a_wrong_token_or_marker_is_rejected() {
        let mut other = echo();
        other.token[7] ^= 0xff;
        assert_eq!(dgram(&reply(&other)), Err(Mismatch::WrongPayload));
        let mut p = reply(&echo());
        p[8] = b'H';
        fix_checksum(&mut p);
        assert_eq!(dgram(&p), Err(Mismatch::WrongPayload));
    }

    #[test]
    fn a_wrong_id_seq_type_or_source_is_rejected() {
        let e = echo();
        let id = Outstanding { id: e.id ^ 1, ..e };
        assert_eq!(dgram(&reply(&id)), Err(Mismatch::WrongId));
        let seq = Outstanding {
            seq: e.seq.wrapping_sub(1),
            ..e
        };
        assert_eq!(dgram(&reply(&seq)), Err(Mismatch::WrongSeq));
        // Our own request (looped back on a raw socket) is not a reply.
        assert_eq!(dgram(&echo_request(&e)), Err(Mismatch::NotEchoReply));
        // From another host, by socket address or by IP header.
        let rogue = Ipv4Addr::new(192, 0, 2, 66);
        assert_eq!(
            match_reply(SocketKind::Datagram, rogue, &reply(&e), GW, &e),
            Err(Mismatch::WrongSource)
        );
        assert_eq!(raw(&ipv4(rogue, &reply(&e))), Err(Mismatch::WrongSource));
    }

    #[test]
    fn a_bad_ip_header_is_rejected() {
        let good = ipv4(GW, &reply(&echo()));
        // Not ICMP (protocol 6 = TCP), header checksum fixed up.
        let mut tcp = good.clone();
        tcp[9] = 6;
        tcp[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(&tcp[..20]);
        tcp[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(raw(&tcp), Err(Mismatch::NotIcmp));
        // Header checksum broken.
        let mut p = good.clone();
        p[8] ^= 1;
        assert_eq!(raw(&p), Err(Mismatch::BadIpHeader));
        // A header length beyond the packet, below 20, or version 6.
        for first in [0x4f, 0x44, 0x65] {
            let mut p = good.clone();
            p[0] = first;
            assert_eq!(raw(&p), Err(Mismatch::BadIpHeader), "{first:#x}");
        }
        // A fragment.
        let mut p = good.clone();
        p[6] = 0x20; // more fragments
        assert_eq!(raw(&p), Err(Mismatch::BadIpHeader));
    }

    #[test]
    fn truncated_and_oversized_frames_are_rejected_without_panic() {
        let icmp = reply(&echo());
        let packet = ipv4(GW, &icmp);
        for len in 0..packet.len() {
            assert!(raw(&packet[..len]).is_err(), "raw, {len} bytes");
        }
        for len in 0..icmp.len() {
            assert!(dgram(&icmp[..len]).is_err(), "datagram, {len} bytes");
        }
        // Extra bytes after the payload: not our echo, even with a fixed checksum.
        let mut long = icmp.clone();
        long.extend([0u8; 64]);
        fix_checksum(&mut long);
        assert_eq!(dgram(&long), Err(Mismatch::WrongLength));
        assert_eq!(raw(&ipv4(GW, &long)), Err(Mismatch::WrongLength));
        // A full-size frame of garbage, and a header claiming more than was received.
        assert!(raw(&[0xff; 1500]).is_err());
        assert!(dgram(&[0xff; 1500]).is_err());
        let mut p = packet.clone();
        p.truncate(packet.len() - 1);
        assert_eq!(raw(&p), Err(Mismatch::BadIpHeader));
    }

    #[test]
    fn random_ids_are_not_a_constant() {
        let random = SystemRandom::new();
        let ids: std::collections::HashSet<u16> =
            (0..64).map(|_| random_u16(&random).unwrap()).collect();
        // 64 draws from 65,536 values: all equal (or all the PID) only if not random.
        assert!(ids.len() > 32, "{ids:?}");
    }
}
