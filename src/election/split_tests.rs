//! The split-brain rules: ARP probe before claiming, isolation (gateway witness), quorum,
//! VIP conflicts on the wire and a lost VIP lease.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const N1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const N3_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x13];

fn cfg(name: &str, priority: u8, cluster_size: usize, quorum: bool) -> ElectionConfig {
    ElectionConfig {
        name: name.into(),
        priority,
        advert_interval: ms(50),
        down_multiplier: DEFAULT_DOWN_MULTIPLIER,
        preempt: true,
        preempt_delay: Duration::ZERO,
        mac: [2, 0, 0, 0, 0, 0x12],
        probe: true,
        cluster_size,
        quorum,
    }
}

fn adv(name: &str, state: State, priority: u8, epoch: u64, mac: [u8; 6]) -> Advert {
    Advert {
        name: name.into(),
        state,
        priority,
        epoch,
        advert_interval_ms: 50,
        seq: 1,
        mac,
    }
}

fn started(c: ElectionConfig) -> (Election, Instant) {
    let t0 = Instant::now();
    let mut e = Election::new(c, t0);
    e.handle(t0, Input::Start);
    (e, t0)
}

/// Feeds Timeout at every deadline up to `until`; returns every action.
fn run_until(e: &mut Election, until: Instant) -> Vec<(Instant, Action)> {
    let mut all = Vec::new();
    while let Some(t) = e.next_deadline().filter(|t| *t <= until) {
        all.extend(e.handle(t, Input::Timeout).into_iter().map(|a| (t, a)));
    }
    all
}

fn has_probe(actions: &[(Instant, Action)]) -> bool {
    actions.iter().any(|(_, a)| matches!(a, Action::Probe))
}

fn became(actions: &[Action], to: State) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::Transition { to: t, reason, .. } if *t == to => Some(reason.clone()),
        _ => None,
    })
}

