//! The one `AF_PACKET` socket of the VIP module, shared by the gratuitous ARP sender
//! ([`super::GarpSender`]), the RFC 5227 probe ([`super::ArpProbe`]) and the ARP watch
//! ([`super::ArpWatch`]).
//!
//! # Why a module of its own
//!
//! A packet socket is bound to an interface *index*, and it remembers errors: when its
//! interface goes administratively down the kernel leaves `ENETDOWN` pending on it
//! (`sk_err`), and the next send returns that error even if the link has come back up in
//! between. An interface deleted and created again under the same name (a network restart
//! does that to VLANs and bonds) gets a new index and usually a new MAC; the old socket then
//! fails with `ENXIO`/`ENODEV` for good. So every user of a packet socket needs the same
//! two things: a way to reopen it by name (new index, new MAC), and a send that reopens and
//! retries once when it fails with one of those errors while the kernel says the interface
//! is up. [`PacketSocket`] is that, written once.
//!
//! # Filters
//!
//! pnet's layer-2 channel binds the socket with `ETH_P_ALL`, which would queue a copy of
//! every frame on the interface. We create the socket ourselves (protocol 0: no receive
//! hook until pnet binds it) and attach a classic BPF program first ([`Filter`]), so only
//! what the user reads is ever queued. Promiscuous mode stays off.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use pnet_base::MacAddr;
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender};

use super::VipError;

/// The capability a packet socket needs.
pub(crate) const CAP_NET_RAW: &str = "CAP_NET_RAW";

/// How long one send may wait for room in the socket's send buffer.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// Bytes of each accepted frame the ARP filter keeps (an ARP frame needs 42).
const SNAP_LEN: u32 = 64;

/// What a [`PacketSocket`] lets through to user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Nothing: a send-only socket (gratuitous ARP).
    DropAll,
    /// Incoming ARP frames only; our own outgoing frames (`PACKET_OUTGOING`) and every
    /// other ethertype are dropped in the kernel (probe and watch).
    IncomingArp,
}

/// A pnet layer-2 channel on one interface, found by name, that can be reopened.
pub(crate) struct PacketSocket {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    /// The descriptor pnet owns (and closes); only used while `tx`/`rx` live.
    fd: RawFd,
    ifname: String,
    mac: Option<MacAddr>,
    filter: Filter,
    read_timeout: Option<Duration>,
}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket")
            .field("interface", &self.ifname)
            .field("mac", &self.mac)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl PacketSocket {
    /// Opens a channel on the interface called `interface` as the kernel knows it now
    /// (index and MAC looked up by name), in the calling thread's network namespace.
    /// `read_timeout`: how long [`PacketSocket::next`] waits for a frame (`None`: forever).
    ///
    /// Errors: [`VipError::InterfaceNotFound`], [`VipError::PermissionDenied`] without
    /// `CAP_NET_RAW`, [`VipError::Io`] otherwise.
    pub(crate) fn open(
        interface: &str,
        filter: Filter,
        read_timeout: Option<Duration>,
    ) -> Result<Self, VipError> {
        let iface = find(interface)?;
        let mac = iface.mac.filter(|m| *m != MacAddr::zero());
        let socket = filtered_socket(filter)
            .map_err(|e| VipError::from_io(interface, "open packet socket", CAP_NET_RAW, e))?;
        let fd = socket.as_raw_fd();
        let config = Config {
            write_timeout: Some(WRITE_TIMEOUT),
            read_timeout,
            read_buffer_size: 256,
            write_buffer_size: 256,
            promiscuous: false,
            // pnet takes ownership of the descriptor (and closes it on error).
            socket_fd: Some(socket.into_raw_fd()),
            ..Config::default()
        };
        match pnet_datalink::channel(&iface, config) {
            Ok(Channel::Ethernet(tx, rx)) => Ok(Self {
                tx,
                rx,
                fd,
                ifname: interface.to_string(),
                mac,
                filter,
                read_timeout,
            }),
            Ok(_) => Err(VipError::Io {
                interface: interface.to_string(),
                operation: "open packet socket".to_string(),
                source: io::Error::other("pnet returned a non-Ethernet channel"),
            }),
            Err(e) => Err(VipError::from_io(
                interface,
                "bind packet socket",
                CAP_NET_RAW,
                e,
            )),
        }
    }

    /// Replaces the socket with a fresh one on the interface that now carries the name
    /// (its current index and MAC). On error the old socket stays.
    pub(crate) fn reopen(&mut self) -> Result<(), VipError> {
        *self = Self::open(&self.ifname, self.filter, self.read_timeout)?;
        Ok(())
    }

    /// The interface's MAC as it was when the socket was (re)opened; `None` if it has none.
    pub(crate) fn mac(&self) -> Option<MacAddr> {
        self.mac
    }

    /// The interface name.
    pub(crate) fn interface(&self) -> &str {
        &self.ifname
    }

    /// Sends one frame (blocking, at most ~100 ms while the send buffer is full: then an
    /// error of kind `TimedOut`).
    ///
    /// If the send fails with `ENETDOWN`, `ENXIO` or `ENODEV` while the kernel says the
    /// interface called by our name is up, the socket is stale (an error left pending by
    /// a link flap, or an index that no longer exists): it is reopened and the frame sent
    /// once more; the second answer is returned. Otherwise the first error is returned.
    pub(crate) fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.send_once(frame) {
            Err(e) if is_stale_link_error(&e) && interface_is_up(&self.ifname) => {
                tracing::debug!(interface = %self.ifname, error = %e,
                    "packet socket is stale although the interface is up: reopening it");
                if self.reopen().is_err() {
                    return Err(e);
                }
                self.send_once(frame)
            }
            other => other,
        }
    }

    fn send_once(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) if e.kind() == io::ErrorKind::TimedOut => Err(e),
            // pnet reports POLLERR as "Unexpected poll event"; fetch (and clear) the real
            // socket error, e.g. ENETDOWN.
            Some(Err(e)) => Err(take_socket_error(self.fd).unwrap_or(e)),
            None => Err(io::Error::other("frame larger than the write buffer")),
        }
    }

    /// Waits up to the read timeout for one frame. `Ok(None)` on timeout.
    pub(crate) fn next(&mut self) -> io::Result<Option<&[u8]>> {
        match self.rx.next() {
            Ok(frame) => Ok(Some(frame)),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            // As in send_once: the real error hides behind pnet's poll message.
            Err(e) => Err(take_socket_error(self.fd).unwrap_or(e)),
        }
    }

    /// Discards every frame already queued on the socket (and a pending error).
    pub(crate) fn drain(&mut self) {
        let _ = take_socket_error(self.fd);
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: buf is valid for its length; fd is open while self lives.
            let n = unsafe {
                libc::recv(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return;
                }
            }
        }
    }
}

