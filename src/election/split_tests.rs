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
        fingerprint: [0; 4],
        foreign_holder_timeout: None,
        probe_window: ms(30),
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
        fingerprint: [0; 4],
        handover_to: None,
        extra_macs: Vec::new(),
        heard_us_at: None,
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
            Action::Notice { reason, .. } => Some(reason.clone()),
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
        said[0].contains("answered by 02:00:00:00:00:11 (n1, not heard)"),
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
    while t < t0 + PREEMPT_SETTLE + ms(500) {
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
            Action::Notice { reason, .. } => Some(reason.clone()),
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

fn announces(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Announce))
        .count()
}

#[test]
fn vip_conflict_with_a_member_we_cannot_hear_is_settled_by_epoch_then_rank() {
    // n2 hears backups n1 (200) and n3 (50), both at epoch 1, then takes over with epoch 2
    // (probe unanswered), and the others fall silent.
    let (mut e, t0) = started(cfg("n2", 100, 3, false));
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n3", State::Backup, 50, 1, N3_MAC)),
    );
    e.handle(
        t0 + ms(11),
        Input::Advert(adv("n1", State::Backup, 200, 1, N1_MAC)),
    );
    run_until(&mut e, t0 + ms(300));
    e.handle(t0 + ms(300), Input::ProbeResult { answered_by: None });
    assert_eq!((e.state(), e.epoch()), (State::Master, 2));
    // A silent member that answers for the VIPs must have taken over since its last advert
    // (epoch ≥ 2 = ours): rank decides. n3 ranks lower: we re-announce.
    let t = t0 + ms(2000);
    let acts = e.handle(t, Input::Conflict { mac: N3_MAC });
    assert_eq!(e.state(), State::Master);
    assert_eq!(
        announces(&acts),
        1,
        "the winner re-announces at once: {acts:?}"
    );
    assert!(notices(&acts)[0].contains("(n3, not heard)"), "{acts:?}");

    let unknown = [2, 9, 9, 9, 9, 9];
    let acts = e.handle(t + ms(1100), Input::Conflict { mac: unknown });
    assert_eq!(e.state(), State::Master);
    assert_eq!(announces(&acts), 1, "{acts:?}");
    assert!(notices(&acts)[0].contains("not a cluster member"));

    // n1 ranks higher: we release.
    let acts = e.handle(t + ms(1200), Input::Conflict { mac: N1_MAC });
    let reason = became(&acts, State::Backup).expect("the lower rank releases");
    assert!(
        reason.contains("(n1, not heard)") && reason.contains("outranks us"),
        "{reason}"
    );
    assert!(acts.contains(&Action::ReleaseVips));
}

#[test]
fn a_frozen_master_that_resumes_loses_a_conflict_to_the_newer_epoch() {
    // n1 was master (epoch 1) and froze; we took over with epoch 2. When it resumes, its
    // gratuitous ARP must not take the VIPs back, whatever its rank: a master's epoch does
    // not change while it stays master, so its last advert's epoch is exact.
    let (mut e, t0) = started(cfg("n2", 100, 2, false));
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    run_until(&mut e, t0 + ms(400));
    e.handle(t0 + ms(400), Input::ProbeResult { answered_by: None });
    assert_eq!((e.state(), e.epoch()), (State::Master, 2));
    let acts = e.handle(t0 + ms(5000), Input::Conflict { mac: N1_MAC });
    assert_eq!(e.state(), State::Master, "{acts:?}");
    assert_eq!(announces(&acts), 1);
}

#[test]
fn a_forged_claim_with_a_live_backups_mac_is_answered_once_its_grace_runs_out() {
    // Issue 9, kind 4: one broadcast ARP reply claiming the VIP with n1's MAC while n1 is a
    // live backup. The master used to wait for an advert that never came and never
    // re-announced: the client stayed on n1's MAC, which does not hold the VIP (~8 s).
    let (mut e, t0) = lone_master("n2", 100);
    let n1 = adv("n1", State::Backup, 200, 1, N1_MAC);
    e.handle(t0 + ms(310), Input::Advert(n1.clone()));
    let acts = e.handle(t0 + ms(320), Input::Conflict { mac: N1_MAC });
    assert_eq!(announces(&acts), 0, "{acts:?}");
    // n1 keeps saying "backup" every interval; no second frame arrives.
    let mut all = Vec::new();
    let mut t = t0 + ms(320);
    for _ in 0..10 {
        t += ms(50);
        all.extend(run_until(&mut e, t).into_iter().map(|(_, a)| a));
        all.extend(e.handle(t, Input::Advert(n1.clone())));
    }
    assert_eq!(e.state(), State::Master);
    assert!(!all.contains(&Action::ReleaseVips), "{all:?}");
    assert_eq!(
        announces(&all),
        1,
        "re-announced once the grace ran out: {all:?}"
    );
    // A second forged frame 600 ms after the first (the nopreempt master used to release
    // on it): waits again, never releases.
    let acts = e.handle(t0 + ms(920), Input::Conflict { mac: N1_MAC });
    assert_eq!(e.state(), State::Master);
    assert!(!acts.contains(&Action::ReleaseVips), "{acts:?}");
}

