//! Focused tests of single rules, with exact times; the cluster-wide behaviour is in `sim.rs`.

use super::*;
use rand::{Rng, SeedableRng};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cfg(name: &str, priority: u8) -> ElectionConfig {
    ElectionConfig {
        name: name.into(),
        priority,
        advert_interval: ms(50),
        down_multiplier: DEFAULT_DOWN_MULTIPLIER,
        preempt: true,
        preempt_delay: Duration::ZERO,
        mac: [2, 0, 0, 0, 0, name.len() as u8],
        probe: false,
        cluster_size: 2,
        quorum: false,
        fingerprint: [0; 4],
        foreign_holder_timeout: None,
        probe_window: ms(30),
    }
}

fn adv(name: &str, state: State, priority: u8, epoch: u64) -> Advert {
    Advert {
        name: name.into(),
        state,
        priority,
        epoch,
        advert_interval_ms: 50,
        seq: 1,
        mac: [2, 0, 0, 0, 0, 1],
        fingerprint: [0; 4],
        handover_to: None,
        extra_macs: Vec::new(),
        heard_us_at: None,
    }
}

/// A started election at `t0`.
fn started(c: ElectionConfig) -> (Election, Instant) {
    let t0 = Instant::now();
    let mut e = Election::new(c, t0);
    e.handle(t0, Input::Start);
    (e, t0)
}

