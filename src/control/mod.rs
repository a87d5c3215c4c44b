//! The local control socket: how `haagent status|handover|maintenance|reload` talk to the
//! running agent.
//!
//! A Unix stream socket (default `/run/haagent/haagent.sock`, mode 0600, or 0660 with a
//! group) carries one JSON request line and one JSON response line per connection. The
//! server side only parses and forwards: every request is answered by the daemon loop, which
//! owns the state, through a [`ControlRequest`] with a reply channel.

mod render;
mod status;

pub use render::render_status;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

pub use status::{
    CheckView, ClaimBlockedView, Counters, ExportProtocolStatus, ExportStatus, ExportedVip,
    FaultView, GroupStatus, GroupVipStatus, PeerStatus, PriorityView, QuorumView, RouteStatus,
    Status, TransitionRecord, VipStatus, WitnessView, STATUS_VERSION,
};

#[cfg(test)]
pub(crate) use status::{documented_block, documented_example};

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a client may take to send its request, and the loop to answer it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Most clients served at once. Further connections get [`BUSY`] and are closed at once, so
/// a storm of local clients (issue 9: 1,000 `haagent status` loops) costs the agent a
/// bounded amount of work; the election loop takes at most one request per iteration.
pub const MAX_CLIENTS: usize = 16;
/// The refusal line sent to a client beyond [`MAX_CLIENTS`].
pub const BUSY: &str = "busy: too many control clients at once, try again";

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
///
/// Unit-like requests are empty struct variants: serde ignores `deny_unknown_fields` for the
/// unit variants of an internally tagged enum, and a request with a field we do not know must
/// be refused (it may be a newer client's option this agent would silently ignore).
pub enum Request {
    /// The full status.
    Status {},
    /// Planned switchover to `to`, or to the best live backup.
    ///
    /// With `group`, only that group is handed over; without it (and from a CLI older than
    /// groups, which never sends the key), every group this node is master of is.
    Handover {
        /// Target node name.
        to: Option<String>,
        /// The group to hand over (`[[group]] name`); `None`: every group this node is
        /// master of (with one group: that group).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// Maintenance mode on or off.
    ///
    /// With `group`, only that group gives up (or may take again) its VIPs; without it (and
    /// from a CLI older than groups), the node-wide maintenance mode, which holds every group.
    Maintenance {
        /// On or off.
        on: bool,
        /// The group (`[[group]] name`); `None`: node-wide.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// Re-read the configuration and the certificates.
    Reload {},
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The status, for [`Request::Status`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
    /// The node a started handover goes to, for [`Request::Handover`] (with several
    /// groups: the first one's in [`Response::handovers`], for a CLI older than groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_to: Option<String>,
    /// Every group handover started by a [`Request::Handover`], in group order. Empty from
    /// agents older than groups (the CLI then follows `handover_to` on the top-level
    /// status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handovers: Vec<GroupHandover>,
}

/// One group's handover, started: the group's new master is to be `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHandover {
    /// The group's name.
    pub group: String,
    /// The node that is to take the group over.
    pub to: String,
}

impl Response {
    /// A success with a message.
    pub fn done(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: Some(message.into()),
            status: None,
            handover_to: None,
            handovers: Vec::new(),
        }
    }

    /// A refusal with its reason.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: Some(message.into()),
            status: None,
            handover_to: None,
            handovers: Vec::new(),
        }
    }
}

