//! Class sets and class matrices, the model's workhorses.
//!
//! Peer sets are sets of pod classes; the truth table for one port is a
//! class × class matrix. A set's memory follows its size, not its universe:
//! a set holding fewer than about one element per 32 indices of its
//! universe keeps a sorted list of indices (4 bytes each), a larger one
//! keeps words of 64 bits. At 100,000 classes a dense set costs 12.5 KB
//! whatever it holds, and a cluster where every pod is its own class has a
//! label value, a selector result and a peer set per pod, so dense sets
//! alone made the model grow with the square of the pod count
//! (BENCHMARKS.md, "Sparse and dense class sets", which also compares
//! roaring bitmaps: a little smaller, slower on the model's operations).

use std::fmt;
use std::hash::{Hash, Hasher};

const WORD: usize = 64;

fn words_for(bits: usize) -> usize {
    bits.div_ceil(WORD)
}

/// A sparse set turns dense above this many elements per word of its
/// universe (4-byte indices then cost more than the words would).
const DENSE_ABOVE_PER_WORD: usize = 2;
/// A dense set turns sparse below this many elements per word (lower than
/// the way up, so a set near the threshold does not flip back and forth).
const SPARSE_BELOW_PER_WORD: usize = 1;

#[derive(Clone)]
enum Repr {
    /// Sorted, distinct indices.
    Sparse(Vec<u32>),
    /// `words_for(len)` words, bits past `len` clear.
    Dense(Vec<u64>),
}

/// A set of indices below a fixed length (the universe).
///
/// Equality and hashing follow the elements, never the representation.
#[derive(Clone)]
pub struct BitSet {
    len: usize,
    repr: Repr,
}

impl BitSet {
    /// The empty set over `0..len`.
    pub fn new(len: usize) -> Self {
        assert!(
            u32::try_from(len).is_ok(),
            "a class set holds at most 2^32 indices"
        );
        BitSet {
            len,
            repr: Repr::Sparse(Vec::new()),
        }
    }

    /// The full set `0..len`.
    pub fn full(len: usize) -> Self {
        let mut set = BitSet::new(len);
        if words_for(len) * DENSE_ABOVE_PER_WORD < len {
            let mut words = vec![u64::MAX; words_for(len)];
            clear_tail(&mut words, len);
            set.repr = Repr::Dense(words);
        } else {
            set.repr = Repr::Sparse((0..len as u32).collect());
        }
        set
    }

    /// A set from indices in increasing order.
    pub fn from_sorted(len: usize, indices: impl IntoIterator<Item = usize>) -> Self {
        let mut set = BitSet::new(len);
        for index in indices {
            set.insert(index);
        }
        set
    }

    /// The universe size (not the number of elements: see [`BitSet::count`]).
    pub fn universe(&self) -> usize {
        self.len
    }

    fn dense_limit(&self) -> usize {
        words_for(self.len) * DENSE_ABOVE_PER_WORD
    }

    /// Adds `index`.
    pub fn insert(&mut self, index: usize) {
        debug_assert!(index < self.len);
        let limit = self.dense_limit();
        match &mut self.repr {
            Repr::Dense(words) => set_bit(words, index),
            Repr::Sparse(indices) => {
                let value = index as u32;
                match indices.last() {
                    // Sets are mostly built in increasing order.
                    Some(&last) if last < value => indices.push(value),
                    None => indices.push(value),
                    _ => {
                        if let Err(at) = indices.binary_search(&value) {
                            indices.insert(at, value);
                        }
                    }
                }
                if indices.len() > limit {
                    self.densify();
                }
            }
        }
    }

    /// Removes `index`.
    pub fn remove(&mut self, index: usize) {
        if index >= self.len {
            return;
        }
        match &mut self.repr {
            // No `settle`: one removal stays O(1); representation never
            // changes what the set holds.
            Repr::Dense(words) => clear_bit(words, index),
            Repr::Sparse(indices) => {
                if let Ok(at) = indices.binary_search(&(index as u32)) {
                    indices.remove(at);
                }
            }
        }
    }

