//! The cluster of [`crate::generate`] as `kubectl get
//! namespaces,pods,networkpolicies,services -A` prints it: one `List` with
//! full objects, as the API server returns them.
//!
//! The YAML stream is generated first and read back (with policy-core's
//! parser), so the objects are the same; each is then completed with what
//! the API server and the controllers add: `resourceVersion`,
//! `creationTimestamp`, `managedFields` (with `fieldsV1` trees derived from
//! the object), annotations, and for Pods the admission defaults
//! (service-account token volume, tolerations, scheduler fields), a
//! realistic container (environment with `valueFrom`, probes, volume mounts,
//! security context) and the kubelet's status (conditions, container
//! statuses, start time). Deployments and StatefulSets are not part of the
//! dump (`kubectl get pods` does not list them); the Pods stand for them.
//!
//! Keys are sorted, as `kubectl` prints them (Go marshals maps in key
//! order). JSON is indented by four spaces and escapes `<`, `>` and `&` as
//! Go does; YAML is one document in `kubectl get -o yaml` style.

use std::fmt::Write as _;

use policy_core::yaml::{Node, Value, parse_documents};

use crate::{Params, Rng, Summary, generate_with_summary};

/// An output format of `netpol-scale generate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// A multi-document YAML stream of manifests ([`crate::generate`]).
    #[default]
    Yaml,
    /// `kubectl get namespaces,pods,networkpolicies,services -A -o json`.
    KubectlJson,
    /// The same `List` as `kubectl get ... -o yaml` prints it.
    KubectlYaml,
}

impl Format {
    /// The format named `name` (`yaml`, `kubectl-json`, `kubectl-yaml`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "yaml" => Some(Format::Yaml),
            "kubectl-json" => Some(Format::KubectlJson),
            "kubectl-yaml" => Some(Format::KubectlYaml),
            _ => None,
        }
    }
}

/// The cluster for `params` in `format`, and what was written.
///
/// [`Summary::counts`] stays [`Params::expected`]: the `kubectl` formats
/// leave out the Deployments and StatefulSets but hold the same
/// namespaces, pods, Services and policies.
pub fn generate_in(params: &Params, format: Format) -> (String, Summary) {
    let (yaml, mut summary) = generate_with_summary(params);
    if format == Format::Yaml {
        return (yaml, summary);
    }
    let list = kubectl_list(params, &yaml);
    let mut out = String::with_capacity(summary.counts.pods * 12_000 + yaml.len());
    match format {
        Format::KubectlJson => {
            write_json(&mut out, &list, 0);
            out.push('\n');
        }
        _ => write_yaml_document(&mut out, &list),
    }
    summary.bytes = out.len();
    (out, summary)
}

/// `kubectl get namespaces,pods,networkpolicies,services -A -o json` for `params`.
pub fn generate_kubectl_json(params: &Params) -> String {
    generate_in(params, Format::KubectlJson).0
}

/// A JSON-like value; mappings keep insertion order until written.
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn s(text: impl Into<String>) -> J {
    J::Str(text.into())
}

fn obj(entries: Vec<(&str, J)>) -> J {
    J::Obj(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

impl J {
    fn from_node(node: &Node) -> J {
        match &node.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::Int(*i),
            Value::UInt(u) => J::Int(i64::try_from(*u).unwrap_or(i64::MAX)),
            Value::Float(f) => J::Str(f.to_string()),
            Value::String(text) => J::Str(text.clone()),
            Value::Sequence(items) => J::Arr(items.iter().map(J::from_node).collect()),
            Value::Mapping(entries) => J::Obj(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), J::from_node(&e.value)))
                    .collect(),
            ),
        }
    }

    fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut J> {
        match self {
            J::Obj(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> &str {
        match self.get(key) {
            Some(J::Str(text)) => text,
            _ => "",
        }
    }

    /// Sets `key` (replacing an existing value).
    fn set(&mut self, key: &str, value: J) {
        if let J::Obj(entries) = self {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key.to_string(), value)),
            }
        }
    }

    /// The mapping under `key`, created when absent.
    fn child(&mut self, key: &str) -> &mut J {
        if self.get(key).is_none() {
            self.set(key, J::Obj(Vec::new()));
        }
        self.get_mut(key).expect("just set")
    }
}

