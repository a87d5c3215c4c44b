//! `[[group]]` tables → [`GroupConfig`]s: VIP groups, one election each (keepalived's
//! `vrrp_instance`, with its `virtual_ipaddress`, `track_script`, `notify_*` and
//! `virtual_routes`).
//!
//! Without `[[group]]` tables, a config has one implicit group, [`LEGACY_GROUP`], built by
//! [`implicit_group`] from the node-wide keys, so today's files load unchanged.
//!
//! The rules, each reported with its place:
//! * a group's `name` is required, unique, 1..=32 bytes of `[A-Za-z0-9._-]`, not starting
//!   with `-`, and not `default` (the implicit group's name);
//! * its `id` (1..=65535, default [`group_id_from_name`]) is unique;
//! * at most [`limits::MAX_GROUPS`] groups; a VIP belongs to one group; the VIPs of all
//!   groups use at most [`limits::MAX_INTERFACES`] interfaces;
//! * a label fits the kernel (15 bytes) and starts with `INTERFACE:`;
//! * `track` names defined `[[check]]`s; `[group.notify]` has the keys and rules of `[notify]`;
//! * a route's `src` is one of the group's VIPs, and no two routes share destination, table
//!   and metric (the kernel's key for an IPv4 route);
//! * `bird_socket` is for a routed group only, and is an absolute Unix socket path.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::checker::Checker;
use super::checks::weight_of;
use super::limits;
use super::raw::{Item, Origin, RawConfig, RawGroup, RawRoute, RawTrack, RawVipEntry};
use super::validate::validate_notify;
use super::values::{bad_label, bad_unix_socket, bad_vip, bad_vip_group_name, check_interface};
use super::{
    group_id_from_name, GroupConfig, GroupMode, MoverSettings, NotifySettings, PeerConfig,
    TrackCheck, LEGACY_GROUP,
};
use crate::health::CheckSpec;
use crate::net::{IpCidr, Ipv4Cidr, RouteSpec, VipScope, VipSpec};

/// The node-wide settings a group inherits, and what its VIPs must not collide with.
#[derive(Clone, Copy)]
pub(super) struct GroupDefaults<'a> {
    /// `[node] interface`: the interface of a VIP that names none.
    pub(super) interface: &'a str,
    /// `[node] priority` (already checked).
    pub(super) priority: i64,
    /// `[election] preempt` / `nopreempt`.
    pub(super) preempt: bool,
    /// `[election] preempt_delay_ms`.
    pub(super) preempt_delay: Duration,
    /// The valid `[[check]]`s.
    pub(super) checks: &'a [CheckSpec],
    /// `[notify]`.
    pub(super) notify: &'a NotifySettings,
    /// `[mover]`.
    pub(super) mover: Option<&'a MoverSettings>,
    /// `[node] listen` (a VIP must not be it).
    pub(super) listen: SocketAddr,
    /// The peers (a VIP must not be one of their addresses).
    pub(super) peers: &'a [PeerConfig],
}

/// The one group of a config without `[[group]]` tables: every VIP on `interface`, every
/// check with its own weight, the node's hooks, no routes.
pub(super) fn implicit_group(d: &GroupDefaults<'_>, vips: &[IpCidr], priority: u8) -> GroupConfig {
    GroupConfig {
        name: LEGACY_GROUP.to_string(),
        id: group_id_from_name(LEGACY_GROUP),
        mode: GroupMode::L2,
        bird_socket: None,
        vips: vips
            .iter()
            .map(|cidr| VipSpec {
                cidr: *cidr,
                interface: d.interface.to_string(),
                label: None,
                scope: VipScope::Global,
            })
            .collect(),
        priority,
        preempt: d.preempt,
        preempt_delay: d.preempt_delay,
        track: default_track(d.checks),
        notify: d.notify.clone(),
        routes: Vec::new(),
        mover: d.mover.cloned(),
    }
}

/// `config`'s implicit group built again from its node-wide fields (after a reload mixed
/// running and new settings).
pub(super) fn implicit_group_of(config: &super::Config) -> GroupConfig {
    let d = GroupDefaults {
        interface: &config.node.interface,
        priority: i64::from(config.node.priority),
        preempt: config.election.preempt,
        preempt_delay: config.election.preempt_delay,
        checks: &config.checks,
        notify: &config.notify,
        mover: config.mover.as_ref(),
        listen: config.node.listen,
        peers: &config.peers,
    };
    implicit_group(&d, &config.vips, config.node.priority)
}

