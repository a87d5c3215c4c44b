//! Routes that follow a group's VIPs (keepalived's `virtual_routes`), over rtnetlink.
//!
//! [`RouteManager`] installs a group's [`RouteSpec`]s after its VIPs are up and removes them
//! before the VIPs go. Every route carries the routing protocol [`RTPROT_HAAGENT`] (98,
//! `ip route show proto 98`), so that:
//! - haagent never deletes or replaces a route it did not add: deletions name the protocol,
//!   and a route the kernel already has from another source (`EEXIST`) is an error that
//!   names it ([`RouteError::Foreign`]);
//! - a restarted agent finds what a killed one left: [`remove_stale_routes`] at start.
//!
//! Kernel facts that shape it (Linux `net/ipv4/fib_*.c`, checked in `tests/routes_netns.rs`):
//! - A route's preferred source (`src`, `RTA_PREFSRC`) must be a local address: a route with
//!   `src` = a VIP is refused with `EINVAL` until the VIP is on the host, so
//!   [`RouteManager::install`] must come after the VIPs are installed.
//! - When an address goes, the kernel deletes every route whose `src` it was (`fib_del_ifaddr`
//!   → `fib_sync_down_addr`). A VIP with a lease (`valid_lft`) that runs out takes its `src`
//!   routes with it: a frozen master loses its routes with its VIP, without haagent. The
//!   daemon must then [`RouteManager::install`] again after re-adding the VIP.
//! - Setting the interface down (or deleting it) deletes every route through it; losing the
//!   carrier only marks them `linkdown`. The interface is therefore looked up by name at
//!   every install, never cached.
//! - Two IPv4 routes conflict (`EEXIST`) when table, destination, TOS and metric are equal;
//!   gateway, interface and source do not count. A `default` route beside the node's own
//!   default route needs a different `metric` (or another table).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::task::JoinHandle;

use super::netlink::NETLINK_TIMEOUT;
use super::VipError;
use crate::net::{IpCidr, RouteSpec, RTPROT_HAAGENT};

/// The kernel's main routing table (`RT_TABLE_MAIN`), where a route without `table` goes.
const MAIN_TABLE: u32 = 254;

/// Why adding, removing or listing routes failed. Every variant that concerns one route
/// names it in `ip route` words ([`RouteSpec`]'s `Display`).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The kernel refused a route (or the request failed); `cause` is the errno text
    /// (`Network is unreachable (os error 101)`), with the capability to grant for EPERM.
    #[error("{operation} route {route}: {cause}")]
    Kernel {
        /// `add`, `replace` or `delete`.
        operation: &'static str,
        /// The route, in `ip route` words.
        route: String,
        /// The kernel's errno (positive), if the kernel answered with one.
        errno: Option<i32>,
        /// Human-readable cause.
        cause: String,
    },

    /// The route's `dev` does not exist (in this network namespace) at install time.
    #[error("add route {route}: interface {dev} not found")]
    InterfaceNotFound {
        /// The route, in `ip route` words.
        route: String,
        /// The missing interface.
        dev: String,
    },

    /// The kernel already has a route with the same table, destination and metric that
    /// haagent did not add (another protocol than 98); haagent does not replace it.
    #[error("add route {route}: the kernel already has `{existing}` (proto {owner}) with the same destination, table and metric; haagent does not replace routes it did not add (give this route another metric or table)")]
    Foreign {
        /// Our route, in `ip route` words.
        route: String,
        /// The route in the kernel, in `ip route` words.
        existing: String,
        /// Its protocol: `kernel`, `boot`, `static`, `dhcp`, … or the number.
        owner: String,
    },

    /// A request that concerns no single route failed (opening the netlink socket,
    /// listing routes or interfaces).
    #[error("{operation}: {cause}")]
    Netlink {
        /// What we were doing, e.g. `list routes`.
        operation: String,
        /// The kernel's errno (positive), if any.
        errno: Option<i32>,
        /// Human-readable cause.
        cause: String,
    },

    /// A netlink request got no answer in time (the kernel side is stuck).
    #[error("{operation}: no answer from the kernel within {after:?}")]
    Timeout {
        /// What we were doing, e.g. `add route 0.0.0.0/0 dev eth0`.
        operation: String,
        /// How long we waited.
        after: Duration,
    },
}