/// A creation time in 2025, seconds after 2025-01-01T00:00:00Z.
fn timestamp(seconds: u64) -> String {
    const DAYS: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut day = (seconds / 86_400) % 365;
    let mut month = 0;
    while day >= DAYS[month] {
        day -= DAYS[month];
        month += 1;
    }
    let rest = seconds % 86_400;
    format!(
        "2025-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month + 1,
        day + 1,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

struct Enricher {
    rng: Rng,
    resource_version: u64,
}

impl Enricher {
    fn time(&mut self, base: u64) -> (u64, String) {
        let at = base + self.rng.below(3600) as u64;
        (at, timestamp(at))
    }

    fn next_version(&mut self) -> String {
        self.resource_version += 1 + self.rng.below(40) as u64;
        self.resource_version.to_string()
    }

    /// `creationTimestamp`, `resourceVersion` and one `managedFields` entry
    /// per (manager, operation, subresource, fields).
    fn metadata(&mut self, object: &mut J, created: &str, managers: Vec<(&str, &str, &str, J)>) {
        let version = self.next_version();
        let metadata = object.child("metadata");
        metadata.set("creationTimestamp", s(created));
        metadata.set("resourceVersion", s(version));
        let entries = managers
            .into_iter()
            .map(|(manager, operation, subresource, fields)| {
                let mut entry = obj(vec![
                    ("apiVersion", s("v1")),
                    ("fieldsType", s("FieldsV1")),
                    ("fieldsV1", fields),
                    ("manager", s(manager)),
                    ("operation", s(operation)),
                    ("time", s(created)),
                ]);
                if !subresource.is_empty() {
                    entry.set("subresource", s(subresource));
                }
                entry
            })
            .collect();
        metadata.set("managedFields", J::Arr(entries));
    }
}

/// The `fieldsV1` trie of the fields `value` sets, as structured-merge-diff
/// writes it: `f:<field>` for struct fields and map keys, `k:{...}` for
/// list items with keys, `.` for a set that is itself owned.
fn fields_of(value: &J, owned: bool) -> J {
    match value {
        J::Obj(entries) => {
            let mut out = Vec::new();
            if owned {
                out.push((".".to_string(), J::Obj(Vec::new())));
            }
            for (key, child) in entries {
                // Atomic structs and lists are owned whole.
                let fields = if ATOMIC.contains(&key.as_str()) {
                    J::Obj(Vec::new())
                } else {
                    fields_of(child, true)
                };
                out.push((format!("f:{key}"), fields));
            }
            J::Obj(out)
        }
        J::Arr(items) => {
            let mut out = Vec::new();
            if owned {
                out.push((".".to_string(), J::Obj(Vec::new())));
            }
            for (index, item) in items.iter().enumerate() {
                let key = match item {
                    J::Obj(_) => list_key(item).unwrap_or_else(|| format!("i:{index}")),
                    J::Str(text) => format!("v:{}", json_string(text)),
                    other => format!("v:{}", compact(other)),
                };
                let fields = match item {
                    J::Obj(_) => fields_of(item, true),
                    _ => J::Obj(Vec::new()),
                };
                out.push((key, fields));
            }
            J::Obj(out)
        }
        _ => J::Obj(Vec::new()),
    }
}

/// Fields whose schema is atomic (`x-kubernetes-map-type` or
/// `x-kubernetes-list-type: atomic`): a manager owns them whole.
const ATOMIC: &[&str] = &[
    "fieldRef",
    "secretKeyRef",
    "configMapKeyRef",
    "resourceFieldRef",
    "podSelector",
    "namespaceSelector",
    "ingress",
    "egress",
    "policyTypes",
    "capabilities",
    "seccompProfile",
];

/// The `k:{...}` key of a list item, from its merge keys.
fn list_key(item: &J) -> Option<String> {
    let keys: &[&str] = if item.get("containerPort").is_some() {
        &["containerPort", "protocol"]
    } else if item.get("port").is_some() && item.get("protocol").is_some() {
        &["port", "protocol"]
    } else if item.get("mountPath").is_some() {
        &["mountPath"]
    } else if item.get("name").is_some() {
        &["name"]
    } else if item.get("type").is_some() {
        &["type"]
    } else if item.get("ip").is_some() {
        &["ip"]
    } else if item.get("uid").is_some() {
        &["uid"]
    } else {
        return None;
    };
    let parts: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            item.get(k)
                .map(|v| format!("{}:{}", json_string(k), compact(v)))
        })
        .collect();
    Some(format!("k:{{{}}}", parts.join(",")))
}

