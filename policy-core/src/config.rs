//! The choices the NetworkPolicy spec leaves to implementations.
//!
//! Each choice is explicit here, with the behaviour it reproduces. The
//! defaults follow the upstream e2e suite (and Calico).

use std::fmt;
use std::str::FromStr;

/// Whether `ipBlock` peers match the IPs of pods in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpBlockMode {
    /// ipBlocks match pod IPs like any other address. Upstream e2e requires
    /// this ("should allow egress access to server in CIDR block"), and
    /// Calico enforces it.
    #[default]
    Match,
    /// ipBlocks match only addresses outside the cluster, as Cilium does and
    /// as the API documentation intends ("should be cluster-external IPs").
    Ignore,
}

/// How pods with `spec.hostNetwork: true` are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HostNetworkMode {
    /// Their traffic is node traffic: no `podSelector` or `namespaceSelector`
    /// selects them, policies never isolate them, an `ipBlock` on their
    /// (node) IP matches them under [`IpBlockMode::Match`] (under `Ignore`
    /// their IP is a pod IP like any other), and traffic between them and pods on the same
    /// node is always allowed, both ways (networking/v1: ingress "from the
    /// pod's local node"; the API documentation: "traffic to and from the
    /// node where a Pod is running is always allowed"). The documented common
    /// behaviour ("NetworkPolicy and hostNetwork pods").
    #[default]
    Node,
    /// They are ordinary pods, selected and isolated by their labels.
    Pod,
}

/// Whether a pod reaching itself is subject to policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SelfTraffic {
    /// Always allowed: traffic from a pod to its own IP never leaves it
    /// (kubernetes#95879; the API documentation: "a pod cannot block access
    /// to itself").
    #[default]
    Allow,
    /// Evaluated like any other pair. For an endpoint that stands for a
    /// workload, this is the answer for one replica reaching another.
    Evaluate,
}

/// Which of a dual-stack pod's addresses an `ipBlock` is matched against.
///
/// A kernel decides per packet, so a connection over IPv6 matches an ipBlock
/// only through the pods' IPv6 addresses. The model answers per pod: with
/// `Any`, a pod matches a block when any of its addresses is inside (the
/// answer to "can A reach B at all?"); with `Ipv4` or `Ipv6`, only that
/// family's addresses count, which is exact for connections of that family.
/// Single-stack clusters answer the same either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// Any of the pod's addresses.
    #[default]
    Any,
    /// Only IPv4 addresses.
    Ipv4,
    /// Only IPv6 addresses.
    Ipv6,
}

impl AddressFamily {
    /// True if an address of this family is considered.
    pub fn includes(self, address: std::net::IpAddr) -> bool {
        match self {
            AddressFamily::Any => true,
            AddressFamily::Ipv4 => address.is_ipv4(),
            AddressFamily::Ipv6 => address.is_ipv6(),
        }
    }
}

/// Where the policy filter sits relative to the service proxy's source NAT,
/// which decides the source address a backend's ingress policy sees for
/// outside traffic that entered through a NodePort, a load balancer or an
/// external IP with `externalTrafficPolicy: Cluster` (docs/SEMANTICS.md §17.4).
/// With `Local` the client address is always kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServiceProfile {
    /// `netpol agent` (or Calico's iptables mode, kube-router) with
    /// kube-proxy: the filter runs in the receiving node's forward hook,
    /// before kube-proxy's masquerade in postrouting. A backend on the
    /// receiving node sees the client; a backend on another node sees the
    /// receiving node's address.
    #[default]
    Netpol,
    /// The source is rewritten to the receiving node's address before any
    /// policy runs (Antrea's documented NodePort behaviour): every backend
    /// sees that node, which is its own node when it runs there.
    SnatBeforePolicy,
    /// The client address reaches every backend (Calico eBPF, Cilium DSR):
    /// policies see the client.
    ClientPreserved,
}

/// The implementation-defined choices, in one place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Config {
    /// See [`IpBlockMode`].
    pub ip_block: IpBlockMode,
    /// See [`HostNetworkMode`].
    pub host_network: HostNetworkMode,
    /// See [`SelfTraffic`].
    pub self_traffic: SelfTraffic,
    /// See [`AddressFamily`].
    pub address_family: AddressFamily,
    /// See [`ServiceProfile`].
    pub service_profile: ServiceProfile,
}

macro_rules! keyword_enum {
    ($type:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $type {
            /// The command-line spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(format!(
                        "unknown value {:?}: use one of {}",
                        text,
                        [$($text),*].join(", ")
                    )),
                }
            }
        }
    };
}

keyword_enum!(IpBlockMode { Match => "match", Ignore => "ignore" });
keyword_enum!(HostNetworkMode { Node => "node", Pod => "pod" });
keyword_enum!(SelfTraffic { Allow => "allow", Evaluate => "evaluate" });
keyword_enum!(AddressFamily { Any => "any", Ipv4 => "ipv4", Ipv6 => "ipv6" });
keyword_enum!(ServiceProfile {
    Netpol => "netpol",
    SnatBeforePolicy => "snat-before-policy",
    ClientPreserved => "client-preserved",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip() {
        for mode in [IpBlockMode::Match, IpBlockMode::Ignore] {
            assert_eq!(mode.as_str().parse::<IpBlockMode>(), Ok(mode));
        }
        assert_eq!("pod".parse::<HostNetworkMode>(), Ok(HostNetworkMode::Pod));
        assert!(
            "sometimes"
                .parse::<SelfTraffic>()
                .unwrap_err()
                .contains("allow, evaluate")
        );
    }
}
