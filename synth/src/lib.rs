//! # netpol-synth: synthetic Kubernetes clusters for tests and benchmarks
//!
//! [`generate`] writes a realistic cluster as one multi-document YAML stream,
//! the way `kubectl get -o yaml` and hand-written manifests look:
//!
//! - **Namespaces** with `team`, `env`, `app.kubernetes.io/part-of`,
//!   `shared-apis` and Pod Security labels, plus three infrastructure
//!   namespaces: `kube-system` (CoreDNS pods labelled `k8s-app: kube-dns`),
//!   `monitoring` (Prometheus, an OpenTelemetry collector, a backup agent) and
//!   `ingress-nginx` (the ingress controller).
//! - **Workloads** in a chain of tiers per namespace (`web → gateway → api →
//!   cache → db`): Deployments for the stateless tiers, StatefulSets for
//!   `cache` and `db`, each with a ClusterIP Service.
//! - **Pods** for every replica, as the API server would show them:
//!   `ownerReferences` (a ReplicaSet `<deployment>-<hash>` for Deployment
//!   pods, the StatefulSet for StatefulSet pods), `pod-template-hash` or
//!   `statefulset.kubernetes.io/pod-name` labels, `spec.nodeName` spread
//!   round-robin over the nodes, a unique `status.podIP` from the node's slice
//!   of `10.0.0.0/8`, and containers with named ports (`http`, `grpc`,
//!   `metrics`, `redis`, `postgres`, ...).
//! - **NetworkPolicies**, exactly [`Params::policies`] of them, spread evenly
//!   over the application namespaces. Each namespace gets, in this order of
//!   priority: default-deny ingress, default-deny egress and DNS egress to
//!   kube-dns (UDP and TCP 53); the app-to-app chain (each tier accepts its
//!   upstream tier and may reach its downstream tiers, on named ports); then
//!   an even sample of per-workload policies: metrics scraping from the
//!   monitoring namespace, ingress from the ingress controller, node health
//!   checks (`ipBlock`), cross-namespace consumers and shared APIs
//!   (`namespaceSelector` + `podSelector`, `matchExpressions` with `In`,
//!   `NotIn` and `Exists`), external HTTPS (`ipBlock` with `except`), partner
//!   APIs with `endPort` ranges, replication between a StatefulSet's own pods
//!   (policies with both policy types), backups and telemetry. A namespace
//!   whose share is larger than all of that gets "allow from namespace X"
//!   policies, one per workload and other namespace.
//!
//! [`generate_in`] writes the same cluster in other [`Format`]s: the `List`
//! that `kubectl get namespaces,pods,networkpolicies,services -A -o json`
//! (or `-o yaml`) prints, with full objects as the API server returns them
//! (`managedFields`, status, environment, volumes; about 11 KB of JSON per
//! pod).
//!
//! Output is a pure function of [`Params`]: the seed drives hashes, UIDs,
//! versions and a few labels through a small SplitMix64 generator, and
//! nothing reads the clock or the OS.
//!
//! ```
//! use netpol_synth::{Params, generate};
//!
//! let params = Params::scale(100, 50);
//! let yaml = generate(&params);
//! let counts = params.expected();
//! assert_eq!(counts.pods, 100);
//! assert_eq!(yaml.matches("\nkind: Pod\n").count(), counts.pods);
//! assert_eq!(yaml.matches("\nkind: NetworkPolicy\n").count(), 50);
//! ```

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

mod kubectl;

pub use kubectl::{Format, generate_in, generate_kubectl_json};

/// Pods in the infrastructure namespaces (CoreDNS 2, Prometheus 2,
/// OpenTelemetry collector 2, backup agent 1, ingress controller 2).
pub const INFRA_PODS: usize = 9;
/// The infrastructure namespaces: `kube-system`, `monitoring`, `ingress-nginx`.
pub const INFRA_NAMESPACES: usize = 3;
const INFRA_DEPLOYMENTS: usize = 4;
const INFRA_STATEFULSETS: usize = 1;
const INFRA_SERVICES: usize = 5;

/// What to generate. Build one with [`Params::scale`] or a preset, then
/// adjust fields as needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Seed of the pseudo-random choices (hashes, UIDs, versions, which
    /// namespaces offer shared APIs). Same parameters, same output.
    pub seed: u64,
    /// Application namespaces (the infrastructure namespaces come on top).
    /// At least 1.
    pub namespaces: usize,
    /// Workloads (Deployments and StatefulSets) per application namespace.
    pub workloads_per_namespace: usize,
    /// Replicas (pods) of each application workload.
    pub replicas: usize,
    /// Additional pods, spread one per workload from the first workload on,
    /// so that a total pod count can be hit exactly.
    pub extra_replicas: usize,
    /// Nodes the pods are spread over (round-robin). At least 1.
    pub nodes: usize,
    /// The exact number of NetworkPolicies to write (at most 3 per namespace
    /// when there are no workloads).
    pub policies: usize,
    /// Write a Service per workload (Services do not change reachability,
    /// but make the input look like a real cluster dump).
    pub services: bool,
    /// Make every application workload a StatefulSet, whose pods each carry
    /// a unique `statefulset.kubernetes.io/pod-name` label: every pod is its
    /// own class, the model's worst case.
    pub stateful_only: bool,
}

impl Default for Params {
    /// [`Params::small`].
    fn default() -> Self {
        Params::small()
    }
}

impl Params {
    /// Parameters for about `pods` pods in total (exact when `pods` is at
    /// least [`INFRA_PODS`] + 2) and exactly `policies` NetworkPolicies.
    ///
    /// Replicas are 3 (1 below 30 application pods); namespaces
    /// hold between 5 and 20 workloads (growing with the square root of the
    /// workload count); there is a node per 30 pods (at least 3).
    pub fn scale(pods: usize, policies: usize) -> Params {
        let app = pods.saturating_sub(INFRA_PODS).max(2);
        let replicas = if app < 30 { 1 } else { 3 };
        let workloads = (app / replicas).max(1);
        let per_namespace = ((workloads as f64).sqrt() as usize / 2)
            .clamp(5, 20)
            .min(workloads);
        let namespaces = (workloads / per_namespace).max(1);
        let extra_replicas = app - namespaces * per_namespace * replicas;
        Params {
            seed: 0x6e65_7470_6f6c,
            namespaces,
            workloads_per_namespace: per_namespace,
            replicas,
            extra_replicas,
            nodes: (pods / 30).max(3),
            policies,
            services: true,
            stateful_only: false,
        }
    }

