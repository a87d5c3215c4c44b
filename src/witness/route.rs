//! Finding the gateway to ping when the config says `gateway = "auto"`.
//!
//! The witness must ping the router *behind the VIP interface*: the default route of the
//! main table whose output interface is that interface — the IPv4 one (`0.0.0.0/0`) if
//! there is one, else the IPv6 one (`::/0`, typically learnt from router advertisements
//! and then via the router's link-local address, RFC 4861 §6.3.4). IPv4 first keeps every
//! dual-stack node pinging what it pinged before IPv6 support; an IPv6-only node needs no
//! extra key. The routing table is read at start-up over rtnetlink, and again whenever the
//! kernel announces a default route added, changed or deleted ([`DefaultRouteWatch`]): the
//! witness then pings the new gateway. A node without such a route at start gets an error
//! that names the config key to set instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::WitnessError;

/// How long one netlink request may take before it counts as failed.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);

/// The gateway of the default route that leaves through `interface`: the IPv4 one if
/// there is one, else the IPv6 one (main table; the lowest metric wins when there are
/// several, also among the next hops of multipath routes). An IPv6 gateway may be
/// link-local (`fe80::/10`); its scope is `interface`. The IPv6 table is read only when
/// there is no IPv4 default route, so a host with IPv6 disabled behaves as before.
///
/// Errors: [`WitnessError::NoDefaultRoute`] when neither family has one,
/// [`WitnessError::InterfaceNotFound`], or the netlink failure.
///
/// Must be called from inside a tokio runtime (it spawns the netlink connection
/// task for the duration of the call). Reads the routing table of the calling
/// thread's network namespace.
pub async fn resolve_gateway(interface: &str) -> Result<IpAddr, WitnessError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| WitnessError::Io {
            interface: interface.to_string(),
            operation: "open netlink socket".to_string(),
            source,
        })?;
    let connection = tokio::spawn(connection);
    let result = async {
        let mut links = handle
            .link()
            .get()
            .match_name(interface.to_string())
            .execute();
        let link = bounded(interface, "look up interface", links.try_next()).await?;
        let ifindex = link
            .ok_or_else(|| WitnessError::InterfaceNotFound {
                interface: interface.to_string(),
            })?
            .header
            .index;

        for request in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let routes = handle.route().get(request).execute();
            let routes: Vec<RouteMessage> =
                bounded(interface, "read the routing table", routes.try_collect()).await?;
            if let Some(gateway) = pick_default_gateway(&routes, ifindex) {
                return Ok(gateway);
            }
        }
        Err(WitnessError::NoDefaultRoute {
            interface: interface.to_string(),
        })
    }
    .await;
    connection.abort();
    result
}

/// Among `routes`, the gateway of the lowest-metric default route of the main table that
/// leaves through `ifindex` (also inside a multipath route); an IPv4 one before any IPv6
/// one, whatever the metrics. A gateway of the other family than its route's (an IPv4
/// route via an IPv6 next hop, RFC 8950) is not taken.
pub(crate) fn pick_default_gateway(routes: &[RouteMessage], ifindex: u32) -> Option<IpAddr> {
    // (IPv6, metric): IPv4 sorts first.
    let mut best: Option<((bool, u32), IpAddr)> = None;
    for route in routes {
        let header = &route.header;
        let v6 = match header.address_family {
            AddressFamily::Inet => false,
            AddressFamily::Inet6 => true,
            _ => continue,
        };
        if header.destination_prefix_length != 0 || header.kind != RouteType::Unicast {
            continue;
        }
        let table = route
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(header.table));
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            continue;
        }
        let metric = route
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Priority(p) => Some(*p),
                _ => None,
            })
            .unwrap_or(0);

        let mut candidates = Vec::new();
        let oif = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        if oif == Some(ifindex) {
            candidates.extend(gateway_of(&route.attributes));
        }
        for attr in &route.attributes {
            if let RouteAttribute::MultiPath(hops) = attr {
                candidates.extend(
                    hops.iter()
                        .filter(|h| h.interface_index == ifindex)
                        .filter_map(|h| gateway_of(&h.attributes)),
                );
            }
        }
        let key = (v6, metric);
        for gateway in candidates.into_iter().filter(|g| g.is_ipv6() == v6) {
            if best.is_none_or(|(k, _)| key < k) {
                best = Some((key, gateway));
            }
        }
    }
    best.map(|(_, gateway)| gateway)
}

/// The `Gateway` attribute among `attributes`, if any.
fn gateway_of(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    })
}

