//! A routed, Calico-like network-namespace testbed that proves nftables rulesets
//! with real packets.
//!
//! Integration tests include it with `mod testbed;`. It needs root, `ip`
//! (iproute2) and `nft`; call [`e2e_available`] first and return early when it
//! says `false`.
//!
//! # Topology
//!
//! Every name below is a network namespace called `nptb-<pid>-<n>-…`, where
//! `<pid>-<n>` (the process id and a per-process counter) is unique per
//! [`Testbed`], so any number of testbeds, in one process or in concurrent test
//! binaries, never meet. Interfaces are created directly inside those
//! namespaces (never in the root namespace), so their short names (`eth0`,
//! `cali3`, …) cannot collide with anything else on the machine.
//!
//! ```text
//!                      switch netns (bridge br0, no IP)
//!              sw0 ─┐                                ┌─ sw1
//!                   │ veth                      veth │
//!         node-1 netns: eth0 192.168.77.1/24    node-2 netns: eth0 192.168.77.2/24
//!                       fd00:77::1/64                        fd00:77::2/64
//!          cali0 ─┐  cali1 ─┐  ext3 ─┐                  cali2 ─┐
//!                 │veth     │        │                         │
//!        pod x/a eth0   pod x/b   external            pod y/a eth0
//!        10.0.1.1/32    …         203.0.113.10/32     10.0.2.1/32
//! ```
//!
//! * **Nodes** (`TestbedSpec::nodes`, index `i` from 0): `eth0` holds
//!   `192.168.77.(i+1)/24` and `fd00:77::(i+1)/64` and is a port of the bridge
//!   `br0` in the switch namespace. IPv4 and IPv6 forwarding are on,
//!   `rp_filter` and ICMP redirects are off. Every node routes each pod and
//!   external of another node as a /32 (/128) `via` that node's address, and
//!   each of its own pods and externals as a /32 (/128) `dev <veth>`.
//! * **Pods** and **externals** (global index `k`, pods first, then externals,
//!   in spec order): the namespace's `eth0` holds the IPv4 address as /32 and
//!   the IPv6 address (if any) as /128, with `default via 169.254.1.1 dev eth0`
//!   and `default via fe80::1 dev eth0`. The node side of the veth is named
//!   `cali<k>` for a pod and `ext<k>` for an external (so a ruleset can tell
//!   pod interfaces apart with `iifname "cali*"`; see [`Testbed::host_iface`]) and
//!   holds `169.254.1.1/32` and `fe80::1/64`.
//! * **Neighbours are static.** Every MAC address is fixed (`02:4e:…`) and every
//!   neighbour entry a packet needs (pod → gateway, node → pod, node → node)
//!   is installed `nud permanent`, so no ARP or neighbour discovery happens
//!   while probing (no first-packet queueing, and no reliance on ICMPv6 ND
//!   passing a node's `input`/`output` hooks). A ruleset under test therefore
//!   only has to get the IP traffic right. IPv6 duplicate address detection
//!   is off (`accept_dad=0` and `nodad`), so addresses are usable at once.
//! * **Servers**: in every pod and external, for each port of
//!   `TestbedSpec::tcp_ports` a TCP listener (accepts and closes) and for each
//!   port of `TestbedSpec::udp_ports` a UDP echo socket, bound to the
//!   endpoint's IPv4 address and (if set) its IPv6 address. They are sockets
//!   of the test process, created by a thread that `setns(2)`-ed into the
//!   namespace and served by one `poll(2)` thread per testbed; no process is
//!   spawned per server or per probe.
//!
//! # Probing
//!
//! [`Testbed::probe_all`] runs every probe at once on one thread that
//! switches into each source namespace to create the probe's socket (a socket
//! stays in the namespace it was created in). A TCP probe succeeds when the
//! handshake completes *and* the server's accept-and-close (its FIN) comes
//! back: a connection can only be accepted once the client's ACK arrived, so
//! this proves established traffic passes in both directions, not just the
//! SYN-ACK. The client then resets the connection, which leaves no
//! `TIME_WAIT` socket on either end. A UDP probe succeeds when
//! the datagram comes back echoed. Every attempt binds a fresh source port
//! from a process-wide counter over 20000–60999, so no probe can ever ride on
//! a conntrack entry of an earlier one (UDP entries live 30 s), and every
//! reply is `ct state established` in the direction of the probe. A probe
//! that fails (no answer within the timeout, or an ICMP error or RST) is
//! retried with the next, longer timeout (default 300 ms, then 700 ms) before
//! it is reported `false`; a dropped probe therefore costs about one second of
//! wall time, however many run in parallel. A probe from an endpoint to
//! itself never leaves its namespace (it goes over `lo`), so no node sees it.
//!
//! # Rulesets
//!
//! [`Testbed::nft`] runs `nft` inside a node's namespace; [`Testbed::load`]
//! feeds it a ruleset on stdin and [`Testbed::clear`] deletes `table inet
//! netpol`. The testbed itself installs no nftables rules anywhere.
//!
//! # Cleanup
//!
//! Dropping a [`Testbed`] stops its servers and deletes its namespaces. A
//! testbed kept in a `static` is never dropped: an `atexit` handler deletes
//! the namespaces of every testbed still alive when the process exits
//! normally (which the test harness does, also when tests fail). A process
//! killed outright leaves its namespaces behind; the next [`Testbed::new`] in
//! any process removes them. Liveness is decided by an `flock(2)` each
//! testbed holds on `/run/netpol-testbed/<prefix>.lock`, never by guessing
//! from pids, so a concurrent run is never disturbed.
//!
//! # Example
//!
//! ```ignore
//! mod testbed;
//! use testbed::*;
//!
//! #[test]
//! fn my_ruleset_is_enforced() {
//!     if !e2e_available() {
//!         return;
//!     }
//!     let tb = Testbed::new(&spec).unwrap();
//!     for case in cases {
//!         tb.load("node-1", &case.ruleset_node1).unwrap();
//!         let got = tb.probe_all(&case.probes);
//!         assert_eq!(got, case.expected);
//!         tb.clear("node-1").unwrap();
//!     }
//! }
//! ```

// Every test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Set to `1` to make a missing end-to-end environment (not root, no `ip`,
/// no `nft`) a test failure instead of a skip. CI sets it.
pub const REQUIRE_E2E_ENV: &str = "NETPOL_REQUIRE_E2E";

/// The first three octets of the node network: node `i` (0-based, in
/// `TestbedSpec::nodes` order) is `192.168.77.(i+1)/24`.
pub const NODE_NET_V4: [u8; 3] = [192, 168, 77];
/// The node network for IPv6: node `i` is `fd00:77::(i+1)/64`.
pub const NODE_NET_V6: [u16; 2] = [0xfd00, 0x77];
/// The pods' and externals' IPv4 default gateway, answered by the node side
/// of each veth.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pods' and externals' IPv6 default gateway (link-local), answered by
/// the node side of each veth.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// Default probe timeouts: one attempt per entry, each used after the
/// previous attempt failed.
pub const DEFAULT_PROBE_TIMEOUTS: [Duration; 2] =
    [Duration::from_millis(300), Duration::from_millis(700)];

