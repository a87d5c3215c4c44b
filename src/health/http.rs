//! A minimal HTTP/1.1 client for `http` checks: one `GET` per run over a fresh TCP
//! connection (`Connection: close`). Hand-written so the agent needs no HTTP stack; it only
//! understands what a health endpoint needs: the status line, `Content-Length`, read-to-close
//! and (loosely) chunked bodies. URL and response parsing are pure functions with unit tests.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::runner::io_reason;

/// The most of a body that is read and searched.
pub(crate) const BODY_CAP: usize = 64 * 1024;
/// The most of a response head (status line + headers) that is accepted.
const HEAD_CAP: usize = 16 * 1024;

/// A parsed `http://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// Host name or IP literal (IPv6 without brackets).
    pub(crate) host: String,
    /// TCP port (80 unless given).
    pub(crate) port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub(crate) authority: String,
    /// Path and query, at least `/`.
    pub(crate) path: String,
}

/// Parses a plain `http://` URL; the error says what is wrong with it.
pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not an http:// URL".into());
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err("https is not supported (plain http:// only)".into());
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!(
            "unsupported scheme `{scheme}` (plain http:// only)"
        ));
    }
    if rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the URL contains spaces or control characters".into());
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    if authority.is_empty() {
        return Err("the URL has no host".into());
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((v6, after)) = bracketed.split_once(']') else {
            return Err("unterminated IPv6 literal".into());
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{v6}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(format!("unexpected `{after}` after the IPv6 literal")),
            },
        };
        (v6, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err(format!("`{p}` is not a valid port")),
        },
    };
    Ok(Url {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path,
    })
}

/// The parts of a response head a check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// Status code.
    pub(crate) status: u16,
    /// Reason phrase (may be empty).
    pub(crate) reason: String,
    /// `Content-Length`, if present and valid.
    pub(crate) content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub(crate) chunked: bool,
}

/// Where the head ends (index just past the empty line), if it is complete.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a complete response head (without the final empty line or with it).
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(format!("not an HTTP response: `{}`", shorten(status_line)));
    }
    let status = match code.parse::<u16>() {
        Ok(n) if (100..=999).contains(&n) && code.len() == 3 => n,
        _ => return Err(format!("bad status line `{}`", shorten(status_line))),
    };
    let reason = escape_controls(parts.next().unwrap_or("").trim());
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Head {
        status,
        reason,
        content_length,
        chunked,
    })
}

/// Whether `status` is accepted: one of `expect`, or 200..=399 when `expect` is empty.
pub(crate) fn status_ok(status: u16, expect: &[u16]) -> bool {
    if expect.is_empty() {
        (200..=399).contains(&status)
    } else {
        expect.contains(&status)
    }
}

/// Whether `haystack` contains `needle` as raw bytes.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a body read so far is complete.
fn body_complete(head: &Head, body: &[u8]) -> bool {
    if body.len() >= BODY_CAP {
        return true;
    }
    if let Some(n) = head.content_length {
        return body.len() >= n;
    }
    head.chunked && (body.ends_with(b"\r\n0\r\n\r\n") || body == b"0\r\n\r\n")
}

/// Runs one `GET`; Ok carries "200 OK", Err the reason (without the `GET url: ` prefix).
pub(crate) async fn get(
    url: &str,
    expect_status: &[u16],
    body_contains: Option<&str>,
) -> Result<String, String> {
    let url = parse_url(url)?;
    let mut stream = connect(&url).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: haagent\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path, url.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {}", io_reason(&e)))?;

    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(n) = head_end(&buf) {
            break n;
        }
        if buf.len() > HEAD_CAP {
            return Err("response headers larger than 16 KiB".into());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the response: {}", io_reason(&e)))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "connection closed without a response".into()
            } else {
                "connection closed in the middle of the response headers".into()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = parse_head(&buf[..head_len])?;
    let status_text = if head.reason.is_empty() {
        head.status.to_string()
    } else {
        format!("{} {}", head.status, head.reason)
    };
    if !status_ok(head.status, expect_status) {
        let expected = if expect_status.is_empty() {
            "200..=399".to_string()
        } else {
            expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!("status {status_text} (expected {expected})"));
    }
    let Some(needle) = body_contains else {
        return Ok(status_text);
    };
    let mut body = buf.split_off(head_len);
    while !body_complete(&head, &body) {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the body: {}", io_reason(&e)))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(BODY_CAP);
    if contains(&body, needle.as_bytes()) {
        Ok(status_text)
    } else {
        Err(format!(
            "{status_text} but the body does not contain {needle:?}"
        ))
    }
}

/// Connects to the URL's host: an IP literal directly, a name through the resolver
/// (every address in turn).
async fn connect(url: &Url) -> Result<TcpStream, String> {
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, url.port);
        return TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {}", io_reason(&e)));
    }
    let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {}", url.host, io_reason(&e)))?;
    let mut last = format!("{} resolves to no address", url.host);
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("connect to {addr}: {}", io_reason(&e)),
        }
    }
    Err(last)
}