    /// Widens the universe to `0..len` (no smaller than today's), keeping the
    /// elements: the incremental model adds classes this way.
    pub fn grow(&mut self, len: usize) {
        assert!(len >= self.len, "a universe only grows");
        assert!(
            u32::try_from(len).is_ok(),
            "a class set holds at most 2^32 indices"
        );
        self.len = len;
        if let Repr::Dense(words) = &mut self.repr {
            words.resize(words_for(len), 0);
        }
    }

    /// True if `index` is in the set.
    #[inline]
    pub fn contains(&self, index: usize) -> bool {
        if index >= self.len {
            return false;
        }
        match &self.repr {
            Repr::Dense(words) => bit_is_set(words, index),
            Repr::Sparse(indices) => indices.binary_search(&(index as u32)).is_ok(),
        }
    }

    /// True if the set has no elements.
    pub fn is_clear(&self) -> bool {
        match &self.repr {
            Repr::Dense(words) => words.iter().all(|&w| w == 0),
            Repr::Sparse(indices) => indices.is_empty(),
        }
    }

    /// True if every index of the universe is in the set.
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// Number of elements.
    pub fn count(&self) -> usize {
        match &self.repr {
            Repr::Dense(words) => words.iter().map(|w| w.count_ones() as usize).sum(),
            Repr::Sparse(indices) => indices.len(),
        }
    }

    /// Bytes held on the heap (for measurements).
    pub fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Dense(words) => words.capacity() * 8,
            Repr::Sparse(indices) => indices.capacity() * 4,
        }
    }

    fn densify(&mut self) {
        if let Repr::Sparse(indices) = &self.repr {
            let mut words = vec![0u64; words_for(self.len)];
            set_bits(&mut words, indices);
            self.repr = Repr::Dense(words);
        }
    }

    /// Turns a dense set that has become small back into a list.
    fn settle(&mut self) {
        if let Repr::Dense(words) = &self.repr {
            let count: usize = words.iter().map(|w| w.count_ones() as usize).sum();
            if count < words.len() * SPARSE_BELOW_PER_WORD {
                let indices = dense_ones(words).map(|i| i as u32).collect();
                self.repr = Repr::Sparse(indices);
            }
        }
    }

    /// `self ∪= other`.
    pub fn union_with(&mut self, other: &BitSet) {
        debug_assert_eq!(self.len, other.len);
        let limit = self.dense_limit();
        match (&mut self.repr, &other.repr) {
            (Repr::Dense(a), Repr::Dense(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x |= y;
                }
            }
            (Repr::Dense(a), Repr::Sparse(b)) => set_bits(a, b),
            (Repr::Sparse(a), Repr::Dense(b)) => {
                let mut words = b.clone();
                set_bits(&mut words, a);
                self.repr = Repr::Dense(words);
            }
            (Repr::Sparse(a), Repr::Sparse(b)) => {
                if b.is_empty() {
                    return;
                }
                if a.is_empty() {
                    a.clone_from(b);
                } else if a.last() < b.first() {
                    a.extend_from_slice(b);
                } else {
                    *a = merge_union(a, b);
                }
                if a.len() > limit {
                    self.densify();
                }
            }
        }
    }

    /// `self ∩= other`.
    pub fn intersect_with(&mut self, other: &BitSet) {
        debug_assert_eq!(self.len, other.len);
        match (&mut self.repr, &other.repr) {
            (Repr::Dense(a), Repr::Dense(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x &= y;
                }
                self.settle();
            }
            (Repr::Dense(a), Repr::Sparse(b)) => {
                let kept = b
                    .iter()
                    .copied()
                    .filter(|&i| bit_is_set(a, i as usize))
                    .collect();
                self.repr = Repr::Sparse(kept);
            }
            (Repr::Sparse(a), Repr::Dense(b)) => {
                a.retain(|&i| bit_is_set(b, i as usize));
            }
            (Repr::Sparse(a), Repr::Sparse(b)) => {
                *a = merge_intersection(a, b);
            }
        }
    }

    /// `self −= other`.
    pub fn difference_with(&mut self, other: &BitSet) {
        debug_assert_eq!(self.len, other.len);
        match (&mut self.repr, &other.repr) {
            (Repr::Dense(a), Repr::Dense(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x &= !y;
                }
                self.settle();
            }
            (Repr::Dense(a), Repr::Sparse(b)) => {
                for &index in b {
                    clear_bit(a, index as usize);
                }
                self.settle();
            }
            (Repr::Sparse(a), Repr::Dense(b)) => {
                a.retain(|&i| !bit_is_set(b, i as usize));
            }
            (Repr::Sparse(a), Repr::Sparse(b)) => {
                if !b.is_empty() {
                    *a = merge_difference(a, b);
                }
            }
        }
    }

    /// True if the sets share an element.
    pub fn intersects(&self, other: &BitSet) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Dense(a), Repr::Dense(b)) => a.iter().zip(b).any(|(x, y)| x & y != 0),
            (Repr::Dense(_), Repr::Sparse(b)) => b.iter().any(|&i| self.contains(i as usize)),
            (Repr::Sparse(a), Repr::Dense(_)) => a.iter().any(|&i| other.contains(i as usize)),
            (Repr::Sparse(a), Repr::Sparse(b)) => {
                let (mut i, mut j) = (0, 0);
                while i < a.len() && j < b.len() {
                    match a[i].cmp(&b[j]) {
                        std::cmp::Ordering::Less => i += 1,
                        std::cmp::Ordering::Greater => j += 1,
                        std::cmp::Ordering::Equal => return true,
                    }
                }
                false
            }
        }
    }

    /// True if every element of `self` is in `other`.
    pub fn is_subset(&self, other: &BitSet) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Dense(a), Repr::Dense(b)) => a.iter().zip(b).all(|(x, y)| x & !y == 0),
            _ => self.ones().all(|i| other.contains(i)),
        }
    }

    /// The elements in increasing order.
    pub fn ones(&self) -> Ones<'_> {
        match &self.repr {
            Repr::Dense(words) => Ones::Dense(dense_ones(words)),
            Repr::Sparse(indices) => Ones::Sparse(indices.iter()),
        }
    }
}

