//! Proves the network-namespace testbed itself: full connectivity without
//! rules, exactly the probes a hand-written ruleset drops failing, and a full
//! pod matrix in well under the time budget.
//!
//! Needs root, `ip` and `nft`; skips (or, with `NETPOL_REQUIRE_E2E=1`, fails)
//! otherwise.

mod testbed;

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use testbed::{ExternalSpec, PodSpec, Probe, Proto, Testbed, TestbedSpec, e2e_available};

fn pod(name: &str, node: &str, v4: [u8; 4], v6: Option<Ipv6Addr>) -> PodSpec {
    PodSpec {
        name: name.into(),
        node: node.into(),
        ipv4: Ipv4Addr::from(v4),
        ipv6: v6,
    }
}

fn v6(last: u16, sub: u16) -> Option<Ipv6Addr> {
    Some(Ipv6Addr::new(0xfd10, 0, 0, sub, 0, 0, 0, last))
}

/// Two nodes: x/a, x/b and the external on node-1, y/a on node-2.
fn small_spec() -> TestbedSpec {
    TestbedSpec {
        nodes: vec!["node-1".into(), "node-2".into()],
        pods: vec![
            pod("x/a", "node-1", [10, 0, 1, 1], v6(1, 1)),
            pod("x/b", "node-1", [10, 0, 1, 2], v6(2, 1)),
            pod("y/a", "node-2", [10, 0, 2, 1], v6(1, 2)),
        ],
        externals: vec![ExternalSpec {
            name: "ext".into(),
            ipv4: Ipv4Addr::new(203, 0, 113, 10),
            ipv6: Some("2001:db8::10".parse().unwrap()),
            node: "node-1".into(),
        }],
        tcp_ports: vec![80, 81],
        udp_ports: vec![80, 81],
    }
}

/// Every ordered pair of distinct endpoints × protocols × ports × families.
fn all_probes(names: &[&str], ports: &[u16], families: &[bool]) -> Vec<Probe> {
    let mut probes = Vec::new();
    for &from in names {
        for &to in names {
            if from == to {
                continue;
            }
            for &port in ports {
                for &ipv6 in families {
                    for proto in [Proto::Tcp, Proto::Udp] {
                        probes.push(Probe {
                            from: from.into(),
                            to: to.into(),
                            proto,
                            port,
                            ipv6,
                        });
                    }
                }
            }
        }
    }
    probes
}

/// Panics with every probe whose result differs from `expected`.
#[track_caller]
fn assert_probes(tb: &Testbed, probes: &[Probe], expected: impl Fn(&Probe) -> bool, what: &str) {
    let got = tb.probe_all(probes);
    let wrong: Vec<String> = probes
        .iter()
        .zip(&got)
        .filter(|&(p, &ok)| ok != expected(p))
        .map(|(p, &ok)| format!("  {p}: {}", if ok { "connected" } else { "failed" }))
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: {} of {} probes differ from the expectation:\n{}",
        wrong.len(),
        probes.len(),
        wrong.join("\n")
    );
}

#[test]
fn everything_connects_without_rules() {
    if !e2e_available() {
        return;
    }
    let tb = Testbed::new(&small_spec()).unwrap();
    let names = tb.endpoints();
    assert_eq!(names, ["x/a", "x/b", "y/a", "ext"]);
    let probes = all_probes(&names, &[80, 81], &[false, true]);
    assert_eq!(probes.len(), 12 * 2 * 2 * 2);
    let start = Instant::now();
    assert_probes(&tb, &probes, |_| true, "no rules");
    eprintln!(
        "{} probes, all connected, in {:?}",
        probes.len(),
        start.elapsed()
    );

    // Self-traffic stays inside the pod and works too.
    assert!(tb.probe(&Probe::tcp("x/a", "x/a", 80)));
    assert!(tb.probe(&Probe::udp("y/a", "y/a", 81).v6()));

    // Same-node and cross-node paths exist as documented.
    assert_eq!(tb.node_of("x/a"), Some("node-1"));
    assert_eq!(tb.node_of("y/a"), Some("node-2"));
    assert_eq!(tb.host_iface("x/a"), Some("cali0"));
    assert_eq!(tb.host_iface("ext"), Some("ext3"));
    assert_eq!(tb.node_ipv4("node-2"), Some(Ipv4Addr::new(192, 168, 77, 2)));
    // Nodes start with no ruleset at all.
    assert_eq!(tb.ruleset("node-1").unwrap().trim(), "");
}

