//! What the benchmark measures, sampled from inside the namespaces:
//!
//! - [`HttpProbe`]: the client's view. Every 10 ms a request slot starts: a TCP connect to
//!   VIP:80 (50 ms timeout) and `GET /` (50 ms to answer). A pool of threads, all inside the
//!   client namespace, takes the slots round-robin so a slow (failing) request never delays
//!   the next slot. Each result is recorded with its start time and the server that answered.
//! - [`HolderSampler`]: the VIP's holders. One thread keeps a netlink socket in every node's
//!   namespace (a socket stays in the namespace it was created in) and dumps the IPv4
//!   addresses of all of them every 10 ms (~50 µs per dump; spawning `ip` would take ~3 ms
//!   per namespace).
//!
//! `setns` is per thread: these threads switch namespace once, at start, and never serve
//! anything else.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::LabError;

/// Time between probe slots and between holder samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// TCP connect timeout of one probe.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(50);
/// Time one probe waits for the answer once connected.
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(50);
const PROBE_THREADS: u64 = 12;

/// Moves the calling thread into network namespace `name` (from `ip netns add`).
pub fn enter_netns(name: &str) -> Result<(), LabError> {
    let path = format!("/run/netns/{name}");
    let file = std::fs::File::open(&path).map_err(|source| LabError::File {
        path: path.clone().into(),
        source,
    })?;
    // SAFETY: setns on an fd we own; it only affects the calling thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(LabError::Spawn {
            command: format!("setns({path})"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// One request of the client probe.
#[derive(Debug, Clone)]
pub struct ProbeSample {
    /// When the request started.
    pub at: Instant,
    /// Whether a `200` came back in time.
    pub ok: bool,
    /// The first word of the body: the name of the node that answered.
    pub server: Option<String>,
    /// Why the request failed (`None` when `ok`).
    pub failure: Option<ProbeFailure>,
}

/// Why a request of the [`HttpProbe`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// No connection: no SYN-ACK within [`CONNECT_TIMEOUT`], or a RST to the SYN.
    Connect,
    /// The established connection was reset (a RST, e.g. from a node that took the VIP
    /// over and knows nothing of a connection the old holder had accepted).
    Reset,
    /// No complete answer within [`ANSWER_TIMEOUT`].
    Timeout,
    /// An answer other than `200`.
    BadAnswer,
}

impl ProbeFailure {
    /// The failure of a read or write on an established connection.
    fn of_stream(e: &std::io::Error) -> Self {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match e.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe => Self::Reset,
            _ => Self::Timeout,
        }
    }
}

/// The client's HTTP probe against the VIP; stops (and joins its threads) when dropped.
#[derive(Debug)]
pub struct HttpProbe {
    samples: Arc<Mutex<Vec<ProbeSample>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpProbe {
    /// Starts probing `target` from namespace `client_ns`.
    pub fn start(client_ns: &str, target: SocketAddr) -> Result<Self, LabError> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now() + Duration::from_millis(20);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for id in 0..PROBE_THREADS {
            let (samples, stop, ns, ready) = (
                samples.clone(),
                stop.clone(),
                client_ns.to_string(),
                ready_tx.clone(),
            );
            threads.push(std::thread::spawn(move || {
                if let Err(e) = enter_netns(&ns) {
                    let _ = ready.send(Err(e));
                    return;
                }
                let _ = ready.send(Ok(()));
                probe_loop(id, t0, target, &samples, &stop);
            }));
        }
        let probe = Self {
            samples,
            stop,
            threads,
        };
        for _ in 0..PROBE_THREADS {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(LabError::Setup("probe thread died".into())),
            }
        }
        Ok(probe)
    }

    /// The samples that started in `[from, to)`, in start order.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<ProbeSample> {
        let mut v: Vec<ProbeSample> = self
            .samples
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|p| p.at >= from && p.at < to)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|p| p.at);
        v
    }

    /// The samples of the last `window`, excluding requests that may still be running.
    pub fn recent(&self, window: Duration) -> Vec<ProbeSample> {
        let now = Instant::now();
        let settled = now
            .checked_sub(CONNECT_TIMEOUT + ANSWER_TIMEOUT)
            .unwrap_or(now);
        let from = settled.checked_sub(window).unwrap_or(settled);
        self.between(from, settled)
    }

    /// Waits until the requests of the last 200 ms that have settled are more than 5 and
    /// all answered by `server` (the first word of the body). On `timeout`, the last of
    /// those requests, for the caller's message.
    pub fn wait_steady_from(
        &self,
        server: &str,
        timeout: Duration,
    ) -> Result<(), Vec<ProbeSample>> {
        let start = Instant::now();
        loop {
            let recent = self.recent(Duration::from_millis(200));
            if recent.len() > 5
                && recent
                    .iter()
                    .all(|s| s.ok && s.server.as_deref() == Some(server))
            {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(recent);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HttpProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn probe_loop(
    id: u64,
    t0: Instant,
    target: SocketAddr,
    samples: &Mutex<Vec<ProbeSample>>,
    stop: &AtomicBool,
) {
    let mut slot = id;
    while !stop.load(Ordering::Relaxed) {
        let Some(offset) = u32::try_from(slot)
            .ok()
            .and_then(|s| SAMPLE_INTERVAL.checked_mul(s))
        else {
            return;
        };
        let at = t0 + offset;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        } else if now - at > SAMPLE_INTERVAL {
            // This thread is late (its previous request ran long): skip the slot rather
            // than shift the schedule.
            slot += PROBE_THREADS;
            continue;
        }
        let start = Instant::now();
        let answer = get(target);
        if let Ok(mut s) = samples.lock() {
            s.push(ProbeSample {
                at: start,
                ok: answer.is_ok(),
                failure: answer.as_ref().err().copied(),
                server: answer.ok().filter(|s| !s.is_empty()),
            });
        }
        slot += PROBE_THREADS;
    }
}

/// One `GET /`: the answering node's name on a `200`, why not otherwise.
fn get(target: SocketAddr) -> Result<String, ProbeFailure> {
    let mut stream =
        TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).map_err(|_| ProbeFailure::Connect)?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    stream
        .set_nodelay(true)
        .map_err(|e| ProbeFailure::of_stream(&e))?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        .map_err(|e| ProbeFailure::of_stream(&e))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or(ProbeFailure::Timeout)?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| ProbeFailure::of_stream(&e))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(ProbeFailure::of_stream(&e)),
        }
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    if !(text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200")) {
        return Err(ProbeFailure::BadAnswer);
    }
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok(body.split_whitespace().next().unwrap_or("").to_string())
}

