//! Deterministic simulation: whole clusters of [`Election`]s on a virtual clock.
//!
//! A [`Cluster`] owns N elections and a message queue. Every `Send` goes to every other node
//! after a delay drawn from a seeded PRNG (`0..=max_delay`, FIFO per link, as datagrams on one
//! QUIC path), may be lost with probability `loss`, and is dropped when the two nodes are in
//! different partition groups (checked at send and at delivery). Nodes can be killed (silently),
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
}

struct Node {
    cfg: ElectionConfig,
    e: Option<Election>,
    holds: bool,
    /// Advert group: nodes hear each other's adverts only within one.
    group: u8,
    /// L2 group: ARP (probes, announcements) reaches only within one; the gateway is in 0.
    l2: u8,
    broken: Broken,
}

/// What travels between nodes (or comes back to one) in the sim.
enum Payload {
    Advert(Advert),
    /// The node's ARP probe window ends: answered by any holder on its L2.
    ProbeDone,
    /// An announcement from `from` reaches this node's ARP watch.
    Conflict([u8; 6]),
    /// The witness's verdict.
    Witness(bool),
}

struct Msg {
    at: Instant,
    id: u64,
    from: usize,
    to: usize,
    payload: Payload,
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
    /// Some node of `group` holds the VIPs.
    Failover { group: u8, deadline: Instant },
    /// `winner` holds the VIPs; if `exclusive`, nobody else becomes master until `until`.
    Handover {
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
    }
}

struct Cluster {
    now: Instant,
    base: Instant,
    rng: SmallRng,
    nodes: Vec<Node>,
    queue: Vec<Msg>,
    next_id: u64,
    link_last: Vec<Vec<Instant>>,
    loss: f64,
    max_delay: Duration,
    interval: Duration,
    down_multiplier: u32,
    /// Pairs both holding the VIPs in one group: since when, and whether reported.
    dual_since: BTreeMap<(usize, usize), (Instant, bool)>,
    masterless_since: BTreeMap<u8, (Instant, bool)>,
    /// Pairs on one L2 both holding (invariant 6).
    l2_dual_since: BTreeMap<(usize, usize), (Instant, bool)>,
    /// Isolated holders (invariant 7).
    isolated_since: BTreeMap<usize, (Instant, bool)>,
    layers: Layers,
    probe_window: Duration,
    /// The witness verdict last scheduled for each node.
    witness_reported: Vec<Option<bool>>,
    expects: Vec<Expect>,
    transitions: u64,
    log: Vec<String>,
    violations: Vec<String>,
    stats: Stats,
}