/// Whether `e` is what a packet socket returns when its interface went down or away:
/// `ENETDOWN` (left pending by a down/up flap), `ENXIO` or `ENODEV` (index gone).
fn is_stale_link_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV)
    )
}

/// Whether an interface called `name` exists and is administratively up, per the kernel.
fn interface_is_up(name: &str) -> bool {
    find(name).is_ok_and(|i| i.is_up())
}

/// The interface called `name` as the kernel reports it now.
fn find(name: &str) -> Result<pnet_datalink::NetworkInterface, VipError> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| VipError::InterfaceNotFound {
            interface: name.to_string(),
        })
}

/// An `AF_PACKET` raw socket created with protocol 0 (no receive hook until pnet binds
/// it) carrying the classic BPF program of `filter`.
fn filtered_socket(filter: Filter) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4; // SKF_AD_OFF + SKF_AD_PKTTYPE
    const PACKET_OUTGOING: u32 = 4;
    const ETH_P_ARP: u32 = 0x0806;
    let insn = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let mut program: Vec<libc::sock_filter> = match filter {
        // BPF_RET | BPF_K with k = 0: accept zero bytes of every packet.
        Filter::DropAll => vec![insn(0x06, 0, 0, 0)],
        Filter::IncomingArp => vec![
            insn(0x20, 0, 0, SKF_AD_PKTTYPE),  // 0: ld  pkttype
            insn(0x15, 3, 0, PACKET_OUTGOING), // 1: jeq OUTGOING → 5 (drop)
            insn(0x28, 0, 0, 12),              // 2: ldh [12] (ethertype)
            insn(0x15, 0, 1, ETH_P_ARP),       // 3: jeq ARP → 4, else → 5
            insn(0x06, 0, 0, SNAP_LEN),        // 4: ret SNAP_LEN (accept)
            insn(0x06, 0, 0, 0),               // 5: ret 0 (drop)
        ],
    };
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len()).unwrap_or(u16::MAX),
        filter: program.as_mut_ptr(),
    };
    // SAFETY: fprog points at a live filter program for the call's duration.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// Reads and clears a socket's pending error (`SO_ERROR`), if any.
fn take_socket_error(fd: RawFd) -> Option<io::Error> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value/len are valid for writes of an int; fd is open.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && value != 0).then(|| io::Error::from_raw_os_error(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_errors_that_mean_a_stale_socket() {
        for errno in [libc::ENETDOWN, libc::ENXIO, libc::ENODEV] {
            assert!(is_stale_link_error(&io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_stale_link_error(&io::Error::from_raw_os_error(
            libc::EPERM
        )));
        assert!(!is_stale_link_error(&io::Error::new(
            io::ErrorKind::TimedOut,
            "full"
        )));
    }

    #[test]
    fn missing_interface_is_named_and_never_up() {
        let e = PacketSocket::open("havip-nonexistent0", Filter::DropAll, None).unwrap_err();
        assert_eq!(e.to_string(), "interface havip-nonexistent0 not found");
        assert!(!interface_is_up("havip-nonexistent0"));
    }
}