#[test]
fn a_flood_of_forged_claims_costs_bounded_announcements_and_notices() {
    // Issue 9, kind 4: 9,280 frames from random MACs used to cost 18,560 log lines and as
    // many gratuitous ARP bursts.
    let (mut e, t0) = lone_master("n2", 100);
    let mut acts = Vec::new();
    let start = t0 + ms(400);
    for i in 0u32..15_000 {
        let b = i.to_be_bytes();
        let mac = [6, 0xfe, b[0], b[1], b[2], b[3]];
        // 15 000 frames over 1.5 s.
        let t = start + Duration::from_micros(u64::from(i) * 100);
        acts.extend(e.handle(t, Input::Conflict { mac }));
    }
    assert_eq!(e.state(), State::Master);
    let n = announces(&acts);
    // One per 50 ms advert interval over 1.5 s.
    assert!((29..=31).contains(&n), "{n} announcements");
    let said = notices(&acts);
    assert!(said.len() <= 2, "{said:?}");
    assert!(
        said.last()
            .is_some_and(|s| s.contains("conflicting frames since")),
        "{said:?}"
    );
}

#[test]
fn conflict_with_a_live_peer_waits_for_its_advert() {
    // n2 is master with epoch 1; n1 (higher priority) is a live backup that takes over:
    // its gratuitous ARP reaches us before its advert with the new epoch.
    let (mut e, t0) = lone_master("n2", 100);
    e.handle(
        t0 + ms(310),
        Input::Advert(adv("n1", State::Backup, 200, 1, N1_MAC)),
    );
    let acts = e.handle(t0 + ms(320), Input::Conflict { mac: N1_MAC });
    assert_eq!(e.state(), State::Master);
    assert!(
        !acts.contains(&Action::Announce),
        "must not pull the clients back while the peer's advert is on its way: {acts:?}"
    );
    assert!(
        notices(&acts)[0].contains("waiting for its advert"),
        "{acts:?}"
    );
    // Its GARP burst repeats within the grace: still nothing.
    let acts = e.handle(t0 + ms(330), Input::Conflict { mac: N1_MAC });
    assert!(acts.is_empty(), "{acts:?}");
    // Its advert arrives: the epoch rule settles it, we release without a fight.
    let acts = e.handle(
        t0 + ms(331),
        Input::Advert(adv("n1", State::Master, 200, 2, N1_MAC)),
    );
    assert!(became(&acts, State::Backup).is_some(), "{acts:?}");
    assert!(acts.contains(&Action::ReleaseVips));
    assert!(!acts.contains(&Action::Announce));
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

/// A started node that became master alone (probe unanswered).
fn lone_master(name: &str, priority: u8) -> (Election, Instant) {
    let (mut e, t0) = started(ElectionConfig {
        name: name.into(),
        ..cfg(name, priority, 2, false)
    });
    run_until(&mut e, t0 + ms(300));
    e.handle(t0 + ms(300), Input::ProbeResult { answered_by: None });
    assert_eq!(e.state(), State::Master);
    (e, t0)
}

fn sent(actions: &[Action]) -> Vec<Advert> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(adv) => Some(adv.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn planned_handover_is_make_before_break_and_does_not_flap_back() {
    let (mut old, t0) = lone_master("n1", 200);
    let t = t0 + ms(400);
    old.handle(
        t - ms(10),
        Input::Advert(adv("n2", State::Backup, 100, 1, N3_MAC)),
    );
    let acts = old.handle(
        t,
        Input::Handover {
            to: Some("n2".into()),
        },
    );
    let offer = sent(&acts)
        .pop()
        .expect("the handover advert goes out at once");
    assert_eq!(offer.handover_to.as_deref(), Some("n2"));

    // The target takes over at once, without a probe: install and announce first.
    let mut target = Election::new(cfg("n2", 100, 2, false), t0);
    target.handle(t0, Input::Start);
    let acts = target.handle(t + ms(1), Input::Advert(offer));
    assert_eq!(acts[1..3], [Action::InstallVips, Action::Announce]);
    let reason = became(&acts, State::Master).unwrap();
    assert!(reason.starts_with("planned handover from n1"), "{reason}");

    // Only then does the old master let go, on the target's first advert.
    let claim = sent(&acts).pop().unwrap();
    let acts = old.handle(t + ms(2), Input::Advert(claim.clone()));
    let reason = became(&acts, State::Backup).unwrap();
    assert!(reason.contains("handed over to n2 (planned)"), "{reason}");
    assert!(acts.contains(&Action::ReleaseVips));

    // n1 outranks n2 and preempt is on, but it yielded: it follows n2 from now on.
    let mut now = t + ms(3);
    while now < t + ms(3000) {
        let acts = old.handle(now, Input::Advert(claim.clone()));
        assert!(became(&acts, State::Master).is_none());
        for (_, a) in run_until(&mut old, now + ms(49)) {
            assert!(!matches!(a, Action::Transition { .. }), "{a:?}");
        }
        now += ms(50);
    }
}

#[test]
fn handover_target_is_chosen_by_rank_and_checked_in_the_core() {
    // The daemon used to pick the target with its own copy of the rank order.
    let (mut e, t0) = lone_master("n1", 200);
    let t = t0 + ms(400);
    for (name, prio) in [("n3", 150), ("n2", 150), ("n4", 90)] {
        e.handle(
            t - ms(5),
            Input::Advert(adv(name, State::Backup, prio, 1, [2, 0, 0, 0, 0, prio])),
        );
    }
    // Equal priority: the name that sorts first ranks higher.
    let acts = e.handle(t, Input::Handover { to: None });
    assert_eq!(
        sent(&acts).pop().and_then(|a| a.handover_to),
        Some("n2".into())
    );
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Notice {
            cause: NoticeCause::HandoverStarted,
            ..
        }
    )));

    let (mut e, t0) = lone_master("n1", 200);
    let acts = e.handle(
        t0 + ms(400),
        Input::Handover {
            to: Some("n9".into()),
        },
    );
    let refusal = acts.iter().find_map(|a| match a {
        Action::Notice {
            cause: NoticeCause::HandoverRefused,
            reason,
        } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(
        refusal.as_deref(),
        Some("n9 is not a live backup (live backups: none)")
    );
    assert_eq!(e.state(), State::Master);
}

#[test]
fn a_graceful_stop_hands_over_first_then_shuts_down() {
    let (mut e, t0) = lone_master("n1", 200);
    let t = t0 + ms(400);
    e.handle(
        t - ms(5),
        Input::Advert(adv("n2", State::Backup, 100, 1, N3_MAC)),
    );
    let acts = e.handle(t, Input::Stop);
    let offer = sent(&acts).pop().expect("handover advert");
    assert_eq!(offer.handover_to.as_deref(), Some("n2"));
    assert!(!e.stopped(), "waits for the successor");
    // The successor's first advert as master: release, then stop with a priority-0 bye.
    let mut claim = adv("n2", State::Master, 100, 3, N3_MAC);
    claim.seq = 2;
    let acts = e.handle(t + ms(3), Input::Advert(claim));
    assert!(e.stopped());
    let causes: Vec<Cause> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Transition { cause, .. } => Some(*cause),
            _ => None,
        })
        .collect();
    assert_eq!(causes, vec![Cause::Handover, Cause::Shutdown]);
    assert_eq!(sent(&acts).last().map(|a| a.priority), Some(0));

    // Nobody takes over: stops anyway after two master-downs.
    let (mut e, t0) = lone_master("n1", 200);
    let t = t0 + ms(400);
    e.handle(
        t - ms(5),
        Input::Advert(adv("n2", State::Backup, 100, 1, N3_MAC)),
    );
    e.handle(t, Input::Stop);
    let md = e.master_down_interval();
    run_until(&mut e, t + md * 2 - ms(1));
    assert!(!e.stopped());
    let acts = run_until(&mut e, t + md * 2);
    assert!(e.stopped());
    assert!(acts.iter().any(|(_, a)| matches!(
        a,
        Action::Notice {
            cause: NoticeCause::HandoverTimedOut,
            ..
        }
    )));

    // Not master: stops at once.
    let (mut e, t0) = started(cfg("n2", 100, 2, false));
    e.handle(t0 + ms(10), Input::Stop);
    assert!(e.stopped());
}

