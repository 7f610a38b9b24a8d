use super::short_list;
use crate::diagnostic::ObjectRef;
use crate::exposure::{EntryKind, IngressControllers, exposure};
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;

declare_rule! {
    /// ## What it does
    /// Reports an Ingress route whose backend pods do not let the ingress
    /// controller in (their ingress policies, or the controller's egress
    /// policies, refuse the controller's pods on the target port).
    ///
    /// ## Why it matters
    /// Traffic through an Ingress reaches the backends from the controller's
    /// pods, not from the client. A backend that admits only its usual
    /// in-cluster clients, or only the internet's addresses, answers every
    /// request through the Ingress with a timeout (and the controller with
    /// 502/504). The controller is found by its IngressClass (ingress-nginx's
    /// conventional labels by default).
    ///
    /// ## Example
    /// ```yaml
    /// kind: NetworkPolicy
    /// spec:
    ///   podSelector: {matchLabels: {app: web}}
    ///   ingress:
    ///   - from: [{podSelector: {matchLabels: {app: client}}}]   # not the controller
    /// ```
    ///
    /// ## Use instead
    /// Allow the controller's namespace and pods:
    /// `namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}`.
    pub struct IngressRefused {
        code: "NP018",
        name: "ingress-refused",
        severity: Warning,
        summary: "an Ingress route whose backends do not admit the ingress controller",
    }
}

impl Rule for IngressRefused {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        if cluster.ingresses.is_empty() {
            return;
        }
        for entry in exposure(model, &IngressControllers::default()) {
            let (EntryKind::Ingress, Some((name, host, path))) = (entry.via, &entry.ingress) else {
                continue;
            };
            let refused: Vec<String> = entry
                .targets
                .iter()
                .filter(|t| t.via_controllers.is_empty())
                .map(|t| format!("{} (port {})", cluster.endpoint_name(t.pod), t.port))
                .collect();
            if refused.is_empty() {
                continue;
            }
            let (namespace, ingress_name) = name.split_once('/').expect("namespace/name");
            let route = cluster
                .ingresses
                .iter()
                .find(|i| i.namespace == namespace && i.name == ingress_name)
                .and_then(|i| i.routes.iter().find(|r| &r.host == host && &r.path == path));
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "Ingress {name} routes {}{} to {} of {}, which the ingress controller's pods may not reach: {} refuse it",
                        host.as_deref().unwrap_or("*"),
                        path.as_deref().unwrap_or(" (default backend)"),
                        refused.len(),
                        entry.targets.len(),
                        short_list(refused, 3)
                    ),
                )
                .with_help("allow ingress from the controller's namespace and pods on the target port (and the controller's egress to them)")
                .at(
                    route.and_then(|r| r.source.clone()),
                    Some(ObjectRef {
                        kind: "Ingress".into(),
                        namespace: namespace.to_string(),
                        name: ingress_name.to_string(),
                    }),
                    FieldPath::root(),
                ),
            );
        }
    }
}
