//! Deterministic simulation: whole clusters of [`Election`]s on a virtual clock.
//!
//! A [`Cluster`] owns N nodes of G elections each (one per VIP group, see below) and a
//! message queue. Every `Send` goes to every other node after a delay drawn from a seeded
//! PRNG (`0..=max_delay`, FIFO per link, as datagrams on one QUIC path), may be lost with
//! probability `loss`, and is dropped when the two nodes are on different sides of a
//! partition (checked at send and at delivery). Nodes can be killed (silently),
//! restarted, shut down gracefully, faulted and cleared. [`Cluster::step`] advances to the
//! earliest delivery or deadline, feeds it in, applies the actions (tracking who holds the
//! VIPs) and then runs [`Cluster::check`], which records every invariant violation.
//!
//! # Invariants checked after every step
//!
//! With `max_delay` = the largest delivery delay and `interval` = the advert interval:
//!
//! 1. **No lasting split brain.** Two live nodes in the same partition group are never both
//!    holding the VIPs for longer than `interval + max_delay` (when there is no loss; with loss
//!    "can hear each other" is not true, so this is not checked while `loss > 0`). Reason: the
//!    loser of the `(epoch, rank)` comparison steps down on the first advert of the winner,
//!    and every master advertises at least once per interval (at once when it takes over).
//!    This also covers partition heals: the stale master steps down (or the other does)
//!    within that bound; with preempt it may take over again later, which is a new, equally
//!    short episode.
//! 2. **Never masterless for long.** A partition group with a live backup or master always
//!    has a VIP holder again within `master-down(lowest priority) + interval + max_delay`
//!    (loss or not: a backup's timer is only ever reset by a master's advert).
//! 3. **Failover bound.** When the VIP holder is killed, some node of its group holds the VIPs
//!    within `master-down(highest-priority survivor) + interval + max_delay`.
//! 4. **Graceful handover.** When the sole master shuts down (no loss, every survivor of its
//!    group following it), the highest-ranked survivor holds the VIPs within
//!    `max_delay + its skew`. If the skews of the best two survivors differ by more than
//!    `2 × max_delay`, no other survivor becomes master at all.
//! 5. **No flapping.** After heal, restart, fault clearing and with no loss, the cluster
//!    converges, and over a long window afterwards no node changes state, exactly one node
//!    holds the VIPs, everyone agrees who it is, and with preempt on it is the top-ranked node.
//!
//! Also: a live node holds the VIPs exactly when it is in state Master (the actions and the
//! state agree). The `checker_*` tests break a node on purpose and show each check firing.
//!
//! # The split-brain layers
//!
//! Most seeds also switch on some of the layers, each at random: the ARP probe before
//! claiming, quorum, the gateway witness and conflicts on the wire. The sim then models L2
//! apart from peer traffic: each node has an advert group (who hears whose adverts) and an
//! L2 group (whose ARP reaches whom; the gateway sits in L2 group 0). A partition splits
//! both; "peer traffic blocked" splits only the adverts. A probe (after its window) is
//! answered by any holder in the prober's L2 group; every announcement reaches the other
//! nodes of its L2 group as a conflict; the witness reports, after `fall` intervals, whether
//! the node's L2 group has the gateway. A rogue host forges claims (unknown MACs, live
//! members' MACs); operators hand over, toggle maintenance and stop nodes gracefully.
//! The invariants above then hold for "groups that need a holder" (quorum reachable, not
//! isolated, no holder answering probes from elsewhere on the same L2), and two more hold:
//!
//! 6. **Nodes on one L2 never hold together for long** (probe and conflicts on, no loss),
//!    even when their adverts cannot reach each other: within
//!    `2 × interval + probe window + 2 × max_delay`.
//! 7. **An isolated node lets go.** With the witness on, a holder whose L2 group has no
//!    gateway and whose advert group has no other live node holds for at most
//!    master-down + `fall + 1` intervals + `max_delay`.
//! 8. **A forged frame never moves the VIPs away from a live, heard master** when it
//!    carries an unknown MAC or the MAC of a live member that advertises backup.
//!
//! # Several VIP groups per node
//!
//! About half the seeds run G = 2..=4 groups per node (issue 11): per node one [`Election`]
//! per group, each with its own priority (drawn independently per group; in 30 % of these
//! seeds one node is the best in every group) and its own VIPs, on interface 0 or, in half
//! of these seeds, on interface 0 or 1 per group. Node-wide facts are shared as the daemon
//! shares them: a kill or graceful shutdown ends every group (a graceful stop hands each
//! mastered group over), a restart starts every group, the witness verdict goes to every
//! group, a link loss faults exactly the groups on that interface (also after a restart),
//! partitions and blocked adverts cut the node's traffic as a whole. The adverts one node
//! emits while one event is processed travel in **one datagram** per peer (wire v2): one
//! loss draw, one delay, one side check for all of them; a second advert of a group
//! already in it starts a new datagram. A probe, an announcement and a forged frame
//! concern one group's VIPs, a handover, a maintenance toggle or a health fault one group
//! or all of them. The node runs one timer: when any group's deadline comes, every group
//! gets [`Input::Timeout`]. Everything about groups comes from a second PRNG, so a seed
//! with one group runs exactly the scenario it ran before groups existed (checked: same
//! steps, transitions and log for all of them).
//!
//! Every invariant above is checked per group (holders, pairs, failover and handover
//! deadlines, gaps, isolation, forged frames, the quiet window with each group's own
//! top-ranked node), and one more holds:
//!
//! 9. **Groups do not disturb each other.** An election never acts (no transition, no
//!    advert, no VIP change) on an input that does not concern its group: a timeout that
//!    came for another group's deadline, or (with the `CrossTalk` break) another group's
//!    advert. And when one node is the top-ranked in every group and everyone preempts,
//!    that node holds every group after the quiet window.
//!
//! A group's checks are skipped after a step that changed nothing they read (no holder,
//! state or election change in that group, no topology or loss change) unless one of its
//! episodes is open: that changes no verdict (checked: identical statistics over the 1200
//! seeds) and keeps the sweep as fast as before.

use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How a node is broken on purpose, to show that the checker can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    No,
    /// Drops every advert it receives.
    Deaf,
    /// Drops priority-0 adverts (misses graceful handovers).
    IgnoresBye,
    /// Ignores ARP: never probes before claiming, never hears a conflict.
    NoArp,
    /// Never gets a witness verdict.
    NoWitness,
    /// Feeds every group entry of a datagram to every one of its groups (mixes the groups up).
    CrossTalk,
}

/// One node's election in one VIP group.
struct Member {
    cfg: ElectionConfig,
    e: Option<Election>,
    holds: bool,
    /// `e.next_deadline()`, refreshed after every input (it changes only then).
    deadline: Option<Instant>,
}

struct Node {
    /// One per VIP group, in group order; node-wide facts reach every one.
    g: Vec<Member>,
    /// Advert side: nodes hear each other's datagrams only within one.
    side: u8,
    /// L2 group: ARP (probes, announcements) reaches only within one; the gateway is in 0.
    l2: u8,
    /// Per interface: its link is down (every group on it is faulted).
    link_down: Vec<bool>,
    broken: Broken,
}

/// What travels between nodes (or comes back to one) in the sim.
enum Payload {
    /// One datagram: some of the sender's groups' adverts, as `(group, advert)`; delivered or
    /// lost as a whole (wire v2: one datagram per peer carries every group's entry).
    Datagram(Vec<(usize, Advert)>),
    /// The node's ARP probe window for this group's VIPs ends: answered by any holder of
    /// them on its L2.
    ProbeDone(usize),
    /// An announcement of this group's VIPs from `from` (its MAC) reaches this node's ARP
    /// watch.
    Conflict(usize, [u8; 6]),
    /// The witness's verdict (node-wide: every group gets it).
    Witness(bool),
}

struct Msg {
    at: Instant,
    id: u64,
    from: usize,
    to: usize,
    payload: Payload,
}

/// The datagram a node is filling while one event is processed: the groups it carries and
/// the queued copy per peer (by message id; none where it was lost or cut).
struct Outbox {
    from: usize,
    groups: Vec<usize>,
    ids: Vec<u64>,
}

/// Which split-brain layers a seed switches on.
#[derive(Debug, Default, Clone, Copy)]
struct Layers {
    probe: bool,
    quorum: bool,
    witness: bool,
    conflicts: bool,
}

/// Something that must have happened by `deadline`.
enum Expect {
    /// Some node of `side` holds the VIPs of group `g`.
    Failover {
        g: usize,
        side: u8,
        deadline: Instant,
    },
    /// `winner` holds group `g`'s VIPs; if `exclusive`, nobody else becomes master of `g`
    /// until `until`.
    Handover {
        g: usize,
        winner: usize,
        deadline: Instant,
        exclusive: bool,
        until: Instant,
        done: bool,
    },
}

/// Counts of what the scenarios exercised, so the sweep can show it is not vacuous.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    takeovers: u64,
    preemptions: u64,
    stale_stepdowns: u64,
    rank_stepdowns: u64,
    dual_episodes: u64,
    partitions: u64,
    heals: u64,
    failovers_checked: u64,
    handovers_checked: u64,
    exclusive_handovers: u64,
    faults: u64,
    quiet_windows: u64,
    steps: u64,
    layered_seeds: u64,
    probes: u64,
    probes_answered: u64,
    quorum_refusals: u64,
    quorum_stepdowns: u64,
    isolations: u64,
    conflicts_delivered: u64,
    conflict_stepdowns: u64,
    forged: u64,
    handovers: u64,
    maintenance: u64,
    graceful_stops: u64,
    adverts_blocked: u64,
    multi_group_seeds: u64,
    /// Datagrams that carried more than one group's advert.
    shared_datagrams: u64,
    /// Timeouts fed to a group none of whose deadlines had come (another group's had).
    foreign_timeouts: u64,
    link_faults: u64,
    /// Operations aimed at one group only (fault, forged frame, handover, maintenance).
    group_ops: u64,
    /// Quiet windows where one node was top-ranked in every group of several.
    top_everywhere: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Self) {
        self.steps += o.steps;
        self.layered_seeds += o.layered_seeds;
        self.probes += o.probes;
        self.probes_answered += o.probes_answered;
        self.quorum_refusals += o.quorum_refusals;
        self.quorum_stepdowns += o.quorum_stepdowns;
        self.isolations += o.isolations;
        self.conflicts_delivered += o.conflicts_delivered;
        self.conflict_stepdowns += o.conflict_stepdowns;
        self.forged += o.forged;
        self.handovers += o.handovers;
        self.maintenance += o.maintenance;
        self.graceful_stops += o.graceful_stops;
        self.adverts_blocked += o.adverts_blocked;
        self.takeovers += o.takeovers;
        self.preemptions += o.preemptions;
        self.stale_stepdowns += o.stale_stepdowns;
        self.rank_stepdowns += o.rank_stepdowns;
        self.dual_episodes += o.dual_episodes;
        self.partitions += o.partitions;
        self.heals += o.heals;
        self.failovers_checked += o.failovers_checked;
        self.handovers_checked += o.handovers_checked;
        self.exclusive_handovers += o.exclusive_handovers;
        self.faults += o.faults;
        self.quiet_windows += o.quiet_windows;
        self.multi_group_seeds += o.multi_group_seeds;
        self.shared_datagrams += o.shared_datagrams;
        self.foreign_timeouts += o.foreign_timeouts;
        self.link_faults += o.link_faults;
        self.group_ops += o.group_ops;
        self.top_everywhere += o.top_everywhere;
    }
}

