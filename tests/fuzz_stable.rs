//! The fuzz targets' properties as a randomized test on stable (issue 9): every decoder of
//! outside input gets its committed seeds (tests/fuzz/corpus/<target>/seed-*) and tens of
//! thousands of mutations of them (bit flips, byte changes, truncation, insertion, splicing),
//! from a fixed list of RNG seeds, so a failure reproduces. The properties themselves are
//! in tests/fuzz/src/properties.rs, shared with the cargo-fuzz targets.
//!
//! A failing case is printed as hex; save it as a file and replay it with
//! `cargo +nightly fuzz run --fuzz-dir tests/fuzz TARGET FILE`.

// The fuzz crate's public API, a private module here.
#[allow(unreachable_pub)]
#[path = "fuzz/src/properties.rs"]
mod properties;

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// RNG seeds: fixed, so every run checks the same cases.
const RNG_SEEDS: [u64; 4] = [0x4841_0001, 0x4841_0002, 0x4841_0003, 0x4841_0004];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

/// The committed seeds of `target` (files named `seed-*`).
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Bytes that often sit on a decoder's boundaries.
const INTERESTING: [u8; 12] = [0, 1, 2, 3, 9, 10, 0x7f, 0x80, 0xfe, 0xff, b'\n', b'"'];

/// One random change (or a few) to `input`, sometimes spliced with `other`.
fn mutate(rng: &mut SmallRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        let len = out.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let at = rng.random_range(0..len);
                out[at] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let at = rng.random_range(0..len);
                out[at] = rng.random();
            }
            2 if len > 0 => {
                let at = rng.random_range(0..len);
                out[at] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            3 => out.truncate(rng.random_range(0..=len)),
            4 => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(at..at, bytes);
            }
            5 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len);
                out.drain(start..end);
            }
            6 => {
                // Splice: a prefix of this input with a suffix of the other.
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                // Duplicate a range (repeated tables, nested brackets, long names).
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 64));
                let copy = out[start..end].to_vec();
                out.splice(start..start, copy);
            }
            _ => out.push(rng.random()),
        }
    }
    out
}

/// Runs `property` on `input`; on a panic, prints the input first so it can be replayed.
fn check(target: &str, property: properties::Property, input: &[u8], what: &str) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| property(input))) {
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        eprintln!(
            "{target}: property failed on {what}\n  input ({} bytes, hex): {hex}\n  as text: {:?}",
            input.len(),
            String::from_utf8_lossy(input)
        );
        resume_unwind(panic);
    }
}

/// Seeds, then `cases` mutations per RNG seed.
fn run(target: &str, cases: usize) {
    let property = properties::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no property for {target}"));
    let seeds = seeds(target);
    let started = Instant::now();
    for (name, bytes) in &seeds {
        check(target, property, bytes, name);
    }
    for rng_seed in RNG_SEEDS {
        let mut rng = SmallRng::seed_from_u64(rng_seed);
        // Mutations stack: each case starts from a seed or from the previous case.
        let mut current = seeds[0].1.clone();
        for case in 0..cases {
            if rng.random_range(0..4) == 0 {
                current = seeds[rng.random_range(0..seeds.len())].1.clone();
            }
            let other = &seeds[rng.random_range(0..seeds.len())].1;
            current = mutate(&mut rng, &current, other);
            if current.len() > 4096 {
                current.truncate(4096);
            }
            check(
                target,
                property,
                &current,
                &format!("case {case} of RNG seed {rng_seed:#x}"),
            );
        }
    }
    eprintln!(
        "{target}: {} seeds + {} mutations in {:?}",
        seeds.len(),
        cases * RNG_SEEDS.len(),
        started.elapsed()
    );
}

#[test]
fn arp_frame_properties_hold() {
    run("arp_frame", 20_000);
}

#[test]
fn nd_frame_properties_hold() {
    run("nd_frame", 10_000);
}

#[test]
fn wire_properties_hold() {
    run("wire", 10_000);
}

#[test]
fn wire_v2_properties_hold() {
    run("wire_v2", 10_000);
}