/// One sample of who holds the VIP: bit `i` set when node `i` has it.
#[derive(Debug, Clone, Copy)]
pub struct HolderSample {
    /// When the sample was taken (start of the round over all namespaces).
    pub at: Instant,
    /// Bit `i` set when node `i` holds the VIP.
    pub mask: u32,
}

impl HolderSample {
    /// How many nodes hold the VIP.
    pub fn count(&self) -> u32 {
        self.mask.count_ones()
    }
}

/// Samples every node's addresses every 10 ms; stops when dropped.
#[derive(Debug)]
pub struct HolderSampler {
    samples: Arc<Mutex<Vec<HolderSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HolderSampler {
    /// Starts sampling `vip` on the nodes whose namespaces are `node_ns` (bit order).
    pub fn start(node_ns: &[String], vip: Ipv4Addr) -> Result<Self, LabError> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let names = node_ns.to_vec();
        let (s2, stop2) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut socks = Vec::new();
            for ns in &names {
                match enter_netns(ns).and_then(|()| NlSock::open()) {
                    Ok(s) => socks.push(s),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
            }
            let _ = ready_tx.send(Ok(()));
            let mut next = Instant::now();
            let mut seq = 1u32;
            while !stop2.load(Ordering::Relaxed) {
                let at = Instant::now();
                let mut mask = 0u32;
                for (i, sock) in socks.iter().enumerate() {
                    seq = seq.wrapping_add(1);
                    if sock.has_addr(vip, seq).unwrap_or(false) {
                        mask |= 1 << i;
                    }
                }
                if let Ok(mut s) = s2.lock() {
                    s.push(HolderSample { at, mask });
                }
                next += SAMPLE_INTERVAL;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(LabError::Setup("holder sampler thread died".into())),
        }
        Ok(Self {
            samples,
            stop,
            thread: Some(thread),
        })
    }

    /// The samples taken in `[from, to)`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<HolderSample> {
        self.samples
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|p| p.at >= from && p.at < to)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<HolderSample> {
        self.samples.lock().ok()?.last().copied()
    }
}

impl Drop for HolderSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A NETLINK_ROUTE socket bound in the namespace it was created in.
struct NlSock(OwnedFd);

const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

impl NlSock {
    fn open() -> Result<Self, LabError> {
        // SAFETY: plain socket(2); the fd is wrapped in an OwnedFd right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(LabError::Spawn {
                command: "socket(AF_NETLINK)".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        let sock = Self(unsafe { OwnedFd::from_raw_fd(fd) });
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: valid pointer and length for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(sock)
    }