#[test]
fn faults_of_several_kinds_hold_until_all_clear_and_a_vip_install_fault_retries() {
    let (mut e, t0) = lone_master("n1", 200);
    let t = t0 + ms(400);
    let fault = |cause| Input::Fault {
        cause,
        reason: format!("{cause:?}"),
    };
    let acts = e.handle(t, fault(FaultCause::Link));
    assert!(acts.contains(&Action::ReleaseVips));
    e.handle(t + ms(1), fault(FaultCause::HealthCheck));
    let acts = e.handle(
        t + ms(2),
        Input::FaultCleared {
            cause: FaultCause::Link,
        },
    );
    assert_eq!(e.state(), State::Fault, "the check still fails: {acts:?}");
    let acts = e.handle(
        t + ms(3),
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    );
    assert_eq!(
        became(&acts, State::Backup)
            .as_deref()
            .map(|r| r.starts_with("fault cleared")),
        Some(true)
    );

    // A failed VIP install is retried after VIP_INSTALL_RETRY (it used to hold forever).
    let (mut e, t0) = lone_master("n1", 200);
    let t = t0 + ms(400);
    e.handle(t, fault(FaultCause::VipInstall));
    assert_eq!(e.state(), State::Fault);
    run_until(&mut e, t + VIP_INSTALL_RETRY - ms(1));
    assert_eq!(e.state(), State::Fault);
    let acts = run_until(&mut e, t + VIP_INSTALL_RETRY);
    assert!(acts.iter().any(|(_, a)| matches!(
        a,
        Action::Transition {
            to: State::Backup,
            cause: Cause::FaultCleared,
            ..
        }
    )));
}