/// Runs one netlink request with [`NETLINK_TIMEOUT`], mapping its errors.
async fn bounded<T>(
    interface: &str,
    operation: &str,
    request: impl std::future::Future<Output = Result<T, rtnetlink::Error>>,
) -> Result<T, WitnessError> {
    match tokio::time::timeout(NETLINK_TIMEOUT, request).await {
        Err(_) => Err(WitnessError::Timeout {
            interface: interface.to_string(),
            operation: operation.to_string(),
            after: NETLINK_TIMEOUT,
        }),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(classify(interface, operation, e)),
    }
}

/// Maps a kernel answer to the variant an operator can act on.
fn classify(interface: &str, operation: &str, error: rtnetlink::Error) -> WitnessError {
    let errno = match &error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    };
    match errno {
        // ERANGE: a name longer than IFNAMSIZ, which no interface can have.
        Some(libc::ENODEV) | Some(libc::ERANGE) => WitnessError::InterfaceNotFound {
            interface: interface.to_string(),
        },
        Some(libc::EPERM) | Some(libc::EACCES) => WitnessError::PermissionDenied {
            interface: interface.to_string(),
            operation: operation.to_string(),
            capability: "CAP_NET_ADMIN",
            hint: "run as root or grant the capability",
        },
        _ => WitnessError::Netlink {
            interface: interface.to_string(),
            operation: operation.to_string(),
            source: error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::route::RouteNextHop;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn route(prefix: u8, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = prefix;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.kind = RouteType::Unicast;
        m.attributes = attrs;
        m
    }

    fn gw(ip: Ipv4Addr) -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet(ip))
    }

    #[test]
    fn picks_the_default_route_of_the_interface() {
        let other = Ipv4Addr::new(198, 51, 100, 1);
        let routes = vec![
            route(24, vec![RouteAttribute::Oif(2)]),
            route(0, vec![gw(other), RouteAttribute::Oif(3)]),
            route(0, vec![gw(GW), RouteAttribute::Oif(2)]),
        ];
        assert_eq!(pick_default_gateway(&routes, 2), Some(GW.into()));
        assert_eq!(pick_default_gateway(&routes, 3), Some(other.into()));
        assert_eq!(pick_default_gateway(&routes, 4), None);
    }

    #[test]
    fn lowest_metric_wins() {
        let backup = Ipv4Addr::new(192, 0, 2, 254);
        let routes = vec![
            route(
                0,
                vec![
                    gw(backup),
                    RouteAttribute::Oif(2),
                    RouteAttribute::Priority(200),
                ],
            ),
            route(
                0,
                vec![
                    gw(GW),
                    RouteAttribute::Oif(2),
                    RouteAttribute::Priority(100),
                ],
            ),
        ];
        assert_eq!(pick_default_gateway(&routes, 2), Some(GW.into()));
    }

    #[test]
    fn ignores_other_tables_and_routes_without_gateway() {
        let mut local = route(0, vec![gw(GW), RouteAttribute::Oif(2)]);
        local.header.table = 255;
        let routes = vec![local, route(0, vec![RouteAttribute::Oif(2)])];
        assert_eq!(pick_default_gateway(&routes, 2), None);
    }

    #[test]
    fn finds_a_multipath_next_hop() {
        let routes = vec![route(
            0,
            vec![RouteAttribute::MultiPath(vec![
                hop(3, gw(Ipv4Addr::new(198, 51, 100, 1))),
                hop(2, gw(GW)),
            ])],
        )];
        assert_eq!(pick_default_gateway(&routes, 2), Some(GW.into()));
    }

    const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

    fn route6(attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = route(0, attrs);
        m.header.address_family = AddressFamily::Inet6;
        m
    }

    fn gw6(ip: Ipv6Addr) -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet6(ip))
    }

    fn hop(index: u32, gateway: RouteAttribute) -> RouteNextHop {
        let mut hop = RouteNextHop::default();
        hop.interface_index = index;
        hop.attributes = vec![gateway];
        hop
    }

    #[test]
    fn an_ipv6_default_route_via_a_link_local_router_is_found() {
        // What a router advertisement installs: `default via fe80::1 dev eth0 proto ra`.
        let mut prefix = route6(vec![RouteAttribute::Oif(2)]);
        prefix.header.destination_prefix_length = 64;
        let routes = vec![prefix, route6(vec![gw6(GW6), RouteAttribute::Oif(2)])];
        assert_eq!(pick_default_gateway(&routes, 2), Some(GW6.into()));
        assert_eq!(pick_default_gateway(&routes, 3), None);
    }

    #[test]
    fn an_ipv4_default_route_comes_before_any_ipv6_one() {
        let routes = vec![
            route6(vec![
                gw6(GW6),
                RouteAttribute::Oif(2),
                RouteAttribute::Priority(1),
            ]),
            route(
                0,
                vec![
                    gw(GW),
                    RouteAttribute::Oif(2),
                    RouteAttribute::Priority(1024),
                ],
            ),
        ];
        assert_eq!(pick_default_gateway(&routes, 2), Some(GW.into()));
        // Only the IPv6 route leaves through interface 3.
        let mut routes = routes;
        routes[0].attributes[1] = RouteAttribute::Oif(3);
        assert_eq!(pick_default_gateway(&routes, 3), Some(GW6.into()));
    }

    #[test]
    fn lowest_metric_wins_among_ipv6_routes_and_multipath_hops() {
        let second = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let global = "2001:db8::1".parse::<Ipv6Addr>().unwrap();
        let routes = vec![
            route6(vec![
                gw6(second),
                RouteAttribute::Oif(2),
                RouteAttribute::Priority(1024),
            ]),
            // ECMP: the kernel dumps sibling routes as one multipath route.
            route6(vec![
                RouteAttribute::Priority(100),
                RouteAttribute::MultiPath(vec![hop(3, gw6(second)), hop(2, gw6(global))]),
            ]),
        ];
        assert_eq!(pick_default_gateway(&routes, 2), Some(global.into()));
        assert_eq!(pick_default_gateway(&routes, 3), Some(second.into()));
    }

    #[test]
    fn a_gateway_of_the_other_family_is_not_taken() {
        // An IPv4 default route via an IPv6 next hop (RFC 8950) and a malformed opposite.
        let routes = vec![
            route(0, vec![gw6(GW6), RouteAttribute::Oif(2)]),
            route6(vec![gw(GW), RouteAttribute::Oif(2)]),
        ];
        assert_eq!(pick_default_gateway(&routes, 2), None);
    }

    #[test]
    fn no_default_route_error_names_the_config_key() {
        let e = WitnessError::NoDefaultRoute {
            interface: "eth0".to_string(),
        };
        assert_eq!(
            e.to_string(),
            "no default route via eth0 (set [witness] gateway = \"<ip>\")"
        );
    }

    #[tokio::test]
    async fn missing_interface_is_named() {
        let e = resolve_gateway("hawit-none0").await.unwrap_err();
        assert_eq!(e.to_string(), "interface hawit-none0 not found");
        // Longer than IFNAMSIZ: the kernel says ERANGE, we say what it means.
        let e = resolve_gateway("hawit-nonexistent0").await.unwrap_err();
        assert_eq!(e.to_string(), "interface hawit-nonexistent0 not found");
    }
}