#[inline]
fn bit_is_set(words: &[u64], index: usize) -> bool {
    words[index / WORD] & (1u64 << (index % WORD)) != 0
}

#[inline]
fn set_bit(words: &mut [u64], index: usize) {
    words[index / WORD] |= 1u64 << (index % WORD);
}

#[inline]
fn clear_bit(words: &mut [u64], index: usize) {
    words[index / WORD] &= !(1u64 << (index % WORD));
}

fn set_bits(words: &mut [u64], indices: &[u32]) {
    for &index in indices {
        set_bit(words, index as usize);
    }
}

fn clear_tail(words: &mut [u64], len: usize) {
    let used = len % WORD;
    if used != 0
        && let Some(last) = words.last_mut()
    {
        *last &= (1u64 << used) - 1;
    }
}

fn dense_ones(words: &[u64]) -> DenseOnes<'_> {
    DenseOnes {
        words,
        word_index: 0,
        current: words.first().copied().unwrap_or(0),
    }
}

fn merge_union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn merge_intersection(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn merge_difference(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

impl PartialEq for BitSet {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && match (&self.repr, &other.repr) {
                (Repr::Dense(a), Repr::Dense(b)) => a == b,
                (Repr::Sparse(a), Repr::Sparse(b)) => a == b,
                _ => self.count() == other.count() && self.ones().eq(other.ones()),
            }
    }
}

impl Eq for BitSet {}

impl Hash for BitSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.len.hash(state);
        for index in self.ones() {
            index.hash(state);
        }
    }
}

impl fmt::Debug for BitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.ones()).finish()
    }
}

/// Iterator over the elements of a [`BitSet`] or a matrix row.
pub enum Ones<'a> {
    #[doc(hidden)]
    Dense(DenseOnes<'a>),
    #[doc(hidden)]
    Sparse(std::slice::Iter<'a, u32>),
}

impl Iterator for Ones<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        match self {
            Ones::Dense(dense) => dense.next(),
            Ones::Sparse(iter) => iter.next().map(|&i| i as usize),
        }
    }
}