    /// Dumps the namespace's IPv4 addresses; true if `vip` is among them.
    fn has_addr(&self, vip: Ipv4Addr, seq: u32) -> std::io::Result<bool> {
        let mut req = [0u8; 24];
        req[0..4].copy_from_slice(&24u32.to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETADDR.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&seq.to_ne_bytes());
        req[16] = libc::AF_INET as u8;
        let fd = self.0.as_raw_fd();
        // SAFETY: valid buffer and length.
        if unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let want = vip.octets();
        let mut found = false;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: valid buffer and length.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
                    as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let mseq =
                    u32::from_ne_bytes([buf[off + 8], buf[off + 9], buf[off + 10], buf[off + 11]]);
                if len < 16 || off + len > n {
                    break;
                }
                if mseq == seq {
                    match kind {
                        NLMSG_DONE => return Ok(found),
                        NLMSG_ERROR => {
                            return Err(std::io::Error::other("netlink error reply"));
                        }
                        RTM_NEWADDR => found |= addr_matches(&buf[off + 16..off + len], want),
                        _ => {}
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }
}

/// Whether an `ifaddrmsg` (+ attributes) carries `want` as IFA_LOCAL or IFA_ADDRESS.
fn addr_matches(msg: &[u8], want: [u8; 4]) -> bool {
    if msg.len() < 8 || msg[0] != libc::AF_INET as u8 {
        return false;
    }
    let mut off = 8;
    while off + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[off], msg[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([msg[off + 2], msg[off + 3]]);
        if len < 4 || off + len > msg.len() {
            return false;
        }
        if (kind == IFA_LOCAL || kind == IFA_ADDRESS) && len == 8 && msg[off + 4..off + 8] == want {
            return true;
        }
        off += (len + 3) & !3;
    }
    false
}

/// How far from a planned move a failed request may start and still be the move's
/// unavoidable casualty (see [`unexplained_failures`]).
pub const STRADDLE_WINDOW: Duration = Duration::from_millis(100);

/// At most this many requests per planned move may fail as straddlers.
pub const MAX_STRADDLERS_PER_MOVE: usize = 2;

/// The failed requests among `samples` that a planned move made between `from` and `to`
/// (the command, and the new holder serving alone) does **not** explain, and how many it
/// does.
///
/// A move switches the client's ARP entry at one instant (the new master's gratuitous ARP).
/// A request whose TCP connection the old holder accepted just before, and whose next
/// segment the client sends just after, reaches the new holder, which knows no such
/// connection and answers with a RST. Nothing in the order of the move avoids it (the old
/// holder never sees the rest of that connection); any failover that moves an address by
/// gratuitous ARP without syncing connections has it (tests/upgrade.rs measured a few moves
/// in a hundred). The same connection ends the other way when its request reached the old
/// holder before the switch and the old holder released the VIP before its server answered:
/// the answer cannot leave from an address the host no longer has, and the client, whose
/// request was acknowledged, sends nothing that would draw a RST: an answer timeout
/// ([`ProbeFailure::Timeout`]; CI caught one 4 ms after a `handover` command, 1 run in 12
/// under load reproduced it). So a failure is explained only if it is a connection reset or
/// an answer timeout of an established connection that started within [`STRADDLE_WINDOW`]
/// of `from..=to`, and at most [`MAX_STRADDLERS_PER_MOVE`] of them; every other failure (a
/// refused or unanswered connect, a bad answer, more straddlers, any failure outside the
/// window) is returned.
pub fn unexplained_failures(
    samples: &[ProbeSample],
    from: Instant,
    to: Instant,
) -> (usize, Vec<&ProbeSample>) {
    let mut explained = 0;
    let mut other = Vec::new();
    for s in samples.iter().filter(|s| !s.ok) {
        let near = s.at + STRADDLE_WINDOW >= from && s.at <= to + STRADDLE_WINDOW;
        let straddler = matches!(s.failure, Some(ProbeFailure::Reset | ProbeFailure::Timeout));
        if near && straddler && explained < MAX_STRADDLERS_PER_MOVE {
            explained += 1;
        } else {
            other.push(s);
        }
    }
    (explained, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_at(t0: Instant, ms: u64, why: ProbeFailure) -> ProbeSample {
        ProbeSample {
            at: t0 + Duration::from_millis(ms),
            ok: false,
            server: None,
            failure: Some(why),
        }
    }

    #[test]
    fn a_move_explains_two_straddlers_and_nothing_else() {
        let t0 = Instant::now();
        let (from, to) = (
            t0 + Duration::from_millis(500),
            t0 + Duration::from_millis(510),
        );
        let samples = [
            // Long before the move: unexplained whatever its kind.
            failed_at(t0, 0, ProbeFailure::Reset),
            // At the move: a reset and an answer timeout are the move's casualties...
            failed_at(t0, 504, ProbeFailure::Timeout),
            failed_at(t0, 505, ProbeFailure::Reset),
            // ...a third one is not, nor is a refused connect or a bad answer.
            failed_at(t0, 506, ProbeFailure::Reset),
            failed_at(t0, 507, ProbeFailure::Connect),
            failed_at(t0, 508, ProbeFailure::BadAnswer),
        ];
        let (explained, other) = unexplained_failures(&samples, from, to);
        assert_eq!(explained, 2);
        let left: Vec<_> = other
            .iter()
            .map(|s| (s.at.duration_since(t0).as_millis(), s.failure))
            .collect();
        assert_eq!(
            left,
            [
                (0, Some(ProbeFailure::Reset)),
                (506, Some(ProbeFailure::Reset)),
                (507, Some(ProbeFailure::Connect)),
                (508, Some(ProbeFailure::BadAnswer)),
            ]
        );
    }
}
