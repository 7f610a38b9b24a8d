//! The admin tiers' answer for one side of one connection.
//!
//! This is the exact, per-connection reading of the tiers (docs/SEMANTICS.md,
//! "Admin tiers"): the policies of a tier that select the side's pod, by
//! ascending priority, their rules of that direction in written order; the
//! first rule whose peers and ports match decides. It reads the cluster
//! directly (and the model's node addresses), so it costs O(admin rules)
//! per question and serves [`crate::Model::query`].

use std::net::IpAddr;

use super::{Action, AdminPeer, AdminPolicy, AdminPort, AdminRule, Subject, Tier};
use crate::cluster::{Cluster, Endpoint, EndpointId};
use crate::model::Model;
use crate::policy::Direction;
use crate::ports::Protocol;
use crate::selector::Labels;

/// A rule of an admin-tier policy, as a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdminRuleRef {
    /// The policy (index into [`Cluster::admin_policies`]).
    pub policy: usize,
    /// Which list the rule is in.
    pub direction: Direction,
    /// Its index in that list.
    pub index: usize,
}

impl AdminRuleRef {
    /// The rule, as loaded.
    pub fn rule<'c>(&self, cluster: &'c Cluster) -> Option<&'c AdminRule> {
        let policy = cluster.admin_policies.get(self.policy)?;
        policy
            .rules(self.direction)
            .iter()
            .find(|r| r.index == self.index)
    }

    /// The rule in words, as `explain` and `query` name it:
    /// ``AdminNetworkPolicy `block-ravenclaw` (priority 3) ingress rule 0 `deny-from-ravenclaw` ``.
    pub fn label(&self, cluster: &Cluster) -> String {
        let Some(policy) = cluster.admin_policies.get(self.policy) else {
            return format!("admin policy #{}", self.policy);
        };
        let mut text = format!("{} `{}`", policy.kind, policy.name);
        if policy.kind == super::AdminKind::ClusterNetworkPolicy {
            text.push_str(&format!(" (tier {}", policy.tier.as_str()));
            if let Some(priority) = policy.priority {
                text.push_str(&format!(", priority {priority}"));
            }
            text.push(')');
        } else if let Some(priority) = policy.priority {
            text.push_str(&format!(" (priority {priority})"));
        }
        text.push_str(&format!(
            " {} rule {}",
            self.direction.as_str().to_lowercase(),
            self.index
        ));
        let rule = policy
            .rules(self.direction)
            .iter()
            .find(|r| r.index == self.index);
        if let Some(name) = rule.and_then(|r| r.name.as_deref()) {
            text.push_str(&format!(" `{name}`"));
        }
        text
    }
}

/// The first matching rule of a tier, for one side of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierMatch {
    /// What the rule does.
    pub action: Action,
    /// The rule.
    pub rule: AdminRuleRef,
    /// Rules of other policies with the same priority that match the same
    /// connection with a different action. The API lets an implementation
    /// apply either ("no way for the user to reliably determine which
    /// one"), so the answer is not certain when this is not empty.
    pub ambiguous_with: Vec<AdminRuleRef>,
}

/// The other end of a connection, as the admin tiers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminPeerEnd {
    /// An endpoint of the cluster.
    Endpoint(EndpointId),
    /// An address: outside the cluster, or a node's.
    Address(IpAddr),
}

/// What the tier's evaluation needs to know about one connection side.
pub struct Side<'a> {
    /// The model: its cluster, and its node addresses.
    pub model: &'a Model,
    /// The direction: egress at the source, ingress at the destination.
    pub direction: Direction,
    /// The pod whose side this is (the source for egress).
    pub subject: EndpointId,
    /// The other end.
    pub peer: AdminPeerEnd,
    /// The destination's protocol and port.
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
}

