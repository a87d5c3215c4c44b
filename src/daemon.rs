//! The daemon loop: the one place that owns sockets, the clock and the netlink handle.
//!
//! It feeds the pure [`Election`] with time, peer adverts and signals, and carries out the
//! actions it returns: send adverts over QUIC, install or release the VIPs with netlink,
//! announce them with gratuitous ARP, log transitions and run notify hooks.
//!
//! ```text
//!  transport task(s) ──TransportEvent──┐
//!  timer (election.next_deadline) ─────┼──> daemon loop ──> Election::handle(now, input)
//!  shutdown signal ────────────────────┘          │
//!                     actions: Send ─> Transport::broadcast
//!                              InstallVips / ReleaseVips ─> VipManager (rtnetlink)
//!                              Announce ─> Announcer (pnet GARP burst + refresh)
//!                              Transition ─> log + Notifier
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::certs::{self, CertError};
use crate::config::Config;
use crate::election::{Action, Election, ElectionConfig, Input};
use crate::notify::{Hooks, Notifier, TransitionEvent};
use crate::transport::{PeerSpec, Transport, TransportConfig, TransportError, TransportEvent};
use crate::vip::{Announcer, GarpSender, VipError, VipManager};
use crate::wire::{self, Advert, State};

/// Why the agent could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Certificates or key unusable.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The VIP interface or netlink is unusable.
    #[error(transparent)]
    Vip(#[from] VipError),
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Runs the agent until `shutdown` completes, then hands over gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let identity = certs::load_identity(
        &config.tls.ca,
        &config.tls.cert,
        &config.tls.key,
        SystemTime::now(),
    )?;
    if !identity.names.iter().any(|n| n == &config.node.name) {
        tracing::warn!(
            node = %config.node.name,
            cert = %config.tls.cert.display(),
            names = ?identity.names,
            "this node's certificate does not carry its own name; peers configured by name will reject it"
        );
    }

    let vips = VipManager::open(&config.node.interface, config.vips.clone(), None).await?;
    for stale in vips.remove_stale().await? {
        tracing::warn!(vip = %stale, interface = %config.node.interface,
            "removed VIP left on the interface (stale from an earlier crash) before joining");
    }
    let garp = GarpSender::open(&config.node.interface)?;
    let announcer = Announcer::spawn(
        garp,
        config.vips.iter().map(|v| v.addr).collect(),
        config.garp.count,
        config.garp.spread,
        config.garp.refresh,
    );

    let peers: Vec<PeerSpec> = config
        .peers
        .iter()
        .map(|p| PeerSpec {
            name: p.name.clone(),
            addr: p.address,
        })
        .collect();
    let (transport, events) = Transport::start(TransportConfig {
        listen: config.node.listen,
        peers: peers.clone(),
        identity: Arc::new(identity),
    })
    .await?;
    tracing::info!(
        node = %config.node.name,
        priority = config.node.priority,
        listen = %transport.local_addr(),
        interface = %config.node.interface,
        vips = %vip_list(&config),
        peers = config.peers.len(),
        "haagent started"
    );

    let notifier = Notifier::new(
        Hooks {
            every: config.notify.command.clone(),
            master: config.notify.master.clone(),
            backup: config.notify.backup.clone(),
            fault: config.notify.fault.clone(),
            stop: config.notify.stop.clone(),
            timeout: config.notify.timeout,
        },
        config.node.name.clone(),
        vip_list(&config),
    );
    let election = Election::new(
        ElectionConfig {
            name: config.node.name.clone(),
            priority: config.node.priority,
            advert_interval: config.election.advert_interval,
            down_multiplier: config.election.down_multiplier,
            preempt: config.election.preempt,
            preempt_delay: config.election.preempt_delay,
        },
        Instant::now(),
    );
    let mut daemon = Daemon {
        name: config.node.name.clone(),
        election,
        transport,
        vips,
        announcer,
        notifier,
        peers,
        interval_ms: config.election.advert_interval.as_millis(),
        bad_datagrams: HashSet::new(),
        hook_tasks: Vec::new(),
        counters: Counters::default(),
    };
    daemon.run_loop(events, shutdown).await;
    Ok(())
}

