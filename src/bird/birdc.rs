//! One bounded `birdc` run, and one check of a group's export made of such runs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::parse::{self, Protocol};
use super::{BirdError, MAX_PROTOCOLS};

/// Most bytes of birdc's stderr kept for an error message.
const MESSAGE_KEPT: usize = 512;

/// How to reach one BIRD: the program, its control socket, and the bounds of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Birdc {
    /// The program ([`super::BIRDC`]; a test gives a script).
    pub(crate) program: PathBuf,
    /// BIRD's control socket (`birdc -s`).
    pub(crate) socket: PathBuf,
    /// Each run is killed after this long.
    pub(crate) timeout: Duration,
    /// Each run is killed once it printed more than this many bytes.
    pub(crate) limit: usize,
}

/// One BGP protocol as one check found it: its row of `show protocols`, and which of the
/// asked VIPs BIRD exports to it (empty unless it is up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) protocol: Protocol,
    /// The group's VIPs of the families the protocol has channels for.
    pub(crate) carried: Vec<IpAddr>,
    /// Those of `carried` that BIRD exports to it.
    pub(crate) exported: Vec<IpAddr>,
}

/// What one check found: the BGP protocols (at most [`MAX_PROTOCOLS`], in BIRD's order)
/// and how many more there were.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Checked {
    pub(crate) protocols: Vec<Found>,
    pub(crate) left_out: usize,
}

impl Birdc {
    /// `birdc -v -s SOCKET WORDS…`'s output (BIRD's replies with their codes); an error
    /// when it cannot start, exits with a failure that is not a BIRD error reply, runs
    /// longer than `timeout` or prints more than `limit` bytes (then it is killed).
    pub(crate) async fn run(&self, words: &[&str]) -> Result<String, BirdError> {
        let command = words.join(" ");
        let mut child = Command::new(&self.program)
            .arg("-v")
            .arg("-s")
            .arg(&self.socket)
            .args(words)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BirdError::Spawn {
                program: self.program.display().to_string(),
                reason: e.to_string(),
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(BirdError::Failed {
                command,
                status: "no pipes".into(),
                message: "birdc's output could not be read".into(),
            });
        };
        let limit = self.limit;
        let finished = tokio::time::timeout(self.timeout, async {
            let (out, err) = tokio::join!(read_capped(stdout, limit), read_capped(stderr, limit));
            (out, err, child.wait().await)
        })
        .await;
        // On every early return below `child` is dropped, which kills it (kill_on_drop);
        // tokio reaps it.
        let Ok((out, err, status)) = finished else {
            return Err(BirdError::Timeout {
                command,
                timeout: self.timeout,
            });
        };
        let (Some(out), Some(err)) = (out, err) else {
            return Err(BirdError::TooLong { command, limit });
        };
        let status = status.map_err(|e| BirdError::Failed {
            command: command.clone(),
            status: "not waited for".into(),
            message: e.to_string(),
        })?;
        let out = String::from_utf8_lossy(&out).into_owned();
        if status.success() || parse::error_reply(&out).is_some() {
            // A BIRD error reply makes birdc exit 1: the reply says more than the status.
            return Ok(out);
        }
        let err = String::from_utf8_lossy(&err);
        let message = if err.trim().is_empty() {
            out.trim()
        } else {
            err.trim()
        };
        Err(BirdError::Failed {
            command,
            status: status.to_string(),
            message: truncate(message, MESSAGE_KEPT),
        })
    }