const ONE: libc::c_int = 1;
const NETNS_DIR: &str = "/var/run/netns";
const LOCK_DIR: &str = "/run/netpol-testbed";
const NS_PREFIX: &str = "nptb-";
/// Probe sockets in flight at once (each is one file descriptor).
const MAX_IN_FLIGHT: usize = 512;
/// Source ports for probes: a process-wide counter walks this range.
const SRC_PORT_LOW: u32 = 20000;
const SRC_PORT_HIGH: u32 = 60999;

// ---------------------------------------------------------------------------
// Availability

/// Whether end-to-end tests can run here: the process is root, `ip -V` and
/// `nft --version` run, and `nft list tables` can talk to the kernel.
///
/// When they cannot: panics with the reason if the environment variable
/// `NETPOL_REQUIRE_E2E` is `1` (CI must fail, not skip); otherwise prints a
/// notice to stderr and returns `false`, and the caller returns early.
/// The check itself runs once per process.
pub fn e2e_available() -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    match CHECK.get_or_init(check_e2e) {
        Ok(()) => true,
        Err(why) => {
            if std::env::var(REQUIRE_E2E_ENV).as_deref() == Ok("1") {
                panic!(
                    "network-namespace end-to-end tests cannot run: {why}; \
                     they need root, iproute2 (`ip`) and nftables (`nft`, e.g. \
                     `apt-get install -y nftables`). {REQUIRE_E2E_ENV}=1 is set, so this is a failure."
                );
            }
            eprintln!(
                "note: skipping a network-namespace end-to-end test: {why} \
                 (set {REQUIRE_E2E_ENV}=1 to make this a failure)"
            );
            false
        }
    }
}

fn check_e2e() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root".into());
    }
    run_quiet("ip", &["-V"])?;
    run_quiet("nft", &["--version"])?;
    run_quiet("nft", &["list", "tables"])?;
    Ok(())
}

fn run_quiet(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------
// Specification

/// A pod: a namespace behind `node` with `eth0` = `ipv4`/32 (and `ipv6`/128).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSpec {
    /// Unique among pods and externals, e.g. `"x/a"`.
    pub name: String,
    /// One of `TestbedSpec::nodes`.
    pub node: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

/// An address outside the cluster (e.g. `203.0.113.10`), wired exactly like a
/// pod behind `node` but through a node-side veth named `ext<k>` instead of
/// `cali<k>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalSpec {
    /// Unique among pods and externals.
    pub name: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    /// The node it is attached behind.
    pub node: String,
}

/// What to build. Node `i` gets address `192.168.77.(i+1)` / `fd00:77::(i+1)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestbedSpec {
    pub nodes: Vec<String>,
    pub pods: Vec<PodSpec>,
    pub externals: Vec<ExternalSpec>,
    /// Every pod and external listens on these TCP ports (accept and close).
    pub tcp_ports: Vec<u16>,
    /// Every pod and external echoes UDP datagrams on these ports.
    pub udp_ports: Vec<u16>,
}

/// A transport protocol for [`Probe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One connection attempt from the endpoint `from` to the endpoint `to`
/// (pod or external names), at `to`'s IPv4 address or, with `ipv6`, its IPv6
/// address (both ends must have one). `to` may also be an IP address (a
/// Service's virtual IP, a node's address): the probe then goes to that
/// address and port as given, whatever the testbed serves there, so that
/// NAT rules under test can carry it to a server. `from` may name a node:
/// the node's own stack then sends, from its address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub proto: Proto,
    pub port: u16,
    pub ipv6: bool,
}

impl Probe {
    /// An IPv4 TCP probe.
    pub fn tcp(from: &str, to: &str, port: u16) -> Probe {
        Probe {
            from: from.into(),
            to: to.into(),
            proto: Proto::Tcp,
            port,
            ipv6: false,
        }
    }

    /// An IPv4 UDP probe.
    pub fn udp(from: &str, to: &str, port: u16) -> Probe {
        Probe {
            from: from.into(),
            to: to.into(),
            proto: Proto::Udp,
            port,
            ipv6: false,
        }
    }

    /// The same probe over IPv6.
    pub fn v6(mut self) -> Probe {
        self.ipv6 = true;
        self
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = if self.ipv6 { "ipv6" } else { "ipv4" };
        write!(
            f,
            "{} -> {} {}/{} {family}",
            self.from, self.to, self.proto, self.port
        )
    }
}

// ---------------------------------------------------------------------------
// The testbed

struct Node {
    name: String,
    ns: String,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
    /// MAC of the node's `eth0`.
    mac: String,
}

struct Endpoint {
    name: String,
    external: bool,
    node: usize,
    ns: String,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
    /// The node-side veth (`cali<k>` / `ext<k>`).
    host_iface: String,
    /// MAC of the endpoint's `eth0`.
    mac: String,
    /// MAC of the node-side veth.
    host_mac: String,
}

/// A built topology: see the [module documentation](self) for the layout.
///
/// Safe to share between threads (every method takes `&self`), also from a
/// `static`. Dropping it deletes everything it made.
pub struct Testbed {
    prefix: String,
    lock_path: String,
    /// Held (with `flock`) for the testbed's lifetime.
    lock: Option<File>,
    switch_ns: String,
    nodes: Vec<Node>,
    endpoints: Vec<Endpoint>,
    node_index: HashMap<String, usize>,
    endpoint_index: HashMap<String, usize>,
    /// Open namespace handles: nodes first, then endpoints (same order).
    node_fds: Vec<File>,
    endpoint_fds: Vec<File>,
    /// Ports servers listen on: never used as probe source ports.
    server_ports: HashSet<u16>,
    server: Option<Server>,
    timeouts: Mutex<Vec<Duration>>,
}