/// A request on its way to the daemon loop, with the channel for its answer.
#[derive(Debug)]
pub struct ControlRequest {
    /// The request.
    pub request: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

/// Control socket problems.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be created.
    #[error("control socket {path}: {reason}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// The CLI could not reach the agent.
    #[error("cannot reach the agent at {path}: {reason}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// The agent's answer was not understood.
    #[error("unexpected answer from the agent at {path}: {reason}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// The listening socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    /// Creates the socket at `path` (its directory too, mode 0755), mode 0600, or 0660 owned
    /// by `group` when given, and starts accepting. A leftover socket file that nobody
    /// listens on is replaced; a live one is an error (another agent uses this path).
    pub fn bind(
        path: &Path,
        group: Option<&str>,
    ) -> Result<(ControlServer, mpsc::Receiver<ControlRequest>), ControlError> {
        let bind_err = |reason: String| ControlError::Bind {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| bind_err(format!("cannot create {}: {e}", dir.display())))?;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
            }
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(bind_err(
                    "another haagent is listening there (use --socket to run several agents)"
                        .into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| bind_err(format!("cannot remove the stale socket: {e}")))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| bind_err(e.to_string()))?;
        let mode = match group {
            Some(g) => {
                chown_group(path, g).map_err(bind_err)?;
                0o660
            }
            None => 0o600,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| bind_err(format!("cannot set its mode: {e}")))?;
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(accept_loop(listener, tx));
        Ok((
            ControlServer {
                path: path.to_path_buf(),
                task,
            },
            rx,
        ))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn chown_group(path: &Path, group: &str) -> Result<(), String> {
    let cname = std::ffi::CString::new(group).map_err(|_| format!("bad group name `{group}`"))?;
    // SAFETY: getgrnam reads a NUL-terminated string and returns a pointer into static
    // storage (or null), which we read at once on this thread.
    let gid = unsafe {
        let gr = libc::getgrnam(cname.as_ptr());
        if gr.is_null() {
            return Err(format!("group `{group}` does not exist"));
        }
        (*gr).gr_gid
    };
    std::os::unix::fs::chown(path, None, Some(gid))
        .map_err(|e| format!("cannot give it to group `{group}`: {e}"))
}

async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<ControlRequest>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match std::sync::Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        serve(stream, tx).await;
                        drop(slot);
                    });
                }
                Err(_) => refuse_busy(&stream),
            },
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // The agent runs on one thread: without this, a backlog of clients is accepted (and
        // refused) back to back until tokio's budget runs out, while adverts wait.
        tokio::task::yield_now().await;
    }
}

async fn serve(stream: UnixStream, tx: mpsc::Sender<ControlRequest>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST as u64);
    let response = match tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Response::refused("no request within 5 s"),
        Ok(Err(e)) => Response::refused(format!("unreadable request: {e}")),
        Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
            Err(e) => Response::refused(format!("bad request: {e}")),
            Ok(request) => ask_loop(&tx, request).await,
        },
    };
    let mut text = serde_json::to_string(&response).unwrap_or_else(|e| {
        format!("{{\"ok\":false,\"message\":\"cannot encode the answer: {e}\"}}")
    });
    text.push('\n');
    let _ = tokio::time::timeout(IO_TIMEOUT, write.write_all(text.as_bytes())).await;
}

/// Answers a client beyond [`MAX_CLIENTS`] with one refusal line, without reading its
/// request, and closes (the caller drops the stream). The write never waits: a fresh
/// socket's buffer takes the line, and no task is spawned per refused client.
fn refuse_busy(stream: &UnixStream) {
    let mut text = serde_json::to_string(&Response::refused(BUSY))
        .unwrap_or_else(|_| format!("{{\"ok\":false,\"message\":\"{BUSY}\"}}"));
    text.push('\n');
    let _ = stream.try_write(text.as_bytes());
}

async fn ask_loop(tx: &mpsc::Sender<ControlRequest>, request: Request) -> Response {
    let (reply, answer) = oneshot::channel();
    if tx.send(ControlRequest { request, reply }).await.is_err() {
        return Response::refused("the agent is stopping");
    }
    match tokio::time::timeout(IO_TIMEOUT, answer).await {
        Ok(Ok(response)) => response,
        _ => Response::refused("the agent did not answer within 5 s"),
    }
}

