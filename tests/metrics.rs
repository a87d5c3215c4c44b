//! The Prometheus endpoint as a scraper sees it: a real TCP listener on loopback, raw HTTP/1.1
//! requests, and the OpenMetrics text parsed back into samples.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use haagent::daemon::AdmissionKind;
use haagent::election::{Cause, State};
use haagent::metrics::{serve, Metrics, MetricsError, MetricsServer, RejectReason};
use haagent::transport::RejectKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One sample line: `name{k="v",..} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of an OpenMetrics text exposition (comments skipped).
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("sample without value: {line:?}"),
        };
        let mut labels = BTreeMap::new();
        let value_part = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.chars();
            loop {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(
                    chars.next(),
                    Some('"'),
                    "label value must be quoted in {line:?}"
                );
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => panic!("dangling escape in {line:?}"),
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => panic!("unterminated label value in {line:?}"),
                    }
                }
                labels.insert(key, value);
                match chars.next() {
                    Some(',') => continue,
                    Some('}') => break,
                    other => panic!("unexpected {other:?} after label in {line:?}"),
                }
            }
            chars.as_str().to_owned()
        } else {
            rest.to_owned()
        };
        let value = value_part
            .trim()
            .split(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("bad value in {line:?}"));
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the sample `name` whose labels are exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// A raw HTTP answer: status code, lower-cased headers, body.
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `raw` as the whole request and reads until the server closes the connection.
async fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .expect("server did not close the connection")
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n").as_bytes(),
    )
    .await
}

/// Scrapes `/metrics`, checks the framing every scrape must have, and parses it.
async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(
        r.headers.get("connection").map(String::as_str),
        Some("close")
    );
    assert_eq!(
        r.headers.get("content-length"),
        Some(&r.body.len().to_string())
    );
    assert!(
        r.body.ends_with("# EOF\n"),
        "no # EOF at the end:\n{}",
        r.body
    );
    assert_eq!(r.body.matches("# EOF").count(), 1);
    parse_exposition(&r.body)
}

async fn start() -> (Arc<Metrics>, MetricsServer) {
    let metrics = Metrics::new("n1");
    let server = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&metrics))
        .await
        .unwrap();
    assert_ne!(server.local_addr().port(), 0);
    (metrics, server)
}

#[tokio::test]
async fn scrape_shows_state_counters_peers_and_bounded_reasons() {
    let (m, server) = start().await;
    let addr = server.local_addr();

    m.set_state(State::Backup);
    m.set_state(State::Master);
    m.set_epoch(7);
    m.advert_sent();
    m.advert_sent();
    m.transition(State::Master, Cause::MasterDown);
    m.peer(
        "n2",
        Some(Duration::from_micros(12_500)),
        Some(Duration::from_millis(300)),
        true,
    );
    m.advert_rejected(RejectReason::Admission(AdmissionKind::NotVouched));
    m.advert_rejected(RejectReason::Connection(RejectKind::UnknownCa));

    let s = scrape(addr).await;
    let info = value(
        &s,
        "haagent_info",
        &[("node", "n1"), ("version", env!("CARGO_PKG_VERSION"))],
    );
    assert_eq!(info, Some(1.0));
    assert_eq!(
        value(&s, "haagent_state", &[("state", "master")]),
        Some(1.0)
    );
    for other in ["init", "backup", "fault"] {
        assert_eq!(value(&s, "haagent_state", &[("state", other)]), Some(0.0));
    }
    assert_eq!(value(&s, "haagent_epoch", &[]), Some(7.0));
    assert_eq!(value(&s, "haagent_adverts_sent_total", &[]), Some(2.0));
    assert_eq!(
        value(
            &s,
            "haagent_transitions_total",
            &[("to", "master"), ("reason", "master_down")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "haagent_peer_rtt_seconds", &[("peer", "n2")]),
        Some(0.0125)
    );
    assert_eq!(
        value(&s, "haagent_peer_last_seen_seconds", &[("peer", "n2")]),
        Some(0.3)
    );
    assert_eq!(value(&s, "haagent_peer_up", &[("peer", "n2")]), Some(1.0));
    assert_eq!(
        value(
            &s,
            "haagent_adverts_rejected_total",
            &[("reason", "wrong_name")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "haagent_adverts_rejected_total",
            &[("reason", "tls_unknown_ca")]
        ),
        Some(1.0)
    );

    // Counters only go up between scrapes.
    m.advert_sent();
    m.transition(State::Master, Cause::MasterDown);
    m.set_garps_sent(4);
    m.set_garps_sent(9);
    m.vip_conflict();
    let s2 = scrape(addr).await;
    assert_eq!(value(&s2, "haagent_adverts_sent_total", &[]), Some(3.0));
    assert_eq!(
        value(
            &s2,
            "haagent_transitions_total",
            &[("to", "master"), ("reason", "master_down")]
        ),
        Some(2.0)
    );
    assert_eq!(value(&s2, "haagent_garp_sent_total", &[]), Some(9.0));
    assert_eq!(value(&s2, "haagent_vip_conflicts_total", &[]), Some(1.0));

    // A state change is visible on the next scrape.
    m.set_state(State::Fault);
    let s3 = scrape(addr).await;
    assert_eq!(
        value(&s3, "haagent_state", &[("state", "master")]),
        Some(0.0)
    );
    assert_eq!(
        value(&s3, "haagent_state", &[("state", "fault")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn other_paths_methods_and_garbage_get_http_errors() {
    let (_m, server) = start().await;
    let addr = server.local_addr();

    let r = get(addr, "/other").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.headers.get("connection").map(String::as_str),
        Some("close")
    );
    assert_eq!(get(addr, "/").await.status, 404);
    assert_eq!(get(addr, "/metrics/extra").await.status, 404);
    // A query string does not change the path.
    assert_eq!(get(addr, "/metrics?name[]=x").await.status, 200);

    let r = request(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(r.status, 405);
    assert_eq!(
        r.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );

    let r = request(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    assert_eq!(request(addr, b"hello\r\n\r\n").await.status, 400);

    // A head over 8 KiB is refused without waiting for its end.
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    assert_eq!(request(addr, &big).await.status, 431);

    // The server still works after all that.
    scrape(addr).await;
}

#[tokio::test]
async fn a_silent_client_neither_blocks_scrapes_nor_stays_open() {
    let (_m, server) = start().await;
    let addr = server.local_addr();

    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Another scraper is served while the silent one holds its connection.
    scrape(addr).await;
    // The silent client is dropped after the 2 s head timeout, with no answer.
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf))
        .await
        .expect("silent connection was not closed by the server")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "unexpected answer: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = serve(addr, Metrics::new("n1")).await.unwrap_err();
    let MetricsError::Bind { addr: reported, .. } = &err;
    assert_eq!(*reported, addr);
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "{msg}");
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let (_m, server) = start().await;
    let addr = server.local_addr();
    scrape(addr).await;
    server.shutdown().await;
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let (_m, server) = start().await;
    let addr = server.local_addr();
    drop(server);
    // Abort takes effect when the runtime next polls the task; wait for that, bounded.
    let refused = async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ => tokio::task::yield_now().await,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("listener still open 5 s after drop");
}