impl Side<'_> {
    /// The destination endpoint, whose container ports named ports resolve
    /// against: the subject for ingress, the peer for egress.
    fn destination(&self) -> Option<&Endpoint> {
        match self.direction {
            Direction::Ingress => Some(&self.model.cluster().endpoints[self.subject]),
            Direction::Egress => match self.peer {
                AdminPeerEnd::Endpoint(id) => Some(&self.model.cluster().endpoints[id]),
                AdminPeerEnd::Address(_) => None,
            },
        }
    }

    fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.model.cluster().namespace(namespace).map(|n| &n.labels)
    }

    /// True if `subject` selects the side's pod. Host-networked pods are
    /// never subjects (API: "host-networked pods are not included").
    fn selected_by(&self, subject: &Subject) -> bool {
        let endpoint = &self.model.cluster().endpoints[self.subject];
        !endpoint.host_network && self.pod_matches(subject_selectors(subject), endpoint)
    }

    fn pod_matches(
        &self,
        (namespaces, pods): (
            &crate::selector::Selector,
            Option<&crate::selector::Selector>,
        ),
        endpoint: &Endpoint,
    ) -> bool {
        let namespace_ok = self
            .namespace_labels(&endpoint.namespace)
            .is_some_and(|labels| namespaces.matches(labels));
        namespace_ok && pods.is_none_or(|pods| pods.matches(&endpoint.labels))
    }

    fn peer_matches(&self, peer: &AdminPeer, action: Action) -> bool {
        let endpoint = match self.peer {
            AdminPeerEnd::Endpoint(id) => Some(&self.model.cluster().endpoints[id]),
            AdminPeerEnd::Address(_) => None,
        };
        match peer {
            AdminPeer::Namespaces(namespaces) => {
                endpoint.is_some_and(|e| !e.host_network && self.pod_matches((namespaces, None), e))
            }
            AdminPeer::Pods { namespaces, pods } => endpoint
                .is_some_and(|e| !e.host_network && self.pod_matches((namespaces, Some(pods)), e)),
            // A node's addresses, which are also its host-networked pods'.
            AdminPeer::Nodes(selector) => {
                let node_name = match (self.peer, endpoint) {
                    (_, Some(e)) if e.host_network => e.node.as_deref(),
                    (AdminPeerEnd::Address(address), _) => self.model.node_of_address(address),
                    _ => None,
                };
                node_name
                    .and_then(|name| self.node_labels(name))
                    .is_some_and(|labels| selector.matches(labels))
            }
            // Pod and node addresses inside the networks match too (API:
            // a 0.0.0.0/0 rule "will allow or deny all IPv4 pod-to-pod
            // traffic as well").
            AdminPeer::Networks(cidrs) => match (self.peer, endpoint) {
                (AdminPeerEnd::Address(address), _) => cidrs.iter().any(|c| c.contains(address)),
                // Of the model's address family, as for ipBlocks: the
                // kernel matches the packet's addresses.
                (_, Some(e)) => {
                    let family = self.model.config().address_family;
                    (e.ips.iter())
                        .any(|&ip| family.includes(ip) && cidrs.iter().any(|c| c.contains(ip)))
                }
                _ => false,
            },
            // Names cannot be resolved without DNS: no address is known to
            // match them.
            AdminPeer::DomainNames(_) => false,
            // Fail closed (API): an Accept rule matches nothing, a Deny or
            // Pass rule everything.
            AdminPeer::Unknown => action != Action::Accept,
        }
    }

    fn node_labels(&self, name: &str) -> Option<&Labels> {
        self.model.cluster().node(name).map(|node| &node.labels)
    }

    fn port_matches(&self, ports: Option<&[AdminPort]>, action: Action) -> bool {
        let Some(ports) = ports else {
            return true;
        };
        ports.iter().any(|entry| match entry {
            AdminPort::Number { protocol, port } => {
                *protocol == self.protocol && *port == self.port
            }
            AdminPort::Range {
                protocol,
                start,
                end,
            } => *protocol == self.protocol && (*start..=*end).contains(&self.port),
            // The protocol is the container port's (API: destinationNamedPort
            // "selects a destination port on a pod based on the ContainerPort
            // name"); an address has no named ports.
            AdminPort::Named(name) => self
                .destination()
                .is_some_and(|d| d.named_port(name, self.protocol) == Some(self.port)),
            // Unknown protocols: fail closed, as for unknown peers.
            AdminPort::UnknownProtocol(_) => action != Action::Accept,
        })
    }

    fn rule_matches(&self, rule: &AdminRule) -> bool {
        rule.peers
            .iter()
            .any(|peer| self.peer_matches(peer, rule.action))
            && self.port_matches(rule.ports.as_deref(), rule.action)
    }

    /// The first matching rule of `tier` for this side, if any.
    pub fn decide(&self, tier: Tier) -> Option<TierMatch> {
        let policies = &self.model.cluster().admin_policies;
        // The policies selecting the pod: its class's (the class model
        // evaluates subjects once per class; `selected_by` is the same
        // test, pod by pod, kept for debug builds to check it).
        let class = self.model.class_of(self.subject);
        let selecting: Vec<usize> = self.model.tier_policies(tier, class).collect();
        debug_assert_eq!(
            {
                let mut sorted = selecting.clone();
                sorted.sort_unstable();
                sorted
            },
            (0..policies.len())
                .filter(|&p| policies[p].tier == tier && self.selected_by(&policies[p].subject))
                .collect::<Vec<_>>()
        );
        // Each selecting policy's first matching rule, by precedence.
        let mut candidates: Vec<(u64, usize, &AdminRule)> = (selecting.iter())
            .map(|&index| (index, &policies[index]))
            .filter_map(|(index, policy)| {
                let rule = policy
                    .rules(self.direction)
                    .iter()
                    .find(|rule| self.rule_matches(rule))?;
                Some((precedence(policy), index, rule))
            })
            .collect();
        candidates.sort_by_key(|&(precedence, index, _)| (precedence, index));
        let &(first_precedence, policy, rule) = candidates.first()?;
        let reference = |policy: usize, rule: &AdminRule| AdminRuleRef {
            policy,
            direction: self.direction,
            index: rule.index,
        };
        let ambiguous_with = (candidates.iter().skip(1))
            .filter(|(precedence, _, other)| {
                *precedence == first_precedence && other.action != rule.action
            })
            .map(|&(_, index, other)| reference(index, other))
            .collect();
        Some(TierMatch {
            action: rule.action,
            rule: reference(policy, rule),
            ambiguous_with,
        })
    }
}