/// Sends one request and waits for the answer (blocking; for the CLI).
pub fn request(path: &Path, request: &Request) -> Result<Response, ControlError> {
    let connect_err = |reason: String| ControlError::Connect {
        path: path.to_path_buf(),
        reason,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        connect_err(match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                "no agent is running there (is haagent started? is --socket right?)".into()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (run as root or as a member of the socket's group)".into()
            }
            _ => e.to_string(),
        })
    })?;
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT * 2));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut line = serde_json::to_string(request).map_err(|e| connect_err(e.to_string()))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| connect_err(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| connect_err(e.to_string()))?;
    serde_json::from_str(answer.trim()).map_err(|e| ControlError::Protocol {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_json_form() {
        let cases = [
            (Request::Status {}, r#"{"cmd":"status"}"#),
            (
                Request::Handover {
                    to: Some("n2".into()),
                    group: None,
                },
                r#"{"cmd":"handover","to":"n2"}"#,
            ),
            (
                Request::Handover {
                    to: None,
                    group: Some("web-a".into()),
                },
                r#"{"cmd":"handover","to":null,"group":"web-a"}"#,
            ),
            (
                Request::Maintenance {
                    on: true,
                    group: None,
                },
                r#"{"cmd":"maintenance","on":true}"#,
            ),
            (
                Request::Maintenance {
                    on: false,
                    group: Some("web-b".into()),
                },
                r#"{"cmd":"maintenance","on":false,"group":"web-b"}"#,
            ),
            (Request::Reload {}, r#"{"cmd":"reload"}"#),
        ];
        for (req, json) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
            assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

    /// A CLI older than groups sends no `group`: it still parses, as the node-wide
    /// maintenance and the handover of every group this node is master of.
    #[test]
    fn requests_without_a_group_still_parse() {
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"maintenance","on":true}"#).ok(),
            Some(Request::Maintenance {
                on: true,
                group: None
            })
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"handover"}"#).ok(),
            Some(Request::Handover {
                to: None,
                group: None
            })
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"handover","group":7}"#).is_err());
    }

    /// An agent older than groups answers a handover without `handovers`; a new agent's
    /// answer keeps `handover_to` for an older CLI.
    #[test]
    fn handover_answers_carry_every_group_and_the_first_target() {
        let old: Response =
            serde_json::from_str(r#"{"ok":true,"message":"m","handover_to":"n2"}"#).unwrap();
        assert!(old.handovers.is_empty());
        assert_eq!(old.handover_to.as_deref(), Some("n2"));
        let new = Response {
            handover_to: Some("n2".into()),
            handovers: vec![
                GroupHandover {
                    group: "web-a".into(),
                    to: "n2".into(),
                },
                GroupHandover {
                    group: "web-b".into(),
                    to: "n3".into(),
                },
            ],
            ..Response::done("handing over")
        };
        let json = serde_json::to_string(&new).unwrap();
        assert_eq!(
            json,
            r#"{"ok":true,"message":"handing over","handover_to":"n2","handovers":[{"group":"web-a","to":"n2"},{"group":"web-b","to":"n3"}]}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&json).unwrap(), new);
        // Without handovers the key is left out, as older agents sent it.
        assert!(!serde_json::to_string(&Response::done("x"))
            .unwrap()
            .contains("handovers"));
    }

    #[tokio::test]
    async fn a_request_reaches_the_loop_and_its_answer_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/haagent.sock");
        let (server, mut rx) = ControlServer::bind(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second agent on the same path is refused.
        assert!(matches!(
            ControlServer::bind(&path, None),
            Err(ControlError::Bind { .. })
        ));
        let loop_side = tokio::spawn(async move {
            let req = rx.recv().await.unwrap();
            assert_eq!(
                req.request,
                Request::Maintenance {
                    on: true,
                    group: None
                }
            );
            req.reply.send(Response::done("maintenance on")).unwrap();
        });
        let p = path.clone();
        let answer = tokio::task::spawn_blocking(move || {
            request(
                &p,
                &Request::Maintenance {
                    on: true,
                    group: None,
                },
            )
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(answer, Response::done("maintenance on"));
        loop_side.await.unwrap();
        drop(server);
        assert!(!path.exists(), "the socket file is removed on drop");
    }

    /// Issue 9, fault 6: the bound itself. With [`MAX_CLIENTS`] clients waiting for the
    /// loop, the next one is refused at once with the busy line; once one of them has its
    /// answer and closes, a new client is served again.
    #[tokio::test]
    async fn clients_beyond_the_cap_are_refused_busy_and_served_again_later() {
        use tokio::io::AsyncBufReadExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap.sock");
        let (_server, mut rx) = ControlServer::bind(&path, None).unwrap();
        let line = format!("{}\n", serde_json::to_string(&Request::Status {}).unwrap());
        let deadline = Duration::from_secs(10);
        let mut held = Vec::new();
        for _ in 0..MAX_CLIENTS {
            let mut c = UnixStream::connect(&path).await.unwrap();
            c.write_all(line.as_bytes()).await.unwrap();
            held.push(c);
        }
        // The loop holds every request unanswered: all MAX_CLIENTS slots are taken.
        let mut pending = Vec::new();
        for _ in 0..MAX_CLIENTS {
            let req = tokio::time::timeout(deadline, rx.recv())
                .await
                .unwrap()
                .unwrap();
            pending.push(req);
        }
        let read_answer = |c: UnixStream| async move {
            let mut answer = String::new();
            let mut r = tokio::io::BufReader::new(c);
            tokio::time::timeout(deadline, r.read_line(&mut answer))
                .await
                .unwrap()
                .unwrap();
            serde_json::from_str::<Response>(answer.trim()).unwrap()
        };
        let extra = UnixStream::connect(&path).await.unwrap();
        let refused = read_answer(extra).await;
        assert_eq!(refused, Response::refused(BUSY));
        assert!(rx.try_recv().is_err(), "a refused client reached the loop");

        // One client gets its answer and closes: its slot frees up.
        pending
            .remove(0)
            .reply
            .send(Response::done("first"))
            .unwrap();
        assert_eq!(read_answer(held.remove(0)).await, Response::done("first"));
        let start = std::time::Instant::now();
        loop {
            let mut c = UnixStream::connect(&path).await.unwrap();
            c.write_all(line.as_bytes()).await.unwrap();
            let served = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
            if let Ok(Some(req)) = served {
                req.reply.send(Response::done("again")).unwrap();
                assert_eq!(read_answer(c).await, Response::done("again"));
                break;
            }
            assert_eq!(read_answer(c).await, Response::refused(BUSY));
            assert!(
                start.elapsed() < deadline,
                "never served again after a slot freed"
            );
        }
    }

    #[test]
    fn no_agent_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = request(&dir.path().join("none.sock"), &Request::Status {}).unwrap_err();
        assert!(err.to_string().contains("no agent is running"), "{err}");
    }
}

#[cfg(test)]
mod request_strictness {
    use super::*;

    /// Issue 9: `{"cmd":"status","junk":1}` was accepted (serde ignores
    /// `deny_unknown_fields` for the unit variants of an internally tagged enum).
    #[test]
    fn every_request_refuses_unknown_fields() {
        for line in [
            r#"{"cmd":"status","junk":1}"#,
            r#"{"cmd":"reload","junk":1}"#,
            r#"{"cmd":"handover","to":"n2","junk":1}"#,
            r#"{"cmd":"maintenance","on":true,"junk":1}"#,
            r#"{"cmd":"maintenance","on":true,"group":"g","junk":1}"#,
        ] {
            assert!(
                serde_json::from_str::<Request>(line).is_err(),
                "{line} was accepted"
            );
        }
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"status"}"#).ok(),
            Some(Request::Status {})
        );
    }
}