#[doc(hidden)]
pub struct DenseOnes<'a> {
    words: &'a [u64],
    word_index: usize,
    current: u64,
}

impl Iterator for DenseOnes<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.current != 0 {
                let bit = self.current.trailing_zeros() as usize;
                self.current &= self.current - 1;
                return Some(self.word_index * WORD + bit);
            }
            self.word_index += 1;
            self.current = *self.words.get(self.word_index)?;
        }
    }
}

/// A `rows × columns` matrix of bits, stored as one [`BitSet`] per row, so
/// it costs what its rows hold.
#[derive(Clone, PartialEq, Eq)]
pub struct BitMatrix {
    columns: usize,
    rows: Vec<BitSet>,
}

impl BitMatrix {
    /// An all-zero matrix.
    pub fn new(rows: usize, columns: usize) -> Self {
        BitMatrix {
            columns,
            rows: vec![BitSet::new(columns); rows],
        }
    }

    /// A matrix from its rows (each over `columns`).
    pub fn from_rows(columns: usize, rows: Vec<BitSet>) -> Self {
        debug_assert!(rows.iter().all(|row| row.universe() == columns));
        BitMatrix { columns, rows }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The bit at (`row`, `column`).
    #[inline]
    pub fn get(&self, row: usize, column: usize) -> bool {
        self.rows[row].contains(column)
    }

    /// Sets the bit at (`row`, `column`).
    pub fn set(&mut self, row: usize, column: usize) {
        self.rows[row].insert(column);
    }

    /// One row.
    pub fn row(&self, row: usize) -> &BitSet {
        &self.rows[row]
    }

    /// The columns set in one row.
    pub fn row_ones(&self, row: usize) -> Ones<'_> {
        self.rows[row].ones()
    }

    /// The transpose.
    pub fn transpose(&self) -> BitMatrix {
        let mut result = BitMatrix::new(self.columns, self.rows.len());
        for (row, set) in self.rows.iter().enumerate() {
            for column in set.ones() {
                result.rows[column].insert(row);
            }
        }
        result
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.rows.iter().map(BitSet::count).sum()
    }
}

impl fmt::Debug for BitMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for row in &self.rows {
            list.entry(&row.ones().collect::<Vec<_>>());
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn set_operations() {
        let mut a = BitSet::new(130);
        for i in [0, 63, 64, 129] {
            a.insert(i);
        }
        let mut b = BitSet::new(130);
        b.insert(64);
        b.insert(100);
        assert_eq!(a.ones().collect::<Vec<_>>(), [0, 63, 64, 129]);
        assert!(a.intersects(&b));
        let mut union = a.clone();
        union.union_with(&b);
        assert_eq!(union.count(), 5);
        let mut difference = a.clone();
        difference.difference_with(&b);
        assert_eq!(difference.ones().collect::<Vec<_>>(), [0, 63, 129]);
        assert!(!a.contains(130));
        assert_eq!(BitSet::full(130).count(), 130);
        assert!(BitSet::full(130).is_full());
    }

