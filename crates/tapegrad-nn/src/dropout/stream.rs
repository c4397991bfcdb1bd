//! The words of rand_chacha's `ChaCha12Rng`, computed eight blocks at a time.
//!
//! ChaCha (Bernstein) turns a 256-bit key, a 64-bit block counter and a 64-bit stream id into
//! 16 words per block: the state `s` = four constants ("expand 32-byte k"), the key's eight
//! little-endian words, the counter's low and high words, the stream id's low and high words;
//! six double rounds (a column round, then a diagonal round, each four quarter rounds
//! `a += b; d ^= a; d <<<= 16; c += d; b ^= c; b <<<= 12; a += b; d ^= a; d <<<= 8;
//! c += d; b ^= c; b <<<= 7`) of a copy `x`; then `x + s` word by word. `ChaCha12Rng` hands
//! out block after block, and rand's `fill` of `[u64]` takes two words at a time, the first
//! as the low half.
//!
//! rand_chacha computes four blocks per call; here each of the 16 state words holds the same
//! word of eight consecutive blocks, so one pass of plain array arithmetic (compiled for
//! AVX-512, AVX2 or SSE and chosen at run time) computes eight blocks with vector
//! instructions, and two such groups go through the rounds side by side. On an AVX-512 Xeon
//! the 4,096 draws of a seed batch's dropout mask took 14.5 µs with rand's `fill`; their 512
//! blocks took 7.8–8.3 µs with one group of eight lanes, 10.4 compiled for AVX2 alone (four
//! lanes 8.3; sixteen 9.8). One group's rounds are a chain of dependent instructions: on an
//! AMD EPYC (Zen 5) the 512 blocks took 6.5 µs with one group at a time and **3.3 µs** with
//! two side by side, whose instructions interleave; the whole `fill_u64` of 4,096 draws 7.9
//! → 4.6 µs, the layer's forward on a 32×128 batch 10.2 → 6.5 µs (`cargo bench -p
//! tapegrad-train --bench data -- dropout`), the seed's forward pass 40.1 → 35.8 µs (`--
//! step`; 4 alternations each). The compiler's vectorisation of this code is fragile:
//! the two groups are two separate arrays and each quarter round is written out as two
//! calls, because a loop over two to four groups compiled to 7.6–9.0 µs and one array of
//! two groups destructured into two to scalar code (45 µs).

use multiversion::multiversion;
use rand::Rng;
use rand_chacha::ChaCha12Rng;

/// Blocks in one group, each in its own lane of every state word.
const LANES: usize = 8;

/// Blocks computed at once: two groups.
const BLOCKS: usize = 2 * LANES;

/// One state word of [`LANES`] consecutive blocks.
type Lanes = [u32; LANES];

/// The 16 state words of one group.
type Group = [Lanes; 16];

/// Fills `out` with the words `rng.fill(out)` would give, and leaves `rng` where that would.
pub(super) fn fill_u64(rng: &mut ChaCha12Rng, out: &mut [u64]) {
    let pos = rng.get_word_pos();
    if pos % 2 == 1 {
        // A draw would straddle two blocks; the layer only ever draws pairs of words, so its
        // generator never stands at an odd position.
        rng.fill(out);
        return;
    }
    let seed = rng.get_seed();
    let key: [u32; 8] =
        std::array::from_fn(|i| u32::from_le_bytes(seed[4 * i..4 * i + 4].try_into().expect("4 bytes")));
    let stream = rng.get_stream();
    // Draw d (two words) is pair pos/2 + d of the stream; block b holds pairs 8b..8b + 8.
    let first = pos / 2;
    let mut block = (pos / 16) as u64;
    let mut x = [[[0u32; LANES]; 16]; 2];
    // Index in `out` of the first group's first pair (negative in the first call when `pos`
    // is not at a block boundary).
    let mut at = -((first % 8) as isize);
    while at < out.len() as isize {
        blocks(&key, stream, block, &mut x);
        for (g, x) in x.iter().enumerate() {
            let at = at + (g * LANES * 8) as isize;
            // Pair t of lane l's block is draw 8l + t. A group wholly inside `out` is copied
            // without a range check per draw (the first and last groups need them).
            if let Some(whole) = usize::try_from(at).ok().and_then(|a| out.get_mut(a..a + LANES * 8)) {
                for (l, eight) in whole.chunks_exact_mut(8).enumerate() {
                    for (t, d) in eight.iter_mut().enumerate() {
                        *d = pair(x, l, t);
                    }
                }
                continue;
            }
            for l in 0..LANES {
                for t in 0..8 {
                    let d = at + (l * 8 + t) as isize;
                    if (0..out.len() as isize).contains(&d) {
                        out[d as usize] = pair(x, l, t);
                    }
                }
            }
        }
        at += (BLOCKS * 8) as isize;
        block = block.wrapping_add(BLOCKS as u64);
    }
    rng.set_word_pos(pos + 2 * out.len() as u128);
}

/// Draw `t` (words `2t` and `2t + 1`, the first as the low half) of lane `l`'s block.
#[inline(always)]
fn pair(x: &Group, l: usize, t: usize) -> u64 {
    u64::from(x[2 * t][l]) | u64::from(x[2 * t + 1][l]) << 32
}

