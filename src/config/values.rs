//! Rules for single values, each a pure function that says what is wrong: names,
//! interfaces, endpoints, node addresses, VIPs, notify argv, the control socket and group.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::DEFAULT_PORT;
use crate::net::IpCidr;
use crate::wire::{self, NameProblem, MAX_NAME_LEN};

/// Checks a node (or cluster) name: ASCII letters, digits, `.`, `_`, `-`; 1..=64 characters;
/// not starting with `-`. Returns what is wrong.
/// The rule is [`wire::node_name_problem`]; this only words it.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    match wire::node_name_problem(name) {
        None => Ok(()),
        Some(NameProblem::Empty) => Err("name is empty".to_string()),
        Some(NameProblem::TooLong) => Err(format!(
            "name `{name}` is longer than {MAX_NAME_LEN} characters"
        )),
        Some(NameProblem::LeadingDash) => Err(format!("name `{name}` starts with `-`")),
        Some(NameProblem::BadChar(c)) => Err(format!(
            "name `{name}` contains {c:?}; use only letters A-Z a-z, digits, `.`, `_`, `-`"
        )),
    }
}

/// Checks a Linux interface name (1..=15 bytes, no `/`, `:` or white space).
pub(crate) fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".to_string());
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name `{name}` is longer than 15 bytes (the Linux limit)"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not an interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name `{name}` contains {c:?} (labels like eth0:1 are not interfaces)"
        ));
    }
    Ok(())
}

/// Parses `ADDR` or `ADDR:PORT` (IPv6 as `[ADDR]:PORT` or bare `ADDR`); the port defaults to
/// [`DEFAULT_PORT`].
pub(crate) fn parse_endpoint(text: &str) -> Result<SocketAddr, String> {
    parse_endpoint_with_port(text, DEFAULT_PORT)
}

/// [`parse_endpoint`] with another default port.
pub(crate) fn parse_endpoint_with_port(
    text: &str,
    default_port: u16,
) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, default_port));
        }
    }
    if let Some((host, port)) = t.rsplit_once(':') {
        if host.parse::<IpAddr>().is_ok() && !host.contains(':') {
            return Err(format!(
                "`{text}`: port `{port}` is not a number from 0 to 65535"
            ));
        }
    }
    Err(format!(
        "`{text}` is not ADDR or ADDR:PORT with an IP address (e.g. 192.0.2.12 or \
         192.0.2.12:{default_port}); host names are not resolved"
    ))
}

/// What is wrong with `ip` as the address of a node, if anything.
pub(crate) fn bad_node_ip(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("is the unspecified address")
    } else if ip.is_multicast() {
        Some("is a multicast address")
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("is the broadcast address")
    } else {
        None
    }
}

/// What is wrong with a VIP, if anything (beyond its syntax).
///
/// Both families: prefix /0, and an address that is no unicast host address (unspecified,
/// loopback, multicast; IPv4 broadcast, and the network or broadcast address of a /1../30
/// subnet). IPv6 also refuses an IPv4-mapped address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2:
/// never on a link) and the subnet-router anycast address of a /1../126 prefix (all host
/// bits zero, RFC 4291 §2.6.1: every router of the subnet answers it).
pub(crate) fn bad_vip(cidr: &IpCidr) -> Option<String> {
    if cidr.prefix == 0 {
        return Some(format!("VIP `{cidr}` has prefix /0"));
    }
    match cidr.addr {
        IpAddr::V4(a) => {
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
                return Some(format!(
                    "VIP `{cidr}` is not a unicast host address (unspecified, broadcast, \
                     multicast or loopback)"
                ));
            }
            if cidr.prefix <= 30 {
                let mask = u32::MAX << (32 - u32::from(cidr.prefix));
                let bits = u32::from(a);
                if bits & !mask == 0 {
                    return Some(format!(
                        "VIP `{cidr}` is the network address of its /{} subnet",
                        cidr.prefix
                    ));
                }
                if bits & !mask == !mask {
                    return Some(format!(
                        "VIP `{cidr}` is the broadcast address of its /{} subnet",
                        cidr.prefix
                    ));
                }
            }
        }
        IpAddr::V6(a) => {
            if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                return Some(format!(
                    "VIP `{cidr}` is not a unicast host address (unspecified, multicast or \
                     loopback)"
                ));
            }
            if a.to_ipv4_mapped().is_some() {
                return Some(format!(
                    "VIP `{cidr}` is an IPv4-mapped IPv6 address; write the IPv4 VIP itself"
                ));
            }
            if cidr.prefix <= 126 && cidr.network() == *cidr {
                return Some(format!(
                    "VIP `{cidr}` is the subnet-router anycast address of its /{} prefix \
                     (all host bits zero)",
                    cidr.prefix
                ));
            }
        }
    }
    None
}

