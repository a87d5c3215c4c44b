//! Every shipped example config (configs/*.toml) must load, and print back to a valid config.
//! The directory is read at run time, so a new example is tested without touching this file.

use std::path::{Path, PathBuf};

use std::net::Ipv4Addr;

use haagent::config::{from_toml, group_id_from_name, Config, GatewaySetting, Overrides};
use haagent::health::{CheckKind, Weight};
use haagent::net::{IpCidr, RouteSpec};

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
    for expected in [
        "two-node.toml",
        "three-node.toml",
        "active-active-n1.toml",
        "active-active-n2.toml",
        "router-pair.toml",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} missing, found {names:?}"
        );
    }
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

/// RFC 5737's documentation networks: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24.
fn documentation(a: Ipv4Addr) -> bool {
    matches!(
        a.octets(),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
    )
}

/// An address of either family in the documentation ranges (RFC 5737, RFC 3849).
fn documentation_ip(a: std::net::IpAddr) -> bool {
    match a {
        std::net::IpAddr::V4(a) => documentation(a),
        std::net::IpAddr::V6(a) => a.segments()[..2] == [0x2001, 0xdb8],
    }
}

#[test]
fn examples_use_documentation_addresses_only() {
    for path in examples() {
        let config = load(&path);
        let in_doc_range = |ip: std::net::IpAddr| ip.is_unspecified() || documentation_ip(ip);
        assert!(in_doc_range(config.node.listen.ip()), "{}", path.display());
        for peer in &config.peers {
            assert!(in_doc_range(peer.address.ip()), "{}", path.display());
        }
        for vip in &config.vips {
            assert!(documentation_ip(vip.addr), "{}: {vip}", path.display());
        }
        for group in &config.groups {
            for route in &group.routes {
                let addrs = [Some(route.to.addr), route.via, route.src];
                for a in addrs.into_iter().flatten() {
                    assert!(
                        a.is_unspecified() || documentation_ip(a),
                        "{}: {route}",
                        path.display()
                    );
                }
            }
        }
        if let Some(GatewaySetting::Addr(gw)) = config.witness.as_ref().map(|w| w.gateway) {
            let documented = match gw {
                std::net::IpAddr::V4(gw) => documentation(gw),
                // 2001:db8::/32 (RFC 3849), or link-local, which never leaves the segment.
                std::net::IpAddr::V6(gw) => {
                    gw.segments()[..2] == [0x2001, 0xdb8] || gw.is_unicast_link_local()
                }
            };
            assert!(documented, "{}", path.display());
        }
    }
}

/// The examples that predate `[[group]]` still load as they did: one implicit group named
/// `default` over `[vip] addresses` on `[node] interface`, printed without `[[group]]`.
#[test]
fn examples_without_groups_load_as_one_implicit_group() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    for name in ["two-node.toml", "three-node.toml"] {
        let config = load(&dir.join(name));
        assert!(config.has_implicit_group(), "{name}");
        let g = &config.groups[0];
        assert_eq!(g.name, "default", "{name}");
        assert_eq!(g.id, group_id_from_name("default"), "{name}");
        assert_eq!(g.cidrs(), config.vips, "{name}");
        assert_eq!(
            g.interfaces(),
            vec![config.node.interface.clone()],
            "{name}"
        );
        assert_eq!(g.priority, config.node.priority, "{name}");
        assert_eq!(g.preempt, config.election.preempt, "{name}");
        assert_eq!(g.notify, config.notify, "{name}");
        assert!(g.routes.is_empty(), "{name}");
        assert_eq!(
            g.track.iter().map(|t| t.check.as_str()).collect::<Vec<_>>(),
            config
                .checks
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            "{name}"
        );
        // The VIP word of the implicit group is the v1 fingerprint's `vips` word.
        assert_eq!(
            g.vips_fingerprint(),
            config.fingerprint().words[1],
            "{name}"
        );
        let printed = config.to_toml_string();
        assert!(!printed.contains("[[group"), "{name}:\n{printed}");
        assert!(printed.contains("addresses = ["), "{name}");
    }
}