const DROP_TCP_80_TO_Y_A: &str = "
table inet netpol {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        ip daddr 10.0.2.1 tcp dport 80 drop
        ip6 daddr fd10:0:0:2::1 tcp dport 80 drop
    }
}
";

const DENY_ALL_BUT_80_81_TO_Y_A: &str = "
table inet netpol {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        ip daddr 10.0.2.1 tcp dport 80 accept
        ip6 daddr fd10:0:0:2::1 tcp dport 80 accept
        ip daddr 10.0.2.1 udp dport 81 accept
        ip6 daddr fd10:0:0:2::1 udp dport 81 accept
    }
}
";

#[test]
fn a_hand_written_ruleset_drops_exactly_its_probes() {
    if !e2e_available() {
        return;
    }
    let tb = Testbed::new(&small_spec()).unwrap();
    let probes = all_probes(&tb.endpoints(), &[80, 81], &[false, true]);
    let dropped = |p: &Probe| p.to == "y/a" && p.proto == Proto::Tcp && p.port == 80;
    assert_eq!(probes.iter().filter(|p| dropped(p)).count(), 3 * 2);

    // clear() on a node without the table is no error; a bad ruleset is one,
    // and carries nft's message.
    tb.clear("node-2").unwrap();
    let err = tb
        .load("node-2", "table inet netpol { chain c { bogus } }")
        .unwrap_err();
    assert!(
        err.contains("Error"),
        "nft's stderr should be in the error: {err}"
    );
    assert!(tb.nft("node-9", &["list", "ruleset"], "").is_err());

    tb.load("node-2", DROP_TCP_80_TO_Y_A).unwrap();
    assert!(tb.ruleset("node-2").unwrap().contains("tcp dport 80 drop"));
    assert_probes(
        &tb,
        &probes,
        |p| !dropped(p),
        "drop tcp/80 to y/a on node-2",
    );

    tb.clear("node-2").unwrap();
    assert_eq!(tb.ruleset("node-2").unwrap().trim(), "");
    assert_probes(&tb, &probes, |_| true, "after clear");

    // Default deny on node-2: only new tcp/80 and udp/81 towards y/a are
    // accepted, so every reply must pass as `ct state established` and
    // nothing y/a starts itself gets out.
    tb.load("node-2", DENY_ALL_BUT_80_81_TO_Y_A).unwrap();
    let allowed = |p: &Probe| {
        (p.from != "y/a" && p.to != "y/a")
            || (p.to == "y/a"
                && ((p.proto == Proto::Tcp && p.port == 80)
                    || (p.proto == Proto::Udp && p.port == 81)))
    };
    assert_probes(&tb, &probes, allowed, "default deny on node-2");
    tb.clear("node-2").unwrap();

    // UDP drops are seen as well, on the source node, and an ICMP reject
    // fails a probe as surely as a silent drop.
    tb.load(
        "node-1",
        "table inet netpol {
            chain forward {
                type filter hook forward priority filter; policy accept;
                ct state established,related accept
                iifname \"cali0\" udp dport 81 drop
                ip saddr 203.0.113.10 tcp dport 81 reject
                ip6 saddr 2001:db8::10 tcp dport 81 reject with tcp reset
            }
        }",
    )
    .unwrap();
    let blocked = |p: &Probe| {
        (p.from == "x/a" && p.proto == Proto::Udp && p.port == 81)
            || (p.from == "ext" && p.proto == Proto::Tcp && p.port == 81)
    };
    assert_probes(
        &tb,
        &probes,
        |p| !blocked(p),
        "udp/81 from x/a, reject tcp/81 from ext",
    );
    tb.clear("node-1").unwrap();
}