fn vip_list(config: &Config) -> String {
    config
        .vips
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts of events that are logged once but must not be lost (later exported as metrics).
#[derive(Debug, Default)]
struct Counters {
    adverts_sent: u64,
    adverts_received: u64,
    rejected: HashMap<String, u64>,
}

struct Daemon {
    name: String,
    election: Election,
    transport: Transport,
    vips: VipManager,
    announcer: Announcer,
    notifier: Notifier,
    peers: Vec<PeerSpec>,
    interval_ms: u128,
    /// (peer, problem) pairs already logged, so a misbehaving peer cannot flood the log.
    bad_datagrams: HashSet<(usize, String)>,
    hook_tasks: Vec<tokio::task::JoinHandle<()>>,
    counters: Counters,
}

impl Daemon {
    async fn run_loop(
        &mut self,
        mut events: tokio::sync::mpsc::Receiver<TransportEvent>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        self.step(Input::Start).await;
        loop {
            let deadline = self.election.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                event = events.recv() => match event {
                    Some(event) => self.on_transport_event(event).await,
                    None => {
                        tracing::error!("transport stopped unexpectedly; shutting down");
                        break;
                    }
                },
                () = sleep => self.step(Input::Timeout).await,
            }
        }
        self.step(Input::Shutdown).await;
        self.announcer.stop();
        // Make sure the VIPs are gone even if we were not master by the election's account
        // (e.g. an install that half-failed).
        if let Err(e) = self.vips.release().await {
            tracing::error!(error = %e, "could not remove the VIPs while stopping");
        }
        self.transport.close().await;
        for task in self.hook_tasks.drain(..) {
            // Each hook task ends by itself at its own timeout.
            let _ = task.await;
        }
        tracing::info!(
            adverts_sent = self.counters.adverts_sent,
            adverts_received = self.counters.adverts_received,
            rejected = ?self.counters.rejected,
            "haagent stopped"
        );
    }

    async fn on_transport_event(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Datagram {
                peer,
                names,
                payload,
            } => match self.accept_advert(peer, &names, &payload) {
                Ok(advert) => {
                    self.counters.adverts_received += 1;
                    self.step(Input::Advert(advert)).await;
                }
                Err(problem) => {
                    *self.counters.rejected.entry("bad_advert".into()).or_default() += 1;
                    if self.bad_datagrams.insert((peer, problem.clone())) {
                        tracing::warn!(peer = %self.peer_label(peer), %problem,
                            "ignoring advert (logged once per peer and problem)");
                    }
                }
            },
            TransportEvent::Rejected { source, reason } => {
                // The transport logs each source once; here it is only counted.
                *self.counters.rejected.entry(reason_kind(&reason)).or_default() += 1;
                tracing::debug!(%source, %reason, "connection rejected");
            }
            TransportEvent::Up { peer, remote } => {
                tracing::info!(peer = %self.peer_label(peer), %remote, "peer connected");
            }
            TransportEvent::Down { peer, reason } => {
                tracing::info!(peer = %self.peer_label(peer), %reason, "peer connection closed");
            }
        }
    }

    /// Decodes a datagram and checks that the advert speaks for the peer whose certificate
    /// carried it, so one node cannot advertise in another's name.
    fn accept_advert(
        &mut self,
        peer: usize,
        cert_names: &[String],
        payload: &[u8],
    ) -> Result<Advert, String> {
        let advert = wire::decode(payload).map_err(|e| format!("malformed advert: {e}"))?;
        let spec = self
            .peers
            .get(peer)
            .ok_or_else(|| format!("datagram from unknown peer index {peer}"))?;
        let allowed = match &spec.name {
            Some(name) => &advert.name == name,
            None => cert_names.iter().any(|n| n == &advert.name),
        };
        if !allowed {
            return Err(format!(
                "advert names itself `{}`, which its certificate {:?} does not vouch for",
                advert.name, cert_names
            ));
        }
        if advert.name == self.name {
            return Err(format!("advert carries our own name `{}`", advert.name));
        }
        if u128::from(advert.advert_interval_ms) != self.interval_ms {
            let problem = format!(
                "advert interval {} ms differs from ours ({} ms): timers should match across the cluster",
                advert.advert_interval_ms, self.interval_ms
            );
            if self.bad_datagrams.insert((peer, problem.clone())) {
                tracing::warn!(peer = %advert.name, %problem, "configuration differs between peers");
            }
        }
        Ok(advert)
    }

    fn peer_label(&self, peer: usize) -> String {
        match self.peers.get(peer) {
            Some(PeerSpec {
                name: Some(name), ..
            }) => name.clone(),
            Some(PeerSpec { addr, .. }) => addr.to_string(),
            None => format!("#{peer}"),
        }
    }

    /// Feeds one input to the election and carries out every action, including the inputs
    /// that carrying them out produces (a failed VIP install becomes a Fault).
    async fn step(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let stopping = matches!(input, Input::Shutdown);
            let actions = self.election.handle(Instant::now(), input);
            for action in actions {
                if let Some(follow_up) = self.execute(action, stopping).await {
                    inputs.push_back(follow_up);
                }
            }
        }
    }

    async fn execute(&mut self, action: Action, stopping: bool) -> Option<Input> {
        match action {
            Action::Send(advert) => {
                self.counters.adverts_sent += 1;
                self.transport.broadcast(wire::encode(&advert).into());
                None
            }
            Action::InstallVips => match self.vips.install().await {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(error = %e, "could not install the VIPs");
                    Some(Input::Fault {
                        reason: format!("VIP install failed: {e}"),
                    })
                }
            },
            Action::Announce => {
                self.announcer.announce();
                None
            }
            Action::ReleaseVips => {
                self.announcer.stop();
                if let Err(e) = self.vips.release().await {
                    tracing::error!(error = %e, "could not remove the VIPs");
                }
                None
            }
            Action::Transition {
                from,
                to,
                epoch,
                reason,
            } => {
                if to == State::Master || from == State::Master || to == State::Fault {
                    tracing::warn!(from = %from, to = %to, epoch, "{reason}");
                } else {
                    tracing::info!(from = %from, to = %to, epoch, "{reason}");
                }
                let tasks = self.notifier.fire(&TransitionEvent {
                    from,
                    to,
                    epoch,
                    reason: &reason,
                    stopping,
                });
                self.hook_tasks.retain(|t| !t.is_finished());
                self.hook_tasks.extend(tasks);
                None
            }
        }
    }
}

fn reason_kind(reason: &str) -> String {
    reason
        .split([':', '('])
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string()
}
