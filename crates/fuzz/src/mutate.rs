//! A small deterministic mutator for the smoke tests: the same seed gives
//! the same inputs on every machine, so a failure in CI reproduces locally.
//!
//! It is no substitute for libFuzzer (no coverage feedback); it covers the
//! shapes that break decoders most often: flipped bits, inserted and deleted
//! bytes, spliced corpus entries, deep nesting and invalid UTF-8.

/// A seeded pseudo-random source (SplitMix64: tiny and good enough here).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes that end a UTF-8 sequence early, start one that never ends, or are
/// never valid at all.
const INVALID_UTF8: &[&[u8]] = &[b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf"];
/// Values decoders find hard: extremes of every integer width, floats JSON
/// has no room for, escapes, and empty or odd tokens.
const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"4294967296",
    b"1e999",
    b"-0.0",
    b"NaN",
    b"null",
    b"true",
    b"\"\"",
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"{}",
    b"[]",
    b"\n",
    b"\r\n",
    b"/",
    b"//",
    b"...",
    b"{x}",
    b"%",
    b"%FF",
    b"=",
    b"\"\"\"",
    b"'''",
];

/// Bytes that delimit something in JSON, TOML, routes or URLs.
const STRUCTURAL: &[u8] = b"{}[]\",:\\/\n=.%\0";

/// One mutation of `input`, drawing splice material from `corpus`.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    // Stack a few mutations, as libFuzzer does.
    for _ in 0..1 + rng.below(3) {
        mutate_once(rng, &mut out, corpus);
    }
    out
}

fn mutate_once(rng: &mut Rng, out: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let at = |rng: &mut Rng, out: &Vec<u8>| rng.below(out.len() + 1);
    match rng.below(9) {
        // Flip one bit.
        0 if !out.is_empty() => {
            let i = rng.below(out.len());
            out[i] ^= 1 << rng.below(8);
        }
        // Insert a random byte.
        1 => {
            let i = at(rng, out);
            out.insert(i, rng.next_u64() as u8);
        }
        // Delete a run of bytes.
        2 if !out.is_empty() => {
            let i = rng.below(out.len());
            let n = 1 + rng.below((out.len() - i).min(16));
            out.drain(i..i + n);
        }
        // Splice: our head, another entry's tail.
        3 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let cut = at(rng, out);
            let from = rng.below(other.len() + 1);
            out.truncate(cut);
            out.extend_from_slice(&other[from..]);
        }
        // Deep nesting: an opening bracket repeated hundreds of times.
        4 => {
            let open: &[u8] = [b"[".as_slice(), b"{\"a\":", b"[[", b"{\"x\":["][rng.below(4)];
            let depth = 64 + rng.below(4096);
            let i = at(rng, out);
            let deep: Vec<u8> = open.repeat(depth);
            out.splice(i..i, deep);
        }
        // Invalid UTF-8.
        5 => {
            let bad = INVALID_UTF8[rng.below(INVALID_UTF8.len())];
            let i = at(rng, out);
            out.splice(i..i, bad.iter().copied());
        }
        // A hard value, inserted or replacing a run of digits.
        6 => {
            let value = INTERESTING[rng.below(INTERESTING.len())];
            match out.iter().position(u8::is_ascii_digit) {
                Some(start) if rng.below(2) == 0 => {
                    let end = out[start..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(out.len(), |n| start + n);
                    out.splice(start..end, value.iter().copied());
                }
                _ => {
                    let i = at(rng, out);
                    out.splice(i..i, value.iter().copied());
                }
            }
        }
        // Duplicate a chunk (long strings, repeated keys).
        7 if !out.is_empty() => {
            let i = rng.below(out.len());
            let n = 1 + rng.below((out.len() - i).min(64));
            let chunk = out[i..i + n].to_vec();
            let times = 1 + rng.below(64);
            out.splice(i..i, chunk.repeat(times));
        }
        // Overwrite one byte with something structural.
        _ if !out.is_empty() => {
            let i = rng.below(out.len());
            out[i] = STRUCTURAL[rng.below(STRUCTURAL.len())];
        }
        _ => out.push(rng.next_u64() as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let corpus = vec![b"{\"a\": 1}".to_vec(), b"/x/{y}".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..100)
                .map(|i| mutate(&mut rng, &corpus[i % 2], &corpus))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
