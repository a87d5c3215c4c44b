//! The command line as an operator uses it: certificate bootstrap and check-config.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn haagent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haagent"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn certs_bootstrap_writes_private_keys_and_never_overwrites_silently() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("certs");
    let d_s = d.to_str().unwrap();

    let out = haagent(&["certs", "init", "--dir", d_s, "--cluster", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&d.join("ca-key.pem")), 0o600);

    let out = haagent(&[
        "certs",
        "issue",
        "--dir",
        d_s,
        "--name",
        "n1",
        "--ip",
        "192.0.2.11",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&d.join("n1-key.pem")), 0o600);

    let out = haagent(&["certs", "show", d.join("n1.pem").to_str().unwrap()]);
    let shown = text(&out.stdout);
    assert!(out.status.success());
    for needle in ["n1", "192.0.2.11", "web"] {
        assert!(
            shown.contains(needle),
            "`certs show` lacks {needle}:\n{shown}"
        );
    }

    // A second issue for the same name refuses, names the file and the way out.
    let before = std::fs::read(d.join("n1-key.pem")).unwrap();
    let out = haagent(&[
        "certs",
        "issue",
        "--dir",
        d_s,
        "--name",
        "n1",
        "--ip",
        "192.0.2.11",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("n1") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(d.join("n1-key.pem")).unwrap(), before);

    let out = haagent(&[
        "certs",
        "issue",
        "--dir",
        d_s,
        "--name",
        "n1",
        "--ip",
        "192.0.2.11",
        "--force",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(d.join("n1-key.pem")).unwrap(), before);
    assert_eq!(mode(&d.join("n1-key.pem")), 0o600);
}

#[test]
fn issue_without_a_ca_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = haagent(&[
        "certs",
        "issue",
        "--dir",
        dir.path().to_str().unwrap(),
        "--name",
        "n1",
        "--ip",
        "192.0.2.11",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("ca"), "{}", text(&out.stderr));
}

#[test]
fn check_config_reports_every_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[node]\nname = \"n1\"\npriority = 300\ninterface = \"eth0\"\n\n\
         [[peer]]\nname = \"n2\"\naddress = \"192.0.2.12\"\n\n\
         [[peer]]\nname = \"n2\"\naddress = \"192.0.2.13\"\n\n\
         [vip]\naddresses = [\"192.0.2.100\"]\ncolour = \"blue\"\n",
    )
    .unwrap();
    let out = haagent(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let f = file.display().to_string();
    for (line, what) in [
        (3, "priority"),
        (11, "n2"),
        (15, "192.0.2.100"),
        (16, "colour"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{f}:{line}:")) && l.contains(what)),
            "no error at line {line} about {what}:\n{err}"
        );
    }
}

#[test]
fn check_config_prints_the_resolved_quick_mode_config() {
    let out = haagent(&[
        "check-config",
        "--interface",
        "eth0",
        "--vip",
        "192.0.2.100/24",
        "--peer",
        "192.0.2.12",
        "--name",
        "n1",
        "--priority",
        "90",
    ]);
    // Without /etc/haagent/haagent.toml this is quick mode; with one, flags override it.
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for needle in [
        "priority = 90",
        "192.0.2.100/24",
        "192.0.2.12:5798",
        "\"eth0\"",
    ] {
        assert!(
            shown.contains(needle),
            "resolved config lacks {needle}:\n{shown}"
        );
    }
}

#[test]
fn check_config_names_the_flag_in_quick_mode() {
    let out = haagent(&[
        "check-config",
        "--interface",
        "eth0",
        "--vip",
        "192.0.2.100/24",
        "--peer",
        "192.0.2.12",
        "--name",
        "n1",
        "--priority",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--priority 0"),
        "{}",
        text(&out.stderr)
    );
}

/// A CA and node n1's certificate in a temporary directory, n1's key readable by all
/// (which the agent refuses at start).
fn certs_with_a_readable_key() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(haagent(&["certs", "init", "--dir", d]).status.success());
    assert!(haagent(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--name",
        "n1",
        "--ip",
        "192.0.2.11"
    ])
    .status
    .success());
    let key = dir.path().join("n1-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, key)
}

/// Quick-mode flags for node n1 with its certificates in `certs`.
fn quick_mode_args(certs: &str) -> [&str; 10] {
    [
        "--interface",
        "lo",
        "--vip",
        "192.0.2.100/32",
        "--peer",
        "127.0.0.2",
        "--name",
        "n1",
        "--certs",
        certs,
    ]
}

#[test]
fn agent_refuses_to_start_with_a_readable_key_and_says_why() {
    let (dir, key) = certs_with_a_readable_key();
    let d = dir.path().to_str().unwrap();
    let out = haagent(&quick_mode_args(d));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&key.display().to_string()) && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn under_systemd_each_log_line_carries_its_syslog_priority() {
    // systemd names the journal stream in JOURNAL_STREAM (device:inode); a line that
    // starts with <3> is an error to `journalctl -p err`. Here the "journal" is a file.
    use std::os::unix::fs::MetadataExt;
    let (dir, _key) = certs_with_a_readable_key();
    let d = dir.path().to_str().unwrap();
    let run = |journal: Option<String>| {
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).unwrap();
        let meta = file.metadata().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_haagent"));
        cmd.args(quick_mode_args(d))
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .stderr(file);
        if let Some(j) = journal {
            let j = j.replace("DEV", &meta.dev().to_string());
            cmd.env("JOURNAL_STREAM", j.replace("INO", &meta.ino().to_string()));
        }
        let status = cmd.status().unwrap();
        assert_eq!(status.code(), Some(1));
        std::fs::read_to_string(&log).unwrap()
    };
    let journal = run(Some("DEV:INO".into()));
    let last = journal.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("<3>") && last.contains("cannot start"),
        "{journal}"
    );
    assert!(journal.lines().all(|l| l.starts_with('<')), "{journal}");
    // Not the journal (another inode, or no JOURNAL_STREAM): plain lines.
    for other in [Some("DEV:1".to_string()), None] {
        let plain = run(other);
        assert!(plain.contains("cannot start"), "{plain}");
        assert!(!plain.starts_with('<'), "{plain}");
    }
}

/// Control commands find the socket in `[control] socket` of `--config`; `--socket` wins;
/// an invalid file is exit 1 naming it; the exit codes are in `--help`, a usage error is 2.
#[test]
fn control_commands_read_the_socket_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("from-config.sock");
    let config = dir.path().join("haagent.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"n1\"\ninterface = \"eth0\"\n\n[[peer]]\naddress = \"192.0.2.12\"\n\n\
             [vip]\naddresses = [\"192.0.2.100/24\"]\n\n[control]\nsocket = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let config_s = config.to_str().unwrap();
    for args in [
        &["status", "--config", config_s][..],
        &["reload", "--config", config_s][..],
        &["maintenance", "on", "--config", config_s][..],
    ] {
        let out = haagent(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("from-config.sock"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let other = dir.path().join("flag.sock");
    let out = haagent(&[
        "status",
        "--config",
        config_s,
        "--socket",
        other.to_str().unwrap(),
    ]);
    assert!(
        text(&out.stderr).contains("flag.sock"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(&config, "[node]\nbogus = 1\n").unwrap();
    let out = haagent(&["status", "--config", config_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(config_s),
        "{}",
        text(&out.stderr)
    );

    let out = haagent(&["--help"]);
    assert!(
        text(&out.stdout).contains("Exit status:"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(haagent(&["status", "--bogus"]).status.code(), Some(2));
}