    /// The model's worst case at about `pods` pods and exactly `policies`
    /// policies: every pod its own class ([`Params::stateful_only`]), and a
    /// node per 110 pods (the kubelet's default pod limit).
    pub fn worst_case(pods: usize, policies: usize) -> Params {
        Params {
            stateful_only: true,
            nodes: pods.div_ceil(110).max(3),
            ..Params::scale(pods, policies)
        }
    }

    /// About a hundred pods and a hundred policies: `scale(100, 100)`.
    pub fn small() -> Params {
        Params::scale(100, 100)
    }

    /// `scale(1_000, 1_000)`.
    pub fn medium() -> Params {
        Params::scale(1_000, 1_000)
    }

    /// `scale(10_000, 10_000)`.
    pub fn large() -> Params {
        Params::scale(10_000, 10_000)
    }

    /// The realistic mix at about `pods` pods and exactly `policies`
    /// policies, with a node per 110 pods (the kubelet's default pod
    /// limit), as the per-node targets of the scale work assume.
    pub fn realistic(pods: usize, policies: usize) -> Params {
        Params {
            nodes: pods.div_ceil(110).max(3),
            ..Params::scale(pods, policies)
        }
    }

    /// A named preset: `small`, `1k`, `10k` (the benchmark sizes), and for
    /// 10k, 50k and 100k pods (as many policies) `-realistic` ([`Params::realistic`])
    /// and `-worst` ([`Params::worst_case`]). See [`PRESETS`].
    pub fn preset(name: &str) -> Option<Params> {
        let (size, shape) = name.split_once('-').unwrap_or((name, ""));
        let pods = match size {
            "small" if shape.is_empty() => return Some(Params::small()),
            "1k" if shape.is_empty() => return Some(Params::medium()),
            "10k" if shape.is_empty() => return Some(Params::large()),
            "10k" => 10_000,
            "50k" => 50_000,
            "100k" => 100_000,
            _ => return None,
        };
        match shape {
            "realistic" => Some(Params::realistic(pods, pods)),
            "worst" => Some(Params::worst_case(pods, pods)),
            _ => None,
        }
    }

    /// The same parameters with another seed.
    pub fn with_seed(mut self, seed: u64) -> Params {
        self.seed = seed;
        self
    }

    /// How many objects [`generate`] writes for these parameters.
    pub fn expected(&self) -> Counts {
        let namespaces = self.namespaces.max(1);
        let app_workloads = namespaces * self.workloads_per_namespace;
        let statefulsets = namespaces
            * tiers_for(self.workloads_per_namespace)
                .iter()
                .filter(|tier| self.stateful_only || tier.stateful())
                .count();
        let app_pods = if app_workloads == 0 {
            0
        } else {
            app_workloads * self.replicas + self.extra_replicas
        };
        Counts {
            namespaces: namespaces + INFRA_NAMESPACES,
            pods: app_pods + INFRA_PODS,
            deployments: app_workloads - statefulsets + INFRA_DEPLOYMENTS,
            statefulsets: statefulsets + INFRA_STATEFULSETS,
            services: if self.services {
                app_workloads + INFRA_SERVICES
            } else {
                0
            },
            // Without workloads a namespace only has the three defaults.
            policies: if self.workloads_per_namespace == 0 {
                self.policies.min(3 * namespaces)
            } else {
                self.policies
            },
            nodes: self.nodes.max(1),
        }
    }
}

/// The names [`Params::preset`] knows.
pub const PRESETS: &[&str] = &[
    "small",
    "1k",
    "10k",
    "10k-realistic",
    "10k-worst",
    "50k-realistic",
    "50k-worst",
    "100k-realistic",
    "100k-worst",
];

/// Object counts of a generated cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Namespaces, infrastructure ones included.
    pub namespaces: usize,
    /// Pods.
    pub pods: usize,
    /// Deployments.
    pub deployments: usize,
    /// StatefulSets.
    pub statefulsets: usize,
    /// Services.
    pub services: usize,
    /// NetworkPolicies.
    pub policies: usize,
    /// Distinct `spec.nodeName` values available.
    pub nodes: usize,
}

/// What [`generate_with_summary`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Object counts (equal to [`Params::expected`]).
    pub counts: Counts,
    /// NetworkPolicies per kind (`default-deny-ingress`, `chain-ingress`,
    /// `external-https`, ...).
    pub policies_by_kind: BTreeMap<&'static str, usize>,
    /// Size of the text in bytes.
    pub bytes: usize,
}

/// The cluster [`generate`] writes, loaded. Panics if the loader reports
/// anything: generated input must be clean (benchmarks build on this).
pub fn load_cluster(params: &Params) -> policy_core::Cluster {
    let text = generate(params);
    let mut loader = policy_core::Loader::new();
    loader.load_str("synth.yaml", &text);
    let loaded = loader.finish();
    assert!(
        loaded.diagnostics.is_empty(),
        "synthetic input has diagnostics: {:?}",
        loaded.diagnostics
    );
    loaded.cluster
}

/// The cluster for `params`, as a multi-document YAML stream.
///
/// # Panics
///
/// If the pods do not fit in `10.0.0.0/8` with one slice per node (more
/// than about 16 million pods).
pub fn generate(params: &Params) -> String {
    generate_with_summary(params).0
}

/// [`generate`], and what was written.
pub fn generate_with_summary(params: &Params) -> (String, Summary) {
    Generator::new(params).run()
}

/// SplitMix64: small, fast and good enough for names and hashes.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// `len` characters of the alphabet Kubernetes uses for generated names.
    fn name_suffix(&mut self, len: usize) -> String {
        const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len)
            .map(|_| SAFE[self.below(SAFE.len())] as char)
            .collect()
    }

    fn uid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A tier of the app chain in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Tier {
    Web,
    Gateway,
    Api,
    Cache,
    Db,
}

impl Tier {
    const ALL: [Tier; 5] = [Tier::Web, Tier::Gateway, Tier::Api, Tier::Cache, Tier::Db];