/// The transitions among `actions`, with their reasons.
fn transitions(actions: &[Action]) -> Vec<(State, State, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transition {
                from, to, reason, ..
            } => Some((*from, *to, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Feeds Timeout at every deadline up to `until`; returns (time, actions) of each call that
/// produced a transition.
fn run_timeouts(e: &mut Election, until: Instant) -> Vec<(Instant, Vec<Action>)> {
    let mut changes = Vec::new();
    while let Some(t) = e.next_deadline().filter(|t| *t <= until) {
        let acts = e.handle(t, Input::Timeout);
        if !transitions(&acts).is_empty() {
            changes.push((t, acts));
        }
    }
    changes
}

/// Like `run_timeouts`, but `peer` sends `advert` every 50 ms from `from` (first at `from`).
fn run_with_peer(
    e: &mut Election,
    from: Instant,
    until: Instant,
    advert: &Advert,
) -> Vec<(Instant, Vec<Action>)> {
    let mut changes = Vec::new();
    let mut next_peer = from;
    loop {
        let deadline = e.next_deadline().unwrap_or(until);
        let (t, input) = if next_peer <= deadline {
            let t = next_peer;
            next_peer += ms(50);
            (t, Input::Advert(advert.clone()))
        } else {
            (deadline, Input::Timeout)
        };
        if t > until {
            return changes;
        }
        let acts = e.handle(t, input);
        if !transitions(&acts).is_empty() {
            changes.push((t, acts));
        }
    }
}

#[test]
fn timing_follows_rfc_9568() {
    let (e, _) = started(cfg("n1", 100));
    // skew = (256 - 100) * 50 ms / 256 = 30.46875 ms; master-down = 3 * 50 ms + skew.
    assert_eq!(
        e.skew(),
        Duration::from_micros(30_468) + Duration::from_nanos(750)
    );
    assert_eq!(e.master_down_interval(), ms(150) + e.skew());
    let e = Election::new(
        ElectionConfig {
            advert_interval: ms(1000),
            ..cfg("n1", 254)
        },
        Instant::now(),
    );
    assert_eq!(
        e.skew(),
        Duration::from_micros(7812) + Duration::from_nanos(500)
    );
}

#[test]
fn start_advertises_at_once_then_every_interval() {
    let t0 = Instant::now();
    let mut e = Election::new(cfg("n1", 100), t0);
    assert_eq!(e.next_deadline(), None, "nothing scheduled before Start");
    let acts = e.handle(t0, Input::Start);
    assert!(matches!(
        &acts[0],
        Action::Transition {
            from: State::Init,
            to: State::Backup,
            epoch: 0,
            ..
        }
    ));
    let Some(Action::Send(a)) = acts.last() else {
        panic!("no advert on start: {acts:?}")
    };
    assert_eq!(
        (a.state, a.priority, a.epoch, a.seq),
        (State::Backup, 100, 0, 1)
    );
    assert_eq!(e.next_deadline(), Some(t0 + ms(50)));
    let acts = e.handle(t0 + ms(50), Input::Timeout);
    assert!(matches!(&acts[..], [Action::Send(a)] if a.seq == 2 && a.state == State::Backup));
    assert!(
        e.handle(t0, Input::Start).is_empty(),
        "a second Start is a no-op"
    );
}

#[test]
fn alone_takes_over_at_master_down_with_epoch_1() {
    let (mut e, t0) = started(cfg("n1", 100));
    let md = e.master_down_interval();
    let changes = run_timeouts(&mut e, t0 + ms(1000));
    assert_eq!(changes.len(), 1);
    let (t, acts) = &changes[0];
    assert_eq!(*t, t0 + md);
    assert!(matches!(
        &acts[..],
        [
            Action::Transition {
                from: State::Backup,
                to: State::Master,
                epoch: 1,
                ..
            },
            Action::InstallVips,
            Action::Announce,
            Action::Send(Advert {
                state: State::Master,
                epoch: 1,
                ..
            }),
        ]
    ));
    assert_eq!(
        transitions(acts)[0].2,
        "never heard a master within master-down 180.5 ms: taking over, epoch 1"
    );
    assert_eq!(
        (e.state(), e.epoch(), e.master()),
        (State::Master, 1, Some("n1"))
    );
}

#[test]
fn backup_follows_higher_master_and_takes_over_when_it_goes_silent() {
    let (mut e, t0) = started(cfg("n2", 100));
    let hi = adv("n1", State::Master, 200, 4);
    assert!(run_with_peer(&mut e, t0, t0 + ms(2000), &hi).is_empty());
    assert_eq!(
        (e.state(), e.master(), e.epoch()),
        (State::Backup, Some("n1"), 4)
    );
    // The last advert came at t0 + 2000 ms; silence from then on.
    let md = e.master_down_interval();
    let changes = run_timeouts(&mut e, t0 + ms(5000));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].0, t0 + ms(2000) + md);
    assert_eq!(
        transitions(&changes[0].1)[0].2,
        "no advert from n1 for 180.5 ms (master-down 180.5 ms): taking over, epoch 5"
    );
    assert_eq!(e.epoch(), 5);
}

#[test]
fn preempt_takes_over_from_lower_master_after_settle_at_master_down() {
    let (mut e, t0) = started(cfg("n1", 200));
    let lo = adv("n2", State::Master, 90, 7);
    let changes = run_with_peer(&mut e, t0, t0 + ms(3000), &lo);
    assert_eq!(changes.len(), 1, "{changes:?}");
    let md = Election::new(cfg("n1", 200), t0).master_down_interval();
    // Adverts heard within PREEMPT_SETTLE of first contact (0, 50, …, 950 ms) still reset
    // the timer; from then on it runs out.
    assert_eq!(changes[0].0, t0 + PREEMPT_SETTLE - ms(50) + md);
    assert_eq!(
        transitions(&changes[0].1)[0].2,
        "preempting lower-priority master n2 (priority 90 < 200), epoch 8"
    );
    // Equal priority: the name that sorts first preempts.
    let (mut e, t0) = started(cfg("a", 100));
    let changes = run_with_peer(&mut e, t0, t0 + ms(3000), &adv("b", State::Master, 100, 0));
    assert_eq!(
        transitions(&changes[0].1)[0].2,
        "preempting lower-ranked master b (equal priority 100, a sorts before b), epoch 1"
    );
    let (mut e, t0) = started(cfg("b", 100));
    let changes = run_with_peer(&mut e, t0, t0 + ms(3000), &adv("a", State::Master, 100, 0));
    assert!(changes.is_empty(), "b must not preempt a: {changes:?}");
}

#[test]
fn nopreempt_follows_lower_master_forever() {
    let (mut e, t0) = started(ElectionConfig {
        preempt: false,
        ..cfg("n1", 200)
    });
    let lo = adv("n2", State::Master, 90, 7);
    assert!(run_with_peer(&mut e, t0, t0 + ms(10_000), &lo).is_empty());
    assert_eq!(e.master(), Some("n2"));
}

#[test]
fn preempt_delay_holds_takeover_back() {
    let (mut e, t0) = started(ElectionConfig {
        preempt_delay: ms(1500),
        ..cfg("n1", 200)
    });
    let md = e.master_down_interval();
    let lo = adv("n2", State::Master, 90, 7);
    let changes = run_with_peer(&mut e, t0, t0 + ms(4000), &lo);
    assert_eq!(changes.len(), 1);
    // Adverts at 0, 50, …, 1450 ms still reset the timer; from 1500 ms on they do not.
    assert_eq!(changes[0].0, t0 + ms(1450) + md);
}

#[test]
fn leaving_master_is_replaced_after_exactly_skew() {
    // (256 - p) * 50 ms / 256, in µs.
    for (prio, skew_us) in [(200u8, 10_937.5), (100, 30_468.75), (253, 585.937)] {
        let (mut e, t0) = started(cfg("n2", prio));
        let master = adv("n1", State::Master, 254, 3);
        assert!(run_with_peer(&mut e, t0, t0 + ms(300), &master).is_empty());
        let t = t0 + ms(310);
        assert!(e
            .handle(t, Input::Advert(adv("n1", State::Master, 0, 3)))
            .is_empty());
        let expected = t + Duration::from_nanos((skew_us * 1000.0) as u64);
        assert_eq!(e.next_deadline(), Some(expected));
        let changes = run_timeouts(&mut e, t + ms(1000));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, expected);
        let reason = &transitions(&changes[0].1)[0].2;
        assert!(
            reason.starts_with("n1 is leaving (priority 0): taking over after skew"),
            "{reason}"
        );
        assert!(reason.ends_with("epoch 4"), "{reason}");
    }
}