#[test]
fn priority_is_base_plus_delta_clamped_once() {
    let (mut e, _) = lone_master("n1", 200);
    let t = Instant::now() + ms(400);
    e.handle(t, Input::PriorityDelta { delta: -500 });
    assert_eq!(e.priority(), 1);
    e.handle(t, Input::PriorityDelta { delta: 100 });
    assert_eq!(e.priority(), 254);
    e.handle(t, Input::BasePriority { priority: 100 });
    assert_eq!((e.base_priority(), e.priority()), (100, 200));
    e.handle(t, Input::PriorityDelta { delta: 0 });
    assert_eq!(e.priority(), 100);
}

#[test]
fn reconfigure_changes_the_timers_without_a_transition() {
    let (mut e, t0) = lone_master("n1", 200);
    let t = t0 + ms(400);
    run_until(&mut e, t);
    let out = e.handle(
        t,
        Input::Reconfigure(Reconfig {
            advert_interval: ms(200),
            down_multiplier: 0,
            preempt: false,
            preempt_delay: ms(5),
            cluster_size: 3,
            quorum: false,
            fingerprint: [1, 2, 3, 4],
        }),
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(e.state(), State::Master);
    let c = e.config();
    assert_eq!(c.advert_interval, ms(200));
    assert_eq!(c.down_multiplier, 1, "clamped like at start");
    assert!(!c.preempt);
    assert_eq!((c.preempt_delay, c.cluster_size), (ms(5), 3));
    // The advert already scheduled goes out; from then on every 200 ms, with the new
    // interval and fingerprint, and no transition.
    let acts: Vec<Action> = run_until(&mut e, t + ms(1000))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert!(became(&acts, State::Backup).is_none(), "{acts:?}");
    let adverts = sent(&acts);
    assert!((5..=6).contains(&adverts.len()), "{}", adverts.len());
    let last = adverts.last().unwrap();
    assert_eq!(last.advert_interval_ms, 200);
    assert_eq!(last.fingerprint, [1, 2, 3, 4]);
    // Out-of-range intervals are clamped to the wire's bounds.
    e.handle(
        t + ms(1000),
        Input::Reconfigure(Reconfig {
            advert_interval: ms(1),
            down_multiplier: 3,
            preempt: true,
            preempt_delay: Duration::ZERO,
            cluster_size: 0,
            quorum: false,
            fingerprint: [0; 4],
        }),
    );
    assert_eq!(
        e.config().advert_interval,
        ms(u64::from(MIN_ADVERT_INTERVAL_MS))
    );
    assert_eq!(e.config().cluster_size, 1);
}

#[test]
fn handover_that_nobody_takes_leaves_us_master() {
    let (mut e, t0) = lone_master("n1", 200);
    e.handle(
        t0 + ms(390),
        Input::Advert(adv("n2", State::Backup, 100, 1, N3_MAC)),
    );
    e.handle(
        t0 + ms(400),
        Input::Handover {
            to: Some("n2".into()),
        },
    );
    let acts: Vec<Action> = run_until(&mut e, t0 + ms(1000))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert!(notices(&acts)
        .iter()
        .any(|n| n.contains("handover to n2 did not happen")));
    assert_eq!(e.state(), State::Master);
}

#[test]
fn maintenance_gives_the_vips_up_and_keeps_them_away() {
    let (mut e, t0) = lone_master("n1", 200);
    let acts = e.handle(t0 + ms(400), Input::Maintenance { on: true });
    assert!(became(&acts, State::Fault).unwrap().contains("maintenance"));
    assert!(acts.contains(&Action::ReleaseVips));
    assert_eq!(sent(&acts).pop().map(|a| a.state), Some(State::Fault));
    let later = run_until(&mut e, t0 + ms(5000));
    assert!(!later
        .iter()
        .any(|(_, a)| matches!(a, Action::InstallVips | Action::Probe)));
    // A health fault and its recovery do not end maintenance.
    e.handle(
        t0 + ms(4999),
        Input::Fault {
            cause: FaultCause::HealthCheck,
            reason: "nginx down".into(),
        },
    );
    let acts = e.handle(
        t0 + ms(5000),
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    );
    assert!(acts.is_empty(), "{acts:?}");
    let acts = e.handle(t0 + ms(5001), Input::Maintenance { on: false });
    assert!(became(&acts, State::Backup).is_some());
}

#[test]
fn effective_priority_travels_in_adverts() {
    let (mut e, t0) = lone_master("n1", 200);
    e.handle(t0 + ms(400), Input::PriorityDelta { delta: -80 });
    let acts = run_until(&mut e, t0 + ms(460));
    let adverts: Vec<Advert> = acts
        .into_iter()
        .filter_map(|(_, a)| match a {
            Action::Send(adv) => Some(adv),
            _ => None,
        })
        .collect();
    assert_eq!(adverts.last().map(|a| a.priority), Some(120));
    assert_eq!(e.priority(), 120);
}

/// Feeds `advert` every 50 ms and Timeout at every deadline from `from` to `until`.
fn hear_until(e: &mut Election, advert: &Advert, from: Instant, until: Instant) -> Vec<Action> {
    let mut all = Vec::new();
    let mut t = from;
    while t < until {
        t += ms(50);
        all.extend(run_until(e, t).into_iter().map(|(_, a)| a));
        all.extend(e.handle(t, Input::Advert(advert.clone())));
    }
    all
}

#[test]
fn preempt_delay_applies_after_every_return_from_fault() {
    // Issue 9, kind 10: with preempt_delay 10 s, a master whose link flapped took the VIPs
    // back 1.14 s after the link returned; 4 flaps in 9 s moved them 8 times.
    let (mut e, t0) = started(ElectionConfig {
        name: "n1".into(),
        preempt_delay: ms(10_000),
        ..cfg("n1", 200, 2, false)
    });
    let n2 = adv("n2", State::Master, 100, 1, N3_MAC);
    // Long after start: the start-up delay is over.
    let mut t = t0 + ms(20_000);
    hear_until(&mut e, &n2, t0, t);
    assert_eq!(
        e.state(),
        State::Master,
        "preempted n2 once the delay passed"
    );
    // 4 link flaps in 9 s: down 1 s, up 1.25 s, …
    let mut moves = 0;
    for _ in 0..4 {
        e.handle(
            t,
            Input::Fault {
                cause: FaultCause::Link,
                reason: "eth0 lost carrier".into(),
            },
        );
        t += ms(1000);
        e.handle(
            t,
            Input::FaultCleared {
                cause: FaultCause::Link,
            },
        );
        let acts = hear_until(&mut e, &n2, t, t + ms(1250));
        t += ms(1250);
        moves += acts
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Transition {
                        to: State::Master,
                        ..
                    }
                )
            })
            .count();
    }
    assert_eq!(moves, 0, "the VIPs stay with n2 while the link flaps");
    // The link returned 1.25 s ago. Stable for less than the delay: still backup; after
    // it (plus master-down): preempts.
    hear_until(&mut e, &n2, t, t + ms(8_500));
    assert_eq!(e.state(), State::Backup);
    let acts = hear_until(&mut e, &n2, t + ms(8_500), t + ms(9_500));
    assert!(
        acts.iter().any(|a| matches!(
            a,
            Action::Transition {
                to: State::Master,
                cause: Cause::Preempt,
                ..
            }
        )),
        "{acts:?}"
    );
}

