//! IPv6 VIPs end to end (issue 13), with the real binary in network namespaces: the lab's
//! segment carries 2001:db8::/64 next to 192.0.2.0/24 (host 192.0.2.X also has 2001:db8::X,
//! added with `nodad`), nginx answers on both families, and the client probes `[VIP]:80`.
//!
//! - `ipv6_only_cluster_moves_the_vip_on_link_loss_and_the_client_follows`: peers over
//!   IPv6 only, one IPv6 VIP; the master's cable pulled → the backup holds it, the client's
//!   `ip -6 neigh` entry shows the new MAC (our unsolicited NA, RFC 4861 §7.2.6), and its
//!   requests recover;
//! - `dual_stack_vips_move_together_and_a_killed_master_loses_both_by_lease`: one IPv4 and
//!   one IPv6 VIP; both move on link loss (outage for each printed); SIGKILL of the
//!   master's agent: both expire by lease and the backup claims only then (sampled every
//!   10 ms: never two holders);
//! - `a_stranger_answering_for_the_ipv6_vip_blocks_the_claim_visibly`: a host that is no
//!   member holds the IPv6 VIP; our DAD NS gets its NA, so the backup does not claim, and
//!   says so as it does for ARP.
//!
//! Each prints its numbers (`IPV6 …` lines). Needs root; see `support::require_root`.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use haagent_lab::probe::HttpProbe;
use support::groups::{outage, settled, summary, wait_served_by};
use support::*;

/// The IPv6 VIP.
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// Where a stranger sits on the segment (no member).
const ROGUE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
/// Bound for the client's neighbour entry to follow a move (the NA burst's first frame
/// leaves with the install).
const NEIGH_FOLLOWS: Duration = Duration::from_secs(2);
/// The default `[vip] lease_ms` (2 s), and the kernel's up-to-1 s rounding plus load.
const LEASE_AND_MARGIN: Duration = Duration::from_millis(2000 + 1500);