impl RouteError {
    /// The kernel's errno behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RouteError::Kernel { errno, .. } | RouteError::Netlink { errno, .. } => *errno,
            _ => None,
        }
    }
}

/// Owns a netlink connection and one group's routes.
///
/// Dropping it stops the netlink connection task; the routes stay as they are (call
/// [`RouteManager::remove`] first when leaving the master state).
#[derive(Debug)]
pub struct RouteManager {
    handle: Handle,
    connection: JoinHandle<()>,
    routes: Vec<RouteSpec>,
    /// Between a successful install and the next successful remove.
    installed: bool,
}

impl RouteManager {
    /// Opens a netlink connection on the current tokio runtime (must be called from inside
    /// one). Nothing is looked up or changed yet: interfaces are resolved at each install.
    ///
    /// Errors: the netlink socket cannot be opened ([`VipError::Io`] or
    /// [`VipError::PermissionDenied`]).
    pub async fn open(routes: Vec<RouteSpec>) -> Result<Self, VipError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| {
            let devs = devs_of(&routes);
            VipError::from_io(&devs, "open netlink socket for routes", "CAP_NET_ADMIN", e)
        })?;
        Ok(Self {
            handle,
            connection: tokio::spawn(connection),
            routes,
            installed: false,
        })
    }

    /// The configured routes, in configuration order.
    pub fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }

    /// Whether the last [`RouteManager::install`] succeeded and no
    /// [`RouteManager::remove`] succeeded since: what this manager believes, not what the
    /// kernel has (the kernel drops a `src` route with its VIP; see [`RouteManager::present`]).
    pub fn installed(&self) -> bool {
        self.installed
    }

    /// Adds every route, in order, with protocol 98, each `dev` looked up by name now.
    ///
    /// Must come after the group's VIPs are installed: a route whose `src` is a VIP is
    /// refused (`EINVAL`) while the VIP is absent.
    ///
    /// All or nothing: on the first failure the routes this call added are deleted again
    /// and the error names the failing route and the kernel's errno text. Idempotent: a
    /// route the kernel already has with protocol 98 is ours and is replaced in place (and
    /// stays on a later failure); one it has from anything else is
    /// [`RouteError::Foreign`].
    pub async fn install(&mut self) -> Result<(), RouteError> {
        let mut added: Vec<(&RouteSpec, RouteMessage)> = Vec::new();
        for route in &self.routes {
            match self.add_one(route).await {
                Ok(Some(message)) => added.push((route, message)),
                Ok(None) => {}
                Err(e) => {
                    for (undone, message) in added.into_iter().rev() {
                        let undo = self.handle.route().del(delete_message(message)).execute();
                        let failure = match timed(|| format!("delete route {undone}"), undo).await {
                            Ok(Ok(())) => None,
                            Ok(Err(rollback)) => Some(kernel("delete", undone, &rollback)),
                            Err(timeout) => Some(timeout),
                        };
                        if let Some(failure) = failure {
                            tracing::warn!(
                                error = %failure,
                                "could not take back route {undone} after a failed install"
                            );
                        }
                    }
                    self.installed = false;
                    return Err(e);
                }
            }
        }
        self.installed = true;
        Ok(())
    }

    /// Adds one route; `Some(message)` when this call created it (for the rollback),
    /// `None` when it was ours already.
    async fn add_one(&self, route: &RouteSpec) -> Result<Option<RouteMessage>, RouteError> {
        let ifindex = self.ifindex(route).await?;
        let message = add_message(route, ifindex);
        let request = self.handle.route().add(message.clone()).execute();
        match timed(|| format!("add route {route}"), request).await? {
            Ok(()) => return Ok(Some(message)),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(kernel("add", route, &e)),
        }
        // Something with the same table, destination, TOS and metric is there already.
        let names = self.link_names().await?;
        let existing = self.dump().await?.into_iter().find(|m| same_slot(m, route));
        let Some(existing) = existing else {
            // Gone again in between: let the kernel's answer stand.
            return Err(RouteError::Kernel {
                operation: "add",
                route: route.to_string(),
                errno: Some(libc::EEXIST),
                cause: errno_text(libc::EEXIST),
            });
        };
        let protocol = u8::from(existing.header.protocol);
        if protocol != RTPROT_HAAGENT {
            return Err(RouteError::Foreign {
                route: route.to_string(),
                existing: describe(&existing, &names),
                owner: protocol_name(protocol),
            });
        }
        let request = self.handle.route().add(message).replace().execute();
        match timed(|| format!("replace route {route}"), request).await? {
            Ok(()) => Ok(None),
            Err(e) => Err(kernel("replace", route, &e)),
        }
    }

    /// Deletes our routes (protocol 98 only, so a foreign route with the same destination
    /// stays). A route already gone is fine, and so is a `dev` that is gone (its routes went
    /// with it). Every route is attempted; the first failure is returned, and
    /// [`RouteManager::installed`] turns false only when all succeeded.
    pub async fn remove(&mut self) -> Result<(), RouteError> {
        let mut first_error = None;
        for route in &self.routes {
            let ifindex = match self.ifindex(route).await {
                Ok(index) => index,
                Err(RouteError::InterfaceNotFound { .. }) => continue,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let message = delete_message(add_message(route, ifindex));
            let request = self.handle.route().del(message).execute();
            match timed(|| format!("delete route {route}"), request).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if errno_of(&e) == Some(libc::ESRCH) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(kernel("delete", route, &e));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                self.installed = false;
                Ok(())
            }
        }
    }

    /// Which configured routes the kernel has now with protocol 98 (destination, gateway,
    /// source, interface, metric and table all equal; metric 0 = none, table 254 = none),
    /// in configuration order: for `haagent status`.
    pub async fn present(&self) -> Result<Vec<RouteSpec>, RouteError> {
        let names = self.link_names().await?;
        let kernel: Vec<RouteSpec> = self
            .dump()
            .await?
            .iter()
            .filter(|m| ours(m))
            .filter_map(|m| to_spec(m, &names))
            .map(normalised)
            .collect();
        Ok(self
            .routes
            .iter()
            .filter(|r| kernel.contains(&normalised((*r).clone())))
            .cloned()
            .collect())
    }

    /// Replaces the route list (a reload). While installed, the routes dropped from the
    /// list are removed and the new list is installed (all or nothing, see
    /// [`RouteManager::install`]); otherwise nothing changes in the kernel. The first
    /// failure is returned.
    pub async fn set_routes(&mut self, routes: Vec<RouteSpec>) -> Result<(), RouteError> {
        if !self.installed {
            self.routes = routes;
            return Ok(());
        }
        let dropped: Vec<RouteSpec> = self
            .routes
            .iter()
            .filter(|r| !routes.contains(r))
            .cloned()
            .collect();
        self.routes = dropped;
        let removed = self.remove().await;
        self.routes = routes;
        let installed = self.install().await;
        removed.and(installed)
    }

    /// The index of the route's `dev`, looked up now.
    async fn ifindex(&self, route: &RouteSpec) -> Result<u32, RouteError> {
        let mut links = Box::pin(
            self.handle
                .link()
                .get()
                .match_name(route.dev.clone())
                .execute(),
        );
        let lookup = async move { links.try_next().await };
        match timed(|| format!("look up interface {}", route.dev), lookup).await? {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(not_found(route)),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Err(not_found(route)),
            Err(e) => Err(RouteError::Netlink {
                operation: format!("look up interface {}", route.dev),
                errno: errno_of(&e),
                cause: cause_text(&e),
            }),
        }
    }

    /// Every route in every table of the families this manager's routes have (an IPv4-only
    /// list never reads the IPv6 table, which can be a full one on a router).
    async fn dump(&self) -> Result<Vec<RouteMessage>, RouteError> {
        let v4 = self.routes.iter().any(|r| r.to.is_ipv4());
        let v6 = self.routes.iter().any(|r| !r.to.is_ipv4());
        dump_routes(&self.handle, v4, v6).await
    }

    /// Interface index → name.
    async fn link_names(&self) -> Result<HashMap<u32, String>, RouteError> {
        link_names(&self.handle).await
    }
}

