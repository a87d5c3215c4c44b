//! The service behind the VIP on each node: Nginx when it is installed (its own config,
//! pid, log and temp paths in the lab's work directory, `daemon off`), otherwise the
//! built-in responder ([`serve`], run as `haagent-lab serve`), so a fresh machine needs
//! nothing beyond root and iproute2. Both answer `GET /` with `200` and the node's name.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proc::Proc;
use super::{LabError, Netns};

/// Which HTTP server the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// Nginx (Debian's package).
    Nginx,
    /// `haagent-lab serve`.
    Builtin,
}

impl ServerKind {
    /// Nginx if an `nginx` binary is on the PATH, else the built-in responder.
    pub fn detect() -> Self {
        if find_program("nginx").is_some() {
            Self::Nginx
        } else {
            Self::Builtin
        }
    }

    /// Name for tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Builtin => "built-in responder",
        }
    }
}

/// The full path of `program` if it is on the PATH (or in /usr/sbin, /sbin).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Starts the HTTP server of node `name` inside `ns`, on port 80 of every address.
/// `dir` is the node's private directory; `lab_exe` runs the built-in responder.
pub fn start(
    kind: ServerKind,
    ns: &Netns,
    name: &str,
    dir: &Path,
    lab_exe: &Path,
) -> Result<Proc, LabError> {
    let label = format!("{} on {name}", kind.name());
    match kind {
        ServerKind::Builtin => Proc::spawn(
            &label,
            ns,
            lab_exe,
            &[
                "serve".into(),
                "--port".into(),
                "80".into(),
                "--name".into(),
                name.into(),
            ],
            &[],
            &dir.join("http.log"),
        ),
        ServerKind::Nginx => {
            let nginx = find_program("nginx")
                .ok_or_else(|| LabError::Setup("nginx not found on the PATH".into()))?;
            let conf = dir.join("nginx.conf");
            let d = dir.display();
            let text = format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
                 events {{ worker_connections 512; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                 server {{\n    listen 0.0.0.0:80;\n    listen [::]:80;\n    \
                 location / {{ default_type text/plain; return 200 \"{name}\\n\"; }}\n  }}\n}}\n"
            );
            std::fs::write(&conf, text).map_err(|source| LabError::File {
                path: conf.clone(),
                source,
            })?;
            let args = [
                "-p".to_string(),
                d.to_string(),
                "-e".to_string(),
                format!("{d}/nginx-error.log"),
                "-c".to_string(),
                conf.display().to_string(),
                "-g".to_string(),
                "daemon off;".to_string(),
            ];
            Proc::spawn(&label, ns, nginx, &args, &[], &dir.join("http.log"))
        }
    }
}

/// Stops a server the way an operator would (`nginx -s stop`: SIGTERM to the master,
/// which stops its workers), then makes sure nothing of it is left.
pub fn stop(server: &mut Proc) {
    let _ = server.signal(libc::SIGTERM);
    if !server.wait_exit(Duration::from_secs(2)) {
        let _ = server.signal_tree(libc::SIGKILL);
        server.wait_exit(Duration::from_secs(2));
    }
    // Seen here: an Nginx worker left running after its master exited.
    server.kill_group();
}

/// Waits until `addr:80` answers `GET /` (from the calling thread's namespace).
pub fn answers(addr: Ipv4Addr) -> bool {
    let target = SocketAddr::from((addr, 80));
    let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && buf[..12].ends_with(b"200"))
}

/// The built-in responder: answers every request on `0.0.0.0:port` with `200` and
/// `name`, one short-lived thread per connection, `Connection: close`. Runs until killed.
pub fn serve(port: u16, name: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    let body = format!("{name}\n");
    let response: std::sync::Arc<[u8]> = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into();
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let response = response.clone();
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut chunk = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = conn.write_all(&response);
        });
    }
    Ok(())
}
