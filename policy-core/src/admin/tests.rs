//! Decoding and validation of admin-tier policies, through the loader so
//! that every diagnostic is checked with its field path and line.

use super::*;
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::load::{Loaded, Loader};

fn load(text: &str) -> Loaded {
    let mut loader = Loader::new();
    loader.load_str("admin.yaml", text);
    loader.finish()
}

/// `(field, line)` of every diagnostic of `severity`, in order.
fn found(loaded: &Loaded, severity: Severity) -> Vec<(String, u32)> {
    loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == severity && d.kind != DiagnosticKind::Skipped)
        .map(|d| {
            (
                d.field.to_string(),
                d.source.as_ref().map_or(0, |s| s.location.line),
            )
        })
        .collect()
}

fn only_error(loaded: &Loaded) -> &Diagnostic {
    let errors: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{:#?}", loaded.diagnostics);
    errors[0]
}

fn pair(pairs: &[(&str, &str)]) -> Selector {
    Selector::from_labels(pairs.iter().copied())
}

/// Lines 1-8; rules appended start at line 9.
const ANP: &str = "apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: a
spec:
  priority: 10
  subject:
    namespaces: {}
";

/// Lines 1-8; rules appended start at line 9.
const BANP: &str = "apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    namespaces: {}
";

/// Lines 1-9; rules appended start at line 10.
const CNP: &str = "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata:
  name: c
spec:
  tier: Admin
  priority: 10
  subject:
    namespaces: {}
";

#[test]
fn an_admin_network_policy_is_normalised() {
    let loaded = load(
        "apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: sec
spec:
  priority: 3
  subject:
    pods:
      namespaceSelector: {matchLabels: {team: a}}
      podSelector: {matchLabels: {app: db}}
  ingress:
  - name: from-web
    action: Allow
    from:
    - namespaces: {matchLabels: {team: web}}
    ports:
    - portNumber: {port: 5432}
    - portRange: {protocol: UDP, start: 1000, end: 2000}
    - namedPort: metrics
  egress:
  - action: Pass
    to:
    - networks: [10.0.0.0/8, 'fd00::/8']
    - nodes: {}
    - domainNames: ['*.example.com']
  - action: Deny
    to:
    - pods:
        namespaceSelector: {}
        podSelector: {}
",
    );
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let policies = &loaded.cluster.admin_policies;
    assert_eq!(policies.len(), 1);
    let policy = &policies[0];
    assert_eq!(policy.kind, AdminKind::AdminNetworkPolicy);
    assert_eq!(policy.name, "sec");
    assert_eq!(policy.tier, Tier::Admin);
    assert_eq!(policy.priority, Some(3));
    assert_eq!(
        policy.subject,
        Subject::Pods {
            namespaces: pair(&[("team", "a")]),
            pods: pair(&[("app", "db")]),
        }
    );
    let ingress = &policy.ingress[0];
    assert_eq!(ingress.direction, Direction::Ingress);
    assert_eq!(ingress.name.as_deref(), Some("from-web"));
    assert_eq!(ingress.action, Action::Accept, "Allow is read as Accept");
    assert_eq!(
        ingress.peers,
        [AdminPeer::Namespaces(pair(&[("team", "web")]))]
    );
    assert_eq!(
        ingress.ports.as_deref(),
        Some(
            &[
                AdminPort::Number {
                    protocol: Protocol::Tcp,
                    port: 5432
                },
                AdminPort::Range {
                    protocol: Protocol::Udp,
                    start: 1000,
                    end: 2000
                },
                AdminPort::Named("metrics".into()),
            ][..]
        )
    );
    assert_eq!(ingress.source.as_ref().unwrap().location.line, 12);
    assert_eq!(policy.egress.len(), 2);
    let pass = &policy.egress[0];
    assert_eq!(
        (pass.action, pass.index, pass.ports.as_ref()),
        (Action::Pass, 0, None)
    );
    assert_eq!(
        pass.peers,
        [
            AdminPeer::Networks(vec![
                Cidr::parse("10.0.0.0/8").unwrap().cidr,
                Cidr::parse("fd00::/8").unwrap().cidr,
            ]),
            AdminPeer::Nodes(Selector::everything()),
            AdminPeer::DomainNames(vec!["*.example.com".into()]),
        ]
    );
    assert_eq!(
        policy.egress[1].peers,
        [AdminPeer::Pods {
            namespaces: Selector::everything(),
            pods: Selector::everything()
        }]
    );
    assert_eq!(policy.source.as_ref().unwrap().location.line, 4);
}

#[test]
fn a_baseline_policy_has_no_priority_and_reads_allow_as_accept() {
    let loaded = load(&format!(
        "{BANP}  egress:\n  - action: Allow\n    to: [{{networks: [0.0.0.0/0]}}]\n  - action: Deny\n    to: [{{namespaces: {{}}}}]\n"
    ));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let policy = &loaded.cluster.admin_policies[0];
    assert_eq!(policy.kind, AdminKind::BaselineAdminNetworkPolicy);
    assert_eq!((policy.tier, policy.priority), (Tier::Baseline, None));
    assert_eq!(policy.subject, Subject::Namespaces(Selector::everything()));
    let actions: Vec<Action> = policy.egress.iter().map(|r| r.action).collect();
    assert_eq!(actions, [Action::Accept, Action::Deny]);
    assert!(policy.ingress.is_empty());
}

#[test]
fn a_cluster_network_policy_is_normalised() {
    let loaded = load(
        "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: base}
spec:
  tier: Baseline
  priority: 0
  subject:
    pods:
      podSelector: {matchLabels: {app: web}}
  ingress:
  - action: Accept
    from:
    - pods: {podSelector: {}}
    protocols:
    - tcp: {destinationPort: {number: 443}}
    - udp: {destinationPort: {range: {start: 53, end: 54}}}
    - sctp: {destinationPort: {number: 9}}
    - destinationNamedPort: http
  egress:
  - action: Pass
    to: [{domainNames: [example.com.]}]
",
    );
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let policy = &loaded.cluster.admin_policies[0];
    assert_eq!(policy.kind, AdminKind::ClusterNetworkPolicy);
    assert_eq!((policy.tier, policy.priority), (Tier::Baseline, Some(0)));
    // v1alpha2: a missing namespaceSelector means every namespace.
    assert_eq!(
        policy.subject,
        Subject::Pods {
            namespaces: Selector::everything(),
            pods: pair(&[("app", "web")]),
        }
    );
    let rule = &policy.ingress[0];
    assert_eq!(rule.action, Action::Accept);
    assert_eq!(
        rule.peers,
        [AdminPeer::Pods {
            namespaces: Selector::everything(),
            pods: Selector::everything()
        }]
    );
    assert_eq!(
        rule.ports.as_deref().unwrap(),
        [
            AdminPort::Number {
                protocol: Protocol::Tcp,
                port: 443
            },
            AdminPort::Range {
                protocol: Protocol::Udp,
                start: 53,
                end: 54
            },
            AdminPort::Number {
                protocol: Protocol::Sctp,
                port: 9
            },
            AdminPort::Named("http".into()),
        ]
    );
    assert_eq!(policy.egress[0].action, Action::Pass);
}

#[test]
fn priority_is_required_and_from_0_to_1000() {
    let without = ANP.replace("  priority: 10\n", "");
    let loaded = load(&without);
    let error = only_error(&loaded);
    assert_eq!(error.field.to_string(), "spec.priority");
    assert_eq!(
        error.source.as_ref().unwrap().location.line,
        5,
        "points at spec"
    );
    assert!(error.message.contains("`priority` is required"), "{error}");
    assert!(loaded.cluster.admin_policies.is_empty());

    for (value, valid) in [("-1", false), ("0", true), ("1000", true), ("1001", false)] {
        let loaded = load(&ANP.replace("priority: 10", &format!("priority: {value}")));
        assert_eq!(
            loaded.cluster.admin_policies.len(),
            usize::from(valid),
            "{value}"
        );
        if !valid {
            let error = only_error(&loaded);
            assert_eq!(
                found(&loaded, Severity::Error),
                [("spec.priority".into(), 6)]
            );
            assert!(
                error
                    .message
                    .contains(&format!("priority {value} is out of range")),
                "{error}"
            );
            assert_eq!(error.kind, DiagnosticKind::InvalidValue);
            assert!(
                error
                    .help
                    .as_ref()
                    .unwrap()
                    .contains("leaves this AdminNetworkPolicy out")
            );
        }
    }
    let cnp = load(&CNP.replace("priority: 10", "priority: 5000"));
    assert_eq!(found(&cnp, Severity::Error), [("spec.priority".into(), 7)]);
}

#[test]
fn a_cluster_network_policy_needs_a_tier() {
    let loaded = load(&CNP.replace("  tier: Admin\n", ""));
    assert_eq!(found(&loaded, Severity::Error), [("spec.tier".into(), 5)]);
    let loaded = load(&CNP.replace("tier: Admin", "tier: admin"));
    assert_eq!(found(&loaded, Severity::Error), [("spec.tier".into(), 6)]);
    assert!(
        only_error(&loaded)
            .message
            .contains("\"admin\" is not a tier")
    );
}

#[test]
fn rule_counts_are_limited_per_version() {
    let rule = "  - {action: Deny, from: [{namespaces: {}}]}\n";
    let anp = |count: usize| format!("{ANP}  ingress:\n{}", rule.repeat(count));
    assert!(!load(&anp(100)).has_errors());
    let loaded = load(&anp(101));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress".into(), 9)]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("101 rules; a AdminNetworkPolicy allows at most 100")
    );

    let rule = "  - {action: Deny, to: [{namespaces: {}}]}\n";
    let cnp = |count: usize| format!("{CNP}  egress:\n{}", rule.repeat(count));
    assert!(!load(&cnp(25)).has_errors());
    let loaded = load(&cnp(26));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress".into(), 10)]
    );
    assert!(only_error(&loaded).message.contains("at most 25"));
}