#[test]
fn without_a_preempt_delay_a_returning_node_preempts_after_proven_contact() {
    let (mut e, t0) = started(cfg("n1", 200, 2, false));
    let n2 = adv("n2", State::Master, 100, 1, N3_MAC);
    let t = t0 + ms(3000);
    hear_until(&mut e, &n2, t0, t);
    assert_eq!(e.state(), State::Master);
    e.handle(
        t,
        Input::Fault {
            cause: FaultCause::Link,
            reason: "eth0 lost carrier".into(),
        },
    );
    e.handle(
        t + ms(1000),
        Input::FaultCleared {
            cause: FaultCause::Link,
        },
    );
    hear_until(&mut e, &n2, t + ms(1000), t + ms(3000));
    assert_eq!(e.state(), State::Master, "today's rule stands");
}

#[test]
fn a_probe_answered_by_a_peer_we_hear_says_so() {
    // Issue 9: "answered by … which I cannot hear" was logged about peers that were
    // connected and alive.
    let (mut e, t0) = started(cfg("n2", 100, 3, false));
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let n3 = adv("n3", State::Backup, 50, 1, N3_MAC);
    let mut t = t0 + ms(10);
    let mut acts = Vec::new();
    while !has_probe(&acts) {
        t += ms(50);
        acts = run_until(&mut e, t);
        e.handle(t, Input::Advert(n3.clone()));
    }
    let acts = e.handle(
        t,
        Input::ProbeResult {
            answered_by: Some(N3_MAC),
        },
    );
    let said = notices(&acts);
    assert!(
        said[0].contains("(n3, heard, its adverts say backup)"),
        "{said:?}"
    );
}

/// Answers every probe of `e` with `mac` until `until`; returns every action.
fn probes_answered_by(
    e: &mut Election,
    mac: [u8; 6],
    from: Instant,
    until: Instant,
) -> Vec<Action> {
    let mut all = Vec::new();
    let mut t = from;
    while t < until {
        let acts = run_until(e, t);
        let probed = has_probe(&acts);
        all.extend(acts.into_iter().map(|(_, a)| a));
        if probed {
            all.extend(e.handle(
                t,
                Input::ProbeResult {
                    answered_by: Some(mac),
                },
            ));
        }
        t += ms(10);
    }
    all
}

const STRANGER: [u8; 6] = [2, 0x5e, 0, 0, 0, 0x77];

#[test]
fn a_blocked_claim_is_never_silent_and_waits_for_ever_by_default() {
    // Issue 9, kind 5: a host that answered ARP for the VIP blocked failover for ever,
    // saying so once.
    let (mut e, t0) = backup_that_lost_its_master();
    let acts = probes_answered_by(&mut e, STRANGER, t0, t0 + ms(35_000));
    assert_eq!(
        e.state(),
        State::Backup,
        "never claims over a stranger by default"
    );
    let said = notices(&acts);
    // The first answer, then a reminder every CLAIM_BLOCKED_REMINDER (10 s).
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(said[0].contains("(not a cluster member)"), "{said:?}");
    assert!(said[3].starts_with("still not claiming"), "{said:?}");
    let block = e.claim_blocked().expect("status shows the block");
    assert_eq!(block.mac, STRANGER);
    assert_eq!(block.member, None);
    assert!(t0 + ms(35_000) - block.since > ms(34_000));
}