#[test]
fn active_active_example_gives_each_node_one_group_to_prefer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let n1 = load(&dir.join("active-active-n1.toml"));
    let n2 = load(&dir.join("active-active-n2.toml"));
    let summary = |c: &Config| {
        c.groups
            .iter()
            .map(|g| (g.name.clone(), g.id, g.priority))
            .collect::<Vec<_>>()
    };
    let (a, b) = (group_id_from_name("web-a"), group_id_from_name("web-b"));
    assert_eq!(
        summary(&n1),
        [("web-a".into(), a, 150), ("web-b".into(), b, 100)]
    );
    assert_eq!(
        summary(&n2),
        [("web-a".into(), a, 100), ("web-b".into(), b, 150)]
    );
    // What the peers compare agrees: the v2 fingerprint and each group's VIP word.
    assert_eq!(n1.fingerprint_v2(), n2.fingerprint_v2());
    for (g1, g2) in n1.groups.iter().zip(&n2.groups) {
        assert_eq!(g1.vips_fingerprint(), g2.vips_fingerprint(), "{}", g1.name);
        assert!(
            g1.preempt,
            "{}: the preferred node takes its group back",
            g1.name
        );
    }
    assert_eq!(n1.node.name, "n1");
    assert_eq!(n2.peers[0].name.as_deref(), Some("n1"));
    // Apart from [node], [[peer]] and the priorities, the two files are the same config.
    let mut same = n2.clone();
    same.source = n1.source.clone();
    same.node = n1.node.clone();
    same.peers = n1.peers.clone();
    same.tls = n1.tls.clone();
    for (g, g1) in same.groups.iter_mut().zip(&n1.groups) {
        g.priority = g1.priority;
    }
    assert_eq!(same, n1);
}

#[test]
fn router_pair_example_moves_both_vips_and_their_routes_together() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let r1 = load(&dir.join("router-pair.toml"));
    assert_eq!(r1.groups.len(), 1, "one group: the VIPs move together");
    let g = &r1.groups[0];
    assert_eq!(g.interfaces(), ["eth0", "eth1"]);
    let outside: IpCidr = "192.0.2.100/24".parse().unwrap();
    assert_eq!(g.cidrs(), [outside, "198.51.100.1/24".parse().unwrap()]);
    assert_eq!(g.vips[0].label.as_deref(), Some("eth0:vip"));
    assert_eq!(
        g.routes,
        [
            RouteSpec {
                to: "0.0.0.0/0".parse().unwrap(),
                via: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
                src: Some(Ipv4Addr::new(192, 0, 2, 100).into()),
                dev: "eth0".into(),
                metric: Some(10),
                table: None,
            },
            RouteSpec {
                to: "203.0.113.0/24".parse().unwrap(),
                via: Some(Ipv4Addr::new(198, 51, 100, 254).into()),
                src: None,
                dev: "eth1".into(),
                metric: None,
                table: None,
            },
        ]
    );
    assert_eq!(
        g.routes[0].to_string(),
        "0.0.0.0/0 via 192.0.2.1 dev eth0 src 192.0.2.100 metric 10"
    );
}

#[test]
fn examples_show_the_split_brain_layers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let two = load(&dir.join("two-node.toml"));
    let witness = two.witness.expect("two-node.toml has a [witness] table");
    assert_eq!(
        witness.gateway,
        GatewaySetting::Addr(std::net::Ipv4Addr::new(192, 0, 2, 1).into())
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

/// The ```toml blocks of docs/configuration.md that hold `[[group]]` examples load after a
/// node, a peer and a check named `nginx`.
#[test]
fn group_examples_in_the_reference_are_valid() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let base = "[node]\nname = \"n1\"\ninterface = \"eth0\"\n[[peer]]\nname = \"n2\"\n\
                address = \"192.0.2.12\"\n[[check]]\nname = \"nginx\"\nkind = \"http\"\n\
                url = \"http://127.0.0.1/\"\n[[check]]\nname = \"disk\"\nkind = \"file\"\n\
                path = \"/run/disk-ok\"\n";
    let mut tested = 0;
    for block in doc.split("```toml\n").skip(1) {
        let block = block.split("```").next().unwrap();
        if !block.contains("[[group]]") {
            continue;
        }
        let text = format!("{base}{block}");
        let config = from_toml(&text, "docs example", &Overrides::default())
            .unwrap_or_else(|e| panic!("docs example does not load:\n{e}\n{block}"));
        assert!(!config.has_implicit_group());
        tested += 1;
    }
    assert!(tested > 0, "no [[group]] example in docs/configuration.md");
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
        if !block.contains("[[check]]") || block.contains("[[group]]") {
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
