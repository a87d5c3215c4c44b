//! Issue 14, part 1 in namespaces: a two-node keepalived pair, imported with
//! `haagent import keepalived` and completed as the report tells the operator (the
//! certificates from its `authentication` line; the TLS dir the certificates went to), runs:
//! the `vrrp_script` curls the local nginx with `weight -60`, so when nginx stops on the
//! master its priority (150 − 60 = 90) falls below the backup's (100) and the VIP moves; the
//! `notify` script, called with keepalived's positional arguments, logs
//! `INSTANCE VI_WEB MASTER 150` / `… BACKUP 90` in the order of the transitions, and
//! `notify_master`/`notify_backup` get only their own arguments (as in keepalived).
//!
//! The test harness adds only what two agents on one machine need apart (each its own
//! `[control] socket` and `[state] dir`). Needs root; see `support::require_root`.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::groups::*;
use support::*;

/// The TLS dir the import writes and its report's certificate commands name.
const IMPORTED_CERTS: &str = "/etc/haagent/certs";

/// One node's keepalived.conf: the instance `VI_WEB` with the VIP, a curl check of its own
/// nginx at `weight -60`, `notify` plus `notify_master`/`notify_backup` calling `hook`.
fn keepalived_conf(me: &str, priority: u8, addr: Ipv4Addr, peer: Ipv4Addr, hook: &Path) -> String {
    let hook = hook.display();
    format!(
        "! {me} of a two-node nginx pair\n\
         global_defs {{\n    router_id {me}\n}}\n\n\
         vrrp_script chk_nginx {{\n    script \"/usr/bin/curl -fsS -m 1 -o /dev/null http://{addr}/\"\n    \
         interval 1\n    fall 1\n    rise 1\n    weight -60\n}}\n\n\
         vrrp_instance VI_WEB {{\n    state {state}\n    interface eth0\n    virtual_router_id 51\n    \
         priority {priority}\n    advert_int 1\n    unicast_src_ip {addr}\n    \
         unicast_peer {{\n        {peer}\n    }}\n    \
         authentication {{\n        auth_type PASS\n        auth_pass s3cr3tpw\n    }}\n    \
         virtual_ipaddress {{\n        {VIP}/24 dev eth0\n    }}\n    \
         track_script {{\n        chk_nginx\n    }}\n    \
         notify \"{hook}\"\n    notify_master \"{hook} master-hook\"\n    \
         notify_backup \"{hook} backup-hook\"\n}}\n",
        state = if priority > 100 { "MASTER" } else { "BACKUP" },
    )
}

