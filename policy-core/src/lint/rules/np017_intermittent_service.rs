use std::collections::BTreeSet;

use super::short_list;
use crate::QueryEndpoint;
use crate::bitset::BitSet;
use crate::cluster::ServiceType;
use crate::diagnostic::ObjectRef;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::model::{BackendTarget, ClientSets, ServiceOutcome};
use crate::path::FieldPath;

declare_rule! {
    /// ## What it does
    /// Reports a Service port whose backends answer the same client
    /// differently: some let it in, some do not.
    ///
    /// ## Why it matters
    /// kube-proxy picks a backend per connection, and NetworkPolicy sees
    /// only the backend it picked. When backends differ, the client's
    /// connections fail some of the time: the hardest kind of failure to
    /// debug. It happens when backends carry different labels, or when a
    /// named targetPort maps to different numbers and a policy allows only
    /// one of them.
    ///
    /// ## Example
    /// ```yaml
    /// # web-1 names port 80 "http", web-2 names 8080 "http";
    /// # the Service targets "http", the policy allows port 80 only.
    /// ingress:
    /// - from: [{podSelector: {matchLabels: {app: client}}}]
    ///   ports: [{port: 80}]
    /// ```
    ///
    /// ## Use instead
    /// Allow the named port (`port: http`) so it resolves per pod, and
    /// select every backend with the same policies.
    pub struct IntermittentService {
        code: "NP017",
        name: "intermittent-service",
        severity: Warning,
        summary: "backends of one Service answer the same client differently",
    }
}

impl Rule for IntermittentService {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        // Candidates come from class-level client sets per backend kind;
        // each reported client is confirmed with an exact Service query.
        let client_sets = ClientSets::new(model);
        for (id, service) in cluster.services.iter().enumerate() {
            if service.service_type == ServiceType::ExternalName {
                continue;
            }
            for (index, port) in service.ports.iter().enumerate() {
                let backends = model.service_backends(id, index).backends;
                // Backends of one class on one port answer alike (apart from
                // node-local exceptions): only mixed ones can differ.
                let kinds: BTreeSet<(usize, u16)> = backends
                    .iter()
                    .filter_map(|b| match b.target {
                        BackendTarget::Endpoint(e) => Some((model.class_of(e), b.port)),
                        BackendTarget::Address(_) => None,
                    })
                    .collect();
                if kinds.len() < 2 {
                    continue;
                }
                let sets: Vec<BitSet> = kinds
                    .iter()
                    .map(|&(class, target)| client_sets.allowed(class, port.protocol, target))
                    .collect();
                let mut some = sets[0].clone();
                let mut all = sets[0].clone();
                for set in &sets[1..] {
                    some.union_with(set);
                    all.intersect_with(set);
                }
                some.difference_with(&all);
                let candidates: Vec<usize> = some
                    .ones()
                    .filter_map(|class| model.classes()[class].members.first().copied())
                    .collect();
                let mut clients = Vec::new();
                for &source in &candidates {
                    let Ok(verdict) =
                        model.query_service(QueryEndpoint::Endpoint(source), id, index)
                    else {
                        continue;
                    };
                    if verdict.outcome == ServiceOutcome::Intermittent {
                        let allowed: Vec<String> = verdict
                            .backends
                            .iter()
                            .filter(|b| b.verdict.allowed())
                            .map(|b| model.endpoint_label(b.verdict.to))
                            .collect();
                        clients.push((
                            cluster.endpoint_name(source).to_string(),
                            verdict.allowed_count(),
                            verdict.backends.len(),
                            allowed,
                        ));
                        break;
                    }
                }
                let affected = candidates.len();
                let Some((first, allowed, total, allowing)) = clients.first().cloned() else {
                    continue;
                };
                findings.push(
                    Finding::new(
                        self.info(),
                        format!(
                            "Service {} port {}: {allowed} of {total} backends admit {first} (only {}), so its connections fail intermittently{}",
                            service.reference(),
                            port.label(),
                            short_list(allowing, 3),
                            if affected > 1 {
                                format!("; up to {} more client classes are affected", affected - 1)
                            } else {
                                String::new()
                            }
                        ),
                    )
                    .with_help(format!(
                        "run `netpol query --from {first} --to service/{} --port {}` to see each backend's verdict",
                        service.reference(),
                        port.name.clone().unwrap_or_else(|| port.port.to_string())
                    ))
                    .at(
                        service.source.clone(),
                        Some(ObjectRef {
                            kind: "Service".into(),
                            namespace: service.namespace.clone(),
                            name: service.name.clone(),
                        }),
                        FieldPath::parse("spec.ports").index(index),
                    ),
                );
            }
        }
    }
}
