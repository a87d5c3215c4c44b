//! Health checks, metrics, the control socket, and what the daemon compares between configs
//! (drift between peers, changes on reload): what a user sees, mistakes with their lines.

use std::path::PathBuf;
use std::time::Duration;

use super::checks::parse_http_url;
use super::tests::{
    assert_only_error_at, errors, find, line_of, minimal_plus, parse, parse_with, quick_flags, sa,
    FULL, MINIMAL,
};
use super::*;
use crate::health::{CheckKind, CheckSpec, Weight};

/// One check of each kind, only the required keys.
const EACH_KIND: &str = r#"
[[check]]
kind = "http"
url = "http://127.0.0.1/health"

[[check]]
kind = "tcp"
address = "127.0.0.1:5432"

[[check]]
kind = "exec"
command = ["/usr/local/bin/check-db", "--quick"]

[[check]]
kind = "process"
process = "nginx"

[[check]]
kind = "interface"
interface = "eth1"

[[check]]
kind = "file"
path = "/etc/haagent/track/maintenance"
"#;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn checks_of(extra: &str) -> Vec<CheckSpec> {
    parse(&minimal_plus(extra))
        .unwrap_or_else(|e| panic!("{e}"))
        .checks
}

/// `MINIMAL` plus `extra`, which must give exactly one error containing `fragment`, on the
/// first line of `extra` that contains `at`.
fn assert_check_error(extra: &str, at: &str, fragment: &str) {
    let text = minimal_plus(extra);
    let line = MINIMAL.lines().count() + line_of(extra, at);
    assert_only_error_at(&text, line, fragment);
}

// ---------------------------------------------------------------- accepted checks

#[test]
fn no_check_tables_means_no_checks() {
    assert!(parse(MINIMAL).unwrap().checks.is_empty());
    assert!(parse(FULL).unwrap().checks.is_empty());
}

#[test]
fn each_kind_gets_its_defaults_and_a_numbered_name() {
    let checks = checks_of(EACH_KIND);
    let expect = |name: &str, kind: CheckKind, interval, timeout, fall, weight| CheckSpec {
        name: name.into(),
        kind,
        interval: ms(interval),
        timeout: ms(timeout),
        fall,
        rise: 2,
        weight,
    };
    assert_eq!(
        checks,
        vec![
            expect(
                "http-1",
                CheckKind::Http {
                    url: "http://127.0.0.1/health".into(),
                    expect_status: vec![],
                    body_contains: None,
                },
                100,
                100,
                2,
                Weight::Fault
            ),
            expect(
                "tcp-1",
                CheckKind::Tcp {
                    addr: sa("127.0.0.1:5432")
                },
                100,
                100,
                2,
                Weight::Fault
            ),
            expect(
                "exec-1",
                CheckKind::Exec {
                    argv: vec!["/usr/local/bin/check-db".into(), "--quick".into()]
                },
                1000,
                1000,
                3,
                Weight::Fault
            ),
            expect(
                "process-1",
                CheckKind::Process {
                    pidfile: None,
                    name: Some("nginx".into())
                },
                1000,
                1000,
                3,
                Weight::Fault
            ),
            expect(
                "interface-1",
                CheckKind::Interface {
                    name: "eth1".into()
                },
                1000,
                1000,
                3,
                Weight::Fault
            ),
            expect(
                "file-1",
                CheckKind::File {
                    path: "/etc/haagent/track/maintenance".into()
                },
                1000,
                1000,
                3,
                Weight::Adjust(1)
            ),
        ]
    );
}

#[test]
fn every_key_of_an_http_check_is_read() {
    let checks = checks_of(
        r#"
[[check]]
name = "nginx"
kind = "http"
url = "http://[::1]:8080/health?full=1"
expect_status = [200, 204]
body_contains = "ok"
interval_ms = 500
timeout_ms = 300
fall = 4
rise = 5
weight = -60
"#,
    );
    assert_eq!(
        checks,
        vec![CheckSpec {
            name: "nginx".into(),
            kind: CheckKind::Http {
                url: "http://[::1]:8080/health?full=1".into(),
                expect_status: vec![200, 204],
                body_contains: Some("ok".into()),
            },
            interval: ms(500),
            timeout: ms(300),
            fall: 4,
            rise: 5,
            weight: Weight::Adjust(-60),
        }]
    );
}

