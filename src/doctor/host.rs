//! Checks of this host: the interface, the capabilities, the UDP port, the sysctls.

use std::net::UdpSocket;

use super::Check;
use crate::config::Config;
use crate::control::{self, Request};
use crate::net::IpCidr;
use crate::vip::VipManager;

/// `CAP_NET_ADMIN` and `CAP_NET_RAW` (linux/capability.h).
const CAPS: [(u32, &str); 2] = [(12, "CAP_NET_ADMIN"), (13, "CAP_NET_RAW")];

fn sys(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The node's interface and every other interface a group's VIPs use: each exists, is up,
/// has carrier and an address in the subnet of each VIP on it; returns the node
/// interface's own (non-VIP) addresses.
pub(super) async fn interface(config: &Config, checks: &mut Vec<Check>) -> Vec<IpCidr> {
    let mut interfaces = vec![config.node.interface.clone()];
    for group in &config.groups {
        for name in group.interfaces() {
            if !interfaces.contains(&name) {
                interfaces.push(name);
            }
        }
    }
    let mut node_own = Vec::new();
    for (i, name) in interfaces.iter().enumerate() {
        // A routed group's VIPs are host addresses on no shared subnet (docs/routed.md):
        // their interface must exist and be up, nothing more.
        let vips: Vec<IpCidr> = config
            .groups
            .iter()
            .filter(|g| g.mode == crate::config::GroupMode::L2)
            .flat_map(|g| g.vips.iter())
            .filter(|v| &v.interface == name)
            .map(|v| v.cidr)
            .collect();
        let own = one_interface(name, &vips, checks).await;
        if i == 0 {
            node_own = own;
        }
    }
    node_own
}

/// One interface with the VIPs on it (see [`interface`]).
async fn one_interface(name: &str, vips: &[IpCidr], checks: &mut Vec<Check>) -> Vec<IpCidr> {
    let check = format!("interface {name}");
    let manager = match VipManager::open(name, vips.to_vec(), None).await {
        Ok(m) => m,
        Err(e) => {
            checks.push(Check::fail(
                check,
                e.to_string(),
                "set [node] interface (or the VIP's `interface`) to an existing interface (`ip -br link` lists them)",
            ));
            return Vec::new();
        }
    };
    let flags = sys(&format!("/sys/class/net/{name}/flags"))
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
    let up = flags.is_some_and(|f| f & libc::IFF_UP as u32 != 0);
    let carrier = sys(&format!("/sys/class/net/{name}/carrier")).as_deref() == Some("1");
    if !up {
        checks.push(Check::fail(
            check,
            "is down",
            format!("ip link set {name} up"),
        ));
        return Vec::new();
    }
    if !carrier {
        checks.push(Check::fail(
            check,
            "is up but has no carrier",
            "plug the cable in / bring the other end of the link up",
        ));
        return Vec::new();
    }
    // IPv6 off on the interface (or the whole kernel booted with ipv6.disable=1): the
    // agent's install of an IPv6 VIP fails, and no own IPv6 address is found either.
    let v6: Vec<String> = vips
        .iter()
        .filter(|v| !v.is_ipv4())
        .map(ToString::to_string)
        .collect();
    if !v6.is_empty()
        && sys(&format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6")).as_deref() != Some("0")
    {
        checks.push(Check::fail(
            check,
            format!("IPv6 is disabled, but {} are IPv6 VIPs on it", v6.join(", ")),
            format!("sysctl -w net.ipv6.conf.{name}.disable_ipv6=0 (and in /etc/sysctl.d/), or remove the IPv6 VIPs"),
        ));
        return Vec::new();
    }
    let own = match manager.own_addresses().await {
        Ok(own) => own,
        Err(e) => {
            checks.push(Check::fail(check, e.to_string(), "check the interface"));
            return Vec::new();
        }
    };
    let outside: Vec<String> = vips
        .iter()
        .filter(|vip| {
            !own.iter()
                .any(|a| a.prefix == vip.prefix && vip.contains(a.addr))
        })
        .map(ToString::to_string)
        .collect();
    if outside.is_empty() {
        let addrs: Vec<String> = own.iter().map(ToString::to_string).collect();
        checks.push(Check::pass(
            check,
            format!("up, carrier, {} (in the VIPs' subnets)", addrs.join(", ")),
        ));
    } else {
        checks.push(Check::fail(
            check,
            format!("no own address in the subnet of {}", outside.join(", ")),
            format!("give {name} an address in that subnet, or fix the VIP's prefix in the config"),
        ));
    }
    own
}

/// The effective capabilities hold CAP_NET_ADMIN and CAP_NET_RAW.
pub(super) fn capabilities() -> Check {
    let effective = sys("/proc/self/status").and_then(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    });
    let Some(effective) = effective else {
        return Check::fail(
            "capabilities",
            "cannot read CapEff from /proc/self/status",
            "run on Linux with /proc mounted",
        );
    };
    let missing: Vec<&str> = CAPS
        .iter()
        .filter(|(bit, _)| effective & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Check::pass("capabilities", "CAP_NET_ADMIN and CAP_NET_RAW")
    } else {
        Check::fail(
            "capabilities",
            format!("missing {}", missing.join(" and ")),
            "run as root, or as the service does (AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)",
        )
    }
}

/// The peer port is free, or held by the running agent that answers on the control socket.
pub(super) fn port(config: &Config) -> Check {
    let listen = config.node.listen;
    let name = format!("UDP port {}", listen.port());
    match UdpSocket::bind(listen) {
        Ok(_) => Check::pass(name, format!("{listen} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if control::request(&config.control_socket, &Request::Status {}).is_ok() {
                Check::pass(name, format!("{listen} is held by the running haagent"))
            } else {
                Check::fail(
                    name,
                    format!("{listen} is in use by another program"),
                    format!(
                        "find it with `ss -ulpn sport = :{}`, or change [node] listen",
                        listen.port()
                    ),
                )
            }
        }
        Err(e) => Check::fail(
            name,
            format!("cannot bind {listen}: {e}"),
            "set [node] listen to an address of this host",
        ),
    }
}

/// One sysctl of the interface: the effective value of `conf/all` and `conf/IFACE`.
fn conf(interface: &str, key: &str) -> Option<(u32, u32)> {
    let read = |dev: &str| {
        sys(&format!("/proc/sys/net/ipv4/conf/{dev}/{key}")).and_then(|v| v.parse::<u32>().ok())
    };
    Some((read("all")?, read(interface)?))
}

/// `arp_ignore`, `arp_announce`, `rp_filter` on the interface and the `ip_nonlocal_bind`
/// hint. Only values that break a VIP fail; the rest are reported with what they mean.
pub(super) fn sysctls(config: &Config) -> Vec<Check> {
    let iface = &config.node.interface;
    let mut checks = Vec::new();
    // The kernel applies the larger of conf/all and conf/IFACE for these three.
    if let Some((all, dev)) = conf(iface, "arp_ignore") {
        let v = all.max(dev);
        let name = "sysctl arp_ignore";
        checks.push(if v >= 4 {
            Check::fail(
                name,
                format!("{v}: {iface} does not answer ARP for the VIP"),
                format!(
                    "sysctl -w net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.{iface}.arp_ignore=0"
                ),
            )
        } else {
            Check::pass(name, format!("{v} (answers ARP for addresses on {iface})"))
        });
    }
    if let Some((all, dev)) = conf(iface, "arp_announce") {
        let v = all.max(dev);
        checks.push(Check::pass(
            "sysctl arp_announce",
            format!(
                "{v}{}",
                if v == 2 {
                    " (ARP requests use the best local source)"
                } else {
                    " (2 keeps ARP requests from using the VIP as source)"
                }
            ),
        ));
    }
    if let Some((all, dev)) = conf(iface, "rp_filter") {
        let v = all.max(dev);
        let words = match v {
            0 => "off",
            1 => "strict: fine while replies leave by the interface the request came in",
            _ => "loose",
        };
        checks.push(Check::pass("sysctl rp_filter", format!("{v} ({words})")));
    }
    if let Some(v) = sys("/proc/sys/net/ipv4/ip_nonlocal_bind") {
        let words = if v == "1" {
            "a service may bind the VIP before this node holds it"
        } else {
            "a service that binds the VIP itself starts only on the master; set it to 1 if it must start on the backups too"
        };
        checks.push(Check::pass(
            "sysctl ip_nonlocal_bind",
            format!("{v} ({words})"),
        ));
    }
    checks
}
