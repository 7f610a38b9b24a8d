use crate::cluster::ServiceType;
use crate::diagnostic::ObjectRef;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;

declare_rule! {
    /// ## What it does
    /// Reports a Service whose selector matches no pod or workload of its
    /// namespace.
    ///
    /// ## Why it matters
    /// A Service without backends rejects every connection. It is usually a
    /// typo in a label, or a selector left behind by a renamed workload.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Service
    /// metadata: {name: cart, namespace: shop}
    /// spec: {selector: {app: carts}, ports: [{port: 80}]}   # the pods say app: cart
    /// ```
    ///
    /// ## Use instead
    /// Make the selector equal labels the pods carry.
    pub struct ServiceSelectsNothing {
        code: "NP014",
        name: "service-selects-nothing",
        severity: Warning,
        summary: "a Service selects no pod, so it has no backends",
    }
}

impl Rule for ServiceSelectsNothing {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        for (id, service) in model.cluster().services.iter().enumerate() {
            let Some(selector) = &service.selector else {
                continue;
            };
            if service.service_type == ServiceType::ExternalName
                || !model.service_selected(id).is_empty()
            {
                continue;
            }
            let selector: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "Service {} selects no pod ({}): every connection to it is rejected",
                        service.reference(),
                        selector.join(", ")
                    ),
                )
                .with_help("make the selector match the labels of the pods that should serve it")
                .at(
                    service.source.clone(),
                    Some(ObjectRef {
                        kind: "Service".into(),
                        namespace: service.namespace.clone(),
                        name: service.name.clone(),
                    }),
                    FieldPath::parse("spec.selector"),
                ),
            );
        }
    }
}