pub(super) fn default_track(checks: &[CheckSpec]) -> Vec<TrackCheck> {
    checks
        .iter()
        .map(|c| TrackCheck {
            check: c.name.clone(),
            weight: c.weight,
        })
        .collect()
}

/// `preempt` / `nopreempt` of a table (`[election]` or a `[[group]]`): they must not
/// contradict each other; neither given = `default`.
pub(super) fn preempt_of(
    ck: &mut Checker<'_>,
    preempt: &Option<Item<bool>>,
    nopreempt: &Option<Item<bool>>,
    default: bool,
) -> bool {
    match (preempt, nopreempt) {
        (Some(p), Some(np)) if p.value == np.value => {
            ck.err(
                &np.origin,
                format!(
                    "`nopreempt = {}` contradicts `preempt = {}` ({}); keep one of them",
                    np.value,
                    p.value,
                    ck.refer(&p.origin)
                ),
            );
            p.value
        }
        (Some(p), _) => p.value,
        (None, Some(np)) => !np.value,
        (None, None) => default,
    }
}

/// A VIP already taken, and by which group.
struct Taken {
    group: String,
    origin: Origin,
}

/// Everything the groups share while they are checked one after the other.
struct Seen {
    names: HashMap<String, Origin>,
    /// id → (group name, where its id came from, whether it was explicit)
    ids: HashMap<u16, (String, Origin, bool)>,
    vips: HashMap<IpAddr, Taken>,
    interfaces: Vec<String>,
    interfaces_reported: bool,
    /// (destination, table, metric) → (group, where)
    routes: HashMap<(Ipv4Cidr, u32, u32), (String, Origin)>,
}

/// The main routing table (`RT_TABLE_MAIN`), where a route without `table` goes.
const RT_TABLE_MAIN: u32 = 254;

/// Validates every `[[group]]`; returns the valid ones (with errors the caller returns no
/// `Config`, so the list is complete only when there are none).
pub(super) fn validate_groups(
    raw: &RawConfig,
    ck: &mut Checker<'_>,
    d: &GroupDefaults<'_>,
) -> Vec<GroupConfig> {
    if let Some(extra) = raw.groups.get(limits::MAX_GROUPS) {
        ck.err(
            &extra.origin,
            format!(
                "too many groups: at most {} [[group]] tables (this is number {})",
                limits::MAX_GROUPS,
                limits::MAX_GROUPS + 1
            ),
        );
    }
    // Check names that exist in the file, valid or not: a track entry naming a broken check
    // is not reported a second time.
    let mut known: BTreeSet<String> = d.checks.iter().map(|c| c.name.clone()).collect();
    let valid_checks = known.clone();
    known.extend(
        raw.checks
            .iter()
            .filter_map(|c| c.name.as_ref().map(|n| n.value.clone())),
    );
    let mut seen = Seen {
        names: HashMap::new(),
        ids: HashMap::new(),
        vips: HashMap::new(),
        interfaces: Vec::new(),
        interfaces_reported: false,
        routes: HashMap::new(),
    };
    let mut out = Vec::new();
    for g in &raw.groups {
        if let Some(group) = validate_group(g, ck, d, &known, &valid_checks, &mut seen) {
            out.push(group);
        }
    }
    out
}