#[test]
fn foreign_holder_timeout_claims_over_a_stranger_but_never_over_a_member() {
    let (mut e, t0) = started(ElectionConfig {
        foreign_holder_timeout: Some(ms(2000)),
        ..cfg("n2", 100, 2, false)
    });
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let acts = probes_answered_by(&mut e, STRANGER, t0, t0 + ms(3000));
    let cause = acts.iter().find_map(|a| match a {
        Action::Transition {
            to: State::Master,
            cause,
            ..
        } => Some(*cause),
        _ => None,
    });
    assert_eq!(cause, Some(Cause::ClaimedOverForeign), "{acts:?}");
    assert!(e.claim_blocked().is_none());

    // A member's answer is the split-brain layer itself: it always blocks.
    let (mut e, t0) = started(ElectionConfig {
        foreign_holder_timeout: Some(ms(2000)),
        ..cfg("n2", 100, 2, false)
    });
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    probes_answered_by(&mut e, N1_MAC, t0, t0 + ms(10_000));
    assert_eq!(e.state(), State::Backup);
    assert_eq!(
        e.claim_blocked().and_then(|b| b.member.clone()),
        Some("n1".to_string())
    );
}

#[test]
fn foreign_holder_timeout_counts_across_changing_stranger_macs_and_a_block_ends_with_backup() {
    // Two proxy-ARP routers answering in turn must not reset the clock for ever.
    let (mut e, t0) = started(ElectionConfig {
        foreign_holder_timeout: Some(ms(2000)),
        ..cfg("n2", 100, 2, false)
    });
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let other: [u8; 6] = [2, 0x5e, 0, 0, 0, 0x78];
    let mut t = t0;
    let mut acts = Vec::new();
    let mut turn = false;
    while t < t0 + ms(3000) && e.state() == State::Backup {
        let due = run_until(&mut e, t);
        if has_probe(&due) {
            turn = !turn;
            let mac = if turn { STRANGER } else { other };
            acts.extend(e.handle(
                t,
                Input::ProbeResult {
                    answered_by: Some(mac),
                },
            ));
        }
        t += ms(10);
    }
    assert_eq!(e.state(), State::Master, "{:?}", notices(&acts));

    // A block does not outlive the stay in backup it belongs to.
    let (mut e, t0) = backup_that_lost_its_master();
    probes_answered_by(&mut e, STRANGER, t0, t0 + ms(2000));
    let before = e.claim_blocked().map(|b| b.since).expect("blocked");
    e.handle(
        t0 + ms(2000),
        Input::Fault {
            cause: FaultCause::HealthCheck,
            reason: "nginx down".into(),
        },
    );
    assert!(e.claim_blocked().is_none());
    e.handle(
        t0 + ms(5000),
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    );
    let acts = probes_answered_by(&mut e, STRANGER, t0 + ms(5000), t0 + ms(6000));
    let block = e.claim_blocked().expect("blocked again");
    assert!(block.since > before + ms(2000), "a fresh block");
    assert!(
        acts.iter().any(|a| matches!(
            a,
            Action::Notice {
                cause: NoticeCause::ClaimBlocked,
                ..
            }
        )),
        "the fresh block is announced (and its hook runs): {acts:?}"
    );
}

#[test]
fn after_a_blocked_claim_clears_the_best_live_backup_claims_first() {
    // n3 (100) and n2 (150) were both blocked by a stale holder; when it goes, n3 sees no
    // answer first (its probe happens to come first): it gives n2 a turn (two advert
    // intervals) instead of claiming alongside it (seen in a namespace test: both claimed
    // 1 ms apart).
    let (mut e, t0) = started(ElectionConfig {
        name: "n3".into(),
        ..cfg("n3", 100, 3, false)
    });
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let n2 = adv("n2", State::Backup, 150, 1, [2, 0, 0, 0, 0, 0x22]);
    let mut t = t0 + ms(10);
    let mut probed_once = false;
    // Blocked by n1's stale address while n2 keeps advertising backup.
    while t < t0 + ms(600) {
        t += ms(10);
        let due = run_until(&mut e, t);
        e.handle(t, Input::Advert(n2.clone()));
        if has_probe(&due) {
            probed_once = true;
            e.handle(
                t,
                Input::ProbeResult {
                    answered_by: Some(N1_MAC),
                },
            );
        }
    }
    assert!(probed_once && e.claim_blocked().is_some());
    // The stale address is gone: no answer. n3 does not claim while n2 is live.
    let mut acts = Vec::new();
    let mut answered_none = false;
    while !answered_none {
        t += ms(10);
        let due = run_until(&mut e, t);
        e.handle(t, Input::Advert(n2.clone()));
        if has_probe(&due) {
            answered_none = true;
            acts.extend(e.handle(t, Input::ProbeResult { answered_by: None }));
        }
    }
    assert_eq!(e.state(), State::Backup, "{acts:?}");
    // n2 claims and advertises master: n3 follows.
    let n2_master = adv("n2", State::Master, 150, 2, [2, 0, 0, 0, 0, 0x22]);
    let later = hear_until(&mut e, &n2_master, t, t + ms(1000));
    assert_eq!(e.state(), State::Backup, "{later:?}");
    assert!(!later.contains(&Action::InstallVips));

    // If n2 never claims, n3 does, one master-down later.
    let (mut e, t0) = started(ElectionConfig {
        name: "n3".into(),
        ..cfg("n3", 100, 3, false)
    });
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let mut t = t0 + ms(10);
    let mut phase = 0; // 0 blocked, 1 cleared
    while e.state() == State::Backup && t < t0 + ms(3000) {
        t += ms(10);
        let due = run_until(&mut e, t);
        e.handle(t, Input::Advert(n2.clone()));
        if has_probe(&due) {
            let answer = (t < t0 + ms(600)).then_some(N1_MAC);
            phase += usize::from(answer.is_none());
            e.handle(
                t,
                Input::ProbeResult {
                    answered_by: answer,
                },
            );
        }
    }
    assert_eq!(e.state(), State::Master, "claims once n2 did not");
    assert!(phase >= 2, "deferred once, then claimed on the next probe");
}