#[test]
fn default_timeout_is_the_kind_default_but_never_more_than_the_interval() {
    let checks = checks_of(
        r#"
[[check]]
kind = "http"
url = "http://127.0.0.1/"
interval_ms = 1000
[[check]]
kind = "tcp"
address = "127.0.0.1:80"
interval_ms = 50
[[check]]
kind = "exec"
command = ["/bin/true"]
interval_ms = 400
"#,
    );
    let timeouts: Vec<_> = checks.iter().map(|c| c.timeout).collect();
    assert_eq!(timeouts, vec![ms(200), ms(50), ms(400)]);
}

#[test]
fn weight_zero_and_fault_mean_fault_integers_adjust() {
    let w = |v: &str| {
        checks_of(&format!(
            "[[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\nweight = {v}\n"
        ))[0]
            .weight
    };
    assert_eq!(w("0"), Weight::Fault);
    assert_eq!(w("\"fault\""), Weight::Fault);
    assert_eq!(w("-20"), Weight::Adjust(-20));
    assert_eq!(w("254"), Weight::Adjust(254));
    assert_eq!(w("-254"), Weight::Adjust(-254));
    // A file check multiplies its value by the weight; "fault" is still allowed.
    let file = checks_of("[[check]]\nkind = \"file\"\npath = \"/run/x\"\nweight = \"fault\"\n");
    assert_eq!(file[0].weight, Weight::Fault);
}

#[test]
fn default_names_count_per_kind_and_explicit_names_take_their_place() {
    let checks = checks_of(
        r#"
[[check]]
kind = "http"
url = "http://127.0.0.1/a"
[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1/b"
[[check]]
kind = "tcp"
address = "127.0.0.1:80"
[[check]]
kind = "http"
url = "http://127.0.0.1/c"
"#,
    );
    let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["http-1", "api", "tcp-1", "http-3"]);
}

#[test]
fn a_process_check_by_pidfile() {
    let checks = checks_of("[[check]]\nkind = \"process\"\npidfile = \"/run/nginx.pid\"\n");
    assert_eq!(
        checks[0].kind,
        CheckKind::Process {
            pidfile: Some("/run/nginx.pid".into()),
            name: None
        }
    );
}

#[test]
fn http_urls_are_parsed_into_address_and_path() {
    let ok = |u: &str| parse_http_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
    assert_eq!(
        ok("http://127.0.0.1/health"),
        (sa("127.0.0.1:80"), "/health".into())
    );
    assert_eq!(ok("http://127.0.0.1"), (sa("127.0.0.1:80"), "/".into()));
    assert_eq!(
        ok("HTTP://192.0.2.5:8080?x=1"),
        (sa("192.0.2.5:8080"), "/?x=1".into())
    );
    assert_eq!(ok("http://[::1]:81/a/b"), (sa("[::1]:81"), "/a/b".into()));
    assert_eq!(ok("http://[::1]"), (sa("[::1]:80"), "/".into()));
    let bad = |u: &str, fragment: &str| {
        let e = parse_http_url(u).unwrap_err();
        assert!(e.contains(fragment), "{u}: `{e}` lacks `{fragment}`");
    };
    bad("https://127.0.0.1/", "https is not supported");
    bad("127.0.0.1/health", "does not start with http://");
    bad("ftp://127.0.0.1/", "does not start with http://");
    bad("http://localhost/health", "host names are not resolved");
    bad("http:///health", "has no host");
    bad("http://127.0.0.1:0/", "port `0`");
    bad("http://127.0.0.1:99999/", "port `99999`");
    bad("http://127.0.0.1:/", "port ``");
    bad("http://user:pw@127.0.0.1/", "user:password@");
    bad("http://127.0.0.1/a b", "contains ' '");
    bad("http://127.0.0.1/#top", "fragment");
    bad("http://[::1/", "without `]`");
    bad("http://0.0.0.0/", "not a unicast address");
}

// ---------------------------------------------------------------- one mistake each

#[test]
fn https_url_is_rejected_with_its_line_and_the_reason() {
    assert_check_error(
        "[[check]]\nkind = \"http\"\nurl = \"https://127.0.0.1/health\"\n",
        "url = ",
        "bad check url: `https://127.0.0.1/health`: https is not supported",
    );
}

#[test]
fn check_without_kind_or_with_unknown_kind_is_rejected() {
    assert_check_error(
        "[[check]]\nurl = \"http://127.0.0.1/\"\n",
        "[[check]]",
        "[[check]] has no `kind` (required: one of \"http\", \"tcp\", \"exec\", \"process\", \
         \"interface\", \"file\")",
    );
    assert_check_error(
        "[[check]]\nkind = \"ping\"\n",
        "kind = ",
        "unknown check kind `ping`",
    );
}

