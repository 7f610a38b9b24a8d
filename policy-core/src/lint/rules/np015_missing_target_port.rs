use super::short_list;
use crate::cluster::TargetPort;
use crate::diagnostic::ObjectRef;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::model::Exclusion;
use crate::path::FieldPath;

declare_rule! {
    /// ## What it does
    /// Reports a Service port whose named `targetPort` some selected pod
    /// does not define (with the port's protocol).
    ///
    /// ## Why it matters
    /// A named targetPort is resolved on each pod. A pod without that name
    /// is silently left out of the Service's endpoints for that port: it
    /// gets no traffic, and capacity or a whole version is missing without
    /// any error.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Service
    /// spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
    /// # ...and one web pod names its port "web" instead of "http"
    /// ```
    ///
    /// ## Use instead
    /// Give every selected pod a container port with that name and protocol,
    /// or use a port number.
    pub struct MissingTargetPort {
        code: "NP015",
        name: "missing-target-port",
        severity: Warning,
        summary: "a named targetPort that some selected pod does not define",
    }
}

impl Rule for MissingTargetPort {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        for (id, service) in cluster.services.iter().enumerate() {
            if service.headless {
                continue; // targetPort is ignored for clusterIP: None.
            }
            for (index, port) in service.ports.iter().enumerate() {
                let TargetPort::Name(name) = &port.target_port else {
                    continue;
                };
                let missing: Vec<String> = model
                    .service_backends(id, index)
                    .excluded
                    .iter()
                    .filter(|(_, why)| matches!(why, Exclusion::NoSuchNamedPort(_)))
                    .map(|(endpoint, _)| cluster.endpoint_name(*endpoint).to_string())
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                findings.push(
                    Finding::new(
                        self.info(),
                        format!(
                            "Service {} port {}: targetPort {name:?} is no {} container port of {}, so they get no traffic on it",
                            service.reference(),
                            port.label(),
                            port.protocol,
                            short_list(missing, 3)
                        ),
                    )
                    .with_help("name the container port the same way on every selected pod, or use a port number")
                    .at(
                        service.source.clone(),
                        Some(ObjectRef {
                            kind: "Service".into(),
                            namespace: service.namespace.clone(),
                            name: service.name.clone(),
                        }),
                        FieldPath::parse("spec.ports").index(index).key("targetPort"),
                    ),
                );
            }
        }
    }
}
