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
//!
//! [`Filter::IncomingArpAndNd`] is this classic BPF program (offsets in bytes from the start
//! of the Ethernet frame; untagged Ethernet II only, as the frames we send):
//!
//! | # | instruction | meaning |
//! |--:|-------------|---------|
//! | 0 | `ld pkttype` | the `sll_pkttype` the kernel gave the frame |
//! | 1 | `jeq #PACKET_OUTGOING, drop` | our own frames (probes, announcements) never come back |
//! | 2 | `ldh [12]` | the ethertype |
//! | 3 | `jeq #0x0806, arp` | ARP (RFC 826) |
//! | 4 | `jne #0x86dd, drop` | else only IPv6 |
//! | 5 | `ldb [20]` | the IPv6 next header |
//! | 6 | `jne #58, drop` | ICMPv6 right after the fixed header (no extension header: RFC 4861 §7.1 receivers drop ND behind one anyway) |
//! | 7 | `ldb [54]` | the ICMPv6 type |
//! | 8 | `jeq #135, nd` | Neighbor Solicitation (RFC 4861 §4.3) |
//! | 9 | `jeq #136, nd, drop` | Neighbor Advertisement (RFC 4861 §4.4) |
//! | 10 | `arp: ret #64` | accept the first [`ARP_SNAP_LEN`] bytes |
//! | 11 | `nd: ret #256` | accept the first [`ND_SNAP_LEN`] bytes |
//! | 12 | `drop: ret #0` | drop |
//!
//! Every other frame, all other IPv6 traffic included, stays in the kernel.

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

/// Bytes of each accepted ARP frame the filter keeps (an ARP frame needs 42).
const ARP_SNAP_LEN: u32 = 64;

/// Bytes of each accepted Neighbor Discovery frame the filter keeps: pnet's read buffer
/// (`read_buffer_size` below). An unsolicited NA with its link-layer option is 86 bytes
/// and a DAD NS 78 (see [`super::ndp`]); a longer ND frame (many options) is cut here,
/// fails `parse_nd`'s length check and counts as no claim. Also the bound on what one
/// untrusted frame can cost us.
const ND_SNAP_LEN: u32 = 256;

/// pnet's read buffer, in bytes: the most of one frame user space ever sees.
const READ_BUFFER: usize = ND_SNAP_LEN as usize;

/// What a [`PacketSocket`] lets through to user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Nothing: a send-only socket (gratuitous ARP).
    DropAll,
    /// Incoming ARP frames and incoming IPv6 Neighbor Solicitations and Advertisements
    /// (ICMPv6 types 135 and 136 directly after the IPv6 header); our own outgoing frames
    /// (`PACKET_OUTGOING`) and everything else are dropped in the kernel (probe and watch).
    /// The program is in the module documentation.
    IncomingArpAndNd,
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
            read_buffer_size: READ_BUFFER,
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
    let mut program = program(filter);
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

