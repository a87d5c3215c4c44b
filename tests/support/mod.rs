//! Shared harness of the namespace tests: a lab with nodes, a gateway and a client,
//! certificates from one CA, one config per node, and the real `haagent` binary.
#![allow(dead_code)]
// each test file uses a different part
// Shared by every test crate as a private module: `pub` is for its siblings.
#![allow(unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use haagent_lab::require_root;
use haagent_lab::Lab;

pub mod arp;
pub mod arp_responder;
pub mod bird;
pub mod groups;
pub mod routed;
pub mod veth;

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// A host on the segment that answers ping: the witness gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// Generous bound for a cluster to converge after start (TLS handshakes + master-down).
pub const CONVERGE: Duration = Duration::from_secs(10);
/// Generous bound for a takeover at default timers (the expected value is ~200 ms).
pub const TAKEOVER: Duration = Duration::from_secs(3);

pub fn haagent() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_haagent"))
}

pub fn run_ok(args: &[&str]) {
    let out = Command::new(haagent()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "haagent {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One node of a test cluster.
pub struct Node {
    pub name: &'static str,
    pub priority: u8,
    pub extra: &'static str,
}

pub fn node(name: &'static str, priority: u8) -> Node {
    Node {
        name,
        priority,
        extra: "",
    }
}

/// A lab with the given nodes plus a client, certificates from one CA, a config per node.
pub struct Cluster {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    /// TOML appended to every node's config.
    pub common: String,
}

impl Cluster {
    pub fn new(nodes: &[Node]) -> Self {
        Self::with(nodes, "")
    }

    /// Like [`Cluster::new`], with `common` TOML appended to every node's config.
    pub fn with(nodes: &[Node], common: &str) -> Self {
        let names: Vec<&str> = nodes.iter().map(|n| n.name).collect();
        let mut lab = Lab::new(&names).unwrap();
        lab.add_host("client", CLIENT_ADDR).unwrap();
        lab.add_host("gw", GATEWAY).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let certs_s = certs.to_str().unwrap();
        run_ok(&["certs", "init", "--dir", certs_s, "--cluster", "test"]);
        for n in nodes {
            let addr = lab.host(n.name).unwrap().addr.to_string();
            run_ok(&[
                "certs", "issue", "--dir", certs_s, "--name", n.name, "--ip", &addr,
            ]);
        }
        let cluster = Self {
            lab,
            dir,
            common: common.to_string(),
        };
        for n in nodes {
            cluster.write_config(n, nodes, &certs);
        }
        cluster
    }

    pub fn write_config(&self, me: &Node, all: &[Node], certs: &Path) {
        let addr = self.lab.host(me.name).unwrap().addr;
        let mut text = format!(
            "[node]\nname = \"{}\"\npriority = {}\ninterface = \"eth0\"\nlisten = \"{addr}\"\n\n\
             [vip]\naddresses = [\"{VIP}/24\"]\n\n[tls]\ndir = \"{}\"\n\n",
            me.name,
            me.priority,
            certs.display()
        );
        for peer in all.iter().filter(|p| p.name != me.name) {
            let paddr = self.lab.host(peer.name).unwrap().addr;
            text.push_str(&format!(
                "[[peer]]\nname = \"{}\"\naddress = \"{paddr}\"\n\n",
                peer.name
            ));
        }
        // Each node its own state dir (the maintenance flag), never the host's
        // /var/lib/haagent: tests must not see each other's, nor a developer's.
        text.push_str(&format!(
            "[control]\nsocket = \"{}\"\n\n[state]\ndir = \"{}\"\n\n",
            self.socket_path(me.name).display(),
            self.state_dir(me.name).display()
        ));
        text.push_str(me.extra);
        text.push_str(&self.common);
        std::fs::write(self.config_path(me.name), text).unwrap();
    }

    /// The control socket of `name`'s agent.
    pub fn socket_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.sock"))
    }

    /// `name`'s `[state] dir`.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}-state"))
    }

    pub fn config_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.toml"))
    }

    pub fn start(&mut self, name: &str) {
        self.start_with(name, &haagent_lab::Launch::default());
    }

    /// Starts `name`'s agent as `launch` says (through a wrapper, with extra environment).
    pub fn start_with(&mut self, name: &str, launch: &haagent_lab::Launch) {
        self.start_binary(name, haagent(), launch);
    }

    /// Starts `name`'s agent from `binary` (another build of haagent, e.g. the previous
    /// release in tests/upgrade.rs) as `launch` says.
    pub fn start_binary(&mut self, name: &str, binary: &Path, launch: &haagent_lab::Launch) {
        let config = self.config_path(name);
        let log = self.dir.path().join(format!(
            "{name}-{}.log",
            self.lab.agents.iter().filter(|a| a.host == name).count()
        ));
        let args = vec!["--config".to_string(), config.display().to_string()];
        self.lab
            .start_agent_with(name, binary, &args, &log, launch)
            .unwrap();
    }

    pub fn holders(&self) -> Vec<String> {
        self.lab.holders(VIP).unwrap()
    }

    /// Waits until exactly `name` holds the VIP; returns how long that took.
    pub fn wait_sole_holder(&self, name: &str, timeout: Duration) -> Duration {
        let (took, last) = self
            .lab
            .wait_holders(VIP, timeout, |h| h.len() == 1 && h[0] == name)
            .unwrap();
        match took {
            Some(t) => t,
            None => panic!(
                "expected {name} alone to hold {VIP} within {timeout:?}, holders are {last:?}\n{}",
                self.logs()
            ),
        }
    }

    /// Waits until `name` holds the VIP (others may still hold it too); returns the time.
    pub fn wait_holder(&self, name: &str, timeout: Duration) -> Duration {
        let (took, last) = self
            .lab
            .wait_holders(VIP, timeout, |h| h.iter().any(|x| x == name))
            .unwrap();
        match took {
            Some(t) => t,
            None => panic!(
                "expected {name} to hold {VIP} within {timeout:?}, holders are {last:?}\n{}",
                self.logs()
            ),
        }
    }

    pub fn logs(&self) -> String {
        self.lab
            .agents
            .iter()
            .map(|a| {
                format!(
                    "----- {} ({}) -----\n{}",
                    a.host,
                    a.log.display(),
                    a.log_text()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Makes the client talk to the VIP so it resolves the VIP's MAC (a real ARP exchange).
    pub fn client_contacts_vip(&self) {
        let client = self.lab.host("client").unwrap();
        let out = client
            .ns
            .command("bash")
            .args(["-c", &format!("echo ping > /dev/udp/{VIP}/9")])
            .output()
            .unwrap();
        assert!(out.status.success(), "client could not send to the VIP");
    }

    /// Polls the client's neighbour entry for the VIP until it shows `mac`.
    pub fn wait_client_sees_mac(&self, mac: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let seen = self.lab.neighbour_mac("client", VIP).unwrap();
            if seen.as_deref() == Some(mac) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "client's neighbour entry for {VIP} is {seen:?}, expected {mac}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `name`'s current log contains `text`.
    pub fn wait_log(&mut self, name: &str, text: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.lab.agent(name).unwrap().log_text().contains(text) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{name}'s log never said {text:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Samples holders every 5 ms for `window` (and on until at least 10 samples were taken:
    /// one sample spawns an `ip` per host, which a loaded machine makes slow) and asserts
    /// each sample equals `expected`.
    pub fn assert_holders_stay(&self, expected: &[&str], window: Duration) {
        let start = Instant::now();
        let mut samples = 0;
        while start.elapsed() < window || samples <= 10 {
            let h = self.holders();
            assert_eq!(
                h,
                expected,
                "holders changed after {samples} samples\n{}",
                self.logs()
            );
            samples += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os("HAAGENT_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// (time since start, nodes holding the VIP) per sample.
pub type Timeline = Vec<(Duration, Vec<String>)>;

/// Samples which nodes hold the VIP every 10 ms in a background thread.
pub struct HolderSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Timeline>>,
}

/// What a [`HolderSampler`] saw.
pub struct Samples {
    pub samples: Timeline,
}

impl Samples {
    /// Samples with two or more holders.
    pub fn dual(&self) -> usize {
        self.samples.iter().filter(|(_, h)| h.len() > 1).count()
    }

    /// The first dual-holder samples, for failure messages.
    pub fn dual_examples(&self) -> Vec<&(Duration, Vec<String>)> {
        self.samples
            .iter()
            .filter(|(_, h)| h.len() > 1)
            .take(5)
            .collect()
    }
}

impl HolderSampler {
    /// Starts sampling the `nodes` of `cluster` for [`VIP`].
    pub fn start(cluster: &Cluster, nodes: &[&str]) -> Self {
        Self::start_for(cluster, nodes, &[IpAddr::V4(VIP)])
    }

    /// Starts sampling the `nodes` of `cluster`: a node holds when `eth0` carries any of
    /// `vips` (of either family) — for two VIPs that move together, two holders means two
    /// nodes with some VIP at once.
    pub fn start_for(cluster: &Cluster, nodes: &[&str], vips: &[IpAddr]) -> Self {
        let vips = vips.to_vec();
        let namespaces: Vec<(String, String)> = nodes
            .iter()
            .map(|n| {
                let host = cluster.lab.host(n).unwrap();
                (n.to_string(), host.ns.name().to_string())
            })
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            let mut next = start;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let holders: Vec<String> = namespaces
                    .iter()
                    .filter(|(_, ns)| ns_has_vip(ns, &vips))
                    .map(|(n, _)| n.clone())
                    .collect();
                samples.push((start.elapsed(), holders));
                next += Duration::from_millis(10);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                } else {
                    next = Instant::now();
                }
            }
            samples
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns the samples.
    pub fn finish(mut self) -> Samples {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = self
            .thread
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        Samples { samples }
    }
}

impl Drop for HolderSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `eth0` in namespace `ns` carries any of `vips` (`ip -o addr` prints
/// `inet 192.0.2.100/24` and `inet6 2001:db8::100/64`).
fn ns_has_vip(ns: &str, vips: &[IpAddr]) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "addr", "show", "dev", "eth0"])
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            vips.iter().any(|v| text.contains(&format!(" {v}/")))
        }
        Err(_) => false,
    }
}

/// `ping -i 0.01` from the client namespace to the VIP; killed (by PID) on drop.
pub struct ClientPinger {
    child: std::process::Child,
    started: Instant,
}

impl ClientPinger {
    pub fn start(cluster: &Cluster) -> Self {
        let client = cluster.lab.host("client").unwrap();
        let child = client
            .ns
            .command("ping")
            .args(["-D", "-n", "-i", "0.01", "-W", "1", &VIP.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ping (iputils-ping) must be installed");
        Self {
            child,
            started: Instant::now(),
        }
    }

    /// Stops and returns the Unix times (seconds) of every answered ping.
    pub fn finish(mut self) -> Replies {
        let _ = self.child.kill();
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut out);
        }
        let _ = self.child.wait();
        let times = out
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect();
        Replies {
            times,
            started: self.started,
        }
    }
}

/// The answered pings of a [`ClientPinger`].
pub struct Replies {
    /// Unix time of each answer, in seconds.
    pub times: Vec<f64>,
    started: Instant,
}

impl Replies {
    /// The longest time between two answers: the client-observed outage (about 10 ms when
    /// nothing was lost).
    pub fn outage(&self) -> Duration {
        let gap = self
            .times
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(0.0_f64, f64::max);
        Duration::from_secs_f64(gap)
    }

    /// Time from `since` (a Unix time) to the first answer after it.
    pub fn first_answer_after(&self, since: f64) -> Option<Duration> {
        let _ = self.started;
        self.times
            .iter()
            .find(|t| **t >= since)
            .map(|t| Duration::from_secs_f64(t - since))
    }
}

/// Now, as Unix time in seconds (to compare with ping's `-D` stamps).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Drop for ClientPinger {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `nft` inside host `name`'s namespace.
pub fn nft(cluster: &Cluster, name: &str, script: &str) {
    nft_in(&cluster.lab.host(name).unwrap().ns, script);
}

/// Runs `nft -f -` with `script` inside namespace `ns`; fails the test if it fails.
pub fn nft_in(ns: &haagent_lab::Netns, script: &str) {
    let out = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .expect("nft (nftables) must be installed");
    assert!(
        out.status.success(),
        "nft failed in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds `line` to the `[vip]` table of `name`'s config (the harness writes that table, so
/// a second `[vip]` in `common` would be a duplicate).
pub fn add_vip_setting(c: &Cluster, name: &str, line: &str) {
    let path = c.config_path(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen("[vip]\n", &format!("[vip]\n{line}\n"), 1);
    std::fs::write(&path, text).unwrap();
}

/// Sets `net.ipv4.conf.eth0.promote_secondaries` on host `name`.
pub fn set_promote_secondaries(c: &Cluster, name: &str, on: bool) {
    let ns = &c.lab.host(name).unwrap().ns;
    let out = ns
        .command("sysctl")
        .args([
            "-qw",
            &format!("net.ipv4.conf.eth0.promote_secondaries={}", u8::from(on)),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops all peer traffic (the QUIC port) to and from host `name`.
pub fn block_peer_traffic(cluster: &Cluster, name: &str) {
    nft(
        cluster,
        name,
        "table inet hatest {\n\
           chain in { type filter hook input priority 0; udp dport 5798 drop; udp sport 5798 drop; }\n\
           chain out { type filter hook output priority 0; udp dport 5798 drop; udp sport 5798 drop; }\n\
         }\n",
    );
}

/// Drops `percent` % of the peer traffic to and from host `name`, at random.
pub fn lossy_peer_traffic(cluster: &Cluster, name: &str, percent: u32) {
    nft(
        cluster,
        name,
        &format!(
            "table inet hatest {{\n\
               chain in {{ type filter hook input priority 0; udp dport 5798 numgen random mod 100 < {percent} drop; }}\n\
               chain out {{ type filter hook output priority 0; udp dport 5798 numgen random mod 100 < {percent} drop; }}\n\
             }}\n"
        ),
    );
}

/// Removes what [`block_peer_traffic`] or [`lossy_peer_traffic`] installed.
pub fn unblock(cluster: &Cluster, name: &str) {
    nft(cluster, name, "delete table inet hatest\n");
}

/// Number of state transitions in `name`'s current log after the first takeover, i.e.
/// lines the daemon writes for a transition (they all carry `from=` and `to=`).
pub fn transitions_in_log(cluster: &mut Cluster, name: &str) -> usize {
    cluster
        .lab
        .agent(name)
        .unwrap()
        .log_text()
        .lines()
        .filter(|l| l.contains(" from=") && l.contains(" to="))
        .count()
}

impl Cluster {
    /// Runs `haagent ARGS --socket <name's socket>` (a control command) and returns it.
    pub fn ctl(&self, name: &str, args: &[&str]) -> std::process::Output {
        self.ctl_binary(haagent(), name, args)
    }

    /// Like [`Cluster::ctl`], with the CLI of `binary` (another build of haagent).
    pub fn ctl_binary(&self, binary: &Path, name: &str, args: &[&str]) -> std::process::Output {
        let socket = self.socket_path(name);
        Command::new(binary)
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap()
    }

    /// `haagent status --json` of `name`, parsed.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let out = self.ctl(name, &["status", "--json"]);
        assert!(
            out.status.success(),
            "status of {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Polls `name`'s status until `ready` holds for it (or panics after `timeout` with the
    /// last status and the logs); returns that status.
    pub fn wait_status(
        &self,
        name: &str,
        timeout: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let status = self.status(name);
            if ready(&status) {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "{name}'s status never got there: {status:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts nginx (Debian's package) on `name`, serving `200 <name>` on port 80.
    pub fn start_nginx(&self, name: &str) -> haagent_lab::proc::Proc {
        let dir = self.dir.path().join(format!("nginx-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let host = self.lab.host(name).unwrap();
        haagent_lab::web::start(
            haagent_lab::web::ServerKind::Nginx,
            &host.ns,
            name,
            &dir,
            haagent(),
        )
        .expect("nginx (Debian package) must be installed")
    }
}

/// The unprivileged user the least-privilege tests run an agent as.
pub const NOBODY: u32 = 65534;
/// Its group, which the control socket is given to (`[control] group`).
pub const NOGROUP: &str = "nogroup";
/// That group's id (Debian's).
pub const NOGROUP_GID: u32 = 65534;
/// Linux capability numbers (capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
/// See [`CAP_NET_ADMIN`].
pub const CAP_NET_RAW: u32 = 13;

/// `setpriv` as the systemd unit runs the agent: user `nobody`, group `nogroup`, no
/// supplementary groups, only CAP_NET_ADMIN and CAP_NET_RAW (ambient, so they survive the
/// exec; bounding set limited to them), no new privileges.
pub fn setpriv_two_caps() -> Vec<String> {
    [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=+net_admin,+net_raw",
        "--ambient-caps=+net_admin,+net_raw",
        "--bounding-set=-all,+net_admin,+net_raw",
        "--no-new-privs",
    ]
    .map(String::from)
    .to_vec()
}

impl Cluster {
    /// Prepares `name` to run as `nobody` (see [`setpriv_two_caps`]) the way the package
    /// does for its user: the test dir traversable, the certificates dir readable by the
    /// group (0750 root:nogroup), the node's key owned by the user (still 0600), a control
    /// socket dir and a state dir it owns, the socket given to `nogroup`. Returns the
    /// launch and the control socket's path.
    pub fn unprivileged(&self, name: &str) -> (haagent_lab::Launch, PathBuf) {
        use std::os::unix::fs::{chown, PermissionsExt};
        let gid = Some(NOGROUP_GID);
        let set_mode = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        set_mode(self.dir.path(), 0o711);
        let certs = self.dir.path().join("certs");
        chown(&certs, None, gid).unwrap();
        set_mode(&certs, 0o750);
        chown(certs.join(format!("{name}-key.pem")), Some(NOBODY), gid).unwrap();
        let run = self.dir.path().join(format!("{name}-run"));
        let state = self.state_dir(name);
        for dir in [&run, &state] {
            std::fs::create_dir_all(dir).unwrap();
            chown(dir, Some(NOBODY), gid).unwrap();
        }
        let socket = run.join("haagent.sock");
        let config = self.config_path(name);
        let text = std::fs::read_to_string(&config).unwrap();
        let old = format!("socket = \"{}\"\n", self.socket_path(name).display());
        assert!(text.contains(&old), "{name}'s config has no socket line");
        let new = format!("socket = \"{}\"\ngroup = \"{NOGROUP}\"\n", socket.display());
        std::fs::write(&config, text.replace(&old, &new)).unwrap();
        let launch = haagent_lab::Launch {
            wrapper: setpriv_two_caps(),
            env: Vec::new(),
        };
        (launch, socket)
    }
}

/// The real and effective user ids and the effective capability mask of `pid`
/// (/proc/PID/status: `Uid:` and `CapEff:`).
pub fn uid_and_caps(pid: u32) -> (Vec<u32>, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
            .trim()
            .to_string()
    };
    let uids = field("Uid:")
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect();
    let caps = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    (uids, caps)
}

/// One scrape of `name`'s metrics endpoint (`[metrics] listen = "127.0.0.1:9798"` inside
/// its namespace), with bash's `/dev/tcp`: the whole HTTP answer.
pub fn scrape(c: &Cluster, name: &str) -> String {
    let ns = c.lab.host(name).unwrap().ns.name().to_string();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "bash", "-c"])
        .arg(
            "exec 3<>/dev/tcp/127.0.0.1/9798; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; \
             cat <&3",
        )
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `series` (name and labels exactly as exported) in a scrape, if present.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Scrapes `name` until `series` has the value `want` (per-peer and per-check series follow
/// the agent's once-a-second metrics refresh), or fails after `timeout`.
pub fn scrape_until(c: &Cluster, name: &str, series: &str, want: f64, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = scrape(c, name);
        if series_value(&text, series) == Some(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never showed {series} {want}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
