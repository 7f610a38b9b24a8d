use std::collections::{BTreeMap, BTreeSet};

use super::{endpoint_object, short_list};
use crate::config::HostNetworkMode;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;
use crate::policy::Direction;

declare_rule! {
    /// ## What it does
    /// Reports pods that no policy isolates for ingress in a namespace where
    /// other pods are isolated: usually a missing default-deny policy. Pods of
    /// one workload are reported once.
    ///
    /// ## Why it matters
    /// Isolation is opt-in per pod. A namespace that protects its database but
    /// has no default-deny leaves every other pod, including new ones, open to
    /// the whole cluster.
    ///
    /// ## Example
    /// ```yaml
    /// # namespace shop has a policy for app=db only;
    /// # the frontend and cart pods accept traffic from anywhere.
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// apiVersion: networking.k8s.io/v1
    /// kind: NetworkPolicy
    /// metadata: {name: default-deny, namespace: shop}
    /// spec: {podSelector: {}, policyTypes: [Ingress]}
    /// ```
    pub struct UnprotectedPod {
        code: "NP009",
        name: "unprotected-pod",
        severity: Warning,
        summary: "a pod no policy isolates, in a namespace where others are isolated",
    }
}

impl Rule for UnprotectedPod {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        let node_traffic = |id: usize| {
            cluster.endpoints[id].host_network
                && model.config().host_network == HostNetworkMode::Node
        };
        let isolated = |id: usize| !model.policies_selecting(id, Direction::Ingress).is_empty();
        let protected_namespaces: BTreeSet<&str> = (0..cluster.endpoints.len())
            .filter(|&id| isolated(id))
            .map(|id| cluster.endpoints[id].namespace.as_str())
            .collect();
        // Pods of one owner are one finding.
        let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (id, endpoint) in cluster.endpoints.iter().enumerate() {
            if node_traffic(id)
                || isolated(id)
                || !protected_namespaces.contains(endpoint.namespace.as_str())
            {
                continue;
            }
            let group = match &endpoint.owner {
                Some(owner) => format!("{} {}", owner.kind, owner.name),
                None => format!("{} {}", endpoint.kind.as_str(), endpoint.name),
            };
            groups
                .entry((endpoint.namespace.clone(), group))
                .or_default()
                .push(id);
        }
        for ((namespace, group), members) in groups {
            let first = members[0];
            let what = if members.len() == 1 {
                cluster.endpoint_name(first).to_string()
            } else {
                format!(
                    "{} pods of {group} ({})",
                    members.len(),
                    short_list(
                        members.iter().map(|&m| cluster.endpoints[m].name.clone()),
                        3
                    )
                )
            };
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "{what} is not isolated for ingress, though other pods in namespace {namespace} are: it accepts traffic from everywhere"
                    ),
                )
                .with_help(format!(
                    "add a default-deny policy to namespace {namespace} (podSelector: {{}}, policyTypes: [Ingress]) and allow what it needs"
                ))
                .at(cluster.endpoints[first].source.clone(), Some(endpoint_object(model, first)), FieldPath::root()),
            );
        }
    }
}
