//! Start-up: every node started at once gives exactly one transition to master, the
//! top-ranked node's (issue 12 part 5): a backup that hears a live, eligible, higher-ranked
//! peer defers to it instead of claiming and being preempted a second later.

mod support;

use std::time::Duration;

use support::*;

/// Starts every node of `nodes` back to back, waits for the first to hold the VIP alone and
/// for every peer to be heard, and returns how many transitions to master each node logged.
fn cold_start(nodes: &[Node]) -> Vec<(String, usize)> {
    let mut c = Cluster::new(nodes);
    // Lowest-ranked first: the start order must not matter.
    for n in nodes.iter().rev() {
        c.start(n.name);
    }
    let top = nodes[0].name;
    c.wait_sole_holder(top, CONVERGE);
    let peers = nodes.len() - 1;
    c.wait_status(top, CONVERGE, |s| {
        s["peers"]
            .as_array()
            .is_some_and(|p| p.len() == peers && p.iter().all(|p| p["alive"] == true))
    });
    // Hold for several master-down intervals: a lower-ranked node that had claimed would
    // be preempted within ~1.2 s; one that is about to claim would within master-down.
    c.assert_holders_stay(&[top], Duration::from_millis(1500));
    if std::env::var_os("STARTUP_LOGS").is_some() {
        eprintln!("{}", c.logs());
    }
    nodes
        .iter()
        .map(|n| {
            let log = c.lab.agent(n.name).unwrap().log_text();
            let to_master = log
                .lines()
                .filter(|l| l.contains(" from=") && l.contains(" to=master"))
                .count();
            // Nor a probe answered by the node about to claim ("not claiming the VIPs:
            // answered by n1 ..., its adverts say backup"), a warning at every start before.
            assert!(
                !log.contains("not claiming the VIPs"),
                "{}: a claim blocked at start:\n{log}",
                n.name
            );
            (n.name.to_string(), to_master)
        })
        .collect()
}

#[test]
fn starting_every_node_at_once_gives_one_transition_to_master() {
    if !require_root("starting_every_node_at_once_gives_one_transition_to_master") {
        return;
    }
    for size in [2usize, 3] {
        let all = [node("n1", 200), node("n2", 150), node("n3", 100)];
        let nodes = &all[..size];
        for round in 0..3 {
            let got = cold_start(nodes);
            let want: Vec<(String, usize)> = nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.to_string(), usize::from(i == 0)))
                .collect();
            assert_eq!(
                got, want,
                "{size} nodes, start {round}: transitions to master"
            );
        }
    }
}
