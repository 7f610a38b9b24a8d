//! The model's class sets as they are (`BitSet`: a sorted list while
//! sparse, words while dense) against roaring bitmaps, on the sets a real
//! model holds: every rule's peer set of a synthetic cluster.
//!
//! - `row_unions`: for every class, the union of its egress rules' peer sets
//!   (the first step of each port-matrix row);
//! - `peer_checks`: for every class, "does each of its ingress rules admit
//!   class c" for a fixed spread of c (what a query asks);
//! - the setup line prints the memory of both forms.
//!
//! `cargo bench -p policy-core --bench sets -- 10k` (sizes by filter;
//! `100k-worst` takes minutes to set up).

use std::collections::HashSet;
use std::sync::OnceLock;

use divan::Bencher;
use netpol_synth::{Params, load_cluster};
use policy_core::bitset::BitSet;
use policy_core::{Config, Direction, Model};
use roaring::RoaringBitmap;

fn main() {
    divan::main();
}

const SIZES: &[&str] = &["10k", "10k-worst", "100k-worst"];

/// Per class and direction, the indices of its rules' peer sets in `sets`.
struct Fixture {
    classes: usize,
    bitsets: Vec<BitSet>,
    roarings: Vec<RoaringBitmap>,
    /// `[ingress, egress]` per class: indices into the set lists.
    grants: Vec<[Vec<usize>; 2]>,
}

fn fixture(size: &str) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let index = SIZES.iter().position(|s| *s == size).expect("known size");
    FIXTURES[index].get_or_init(|| {
        let params = match size {
            "10k" => Params::large(),
            "10k-worst" => Params::worst_case(10_000, 10_000),
            _ => Params::worst_case(100_000, 100_000),
        };
        let model = Model::new(load_cluster(&params), Config::default());
        let classes = model.classes().len();
        let mut bitsets = Vec::new();
        let mut seen = HashSet::new();
        let mut position = std::collections::HashMap::new();
        let mut grants = Vec::with_capacity(classes);
        for class in 0..classes {
            let mut per_direction: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
            for (slot, direction) in [Direction::Ingress, Direction::Egress].into_iter().enumerate() {
                for (peers, _) in model.grants(direction, class).unwrap_or_default() {
                    if peers.everyone {
                        continue;
                    }
                    // One entry per distinct set object, as the model holds them.
                    let key = std::ptr::from_ref(peers) as usize;
                    if seen.insert(key) {
                        position.insert(key, bitsets.len());
                        bitsets.push(peers.classes.clone());
                    }
                    per_direction[slot].push(position[&key]);
                }
            }
            grants.push(per_direction);
        }
        let roarings: Vec<RoaringBitmap> = bitsets
            .iter()
            .map(|set| set.ones().map(|i| i as u32).collect())
            .collect();
        let bitset_bytes: usize = bitsets.iter().map(BitSet::heap_bytes).sum();
        let roaring_bytes: usize = roarings.iter().map(RoaringBitmap::serialized_size).sum();
        let elements: u64 = roarings.iter().map(RoaringBitmap::len).sum();
        eprintln!(
            "[{size}] {classes} classes, {} peer sets, {elements} elements; BitSet heap {bitset_bytes} B, roaring serialized {roaring_bytes} B",
            bitsets.len()
        );
        let fixture = Fixture {
            classes,
            bitsets,
            roarings,
            grants,
        };
        // Both forms must hold the same rows, or the comparison means nothing.
        for grants in &fixture.grants {
            let bitset: Vec<u32> = row_union_bitset(&fixture, &grants[1])
                .ones()
                .map(|i| i as u32)
                .collect();
            let roaring: Vec<u32> = row_union_roaring(&fixture, &grants[1]).iter().collect();
            assert_eq!(bitset, roaring);
        }
        fixture
    })
}

fn row_union_bitset(f: &Fixture, grants: &[usize]) -> BitSet {
    let mut row = BitSet::new(f.classes);
    for &set in grants {
        row.union_with(&f.bitsets[set]);
    }
    row
}

fn row_union_roaring(f: &Fixture, grants: &[usize]) -> RoaringBitmap {
    let mut row = RoaringBitmap::new();
    for &set in grants {
        row |= &f.roarings[set];
    }
    row
}

#[divan::bench(args = SIZES, sample_count = 10)]
fn row_unions_bitset(bencher: Bencher, size: &str) {
    let f = fixture(size);
    bencher.bench(|| {
        f.grants
            .iter()
            .map(|grants| row_union_bitset(f, &grants[1]).count())
            .sum::<usize>()
    });
}

#[divan::bench(args = SIZES, sample_count = 10)]
fn row_unions_roaring(bencher: Bencher, size: &str) {
    let f = fixture(size);
    bencher.bench(|| {
        f.grants
            .iter()
            .map(|grants| row_union_roaring(f, &grants[1]).len())
            .sum::<u64>()
    });
}

/// The classes asked about: a spread over the universe.
fn probes(classes: usize) -> impl Iterator<Item = usize> {
    (0..16).map(move |i| i * classes / 16)
}

#[divan::bench(args = SIZES, sample_count = 10)]
fn peer_checks_bitset(bencher: Bencher, size: &str) {
    let f = fixture(size);
    bencher.bench(|| {
        let mut admitted = 0usize;
        for grants in &f.grants {
            for probe in probes(f.classes) {
                admitted += grants[0].iter().any(|&set| f.bitsets[set].contains(probe)) as usize;
            }
        }
        admitted
    });
}

#[divan::bench(args = SIZES, sample_count = 10)]
fn peer_checks_roaring(bencher: Bencher, size: &str) {
    let f = fixture(size);
    bencher.bench(|| {
        let mut admitted = 0usize;
        for grants in &f.grants {
            for probe in probes(f.classes) {
                admitted += grants[0]
                    .iter()
                    .any(|&set| f.roarings[set].contains(probe as u32))
                    as usize;
            }
        }
        admitted
    });
}