/// What is wrong with a notify argv, if anything.
pub(crate) fn bad_argv(argv: &[String]) -> Option<String> {
    match argv.first() {
        None => Some(
            "is an empty list; give the program and its arguments, e.g. \
                      [\"/usr/local/bin/on-transition\"]"
                .to_string(),
        ),
        Some(prog) if prog.trim().is_empty() => Some("has an empty program name".to_string()),
        Some(_) if argv.iter().any(|a| a.contains('\0')) => {
            Some("contains a NUL character".to_string())
        }
        Some(_) => None,
    }
}

/// Longest path a Unix socket address can hold (`sun_path` is 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// What is wrong with a control socket path, if anything.
pub(crate) fn bad_socket_path(path: &Path) -> Option<String> {
    bad_unix_socket("control socket", path, super::DEFAULT_CONTROL_SOCKET)
}

/// What is wrong with the path of a Unix socket `what` (`"control socket"`,
/// `"bird_socket"`) to connect to or bind, if anything: empty, relative, longer than a
/// socket address holds, or a directory; `example` is a good path, shown in the message.
pub(crate) fn bad_unix_socket(what: &str, path: &Path, example: &str) -> Option<String> {
    let shown = path.display();
    let len = path.as_os_str().len();
    if len == 0 {
        Some(format!("{what} is an empty path"))
    } else if !path.is_absolute() {
        Some(format!(
            "{what} `{shown}` is not an absolute path (e.g. \"{example}\")"
        ))
    } else if len > SUN_PATH_MAX {
        Some(format!(
            "{what} `{shown}` is {len} bytes long; a Unix socket path holds at most \
             {SUN_PATH_MAX}"
        ))
    } else if path.as_os_str().to_string_lossy().ends_with('/') {
        Some(format!(
            "{what} `{shown}` ends with `/`; give the socket's file name (e.g. \"{example}\")"
        ))
    } else {
        None
    }
}

/// What is wrong with a group name, if anything (the group is looked up by the daemon).
pub(crate) fn bad_group_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("control group is empty; remove the key for a root-only socket".into());
    }
    if name.len() > 32 {
        return Some(format!(
            "control group `{name}` is longer than 32 characters"
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.starts_with('-') || !name.trim_end_matches('$').chars().all(ok) {
        return Some(format!(
            "control group `{name}` is not a group name (letters, digits, `_`, `-`, `.`; not \
             starting with `-`)"
        ));
    }
    None
}

/// `path` shown as the user would write it in TOML.
pub(crate) fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// What is wrong with a state directory, if anything (it need not exist yet).
pub(super) fn bad_state_dir(path: &Path) -> Option<String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        Some("state dir is an empty path".to_string())
    } else if !path.is_absolute() {
        Some(format!(
            "state dir `{shown}` is not an absolute path (e.g. \"{}\")",
            super::DEFAULT_STATE_DIR
        ))
    } else if path
        .to_str()
        .is_none_or(|s| s.chars().any(char::is_control))
    {
        Some(format!(
            "state dir `{shown}` has control characters or is not UTF-8"
        ))
    } else {
        None
    }
}

/// What is wrong with a `[[group]]` name, if anything: 1..=32 bytes of `[A-Za-z0-9._-]`, not
/// starting with `-` (it appears in logs, metrics labels, hook arguments and `--group`).
pub(crate) fn bad_vip_group_name(name: &str) -> Option<String> {
    let max = super::limits::GROUP_NAME_MAX;
    if name.is_empty() {
        return Some("group name is empty".to_string());
    }
    if name.len() > max {
        return Some(format!("group name `{name}` is longer than {max} bytes"));
    }
    if name.starts_with('-') {
        return Some(format!("group name `{name}` starts with `-`"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "group name `{name}` contains {c:?}; use only letters A-Z a-z, digits, `.`, `_`, `-`"
        ));
    }
    None
}

/// What is wrong with the label of a VIP on `interface`, if anything. The kernel keeps at
/// most 15 bytes (`IFNAMSIZ` - 1) of `IFA_LABEL`, and iproute2 (`ip addr add ... label`,
/// `is_valid_label` in ip/ipaddress.c) requires the label to be the interface name or the
/// interface name, `:`, and more: `eth0:vip`.
pub(crate) fn bad_label(label: &str, interface: &str) -> Option<String> {
    let max = super::limits::LABEL_MAX;
    if label.len() > max {
        return Some(format!(
            "label `{label}` is longer than {max} bytes (the kernel's limit)"
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '/')
    {
        return Some(format!("label `{label}` contains {c:?}"));
    }
    let ok = label
        .strip_prefix(interface)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'));
    if !ok {
        return Some(format!(
            "label `{label}` does not start with its interface name and a colon, as the \
             kernel tools require: write e.g. \"{interface}:vip\""
        ));
    }
    None
}