/// Node `i`'s MAC on interface `iface`.
fn mac_of(i: usize, iface: u8) -> [u8; 6] {
    [2, 0, 0, 0, iface, u8::try_from(i).unwrap_or(0xff)]
}

struct Cluster {
    now: Instant,
    base: Instant,
    rng: SmallRng,
    nodes: Vec<Node>,
    /// The interface of each VIP group (an index into `Node::link_down`).
    iface: Vec<u8>,
    queue: Vec<Msg>,
    next_id: u64,
    link_last: Vec<Vec<Instant>>,
    outbox: Option<Outbox>,
    loss: f64,
    max_delay: Duration,
    interval: Duration,
    down_multiplier: u32,
    /// Pairs both holding one group's VIPs on one side: since when, and whether reported.
    dual_since: BTreeMap<(usize, usize, usize), (Instant, bool)>,
    /// (group, side) without a holder.
    masterless_since: BTreeMap<(usize, u8), (Instant, bool)>,
    /// Pairs on one L2 both holding one group's VIPs (invariant 6).
    l2_dual_since: BTreeMap<(usize, usize, usize), (Instant, bool)>,
    /// Isolated holders per group (invariant 7).
    isolated_since: BTreeMap<(usize, usize), (Instant, bool)>,
    layers: Layers,
    probe_window: Duration,
    /// The witness verdict last scheduled for each node.
    witness_reported: Vec<Option<bool>>,
    expects: Vec<Expect>,
    /// Per group: something its check depends on may have changed since the last check
    /// (a holder, a state, an election started or gone, the topology, the loss).
    dirty: Vec<bool>,
    transitions: u64,
    log: Vec<String>,
    violations: Vec<String>,
    stats: Stats,
}

impl Cluster {
    /// One group: a cluster of not yet started nodes named n0, n1, … with these priorities.
    fn new(seed: u64, priorities: &[u8], interval: Duration, max_delay: Duration) -> Self {
        Self::with_groups(seed, &[priorities.to_vec()], &[0], interval, max_delay)
    }

    /// `priorities[g][i]` = node i's priority in group g; group g's VIPs are on interface
    /// `iface[g]`.
    fn with_groups(
        seed: u64,
        priorities: &[Vec<u8>],
        iface: &[u8],
        interval: Duration,
        max_delay: Duration,
    ) -> Self {
        let base = Instant::now();
        let n = priorities[0].len();
        let ifaces = usize::from(iface.iter().copied().max().unwrap_or(0)) + 1;
        let nodes = (0..n)
            .map(|i| Node {
                g: priorities
                    .iter()
                    .zip(iface)
                    .map(|(p, &k)| Member {
                        cfg: ElectionConfig {
                            name: format!("n{i}"),
                            priority: p[i],
                            advert_interval: interval,
                            down_multiplier: DEFAULT_DOWN_MULTIPLIER,
                            preempt: true,
                            preempt_delay: Duration::ZERO,
                            mac: mac_of(i, k),
                            // Peer traffic and L2 are not modelled apart here; the probe,
                            // quorum and witness rules have their own tests.
                            probe: false,
                            cluster_size: n,
                            quorum: false,
                            fingerprint: [0; 4],
                            foreign_holder_timeout: None,
                            probe_window: interval.min(ms_(30)),
                        },
                        e: None,
                        holds: false,
                        deadline: None,
                    })
                    .collect(),
                side: 0,
                l2: 0,
                link_down: vec![false; ifaces],
                broken: Broken::No,
            })
            .collect();
        Cluster {
            now: base,
            base,
            rng: SmallRng::seed_from_u64(seed),
            nodes,
            iface: iface.to_vec(),
            queue: Vec::new(),
            next_id: 0,
            link_last: vec![vec![base; n]; n],
            outbox: None,
            loss: 0.0,
            max_delay,
            interval,
            down_multiplier: DEFAULT_DOWN_MULTIPLIER,
            dual_since: BTreeMap::new(),
            masterless_since: BTreeMap::new(),
            l2_dual_since: BTreeMap::new(),
            isolated_since: BTreeMap::new(),
            layers: Layers::default(),
            probe_window: interval.min(ms_(30)),
            witness_reported: vec![None; n],
            expects: Vec::new(),
            dirty: vec![true; priorities.len()],
            transitions: 0,
            log: Vec::new(),
            violations: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn groups(&self) -> usize {
        self.iface.len()
    }

    /// Every election of every node, to adjust configurations before start.
    fn cfgs_mut(&mut self) -> impl Iterator<Item = &mut ElectionConfig> {
        self.nodes
            .iter_mut()
            .flat_map(|n| n.g.iter_mut().map(|m| &mut m.cfg))
    }

    /// Switches split-brain layers on for every node (before they start).
    fn set_layers(&mut self, layers: Layers) {
        self.layers = layers;
        for cfg in self.cfgs_mut() {
            cfg.probe = layers.probe;
            cfg.quorum = layers.quorum;
        }
    }

    /// "n3" with one group, "n3/g1" with several: who did something in the log.
    fn tag(&self, i: usize, g: usize) -> String {
        if self.groups() == 1 {
            format!("n{i}")
        } else {
            format!("n{i}/g{g}")
        }
    }

    fn schedule(&mut self, from: usize, to: usize, delay: Duration, payload: Payload) {
        let at = self.now + delay;
        self.queue.push(Msg {
            at,
            id: self.next_id,
            from,
            to,
            payload,
        });
        self.next_id += 1;
    }

    fn random_delay(&mut self) -> Duration {
        let max_us = self.max_delay.as_micros() as u64;
        Duration::from_micros(self.rng.random_range(0..=max_us))
    }

    /// Schedules a witness verdict for every live node whose gateway reachability changed
    /// (the gateway is on L2 group 0), `fall` (3) intervals later.
    fn update_witness(&mut self) {
        if !self.layers.witness {
            return;
        }
        for i in 0..self.nodes.len() {
            if !self.alive(i) {
                self.witness_reported[i] = None;
                continue;
            }
            let reachable = self.nodes[i].l2 == 0;
            if self.witness_reported[i] != Some(reachable) {
                self.witness_reported[i] = Some(reachable);
                let delay = self.interval * 3;
                self.schedule(i, i, delay, Payload::Witness(reachable));
            }
        }
    }

    /// A group whose graceful stop has finished leaves.
    fn reap(&mut self, i: usize, g: usize) {
        let m = &mut self.nodes[i].g[g];
        if m.e.as_ref().is_some_and(Election::stopped) {
            m.e = None;
            m.holds = false;
            self.dirty[g] = true;
            let line = format!("{} {} stopped", self.t(), self.tag(i, g));
            self.log.push(line);
        }
    }

    /// Live elections of group `g` on `side` (they advertise, faulted or not).
    fn alive_in_side(&self, side: u8, g: usize) -> usize {
        self.side_members(side)
            .filter(|&j| self.alive_in(j, g))
            .count()
    }

    /// Whether group `g` on `side` must have a holder: it has an eligible node, it reaches
    /// quorum, it is not isolated, and no holder elsewhere answers its probes on L2.
    fn needs_holder(&self, side: u8, g: usize) -> bool {
        let eligible: Vec<usize> = self
            .side_members(side)
            .filter(|&j| self.eligible(j, g))
            .collect();
        if eligible.is_empty() {
            return false;
        }
        let alive = self.alive_in_side(side, g);
        if self.layers.quorum && alive < self.nodes.len() / 2 + 1 {
            return false;
        }
        if self.layers.witness && alive < 2 && eligible.iter().all(|&j| self.nodes[j].l2 != 0) {
            return false;
        }
        if self.layers.probe {
            let answered = (0..self.nodes.len()).any(|h| {
                self.holds(h, g)
                    && self.nodes[h].side != side
                    && eligible
                        .iter()
                        .any(|&j| self.nodes[j].l2 == self.nodes[h].l2)
            });
            if answered {
                return false;
            }
        }
        true
    }

    fn t(&self) -> String {
        format!("t={}", super::ms(self.now - self.base))
    }

    fn violation(&mut self, what: String) {
        let msg = format!("{} {what}", self.t());
        self.violations.push(msg);
    }

    /// Master-down as the spec says for `priority` (ignores any broken node config).
    fn spec_master_down(&self, priority: u8) -> Duration {
        self.interval * self.down_multiplier + skew_for(priority, self.interval)
    }

    /// Some election of node `i` runs (the process is up).
    fn alive(&self, i: usize) -> bool {
        self.nodes[i].g.iter().any(|m| m.e.is_some())
    }

    /// Node `i`'s election of group `g` runs.
    fn alive_in(&self, i: usize, g: usize) -> bool {
        self.nodes[i].g[g].e.is_some()
    }

    fn state(&self, i: usize, g: usize) -> Option<State> {
        self.nodes[i].g[g].e.as_ref().map(Election::state)
    }

    fn holds(&self, i: usize, g: usize) -> bool {
        self.nodes[i].g[g].holds
    }

    /// Who holds group `g`'s VIPs.
    fn holders(&self, g: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.holds(i, g))
            .collect()
    }

    fn rank_of(&self, i: usize, g: usize) -> Rank<'_> {
        Rank {
            priority: self.nodes[i].g[g].cfg.priority,
            name: &self.nodes[i].g[g].cfg.name,
        }
    }

