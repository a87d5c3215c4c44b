//! `birdc -v` output → what the watch needs. Pure: text in, values out.
//!
//! With `-v`, birdc prints BIRD's control-socket replies with their codes (BIRD 2.0.12,
//! captured in `testdata/`):
//!
//! ```text
//! 0001 BIRD 2.0.12 ready.
//! 2002-Name       Proto      Table      State  Since         Info
//! 1002-device1    Device     ---        up     14:40:42.314
//!      uplink     BGP        ---        up     14:43:25.071  Established
//! ```
//!
//! A line is `CODE-text` (more lines follow), `CODE text` (the last line of a reply), or
//! a continuation of the previous code indented by five spaces. Codes 0xxx are status
//! (`0001` hello), 1xxx table rows (`1002` a protocol, `1007` a route listing), 2xxx table
//! headers, 8xxx run-time errors and 9xxx syntax errors (BIRD's doc/prog: "cli").

use std::net::IpAddr;

use super::BirdError;
use crate::net::IpCidr;

/// A row of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protocol {
    /// Its name (`uplink`).
    pub(crate) name: String,
    /// Its kind (`BGP`, `Kernel`, `Device`, …).
    pub(crate) proto: String,
    /// BIRD's protocol state: `up`, `start`, `stop`, `down`, `flush`.
    pub(crate) state: String,
    /// The Info column: for BGP the session state (`Established`, `Active`, `Connect`,
    /// `Idle`, …) and the last error (`Active        Socket: Connection refused`), with
    /// runs of spaces squeezed to one.
    pub(crate) info: String,
}

impl Protocol {
    /// A BGP session that is up and Established (it exports routes).
    pub(crate) fn established(&self) -> bool {
        self.state == "up" && self.info.split_whitespace().next() == Some("Established")
    }
}

/// Reply code 1002: a row of `show protocols`.
const CODE_PROTOCOL: u16 = 1002;
/// Reply code 1007: a line of a `show route` listing.
const CODE_ROUTE: u16 = 1007;
/// What BIRD 2 says to `show route … export P` while P's channel is down (a BGP session
/// that is not Established): nothing is exported to it.
const NO_VALID_TABLES: &str = "No valid tables";

/// The lines of a reply with their codes (a continuation line gets the code of the line
/// before it; lines before any code get none).
fn coded_lines(text: &str) -> impl Iterator<Item = (Option<u16>, &str)> {
    let mut current = None;
    text.lines().map(move |line| {
        let head = line
            .get(..4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_digit()));
        let sep = line.as_bytes().get(4).copied();
        match (head, sep) {
            (Some(code), Some(b'-' | b' ')) | (Some(code), None) => {
                current = code.parse().ok();
                (current, line.get(5..).unwrap_or(""))
            }
            _ => (current, line.strip_prefix("     ").unwrap_or(line)),
        }
    })
}

/// The first error reply (8xxx, 9xxx) of `text`, as `(code, message)`.
pub(crate) fn error_reply(text: &str) -> Option<(u16, String)> {
    coded_lines(text).find_map(|(code, line)| {
        code.filter(|c| (8000..=9999).contains(c))
            .map(|c| (c, line.trim().to_string()))
    })
}

/// The rows of a `show protocols` reply, in BIRD's order.
pub(crate) fn protocols(command: &str, text: &str) -> Result<Vec<Protocol>, BirdError> {
    if let Some((code, message)) = error_reply(text) {
        return Err(BirdError::Reply {
            command: command.to_string(),
            code,
            message,
        });
    }
    let mut out = Vec::new();
    let mut header = false;
    for (code, line) in coded_lines(text) {
        match code {
            Some(2002) => header = true,
            Some(CODE_PROTOCOL) => {
                out.push(protocol_row(line).ok_or_else(|| BirdError::Unparseable {
                    command: command.to_string(),
                    what: format!("protocol row `{}`", line.trim()),
                })?)
            }
            _ => {}
        }
    }
    if !header {
        return Err(BirdError::Unparseable {
            command: command.to_string(),
            what: "no `Name Proto Table State Since Info` header (reply 2002)".to_string(),
        });
    }
    Ok(out)
}

/// `uplink     BGP        ---        up     14:43:25.071  Established`. The columns are
/// padded, not fixed (a long name shifts the rest), so the row is read by words: name,
/// proto, table, state, `Since` (a time, a date, or a date and a time, by `timeformat
/// protocol`), then the info.
fn protocol_row(line: &str) -> Option<Protocol> {
    let mut words = line.split_whitespace().peekable();
    let name = words.next()?.to_string();
    let proto = words.next()?.to_string();
    let _table = words.next()?;
    let state = words.next()?.to_string();
    // Since: one word, or a date followed by a time.
    if let Some(since) = words.next() {
        let is_date = since.len() == 10 && since.as_bytes().get(4) == Some(&b'-');
        let time_follows = words.peek().is_some_and(|w| {
            w.as_bytes().first().is_some_and(u8::is_ascii_digit) && w.contains(':')
        });
        if is_date && time_follows {
            words.next();
        }
    }
    let info = words.collect::<Vec<_>>().join(" ");
    Some(Protocol {
        name,
        proto,
        state,
        info,
    })
}