/// A keepalived-style notify script: appends its positional arguments, one call a line,
/// to `log`. Made executable.
fn write_notify_script(path: &Path, log: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        path,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `haagent import keepalived CONF --out OUT --report REPORT`; returns the report.
fn import(conf: &Path, out: &Path, report: &Path) -> String {
    let result = Command::new(haagent())
        .args(["import", "keepalived"])
        .arg(conf)
        .arg("--out")
        .arg(out)
        .arg("--report")
        .arg(report)
        .arg("--check")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(report).unwrap_or_default();
    assert_eq!(
        result.status.code(),
        Some(0),
        "import of {}: {}\n{text}",
        conf.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    text
}

/// The commands in backquotes on the report's `authentication` line, each as argv after
/// `haagent`, with the certificates dir moved to `certs`.
fn certificate_commands(report: &str, certs: &Path) -> Vec<Vec<String>> {
    let line = report
        .lines()
        .find(|l| l.contains(": authentication: "))
        .unwrap_or_else(|| panic!("the report has no authentication line:\n{report}"));
    let commands: Vec<Vec<String>> = line
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|cmd| {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            assert_eq!(words.first(), Some(&"haagent"), "{line}");
            words[1..]
                .iter()
                .map(|w| w.replace(IMPORTED_CERTS, &certs.display().to_string()))
                .collect()
        })
        .collect();
    assert_eq!(commands.len(), 2, "certs init and certs issue: {line}");
    commands
}

/// `log`'s lines, without a first `INSTANCE VI_WEB FAULT <prio>`: a group waits in fault
/// for the first verdict of its checks (docs/keepalived.md, `init_fail`), which a fast
/// first check may beat.
fn notify_lines(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines
        .first()
        .is_some_and(|l| l.starts_with("INSTANCE VI_WEB FAULT "))
    {
        lines.remove(0);
    }
    lines
}

/// Polls [`notify_lines`] of `log` until it has `n` lines (or panics after `timeout`).
fn wait_lines(g: &GroupLab, log: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = notify_lines(log);
        if lines.len() >= n {
            return lines;
        }
        g.assert_agents_alive();
        assert!(
            start.elapsed() < timeout,
            "{} has {} of {n} lines after {timeout:?}: {lines:#?}\n{}",
            log.display(),
            lines.len(),
            g.c.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_imported_keepalived_pair_fails_over_and_notifies_like_keepalived() {
    if !require_root("an_imported_keepalived_pair_fails_over_and_notifies_like_keepalived") {
        return;
    }
    let mut g = GroupLab::new(&["n1", "n2"]);
    let dir = g.c.dir.path().to_path_buf();
    let certs = dir.join("imported-certs");
    let addr = |n: &str| g.c.lab.host(n).unwrap().addr;
    let (a1, a2) = (addr("n1"), addr("n2"));

    // Import each node's keepalived.conf, then do what the report says.
    let mut logs: Vec<PathBuf> = Vec::new();
    let mut init_done: Option<Vec<String>> = None;
    for (me, priority, mine, peer) in [("n1", 150, a1, a2), ("n2", 100, a2, a1)] {
        let hook = dir.join(format!("{me}-notify.sh"));
        let log = dir.join(format!("{me}-notify.log"));
        write_notify_script(&hook, &log);
        logs.push(log);
        let conf = dir.join(format!("{me}-keepalived.conf"));
        std::fs::write(&conf, keepalived_conf(me, priority, mine, peer, &hook)).unwrap();
        let out = dir.join(format!("{me}-imported.toml"));
        let report = import(&conf, &out, &dir.join(format!("{me}-import.report")));
        assert!(
            report.contains("import: complete"),
            "{me}'s import is incomplete:\n{report}"
        );
        let commands = certificate_commands(&report, &certs);
        // One CA for the cluster: `certs init` once; each report gives its node's `issue`.
        match &init_done {
            None => {
                let args: Vec<&str> = commands[0].iter().map(String::as_str).collect();
                run_ok(&args);
                init_done = Some(commands[0].clone());
            }
            Some(init) => assert_eq!(init, &commands[0], "both reports name the same CA"),
        }
        let issue: Vec<&str> = commands[1].iter().map(String::as_str).collect();
        assert!(
            issue.contains(&me) && issue.contains(&mine.to_string().as_str()),
            "{me}'s report issues its own certificate with its address: {issue:?}"
        );
        run_ok(&issue);

        let imported = std::fs::read_to_string(&out).unwrap();
        let tls = format!("dir = \"{IMPORTED_CERTS}\"");
        assert!(imported.contains(&tls), "{imported}");
        for want in [
            "weight = -60",
            "kind = \"http\"",
            "command = { command = [",
            "args = \"keepalived\" }",
        ] {
            assert!(imported.contains(want), "{me}: no {want:?} in\n{imported}");
        }
        let config = imported.replace(&tls, &format!("dir = \"{}\"", certs.display()))
            + &format!(
                "\n[control]\nsocket = \"{}\"\n\n[state]\ndir = \"{}\"\n",
                g.c.socket_path(me).display(),
                g.c.state_dir(me).display()
            );
        std::fs::write(g.c.config_path(me), &config).unwrap();
        run_ok(&[
            "check-config",
            "--config",
            g.c.config_path(me).to_str().unwrap(),
        ]);
    }

    let mut web = [g.c.start_nginx("n1"), g.c.start_nginx("n2")];
    // n1 first, so that it is the only one to become master before the failure.
    g.start("n1");
    g.wait_holders(VIP, "eth0", &["n1"], GROUP_CONVERGE);
    g.start("n2");
    g.wait_group("n2", "VI_WEB", GROUP_CONVERGE, in_state("backup"));
    let probe = g.probe(VIP);
    wait_served_by(&probe, "the VIP", "n1", GROUP_CONVERGE);
    let n1_before = wait_lines(&g, &logs[0], 4, GROUP_CONVERGE);
    let n2_before = wait_lines(&g, &logs[1], 2, GROUP_CONVERGE);
    assert_eq!(
        n1_before,
        [
            "backup-hook",
            "INSTANCE VI_WEB BACKUP 150",
            "master-hook",
            "INSTANCE VI_WEB MASTER 150",
        ],
        "n1's notify log"
    );
    assert_eq!(
        n2_before,
        ["backup-hook", "INSTANCE VI_WEB BACKUP 100"],
        "n2's notify log"
    );

    // nginx stops on the master: its check fails, 150 − 60 = 90 < 100, the VIP moves.
    let t0 = Instant::now();
    haagent_lab::web::stop(&mut web[0]);
    let took = g.wait_holders(VIP, "eth0", &["n2"], GROUP_CONVERGE);
    wait_served_by(&probe, "the VIP", "n2", GROUP_CONVERGE);
    let n1 = g.wait_group("n1", "VI_WEB", GROUP_CONVERGE, in_state("backup"));
    assert_eq!(n1["priority"], 90, "{n1:#}");
    let n1_lines = wait_lines(&g, &logs[0], 6, GROUP_CONVERGE);
    let n2_lines = wait_lines(&g, &logs[1], 4, GROUP_CONVERGE);
    eprintln!(
        "IMPORT keepalived pair: nginx stopped on n1, n2 alone holds {VIP} after {} ms ({} ms to steady answers)",
        took.as_millis(),
        t0.elapsed().as_millis()
    );
    assert_eq!(
        n1_lines[4..],
        ["backup-hook", "INSTANCE VI_WEB BACKUP 90"],
        "n1's notify log: {n1_lines:#?}"
    );
    assert_eq!(
        n2_lines[2..],
        ["master-hook", "INSTANCE VI_WEB MASTER 100"],
        "n2's notify log: {n2_lines:#?}"
    );
    // Nothing else ran: no further transition on either node.
    g.assert_holders_stay(&[(VIP, "eth0")], &["n2"], Duration::from_millis(500));
    for (log, n) in [(&logs[0], 6), (&logs[1], 4)] {
        let lines = notify_lines(log);
        assert_eq!(lines.len(), n, "{}: {lines:#?}", log.display());
    }
}