impl Drop for RouteManager {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// At start-up: deletes every IPv4 and IPv6 route with protocol 98 ([`RTPROT_HAAGENT`]) in
/// the main table and in `tables`, and returns what it removed in `ip route` words, for the log. A
/// node that has just started holds no VIP, so such routes are leftovers of a killed run.
/// Opens (and closes) its own netlink connection; must be called inside a tokio runtime.
/// Every route is attempted; the first failure is returned.
pub async fn remove_stale_routes(tables: &[u32]) -> Result<Vec<String>, RouteError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| io_error("open netlink socket for routes", e))?;
    let connection = tokio::spawn(connection);
    let result = remove_stale_with(&handle, tables).await;
    connection.abort();
    result
}

async fn remove_stale_with(handle: &Handle, tables: &[u32]) -> Result<Vec<String>, RouteError> {
    let names = link_names(handle).await?;
    let mut removed = Vec::new();
    let mut first_error = None;
    for found in dump_routes(handle, true, true).await? {
        let table = table_of(&found);
        if !ours(&found) || !(table == MAIN_TABLE || tables.contains(&table)) {
            continue;
        }
        let text = describe(&found, &names);
        let request = handle.route().del(delete_message(found)).execute();
        match timed(|| format!("delete stale route {text}"), request).await {
            Ok(Ok(())) => removed.push(text),
            Ok(Err(e)) if errno_of(&e) == Some(libc::ESRCH) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(RouteError::Kernel {
                    operation: "delete",
                    route: text,
                    errno: errno_of(&e),
                    cause: cause_text(&e),
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// The `RTM_NEWROUTE` message for `route` through interface `ifindex`: protocol 98,
/// unicast, of the destination's family. An IPv4 route has scope universe with a gateway
/// and link without (as `ip route add` chooses); an IPv6 route always universe (IPv6
/// derives a route's scope from its addresses). A `via` or `src` of the other family
/// (which the config never produces) is left out.
fn add_message(route: &RouteSpec, ifindex: u32) -> RouteMessage {
    let scope = match (route.to.addr, route.via) {
        (IpAddr::V4(_), None) => RouteScope::Link,
        _ => RouteScope::Universe,
    };
    let common = |message: RouteMessage| {
        let mut builder = RouteMessageBuilder::<IpAddr>::new();
        *builder.get_mut() = message;
        let mut builder = builder
            .output_interface(ifindex)
            .protocol(RouteProtocol::from(RTPROT_HAAGENT))
            .kind(RouteType::Unicast)
            .table_id(route.table.unwrap_or(MAIN_TABLE))
            .scope(scope);
        if let Some(metric) = route.metric {
            builder = builder.priority(metric);
        }
        builder.build()
    };
    match route.to.addr {
        IpAddr::V4(to) => {
            let mut builder =
                RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(to, route.to.prefix);
            if let Some(IpAddr::V4(via)) = route.via {
                builder = builder.gateway(via);
            }
            if let Some(IpAddr::V4(src)) = route.src {
                builder = builder.pref_source(src);
            }
            common(builder.build())
        }
        IpAddr::V6(to) => {
            let mut builder =
                RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(to, route.to.prefix);
            if let Some(IpAddr::V6(via)) = route.via {
                builder = builder.gateway(via);
            }
            if let Some(IpAddr::V6(src)) = route.src {
                builder = builder.pref_source(src);
            }
            common(builder.build())
        }
    }
}

/// Turns a route message into the matching `RTM_DELROUTE` request: only the attributes
/// that select the route, scope "any" (`RT_SCOPE_NOWHERE`, as `ip route del` sends), the
/// protocol kept so the kernel deletes only a route with protocol 98.
fn delete_message(mut message: RouteMessage) -> RouteMessage {
    message.header.scope = RouteScope::NoWhere;
    message.attributes.retain(|a| {
        matches!(
            a,
            RouteAttribute::Destination(_)
                | RouteAttribute::Gateway(_)
                | RouteAttribute::Oif(_)
                | RouteAttribute::PrefSource(_)
                | RouteAttribute::Priority(_)
                | RouteAttribute::Table(_)
        )
    });
    message
}

/// Every IPv4 (with `v4`) and IPv6 (with `v6`) route in every table (a dump without strict
/// checking returns all tables).
async fn dump_routes(handle: &Handle, v4: bool, v6: bool) -> Result<Vec<RouteMessage>, RouteError> {
    let mut all = Vec::new();
    for (family, query) in [
        (
            AddressFamily::Inet,
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
        ),
        (
            AddressFamily::Inet6,
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ),
    ] {
        if !(if family == AddressFamily::Inet {
            v4
        } else {
            v6
        }) {
            continue;
        }
        let request = handle
            .route()
            .get(query)
            .execute()
            .try_collect::<Vec<RouteMessage>>();
        match timed(|| "list routes".to_string(), request).await? {
            Ok(messages) => all.extend(
                messages
                    .into_iter()
                    .filter(|m| m.header.address_family == family),
            ),
            // A kernel without IPv6 has no IPv6 routes to list.
            Err(e)
                if family == AddressFamily::Inet6 && errno_of(&e) == Some(libc::EAFNOSUPPORT) => {}
            Err(e) => {
                return Err(RouteError::Netlink {
                    operation: "list routes".to_string(),
                    errno: errno_of(&e),
                    cause: cause_text(&e),
                })
            }
        }
    }
    Ok(all)
}

/// Interface index → name, for printing routes.
async fn link_names(handle: &Handle) -> Result<HashMap<u32, String>, RouteError> {
    let request = handle
        .link()
        .get()
        .execute()
        .try_collect::<Vec<rtnetlink::packet_route::link::LinkMessage>>();
    match timed(|| "list interfaces".to_string(), request).await? {
        Ok(links) => Ok(links
            .into_iter()
            .filter_map(|l| {
                let name = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })?;
                Some((l.header.index, name))
            })
            .collect()),
        Err(e) => Err(RouteError::Netlink {
            operation: "list interfaces".to_string(),
            errno: errno_of(&e),
            cause: cause_text(&e),
        }),
    }
}

/// A unicast route with protocol 98.
fn ours(m: &RouteMessage) -> bool {
    u8::from(m.header.protocol) == RTPROT_HAAGENT && m.header.kind == RouteType::Unicast
}

/// The route's table: `RTA_TABLE` when present (always in kernel dumps), else the header.
fn table_of(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table))
}

fn ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// The unspecified address of the message's family (the destination of a `/0` route,
/// which carries no `RTA_DST`).
fn unspecified_of(m: &RouteMessage) -> IpAddr {
    if m.header.address_family == AddressFamily::Inet6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// A kernel route as a [`RouteSpec`]; `None` for a route without an output interface
/// (multipath, blackhole) — haagent adds none of those.
fn to_spec(m: &RouteMessage, names: &HashMap<u32, String>) -> Option<RouteSpec> {
    let mut spec = RouteSpec {
        to: IpCidr {
            addr: unspecified_of(m),
            prefix: m.header.destination_prefix_length,
        },
        via: None,
        src: None,
        dev: String::new(),
        metric: None,
        table: Some(table_of(m)),
    };
    let mut oif = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => spec.to.addr = ip(d)?,
            RouteAttribute::Gateway(g) => spec.via = ip(g),
            RouteAttribute::PrefSource(s) => spec.src = ip(s),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => spec.metric = Some(*p),
            _ => {}
        }
    }
    let oif = oif?;
    spec.dev = names
        .get(&oif)
        .cloned()
        .unwrap_or_else(|| format!("if{oif}"));
    Some(spec)
}