/// `value` as compact JSON (keys in the given order).
fn compact(value: &J) -> String {
    let mut out = String::new();
    write_compact(&mut out, value);
    out
}

fn write_compact(out: &mut String, value: &J) {
    match value {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(i) => {
            let _ = write!(out, "{i}");
        }
        J::Str(text) => out.push_str(&json_string(text)),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(out, item);
            }
            out.push(']');
        }
        J::Obj(entries) => {
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(key));
                out.push(':');
                write_compact(out, item);
            }
            out.push('}');
        }
    }
}

/// A JSON string literal, escaped as Go's `encoding/json` does.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sorts every mapping by key, as kubectl prints them.
fn sort_keys(value: &mut J) {
    match value {
        J::Obj(entries) => {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.iter_mut().for_each(|(_, v)| sort_keys(v));
        }
        J::Arr(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

fn write_json(out: &mut String, value: &J, indent: usize) {
    match value {
        J::Arr(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, indent + 4);
                write_json(out, item, indent + 4);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push(']');
        }
        J::Obj(entries) if !entries.is_empty() => {
            out.push_str("{\n");
            for (i, (key, item)) in entries.iter().enumerate() {
                pad(out, indent + 4);
                out.push_str(&json_string(key));
                out.push_str(": ");
                write_json(out, item, indent + 4);
                out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push('}');
        }
        other => write_compact(out, other),
    }
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_yaml_document(out: &mut String, value: &J) {
    if let J::Obj(entries) = value {
        write_yaml_entries(out, entries, 0);
    }
}

/// Mapping entries at `indent`; the first line's indentation is already written
/// when `indent` continues a `- ` item (see [`write_yaml_items`]).
fn write_yaml_entries(out: &mut String, entries: &[(String, J)], indent: usize) {
    for (i, (key, item)) in entries.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str(&yaml_scalar(key));
        out.push(':');
        write_yaml_value(out, item, indent, true);
    }
}

/// Writes a value after `key:` (or after `- ` when `after_key` is false).
fn write_yaml_value(out: &mut String, value: &J, indent: usize, after_key: bool) {
    match value {
        J::Obj(entries) if !entries.is_empty() => {
            if after_key {
                out.push('\n');
                pad(out, indent + 2);
            }
            write_yaml_entries(out, entries, indent + 2);
        }
        J::Arr(items) if !items.is_empty() => {
            // kubectl does not indent a sequence under its key.
            out.push('\n');
            write_yaml_items(out, items, indent);
        }
        other => {
            if after_key {
                out.push(' ');
            }
            match other {
                J::Str(text) => out.push_str(&yaml_scalar(text)),
                J::Obj(_) => out.push_str("{}"),
                J::Arr(_) => out.push_str("[]"),
                scalar => write_compact(out, scalar),
            }
            out.push('\n');
        }
    }
}

fn write_yaml_items(out: &mut String, items: &[J], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            J::Arr(inner) if !inner.is_empty() => {
                out.push('\n');
                write_yaml_items(out, inner, indent + 2);
            }
            _ => write_yaml_value(out, item, indent, false),
        }
    }
}

/// A YAML scalar for a string: plain when YAML 1.1 reads it back as the
/// same string, double-quoted (JSON escapes) otherwise.
fn yaml_scalar(text: &str) -> String {
    let safe = text.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-' | b'_' | b'=' | b'+' | b'@')
    }) && text
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'/')
        && crate::scalar(text) == text;
    if safe {
        text.to_string()
    } else {
        json_string(text)
    }
}