    fn name(self) -> &'static str {
        match self {
            Tier::Web => "web",
            Tier::Gateway => "gateway",
            Tier::Api => "api",
            Tier::Cache => "cache",
            Tier::Db => "db",
        }
    }

    fn stateful(self) -> bool {
        matches!(self, Tier::Cache | Tier::Db)
    }

    /// Named container ports (all TCP).
    fn ports(self) -> &'static [(&'static str, u16)] {
        match self {
            Tier::Web => &[("http", 80), ("metrics", 9090)],
            Tier::Gateway => &[("http", 8080), ("metrics", 9090)],
            Tier::Api => &[("http", 8080), ("grpc", 9000), ("metrics", 9090)],
            Tier::Cache => &[("redis", 6379), ("sentinel", 26379), ("metrics", 9121)],
            Tier::Db => &[("postgres", 5432), ("metrics", 9187)],
        }
    }

    /// The port its upstream tier connects to.
    fn primary_port(self) -> &'static str {
        match self {
            Tier::Web | Tier::Gateway => "http",
            Tier::Api => "grpc",
            Tier::Cache => "redis",
            Tier::Db => "postgres",
        }
    }

    fn image(self) -> &'static str {
        match self {
            Tier::Web => "nginx",
            Tier::Gateway => "envoy",
            Tier::Api => "service",
            Tier::Cache => "redis",
            Tier::Db => "postgres",
        }
    }
}

/// The tiers of the workloads of a namespace, in workload order.
fn tiers_for(workloads: usize) -> Vec<Tier> {
    use Tier::*;
    match workloads {
        0 => vec![],
        1 => vec![Api],
        2 => vec![Web, Api],
        3 => vec![Web, Api, Db],
        4 => vec![Web, Api, Cache, Db],
        n => (0..n).map(|i| Tier::ALL[i * 5 / n]).collect(),
    }
}

const TEAMS: &[&str] = &[
    "payments", "checkout", "catalog", "search", "identity", "shipping", "ads", "sandbox",
];
const ENVS: &[&str] = &["prod", "staging", "dev"];
const NOUNS: &[&str] = &[
    "orders",
    "users",
    "cart",
    "inventory",
    "billing",
    "pricing",
    "auth",
    "notify",
    "reports",
    "media",
    "profile",
    "reviews",
    "ledger",
    "quotes",
    "stock",
    "tracking",
    "invoices",
    "session",
    "feeds",
    "audit",
    "rates",
    "coupons",
    "returns",
    "labels",
];
const PRIVATE_RANGES: &[&str] = &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
/// Node addresses (`status.hostIP`), also used by the health-check policies.
const NODE_CIDR: &str = "172.20.0.0/16";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WorkloadKind {
    Deployment,
    StatefulSet,
}

struct NamespaceSpec {
    name: String,
    team: &'static str,
    env: &'static str,
    app: &'static str,
    labels: Vec<(String, String)>,
}

struct Workload {
    namespace: String,
    name: String,
    kind: WorkloadKind,
    replicas: usize,
    /// Selector labels (also on the template and pods).
    selector: Vec<(String, String)>,
    /// Further template labels.
    labels: Vec<(String, String)>,
    /// Named container ports: name, number, protocol.
    ports: Vec<(&'static str, u16, &'static str)>,
    image: String,
    /// Service type, if a Service is written for it.
    service: Option<&'static str>,
    tier: Option<Tier>,
}

/// A label selector.
#[derive(Clone, Debug, Default)]
struct Selector {
    labels: Vec<(String, String)>,
    expressions: Vec<(String, &'static str, Vec<String>)>,
}

impl Selector {
    fn everything() -> Self {
        Selector::default()
    }

    fn label(key: &str, value: &str) -> Self {
        Selector::default().and_label(key, value)
    }

    fn and_label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    fn expression(key: &str, operator: &'static str, values: &[&str]) -> Self {
        Selector::default().and_expression(key, operator, values)
    }

    fn and_expression(mut self, key: &str, operator: &'static str, values: &[&str]) -> Self {
        self.expressions.push((
            key.to_string(),
            operator,
            values.iter().map(|v| v.to_string()).collect(),
        ));
        self
    }
}

enum Peer {
    Pods {
        namespaces: Option<Selector>,
        pods: Option<Selector>,
    },
    Block {
        cidr: &'static str,
        except: Vec<&'static str>,
    },
}

impl Peer {
    fn pods(pods: Selector) -> Peer {
        Peer::Pods {
            namespaces: None,
            pods: Some(pods),
        }
    }

    fn in_namespaces(namespaces: Selector, pods: Selector) -> Peer {
        Peer::Pods {
            namespaces: Some(namespaces),
            pods: Some(pods),
        }
    }
}

enum Port {
    Named(&'static str),
    Number(&'static str, u16),
    Range(&'static str, u16, u16),
}

struct Rule {
    /// `None`: every peer.
    peers: Option<Vec<Peer>>,
    ports: Vec<Port>,
}

struct PolicySpec {
    name: String,
    pod_selector: Selector,
    /// policyTypes, written explicitly.
    types: &'static [&'static str],
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

/// A policy a namespace may get, before rendering.
#[derive(Clone, Copy, Debug)]
enum Candidate {
    DenyIngress,
    DenyEgress,
    Dns,
    ChainIngress(usize),
    ChainEgress(usize),
    Metrics(usize),
    FromIngressController(usize),
    HealthChecks(usize),
    Telemetry(usize),
    SharedApis(usize),
    ExternalHttps(usize),
    Consumers(usize),
    Partner(usize),
    SameApp(usize),
    Replication(usize),
    Backup(usize),
    FromNamespace {
        workload: usize,
        other: usize,
        round: usize,
    },
}

impl Candidate {
    fn kind(self) -> &'static str {
        match self {
            Candidate::DenyIngress => "default-deny-ingress",
            Candidate::DenyEgress => "default-deny-egress",
            Candidate::Dns => "dns-egress",
            Candidate::ChainIngress(_) => "chain-ingress",
            Candidate::ChainEgress(_) => "chain-egress",
            Candidate::Metrics(_) => "metrics-scrape",
            Candidate::FromIngressController(_) => "from-ingress-controller",
            Candidate::HealthChecks(_) => "health-checks-ipblock",
            Candidate::Telemetry(_) => "telemetry-egress",
            Candidate::SharedApis(_) => "shared-apis-egress",
            Candidate::ExternalHttps(_) => "external-https-ipblock-except",
            Candidate::Consumers(_) => "cross-namespace-consumers",
            Candidate::Partner(_) => "partner-endport-ranges",
            Candidate::SameApp(_) => "same-app-notin",
            Candidate::Replication(_) => "replication-both-types",
            Candidate::Backup(_) => "backup-exists",
            Candidate::FromNamespace { .. } => "from-namespace",
        }
    }
}

struct Generator<'p> {
    params: &'p Params,
    rng: Rng,
    out: String,
    namespaces: Vec<NamespaceSpec>,
    /// Workloads per application namespace, in tier order.
    app_workloads: Vec<Vec<Workload>>,
    infra_workloads: Vec<Workload>,
    /// Pods written so far (round-robin node and address allocation).
    pods_written: usize,
    /// Addresses per node slice of 10.0.0.0/8.
    node_block: u32,
    summary: Summary,
}

impl<'p> Generator<'p> {
    fn new(params: &'p Params) -> Self {
        let expected = params.expected();
        let nodes = expected.nodes;
        let per_node = expected.pods.div_ceil(nodes) + 2;
        let node_block = u32::try_from(per_node.div_ceil(256) * 256).unwrap_or(u32::MAX);
        assert!(
            (nodes as u64) * u64::from(node_block) <= 1 << 24,
            "{} pods over {nodes} nodes do not fit in 10.0.0.0/8",
            expected.pods
        );
        let mut generator = Generator {
            params,
            rng: Rng(params.seed ^ 0x005e_ed0f_6e65_7470),
            out: String::with_capacity(expected.pods * 1400 + params.policies * 700),
            namespaces: Vec::new(),
            app_workloads: Vec::new(),
            infra_workloads: Vec::new(),
            pods_written: 0,
            node_block,
            summary: Summary {
                counts: expected,
                ..Summary::default()
            },
        };
        generator.plan();
        generator
    }