    /// The top-ranked node of group `g`.
    fn top(&self, g: usize) -> Option<usize> {
        (0..self.nodes.len()).max_by(|&a, &b| self.rank_of(a, g).cmp(&self.rank_of(b, g)))
    }

    // ----- operations -----

    /// Starts every group of node `i` that does not run, then tells them which links are
    /// down (the daemon reads the carrier at start).
    fn start(&mut self, i: usize) {
        self.outbox = None;
        for g in 0..self.groups() {
            if self.alive_in(i, g) {
                continue;
            }
            let mut e = Election::new(self.nodes[i].g[g].cfg.clone(), self.now);
            let acts = e.handle(self.now, Input::Start);
            self.nodes[i].g[g].deadline = e.next_deadline();
            self.nodes[i].g[g].e = Some(e);
            self.dirty[g] = true;
            self.apply(i, g, acts);
        }
        self.witness_reported[i] = None;
        let down: Vec<u8> = (0..self.nodes[i].link_down.len())
            .filter(|&k| self.nodes[i].link_down[k])
            .filter_map(|k| u8::try_from(k).ok())
            .collect();
        for k in down {
            self.link(i, k, true);
        }
        self.update_witness();
        self.check();
    }

    /// Crash: no goodbye, every group's VIPs gone with the machine.
    fn kill(&mut self, i: usize) {
        let was_holder: Vec<bool> = self.nodes[i].g.iter().map(|m| m.holds).collect();
        for m in &mut self.nodes[i].g {
            m.e = None;
            m.holds = false;
        }
        self.dirty.fill(true);
        self.log.push(format!("{} kill n{i}", self.t()));
        let side = self.nodes[i].side;
        for (g, was) in was_holder.into_iter().enumerate() {
            if was
                && !self.holders(g).iter().any(|&h| self.nodes[h].side == side)
                && self.needs_holder(side, g)
            {
                self.expect_failover(side, g);
            }
        }
        self.check();
    }

    /// The longest a backup waits for a better live backup to claim before claiming itself
    /// (`Election::defer_to_better_backup`): that backup's master-down after we first heard
    /// it (at most the lowest priority's), its probe window and one interval for its advert
    /// to arrive, at least DEFER_TO_BETTER_BACKUP intervals; then our own probe. It is paid
    /// when that better one cannot claim (no quorum, say), and at a cold start.
    fn defer_bound(&self) -> Duration {
        let lowest = self
            .nodes
            .iter()
            .flat_map(|n| n.g.iter().map(|m| m.cfg.priority))
            .min()
            .unwrap_or(1);
        let turn =
            (self.spec_master_down(lowest) + self.probe_window + self.interval + self.max_delay)
                .max(self.interval * super::DEFER_TO_BETTER_BACKUP);
        turn + self.probe_window
    }

    fn expect_failover(&mut self, side: u8, g: usize) {
        let best = self
            .side_members(side)
            .filter(|&j| self.eligible(j, g))
            .map(|j| self.nodes[j].g[g].cfg.priority)
            .max();
        if let Some(p) = best {
            let defer = self.defer_bound();
            let deadline = self.now
                + self.spec_master_down(p)
                + self.interval
                + self.max_delay
                + self.probe_window
                + defer;
            self.expects.push(Expect::Failover { g, side, deadline });
        }
    }

    /// Graceful: Input::Shutdown to every group, their actions (the priority-0 adverts, in
    /// one datagram) applied, then gone.
    fn shutdown(&mut self, i: usize) {
        self.outbox = None;
        let sole_master: Vec<bool> = (0..self.groups())
            .map(|g| self.holds(i, g) && self.holders(g).len() == 1)
            .collect();
        let side = self.nodes[i].side;
        let name = self.nodes[i].g[0].cfg.name.clone();
        if !self.alive(i) {
            return;
        }
        self.log.push(format!("{} shutdown n{i}", self.t()));
        for g in 0..self.groups() {
            if let Some(e) = self.nodes[i].g[g].e.as_mut() {
                let acts = e.handle(self.now, Input::Shutdown);
                self.nodes[i].g[g].deadline = e.next_deadline();
                self.apply(i, g, acts);
            }
        }
        for m in &mut self.nodes[i].g {
            m.e = None;
        }
        self.dirty.fill(true);
        for (g, &sole) in sole_master.iter().enumerate() {
            if sole {
                self.expect_handover(side, g, &name);
            }
        }
        self.check();
    }

    /// Expects a handover in group `g` after its sole master `name` left, when the
    /// conditions of invariant 4 hold.
    fn expect_handover(&mut self, side: u8, g: usize, name: &str) {
        let mut survivors: Vec<usize> = self
            .side_members(side)
            .filter(|&j| self.alive_in(j, g))
            .collect();
        let all_follow = survivors.iter().all(|&j| {
            let e = self.nodes[j].g[g].e.as_ref();
            e.is_some_and(|e| e.state() == State::Backup && e.master() == Some(name))
        });
        let quorum_ok = !self.layers.quorum || survivors.len() > self.nodes.len() / 2;
        // A lone survivor that the witness reports isolated must not take the VIPs
        // (invariant 7), handover or not.
        let may_hold = self.needs_holder(side, g);
        if self.loss > 0.0 || survivors.is_empty() || !all_follow || !quorum_ok || !may_hold {
            return;
        }
        survivors.sort_by(|&a, &b| self.rank_of(b, g).cmp(&self.rank_of(a, g)));
        let skew = |j: usize| skew_for(self.nodes[j].g[g].cfg.priority, self.interval);
        let winner = survivors[0];
        let exclusive = survivors
            .get(1)
            .is_none_or(|&s| skew(s) > skew(winner) + self.max_delay * 2);
        let e = self.nodes[winner].g[g].e.as_ref();
        let others: Vec<&str> = survivors[1..]
            .iter()
            .map(|&s| self.nodes[s].g[g].cfg.name.as_str())
            .collect();
        if exclusive
            || e.is_some_and(|e| {
                e.may_preempt(self.now) && others.iter().all(|n| e.contact_proven(self.now, n))
            })
        {
            let deadline = self.now + self.max_delay + skew(winner);
            self.expects.push(Expect::Handover {
                g,
                winner,
                deadline,
                exclusive,
                until: deadline + self.max_delay * 2,
                done: false,
            });
        }
    }

    /// A node-wide input: to every group of node `i`, in one event.
    fn input(&mut self, i: usize, input: Input) {
        let all: Vec<(usize, Input)> = (0..self.groups()).map(|g| (g, input.clone())).collect();
        self.inputs(i, all);
    }

    /// Inputs to some groups of node `i`, in one event (their adverts share a datagram).
    fn inputs(&mut self, i: usize, inputs: Vec<(usize, Input)>) {
        self.outbox = None;
        for (g, input) in inputs {
            self.feed(i, g, input, true);
        }
        self.check();
    }

    /// A rogue host claims group `g`'s VIPs with `mac` towards every holder of them
    /// (invariant 8: with an unknown MAC or a live backup's, no live heard master may let
    /// go). The other groups never hear of it.
    fn forge(&mut self, g: usize, mac: [u8; 6]) {
        self.stats.forged += 1;
        let what = if self.groups() == 1 {
            String::new()
        } else {
            format!(" for g{g}")
        };
        self.log
            .push(format!("{} forged claim{what} from {mac:02x?}", self.t()));
        for h in self.holders(g) {
            let owner = (0..self.nodes.len()).find(|&j| self.nodes[j].g[g].cfg.mac == mac);
            let protected = match owner {
                None => true,
                Some(j) => {
                    self.alive_in(j, g)
                        && self.nodes[j].side == self.nodes[h].side
                        && self.state(j, g) == Some(State::Backup)
                        && self.loss == 0.0
                }
            };
            self.inputs(h, vec![(g, Input::Conflict { mac })]);
            if protected && !self.holds(h, g) && self.alive_in(h, g) {
                let who = self.tag(h, g);
                self.violation(format!("{who} let go of the VIPs on a forged frame"));
            }
        }
    }

    /// Node `i`'s link on interface `iface` goes down (or comes back): every group on that
    /// interface is faulted (or cleared), no other.
    fn link(&mut self, i: usize, iface: u8, down: bool) {
        self.nodes[i].link_down[usize::from(iface)] = down;
        self.stats.link_faults += u64::from(down);
        let word = if down { "down" } else { "up" };
        self.log
            .push(format!("{} n{i} link {iface} {word}", self.t()));
        let inputs = (0..self.groups())
            .filter(|&g| self.iface[g] == iface)
            .map(|g| {
                let input = if down {
                    Input::Fault {
                        cause: FaultCause::Link,
                        reason: format!("link {iface} down"),
                    }
                } else {
                    Input::FaultCleared {
                        cause: FaultCause::Link,
                    }
                };
                (g, input)
            })
            .collect();
        self.inputs(i, inputs);
    }

    /// Blocks adverts between the two sides; L2 (ARP) stays whole.
    fn block_adverts(&mut self, sides: &[u8]) {
        self.dirty.fill(true);
        for (n, &s) in self.nodes.iter_mut().zip(sides) {
            n.side = s;
        }
        self.log
            .push(format!("{} adverts blocked {sides:?}", self.t()));
        self.stats.adverts_blocked += 1;
        self.masterless_since.clear();
        self.check();
    }

    /// Graceful stop (SIGTERM) of every group: a master hands over first.
    fn stop(&mut self, i: usize) {
        self.stats.graceful_stops += 1;
        self.log.push(format!("{} stop n{i}", self.t()));
        self.input(i, Input::Stop);
    }