#[test]
fn peers_are_required_and_limited() {
    let loaded = load(&format!(
        "{ANP}  ingress:\n  - action: Deny\n    from: []\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].from".into(), 11)]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("must have 1 to 100 peers; it has 0")
    );

    let loaded = load(&format!("{ANP}  egress:\n  - action: Deny\n"));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0].to".into(), 10)]
    );
    assert!(only_error(&loaded).message.contains("`to` is required"));

    let peers = "    - {namespaces: {}}\n";
    let cnp = |count: usize| {
        format!(
            "{CNP}  ingress:\n  - action: Deny\n    from:\n{}",
            peers.repeat(count)
        )
    };
    assert!(!load(&cnp(25)).has_errors());
    let loaded = load(&cnp(26));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].from".into(), 12)]
    );
}

#[test]
fn port_lists_need_1_to_100_or_25_entries() {
    let loaded = load(&format!(
        "{ANP}  ingress:\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n    ports: []\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].ports".into(), 12)]
    );

    let entry = "    - tcp: {destinationPort: {number: 80}}\n";
    let cnp = |count: usize| {
        format!(
            "{CNP}  ingress:\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n    protocols:\n{}",
            entry.repeat(count)
        )
    };
    assert!(!load(&cnp(25)).has_errors());
    let loaded = load(&cnp(26));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].protocols".into(), 13)]
    );
    assert!(only_error(&loaded).message.contains("1 to 25 entries"));
}