#[test]
fn faulty_master_is_replaced_after_skew() {
    let (mut e, t0) = started(cfg("n2", 200));
    run_with_peer(&mut e, t0, t0 + ms(100), &adv("n1", State::Master, 250, 3));
    let t = t0 + ms(120);
    e.handle(t, Input::Advert(adv("n1", State::Fault, 250, 3)));
    assert_eq!(e.next_deadline(), Some(t + e.skew()));
    let changes = run_timeouts(&mut e, t + ms(1000));
    assert!(transitions(&changes[0].1)[0]
        .2
        .starts_with("n1 reported a fault"));
}

#[test]
fn leaving_non_master_changes_nothing() {
    let (mut e, t0) = started(cfg("n3", 100));
    run_with_peer(&mut e, t0, t0 + ms(100), &adv("n1", State::Master, 250, 3));
    let before = e.next_deadline();
    e.handle(t0 + ms(110), Input::Advert(adv("n2", State::Backup, 0, 3)));
    assert_eq!(e.next_deadline(), before);
    let n2 = e.peers().into_iter().find(|p| p.name == "n2").unwrap();
    assert!(
        !n2.is_alive(t0 + ms(111)),
        "a peer that said priority 0 has left"
    );
    let n1 = e.peers().into_iter().find(|p| p.name == "n1").unwrap();
    assert!(n1.is_alive(t0 + ms(111)));
    assert!(!n1.is_alive(n1.alive_until));
}

#[test]
fn stale_master_steps_down_on_first_advert_with_higher_epoch() {
    let (mut e, t0) = started(cfg("n1", 200));
    run_timeouts(&mut e, t0 + ms(500));
    assert_eq!((e.state(), e.epoch()), (State::Master, 1));
    // A lower-priority master with a higher epoch (took over while we were cut off).
    let t = t0 + ms(600);
    let acts = e.handle(t, Input::Advert(adv("n2", State::Master, 100, 2)));
    assert_eq!(
        transitions(&acts),
        vec![(
            State::Master,
            State::Backup,
            "n2 is master with epoch 2 > our 1 (stale after partition): stepping down".into()
        )]
    );
    assert_eq!(acts.last(), Some(&Action::ReleaseVips));
    assert_eq!(
        e.timers.get(Timer::MasterDown),
        Some(t + e.master_down_interval())
    );
    assert_eq!(e.master(), Some("n2"));
    // It preempts n2 again once it has heard it for PREEMPT_SETTLE, at master-down, with
    // epoch 3.
    let changes = run_with_peer(
        &mut e,
        t + ms(50),
        t + ms(3000),
        &adv("n2", State::Master, 100, 2),
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].0,
        t + PREEMPT_SETTLE - ms(50) + e.master_down_interval()
    );
    assert_eq!(e.epoch(), 3);
}

#[test]
fn master_with_greater_epoch_reasserts() {
    let (mut e, t0) = started(cfg("n2", 100));
    e.handle(t0, Input::Advert(adv("n9", State::Backup, 1, 6)));
    run_timeouts(&mut e, t0 + ms(500));
    assert_eq!(e.epoch(), 7);
    let acts = e.handle(
        t0 + ms(501),
        Input::Advert(adv("n1", State::Master, 250, 6)),
    );
    assert!(matches!(
        &acts[..],
        [
            Action::Send(Advert {
                state: State::Master,
                epoch: 7,
                ..
            }),
            Action::Announce
        ]
    ));
    // Backup adverts never move a master, whatever their epoch; they raise max_seen only.
    assert!(e
        .handle(
            t0 + ms(502),
            Input::Advert(adv("n1", State::Backup, 250, 40))
        )
        .is_empty());
    assert_eq!((e.state(), e.epoch()), (State::Master, 7));
    let acts = e.handle(
        t0 + ms(503),
        Input::Fault {
            cause: FaultCause::HealthCheck,
            reason: "gw down".into(),
        },
    );
    assert_eq!(e.epoch(), 40);
    assert!(acts.contains(&Action::ReleaseVips));
}