#[test]
fn a_key_of_another_kind_is_rejected_at_its_line() {
    assert_check_error(
        "[[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\nurl = \"http://127.0.0.1/\"\n",
        "url = ",
        "`url` does not belong to a tcp check (a tcp check takes `address`; `url` is for http \
         checks)",
    );
    let text = minimal_plus(
        "[[check]]\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\npath = \"/x\"\nprocess = \"x\"\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs}");
    let e = find(&errs, "`path` does not belong to a http check");
    assert_eq!(e.location().unwrap().line, line_of(&text, "path = "));
    assert!(
        e.message
            .contains("`url`, `expect_status`, `body_contains`"),
        "{e}"
    );
    let e = find(&errs, "`process` does not belong to a http check");
    assert_eq!(e.location().unwrap().line, line_of(&text, "process = "));
}

#[test]
fn unknown_key_and_wrong_type_in_a_check_are_rejected() {
    assert_check_error(
        "[[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\nintervall_ms = 5\n",
        "intervall_ms",
        "[[check]]: unknown field `intervall_ms`",
    );
    assert_check_error(
        "[[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\nfall = \"two\"\n",
        "fall = ",
        "[[check]] fall: invalid type: string \"two\", expected an integer",
    );
    assert_check_error(
        "[[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\nweight = true\n",
        "weight = ",
        "expected an integer -254..=254 or \"fault\"",
    );
    assert_check_error(
        "[check]\nkind = \"tcp\"\n",
        "[check]",
        "`check` must be an array of tables: write [[check]] for each check",
    );
}

#[test]
fn a_required_key_of_the_kind_is_missing() {
    for (kind, key) in [
        ("http", "url"),
        ("tcp", "address"),
        ("exec", "command"),
        ("interface", "interface"),
        ("file", "path"),
    ] {
        assert_check_error(
            &format!("[[check]]\nkind = \"{kind}\"\n"),
            "[[check]]",
            &format!("[[check]] of kind {kind} has no `{key}` (required, e.g. {key} = "),
        );
    }
    assert_check_error(
        "[[check]]\nkind = \"process\"\n",
        "[[check]]",
        "has no `pidfile` or `process`",
    );
}

#[test]
fn a_bad_key_is_not_reported_again_as_missing() {
    // `url` has the wrong type: one error, not a second "has no `url`".
    assert_check_error(
        "[[check]]\nkind = \"http\"\nurl = 80\n",
        "url = ",
        "[[check]] url: invalid type: integer `80`, expected a string",
    );
    // ...and that does not hide a missing url in another check.
    let text = minimal_plus("[[check]]\nkind = \"http\"\nurl = 80\n[[check]]\nkind = \"http\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs}");
    find(&errs, "has no `url`");
}

#[test]
fn timing_limits_are_checked_with_their_lines() {
    let base = "[[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n";
    assert_check_error(
        &format!("{base}interval_ms = 100\ntimeout_ms = 150\n"),
        "timeout_ms",
        "check timeout_ms (150) is longer than interval_ms (100); it must be at most interval_ms",
    );
    assert_check_error(
        &format!("{base}interval_ms = 600000\ntimeout_ms = 60001\n"),
        "timeout_ms",
        "check timeout_ms must be 1..=60000, not 60001",
    );
    assert_check_error(
        &format!("{base}timeout_ms = 0\n"),
        "timeout_ms",
        "check timeout_ms must be 1..=60000, not 0",
    );
    // A bad interval is reported once; the timeout is not judged against it.
    assert_check_error(
        &format!("{base}interval_ms = 5\ntimeout_ms = 50\n"),
        "interval_ms",
        "check interval_ms must be 10..=600000, not 5",
    );
    assert_check_error(
        &format!("{base}interval_ms = 600001\n"),
        "interval_ms",
        "check interval_ms must be 10..=600000",
    );
    assert_check_error(
        &format!("{base}fall = 0\n"),
        "fall",
        "check fall must be 1..=100, not 0",
    );
    assert_check_error(
        &format!("{base}rise = 101\n"),
        "rise",
        "check rise must be 1..=100, not 101",
    );
}

#[test]
fn bad_weights_are_rejected() {
    let base = "[[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n";
    assert_check_error(
        &format!("{base}weight = 300\n"),
        "weight",
        "check weight must be -254..=254 or \"fault\", not 300",
    );
    assert_check_error(&format!("{base}weight = -255\n"), "weight", "not -255");
    assert_check_error(
        &format!("{base}weight = \"heavy\"\n"),
        "weight",
        "check weight must be an integer -254..=254 or \"fault\", not \"heavy\"",
    );
}