#[test]
fn icmp_reply_properties_hold() {
    run("icmp_reply", 10_000);
}

#[test]
fn http_head_properties_hold() {
    run("http_head", 10_000);
}

#[test]
fn control_request_properties_hold() {
    run("control_request", 10_000);
}

#[test]
fn control_response_properties_hold() {
    run("control_response", 5_000);
}

#[test]
fn config_properties_hold() {
    run("config", 5_000);
}

/// Every target has a seed directory, and every directory a target (a renamed target
/// must not leave its corpus behind).
#[test]
fn every_target_has_seeds_and_every_seed_dir_a_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut dirs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut targets: Vec<String> = properties::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    targets.sort();
    assert_eq!(dirs, targets);
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/Cargo.toml"),
    )
    .unwrap();
    for t in &targets {
        assert!(
            manifest.contains(&format!("name = \"{t}\"")),
            "tests/fuzz/Cargo.toml has no [[bin]] {t}"
        );
    }
}

/// The seeds are what their names say: mutations start from inputs that get past the first
/// checks, so the deep branches are reached.
#[test]
fn the_valid_seeds_are_accepted() {
    for (name, bytes) in seeds("wire") {
        assert!(haagent::wire::decode(&bytes).is_ok(), "{name}");
    }
    // wire_v2: every seed decodes (v2 ones with decode_v2, the v1 one with decode_any).
    for (name, bytes) in seeds("wire_v2") {
        let decoded = haagent::wire::decode_any(&bytes);
        assert!(decoded.is_ok(), "{name}: {decoded:?}");
        if !name.contains("v1") {
            assert!(haagent::wire::decode_v2(&bytes).is_ok(), "{name}");
        }
    }
    for (name, bytes) in seeds("http_head") {
        assert!(haagent::health::fuzz_parse_head(&bytes).is_ok(), "{name}");
    }
    for (name, bytes) in seeds("control_request") {
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            serde_json::from_str::<haagent::control::Request>(text.trim()).is_ok(),
            "{name}"
        );
    }
    for (name, bytes) in seeds("control_response") {
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            serde_json::from_str::<haagent::control::Response>(text.trim()).is_ok(),
            "{name}"
        );
    }
    for (name, bytes) in seeds("config") {
        let text = String::from_utf8(bytes).unwrap();
        let loaded =
            haagent::config::from_toml(&text, "seed.toml", &haagent::config::Overrides::default());
        assert!(loaded.is_ok(), "{name}: {}", loaded.unwrap_err());
    }
    // ARP: the announcements and the probe parse (the probe with sender 0.0.0.0); the
    // IPv4 frame does not.
    for (name, bytes) in seeds("arp_frame") {
        let parsed = haagent::vip::fuzz_parse_claim(&bytes);
        assert_eq!(parsed.is_some(), !name.contains("ipv4"), "{name}");
        if name.contains("probe") {
            assert_eq!(parsed.map(|p| p.1), Some(std::net::Ipv4Addr::UNSPECIFIED));
        }
    }
    // ND: the NAs and the DAD NS parse, the truncated NA and the DAD NS with an SLLA option
    // (RFC 4861 §7.1.1) do not; the NA and the DAD NS
    // (written by hand from RFC 4861) are byte for byte what haagent builds.
    for (name, bytes) in seeds("nd_frame") {
        let parsed = haagent::vip::fuzz_parse_nd(&bytes);
        let refused = name.contains("truncated") || name.contains("slla");
        assert_eq!(parsed.is_some(), !refused, "{name}");
        if name.contains("other") {
            assert_ne!(parsed.map(|p| p.2), Some(bytes[6..12].try_into().unwrap()));
        }
    }
    let built = haagent::vip::fuzz_nd_frames(
        [0x00, 0x00, 0x5e, 0x00, 0x53, 0x01],
        "2001:db8::100".parse().unwrap(),
    );
    let by_name = |n: &str| {
        seeds("nd_frame")
            .into_iter()
            .find(|s| s.0.ends_with(n))
            .unwrap()
            .1
    };
    assert_eq!(built, [by_name("/seed-na"), by_name("/seed-dad")]);
    // ICMP: the `-reply` seeds match; the echo requests do not.
    for (name, bytes) in seeds("icmp_reply") {
        if bytes[0] & 16 != 0 {
            // ICMPv6: flags, id, seq, token, gateway, destination, message.
            let matched = haagent::witness::fuzz_match_reply_v6(
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[13..29]).unwrap()),
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[29..45]).unwrap()),
                &bytes[45..],
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[13..29]).unwrap()),
                (
                    u16::from_be_bytes([bytes[1], bytes[2]]),
                    u16::from_be_bytes([bytes[3], bytes[4]]),
                    bytes[5..13].try_into().unwrap(),
                ),
            );
            assert_eq!(
                matched.is_ok(),
                name.ends_with("-reply"),
                "{name}: {matched:?}"
            );
            continue;
        }
        let raw = bytes[0] & 1 != 0;
        let id = u16::from_be_bytes([bytes[1], bytes[2]]);
        let seq = u16::from_be_bytes([bytes[3], bytes[4]]);
        let token: [u8; 8] = bytes[5..13].try_into().unwrap();
        let gateway = std::net::Ipv4Addr::new(bytes[13], bytes[14], bytes[15], bytes[16]);
        let matched = haagent::witness::fuzz_match_reply(
            raw,
            gateway,
            &bytes[17..],
            gateway,
            (id, seq, token),
        );
        assert_eq!(
            matched.is_ok(),
            name.ends_with("-reply"),
            "{name}: {matched:?}"
        );
    }
}