/// `out[g][w][l]`: word `w` of block `block + 8g + l`, for [`BLOCKS`] consecutive blocks.
#[multiversion(targets = "simd")]
fn blocks(key: &[u32; 8], stream: u64, block: u64, out: &mut [Group; 2]) {
    let s0 = state(key, stream, block);
    let s1 = state(key, stream, block.wrapping_add(LANES as u64));
    let (mut x, mut y) = (s0, s1);
    for _ in 0..6 {
        quarter2(&mut x, &mut y, 0, 4, 8, 12);
        quarter2(&mut x, &mut y, 1, 5, 9, 13);
        quarter2(&mut x, &mut y, 2, 6, 10, 14);
        quarter2(&mut x, &mut y, 3, 7, 11, 15);
        quarter2(&mut x, &mut y, 0, 5, 10, 15);
        quarter2(&mut x, &mut y, 1, 6, 11, 12);
        quarter2(&mut x, &mut y, 2, 7, 8, 13);
        quarter2(&mut x, &mut y, 3, 4, 9, 14);
    }
    for w in 0..16 {
        out[0][w] = add(x[w], s0[w]);
        out[1][w] = add(y[w], s1[w]);
    }
}

/// The initial state of the group of [`LANES`] blocks from `block` on.
#[inline(always)]
fn state(key: &[u32; 8], stream: u64, block: u64) -> Group {
    let mut s = [[0u32; LANES]; 16];
    for (w, c) in [0x6170_7865u32, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]
        .into_iter()
        .enumerate()
    {
        s[w] = [c; LANES];
    }
    for (w, &k) in key.iter().enumerate() {
        s[4 + w] = [k; LANES];
    }
    let counter: [u64; LANES] = std::array::from_fn(|l| block.wrapping_add(l as u64));
    s[12] = counter.map(|b| b as u32);
    s[13] = counter.map(|b| (b >> 32) as u32);
    s[14] = [stream as u32; LANES];
    s[15] = [(stream >> 32) as u32; LANES];
    s
}

/// The same quarter round in both groups, one after the other: the two are independent, so
/// their instructions overlap.
#[inline(always)]
fn quarter2(x: &mut Group, y: &mut Group, a: usize, b: usize, c: usize, d: usize) {
    quarter(x, a, b, c, d);
    quarter(y, a, b, c, d);
}

/// ChaCha's quarter round on words `a`, `b`, `c`, `d` of every lane.
#[inline(always)]
fn quarter(x: &mut Group, a: usize, b: usize, c: usize, d: usize) {
    x[a] = add(x[a], x[b]);
    x[d] = xor_rotate(x[d], x[a], 16);
    x[c] = add(x[c], x[d]);
    x[b] = xor_rotate(x[b], x[c], 12);
    x[a] = add(x[a], x[b]);
    x[d] = xor_rotate(x[d], x[a], 8);
    x[c] = add(x[c], x[d]);
    x[b] = xor_rotate(x[b], x[c], 7);
}

#[inline(always)]
fn add(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|l| a[l].wrapping_add(b[l]))
}

#[inline(always)]
fn xor_rotate(a: Lanes, b: Lanes, k: u32) -> Lanes {
    std::array::from_fn(|l| (a[l] ^ b[l]).rotate_left(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The words and the generator's state afterwards are rand's, from any even position
    /// (a block boundary or not, a group boundary or not), for lengths of none, one, part of
    /// a group, whole groups and more; from an odd position rand's own `fill` is used.
    #[test]
    fn the_words_are_rands() {
        for seed in [0u64, 7, u64::MAX] {
            for skip in [0usize, 1, 2, 6, 16, 30, 128, 130, 255] {
                for n in [0usize, 1, 3, 8, 63, 64, 65, 200, 1024, 3001] {
                    let mut ours = ChaCha12Rng::seed_from_u64(seed);
                    ours.set_stream(seed ^ 0x5555);
                    for _ in 0..skip {
                        let _: u32 = ours.random();
                    }
                    let mut theirs = ours.clone();
                    let (mut a, mut b) = (vec![0u64; n], vec![0u64; n]);
                    fill_u64(&mut ours, &mut a);
                    theirs.fill(&mut b[..]);
                    assert!(a == b, "seed {seed}, {skip} words in, {n} draws");
                    assert_eq!(ours.random::<u64>(), theirs.random::<u64>(), "the state after");
                }
            }
        }
    }

    /// Where the block counter's low word wraps (block 2³² − 3 onwards), its carry reaches
    /// the high word as rand_chacha's does.
    #[test]
    fn the_counter_carries() {
        let mut ours = ChaCha12Rng::seed_from_u64(3);
        ours.set_word_pos(((1u128 << 32) - 3) * 16);
        let mut theirs = ours.clone();
        let (mut a, mut b) = (vec![0u64; 100], vec![0u64; 100]);
        fill_u64(&mut ours, &mut a);
        theirs.fill(&mut b[..]);
        assert!(a == b);
    }
}
