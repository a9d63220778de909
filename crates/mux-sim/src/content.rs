//! The bytes of a simulated master: deterministic, so a test knows a file's SHA-256 by
//! generating the same stream, and cheap, so a 4 GiB master costs no memory or disk.
//!
//! A master of `size` bytes is an ISO BMFF (MP4) file laid out as a muxer writes one that puts
//! its index last, the way Mux's masters look while they are still being written: a `ftyp`
//! box, an `mdat` box of media data (a 64-bit size past 4 GiB), and a `moov` box (holding a
//! `mvhd`) at the end. So a prefix of it, as served while it grows, is cut inside the `mdat` or
//! the `moov`: only the whole file has a complete structure. Masters smaller than
//! [`MIN_MP4_SIZE`] are bare bytes.
//!
//! Byte `i` of the media data of a master with seed `s` is byte `i % 8` (little endian) of
//! `splitmix64(s ^ (i / 8))`, `i` counted from the start of the file: any range can be produced
//! without producing what precedes it.

/// `ftyp`: major brand `isom`, minor version 0x200, compatible `isom iso2 avc1 mp41`.
const FTYP: [u8; 32] = *b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";
/// `moov` holding one `mvhd` (version 0, 108 bytes).
const MOOV_LEN: u64 = 8 + 108;
/// The smallest master with an MP4 structure: `ftyp`, an empty `mdat` and the `moov`.
pub const MIN_MP4_SIZE: u64 = FTYP.len() as u64 + 8 + MOOV_LEN;

/// SplitMix64's finaliser: a fast, well-mixed function of one 64-bit word.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The media bytes of master `seed` at `offset`.
fn fill_media(seed: u64, offset: u64, buf: &mut [u8]) {
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

/// The `mdat` header of a master of `size` bytes: 8 bytes, or 16 with a 64-bit size.
fn mdat_header(size: u64) -> Vec<u8> {
    let mdat_len = size - FTYP.len() as u64 - MOOV_LEN;
    match u32::try_from(mdat_len) {
        Ok(len) => [&len.to_be_bytes()[..], b"mdat"].concat(),
        Err(_) => [&1u32.to_be_bytes()[..], b"mdat", &mdat_len.to_be_bytes()].concat(),
    }
}

/// The `moov` box: a `mvhd` with a timescale of 1000 and a duration derived from the size.
fn moov(size: u64) -> Vec<u8> {
    let mut moov = Vec::with_capacity(MOOV_LEN as usize);
    moov.extend_from_slice(&(MOOV_LEN as u32).to_be_bytes());
    moov.extend_from_slice(b"moov");
    moov.extend_from_slice(&108u32.to_be_bytes());
    moov.extend_from_slice(b"mvhd");
    moov.extend_from_slice(&[0; 4]); // version 0, flags
    moov.extend_from_slice(&[0; 8]); // creation and modification times
    moov.extend_from_slice(&1000u32.to_be_bytes()); // timescale
    moov.extend_from_slice(&((size / 1000) as u32).to_be_bytes()); // duration
    moov.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    moov.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    moov.extend_from_slice(&[0; 10]); // reserved
    for m in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        moov.extend_from_slice(&m.to_be_bytes()); // the identity matrix
    }
    moov.extend_from_slice(&[0; 24]); // pre-defined
    moov.extend_from_slice(&2u32.to_be_bytes()); // next track ID
    debug_assert_eq!(moov.len() as u64, MOOV_LEN);
    moov
}

/// Copies the part of `region` (placed at `region_start` in the file) that overlaps the range
/// `buf` stands for (starting at `offset`).
fn overlay(region: &[u8], region_start: u64, offset: u64, buf: &mut [u8]) {
    let region_end = region_start + region.len() as u64;
    let buf_end = offset + buf.len() as u64;
    let (start, end) = (region_start.max(offset), region_end.min(buf_end));
    if start < end {
        let from = (start - region_start) as usize..(end - region_start) as usize;
        buf[(start - offset) as usize..(end - offset) as usize].copy_from_slice(&region[from]);
    }
}

/// Fills `buf` with the bytes of the master (`seed`, `size`) starting at `offset`.
pub fn fill(seed: u64, size: u64, offset: u64, buf: &mut [u8]) {
    fill_media(seed, offset, buf);
    if size < MIN_MP4_SIZE {
        return;
    }
    let header = mdat_header(size);
    overlay(&FTYP, 0, offset, buf);
    overlay(&header, FTYP.len() as u64, offset, buf);
    let moov_start = size - MOOV_LEN;
    if offset + buf.len() as u64 > moov_start {
        overlay(&moov(size), moov_start, offset, buf);
    }
}

/// The SHA-256 (hex) of the first `len` bytes of the master (`seed`, `size`), computed by
/// streaming: `len == size` for the whole master, less for a prefix of it.
pub fn prefix_sha256_hex(seed: u64, size: u64, len: u64) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < len {
        let n = ((len - offset) as usize).min(buf.len());
        fill(seed, size, offset, &mut buf[..n]);
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    hex::encode(hasher.finalize())
}

/// The SHA-256 (hex) of the whole master (`seed`, `size`).
pub fn sha256_hex(seed: u64, size: u64) -> String {
    prefix_sha256_hex(seed, size, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(seed: u64, size: u64) -> Vec<u8> {
        let mut buf = vec![0u8; size as usize];
        fill(seed, size, 0, &mut buf);
        buf
    }

    #[test]
    fn any_range_matches_the_whole() {
        for size in [100, 1000] {
            let all = whole(7, size);
            for start in [0usize, 1, 7, 8, 13, 31, 32, 39, 40, 64, 883, 884, 999] {
                let start = start.min(size as usize - 1);
                let mut part = vec![0u8; size as usize - start];
                fill(7, size, start as u64, &mut part);
                assert_eq!(part, all[start..], "size {size} from {start}");
            }
        }
    }

    #[test]
    fn a_master_is_ftyp_mdat_moov_tiling_the_file() {
        let size = 10_000;
        let file = whole(3, size);
        let u32_at = |i: usize| u32::from_be_bytes(file[i..i + 4].try_into().unwrap()) as usize;
        assert_eq!((&file[4..8], u32_at(0)), (&b"ftyp"[..], 32));
        assert_eq!(&file[36..40], b"mdat");
        let moov = 32 + u32_at(32);
        assert_eq!(&file[moov + 4..moov + 8], b"moov");
        assert_eq!(moov + u32_at(moov), size as usize);
        assert_eq!(&file[moov + 12..moov + 16], b"mvhd");
    }

    #[test]
    fn past_4_gib_the_mdat_has_a_64_bit_size() {
        let size = 5u64 << 30;
        let mut header = [0u8; 16];
        fill(1, size, 32, &mut header);
        assert_eq!(&header[..8], b"\0\0\0\x01mdat");
        assert_eq!(
            u64::from_be_bytes(header[8..].try_into().unwrap()),
            size - 32 - MOOV_LEN
        );
    }

    #[test]
    fn seeds_differ_and_tiny_masters_are_bare_bytes() {
        assert_ne!(whole(1, 1000), whole(2, 1000));
        assert_ne!(&whole(1, 10)[4..8], b"ftyp");
        assert_eq!(sha256_hex(5, 500), prefix_sha256_hex(5, 500, 500));
        assert_ne!(sha256_hex(5, 500), prefix_sha256_hex(5, 500, 499));
    }
}