    /// One check: the BGP protocols (`show protocols`); for each, the address families of
    /// its channels (`show protocols all 'NAME'`: a protocol carrying none of the group's
    /// families is left out, and only its families' VIPs are its business); for each one
    /// that is up, which of those VIPs BIRD exports to it (`show route where net ~ [ … ]
    /// export 'NAME'`, once per family: BIRD refuses a prefix set that mixes them). The
    /// first failing run fails the check.
    pub(crate) async fn check(&self, vips: &[IpAddr]) -> Result<Checked, BirdError> {
        let words = ["show", "protocols"];
        let text = self.run(&words).await?;
        let bgp: Vec<Protocol> = parse::protocols(&words.join(" "), &text)?
            .into_iter()
            .filter(|p| p.proto == "BGP")
            .collect();
        let mut left_out = 0;
        let mut protocols = Vec::with_capacity(bgp.len().min(MAX_PROTOCOLS));
        for protocol in bgp {
            if protocols.len() == MAX_PROTOCOLS {
                // Not looked at: counted, so that status says some are missing.
                left_out += 1;
                continue;
            }
            // A name that cannot be quoted (BIRD would not have accepted it either) is not
            // asked about, but counted.
            let Some(name) = quoted(&protocol.name) else {
                left_out += 1;
                continue;
            };
            let words = ["show", "protocols", "all", &name];
            let text = self.run(&words).await?;
            let (v4, v6) = match parse::channel_families(&words.join(" "), &text) {
                Ok(families) => families,
                // Gone between `show protocols` and now (a BIRD reconfigure): not an error
                // of the check; the next one lists what is there.
                Err(BirdError::Reply { .. }) => continue,
                Err(e) => return Err(e),
            };
            let carried: Vec<IpAddr> = vips
                .iter()
                .copied()
                .filter(|a| if a.is_ipv4() { v4 } else { v6 })
                .collect();
            if carried.is_empty() {
                // None of the group's families: not its business.
                continue;
            }
            let mut exported = Vec::new();
            if protocol.state == "up" {
                for family in [true, false] {
                    let asked: Vec<IpAddr> = carried
                        .iter()
                        .copied()
                        .filter(|a| a.is_ipv4() == family)
                        .collect();
                    // BIRD drops a command line of 1024 bytes or more: at most
                    // SET_CHUNK_BYTES of prefixes per command (40 /32s, 18 /128s).
                    let per = SET_CHUNK_BYTES / if family { 20 } else { 45 };
                    for chunk in asked.chunks(per.max(1)) {
                        let set = net_set(chunk);
                        let words = ["show", "route", "where", &set, "export", &name];
                        let text = self.run(&words).await?;
                        // `None`: the channel is down (the session not Established).
                        let found = parse::exported(&words.join(" "), &text)?.unwrap_or_default();
                        exported.extend(found.into_iter().filter(|a| chunk.contains(a)));
                    }
                }
            }
            protocols.push(Found {
                protocol,
                carried,
                exported,
            });
        }
        Ok(Checked {
            protocols,
            left_out,
        })
    }
}

/// The most bytes of prefixes in one `net ~ [ … ]` set: BIRD's CLI resets the connection on
/// a command line of 1024 bytes or more (seen with BIRD 2.0.12: 1013 bytes answered, 1031
/// reset), and the rest of the command and the protocol name need room too.
const SET_CHUNK_BYTES: usize = 800;

/// `name` as a BIRD symbol in single quotes (BIRD 2 accepts any protocol name so, also
/// `'peer-x.1'`, which it would take for an expression unquoted); `None` for a name that
/// cannot be quoted.
fn quoted(name: &str) -> Option<String> {
    let plain = !name.is_empty() && !name.chars().any(|c| c == '\'' || c.is_control());
    plain.then(|| format!("'{name}'"))
}

/// `net ~ [ 203.0.113.200/32, 203.0.113.201/32 ]`: a filter that keeps BIRD's answer to the
/// group's own VIPs (one family: `/32`s or `/128`s).
fn net_set(vips: &[IpAddr]) -> String {
    let list = vips
        .iter()
        .map(|a| format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 }))
        .collect::<Vec<_>>()
        .join(", ");
    format!("net ~ [ {list} ]")
}

/// Everything `pipe` gives until its end, or `None` once it gave more than `limit` bytes.
async fn read_capped(pipe: impl AsyncRead + Unpin, limit: usize) -> Option<Vec<u8>> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut kept = Vec::new();
    // A read error ends the output there: what came before is still the answer.
    let _ = pipe.take(cap).read_to_end(&mut kept).await;
    (kept.len() <= limit).then_some(kept)
}

