//! Putting the virtual IP on the interface and taking it off again, over rtnetlink.
//!
//! [`VipManager`] is the only code in haagent that changes addresses. It keeps one
//! netlink connection open for the daemon's lifetime (its task runs on the tokio
//! runtime that called [`VipManager::open`]) and bounds every request with a
//! timeout, so a wedged kernel socket shows up as [`VipError::Timeout`] instead of a
//! hung daemon.
//!
//! Two kernel facts shape it:
//! - the same IP with another prefix (`/24` and `/32`) is a *second* address, so
//!   [`VipManager::remove_stale`] matches on the IP alone, while
//!   [`VipManager::installed`] reports only exact `ip/prefix` matches;
//! - addresses of both families can carry a lifetime (`IFA_CACHEINFO`): with one, the
//!   kernel deletes the VIP by itself once the daemon stops calling
//!   [`VipManager::refresh`] — a dead or frozen master then cannot keep the VIP. For IPv6
//!   it is the address's valid and preferred lifetime (RFC 4862 §5.5.4), native there;
//! - an IPv6 address is *tentative* while the kernel runs Duplicate Address Detection on
//!   it (RFC 4862 §5.4, ~1 s by default) and cannot be used as a source or answer
//!   neighbour solicitations meanwhile: IPv6 VIPs are added with `IFA_F_NODAD` (`ip addr
//!   add … nodad`), usable at once — haagent runs its own DAD-style probe before it
//!   claims ([`super::ArpProbe`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressScope, CacheInfo,
};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{AddressMessageBuilder, Handle};
use tokio::task::JoinHandle;

use super::VipError;
use crate::net::{IpCidr, VipScope, VipSpec};

/// How long one netlink request may take before it counts as failed.
/// Address changes take ~0.2 ms; two seconds means the kernel side is stuck.
pub(crate) const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);

/// The capability every address change needs.
const CAP_NET_ADMIN: &str = "CAP_NET_ADMIN";

/// Owns the netlink connection and the configured VIPs of one interface.
///
/// Dropping it stops the netlink connection task; the addresses stay as they are
/// (call [`VipManager::release`] first when leaving the master state).
#[derive(Debug)]
pub struct VipManager {
    handle: Handle,
    connection: JoinHandle<()>,
    ifindex: u32,
    ifname: String,
    mac: [u8; 6],
    vips: Vec<IpCidr>,
    /// Label and scope per VIP (from [`VipManager::set_attributes`]); a VIP not listed is
    /// installed without a label, scope global.
    attributes: Vec<(IpCidr, Option<String>, VipScope)>,
    lifetime: Option<Duration>,
    /// Between a successful [`VipManager::install`] and the next [`VipManager::release`].
    held: bool,
    /// With a lifetime: when the kernel deletes the VIPs unless renewed (the start of the
    /// last successful install or refresh plus the lifetime in whole seconds).
    lease_until: Option<Instant>,
}

/// Removals within this much of the lease deadline count as the lease running out: the
/// kernel's lifetime check may fire up to `ADDRCONF_TIMER_FUZZ_MINUS` (HZ/50, 20 ms)
/// early, and our deadline starts when we sent the request, slightly before the kernel
/// stamped the address.
const EXPIRY_SLACK: Duration = Duration::from_millis(100);

/// One IPv4 address found on the interface.
#[derive(Debug, Clone)]
struct Found {
    cidr: IpCidr,
    message: AddressMessage,
}