/// Classic BPF opcodes (`linux/filter.h`) of the programs below.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_LD_H_ABS: u16 = 0x28;
const BPF_LD_B_ABS: u16 = 0x30;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// The classic BPF program of `filter` (see the module documentation).
fn program(filter: Filter) -> Vec<libc::sock_filter> {
    const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4; // SKF_AD_OFF + SKF_AD_PKTTYPE
    const PACKET_OUTGOING: u32 = 4;
    const ETH_P_ARP: u32 = 0x0806;
    const ETH_P_IPV6: u32 = 0x86dd;
    const IPPROTO_ICMPV6: u32 = 58;
    const ND_NEIGHBOR_SOLICIT: u32 = 135;
    const ND_NEIGHBOR_ADVERT: u32 = 136;
    let insn = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    // Jump offsets count instructions from the next one.
    match filter {
        // ret 0: accept zero bytes of every packet.
        Filter::DropAll => vec![insn(BPF_RET_K, 0, 0, 0)],
        Filter::IncomingArpAndNd => vec![
            insn(BPF_LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),   // 0: ld  pkttype
            insn(BPF_JEQ_K, 10, 0, PACKET_OUTGOING),    // 1: jeq OUTGOING → 12
            insn(BPF_LD_H_ABS, 0, 0, 12),               // 2: ldh [12] (ethertype)
            insn(BPF_JEQ_K, 6, 0, ETH_P_ARP),           // 3: jeq ARP → 10
            insn(BPF_JEQ_K, 0, 7, ETH_P_IPV6),          // 4: jeq IPv6 → 5, else → 12
            insn(BPF_LD_B_ABS, 0, 0, 20),               // 5: ldb [20] (next header)
            insn(BPF_JEQ_K, 0, 5, IPPROTO_ICMPV6),      // 6: jeq 58 → 7, else → 12
            insn(BPF_LD_B_ABS, 0, 0, 54),               // 7: ldb [54] (ICMPv6 type)
            insn(BPF_JEQ_K, 2, 0, ND_NEIGHBOR_SOLICIT), // 8: jeq 135 → 11
            insn(BPF_JEQ_K, 1, 2, ND_NEIGHBOR_ADVERT),  // 9: jeq 136 → 11, else → 12
            insn(BPF_RET_K, 0, 0, ARP_SNAP_LEN),        // 10: accept ARP
            insn(BPF_RET_K, 0, 0, ND_SNAP_LEN),         // 11: accept ND
            insn(BPF_RET_K, 0, 0, 0),                   // 12: drop
        ],
    }
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

    /// Runs a classic BPF program as the kernel would, for the opcodes [`program`] uses:
    /// the bytes accepted of `frame` with `sll_pkttype` `pkttype` (0 = dropped). An
    /// out-of-range load drops the frame, as in the kernel.
    fn run(program: &[libc::sock_filter], frame: &[u8], pkttype: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = program[pc];
            let at = i.k as usize;
            pc += 1;
            match i.code {
                BPF_LD_W_ABS if i.k == 0xffff_f004 => acc = pkttype,
                BPF_LD_H_ABS => match frame.get(at..at + 2) {
                    Some(b) => acc = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                BPF_LD_B_ABS => match frame.get(at) {
                    Some(b) => acc = u32::from(*b),
                    None => return 0,
                },
                BPF_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                BPF_RET_K => return i.k,
                other => panic!("opcode {other:#x} not modelled"),
            }
        }
    }

    const PACKET_HOST: u32 = 0;
    const PACKET_BROADCAST: u32 = 1;
    const PACKET_MULTICAST: u32 = 2;
    const PACKET_OUTGOING: u32 = 4;

    /// An 86-byte frame with this ethertype, IPv6 next header and ICMPv6 type.
    fn frame(ethertype: u16, next_header: u8, icmp_type: u8) -> Vec<u8> {
        let mut f = vec![0u8; 86];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[20] = next_header;
        f[54] = icmp_type;
        f
    }

    #[test]
    fn the_filter_passes_incoming_arp_and_neighbour_discovery_only() {
        let p = program(Filter::IncomingArpAndNd);
        let arp = frame(0x0806, 0, 0);
        let ns = frame(0x86dd, 58, 135);
        let na = frame(0x86dd, 58, 136);
        for incoming in [PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST] {
            assert_eq!(run(&p, &arp, incoming), ARP_SNAP_LEN);
            assert_eq!(run(&p, &ns, incoming), ND_SNAP_LEN);
            assert_eq!(run(&p, &na, incoming), ND_SNAP_LEN);
        }
        // Our own frames never come back.
        for own in [&arp, &ns, &na] {
            assert_eq!(run(&p, own, PACKET_OUTGOING), 0);
        }
        // Other ICMPv6 (echo request 128, router advert 134, redirect 137), other next
        // headers (UDP 17, a hop-by-hop header 0 before the ICMPv6), other ethertypes.
        for other in [
            frame(0x86dd, 58, 128),
            frame(0x86dd, 58, 134),
            frame(0x86dd, 58, 137),
            frame(0x86dd, 17, 135),
            frame(0x86dd, 0, 136),
            frame(0x0800, 58, 136),
            frame(0x8100, 0, 0),
        ] {
            assert_eq!(run(&p, &other, PACKET_HOST), 0, "{:02x?}", &other[12..14]);
        }
        // A runt IPv6 frame that ends before its ICMPv6 type is dropped.
        assert_eq!(run(&p, &ns[..40], PACKET_HOST), 0);
        assert_eq!(run(&program(Filter::DropAll), &arp, PACKET_HOST), 0);
    }

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
