//! ICMP and ICMPv6 echo to the gateway: the socket, the packets, and matching replies.
//!
//! The gateway's address decides the family: an IPv4 gateway gets ICMP echoes (RFC 792), an
//! IPv6 one ICMPv6 echoes (RFC 4443 §4.1 request, type 128; §4.2 reply, type 129). Everything
//! below holds for both unless it says otherwise.
//!
//! # Which socket
//!
//! An unprivileged ICMP *datagram* socket (`SOCK_DGRAM, IPPROTO_ICMP`, or `AF_INET6,
//! SOCK_DGRAM, IPPROTO_ICMPV6`) is tried first: it needs no capability, and the kernel hands
//! it only the echo replies to its own echo id (it rewrites the id to the socket's "port").
//! It is only allowed for groups in `net.ipv4.ping_group_range` — the one sysctl governs
//! both families — which is `"1 0"` (nobody, not even root) on many hosts and in every new
//! network namespace; then `socket()` fails with `EACCES` and we fall back to a *raw* socket
//! (`SOCK_RAW, IPPROTO_ICMP` / `IPPROTO_ICMPV6`), which needs `CAP_NET_RAW` and sees every
//! ICMP packet the host receives — so replies are matched on source address, echo id and
//! sequence number. A raw ICMPv6 socket also gets an `ICMP6_FILTER` (RFC 3542 §3.2) that
//! passes only echo replies: without it every neighbour solicitation and advertisement,
//! router advertisement and MLD report on the segment would wake the witness.
//!
//! Both are bound to the VIP interface (`SO_BINDTODEVICE`), so the echo leaves through it
//! even if another interface has a better route to the gateway. A link-local IPv6 gateway
//! (`fe80::/10`) is addressed with that interface's index as its scope id.
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
//! - a reply counts only if its checksum verifies, it comes from the gateway, it is an echo
//!   reply (type 0 or 129, code 0), and its id, sequence number and entire payload equal the
//!   outstanding echo's (an echo reply returns the request's data unchanged, RFC 792 and
//!   RFC 4443 §4.2);
//! - IPv4: the checksum is the ones' complement sum of the whole ICMP message (RFC 792). On
//!   raw sockets the IPv4 header, which they deliver first, must also be sound: version 4, a
//!   header length within the packet, a total length equal to what was received, not a
//!   fragment, protocol ICMP, header checksum valid, source the gateway. The kernel hands raw
//!   IPv4 sockets their copy *before* ICMP input checks anything, so these checks are ours.
//! - IPv6: the ICMPv6 checksum also covers a pseudo-header of source, destination, length
//!   and next header 58 (RFC 4443 §2.3, RFC 8200 §8.1). Both sockets deliver the bare ICMPv6
//!   message without the IPv6 header (RFC 3542 §3), so the destination comes from an
//!   `IPV6_PKTINFO` control message (`IPV6_RECVPKTINFO`, RFC 3542 §6.1) and the source from
//!   `recvmsg`'s address, and [`match_reply_v6`] verifies the checksum itself. The kernel has
//!   checked it already: ping sockets get their replies from ICMPv6 input after its checksum
//!   check, and a raw ICMPv6 socket always has checksumming on (RFC 3542 §3.1; Linux refuses
//!   `IPV6_CHECKSUM` on it) and drops a bad packet in `recvmsg` (`rawv6_recvmsg`,
//!   `csum_copy_err`); `tests/witness_netns.rs` shows a bad-checksum forgery reaching the
//!   node (`Icmp6InCsumErrors` counts it) without being believed. Ours is a second check
//!   that does not depend on how the kernel (or a NIC's checksum offload) judged the
//!   packet, and it keeps the matcher a pure function of what it is given. On sending, the kernel computes the ICMPv6 checksum for both
//!   sockets (RFC 3542 §3.1), so requests leave ours zero.
//!
//! [`match_reply`] and [`match_reply_v6`] are that decision as pure functions.

