//! Using policy-core as a library: load a cluster, ask one question, and
//! print the answer with its reasons.
//!
//! Run with `cargo run -p library-query [DIR]` (default: examples/demo).

use std::path::{Path, PathBuf};

use policy_core::{Config, Loader, Model, PortQuery, Protocol, SideVerdict};

fn manifests(directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(manifests(&path)?);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let directory = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo"));

    // 1. Load: policy-core takes text; reading files is the caller's job.
    let mut loader = Loader::new();
    for file in manifests(&directory)? {
        loader.load_str(
            &file.display().to_string(),
            &std::fs::read_to_string(&file)?,
        );
    }
    let loaded = loader.finish();
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    if loaded.has_errors() {
        return Err("the manifests have errors".into());
    }

    // 2. Build the model once; queries are then cheap.
    let model = Model::new(loaded.cluster, Config::default());
    println!(
        "{} endpoints in {} classes, {} policies",
        model.cluster().endpoints.len(),
        model.classes().len(),
        model.cluster().policies.len()
    );

    // 3. Ask: can the frontend reach the database directly?
    let from = model.resolve_endpoint("shop/frontend")?;
    let to = model.resolve_endpoint("shop/db")?;
    let verdict = model
        .query(from, to, &PortQuery::Name("postgres".into()), Protocol::Tcp)
        .map_err(|error| format!("{error:?}"))?;
    println!(
        "shop/frontend -> shop/db on TCP {}: {}",
        verdict.port,
        if verdict.allowed() {
            "allowed"
        } else {
            "denied"
        }
    );
    for (side, answer) in [("egress", &verdict.egress), ("ingress", &verdict.ingress)] {
        let policies = &model.cluster().policies;
        let reason = match answer {
            SideVerdict::Denied(isolating) => {
                let names: Vec<String> =
                    isolating.iter().map(|&p| policies[p].reference()).collect();
                format!("denied; isolated by {}", names.join(", "))
            }
            SideVerdict::AllowedBy(rules) => {
                let names: Vec<String> = rules
                    .iter()
                    .map(|rule| {
                        format!(
                            "{} {}[{}]",
                            policies[rule.policy].reference(),
                            rule.direction.field(),
                            rule.index
                        )
                    })
                    .collect();
                format!("allowed by {}", names.join(", "))
            }
            other => format!("{other:?}"),
        };
        println!("  {side}: {reason}");
    }

    // 4. The whole truth table for one port.
    let matrix = model.port_matrix(Protocol::Tcp, &PortQuery::Number(5432));
    println!(
        "{} ordered pairs may connect on TCP 5432",
        matrix.count_allowed()
    );
    assert!(
        !verdict.allowed(),
        "the demo's database only accepts the cart"
    );
    Ok(())
}