#[test]
fn rule_names_have_at_most_100_characters() {
    let rule = |name: &str| {
        format!(
            "{ANP}  ingress:\n  - action: Deny\n    name: {name}\n    from: [{{namespaces: {{}}}}]\n"
        )
    };
    assert!(
        !load(&rule(&"é".repeat(100))).has_errors(),
        "characters, not bytes"
    );
    let loaded = load(&rule(&"x".repeat(101)));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].name".into(), 11)]
    );
}

#[test]
fn a_subject_sets_exactly_one_field() {
    let both = ANP.replace(
        "    namespaces: {}\n",
        "    namespaces: {}\n    pods: {namespaceSelector: {}, podSelector: {}}\n",
    );
    let loaded = load(&both);
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.subject".into(), 7)]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("it sets `namespaces` and `pods`")
    );
    let loaded = load(&ANP.replace("    namespaces: {}\n", "    {}\n"));
    assert!(only_error(&loaded).message.contains("it sets none"));
    let loaded = load(&ANP.replace("  subject:\n    namespaces: {}\n", ""));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.subject".into(), 5)]
    );
}

#[test]
fn v1alpha1_pods_need_both_selectors_and_v1alpha2_only_the_pod_selector() {
    let subject = "    pods: {podSelector: {}}\n";
    let loaded = load(&ANP.replace("    namespaces: {}\n", subject));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.subject.pods.namespaceSelector".into(), 8)]
    );
    let loaded = load(&CNP.replace("    namespaces: {}\n", subject));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let loaded = load(&CNP.replace(
        "    namespaces: {}\n",
        "    pods: {namespaceSelector: {}}\n",
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.subject.pods.podSelector".into(), 9)]
    );
    // The same holds for peers.
    let loaded = load(&format!(
        "{BANP}  ingress:\n  - action: Deny\n    from:\n    - pods:\n        podSelector: {{}}\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].from[0].pods.namespaceSelector".into(), 11)]
    );
}

