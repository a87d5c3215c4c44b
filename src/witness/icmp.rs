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

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::WitnessError;

/// ICMP type of an echo request.
const ECHO_REQUEST: u8 = 8;
/// ICMP type of an echo reply.
const ECHO_REPLY: u8 = 0;
/// Payload of every echo request, so a capture shows who sent it.
const PAYLOAD: &[u8; 16] = b"haagent-witness\0";
/// ICMP header (8) + payload.
const ECHO_LEN: usize = 8 + PAYLOAD.len();

/// The kind of ICMP socket that could be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// `SOCK_DGRAM` ping socket: no capability, the kernel picks the echo id.
    Datagram,
    /// `SOCK_RAW`: needs `CAP_NET_RAW`, receives every ICMP packet (with IP header).
    Raw,
}

/// Why one echo did not count as answered.
#[derive(Debug)]
pub(crate) enum EchoFailure {
    /// No matching reply before the timeout.
    Timeout(Duration),
    /// The kernel refused to send (no route, neighbour unreachable, interface down…).
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

/// One ICMP socket pinging one gateway.
#[derive(Debug)]
pub(crate) struct Pinger {
    socket: AsyncFd<Socket>,
    kind: SocketKind,
    gateway: Ipv4Addr,
    /// Our echo id (only checked on raw sockets: a datagram socket's id is
    /// rewritten by the kernel, which also filters replies by it).
    id: u16,
}

impl Pinger {
    /// Opens the socket (datagram first, raw as fallback), binds it to
    /// `interface` and registers it with the current tokio runtime.
    pub(crate) fn open(interface: &str, gateway: Ipv4Addr) -> Result<Self, WitnessError> {
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
            id: next_echo_id(),
        })
    }

    /// Which kind of socket was opened.
    pub(crate) fn kind(&self) -> SocketKind {
        self.kind
    }

    /// Sends echo `seq` and waits up to `timeout` for its reply; returns the
    /// round-trip time. Replies to earlier echoes (late ones) are skipped.
    pub(crate) async fn echo(&self, seq: u16, timeout: Duration) -> Result<Duration, EchoFailure> {
        let packet = echo_request(self.id, seq);
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
                if source != self.gateway {
                    continue;
                }
                let Some(reply) = parse_echo_reply(self.kind, &buf[..len]) else {
                    continue;
                };
                let id_matches = self.kind == SocketKind::Datagram || reply.id == self.id;
                if id_matches && reply.seq == seq {
                    return Ok::<_, io::Error>(sent.elapsed());
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

/// A per-process echo id; several witnesses in one process get different ids.
fn next_echo_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let pid = std::process::id() as u16;
    pid.wrapping_add(NEXT.fetch_add(0x1111, Ordering::Relaxed))
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

/// An ICMP echo request with our payload and a valid checksum.
pub(crate) fn echo_request(id: u16, seq: u16) -> [u8; ECHO_LEN] {
    let mut packet = [0u8; ECHO_LEN];
    packet[0] = ECHO_REQUEST;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(PAYLOAD);
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// The id and sequence number of an echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EchoReply {
    pub(crate) id: u16,
    pub(crate) seq: u16,
}

/// Parses what a socket of `kind` received: raw sockets deliver the IPv4 header
/// first, datagram sockets only the ICMP message. `None` for anything that is not
/// a well-formed echo reply.
pub(crate) fn parse_echo_reply(kind: SocketKind, data: &[u8]) -> Option<EchoReply> {
    let icmp = match kind {
        SocketKind::Datagram => data,
        SocketKind::Raw => {
            let first = *data.first()?;
            let header_len = usize::from(first & 0x0f) * 4;
            if first >> 4 != 4 || header_len < 20 || *data.get(9)? != 1 {
                return None;
            }
            data.get(header_len..)?
        }
    };
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[1] != 0 {
        return None;
    }
    Some(EchoReply {
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
    })
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

    #[test]
    fn echo_request_checksums_to_zero() {
        let packet = echo_request(0x1234, 7);
        assert_eq!(packet[0], ECHO_REQUEST);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
        // A packet including its own checksum sums to 0 (RFC 1071).
        assert_eq!(checksum(&packet), 0);
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example: sum 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    fn reply(id: u16, seq: u16) -> Vec<u8> {
        let mut p = echo_request(id, seq).to_vec();
        p[0] = ECHO_REPLY;
        p
    }

    #[test]
    fn parses_datagram_reply() {
        assert_eq!(
            parse_echo_reply(SocketKind::Datagram, &reply(9, 3)),
            Some(EchoReply { id: 9, seq: 3 })
        );
        // A request is not a reply; a truncated packet is nothing.
        assert_eq!(
            parse_echo_reply(SocketKind::Datagram, &echo_request(9, 3)),
            None
        );
        assert_eq!(
            parse_echo_reply(SocketKind::Datagram, &reply(9, 3)[..7]),
            None
        );
    }

    #[test]
    fn parses_raw_reply_after_ip_header() {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 11,
        ];
        ip.extend(reply(0xbeef, 42));
        assert_eq!(
            parse_echo_reply(SocketKind::Raw, &ip),
            Some(EchoReply {
                id: 0xbeef,
                seq: 42
            })
        );
        // Not ICMP (protocol 6 = TCP).
        ip[9] = 6;
        assert_eq!(parse_echo_reply(SocketKind::Raw, &ip), None);
        // Garbage never panics.
        assert_eq!(parse_echo_reply(SocketKind::Raw, &[0x4f]), None);
        assert_eq!(parse_echo_reply(SocketKind::Raw, &[]), None);
    }
}