/// The control server reads at most 64 KiB of a request line: a client that sends an endless
/// line gets a refusal instead of growing the agent's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_request_line_is_cut_and_refused() {
    use std::io::{BufRead, Write};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haagent.sock");
    let (_server, mut rx) = haagent::control::ControlServer::bind(&path, None).unwrap();
    let client = tokio::task::spawn_blocking(move || {
        let stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        // A request that would be valid, padded far past the limit, with no newline. The
        // server stops reading at the limit, so the writes may fail: that is fine.
        let mut writer = stream.try_clone().unwrap();
        let flood = std::thread::spawn(move || {
            let _ = writer.write_all(b"{\"cmd\":\"status\"");
            let pad = vec![b' '; 16 * 1024];
            for _ in 0..64 {
                if writer.write_all(&pad).is_err() {
                    break;
                }
            }
        });
        let mut answer = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut answer)
            .unwrap();
        let _ = flood.join();
        answer
    });
    let answer = tokio::time::timeout(std::time::Duration::from_secs(15), client)
        .await
        .expect("no answer within 15 s")
        .unwrap();
    let response: haagent::control::Response = serde_json::from_str(answer.trim()).unwrap();
    assert!(!response.ok, "{answer}");
    assert!(
        response
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("bad request")),
        "{answer}"
    );
    assert!(rx.try_recv().is_err(), "the cut request reached the loop");
}

/// Deep nesting (what mutations rarely build): every parser stops at its recursion limit
/// with an error instead of overflowing the stack, and the properties still hold.
#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let n = 100_000;
    let toml_array = format!("[node]\nname = {}1{}\n", "[".repeat(n), "]".repeat(n));
    let toml_table = format!("[node]\nname = {}1{}\n", "{a=".repeat(n), "}".repeat(n));
    for text in [&toml_array, &toml_table] {
        properties::config(text.as_bytes());
        let loaded =
            haagent::config::from_toml(text, "deep.toml", &haagent::config::Overrides::default());
        assert!(loaded.is_err());
    }
    let json = format!(
        "{{\"cmd\":\"handover\",\"to\":{}\"n2\"{}}}",
        "[".repeat(n),
        "]".repeat(n)
    );
    properties::control_request(json.as_bytes());
    properties::control_response(json.as_bytes());
    assert!(serde_json::from_str::<haagent::control::Request>(&json).is_err());
}