/// `metric 0` is no metric and table 254 (main) is no table, as `ip route` prints them.
fn normalised(mut spec: RouteSpec) -> RouteSpec {
    if spec.metric == Some(0) {
        spec.metric = None;
    }
    if spec.table == Some(MAIN_TABLE) {
        spec.table = None;
    }
    spec
}

/// A kernel route in `ip route` words.
fn describe(m: &RouteMessage, names: &HashMap<u32, String>) -> String {
    match to_spec(m, names) {
        Some(spec) => normalised(spec).to_string(),
        None => format!(
            "a route to /{} in table {}",
            m.header.destination_prefix_length,
            table_of(m)
        ),
    }
}

/// Whether `m` occupies the slot `route` needs: same table, destination and prefix, TOS 0
/// and metric (what makes the kernel answer `EEXIST`).
fn same_slot(m: &RouteMessage, route: &RouteSpec) -> bool {
    let dst = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(d) => ip(d),
            _ => None,
        })
        .unwrap_or_else(|| unspecified_of(m));
    let metric = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0);
    m.header.kind == RouteType::Unicast
        && m.header.tos == 0
        && table_of(m) == route.table.unwrap_or(MAIN_TABLE)
        && m.header.destination_prefix_length == route.to.prefix
        && dst == route.to.addr
        && metric == route.metric.unwrap_or(0)
}