static TESTBED_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Testbed {
    /// Builds the topology of `spec` (see the [module documentation](self)),
    /// after deleting namespaces that crashed earlier runs left behind, and
    /// starts the servers. Takes a few hundred milliseconds.
    ///
    /// Errors name what was wrong with the spec or which `ip` command
    /// failed; whatever was already made is deleted again.
    pub fn new(spec: &TestbedSpec) -> Result<Testbed, String> {
        validate(spec)?;
        raise_fd_limit();
        let prefix = format!(
            "{NS_PREFIX}{}-{}",
            std::process::id(),
            TESTBED_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        fs::create_dir_all(LOCK_DIR).map_err(|e| format!("cannot create {LOCK_DIR}: {e}"))?;
        let lock_path = format!("{LOCK_DIR}/{prefix}.lock");
        let lock = acquire_lock(&lock_path)?;
        register_at_exit(&prefix);
        remove_leftovers(&prefix);

        let node_index: HashMap<String, usize> = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let nodes: Vec<Node> = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let host = u16::try_from(i + 1).expect("validated");
                Node {
                    name: name.clone(),
                    ns: format!("{prefix}-n{i}-{}", sanitize(name)),
                    ipv4: Ipv4Addr::new(
                        NODE_NET_V4[0],
                        NODE_NET_V4[1],
                        NODE_NET_V4[2],
                        u8::try_from(i + 1).expect("validated"),
                    ),
                    ipv6: Ipv6Addr::new(NODE_NET_V6[0], NODE_NET_V6[1], 0, 0, 0, 0, 0, host),
                    mac: mac(1, i),
                }
            })
            .collect();
        let pods = spec
            .pods
            .iter()
            .map(|p| (&p.name, &p.node, p.ipv4, p.ipv6, false));
        let externals = spec
            .externals
            .iter()
            .map(|e| (&e.name, &e.node, e.ipv4, e.ipv6, true));
        let endpoints: Vec<Endpoint> = pods
            .chain(externals)
            .enumerate()
            .map(|(k, (name, node, ipv4, ipv6, external))| Endpoint {
                name: name.clone(),
                external,
                node: node_index[node],
                ns: format!(
                    "{prefix}-{}{k}-{}",
                    if external { "e" } else { "p" },
                    sanitize(name)
                ),
                ipv4,
                ipv6,
                host_iface: format!("{}{k}", if external { "ext" } else { "cali" }),
                mac: mac(3, k),
                host_mac: mac(4, k),
            })
            .collect();
        let endpoint_index = endpoints
            .iter()
            .enumerate()
            .map(|(k, e)| (e.name.clone(), k))
            .collect();
        let server_ports = spec
            .tcp_ports
            .iter()
            .chain(&spec.udp_ports)
            .copied()
            .collect();

        let mut tb = Testbed {
            switch_ns: format!("{prefix}-sw"),
            prefix,
            lock_path,
            lock: Some(lock),
            nodes,
            endpoints,
            node_index,
            endpoint_index,
            node_fds: Vec::new(),
            endpoint_fds: Vec::new(),
            server_ports,
            server: None,
            timeouts: Mutex::new(DEFAULT_PROBE_TIMEOUTS.to_vec()),
        };
        // On error `tb` is dropped here, which deletes what was made so far.
        tb.build(spec)?;
        Ok(tb)
    }

    fn all_namespaces(&self) -> Vec<String> {
        let mut all = vec![self.switch_ns.clone()];
        all.extend(self.nodes.iter().map(|n| n.ns.clone()));
        all.extend(self.endpoints.iter().map(|e| e.ns.clone()));
        all
    }

    fn build(&mut self, spec: &TestbedSpec) -> Result<(), String> {
        let all = self.all_namespaces();
        set_active(&self.prefix, Some(all.clone()));
        let adds: String = all.iter().map(|ns| format!("netns add {ns}\n")).collect();
        ip_batches(vec![(None, adds)])?;
        let switch_fd = open_netns(&self.switch_ns)?;
        self.node_fds = self
            .nodes
            .iter()
            .map(|n| open_netns(&n.ns))
            .collect::<Result<_, _>>()?;
        self.endpoint_fds = self
            .endpoints
            .iter()
            .map(|e| open_netns(&e.ns))
            .collect::<Result<_, _>>()?;

        // Sysctls first: interfaces take the `default` values when created.
        let common: &[(&str, &str)] = &[
            ("net/ipv6/conf/all/accept_dad", "0"),
            ("net/ipv6/conf/default/accept_dad", "0"),
            ("net/ipv6/conf/all/disable_ipv6", "0"),
            ("net/ipv6/conf/default/disable_ipv6", "0"),
            ("net/ipv4/conf/all/rp_filter", "0"),
            ("net/ipv4/conf/default/rp_filter", "0"),
        ];
        let node_extra: &[(&str, &str)] = &[
            ("net/ipv4/ip_forward", "1"),
            ("net/ipv6/conf/all/forwarding", "1"),
            ("net/ipv6/conf/default/forwarding", "1"),
            ("net/ipv4/conf/all/send_redirects", "0"),
            ("net/ipv4/conf/default/send_redirects", "0"),
        ];
        let switch_only: &[(&str, &str)] = &[
            ("net/ipv6/conf/all/disable_ipv6", "1"),
            ("net/ipv6/conf/default/disable_ipv6", "1"),
        ];
        let node_settings: Vec<(&str, &str)> = common.iter().chain(node_extra).copied().collect();
        let mut jobs: Vec<SysctlJob> = vec![(&switch_fd, &self.switch_ns, switch_only)];
        for (node, fd) in self.nodes.iter().zip(&self.node_fds) {
            jobs.push((fd, &node.ns, &node_settings));
        }
        for (ep, fd) in self.endpoints.iter().zip(&self.endpoint_fds) {
            jobs.push((fd, &ep.ns, common));
        }
        write_sysctls(&jobs)?;
        drop(switch_fd);

        // The switch: a bridge, and one veth per node whose other end is the
        // node's eth0.
        let mut switch = String::from(
            "link set lo up\nlink add name br0 type bridge mcast_snooping 0\nlink set br0 up\n",
        );
        for (i, node) in self.nodes.iter().enumerate() {
            switch += &format!(
                "link add name sw{i} address {} type veth peer name eth0 address {} netns {}\n\
                 link set sw{i} master br0\nlink set sw{i} up\n",
                mac(2, i),
                node.mac,
                node.ns
            );
        }
        ip_batches(vec![(Some(self.switch_ns.clone()), switch)])?;

        // Nodes: uplink, local endpoints' veths, routes, static neighbours.
        let mut node_jobs = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut b = format!(
                "link set lo up\nlink set eth0 up\naddr add {}/24 dev eth0\n\
                 addr add {}/64 dev eth0 nodad\n",
                node.ipv4, node.ipv6
            );
            for other in self
                .nodes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, o)| o)
            {
                b += &format!(
                    "neigh replace {} lladdr {} dev eth0 nud permanent\n\
                     neigh replace {} lladdr {} dev eth0 nud permanent\n",
                    other.ipv4, other.mac, other.ipv6, other.mac
                );
            }
            for ep in &self.endpoints {
                if ep.node == i {
                    let dev = &ep.host_iface;
                    b += &format!(
                        "link add name {dev} address {} type veth peer name eth0 address {} netns {}\n\
                         link set {dev} up\n\
                         addr add {GATEWAY_V4}/32 dev {dev}\n\
                         addr add {GATEWAY_V6}/64 dev {dev} nodad\n\
                         route add {}/32 dev {dev} scope link\n\
                         neigh replace {} lladdr {} dev {dev} nud permanent\n",
                        ep.host_mac, ep.mac, ep.ns, ep.ipv4, ep.ipv4, ep.mac
                    );
                    if let Some(v6) = ep.ipv6 {
                        b += &format!(
                            "route add {v6}/128 dev {dev}\n\
                             neigh replace {v6} lladdr {} dev {dev} nud permanent\n",
                            ep.mac
                        );
                    }
                } else {
                    let via = &self.nodes[ep.node];
                    b += &format!(
                        "route add {}/32 via {} dev eth0 onlink\n",
                        ep.ipv4, via.ipv4
                    );
                    if let Some(v6) = ep.ipv6 {
                        b += &format!("route add {v6}/128 via {} dev eth0 onlink\n", via.ipv6);
                    }
                }
            }
            node_jobs.push((Some(node.ns.clone()), b));
        }
        ip_batches(node_jobs)?;

        // Pods and externals.
        let mut ep_jobs = Vec::new();
        for ep in &self.endpoints {
            let mut b = format!(
                "link set lo up\nlink set eth0 up\naddr add {}/32 dev eth0\n\
                 route add {GATEWAY_V4}/32 dev eth0 scope link\n\
                 route add 0.0.0.0/0 via {GATEWAY_V4} dev eth0\n\
                 neigh replace {GATEWAY_V4} lladdr {} dev eth0 nud permanent\n",
                ep.ipv4, ep.host_mac
            );
            if let Some(v6) = ep.ipv6 {
                b += &format!(
                    "addr add {v6}/128 dev eth0 nodad\n\
                     route add ::/0 via {GATEWAY_V6} dev eth0\n\
                     neigh replace {GATEWAY_V6} lladdr {} dev eth0 nud permanent\n",
                    ep.host_mac
                );
            }
            ep_jobs.push((Some(ep.ns.clone()), b));
        }
        ip_batches(ep_jobs)?;

        self.server = Some(Server::start(self, spec)?);
        Ok(())
    }

    /// Runs `nft <args>` inside the namespace of `node` (a node name; pod and
    /// external names work too) with `stdin` on its standard input, and
    /// returns its standard output. `Err` carries nft's exit status and
    /// standard error (e.g. the syntax error of a rejected ruleset).
    pub fn nft(&self, node: &str, args: &[&str], stdin: &str) -> Result<String, String> {
        let fd = self.netns_fd(node)?.as_raw_fd();
        let mut cmd = Command::new("nft");
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec the closure only calls setns(2), which
        // is async-signal-safe; `fd` stays open because `self` outlives the
        // child's exec (we wait for the child below).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run nft in {node}: {e}"))?;
        let mut input = child.stdin.take().expect("piped");
        let stdin = stdin.to_owned();
        // Write from another thread so a large ruleset cannot deadlock
        // against nft's output.
        let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|e| format!("nft in {node}: {e}"))?;
        let written = writer.join().expect("stdin writer panicked");
        if !out.status.success() {
            return Err(format!(
                "nft {} in {node} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ));
        }
        // nft may legitimately not read stdin (e.g. `list ruleset`).
        if let Err(e) = written
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            return Err(format!("writing nft's stdin in {node}: {e}"));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Loads `ruleset` into `node` atomically (`nft -f -`).
    pub fn load(&self, node: &str, ruleset: &str) -> Result<(), String> {
        self.nft(node, &["-f", "-"], ruleset).map(|_| ())
    }

    /// Deletes `table inet netpol` from `node` if it exists (in one
    /// transaction that first creates it, so a missing table is no error).
    pub fn clear(&self, node: &str) -> Result<(), String> {
        self.load(node, "add table inet netpol\ndelete table inet netpol\n")
    }

    /// `nft list ruleset` of `node`, for failure messages.
    pub fn ruleset(&self, node: &str) -> Result<String, String> {
        self.nft(node, &["list", "ruleset"], "")
    }

    /// Sets the timeout of each probe attempt: a failed attempt is retried
    /// with the next entry, and the probe is `false` when the last one fails
    /// too. Default: [`DEFAULT_PROBE_TIMEOUTS`] (300 ms, 700 ms).
    ///
    /// # Panics
    /// If `timeouts` is empty.
    pub fn set_probe_timeouts(&self, timeouts: Vec<Duration>) {
        assert!(!timeouts.is_empty(), "at least one probe attempt is needed");
        *self.timeouts.lock().unwrap_or_else(|e| e.into_inner()) = timeouts;
    }

    /// The timeouts [`Testbed::probe_all`] uses now.
    pub fn probe_timeouts(&self) -> Vec<Duration> {
        self.timeouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs all probes concurrently and returns, in order, whether each
    /// connected (TCP: handshake completed and the server's close came back;
    /// UDP: the echo came back).
    ///
    /// # Panics
    /// If a probe names an unknown endpoint, asks for IPv6 where an end has no
    /// IPv6 address, or targets a port the destination does not serve (such
    /// a probe could only ever say `false`: a bug in the test, not a verdict).
    pub fn probe_all(&self, probes: &[Probe]) -> Vec<bool> {
        let resolved: Vec<Resolved> = probes.iter().map(|p| self.resolve(p)).collect();
        std::thread::scope(|s| {
            s.spawn(|| Prober::new(self, &resolved).run())
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// [`Testbed::probe_all`] for one probe.
    pub fn probe(&self, probe: &Probe) -> bool {
        self.probe_all(std::slice::from_ref(probe))[0]
    }

    /// The names of all nodes, in spec order.
    pub fn nodes(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// The names of all pods and externals, pods first, in spec order.
    pub fn endpoints(&self) -> Vec<&str> {
        self.endpoints.iter().map(|e| e.name.as_str()).collect()
    }

    /// The network namespace of a node, pod or external, for debugging with
    /// `ip netns exec <ns> …` (e.g. while a test sleeps).
    pub fn netns(&self, name: &str) -> Option<&str> {
        if let Some(&i) = self.node_index.get(name) {
            return Some(&self.nodes[i].ns);
        }
        self.endpoint_index
            .get(name)
            .map(|&k| self.endpoints[k].ns.as_str())
    }

    /// The node-side interface of a pod (`cali<k>`) or external (`ext<k>`).
    /// Every node's uplink is `eth0`.
    pub fn host_iface(&self, endpoint: &str) -> Option<&str> {
        self.endpoint_index
            .get(endpoint)
            .map(|&k| self.endpoints[k].host_iface.as_str())
    }

    /// The node a pod or external is attached behind.
    pub fn node_of(&self, endpoint: &str) -> Option<&str> {
        self.endpoint_index
            .get(endpoint)
            .map(|&k| self.nodes[self.endpoints[k].node].name.as_str())
    }

    /// A node's address on the node network (`192.168.77.(i+1)`).
    pub fn node_ipv4(&self, node: &str) -> Option<Ipv4Addr> {
        self.node_index.get(node).map(|&i| self.nodes[i].ipv4)
    }

    /// A node's IPv6 address on the node network (`fd00:77::(i+1)`).
    pub fn node_ipv6(&self, node: &str) -> Option<Ipv6Addr> {
        self.node_index.get(node).map(|&i| self.nodes[i].ipv6)
    }

    /// The unique name prefix of this testbed's namespaces (`nptb-<pid>-<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn netns_fd(&self, name: &str) -> Result<&File, String> {
        if let Some(&i) = self.node_index.get(name) {
            return Ok(&self.node_fds[i]);
        }
        if let Some(&k) = self.endpoint_index.get(name) {
            return Ok(&self.endpoint_fds[k]);
        }
        Err(format!("no node, pod or external is called {name:?}"))
    }

    fn resolve(&self, p: &Probe) -> Resolved {
        let find = |name: &str| -> usize {
            *self.endpoint_index.get(name).unwrap_or_else(|| {
                panic!(
                    "probe {p}: no pod or external is called {name:?} (known: {:?})",
                    self.endpoints()
                )
            })
        };
        if let Some(&node) = self.node_index.get(&p.from) {
            // A node as the source: its own stack sends, from its address.
            let dst = match p.to.parse::<IpAddr>() {
                Ok(address) => address,
                Err(_) => {
                    let ep = &self.endpoints[find(&p.to)];
                    if p.ipv6 {
                        IpAddr::V6(ep.ipv6.unwrap_or_else(|| {
                            panic!("probe {p}: {} has no IPv6 address", ep.name)
                        }))
                    } else {
                        IpAddr::V4(ep.ipv4)
                    }
                }
            };
            let src = match dst {
                IpAddr::V4(_) => IpAddr::V4(self.nodes[node].ipv4),
                IpAddr::V6(_) => IpAddr::V6(self.nodes[node].ipv6),
            };
            return Resolved {
                from: self.endpoints.len() + node,
                src,
                dst: SocketAddr::new(dst, p.port),
                proto: p.proto,
            };
        }
        if let Ok(address) = p.to.parse::<IpAddr>() {
            let from = find(&p.from);
            let ep = &self.endpoints[from];
            let src = match address {
                IpAddr::V4(_) => IpAddr::V4(ep.ipv4),
                IpAddr::V6(_) => IpAddr::V6(
                    ep.ipv6
                        .unwrap_or_else(|| panic!("probe {p}: {} has no IPv6 address", ep.name)),
                ),
            };
            return Resolved {
                from,
                src,
                dst: SocketAddr::new(address, p.port),
                proto: p.proto,
            };
        }
        let (from, to) = (find(&p.from), find(&p.to));
        let addr = |k: usize| -> IpAddr {
            let ep = &self.endpoints[k];
            if p.ipv6 {
                IpAddr::V6(
                    ep.ipv6
                        .unwrap_or_else(|| panic!("probe {p}: {} has no IPv6 address", ep.name)),
                )
            } else {
                IpAddr::V4(ep.ipv4)
            }
        };
        let served = match p.proto {
            Proto::Tcp => &self.server.as_ref().expect("built").tcp_ports,
            Proto::Udp => &self.server.as_ref().expect("built").udp_ports,
        };
        assert!(
            served.contains(&p.port),
            "probe {p}: the testbed serves no {} port {} (spec: {served:?})",
            p.proto,
            p.port
        );
        Resolved {
            from,
            src: addr(from),
            dst: SocketAddr::new(addr(to), p.port),
            proto: p.proto,
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        self.node_fds.clear();
        self.endpoint_fds.clear();
        delete_namespaces(&self.all_namespaces());
        set_active(&self.prefix, None);
        let _ = fs::remove_file(&self.lock_path);
        self.lock = None;
    }
}

fn validate(spec: &TestbedSpec) -> Result<(), String> {
    if spec.nodes.is_empty() {
        return Err("a testbed needs at least one node".into());
    }
    if spec.nodes.len() > 250 {
        return Err("at most 250 nodes".into());
    }
    let mut nodes = HashSet::new();
    for n in &spec.nodes {
        if n.is_empty() || !nodes.insert(n.as_str()) {
            return Err(format!("node names must be unique and non-empty: {n:?}"));
        }
    }
    let mut names = HashSet::new();
    let mut v4s = HashSet::new();
    let mut v6s = HashSet::new();
    let pods = spec.pods.iter().map(|p| (&p.name, &p.node, p.ipv4, p.ipv6));
    let externals = spec
        .externals
        .iter()
        .map(|e| (&e.name, &e.node, e.ipv4, e.ipv6));
    for (name, node, v4, v6) in pods.chain(externals) {
        if name.is_empty() || !names.insert(name.as_str()) {
            return Err(format!(
                "pod and external names must be unique and non-empty: {name:?}"
            ));
        }
        if !nodes.contains(node.as_str()) {
            return Err(format!("{name}: unknown node {node:?}"));
        }
        let o = v4.octets();
        if v4.is_unspecified()
            || v4.is_loopback()
            || v4.is_multicast()
            || v4.is_broadcast()
            || v4 == GATEWAY_V4
            || o[..3] == NODE_NET_V4
        {
            return Err(format!("{name}: {v4} is reserved (or the testbed's own)"));
        }
        if !v4s.insert(v4) {
            return Err(format!("{name}: {v4} is used twice"));
        }
        if let Some(v6) = v6 {
            let s = v6.segments();
            if v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || s[..4] == [NODE_NET_V6[0], NODE_NET_V6[1], 0, 0]
            {
                return Err(format!("{name}: {v6} is reserved (or the testbed's own)"));
            }
            if !v6s.insert(v6) {
                return Err(format!("{name}: {v6} is used twice"));
            }
        }
    }
    if spec.tcp_ports.contains(&0) || spec.udp_ports.contains(&0) {
        return Err("port 0 cannot be served".into());
    }
    Ok(())
}

/// A locally administered MAC: `02:4e:<kind>:00:<index>`.
fn mac(kind: u8, index: usize) -> String {
    let i = u16::try_from(index).expect("fewer than 65536 interfaces");
    format!("02:4e:{kind:02x}:00:{:02x}:{:02x}", i >> 8, i & 0xff)
}

/// Keeps a name readable inside a namespace name: `x/a` → `x-a`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect()
}

// ---------------------------------------------------------------------------
// Namespaces, `ip`, sysctls

fn open_netns(ns: &str) -> Result<File, String> {
    File::open(format!("{NETNS_DIR}/{ns}")).map_err(|e| format!("cannot open netns {ns}: {e}"))
}

fn enter_netns(fd: RawFd, what: &str) {
    // SAFETY: setns on a namespace fd only changes the calling thread's
    // network namespace.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        panic!("setns into {what}: {}", io::Error::last_os_error());
    }
}

/// Runs `ip [-n NS] -batch -` for every job concurrently; the first failure
/// (with the failing command, as ip reports it) is the error.
fn ip_batches(jobs: Vec<(Option<String>, String)>) -> Result<(), String> {
    let mut children = Vec::new();
    for (ns, script) in jobs {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &ns {
            cmd.args(["-n", ns]);
        }
        cmd.args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run ip: {e}"))?;
        // An early exit of ip shows in its status and stderr below.
        let _ = child
            .stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes());
        children.push((ns, script, child));
    }
    let mut first_error = None;
    for (ns, script, child) in children {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for ip: {e}"))?;
        if !out.status.success() && first_error.is_none() {
            first_error = Some(format!(
                "ip -batch in {} failed: {}\nscript:\n{script}",
                ns.as_deref().unwrap_or("the root namespace"),
                String::from_utf8_lossy(&out.stderr).trim_end()
            ));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Writes `/proc/sys/<key>` in each namespace, from a thread that enters it.
/// A namespace handle, its name, and `(key, value)` sysctls to write there.
type SysctlJob<'a> = (&'a File, &'a str, &'a [(&'a str, &'a str)]);

fn write_sysctls(jobs: &[SysctlJob]) -> Result<(), String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            for &(fd, ns, settings) in jobs {
                enter_netns(fd.as_raw_fd(), ns);
                for (key, value) in settings {
                    fs::write(format!("/proc/sys/{key}"), value)
                        .map_err(|e| format!("sysctl {key}={value} in {ns}: {e}"))?;
                }
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

fn delete_namespaces(names: &[String]) {
    let script: String = names.iter().map(|ns| format!("netns del {ns}\n")).collect();
    let Ok(mut child) = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let _ = child.wait();
}

/// Creates and locks `path`. A cleaner in another process may unlink a lock
/// file between our open and our flock (it looked unowned); then the file we
/// locked is no longer the one at `path`, and we try again.
fn acquire_lock(path: &str) -> Result<File, String> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..200 {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot create {path}: {e}"))?;
        if try_flock(&file) {
            let ours = file.metadata().map_err(|e| format!("{path}: {e}"))?;
            match fs::metadata(path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => return Ok(file),
                _ => continue,
            }
        }
        // Briefly held by a cleaner that is about to unlink it.
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("cannot lock {path}"))
}

fn try_flock(file: &File) -> bool {
    // SAFETY: flock on an open descriptor.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The testbed prefix of a namespace or lock file name: `nptb-<pid>-<n>`.
fn prefix_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(NS_PREFIX)?;
    let mut parts = rest.splitn(3, ['-', '.']);
    let (pid, n) = (parts.next()?, parts.next()?);
    Some(&name[..NS_PREFIX.len() + pid.len() + 1 + n.len()])
}

/// Deletes the namespaces and lock files of testbeds whose owner is gone: a
/// testbed holds an `flock` on its lock file from before it creates its
/// first namespace until after it deleted its last one, so a prefix whose
/// lock file is missing, or can be locked, belongs to nobody.
fn remove_leftovers(own: &str) {
    let mut by_prefix: HashMap<String, Vec<String>> = HashMap::new();
    if let Ok(dir) = fs::read_dir(NETNS_DIR) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(prefix) = prefix_of(&name) {
                by_prefix.entry(prefix.to_owned()).or_default().push(name);
            }
        }
    }
    if let Ok(dir) = fs::read_dir(LOCK_DIR) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(prefix) = prefix_of(&name) {
                by_prefix.entry(prefix.to_owned()).or_default();
            }
        }
    }
    for (prefix, namespaces) in by_prefix {
        if prefix == own {
            continue;
        }
        let lock_path = format!("{LOCK_DIR}/{prefix}.lock");
        let lock = match File::open(&lock_path) {
            Ok(lock) if try_flock(&lock) => Some(lock),
            Ok(_) => continue, // alive
            Err(_) => None,
        };
        if !namespaces.is_empty() {
            eprintln!(
                "testbed: removing {} namespaces left behind by {prefix}",
                namespaces.len()
            );
            delete_namespaces(&namespaces);
        }
        if lock.is_some() {
            let _ = fs::remove_file(&lock_path);
        }
    }
}

/// Testbeds alive in this process (prefix, namespaces), for the exit handler.
static ACTIVE: Mutex<Vec<(String, Vec<String>)>> = Mutex::new(Vec::new());

fn set_active(prefix: &str, namespaces: Option<Vec<String>>) {
    let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    active.retain(|(p, _)| p != prefix);
    if let Some(namespaces) = namespaces {
        active.push((prefix.to_owned(), namespaces));
    }
}

fn register_at_exit(prefix: &str) {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a plain function without captured state.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
    });
    set_active(prefix, Some(Vec::new()));
}

