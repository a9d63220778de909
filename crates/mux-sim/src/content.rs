//! The bytes of a simulated master: deterministic, so a test knows a file's SHA-256 by
//! generating the same stream, and cheap, so a 4 GiB master costs no memory or disk.
//!
//! Byte `i` of a master with seed `s` is byte `i % 8` (little endian) of
//! `splitmix64(s ^ (i / 8))`: any range can be produced without producing what precedes it.

/// SplitMix64's finaliser: a fast, well-mixed function of one 64-bit word.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes of the master `seed` starting at `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = 0usize;
    let mut word_index = offset / 8;
    let mut skip = (offset % 8) as usize;
    while pos < buf.len() {
        let word = splitmix64(seed ^ word_index).to_le_bytes();
        let take = (8 - skip).min(buf.len() - pos);
        buf[pos..pos + take].copy_from_slice(&word[skip..skip + take]);
        pos += take;
        skip = 0;
        word_index += 1;
    }
}

/// The SHA-256 (hex) of the first `len` bytes of master `seed`, computed by streaming.
pub fn sha256_hex(seed: u64, len: u64) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < len {
        let n = ((len - offset) as usize).min(buf.len());
        fill(seed, offset, &mut buf[..n]);
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_matches_the_whole() {
        let mut whole = vec![0u8; 100];
        fill(7, 0, &mut whole);
        for start in [0usize, 1, 7, 8, 13, 64] {
            let mut part = vec![0u8; 100 - start];
            fill(7, start as u64, &mut part);
            assert_eq!(part, whole[start..], "from {start}");
        }
    }

    #[test]
    fn seeds_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(1, 0, &mut a);
        fill(2, 0, &mut b);
        assert_ne!(a, b);
    }
}