/// The names `/etc/iproute2/rt_protos` gives the common protocols, else the number.
fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "redirect".into(),
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        16 => "dhcp".into(),
        18 => "keepalived".into(),
        n => n.to_string(),
    }
}

/// Runs one netlink request with [`NETLINK_TIMEOUT`]; the outer error is the timeout.
async fn timed<T>(
    operation: impl FnOnce() -> String,
    request: impl Future<Output = Result<T, rtnetlink::Error>>,
) -> Result<Result<T, rtnetlink::Error>, RouteError> {
    tokio::time::timeout(NETLINK_TIMEOUT, request)
        .await
        .map_err(|_| RouteError::Timeout {
            operation: operation(),
            after: NETLINK_TIMEOUT,
        })
}

/// The positive errno inside a netlink error answer, if it is one.
fn errno_of(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

/// The errno's text (`File exists (os error 17)`).
fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    if errno == libc::EPERM || errno == libc::EACCES {
        format!("{text}; needs CAP_NET_ADMIN (run as root or grant the capability)")
    } else {
        text
    }
}

/// The errno text for a kernel answer, else rtnetlink's own description.
fn cause_text(error: &rtnetlink::Error) -> String {
    match errno_of(error) {
        Some(errno) => errno_text(errno),
        None => error.to_string(),
    }
}

