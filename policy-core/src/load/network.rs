//! Loading the objects that say how traffic reaches pods: Services,
//! EndpointSlices, Nodes, Ingresses and IngressClasses.
//!
//! Each is validated as the API server would (core/v1 `ValidateService`,
//! discovery/v1 and networking/v1 validation); an invalid field is reported
//! with its path and left out, and the rest of the object is kept, since the
//! question "what does this expose?" is still worth answering about it.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node as K8sNode, Service as K8sService};
use k8s_openapi::api::discovery::v1::EndpointSlice as K8sEndpointSlice;
use k8s_openapi::api::networking::v1::{
    Ingress as K8sIngress, IngressBackend, IngressClass as K8sIngressClass,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Loader, Located, Origin, namespace_of};
use crate::cluster::{
    BackendPort, EndpointSlice, Ingress, IngressClass, IngressRoute, Node, NodeAddress,
    SERVICE_NAME_LABEL, Service, ServicePort, ServiceType, SliceEndpoint, SlicePort, TargetPort,
    TrafficPolicy,
};
use crate::diagnostic::{DiagnosticKind, ObjectRef, Severity};
use crate::ipset::{Cidr, IpSet};
use crate::labels::Labels;
use crate::path::FieldPath;
use crate::ports::Protocol;
use crate::validate;

/// The annotation that marks the default IngressClass.
pub const DEFAULT_INGRESS_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The annotation older Ingresses name their class with.
pub const LEGACY_INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Reports problems of one object at its fields.
struct Reporter<'l, 'a> {
    loader: &'l mut Loader,
    origin: Option<&'a Origin<'a>>,
    object: ObjectRef,
}

impl Reporter<'_, '_> {
    fn error(&mut self, path: FieldPath, message: String) {
        self.report(Severity::Error, path, message);
    }

    fn report(&mut self, severity: Severity, path: FieldPath, message: String) {
        let kind = match severity {
            Severity::Error => DiagnosticKind::InvalidValue,
            _ => DiagnosticKind::Questionable,
        };
        self.loader.push(
            severity,
            kind,
            message,
            Some(Located::new(self.origin, Some(&self.object), path)),
        );
    }

    fn ip(&mut self, path: FieldPath, text: &str) -> Option<IpAddr> {
        match text.parse::<IpAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                self.error(
                    path,
                    format!("{text:?} is not an IP address; it is ignored"),
                );
                None
            }
        }
    }

    fn protocol(&mut self, path: FieldPath, text: Option<&str>) -> Option<Protocol> {
        match text {
            None => Some(Protocol::Tcp),
            Some(text) => Protocol::from_kubernetes(text).or_else(|| {
                self.error(
                    path,
                    format!("{text:?} is not a supported protocol (TCP, UDP or SCTP); the port is ignored"),
                );
                None
            }),
        }
    }

    fn port_number(&mut self, path: FieldPath, value: i32, what: &str) -> Option<u16> {
        match u16::try_from(value).ok().filter(|p| *p >= 1) {
            Some(port) => Some(port),
            None => {
                self.error(
                    path,
                    format!("{what} {value} is not a valid port number (1-65535); it is ignored"),
                );
                None
            }
        }
    }
}

fn parse_traffic_policy(text: Option<&str>) -> Result<TrafficPolicy, String> {
    match text {
        None | Some("Cluster") => Ok(TrafficPolicy::Cluster),
        Some("Local") => Ok(TrafficPolicy::Local),
        Some(other) => Err(format!(
            "{other:?} is not a traffic policy: use Cluster or Local; Cluster is assumed"
        )),
    }
}

impl Loader {
    pub(super) fn add_service(
        &mut self,
        object: K8sService,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let namespace = namespace_of(&object.metadata);
        let name = object.metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "Service".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, &object.metadata);
        let mut report = Reporter {
            loader: self,
            origin,
            object: object_ref.clone(),
        };
        if let Err(message) = validate::dns1123_label(&name) {
            let message = if name.is_empty() {
                "a Service needs a name; it is left out".to_string()
            } else {
                format!("{message}; the Service is left out")
            };
            report.error(FieldPath::parse("metadata.name"), message);
            return;
        }
        if !self.first_of_its_name("Service", &namespace, &name, origin, Some(&object_ref)) {
            return;
        }
        let mut report = Reporter {
            loader: self,
            origin,
            object: object_ref.clone(),
        };
        let spec = object.spec.clone().unwrap_or_default();
        let at = FieldPath::parse;
        let service_type = match spec.type_.as_deref() {
            None => ServiceType::ClusterIp,
            Some(text) => ServiceType::from_kubernetes(text).unwrap_or_else(|| {
                report.error(
                    at("spec.type"),
                    format!("{text:?} is not a Service type: use ClusterIP, NodePort, LoadBalancer or ExternalName; ClusterIP is assumed"),
                );
                ServiceType::ClusterIp
            }),
        };