#[test]
fn kind_specific_values_are_checked() {
    let one = |kind: &str, line: &str, fragment: &str| {
        let key = line.lines().last().unwrap().split(' ').next().unwrap();
        assert_check_error(
            &format!("[[check]]\nkind = \"{kind}\"\n{line}\n"),
            &format!("{key} = "),
            fragment,
        );
    };
    one(
        "http",
        "url = \"http://127.0.0.1/\"\nexpect_status = [200, 700]",
        "expect_status codes must be 100..=599, not 700",
    );
    one(
        "http",
        "url = \"http://127.0.0.1/\"\nbody_contains = \"\"",
        "body_contains is empty",
    );
    one(
        "tcp",
        "address = \"127.0.0.1\"",
        "bad check address: `127.0.0.1` is not IP:PORT",
    );
    one(
        "tcp",
        "address = \"db.local:5432\"",
        "host names are not resolved",
    );
    one("tcp", "address = \"127.0.0.1:0\"", "has port 0");
    one("exec", "command = []", "check command is an empty list");
    one(
        "exec",
        "command = [\"\"]",
        "check command has an empty program name",
    );
    one(
        "process",
        "pidfile = \"run/nginx.pid\"",
        "check pidfile `run/nginx.pid` is not an absolute path",
    );
    one("process", "process = \"/usr/sbin/nginx\"", "not a path");
    one(
        "process",
        "process = \"postgres-checkpointer\"",
        "longer than 15 bytes, the most the kernel keeps in /proc/PID/comm, so it would never \
         match; write `postgres-checkp`",
    );
    one(
        "interface",
        "interface = \"eth0:1\"",
        "labels like eth0:1 are not interfaces",
    );
    one(
        "file",
        "path = \"maintenance\"",
        "check path `maintenance` is not an absolute path",
    );
}

#[test]
fn process_check_takes_pidfile_or_process_not_both() {
    let text = minimal_plus(
        "[[check]]\nkind = \"process\"\npidfile = \"/run/nginx.pid\"\nprocess = \"nginx\"\n",
    );
    let line = line_of(&text, "pidfile");
    assert_only_error_at(
        &text,
        line_of(&text, "process = "),
        &format!("a process check takes `pidfile` or `process`, not both (pidfile at line {line})"),
    );
}

#[test]
fn check_names_must_be_valid_and_unique() {
    let text = minimal_plus(
        "[[check]]\nname = \"web\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n\
         [[check]]\nname = \"web\"\nkind = \"tcp\"\naddress = \"127.0.0.1:81\"\n",
    );
    let first = line_of(&text, "name = \"web\"");
    assert_only_error_at(
        &text,
        first + 4,
        &format!("duplicate check name `web` (first at line {first})"),
    );
    // A default name that an explicit name already took.
    let text = minimal_plus(
        "[[check]]\nname = \"tcp-1\"\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\n\
         [[check]]\nkind = \"tcp\"\naddress = \"127.0.0.1:81\"\n",
    );
    let first = line_of(&text, "name = \"tcp-1\"");
    assert_only_error_at(
        &text,
        first + 3,
        &format!(
            "this check's default name `tcp-1` is already used (at line {first}); give it a \
             `name`"
        ),
    );
    assert_check_error(
        "[[check]]\nname = \"my check\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n",
        "name = \"my",
        "bad check name: name `my check` contains ' '",
    );
}

#[test]
fn every_check_problem_is_reported_together_in_file_order() {
    let text = r#"[node]
interface = "eth0"
[[peer]]
address = "192.0.2.12"
[vip]
addresses = ["192.0.2.100/24"]
[[check]]
kind = "http"
url = "https://127.0.0.1/"
address = "127.0.0.1:80"
fall = 0
[[check]]
kind = "tcp"
address = "127.0.0.1:80"
interval_ms = 100
timeout_ms = 200
colour = "red"
[metrics]
listen = "nowhere"
[control]
socket = "haagent.sock"
"#;
    let errs = errors(text);
    let got: Vec<(usize, &str)> = errs
        .iter()
        .map(|e| (e.location().map_or(0, |l| l.line), e.message.as_str()))
        .collect();
    let expected = [
        (9, "https is not supported"),
        (10, "`address` does not belong to a http check"),
        (11, "check fall must be 1..=100"),
        (
            16,
            "check timeout_ms (200) is longer than interval_ms (100)",
        ),
        (17, "unknown field `colour`"),
        (19, "bad metrics listen address"),
        (21, "is not an absolute path"),
    ];
    assert_eq!(got.len(), expected.len(), "{errs}");
    for ((line, msg), (want_line, want_msg)) in got.iter().zip(expected) {
        assert_eq!(*line, want_line, "{errs}");
        assert!(msg.contains(want_msg), "`{msg}` lacks `{want_msg}`\n{errs}");
    }
}