#[test]
fn a_live_better_backup_gets_its_turn_before_we_probe_or_claim() {
    // The master dies; n2 (150) and n3 (100) reach master-down a few milliseconds apart.
    // n3 hears n2 advertise backup: it neither probes nor claims at its master-down, but
    // gives n2 its turn (at a cold start, too: no claim that n2 preempts a second later).
    let (mut e, t0) = started(ElectionConfig {
        name: "n3".into(),
        ..cfg("n3", 100, 3, false)
    });
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let master_down = t0 + ms(10) + e.master_down_interval();
    let n2 = adv("n2", State::Backup, 150, 1, [2, 0, 0, 0, 0, 0x22]);
    let mut t = t0 + ms(10);
    let mut due = Vec::new();
    while t < master_down + ms(20) {
        t += ms(10);
        due.extend(run_until(&mut e, t));
        e.handle(t, Input::Advert(n2.clone()));
    }
    assert_eq!(e.state(), State::Backup);
    assert!(
        !has_probe(&due),
        "no probe while the better backup has its turn: {due:?}"
    );

    // n2 claims (at its master-down and probe, before n3's turn ends): n3 follows it and
    // never probes or installs.
    let n2_master = adv("n2", State::Master, 150, 2, [2, 0, 0, 0, 0, 0x22]);
    let mut later = e.handle(t, Input::Advert(n2_master.clone()));
    later.extend(hear_until(&mut e, &n2_master, t, t + ms(1000)));
    assert_eq!(e.state(), State::Backup, "{later:?}");
    assert!(!later.contains(&Action::InstallVips), "{later:?}");
    assert!(!later.contains(&Action::Probe), "{later:?}");

    // Same start, but n2 died with the master (its adverts stop): after n2's turn n3
    // claims, once, with one probe that ran during the wait, a probe window before it.
    let (mut e, t0) = started(ElectionConfig {
        name: "n3".into(),
        ..cfg("n3", 100, 3, false)
    });
    e.handle(
        t0 + ms(10),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let master_down = t0 + ms(10) + e.master_down_interval();
    // n2's last advert came a little after the master's: still live at n3's master-down.
    e.handle(t0 + ms(30), Input::Advert(n2.clone()));
    let mut t = t0 + ms(30);
    let mut probes = Vec::new();
    while e.state() == State::Backup && t < t0 + ms(3000) {
        t += ms(1);
        for (at, a) in run_until(&mut e, t) {
            if a == Action::Probe {
                probes.push(at);
                e.handle(at, Input::ProbeResult { answered_by: None });
            }
        }
    }
    assert_eq!(e.state(), State::Master, "claims once n2 did not");
    assert_eq!(probes.len(), 1, "one probe: {probes:?}");
    let interval = e.config().advert_interval;
    let window = e.config().probe_window;
    let claimed = e.state_since();
    assert!(
        claimed >= master_down + interval * DEFER_TO_BETTER_BACKUP,
        "n2's turn first"
    );
    assert_eq!(claimed - probes[0], window, "the probe overlapped the wait");
}

#[test]
fn vips_removed_by_someone_else_are_installed_again_by_the_master_only() {
    // The rule used to live in the daemon; the election now decides it.
    let (mut e, t0) = lone_master("n2", 100);
    let detail = "192.0.2.100/24 removed from eth0 (not by haagent), 1500 ms of lease left";
    let acts = e.handle(
        t0 + ms(400),
        Input::VipsRemoved {
            detail: detail.into(),
        },
    );
    assert_eq!(e.state(), State::Master);
    assert!(
        matches!(&acts[..], [Action::Notice { cause: NoticeCause::VipsRemoved, reason }, Action::InstallVips, Action::Announce] if reason.starts_with(detail)),
        "{acts:?}"
    );
    // Not master (it stepped down meanwhile): nothing to put back.
    let (mut b, t0) = started(cfg("n3", 100, 3, false));
    let acts = b.handle(
        t0 + ms(10),
        Input::VipsRemoved {
            detail: detail.into(),
        },
    );
    assert!(acts.is_empty(), "{acts:?}");
}

/// n2 (100) follows master n1 (200), heard once at `t0 + 10 ms`; returns the election, the
/// master-down deadline, and the actions up to a probe window before it.
fn silent_master() -> (Election, Instant, Vec<(Instant, Action)>) {
    let (mut e, t0) = started(cfg("n2", 100, 2, false));
    let last = t0 + ms(10);
    e.handle(
        last,
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let deadline = last + e.master_down_interval();
    let window = e.config().probe_window;
    let before = run_until(&mut e, deadline - window - ms(1));
    (e, deadline, before)
}

#[test]
fn the_probe_overlaps_the_master_down_wait() {
    // The master goes silent. The ARP probe starts a probe window before master-down runs
    // out, comes back clear, and the claim comes exactly at master-down: no probe window
    // after it.
    let (mut e, deadline, before) = silent_master();
    assert!(!has_probe(&before), "{before:?}");
    let window = e.config().probe_window;
    let due = run_until(&mut e, deadline - window);
    assert!(
        due.iter()
            .any(|(t, a)| *a == Action::Probe && *t == deadline - window),
        "{due:?}"
    );
    let acts = e.handle(deadline - ms(1), Input::ProbeResult { answered_by: None });
    assert_eq!(e.state(), State::Backup, "not before master-down: {acts:?}");
    let acts: Vec<Action> = run_until(&mut e, deadline)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(e.state(), State::Master, "{acts:?}");
    assert_eq!(e.state_since(), deadline);
    assert!(acts.contains(&Action::InstallVips) && !acts.contains(&Action::Probe));
}

#[test]
fn an_advert_during_the_early_probe_cancels_the_claim() {
    // The master's adverts were only late: one arrives while the probe runs. Its clear
    // result (the master's ARP answer was lost too, say) must not make us claim.
    let (mut e, deadline, _) = silent_master();
    let window = e.config().probe_window;
    assert!(has_probe(&run_until(&mut e, deadline - window)));
    e.handle(
        deadline - ms(20),
        Input::Advert(adv("n1", State::Master, 200, 1, N1_MAC)),
    );
    let mut acts = e.handle(deadline - ms(5), Input::ProbeResult { answered_by: None });
    acts.extend(
        run_until(&mut e, deadline + ms(100))
            .into_iter()
            .map(|(_, a)| a),
    );
    assert_eq!(e.state(), State::Backup, "{acts:?}");
    assert!(!acts.contains(&Action::InstallVips), "{acts:?}");
}

#[test]
fn the_old_master_answering_the_early_probe_blocks_the_claim() {
    // Its adverts are lost but the master is alive and answers for the VIPs: no claim at
    // master-down; the block names it.
    let (mut e, deadline, _) = silent_master();
    let window = e.config().probe_window;
    assert!(has_probe(&run_until(&mut e, deadline - window)));
    let mut acts = e.handle(
        deadline - ms(2),
        Input::ProbeResult {
            answered_by: Some(N1_MAC),
        },
    );
    acts.extend(
        run_until(&mut e, deadline + ms(1))
            .into_iter()
            .map(|(_, a)| a),
    );
    assert_eq!(e.state(), State::Backup, "{acts:?}");
    assert!(!acts.contains(&Action::InstallVips));
    let block = e.claim_blocked().expect("blocked");
    assert_eq!(block.member.as_deref(), Some("n1"));
}

#[test]
fn a_conflict_won_after_its_grace_is_noticed_with_the_mac() {
    // Issue 14: a forged claim with a live backup's MAC says "waiting for its advert"
    // (conflict_pending); when the grace runs out and the master re-announces, that is a
    // conflict won, and the daemon runs the `conflict_won` hook on its notice. The two
    // notices used to share one rate limit: the won one, a master-down after the pending
    // one, was always swallowed, and the hook never ran.
    let (mut e, t0) = lone_master("n2", 100);
    let n1 = adv("n1", State::Backup, 200, 1, N1_MAC);
    e.handle(t0 + ms(310), Input::Advert(n1.clone()));
    let acts = e.handle(t0 + ms(320), Input::Conflict { mac: N1_MAC });
    let causes = |acts: &[Action]| -> Vec<NoticeCause> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Notice { cause, .. } => Some(*cause),
                _ => None,
            })
            .collect()
    };
    assert_eq!(causes(&acts), [NoticeCause::ConflictPending], "{acts:?}");
    let mut all = Vec::new();
    let mut t = t0 + ms(320);
    for _ in 0..10 {
        t += ms(50);
        all.extend(run_until(&mut e, t).into_iter().map(|(_, a)| a));
        all.extend(e.handle(t, Input::Advert(n1.clone())));
    }
    assert_eq!(announces(&all), 1, "{all:?}");
    assert_eq!(causes(&all), [NoticeCause::ConflictWon], "{all:?}");
    assert_eq!(e.conflict_won_against(), Some((N1_MAC, Some("n1"))));
    // Each kind stays rate-limited: a second frame within the interval says nothing.
    let acts = e.handle(t + ms(10), Input::Conflict { mac: N1_MAC });
    assert_eq!(causes(&acts), [], "{acts:?}");
}