    /// Cuts the cluster in two (node i goes to side `sides[i]`, 0 or 1).
    fn partition(&mut self, sides: &[u8]) {
        self.dirty.fill(true);
        for (n, &s) in self.nodes.iter_mut().zip(sides) {
            n.side = s;
            n.l2 = s;
        }
        self.update_witness();
        self.log.push(format!("{} partition {sides:?}", self.t()));
        self.stats.partitions += 1;
        self.masterless_since.clear();
        self.check();
    }

    fn heal(&mut self) {
        self.dirty.fill(true);
        for n in &mut self.nodes {
            n.side = 0;
            n.l2 = 0;
        }
        self.update_witness();
        self.log.push(format!("{} heal", self.t()));
        self.stats.heals += 1;
        self.masterless_since.clear();
        self.check();
    }

    fn set_loss(&mut self, loss: f64) {
        self.dirty.fill(true);
        self.loss = loss;
        // Dual-master episodes are timed from when the network became reliable.
        self.dual_since.clear();
        self.check();
    }

    // ----- the engine -----

    fn side_members(&self, side: u8) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(move |&j| self.nodes[j].side == side)
    }

    /// Alive in group `g` and able to become its master.
    fn eligible(&self, i: usize, g: usize) -> bool {
        matches!(self.state(i, g), Some(State::Backup | State::Master))
    }

    /// Feeds `input` to node `i`'s election of group `g` and carries out its actions.
    /// `concerned` says whether the input is about that group at all (node-wide facts are
    /// about every group): an election must not act on an input that is not (invariant 9).
    fn feed(&mut self, i: usize, g: usize, input: Input, concerned: bool) {
        let m = &mut self.nodes[i].g[g];
        let Some(e) = m.e.as_mut() else {
            return;
        };
        let acts = e.handle(self.now, input);
        m.deadline = e.next_deadline();
        if !concerned && !acts.is_empty() {
            let who = self.tag(i, g);
            self.violation(format!(
                "{who} acted on an input for another group: {acts:?}"
            ));
        }
        self.apply(i, g, acts);
        self.reap(i, g);
    }

    /// Puts group `g`'s advert into node `i`'s datagram of this event, or starts a new
    /// datagram (a first one, or one that already carries group `g`): loss, delay and the
    /// side cut apply to the datagram as a whole.
    fn send(&mut self, i: usize, g: usize, advert: Advert) {
        if let Some(o) = self.outbox.as_mut() {
            if o.from == i && !o.groups.contains(&g) {
                o.groups.push(g);
                if o.groups.len() == 2 {
                    self.stats.shared_datagrams += 1;
                }
                for m in &mut self.queue {
                    if o.ids.contains(&m.id) {
                        if let Payload::Datagram(entries) = &mut m.payload {
                            entries.push((g, advert.clone()));
                        }
                    }
                }
                return;
            }
        }
        let mut ids = Vec::new();
        for j in 0..self.nodes.len() {
            if j == i || self.nodes[j].side != self.nodes[i].side {
                continue;
            }
            if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                continue;
            }
            let max_us = self.max_delay.as_micros() as u64;
            let delay = Duration::from_micros(self.rng.random_range(0..=max_us));
            let at = (self.now + delay).max(self.link_last[i][j]);
            self.link_last[i][j] = at;
            ids.push(self.next_id);
            self.queue.push(Msg {
                at,
                id: self.next_id,
                from: i,
                to: j,
                payload: Payload::Datagram(vec![(g, advert.clone())]),
            });
            self.next_id += 1;
        }
        self.outbox = Some(Outbox {
            from: i,
            groups: vec![g],
            ids,
        });
    }

    fn apply(&mut self, i: usize, g: usize, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send(advert) => self.send(i, g, advert),
                Action::InstallVips => {
                    self.nodes[i].g[g].holds = true;
                    self.dirty[g] = true;
                }
                Action::ReleaseVips => {
                    self.nodes[i].g[g].holds = false;
                    self.dirty[g] = true;
                }
                Action::Announce => {
                    if self.layers.conflicts {
                        let mac = self.nodes[i].g[g].cfg.mac;
                        for j in 0..self.nodes.len() {
                            if j != i && self.nodes[j].l2 == self.nodes[i].l2 && self.alive(j) {
                                let delay = self.random_delay();
                                self.schedule(i, j, delay, Payload::Conflict(g, mac));
                            }
                        }
                    }
                }
                Action::Notice { cause, .. } => {
                    self.stats.quorum_refusals += u64::from(cause == NoticeCause::NoQuorum);
                    self.stats.probes_answered += u64::from(cause == NoticeCause::ClaimBlocked);
                }
                Action::Probe if self.layers.probe => {
                    self.stats.probes += 1;
                    let window = self.probe_window;
                    self.schedule(i, i, window, Payload::ProbeDone(g));
                }
                Action::Probe => {
                    let who = self.tag(i, g);
                    self.violations
                        .push(format!("{who} asked for an ARP probe with probing off"));
                }
                Action::Transition {
                    from,
                    to,
                    epoch,
                    cause,
                    reason,
                } => {
                    self.transitions += 1;
                    self.dirty[g] = true;
                    if to == State::Master {
                        self.stats.takeovers += 1;
                        self.stats.preemptions += u64::from(cause == Cause::Preempt);
                        for x in &self.expects {
                            if let Expect::Handover {
                                g: hg,
                                winner,
                                exclusive: true,
                                until,
                                ..
                            } = *x
                            {
                                let same_side = self.nodes[winner].side == self.nodes[i].side;
                                if hg == g && winner != i && same_side && self.now <= until {
                                    let who = self.tag(i, g);
                                    let msg = format!(
                                        "{who} took over during the handover to n{winner}: {reason}"
                                    );
                                    self.violations.push(msg);
                                }
                            }
                        }
                    }
                    self.stats.stale_stepdowns += u64::from(cause == Cause::StaleEpoch);
                    self.stats.rank_stepdowns += u64::from(cause == Cause::Outranked);
                    self.stats.quorum_stepdowns += u64::from(cause == Cause::QuorumLost);
                    self.stats.isolations += u64::from(cause == Cause::Isolated);
                    self.stats.conflict_stepdowns += u64::from(cause == Cause::Conflict);
                    self.stats.handovers +=
                        u64::from(cause == Cause::Handover && to == State::Master);
                    let who = self.tag(i, g);
                    let line = format!("{} {who} {from}->{to} epoch {epoch}: {reason}", self.t());
                    self.log.push(line);
                }
            }
        }
    }

    /// Node `i`'s next deadline: the earliest of its groups'.
    fn node_deadline(&self, i: usize) -> Option<Instant> {
        self.nodes[i]
            .g
            .iter()
            .filter(|m| m.e.is_some())
            .filter_map(|m| m.deadline)
            .min()
    }

    /// The earliest pending event: (time, Ok(message index) | Err(node index)).
    fn next_event(&self) -> Option<(Instant, Result<usize, usize>)> {
        let msg = (0..self.queue.len()).min_by_key(|&k| (self.queue[k].at, self.queue[k].id));
        let node = (0..self.nodes.len())
            .filter_map(|i| Some((self.node_deadline(i)?, i)))
            .min();
        match (msg, node) {
            (Some(m), Some((t, i))) if t < self.queue[m].at => Some((t, Err(i))),
            (Some(m), _) => Some((self.queue[m].at, Ok(m))),
            (None, Some((t, i))) => Some((t, Err(i))),
            (None, None) => None,
        }
    }

    /// Processes the earliest event, then checks the invariants.
    fn step(&mut self) -> Option<Instant> {
        let (at, ev) = self.next_event()?;
        self.process(at, ev);
        Some(at)
    }

    fn process(&mut self, at: Instant, ev: Result<usize, usize>) {
        self.now = at;
        self.outbox = None;
        match ev {
            Ok(k) => {
                let m = self.queue.swap_remove(k);
                let to = m.to;
                match m.payload {
                    Payload::Datagram(entries) => {
                        let cut = self.nodes[m.from].side != self.nodes[to].side;
                        for (g, advert) in entries {
                            let dropped = match self.nodes[to].broken {
                                Broken::Deaf => true,
                                Broken::IgnoresBye => advert.priority == 0,
                                Broken::No
                                | Broken::NoArp
                                | Broken::NoWitness
                                | Broken::CrossTalk => false,
                            };
                            if cut || dropped {
                                continue;
                            }
                            if self.nodes[to].broken == Broken::CrossTalk {
                                for h in 0..self.groups() {
                                    self.feed(to, h, Input::Advert(advert.clone()), h == g);
                                }
                            } else {
                                self.feed(to, g, Input::Advert(advert), true);
                            }
                        }
                    }
                    Payload::ProbeDone(g) => {
                        let l2 = self.nodes[to].l2;
                        let answered_by = (0..self.nodes.len())
                            .find(|&j| j != to && self.holds(j, g) && self.nodes[j].l2 == l2)
                            .map(|j| self.nodes[j].g[g].cfg.mac);
                        self.feed(to, g, Input::ProbeResult { answered_by }, true);
                    }
                    Payload::Conflict(g, mac) => {
                        let reach = self.nodes[m.from].l2 == self.nodes[to].l2
                            && self.nodes[to].broken != Broken::NoArp;
                        // The ARP watch reports only to a master.
                        let master = self.state(to, g) == Some(State::Master);
                        self.stats.conflicts_delivered += u64::from(reach && master);
                        if reach && master {
                            self.feed(to, g, Input::Conflict { mac }, true);
                        }
                    }
                    Payload::Witness(_) if self.nodes[to].broken == Broken::NoWitness => {}
                    Payload::Witness(reachable) => {
                        for g in 0..self.groups() {
                            let input = Input::Witness {
                                reachable,
                                detail: format!("sim gateway reachable={reachable}"),
                            };
                            self.feed(to, g, input, true);
                        }
                    }
                }
            }
            Err(i) => {
                // One timer per node, as a daemon would run it: every group gets the
                // timeout, and those none of whose deadlines has come must not act on it.
                let due: Vec<bool> = self.nodes[i]
                    .g
                    .iter()
                    .map(|m| m.e.is_some() && m.deadline.is_some_and(|t| t <= at))
                    .collect();
                for (g, &due) in due.iter().enumerate() {
                    self.stats.foreign_timeouts += u64::from(!due && self.alive_in(i, g));
                    self.feed(i, g, Input::Timeout, due);
                }
            }
        }
        self.stats.steps += 1;
        self.check();
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some((at, ev)) = self.next_event().filter(|(t, _)| *t <= end) {
            self.process(at, ev);
        }
        self.now = end;
        self.check();
    }

    /// Records every invariant violated at `self.now`, in every group.
    ///
    /// A group's verdicts change only when it is dirty or while one of its episodes is
    /// open (a bound may run out): the other groups are skipped, which changes nothing.
    fn check(&mut self) {
        for g in 0..self.groups() {
            if self.dirty[g] || self.open_episode(g) {
                self.check_group(g);
                self.dirty[g] = false;
            }
        }
        self.check_expects();
    }

    /// Whether group `g` has an episode whose bound may still run out.
    fn open_episode(&self, g: usize) -> bool {
        let pairs = (g, 0, 0)..(g + 1, 0, 0);
        self.masterless_since.contains_key(&(g, 0))
            || self.masterless_since.contains_key(&(g, 1))
            || self.dual_since.range(pairs.clone()).next().is_some()
            || self.l2_dual_since.range(pairs).next().is_some()
            || self
                .isolated_since
                .range((g, 0)..(g + 1, 0))
                .next()
                .is_some()
    }

    fn check_group(&mut self, g: usize) {
        let now = self.now;
        let n = self.nodes.len();
        for i in 0..n {
            let master = self.state(i, g) == Some(State::Master);
            if self.holds(i, g) != master {
                let who = self.tag(i, g);
                self.violation(format!(
                    "{who} holds VIPs = {} but state is {:?}",
                    self.holds(i, g),
                    self.state(i, g)
                ));
            }
        }
        let holders = self.holders(g);
        let name = |c: &Self, i: usize| c.tag(i, g);
        // The pairs of holders for which `same` holds (same side, same L2).
        let pairs = |same: &dyn Fn(usize, usize) -> bool| -> Vec<(usize, usize, usize)> {
            let mut out = Vec::new();
            for (k, &i) in holders.iter().enumerate() {
                for &j in &holders[k + 1..] {
                    if same(i, j) {
                        out.push((g, i, j));
                    }
                }
            }
            out
        };
        let keys = (g, 0, 0)..(g + 1, 0, 0);
        // 1. No lasting split brain.
        let bound = self.interval + self.max_delay;
        let duals = pairs(&|i, j| self.nodes[i].side == self.nodes[j].side);
        let ended: Vec<_> = self
            .dual_since
            .range(keys.clone())
            .map(|(k, _)| *k)
            .filter(|k| !duals.contains(k))
            .collect();
        for key in ended {
            self.dual_since.remove(&key);
            self.stats.dual_episodes += 1;
        }
        for key @ (_, i, j) in duals {
            let (since, reported) = *self.dual_since.entry(key).or_insert((now, false));
            if self.loss == 0.0 && now - since > bound && !reported {
                self.dual_since.insert(key, (since, true));
                let (a, b) = (name(self, i), name(self, j));
                self.violation(format!(
                    "{a} and {b} both master for {} > {}",
                    super::ms(now - since),
                    super::ms(bound)
                ));
            }
        }
        // 2. Never masterless for long.
        let lowest = self
            .nodes
            .iter()
            .map(|n| n.g[g].cfg.priority)
            .min()
            .unwrap_or(1);
        let mut gap_bound = self.spec_master_down(lowest) + self.interval + self.max_delay;
        if self.layers.probe || self.layers.witness || self.layers.quorum {
            // A probe window, and the witness's fall intervals before isolation is known.
            gap_bound += self.probe_window + self.interval * 4;
        }
        gap_bound += self.defer_bound();
        for side in 0..=1 {
            let has_holder = holders.iter().any(|&j| self.nodes[j].side == side);
            if has_holder || !self.needs_holder(side, g) {
                self.masterless_since.remove(&(g, side));
                continue;
            }
            let (since, reported) = *self
                .masterless_since
                .entry((g, side))
                .or_insert((now, false));
            if now - since > gap_bound && !reported {
                self.masterless_since.insert((g, side), (since, true));
                let what = if self.groups() == 1 {
                    format!("group {side}")
                } else {
                    format!("g{g} on side {side}")
                };
                self.violation(format!(
                    "{what} without master for {} > {}",
                    super::ms(now - since),
                    super::ms(gap_bound)
                ));
            }
        }
        // 6. One L2, one holder (even with adverts blocked).
        if self.layers.probe && self.layers.conflicts {
            let bound = self.interval * 2 + self.probe_window + self.max_delay * 2;
            let duals = pairs(&|i, j| self.nodes[i].l2 == self.nodes[j].l2);
            self.l2_dual_since
                .retain(|k, _| k.0 != g || duals.contains(k));
            for key @ (_, i, j) in duals {
                let (since, reported) = *self.l2_dual_since.entry(key).or_insert((now, false));
                if self.loss == 0.0 && now - since > bound && !reported {
                    self.l2_dual_since.insert(key, (since, true));
                    let (a, b) = (name(self, i), name(self, j));
                    self.violation(format!(
                        "{a} and {b} hold the VIPs on one L2 for {} > {}",
                        super::ms(now - since),
                        super::ms(bound)
                    ));
                }
            }
        }
        // 7. An isolated holder lets go.
        if self.layers.witness {
            let bound = self.spec_master_down(lowest) + self.interval * 4 + self.max_delay;
            let isolated: Vec<usize> = holders
                .iter()
                .copied()
                .filter(|&i| {
                    self.nodes[i].l2 != 0 && self.alive_in_side(self.nodes[i].side, g) == 1
                })
                .collect();
            self.isolated_since
                .retain(|k, _| k.0 != g || isolated.contains(&k.1));
            for i in isolated {
                let (since, reported) = *self.isolated_since.entry((g, i)).or_insert((now, false));
                if now - since > bound && !reported {
                    self.isolated_since.insert((g, i), (since, true));
                    let who = name(self, i);
                    self.violation(format!(
                        "{who} isolated and still holding after {}",
                        super::ms(now - since)
                    ));
                }
            }
        }
    }

    /// 3 and 4. Failover and handover deadlines.
    fn check_expects(&mut self) {
        let now = self.now;
        let mut expects = std::mem::take(&mut self.expects);
        expects.retain_mut(|x| match x {
            Expect::Failover { g, side, deadline } => {
                // Satisfied by a holder on the side, or by one elsewhere on the same L2
                // that answers the side's probes (adverts blocked, ARP whole).
                if self.side_members(*side).any(|j| self.holds(j, *g))
                    || !self.needs_holder(*side, *g)
                {
                    self.stats.failovers_checked += 1;
                    false
                } else if now > *deadline {
                    let late = super::ms(now - *deadline);
                    let what = if self.groups() == 1 {
                        format!("group {side}")
                    } else {
                        format!("g{g} on side {side}")
                    };
                    self.violation(format!("no failover in {what}: {late} past the bound"));
                    false
                } else {
                    true
                }
            }
            Expect::Handover {
                g,
                winner,
                deadline,
                exclusive,
                until,
                done,
            } => {
                if !*done && self.holds(*winner, *g) {
                    *done = true;
                    self.stats.handovers_checked += 1;
                    self.stats.exclusive_handovers += u64::from(*exclusive);
                } else if !*done && now > *deadline {
                    *done = true;
                    let w = *winner;
                    let what = if self.groups() == 1 {
                        String::new()
                    } else {
                        format!(" of g{g}")
                    };
                    self.violation(format!("handover{what} to n{w} not done by its deadline"));
                }
                !(*done && now > *until)
            }
        });
        self.expects.append(&mut expects);
    }

    /// Invariant 5 in every group, with preemption expected in all of them or none.
    fn check_quiet(&mut self, window: Duration, expect_top: bool) {
        let expect = vec![expect_top; self.groups()];
        self.check_quiet_groups(window, &expect);
    }

    /// Invariant 5 per group: over `window` (no loss, no partition, no fault), nobody changes
    /// state, and each group has exactly one agreed master, its top-ranked node if
    /// `expect_top[g]` (everyone preempts). And invariant 9's end state: a node top-ranked in
    /// every group holds every group.
    fn check_quiet_groups(&mut self, window: Duration, expect_top: &[bool]) {
        let before = self.transitions;
        self.run_for(window);
        self.stats.quiet_windows += 1;
        if self.transitions != before {
            let k = self.transitions - before;
            self.violation(format!("{k} transitions in a quiet window"));
        }
        let groups = self.groups();
        for (g, &expect_top) in expect_top.iter().enumerate() {
            let what = if groups == 1 {
                String::new()
            } else {
                format!(" of g{g}")
            };
            let holders = self.holders(g);
            if holders.len() != 1 {
                self.violation(format!("holders{what} after quiet window: {holders:?}"));
                continue;
            }
            let m = holders[0];
            let name = self.nodes[m].g[g].cfg.name.clone();
            for i in 0..self.nodes.len() {
                let seen = self.nodes[i].g[g].e.as_ref().and_then(|e| e.master());
                if seen != Some(name.as_str()) {
                    let msg = format!("n{i} thinks the master{what} is {seen:?}, not {name}");
                    self.violations.push(msg);
                }
            }
            let top = self.top(g);
            if expect_top && top != Some(m) {
                self.violation(format!("master{what} is n{m}, not the top-ranked {top:?}"));
            }
        }
        let everywhere = self
            .top(0)
            .filter(|&x| (1..groups).all(|g| self.top(g) == Some(x)));
        if let Some(x) = everywhere.filter(|_| groups > 1 && expect_top.iter().all(|&e| e)) {
            self.stats.top_everywhere += 1;
            for g in 0..groups {
                let holders = self.holders(g);
                if holders != [x] {
                    self.violation(format!(
                        "n{x} is top-ranked in every group but g{g} is held by {holders:?}"
                    ));
                }
            }
        }
    }

    fn report(&self, seed: u64) -> String {
        let tail = self.log.len().saturating_sub(40);
        format!(
            "seed {seed}: {:?}\nlast events:\n{}",
            self.violations,
            self.log[tail..].join("\n")
        )
    }
}

