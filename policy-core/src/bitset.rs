//! Fixed-size bitsets and bit matrices, the model's workhorses.
//!
//! Peer sets are sets of pod classes; the connectivity matrix for one port is
//! a class × class bit matrix. Word-level access keeps unions, intersections
//! and the transpose fast.

use std::fmt;

const WORD: usize = 64;

fn words_for(bits: usize) -> usize {
    bits.div_ceil(WORD)
}

/// A set of indices below a fixed length.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BitSet {
    words: Vec<u64>,
    len: usize,
}

impl BitSet {
    /// The empty set over `0..len`.
    pub fn new(len: usize) -> Self {
        BitSet {
            words: vec![0; words_for(len)],
            len,
        }
    }

    /// The full set `0..len`.
    pub fn full(len: usize) -> Self {
        let mut set = BitSet {
            words: vec![u64::MAX; words_for(len)],
            len,
        };
        set.clear_tail();
        set
    }

    fn clear_tail(&mut self) {
        let used = self.len % WORD;
        if used != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << used) - 1;
        }
    }

    /// The universe size (not the number of elements: see [`BitSet::count`]).
    pub fn universe(&self) -> usize {
        self.len
    }

    /// Adds `index`.
    pub fn insert(&mut self, index: usize) {
        debug_assert!(index < self.len);
        self.words[index / WORD] |= 1u64 << (index % WORD);
    }

    /// True if `index` is in the set.
    #[inline]
    pub fn contains(&self, index: usize) -> bool {
        index < self.len && self.words[index / WORD] & (1u64 << (index % WORD)) != 0
    }

    /// True if the set has no elements.
    pub fn is_clear(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// True if every index of the universe is in the set.
    pub fn is_full(&self) -> bool {
        *self == BitSet::full(self.len)
    }

    /// Number of elements.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// `self ∪= other`.
    pub fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// `self ∩= other`.
    pub fn intersect_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// `self −= other`.
    pub fn difference_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// True if the sets share an element.
    pub fn intersects(&self, other: &BitSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    /// The words, least significant bit first.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The elements in increasing order.
    pub fn ones(&self) -> Ones<'_> {
        Ones {
            words: &self.words,
            word_index: 0,
            current: self.words.first().copied().unwrap_or(0),
        }
    }
}

impl fmt::Debug for BitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.ones()).finish()
    }
}

/// Iterator over the elements of a [`BitSet`] or a matrix row.
pub struct Ones<'a> {
    words: &'a [u64],
    word_index: usize,
    current: u64,
}

impl Iterator for Ones<'_> {
    type Item = usize;

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

/// A `rows × columns` matrix of bits, stored row by row.
#[derive(Clone, PartialEq, Eq)]
pub struct BitMatrix {
    rows: usize,
    columns: usize,
    stride: usize,
    words: Vec<u64>,
}

impl BitMatrix {
    /// An all-zero matrix.
    pub fn new(rows: usize, columns: usize) -> Self {
        let stride = words_for(columns);
        BitMatrix {
            rows,
            columns,
            stride,
            words: vec![0; rows * stride],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The bit at (`row`, `column`).
    #[inline]
    pub fn get(&self, row: usize, column: usize) -> bool {
        self.words[row * self.stride + column / WORD] & (1u64 << (column % WORD)) != 0
    }

    /// Sets the bit at (`row`, `column`).
    pub fn set(&mut self, row: usize, column: usize) {
        self.words[row * self.stride + column / WORD] |= 1u64 << (column % WORD);
    }

    /// The words of one row.
    pub fn row(&self, row: usize) -> &[u64] {
        &self.words[row * self.stride..(row + 1) * self.stride]
    }

    /// The columns set in one row.
    pub fn row_ones(&self, row: usize) -> Ones<'_> {
        let words = self.row(row);
        Ones {
            words,
            word_index: 0,
            current: words.first().copied().unwrap_or(0),
        }
    }

    /// `row ∪= set` (the set's universe must be the column count).
    pub fn union_row(&mut self, row: usize, set: &BitSet) {
        debug_assert_eq!(set.universe(), self.columns);
        let stride = self.stride;
        for (a, b) in self.words[row * stride..(row + 1) * stride]
            .iter_mut()
            .zip(set.words())
        {
            *a |= b;
        }
    }

    /// Sets a whole row.
    pub fn fill_row(&mut self, row: usize) {
        let full = BitSet::full(self.columns);
        let stride = self.stride;
        self.words[row * stride..(row + 1) * stride].copy_from_slice(full.words());
    }

    /// `self ∩= other`, element-wise (same shape).
    pub fn intersect_with(&mut self, other: &BitMatrix) {
        debug_assert_eq!((self.rows, self.columns), (other.rows, other.columns));
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// Clears every column not in `columns`.
    pub fn retain_columns(&mut self, columns: &BitSet) {
        for row in 0..self.rows {
            for (a, b) in self.words[row * self.stride..(row + 1) * self.stride]
                .iter_mut()
                .zip(columns.words())
            {
                *a &= b;
            }
        }
    }

    /// The transpose, computed 64 × 64 bits at a time.
    pub fn transpose(&self) -> BitMatrix {
        let mut result = BitMatrix::new(self.columns, self.rows);
        let mut block = [0u64; 64];
        for row_block in 0..words_for(self.rows) {
            for column_block in 0..self.stride {
                for (i, slot) in block.iter_mut().enumerate() {
                    let row = row_block * WORD + i;
                    *slot = if row < self.rows {
                        self.words[row * self.stride + column_block]
                    } else {
                        0
                    };
                }
                if block.iter().all(|&w| w == 0) {
                    continue;
                }
                transpose_64(&mut block);
                for (i, &word) in block.iter().enumerate() {
                    let row = column_block * WORD + i;
                    if row < result.rows {
                        result.words[row * result.stride + row_block] = word;
                    }
                }
            }
        }
        result
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

impl fmt::Debug for BitMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for row in 0..self.rows {
            list.entry(&self.row_ones(row).collect::<Vec<_>>());
        }
        list.finish()
    }
}

/// Transposes a 64 × 64 bit block in place, where bit `j` of `block[i]` is
/// element (i, j). Recursive block swap: six rounds of masked exchanges.
fn transpose_64(block: &mut [u64; 64]) {
    let mut width = 32;
    let mut mask: u64 = 0x0000_0000_FFFF_FFFF;
    while width != 0 {
        let mut k = 0;
        while k < 64 {
            // Swap the upper-left/lower-right off-diagonal sub-blocks of
            // rows k..k+width and k+width..k+2*width.
            for i in k..k + width {
                let low = block[i];
                let high = block[i + width];
                let t = ((low >> width) ^ high) & mask;
                block[i] = low ^ (t << width);
                block[i + width] = high ^ t;
            }
            k += 2 * width;
        }
        width >>= 1;
        mask ^= mask << width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn transpose_matches_the_definition() {
        // A deterministic pseudo-random pattern over a shape that is not a multiple of 64.
        let (rows, columns) = (150, 77);
        let mut matrix = BitMatrix::new(rows, columns);
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for r in 0..rows {
            for c in 0..columns {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state.is_multiple_of(3) {
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