extern "C" fn cleanup_at_exit() {
    // try_lock: never block process exit on a thread that died holding it.
    let Ok(active) = ACTIVE.try_lock() else {
        return;
    };
    for (prefix, namespaces) in active.iter() {
        delete_namespaces(namespaces);
        let _ = fs::remove_file(format!("{LOCK_DIR}/{prefix}.lock"));
    }
}

/// Probes and servers use one descriptor each; the usual soft limit of 1024
/// is too low for many testbeds at once.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let want = lim.rlim_max.min(65536);
            if lim.rlim_cur < want {
                lim.rlim_cur = want;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Sockets

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn new_socket(v6: bool, proto: Proto) -> io::Result<OwnedFd> {
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let ty = match proto {
        Proto::Tcp => libc::SOCK_STREAM,
        Proto::Udp => libc::SOCK_DGRAM,
    };
    // SAFETY: socket(2) returns a new descriptor we then own.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_opt<T>(fd: &OwnedFd, level: i32, name: i32, value: T) -> io::Result<()> {
    // SAFETY: value lives across the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    let (sa, len) = sockaddr(addr);
    // SAFETY: sa is a valid sockaddr of length len.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---------------------------------------------------------------------------
// Servers

enum ServerSocket {
    Listener(OwnedFd),
    Udp(OwnedFd),
}

impl ServerSocket {
    fn fd(&self) -> RawFd {
        match self {
            ServerSocket::Listener(fd) | ServerSocket::Udp(fd) => fd.as_raw_fd(),
        }
    }
}

/// One thread per testbed serving every listener and UDP socket with poll(2).
struct Server {
    stop: OwnedFd,
    thread: JoinHandle<()>,
    tcp_ports: HashSet<u16>,
    udp_ports: HashSet<u16>,
}

impl Server {
    fn start(tb: &Testbed, spec: &TestbedSpec) -> Result<Server, String> {
        // SAFETY: eventfd returns a new descriptor we then own.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(format!("eventfd: {}", io::Error::last_os_error()));
        }
        // SAFETY: fresh descriptor.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let stop_fd = stop.as_raw_fd();
        let tcp_ports: Vec<u16> = dedup(&spec.tcp_ports);
        let udp_ports: Vec<u16> = dedup(&spec.udp_ports);
        let mut targets = Vec::new();
        for (ep, fd) in tb.endpoints.iter().zip(&tb.endpoint_fds) {
            let fd = fd.try_clone().map_err(|e| format!("dup netns fd: {e}"))?;
            let mut addrs = vec![IpAddr::V4(ep.ipv4)];
            addrs.extend(ep.ipv6.map(IpAddr::V6));
            targets.push((ep.ns.clone(), fd, addrs));
        }
        // Nodes serve the same ports on their own addresses, so that
        // traffic from pods to nodes can be probed.
        for (i, fd) in tb.node_fds.iter().enumerate() {
            let fd = fd.try_clone().map_err(|e| format!("dup netns fd: {e}"))?;
            let node = &tb.nodes[i];
            let addrs = vec![IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)];
            targets.push((node.ns.clone(), fd, addrs));
        }
        let (tx, rx) = mpsc::channel();
        let (tcp, udp) = (tcp_ports.clone(), udp_ports.clone());
        let thread = std::thread::Builder::new()
            .name(format!("{}-servers", tb.prefix))
            .spawn(move || {
                let sockets = match open_servers(targets, &tcp, &udp) {
                    Ok(sockets) => {
                        let _ = tx.send(Ok(()));
                        sockets
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                serve(stop_fd, &sockets);
            })
            .map_err(|e| format!("cannot start the server thread: {e}"))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(Server {
                stop,
                thread,
                tcp_ports: tcp_ports.into_iter().collect(),
                udp_ports: udp_ports.into_iter().collect(),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(match thread.join() {
                Err(panic) => format!("the server thread panicked: {panic:?}"),
                Ok(()) => "the server thread stopped".into(),
            }),
        }
    }

    fn stop(self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), 8) };
        let _ = self.thread.join();
    }
}