// ---------------------------------------------------------------- --check-http

#[test]
fn check_http_flags_make_fast_http_checks_in_quick_mode() {
    let o = Overrides {
        check_http: vec![
            "http://127.0.0.1/health".into(),
            "http://127.0.0.1:8080/".into(),
        ],
        ..quick_flags()
    };
    let c = from_flags_with_host(&o, Some("n1".into())).unwrap();
    let http = |name: &str, url: &str| CheckSpec {
        name: name.into(),
        kind: CheckKind::Http {
            url: url.into(),
            expect_status: vec![],
            body_contains: None,
        },
        interval: ms(100),
        timeout: ms(100),
        fall: 2,
        rise: 2,
        weight: Weight::Fault,
    };
    assert_eq!(
        c.checks,
        vec![
            http("http-1", "http://127.0.0.1/health"),
            http("http-2", "http://127.0.0.1:8080/"),
        ]
    );
    // Worst case detection: fall × interval + timeout.
    let worst = c.checks[0].interval * c.checks[0].fall + c.checks[0].timeout;
    assert_eq!(worst, ms(300));
}

#[test]
fn check_http_flags_replace_the_files_checks() {
    let text = minimal_plus(EACH_KIND);
    let o = Overrides {
        check_http: vec!["http://127.0.0.1:81/".into()],
        ..Overrides::default()
    };
    let c = parse_with(&text, &o).unwrap();
    assert_eq!(c.checks.len(), 1);
    assert_eq!(c.checks[0].name, "http-1");
    assert_eq!(
        c.checks[0].kind,
        CheckKind::Http {
            url: "http://127.0.0.1:81/".into(),
            expect_status: vec![],
            body_contains: None
        }
    );
    // Without the flag the file's checks stay.
    assert_eq!(parse(&text).unwrap().checks.len(), 6);
}

#[test]
fn check_http_flag_errors_name_the_flag() {
    let o = Overrides {
        check_http: vec!["https://127.0.0.1/".into(), "http://localhost/".into()],
        ..quick_flags()
    };
    let errs = from_flags_with_host(&o, Some("n1".into())).unwrap_err();
    let shown = errs.to_string();
    assert_eq!(errs.len(), 2, "{shown}");
    for line in [
        "--check-http https://127.0.0.1/: bad check url: `https://127.0.0.1/`: https is not \
         supported",
        "--check-http http://localhost/: bad check url: `http://localhost/`: host `localhost` \
         is not an IP address",
    ] {
        assert!(
            shown.lines().any(|l| l.starts_with(line)),
            "missing `{line}` in:\n{shown}"
        );
    }
}

// ---------------------------------------------------------------- [metrics]

#[test]
fn metrics_are_off_unless_listen_is_given() {
    assert_eq!(parse(MINIMAL).unwrap().metrics_listen, None);
    assert_eq!(
        parse(&minimal_plus("[metrics]\n")).unwrap().metrics_listen,
        None
    );
    let c = parse(&minimal_plus("[metrics]\nlisten = \"127.0.0.1:9100\"\n")).unwrap();
    assert_eq!(c.metrics_listen, Some(sa("127.0.0.1:9100")));
    let c = parse(&minimal_plus("[metrics]\nlisten = \"127.0.0.1\"\n")).unwrap();
    assert_eq!(c.metrics_listen, Some(sa("127.0.0.1:9798")), "default port");
}

#[test]
fn metrics_listen_mistakes_are_rejected() {
    assert_check_error(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
        "listen = ",
        "metrics listen `127.0.0.1:0` has port 0",
    );
    assert_check_error(
        "[metrics]\nlisten = \"localhost:9798\"\n",
        "listen = ",
        "bad metrics listen address: `localhost:9798` is not ADDR or ADDR:PORT",
    );
    assert_check_error(
        "[metrics]\nlisten = \"224.0.0.1:9798\"\n",
        "listen = ",
        "metrics listen address `224.0.0.1:9798` is not unicast",
    );
    assert_check_error(
        "[metrics]\naddress = \"127.0.0.1:9798\"\n",
        "address = ",
        "[metrics]: unknown field `address`",
    );
}