        // Ports (ValidateService: names required and unique when there are
        // several, (port, protocol) unique, targetPort a number or IANA name).
        let mut ports: Vec<ServicePort> = Vec::new();
        let port_count = spec.ports.as_ref().map_or(0, Vec::len);
        for (index, port) in spec.ports.iter().flatten().enumerate() {
            let path = at("spec.ports").index(index);
            let Some(number) = report.port_number(path.key("port"), port.port, "port") else {
                continue;
            };
            let Some(protocol) = report.protocol(path.key("protocol"), port.protocol.as_deref())
            else {
                continue;
            };
            match &port.name {
                Some(name) => {
                    if let Err(message) = validate::dns1123_label(name) {
                        report.error(path.key("name"), message);
                    }
                    if ports.iter().any(|p| p.name.as_ref() == Some(name)) {
                        report.error(
                            path.key("name"),
                            format!("duplicate port name {name:?}: each port of a Service needs its own name"),
                        );
                    }
                }
                None if port_count > 1 => report.error(
                    path.key("name"),
                    "a Service with several ports must name each one".to_string(),
                ),
                None => {}
            }
            if ports
                .iter()
                .any(|p| p.port == number && p.protocol == protocol)
            {
                report.error(
                    path.key("port"),
                    format!("duplicate {protocol} port {number}: the API server rejects two entries with the same port and protocol; this one is ignored"),
                );
                continue;
            }
            let target_port = match &port.target_port {
                None => TargetPort::Number(number),
                Some(IntOrString::Int(0)) => TargetPort::Number(number),
                Some(IntOrString::Int(target)) => {
                    match report.port_number(path.key("targetPort"), *target, "targetPort") {
                        Some(target) => TargetPort::Number(target),
                        None => continue,
                    }
                }
                Some(IntOrString::String(name)) => match validate::port_name(name) {
                    Ok(()) => TargetPort::Name(name.clone()),
                    Err(message) => {
                        report.error(
                            path.key("targetPort"),
                            format!("{message}; the port is ignored"),
                        );
                        continue;
                    }
                },
            };
            let node_port = match port.node_port {
                None | Some(0) => None,
                Some(value) => {
                    if !service_type.has_node_ports() {
                        report.error(
                            path.key("nodePort"),
                            format!("nodePort may only be set on NodePort and LoadBalancer Services, not {service_type}; it is ignored"),
                        );
                        None
                    } else {
                        report.port_number(path.key("nodePort"), value, "nodePort")
                    }
                }
            };
            ports.push(ServicePort {
                name: port.name.clone(),
                port: number,
                target_port,
                protocol,
                node_port,
            });
        }