/// The `List`: Namespaces, Pods, NetworkPolicies, Services (kubectl's order
/// for that resource list), each sorted by namespace and name.
fn kubectl_list(params: &Params, yaml: &str) -> J {
    let mut groups: [Vec<J>; 4] = Default::default();
    for document in parse_documents(yaml) {
        let node = document.expect("the generator writes valid YAML");
        let object = J::from_node(&node);
        let slot = match object.str("kind") {
            "Namespace" => 0,
            "Pod" => 1,
            "NetworkPolicy" => 2,
            "Service" => 3,
            _ => continue,
        };
        groups[slot].push(object);
    }
    let mut enricher = Enricher {
        rng: Rng(params.seed ^ 0x6b75_6265_6374_6c00),
        resource_version: 1_000_000,
    };
    let mut items = Vec::new();
    for (slot, group) in groups.iter_mut().enumerate() {
        group.sort_by(|a, b| {
            let key = |o: &J| {
                let m = o.get("metadata").cloned().unwrap_or(J::Null);
                (m.str("namespace").to_string(), m.str("name").to_string())
            };
            key(a).cmp(&key(b))
        });
        for mut object in group.drain(..) {
            match slot {
                0 => enricher.namespace(&mut object),
                1 => enricher.pod(&mut object),
                2 => enricher.policy(&mut object),
                _ => enricher.service(&mut object),
            }
            sort_keys(&mut object);
            items.push(object);
        }
    }
    obj(vec![
        ("apiVersion", s("v1")),
        ("items", J::Arr(items)),
        ("kind", s("List")),
        ("metadata", obj(vec![("resourceVersion", s(""))])),
    ])
}

impl Enricher {
    fn namespace(&mut self, object: &mut J) {
        let (_, created) = self.time(0);
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .cloned()
            .unwrap_or(J::Obj(Vec::new()));
        let fields = obj(vec![(
            "f:metadata",
            obj(vec![("f:labels", fields_of(&labels, true))]),
        )]);
        self.metadata(
            object,
            &created,
            vec![("kubectl-create", "Update", "", fields)],
        );
    }

    fn service(&mut self, object: &mut J) {
        let (_, created) = self.time(86_400);
        let spec = object.get("spec").cloned().unwrap_or(J::Obj(Vec::new()));
        let ip = spec.str("clusterIP").to_string();
        let load_balancer = spec.str("type") == "LoadBalancer";
        {
            let spec = object.child("spec");
            spec.set("clusterIPs", J::Arr(vec![s(ip)]));
            spec.set("internalTrafficPolicy", s("Cluster"));
            spec.set("ipFamilies", J::Arr(vec![s("IPv4")]));
            spec.set("ipFamilyPolicy", s("SingleStack"));
            spec.set("sessionAffinity", s("None"));
            if load_balancer {
                spec.set("allocateLoadBalancerNodePorts", J::Bool(true));
                spec.set("externalTrafficPolicy", s("Cluster"));
            }
        }
        object.set("status", obj(vec![("loadBalancer", J::Obj(Vec::new()))]));
        let metadata = object.get("metadata").cloned().unwrap_or(J::Null);
        let applied = self.last_applied(object);
        object.child("metadata").child("annotations").set(
            "kubectl.kubernetes.io/last-applied-configuration",
            s(applied),
        );
        let mut spec_fields = spec.clone();
        for key in ["clusterIP", "clusterIPs"] {
            if let J::Obj(entries) = &mut spec_fields {
                entries.retain(|(k, _)| k != key);
            }
        }
        let fields = obj(vec![
            (
                "f:metadata",
                obj(vec![
                    (
                        "f:annotations",
                        obj(vec![
                            (".", J::Obj(Vec::new())),
                            (
                                "f:kubectl.kubernetes.io/last-applied-configuration",
                                J::Obj(Vec::new()),
                            ),
                        ]),
                    ),
                    (
                        "f:labels",
                        fields_of(metadata.get("labels").unwrap_or(&J::Null), true),
                    ),
                ]),
            ),
            ("f:spec", fields_of(&spec_fields, false)),
        ]);
        self.metadata(
            object,
            &created,
            vec![("kubectl-client-side-apply", "Update", "", fields)],
        );
    }