#[test]
fn actions_depend_on_the_kind() {
    let with = |head: &str, action: &str| {
        load(&format!(
            "{head}  ingress:\n  - action: {action}\n    from: [{{namespaces: {{}}}}]\n"
        ))
    };
    for (head, action) in [
        (ANP, "Allow"),
        (ANP, "Deny"),
        (ANP, "Pass"),
        (BANP, "Allow"),
        (BANP, "Deny"),
        (CNP, "Accept"),
        (CNP, "Deny"),
        (CNP, "Pass"),
    ] {
        assert!(!with(head, action).has_errors(), "{action}");
    }
    for (head, action, hint, line) in [
        (BANP, "Pass", "nothing to pass to", 9),
        (ANP, "Accept", "v1alpha1 says Allow", 10),
        (CNP, "Allow", "renamed Allow to Accept", 11),
        (ANP, "allow", "use Allow, Deny, Pass", 10),
    ] {
        let loaded = with(head, action);
        assert_eq!(
            found(&loaded, Severity::Error),
            [("spec.ingress[0].action".into(), line)],
            "{action}"
        );
        assert!(
            only_error(&loaded).message.contains(hint),
            "{}",
            only_error(&loaded)
        );
    }
    let loaded = load(&format!(
        "{ANP}  ingress:\n  - from: [{{namespaces: {{}}}}]\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].action".into(), 10)]
    );
}

#[test]
fn the_baseline_is_a_singleton_named_default() {
    let loaded = load(&BANP.replace("name: default", "name: base"));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("metadata.name".into(), 4)]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("must be named \"default\"")
    );

    let loaded = load(&format!("{BANP}---\n{BANP}"));
    let error = only_error(&loaded);
    assert_eq!(error.kind, DiagnosticKind::Duplicate);
    assert_eq!(error.source.as_ref().unwrap().location.line, 12);
    assert!(
        error
            .help
            .as_ref()
            .unwrap()
            .contains("at most one BaselineAdminNetworkPolicy")
    );
    assert_eq!(loaded.cluster.admin_policies.len(), 1);
}