    /// Decides namespaces and workloads.
    fn plan(&mut self) {
        let params = self.params;
        let namespace_count = params.namespaces.max(1);
        let per_namespace = params.workloads_per_namespace;
        let total_workloads = namespace_count * per_namespace;
        let tiers = tiers_for(per_namespace);
        for n in 0..namespace_count {
            let team = TEAMS[n % TEAMS.len()];
            let env = ENVS[(n / TEAMS.len()) % ENVS.len()];
            let round = n / (TEAMS.len() * ENVS.len());
            let name = if round == 0 {
                format!("{team}-{env}")
            } else {
                format!("{team}-{env}-{round}")
            };
            let app = NOUNS[n % NOUNS.len()];
            let mut labels = vec![
                ("team".to_string(), team.to_string()),
                ("env".to_string(), env.to_string()),
                ("app.kubernetes.io/part-of".to_string(), app.to_string()),
            ];
            // Every fourth namespace, and a few more at random, offers shared APIs.
            if n % 4 == 0 || self.rng.chance(10) {
                labels.push(("shared-apis".to_string(), "true".to_string()));
            }
            let enforce = if env == "prod" {
                "restricted"
            } else {
                "baseline"
            };
            labels.push((
                "pod-security.kubernetes.io/enforce".to_string(),
                enforce.to_string(),
            ));
            let mut workloads = Vec::with_capacity(per_namespace);
            for (i, &tier) in tiers.iter().enumerate() {
                let global = n * per_namespace + i;
                let noun = NOUNS[i % NOUNS.len()];
                let name_round = i / NOUNS.len();
                let workload_name = if name_round == 0 {
                    format!("{noun}-{}", tier.name())
                } else {
                    format!("{noun}-{}-{name_round}", tier.name())
                };
                let extra = params.extra_replicas / total_workloads
                    + usize::from(global < params.extra_replicas % total_workloads);
                let version = format!("1.{}.{}", self.rng.below(20), self.rng.below(10));
                workloads.push(Workload {
                    namespace: name.clone(),
                    selector: vec![
                        ("app.kubernetes.io/name".to_string(), workload_name.clone()),
                        (
                            "app.kubernetes.io/instance".to_string(),
                            format!("{workload_name}-{env}"),
                        ),
                    ],
                    labels: vec![
                        (
                            "app.kubernetes.io/component".to_string(),
                            tier.name().to_string(),
                        ),
                        ("app.kubernetes.io/part-of".to_string(), app.to_string()),
                        ("app.kubernetes.io/version".to_string(), version.clone()),
                        ("team".to_string(), team.to_string()),
                    ],
                    ports: tier.ports().iter().map(|&(n, p)| (n, p, "TCP")).collect(),
                    image: format!("registry.example.com/{team}/{}:{version}", tier.image()),
                    name: workload_name,
                    kind: if params.stateful_only || tier.stateful() {
                        WorkloadKind::StatefulSet
                    } else {
                        WorkloadKind::Deployment
                    },
                    replicas: params.replicas + extra,
                    service: params.services.then_some("ClusterIP"),
                    tier: Some(tier),
                });
            }
            self.namespaces.push(NamespaceSpec {
                name,
                team,
                env,
                app,
                labels,
            });
            self.app_workloads.push(workloads);
        }

        let infra = |namespace: &str,
                     name: &str,
                     kind: WorkloadKind,
                     replicas: usize,
                     selector: &[(&str, &str)],
                     ports: &[(&'static str, u16, &'static str)],
                     image: &str,
                     service: &'static str| Workload {
            namespace: namespace.to_string(),
            name: name.to_string(),
            kind,
            replicas,
            selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            labels: Vec::new(),
            ports: ports.to_vec(),
            image: image.to_string(),
            service: params.services.then_some(service),
            tier: None,
        };
        use WorkloadKind::{Deployment, StatefulSet};
        self.infra_workloads = vec![
            infra(
                "ingress-nginx",
                "ingress-nginx-controller",
                Deployment,
                2,
                &[
                    ("app.kubernetes.io/name", "ingress-nginx"),
                    ("app.kubernetes.io/component", "controller"),
                ],
                &[
                    ("http", 80, "TCP"),
                    ("https", 443, "TCP"),
                    ("metrics", 10254, "TCP"),
                ],
                "registry.k8s.io/ingress-nginx/controller:v1.12.1",
                "LoadBalancer",
            ),
            infra(
                "kube-system",
                "coredns",
                Deployment,
                2,
                &[("k8s-app", "kube-dns")],
                &[
                    ("dns", 53, "UDP"),
                    ("dns-tcp", 53, "TCP"),
                    ("metrics", 9153, "TCP"),
                ],
                "registry.k8s.io/coredns/coredns:v1.12.0",
                "ClusterIP",
            ),
            infra(
                "monitoring",
                "backup-agent",
                Deployment,
                1,
                &[("app.kubernetes.io/name", "backup-agent")],
                &[("http", 8080, "TCP")],
                "registry.example.com/platform/backup-agent:2.3.0",
                "ClusterIP",
            ),
            infra(
                "monitoring",
                "otel-collector",
                Deployment,
                2,
                &[("app.kubernetes.io/name", "otel-collector")],
                &[
                    ("otlp-grpc", 4317, "TCP"),
                    ("otlp-http", 4318, "TCP"),
                    ("metrics", 8888, "TCP"),
                ],
                "otel/opentelemetry-collector-contrib:0.120.0",
                "ClusterIP",
            ),
            infra(
                "monitoring",
                "prometheus",
                StatefulSet,
                2,
                &[("app.kubernetes.io/name", "prometheus")],
                &[("web", 9090, "TCP")],
                "quay.io/prometheus/prometheus:v3.2.1",
                "ClusterIP",
            ),
        ];
    }