        // Addresses.
        let mut headless = false;
        let mut cluster_ips = Vec::new();
        let listed: Vec<(FieldPath, &String)> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips
                .iter()
                .enumerate()
                .map(|(i, ip)| (at("spec.clusterIPs").index(i), ip))
                .collect(),
            _ => spec
                .cluster_ip
                .iter()
                .map(|ip| (at("spec.clusterIP"), ip))
                .collect(),
        };
        for (path, text) in listed {
            match text.as_str() {
                "None" => headless = true,
                "" => {}
                _ => cluster_ips.extend(report.ip(path, text)),
            }
        }
        if headless && service_type.has_node_ports() {
            report.error(
                at("spec.clusterIP"),
                format!("a {service_type} Service cannot be headless (clusterIP: None)"),
            );
            headless = false;
        }
        let mut external_ips = Vec::new();
        for (index, text) in spec.external_ips.iter().flatten().enumerate() {
            external_ips.extend(report.ip(at("spec.externalIPs").index(index), text));
        }
        let mut load_balancer_ips = Vec::new();
        let mut load_balancer_hostnames = Vec::new();
        if let Some(text) = spec.load_balancer_ip.as_deref().filter(|t| !t.is_empty()) {
            load_balancer_ips.extend(report.ip(at("spec.loadBalancerIP"), text));
        }
        let lb_status = object
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for (index, ingress) in lb_status.into_iter().flatten().enumerate() {
            let path = at("status.loadBalancer.ingress").index(index);
            if let Some(ip) = ingress.ip.as_deref().filter(|t| !t.is_empty())
                && let Some(ip) = report.ip(path.key("ip"), ip)
                && !load_balancer_ips.contains(&ip)
            {
                load_balancer_ips.push(ip);
            }
            if let Some(hostname) = ingress.hostname.as_deref().filter(|t| !t.is_empty()) {
                load_balancer_hostnames.push(hostname.to_string());
            }
        }
        let load_balancer_source_ranges = match &spec.load_balancer_source_ranges {
            Some(ranges) if !ranges.is_empty() => {
                if service_type != ServiceType::LoadBalancer {
                    report.error(
                        at("spec.loadBalancerSourceRanges"),
                        format!("loadBalancerSourceRanges may only be set on LoadBalancer Services, not {service_type}; it is ignored"),
                    );
                    None
                } else {
                    let mut set = IpSet::empty();
                    for (index, text) in ranges.iter().enumerate() {
                        match Cidr::parse(text.trim()) {
                            Ok(parsed) => set.union_with(&IpSet::from_cidr(parsed.cidr)),
                            Err(message) => report.error(
                                at("spec.loadBalancerSourceRanges").index(index),
                                format!("{message}; the range is ignored"),
                            ),
                        }
                    }
                    Some(set)
                }
            }
            _ => None,
        };
        let externally_reachable = service_type.has_node_ports() || !external_ips.is_empty();
        let external_traffic_policy = match parse_traffic_policy(
            spec.external_traffic_policy.as_deref(),
        ) {
            Ok(policy) => {
                if policy == TrafficPolicy::Local && !externally_reachable {
                    report.error(
                            at("spec.externalTrafficPolicy"),
                            "externalTrafficPolicy may only be set on Services reachable from outside (NodePort, LoadBalancer, or with externalIPs)".to_string(),
                        );
                }
                policy
            }
            Err(message) => {
                report.error(at("spec.externalTrafficPolicy"), message);
                TrafficPolicy::Cluster
            }
        };
        let internal_traffic_policy = parse_traffic_policy(spec.internal_traffic_policy.as_deref())
            .unwrap_or_else(|message| {
                report.error(at("spec.internalTrafficPolicy"), message);
                TrafficPolicy::Cluster
            });
        let external_name = spec.external_name.clone().filter(|n| !n.is_empty());
        if service_type == ServiceType::ExternalName {
            match &external_name {
                None => report.error(
                    at("spec.externalName"),
                    "an ExternalName Service needs spec.externalName".to_string(),
                ),
                Some(name) => {
                    if let Err(message) = validate::dns1123_subdomain(name.trim_end_matches('.')) {
                        report.error(at("spec.externalName"), message);
                    }
                }
            }
        }
        let mut selector = spec.selector.clone().filter(|s| !s.is_empty());
        if let Some(labels) = &selector {
            for (key, value) in labels {
                for message in [
                    validate::label_key(key).err(),
                    validate::label_value(value).err(),
                ]
                .into_iter()
                .flatten()
                {
                    report.error(at("spec.selector").key(key), message);
                }
            }
        }
        if service_type == ServiceType::ExternalName {
            // "Ignored if type is ExternalName" (core/v1 ServiceSpec.selector).
            selector = None;
        }
        self.services.push(Service {
            namespace,
            name,
            service_type,
            selector: selector.map(Labels::from),
            ports,
            cluster_ips,
            headless,
            external_ips,
            load_balancer_ips,
            load_balancer_hostnames,
            load_balancer_source_ranges,
            external_traffic_policy,
            internal_traffic_policy,
            external_name,
            publish_not_ready_addresses: spec.publish_not_ready_addresses.unwrap_or(false),
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }

    pub(super) fn add_node(
        &mut self,
        object: K8sNode,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "Node".into(),
            namespace: String::new(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, &object.metadata);
        if let Err(message) = validate::dns1123_subdomain(&name) {
            let message = if name.is_empty() {
                "a Node needs a name; it is left out".to_string()
            } else {
                format!("{message}; the Node is left out")
            };
            Reporter {
                loader: self,
                origin,
                object: object_ref,
            }
            .error(FieldPath::parse("metadata.name"), message);
            return;
        }
        if !self.first_of_its_name("Node", "", &name, origin, Some(&object_ref)) {
            return;
        }
        let labels = self.checked_labels(&object.metadata, origin, &object_ref);
        let mut report = Reporter {
            loader: self,
            origin,
            object: object_ref,
        };
        let mut addresses = Vec::new();
        let listed = object.status.as_ref().and_then(|s| s.addresses.as_ref());
        for (index, address) in listed.into_iter().flatten().enumerate() {
            if address.type_.ends_with("DNS") || address.type_ == "Hostname" {
                continue;
            }
            let path = FieldPath::parse("status.addresses")
                .index(index)
                .key("address");
            if let Some(ip) = report.ip(path, &address.address)
                && !addresses.iter().any(|a: &NodeAddress| a.address == ip)
            {
                addresses.push(NodeAddress {
                    kind: address.type_.clone(),
                    address: ip,
                });
            }
        }
        let mut pod_cidrs = Vec::new();
        let spec = object.spec.clone().unwrap_or_default();
        let listed: Vec<(FieldPath, String)> = match spec.pod_cidrs {
            Some(cidrs) if !cidrs.is_empty() => cidrs
                .into_iter()
                .enumerate()
                .map(|(i, c)| (FieldPath::parse("spec.podCIDRs").index(i), c))
                .collect(),
            _ => spec
                .pod_cidr
                .into_iter()
                .map(|c| (FieldPath::parse("spec.podCIDR"), c))
                .collect(),
        };
        for (path, text) in listed {
            match Cidr::parse(&text) {
                Ok(parsed) => pod_cidrs.push(parsed.cidr),
                Err(message) => report.error(path, format!("{message}; it is ignored")),
            }
        }
        self.nodes.push(Node {
            name,
            labels,
            addresses,
            pod_cidrs,
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }

    pub(super) fn add_endpoint_slice(
        &mut self,
        object: K8sEndpointSlice,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let namespace = namespace_of(&object.metadata);
        let name = object.metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "EndpointSlice".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, &object.metadata);
        if !self.named_once("EndpointSlice", &namespace, &name, origin, &object_ref) {
            return;
        }
        let labels = self.checked_labels(&object.metadata, origin, &object_ref);
        let mut report = Reporter {
            loader: self,
            origin,
            object: object_ref,
        };
        let address_type = object.address_type.as_str();
        if !matches!(address_type, "IPv4" | "IPv6" | "FQDN") {
            report.error(
                FieldPath::parse("addressType"),
                format!("{address_type:?} is not an address type: use IPv4, IPv6 or FQDN"),
            );
        }
        let mut endpoints = Vec::new();
        for (index, endpoint) in object.endpoints.iter().flatten().enumerate() {
            let path = FieldPath::parse("endpoints").index(index);
            let mut addresses = Vec::new();
            if address_type != "FQDN" {
                for (a, text) in endpoint.addresses.iter().enumerate() {
                    let Some(ip) = report.ip(path.key("addresses").index(a), text) else {
                        continue;
                    };
                    if ip.is_ipv4() != (address_type == "IPv4") {
                        report.error(
                            path.key("addresses").index(a),
                            format!("{ip} is not an {address_type} address; it is ignored"),
                        );
                        continue;
                    }
                    addresses.push(ip);
                }
            }
            let conditions = endpoint.conditions.as_ref();
            endpoints.push(SliceEndpoint {
                addresses,
                ready: conditions.and_then(|c| c.ready).unwrap_or(true),
                node: endpoint.node_name.clone().filter(|n| !n.is_empty()),
                pod: endpoint
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.clone()),
            });
        }
        let mut ports = Vec::new();
        for (index, port) in object.ports.iter().flatten().enumerate() {
            let path = FieldPath::parse("ports").index(index);
            let Some(protocol) = report.protocol(path.key("protocol"), port.protocol.as_deref())
            else {
                continue;
            };
            let number = match port.port {
                None => None,
                Some(value) => match report.port_number(path.key("port"), value, "port") {
                    Some(number) => Some(number),
                    None => continue,
                },
            };
            ports.push(SlicePort {
                name: port.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol,
            });
        }
        self.endpoint_slices.push(EndpointSlice {
            namespace,
            name,
            service: labels.get(SERVICE_NAME_LABEL).map(|name| name.to_string()),
            endpoints,
            ports,
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }

    pub(super) fn add_ingress(
        &mut self,
        object: K8sIngress,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let namespace = namespace_of(&object.metadata);
        let name = object.metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "Ingress".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, &object.metadata);
        if !self.named_once("Ingress", &namespace, &name, origin, &object_ref) {
            return;
        }
        let mut report = Reporter {
            loader: self,
            origin,
            object: object_ref,
        };
        let spec = object.spec.clone().unwrap_or_default();
        let class = spec.ingress_class_name.clone().or_else(|| {
            object
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_INGRESS_CLASS_ANNOTATION).cloned())
        });
        let mut routes = Vec::new();
        let mut backend = |report: &mut Reporter<'_, '_>,
                           path: FieldPath,
                           backend: &IngressBackend,
                           host: Option<String>,
                           route_path: Option<String>| {
            match (&backend.service, &backend.resource) {
                (Some(service), None) => {
                    let port = service.port.as_ref();
                    let port = match (
                        port.and_then(|p| p.number),
                        port.and_then(|p| p.name.clone()),
                    ) {
                        (Some(number), None) => report
                            .port_number(
                                path.key("service").key("port").key("number"),
                                number,
                                "port",
                            )
                            .map(BackendPort::Number),
                        (None, Some(name)) => Some(BackendPort::Name(name)),
                        _ => {
                            report.error(
                                path.key("service").key("port"),
                                "a Service backend needs exactly one of port.name and port.number; the backend is ignored".to_string(),
                            );
                            None
                        }
                    };
                    if let Some(port) = port {
                        routes.push(IngressRoute {
                            host,
                            path: route_path,
                            service: service.name.clone(),
                            port,
                            source: report.origin.map(|o| o.locate(&path)),
                        });
                    }
                }
                (None, Some(_)) => report.report(
                    Severity::Warning,
                    path.key("resource"),
                    "a resource backend is not a Service; netpol does not follow it".to_string(),
                ),
                _ => report.error(
                    path,
                    "a backend needs exactly one of service and resource; it is ignored"
                        .to_string(),
                ),
            }
        };
        for (r, rule) in spec.rules.iter().flatten().enumerate() {
            let rule_path = FieldPath::parse("spec.rules").index(r);
            let Some(http) = &rule.http else { continue };
            for (p, path) in http.paths.iter().enumerate() {
                let path_path = rule_path.key("http").key("paths").index(p);
                if !matches!(
                    path.path_type.as_str(),
                    "Exact" | "Prefix" | "ImplementationSpecific"
                ) {
                    report.error(
                        path_path.key("pathType"),
                        format!(
                            "{:?} is not a path type: use Exact, Prefix or ImplementationSpecific",
                            path.path_type
                        ),
                    );
                }
                backend(
                    &mut report,
                    path_path.key("backend"),
                    &path.backend,
                    rule.host.clone(),
                    Some(path.path.clone().unwrap_or_else(|| "/".to_string())),
                );
            }
        }
        if let Some(default) = &spec.default_backend {
            backend(
                &mut report,
                FieldPath::parse("spec.defaultBackend"),
                default,
                None,
                None,
            );
        }
        self.ingresses.push(Ingress {
            namespace,
            name,
            class,
            routes,
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }

    pub(super) fn add_ingress_class(
        &mut self,
        object: K8sIngressClass,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "IngressClass".into(),
            namespace: String::new(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, &object.metadata);
        if !self.named_once("IngressClass", "", &name, origin, &object_ref) {
            return;
        }
        let controller = object
            .spec
            .as_ref()
            .and_then(|s| s.controller.clone())
            .unwrap_or_default();
        if controller.is_empty() {
            Reporter {
                loader: self,
                origin,
                object: object_ref,
            }
            .error(
                FieldPath::parse("spec.controller"),
                "an IngressClass needs spec.controller".to_string(),
            );
        }
        let default = object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_INGRESS_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true");
        self.ingress_classes.push(IngressClass {
            name,
            controller,
            default,
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }
}