fn subject_selectors(
    subject: &Subject,
) -> (
    &crate::selector::Selector,
    Option<&crate::selector::Selector>,
) {
    match subject {
        Subject::Namespaces(namespaces) => (namespaces, None),
        Subject::Pods { namespaces, pods } => (namespaces, Some(pods)),
    }
}

/// Lower first. The BANP has no priority; it is the only v1alpha1 policy of
/// its tier, and netpol orders it after every Baseline CNP (the two APIs
/// define no order between them).
fn precedence(policy: &AdminPolicy) -> u64 {
    policy.priority.map_or(u64::MAX, u64::from)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use crate::admin::Action;
    use crate::diagnostic::{DiagnosticKind, Severity};
    use crate::model::{PortQuery, QueryEndpoint, SideVerdict, Verdict};
    use crate::ports::Protocol;
    use crate::{Config, Loader, Model};

    const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: gryffindor, labels: {house: gryffindor}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ravenclaw, labels: {house: ravenclaw}}
---
apiVersion: v1
kind: Pod
metadata: {name: harry, namespace: gryffindor, labels: {app: harry}}
spec: {nodeName: node-b, containers: [{name: c, ports: [{name: web, containerPort: 80}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: luna, namespace: ravenclaw, labels: {app: luna}}
spec: {nodeName: node-b, containers: [{name: c, ports: [{name: web, containerPort: 8080}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: ravenclaw, labels: {app: agent}}
spec: {nodeName: node-a, hostNetwork: true, containers: [{name: c}]}
status: {podIP: 192.168.0.1}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {role: infra}}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {role: worker}}
status: {addresses: [{type: InternalIP, address: 192.168.0.2}]}
";

    fn model_with(policies: &str) -> Model {
        let mut loader = Loader::new();
        loader.load_str("cluster.yaml", &format!("{CLUSTER}---\n{policies}"));
        let loaded = loader.finish();
        // An unknown peer field is an error for a manifest (kubectl rejects
        // it), but the policy is kept, with the peer failing closed: what a
        // cluster with a newer CRD serves.
        let errors: Vec<_> = (loaded.diagnostics.iter())
            .filter(|d| d.severity == Severity::Error && d.kind != DiagnosticKind::UnknownField)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        Model::new(loaded.cluster, Config::default())
    }

    fn query(model: &Model, from: &str, to: &str, protocol: Protocol, port: u16) -> Verdict {
        let endpoint = |text: &str| model.resolve_endpoint(text).unwrap();
        model
            .query(
                endpoint(from),
                endpoint(to),
                &PortQuery::Number(port),
                protocol,
            )
            .unwrap()
    }

    fn anp(name: &str, priority: u32, body: &str) -> String {
        format!(
            "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  priority: {priority}\n{body}---\n"
        )
    }

    const LUNA_SUBJECT: &str = "  subject: {pods: {namespaceSelector: {matchLabels: {house: ravenclaw}}, podSelector: {matchLabels: {app: luna}}}}\n";

    /// The example wording, with the rule's index and name.
    #[test]
    fn a_deny_names_tier_policy_priority_rule_and_action() {
        let model = model_with(&anp(
            "block-gryffindor",
            3,
            &format!(
                "{LUNA_SUBJECT}  ingress:\n  - {{name: deny-from-gryffindor, action: Deny, from: [{{namespaces: {{matchLabels: {{house: gryffindor}}}}}}]}}\n"
            ),
        ));
        let verdict = query(
            &model,
            "gryffindor/harry",
            "ravenclaw/luna",
            Protocol::Tcp,
            80,
        );
        assert!(!verdict.allowed());
        let SideVerdict::Admin(decision) = &verdict.ingress else {
            panic!("{:?}", verdict.ingress)
        };
        assert_eq!(decision.action, Action::Deny);
        assert!(decision.ambiguous_with.is_empty());
        assert_eq!(
            decision.rule.label(model.cluster()),
            "AdminNetworkPolicy `block-gryffindor` (priority 3) ingress rule 0 `deny-from-gryffindor`"
        );
        // The egress side has no admin policy and no NetworkPolicy.
        assert_eq!(verdict.egress, SideVerdict::NotIsolated);
    }

    /// Two policies of one priority that disagree: the verdict says so.
    #[test]
    fn same_priority_policies_that_disagree_are_reported_as_ambiguous() {
        let deny = anp(
            "a-deny",
            5,
            &format!(
                "{LUNA_SUBJECT}  ingress:\n  - {{action: Deny, from: [{{namespaces: {{}}}}]}}\n"
            ),
        );
        let allow = anp(
            "b-allow",
            5,
            &format!(
                "{LUNA_SUBJECT}  ingress:\n  - {{action: Allow, from: [{{namespaces: {{}}}}]}}\n"
            ),
        );
        let model = model_with(&format!("{deny}{allow}"));
        let verdict = query(
            &model,
            "gryffindor/harry",
            "ravenclaw/luna",
            Protocol::Tcp,
            80,
        );
        let SideVerdict::Admin(decision) = &verdict.ingress else {
            panic!("{:?}", verdict.ingress)
        };
        assert_eq!(decision.ambiguous_with.len(), 1);
        let labels = [&decision.rule, &decision.ambiguous_with[0]]
            .map(|rule| model.cluster().admin_policies[rule.policy].name.clone());
        let mut sorted = labels.clone();
        sorted.sort();
        assert_eq!(sorted, ["a-deny", "b-allow"]);
        // Agreeing policies of one priority are not ambiguous.
        let model = model_with(&format!("{deny}{}", deny.replace("a-deny", "c-deny")));
        let verdict = query(
            &model,
            "gryffindor/harry",
            "ravenclaw/luna",
            Protocol::Tcp,
            80,
        );
        let SideVerdict::Admin(decision) = &verdict.ingress else {
            panic!("{:?}", verdict.ingress)
        };
        assert!(decision.ambiguous_with.is_empty());
    }

    /// A peer with no field netpol knows: an Accept matches nothing, a Deny
    /// everything (the API's "fail closed").
    #[test]
    fn unknown_peers_fail_closed() {
        let policy = |action: &str| {
            anp(
                "future",
                1,
                &format!(
                    "{LUNA_SUBJECT}  ingress:\n  - {{action: {action}, from: [{{futurePeer: {{}}}}]}}\n"
                ),
            )
        };
        let model_deny = model_with(&policy("Deny"));
        let verdict = query(
            &model_deny,
            "gryffindor/harry",
            "ravenclaw/luna",
            Protocol::Udp,
            53,
        );
        assert!(matches!(&verdict.ingress, SideVerdict::Admin(d) if d.action == Action::Deny));
        let baseline_deny = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n  ingress:\n  - {action: Deny, from: [{namespaces: {}}]}\n";
        let model_accept = model_with(&format!("{}{baseline_deny}", policy("Allow")));
        let verdict = query(
            &model_accept,
            "gryffindor/harry",
            "ravenclaw/luna",
            Protocol::Tcp,
            80,
        );
        // The Accept matched nothing, so the baseline decided.
        assert!(matches!(&verdict.ingress, SideVerdict::Baseline(d) if d.action == Action::Deny));
    }

    /// Egress peers that are addresses: `networks` also match pod IPs,
    /// `nodes` match node addresses and the host-networked pods on them.
    #[test]
    fn networks_match_pod_ips_and_nodes_match_node_addresses() {
        let harry_subject = "  subject: {namespaces: {matchLabels: {house: gryffindor}}}\n";
        let model = model_with(&anp(
            "egress",
            1,
            &format!(
                "{harry_subject}  egress:\n  - {{action: Deny, to: [{{networks: [10.0.0.2/32]}}]}}\n  - {{action: Deny, to: [{{nodes: {{matchLabels: {{role: infra}}}}}}]}}\n"
            ),
        ));
        let denied = |to: QueryEndpoint| {
            let from = model.resolve_endpoint("gryffindor/harry").unwrap();
            !model
                .query(from, to, &PortQuery::Number(443), Protocol::Tcp)
                .unwrap()
                .allowed()
        };
        assert!(denied(model.resolve_endpoint("ravenclaw/luna").unwrap()));
        assert!(denied(model.resolve_endpoint("ravenclaw/agent").unwrap()));
        let address = |ip: [u8; 4]| QueryEndpoint::Address(IpAddr::V4(Ipv4Addr::from(ip)));
        assert!(denied(address([192, 168, 0, 1])));
        // Another node, and an address in no network, are not denied.
        assert!(!denied(address([192, 168, 0, 2])));
        assert!(!denied(address([8, 8, 8, 8])));
    }

    /// Host-networked pods are never subjects; a named port resolves on the
    /// destination pod, with the container port's protocol.
    #[test]
    fn host_network_pods_are_not_subjects_and_named_ports_resolve_at_the_destination() {
        let model = model_with(&anp(
            "web",
            1,
            "  subject: {namespaces: {matchLabels: {house: ravenclaw}}}\n  ingress:\n  - {action: Deny, from: [{namespaces: {}}], ports: [{namedPort: web}]}\n",
        ));
        // luna's `web` is 8080.
        assert!(
            !query(
                &model,
                "gryffindor/harry",
                "ravenclaw/luna",
                Protocol::Tcp,
                8080
            )
            .allowed()
        );
        assert!(
            query(
                &model,
                "gryffindor/harry",
                "ravenclaw/luna",
                Protocol::Tcp,
                80
            )
            .allowed()
        );
        assert!(
            query(
                &model,
                "gryffindor/harry",
                "ravenclaw/luna",
                Protocol::Udp,
                8080
            )
            .allowed()
        );
        // The host-networked agent is in ravenclaw, but no subject.
        let verdict = query(
            &model,
            "gryffindor/harry",
            "ravenclaw/agent",
            Protocol::Tcp,
            8080,
        );
        assert!(verdict.allowed(), "{verdict:?}");
    }

    /// `domainNames` cannot be resolved: they match no address, so an
    /// Accept for them leaves the baseline to decide.
    #[test]
    fn domain_names_match_no_address() {
        let cnp = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: dns-names}\nspec:\n  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - {action: Accept, to: [{domainNames: [example.com]}]}\n---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: default-deny}\nspec:\n  tier: Baseline\n  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - {action: Deny, to: [{networks: [0.0.0.0/0]}]}\n";
        let model = model_with(cnp);
        let from = model.resolve_endpoint("gryffindor/harry").unwrap();
        let to = QueryEndpoint::Address(IpAddr::V4(Ipv4Addr::new(93, 184, 215, 14)));
        let verdict = model
            .query(from, to, &PortQuery::Number(443), Protocol::Tcp)
            .unwrap();
        assert!(matches!(&verdict.egress, SideVerdict::Baseline(d) if d.action == Action::Deny));
        assert_eq!(
            match &verdict.egress {
                SideVerdict::Baseline(d) => d.rule.label(model.cluster()),
                _ => unreachable!(),
            },
            "ClusterNetworkPolicy `default-deny` (tier Baseline, priority 1) egress rule 0"
        );
    }
}
