//! A host that answers ARP itself, as some cloud networks do: every ARP request for an
//! address it is not told to spare gets a reply "ADDRESS is at MY_MAC", RFC 5227 probes
//! (sender 0.0.0.0) included. Gratuitous requests (sender = target) and replies are not
//! answered, as a fabric does not answer announcements.
//!
//! The real hosts' own addresses are spared so that node-to-node traffic keeps reaching
//! the nodes on this one bridge (a cloud fabric routes instead; here a reply with the
//! responder's MAC would black-hole the peers' QUIC). The VIP and every unused address are
//! answered.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pnet_datalink::Channel;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::{MutablePacket, Packet};

/// The responder thread; stopped and joined on drop.
pub struct ArpResponder {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl ArpResponder {
    /// Starts answering on `eth0` of the namespace `netns`, for every address but `spare`.
    pub fn start(netns: &str, spare: Vec<Ipv4Addr>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/var/run/netns/{netns}");
        let thread = {
            let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
            std::thread::spawn(move || {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: valid namespace fd; only this thread switches.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                serve(&stop, &answered, &spare, ready_tx);
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the ARP responder opened its socket");
        Self {
            stop,
            answered,
            thread: Some(thread),
        }
    }

    /// Replies sent so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for ArpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stop: &AtomicBool,
    answered: &AtomicU64,
    spare: &[Ipv4Addr],
    ready: std::sync::mpsc::Sender<()>,
) {
    let iface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == "eth0")
        .expect("eth0 in the responder's namespace");
    let own = iface.mac.expect("eth0 has a MAC");
    let config = pnet_datalink::Config {
        read_timeout: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let Ok(Channel::Ethernet(mut tx, mut rx)) = pnet_datalink::channel(&iface, config) else {
        panic!("no ethernet channel on eth0");
    };
    let _ = ready.send(());
    while !stop.load(Ordering::Relaxed) {
        let Ok(frame) = rx.next() else { continue };
        let Some(eth) = EthernetPacket::new(frame) else {
            continue;
        };
        if eth.get_ethertype() != EtherTypes::Arp || eth.get_source() == own {
            continue;
        }
        let Some(arp) = ArpPacket::new(eth.payload()) else {
            continue;
        };
        let target = arp.get_target_proto_addr();
        if arp.get_operation() != ArpOperations::Request
            || arp.get_sender_proto_addr() == target
            || spare.contains(&target)
        {
            continue;
        }
        let mut reply = vec![0u8; 42];
        {
            let mut e = MutableEthernetPacket::new(&mut reply).expect("42 bytes");
            e.set_destination(arp.get_sender_hw_addr());
            e.set_source(own);
            e.set_ethertype(EtherTypes::Arp);
            let mut a = MutableArpPacket::new(e.payload_mut()).expect("28 bytes");
            a.set_hardware_type(ArpHardwareTypes::Ethernet);
            a.set_protocol_type(EtherTypes::Ipv4);
            a.set_hw_addr_len(6);
            a.set_proto_addr_len(4);
            a.set_operation(ArpOperations::Reply);
            a.set_sender_hw_addr(own);
            a.set_sender_proto_addr(target);
            a.set_target_hw_addr(arp.get_sender_hw_addr());
            a.set_target_proto_addr(arp.get_sender_proto_addr());
        }
        if let Some(Ok(())) = tx.send_to(&reply, None) {
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