    fn run(mut self) -> (String, Summary) {
        self.write_namespace(
            "ingress-nginx",
            &[
                ("team".into(), "platform".into()),
                ("app.kubernetes.io/name".into(), "ingress-nginx".into()),
            ],
        );
        self.write_namespace(
            "kube-system",
            &[("kubernetes.io/metadata.name".into(), "kube-system".into())],
        );
        self.write_namespace(
            "monitoring",
            &[
                ("team".into(), "platform".into()),
                ("env".into(), "prod".into()),
                ("backup".into(), "enabled".into()),
            ],
        );
        let infra = std::mem::take(&mut self.infra_workloads);
        for workload in &infra {
            self.write_workload(workload);
        }
        self.infra_workloads = infra;

        let namespaces = std::mem::take(&mut self.namespaces);
        let app_workloads = std::mem::take(&mut self.app_workloads);
        for (n, namespace) in namespaces.iter().enumerate() {
            self.write_namespace(&namespace.name, &namespace.labels);
            for workload in &app_workloads[n] {
                self.write_workload(workload);
            }
        }

        // Policies: an exact total, spread evenly over the application namespaces.
        let count = namespaces.len();
        for n in 0..count {
            let budget =
                self.params.policies / count + usize::from(n < self.params.policies % count);
            for candidate in select_policies(&app_workloads[n], count, n, budget) {
                let spec = policy_spec(candidate, n, &namespaces, &app_workloads[n]);
                *self
                    .summary
                    .policies_by_kind
                    .entry(candidate.kind())
                    .or_insert(0) += 1;
                self.write_policy(&namespaces[n].name, &spec);
            }
        }
        self.summary.bytes = self.out.len();
        (self.out, self.summary)
    }

    fn write_namespace(&mut self, name: &str, labels: &[(String, String)]) {
        let out = &mut self.out;
        let uid = self.rng.uid();
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  uid: {uid}\n  labels:\n    kubernetes.io/metadata.name: {name}\n"
        );
        for (key, value) in labels {
            if key != "kubernetes.io/metadata.name" {
                let _ = writeln!(out, "    {key}: {}", scalar(value));
            }
        }
        out.push_str("spec:\n  finalizers:\n  - kubernetes\nstatus:\n  phase: Active\n");
    }

    fn write_workload(&mut self, workload: &Workload) {
        let uid = self.rng.uid();
        let hash = self.rng.name_suffix(10);
        let namespace = workload.namespace.as_str();
        let name = workload.name.as_str();
        let kind = match workload.kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        };
        {
            let out = &mut self.out;
            let _ = write!(
                out,
                "---\napiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  uid: {uid}\n  generation: 1\n  labels:\n"
            );
            write_labels(out, 4, workload.selector.iter().chain(&workload.labels));
            let _ = write!(out, "spec:\n  replicas: {}\n", workload.replicas);
            if workload.kind == WorkloadKind::StatefulSet {
                let _ = writeln!(out, "  serviceName: {name}");
                out.push_str("  podManagementPolicy: OrderedReady\n");
            } else {
                out.push_str("  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 25%\n      maxUnavailable: 25%\n");
            }
            out.push_str("  selector:\n    matchLabels:\n");
            write_labels(out, 6, workload.selector.iter());
            out.push_str("  template:\n    metadata:\n      labels:\n");
            write_labels(out, 8, workload.selector.iter().chain(&workload.labels));
            out.push_str("    spec:\n");
            write_containers(out, 6, workload);
            let _ = write!(
                out,
                "status:\n  replicas: {r}\n  readyReplicas: {r}\n  availableReplicas: {r}\n",
                r = workload.replicas
            );
        }
        if let Some(service_type) = workload.service {
            self.write_service(workload, service_type);
        }