/// Host 192.0.2.X's IPv6 address on the segment: 2001:db8::X (the same digits).
fn v6_of(addr: Ipv4Addr) -> Ipv6Addr {
    let last = addr.octets()[3];
    format!("2001:db8::{last}")
        .parse()
        .unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// Gives every host of the lab its IPv6 address (`nodad`: usable at once).
fn add_ipv6(c: &Cluster) {
    for host in &c.lab.hosts {
        let cidr = format!("{}/64", v6_of(host.addr));
        host.ns
            .ip(&["addr", "add", &cidr, "dev", "eth0", "nodad"])
            .unwrap();
    }
}

/// Rewrites every node's config: `vips` as the `[vip] addresses`; with `ipv6_peers`, the
/// node listens on and dials its peers' IPv6 addresses, with certificates that carry both
/// addresses as IP SANs.
fn configure(c: &Cluster, nodes: &[&str], vips: &[&str], ipv6_peers: bool) {
    let certs = c.dir.path().join("certs");
    let certs_s = certs.to_str().unwrap().to_string();
    let list = vips
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for name in nodes {
        let mut text = std::fs::read_to_string(c.config_path(name)).unwrap();
        text = text.replace(
            &format!("addresses = [\"{VIP}/24\"]"),
            &format!("addresses = [{list}]"),
        );
        if ipv6_peers {
            let v4 = c.lab.host(name).unwrap().addr;
            run_ok(&[
                "certs",
                "issue",
                "--dir",
                &certs_s,
                "--name",
                name,
                "--ip",
                &v4.to_string(),
                "--ip",
                &v6_of(v4).to_string(),
                "--force",
            ]);
            for host in nodes {
                let a = c.lab.host(host).unwrap().addr;
                text = text
                    .replace(
                        &format!("listen = \"{a}\""),
                        &format!("listen = \"{}\"", v6_of(a)),
                    )
                    .replace(
                        &format!("address = \"{a}\""),
                        &format!("address = \"{}\"", v6_of(a)),
                    );
            }
        }
        std::fs::write(c.config_path(name), text).unwrap();
    }
}

/// n1 (priority 200) and n2 (100), plus a `rogue` host with `with_rogue`, every host with
/// its IPv6 address, the nodes configured with `vips` (and IPv6 peers with `ipv6_peers`).
fn pair(vips: &[&str], ipv6_peers: bool, with_rogue: bool) -> Cluster {
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    if with_rogue {
        c.lab.add_host("rogue", ROGUE_ADDR).unwrap();
    }
    add_ipv6(&c);
    configure(&c, &["n1", "n2"], vips, ipv6_peers);
    c
}

/// The client's HTTP probe against `vip`, port 80.
fn probe(c: &Cluster, vip: IpAddr) -> HttpProbe {
    let client = c.lab.host("client").unwrap().ns.name().to_string();
    HttpProbe::start(&client, SocketAddr::new(vip, 80)).unwrap()
}

/// Waits until the client's neighbour entry for `vip` is `mac`; returns how long it took.
fn wait_client_neigh(c: &Cluster, vip: IpAddr, mac: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let seen = c.lab.neighbour_mac("client", vip).unwrap();
        if seen.as_deref() == Some(mac) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "the client maps {vip} to {seen:?}, not {mac}, {timeout:?} on\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until exactly `name` holds every one of `vips`; returns how long that took.
fn wait_sole_holder_of(c: &Cluster, vips: &[IpAddr], name: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    for vip in vips {
        let left = timeout.saturating_sub(start.elapsed());
        let (took, last) = c
            .lab
            .wait_holders(*vip, left, |h| h.len() == 1 && h[0] == name)
            .unwrap();
        assert!(
            took.is_some(),
            "expected {name} alone to hold {vip} within {timeout:?}, holders are {last:?}\n{}",
            c.logs()
        );
    }
    start.elapsed()
}

/// Issue 13 proof 1 and 5: an IPv6-only cluster (peers, VIP, client) fails over on the
/// master's link loss; the client's neighbour entry follows at once and its requests
/// recover. Three rounds (cable back → n1 preempts back in between), outage median printed.
#[test]
fn ipv6_only_cluster_moves_the_vip_on_link_loss_and_the_client_follows() {
    if !require_root("ipv6_only_cluster_moves_the_vip_on_link_loss_and_the_client_follows") {
        return;
    }
    let mut c = pair(&["2001:db8::100/64"], true, false);
    let _web = [c.start_nginx("n1"), c.start_nginx("n2")];
    c.start("n2");
    c.start("n1");
    let vip = IpAddr::V6(VIP6);
    wait_sole_holder_of(&c, &[vip], "n1", CONVERGE);
    let doc = c.status("n1");
    assert!(
        doc["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["address"] == "[2001:db8::12]:5798"),
        "n1 talks to n2 over IPv6: {doc:#}"
    );
    let (n1_mac, n2_mac) = (
        c.lab.host("n1").unwrap().mac.clone(),
        c.lab.host("n2").unwrap().mac.clone(),
    );
    let p = probe(&c, vip);
    wait_served_by(&p, "the IPv6 VIP", "n1", CONVERGE);
    wait_client_neigh(&c, vip, &n1_mac, NEIGH_FOLLOWS);

    let mut outages = Vec::new();
    for round in 0..3 {
        let t0 = Instant::now();
        c.lab.set_link("n1", false).unwrap();
        let took = wait_sole_holder_of(&c, &[vip], "n2", TAKEOVER);
        let neigh = wait_client_neigh(&c, vip, &n2_mac, NEIGH_FOLLOWS);
        wait_served_by(&p, "the IPv6 VIP", "n2", TAKEOVER);
        let samples = settled(&p, t0, Instant::now());
        eprintln!(
            "IPV6 only, round {round}: link down on n1 → n2 holds {VIP6} after {} ms, the \
             client's neighbour entry shows n2's MAC {} ms later; requests: {}",
            took.as_millis(),
            neigh.as_millis(),
            summary(&samples)
        );
        outages.push(outage(&samples));
        c.lab.set_link("n1", true).unwrap();
        wait_sole_holder_of(&c, &[vip], "n1", CONVERGE);
        wait_client_neigh(&c, vip, &n1_mac, NEIGH_FOLLOWS);
        wait_served_by(&p, "the IPv6 VIP", "n1", CONVERGE);
    }
    eprintln!(
        "IPV6 only: link-down outage median {} ms over 3 rounds",
        median(outages).as_millis()
    );
}

/// Issue 13 proofs 2 and 3: dual stack. Both VIPs move together on link loss (outage for
/// each family printed, three rounds); then SIGKILL of the master's agent, twice: the
/// backup claims only once both addresses expired on the dead master by lease, and a
/// 10 ms sampler never sees two nodes with a VIP.
#[test]
fn dual_stack_vips_move_together_and_a_killed_master_loses_both_by_lease() {
    if !require_root("dual_stack_vips_move_together_and_a_killed_master_loses_both_by_lease") {
        return;
    }
    let mut c = pair(&["192.0.2.100/24", "2001:db8::100/64"], false, false);
    let _web = [c.start_nginx("n1"), c.start_nginx("n2")];
    c.start("n2");
    c.start("n1");
    let (v4, v6) = (IpAddr::V4(VIP), IpAddr::V6(VIP6));
    let both = [v4, v6];
    wait_sole_holder_of(&c, &both, "n1", CONVERGE);
    let (n1_mac, n2_mac) = (
        c.lab.host("n1").unwrap().mac.clone(),
        c.lab.host("n2").unwrap().mac.clone(),
    );
    let (p4, p6) = (probe(&c, v4), probe(&c, v6));
    for p in [&p4, &p6] {
        wait_served_by(p, "a VIP", "n1", CONVERGE);
    }

    let (mut out4, mut out6) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let t0 = Instant::now();
        c.lab.set_link("n1", false).unwrap();
        let took = wait_sole_holder_of(&c, &both, "n2", TAKEOVER);
        for vip in both {
            wait_client_neigh(&c, vip, &n2_mac, NEIGH_FOLLOWS);
        }
        for p in [&p4, &p6] {
            wait_served_by(p, "a VIP", "n2", TAKEOVER);
        }
        let end = Instant::now();
        let (s4, s6) = (settled(&p4, t0, end), settled(&p6, t0, end));
        eprintln!(
            "IPV6 dual stack, round {round}: link down on n1 → n2 holds both after {} ms; \
             IPv4: {}; IPv6: {}",
            took.as_millis(),
            summary(&s4),
            summary(&s6)
        );
        out4.push(outage(&s4));
        out6.push(outage(&s6));
        c.lab.set_link("n1", true).unwrap();
        wait_sole_holder_of(&c, &both, "n1", CONVERGE);
        for vip in both {
            wait_client_neigh(&c, vip, &n1_mac, NEIGH_FOLLOWS);
        }
        for p in [&p4, &p6] {
            wait_served_by(p, "a VIP", "n1", CONVERGE);
        }
    }
    eprintln!(
        "IPV6 dual stack: link-down outage median over 3 rounds: IPv4 {} ms, IPv6 {} ms",
        median(out4).as_millis(),
        median(out6).as_millis()
    );

    let (mut kill4, mut kill6) = (Vec::new(), Vec::new());
    for round in 0..2 {
        let sampler = HolderSampler::start_for(&c, &["n1", "n2"], &both);
        let t0 = Instant::now();
        c.lab.agent("n1").unwrap().signal(libc::SIGKILL).unwrap();
        let took = wait_sole_holder_of(&c, &both, "n2", LEASE_AND_MARGIN + TAKEOVER);
        for p in [&p4, &p6] {
            wait_served_by(p, "a VIP", "n2", TAKEOVER);
        }
        let end = Instant::now();
        let samples = sampler.finish();
        let (s4, s6) = (settled(&p4, t0, end), settled(&p6, t0, end));
        eprintln!(
            "IPV6 dual stack, SIGKILL round {round}: n2 alone holds both {} ms after the \
             kill; IPv4: {}; IPv6: {}; samples with two holders: {}",
            took.as_millis(),
            summary(&s4),
            summary(&s6),
            samples.dual()
        );
        assert_eq!(
            samples.dual(),
            0,
            "two nodes held a VIP at once after the kill: {:?}\n{}",
            samples.dual_examples(),
            c.logs()
        );
        assert!(
            took <= LEASE_AND_MARGIN + TAKEOVER,
            "the dead master's VIPs outlived the lease"
        );
        kill4.push(outage(&s4));
        kill6.push(outage(&s6));
        c.start("n1");
        wait_sole_holder_of(&c, &both, "n1", CONVERGE);
        for p in [&p4, &p6] {
            wait_served_by(p, "a VIP", "n1", CONVERGE);
        }
    }
    eprintln!(
        "IPV6 dual stack: SIGKILL outage median over 2 rounds: IPv4 {} ms, IPv6 {} ms",
        median(kill4).as_millis(),
        median(kill6).as_millis()
    );
}

/// Issue 13 proof 4: a host that is no member holds the IPv6 VIP (its kernel answers our
/// DAD NS with an NA) while the master is gone: the backup does not claim the group (its
/// IPv4 VIP neither: a group moves whole), and says so as for ARP: status names the MAC.
#[test]
fn a_stranger_answering_for_the_ipv6_vip_blocks_the_claim_visibly() {
    if !require_root("a_stranger_answering_for_the_ipv6_vip_blocks_the_claim_visibly") {
        return;
    }
    let mut c = pair(&["192.0.2.100/24", "2001:db8::100/64"], false, true);
    c.start("n1");
    c.start("n2");
    let both = [IpAddr::V4(VIP), IpAddr::V6(VIP6)];
    wait_sole_holder_of(&c, &both, "n1", CONVERGE);
    let rogue = c.lab.host("rogue").unwrap();
    rogue
        .ns
        .ip(&["addr", "add", "2001:db8::100/64", "dev", "eth0", "nodad"])
        .unwrap();
    let rogue_mac = rogue.mac.clone();
    c.lab.agent("n1").unwrap().signal(libc::SIGKILL).unwrap();
    c.lab.set_link("n1", false).unwrap();
    let status = c.wait_status("n2", TAKEOVER * 2, |s| {
        s["claim_blocked"]["for_ms"].as_u64().unwrap_or(0) > 1000
    });
    assert_eq!(status["state"], "backup", "{status:#}");
    assert_eq!(
        status["claim_blocked"]["mac"],
        rogue_mac.as_str(),
        "{status:#}"
    );
    assert!(status["claim_blocked"]["member"].is_null(), "{status:#}");
    let text = String::from_utf8(c.ctl("n2", &["status"]).stdout).unwrap();
    assert!(
        text.contains(&format!(
            "NOT CLAIMING THE VIPS: {rogue_mac} (not a cluster member)"
        )),
        "{text}"
    );
    for vip in both {
        let holders = c.lab.holders(vip).unwrap();
        assert!(!holders.contains(&"n2".to_string()), "n2 claimed {vip}");
    }
    eprintln!(
        "IPV6 stranger: n2 blocked for {} ms by {rogue_mac}",
        status["claim_blocked"]["for_ms"]
    );
}

/// `haagent doctor` with an IPv6 peer whose agent is down: it pings the peer with ICMPv6
/// echo and tells "host up, no QUIC" from "host gone" (it used to say "neither QUIC nor
/// ping" for every IPv6 peer, without pinging).
#[test]
fn doctor_pings_an_ipv6_peer_to_tell_a_down_agent_from_a_down_host() {
    if !require_root("doctor_pings_an_ipv6_peer_to_tell_a_down_agent_from_a_down_host") {
        return;
    }
    let c = pair(&["2001:db8::100/64"], true, false);
    let doctor = || {
        let out = c
            .lab
            .host("n1")
            .unwrap()
            .ns
            .command(haagent())
            .args(["doctor", "--config"])
            .arg(c.config_path("n1"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("✘ peer n2"))
            .unwrap_or_else(|| panic!("no ✘ peer n2 line:\n{text}"))
            .to_string();
        (out.status.code(), line)
    };
    let (code, line) = doctor();
    assert_eq!(code, Some(1), "{line}");
    assert!(
        line.contains("the host answers ping, but no QUIC answer"),
        "{line}"
    );
    c.lab
        .host("n2")
        .unwrap()
        .ns
        .ip(&["addr", "del", "2001:db8::12/64", "dev", "eth0"])
        .unwrap();
    let (_, line) = doctor();
    assert!(line.contains("no answer (neither QUIC nor ping)"), "{line}");

    // IPv6 off on n1's interface: the doctor says so, instead of "no own address".
    let n1 = &c.lab.host("n1").unwrap().ns;
    let out = n1
        .command("sysctl")
        .args(["-qw", "net.ipv6.conf.eth0.disable_ipv6=1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = n1
        .command(haagent())
        .args(["doctor", "--config"])
        .arg(c.config_path("n1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("✘ interface eth0")
            && l.contains("IPv6 is disabled, but 2001:db8::100/64 are IPv6 VIPs on it")
            && l.contains("disable_ipv6=0")),
        "{text}"
    );
}

/// Issue 13 proof 6, on a running agent: a host that is no member sends the master
/// malformed Neighbor Discovery frames for the IPv6 VIP (truncated, bad checksum, hop
/// limit 254, a zero-length option, noise), then a flood of well-formed NAs claiming the
/// VIP from 2000 random MACs. The malformed ones are no claim at all (no conflict counted,
/// the client's neighbour entry untouched); the flood is counted and defended at a bounded
/// rate of log lines; the master keeps the VIP throughout, and the client ends up on its
/// MAC again.
#[test]
fn forged_and_malformed_neighbour_advertisements_neither_move_nor_crash_the_master() {
    if !require_root(
        "forged_and_malformed_neighbour_advertisements_neither_move_nor_crash_the_master",
    ) {
        return;
    }
    let mut c = pair(&["2001:db8::100/64"], false, true);
    c.start("n1");
    c.start("n2");
    let vip = IpAddr::V6(VIP6);
    wait_sole_holder_of(&c, &[vip], "n1", CONVERGE);
    c.wait_status("n1", CONVERGE, |s| s["peers"][0]["alive"] == true);
    let n1_mac = c.lab.host("n1").unwrap().mac.clone();
    let ping = c
        .lab
        .host("client")
        .unwrap()
        .ns
        .command("ping")
        .args(["-6", "-n", "-c", "1", "-W", "1", "2001:db8::100"])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");
    wait_client_neigh(&c, vip, &n1_mac, NEIGH_FOLLOWS);
    let rogue = c.lab.host("rogue").unwrap();
    let rogue_ns = rogue.ns.name().to_string();
    let rogue_mac = support::arp::parse_mac(&rogue.mac);

    let [na, _] = haagent::vip::fuzz_nd_frames(rogue_mac, VIP6);
    let mut malformed = Vec::new();
    malformed.push(na[..70].to_vec());
    let mut bad_sum = na.clone();
    bad_sum[56] ^= 0xff;
    malformed.push(bad_sum);
    let mut hop = na.clone();
    hop[21] = 254;
    malformed.push(hop);
    let mut zero_option = na.clone();
    zero_option[79] = 0;
    malformed.push(zero_option);
    let mut noise = na.clone();
    for (i, b) in noise.iter_mut().enumerate().skip(14) {
        *b = (i as u8).wrapping_mul(37);
    }
    malformed.push(noise);
    let malformed: Vec<Vec<u8>> = (0..40).flat_map(|_| malformed.clone()).collect();
    support::arp::send_from(&rogue_ns, malformed, Duration::from_micros(200));
    assert_eq!(
        c.lab.neighbour_mac("client", vip).unwrap().as_deref(),
        Some(n1_mac.as_str()),
        "the client's kernel took a malformed NA"
    );
    // One well-formed NA after them: the watch reads frames in order, so once it counted
    // this one it has judged all the malformed ones before it.
    let [marker, _] = haagent::vip::fuzz_nd_frames([6, 0xfe, 0xff, 0, 0, 1], VIP6);
    support::arp::send_from(&rogue_ns, vec![marker], Duration::ZERO);
    let status = c.wait_status("n1", CONVERGE, |s| {
        s["counters"]["vip_conflicts"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(
        status["counters"]["vip_conflicts"].as_u64(),
        Some(1),
        "a malformed frame was taken for a claim: {status:#}"
    );
    wait_client_neigh(&c, vip, &n1_mac, Duration::from_secs(5));

    let before = c.lab.agent("n1").unwrap().log_text().lines().count();
    let flood: Vec<Vec<u8>> = (0u32..2000)
        .map(|i| {
            let b = i.to_be_bytes();
            let [na, _] = haagent::vip::fuzz_nd_frames([6, 0xfe, b[0], b[1], b[2], b[3]], VIP6);
            na
        })
        .collect();
    let started = Instant::now();
    support::arp::send_from(&rogue_ns, flood, Duration::from_micros(500));
    let took = started.elapsed();
    let status = c.wait_status("n1", CONVERGE, |s| {
        s["counters"]["vip_conflicts"].as_u64().unwrap_or(0) > 1
    });
    let counted = status["counters"]["vip_conflicts"].as_u64().unwrap_or(0) - 1;
    let lines = c.lab.agent("n1").unwrap().log_text().lines().count() - before;
    let back = wait_client_neigh(&c, vip, &n1_mac, Duration::from_secs(5));
    eprintln!(
        "IPV6 forged NAs: 200 malformed frames ignored; 2000 forged NAs in {} ms: {counted} \
         counted, {lines} log lines, the client on the master's MAC again {} ms after the flood",
        took.as_millis(),
        back.as_millis()
    );
    assert!(counted > 100, "{counted}");
    let bound = 3 + usize::try_from(took.as_secs()).unwrap_or(0) * 2;
    assert!(
        lines <= bound,
        "{lines} log lines (bound {bound})\n{}",
        c.logs()
    );
    let (moved, holders) = c
        .lab
        .wait_holders(vip, Duration::from_secs(1), |h| h != ["n1"])
        .unwrap();
    assert!(
        moved.is_none(),
        "the VIP left n1 after the flood: {holders:?}\n{}",
        c.logs()
    );
}