#[test]
fn two_policies_of_one_kind_and_name_are_duplicates_but_kinds_are_apart() {
    let loaded = load(&format!("{ANP}---\n{ANP}"));
    assert_eq!(only_error(&loaded).kind, DiagnosticKind::Duplicate);
    assert_eq!(loaded.cluster.admin_policies.len(), 1);
    let cnp_named_a = CNP.replace("name: c", "name: a");
    let loaded = load(&format!("{ANP}---\n{cnp_named_a}"));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.cluster.admin_policies.len(), 2);
}

#[test]
fn peers_set_exactly_one_field_and_ingress_peers_select_pods_only() {
    let ingress = |peer: &str| {
        load(&format!(
            "{ANP}  ingress:\n  - action: Deny\n    from:\n    - {peer}\n"
        ))
    };
    let loaded = ingress("{namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}");
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].from[0]".into(), 12)]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("exactly one of `namespaces`, `pods`")
    );
    let loaded = ingress("{}");
    assert!(only_error(&loaded).message.contains("it sets none"));
    let loaded = ingress("{networks: [10.0.0.0/8]}");
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].from[0].networks".into(), 12)]
    );
    assert!(only_error(&loaded).message.contains("is for egress rules"));
    let loaded = ingress("{nodes: {}}");
    assert!(
        only_error(&loaded)
            .message
            .contains("`nodes` is for egress rules")
    );
}

#[test]
fn a_peer_with_only_unknown_fields_fails_closed() {
    let loaded = load(&format!(
        "{ANP}  egress:\n  - action: Deny\n    to:\n    - sameLabels: [team]\n"
    ));
    // The unknown key is an error, as kubectl rejects it; the policy is
    // kept with the peer marked, as for an unknown NetworkPolicy field.
    assert_eq!(only_error(&loaded).kind, DiagnosticKind::UnknownField);
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0].to[0].sameLabels".into(), 12)]
    );
    assert_eq!(
        found(&loaded, Severity::Warning),
        [("spec.egress[0].to[0]".into(), 12)]
    );
    let policy = &loaded.cluster.admin_policies[0];
    assert_eq!(policy.egress[0].peers, [AdminPeer::Unknown]);
}

#[test]
fn the_baseline_has_no_domain_names() {
    let loaded = load(&format!(
        "{BANP}  egress:\n  - action: Deny\n    to: [{{domainNames: [example.com]}}]\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0].to[0].domainNames".into(), 10)]
    );
}

#[test]
fn port_entries_set_exactly_one_field() {
    let loaded = load(&format!(
        "{ANP}  ingress:\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n    ports:\n    - portNumber: {{port: 80}}\n      namedPort: http\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].ports[0]".into(), 13)]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("it sets `portNumber` and `namedPort`")
    );
    let loaded = load(&format!(
        "{CNP}  ingress:\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n    protocols:\n    - tcp: {{destinationPort: {{number: 80}}}}\n      udp: {{destinationPort: {{number: 80}}}}\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].protocols[0]".into(), 14)]
    );
}

fn anp_port(entry: &str) -> Loaded {
    load(&format!(
        "{ANP}  ingress:\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n    ports:\n    - {entry}\n"
    ))
}

fn cnp_protocol(entry: &str) -> Loaded {
    load(&format!(
        "{CNP}  ingress:\n  - action: Deny\n    from: [{{namespaces: {{}}}}]\n    protocols:\n    - {entry}\n"
    ))
}