fn validate_group(
    g: &RawGroup,
    ck: &mut Checker<'_>,
    d: &GroupDefaults<'_>,
    known: &BTreeSet<String>,
    valid_checks: &BTreeSet<String>,
    seen: &mut Seen,
) -> Option<GroupConfig> {
    // name
    let mut duplicate_name = false;
    let name = match &g.name {
        Some(it) => {
            if let Some(why) = bad_vip_group_name(&it.value) {
                ck.err(&it.origin, why);
            } else if it.value == LEGACY_GROUP {
                ck.err(
                    &it.origin,
                    format!(
                        "group name `{LEGACY_GROUP}` is reserved for the one group of a config \
                         without [[group]] tables; choose another name"
                    ),
                );
            } else if let Some(first) = seen.names.get(&it.value) {
                duplicate_name = true;
                let first = ck.refer(first);
                ck.err(
                    &it.origin,
                    format!("duplicate group name `{}` (first at {first})", it.value),
                );
            } else {
                seen.names.insert(it.value.clone(), it.origin.clone());
            }
            Some(it)
        }
        None => {
            if !g.broken.contains("group.name") {
                ck.err(
                    &g.origin,
                    "[[group]] has no `name` (required, e.g. name = \"web-a\")",
                );
            }
            None
        }
    };
    let shown = name.map_or_else(|| "?".to_string(), |n| n.value.clone());

    // id
    let (lo, hi) = limits::GROUP_ID;
    let id = match (&g.id, name) {
        (Some(it), _) => match u16::try_from(it.value) {
            Ok(id) if (lo..=hi).contains(&it.value) => Some((id, it.origin.clone(), true)),
            _ => {
                ck.err(
                    &it.origin,
                    format!("group id must be {lo}..={hi}, not {}", it.value),
                );
                None
            }
        },
        (None, Some(n)) => Some((group_id_from_name(&n.value), n.origin.clone(), false)),
        (None, None) => None,
    };
    // A repeated name has the same default id: that is one mistake, already reported.
    let id_to_check = id
        .as_ref()
        .filter(|(_, _, explicit)| *explicit || !duplicate_name);
    if let Some((id, origin, explicit)) = id_to_check {
        if let Some((other, first, other_explicit)) = seen.ids.get(id) {
            let first = ck.refer(first);
            let ours = if *explicit {
                format!("group `{shown}` has id {id}")
            } else {
                format!("group `{shown}` gets id {id} from its name")
            };
            let theirs = if *other_explicit {
                ""
            } else {
                " (from its name)"
            };
            ck.err(
                origin,
                format!(
                    "{ours}, the same id as group `{other}`{theirs} ({first}); give one of \
                     them another explicit `id` ({lo}..={hi}); every node must use the same id \
                     for a group"
                ),
            );
        } else {
            seen.ids
                .insert(*id, (shown.clone(), origin.clone(), *explicit));
        }
    }

    // mode, then the VIPs (a routed group's VIPs default to `lo`)
    let mode = match &g.mode {
        None => GroupMode::L2,
        Some(it) => match it.value.as_str() {
            "l2" => GroupMode::L2,
            "routed" => GroupMode::Routed,
            other => {
                ck.err(
                    &it.origin,
                    format!("unknown group mode `{other}`: use \"l2\" (the default) or \"routed\""),
                );
                GroupMode::L2
            }
        },
    };
    let routed_defaults = GroupDefaults {
        interface: ROUTED_INTERFACE,
        ..*d
    };
    let vips = match mode {
        GroupMode::L2 => group_vips(g, ck, d, &shown, seen),
        GroupMode::Routed => {
            let vips = group_vips(g, ck, &routed_defaults, &shown, seen);
            check_routed_vips(g, ck, &vips);
            vips
        }
    };

    let bird_socket = g.bird_socket.as_ref().and_then(|it| {
        if mode != GroupMode::Routed {
            ck.err(
                &it.origin,
                format!(
                    "`bird_socket` is for routed groups (mode = \"routed\"): group `{shown}` \
                     moves its VIPs by ARP, no BGP daemon announces them; remove it or set \
                     mode = \"routed\""
                ),
            );
            return None;
        }
        if let Some(why) = bad_unix_socket("bird_socket", &it.value, BIRD_SOCKET_EXAMPLE) {
            ck.err(&it.origin, why);
            return None;
        }
        Some(it.value.clone())
    });

    // priority, preemption
    let priority = ck.int(
        &g.priority,
        "group priority",
        (limits::PRIORITY.0, limits::PRIORITY.1, d.priority),
    );
    let preempt = preempt_of(ck, &g.preempt, &g.nopreempt, d.preempt);
    let (plo, phi, _) = limits::PREEMPT_DELAY_MS;
    let delay_ms = i64::try_from(d.preempt_delay.as_millis()).unwrap_or(0);
    let preempt_delay = ck.millis(
        &g.preempt_delay_ms,
        "preempt_delay_ms",
        (plo, phi, delay_ms),
    );

    // track
    let track = match &g.track {
        None => default_track(d.checks),
        Some(list) => group_track(&list.value, ck, d, known, valid_checks),
    };

    // [group.notify]
    let notify = match &g.notify {
        None => d.notify.clone(),
        Some(n) => validate_notify(ck, n, d.notify.timeout),
    };

    // [group.mover]
    let mover = match &g.mover {
        None => d.mover.cloned(),
        Some(m) => super::mover::validate_mover(
            ck,
            m,
            "group.mover",
            g.broken.contains("group.mover.command"),
        ),
    };

    // [[group.route]]
    let mut routes = Vec::new();
    for r in &g.routes {
        let routed_dev = (mode == GroupMode::Routed).then_some(d.interface);
        if let Some(route) = group_route(r, ck, &shown, &vips, routed_dev, seen) {
            routes.push(route);
        }
    }

    let (name, (id, _, _)) = (name?, id?);
    Some(GroupConfig {
        name: name.value.clone(),
        id,
        mode,
        bird_socket,
        vips,
        priority: u8::try_from(priority).unwrap_or(100),
        preempt,
        preempt_delay,
        track,
        notify,
        routes,
        mover,
    })
}