/// At most `max` bytes of `text`, cut at a character boundary, `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A [`Birdc`] for `socket` with the module's bounds and program.
pub(crate) fn for_socket(socket: &Path) -> Birdc {
    Birdc {
        program: PathBuf::from(super::BIRDC),
        socket: socket.to_path_buf(),
        timeout: super::BIRDC_TIMEOUT,
        limit: super::OUTPUT_LIMIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake birdc: a shell script that answers each BIRD command with one of the
    /// captured outputs (`case "$*"`), so that the bounds and the check run without BIRD.
    fn fake(dir: &Path, body: &str) -> Birdc {
        let path = dir.join("birdc");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Birdc {
            program: path,
            socket: dir.join("bird.ctl"),
            timeout: Duration::from_millis(500),
            limit: 4096,
        }
    }

    fn testdata(name: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/bird/testdata")
            .join(name)
            .display()
            .to_string()
    }

    #[tokio::test]
    async fn a_check_asks_each_bgp_protocol_that_is_up_for_the_groups_vips() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("asked");
        let b = fake(
            dir.path(),
            &format!(
                "echo \"$*\" >> {log}\ncase \"$*\" in\n\
                 *'show protocols') cat {};;\n\
                 *'show protocols all'*) cat {};;\n\
                 *\"export 'uplink'\") cat {};;\n\
                 *) echo \"9001 unexpected: $*\"; exit 1;;\nesac",
                testdata("protocols-two-bgp.txt"),
                testdata("protocols-all-ipv4.txt"),
                testdata("export-two.txt"),
                log = log.display(),
            ),
        );
        let vip = IpAddr::from([203, 0, 113, 200]);
        let got = b.check(&[vip]).await.unwrap();
        let names: Vec<(&str, bool, &[IpAddr])> = got
            .protocols
            .iter()
            .map(|f| {
                (
                    f.protocol.name.as_str(),
                    f.protocol.established(),
                    f.exported.as_slice(),
                )
            })
            .collect();
        // 203.0.113.201 is in BIRD's answer but not the group's: not reported.
        assert_eq!(
            names,
            [
                ("uplink", true, &[vip][..]),
                ("backup_router", false, &[][..])
            ]
        );
        assert_eq!(got.left_out, 0);
        let socket = b.socket.display();
        let asked = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            asked,
            format!(
                "-v -s {socket} show protocols\n\
                 -v -s {socket} show protocols all 'uplink'\n\
                 -v -s {socket} show route where net ~ [ 203.0.113.200/32 ] export 'uplink'\n\
                 -v -s {socket} show protocols all 'backup_router'\n"
            ),
            "backup_router is not up: its exports not asked"
        );
    }

    /// A dual-stack group: BIRD refuses a prefix set that mixes the families, and an
    /// Established session answers an empty list (no error) for a family it has no channel
    /// for, so the channels are asked first and each session reports its own family.
    /// (`export6-one.txt` follows BIRD 2.0.12's listing form of the captured IPv4 replies.)
    #[tokio::test]
    async fn a_dual_stack_group_is_asked_per_family_and_each_session_reports_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("asked");
        let b = fake(
            dir.path(),
            &format!(
                "echo \"$*\" >> {log}\ncase \"$*\" in\n\
                 *'show protocols') cat {protocols};;\n\
                 *\"protocols all 'uplink'\") cat {all4};;\n\
                 *\"protocols all 'uplink6'\") cat {all6};;\n\
                 *'[ 203.0.113.200/32 ]'*\"export 'uplink'\") cat {two};;\n\
                 *'[ 2001:db8:ffff::200/128 ]'*\"export 'uplink6'\") cat {six};;\n\
                 *) echo \"9001 unexpected: $*\"; exit 1;;\nesac",
                protocols = testdata("protocols-dual-stack.txt"),
                all4 = testdata("protocols-all-ipv4.txt"),
                all6 = testdata("protocols-all-ipv6.txt"),
                two = testdata("export-two.txt"),
                six = testdata("export6-one.txt"),
                log = log.display(),
            ),
        );
        let (v4, v6): (IpAddr, IpAddr) = (
            IpAddr::from([203, 0, 113, 200]),
            "2001:db8:ffff::200".parse().unwrap(),
        );
        let got = b.check(&[v4, v6]).await.unwrap();
        let seen: Vec<(&str, &[IpAddr], &[IpAddr])> = got
            .protocols
            .iter()
            .map(|f| {
                (
                    f.protocol.name.as_str(),
                    f.carried.as_slice(),
                    f.exported.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("uplink", &[v4][..], &[v4][..]),
                ("uplink6", &[v6][..], &[v6][..])
            ]
        );
        let asked = std::fs::read_to_string(&log).unwrap();
        // One export query per session, of its own family only.
        assert_eq!(
            asked.lines().filter(|l| l.contains("~ [")).count(),
            2,
            "{asked}"
        );
        assert!(
            asked
                .lines()
                .all(|l| !(l.contains("/32") && l.contains("/128"))),
            "never a mixed set: {asked}"
        );
    }

    /// 100 IPv4 VIPs: every command stays under BIRD's 1024-byte line limit, and every VIP
    /// is asked about once.
    #[tokio::test]
    async fn many_vips_are_asked_in_sets_that_fit_birds_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("asked");
        let b = fake(
            dir.path(),
            &format!(
                "echo \"$*\" >> {log}\ncase \"$*\" in\n\
                 *'show protocols') cat {protocols};;\n\
                 *'protocols all'*) cat {all4};;\n\
                 *) cat {none};;\nesac",
                protocols = testdata("protocols-established.txt"),
                all4 = testdata("protocols-all-ipv4.txt"),
                none = testdata("export-none.txt"),
                log = log.display(),
            ),
        );
        let vips: Vec<IpAddr> = (0..100u8).map(|i| IpAddr::from([203, 0, 113, i])).collect();
        let got = b.check(&vips).await.unwrap();
        assert_eq!(got.protocols[0].carried.len(), 100);
        let asked = std::fs::read_to_string(&log).unwrap();
        let sets: Vec<&str> = asked.lines().filter(|l| l.contains("~ [")).collect();
        assert!(sets.len() >= 3, "{asked}");
        for l in &sets {
            let command = l.split_once("show ").map_or(*l, |(_, c)| c);
            assert!(command.len() + 5 < 1024, "{} bytes: {l}", command.len());
        }
        for v in &vips {
            let needle = format!(" {v}/32");
            assert_eq!(asked.matches(&needle).count(), 1, "{v}");
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_birdcs_own_words() {
        let dir = tempfile::tempdir().unwrap();
        let b = fake(
            dir.path(),
            &format!("cat {} >&2; exit 1", testdata("no-socket.txt")),
        );
        let err = b
            .check(&[IpAddr::from([203, 0, 113, 200])])
            .await
            .unwrap_err();
        let BirdError::Failed {
            command, message, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(command, "show protocols");
        assert!(
            message.starts_with("Unable to connect to server control socket ("),
            "{message}"
        );
        assert!(
            message.ends_with("): No such file or directory"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_bird_that_never_answers_is_a_timeout_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let b = fake(
            dir.path(),
            &format!("echo $$ > {}\nexec sleep 30", pid.display()),
        );
        let started = std::time::Instant::now();
        let err = b.run(&["show", "protocols"]).await.unwrap_err();
        assert!(
            matches!(&err, BirdError::Timeout { command, .. } if command == "show protocols"),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // Killed on drop, then reaped: the PID is gone.
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "birdc {pid} still runs"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn an_endless_output_is_cut_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let b = fake(
            dir.path(),
            "yes \"1002-uplink BGP x up 12:00:00 Established\"",
        );
        let err = b.run(&["show", "protocols"]).await.unwrap_err();
        assert_eq!(
            err,
            BirdError::TooLong {
                command: "show protocols".into(),
                limit: 4096
            }
        );
    }

    #[tokio::test]
    async fn no_birdc_says_what_to_install() {
        let b = Birdc {
            program: PathBuf::from("/nonexistent/birdc"),
            ..for_socket(Path::new("/run/bird/bird.ctl"))
        };
        let err = b.check(&[]).await.unwrap_err();
        assert!(matches!(err, BirdError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("apt-get install bird2"), "{err}");
    }

    #[test]
    fn names_are_quoted_and_messages_truncated() {
        assert_eq!(quoted("uplink").as_deref(), Some("'uplink'"));
        assert_eq!(quoted("peer-x.1").as_deref(), Some("'peer-x.1'"));
        assert_eq!(quoted("a'b"), None);
        assert_eq!(quoted(""), None);
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("ok", 2), "ok");
        assert_eq!(
            net_set(&[
                IpAddr::from([203, 0, 113, 200]),
                IpAddr::from([203, 0, 113, 201])
            ]),
            "net ~ [ 203.0.113.200/32, 203.0.113.201/32 ]"
        );
        assert_eq!(
            net_set(&["2001:db8:ffff::200".parse().unwrap()]),
            "net ~ [ 2001:db8:ffff::200/128 ]"
        );
    }
}