#[test]
fn ports_are_from_1_to_65535() {
    for (entry, field) in [
        (
            "portNumber: {port: 0}",
            "spec.ingress[0].ports[0].portNumber.port",
        ),
        (
            "portNumber: {port: 65536}",
            "spec.ingress[0].ports[0].portNumber.port",
        ),
        (
            "portNumber: {protocol: TCP}",
            "spec.ingress[0].ports[0].portNumber.port",
        ),
        (
            "portRange: {start: 0, end: 10}",
            "spec.ingress[0].ports[0].portRange.start",
        ),
    ] {
        let loaded = anp_port(entry);
        assert_eq!(
            found(&loaded, Severity::Error),
            [(field.into(), 13)],
            "{entry}"
        );
    }
    let loaded = cnp_protocol("udp: {destinationPort: {number: 70000}}");
    assert_eq!(
        found(&loaded, Severity::Error),
        [(
            "spec.ingress[0].protocols[0].udp.destinationPort.number".into(),
            14
        )]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("number 70000 is not a port number")
    );
}

#[test]
fn v1alpha2_ranges_need_start_below_end_and_v1alpha1_empty_ranges_warn() {
    let loaded = cnp_protocol("tcp: {destinationPort: {range: {start: 80, end: 80}}}");
    assert_eq!(
        found(&loaded, Severity::Error),
        [(
            "spec.ingress[0].protocols[0].tcp.destinationPort.range".into(),
            14
        )]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("must be less than end")
    );

    let loaded = anp_port("portRange: {start: 80, end: 80}");
    assert!(
        loaded
            .diagnostics
            .iter()
            .all(|d| d.kind == DiagnosticKind::Skipped)
    );

    let loaded = anp_port("portRange: {start: 90, end: 80}");
    assert!(!loaded.has_errors());
    assert_eq!(
        found(&loaded, Severity::Warning),
        [("spec.ingress[0].ports[0].portRange".into(), 13)]
    );
    let rule = &loaded.cluster.admin_policies[0].ingress[0];
    assert_eq!(
        rule.ports.as_deref().unwrap(),
        [AdminPort::Range {
            protocol: Protocol::Tcp,
            start: 90,
            end: 80
        }]
    );
}

#[test]
fn an_empty_transport_is_rejected() {
    let loaded = cnp_protocol("tcp: {}");
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.ingress[0].protocols[0].tcp".into(), 14)]
    );
    assert!(
        only_error(&loaded)
            .message
            .contains("needs a `destinationPort`")
    );
    let loaded = cnp_protocol("tcp: {destinationPort: {}}");
    assert!(
        only_error(&loaded)
            .message
            .contains("exactly one of `number`, `range`")
    );
}

#[test]
fn a_v1alpha1_protocol_is_a_free_string_that_fails_closed() {
    let loaded = anp_port("portNumber: {protocol: ICMP, port: 1}");
    assert!(!loaded.has_errors());
    assert_eq!(
        found(&loaded, Severity::Warning),
        [("spec.ingress[0].ports[0].portNumber.protocol".into(), 13)]
    );
    assert_eq!(
        loaded.cluster.admin_policies[0].ingress[0]
            .ports
            .as_deref()
            .unwrap(),
        [AdminPort::UnknownProtocol("ICMP".into())]
    );
}

#[test]
fn named_ports_that_no_container_port_can_have_warn() {
    let loaded = cnp_protocol("destinationNamedPort: HTTP");
    assert!(!loaded.has_errors());
    assert_eq!(
        found(&loaded, Severity::Warning),
        [(
            "spec.ingress[0].protocols[0].destinationNamedPort".into(),
            14
        )]
    );
}

#[test]
fn networks_are_valid_distinct_cidrs() {
    let egress = |networks: &str| {
        load(&format!(
            "{ANP}  egress:\n  - action: Deny\n    to:\n    - networks: {networks}\n"
        ))
    };
    let loaded = egress("[10.0.0.0/33]");
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0].to[0].networks[0]".into(), 12)]
    );
    let loaded = egress("[10.0.0.0/8, 10.0.0.0/8]");
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0].to[0].networks[1]".into(), 12)]
    );
    assert!(only_error(&loaded).message.contains("duplicate"));
    let loaded = egress("[]");
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0].to[0].networks".into(), 12)]
    );
    let loaded = egress("[10.0.0.1/8]");
    assert!(!loaded.has_errors());
    assert_eq!(
        found(&loaded, Severity::Warning),
        [("spec.egress[0].to[0].networks[0]".into(), 12)]
    );
    let too_many: Vec<String> = (0..26).map(|i| format!("10.{i}.0.0/16")).collect();
    let loaded = egress(&format!("[{}]", too_many.join(", ")));
    assert!(only_error(&loaded).message.contains("1 to 25 CIDRs"));
}