fn dedup(ports: &[u16]) -> Vec<u16> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn open_servers(
    targets: Vec<(String, File, Vec<IpAddr>)>,
    tcp_ports: &[u16],
    udp_ports: &[u16],
) -> Result<Vec<ServerSocket>, String> {
    let mut sockets = Vec::new();
    for (ns, fd, addrs) in targets {
        enter_netns(fd.as_raw_fd(), &ns);
        for &ip in &addrs {
            let ports = tcp_ports.iter().map(|&p| (Proto::Tcp, p));
            for (proto, port) in ports.chain(udp_ports.iter().map(|&p| (Proto::Udp, p))) {
                let addr = SocketAddr::new(ip, port);
                let socket = open_server(addr, proto)
                    .map_err(|e| format!("{proto} server on {addr} in {ns}: {e}"))?;
                sockets.push(socket);
            }
        }
    }
    Ok(sockets)
}

fn open_server(addr: SocketAddr, proto: Proto) -> io::Result<ServerSocket> {
    let fd = new_socket(addr.is_ipv6(), proto)?;
    set_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, ONE)?;
    if addr.is_ipv6() {
        set_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, ONE)?;
    }
    // The address may be a moment from usable right after setup; retry.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match bind(&fd, addr) {
            Ok(()) => break,
            Err(e)
                if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(match proto {
        Proto::Tcp => {
            // SAFETY: listen on our socket.
            if unsafe { libc::listen(fd.as_raw_fd(), 4096) } != 0 {
                return Err(io::Error::last_os_error());
            }
            ServerSocket::Listener(fd)
        }
        Proto::Udp => ServerSocket::Udp(fd),
    })
}