use std::ffi::CString;
use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{EchoSource, WitnessError};

/// Start of every echo's payload, so a capture shows who sent it.
const MARKER: &[u8; 16] = b"haagent-witness\0";
/// Random bytes after the marker, fresh for every echo.
pub(crate) const TOKEN_LEN: usize = 8;
/// ICMP header (8) + marker + token; the same for ICMPv6.
pub(crate) const ECHO_LEN: usize = 8 + MARKER.len() + TOKEN_LEN;
/// IPv4 protocol number of ICMP.
const IPPROTO_ICMP: u8 = 1;
/// IPv6 next-header number of ICMPv6 (RFC 4443 §1), also its socket option level.
const IPPROTO_ICMPV6: u8 = 58;
/// The `ICMP6_FILTER` socket option (`<netinet/icmp6.h>`, Linux `ICMPV6_FILTER`).
const ICMP6_FILTER: libc::c_int = 1;
/// How many random ids a datagram socket tries to bind before giving up on a collision.
const BIND_ATTEMPTS: usize = 8;

/// The IP version of the echoes, from the gateway's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// ICMP over IPv4 (RFC 792).
    V4,
    /// ICMPv6 (RFC 4443).
    V6,
}

impl Family {
    /// The family of `gateway`.
    pub(crate) fn of(gateway: IpAddr) -> Self {
        match gateway {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The echo request's type: 8 (RFC 792) or 128 (RFC 4443 §4.1).
    fn request_type(self) -> u8 {
        match self {
            Family::V4 => 8,
            Family::V6 => 128,
        }
    }

    /// The echo reply's type: 0 (RFC 792) or 129 (RFC 4443 §4.2).
    fn reply_type(self) -> u8 {
        match self {
            Family::V4 => 0,
            Family::V6 => 129,
        }
    }
}

/// The kind of ICMP socket that could be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// `SOCK_DGRAM` ping socket: no capability; the echo id is the bound "port".
    Datagram,
    /// `SOCK_RAW`: needs `CAP_NET_RAW`, receives every ICMP packet (IPv4: with IP header;
    /// IPv6: without, and only echo replies through the `ICMP6_FILTER`).
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
    /// Not an echo reply (type 0 or 129, code 0).
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
    gateway: IpAddr,
    /// Where the echoes go: the gateway (with the interface as scope if link-local).
    to: SockAddr,
    /// Our echo id: random; on a datagram socket, the port it is bound to.
    id: u16,
    /// The sequence number of the next echo (random start).
    next_seq: u16,
    random: SystemRandom,
}

impl Pinger {
    /// Opens the socket of `gateway`'s family (datagram first, raw as fallback), binds it
    /// to `interface` (and to the node's own address `source` gives for the gateway's
    /// family, so that echoes never leave from a VIP, see [`EchoSource`]) and registers it
    /// with the current tokio runtime.
    pub(crate) fn open(
        interface: &str,
        gateway: IpAddr,
        source: EchoSource,
    ) -> Result<Self, WitnessError> {
        let random = SystemRandom::new();
        let family = Family::of(gateway);
        let (domain, protocol) = match family {
            Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
            Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
        };
        let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(socket) => (socket, SocketKind::Datagram),
            Err(dgram_error) => {
                tracing::debug!(
                    interface,
                    error = %dgram_error,
                    "ICMP datagram socket refused (net.ipv4.ping_group_range?), trying a raw socket"
                );
                let socket = Socket::new(domain, Type::RAW, Some(protocol))
                    .map_err(|e| socket_error(interface, "open ICMP socket", e))?;
                (socket, SocketKind::Raw)
            }
        };
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| socket_error(interface, "bind ICMP socket to the interface", e))?;
        let local = source.for_gateway(gateway);
        if family == Family::V6 {
            set_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &1i32)
                .map_err(|e| socket_error(interface, "ask for IPV6_PKTINFO", e))?;
            if kind == SocketKind::Raw {
                set_option(
                    &socket,
                    libc::c_int::from(IPPROTO_ICMPV6),
                    ICMP6_FILTER,
                    &echo_reply_filter(),
                )
                .map_err(|e| socket_error(interface, "set the ICMP6_FILTER", e))?;
            }
        }
        let id = match kind {
            SocketKind::Raw => {
                if let Some(local) = local {
                    socket
                        .bind(&SockAddr::from(SocketAddr::new(local, 0)))
                        .map_err(|e| {
                            let what = format!("bind ICMP socket to our address {local}");
                            socket_error(interface, &what, e)
                        })?;
                }
                random_u16(&random)
                    .map_err(|e| socket_error(interface, "draw a random echo id", e))?
            }
            SocketKind::Datagram => {
                let local = local.unwrap_or(match family {
                    Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                });
                bind_random_id(&socket, &random, local).map_err(|e| {
                    let what = format!("bind ICMP socket to {local} and a random echo id");
                    socket_error(interface, &what, e)
                })?
            }
        };
        let to = match gateway {
            IpAddr::V4(a) => SockAddr::from(SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => {
                let scope = if a.is_unicast_link_local() {
                    interface_index(interface)?
                } else {
                    0
                };
                SockAddr::from(SocketAddrV6::new(a, 0, 0, scope))
            }
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
            to,
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

    /// Sends `echo` and waits up to `timeout` for its reply (see [`match_reply`] and
    /// [`match_reply_v6`]); returns the round-trip time. Anything else received meanwhile
    /// is skipped.
    pub(crate) async fn echo(
        &self,
        echo: &Outstanding,
        timeout: Duration,
    ) -> Result<Duration, EchoFailure> {
        let packet = echo_request(Family::of(self.gateway), echo);
        let sent = Instant::now();
        self.socket
            .async_io(Interest::WRITABLE, |s| s.send_to(&packet, &self.to))
            .await
            .map_err(EchoFailure::Send)?;

        let wait = async {
            let mut buf = [0u8; 1500];
            loop {
                let (source, verdict) = match self.gateway {
                    IpAddr::V4(gateway) => {
                        let (len, from) = self
                            .socket
                            .async_io(Interest::READABLE, |s| recv_from(s, &mut buf))
                            .await?;
                        let Some(source) = from.as_socket_ipv4().map(|a| *a.ip()) else {
                            continue;
                        };
                        let verdict = match_reply(self.kind, source, &buf[..len], gateway, echo);
                        (IpAddr::V4(source), verdict)
                    }
                    IpAddr::V6(gateway) => {
                        let (len, source, destination) = self
                            .socket
                            .async_io(Interest::READABLE, |s| recv_v6(s, &mut buf))
                            .await?;
                        let Some(destination) = destination else {
                            tracing::trace!(%source, "ICMPv6 packet without IPV6_PKTINFO skipped");
                            continue;
                        };
                        let data = &buf[..len];
                        let verdict = match_reply_v6(source, destination, data, gateway, echo);
                        (IpAddr::V6(source), verdict)
                    }
                };
                match verdict {
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

/// `recvmsg` on an IPv6 ICMP socket: the length, the source address and the destination
/// address from the `IPV6_PKTINFO` control message (`None` if the kernel attached none).
fn recv_v6(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, Option<Ipv6Addr>)> {
    // SAFETY (all blocks below): plain C structs, zero is a valid value for each; every
    // pointer handed to recvmsg points into a live local of the stated length; the CMSG_*
    // macros only walk inside `control` up to the `msg_controllen` the kernel set, and the
    // pktinfo is read unaligned from inside the control message the kernel wrote.
    let mut from: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    // Room for an aligned `in6_pktinfo` message (CMSG_SPACE(20) = 40) and one more.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    let received = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    let len = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
    let source = Ipv6Addr::from(from.sin6_addr.s6_addr);
    let mut destination = None;
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::IPPROTO_IPV6 && header.cmsg_type == libc::IPV6_PKTINFO {
            let info: libc::in6_pktinfo =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
        }
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok((len.min(buf.len()), source, destination))
}

/// `setsockopt(level, name, value)` with a plain-data value.
fn set_option<T: Copy>(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised `T` of `size_of::<T>()` bytes; the descriptor
    // is owned by `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `struct icmp6_filter` that blocks every ICMPv6 type but echo reply: one bit per
/// type, a set bit blocks it (Linux's reading of RFC 3542 §3.2's `ICMP6_FILTER_SETBLOCKALL`
/// then `ICMP6_FILTER_SETPASS(129)`).
pub(crate) fn echo_reply_filter() -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    let reply = usize::from(Family::V6.reply_type());
    filter[reply >> 5] &= !(1u32 << (reply & 31));
    filter
}

/// The index of `interface`, the scope id of a link-local gateway (RFC 4007 §6).
fn interface_index(interface: &str) -> Result<u32, WitnessError> {
    let not_found = || WitnessError::InterfaceNotFound {
        interface: interface.to_string(),
    };
    let name = CString::new(interface).map_err(|_| not_found())?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(not_found()),
        index => Ok(index),
    }
}

/// Two random bytes.
fn random_u16(random: &SystemRandom) -> io::Result<u16> {
    let mut b = [0u8; 2];
    random
        .fill(&mut b)
        .map_err(|_| io::Error::other("the system random number generator failed"))?;
    Ok(u16::from_be_bytes(b))
}

/// Binds a ping socket to `local` and a random "port", which the kernel uses as the echo
/// id of everything the socket sends and filters replies by; retries on a collision.
fn bind_random_id(socket: &Socket, random: &SystemRandom, local: IpAddr) -> io::Result<u16> {
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..BIND_ATTEMPTS {
        // Port 0 would let the kernel pick (predictably): never ask for it.
        let id = random_u16(random)?.max(1);
        match socket.bind(&SockAddr::from(SocketAddr::new(local, id))) {
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

/// An echo request of `family` with the marker and the token. IPv4: with a valid checksum;
/// IPv6: checksum zero, the kernel computes it over the pseudo-header (RFC 3542 §3.1).
pub(crate) fn echo_request(family: Family, echo: &Outstanding) -> [u8; ECHO_LEN] {
    let mut packet = [0u8; ECHO_LEN];
    packet[0] = family.request_type();
    packet[4..6].copy_from_slice(&echo.id.to_be_bytes());
    packet[6..8].copy_from_slice(&echo.seq.to_be_bytes());
    packet[8..8 + MARKER.len()].copy_from_slice(MARKER);
    packet[8 + MARKER.len()..].copy_from_slice(&echo.token);
    if family == Family::V4 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// Whether what a socket of `kind` received from `source` is the IPv4 gateway's reply to
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
    // RFC 792: the checksum covers the whole ICMP message; with it, the sum is zero.
    match_echo(Family::V4, &[], icmp, echo)
}

/// Whether the ICMPv6 message `data` (both socket kinds deliver it without the IPv6
/// header), received from `source` at our address `destination`, is the IPv6 gateway's
/// reply to `echo`. Never panics, whatever `data` holds.
pub(crate) fn match_reply_v6(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    data: &[u8],
    gateway: Ipv6Addr,
    echo: &Outstanding,
) -> Result<(), Mismatch> {
    if source != gateway {
        return Err(Mismatch::WrongSource);
    }
    // RFC 4443 §2.3: the checksum covers the pseudo-header (RFC 8200 §8.1) and the message.
    match_echo(
        Family::V6,
        &pseudo_header_v6(source, destination, data.len()),
        data,
        echo,
    )
}

/// The checks on the ICMP(v6) message itself: length, checksum (with `pseudo_header`
/// before the message, empty for IPv4), type and code, id, sequence number, payload.
fn match_echo(
    family: Family,
    pseudo_header: &[u8],
    icmp: &[u8],
    echo: &Outstanding,
) -> Result<(), Mismatch> {
    if icmp.len() != ECHO_LEN {
        return Err(Mismatch::WrongLength);
    }
    if checksum_parts(&[pseudo_header, icmp]) != 0 {
        return Err(Mismatch::BadChecksum);
    }
    if icmp[0] != family.reply_type() || icmp[1] != 0 {
        return Err(Mismatch::NotEchoReply);
    }
    if u16::from_be_bytes([icmp[4], icmp[5]]) != echo.id {
        return Err(Mismatch::WrongId);
    }
    if u16::from_be_bytes([icmp[6], icmp[7]]) != echo.seq {
        return Err(Mismatch::WrongSeq);
    }
    let request = echo_request(family, echo);
    if icmp[8..] != request[8..] {
        return Err(Mismatch::WrongPayload);
    }
    Ok(())
}

/// The IPv6 pseudo-header of an ICMPv6 message of `len` bytes (RFC 8200 §8.1): source,
/// destination, upper-layer length (32 bits), three zero bytes, next header 58.
pub(crate) fn pseudo_header_v6(source: Ipv6Addr, destination: Ipv6Addr, len: usize) -> [u8; 40] {
    let mut header = [0u8; 40];
    header[..16].copy_from_slice(&source.octets());
    header[16..32].copy_from_slice(&destination.octets());
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    header[32..36].copy_from_slice(&len.to_be_bytes());
    header[39] = IPPROTO_ICMPV6;
    header
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
    checksum_parts(&[data])
}

/// The Internet checksum (RFC 1071) of the parts one after the other; every part but the
/// last must have an even length (a pseudo-header does).
fn checksum_parts(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = parts
        .iter()
        .flat_map(|part| part.chunks(2))
        .map(|c| u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
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
        let mut p = echo_request(Family::V4, echo).to_vec();
        p[0] = Family::V4.reply_type();
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
        let packet = echo_request(Family::V4, &echo());
        assert_eq!(packet[0], Family::V4.request_type());
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
        let mut p = echo_request(Family::V4, &echo()).to_vec();
        p[0] = Family::V4.reply_type();
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
        assert_eq!(
            dgram(&echo_request(Family::V4, &e)),
            Err(Mismatch::NotEchoReply)
        );
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

    const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const NODE6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11);

    /// The ICMPv6 checksum of `icmp` from `src` to `dst`, written into it.
    fn fix_checksum_v6(icmp: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        icmp[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum_parts(&[&pseudo_header_v6(src, dst, icmp.len()), icmp]);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    /// The ICMPv6 reply a real gateway sends to `echo`: type 129, checksum over the
    /// pseudo-header from the gateway to the node.
    fn reply_v6(echo: &Outstanding) -> Vec<u8> {
        let mut p = echo_request(Family::V6, echo).to_vec();
        p[0] = 129;
        fix_checksum_v6(&mut p, GW6, NODE6);
        p
    }

    fn v6(data: &[u8]) -> Result<(), Mismatch> {
        match_reply_v6(GW6, NODE6, data, GW6, &echo())
    }

    #[test]
    fn echo_request_v6_is_type_128_with_the_checksum_left_to_the_kernel() {
        let packet = echo_request(Family::V6, &echo());
        assert_eq!(&packet[..8], &[128, 0, 0, 0, 0x12, 0x34, 0, 7]);
        assert_eq!(&packet[8..24], MARKER);
        assert_eq!(&packet[24..], &echo().token);
    }

    #[test]
    fn pseudo_header_v6_follows_rfc8200() {
        let h = pseudo_header_v6(GW6, NODE6, 32);
        assert_eq!(&h[..16], &GW6.octets());
        assert_eq!(&h[16..32], &NODE6.octets());
        assert_eq!(&h[32..], &[0, 0, 0, 32, 0, 0, 0, 58]);
    }

    #[test]
    fn the_exact_v6_reply_is_accepted() {
        assert_eq!(v6(&reply_v6(&echo())), Ok(()));
        // A global gateway, the same way.
        let (gw, node): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::11".parse().unwrap(),
        );
        let mut p = echo_request(Family::V6, &echo()).to_vec();
        p[0] = 129;
        fix_checksum_v6(&mut p, gw, node);
        assert_eq!(match_reply_v6(gw, node, &p, gw, &echo()), Ok(()));
    }

    #[test]
    fn a_v6_reply_with_a_wrong_id_seq_payload_or_source_is_rejected() {
        let e = echo();
        assert_eq!(
            v6(&reply_v6(&Outstanding { id: e.id ^ 1, ..e })),
            Err(Mismatch::WrongId)
        );
        let seq = Outstanding {
            seq: e.seq.wrapping_add(1),
            ..e
        };
        assert_eq!(v6(&reply_v6(&seq)), Err(Mismatch::WrongSeq));
        let mut token = e;
        token.token[0] ^= 0x80;
        assert_eq!(v6(&reply_v6(&token)), Err(Mismatch::WrongPayload));
        let mut marker = reply_v6(&e);
        marker[9] = b'X';
        fix_checksum_v6(&mut marker, GW6, NODE6);
        assert_eq!(v6(&marker), Err(Mismatch::WrongPayload));
        // From a rogue on the segment, with a checksum right for its own address.
        let rogue = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x66);
        let mut p = reply_v6(&e);
        fix_checksum_v6(&mut p, rogue, NODE6);
        assert_eq!(
            match_reply_v6(rogue, NODE6, &p, GW6, &e),
            Err(Mismatch::WrongSource)
        );
    }

    #[test]
    fn other_icmpv6_types_are_not_replies() {
        // Our own request, a neighbour advertisement (136), and the IPv4 reply type 0,
        // each with a valid checksum.
        for kind in [128u8, 136, 0] {
            let mut p = reply_v6(&echo());
            p[0] = kind;
            fix_checksum_v6(&mut p, GW6, NODE6);
            assert_eq!(v6(&p), Err(Mismatch::NotEchoReply), "type {kind}");
        }
        let mut code = reply_v6(&echo());
        code[1] = 1;
        fix_checksum_v6(&mut code, GW6, NODE6);
        assert_eq!(v6(&code), Err(Mismatch::NotEchoReply));
    }

    #[test]
    fn a_v6_checksum_must_cover_the_pseudo_header() {
        let mut p = reply_v6(&echo());
        p[3] ^= 1;
        assert_eq!(v6(&p), Err(Mismatch::BadChecksum));
        // The IPv4 rule (no pseudo-header) is not enough.
        let mut p = reply_v6(&echo());
        fix_checksum(&mut p);
        assert_eq!(v6(&p), Err(Mismatch::BadChecksum));
        // Summed for another destination: not the packet that reached us.
        let mut p = reply_v6(&echo());
        fix_checksum_v6(&mut p, GW6, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x12));
        assert_eq!(v6(&p), Err(Mismatch::BadChecksum));
    }

    #[test]
    fn truncated_and_oversized_v6_messages_are_rejected_without_panic() {
        let p = reply_v6(&echo());
        for len in 0..p.len() {
            assert!(v6(&p[..len]).is_err(), "{len} bytes");
        }
        let mut long = p.clone();
        long.extend([0u8; 64]);
        fix_checksum_v6(&mut long, GW6, NODE6);
        assert_eq!(v6(&long), Err(Mismatch::WrongLength));
        assert!(v6(&[0xff; 1500]).is_err());
    }

    #[test]
    fn the_icmp6_filter_passes_only_echo_replies() {
        let filter = echo_reply_filter();
        // Linux: a set bit blocks the type (net/ipv6/raw.c, icmpv6_filter).
        let blocked = |t: u8| filter[usize::from(t) >> 5] & (1 << (t & 31)) != 0;
        assert!(!blocked(129));
        for t in (0..=255u8).filter(|t| *t != 129) {
            assert!(blocked(t), "type {t} passes");
        }
    }
}