#[test]
fn equal_epoch_is_settled_by_rank() {
    // (our priority, our name, their priority, their name, we step down?)
    for (p, name, tp, tname, down) in [
        (100, "n2", 200, "n1", true),
        (200, "n2", 100, "n1", false),
        (100, "b", 100, "a", true),
        (100, "a", 100, "b", false),
    ] {
        let (mut e, t0) = started(cfg(name, p));
        run_timeouts(&mut e, t0 + ms(500));
        let acts = e.handle(
            t0 + ms(501),
            Input::Advert(adv(tname, State::Master, tp, 1)),
        );
        assert_eq!(e.state() == State::Backup, down, "{name} vs {tname}");
        if down {
            let reason = &transitions(&acts)[0].2;
            assert!(reason.contains("equal epoch 1, higher rank"), "{reason}");
            assert!(reason.contains(&format!("{tp}")), "{reason}");
        }
    }
}

#[test]
fn epoch_increments_on_each_takeover() {
    let (mut e, t0) = started(cfg("n1", 100));
    let mut t = t0;
    for round in 1..=4u64 {
        run_timeouts(&mut e, t + ms(400));
        assert_eq!((e.state(), e.epoch()), (State::Master, 2 * round - 1));
        // A peer wins with the next epoch; we step down, then it dies and we take over.
        t += ms(401);
        e.handle(t, Input::Advert(adv("n0", State::Master, 50, 2 * round)));
        assert_eq!(e.state(), State::Backup);
    }
}

#[test]
fn shutdown_sends_priority_0_releases_and_stops() {
    let (mut e, t0) = started(cfg("n1", 100));
    run_timeouts(&mut e, t0 + ms(500));
    let acts = e.handle(t0 + ms(501), Input::Shutdown);
    assert!(matches!(
        &acts[..],
        [
            Action::Transition {
                from: State::Master,
                to: State::Init,
                ..
            },
            Action::ReleaseVips,
            Action::Send(Advert {
                state: State::Master,
                priority: 0,
                epoch: 1,
                ..
            }),
        ]
    ));
    assert_eq!(transitions(&acts)[0].2, "shutting down");
    assert_eq!((e.next_deadline(), e.priority()), (None, 0));
    for input in [
        Input::Start,
        Input::Timeout,
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    ] {
        assert!(e.handle(t0 + ms(9999), input).is_empty());
    }
    // A backup's goodbye carries no ReleaseVips.
    let (mut e, t0) = started(cfg("n1", 100));
    let acts = e.handle(t0, Input::Shutdown);
    assert!(!acts.contains(&Action::ReleaseVips));
    assert!(matches!(
        acts.last(),
        Some(Action::Send(Advert {
            priority: 0,
            state: State::Backup,
            ..
        }))
    ));
}

#[test]
fn fault_releases_never_takes_over_and_recovers() {
    let (mut e, t0) = started(cfg("n1", 100));
    run_timeouts(&mut e, t0 + ms(500));
    let acts = e.handle(
        t0 + ms(500),
        Input::Fault {
            cause: FaultCause::HealthCheck,
            reason: "gateway 192.0.2.1 unreachable".into(),
        },
    );
    assert_eq!(
        transitions(&acts),
        vec![(
            State::Master,
            State::Fault,
            "gateway 192.0.2.1 unreachable".into()
        )]
    );
    assert!(acts.contains(&Action::ReleaseVips));
    assert!(matches!(
        acts.last(),
        Some(Action::Send(Advert {
            state: State::Fault,
            ..
        }))
    ));
    // Ten seconds in Fault: only Fault adverts, never a takeover.
    let mut t = t0 + ms(500);
    while let Some(d) = e.next_deadline().filter(|d| *d < t0 + ms(10_500)) {
        t = d;
        let acts = e.handle(t, Input::Timeout);
        assert!(matches!(
            &acts[..],
            [Action::Send(Advert {
                state: State::Fault,
                ..
            })]
        ));
    }
    let acts = e.handle(
        t,
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    );
    assert_eq!(transitions(&acts)[0].1, State::Backup);
    let changes = run_timeouts(&mut e, t + ms(1000));
    assert_eq!(changes[0].0, t + e.master_down_interval());
    assert_eq!(e.epoch(), 2);
}

#[test]
fn early_and_late_timeouts() {
    let (mut e, t0) = started(cfg("n1", 100));
    assert!(
        e.handle(t0 + ms(1), Input::Timeout).is_empty(),
        "before any deadline: no-op"
    );
    // Ten seconds late: one takeover and one advert, next send one interval from now.
    let late = t0 + ms(10_000);
    let acts = e.handle(late, Input::Timeout);
    assert_eq!(
        acts.iter().filter(|a| matches!(a, Action::Send(_))).count(),
        1
    );
    assert_eq!(e.state(), State::Master);
    assert_eq!(e.next_deadline(), Some(late + ms(50)));
}

