//! Whether the local nftables rules drop the peer port: `nft -j list ruleset`, then every
//! rule that drops or rejects UDP to or from the port (by value, set or range), and every
//! base chain whose policy is drop with no rule accepting the port.

use serde_json::Value;

use super::Check;

/// Runs `nft -j list ruleset` (when nft is installed) and judges it.
pub(super) fn port_not_dropped(port: u16) -> Check {
    let name = format!("nftables UDP {port}");
    let out = match std::process::Command::new("nft")
        .args(["-j", "list", "ruleset"])
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::pass(name, "nft is not installed (no nftables rules to check)");
        }
        Err(e) => return Check::fail(name, format!("cannot run nft: {e}"), "run doctor as root"),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Check::fail(
            name,
            format!(
                "nft cannot list the rules: {}",
                err.lines().next().unwrap_or("")
            ),
            "run doctor as root (listing the rules needs CAP_NET_ADMIN)",
        );
    }
    let ruleset: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => return Check::fail(name, format!("unreadable nft output: {e}"), "update nft"),
    };
    match blocking_rules(&ruleset, port) {
        blocks if blocks.is_empty() => Check::pass(name, "no local nftables rule drops it"),
        blocks => Check::fail(
            name,
            format!("dropped by {}", blocks.join("; ")),
            format!("accept udp port {port} from the peers before that rule (`nft -a list ruleset` shows handles)"),
        ),
    }
}

/// Describes every rule or chain policy in `ruleset` that drops UDP `port`.
pub(super) fn blocking_rules(ruleset: &Value, port: u16) -> Vec<String> {
    let items = ruleset
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut accepted_in = Vec::new();
    for rule in items.iter().filter_map(|i| i.get("rule")) {
        let exprs = rule.get("expr").and_then(Value::as_array);
        let Some(exprs) = exprs else { continue };
        let matches_port = exprs.iter().any(|e| matches_port(e, port));
        let verdict = exprs.iter().find_map(|e| {
            ["drop", "reject", "accept"]
                .into_iter()
                .find(|v| e.get(*v).is_some())
        });
        let place = format!(
            "{} {} chain {}",
            text(rule, "family"),
            text(rule, "table"),
            text(rule, "chain")
        );
        match (matches_port, verdict) {
            (true, Some("drop" | "reject")) => found.push(format!(
                "rule {} in {place}",
                rule.get("handle")
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
            (true, Some("accept")) => accepted_in.push(place),
            _ => {}
        }
    }
    for chain in items.iter().filter_map(|i| i.get("chain")) {
        let hook = text(chain, "hook");
        if text(chain, "policy") == "drop" && matches!(hook, "input" | "prerouting" | "output") {
            let place = format!(
                "{} {} chain {}",
                text(chain, "family"),
                text(chain, "table"),
                text(chain, "name")
            );
            if !accepted_in.contains(&place) {
                found.push(format!("the drop policy of {place}"));
            }
        }
    }
    found
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A `match` on a UDP (or `th`) port field, equal to `port` or containing it.
fn matches_port(expr: &Value, port: u16) -> bool {
    let Some(m) = expr.get("match") else {
        return false;
    };
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let payload = m.get("left").and_then(|l| l.get("payload"));
    let Some(payload) = payload else { return false };
    let proto_ok = matches!(text(payload, "protocol"), "udp" | "th");
    let field_ok = matches!(text(payload, "field"), "dport" | "sport");
    if !proto_ok || !field_ok {
        return false;
    }
    let contains = m.get("right").is_some_and(|r| contains(r, port));
    match op {
        "==" | "in" => contains,
        "!=" => !contains,
        _ => false,
    }
}

fn contains(right: &Value, port: u16) -> bool {
    if let Some(n) = right.as_u64() {
        return n == u64::from(port);
    }
    if let Some(range) = right.get("range").and_then(Value::as_array) {
        let lo = range.first().and_then(Value::as_u64);
        let hi = range.get(1).and_then(Value::as_u64);
        return matches!((lo, hi), (Some(lo), Some(hi)) if (lo..=hi).contains(&u64::from(port)));
    }
    if let Some(set) = right.get("set").and_then(Value::as_array) {
        return set.iter().any(|v| contains(v, port));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(right: Value, verdict: &str) -> Value {
        serde_json::json!({"nftables": [
            {"chain": {"family": "inet", "table": "f", "name": "in", "hook": "input", "policy": "accept"}},
            {"rule": {"family": "inet", "table": "f", "chain": "in", "handle": 4, "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": right}},
                {verdict: null}
            ]}}
        ]})
    }

    #[test]
    fn finds_drops_by_value_set_and_range() {
        let one = blocking_rules(&rule(5798.into(), "drop"), 5798);
        assert_eq!(one, ["rule 4 in inet f chain in"]);
        let set = serde_json::json!({"set": [53, 5798]});
        assert_eq!(blocking_rules(&rule(set, "reject"), 5798).len(), 1);
        let range = serde_json::json!({"range": [5000, 6000]});
        assert_eq!(blocking_rules(&rule(range, "drop"), 5798).len(), 1);
        assert!(blocking_rules(&rule(53.into(), "drop"), 5798).is_empty());
        assert!(blocking_rules(&rule(5798.into(), "accept"), 5798).is_empty());
    }

    #[test]
    fn a_drop_policy_counts_unless_the_port_is_accepted() {
        let mut set = rule(53.into(), "accept");
        set["nftables"][0]["chain"]["policy"] = "drop".into();
        assert_eq!(
            blocking_rules(&set, 5798),
            ["the drop policy of inet f chain in"]
        );
        let mut open = rule(5798.into(), "accept");
        open["nftables"][0]["chain"]["policy"] = "drop".into();
        assert!(blocking_rules(&open, 5798).is_empty());
    }
}