fn notices(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notice { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// n2 follows master n1, which then falls silent at `t0 + 10 ms`.
fn backup_that_lost_its_master() -> (Election, Instant) {
    let (mut e, t0) = started(cfg("n2", 100, 2, false));
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    (e, t0)
}

#[test]
fn lost_master_is_probed_before_the_vips_are_claimed() {
    let (mut e, t0) = backup_that_lost_its_master();
    let acts = run_until(&mut e, t0 + ms(1000));
    assert!(has_probe(&acts), "master-down must start a probe: {acts:?}");
    assert_eq!(
        e.state(),
        State::Backup,
        "no takeover before the probe answers"
    );
    assert_eq!(e.next_deadline().map(|d| d > t0 + ms(1000)), Some(true));

    // The old master still answers for the VIP (we just cannot hear its adverts).
    let t = t0 + ms(1000);
    let acts = e.handle(
        t,
        Input::ProbeResult {
            answered_by: Some(N1_MAC),
        },
    );
    assert_eq!(e.state(), State::Backup);
    let said = notices(&acts);
    assert_eq!(said.len(), 1, "{acts:?}");
    assert!(
        said[0].contains("answered by 02:00:00:00:00:11 (n1) which I cannot hear"),
        "{said:?}"
    );
    // Probing again one interval later; the same holder is not logged twice.
    let again = run_until(&mut e, t + ms(50));
    assert!(has_probe(&again));
    let acts = e.handle(
        t + ms(60),
        Input::ProbeResult {
            answered_by: Some(N1_MAC),
        },
    );
    assert!(notices(&acts).is_empty());

    // Its address is gone (lease ran out): now we claim.
    run_until(&mut e, t + ms(120));
    let acts = e.handle(t + ms(121), Input::ProbeResult { answered_by: None });
    let reason = became(&acts, State::Master).expect("takes over once nobody answers");
    assert!(reason.contains("no advert from n1"), "{reason}");
    assert!(acts.contains(&Action::InstallVips));
}

#[test]
fn an_advert_during_the_probe_cancels_the_claim() {
    let (mut e, t0) = backup_that_lost_its_master();
    let acts = run_until(&mut e, t0 + ms(1000));
    assert!(has_probe(&acts));
    e.handle(
        t0 + ms(1001),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let acts = e.handle(t0 + ms(1002), Input::ProbeResult { answered_by: None });
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(e.state(), State::Backup);
}

#[test]
fn priority_zero_handover_needs_no_probe() {
    let (mut e, t0) = backup_that_lost_its_master();
    e.handle(
        t0 + ms(20),
        Input::Advert(adv("n1", State::Master, 0, 1, N1_MAC)),
    );
    let acts = run_until(&mut e, t0 + ms(200));
    assert!(!has_probe(&acts));
    assert_eq!(e.state(), State::Master);
}

#[test]
fn preempting_a_master_we_hear_needs_no_probe() {
    let (mut e, t0) = started(cfg("n1", 200, 2, false));
    let lower = adv("n2", State::Master, 100, 1, N3_MAC);
    let mut t = t0;
    let mut acts = Vec::new();
    while t < t0 + ms(500) {
        e.handle(t, Input::Advert(lower.clone()));
        acts.extend(run_until(&mut e, t + ms(49)));
        t += ms(50);
    }
    assert!(!has_probe(&acts));
    assert_eq!(e.state(), State::Master);
}

#[test]
fn isolated_master_releases_and_rejoins_when_the_gateway_answers() {
    let (mut e, t0) = started(cfg("n2", 100, 2, false));
    e.handle(
        t0,
        Input::Witness {
            reachable: true,
            detail: "ok".into(),
        },
    );
    // Nobody else: n2 takes over after probing.
    run_until(&mut e, t0 + ms(300));
    e.handle(t0 + ms(300), Input::ProbeResult { answered_by: None });
    assert_eq!(e.state(), State::Master);

    // A peer shows up as backup and then goes silent; the gateway stops answering.
    e.handle(
        t0 + ms(310),
        Input::Advert(adv("n1", State::Backup, 50, 1, N1_MAC)),
    );
    let acts = e.handle(
        t0 + ms(400),
        Input::Witness {
            reachable: false,
            detail: "3 echoes to 192.0.2.1 unanswered".into(),
        },
    );
    assert!(
        became(&acts, State::Fault).is_none(),
        "peer n1 is still alive"
    );
    let acts: Vec<Action> = run_until(&mut e, t0 + ms(1000))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let reason = became(&acts, State::Fault).expect("isolated once n1 expires");
    assert!(
        reason.contains("isolated") && reason.contains("192.0.2.1"),
        "{reason}"
    );
    assert!(acts.contains(&Action::ReleaseVips));

    // Isolated nodes never take over.
    let acts = run_until(&mut e, t0 + ms(5000));
    assert!(!acts
        .iter()
        .any(|(_, a)| matches!(a, Action::InstallVips | Action::Probe)));

    let acts = e.handle(
        t0 + ms(5000),
        Input::Witness {
            reachable: true,
            detail: "ok".into(),
        },
    );
    let reason = became(&acts, State::Backup).expect("rejoins as backup");
    assert!(reason.contains("gateway answers again"), "{reason}");
}

#[test]
fn gateway_outage_while_peers_are_heard_changes_nothing() {
    let (mut e, t0) = backup_that_lost_its_master();
    let master = adv("n1", State::Master, 200, 1, N1_MAC);
    e.handle(
        t0 + ms(20),
        Input::Witness {
            reachable: false,
            detail: "down".into(),
        },
    );
    let mut t = t0 + ms(20);
    while t < t0 + ms(3000) {
        let acts = e.handle(t, Input::Advert(master.clone()));
        assert!(became(&acts, State::Fault).is_none());
        for (_, a) in run_until(&mut e, t + ms(49)) {
            assert!(
                !matches!(a, Action::Transition { .. } | Action::Probe),
                "{a:?}"
            );
        }
        t += ms(50);
    }
    assert_eq!(e.state(), State::Backup);
}

#[test]
fn master_without_quorum_steps_down_and_backup_without_quorum_waits() {
    let (mut e, t0) = started(cfg("n2", 100, 3, true));
    // Alone of three: never takes over, and says why once.
    let acts = run_until(&mut e, t0 + ms(2000));
    let said: Vec<String> = acts
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Notice { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        said,
        vec!["not taking over: hear 1 of 3 nodes, need 2 (quorum)".to_string()]
    );
    assert_eq!(e.state(), State::Backup);

    // n3 (a backup) appears: two of three; n2 probes and takes over.
    let n3 = adv("n3", State::Backup, 50, 0, N3_MAC);
    let mut t = t0 + ms(2000);
    while e.state() != State::Master && t < t0 + ms(3000) {
        e.handle(t, Input::Advert(n3.clone()));
        if has_probe(&run_until(&mut e, t + ms(49))) {
            e.handle(t + ms(49), Input::ProbeResult { answered_by: None });
        }
        t += ms(50);
    }
    assert_eq!(e.state(), State::Master);

    // n3 falls silent: one of three, step down within n3's master-down.
    let acts: Vec<Action> = run_until(&mut e, t + ms(400))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let reason = became(&acts, State::Backup).expect("steps down without quorum");
    assert!(
        reason.contains("lost quorum: hear 1 of 3 nodes, need 2"),
        "{reason}"
    );
    assert!(acts.contains(&Action::ReleaseVips));
}

#[test]
fn vip_conflict_is_settled_by_rank() {
    // n2 is master with epoch 1.
    let (mut e, t0) = started(cfg("n2", 100, 3, false));
    run_until(&mut e, t0 + ms(300));
    e.handle(t0 + ms(300), Input::ProbeResult { answered_by: None });
    assert_eq!(e.state(), State::Master);
    // Peers known by their adverts: n1 outranks us, n3 does not.
    e.handle(
        t0 + ms(301),
        Input::Advert(adv("n3", State::Backup, 50, 1, N3_MAC)),
    );
    e.handle(
        t0 + ms(302),
        Input::Advert(adv("n1", State::Backup, 200, 1, N1_MAC)),
    );

    let acts = e.handle(t0 + ms(303), Input::Conflict { mac: N3_MAC });
    assert_eq!(e.state(), State::Master);
    assert!(
        acts.contains(&Action::Announce),
        "the winner re-announces at once"
    );
    assert!(notices(&acts)[0].contains("(n3)"));

    let acts = e.handle(
        t0 + ms(304),
        Input::Conflict {
            mac: [2, 9, 9, 9, 9, 9],
        },
    );
    assert_eq!(e.state(), State::Master);
    assert!(notices(&acts)[0].contains("not a cluster member"));

    let acts = e.handle(t0 + ms(305), Input::Conflict { mac: N1_MAC });
    let reason = became(&acts, State::Backup).expect("the lower rank releases");
    assert!(
        reason.contains("(n1)") && reason.contains("outranks us"),
        "{reason}"
    );
    assert!(acts.contains(&Action::ReleaseVips));
}

#[test]
fn lost_lease_steps_down_instead_of_re_adding() {
    let (mut e, t0) = started(cfg("n2", 100, 2, false));
    run_until(&mut e, t0 + ms(300));
    e.handle(t0 + ms(300), Input::ProbeResult { answered_by: None });
    assert_eq!(e.state(), State::Master);
    let acts = e.handle(
        t0 + ms(5300),
        Input::LeaseLost {
            detail: "192.0.2.100/24 no longer on eth0".into(),
        },
    );
    let reason = became(&acts, State::Backup).expect("steps down");
    assert!(reason.contains("lease lost"), "{reason}");
    assert!(!acts.contains(&Action::InstallVips));
}