/// 3 namespaces × 3 pods over 2 nodes.
fn matrix_spec() -> TestbedSpec {
    let mut pods = Vec::new();
    for (n, ns) in ["x", "y", "z"].into_iter().enumerate() {
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let k = u8::try_from(n * 3 + i).unwrap();
            let node = if k % 2 == 0 { "node-1" } else { "node-2" };
            let v4 = [10, 1, 1 + k % 2, 10 + k];
            pods.push(pod(
                &format!("{ns}/{name}"),
                node,
                v4,
                v6(u16::from(k) + 1, 3),
            ));
        }
    }
    TestbedSpec {
        nodes: vec!["node-1".into(), "node-2".into()],
        pods,
        externals: vec![],
        tcp_ports: vec![80, 81],
        udp_ports: vec![80, 81],
    }
}

const DROP_PORT_81: &str = "
table inet netpol {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        tcp dport 81 drop
        udp dport 81 drop
    }
}
";

#[test]
fn a_full_pod_matrix_is_probed_and_the_testbed_is_reusable() {
    if !e2e_available() {
        return;
    }
    let start = Instant::now();
    let tb = Testbed::new(&matrix_spec()).unwrap();
    eprintln!("9 pods on 2 nodes set up in {:?}", start.elapsed());
    let names = tb.endpoints();
    let v4 = all_probes(&names, &[80, 81], &[false]);
    let v6 = all_probes(&names, &[80, 81], &[true]);
    assert_eq!(v4.len(), 9 * 8 * 2 * 2);
    let expect = |p: &Probe| p.port != 81;

    for node in tb.nodes() {
        tb.load(node, DROP_PORT_81).unwrap();
    }
    let start = Instant::now();
    assert_probes(&tb, &v4, expect, "ipv4 matrix, port 81 dropped");
    let took = start.elapsed();
    // Timing is reported, not asserted: speed belongs in benchmarks.
    eprintln!("{} ipv4 probes (half dropped) in {took:?}", v4.len());

    let start = Instant::now();
    assert_probes(&tb, &v6, expect, "ipv6 matrix, port 81 dropped");
    eprintln!(
        "{} ipv6 probes (half dropped) in {:?}",
        v6.len(),
        start.elapsed()
    );

    // Reuse across cases: clearing opens everything, and after reloading
    // the same flows are dropped again (no earlier conntrack entry helps).
    for node in tb.nodes() {
        tb.clear(node).unwrap();
    }
    let start = Instant::now();
    assert_probes(&tb, &v4, |_| true, "ipv4 matrix, no rules");
    eprintln!(
        "{} ipv4 probes (none dropped) in {:?}",
        v4.len(),
        start.elapsed()
    );
    for node in tb.nodes() {
        tb.load(node, DROP_PORT_81).unwrap();
    }
    assert_probes(&tb, &v4, expect, "ipv4 matrix, port 81 dropped again");

    let start = Instant::now();
    drop(tb);
    eprintln!("torn down in {:?}", start.elapsed());
}

#[test]
fn leftovers_of_a_killed_run_are_removed() {
    if !e2e_available() {
        return;
    }
    // A prefix whose pid cannot exist (above the kernel's pid_max limit),
    // with an unlocked lock file, as a killed process leaves them.
    let prefix = format!("nptb-9999999-{}", std::process::id());
    let ns = format!("{prefix}-sw");
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir_all("/run/netpol-testbed").unwrap();
    let lock = format!("/run/netpol-testbed/{prefix}.lock");
    std::fs::write(&lock, "").unwrap();

    let tb = Testbed::new(&TestbedSpec {
        nodes: vec!["n".into()],
        pods: vec![pod("p", "n", [10, 9, 9, 9], None)],
        tcp_ports: vec![80],
        ..TestbedSpec::default()
    })
    .unwrap();
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let names: HashSet<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        !names.contains(ns.as_str()),
        "{ns} should have been removed"
    );
    assert!(
        !std::path::Path::new(&lock).exists(),
        "{lock} should have been removed"
    );
    // The new testbed's own namespaces exist while it lives …
    let own = tb.netns("p").unwrap().to_owned();
    assert!(names.contains(own.as_str()), "{own} missing from {names:?}");
    drop(tb);
    // … and not after.
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&own));
}