impl Cluster {
    /// A cluster of not yet started nodes named n0, n1, … with these priorities.
    fn new(seed: u64, priorities: &[u8], interval: Duration, max_delay: Duration) -> Self {
        let base = Instant::now();
        let nodes = priorities
            .iter()
            .enumerate()
            .map(|(i, &priority)| Node {
                cfg: ElectionConfig {
                    name: format!("n{i}"),
                    priority,
                    advert_interval: interval,
                    down_multiplier: DEFAULT_DOWN_MULTIPLIER,
                    preempt: true,
                    preempt_delay: Duration::ZERO,
                    mac: [2, 0, 0, 0, 0, u8::try_from(i).unwrap_or(0xff)],
                    // Peer traffic and L2 are not modelled apart here; the probe, quorum and
                    // witness rules have their own tests.
                    probe: false,
                    cluster_size: priorities.len(),
                    quorum: false,
                    fingerprint: [0; 4],
                    foreign_holder_timeout: None,
                },
                e: None,
                holds: false,
                group: 0,
                l2: 0,
                broken: Broken::No,
            })
            .collect();
        Cluster {
            now: base,
            base,
            rng: SmallRng::seed_from_u64(seed),
            nodes,
            queue: Vec::new(),
            next_id: 0,
            link_last: vec![vec![base; priorities.len()]; priorities.len()],
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
            witness_reported: vec![None; priorities.len()],
            expects: Vec::new(),
            transitions: 0,
            log: Vec::new(),
            violations: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Switches split-brain layers on for every node (before they start).
    fn set_layers(&mut self, layers: Layers) {
        self.layers = layers;
        for n in &mut self.nodes {
            n.cfg.probe = layers.probe;
            n.cfg.quorum = layers.quorum;
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

    /// A node whose graceful stop has finished leaves.
    fn reap(&mut self, i: usize) {
        if self.nodes[i].e.as_ref().is_some_and(Election::stopped) {
            self.nodes[i].e = None;
            self.nodes[i].holds = false;
            self.log.push(format!("{} n{i} stopped", self.t()));
        }
    }

    /// Live nodes in advert group `g` (they advertise, faulted or not).
    fn alive_in_group(&self, g: u8) -> usize {
        self.group_members(g).filter(|&j| self.alive(j)).count()
    }

    /// Whether advert group `g` must have a holder: it has an eligible node, it reaches
    /// quorum, it is not isolated, and no holder elsewhere answers its probes on L2.
    fn needs_holder(&self, g: u8) -> bool {
        let eligible: Vec<usize> = self
            .group_members(g)
            .filter(|&j| self.eligible(j))
            .collect();
        if eligible.is_empty() {
            return false;
        }
        if self.layers.quorum && self.alive_in_group(g) < self.nodes.len() / 2 + 1 {
            return false;
        }
        if self.layers.witness
            && self.alive_in_group(g) < 2
            && eligible.iter().all(|&j| self.nodes[j].l2 != 0)
        {
            return false;
        }
        if self.layers.probe {
            let answered = self.holders().into_iter().any(|h| {
                self.nodes[h].group != g
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

    fn alive(&self, i: usize) -> bool {
        self.nodes[i].e.is_some()
    }

    fn state(&self, i: usize) -> Option<State> {
        self.nodes[i].e.as_ref().map(Election::state)
    }

    fn holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].holds)
            .collect()
    }

    fn rank_of(&self, i: usize) -> Rank<'_> {
        Rank {
            priority: self.nodes[i].cfg.priority,
            name: &self.nodes[i].cfg.name,
        }
    }

    // ----- operations -----

    fn start(&mut self, i: usize) {
        let mut e = Election::new(self.nodes[i].cfg.clone(), self.now);
        let acts = e.handle(self.now, Input::Start);
        self.nodes[i].e = Some(e);
        self.witness_reported[i] = None;
        self.apply(i, acts);
        self.update_witness();
        self.check();
    }

    /// Crash: no goodbye, VIPs gone with the machine.
    fn kill(&mut self, i: usize) {
        let was_holder = self.nodes[i].holds;
        self.nodes[i].e = None;
        self.nodes[i].holds = false;
        self.log.push(format!("{} kill n{i}", self.t()));
        let g = self.nodes[i].group;
        if was_holder
            && !self.holders().iter().any(|&h| self.nodes[h].group == g)
            && self.needs_holder(g)
        {
            let best = self
                .group_members(g)
                .filter(|&j| self.eligible(j))
                .map(|j| self.nodes[j].cfg.priority)
                .max();
            if let Some(p) = best {
                // With the probe on, a backup that finds the VIPs free while a better one is
                // still heard gives it one turn (DEFER_TO_BETTER_BACKUP intervals and a second
                // probe): the bound when that better one cannot claim (no quorum, say).
                let defer = if self.layers.probe {
                    self.interval * super::DEFER_TO_BETTER_BACKUP + self.probe_window
                } else {
                    Duration::ZERO
                };
                let deadline = self.now
                    + self.spec_master_down(p)
                    + self.interval
                    + self.max_delay
                    + self.probe_window
                    + defer;
                self.expects.push(Expect::Failover { group: g, deadline });
            }
        }
        self.check();
    }

    /// Graceful: Input::Shutdown, its actions (the priority-0 advert) applied, then gone.
    fn shutdown(&mut self, i: usize) {
        let sole_master = self.nodes[i].holds && self.holders().len() == 1;
        let g = self.nodes[i].group;
        let name = self.nodes[i].cfg.name.clone();
        let Some(e) = self.nodes[i].e.as_mut() else {
            return;
        };
        let acts = e.handle(self.now, Input::Shutdown);
        self.log.push(format!("{} shutdown n{i}", self.t()));
        self.apply(i, acts);
        self.nodes[i].e = None;
        // Expect a handover when the conditions of invariant 4 hold.
        let mut survivors: Vec<usize> = self.group_members(g).filter(|&j| self.alive(j)).collect();
        let all_follow = survivors.iter().all(|&j| {
            let e = self.nodes[j].e.as_ref();
            e.is_some_and(|e| e.state() == State::Backup && e.master() == Some(name.as_str()))
        });
        let quorum_ok = !self.layers.quorum || survivors.len() > self.nodes.len() / 2;
        // A lone survivor that the witness reports isolated must not take the VIPs
        // (invariant 7), handover or not.
        let may_hold = self.needs_holder(g);
        if sole_master
            && self.loss == 0.0
            && !survivors.is_empty()
            && all_follow
            && quorum_ok
            && may_hold
        {
            survivors.sort_by(|&a, &b| self.rank_of(b).cmp(&self.rank_of(a)));
            let skew = |j: usize| skew_for(self.nodes[j].cfg.priority, self.interval);
            let winner = survivors[0];
            let exclusive = survivors
                .get(1)
                .is_none_or(|&s| skew(s) > skew(winner) + self.max_delay * 2);
            let e = self.nodes[winner].e.as_ref();
            let others: Vec<&str> = survivors[1..]
                .iter()
                .map(|&s| self.nodes[s].cfg.name.as_str())
                .collect();
            if exclusive
                || e.is_some_and(|e| {
                    e.may_preempt(self.now) && others.iter().all(|n| e.settled_with(self.now, n))
                })
            {
                let deadline = self.now + self.max_delay + skew(winner);
                self.expects.push(Expect::Handover {
                    winner,
                    deadline,
                    exclusive,
                    until: deadline + self.max_delay * 2,
                    done: false,
                });
            }
        }
        self.check();
    }

    fn input(&mut self, i: usize, input: Input) {
        if let Some(e) = self.nodes[i].e.as_mut() {
            let acts = e.handle(self.now, input);
            self.apply(i, acts);
            self.reap(i);
        }
        self.check();
    }

    /// A rogue host claims the VIPs with `mac` towards every holder (invariant 8: with an
    /// unknown MAC or a live backup's, no live heard master may let go).
    fn forge(&mut self, mac: [u8; 6]) {
        self.stats.forged += 1;
        self.log
            .push(format!("{} forged claim from {mac:02x?}", self.t()));
        for h in self.holders() {
            let owner = (0..self.nodes.len()).find(|&j| self.nodes[j].cfg.mac == mac);
            let protected = match owner {
                None => true,
                Some(j) => {
                    self.alive(j)
                        && self.nodes[j].group == self.nodes[h].group
                        && self.state(j) == Some(State::Backup)
                        && self.loss == 0.0
                }
            };
            self.input(h, Input::Conflict { mac });
            if protected && !self.nodes[h].holds && self.alive(h) {
                self.violation(format!("n{h} let go of the VIPs on a forged frame"));
            }
        }
    }

    /// Blocks adverts between the two groups; L2 (ARP) stays whole.
    fn block_adverts(&mut self, groups: &[u8]) {
        for (n, &g) in self.nodes.iter_mut().zip(groups) {
            n.group = g;
        }
        self.log
            .push(format!("{} adverts blocked {groups:?}", self.t()));
        self.stats.adverts_blocked += 1;
        self.masterless_since.clear();
        self.check();
    }

    /// Graceful stop (SIGTERM): a master hands over first.
    fn stop(&mut self, i: usize) {
        self.stats.graceful_stops += 1;
        self.log.push(format!("{} stop n{i}", self.t()));
        self.input(i, Input::Stop);
    }

    /// Cuts the cluster in two (node i goes to group `groups[i]`, 0 or 1).
    fn partition(&mut self, groups: &[u8]) {
        for (n, &g) in self.nodes.iter_mut().zip(groups) {
            n.group = g;
            n.l2 = g;
        }
        self.update_witness();
        self.log.push(format!("{} partition {groups:?}", self.t()));
        self.stats.partitions += 1;
        self.masterless_since.clear();
        self.check();
    }

    fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
            n.l2 = 0;
        }
        self.update_witness();
        self.log.push(format!("{} heal", self.t()));
        self.stats.heals += 1;
        self.masterless_since.clear();
        self.check();
    }

    fn set_loss(&mut self, loss: f64) {
        self.loss = loss;
        // Dual-master episodes are timed from when the network became reliable.
        self.dual_since.clear();
        self.check();
    }

    // ----- the engine -----

    fn group_members(&self, g: u8) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(move |&j| self.nodes[j].group == g)
    }

    /// Alive and able to become master.
    fn eligible(&self, i: usize) -> bool {
        matches!(self.state(i), Some(State::Backup | State::Master))
    }

    fn apply(&mut self, i: usize, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send(advert) => {
                    for j in 0..self.nodes.len() {
                        if j == i || self.nodes[j].group != self.nodes[i].group {
                            continue;
                        }
                        if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                            continue;
                        }
                        let max_us = self.max_delay.as_micros() as u64;
                        let delay = Duration::from_micros(self.rng.random_range(0..=max_us));
                        let at = (self.now + delay).max(self.link_last[i][j]);
                        self.link_last[i][j] = at;
                        self.queue.push(Msg {
                            at,
                            id: self.next_id,
                            from: i,
                            to: j,
                            payload: Payload::Advert(advert.clone()),
                        });
                        self.next_id += 1;
                    }
                }
                Action::InstallVips => self.nodes[i].holds = true,
                Action::ReleaseVips => self.nodes[i].holds = false,
                Action::Announce => {
                    if self.layers.conflicts {
                        let mac = self.nodes[i].cfg.mac;
                        for j in 0..self.nodes.len() {
                            if j != i && self.nodes[j].l2 == self.nodes[i].l2 && self.alive(j) {
                                let delay = self.random_delay();
                                self.schedule(i, j, delay, Payload::Conflict(mac));
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
                    self.schedule(i, i, window, Payload::ProbeDone);
                }
                Action::Probe => self
                    .violations
                    .push(format!("n{i} asked for an ARP probe with probing off")),
                Action::Transition {
                    from,
                    to,
                    epoch,
                    cause,
                    reason,
                } => {
                    self.transitions += 1;
                    if to == State::Master {
                        self.stats.takeovers += 1;
                        self.stats.preemptions += u64::from(cause == Cause::Preempt);
                        for x in &mut self.expects {
                            if let Expect::Handover {
                                winner,
                                exclusive: true,
                                until,
                                ..
                            } = x
                            {
                                let same_group = self.nodes[*winner].group == self.nodes[i].group;
                                if *winner != i && same_group && self.now <= *until {
                                    let msg = format!(
                                        "n{i} took over during the handover to n{winner}: {reason}"
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
                    let line = format!("{} n{i} {from}->{to} epoch {epoch}: {reason}", self.t());
                    self.log.push(line);
                }
            }
        }
    }

    /// The earliest pending event: (time, Ok(message index) | Err(node index)).
    fn next_event(&self) -> Option<(Instant, Result<usize, usize>)> {
        let msg = (0..self.queue.len()).min_by_key(|&k| (self.queue[k].at, self.queue[k].id));
        let node = (0..self.nodes.len())
            .filter_map(|i| Some((self.nodes[i].e.as_ref()?.next_deadline()?, i)))
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
        match ev {
            Ok(k) => {
                let m = self.queue.swap_remove(k);
                let input = match m.payload {
                    Payload::Advert(advert) => {
                        let cut = self.nodes[m.from].group != self.nodes[m.to].group;
                        let dropped = match self.nodes[m.to].broken {
                            Broken::Deaf => true,
                            Broken::IgnoresBye => advert.priority == 0,
                            Broken::No | Broken::NoArp | Broken::NoWitness => false,
                        };
                        (!cut && !dropped).then_some(Input::Advert(advert))
                    }
                    Payload::ProbeDone => {
                        let l2 = self.nodes[m.to].l2;
                        let answered_by = (0..self.nodes.len())
                            .find(|&j| j != m.to && self.nodes[j].holds && self.nodes[j].l2 == l2)
                            .map(|j| self.nodes[j].cfg.mac);
                        Some(Input::ProbeResult { answered_by })
                    }
                    Payload::Conflict(mac) => {
                        let reach = self.nodes[m.from].l2 == self.nodes[m.to].l2
                            && self.nodes[m.to].broken != Broken::NoArp;
                        // The ARP watch reports only to a master.
                        let master = self.state(m.to) == Some(State::Master);
                        self.stats.conflicts_delivered += u64::from(reach && master);
                        (reach && master).then_some(Input::Conflict { mac })
                    }
                    Payload::Witness(_) if self.nodes[m.to].broken == Broken::NoWitness => None,
                    Payload::Witness(reachable) => Some(Input::Witness {
                        reachable,
                        detail: format!("sim gateway reachable={reachable}"),
                    }),
                };
                if let Some(input) = input {
                    if let Some(e) = self.nodes[m.to].e.as_mut() {
                        let acts = e.handle(at, input);
                        self.apply(m.to, acts);
                        self.reap(m.to);
                    }
                }
            }
            Err(i) => {
                if let Some(e) = self.nodes[i].e.as_mut() {
                    let acts = e.handle(at, Input::Timeout);
                    self.apply(i, acts);
                    self.reap(i);
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

    /// Records every invariant violated at `self.now`.
    fn check(&mut self) {
        let now = self.now;
        let n = self.nodes.len();
        for i in 0..n {
            let master = self.state(i) == Some(State::Master);
            if self.nodes[i].holds != master {
                self.violation(format!(
                    "n{i} holds VIPs = {} but state is {:?}",
                    self.nodes[i].holds,
                    self.state(i)
                ));
            }
        }
        // 1. No lasting split brain.
        let bound = self.interval + self.max_delay;
        for i in 0..n {
            for j in i + 1..n {
                let key = (i, j);
                let dual = self.nodes[i].holds
                    && self.nodes[j].holds
                    && self.nodes[i].group == self.nodes[j].group;
                if !dual {
                    if !self.dual_since.is_empty() && self.dual_since.remove(&key).is_some() {
                        self.stats.dual_episodes += 1;
                    }
                    continue;
                }
                let (since, reported) = *self.dual_since.entry(key).or_insert((now, false));
                if self.loss == 0.0 && now - since > bound && !reported {
                    self.dual_since.insert(key, (since, true));
                    self.violation(format!(
                        "n{i} and n{j} both master for {} > {}",
                        super::ms(now - since),
                        super::ms(bound)
                    ));
                }
            }
        }
        // 2. Never masterless for long.
        let lowest = self.nodes.iter().map(|n| n.cfg.priority).min().unwrap_or(1);
        let mut gap_bound = self.spec_master_down(lowest) + self.interval + self.max_delay;
        if self.layers.probe || self.layers.witness || self.layers.quorum {
            // A probe window, and the witness's fall intervals before isolation is known.
            gap_bound += self.probe_window + self.interval * 4;
        }
        if self.layers.probe {
            // One turn given to a better backup that then does not claim (see the failover
            // deadline in `kill`).
            gap_bound += self.interval * super::DEFER_TO_BETTER_BACKUP + self.probe_window;
        }
        for g in 0..=1 {
            let has_holder = self.group_members(g).any(|j| self.nodes[j].holds);
            if !self.needs_holder(g) || has_holder {
                self.masterless_since.remove(&g);
                continue;
            }
            let (since, reported) = *self.masterless_since.entry(g).or_insert((now, false));
            if now - since > gap_bound && !reported {
                self.masterless_since.insert(g, (since, true));
                self.violation(format!(
                    "group {g} without master for {} > {}",
                    super::ms(now - since),
                    super::ms(gap_bound)
                ));
            }
        }
        // 6. One L2, one holder (even with adverts blocked).
        if self.layers.probe && self.layers.conflicts {
            let bound = self.interval * 2 + self.probe_window + self.max_delay * 2;
            for i in 0..n {
                for j in i + 1..n {
                    let dual = self.nodes[i].holds
                        && self.nodes[j].holds
                        && self.nodes[i].l2 == self.nodes[j].l2;
                    if !dual {
                        self.l2_dual_since.remove(&(i, j));
                        continue;
                    }
                    let (since, reported) =
                        *self.l2_dual_since.entry((i, j)).or_insert((now, false));
                    if self.loss == 0.0 && now - since > bound && !reported {
                        self.l2_dual_since.insert((i, j), (since, true));
                        self.violation(format!(
                            "n{i} and n{j} hold the VIPs on one L2 for {} > {}",
                            super::ms(now - since),
                            super::ms(bound)
                        ));
                    }
                }
            }
        }
        // 7. An isolated holder lets go.
        if self.layers.witness {
            let bound = self.spec_master_down(lowest) + self.interval * 4 + self.max_delay;
            for i in 0..n {
                let isolated = self.nodes[i].holds
                    && self.nodes[i].l2 != 0
                    && self.alive_in_group(self.nodes[i].group) == 1;
                if !isolated {
                    self.isolated_since.remove(&i);
                    continue;
                }
                let (since, reported) = *self.isolated_since.entry(i).or_insert((now, false));
                if now - since > bound && !reported {
                    self.isolated_since.insert(i, (since, true));
                    self.violation(format!(
                        "n{i} isolated and still holding after {}",
                        super::ms(now - since)
                    ));
                }
            }
        }
        // 3 and 4. Failover and handover deadlines.
        let mut expects = std::mem::take(&mut self.expects);
        expects.retain_mut(|x| match x {
            Expect::Failover { group, deadline } => {
                // Satisfied by a holder in the group, or by one elsewhere on the same L2
                // that answers the group's probes (adverts blocked, ARP whole).
                if self.group_members(*group).any(|j| self.nodes[j].holds)
                    || !self.needs_holder(*group)
                {
                    self.stats.failovers_checked += 1;
                    false
                } else if now > *deadline {
                    let late = super::ms(now - *deadline);
                    self.violation(format!(
                        "no failover in group {group}: {late} past the bound"
                    ));
                    false
                } else {
                    true
                }
            }
            Expect::Handover {
                winner,
                deadline,
                exclusive,
                until,
                done,
            } => {
                if !*done && self.nodes[*winner].holds {
                    *done = true;
                    self.stats.handovers_checked += 1;
                    self.stats.exclusive_handovers += u64::from(*exclusive);
                } else if !*done && now > *deadline {
                    *done = true;
                    let w = *winner;
                    self.violation(format!("handover to n{w} not done by its deadline"));
                }
                !(*done && now > *until)
            }
        });
        self.expects.append(&mut expects);
    }

    /// Invariant 5: over `window` (no loss, no partition, no fault), nobody changes state and
    /// exactly one agreed master, the top-ranked node if everyone preempts.
    fn check_quiet(&mut self, window: Duration, expect_top: bool) {
        let before = self.transitions;
        self.run_for(window);
        self.stats.quiet_windows += 1;
        if self.transitions != before {
            let k = self.transitions - before;
            self.violation(format!("{k} transitions in a quiet window"));
        }
        let holders = self.holders();
        if holders.len() != 1 {
            self.violation(format!("holders after quiet window: {holders:?}"));
            return;
        }
        let m = holders[0];
        let name = self.nodes[m].cfg.name.clone();
        for (i, node) in self.nodes.iter().enumerate() {
            let seen = node.e.as_ref().and_then(|e| e.master());
            if seen != Some(name.as_str()) {
                let msg = format!("n{i} thinks the master is {seen:?}, not {name}");
                self.violations.push(msg);
            }
        }
        let top = (0..self.nodes.len()).max_by(|&a, &b| self.rank_of(a).cmp(&self.rank_of(b)));
        if expect_top && top != Some(m) {
            self.violation(format!("master is n{m}, not the top-ranked {top:?}"));
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

/// One random scenario: start, a few random faults of every kind, then heal everything and
/// demand a quiet, converged cluster.
fn run_seed(seed: u64) -> Result<Stats, String> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let n = rng.random_range(2..=5usize);
    let interval = ms_(if rng.random_bool(0.2) { 10 } else { 50 });
    let max_delay = interval / 10;
    let mut spaced = [250u8, 190, 130, 70, 10];
    let priorities: Vec<u8> = match rng.random_range(0..3) {
        0 => {
            // Distinct, spaced so that handovers are exclusive (skew gap > 2 × max_delay).
            for k in (1..spaced.len()).rev() {
                spaced.swap(k, rng.random_range(0..=k));
            }
            spaced[..n].to_vec()
        }
        1 => vec![100; n],
        _ => (0..n).map(|_| [100, 150][rng.random_range(0..2)]).collect(),
    };
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

    let mut c = Cluster::new(seed, &priorities, interval, max_delay);
    for node in &mut c.nodes {
        node.cfg.preempt = preempt;
        node.cfg.preempt_delay = preempt_delay;
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
    let mut maintenance = vec![false; n];
    let mut handed_over = false;
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
        let holders = c.holders();
        let ops = if layered { 12 } else { 7 };
        match rng.random_range(0..ops) {
            0 if alive.len() > 1 && !holders.is_empty() => c.kill(holders[0]),
            1 if alive.len() > 1 => c.kill(alive[rng.random_range(0..alive.len())]),
            2 if alive.len() > 1 && !holders.is_empty() => c.shutdown(holders[0]),
            3 if !dead.is_empty() => c.start(dead[rng.random_range(0..dead.len())]),
            4 if c.nodes.iter().all(|n| n.group == 0) => {
                let groups: Vec<u8> = (0..n).map(|_| rng.random_range(0..2)).collect();
                c.partition(&groups);
            }
            4 => c.heal(),
            5 if !alive.is_empty() => {
                let i = alive[rng.random_range(0..alive.len())];
                if c.state(i) == Some(State::Fault) {
                    c.input(
                        i,
                        Input::FaultCleared {
                            cause: FaultCause::HealthCheck,
                        },
                    );
                } else {
                    c.stats.faults += 1;
                    c.input(
                        i,
                        Input::Fault {
                            cause: FaultCause::HealthCheck,
                            reason: "health check failed".into(),
                        },
                    );
                }
            }
            7 if c.nodes.iter().all(|n| n.group == 0 && n.l2 == 0) => {
                let groups: Vec<u8> = (0..n).map(|_| rng.random_range(0..2)).collect();
                c.block_adverts(&groups);
            }
            8 => {
                let mac = if rng.random_bool(0.5) {
                    [6, 0xfe, 0, 0, 0, rng.random_range(0..255)]
                } else {
                    c.nodes[rng.random_range(0..n)].cfg.mac
                };
                c.forge(mac);
            }
            9 if !holders.is_empty() => {
                // The node that hands over on purpose does not preempt back.
                handed_over = true;
                c.input(holders[0], Input::Handover { to: None });
            }
            10 if !alive.is_empty() => {
                let i = alive[rng.random_range(0..alive.len())];
                maintenance[i] = !maintenance[i];
                c.stats.maintenance += 1;
                c.input(i, Input::Maintenance { on: maintenance[i] });
            }
            11 if alive.len() > 1 => {
                let i = holders.first().copied().unwrap_or(alive[0]);
                c.stop(i);
                maintenance[i] = false;
            }
            _ => {}
        }
        c.run_for(interval * rng.random_range(10..40));
    }

    // Repair everything, then demand convergence and quiet.
    c.heal();
    c.set_loss(0.0);
    for (i, on) in maintenance.iter_mut().enumerate() {
        if std::mem::take(on) {
            c.input(i, Input::Maintenance { on: false });
        }
    }
    for i in 0..n {
        if !c.alive(i) {
            c.start(i);
        } else if c.state(i) == Some(State::Fault) {
            c.input(
                i,
                Input::FaultCleared {
                    cause: FaultCause::HealthCheck,
                },
            );
        }
    }
    // Convergence includes a preemption, which waits for PREEMPT_SETTLE of contact, and
    // the witness's verdicts (three intervals).
    c.run_for(interval * 44 + super::PREEMPT_SETTLE);
    c.check_quiet(interval * 60, preempt && !handed_over);
    if c.violations.is_empty() {
        Ok(c.stats)
    } else {
        Err(c.report(seed))
    }
}

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

// The 1200 seeds are split in four tests so the harness runs them in parallel.

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
}

/// A longer soak for when the election changes: `cargo test soak -- --ignored`.
#[test]
#[ignore = "soak: 10 000 more seeds, about a minute"]
fn soak_random_scenarios() {
    sweep(1200..11_200);
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
    assert_eq!(c.holders(), vec![1]);
    c.check_quiet(ms_(10_000), true);
    assert_eq!(c.violations, Vec::<String>::new());
}

#[test]
fn kill_master_fails_over_to_the_next_priority() {
    let mut c = cluster(&[100, 200, 150]);
    c.kill(1);
    let t = c.now;
    while c.holders().is_empty() {
        c.step();
    }
    // n2 (150) takes over at master-down after the last advert it heard from n1.
    assert_eq!(c.holders(), vec![2]);
    assert!(c.now - t <= c.spec_master_down(150) + c.max_delay);
    c.run_for(ms_(1000));
    assert_eq!((c.violations.len(), c.stats.failovers_checked), (0, 1));
}

#[test]
fn restarted_higher_priority_node_preempts_unless_nopreempt() {
    for preempt in [true, false] {
        let mut c = cluster(&[100, 200]);
        for node in &mut c.nodes {
            node.cfg.preempt = preempt;
        }
        c.kill(1);
        c.run_for(ms_(1000));
        assert_eq!(c.holders(), vec![0]);
        c.start(1);
        c.run_for(ms_(2000));
        assert_eq!(
            c.holders(),
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
    assert_eq!(c.holders(), vec![1]);
    c.shutdown(1);
    let t = c.now;
    while c.holders().is_empty() {
        c.step();
    }
    assert_eq!(c.holders(), vec![2]);
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
    assert_eq!(c.holders(), vec![0, 1], "each side has its master");
    let epochs: Vec<u64> = c
        .nodes
        .iter()
        .map(|n| n.e.as_ref().unwrap().epoch())
        .collect();
    assert_eq!(epochs, vec![1, 2]);
    c.heal();
    c.run_for(ms_(60));
    // n0 was stale (epoch 1 < 2): it stepped down within one interval + delay…
    assert_eq!(c.holders(), vec![1]);
    assert_eq!(c.stats.stale_stepdowns, 1);
    // …and preempted n1 once it had heard n1 for PREEMPT_SETTLE, at master-down, with
    // epoch 3 — not before: n1 might not hear n0 yet.
    c.run_for(ms_(900));
    assert_eq!(c.holders(), vec![1]);
    c.run_for(ms_(600));
    assert_eq!(c.holders(), vec![0]);
    assert_eq!(c.nodes[0].e.as_ref().unwrap().epoch(), 3);
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
    assert_eq!(c.holders(), vec![1]);
    c.run_for(ms_(2000));
    assert_eq!(c.holders(), vec![1], "a faulty node never takes over");
    c.input(
        0,
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    );
    c.run_for(ms_(1000));
    assert_eq!(c.holders(), vec![0]);
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
        n.cfg.probe = false;
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
    c.nodes[1].cfg.down_multiplier = 20; // breaks the spec the checker assumes
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
    // n2 took over first (n1 missed the goodbye), then n1 preempted it.
    assert!(
        c.violations.iter().any(|v| v.contains("handover to n1")),
        "{:?}",
        c.violations
    );
    assert!(
        c.violations.iter().any(|v| v.contains("took over during")),
        "{:?}",
        c.violations
    );
}

#[test]
fn checker_catches_flapping() {
    // Master-down of one interval (+ skew) under 0..=5 ms jitter: backups take over spuriously.
    let mut c = Cluster::new(3, &[250, 240, 230], ms_(50), ms_(5));
    for node in &mut c.nodes {
        node.cfg.down_multiplier = 1;
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