/// The control socket of Debian's bird2 package, the example in `bird_socket` errors.
const BIRD_SOCKET_EXAMPLE: &str = "/run/bird/bird.ctl";

/// The interface of a routed group's VIP that names none: the loopback, where any routing
/// daemon finds it and no neighbour ever answers for it.
pub(crate) const ROUTED_INTERFACE: &str = "lo";

/// A routed group's VIPs are host addresses (`/32`, `/128`): each other one is reported at
/// its `vips` entry (routed mode installs a host route per VIP, no subnet is shared).
fn check_routed_vips(g: &RawGroup, ck: &mut Checker<'_>, vips: &[VipSpec]) {
    let Some(list) = &g.vips else { return };
    for v in vips {
        let at = list
            .value
            .iter()
            .find(|e| match &e.value {
                RawVipEntry::Plain(t) => t.trim().parse::<IpCidr>().ok() == Some(v.cidr),
                RawVipEntry::Table(t) => {
                    t.address
                        .as_ref()
                        .and_then(|a| a.value.trim().parse::<IpCidr>().ok())
                        == Some(v.cidr)
                }
            })
            .map_or(&list.origin, |e| &e.origin);
        let host = if v.cidr.is_ipv4() { 32 } else { 128 };
        let link_local = match v.cidr.addr {
            IpAddr::V4(a) => a.is_link_local(),
            IpAddr::V6(a) => a.is_unicast_link_local(),
        };
        if link_local {
            ck.err(
                at,
                format!(
                    "VIP `{}`: a link-local address is never routed (RFC 3927 §7, RFC 4291 \
                     §2.5.6); a routed group's VIP must be a global address",
                    v.cidr
                ),
            );
        } else if v.cidr.prefix != host {
            ck.err(
                at,
                format!(
                    "VIP `{}`: a routed group's VIP is a host address; write {}/{host} (the \
                     router learns the /{host} route, no subnet is shared)",
                    v.cidr, v.cidr.addr
                ),
            );
        }
    }
}

