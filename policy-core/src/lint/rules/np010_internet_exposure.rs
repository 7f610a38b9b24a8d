use std::collections::BTreeSet;

use super::short_list;
use crate::cluster::TargetPort;
use crate::diagnostic::ObjectRef;
use crate::ipset::{Cidr, IpSet};
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;

declare_rule! {
    /// ## What it does
    /// Reports pods behind a NodePort or LoadBalancer Service that accept the
    /// Service's target port from the whole internet: because no policy
    /// isolates them, because a rule has no `from`, or because an `ipBlock`
    /// such as `0.0.0.0/0` or `::/0` covers every public address.
    ///
    /// ## Why it matters
    /// A NodePort or LoadBalancer Service is reachable from outside the
    /// cluster. Often that is the point, but an admin port or a database
    /// published by mistake is then open to anyone.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Service
    /// spec: {type: LoadBalancer, selector: {app: admin}, ports: [{port: 443}]}
    /// # ...and no NetworkPolicy selects app=admin
    /// ```
    ///
    /// ## Use instead
    /// Restrict ingress to the load balancer's or the office's address ranges,
    /// or allow the exposure explicitly with `netpol.dev/allow: NP010` on the
    /// Service.
    pub struct InternetExposure {
        code: "NP010",
        name: "internet-exposure",
        severity: Warning,
        summary: "a pod behind a NodePort or LoadBalancer Service accepts the whole internet",
    }
}

/// Every public address: everything but private, shared, loopback and link-local ranges.
fn public_internet() -> (IpSet, IpSet) {
    let block = |cidr: &str, except: &[&str]| {
        let except: Vec<Cidr> = except
            .iter()
            .map(|e| Cidr::parse(e).expect("valid").cidr)
            .collect();
        IpSet::from_block(Cidr::parse(cidr).expect("valid").cidr, &except)
    };
    (
        block(
            "0.0.0.0/0",
            &[
                "0.0.0.0/8",
                "10.0.0.0/8",
                "100.64.0.0/10",
                "127.0.0.0/8",
                "169.254.0.0/16",
                "172.16.0.0/12",
                "192.168.0.0/16",
            ],
        ),
        block("::/0", &["::1/128", "fc00::/7", "fe80::/10"]),
    )
}

impl Rule for InternetExposure {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        let (public_v4, public_v6) = public_internet();
        for service in &cluster.services {
            if !matches!(service.service_type.as_str(), "NodePort" | "LoadBalancer") {
                continue;
            }
            let Some(selector) = &service.selector else {
                continue;
            };
            let mut exposed_pods = BTreeSet::new();
            let mut exposed_ports = BTreeSet::new();
            for (id, endpoint) in cluster.endpoints.iter().enumerate() {
                let selected = endpoint.namespace == service.namespace
                    && selector
                        .iter()
                        .all(|(k, v)| endpoint.labels.get(k) == Some(v));
                if !selected {
                    continue;
                }
                let class = model.class_of(id);
                for port in &service.ports {
                    let target = match &port.target_port {
                        TargetPort::Number(number) => Some(*number),
                        TargetPort::Name(name) => endpoint.named_port(name, port.protocol),
                    };
                    let Some(target) = target else { continue };
                    let allowed = model.ingress_addresses(class, port.protocol, target);
                    if public_v4.difference(&allowed).is_empty()
                        || public_v6.difference(&allowed).is_empty()
                    {
                        exposed_pods.insert(cluster.endpoint_name(id).to_string());
                        exposed_ports.insert(format!("{} {target}", port.protocol));
                    }
                }
            }
            if exposed_pods.is_empty() {
                continue;
            }
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "{} Service {}/{} exposes {} to the whole internet on {}",
                        service.service_type,
                        service.namespace,
                        service.name,
                        short_list(exposed_pods, 3),
                        exposed_ports.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                )
                .with_help("restrict ingress on that port to the address ranges that need it, or annotate the Service with netpol.dev/allow: NP010 if the exposure is intended")
                .at(
                    service.source.clone(),
                    Some(ObjectRef {
                        kind: "Service".into(),
                        namespace: service.namespace.clone(),
                        name: service.name.clone(),
                    }),
                    FieldPath::root(),
                ),
            );
        }
    }
}
