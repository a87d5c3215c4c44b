//! Every shipped example config (configs/*.toml) must load, and print back to a valid config.
//! The directory is read at run time, so a new example is tested without touching this file.

use std::path::{Path, PathBuf};

use haagent::config::{from_toml, Config, GatewaySetting, Overrides};
use haagent::health::{CheckKind, Weight};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Config {
    let text = std::fs::read_to_string(path).unwrap();
    // No overrides: the file alone must be complete (node names are given, so the host name
    // of the test machine plays no part).
    from_toml(&text, &path.display().to_string(), &Overrides::default())
        .unwrap_or_else(|e| panic!("{} does not validate:\n{e}", path.display()))
}

#[test]
fn every_example_config_validates() {
    let files = examples();
    let names: Vec<_> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    assert!(
        names.contains(&"two-node.toml".to_string())
            && names.contains(&"three-node.toml".to_string()),
        "examples missing, found {names:?}"
    );
    for path in &files {
        let config = load(path);
        assert!(!config.peers.is_empty(), "{}", path.display());
        assert!(
            config.peers.iter().all(|p| p.name.is_some()),
            "{}: example peers should be named",
            path.display()
        );
    }
}

#[test]
fn examples_use_documentation_addresses_only() {
    for path in examples() {
        let config = load(&path);
        let in_doc_range = |ip: std::net::IpAddr| match ip {
            std::net::IpAddr::V4(v4) => v4.octets()[..3] == [192, 0, 2] || v4.is_unspecified(),
            std::net::IpAddr::V6(_) => false,
        };
        assert!(in_doc_range(config.node.listen.ip()), "{}", path.display());
        for peer in &config.peers {
            assert!(in_doc_range(peer.address.ip()), "{}", path.display());
        }
        for vip in &config.vips {
            assert_eq!(vip.addr.octets()[..3], [192, 0, 2], "{}", path.display());
        }
        if let Some(GatewaySetting::Addr(gw)) = config.witness.as_ref().map(|w| w.gateway) {
            assert_eq!(gw.octets()[..3], [192, 0, 2], "{}", path.display());
        }
    }
}

#[test]
fn examples_show_the_split_brain_layers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let two = load(&dir.join("two-node.toml"));
    let witness = two.witness.expect("two-node.toml has a [witness] table");
    assert_eq!(
        witness.gateway,
        GatewaySetting::Addr(std::net::Ipv4Addr::new(192, 0, 2, 1))
    );
    assert!(!two.election.quorum, "two nodes: quorum off");
    assert!(two.lease.is_some() && two.probe.count > 0);
    let three = load(&dir.join("three-node.toml"));
    assert!(three.election.quorum, "three nodes: majority");
    let text = std::fs::read_to_string(dir.join("three-node.toml")).unwrap();
    assert!(
        text.contains("quorum = \"majority\""),
        "three-node.toml shows quorum"
    );
}

#[test]
fn every_example_prints_back_to_the_same_config() {
    for path in examples() {
        let config = load(&path);
        let printed = config.to_toml_string();
        let again = from_toml(&printed, "printed", &Overrides::default()).unwrap_or_else(|e| {
            panic!("printed {} does not load:\n{e}\n{printed}", path.display())
        });
        assert_eq!(
            again,
            Config {
                source: "printed".to_string(),
                ..config
            },
            "{}",
            path.display()
        );
    }
}

#[test]
fn reference_documents_every_key_the_agent_prints() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc_path.display()));
    for path in examples() {
        let printed = load(&path).to_toml_string();
        for line in printed.lines() {
            let line = line.trim();
            let key = if let Some(table) = line.strip_prefix('[') {
                format!("[{table}")
            } else if let Some((key, _)) = line.split_once(" = ") {
                format!("`{key}`")
            } else {
                continue;
            };
            assert!(
                doc.contains(&key),
                "docs/configuration.md does not mention {key}"
            );
        }
    }
}

#[test]
fn two_node_example_moves_the_vip_when_nginx_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let two = load(&dir.join("two-node.toml"));
    assert_eq!(two.checks.len(), 1, "two-node.toml has one [[check]]");
    let nginx = &two.checks[0];
    assert_eq!(nginx.name, "nginx");
    assert!(
        matches!(&nginx.kind, CheckKind::Http { url, .. } if url == "http://127.0.0.1/health"),
        "{nginx:?}"
    );
    assert_eq!(nginx.weight, Weight::Fault);
    let worst = nginx.interval * nginx.fall + nginx.timeout;
    assert!(worst.as_millis() <= 300, "detection takes up to {worst:?}");
    // [metrics] and [control] are shown commented out: defaults apply.
    assert_eq!(two.metrics_listen, None);
    assert_eq!(
        two.control_socket,
        Path::new(haagent::config::DEFAULT_CONTROL_SOCKET)
    );
}

/// The ```toml blocks of docs/configuration.md that hold `[[check]]` examples load as part of
/// a config file.
#[test]
fn check_examples_in_the_reference_are_valid() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let base = "[node]\nname = \"n1\"\ninterface = \"eth0\"\n[[peer]]\nname = \"n2\"\n\
                address = \"192.0.2.12\"\n[vip]\naddresses = [\"192.0.2.100/24\"]\n";
    let mut tested = 0;
    for block in doc.split("```toml\n").skip(1) {
        let block = block.split("```").next().unwrap();
        if !block.contains("[[check]]") {
            continue;
        }
        let text = format!("{base}{block}");
        let config = from_toml(&text, "docs example", &Overrides::default())
            .unwrap_or_else(|e| panic!("docs example does not load:\n{e}\n{block}"));
        assert!(!config.checks.is_empty());
        tested += 1;
    }
    assert!(tested > 0, "no [[check]] example in docs/configuration.md");
}
