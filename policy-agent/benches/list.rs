//! What `--cluster` costs: listing a 10,000-pod, 10,000-policy cluster from
//! an API server (here `kube-fake` on loopback, pages of 500, JSON encoded
//! and decoded as with a real server), against loading the same objects from
//! one JSON manifest, as `kubectl get … -o json | netpol … -` would.
//!
//! Run with `cargo bench -p policy-agent --bench list`. BENCHMARKS.md
//! records results.

use std::sync::OnceLock;

use kube_fake::{FakeApiServer, Res};
use policy_agent::source::kube::{ClusterTarget, Connection, ListScope, connect, list_cluster};
use policy_core::Loader;
use serde_json::Value;

// As in the `netpol` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    _server: FakeApiServer,
    connection: Connection,
    /// The same objects as one `kind: List` JSON document.
    dump: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = netpol_synth::generate(&netpol_synth::Params::scale(10_000, 10_000));
        let objects: Vec<Value> = text
            .split("\n---\n")
            .filter(|document| !document.trim().is_empty())
            .map(|document| serde_saphyr::from_str(document).expect("synthetic YAML"))
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(FakeApiServer::start());
        // Only the synthetic cluster: drop the fake server's recorded fixtures.
        for res in Res::ALL {
            for object in server.objects(res) {
                let meta = &object["metadata"];
                server.delete(
                    res,
                    meta["namespace"].as_str().unwrap_or_default(),
                    meta["name"].as_str().unwrap_or_default(),
                );
            }
        }
        let mut items = Vec::new();
        for object in objects {
            let Some(res) = Res::ALL.into_iter().find(|r| object["kind"] == r.kind()) else {
                continue;
            };
            let mut object = object;
            if res != Res::Namespaces && object["metadata"]["namespace"].is_null() {
                object["metadata"]["namespace"] = "default".into();
            }
            server.apply(res, object.clone());
            items.push(object);
        }
        let kubeconfig =
            std::env::temp_dir().join(format!("netpol-bench-list-{}", std::process::id()));
        std::fs::write(&kubeconfig, server.kubeconfig("bench")).unwrap();
        let connection = runtime
            .block_on(connect(&ClusterTarget {
                kubeconfig: Some(kubeconfig.clone()),
                ..Default::default()
            }))
            .unwrap();
        let _ = std::fs::remove_file(&kubeconfig);
        let dump =
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
        Fixture {
            runtime,
            _server: server,
            connection,
            dump,
        }
    })
}

/// List every kind through the API and load the objects.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn list_from_api_and_load() -> usize {
    let fixture = fixture();
    let snapshot = fixture
        .runtime
        .block_on(list_cluster(
            &fixture.connection,
            &ListScope::AllNamespaces,
            &|_, _| {},
        ))
        .unwrap();
    let mut loader = Loader::new();
    for object in snapshot.objects {
        loader.add_live(object);
    }
    loader.finish().cluster.endpoints.len()
}

/// Load the same objects from one JSON manifest.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn load_from_json_manifest() -> usize {
    let fixture = fixture();
    let mut loader = Loader::new();
    loader.load_str("dump.json", &fixture.dump);
    loader.finish().cluster.endpoints.len()
}
