//! NetworkPolicies that cannot affect this node, kept out of the model.
//!
//! A NetworkPolicy selects pods of its own namespace only (networking/v1
//! `NetworkPolicySpec.podSelector`: "selects pods in the same namespace"),
//! and a node's ruleset enforces its own pods' ingress and egress. So the
//! policies of a namespace with no endpoint on this node change nothing in
//! the node's ruleset: the agent *parks* them, encoded compactly, and the
//! model holds only the policies of the node's namespaces. At 100,000 pods
//! over 910 nodes, a node's 110 pods are in about a tenth of the
//! namespaces, and the policies were the larger part of the agent's memory.
//!
//! Parked policies stay known to the planner: they keep their namespaces
//! alive, count in the plan's figures, serve as the last good version of
//! an unreadable update, and go back into the model, decoded as they were,
//! when an endpoint of their namespace arrives on the node.

use std::collections::BTreeMap;

use policy_core::Policy;

/// Parked policies, by namespace and name.
#[derive(Clone, Default)]
pub(super) struct Parked {
    by_namespace: BTreeMap<String, BTreeMap<String, Box<[u8]>>>,
    count: usize,
}

fn encode(policy: &Policy) -> Box<[u8]> {
    postcard::to_allocvec(policy)
        .expect("a policy always encodes")
        .into_boxed_slice()
}

fn decode(bytes: &[u8]) -> Policy {
    postcard::from_bytes(bytes).expect("a parked policy decodes as it was encoded")
}

impl Parked {
    /// How many policies are parked.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Parks `policy`, replacing a parked one of the same name.
    pub(super) fn insert(&mut self, policy: &Policy) {
        let previous = (self.by_namespace)
            .entry(policy.namespace.clone())
            .or_default()
            .insert(policy.name.clone(), encode(policy));
        if previous.is_none() {
            self.count += 1;
        }
    }

    /// Forgets a parked policy; true if it was parked.
    pub(super) fn remove(&mut self, namespace: &str, name: &str) -> bool {
        let Some(policies) = self.by_namespace.get_mut(namespace) else {
            return false;
        };
        let removed = policies.remove(name).is_some();
        if policies.is_empty() {
            self.by_namespace.remove(namespace);
        }
        self.count -= usize::from(removed);
        removed
    }

    /// A parked policy, decoded.
    pub(super) fn get(&self, namespace: &str, name: &str) -> Option<Policy> {
        let bytes = self.by_namespace.get(namespace)?.get(name)?;
        Some(decode(bytes))
    }

    /// True if a policy of `namespace` is parked.
    pub(super) fn has_namespace(&self, namespace: &str) -> bool {
        self.by_namespace.contains_key(namespace)
    }

    /// Takes every parked policy of `namespace` out, decoded, by name.
    pub(super) fn take_namespace(&mut self, namespace: &str) -> Vec<Policy> {
        let policies = self.by_namespace.remove(namespace).unwrap_or_default();
        self.count -= policies.len();
        policies.values().map(|bytes| decode(bytes)).collect()
    }

    /// `(namespace, name)` of every parked policy.
    pub(super) fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        (self.by_namespace.iter()).flat_map(|(namespace, policies)| {
            policies
                .keys()
                .map(move |name| (namespace.as_str(), name.as_str()))
        })
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.by_namespace.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::Loader;

    /// Every kind of field a policy has survives parking: selectors with
    /// expressions, namespace selectors, ipBlocks with exceptions, named
    /// and ranged ports, both directions, and source positions.
    #[test]
    fn a_parked_policy_comes_back_as_it_was() {
        let text = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: everything, namespace: shop}
spec:
  podSelector:
    matchLabels: {app: db}
    matchExpressions: [{key: tier, operator: NotIn, values: [web, edge]}]
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {matchExpressions: [{key: app, operator: Exists}]}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{port: http}, {port: 8000, endPort: 8080, protocol: UDP}, {protocol: SCTP}]
  egress:
  - to: [{podSelector: {}}]
"#;
        let mut loader = Loader::new();
        loader.load_str("policies.yaml", text);
        let policy = loader.finish().cluster.policies.remove(0);
        let mut parked = Parked::default();
        parked.insert(&policy);
        assert_eq!(parked.len(), 1);
        assert_eq!(parked.get("shop", "everything").as_ref(), Some(&policy));
        assert!(parked.has_namespace("shop"));
        assert_eq!(parked.take_namespace("shop"), vec![policy]);
        assert_eq!(parked.len(), 0);
        assert!(!parked.remove("shop", "everything"));
    }
}