#[test]
fn config_is_clamped() {
    let e = Election::new(
        ElectionConfig {
            priority: 0,
            advert_interval: Duration::from_micros(10),
            down_multiplier: 0,
            ..cfg("n1", 0)
        },
        Instant::now(),
    );
    let c = e.config();
    assert_eq!(
        (c.priority, c.advert_interval, c.down_multiplier),
        (1, ms(10), 1)
    );
    let e = Election::new(
        ElectionConfig {
            priority: 255,
            advert_interval: Duration::from_secs(1_000_000),
            down_multiplier: u32::MAX,
            ..cfg("n1", 0)
        },
        Instant::now(),
    );
    let c = e.config();
    assert_eq!(
        (c.priority, c.advert_interval.as_millis(), c.down_multiplier),
        (254, 65_535, 255)
    );
}

#[test]
fn random_inputs_never_panic_and_epochs_saturate() {
    let names = ["n0", "n1", "n2", "n3"];
    let states = [State::Init, State::Backup, State::Master, State::Fault];
    for seed in 0..200u64 {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let base = Instant::now();
        let mut e = Election::new(cfg("n0", rng.random()), base);
        for _ in 0..300 {
            // Time mostly moves forward, sometimes backwards.
            let now = base + ms(rng.random_range(0..5000));
            let input = match rng.random_range(0..10) {
                0 => Input::Start,
                1 => Input::Shutdown,
                2 => Input::Fault {
                    cause: FaultCause::HealthCheck,
                    reason: "x".into(),
                },
                3 => Input::FaultCleared {
                    cause: FaultCause::HealthCheck,
                },
                4 | 5 => Input::Timeout,
                _ => Input::Advert(Advert {
                    name: names[rng.random_range(0..4)].into(),
                    state: states[rng.random_range(0..4)],
                    priority: rng.random(),
                    epoch: if rng.random_bool(0.3) {
                        u64::MAX
                    } else {
                        rng.random_range(0..9)
                    },
                    advert_interval_ms: rng.random(),
                    seq: rng.random(),
                    mac: rng.random(),
                    fingerprint: rng.random(),
                    handover_to: None,
                    extra_macs: Vec::new(),
                    heard_us_at: None,
                }),
            };
            for a in e.handle(now, input) {
                if let Action::Send(a) = a {
                    assert_eq!(a.validate(), Ok(()), "our own adverts are always valid");
                }
            }
            let _ = (e.next_deadline(), e.peers(), e.master(), e.skew());
        }
    }
    // Taking over from u64::MAX keeps u64::MAX; the tie is then settled by rank.
    let (mut e, t0) = started(cfg("n1", 100));
    e.handle(t0, Input::Advert(adv("n2", State::Backup, 100, u64::MAX)));
    run_timeouts(&mut e, t0 + ms(500));
    assert_eq!((e.state(), e.epoch()), (State::Master, u64::MAX));
    e.handle(
        t0 + ms(501),
        Input::Advert(adv("n0", State::Master, 100, u64::MAX)),
    );
    assert_eq!(e.state(), State::Backup);
}

#[test]
fn fault_before_start_holds_until_cleared() {
    let t0 = Instant::now();
    let mut e = Election::new(cfg("n1", 100), t0);
    let acts = e.handle(
        t0,
        Input::Fault {
            cause: FaultCause::HealthCheck,
            reason: "vip interface eth9 missing".into(),
        },
    );
    assert_eq!(transitions(&acts)[0].1, State::Fault);
    let acts = e.handle(t0, Input::Start);
    assert!(matches!(
        &acts[..],
        [Action::Send(Advert {
            state: State::Fault,
            ..
        })]
    ));
    assert!(
        run_timeouts(&mut e, t0 + ms(2000)).is_empty(),
        "no takeover while faulty"
    );
    let acts = e.handle(
        t0 + ms(2000),
        Input::FaultCleared {
            cause: FaultCause::HealthCheck,
        },
    );
    assert_eq!(transitions(&acts)[0].1, State::Backup);
    assert_eq!(
        e.timers.get(Timer::MasterDown),
        Some(t0 + ms(2000) + e.master_down_interval())
    );
}

#[test]
fn a_former_master_leaving_as_backup_does_not_cut_the_timer() {
    // We follow n1 (master); n1 hands over to n2 and shuts down at once. Its priority-0
    // advert says it left as a backup, and it reaches us before n2's first advert as master.
    let (mut e, t0) = started(cfg("n3", 50));
    e.handle(t0, Input::Advert(adv("n1", State::Master, 200, 1)));
    assert_eq!(e.master(), Some("n1"));
    let t = t0 + ms(20);
    let acts = e.handle(t, Input::Advert(adv("n1", State::Backup, 0, 2)));
    assert!(transitions(&acts).is_empty(), "{acts:?}");
    // Not cut to our skew (~40 ms): nothing happens before n1's master-down (~190 ms).
    assert!(run_timeouts(&mut e, t + ms(100)).is_empty());
    // n2's advert as master follows; we follow it and never take over.
    e.handle(t + ms(1), Input::Advert(adv("n2", State::Master, 100, 2)));
    let changes = run_with_peer(
        &mut e,
        t + ms(50),
        t + ms(2000),
        &adv("n2", State::Master, 100, 2),
    );
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(e.master(), Some("n2"));
}