    fn policy(&mut self, object: &mut J) {
        let (_, created) = self.time(2 * 86_400);
        let metadata = object.get("metadata").cloned().unwrap_or(J::Null);
        let spec = object.get("spec").cloned().unwrap_or(J::Null);
        let fields = obj(vec![
            (
                "f:metadata",
                obj(vec![(
                    "f:labels",
                    fields_of(metadata.get("labels").unwrap_or(&J::Null), true),
                )]),
            ),
            ("f:spec", fields_of(&spec, false)),
        ]);
        self.metadata(
            object,
            &created,
            vec![("netpol-synth", "Apply", "", fields)],
        );
    }

    /// The `last-applied-configuration` annotation `kubectl apply` writes:
    /// the manifest as compact JSON, without server-set fields.
    fn last_applied(&mut self, object: &J) -> String {
        let mut applied = object.clone();
        if let Some(J::Obj(entries)) = applied.get_mut("metadata") {
            entries.retain(|(k, _)| matches!(k.as_str(), "name" | "namespace" | "labels"));
        }
        if let J::Obj(entries) = &mut applied {
            entries.retain(|(k, _)| k != "status");
        }
        if let Some(J::Obj(entries)) = applied.get_mut("spec") {
            entries.retain(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "clusterIP"
                        | "clusterIPs"
                        | "internalTrafficPolicy"
                        | "ipFamilies"
                        | "ipFamilyPolicy"
                        | "sessionAffinity"
                        | "allocateLoadBalancerNodePorts"
                        | "externalTrafficPolicy"
                )
            });
        }
        sort_keys(&mut applied);
        format!("{}\n", compact(&applied))
    }

    fn pod(&mut self, object: &mut J) {
        let (created_at, created) = self.time(3 * 86_400);
        let metadata = object.get("metadata").cloned().unwrap_or(J::Null);
        let name = metadata.str("name").to_string();
        let _namespace = metadata.str("namespace").to_string();
        let labels = metadata
            .get("labels")
            .cloned()
            .unwrap_or(J::Obj(Vec::new()));
        let owner = match metadata.get("ownerReferences") {
            Some(J::Arr(owners)) => owners.first().cloned().unwrap_or(J::Null),
            _ => J::Null,
        };
        let owner_kind = owner.str("kind").to_string();
        let owner_name = owner.str("name").to_string();
        let app = match labels.str("app.kubernetes.io/name") {
            "" => labels.str("k8s-app").to_string(),
            app => app.to_string(),
        };
        let spec_in = object.get("spec").cloned().unwrap_or(J::Obj(Vec::new()));
        let node_name = spec_in.str("nodeName").to_string();
        let service_account = spec_in.str("serviceAccountName").to_string();
        let mut container = match spec_in.get("containers") {
            Some(J::Arr(containers)) => containers.first().cloned().unwrap_or(J::Null),
            _ => J::Null,
        };
        let container_name = container.str("name").to_string();
        let image = container.str("image").to_string();
        let ports: Vec<(String, i64)> = match container.get("ports") {
            Some(J::Arr(ports)) => ports
                .iter()
                .map(|p| {
                    let number = match p.get("containerPort") {
                        Some(J::Int(n)) => *n,
                        _ => 0,
                    };
                    (p.str("name").to_string(), number)
                })
                .collect(),
            _ => Vec::new(),
        };
        let token = format!("kube-api-access-{}", self.rng.name_suffix(5));
        let config_map = format!("{app}-config");

        // The container as its workload's template has it, completed.
        let env = self.env(&app, &config_map);
        container.set("env", env);
        if let Some((probe_port, is_http)) = ports
            .iter()
            .find(|(n, _)| n == "http" || n == "web")
            .map(|(n, _)| (s(n.clone()), true))
            .or_else(|| ports.first().map(|(_, number)| (J::Int(*number), false)))
        {
            let action = |path: &str| {
                if is_http {
                    (
                        "httpGet",
                        obj(vec![
                            ("path", s(path)),
                            ("port", probe_port.clone()),
                            ("scheme", s("HTTP")),
                        ]),
                    )
                } else {
                    ("tcpSocket", obj(vec![("port", probe_port.clone())]))
                }
            };
            let probe = |path: &str, delay: i64, failures: i64| {
                obj(vec![
                    action(path),
                    ("failureThreshold", J::Int(failures)),
                    ("initialDelaySeconds", J::Int(delay)),
                    ("periodSeconds", J::Int(10)),
                    ("successThreshold", J::Int(1)),
                    ("timeoutSeconds", J::Int(1)),
                ])
            };
            container.set("readinessProbe", probe("/readyz", 5, 3));
        }
        container.set(
            "securityContext",
            obj(vec![
                ("allowPrivilegeEscalation", J::Bool(false)),
                ("runAsNonRoot", J::Bool(true)),
            ]),
        );
        container.set("terminationMessagePath", s("/dev/termination-log"));
        container.set("terminationMessagePolicy", s("File"));
        container.set(
            "volumeMounts",
            J::Arr(vec![obj(vec![
                ("mountPath", s("/etc/app")),
                ("name", s("config")),
                ("readOnly", J::Bool(true)),
            ])]),
        );
        // What the controller manager writes (from the template), before admission.
        let mut template_spec = spec_in.clone();
        template_spec.set("containers", J::Arr(vec![container.clone()]));
        template_spec.set("dnsPolicy", s("ClusterFirst"));
        template_spec.set("enableServiceLinks", J::Bool(true));
        template_spec.set("schedulerName", s("default-scheduler"));
        template_spec.set(
            "securityContext",
            obj(vec![
                ("fsGroup", J::Int(65532)),
                ("seccompProfile", obj(vec![("type", s("RuntimeDefault"))])),
            ]),
        );
        template_spec.set("terminationGracePeriodSeconds", J::Int(30));
        template_spec.set(
            "volumes",
            J::Arr(vec![obj(vec![
                (
                    "configMap",
                    obj(vec![("defaultMode", J::Int(420)), ("name", s(&config_map))]),
                ),
                ("name", s("config")),
            ])]),
        );
        if let J::Obj(entries) = &mut template_spec {
            entries.retain(|(k, _)| k != "nodeName");
        }

        // Admission and the scheduler add the rest.
        let mut spec = template_spec.clone();
        spec.set("nodeName", s(&node_name));
        spec.set("preemptionPolicy", s("PreemptLowerPriority"));
        spec.set("priority", J::Int(0));
        spec.set("serviceAccount", s(&service_account));
        spec.set(
            "tolerations",
            J::Arr(
                ["not-ready", "unreachable"]
                    .iter()
                    .map(|taint| {
                        obj(vec![
                            ("effect", s("NoExecute")),
                            ("key", s(format!("node.kubernetes.io/{taint}"))),
                            ("operator", s("Exists")),
                            ("tolerationSeconds", J::Int(300)),
                        ])
                    })
                    .collect(),
            ),
        );
        if let Some(J::Arr(containers)) = spec.get_mut("containers")
            && let Some(first) = containers.first_mut()
            && let Some(J::Arr(mounts)) = first.get_mut("volumeMounts")
        {
            mounts.push(obj(vec![
                (
                    "mountPath",
                    s("/var/run/secrets/kubernetes.io/serviceaccount"),
                ),
                ("name", s(&token)),
                ("readOnly", J::Bool(true)),
            ]));
        }
        if let Some(J::Arr(volumes)) = spec.get_mut("volumes") {
            volumes.push(obj(vec![
                ("name", s(&token)),
                (
                    "projected",
                    obj(vec![
                        ("defaultMode", J::Int(420)),
                        (
                            "sources",
                            J::Arr(vec![
                                obj(vec![(
                                    "serviceAccountToken",
                                    obj(vec![
                                        ("expirationSeconds", J::Int(3607)),
                                        ("path", s("token")),
                                    ]),
                                )]),
                                obj(vec![(
                                    "configMap",
                                    obj(vec![
                                        (
                                            "items",
                                            J::Arr(vec![obj(vec![
                                                ("key", s("ca.crt")),
                                                ("path", s("ca.crt")),
                                            ])]),
                                        ),
                                        ("name", s("kube-root-ca.crt")),
                                    ]),
                                )]),
                                obj(vec![(
                                    "downwardAPI",
                                    obj(vec![(
                                        "items",
                                        J::Arr(vec![obj(vec![
                                            (
                                                "fieldRef",
                                                obj(vec![
                                                    ("apiVersion", s("v1")),
                                                    ("fieldPath", s("metadata.namespace")),
                                                ]),
                                            ),
                                            ("path", s("namespace")),
                                        ])]),
                                    )]),
                                )]),
                            ]),
                        ),
                    ]),
                ),
            ]));
        }
        object.set("spec", spec);

        // The kubelet's status.
        let status_in = object.get("status").cloned().unwrap_or(J::Obj(Vec::new()));
        let started_at = created_at + 2 + self.rng.below(5) as u64;
        let started = timestamp(started_at);
        let ready_at = timestamp(started_at + 5 + self.rng.below(20) as u64);
        let condition = |kind: &str, at: &str| {
            obj(vec![
                ("lastProbeTime", J::Null),
                ("lastTransitionTime", s(at)),
                ("status", s("True")),
                ("type", s(kind)),
            ])
        };
        let digest: String = (0..4)
            .map(|_| format!("{:016x}", self.rng.next_u64()))
            .collect();
        let container_id: String = (0..4)
            .map(|_| format!("{:016x}", self.rng.next_u64()))
            .collect();
        let repository = image.split(':').next().unwrap_or_default().to_string();
        let mut status = status_in;
        status.set(
            "conditions",
            J::Arr(vec![
                condition("PodReadyToStartContainers", &started),
                condition("Initialized", &created),
                condition("Ready", &ready_at),
                condition("ContainersReady", &ready_at),
                condition("PodScheduled", &created),
            ]),
        );
        status.set(
            "containerStatuses",
            J::Arr(vec![obj(vec![
                ("containerID", s(format!("containerd://{container_id}"))),
                ("image", s(&image)),
                ("imageID", s(format!("{repository}@sha256:{digest}"))),
                ("lastState", J::Obj(Vec::new())),
                ("name", s(&container_name)),
                ("ready", J::Bool(true)),
                ("restartCount", J::Int(0)),
                ("started", J::Bool(true)),
                (
                    "state",
                    obj(vec![("running", obj(vec![("startedAt", s(&started))]))]),
                ),
            ])]),
        );
        status.set("startTime", s(&created));

        // Metadata: what the API server and the controllers add.
        {
            let metadata = object.child("metadata");
            if owner_kind == "ReplicaSet" {
                metadata.set("generateName", s(format!("{owner_name}-")));
            }
            let annotations = metadata.child("annotations");
            annotations.set("kubectl.kubernetes.io/restartedAt", s(&created));
            if ports.iter().any(|(n, _)| n == "metrics") {
                let metrics = ports.iter().find(|(n, _)| n == "metrics").map(|p| p.1);
                annotations.set("prometheus.io/scrape", s("true"));
                annotations.set("prometheus.io/port", s(metrics.unwrap_or(0).to_string()));
            }
        }
        let metadata_now = object.get("metadata").cloned().unwrap_or(J::Null);
        let mut controller_metadata = Vec::new();
        if let Some(annotations) = metadata_now.get("annotations") {
            controller_metadata.push(("f:annotations", fields_of(annotations, true)));
        }
        if owner_kind == "ReplicaSet" {
            controller_metadata.push(("f:generateName", J::Obj(Vec::new())));
        }
        controller_metadata.push(("f:labels", fields_of(&labels, true)));
        if let Some(owners) = metadata_now.get("ownerReferences") {
            controller_metadata.push(("f:ownerReferences", fields_of(owners, true)));
        }
        let controller_fields = obj(vec![
            ("f:metadata", obj(controller_metadata)),
            ("f:spec", fields_of(&template_spec, false)),
        ]);
        let mut status_fields = status.clone();
        if let J::Obj(entries) = &mut status_fields {
            entries.retain(|(k, _)| k != "qosClass");
        }
        let kubelet_fields = obj(vec![("f:status", fields_of(&status_fields, false))]);
        object.set("status", status);
        let name_hint = if name.is_empty() { "pod" } else { "kubelet" };
        self.metadata(
            object,
            &created,
            vec![
                ("kube-controller-manager", "Update", "", controller_fields),
                (name_hint, "Update", "status", kubelet_fields),
            ],
        );
    }

    /// Ten environment variables, five of them from the downward API, a
    /// Secret and a ConfigMap.
    fn env(&mut self, app: &str, config_map: &str) -> J {
        let plain = |name: &str, value: String| obj(vec![("name", s(name)), ("value", s(value))]);
        let field = |name: &str, path: &str| {
            obj(vec![
                ("name", s(name)),
                (
                    "valueFrom",
                    obj(vec![(
                        "fieldRef",
                        obj(vec![("apiVersion", s("v1")), ("fieldPath", s(path))]),
                    )]),
                ),
            ])
        };
        let upper = app.to_ascii_uppercase().replace(['-', '.'], "_");
        J::Arr(vec![
            plain("APP_NAME", app.to_string()),
            plain(
                "LOG_LEVEL",
                ["info", "debug", "warn"][self.rng.below(3)].into(),
            ),
            plain("LISTEN_ADDRESS", "0.0.0.0:8080".into()),
            plain(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://otel-collector.monitoring.svc.cluster.local:4317".into(),
            ),
            plain(
                "FEATURE_FLAGS",
                format!("{upper}_CACHE=on&{upper}_TRACING=<sampled>"),
            ),
            field("POD_NAME", "metadata.name"),
            field("POD_NAMESPACE", "metadata.namespace"),
            field("POD_IP", "status.podIP"),
            obj(vec![
                ("name", s("DATABASE_PASSWORD")),
                (
                    "valueFrom",
                    obj(vec![(
                        "secretKeyRef",
                        obj(vec![
                            ("key", s("password")),
                            ("name", s(format!("{app}-db"))),
                        ]),
                    )]),
                ),
            ]),
            obj(vec![
                ("name", s("UPSTREAM_URL")),
                (
                    "valueFrom",
                    obj(vec![(
                        "configMapKeyRef",
                        obj(vec![("key", s("upstream")), ("name", s(config_map))]),
                    )]),
                ),
            ]),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_valid_dates() {
        assert_eq!(timestamp(0), "2025-01-01T00:00:00Z");
        assert_eq!(timestamp(31 * 86_400 + 3661), "2025-02-01T01:01:01Z");
        assert_eq!(timestamp(364 * 86_400), "2025-12-31T00:00:00Z");
    }

    #[test]
    fn json_strings_escape_as_go_does() {
        assert_eq!(json_string("a\"b<&>\n"), r#""a\"b\u003c\u0026\u003e\n""#);
    }

    #[test]
    fn list_keys_follow_merge_keys() {
        let port = obj(vec![
            ("containerPort", J::Int(80)),
            ("name", s("http")),
            ("protocol", s("TCP")),
        ]);
        assert_eq!(
            list_key(&port).unwrap(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
    }

    #[test]
    fn yaml_scalars_quote_what_yaml_would_retype() {
        assert_eq!(yaml_scalar("api"), "api");
        assert_eq!(yaml_scalar("1.2"), "\"1.2\"");
        assert_eq!(yaml_scalar("k:{\"a\":1}"), "\"k:{\\\"a\\\":1}\"");
        assert_eq!(yaml_scalar("on"), "\"on\"");
        assert_eq!(yaml_scalar(""), "\"\"");
    }
}