/// The first 80 characters of `s`, control characters escaped (see [`escape_controls`]).
fn shorten(s: &str) -> String {
    escape_controls(s).chars().take(80).collect()
}

/// `s` with control characters escaped (`\n`, `\u{1d}`): the reason phrase and the status
/// line come from the server and end up in text logs, where a bare CR or LF (the head is
/// split on CRLF only) would start a forged log line.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, authority: &str, path: &str) -> Url {
        Url {
            host: host.into(),
            port,
            authority: authority.into(),
            path: path.into(),
        }
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("http://127.0.0.1/health").unwrap(),
            url("127.0.0.1", 80, "127.0.0.1", "/health")
        );
        assert_eq!(
            parse_url("HTTP://example.org:8080").unwrap(),
            url("example.org", 8080, "example.org:8080", "/")
        );
        assert_eq!(
            parse_url("http://[::1]:81/a?b=c#frag").unwrap(),
            url("::1", 81, "[::1]:81", "/a?b=c")
        );
        assert_eq!(parse_url("http://h?x").unwrap(), url("h", 80, "h", "/?x"));
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for (bad, why) in [
            ("https://x/", "https is not supported"),
            ("ftp://x/", "unsupported scheme"),
            ("127.0.0.1/health", "not an http:// URL"),
            ("http:///x", "no host"),
            ("http://:80/", "no host"),
            ("http://u:p@h/", "credentials"),
            ("http://h:0/", "not a valid port"),
            ("http://h:99999/", "not a valid port"),
            ("http://[::1/", "unterminated"),
            ("http://[zz]/", "not an IPv6 address"),
            ("http://[::1]x/", "unexpected"),
            ("http://h/a b", "spaces"),
            ("http://h/a\r\nX: y", "control"),
        ] {
            let err = parse_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn parses_heads() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX: y\r\n\r\nbody";
        let end = head_end(raw).unwrap();
        assert_eq!(&raw[end..], b"body");
        let head = parse_head(&raw[..end]).unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                reason: "OK".into(),
                content_length: Some(12),
                chunked: false
            }
        );
        let head = parse_head(b"HTTP/1.0 503\r\ntransfer-encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(
            (head.status, head.reason.as_str(), head.chunked),
            (503, "", true)
        );
    }

    #[test]
    fn rejects_garbage_heads() {
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(parse_head(b"").is_err());
        assert!(parse_head(&[0xff, 0xfe, 0x00]).is_err());
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }

    /// Found by the `http_head` fuzz property (tests/fuzz): a bare LF (or any control character) in the
    /// status line reached the check's result and so the text log unescaped, where it forged
    /// a new log line.
    #[test]
    fn control_characters_from_the_server_are_escaped() {
        let head = parse_head(b"HTTP/1.1 200 OK\nfake=1 \x1b[31m\r\n\r\n").unwrap();
        assert_eq!(head.reason, "OK\\nfake=1 \\u{1b}[31m");
        let err = parse_head(b"HTTP/1.1 2\n00 OK\r\n\r\n").unwrap_err();
        assert!(err.contains("`HTTP/1.1 2\\n00 OK`"), "{err}");
        assert!(!err.chars().any(char::is_control), "{err:?}");
        let long = parse_head(&[b'\n'; 500]).unwrap_err();
        assert!(long.chars().count() <= 120, "{long}");
    }

    #[test]
    fn status_and_body_rules() {
        assert!(status_ok(200, &[]));
        assert!(status_ok(302, &[]));
        assert!(!status_ok(404, &[]));
        assert!(!status_ok(500, &[]));
        assert!(status_ok(204, &[204]));
        assert!(!status_ok(200, &[204]));
        assert!(contains(b"hello world", b"o w"));
        assert!(!contains(b"hello", b"world"));
        assert!(contains(b"", b""));
    }

    #[test]
    fn knows_when_a_body_is_complete() {
        let mut head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n").unwrap();
        assert!(!body_complete(&head, b"ab"));
        assert!(body_complete(&head, b"abc"));
        head.content_length = None;
        head.chunked = true;
        assert!(!body_complete(&head, b"3\r\nabc\r\n"));
        assert!(body_complete(&head, b"3\r\nabc\r\n0\r\n\r\n"));
        head.chunked = false;
        assert!(!body_complete(&head, b"abc"));
        assert!(body_complete(&head, &vec![b'x'; BODY_CAP]));
    }
}
