//! Two network namespaces joined by one veth pair, for the tests that drive a single
//! module against a real kernel (`vip_netns`, `witness_netns`, `arp_netns`): the code
//! under test runs in a thread that joined one namespace, and the test observes or
//! provokes from the other with `ip`.
//!
//! The namespaces are [`haagent_lab::Netns`] guards, so they are deleted on drop, also
//! when a test panics; their names carry the PID and a counter ([`unique_tag`]).
#![allow(dead_code)] // each test file uses a different part

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use haagent_lab::unique_tag;
pub use haagent_lab::Netns;

/// The interface in namespace A (names are per namespace, so fixed).
pub const IF_A: &str = "veth0";
/// The interface in namespace B, the other end of the pair.
pub const IF_B: &str = "veth1";

/// Runs `ip ARGS`, panics with its stderr on failure, returns stdout.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 needed): {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The MAC of `dev` in `ns`, as `ip -j link show` prints it (`aa:bb:…`).
pub fn mac(ns: &Netns, dev: &str) -> String {
    let out = ip(&["-n", ns.name(), "-j", "link", "show", "dev", dev]);
    let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    links[0]["address"].as_str().unwrap().to_string()
}

/// Runs `f` in a dedicated thread that has joined the namespace called `netns`
/// (setns is per thread, and the sockets `f` opens stay in that namespace); a panic
/// in `f` is passed on.
pub fn run_in<R: Send + 'static>(netns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let path = format!("/var/run/netns/{netns}");
    let thread = std::thread::spawn(move || {
        let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: valid namespace fd; only this thread switches.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    });
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `make()`'s future to completion on a fresh current-thread runtime, in a
/// dedicated thread that has joined the namespace called `netns` (see [`run_in`]).
pub fn block_on_in<F, Fut>(netns: &str, make: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    run_in(netns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(make())
    })
}

/// Sends `frames` on `dev` of the namespace `ns` through a raw Ethernet channel (pnet, not
/// promiscuous), `gap` apart.
pub fn send_frames(ns: &str, dev: &str, frames: Vec<Vec<u8>>, gap: Duration) {
    let dev = dev.to_string();
    run_in(ns, move || {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == dev)
            .unwrap_or_else(|| panic!("{dev} in the sender's namespace"));
        let config = pnet_datalink::Config {
            promiscuous: false,
            ..Default::default()
        };
        let Ok(pnet_datalink::Channel::Ethernet(mut tx, _rx)) =
            pnet_datalink::channel(&iface, config)
        else {
            panic!("no ethernet channel on {dev}");
        };
        for f in frames {
            tx.send_to(&f, None).expect("one frame").expect("sent");
            std::thread::sleep(gap);
        }
    });
}

/// Namespaces A and B, loopback up in both, joined by [`IF_A`] (in A) – [`IF_B`] (in B),
/// both ends up with the addresses given.
pub struct VethLab {
    /// Namespace A, holding [`IF_A`].
    pub a: Netns,
    /// Namespace B, holding [`IF_B`].
    pub b: Netns,
}

impl VethLab {
    /// Builds the pair; `tag` goes into the namespace names (`ha{tag}-PID-N-a`, `…-b`),
    /// `addr_a` and `addr_b` (CIDR, e.g. `192.0.2.1/24`) go on [`IF_A`] and [`IF_B`].
    pub fn new(tag: &str, addr_a: &str, addr_b: &str) -> VethLab {
        let lab = VethLab::pair(tag);
        let (na, nb) = (lab.a.name(), lab.b.name());
        ip(&["-n", na, "addr", "add", addr_a, "dev", IF_A]);
        ip(&["-n", nb, "addr", "add", addr_b, "dev", IF_B]);
        lab.set_up();
        lab
    }

    /// Only the namespaces and the pair, both ends down and without addresses (for a lab
    /// that sets sysctls first, e.g. IPv6 without DAD); [`VethLab::set_up`] brings it up.
    pub fn pair(tag: &str) -> VethLab {
        let base = unique_tag(tag);
        let a = Netns::create(&format!("{base}-a")).unwrap();
        let b = Netns::create(&format!("{base}-b")).unwrap();
        ip(&[
            "-n",
            a.name(),
            "link",
            "add",
            IF_A,
            "type",
            "veth",
            "peer",
            "name",
            IF_B,
            "netns",
            b.name(),
        ]);
        VethLab { a, b }
    }

    /// Both ends of the pair up (loopback is up from the start).
    pub fn set_up(&self) {
        for (ns, dev) in [(self.a.name(), IF_A), (self.b.name(), IF_B)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// Runs `make()`'s future in namespace A (see [`block_on_in`]).
    pub fn run_in_a<F, Fut>(&self, make: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
    {
        block_on_in(self.a.name(), make)
    }
}