    /// Every operation, on every pairing of representations, against
    /// `BTreeSet`, at densities on both sides of the thresholds.
    #[test]
    fn operations_agree_with_a_btreeset_in_both_representations() {
        use std::collections::BTreeSet;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for universe in [1usize, 63, 64, 65, 200, 1000, 5000] {
            for density in [0u64, 1, 3, 10, 50, 100] {
                let mut make = || {
                    let mut set = BitSet::new(universe);
                    let mut model = BTreeSet::new();
                    let mut indices: Vec<usize> = (0..universe)
                        .filter(|_| xorshift(&mut state) % 100 < density)
                        .collect();
                    // Out of order, so insertion in the middle is exercised.
                    indices.reverse();
                    for i in indices {
                        set.insert(i);
                        model.insert(i);
                    }
                    (set, model)
                };
                let (a, model_a) = make();
                let (b, model_b) = make();
                assert_eq!(
                    a.ones().collect::<Vec<_>>(),
                    model_a.iter().copied().collect::<Vec<_>>()
                );
                assert_eq!(a.count(), model_a.len());
                for i in 0..universe + 2 {
                    assert_eq!(a.contains(i), model_a.contains(&i));
                }
                let check = |set: &BitSet, expected: BTreeSet<usize>, what: &str| {
                    assert_eq!(
                        set.ones().collect::<Vec<_>>(),
                        expected.iter().copied().collect::<Vec<_>>(),
                        "{what} at universe {universe}, density {density}"
                    );
                    let mut rebuilt = BitSet::new(universe);
                    for i in &expected {
                        rebuilt.insert(*i);
                    }
                    assert_eq!(set, &rebuilt, "equality ignores the representation");
                };
                let mut union = a.clone();
                union.union_with(&b);
                check(&union, model_a.union(&model_b).copied().collect(), "union");
                let mut intersection = a.clone();
                intersection.intersect_with(&b);
                check(
                    &intersection,
                    model_a.intersection(&model_b).copied().collect(),
                    "intersection",
                );
                let mut difference = a.clone();
                difference.difference_with(&b);
                check(
                    &difference,
                    model_a.difference(&model_b).copied().collect(),
                    "difference",
                );
                assert_eq!(a.intersects(&b), !model_a.is_disjoint(&model_b));
                assert_eq!(a.is_subset(&b), model_a.is_subset(&model_b));
                assert_eq!(a.is_clear(), model_a.is_empty());
                assert_eq!(a.is_full(), model_a.len() == universe);
                let mut full = BitSet::full(universe);
                full.difference_with(&a);
                assert_eq!(full.count(), universe - model_a.len());

                // Removal, of present and absent indices and past the end.
                let mut removed = a.clone();
                let mut model_removed = model_a.clone();
                for i in (0..universe + 2).step_by(3) {
                    removed.remove(i);
                    model_removed.remove(&i);
                }
                check(&removed, model_removed, "remove");

                // A grown universe keeps the elements and takes new ones.
                let mut grown = a.clone();
                grown.grow(universe + 70);
                grown.insert(universe + 69);
                let mut model_grown = model_a.clone();
                model_grown.insert(universe + 69);
                assert_eq!(grown.universe(), universe + 70);
                assert_eq!(
                    grown.ones().collect::<Vec<_>>(),
                    model_grown.iter().copied().collect::<Vec<_>>(),
                    "grow at universe {universe}, density {density}"
                );
                let mut other = BitSet::full(universe + 70);
                other.intersect_with(&grown);
                assert_eq!(
                    other, grown,
                    "a grown set works with sets of its new universe"
                );
            }
        }
    }

    #[test]
    fn small_sets_stay_small() {
        let mut set = BitSet::new(100_000);
        for i in (0..100_000).step_by(1000) {
            set.insert(i);
        }
        assert!(set.heap_bytes() < 1000, "{} bytes", set.heap_bytes());
        let mut big = BitSet::full(100_000);
        big.intersect_with(&set);
        assert_eq!(big, set);
        assert!(
            big.heap_bytes() < 1000,
            "a dense set that shrinks turns sparse"
        );
    }

    #[test]
    fn transpose_matches_the_definition() {
        // A deterministic pseudo-random pattern over a shape that is not a multiple of 64.
        let (rows, columns) = (150, 77);
        let mut matrix = BitMatrix::new(rows, columns);
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for r in 0..rows {
            for c in 0..columns {
                if xorshift(&mut state).is_multiple_of(3) {
                    matrix.set(r, c);
                }
            }
        }
        let transposed = matrix.transpose();
        assert_eq!((transposed.rows(), transposed.columns()), (columns, rows));
        for r in 0..rows {
            for c in 0..columns {
                assert_eq!(matrix.get(r, c), transposed.get(c, r), "({r}, {c})");
            }
        }
        assert_eq!(transposed.transpose(), matrix);
    }
}