#[test]
fn domain_names_follow_the_api_pattern() {
    for good in [
        "example.com",
        "*.example.com",
        "example.com.",
        "a_b.c-d.e1",
        "Ex.COM",
    ] {
        assert!(is_domain_name(good), "{good}");
    }
    for bad in [
        "com",
        "*.com",
        "ex..com",
        "-a.com",
        "a-.com",
        "*example.com",
        "a.*.com",
        "",
        ".",
    ] {
        assert!(!is_domain_name(bad), "{bad}");
    }
    // `[a-zA-z0-9]` upstream: `A-z` includes `_` and `^` as a first character.
    assert!(is_domain_name("_srv.example.com"));
    assert!(is_domain_name("^a.example.com"));

    let loaded = load(&format!(
        "{CNP}  egress:\n  - action: Accept\n    to:\n    - domainNames: [example.com, 'bad name.com']\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0].to[0].domainNames[1]".into(), 13)]
    );
}

#[test]
fn named_ports_with_address_peers_follow_the_channel_rules() {
    let cnp = |peer: &str| {
        load(&format!(
            "{CNP}  egress:\n  - action: Accept\n    to:\n    - {peer}\n    protocols:\n    - destinationNamedPort: http\n"
        ))
    };
    // The standard v1alpha2 CRD has both fields and no rule: a warning.
    let loaded = cnp("networks: [10.0.0.0/8]");
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    assert_eq!(
        found(&loaded, Severity::Warning),
        [("spec.egress[0]".into(), 11)]
    );
    assert_eq!(loaded.cluster.admin_policies.len(), 1);
    // `nodes` exists only in the experimental CRD, which has the rule.
    let loaded = cnp("nodes: {}");
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0]".into(), 11)]
    );
    // v1alpha1 `namedPort` exists only in the experimental CRD.
    let loaded = load(&format!(
        "{ANP}  egress:\n  - action: Allow\n    to:\n    - networks: [10.0.0.0/8]\n    ports:\n    - namedPort: http\n"
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.egress[0]".into(), 10)]
    );
    // Pods have named ports: fine.
    assert!(!cnp("namespaces: {}").has_errors());
}

#[test]
fn invalid_selectors_are_errors_at_their_field() {
    let loaded = load(&ANP.replace(
        "    namespaces: {}\n",
        "    namespaces:\n      matchExpressions: [{key: a, operator: Gt, values: ['1']}]\n",
    ));
    assert_eq!(
        found(&loaded, Severity::Error),
        [(
            "spec.subject.namespaces.matchExpressions[0].operator".into(),
            9
        )]
    );
}

#[test]
fn unknown_fields_are_reported_and_missing_required_ones_reject() {
    let loaded = load(&ANP.replace("priority: 10", "priorty: 10"));
    let found_errors = found(&loaded, Severity::Error);
    assert_eq!(
        found_errors,
        [("spec.priorty".into(), 6), ("spec.priority".into(), 5)]
    );
    assert_eq!(
        loaded.diagnostics[0]
            .help
            .as_deref()
            .map(|h| h.starts_with("did you mean `priority`?")),
        Some(true)
    );
    assert!(loaded.cluster.admin_policies.is_empty());
    // A BANP has no priority at all.
    let loaded = load(&BANP.replace("spec:\n", "spec:\n  priority: 1\n"));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("spec.priority".into(), 6)]
    );
    assert_eq!(only_error(&loaded).kind, DiagnosticKind::UnknownField);
}