#[test]
fn metrics_listen_flag_overrides_the_file() {
    let o = Overrides {
        metrics_listen: Some("0.0.0.0:9900".into()),
        ..Overrides::default()
    };
    let c = parse_with(
        &minimal_plus("[metrics]\nlisten = \"127.0.0.1:9100\"\n"),
        &o,
    )
    .unwrap();
    assert_eq!(c.metrics_listen, Some(sa("0.0.0.0:9900")));
    let o = Overrides {
        metrics_listen: Some("nowhere".into()),
        ..quick_flags()
    };
    let errs = from_flags_with_host(&o, Some("n1".into())).unwrap_err();
    assert!(
        errs.to_string()
            .starts_with("--metrics-listen nowhere: bad metrics listen address"),
        "{errs}"
    );
}

// ---------------------------------------------------------------- [control]

#[test]
fn control_socket_defaults_and_group() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.control_socket, PathBuf::from("/run/haagent/haagent.sock"));
    assert_eq!(c.control_group, None);
    let c = parse(&minimal_plus(
        "[control]\nsocket = \"/run/ha/ctl.sock\"\ngroup = \"haagent\"\n",
    ))
    .unwrap();
    assert_eq!(c.control_socket, PathBuf::from("/run/ha/ctl.sock"));
    assert_eq!(c.control_group.as_deref(), Some("haagent"));
}

#[test]
fn control_mistakes_are_rejected() {
    assert_check_error(
        "[control]\nsocket = \"haagent.sock\"\n",
        "socket = ",
        "control socket `haagent.sock` is not an absolute path (e.g. \
         \"/run/haagent/haagent.sock\")",
    );
    let long = format!("/run/{}.sock", "x".repeat(110));
    assert_check_error(
        &format!("[control]\nsocket = \"{long}\"\n"),
        "socket = ",
        "a Unix socket path holds at most 107",
    );
    assert_check_error(
        "[control]\nsocket = \"/run/haagent/\"\n",
        "socket = ",
        "ends with `/`",
    );
    assert_check_error(
        "[control]\ngroup = \"ha agent\"\n",
        "group = ",
        "control group `ha agent` is not a group name",
    );
    assert_check_error(
        "[control]\ngroup = \"\"\n",
        "group = ",
        "control group is empty",
    );
    assert_check_error(
        "[control]\nmode = \"0660\"\n",
        "mode = ",
        "[control]: unknown field `mode`",
    );
}

// ---------------------------------------------------------------- [state]

#[test]
fn state_dir_defaults_to_the_units_state_directory() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/haagent"));
    let c = parse(&minimal_plus("[state]\ndir = \"/srv/ha/state\"\n")).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/srv/ha/state"));
}

#[test]
fn state_mistakes_are_rejected() {
    assert_check_error(
        "[state]\ndir = \"state\"\n",
        "dir = ",
        "state dir `state` is not an absolute path (e.g. \"/var/lib/haagent\")",
    );
    assert_check_error(
        "[state]\ndir = \"\"\n",
        "dir = ",
        "state dir is an empty path",
    );
    assert_check_error(
        "[state]\nmaintenance = true\n",
        "maintenance = ",
        "[state]: unknown field `maintenance`",
    );
}

#[test]
fn socket_flag_overrides_the_file() {
    let o = Overrides {
        socket: Some("/tmp/ha.sock".into()),
        ..Overrides::default()
    };
    let c = parse_with(
        &minimal_plus("[control]\nsocket = \"/run/x.sock\"\ngroup = \"wheel\"\n"),
        &o,
    )
    .unwrap();
    assert_eq!(c.control_socket, PathBuf::from("/tmp/ha.sock"));
    assert_eq!(c.control_group.as_deref(), Some("wheel"), "group stays");
    let o = Overrides {
        socket: Some("ha.sock".into()),
        ..quick_flags()
    };
    let errs = from_flags_with_host(&o, Some("n1".into())).unwrap_err();
    assert!(
        errs.to_string()
            .starts_with("--socket ha.sock: control socket `ha.sock` is not an absolute path"),
        "{errs}"
    );
}

// ---------------------------------------------------------------- round trip