        // The ReplicaSet of a Deployment, or the StatefulSet itself, owns the pods.
        let owner_uid = match workload.kind {
            WorkloadKind::Deployment => self.rng.uid(),
            WorkloadKind::StatefulSet => uid.clone(),
        };
        let mut seen = HashSet::new();
        for ordinal in 0..workload.replicas {
            let (pod_name, owner_kind, owner_name, extra_labels) = match workload.kind {
                WorkloadKind::Deployment => {
                    let pod_name = loop {
                        let candidate = format!("{name}-{hash}-{}", self.rng.name_suffix(5));
                        if seen.insert(candidate.clone()) {
                            break candidate;
                        }
                    };
                    (
                        pod_name,
                        "ReplicaSet",
                        format!("{name}-{hash}"),
                        vec![("pod-template-hash".to_string(), hash.clone())],
                    )
                }
                WorkloadKind::StatefulSet => {
                    let pod_name = format!("{name}-{ordinal}");
                    (
                        pod_name.clone(),
                        "StatefulSet",
                        name.to_string(),
                        vec![
                            (
                                "apps.kubernetes.io/pod-index".to_string(),
                                ordinal.to_string(),
                            ),
                            (
                                "controller-revision-hash".to_string(),
                                format!("{name}-{hash}"),
                            ),
                            ("statefulset.kubernetes.io/pod-name".to_string(), pod_name),
                        ],
                    )
                }
            };
            let pod_uid = self.rng.uid();
            let index = self.pods_written;
            self.pods_written += 1;
            let nodes = self.summary.counts.nodes;
            let node = index % nodes;
            let local = (index / nodes) as u32;
            let address = (10u32 << 24) + node as u32 * self.node_block + 1 + local;
            let host = (172u32 << 24) + (20 << 16) + 10 + node as u32;
            let out = &mut self.out;
            let _ = write!(
                out,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod_name}\n  namespace: {namespace}\n  uid: {pod_uid}\n  labels:\n"
            );
            write_labels(
                out,
                4,
                workload
                    .selector
                    .iter()
                    .chain(&workload.labels)
                    .chain(&extra_labels),
            );
            let _ = write!(
                out,
                "  ownerReferences:\n  - apiVersion: apps/v1\n    kind: {owner_kind}\n    name: {owner_name}\n    uid: {owner_uid}\n    controller: true\n    blockOwnerDeletion: true\nspec:\n  nodeName: node-{node:04}\n"
            );
            if workload.kind == WorkloadKind::StatefulSet {
                let _ = write!(out, "  hostname: {pod_name}\n  subdomain: {name}\n");
            }
            write_containers(out, 2, workload);
            let _ = write!(
                out,
                "status:\n  phase: Running\n  hostIP: {host}\n  hostIPs:\n  - ip: {host}\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  qosClass: Burstable\n",
                host = ipv4(host),
                ip = ipv4(address),
            );
        }
    }

    fn write_service(&mut self, workload: &Workload, service_type: &str) {
        let uid = self.rng.uid();
        let cluster_ip = (10u32 << 24) | (96 << 16) | (self.rng.below(1 << 16) as u32);
        let out = &mut self.out;
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {}\n  namespace: {}\n  uid: {uid}\n  labels:\n",
            workload.name, workload.namespace
        );
        write_labels(out, 4, workload.selector.iter());
        let _ = write!(
            out,
            "spec:\n  type: {service_type}\n  clusterIP: {}\n  selector:\n",
            ipv4(cluster_ip)
        );
        write_labels(out, 4, workload.selector.iter());
        out.push_str("  ports:\n");
        for (index, (name, port, protocol)) in workload.ports.iter().enumerate() {
            let service_port = match *name {
                "http" => 80,
                "https" => 443,
                _ => *port,
            };
            let _ = write!(
                out,
                "  - name: {name}\n    port: {service_port}\n    targetPort: {name}\n    protocol: {protocol}\n"
            );
            if service_type == "LoadBalancer" {
                let _ = writeln!(out, "    nodePort: {}", 30080 + index);
            }
        }
    }

    fn write_policy(&mut self, namespace: &str, spec: &PolicySpec) {
        let uid = self.rng.uid();
        let out = &mut self.out;
        let _ = write!(
            out,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {}\n  namespace: {namespace}\n  uid: {uid}\n  generation: 1\n  labels:\n    app.kubernetes.io/managed-by: netpol-synth\nspec:\n",
            spec.name
        );
        write_selector(out, "  ", "    ", "podSelector", &spec.pod_selector);
        let _ = writeln!(out, "  policyTypes: [{}]", spec.types.join(", "));
        for (key, peers_key, rules) in [
            ("ingress", "from", &spec.ingress),
            ("egress", "to", &spec.egress),
        ] {
            if rules.is_empty() {
                continue;
            }
            let _ = writeln!(out, "  {key}:");
            for rule in rules.iter() {
                let mut first_key = true;
                let mut lead = || {
                    let lead = if first_key { "  - " } else { "    " };
                    first_key = false;
                    lead
                };
                if let Some(peers) = &rule.peers {
                    let _ = writeln!(out, "{}{peers_key}:", lead());
                    for peer in peers {
                        write_peer(out, peer);
                    }
                }
                if !rule.ports.is_empty() {
                    let _ = writeln!(out, "{}ports:", lead());
                    for port in &rule.ports {
                        match port {
                            Port::Named(name) => {
                                let _ = write!(out, "    - protocol: TCP\n      port: {name}\n");
                            }
                            Port::Number(protocol, number) => {
                                let _ = write!(
                                    out,
                                    "    - protocol: {protocol}\n      port: {number}\n"
                                );
                            }
                            Port::Range(protocol, first, last) => {
                                let _ = write!(
                                    out,
                                    "    - protocol: {protocol}\n      port: {first}\n      endPort: {last}\n"
                                );
                            }
                        }
                    }
                }
                if rule.peers.is_none() && rule.ports.is_empty() {
                    out.push_str("  - {}\n");
                }
            }
        }
    }
}

/// Chooses `budget` policies for namespace `n`: the defaults first, then the
/// app chain, then an even sample of the per-workload extras, then
/// "allow from namespace X" policies.
fn select_policies(
    workloads: &[Workload],
    namespace_count: usize,
    n: usize,
    budget: usize,
) -> Vec<Candidate> {
    let core = [
        Candidate::DenyIngress,
        Candidate::DenyEgress,
        Candidate::Dns,
    ];
    let present: Vec<Tier> = {
        let mut tiers: Vec<Tier> = workloads.iter().filter_map(|w| w.tier).collect();
        tiers.dedup();
        tiers
    };
    let mut chain = Vec::new();
    let mut extras = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        let tier = workload.tier.expect("application workload");
        let position = present.iter().position(|t| *t == tier).unwrap_or(0);
        if position > 0 {
            chain.push(Candidate::ChainIngress(w));
        }
        if position + 1 < present.len() {
            chain.push(Candidate::ChainEgress(w));
        }
        extras.push(Candidate::Metrics(w));
        match tier {
            Tier::Web => {
                extras.push(Candidate::FromIngressController(w));
                extras.push(Candidate::HealthChecks(w));
                extras.push(Candidate::Telemetry(w));
            }
            Tier::Gateway => {
                extras.push(Candidate::SharedApis(w));
                extras.push(Candidate::ExternalHttps(w));
                extras.push(Candidate::Telemetry(w));
            }
            Tier::Api => {
                extras.push(Candidate::Consumers(w));
                extras.push(Candidate::Partner(w));
                extras.push(Candidate::ExternalHttps(w));
                extras.push(Candidate::Telemetry(w));
            }
            Tier::Cache => {
                extras.push(Candidate::SameApp(w));
                extras.push(Candidate::Replication(w));
            }
            Tier::Db => {
                extras.push(Candidate::Backup(w));
                extras.push(Candidate::Replication(w));
            }
        }
    }
    let mut selected: Vec<Candidate> = core.iter().copied().take(budget).collect();
    let mut remaining = budget - selected.len();
    for group in [&chain, &extras] {
        let take = remaining.min(group.len());
        // Evenly spaced indices from a start that moves with the namespace,
        // so every kind is sampled across the cluster.
        let start = n % group.len().max(1);
        selected.extend((0..take).map(|i| group[(start + i * group.len() / take) % group.len()]));
        remaining -= take;
    }
    let others = namespace_count.saturating_sub(1).max(1);
    for j in 0..remaining {
        if workloads.is_empty() {
            break;
        }
        let workload = j % workloads.len();
        let step = j / workloads.len();
        let offset = 1 + step % others;
        selected.push(Candidate::FromNamespace {
            workload,
            other: (n + offset) % namespace_count,
            round: step / others,
        });
    }
    selected
}

