//! A deliberately tiny HTTP/1.1 server for `GET /metrics` (no hyper): one request per
//! connection, request head capped at 8 KiB and 2 s, `Connection: close`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::Metrics;

/// The scrape answer's content type (OpenMetrics text format 1.0.0).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest request head the server reads before answering 431.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head (and to take the answer).
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read and discarded after answering (see `handle_connection`).
const MAX_DRAIN: usize = 64 * 1024;
/// Connections served at once; further ones are closed straight away.
const MAX_CONNECTIONS: usize = 16;

/// Errors from starting the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound (in use, not local, or a port below 1024 without
    /// CAP_NET_BIND_SERVICE).
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The configured `metrics.listen` address.
        addr: SocketAddr,
        /// The underlying socket error.
        #[source]
        source: std::io::Error,
    },
}

/// A running metrics endpoint. Dropping it (or calling [`MetricsServer::abort`]) stops it.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and drops the ones being served. The listening socket is
    /// closed once the runtime drops the task, shortly after this returns.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Stops the endpoint and waits until its listening socket is closed.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // Cancelled is the expected outcome; a panic inside the task has nothing left to stop.
        let _ = (&mut self.task).await;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` (and `HEAD`) on `listen`, 404 for other paths, until the returned
/// [`MetricsServer`] is dropped or aborted. Bind with port 0 and read
/// [`MetricsServer::local_addr`] to learn the port.
///
/// Must be called inside a tokio runtime.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<MetricsServer, MetricsError> {
    let bind_error = |source| MetricsError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    tracing::info!(%local_addr, "metrics endpoint listening");
    let task = tokio::spawn(accept_loop(listener, metrics));
    Ok(MetricsServer { local_addr, task })
}

/// Accepts connections until aborted. Connection tasks live in a [`JoinSet`] owned by this
/// future, so aborting it also ends every connection.
async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::debug!(%peer, "metrics: too many connections, closing");
                        drop(stream);
                        continue;
                    }
                    let metrics = Arc::clone(&metrics);
                    connections.spawn(async move {
                        if let Err(error) = handle_connection(stream, &metrics).await {
                            tracing::debug!(%peer, %error, "metrics connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// What the request head asked for, as far as this server cares.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET`/`HEAD` of `/metrics` (`head_only` for HEAD).
    Metrics { head_only: bool },
    /// `GET`/`HEAD` of another path.
    NotFound { head_only: bool },
    /// Another method.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Interprets a complete request head (request line + headers).
fn parse_request(head: &[u8]) -> Route {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || target.is_empty() {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        Route::Metrics { head_only }
    } else {
        Route::NotFound { head_only }
    }
}

/// Reads bytes until the end of the request head. `Ok(None)` if the client closed first;
/// `Err(())` if the head is larger than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Result<Option<Vec<u8>>, ()>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Ok(None));
        }
        // Only the newly read bytes plus three before them can complete a terminator.
        let search_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        let tail = &head[search_from..];
        if tail.windows(4).any(|w| w == b"\r\n\r\n") || tail.windows(2).any(|w| w == b"\n\n") {
            return Ok(Ok(Some(head)));
        }
        if head.len() >= MAX_HEAD {
            return Ok(Err(()));
        }
    }
}

async fn handle_connection(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_elapsed) => return Ok(()), // slow client: just close
        Ok(result) => result?,
    };
    let response = match head {
        Ok(None) => return Ok(()),
        Err(()) => response(
            431,
            "Request Header Fields Too Large",
            "",
            "text/plain",
            false,
        ),
        Ok(Some(head)) => match parse_request(&head) {
            Route::Metrics { head_only } => {
                response(200, "OK", &metrics.encode(), CONTENT_TYPE, head_only)
            }
            Route::NotFound { head_only } => response(
                404,
                "Not Found",
                "not found; metrics are at /metrics\n",
                "text/plain; charset=utf-8",
                head_only,
            ),
            Route::MethodNotAllowed => response(
                405,
                "Method Not Allowed",
                "only GET and HEAD are supported\n",
                "text/plain; charset=utf-8",
                false,
            ),
            Route::BadRequest => response(
                400,
                "Bad Request",
                "bad request\n",
                "text/plain; charset=utf-8",
                false,
            ),
        },
    };
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        // Lingering close: closing a socket with unread input makes the kernel send a reset,
        // which can destroy the answer before the client reads it (e.g. after a 431). Discard
        // what the client still sends, bounded in bytes and time, until it closes.
        let mut sink = [0u8; 1024];
        let mut drained = 0;
        while drained < MAX_DRAIN {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok(())
    })
    .await
    .unwrap_or(Ok(()))
}

/// Builds a complete `Connection: close` response.
fn response(code: u16, reason: &str, body: &str, content_type: &str, head_only: bool) -> Vec<u8> {
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_classified() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            parse_request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            parse_request(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Route::NotFound { head_only: false }
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(parse_request(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(parse_request(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
        assert_eq!(
            parse_request(b"GET /metrics SPDY/3\r\n\r\n"),
            Route::BadRequest
        );
    }
}