#[test]
fn checks_metrics_and_control_round_trip() {
    let extra = format!(
        "{EACH_KIND}
[[check]]
name = \"nginx\"
kind = \"http\"
url = \"http://127.0.0.1:8080/health\"
expect_status = [200]
body_contains = \"ok\"
weight = -50
[[check]]
kind = \"process\"
pidfile = \"/run/nginx.pid\"
weight = 0
[metrics]
listen = \"127.0.0.1:9798\"
[control]
socket = \"/run/ha.sock\"
group = \"haagent\"
"
    );
    let c = parse(&minimal_plus(&extra)).unwrap();
    assert_eq!(c.checks.len(), 8);
    let text = c.to_toml_string();
    for line in [
        "[[check]]",
        "name = \"http-1\"",
        "weight = \"fault\"",
        "weight = -50",
        "weight = 1",
        "expect_status = []",
        "pidfile = \"/run/nginx.pid\"",
        "process = \"nginx\"",
        "[metrics]",
        "listen = \"127.0.0.1:9798\"",
        "[control]",
        "socket = \"/run/ha.sock\"",
        "group = \"haagent\"",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    let back = from_toml_with_host(&text, "t.toml", &Overrides::default(), None)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(back, c);

    // Defaults: no [metrics], [control] with the default socket, no checks.
    let text = parse(MINIMAL).unwrap().to_toml_string();
    assert!(
        !text.contains("[metrics]") && !text.contains("[[check]]"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "socket = \"/run/haagent/haagent.sock\""),
        "{text}"
    );
}

// ---------------------------------------------------------------- drift and reload

#[test]
fn fingerprint_settings_are_fixed_order_with_sorted_vips() {
    let c = parse(&MINIMAL.replace(
        "addresses = [\"192.0.2.100/24\"]",
        "addresses = [\"192.0.2.101/32\", \"192.0.2.20/24\", \"192.0.2.100/24\"]",
    ))
    .unwrap();
    assert_eq!(
        c.fingerprint_settings(),
        vec![
            ("cluster", "haagent".to_string()),
            (
                "vips",
                "192.0.2.20/24,192.0.2.100/24,192.0.2.101/32".to_string()
            ),
            ("advert_interval_ms", "50".to_string()),
            ("quorum", "off".to_string()),
        ]
    );
    // Settings that may differ between nodes do not show.
    let mut other = c.clone();
    other.node.priority = 20;
    other.node.name = "n9".into();
    other.vips.reverse();
    assert_eq!(other.fingerprint_settings(), c.fingerprint_settings());
    let f = parse(FULL).unwrap().fingerprint_settings();
    assert_eq!(f[0], ("cluster", "web".to_string()));
    assert_eq!(f[2], ("advert_interval_ms", "100".to_string()));
}

#[test]
fn the_fingerprint_names_exactly_the_settings_that_differ() {
    let a = parse(MINIMAL).unwrap();
    let b = parse(&MINIMAL.replace(
        "addresses = [\"192.0.2.100/24\"]",
        "addresses = [\"192.0.2.101/24\"]",
    ))
    .unwrap();
    let (fa, fb) = (a.fingerprint(), b.fingerprint());
    assert_eq!(
        fa.names,
        ["cluster", "vips", "advert_interval_ms", "quorum"]
    );
    assert!(fa.differences(&fa.words).is_empty());
    assert_eq!(fa.differences(&fb.words), ["vips"]);
    // Node-local settings leave it alone.
    let mut c = a.clone();
    c.node.priority = 20;
    assert_eq!(c.fingerprint(), fa);
}

#[test]
fn election_changes_is_empty_for_settings_that_reload_quietly() {
    let old = parse(FULL).unwrap();
    assert!(old.election_changes(&old).is_empty());
    let mut new = old.clone();
    new.log.level = "trace".into();
    new.log.format = LogFormat::Text;
    new.notify.master = None;
    new.notify.timeout = Duration::from_secs(1);
    new.garp.count = 1;
    new.metrics_listen = Some(sa("127.0.0.1:9798"));
    new.control_group = Some("wheel".into());
    new.checks = checks_of(EACH_KIND);
    new.source = "elsewhere.toml".into();
    new.vips.reverse();
    new.peers.reverse();
    assert_eq!(old.election_changes(&new), Vec::new());
}

#[test]
fn what_a_reload_applies_without_a_restart_and_what_needs_one() {
    let old = parse(FULL).unwrap();
    let mut new = old.clone();
    new.node.priority = 120;
    new.election.preempt = !new.election.preempt;
    new.election.advert_interval = ms(50);
    new.node.interface = "eth9".into();
    new.election.quorum = !new.election.quorum;
    new.witness = None;
    new.peers.truncate(1);
    new.vips.truncate(1);
    let changes = old.election_changes(&new);
    let settings: Vec<_> = changes
        .iter()
        .map(|c| (c.setting, c.setting.applies_live()))
        .collect();
    assert_eq!(
        settings,
        vec![
            (Setting::Priority, true),
            (Setting::Interface, false),
            (Setting::Peers, true),
            (Setting::Vips, true),
            (Setting::AdvertIntervalMs, true),
            (Setting::Preempt, true),
            (Setting::Quorum, true),
            (Setting::Witness, false),
        ]
    );
    // What a reload applies: the live ones from the file, the others as running.
    let applied = new.applied_over(&old);
    let left: Vec<_> = old
        .election_changes(&applied)
        .into_iter()
        .map(|c| c.setting)
        .collect();
    assert_eq!(
        left,
        vec![
            Setting::Priority,
            Setting::Peers,
            Setting::Vips,
            Setting::AdvertIntervalMs,
            Setting::Preempt,
            Setting::Quorum
        ]
    );
    let mut everything = old.clone();
    everything.cluster = "other".into();
    everything.node.name = "n9".into();
    everything.node.listen = sa("192.0.2.99:6000");
    everything.lease = None;
    everything.probe.count = 0;
    everything.witness = None;
    let applied = everything.applied_over(&old);
    assert_eq!(old.election_changes(&applied), Vec::new());
}

#[test]
fn election_changes_lists_each_change_in_words() {
    let old = parse(FULL).unwrap();
    let changed = |f: &dyn Fn(&mut Config)| {
        let mut new = old.clone();
        f(&mut new);
        old.election_changes(&new)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        changed(&|c| c.node.priority = 120),
        vec!["priority 150 → 120"]
    );
    assert_eq!(
        changed(&|c| c.vips.truncate(1)),
        vec!["vips 192.0.2.100/24, 192.0.2.101/32 → 192.0.2.100/24"]
    );
    assert_eq!(
        changed(&|c| c.peers[1].address = sa("192.0.2.14:5798")),
        vec![
            "peers n2 (192.0.2.12:5798), n3 (192.0.2.13:6000) → n2 (192.0.2.12:5798), n3 \
             (192.0.2.14:5798)"
        ]
    );
    assert_eq!(
        changed(&|c| c.election.advert_interval = ms(50)),
        vec!["advert_interval_ms 100 → 50"]
    );
    assert_eq!(
        changed(&|c| c.node.interface = "eth1".into()),
        vec!["interface eth0 → eth1"]
    );
    assert_eq!(
        changed(&|c| c.node.listen = sa("192.0.2.11:6000")),
        vec!["listen 192.0.2.11:5798 → 192.0.2.11:6000"]
    );
    assert_eq!(
        changed(&|c| c.tls.cert = "/srv/certs/other.pem".into()),
        vec!["tls cert /srv/certs/n1.pem → /srv/certs/other.pem"]
    );
    assert_eq!(
        changed(&|c| c.lease = None),
        vec!["lease_ms 5000 → 0 (off)"]
    );
    assert_eq!(
        changed(&|c| c.witness = None),
        vec!["witness gateway 192.0.2.1 interval_ms 250 timeout_ms 80 fall 4 rise 5 → off"]
    );
    // Several at once, in file order.
    assert_eq!(
        changed(&|c| {
            c.election.quorum = true;
            c.cluster = "db".into();
            c.election.preempt = false;
        }),
        vec![
            "cluster web → db",
            "preempt true → false",
            "quorum off → majority"
        ]
    );
}

/// Every positive weight (not of a file check) gets one located note; negative, fault and
/// file weights get none, and the config stays valid.
#[test]
fn positive_weights_get_a_located_note() {
    let extra = "[[check]]\nname = \"up\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\nweight = 20\n\
                 [[check]]\nname = \"down\"\nkind = \"tcp\"\naddress = \"127.0.0.1:81\"\nweight = -20\n\
                 [[check]]\nname = \"f\"\nkind = \"file\"\npath = \"/run/x\"\nweight = 3\n";
    let text = minimal_plus(extra);
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let line = MINIMAL.lines().count() + line_of(extra, "weight = 20");
    assert_eq!(
        config.notes,
        [format!(
            "t.toml:{line}:10: note: check weight +20 is added to the priority while the check \
             succeeds (keepalived's meaning; haagent 0.1 before issue 14 added it while failing)"
        )]
    );
    assert_eq!(config.checks[0].weight, Weight::Adjust(20));
}
