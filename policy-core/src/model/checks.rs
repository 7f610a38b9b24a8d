//! Findings the model can make beyond loading: rules that cannot mean what
//! they say.

use super::{ClassId, Model, PolicyId};
use crate::diagnostic::{Diagnostic, DiagnosticKind, ObjectRef, Severity};
use crate::path::FieldPath;
use crate::policy::{Direction, Peer, PortSpec};
use crate::ports::Protocol;

/// A named port in a rule that no destination of the rule defines, so the
/// entry matches nothing (networking/v1: a named port resolves against the
/// destination pod's container ports, with the rule's protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnresolvedNamedPort {
    /// The policy.
    pub policy: PolicyId,
    /// The rule's direction.
    pub direction: Direction,
    /// The rule's index.
    pub rule: usize,
    /// The entry's index in the rule's `ports`.
    pub port: usize,
    /// The port name.
    pub name: String,
    /// The rule's protocol for it.
    pub protocol: Protocol,
    /// Protocols under which some destination does define the name.
    pub other_protocols: Vec<Protocol>,
    /// True for an egress rule whose destinations are only addresses
    /// (ipBlocks matching no pod): there is no pod to resolve the name on.
    pub only_addresses: bool,
}

impl Model {
    /// The named ports of every rule that resolve on none of the rule's
    /// destinations. Policies that select no pod, and egress rules whose
    /// selectors match no pod, are left to other checks.
    pub fn unresolved_named_ports(&self) -> Vec<UnresolvedNamedPort> {
        let mut findings = Vec::new();
        // Built on first need: most clusters have no named ports in rules.
        let mut selected_by_policy: Option<Vec<Vec<ClassId>>> = None;
        for (policy_id, policy) in self.cluster.policies.iter().enumerate() {
            for direction in [Direction::Ingress, Direction::Egress] {
                let compiled = self.rules_of(policy_id, direction);
                for (rule, compiled_rule) in policy
                    .rules(direction)
                    .unwrap_or_default()
                    .iter()
                    .zip(compiled)
                {
                    let named: Vec<(usize, &String, Protocol)> = rule
                        .ports
                        .iter()
                        .flatten()
                        .enumerate()
                        .filter_map(|(index, spec)| match spec {
                            PortSpec::Named { protocol, name } => Some((index, name, *protocol)),
                            _ => None,
                        })
                        .collect();
                    if named.is_empty() {
                        continue;
                    }
                    let (destinations, only_addresses): (Vec<ClassId>, bool) = match direction {
                        Direction::Ingress => (
                            selected_by_policy
                                .get_or_insert_with(|| self.classes_selected_by_each_policy())
                                [policy_id]
                                .clone(),
                            false,
                        ),
                        Direction::Egress => {
                            let classes: Vec<ClassId> = if compiled_rule.peers.everyone {
                                (0..self.classes.len()).collect()
                            } else {
                                compiled_rule.peers.classes.ones().collect()
                            };
                            let has_blocks = rule
                                .peers
                                .iter()
                                .flatten()
                                .any(|peer| matches!(peer, Peer::IpBlock { .. }));
                            let only_addresses = classes.is_empty() && has_blocks;
                            (classes, only_addresses)
                        }
                    };
                    if destinations.is_empty() && !only_addresses {
                        continue;
                    }
                    for (port, name, protocol) in named {
                        let resolves = destinations
                            .iter()
                            .any(|&c| self.classes[c].named_port(name, protocol).is_some());
                        if resolves {
                            continue;
                        }
                        let other_protocols: Vec<Protocol> = Protocol::ALL
                            .into_iter()
                            .filter(|&other| {
                                other != protocol
                                    && destinations
                                        .iter()
                                        .any(|&c| self.classes[c].named_port(name, other).is_some())
                            })
                            .collect();
                        findings.push(UnresolvedNamedPort {
                            policy: policy_id,
                            direction,
                            rule: rule.index,
                            port,
                            name: name.clone(),
                            protocol,
                            other_protocols,
                            only_addresses,
                        });
                    }
                }
            }
        }
        findings
    }