/// The address families of a protocol's channels, from a `show protocols all NAME` reply
/// (`Channel ipv4`, `Channel ipv6` lines): `(ipv4, ipv6)`. Other channel types (`vpn4`,
/// `flow4`, …) carry no VIP.
pub(crate) fn channel_families(command: &str, text: &str) -> Result<(bool, bool), BirdError> {
    if let Some((code, message)) = error_reply(text) {
        return Err(BirdError::Reply {
            command: command.to_string(),
            code,
            message,
        });
    }
    let (mut v4, mut v6) = (false, false);
    for (_, line) in coded_lines(text) {
        let mut words = line.split_whitespace();
        if words.next() == Some("Channel") {
            match words.next() {
                Some("ipv4") => v4 = true,
                Some("ipv6") => v6 = true,
                _ => {}
            }
        }
    }
    Ok((v4, v6))
}

/// The host routes (`/32`, `/128`) listed by a `show route … export P` reply, in BIRD's
/// order; `None` for `9001 No valid tables`: the protocol has no channel of the asked
/// family, or the channel is down (its session is not Established), and exports nothing.
pub(crate) fn exported(command: &str, text: &str) -> Result<Option<Vec<IpAddr>>, BirdError> {
    if let Some((code, message)) = error_reply(text) {
        if message == NO_VALID_TABLES {
            return Ok(None);
        }
        return Err(BirdError::Reply {
            command: command.to_string(),
            code,
            message,
        });
    }
    let mut out = Vec::new();
    for (code, line) in coded_lines(text) {
        if code != Some(CODE_ROUTE) || line.starts_with(char::is_whitespace) {
            // Not a listing line, or a route's attributes / a further route of the
            // same prefix (indented).
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(prefix) = words.next().filter(|w| w.contains('/')) else {
            // `Table master4:`
            continue;
        };
        let Ok(cidr) = prefix.parse::<IpCidr>() else {
            // Another net type (VPN, flow, ...): not a routed VIP.
            continue;
        };
        let host = if cidr.is_ipv4() { 32 } else { 128 };
        if cidr.prefix == host && !out.contains(&cidr.addr) {
            out.push(cidr.addr);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from BIRD 2.0.12 (Debian 12's bird2) in a network namespace with the
    /// shipped configs/bird-node.conf: `birdc -v -s SOCK show protocols`, the session to
    /// the router Established.
    const PROTOCOLS: &str = include_str!("testdata/protocols-established.txt");
    /// The same node with a second BGP protocol whose neighbour does not exist (a name
    /// longer than the column: the columns shift).
    const TWO_BGP: &str = include_str!("testdata/protocols-two-bgp.txt");
    /// A third protocol with a quoted name (`protocol bgp 'peer-x.1'`).
    const QUOTED: &str = include_str!("testdata/protocols-quoted-name.txt");
    /// `show route where net ~ [ 203.0.113.200/32, 203.0.113.201/32, 203.0.113.202/32 ]
    /// export uplink` with two of the three in the kernel as `proto 98` host routes.
    const EXPORT_TWO: &str = include_str!("testdata/export-two.txt");
    /// The same for a VIP that is not in the kernel (a backup): only the hello.
    const EXPORT_NONE: &str = include_str!("testdata/export-none.txt");
    /// To `kernel1`, which exports nothing (`export none`).
    const EXPORT_KERNEL: &str = include_str!("testdata/export-kernel.txt");
    /// To a BGP protocol whose session is not Established.
    const EXPORT_DOWN: &str = include_str!("testdata/export-session-down.txt");

    fn row(name: &str, proto: &str, state: &str, info: &str) -> Protocol {
        Protocol {
            name: name.into(),
            proto: proto.into(),
            state: state.into(),
            info: info.into(),
        }
    }

    #[test]
    fn show_protocols_gives_every_row_with_its_state_and_info() {
        let rows = protocols("show protocols", PROTOCOLS).unwrap();
        assert_eq!(
            rows,
            [
                row("device1", "Device", "up", ""),
                row("kernel1", "Kernel", "up", ""),
                row("bfd1", "BFD", "up", ""),
                row("uplink", "BGP", "up", "Established"),
            ]
        );
        assert!(rows[3].established());
        assert!(!rows[0].established());
    }

    #[test]
    fn a_long_name_and_a_session_that_is_not_up_are_read_by_words() {
        let rows = protocols("show protocols", TWO_BGP).unwrap();
        let down = &rows[4];
        assert_eq!(
            *down,
            row(
                "backup_router",
                "BGP",
                "start",
                "Active Socket: No route to host"
            )
        );
        assert!(!down.established());
        let rows = protocols("show protocols", QUOTED).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "device1",
                "kernel1",
                "bfd1",
                "uplink",
                "backup_router",
                "peer-x.1"
            ]
        );
        assert_eq!(rows[5].info, "Connect");
    }

    #[test]
    fn a_since_of_date_and_time_is_not_taken_for_the_info() {
        // `timeformat protocol iso long;`
        let text = "0001 BIRD 2.0.12 ready.\n\
                    2002-Name       Proto      Table      State  Since         Info\n\
                    1002-uplink     BGP        ---        up     2026-11-22 05:51:59  Established\n";
        let rows = protocols("show protocols", text).unwrap();
        assert_eq!(rows, [row("uplink", "BGP", "up", "Established")]);
        // A date alone (a session older than a day in `iso short`).
        let text = "2002-Name Proto Table State Since Info\n\
                    1002-uplink BGP --- start 2026-11-22 Idle\n";
        assert_eq!(
            protocols("show protocols", text).unwrap(),
            [row("uplink", "BGP", "start", "Idle")]
        );
    }

    #[test]
    fn show_route_export_lists_the_exported_host_routes() {
        let cmd = "show route … export uplink";
        assert_eq!(
            exported(cmd, EXPORT_TWO).unwrap(),
            Some(vec![ip("203.0.113.200"), ip("203.0.113.201")])
        );
        assert_eq!(exported(cmd, EXPORT_NONE).unwrap(), Some(Vec::new()));
        assert_eq!(exported(cmd, EXPORT_KERNEL).unwrap(), Some(Vec::new()));
        // The session is down: BIRD has no table to show, nothing is exported.
        assert_eq!(exported(cmd, EXPORT_DOWN).unwrap(), None);
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn indented_lines_and_other_prefixes_are_not_exports_ipv6_host_routes_are() {
        let text = "0001 BIRD 2.0.12 ready.\n\
                    1007-Table master4:\n     \
                    203.0.113.200/32     unicast [kernel1 14:43:33.687] * (10)\n     \
                    \tdev lo\n     \
                    203.0.113.0/24       unicast [static1 14:43:33.687] * (200)\n     \
                    \tvia 192.0.2.1 on eth0\n     \
                    2001:db8::1/128      unicast [kernel2 14:43:33.687] * (10)\n     \
                    2001:db8::/64        unicast [kernel2 14:43:33.687] * (10)\n";
        assert_eq!(
            exported("show route", text).unwrap(),
            Some(vec![ip("203.0.113.200"), ip("2001:db8::1")])
        );
    }

    /// `show protocols all 'uplink'` / `'uplink6'`, captured from BIRD 2.0.12 with one
    /// channel each (sessions not Established: the channel is listed all the same).
    #[test]
    fn channel_families_come_from_the_channel_lines() {
        let v4 = include_str!("testdata/protocols-all-ipv4.txt");
        let v6 = include_str!("testdata/protocols-all-ipv6.txt");
        assert_eq!(channel_families("c", v4).unwrap(), (true, false));
        assert_eq!(channel_families("c", v6).unwrap(), (false, true));
        let both = format!("{v4}       Channel ipv6\n         State:          UP\n");
        assert_eq!(channel_families("c", &both).unwrap(), (true, true));
        assert!(channel_families("c", "0001 x\n8003 No protocols match\n").is_err());
    }

    #[test]
    fn error_replies_are_errors_with_birds_words() {
        let text = "0001 BIRD 2.0.12 ready.\n\
                    9001 syntax error, unexpected CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TABLE\n";
        let err = exported("show route export nosuch", text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "BIRD refused `show route export nosuch`: 9001 syntax error, unexpected \
             CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TABLE"
        );
        let text = "0001 BIRD 2.0.12 ready.\n8001 Network not found\n";
        assert!(matches!(
            protocols("show protocols", text),
            Err(BirdError::Reply { code: 8001, .. })
        ));
    }

    #[test]
    fn garbage_is_unparseable_never_a_panic() {
        for text in [
            "",
            "hello\n",
            "0001 BIRD 2.0.12 ready.\n",
            "2002-Name\n1002-x\n",
            "1002\n",
            "99\n",
            "\u{0}\u{1}ÿ\n",
            "1002-é   BGP\n",
        ] {
            let got = protocols("show protocols", text);
            assert!(
                matches!(got, Err(BirdError::Unparseable { .. })),
                "{text:?}: {got:?}"
            );
            assert!(
                exported("show route", text).is_ok_and(|v| v.is_some_and(|v| v.is_empty())),
                "{text:?}"
            );
        }
        // A header and no rows: a BIRD without protocols.
        assert_eq!(
            protocols("show protocols", "2002-Name Proto\n").unwrap(),
            Vec::<Protocol>::new()
        );
    }
}