/// Priorities for `n` nodes in one group, in one of three layouts.
fn random_priorities(rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let mut spaced = [250u8, 190, 130, 70, 10];
    match rng.random_range(0..3) {
        0 => {
            // Distinct, spaced so that handovers are exclusive (skew gap > 2 × max_delay).
            for k in (1..spaced.len()).rev() {
                spaced.swap(k, rng.random_range(0..=k));
            }
            spaced[..n].to_vec()
        }
        1 => vec![100; n],
        _ => (0..n).map(|_| [100, 150][rng.random_range(0..2)]).collect(),
    }
}

/// One random scenario: start, a few random faults of every kind, then heal everything and
/// demand a quiet, converged cluster.
///
/// Everything about groups is drawn from a second PRNG, so a seed with one group runs
/// exactly the scenario it ran before groups existed.
fn run_seed(seed: u64) -> Result<Stats, String> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut grng = SmallRng::seed_from_u64(seed ^ 0x6709_0b5e);
    let groups = if grng.random_bool(MULTI_GROUP_SHARE) {
        grng.random_range(2..=4usize)
    } else {
        1
    };
    let n = rng.random_range(2..=5usize);
    let interval = ms_(if rng.random_bool(0.2) { 10 } else { 50 });
    let max_delay = interval / 10;
    let mut priorities = vec![random_priorities(&mut rng, n)];
    for _ in 1..groups {
        priorities.push(random_priorities(&mut grng, n));
    }
    let mut iface = vec![0u8; groups];
    if groups > 1 {
        if grng.random_bool(0.3) {
            // One node is the best in every group (above every other layout's 250).
            let x = grng.random_range(0..n);
            for p in &mut priorities {
                p[x] = 254;
            }
        }
        if grng.random_bool(0.5) {
            // Groups on two interfaces: a link loss faults only the groups on it.
            for k in &mut iface {
                *k = grng.random_range(0..2);
            }
        }
    }
    let preempt = rng.random_bool(0.75);
    let preempt_delay = if rng.random_bool(0.2) {
        interval * 4
    } else {
        Duration::ZERO
    };
    let loss = if rng.random_bool(0.3) {
        rng.random_range(0.02..0.2)
    } else {
        0.0
    };

    let mut c = Cluster::with_groups(seed, &priorities, &iface, interval, max_delay);
    c.stats.multi_group_seeds += u64::from(groups > 1);
    for cfg in c.cfgs_mut() {
        cfg.preempt = preempt;
        cfg.preempt_delay = preempt_delay;
    }
    if rng.random_bool(0.6) {
        let layers = Layers {
            probe: rng.random_bool(0.6),
            quorum: rng.random_bool(0.4),
            witness: rng.random_bool(0.5),
            conflicts: rng.random_bool(0.7),
        };
        c.set_layers(layers);
        c.stats.layered_seeds += 1;
    }
    let layered = c.layers.probe || c.layers.quorum || c.layers.witness || c.layers.conflicts;
    let mut maintenance = vec![vec![false; groups]; n];
    let mut handed_over = vec![false; groups];
    c.set_loss(loss);
    let stagger = rng.random_bool(0.5);
    for i in 0..n {
        c.start(i);
        if stagger {
            c.run_for(ms_(rng.random_range(0..200)));
        }
    }
    c.run_for(interval * 30);

    for _ in 0..6 {
        let alive: Vec<usize> = (0..n).filter(|&i| c.alive(i)).collect();
        let dead: Vec<usize> = (0..n).filter(|&i| !c.alive(i)).collect();
        // The group a group-specific operation aims at, and whether it aims at all of them.
        let (vg, all) = if groups > 1 {
            (grng.random_range(0..groups), grng.random_bool(0.5))
        } else {
            (0, true)
        };
        let every: Vec<usize> = if all { (0..groups).collect() } else { vec![vg] };
        c.stats.group_ops += u64::from(!all);
        let holders = c.holders(vg);
        let ops = if layered { 12 } else { 7 };
        if groups > 1 && !alive.is_empty() && grng.random_bool(0.15) {
            let i = alive[grng.random_range(0..alive.len())];
            let k = iface[vg];
            let down = !c.nodes[i].link_down[usize::from(k)];
            c.link(i, k, down);
            c.run_for(interval * grng.random_range(10..40));
            continue;
        }
        match rng.random_range(0..ops) {
            0 if alive.len() > 1 && !holders.is_empty() => c.kill(holders[0]),
            1 if alive.len() > 1 => c.kill(alive[rng.random_range(0..alive.len())]),
            2 if alive.len() > 1 && !holders.is_empty() => c.shutdown(holders[0]),
            3 if !dead.is_empty() => c.start(dead[rng.random_range(0..dead.len())]),
            4 if c.nodes.iter().all(|n| n.side == 0) => {
                let sides: Vec<u8> = (0..n).map(|_| rng.random_range(0..2)).collect();
                c.partition(&sides);
            }
            4 => c.heal(),
            5 if !alive.is_empty() => {
                let i = alive[rng.random_range(0..alive.len())];
                let mut inputs = Vec::new();
                for &g in &every {
                    if c.state(i, g) == Some(State::Fault) {
                        let cause = FaultCause::HealthCheck;
                        inputs.push((g, Input::FaultCleared { cause }));
                    } else {
                        c.stats.faults += 1;
                        let fault = Input::Fault {
                            cause: FaultCause::HealthCheck,
                            reason: "health check failed".into(),
                        };
                        inputs.push((g, fault));
                    }
                }
                c.inputs(i, inputs);
            }
            7 if c.nodes.iter().all(|n| n.side == 0 && n.l2 == 0) => {
                let sides: Vec<u8> = (0..n).map(|_| rng.random_range(0..2)).collect();
                c.block_adverts(&sides);
            }
            8 => {
                let mac = if rng.random_bool(0.5) {
                    [6, 0xfe, 0, 0, 0, rng.random_range(0..255)]
                } else {
                    c.nodes[rng.random_range(0..n)].g[vg].cfg.mac
                };
                c.forge(vg, mac);
            }
            9 if !holders.is_empty() => {
                // The node that hands over on purpose does not preempt back.
                let h = holders[0];
                let inputs: Vec<(usize, Input)> = every
                    .iter()
                    .filter(|&&g| c.holds(h, g))
                    .map(|&g| (g, Input::Handover { to: None }))
                    .collect();
                for &(g, _) in &inputs {
                    handed_over[g] = true;
                }
                c.inputs(h, inputs);
            }
            10 if !alive.is_empty() => {
                let i = alive[rng.random_range(0..alive.len())];
                let on = !maintenance[i][vg];
                c.stats.maintenance += 1;
                let inputs = every
                    .iter()
                    .map(|&g| {
                        maintenance[i][g] = on;
                        (g, Input::Maintenance { on })
                    })
                    .collect();
                c.inputs(i, inputs);
            }
            11 if alive.len() > 1 => {
                let i = holders.first().copied().unwrap_or(alive[0]);
                c.stop(i);
                maintenance[i].fill(false);
            }
            _ => {}
        }
        c.run_for(interval * rng.random_range(10..40));
    }

    // Repair everything, then demand convergence and quiet.
    c.heal();
    c.set_loss(0.0);
    for (i, on) in maintenance.iter_mut().enumerate() {
        let inputs: Vec<(usize, Input)> = (0..groups)
            .filter(|&g| std::mem::take(&mut on[g]))
            .map(|g| (g, Input::Maintenance { on: false }))
            .collect();
        if !inputs.is_empty() {
            c.inputs(i, inputs);
        }
    }
    for i in 0..n {
        for k in 0..c.nodes[i].link_down.len() {
            if c.nodes[i].link_down[k] {
                c.link(i, u8::try_from(k).unwrap_or(0), false);
            }
        }
    }
    for i in 0..n {
        if (0..groups).any(|g| !c.alive_in(i, g)) {
            c.start(i);
        }
        let inputs: Vec<(usize, Input)> = (0..groups)
            .filter(|&g| c.state(i, g) == Some(State::Fault))
            .map(|g| {
                let cause = FaultCause::HealthCheck;
                (g, Input::FaultCleared { cause })
            })
            .collect();
        if !inputs.is_empty() {
            c.inputs(i, inputs);
        }
    }
    // Convergence includes a preemption, which waits for PREEMPT_SETTLE of contact, and
    // the witness's verdicts (three intervals).
    c.run_for(interval * 44 + super::PREEMPT_SETTLE);
    let expect_top: Vec<bool> = handed_over.iter().map(|&h| preempt && !h).collect();
    c.check_quiet_groups(interval * 60, &expect_top);
    if c.violations.is_empty() {
        Ok(c.stats)
    } else {
        Err(c.report(seed))
    }
}