/// The `vips` of group `shown`.
fn group_vips(
    g: &RawGroup,
    ck: &mut Checker<'_>,
    d: &GroupDefaults<'_>,
    shown: &str,
    seen: &mut Seen,
) -> Vec<VipSpec> {
    let list = match &g.vips {
        Some(list) if list.value.is_empty() => {
            ck.err(
                &list.origin,
                "no VIPs: `vips` needs at least one ADDR/PREFIX, e.g. [\"192.0.2.100/24\"]",
            );
            return Vec::new();
        }
        Some(list) => list,
        None => {
            if !g.broken.contains("group.vips") {
                ck.err(
                    &g.origin,
                    format!(
                        "[[group]] `{shown}` has no `vips` (required, e.g. vips = \
                         [\"192.0.2.100/24\"])"
                    ),
                );
            }
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in &list.value {
        let Some(spec) = vip_entry(entry, ck, d) else {
            continue;
        };
        if let Some(taken) = seen.vips.get(&spec.cidr.addr) {
            let first = ck.refer(&taken.origin);
            let msg = if taken.group == shown {
                format!("duplicate VIP `{}` (first at {first})", spec.cidr.addr)
            } else {
                format!(
                    "VIP `{}` is already in group `{}` ({first}); a VIP belongs to one group",
                    spec.cidr.addr, taken.group
                )
            };
            ck.err(&entry.origin, msg);
            continue;
        }
        let vip_ip = spec.cidr.addr;
        if d.listen.ip() == vip_ip {
            ck.err(
                &entry.origin,
                format!("VIP `{}` is this node's own listen address", spec.cidr),
            );
        } else if let Some(p) = d.peers.iter().find(|p| p.address.ip() == vip_ip) {
            ck.err(
                &entry.origin,
                format!("VIP `{}` is the address of peer {}", spec.cidr, p.address),
            );
        }
        if !seen.interfaces.contains(&spec.interface) {
            if seen.interfaces.len() < limits::MAX_INTERFACES {
                seen.interfaces.push(spec.interface.clone());
            } else if !seen.interfaces_reported {
                seen.interfaces_reported = true;
                ck.err(
                    &entry.origin,
                    format!(
                        "interface `{}` would be this node's {}th VIP interface; the VIPs of \
                         all groups may use at most {} interfaces ({}), because an advert \
                         carries at most {} interface MACs",
                        spec.interface,
                        limits::MAX_INTERFACES + 1,
                        limits::MAX_INTERFACES,
                        seen.interfaces.join(", "),
                        limits::MAX_INTERFACES
                    ),
                );
            }
        }
        seen.vips.insert(
            spec.cidr.addr,
            Taken {
                group: shown.to_string(),
                origin: entry.origin.clone(),
            },
        );
        out.push(spec);
    }
    out
}

/// One `vips` entry; `None` after reporting what is wrong with it.
fn vip_entry(
    entry: &Item<RawVipEntry>,
    ck: &mut Checker<'_>,
    d: &GroupDefaults<'_>,
) -> Option<VipSpec> {
    let cidr_of = |ck: &mut Checker<'_>, text: &str, origin: &Origin| -> Option<IpCidr> {
        match text.trim().parse::<IpCidr>() {
            Ok(c) => match bad_vip(&c) {
                Some(why) => {
                    ck.err(origin, why);
                    None
                }
                None => Some(c),
            },
            Err(e) => {
                ck.err(origin, format!("bad VIP: {e}"));
                None
            }
        }
    };
    match &entry.value {
        RawVipEntry::Plain(text) => Some(VipSpec {
            cidr: cidr_of(ck, text, &entry.origin)?,
            interface: d.interface.to_string(),
            label: None,
            scope: VipScope::Global,
        }),
        RawVipEntry::Table(t) => {
            let interface = match &t.interface {
                None => d.interface.to_string(),
                Some(it) => {
                    if let Err(e) = check_interface(&it.value) {
                        ck.err(&it.origin, e);
                    }
                    it.value.clone()
                }
            };
            let label = t.label.as_ref().map(|it| {
                if let Some(why) = bad_label(&it.value, &interface) {
                    ck.err(&it.origin, why);
                }
                it.value.clone()
            });
            let scope = match &t.scope {
                None => VipScope::Global,
                Some(it) => {
                    let all = [VipScope::Global, VipScope::Link, VipScope::Host];
                    match all.iter().find(|s| s.as_str() == it.value) {
                        Some(s) => *s,
                        None => {
                            ck.err(
                                &it.origin,
                                format!(
                                    "unknown VIP scope `{}`: use \"global\", \"link\" or \"host\"",
                                    it.value
                                ),
                            );
                            VipScope::Global
                        }
                    }
                }
            };
            let Some(address) = &t.address else {
                ck.err(
                    &entry.origin,
                    "this `vips` entry has no `address` (required, e.g. { address = \
                     \"192.0.2.100/24\", interface = \"eth1\" })",
                );
                return None;
            };
            let cidr = cidr_of(ck, &address.value, &address.origin)?;
            if !cidr.is_ipv4() {
                // Linux keeps IFA_LABEL for IPv4 only and derives an IPv6 address's scope
                // from the address itself: both would be accepted and silently lost.
                if let Some(it) = &t.label {
                    ck.err(
                        &it.origin,
                        format!(
                            "VIP `{cidr}`: `label` is IPv4 only (Linux keeps no label on an IPv6 \
                             address); remove it"
                        ),
                    );
                }
                if let Some(it) = t.scope.as_ref().filter(|_| scope != VipScope::Global) {
                    ck.err(
                        &it.origin,
                        format!(
                            "VIP `{cidr}`: `scope` is IPv4 only (Linux derives an IPv6 \
                             address's scope from the address: fe80::/10 is link, the rest \
                             global); remove it"
                        ),
                    );
                }
            }
            Some(VipSpec {
                cidr,
                interface,
                label,
                scope,
            })
        }
    }
}

/// A group's `track` list.
fn group_track(
    list: &[Item<RawTrack>],
    ck: &mut Checker<'_>,
    d: &GroupDefaults<'_>,
    known: &BTreeSet<String>,
    valid_checks: &BTreeSet<String>,
) -> Vec<TrackCheck> {
    let mut out: Vec<TrackCheck> = Vec::new();
    let mut firsts: HashMap<String, Origin> = HashMap::new();
    for entry in list {
        let (name, weight) = match &entry.value {
            RawTrack::Plain(n) => (
                Item {
                    value: n.clone(),
                    origin: entry.origin.clone(),
                },
                None,
            ),
            RawTrack::Table(t) => {
                let weight = t
                    .weight
                    .as_ref()
                    .map(|w| weight_of(ck, w, "track weight", true));
                match &t.check {
                    Some(c) => (c.clone(), weight),
                    None => {
                        ck.err(
                            &entry.origin,
                            "this `track` entry has no `check` (required, e.g. { check = \
                             \"nginx\", weight = -20 })",
                        );
                        continue;
                    }
                }
            }
        };
        if !known.contains(&name.value) {
            let defined = if valid_checks.is_empty() {
                "no [[check]] tables are defined".to_string()
            } else {
                format!(
                    "the defined checks are {}",
                    valid_checks
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            ck.err(
                &name.origin,
                format!("track: no check named `{}`; {defined}", name.value),
            );
            continue;
        }
        if let Some(first) = firsts.get(&name.value) {
            let first = ck.refer(first);
            ck.err(
                &name.origin,
                format!("check `{}` is tracked twice (first at {first})", name.value),
            );
            continue;
        }
        firsts.insert(name.value.clone(), name.origin.clone());
        // A broken check (already reported) is not there: no Config is returned anyway.
        let Some(spec) = d.checks.iter().find(|c| c.name == name.value) else {
            continue;
        };
        out.push(TrackCheck {
            check: name.value,
            weight: weight.unwrap_or(spec.weight),
        });
    }
    out
}

/// `to = "default"`.
const DEFAULT_ROUTE: &str = "default";

/// One `[[group.route]]` of group `shown`, whose valid VIPs are `vips`.
fn group_route(
    r: &RawRoute,
    ck: &mut Checker<'_>,
    shown: &str,
    vips: &[VipSpec],
    routed_dev: Option<&str>,
    seen: &mut Seen,
) -> Option<RouteSpec> {
    let unicast = |a: Ipv4Addr| {
        !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
    };
    let to = match &r.to {
        None => {
            if !r.broken.contains("group.route.to") {
                ck.err(
                    &r.origin,
                    "[[group.route]] has no `to` (required: \"default\" or a destination such \
                     as \"203.0.113.0/24\")",
                );
            }
            None
        }
        Some(it) if it.value.trim() == DEFAULT_ROUTE => Some(Ipv4Cidr {
            addr: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
        }),
        Some(it) => match it.value.trim().parse::<Ipv4Cidr>() {
            // The kernel keys a route by its network address; 203.0.113.7/24 means
            // 203.0.113.0/24.
            Ok(c) => Some(network_of(c)),
            Err(e) => {
                ck.err(
                    &it.origin,
                    format!("bad route `to`: {e}; use \"default\" or ADDR/PREFIX"),
                );
                None
            }
        },
    };
    let via = r
        .via
        .as_ref()
        .and_then(|it| match it.value.trim().parse::<Ipv4Addr>() {
            Ok(a) if !unicast(a) => {
                ck.err(
                    &it.origin,
                    format!(
                        "route via `{a}` is not a unicast address (unspecified, broadcast, \
                     multicast or loopback)"
                    ),
                );
                None
            }
            Ok(a) if vips.iter().any(|v| v.cidr.addr == a) => {
                ck.err(
                    &it.origin,
                    format!(
                        "route via `{a}` is a VIP of group `{shown}`; the gateway must be another \
                     machine (e.g. the router)"
                    ),
                );
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                ck.err(
                    &it.origin,
                    format!(
                        "route via must be an IPv4 address (e.g. \"198.51.100.1\"), not `{}`",
                        it.value
                    ),
                );
                None
            }
        });
    let src = r
        .src
        .as_ref()
        .and_then(|it| match it.value.trim().parse::<Ipv4Addr>() {
            // No valid VIP: that is reported already.
            Ok(a) if vips.is_empty() || vips.iter().any(|v| v.cidr.addr == a) => Some(a),
            Ok(a) => {
                let list = vips
                    .iter()
                    .map(|v| v.cidr.addr.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                ck.err(
                    &it.origin,
                    format!(
                        "route src `{a}` is not one of group `{shown}`'s VIPs ({list}): a route \
                     with `src` can only be installed while that address is on this host, and \
                     this node holds the group's addresses only while it is master; use one of \
                     the group's VIPs or remove `src`"
                    ),
                );
                None
            }
            Err(_) => {
                ck.err(
                    &it.origin,
                    format!(
                    "route src must be an IPv4 address (one of group `{shown}`'s VIPs), not `{}`",
                    it.value
                ),
                );
                None
            }
        });
    let dev = match &r.dev {
        Some(it) => {
            if let Err(e) = check_interface(&it.value) {
                ck.err(&it.origin, e);
            }
            it.value.clone()
        }
        None => match routed_dev {
            // A routed group's VIPs are on `lo`, where no gateway is: its routes leave
            // through `[node] interface`.
            Some(dev) => dev.to_string(),
            // The interface of the VIP on the gateway's subnet, else the group's first VIP's.
            None => via
                .and_then(|gw| vips.iter().find(|v| v.cidr.contains(IpAddr::V4(gw))))
                .or(vips.first())
                .map(|v| v.interface.clone())
                .unwrap_or_default(),
        },
    };
    let wide =
        |ck: &mut Checker<'_>, item: &Option<Item<i64>>, what: &str, (lo, hi): (i64, i64)| {
            let it = item.as_ref()?;
            match u32::try_from(it.value) {
                Ok(v) if (lo..=hi).contains(&it.value) => Some(v),
                _ => {
                    ck.err(
                        &it.origin,
                        format!("route {what} must be {lo}..={hi}, not {}", it.value),
                    );
                    None
                }
            }
        };
    let metric = wide(ck, &r.metric, "metric", limits::ROUTE_METRIC);
    let table = wide(ck, &r.table, "table", limits::ROUTE_TABLE);
    let to = to?;
    let key = (to, table.unwrap_or(RT_TABLE_MAIN), metric.unwrap_or(0));
    if let Some((other, first)) = seen.routes.get(&key) {
        let first = ck.refer(first);
        let whose = if other == shown {
            "this group".to_string()
        } else {
            format!("group `{other}`")
        };
        ck.err(
            &r.origin,
            format!(
                "a route to {} in table {} with metric {} is already defined in {whose} \
                 ({first}); the kernel keeps one route per destination, table and metric",
                route_to_words(&IpCidr::from(to)),
                key.1,
                key.2
            ),
        );
    } else {
        seen.routes
            .insert(key, (shown.to_string(), r.origin.clone()));
    }
    Some(RouteSpec {
        to: IpCidr::from(to),
        via: via.map(IpAddr::V4),
        src: src.map(IpAddr::V4),
        dev,
        metric,
        table,
    })
}

/// `c` with its host bits cleared.
pub(super) fn network_of(c: Ipv4Cidr) -> Ipv4Cidr {
    let mask = u32::MAX.checked_shl(32 - u32::from(c.prefix)).unwrap_or(0);
    Ipv4Cidr {
        addr: Ipv4Addr::from(u32::from(c.addr) & mask),
        prefix: c.prefix,
    }
}

/// A route destination in config-file words: `default` or `ADDR/PREFIX`.
pub(super) fn route_to_words(to: &IpCidr) -> String {
    if to.prefix == 0 {
        DEFAULT_ROUTE.to_string()
    } else {
        to.to_string()
    }
}