fn kernel(operation: &'static str, route: &RouteSpec, error: &rtnetlink::Error) -> RouteError {
    RouteError::Kernel {
        operation,
        route: route.to_string(),
        errno: errno_of(error),
        cause: cause_text(error),
    }
}

fn not_found(route: &RouteSpec) -> RouteError {
    RouteError::InterfaceNotFound {
        route: route.to_string(),
        dev: route.dev.clone(),
    }
}

fn io_error(operation: &str, e: io::Error) -> RouteError {
    let errno = e.raw_os_error();
    RouteError::Netlink {
        operation: operation.to_string(),
        cause: errno.map_or_else(|| e.to_string(), errno_text),
        errno,
    }
}

/// The interfaces of `routes`, for naming them in an error about the socket.
fn devs_of(routes: &[RouteSpec]) -> String {
    let mut devs: Vec<&str> = routes.iter().map(|r| r.dev.as_str()).collect();
    devs.dedup();
    if devs.is_empty() {
        "(none)".to_string()
    } else {
        devs.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        text_to: &str,
        via: Option<&str>,
        metric: Option<u32>,
        table: Option<u32>,
    ) -> RouteSpec {
        RouteSpec {
            to: text_to.parse().unwrap(),
            via: via.map(|v| v.parse().unwrap()),
            src: Some(Ipv4Addr::new(192, 0, 2, 100).into()),
            dev: "eth0".into(),
            metric,
            table,
        }
    }

    fn names() -> HashMap<u32, String> {
        HashMap::from([(7, "eth0".to_string())])
    }

    #[test]
    fn add_message_carries_every_field_and_reads_back() {
        let route = spec("0.0.0.0/0", Some("192.0.2.1"), Some(10), Some(1000));
        let m = add_message(&route, 7);
        assert_eq!(u8::from(m.header.protocol), RTPROT_HAAGENT);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(table_of(&m), 1000, "tables above 255 go in RTA_TABLE");
        assert_eq!(to_spec(&m, &names()), Some(route.clone()));
        assert!(same_slot(&m, &route));
        assert!(!same_slot(
            &m,
            &RouteSpec {
                metric: Some(11),
                ..route.clone()
            }
        ));

        let link = spec("203.0.113.0/24", None, None, None);
        let m = add_message(&link, 7);
        assert_eq!(m.header.scope, RouteScope::Link, "no gateway: scope link");
        assert_eq!(m.header.table, 254);
        assert_eq!(
            to_spec(&m, &names()).map(normalised),
            Some(link.clone()),
            "main table and metric 0 read back as none"
        );
        assert!(same_slot(&m, &link));
    }

    #[test]
    fn delete_keeps_the_selectors_and_the_protocol() {
        let route = spec("203.0.113.0/24", Some("192.0.2.1"), Some(5), Some(100));
        let mut m = add_message(&route, 7);
        m.attributes.push(RouteAttribute::Expires(3));
        let d = delete_message(m);
        assert_eq!(d.header.scope, RouteScope::NoWhere);
        assert_eq!(u8::from(d.header.protocol), RTPROT_HAAGENT);
        assert!(!d
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Expires(_))));
        assert_eq!(to_spec(&d, &names()), Some(route));
    }

    #[test]
    fn errors_name_the_route_and_the_errno_text() {
        let route = spec("0.0.0.0/0", Some("198.51.100.1"), None, None);
        let mut message = rtnetlink::packet_core::ErrorMessage::default();
        message.code = std::num::NonZeroI32::new(-libc::ENETUNREACH);
        let e = kernel("add", &route, &rtnetlink::Error::NetlinkError(message));
        assert_eq!(
            e.to_string(),
            "add route 0.0.0.0/0 via 198.51.100.1 dev eth0 src 192.0.2.100: Network is unreachable (os error 101)"
        );
        assert_eq!(e.errno(), Some(libc::ENETUNREACH));
        assert!(errno_text(libc::EPERM).contains("CAP_NET_ADMIN"));
        assert_eq!(protocol_name(4), "static");
        assert_eq!(protocol_name(42), "42");
    }

    fn assert_send<T: Send>(_: &T) {}

    #[allow(dead_code)]
    fn futures_are_send(m: &mut RouteManager) {
        // The daemon drives these from spawned tasks.
        assert_send(&m.present());
        assert_send(&m.install());
        assert_send(&m.remove());
        assert_send(&m.set_routes(Vec::new()));
        assert_send(&remove_stale_routes(&[]));
        assert_send(&RouteManager::open(Vec::new()));
    }
}