/// The VIP interface's MAC changed (or it was re-created): adverts carry the new MAC, and
/// a "conflict" from it is our own gratuitous ARP, not a stranger's.
#[test]
fn mac_changed_is_carried_in_adverts() {
    let (mut e, t0) = started(cfg("n1", 200));
    let new_mac = [2, 0, 0x5e, 0, 0xa9, 2];
    e.handle(t0, Input::MacChanged { mac: new_mac });
    let mut sent = Vec::new();
    let mut t = t0;
    for _ in 0..100 {
        if sent.len() >= 2 && e.state() == State::Master {
            break;
        }
        t = e
            .next_deadline()
            .expect("a started election has a deadline");
        for a in e.handle(t, Input::Timeout) {
            if let Action::Send(advert) = a {
                sent.push(advert.mac);
            }
        }
    }
    assert!(sent.iter().all(|m| *m == new_mac), "{sent:?}");
    assert_eq!(e.state(), State::Master);
    // Our own MAC on the wire is no conflict: nothing happens.
    assert!(e.handle(t, Input::Conflict { mac: new_mac }).is_empty());
}

/// Two groups on one node send one datagram per interval: when another group's advert goes
/// out, ours goes with it and our advert timer restarts from then, so the next periodic
/// advert comes a full interval later. Before start and after shutdown nothing is sent.
#[test]
fn advert_due_sends_now_and_realigns_the_timer() {
    let c = cfg("n1", 100);
    let t0 = Instant::now();
    let mut e = Election::new(c, t0);
    assert!(e.handle(t0, Input::AdvertDue).is_empty(), "not started yet");
    e.handle(t0, Input::Start);
    let t = t0 + ms(20);
    let sent: Vec<_> = e
        .handle(t, Input::AdvertDue)
        .into_iter()
        .filter(|a| matches!(a, Action::Send(_)))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    // No advert is due again before a whole interval from the coalesced one.
    let mut at = t;
    loop {
        let next = e
            .next_deadline()
            .expect("a started election has a deadline");
        assert!(next > at);
        at = next;
        let actions = e.handle(at, Input::Timeout);
        if actions.iter().any(|a| matches!(a, Action::Send(_))) {
            assert!(
                at >= t + ms(50),
                "advert at {:?} after the coalesced one",
                at - t
            );
            break;
        }
    }
    e.handle(at, Input::Shutdown);
    assert!(e.handle(at + ms(1), Input::AdvertDue).is_empty(), "stopped");
}

/// Master without ever having heard its peer (restarted behind blocked adverts): a MAC it
/// cannot attribute may be that peer's. It re-announces once; if the MAC still answers an
/// advert interval later, it releases. Once it has heard every peer, an unknown MAC is a
/// stranger and is only answered with re-announcements.
#[test]
fn an_unknown_mac_outlasting_our_reannouncement_wins_only_while_a_peer_was_never_heard() {
    let stranger = [2, 0x66, 0, 0, 0, 9];
    let master_at = |e: &mut Election, t0: Instant| {
        let mut t = t0;
        while e.state() != State::Master {
            t = e
                .next_deadline()
                .expect("a started election has a deadline");
            e.handle(t, Input::Timeout);
            assert!(t < t0 + ms(2000), "never became master");
        }
        t
    };
    // Never heard n2: the second answer, an interval after the first, makes us release.
    let (mut e, t0) = started(cfg("n1", 200));
    let t = master_at(&mut e, t0);
    let first = e.handle(t, Input::Conflict { mac: stranger });
    assert!(first.contains(&Action::Announce), "{first:?}");
    assert_eq!(e.state(), State::Master);
    let again = e.handle(t + ms(60), Input::Conflict { mac: stranger });
    assert!(
        transitions(&again)
            .iter()
            .any(|(from, to, why)| *from == State::Master
                && *to == State::Backup
                && why.contains("heard only 0 of our 1 peers")),
        "{again:?}"
    );
    assert!(again.contains(&Action::ReleaseVips), "{again:?}");

    // Heard n2 (a backup) once: the same frames are a stranger's; we keep the VIPs.
    let (mut e, t0) = started(cfg("n1", 200));
    e.handle(t0, Input::Advert(adv("n2", State::Backup, 100, 0)));
    let t = master_at(&mut e, t0);
    e.handle(t, Input::Advert(adv("n2", State::Backup, 100, 0)));
    for i in 0..5 {
        let out = e.handle(t + ms(60 * i), Input::Conflict { mac: stranger });
        assert!(!out.contains(&Action::ReleaseVips), "{out:?}");
    }
    assert_eq!(e.state(), State::Master);
}