#[test]
fn wrongly_typed_values_reject_the_policy() {
    let loaded = load(&ANP.replace("priority: 10", "priority: high"));
    let error = only_error(&loaded);
    assert_eq!(error.kind, DiagnosticKind::InvalidType);
    assert_eq!(error.field.to_string(), "spec.priority");
    assert!(loaded.cluster.admin_policies.is_empty());
}

#[test]
fn one_warning_says_the_model_ignores_admin_policies() {
    let loaded = load(&format!("{ANP}---\n{BANP}---\n{CNP}"));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let notes: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.kind == DiagnosticKind::Skipped)
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].severity, Severity::Warning);
    assert!(notes[0].object.is_none() && notes[0].source.is_none());
    assert!(notes[0].message.contains(
        "3 admin-tier policies (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy): every command applies the tiers, but the NetworkPolicy lint rules (NP004-NP019) still judge NetworkPolicies alone"
    ));
    // Nothing loaded, nothing said.
    assert!(
        load("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
            .diagnostics
            .is_empty()
    );
}

#[test]
fn admin_policies_are_sorted_by_tier_then_priority() {
    let text = [
        BANP.to_string(),
        CNP.replace("name: c", "name: z")
            .replace("priority: 10", "priority: 1"),
        ANP.replace("name: a", "name: late")
            .replace("priority: 10", "priority: 20"),
        CNP.replace("tier: Admin", "tier: Baseline"),
        ANP.replace("name: a", "name: early")
            .replace("priority: 10", "priority: 1"),
    ]
    .join("---\n");
    let loaded = load(&text);
    let order: Vec<String> = loaded
        .cluster
        .admin_policies
        .iter()
        .map(AdminPolicy::reference)
        .collect();
    assert_eq!(
        order,
        [
            "AdminNetworkPolicy early",
            "ClusterNetworkPolicy z",
            "AdminNetworkPolicy late",
            "BaselineAdminNetworkPolicy default",
            "ClusterNetworkPolicy c",
        ]
    );
}

#[test]
fn equal_priorities_of_one_kind_and_tier_are_a_warning() {
    let text = [
        ANP.to_string(),
        ANP.replace("name: a", "name: b"),
        // Another kind, or another tier, with the same number: no warning.
        CNP.to_string(),
        CNP.replace("name: c", "name: d")
            .replace("tier: Admin", "tier: Baseline"),
    ]
    .join("---\n");
    let loaded = load(&text);
    assert!(!loaded.has_errors());
    assert_eq!(loaded.cluster.admin_policies.len(), 4);
    let warnings: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.kind == DiagnosticKind::Questionable)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].severity, Severity::Warning);
    assert_eq!(warnings[0].field.to_string(), "spec.priority");
    assert_eq!(warnings[0].object.as_ref().unwrap().name, "b");
    assert_eq!(warnings[0].source.as_ref().unwrap().location.line, 13);
    assert!(warnings[0].message.contains("same priority (10) as a"));
}

#[test]
fn other_versions_of_these_kinds_are_skipped() {
    let loaded = load(&ANP.replace("v1alpha1", "v1alpha2"));
    assert!(loaded.cluster.admin_policies.is_empty());
    assert!(loaded.diagnostics.is_empty());
    assert_eq!(
        loaded
            .skipped
            .get("AdminNetworkPolicy (policy.networking.k8s.io/v1alpha2)"),
        Some(&1)
    );
}

#[test]
fn a_policy_name_must_be_a_dns_subdomain() {
    let loaded = load(&ANP.replace("name: a", "name: Bad_Name"));
    assert_eq!(
        found(&loaded, Severity::Error),
        [("metadata.name".into(), 4)]
    );
    let loaded = load(&ANP.replace("metadata:\n  name: a\n", "metadata: {}\n"));
    assert!(only_error(&loaded).message.contains("needs a name"));
}