fn serve(stop: RawFd, sockets: &[ServerSocket]) {
    let mut fds: Vec<libc::pollfd> = std::iter::once(stop)
        .chain(sockets.iter().map(ServerSocket::fd))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = [0u8; 2048];
    loop {
        for p in &mut fds {
            p.revents = 0;
        }
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if last_errno() == libc::EINTR {
                continue;
            }
            panic!("testbed server poll: {}", io::Error::last_os_error());
        }
        if fds[0].revents != 0 {
            return;
        }
        for (p, socket) in fds[1..].iter().zip(sockets) {
            if p.revents == 0 {
                continue;
            }
            match socket {
                ServerSocket::Listener(fd) => {
                    for _ in 0..256 {
                        // SAFETY: accept4 on our listener; the result is closed at once.
                        let c = unsafe {
                            libc::accept4(
                                fd.as_raw_fd(),
                                std::ptr::null_mut(),
                                std::ptr::null_mut(),
                                libc::SOCK_CLOEXEC,
                            )
                        };
                        if c < 0 {
                            break;
                        }
                        // SAFETY: c is the accepted descriptor, ours to close.
                        unsafe { libc::close(c) };
                    }
                }
                ServerSocket::Udp(fd) => {
                    for _ in 0..256 {
                        // SAFETY: plain data.
                        let mut peer: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                        let mut len =
                            std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                        // SAFETY: buf and peer are valid for the lengths given.
                        let got = unsafe {
                            libc::recvfrom(
                                fd.as_raw_fd(),
                                buf.as_mut_ptr().cast(),
                                buf.len(),
                                libc::MSG_DONTWAIT,
                                (&raw mut peer).cast(),
                                &mut len,
                            )
                        };
                        if got < 0 {
                            break;
                        }
                        // SAFETY: echo the bytes received back to the sender.
                        unsafe {
                            libc::sendto(
                                fd.as_raw_fd(),
                                buf.as_ptr().cast(),
                                got as usize,
                                libc::MSG_DONTWAIT,
                                (&raw const peer).cast(),
                                len,
                            )
                        };
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Probing

struct Resolved {
    /// Index of the source endpoint, or the endpoint count plus the index
    /// of a source node.
    from: usize,
    src: IpAddr,
    dst: SocketAddr,
    proto: Proto,
}

struct InFlight {
    probe: usize,
    attempt: usize,
    fd: OwnedFd,
    deadline: Instant,
    stage: Stage,
}

enum Stage {
    /// TCP: waiting for the handshake (SYN-ACK).
    Connecting,
    /// TCP: connected; waiting for the server's accept-and-close (FIN), which
    /// proves the client's ACK reached the server and that established
    /// traffic flows back.
    AwaitingClose,
    /// UDP: waiting for this payload to come back.
    Echo([u8; 16]),
}

impl InFlight {
    fn events(&self) -> libc::c_short {
        match self.stage {
            Stage::Connecting => libc::POLLOUT,
            Stage::AwaitingClose | Stage::Echo(_) => libc::POLLIN,
        }
    }
}

enum Outcome {
    Pending,
    Handshake,
    Connected,
    Failed,
}

static NEXT_SRC_PORT: OnceLock<AtomicU32> = OnceLock::new();
static NONCE: AtomicU64 = AtomicU64::new(0);

/// The next probe source port: a process-wide counter over 20000–60999
/// starting at a pid-dependent offset, skipping the testbed's server ports.
fn next_src_port(avoid: &HashSet<u16>) -> u16 {
    let counter =
        NEXT_SRC_PORT.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(7919)));
    loop {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let port =
            u16::try_from(SRC_PORT_LOW + n % (SRC_PORT_HIGH - SRC_PORT_LOW + 1)).expect("in range");
        if !avoid.contains(&port) {
            return port;
        }
    }
}

/// Runs on a thread of its own (it moves between namespaces) and drives all
/// attempts with one poll(2) loop.
struct Prober<'a> {
    tb: &'a Testbed,
    probes: &'a [Resolved],
    current_ns: Option<usize>,
}

impl<'a> Prober<'a> {
    fn new(tb: &'a Testbed, probes: &'a [Resolved]) -> Self {
        Prober {
            tb,
            probes,
            current_ns: None,
        }
    }

    fn run(mut self) -> Vec<bool> {
        let timeouts = self.tb.probe_timeouts();
        let mut results = vec![false; self.probes.len()];
        let mut pending: VecDeque<(usize, usize)> =
            (0..self.probes.len()).map(|i| (i, 0)).collect();
        let mut in_flight: Vec<InFlight> = Vec::new();
        let mut pollfds: Vec<libc::pollfd> = Vec::new();
        loop {
            while in_flight.len() < MAX_IN_FLIGHT {
                let Some((probe, attempt)) = pending.pop_front() else {
                    break;
                };
                match self.start(probe, attempt, timeouts[attempt]) {
                    Ok(f) => in_flight.push(f),
                    Err(()) if attempt + 1 < timeouts.len() => {
                        pending.push_back((probe, attempt + 1))
                    }
                    Err(()) => {}
                }
            }
            if in_flight.is_empty() {
                if pending.is_empty() {
                    return results;
                }
                continue;
            }
            pollfds.clear();
            pollfds.extend(in_flight.iter().map(|f| libc::pollfd {
                fd: f.fd.as_raw_fd(),
                events: f.events(),
                revents: 0,
            }));
            let now = Instant::now();
            let next = in_flight
                .iter()
                .map(|f| f.deadline)
                .min()
                .expect("non-empty");
            let wait_ms = next
                .saturating_duration_since(now)
                .as_micros()
                .div_ceil(1000);
            let wait_ms = libc::c_int::try_from(wait_ms).unwrap_or(libc::c_int::MAX);
            // SAFETY: pollfds is a valid array of pollfd.
            let n =
                unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, wait_ms) };
            if n < 0 && last_errno() != libc::EINTR {
                panic!("probe poll: {}", io::Error::last_os_error());
            }
            let now = Instant::now();
            // Backwards, so swap_remove only moves entries already looked at.
            for i in (0..in_flight.len()).rev() {
                let f = &in_flight[i];
                let mut outcome = if n > 0 && pollfds[i].revents != 0 {
                    check(f, pollfds[i].revents)
                } else {
                    Outcome::Pending
                };
                if matches!(outcome, Outcome::Pending) && now >= f.deadline {
                    outcome = Outcome::Failed;
                }
                match outcome {
                    Outcome::Pending => {}
                    Outcome::Handshake => in_flight[i].stage = Stage::AwaitingClose,
                    Outcome::Connected => {
                        let f = in_flight.swap_remove(i);
                        results[f.probe] = true;
                        finish(f);
                    }
                    Outcome::Failed => {
                        let f = in_flight.swap_remove(i);
                        if f.attempt + 1 < timeouts.len() {
                            pending.push_back((f.probe, f.attempt + 1));
                        }
                    }
                }
            }
        }
    }

    /// Opens one attempt's socket in the source namespace and sends its
    /// first packet. `Err(())`: it failed at once.
    fn start(&mut self, probe: usize, attempt: usize, timeout: Duration) -> Result<InFlight, ()> {
        let p = &self.probes[probe];
        if self.current_ns != Some(p.from) {
            match p.from.checked_sub(self.tb.endpoints.len()) {
                // Sources past the endpoints are nodes.
                Some(node) => {
                    enter_netns(self.tb.node_fds[node].as_raw_fd(), &self.tb.nodes[node].ns)
                }
                None => {
                    let ep = &self.tb.endpoints[p.from];
                    enter_netns(self.tb.endpoint_fds[p.from].as_raw_fd(), &ep.ns);
                }
            }
            self.current_ns = Some(p.from);
        }
        let fd = new_socket(p.dst.is_ipv6(), p.proto)
            .unwrap_or_else(|e| panic!("probe socket: {e} (too many open files?)"));
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, ONE).map_err(|_| ())?;
        let mut bound = false;
        for _ in 0..64 {
            match bind(
                &fd,
                SocketAddr::new(p.src, next_src_port(&self.tb.server_ports)),
            ) {
                Ok(()) => {
                    bound = true;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => continue,
                Err(_) => return Err(()),
            }
        }
        if !bound {
            return Err(());
        }
        let (sa, len) = sockaddr(p.dst);
        // SAFETY: sa is a valid sockaddr of length len.
        let r = unsafe { libc::connect(fd.as_raw_fd(), (&raw const sa).cast(), len) };
        let deadline = Instant::now() + timeout;
        match p.proto {
            Proto::Tcp => {
                let stage = if r == 0 {
                    Stage::AwaitingClose
                } else if last_errno() == libc::EINPROGRESS {
                    Stage::Connecting
                } else {
                    return Err(());
                };
                Ok(InFlight {
                    probe,
                    attempt,
                    fd,
                    deadline,
                    stage,
                })
            }
            Proto::Udp => {
                if r != 0 {
                    return Err(());
                }
                let mut token = [0u8; 16];
                token[..8].copy_from_slice(&NONCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
                token[8..12]
                    .copy_from_slice(&u32::try_from(probe).unwrap_or(u32::MAX).to_le_bytes());
                token[12..].copy_from_slice(b"nptb");
                // SAFETY: sends 16 bytes from a local buffer.
                let sent =
                    unsafe { libc::send(fd.as_raw_fd(), token.as_ptr().cast(), token.len(), 0) };
                if sent != token.len() as isize {
                    return Err(());
                }
                Ok(InFlight {
                    probe,
                    attempt,
                    fd,
                    deadline,
                    stage: Stage::Echo(token),
                })
            }
        }
    }
}

fn check(f: &InFlight, revents: libc::c_short) -> Outcome {
    let fd = f.fd.as_raw_fd();
    match f.stage {
        Stage::Connecting => {
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: reads SO_ERROR into a local int.
            let r = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&raw mut err).cast(),
                    &mut len,
                )
            };
            if r != 0 || err != 0 || revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                // Refused (RST, ICMP unreachable) or otherwise failed.
                Outcome::Failed
            } else if revents & libc::POLLOUT != 0 {
                Outcome::Handshake
            } else {
                Outcome::Pending
            }
        }
        Stage::AwaitingClose => {
            let mut buf = [0u8; 64];
            // SAFETY: reads into a local buffer.
            let got =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            match got {
                // EOF: the server accepted and closed. (Data would do too.)
                0.. => Outcome::Connected,
                _ if would_block() => Outcome::Pending,
                // Reset after the handshake: something in between objects.
                _ => Outcome::Failed,
            }
        }
        Stage::Echo(token) => {
            let mut buf = [0u8; 64];
            loop {
                // SAFETY: reads into a local buffer.
                let got = unsafe {
                    libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                };
                if got < 0 {
                    // ECONNREFUSED, EHOSTUNREACH, …: an ICMP error came back.
                    return if would_block() {
                        Outcome::Pending
                    } else {
                        Outcome::Failed
                    };
                }
                if got as usize == token.len() && buf[..token.len()] == token {
                    return Outcome::Connected;
                }
                // Not our echo (cannot happen on a connected socket); read on.
            }
        }
    }
}

fn would_block() -> bool {
    let e = last_errno();
    e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::EINTR
}

/// Closes a finished attempt; a TCP connection is reset (linger 0) so that
/// neither end keeps a TIME_WAIT socket.
fn finish(f: InFlight) {
    if !matches!(f.stage, Stage::Echo(_)) {
        let _ = set_opt(
            &f.fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            libc::linger {
                l_onoff: 1,
                l_linger: 0,
            },
        );
    }
}
