//! `[mover]` and `[group.mover]`: the command that moves a group's addresses through a cloud
//! provider's API (docs/cloud.md), and `[vip] ignore_arp_from`, the probe policy for networks
//! that answer ARP themselves.

use super::checker::Checker;
use super::limits;
use super::raw::{Item, RawMover};
use super::values::bad_argv;
use super::MoverSettings;

/// `TimeoutStopSec` of packaging/systemd/haagent.service (keep them equal): a mover whose
/// worst case (timeout × (retries + 1) + retry delay × retries) is longer gets a note.
pub(crate) const SHIPPED_TIMEOUT_STOP: std::time::Duration = std::time::Duration::from_secs(45);

/// Validates a `[mover]` (`table` = "mover") or `[group.mover]` table; `command_broken`: its
/// `command` was already reported as malformed (no second "missing" error). A worst case
/// longer than [`SHIPPED_TIMEOUT_STOP`] is a located note (`Config::notes`).
pub(super) fn validate_mover(
    ck: &mut Checker<'_>,
    m: &RawMover,
    table: &str,
    command_broken: bool,
) -> Option<MoverSettings> {
    let command = match &m.command {
        Some(c) => {
            if let Some(why) = bad_argv(&c.value) {
                ck.err(&c.origin, format!("{table} command {why}"));
            } else if !c.value[0].starts_with('/') {
                ck.err(
                    &c.origin,
                    format!(
                        "{table} command: the program `{}` must be an absolute path (no PATH \
                         lookup), e.g. \"/usr/local/bin/haagent-mover\"",
                        c.value[0]
                    ),
                );
            }
            c.value.clone()
        }
        None => {
            if !command_broken {
                ck.err(
                    &m.origin,
                    format!(
                        "[{table}] has no `command` (required): the program and its \
                         arguments, e.g. command = [\"/usr/local/bin/haagent-mover\"]"
                    ),
                );
            }
            Vec::new()
        }
    };
    let timeout = ck.millis(
        &m.timeout_ms,
        &format!("{table} timeout_ms"),
        limits::MOVER_TIMEOUT_MS,
    );
    let retries = ck.int(
        &m.retries,
        &format!("{table} retries"),
        limits::MOVER_RETRIES,
    );
    let retry_delay = ck.millis(
        &m.retry_delay_ms,
        &format!("{table} retry_delay_ms"),
        limits::MOVER_RETRY_DELAY_MS,
    );
    let wait = m.wait.as_ref().is_some_and(|w| w.value);
    let retries_n = u32::try_from(retries).unwrap_or(2);
    // The mover also runs at shutdown (release): systemd kills the agent after the unit's
    // TimeoutStopSec, which may cut a mover that still retries.
    let worst = timeout * (retries_n + 1) + retry_delay * retries_n;
    if worst > SHIPPED_TIMEOUT_STOP {
        ck.note(
            &m.origin,
            format!(
                "[{table}] may run for up to {} s at shutdown (timeout_ms × (retries + 1) + \
                 retry_delay_ms × retries), longer than the shipped systemd unit's \
                 TimeoutStopSec={} s: raise TimeoutStopSec in a drop-in \
                 (systemctl edit haagent) to at least {} s",
                worst.as_secs_f64(),
                SHIPPED_TIMEOUT_STOP.as_secs(),
                worst.as_secs_f64().ceil() as u64 + 5
            ),
        );
    }
    Some(MoverSettings {
        command,
        timeout,
        retries: retries_n,
        retry_delay,
        wait,
    })
}

/// Validates `[vip] ignore_arp_from`: at most [`limits::IGNORE_ARP_FROM_MAX`] unicast MACs
/// written `aa:bb:cc:dd:ee:ff`, no duplicates.
pub(super) fn validate_ignore_arp_from(
    ck: &mut Checker<'_>,
    list: &Option<Item<Vec<Item<String>>>>,
) -> Vec<[u8; 6]> {
    let Some(list) = list else {
        return Vec::new();
    };
    if list.value.len() > limits::IGNORE_ARP_FROM_MAX {
        ck.err(
            &list.origin,
            format!(
                "vip ignore_arp_from lists {} MACs; at most {}",
                list.value.len(),
                limits::IGNORE_ARP_FROM_MAX
            ),
        );
    }
    let mut out: Vec<[u8; 6]> = Vec::new();
    for it in &list.value {
        match parse_mac(&it.value) {
            Some(mac) if mac[0] & 1 == 1 || mac == [0; 6] => ck.err(
                &it.origin,
                format!(
                    "vip ignore_arp_from `{}` is not a unicast MAC (an ARP sender is always \
                     one)",
                    it.value
                ),
            ),
            Some(mac) if out.contains(&mac) => ck.err(
                &it.origin,
                format!("vip ignore_arp_from lists `{}` twice", it.value),
            ),
            Some(mac) => out.push(mac),
            None => ck.err(
                &it.origin,
                format!(
                    "vip ignore_arp_from `{}` is not a MAC address; write six hex bytes \
                     separated by colons, e.g. \"02:00:00:00:00:fe\"",
                    it.value
                ),
            ),
        }
    }
    out.truncate(limits::IGNORE_ARP_FROM_MAX);
    out
}

/// `aa:bb:cc:dd:ee:ff` (either case) as bytes.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}