impl VipManager {
    /// Opens a netlink connection on the current tokio runtime and looks up the
    /// interface's index and MAC address.
    ///
    /// `lifetime`: `None` installs the VIPs forever; `Some(d)` installs them with a
    /// kernel lifetime of `d` (whole seconds, rounded up, at least 1) that
    /// [`VipManager::refresh`] must renew.
    ///
    /// Must be called from inside a tokio runtime.
    pub async fn open(
        interface: &str,
        vips: Vec<IpCidr>,
        lifetime: Option<Duration>,
    ) -> Result<Self, VipError> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| VipError::from_io(interface, "open netlink socket", CAP_NET_ADMIN, e))?;
        let connection = tokio::spawn(connection);

        let mut links = Box::pin(handle.link().get().match_name(interface).execute());
        let lookup = async move { links.try_next().await };
        let link = match bounded(interface, "look up interface", lookup).await {
            Ok(Some(link)) => link,
            Ok(None) => {
                connection.abort();
                return Err(VipError::InterfaceNotFound {
                    interface: interface.to_string(),
                });
            }
            Err(e) => {
                connection.abort();
                return Err(e);
            }
        };
        let mac = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        });
        let Some(mac) = mac else {
            connection.abort();
            return Err(VipError::NoMacAddress {
                interface: interface.to_string(),
            });
        };

        Ok(Self {
            handle,
            connection,
            ifindex: link.header.index,
            ifname: interface.to_string(),
            mac,
            vips,
            attributes: Vec::new(),
            lifetime,
            held: false,
            lease_until: None,
        })
    }

    /// Moves the manager to the interface that now carries its name (it was deleted and
    /// created again: new index) and to its current MAC. The daemon calls it from the link
    /// notifications of [`super::CarrierWatch`]; nothing read at start stays true.
    pub fn set_link(&mut self, ifindex: u32, mac: [u8; 6]) {
        self.ifindex = ifindex;
        self.mac = mac;
    }

    /// Sets the label (`IFA_LABEL`, `ip addr … label eth0:vip`) and scope (`ip addr … scope
    /// link`) that [`VipManager::install`], [`VipManager::refresh`] and
    /// [`VipManager::set_vips`] send with each VIP, matched by `cidr` (address and prefix);
    /// specs for addresses this manager does not manage are ignored, and a VIP without a
    /// spec gets no label and scope global (what [`VipManager::open`] alone gives). The
    /// lifetime logic is unchanged. Nothing is sent to the kernel here.
    ///
    /// Linux applies label and scope when it creates an address: replacing an address that
    /// is already present (a renewal) updates only its lifetime, so a changed label or
    /// scope shows on the next creation (after a release or an expiry). Linux also requires
    /// an address in the subnet of one already on the interface to have that one's scope:
    /// a `link` VIP inside the node's own global `/24` fails to install with EINVAL
    /// (`ipv4: Invalid scope value`). The label is not
    /// checked here (the config checks it: at most 15 bytes, starting with the interface
    /// name); the kernel truncates a longer one.
    pub fn set_attributes(&mut self, specs: &[VipSpec]) {
        self.attributes = specs
            .iter()
            .map(|s| (s.cidr, s.label.clone(), s.scope))
            .collect();
    }

    /// The label and scope [`VipManager::install`] gives `vip`.
    fn attributes_of(&self, vip: &IpCidr) -> (Option<&str>, VipScope) {
        self.attributes
            .iter()
            .find(|(c, _, _)| c == vip)
            .map_or((None, VipScope::Global), |(_, label, scope)| {
                (label.as_deref(), *scope)
            })
    }

    /// Whether we installed the VIPs and have not released them since: a removal seen
    /// while this is false is our own (or does not concern us).
    pub fn held(&self) -> bool {
        self.held
    }

    /// Whether the kernel lifetime of the VIPs has run out at `now` (within 100 ms, the
    /// slack of the kernel's lifetime check): a VIP that vanished then was deleted by the
    /// kernel because we did not renew it in time, not by someone else. Always `false`
    /// without a lifetime, and before the first install.
    pub fn lease_expired(&self, now: Instant) -> bool {
        match (self.lifetime, self.lease_until) {
            (Some(_), Some(until)) => now + EXPIRY_SLACK >= until,
            _ => false,
        }
    }

    /// How long the kernel lifetime of the VIPs still runs at `now`, if there is one.
    pub fn lease_left(&self, now: Instant) -> Option<Duration> {
        self.lease_until
            .map(|until| until.saturating_duration_since(now))
    }

    /// The interface's MAC address, as the kernel last reported it (at
    /// [`VipManager::open`] or through [`VipManager::set_link`]).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface name this manager works on.
    pub fn interface(&self) -> &str {
        &self.ifname
    }

    /// The kernel's index of the interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The configured VIPs, in configuration order.
    pub fn vips(&self) -> &[IpCidr] {
        &self.vips
    }

    /// Our VIPs that are not in `present` (what the kernel lists now).
    pub fn missing(&self, present: &[IpCidr]) -> Vec<IpCidr> {
        self.vips
            .iter()
            .filter(|v| !present.contains(v))
            .copied()
            .collect()
    }

    /// At start-up: deletes every address on the interface whose IP is a configured
    /// VIP, whatever its prefix (a leftover `/32` of a `/24` VIP counts), and returns
    /// what it removed so the daemon can log it.
    ///
    /// A node that has just started does not hold the VIP yet; a copy left over
    /// from a crashed run would answer ARP while another node is master.
    pub async fn remove_stale(&self) -> Result<Vec<IpCidr>, VipError> {
        let mut removed = Vec::new();
        let mut first_error = None;
        for found in self.addresses().await? {
            if !self.vips.iter().any(|v| v.addr == found.cidr.addr) {
                continue;
            }
            // Delete with the kernel's own attributes (local, peer, prefix) so even
            // a point-to-point style entry matches exactly.
            let mut message = AddressMessage::default();
            message.header = found.message.header.clone();
            message.attributes = found
                .message
                .attributes
                .iter()
                .filter(|a| matches!(a, AddressAttribute::Local(_) | AddressAttribute::Address(_)))
                .cloned()
                .collect();
            let operation = format!("delete stale {}", found.cidr);
            let request = self.handle.address().del(message).execute();
            match bounded(&self.ifname, &operation, request).await {
                Ok(()) => removed.push(found.cidr),
                Err(e) if is_errno(&e, libc::EADDRNOTAVAIL) => {}
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

    /// Adds every VIP to the interface, with the label and scope given to
    /// [`VipManager::set_attributes`]. Idempotent: a VIP already present is
    /// replaced in place (its lifetime renewed), not an error.
    ///
    /// Every VIP is attempted even if one fails; the first failure is returned.
    pub async fn install(&mut self) -> Result<(), VipError> {
        self.apply("add").await?;
        self.held = true;
        Ok(())
    }

    /// Renews the kernel lifetime of every VIP (like
    /// `ip addr change … valid_lft N preferred_lft N`). Without a lifetime this
    /// does nothing.
    ///
    /// The kernel creates an IPv4 address that is not there, so a VIP that already
    /// expired comes back; announce it again after an error or a long stall.
    pub async fn refresh(&mut self) -> Result<(), VipError> {
        if self.lifetime.is_none() {
            return Ok(());
        }
        self.apply("refresh").await
    }

    /// Deletes every VIP from the interface. A VIP that is already gone is fine, and so
    /// is an interface that is gone (an address cannot outlive its interface).
    ///
    /// Every VIP is attempted even if one fails; the first failure is returned.
    /// From here on removals are ours: [`VipManager::held`] is false.
    pub async fn release(&mut self) -> Result<(), VipError> {
        self.held = false;
        self.lease_until = None;
        self.delete(&self.vips).await
    }

    /// Replaces the VIP list (a reload). While the VIPs are held, the dropped ones are
    /// deleted from the interface and the list is installed again (new ones added, the
    /// others renewed in place); otherwise nothing changes on the interface. Every VIP is
    /// attempted; the first failure is returned.
    pub async fn set_vips(&mut self, vips: Vec<IpCidr>) -> Result<(), VipError> {
        let dropped: Vec<IpCidr> = self
            .vips
            .iter()
            .filter(|v| !vips.contains(v))
            .copied()
            .collect();
        self.vips = vips;
        if !self.held {
            return Ok(());
        }
        let deleted = self.delete(&dropped).await;
        let added = self.apply("add").await;
        deleted.and(added)
    }

    /// Deletes `vips` from the interface; one already gone (or the interface gone) is fine.
    async fn delete(&self, vips: &[IpCidr]) -> Result<(), VipError> {
        let mut first_error = None;
        for vip in vips {
            let message = match vip.addr {
                IpAddr::V4(addr) => AddressMessageBuilder::<Ipv4Addr>::new()
                    .index(self.ifindex)
                    .address(addr, vip.prefix)
                    .build(),
                IpAddr::V6(addr) => AddressMessageBuilder::<Ipv6Addr>::new()
                    .index(self.ifindex)
                    .address(addr, vip.prefix)
                    .build(),
            };
            let operation = format!("delete {vip}");
            let request = self.handle.address().del(message).execute();
            match bounded(&self.ifname, &operation, request).await {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::EADDRNOTAVAIL) => {}
                Err(VipError::InterfaceNotFound { .. }) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Which configured VIPs are on the interface right now (exact IP and prefix),
    /// in configuration order.
    pub async fn installed(&self) -> Result<Vec<IpCidr>, VipError> {
        let present: Vec<IpCidr> = self
            .addresses()
            .await?
            .into_iter()
            .map(|f| f.cidr)
            .collect();
        Ok(self
            .vips
            .iter()
            .filter(|v| present.contains(v))
            .copied()
            .collect())
    }

    /// Adds (or replaces) every VIP with the configured lifetime.
    async fn apply(&mut self, verb: &str) -> Result<(), VipError> {
        let started = Instant::now();
        let mut first_error = None;
        for vip in &self.vips {
            let mut request = self
                .handle
                .address()
                .add(self.ifindex, vip.addr, vip.prefix)
                .replace();
            let (label, scope) = self.attributes_of(vip);
            let message = request.message_mut();
            message.header.scope = AddressScope::from(scope.rt_scope());
            if let Some(label) = label {
                message
                    .attributes
                    .push(AddressAttribute::Label(label.to_string()));
            }
            if !vip.is_ipv4() {
                // Usable at once, not tentative for ~1 s (RFC 4862 §5.4); our own probe ran.
                let mut flags = AddressFlags::Nodad;
                if vip.prefix == 128 {
                    // A /128 has no subnet to route: the kernel's prefix route (`VIP dev IF
                    // proto kernel metric 256`, or the address's metric) would only shadow
                    // the local route, and in a routed group occupy the slot of the host
                    // route at epoch 256 (EEXIST).
                    flags |= AddressFlags::Noprefixroute;
                }
                message.attributes.push(AddressAttribute::Flags(flags));
            }
            if let Some(lifetime) = self.lifetime {
                request
                    .message_mut()
                    .attributes
                    .push(AddressAttribute::CacheInfo(cache_info(lifetime)));
            }
            let operation = format!("{verb} {vip}");
            if let Err(e) = bounded(&self.ifname, &operation, request.execute()).await {
                let e = ipv6_refused(e, vip);
                first_error.get_or_insert(e);
            }
        }
        if first_error.is_none() {
            if let Some(lifetime) = self.lifetime {
                let secs = cache_info(lifetime).ifa_valid;
                self.lease_until = Some(started + Duration::from_secs(u64::from(secs)));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The addresses of the interface (both families) that are not VIPs (the node's own)
    /// and can be a source now, as the kernel has them: not an IPv6 address that is still
    /// tentative (DAD, RFC 4862 §5.4: binding it fails with `EADDRNOTAVAIL`), failed DAD or
    /// is deprecated (preferred lifetime over, RFC 4862 §5.5.4); IPv6 temporary (privacy,
    /// RFC 8981) addresses last, since they are deleted within days.
    pub async fn own_addresses(&self) -> Result<Vec<IpCidr>, VipError> {
        let mut own: Vec<(bool, IpCidr)> = self
            .addresses()
            .await?
            .into_iter()
            .filter(|f| !self.vips.iter().any(|v| v.addr == f.cidr.addr))
            .filter_map(|f| {
                let flags = address_flags(&f.message);
                let unusable =
                    AddressFlags::Tentative | AddressFlags::Dadfailed | AddressFlags::Deprecated;
                let v6 = !f.cidr.is_ipv4();
                (!(v6 && flags.intersects(unusable)))
                    .then_some((v6 && flags.contains(AddressFlags::Secondary), f.cidr))
            })
            .collect();
        // Stable: the kernel's order otherwise.
        own.sort_by_key(|(temporary, _)| *temporary);
        Ok(own.into_iter().map(|(_, c)| c).collect())
    }

    async fn addresses(&self) -> Result<Vec<Found>, VipError> {
        let dump = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.ifindex)
            .execute()
            .try_collect::<Vec<AddressMessage>>();
        let messages = bounded(&self.ifname, "list addresses", dump).await?;
        Ok(messages
            .into_iter()
            .filter(|m| matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6))
            .filter_map(|message| {
                let addr = local_address(&message)?;
                let cidr = IpCidr {
                    addr,
                    prefix: message.header.prefix_len,
                };
                Some(Found { cidr, message })
            })
            .collect())
    }
}

impl Drop for VipManager {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// An address message's flags: `IFA_FLAGS` (32 bits) when present, else the header's 8
/// (`IFA_F_SECONDARY` is `IFA_F_TEMPORARY` for IPv6).
fn address_flags(message: &AddressMessage) -> AddressFlags {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Flags(f) => Some(*f),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(message.header.flags.bits())))
}

/// The interface's own address in an address message: `IFA_LOCAL`, or `IFA_ADDRESS` when
/// there is no separate local address (always so for IPv6, whose `IFA_ADDRESS` is the
/// address itself).
fn local_address(message: &AddressMessage) -> Option<IpAddr> {
    let find = |want_local: bool| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if want_local => Some(*ip),
            AddressAttribute::Address(ip) if !want_local => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

/// An add refused with EACCES for an IPv6 VIP means IPv6 is disabled on the interface
/// (Linux `addrconf_add_dev`), not a missing capability: [`VipError::Ipv6Disabled`].
fn ipv6_refused(e: VipError, vip: &IpCidr) -> VipError {
    match e {
        VipError::PermissionDenied {
            interface,
            operation,
            ..
        } if !vip.is_ipv4() && !lacks_net_admin() => VipError::Ipv6Disabled {
            interface,
            operation,
        },
        other => other,
    }
}

/// Whether this process lacks `CAP_NET_ADMIN` in its effective set (from
/// `/proc/self/status`, `CapEff`, bit 12); `false` when that cannot be read.
fn lacks_net_admin() -> bool {
    const CAP_NET_ADMIN_BIT: u32 = 12;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|eff| eff & (1 << CAP_NET_ADMIN_BIT) == 0)
}

/// `IFA_CACHEINFO` with valid = preferred = `lifetime` in whole seconds, rounded
/// up, at least 1, and below the kernel's "forever" value (`u32::MAX`).
pub(crate) fn cache_info(lifetime: Duration) -> CacheInfo {
    let secs = lifetime
        .as_secs()
        .saturating_add(u64::from(lifetime.subsec_nanos() > 0))
        .clamp(1, u64::from(u32::MAX - 1));
    let secs = u32::try_from(secs).unwrap_or(u32::MAX - 1);
    let mut info = CacheInfo::default();
    info.ifa_valid = secs;
    info.ifa_preferred = secs;
    info
}

/// Runs one netlink request with [`NETLINK_TIMEOUT`] and turns its failure into a
/// [`VipError`] naming the interface and the operation.
pub(super) async fn bounded<T>(
    interface: &str,
    operation: &str,
    request: impl Future<Output = Result<T, rtnetlink::Error>>,
) -> Result<T, VipError> {
    match tokio::time::timeout(NETLINK_TIMEOUT, request).await {
        Err(_) => Err(VipError::Timeout {
            interface: interface.to_string(),
            operation: operation.to_string(),
            after: NETLINK_TIMEOUT,
        }),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(classify(interface, operation, e)),
    }
}

/// The positive errno inside a netlink error answer, if it is one.
fn errno_of(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

/// Whether `error` is the kernel answering with `errno`.
fn is_errno(error: &VipError, errno: i32) -> bool {
    matches!(error, VipError::Netlink { source, .. } if errno_of(source) == Some(errno))
}

/// Maps a kernel answer to the variant an operator can act on.
fn classify(interface: &str, operation: &str, error: rtnetlink::Error) -> VipError {
    match errno_of(&error) {
        Some(libc::EPERM) | Some(libc::EACCES) => VipError::PermissionDenied {
            interface: interface.to_string(),
            operation: operation.to_string(),
            capability: CAP_NET_ADMIN,
        },
        Some(libc::ENODEV) => VipError::InterfaceNotFound {
            interface: interface.to_string(),
        },
        _ => VipError::Netlink {
            interface: interface.to_string(),
            operation: operation.to_string(),
            source: error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::ErrorMessage;
    use std::num::NonZeroI32;

    fn nl_error(errno: i32) -> rtnetlink::Error {
        let mut message = ErrorMessage::default();
        message.code = NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(message)
    }

    #[test]
    fn lifetime_is_rounded_up_to_whole_seconds_and_at_least_one() {
        let secs = |d| {
            let c = cache_info(d);
            assert_eq!(c.ifa_valid, c.ifa_preferred);
            c.ifa_valid
        };
        assert_eq!(secs(Duration::from_secs(2)), 2);
        assert_eq!(secs(Duration::from_millis(2001)), 3);
        assert_eq!(secs(Duration::from_millis(10)), 1);
        assert_eq!(secs(Duration::ZERO), 1);
        // Never the kernel's "forever" marker.
        assert_eq!(secs(Duration::from_secs(u64::MAX)), u32::MAX - 1);
    }

    #[test]
    fn permission_errors_name_the_interface_and_capability() {
        let e = classify("eth0", "add 192.0.2.100/24", nl_error(libc::EPERM));
        let text = e.to_string();
        assert!(matches!(e, VipError::PermissionDenied { .. }), "{e:?}");
        assert!(
            text.contains("eth0") && text.contains("CAP_NET_ADMIN"),
            "{text}"
        );
    }

    #[test]
    fn missing_device_means_interface_not_found() {
        let e = classify("eth9", "look up interface", nl_error(libc::ENODEV));
        assert_eq!(e.to_string(), "interface eth9 not found");
    }

    #[test]
    fn absent_address_is_recognised_for_idempotent_delete() {
        let e = classify(
            "eth0",
            "delete 192.0.2.100/24",
            nl_error(libc::EADDRNOTAVAIL),
        );
        assert!(is_errno(&e, libc::EADDRNOTAVAIL));
        assert!(e.to_string().contains("eth0"), "{e}");
        let other = classify("eth0", "delete 192.0.2.100/24", nl_error(libc::EINVAL));
        assert!(!is_errno(&other, libc::EADDRNOTAVAIL));
    }

    #[test]
    fn local_address_is_preferred_over_peer_address() {
        let mut m = AddressMessage::default();
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(
                192, 0, 2, 9,
            ))));
        assert_eq!(
            local_address(&m),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)))
        );
        m.attributes
            .push(AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(
                192, 0, 2, 100,
            ))));
        assert_eq!(
            local_address(&m),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)))
        );
    }

    #[tokio::test]
    async fn attributes_are_matched_by_address_and_prefix() {
        let vip: IpCidr = "192.0.2.100/24".parse().unwrap();
        let other: IpCidr = "192.0.2.100/32".parse().unwrap();
        let Ok(mut m) = VipManager::open("lo", vec![vip, other], None).await else {
            return; // no netlink here: nothing to check
        };
        assert_eq!(m.attributes_of(&vip), (None, VipScope::Global));
        m.set_attributes(&[VipSpec {
            cidr: vip,
            interface: "lo".into(),
            label: Some("lo:vip".into()),
            scope: VipScope::Link,
        }]);
        assert_eq!(m.attributes_of(&vip), (Some("lo:vip"), VipScope::Link));
        assert_eq!(m.attributes_of(&other), (None, VipScope::Global));
    }

    fn assert_send<T: Send>(_: &T) {}

    #[allow(dead_code)]
    fn futures_are_send(m: &mut VipManager) {
        // The daemon drives these from spawned tasks.
        assert_send(&m.installed());
        assert_send(&m.remove_stale());
        assert_send(&m.install());
        assert_send(&m.refresh());
        assert_send(&m.release());
        assert_send(&VipManager::open("eth0", Vec::new(), None));
    }
}