/// The share of random seeds that run 2..=4 groups per node (the others run one).
const MULTI_GROUP_SHARE: f64 = 0.5;

fn ms_(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sweep(seeds: std::ops::Range<u64>) -> Stats {
    let mut total = Stats::default();
    for seed in seeds {
        match run_seed(seed) {
            Ok(s) => total += s,
            Err(report) => panic!("{report}"),
        }
    }
    total
}

// The 1200 seeds are split in four tests so the harness runs them in parallel. About half
// of them run 2..=4 groups per node.

#[test]
fn random_scenarios_hold_every_invariant_0() {
    let s = sweep(0..300);
    assert!(s.takeovers > 300 && s.quiet_windows == 300, "{s:?}");
}

#[test]
fn random_scenarios_hold_every_invariant_1() {
    sweep(300..600);
}

#[test]
fn random_scenarios_hold_every_invariant_2() {
    sweep(600..900);
}

#[test]
fn random_scenarios_hold_every_invariant_3() {
    let s = sweep(900..1200);
    eprintln!("simulation, seeds 900..1200: {s:#?}");
    // Every invariant was actually exercised, many times.
    assert!(s.failovers_checked > 20, "{s:?}");
    assert!(
        s.handovers_checked > 20 && s.exclusive_handovers > 10,
        "{s:?}"
    );
    assert!(s.dual_episodes > 20, "{s:?}");
    assert!(s.stale_stepdowns > 5 && s.rank_stepdowns > 5, "{s:?}");
    assert!(
        s.preemptions > 20 && s.partitions > 20 && s.heals > 20,
        "{s:?}"
    );
    assert!(s.faults > 20, "{s:?}");
    // The split-brain layers were exercised too.
    assert!(s.layered_seeds > 100 && s.steps > 100_000, "{s:?}");
    assert!(s.probes > 100 && s.probes_answered > 20, "{s:?}");
    assert!(s.quorum_refusals > 20 && s.quorum_stepdowns > 5, "{s:?}");
    assert!(s.isolations > 5 && s.adverts_blocked > 20, "{s:?}");
    assert!(
        s.conflicts_delivered > 100 && s.conflict_stepdowns > 10 && s.forged > 20,
        "{s:?}"
    );
    assert!(
        s.handovers > 20 && s.maintenance > 20 && s.graceful_stops > 20,
        "{s:?}"
    );
    // Several groups per node, sharing datagrams, timers and node-wide facts.
    assert!(
        s.multi_group_seeds > 100 && s.shared_datagrams > 10_000,
        "{s:?}"
    );
    assert!(s.foreign_timeouts > 10_000 && s.link_faults > 20, "{s:?}");
    assert!(s.group_ops > 100 && s.top_everywhere > 10, "{s:?}");
}

/// A longer soak for when the election changes: `cargo test soak -- --ignored`
/// (`HAAGENT_SOAK_SEEDS=2000` for fewer seeds than the default 10 000).
#[test]
#[ignore = "soak: 10 000 more seeds, a few minutes"]
fn soak_random_scenarios() {
    let seeds = std::env::var("HAAGENT_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(10_000);
    let mut total = Stats::default();
    let mut failed = Vec::new();
    for seed in 1200..1200 + seeds {
        match run_seed(seed) {
            Ok(s) => total += s,
            Err(report) => failed.push((seed, report)),
        }
    }
    eprintln!("soak, {seeds} seeds: {total:#?}");
    if let Some((_, first)) = failed.first() {
        let seeds: Vec<u64> = failed.iter().map(|f| f.0).collect();
        panic!(
            "{} seeds failed: {seeds:?}\nthe first: {first}",
            seeds.len()
        );
    }
}

// ----- scripted scenarios -----

fn cluster(priorities: &[u8]) -> Cluster {
    let mut c = Cluster::new(7, priorities, ms_(50), ms_(5));
    for i in 0..priorities.len() {
        c.start(i);
    }
    c.run_for(ms_(1000));
    c
}

#[test]
fn highest_priority_wins_and_stays() {
    let mut c = cluster(&[100, 200, 150]);
    assert_eq!(c.holders(0), vec![1]);
    c.check_quiet(ms_(10_000), true);
    assert_eq!(c.violations, Vec::<String>::new());
}

#[test]
fn kill_master_fails_over_to_the_next_priority() {
    let mut c = cluster(&[100, 200, 150]);
    c.kill(1);
    let t = c.now;
    while c.holders(0).is_empty() {
        c.step();
    }
    // n2 (150) takes over at master-down after the last advert it heard from n1.
    assert_eq!(c.holders(0), vec![2]);
    assert!(c.now - t <= c.spec_master_down(150) + c.max_delay);
    c.run_for(ms_(1000));
    assert_eq!((c.violations.len(), c.stats.failovers_checked), (0, 1));
}

#[test]
fn restarted_higher_priority_node_preempts_unless_nopreempt() {
    for preempt in [true, false] {
        let mut c = cluster(&[100, 200]);
        for cfg in c.cfgs_mut() {
            cfg.preempt = preempt;
        }
        c.kill(1);
        c.run_for(ms_(1000));
        assert_eq!(c.holders(0), vec![0]);
        c.start(1);
        c.run_for(ms_(2000));
        assert_eq!(
            c.holders(0),
            vec![if preempt { 1 } else { 0 }],
            "preempt {preempt}"
        );
        assert_eq!(c.stats.preemptions, u64::from(preempt));
        assert_eq!(c.violations, Vec::<String>::new());
    }
}

#[test]
fn graceful_shutdown_hands_over_to_the_best_survivor_only() {
    let mut c = cluster(&[130, 250, 190, 70]);
    assert_eq!(c.holders(0), vec![1]);
    c.shutdown(1);
    let t = c.now;
    while c.holders(0).is_empty() {
        c.step();
    }
    assert_eq!(c.holders(0), vec![2]);
    assert!(c.now - t <= c.max_delay + skew_for(190, ms_(50)));
    c.run_for(ms_(2000));
    assert_eq!(
        c.stats.takeovers, 2,
        "one at start, one handover: {:?}",
        c.log
    );
    assert_eq!((c.violations.len(), c.stats.exclusive_handovers), (0, 1));
}

#[test]
fn partition_then_heal_keeps_the_higher_epoch_and_preempts_later() {
    let mut c = cluster(&[200, 100]);
    c.partition(&[0, 1]);
    c.run_for(ms_(1000));
    assert_eq!(c.holders(0), vec![0, 1], "each side has its master");
    let epochs: Vec<u64> = c
        .nodes
        .iter()
        .map(|n| n.g[0].e.as_ref().unwrap().epoch())
        .collect();
    assert_eq!(epochs, vec![1, 2]);
    c.heal();
    c.run_for(ms_(60));
    // n0 was stale (epoch 1 < 2): it stepped down within one interval + delay…
    assert_eq!(c.holders(0), vec![1]);
    assert_eq!(c.stats.stale_stepdowns, 1);
    // …and preempted n1 once it had heard n1 for PREEMPT_SETTLE, at master-down, with
    // epoch 3 — not before: n1 might not hear n0 yet.
    c.run_for(ms_(900));
    assert_eq!(c.holders(0), vec![1]);
    c.run_for(ms_(600));
    assert_eq!(c.holders(0), vec![0]);
    assert_eq!(c.nodes[0].g[0].e.as_ref().unwrap().epoch(), 3);
    assert_eq!(c.violations, Vec::<String>::new());
}

#[test]
fn fault_moves_the_vips_and_clearing_takes_them_back() {
    let mut c = cluster(&[200, 100]);
    c.input(
        0,
        Input::Fault {
            cause: FaultCause::HealthCheck,
            reason: "gateway lost".into(),
        },
    );
    c.run_for(ms_(100));
    assert_eq!(c.holders(0), vec![1]);
    c.run_for(ms_(2000));
    assert_eq!(c.holders(0), vec![1], "a faulty node never takes over");
    c.input(
        0,
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    );
    c.run_for(ms_(1000));
    assert_eq!(c.holders(0), vec![0]);
    assert_eq!(c.violations, Vec::<String>::new());
}

// ----- the checker can fail -----

#[test]
fn checker_catches_split_brain_with_a_deaf_node() {
    let mut c = Cluster::new(1, &[200, 100], ms_(50), ms_(5));
    c.nodes[1].broken = Broken::Deaf; // never hears n0, so takes over too
    c.start(0);
    c.start(1);
    c.run_for(ms_(2000));
    assert!(
        c.violations.iter().any(|v| v.contains("both master")),
        "{:?}",
        c.violations
    );
}

fn layered(priorities: &[u8], layers: Layers) -> Cluster {
    let mut c = Cluster::new(1, priorities, ms_(50), ms_(5));
    c.set_layers(layers);
    c
}

#[test]
fn checker_catches_two_holders_on_one_l2() {
    let all = Layers {
        probe: true,
        quorum: false,
        witness: false,
        conflicts: true,
    };
    let mut c = layered(&[200, 100], all);
    for n in &mut c.nodes {
        n.broken = Broken::NoArp;
        n.g[0].cfg.probe = false;
    }
    c.start(0);
    c.start(1);
    c.run_for(ms_(1000));
    c.block_adverts(&[0, 1]);
    c.run_for(ms_(2000));
    assert!(
        c.violations.iter().any(|v| v.contains("on one L2")),
        "{:?}",
        c.violations
    );
    // The same with working ARP: the probe keeps n1 from claiming.
    let mut c = layered(&[200, 100], all);
    c.start(0);
    c.start(1);
    c.run_for(ms_(1000));
    c.block_adverts(&[0, 1]);
    c.run_for(ms_(2000));
    assert_eq!(c.violations, Vec::<String>::new());
    assert!(c.stats.probes_answered > 0, "{:?}", c.stats);
}

#[test]
fn checker_catches_an_isolated_holder() {
    let witness = Layers {
        probe: false,
        quorum: false,
        witness: true,
        conflicts: false,
    };
    let mut c = layered(&[200, 100], witness);
    c.nodes[0].broken = Broken::NoWitness;
    c.start(0);
    c.start(1);
    c.run_for(ms_(1000));
    c.partition(&[1, 0]); // n0 alone, without the gateway
    c.run_for(ms_(2000));
    assert!(
        c.violations
            .iter()
            .any(|v| v.contains("isolated and still holding")),
        "{:?}",
        c.violations
    );
    let mut c = layered(&[200, 100], witness);
    c.start(0);
    c.start(1);
    c.run_for(ms_(1000));
    c.partition(&[1, 0]);
    c.run_for(ms_(2000));
    assert_eq!(c.violations, Vec::<String>::new());
    assert_eq!(c.stats.isolations, 1, "{:?}", c.stats);
}

#[test]
fn checker_catches_a_slow_failover() {
    let mut c = Cluster::new(1, &[200, 100], ms_(50), ms_(5));
    c.nodes[1].g[0].cfg.down_multiplier = 20; // breaks the spec the checker assumes
    c.start(0);
    c.start(1);
    c.run_for(ms_(3000));
    assert_eq!(c.violations, Vec::<String>::new());
    c.kill(0);
    c.run_for(ms_(3000));
    assert!(
        c.violations.iter().any(|v| v.contains("no failover")),
        "{:?}",
        c.violations
    );
    assert!(
        c.violations.iter().any(|v| v.contains("without master")),
        "{:?}",
        c.violations
    );
}

#[test]
fn checker_catches_a_missed_handover() {
    let mut c = cluster(&[250, 190, 130]);
    c.nodes[1].broken = Broken::IgnoresBye;
    c.shutdown(0);
    c.run_for(ms_(1000));
    // n1 missed the goodbye and takes over only at its master-down; n2, which heard it,
    // gives the live better backup its turn instead of claiming first (no double move).
    assert!(
        c.violations.iter().any(|v| v.contains("handover to n1")),
        "{:?}",
        c.violations
    );
    assert!(
        !c.violations.iter().any(|v| v.contains("took over during")),
        "{:?}",
        c.violations
    );
}

#[test]
fn checker_catches_flapping() {
    // Master-down of one interval (+ skew) under 0..=5 ms jitter: backups take over spuriously.
    let mut c = Cluster::new(3, &[250, 240, 230], ms_(50), ms_(5));
    for cfg in c.cfgs_mut() {
        cfg.down_multiplier = 1;
    }
    c.down_multiplier = 1;
    for i in 0..3 {
        c.start(i);
    }
    c.run_for(ms_(1000));
    c.check_quiet(ms_(20_000), true);
    assert!(
        c.violations.iter().any(|v| v.contains("quiet window")),
        "{:?}",
        c.violations
    );
}

// ----- several groups per node -----

/// `priorities[g][i]`, group g on interface `iface[g]`, every node started at once.
fn groups(priorities: &[Vec<u8>], iface: &[u8]) -> Cluster {
    let mut c = Cluster::with_groups(7, priorities, iface, ms_(50), ms_(5));
    for i in 0..priorities[0].len() {
        c.start(i);
    }
    c.run_for(ms_(1000));
    c
}

/// How often node `i`'s election of group `g` changed state so far.
fn transitions_of(c: &Cluster, i: usize, g: usize) -> usize {
    let who = format!(" {} ", c.tag(i, g));
    c.log
        .iter()
        .filter(|l| l.contains(&who) && l.contains("->"))
        .count()
}

#[test]
fn active_active_each_group_on_its_best_node_and_a_crash_moves_only_the_crashed_ones() {
    let mut c = groups(&[vec![200, 100], vec![100, 200]], &[0, 0]);
    assert_eq!((c.holders(0), c.holders(1)), (vec![0], vec![1]));
    let n1_g1 = transitions_of(&c, 1, 1);
    c.kill(0);
    c.run_for(ms_(1000));
    assert_eq!((c.holders(0), c.holders(1)), (vec![1], vec![1]));
    c.start(0);
    c.run_for(ms_(3000));
    // g0 returns to n0 (preempt); g1 never moved.
    assert_eq!((c.holders(0), c.holders(1)), (vec![0], vec![1]));
    assert_eq!(transitions_of(&c, 1, 1), n1_g1, "{:?}", c.log);
    c.check_quiet(ms_(5000), true);
    assert_eq!(c.violations, Vec::<String>::new());
    assert_eq!(c.stats.failovers_checked, 1);
    assert!(c.stats.shared_datagrams > 10, "{:?}", c.stats);
}

#[test]
fn link_loss_faults_only_the_groups_on_that_interface() {
    // n0 is the best everywhere; g0 and g2 on interface 0, g1 on interface 1.
    let mut c = groups(
        &[vec![200, 100], vec![200, 100], vec![200, 100]],
        &[0, 1, 0],
    );
    assert_eq!(c.stats.top_everywhere, 0);
    c.link(0, 1, true);
    c.run_for(ms_(1000));
    assert_eq!(c.state(0, 1), Some(State::Fault));
    assert_eq!(
        (c.holders(0), c.holders(1), c.holders(2)),
        (vec![0], vec![1], vec![0])
    );
    assert_eq!((transitions_of(&c, 0, 0), transitions_of(&c, 0, 2)), (2, 2));
    c.link(0, 1, false);
    c.run_for(ms_(3000));
    assert_eq!(
        (c.holders(0), c.holders(1), c.holders(2)),
        (vec![0], vec![0], vec![0])
    );
    // Interface 0 carries two groups: both go.
    c.link(0, 0, true);
    c.run_for(ms_(1000));
    assert_eq!(
        (c.holders(0), c.holders(1), c.holders(2)),
        (vec![1], vec![0], vec![1])
    );
    // A restarted node still has its link down.
    c.kill(0);
    c.start(0);
    c.run_for(ms_(3000));
    assert_eq!(
        (c.state(0, 0), c.state(0, 2)),
        (Some(State::Fault), Some(State::Fault))
    );
    assert_eq!(c.holders(1), vec![0]);
    c.link(0, 0, false);
    c.run_for(ms_(3000));
    c.check_quiet(ms_(5000), true);
    assert_eq!(c.violations, Vec::<String>::new());
    assert_eq!(c.stats.top_everywhere, 1);
}

#[test]
fn a_group_specific_input_moves_nothing_in_the_other_groups() {
    let all = Layers {
        probe: true,
        quorum: false,
        witness: false,
        conflicts: true,
    };
    let mut c = Cluster::with_groups(
        3,
        &[vec![200, 100], vec![200, 100]],
        &[0, 0],
        ms_(50),
        ms_(5),
    );
    c.set_layers(all);
    c.start(0);
    c.start(1);
    c.run_for(ms_(1000));
    assert_eq!((c.holders(0), c.holders(1)), (vec![0], vec![0]));
    let g0 = transitions_of(&c, 0, 0) + transitions_of(&c, 1, 0);
    // Forged claims for g1's VIPs (a stranger's MAC, the backup's) and maintenance, a health
    // fault and a handover of g1 only.
    c.forge(1, [6, 0xfe, 0, 0, 0, 1]);
    c.forge(1, mac_of(1, 0));
    c.inputs(0, vec![(1, Input::Maintenance { on: true })]);
    c.run_for(ms_(1000));
    assert_eq!((c.holders(0), c.holders(1)), (vec![0], vec![1]));
    c.inputs(0, vec![(1, Input::Maintenance { on: false })]);
    let fault = Input::Fault {
        cause: FaultCause::HealthCheck,
        reason: "g1's check failed".into(),
    };
    c.inputs(1, vec![(1, fault)]);
    c.run_for(ms_(1000));
    assert_eq!((c.holders(0), c.holders(1)), (vec![0], vec![0]));
    let cause = FaultCause::HealthCheck;
    c.inputs(1, vec![(1, Input::FaultCleared { cause })]);
    c.run_for(ms_(200));
    c.inputs(0, vec![(1, Input::Handover { to: None })]);
    c.run_for(ms_(1000));
    assert_eq!((c.holders(0), c.holders(1)), (vec![0], vec![1]));
    assert_eq!(
        transitions_of(&c, 0, 0) + transitions_of(&c, 1, 0),
        g0,
        "{:?}",
        c.log
    );
    assert_eq!(c.violations, Vec::<String>::new());
    assert!(c.stats.foreign_timeouts > 10, "{:?}", c.stats);
}

#[test]
fn the_node_top_ranked_everywhere_ends_up_holding_every_group() {
    // n2 starts last and is the best in all three groups; the others differ per group.
    let p = [
        vec![150, 100, 254],
        vec![100, 150, 254],
        vec![120, 120, 254],
    ];
    let mut c = Cluster::with_groups(5, &p, &[0, 0, 0], ms_(50), ms_(5));
    c.start(0);
    c.start(1);
    c.run_for(ms_(1000));
    assert_eq!(
        (c.holders(0), c.holders(1), c.holders(2)),
        (vec![0], vec![1], vec![0])
    );
    c.start(2);
    c.run_for(ms_(3000));
    c.check_quiet(ms_(5000), true);
    assert_eq!(
        (c.holders(0), c.holders(1), c.holders(2)),
        (vec![2], vec![2], vec![2])
    );
    assert_eq!((c.violations.len(), c.stats.top_everywhere), (0, 1));
}

#[test]
fn checker_catches_groups_mixed_up() {
    let mut c = Cluster::with_groups(
        1,
        &[vec![200, 100], vec![100, 200]],
        &[0, 0],
        ms_(50),
        ms_(5),
    );
    c.nodes[1].broken = Broken::CrossTalk; // feeds n0's g0 adverts to its g1 and back
    c.start(0);
    c.start(1);
    c.run_for(ms_(3000));
    assert!(
        c.violations
            .iter()
            .any(|v| v.contains("acted on an input for another group")),
        "{:?}",
        c.violations
    );
}

#[test]
fn checker_catches_a_master_off_the_node_top_ranked_everywhere() {
    let mut c = groups(&[vec![200, 100], vec![200, 100]], &[0, 0]);
    c.inputs(0, vec![(1, Input::Handover { to: None })]);
    c.run_for(ms_(1000));
    // n0 handed g1 over on purpose and does not take it back.
    c.check_quiet_groups(ms_(1000), &[true, true]);
    assert!(
        c.violations
            .iter()
            .any(|v| v.contains("top-ranked in every group but g1")),
        "{:?}",
        c.violations
    );
}

/// Found by the multi-group soak (seed 1908), reproduced with one group: a node restarted
/// while peer adverts are blocked has never heard the others, so it takes a member's MAC
/// for a stranger's; that member knows it only from its goodbye (priority 0) advert, so
/// it ranks it below itself. Each re-announces against the other until the adverts flow.
#[test]
fn restart_behind_blocked_adverts_then_master_leaves_keeps_one_holder_on_l2() {
    let all = Layers {
        probe: true,
        quorum: false,
        witness: false,
        conflicts: true,
    };
    let mut failing = Vec::new();
    // The master leaves at every point of the restarted node's probe cycle.
    for offset in 0..50 {
        let mut c = layered(&[250, 100, 200], all);
        for i in 0..3 {
            c.start(i);
        }
        c.run_for(ms_(1000));
        c.shutdown(0); // n2 takes over; n1 now follows n2
        c.run_for(ms_(1000));
        c.block_adverts(&[0, 1, 1]);
        c.start(0); // never hears n1 or n2; its probes are answered by n2
        c.run_for(ms_(1000 + offset));
        assert_eq!(c.holders(0), vec![2]);
        // n1 takes over on n2's goodbye, n0 when its probe finds the VIPs free.
        c.shutdown(2);
        c.run_for(ms_(1000));
        if !c.violations.is_empty() {
            failing.push((offset, c.violations.clone(), c.log.clone()));
        }
    }
    if let Some((_, v, log)) = failing.first() {
        let log = &log[log.len().saturating_sub(30)..];
        let offsets: Vec<u64> = failing.iter().map(|f| f.0).collect();
        panic!("master left at +{offsets:?} ms: {v:?}\n{}", log.join("\n"));
    }
}