/// Kernel notifications of default-route changes (`RTM_NEWROUTE` / `RTM_DELROUTE` of a
/// `/0` route, either family, on `RTMGRP_IPV4_ROUTE` and `RTMGRP_IPV6_ROUTE`), for a
/// `gateway = "auto"` witness: each one (and a netlink overrun, which may have hidden one)
/// is a `()` on the receiver; the witness then resolves the gateway again. Dropping it
/// stops the watch. At most [`DefaultRouteWatch::PENDING`] wake-ups wait: more changes
/// before the witness looks are one re-read.
#[derive(Debug)]
pub(crate) struct DefaultRouteWatch {
    connection: tokio::task::JoinHandle<()>,
    task: tokio::task::JoinHandle<()>,
}

impl DefaultRouteWatch {
    /// Wake-ups that may wait for the witness.
    const PENDING: usize = 1;

    /// Subscribes in the calling thread's network namespace (inside a tokio runtime).
    pub(crate) fn spawn(
        interface: &str,
    ) -> Result<(Self, tokio::sync::mpsc::Receiver<()>), WitnessError> {
        use futures_util::stream::StreamExt;
        use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE};
        use rtnetlink::packet_core::NetlinkPayload;
        use rtnetlink::packet_route::RouteNetlinkMessage;
        use rtnetlink::sys::{AsyncSocket, SocketAddr};

        let io = |source| WitnessError::Io {
            interface: interface.to_string(),
            operation: "subscribe to route notifications".to_string(),
            source,
        };
        let (mut connection, _handle, mut messages) = rtnetlink::new_connection().map_err(io)?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE))
            .map_err(io)?;
        let connection = tokio::spawn(connection);
        let (tx, rx) = tokio::sync::mpsc::channel(Self::PENDING);
        let task = tokio::spawn(async move {
            while let Some((message, _)) = messages.next().await {
                let wake = match message.payload {
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m),
                    ) => m.header.destination_prefix_length == 0,
                    NetlinkPayload::Overrun(_) => true,
                    _ => false,
                };
                if wake && tx.try_send(()).is_err() && tx.is_closed() {
                    return;
                }
            }
        });
        Ok((Self { connection, task }, rx))
    }
}

impl Drop for DefaultRouteWatch {
    fn drop(&mut self) {
        self.task.abort();
        self.connection.abort();
    }
}