/// Maintenance on a master with a live backup hands the VIPs over make-before-break: no
/// release until the successor's takeover advert, then Fault (maintenance). Without a
/// successor in time, it gives them up at the deadline, with a notice.
#[test]
fn maintenance_on_a_master_hands_over_first() {
    let become_master = || {
        let (mut e, t0) = started(cfg("n1", 200));
        let mut t = t0;
        while e.state() != State::Master {
            e.handle(t, Input::Advert(adv("n2", State::Backup, 100, 0)));
            t = e
                .next_deadline()
                .expect("a started election has a deadline");
            e.handle(t, Input::Timeout);
            assert!(t < t0 + ms(2000), "never became master");
        }
        e.handle(t, Input::Advert(adv("n2", State::Backup, 100, 0)));
        (e, t)
    };
    let (mut e, t) = become_master();
    let out = e.handle(t, Input::Maintenance { on: true });
    assert!(!out.contains(&Action::ReleaseVips), "{out:?}");
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Send(ad) if ad.handover_to.as_deref() == Some("n2"))),
        "{out:?}"
    );
    assert_eq!(e.state(), State::Master);
    let taken = adv("n2", State::Master, 100, e.epoch() + 1);
    let out = e.handle(t + ms(5), Input::Advert(taken));
    assert!(out.contains(&Action::ReleaseVips), "{out:?}");
    assert_eq!(e.state(), State::Fault);
    assert!(e.maintenance());
    assert!(transitions(&out)
        .iter()
        .any(|(_, to, why)| *to == State::Fault && why.contains("handed over")));

    // Nobody takes over: at the deadline the VIPs go anyway.
    let (mut e, t) = become_master();
    e.handle(t, Input::Maintenance { on: true });
    let mut released = Vec::new();
    while e.state() == State::Master {
        let at = e.next_deadline().expect("a deadline while handing over");
        assert!(at < t + ms(2000), "maintenance never began");
        released = e.handle(at, Input::Timeout);
    }
    assert!(released.contains(&Action::ReleaseVips), "{released:?}");
    assert!(
        released.iter().any(|a| matches!(
            a,
            Action::Notice {
                cause: NoticeCause::HandoverTimedOut,
                ..
            }
        )),
        "{released:?}"
    );
    assert_eq!(e.state(), State::Fault);
}

#[test]
fn proven_two_way_contact_preempts_at_once_and_a_stale_proof_does_not() {
    // n1 (200) restarts while n2 (90) is master. n2's adverts say which of our datagrams
    // it heard last: once that is one we sent during this contact, n1 preempts at that
    // advert, without PREEMPT_SETTLE's blind second.
    let (mut e, t0) = started(cfg("n1", 200));
    let lo = adv("n2", State::Master, 90, 7);
    // First contact at t0 + 20 ms; n2 has not heard us yet.
    let acts = e.handle(t0 + ms(20), Input::Advert(lo.clone()));
    assert!(transitions(&acts).is_empty());
    assert!(run_timeouts(&mut e, t0 + ms(60)).is_empty());
    // Its next advert reports our advert sent at t0 + 50 ms: proven.
    let proven = Advert {
        heard_us_at: Some(t0 + ms(50)),
        ..lo.clone()
    };
    e.handle(t0 + ms(70), Input::Advert(proven));
    let changes = run_timeouts(&mut e, t0 + ms(70));
    assert_eq!(changes.len(), 1, "preempted at the proving advert");
    assert_eq!(changes[0].0, t0 + ms(70));
    assert_eq!(
        transitions(&changes[0].1)[0].2,
        "preempting lower-priority master n2 (priority 90 < 200), epoch 8; \
         contact proven both ways (it hears our adverts)"
    );

    // After a partition: we hear n2 again from t0 + 2000 ms, but it still reports the last
    // datagram it heard before the gap (t0 + 500 ms): the other direction is not proven,
    // and the v1 rule (PREEMPT_SETTLE of contact) applies.
    let (mut e, t0) = started(ElectionConfig {
        preempt: true,
        ..cfg("n1", 200)
    });
    let stale = Advert {
        heard_us_at: Some(t0 + ms(500)),
        ..lo
    };
    let mut t = t0 + ms(2000);
    let mut first_change = None;
    while t < t0 + ms(4000) && first_change.is_none() {
        e.handle(t, Input::Advert(stale.clone()));
        t += ms(50);
        if let Some((at, _)) = run_timeouts(&mut e, t).into_iter().next() {
            first_change = Some(at);
        }
    }
    let at = first_change.expect("preempts after the settle time");
    assert!(at >= t0 + ms(2000) + PREEMPT_SETTLE, "{:?}", at - t0);
}