fn policy_spec(
    candidate: Candidate,
    n: usize,
    namespaces: &[NamespaceSpec],
    workloads: &[Workload],
) -> PolicySpec {
    let namespace = &namespaces[n];
    let component = "app.kubernetes.io/component";
    let name_key = "app.kubernetes.io/name";
    let selects = |w: usize| Selector::label(name_key, &workloads[w].name);
    let present: Vec<Tier> = {
        let mut tiers: Vec<Tier> = workloads.iter().filter_map(|w| w.tier).collect();
        tiers.dedup();
        tiers
    };
    let tier_of = |w: usize| workloads[w].tier.expect("application workload");
    let position = |w: usize| present.iter().position(|t| *t == tier_of(w)).unwrap_or(0);
    let ingress = |name: String, pod_selector: Selector, rules: Vec<Rule>| PolicySpec {
        name,
        pod_selector,
        types: &["Ingress"],
        ingress: rules,
        egress: Vec::new(),
    };
    let egress = |name: String, pod_selector: Selector, rules: Vec<Rule>| PolicySpec {
        name,
        pod_selector,
        types: &["Egress"],
        ingress: Vec::new(),
        egress: rules,
    };
    match candidate {
        Candidate::DenyIngress => ingress(
            "default-deny-ingress".into(),
            Selector::everything(),
            vec![],
        ),
        Candidate::DenyEgress => {
            egress("default-deny-egress".into(), Selector::everything(), vec![])
        }
        Candidate::Dns => egress(
            "allow-dns-egress".into(),
            Selector::everything(),
            vec![Rule {
                peers: Some(vec![Peer::in_namespaces(
                    Selector::label("kubernetes.io/metadata.name", "kube-system"),
                    Selector::label("k8s-app", "kube-dns"),
                )]),
                ports: vec![Port::Number("UDP", 53), Port::Number("TCP", 53)],
            }],
        ),
        Candidate::ChainIngress(w) => {
            let upstream = present[position(w) - 1];
            ingress(
                format!("{}-from-{}", workloads[w].name, upstream.name()),
                selects(w),
                vec![Rule {
                    peers: Some(vec![Peer::pods(Selector::label(
                        component,
                        upstream.name(),
                    ))]),
                    ports: vec![Port::Named(tier_of(w).primary_port())],
                }],
            )
        }
        Candidate::ChainEgress(w) => {
            let p = position(w);
            let downstream: Vec<Tier> = present[p + 1..present.len().min(p + 3)].to_vec();
            let names: Vec<&str> = downstream.iter().map(|t| t.name()).collect();
            let mut ports: Vec<&'static str> =
                downstream.iter().map(|t| t.primary_port()).collect();
            ports.dedup();
            egress(
                format!("{}-to-{}", workloads[w].name, names.join("-")),
                selects(w),
                vec![Rule {
                    peers: Some(vec![Peer::pods(Selector::expression(
                        component, "In", &names,
                    ))]),
                    ports: ports.into_iter().map(Port::Named).collect(),
                }],
            )
        }
        Candidate::Metrics(w) => ingress(
            format!("{}-allow-metrics-scrape", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::in_namespaces(
                    Selector::expression("team", "In", &["platform"]),
                    Selector::expression(name_key, "In", &["prometheus"]),
                )]),
                ports: vec![Port::Named("metrics")],
            }],
        ),
        Candidate::FromIngressController(w) => ingress(
            format!("{}-allow-from-ingress-nginx", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::in_namespaces(
                    Selector::label("kubernetes.io/metadata.name", "ingress-nginx"),
                    Selector::label(name_key, "ingress-nginx").and_label(component, "controller"),
                )]),
                ports: vec![Port::Named("http")],
            }],
        ),
        Candidate::HealthChecks(w) => ingress(
            format!("{}-allow-node-health-checks", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::Block {
                    cidr: NODE_CIDR,
                    except: vec![],
                }]),
                ports: vec![Port::Named("http"), Port::Number("TCP", 10256)],
            }],
        ),
        Candidate::Telemetry(w) => egress(
            format!("{}-allow-otel-egress", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::in_namespaces(
                    Selector::label("team", "platform").and_expression("env", "In", &["prod"]),
                    Selector::label(name_key, "otel-collector"),
                )]),
                ports: vec![Port::Number("TCP", 4317), Port::Number("TCP", 4318)],
            }],
        ),
        Candidate::SharedApis(w) => egress(
            format!("{}-allow-shared-apis", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::in_namespaces(
                    Selector::expression("env", "In", &[namespace.env]).and_expression(
                        "shared-apis",
                        "Exists",
                        &[],
                    ),
                    Selector::expression(component, "In", &["api"]),
                )]),
                ports: vec![Port::Named("grpc"), Port::Number("TCP", 9000)],
            }],
        ),
        Candidate::ExternalHttps(w) => egress(
            format!("{}-allow-external-https", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::Block {
                    cidr: "0.0.0.0/0",
                    except: PRIVATE_RANGES.to_vec(),
                }]),
                ports: vec![Port::Number("TCP", 443)],
            }],
        ),
        Candidate::Consumers(w) => ingress(
            format!("{}-allow-consumers", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::in_namespaces(
                    Selector::label("env", namespace.env).and_expression(
                        "team",
                        "NotIn",
                        &[namespace.team, "sandbox"],
                    ),
                    Selector::expression(component, "In", &["gateway", "api"]),
                )]),
                ports: vec![Port::Named("grpc")],
            }],
        ),
        Candidate::Partner(w) => egress(
            format!("{}-allow-partner-apis", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![
                    Peer::Block {
                        cidr: "203.0.113.0/24",
                        except: vec!["203.0.113.128/25"],
                    },
                    Peer::Block {
                        cidr: "198.51.100.0/24",
                        except: vec![],
                    },
                ]),
                ports: vec![
                    Port::Number("TCP", 8443),
                    Port::Range("TCP", 30000, 32767),
                    Port::Range("UDP", 5000, 5100),
                ],
            }],
        ),
        Candidate::SameApp(w) => ingress(
            format!("{}-allow-same-app", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::pods(
                    Selector::expression("app.kubernetes.io/part-of", "In", &[namespace.app])
                        .and_expression(component, "NotIn", &["web"]),
                )]),
                ports: vec![Port::Named("redis")],
            }],
        ),
        Candidate::Replication(w) => {
            // Between the pods of one StatefulSet, both ways.
            let rule = || Rule {
                peers: Some(vec![Peer::pods(selects(w))]),
                ports: match tier_of(w) {
                    Tier::Cache => vec![Port::Named("redis"), Port::Named("sentinel")],
                    _ => vec![Port::Named("postgres"), Port::Range("TCP", 8008, 8010)],
                },
            };
            PolicySpec {
                name: format!("{}-allow-replication", workloads[w].name),
                pod_selector: selects(w),
                types: &["Ingress", "Egress"],
                ingress: vec![rule()],
                egress: vec![rule()],
            }
        }
        Candidate::Backup(w) => ingress(
            format!("{}-allow-backup", workloads[w].name),
            selects(w),
            vec![Rule {
                peers: Some(vec![Peer::in_namespaces(
                    Selector::expression("backup", "Exists", &[]),
                    Selector::label(name_key, "backup-agent"),
                )]),
                ports: vec![Port::Named("postgres")],
            }],
        ),
        Candidate::FromNamespace {
            workload: w,
            other,
            round,
        } => {
            let other_name = &namespaces[other].name;
            let name = if round == 0 {
                format!("{}-allow-from-{other_name}", workloads[w].name)
            } else {
                format!("{}-allow-from-{other_name}-{round}", workloads[w].name)
            };
            ingress(
                name,
                selects(w),
                vec![Rule {
                    peers: Some(vec![Peer::in_namespaces(
                        Selector::label("kubernetes.io/metadata.name", other_name),
                        Selector::expression(component, "In", &["gateway", "api"]),
                    )]),
                    ports: vec![Port::Named(tier_of(w).primary_port())],
                }],
            )
        }
    }
}