    /// Warnings about the loaded policies that only the model can see.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.unresolved_named_ports()
            .iter()
            .map(|finding| finding.diagnostic(self))
            .collect()
    }
}

impl UnresolvedNamedPort {
    /// The finding as a warning, located at the port entry.
    pub fn diagnostic(&self, model: &Model) -> Diagnostic {
        let policy = &model.cluster.policies[self.policy];
        let rule = policy
            .rules(self.direction)
            .and_then(|rules| rules.iter().find(|r| r.index == self.rule));
        let source = rule.and_then(|r| r.port_sources.get(self.port).cloned().flatten());
        let whom = match self.direction {
            Direction::Ingress => "no pod this policy selects",
            Direction::Egress => "no pod this rule allows traffic to",
        };
        let message = if self.only_addresses {
            format!(
                "named port `{}` cannot match: this egress rule reaches only IP blocks, and a named port resolves only on a destination pod",
                self.name
            )
        } else if self.other_protocols.is_empty() {
            format!(
                "named port `{}` ({}) matches nothing: {whom} defines it",
                self.name, self.protocol
            )
        } else {
            let others: Vec<&str> = self.other_protocols.iter().map(|p| p.as_str()).collect();
            format!(
                "named port `{}` ({}) matches nothing: {whom} defines it for {}, only for {}",
                self.name,
                self.protocol,
                self.protocol,
                others.join(" and ")
            )
        };
        Diagnostic::new(Severity::Warning, DiagnosticKind::Questionable, message)
            .with_help("use a port number, or the name and protocol of a container port the destinations define")
            .with_source(source)
            .with_object(Some(ObjectRef {
                kind: "NetworkPolicy".into(),
                namespace: policy.namespace.clone(),
                name: policy.name.clone(),
            }))
            .with_field(
                FieldPath::root()
                    .key("spec")
                    .key(self.direction.field())
                    .index(self.rule)
                    .key("ports")
                    .index(self.port)
                    .key("port"),
            )
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Loader, Model};

    fn model(text: &str) -> Model {
        let mut loader = Loader::new();
        loader.load_str("t.yaml", text);
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        Model::new(loaded.cluster, Config::default())
    }

    const PODS: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: dns, labels: {app: dns}}
spec:
  containers:
  - name: c
    ports: [{name: dns, containerPort: 53, protocol: UDP}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: c
    ports: [{name: http, containerPort: 80}]
";

    #[test]
    fn an_ingress_named_port_no_selected_pod_defines_is_reported() {
        let model = model(&format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p}}\nspec:\n  ingress:\n  - ports: [{{port: abc}}, {{port: http}}]\n"
        ));
        let findings = model.diagnostics();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("`abc`"));
        assert_eq!(
            findings[0].field.to_string(),
            "spec.ingress[0].ports[0].port"
        );
        assert_eq!(findings[0].source.as_ref().unwrap().location.line, 22);
    }

    #[test]
    fn a_named_port_defined_only_for_another_protocol_says_so() {
        let model = model(&format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p}}\nspec:\n  podSelector: {{matchLabels: {{app: dns}}}}\n  ingress:\n  - ports: [{{port: dns}}]\n"
        ));
        let findings = model.unresolved_named_ports();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].other_protocols, [crate::Protocol::Udp]);
    }

    #[test]
    fn an_egress_named_port_toward_addresses_only_is_reported() {
        let model = model(&format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p}}\nspec:\n  policyTypes: [Egress]\n  egress:\n  - to: [{{ipBlock: {{cidr: 0.0.0.0/0}}}}]\n    ports: [{{port: abc}}]\n"
        ));
        let findings = model.unresolved_named_ports();
        assert_eq!(findings.len(), 1);
        assert!(findings[0].only_addresses);
    }

    #[test]
    fn resolvable_named_ports_are_silent() {
        let model = model(&format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p}}\nspec:\n  policyTypes: [Egress]\n  egress:\n  - ports: [{{port: dns, protocol: UDP}}, {{port: http}}]\n"
        ));
        assert!(model.unresolved_named_ports().is_empty());
    }
}