/// n1 (200) master with a live backup n2 (150) heard at `t0 + 300 ms`, and n2's election
/// following n1.
fn master_and_backup() -> (Election, Election, Instant) {
    let (mut n1, t0) = started(cfg("n1", 200));
    run_timeouts(&mut n1, t0 + ms(250));
    assert_eq!(n1.state(), State::Master);
    let mut n2 = Election::new(cfg("n2", 150), t0);
    n2.handle(t0, Input::Start);
    let t = t0 + ms(300);
    n1.handle(t, Input::Advert(adv("n2", State::Backup, 150, 1)));
    let a1 = n1.advert(State::Master, 200);
    n2.handle(t, Input::Advert(a1));
    assert_eq!(n2.state(), State::Backup);
    (n1, n2, t0)
}

fn sent_adverts(acts: &[Action]) -> Vec<Advert> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_master_going_to_fault_names_its_successor_who_takes_over_at_once() {
    // The service died (a check with weight "fault"): n1 releases, then its fault advert
    // names the best live backup; n2 takes over on that advert, not after its skew.
    let (mut n1, mut n2, t0) = master_and_backup();
    let t = t0 + ms(310);
    let acts = n1.handle(
        t,
        Input::Fault {
            cause: FaultCause::HealthCheck,
            reason: "check nginx failed: nginx (pid 7) exited".into(),
        },
    );
    let release = acts.iter().position(|a| *a == Action::ReleaseVips);
    let bye = sent_adverts(&acts);
    assert_eq!(bye.len(), 1, "{acts:?}");
    assert_eq!(
        (bye[0].state, bye[0].handover_to.as_deref()),
        (State::Fault, Some("n2"))
    );
    let send = acts.iter().position(|a| matches!(a, Action::Send(_)));
    assert!(
        release < send,
        "released before the advert leaves: {acts:?}"
    );
    let acts = n2.handle(t + ms(1), Input::Advert(bye[0].clone()));
    assert_eq!(n2.state(), State::Master, "{acts:?}");
    assert_eq!(n2.state_since(), t + ms(1));
    assert!(acts.contains(&Action::InstallVips) && !acts.contains(&Action::Probe));
    // n1 hears n2 master: its fault adverts name nobody any more.
    n1.handle(t + ms(2), Input::Advert(sent_adverts(&acts)[0].clone()));
    let later = sent_adverts(&n1.handle(t + ms(60), Input::Timeout));
    assert!(later.iter().all(|a| a.handover_to.is_none()), "{later:?}");
}

#[test]
fn a_master_outranked_by_its_checks_hands_over_make_before_break() {
    // A failing check's negative weight takes n1 from 200 to 140, below live backup n2
    // (150): n1 hands over at once (planned: n2 installs first, then n1 releases), instead
    // of n2 preempting a master-down later.
    let (mut n1, mut n2, t0) = master_and_backup();
    let t = t0 + ms(310);
    let acts = n1.handle(t, Input::PriorityDelta { delta: -60 });
    assert_eq!(
        n1.state(),
        State::Master,
        "still master until n2 has the VIPs"
    );
    assert!(!acts.contains(&Action::ReleaseVips));
    let ask = sent_adverts(&acts);
    assert_eq!(ask.len(), 1, "{acts:?}");
    assert_eq!(
        (ask[0].priority, ask[0].handover_to.as_deref()),
        (140, Some("n2"))
    );
    let took = n2.handle(t + ms(1), Input::Advert(ask[0].clone()));
    assert_eq!(n2.state(), State::Master, "{took:?}");
    let acts = n1.handle(t + ms(2), Input::Advert(sent_adverts(&took)[0].clone()));
    assert_eq!(n1.state(), State::Backup, "{acts:?}");
    assert!(acts.contains(&Action::ReleaseVips));
    // Its priority back (the check passes again): n1 may preempt again, it did not yield.
    n1.handle(t + ms(500), Input::PriorityDelta { delta: 0 });
    assert!(n1.may_preempt(t + ms(500)));

    // A delta that leaves n1 on top, or preempt off: no handover.
    let (mut n1, _, t0) = master_and_backup();
    let acts = n1.handle(t0 + ms(310), Input::PriorityDelta { delta: -40 });
    assert!(sent_adverts(&acts).is_empty() && n1.handover_target().is_none());
    let (mut n1, _, t0) = master_and_backup();
    n1.cfg.preempt = false;
    let acts = n1.handle(t0 + ms(310), Input::PriorityDelta { delta: -60 });
    assert!(sent_adverts(&acts).is_empty() && n1.handover_target().is_none());
}