fn write_peer(out: &mut String, peer: &Peer) {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let mut lead = "    - ";
            if let Some(selector) = namespaces {
                write_selector(out, lead, "        ", "namespaceSelector", selector);
                lead = "      ";
            }
            if let Some(selector) = pods {
                write_selector(out, lead, "        ", "podSelector", selector);
            }
        }
        Peer::Block { cidr, except } => {
            let _ = write!(out, "    - ipBlock:\n        cidr: {cidr}\n");
            if !except.is_empty() {
                out.push_str("        except:\n");
                for block in except {
                    let _ = writeln!(out, "        - {block}");
                }
            }
        }
    }
}

/// Writes `<lead><key>:` and the selector's fields indented by `inner`.
fn write_selector(out: &mut String, lead: &str, inner: &str, key: &str, selector: &Selector) {
    if selector.labels.is_empty() && selector.expressions.is_empty() {
        let _ = writeln!(out, "{lead}{key}: {{}}");
        return;
    }
    let _ = writeln!(out, "{lead}{key}:");
    if !selector.labels.is_empty() {
        let _ = writeln!(out, "{inner}matchLabels:");
        for (k, v) in &selector.labels {
            let _ = writeln!(out, "{inner}  {k}: {}", scalar(v));
        }
    }
    if !selector.expressions.is_empty() {
        let _ = writeln!(out, "{inner}matchExpressions:");
        for (k, operator, values) in &selector.expressions {
            let _ = write!(out, "{inner}- key: {k}\n{inner}  operator: {operator}\n");
            if !values.is_empty() {
                let values: Vec<String> = values.iter().map(|v| scalar(v)).collect();
                let _ = writeln!(out, "{inner}  values: [{}]", values.join(", "));
            }
        }
    }
}

fn write_labels<'a>(
    out: &mut String,
    indent: usize,
    labels: impl Iterator<Item = &'a (String, String)>,
) {
    for (key, value) in labels {
        let _ = writeln!(out, "{:indent$}{key}: {}", "", scalar(value));
    }
}

fn write_containers(out: &mut String, indent: usize, workload: &Workload) {
    let pad = " ".repeat(indent);
    let _ = write!(
        out,
        "{pad}containers:\n{pad}- name: {}\n{pad}  image: {}\n{pad}  imagePullPolicy: IfNotPresent\n",
        match workload.tier {
            Some(tier) => tier.image(),
            None => workload.name.as_str(),
        },
        workload.image
    );
    if !workload.ports.is_empty() {
        let _ = writeln!(out, "{pad}  ports:");
        for (name, port, protocol) in &workload.ports {
            let _ = write!(
                out,
                "{pad}  - name: {name}\n{pad}    containerPort: {port}\n{pad}    protocol: {protocol}\n"
            );
        }
    }
    let _ = write!(
        out,
        "{pad}  resources:\n{pad}    requests:\n{pad}      cpu: 100m\n{pad}      memory: 128Mi\n{pad}    limits:\n{pad}      memory: 256Mi\n{pad}restartPolicy: Always\n{pad}serviceAccountName: {}\n",
        workload.name
    );
}

/// A YAML scalar for a string: quoted when YAML would read it as something
/// else (a number, a boolean, null).
fn scalar(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let ambiguous = text.is_empty()
        || text.parse::<f64>().is_ok()
        || text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'_')
        || matches!(
            lower.as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
        );
    if ambiguous {
        format!("\"{text}\"")
    } else {
        text.to_string()
    }
}

fn ipv4(address: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_hits_the_pod_total_exactly() {
        for pods in [11, 50, 100, 333, 1_000, 2_500, 10_000, 50_000] {
            let params = Params::scale(pods, pods);
            assert_eq!(params.expected().pods, pods, "{params:?}");
        }
    }

    #[test]
    fn policy_budget_is_exact_for_small_and_large_targets() {
        for target in [0, 1, 7, 40, 100, 333, 2_000] {
            let mut params = Params::scale(100, target);
            params.services = false;
            let (text, summary) = generate_with_summary(&params);
            assert_eq!(text.matches("\nkind: NetworkPolicy\n").count(), target);
            assert_eq!(summary.policies_by_kind.values().sum::<usize>(), target);
        }
    }

    #[test]
    fn output_is_deterministic_and_seeded() {
        let params = Params::scale(60, 30);
        assert_eq!(generate(&params), generate(&params));
        assert_ne!(generate(&params), generate(&params.clone().with_seed(7)));
    }

    #[test]
    fn scalars_that_yaml_would_retype_are_quoted() {
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("1.4.2"), "\"1.4.2\"");
        assert_eq!(scalar("0"), "\"0\"");
        assert_eq!(scalar("api"), "api");
    }
}
