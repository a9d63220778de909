//! Whether a master's bytes are a whole MP4 (ISO BMFF) file, judged from its top-level boxes as
//! they stream past, without keeping them.
//!
//! Mux says nothing of when the file behind a `ready` URL is complete, and it has been seen to
//! grow after `ready`, with pauses: time alone (the settle checks) cannot tell a finished file
//! from a paused writer. The structure can. A whole file is a run of boxes (`size`, `type`,
//! payload) that tiles it exactly: each header's size (32-bit, or `1` and a 64-bit size after
//! the type, or `0`: "to the end of the file") ends where the next box starts, and the last
//! ends where the file ends. The first box is `ftyp`, a `moov` is present, and in a fragmented
//! file every movie fragment (`moof`) is followed by its media data (`mdat`). A file cut while
//! it is written ends inside a box, or before its `moov` (muxers write the index last).

/// The verdict on the bytes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Structure {
    /// The boxes tile the file, `ftyp` first, with a `moov` and complete fragments.
    Complete,
    /// Not (yet) a whole MP4: why, for a person.
    Incomplete(String),
}

/// Follows the top-level boxes of a stream.
#[derive(Debug, Default)]
pub struct BoxWalker {
    /// Bytes seen.
    position: u64,
    /// Where the next box starts.
    next_box: u64,
    /// The header of the next box, as far as it has been seen (16 bytes at most).
    header: Vec<u8>,
    /// The last box extends to the end of the file (size 0).
    to_end: bool,
    /// The last complete header: (type, offset, size).
    last: Option<([u8; 4], u64, u64)>,
    boxes: u64,
    moov: bool,
    /// A `moof` was seen and no `mdat` after it yet.
    fragment_open: bool,
    /// The bytes are not an MP4 at all: why.
    broken: Option<String>,
}

impl BoxWalker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Follows `data`, the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.to_end || self.broken.is_some() {
                self.position += data.len() as u64;
                return;
            }
            if self.position < self.next_box {
                let skip = (self.next_box - self.position).min(data.len() as u64) as usize;
                self.position += skip as u64;
                data = &data[skip..];
                continue;
            }
            let wanted = if self.header.len() >= 8 && self.header[..4] == [0, 0, 0, 1] {
                16
            } else {
                8
            };
            let take = (wanted - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            self.position += take as u64;
            data = &data[take..];
            if self.header.len() == 8 && self.header[..4] == [0, 0, 0, 1] {
                continue; // A 64-bit size follows the type.
            }
            if self.header.len() == wanted {
                self.read_header();
            }
        }
    }

    /// The header of the box at `next_box` is complete in `header`.
    fn read_header(&mut self) {
        let start = self.next_box;
        let header_len = self.header.len() as u64;
        let kind: [u8; 4] = self.header[4..8].try_into().expect("8 bytes at least");
        let size = match u32::from_be_bytes(self.header[..4].try_into().expect("4 bytes")) {
            1 => u64::from_be_bytes(self.header[8..16].try_into().expect("16 bytes")),
            size => u64::from(size),
        };
        self.header.clear();
        let name = type_name(&kind);
        if !kind
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) || b == 0xa9)
        {
            self.broken = Some(format!("the bytes at offset {start} are not a box header"));
            return;
        }
        if self.boxes == 0 && &kind != b"ftyp" {
            self.broken = Some(format!("the file starts with a {name:?} box, not \"ftyp\""));
            return;
        }
        if size != 0 && size < header_len {
            self.broken = Some(format!(
                "the {name:?} box at offset {start} declares {size} bytes, less than its header"
            ));
            return;
        }
        self.boxes += 1;
        match &kind {
            b"moov" => self.moov = true,
            b"moof" => self.fragment_open = true,
            b"mdat" => self.fragment_open = false,
            _ => {}
        }
        self.last = Some((kind, start, size));
        if size == 0 {
            self.to_end = true;
        } else {
            self.next_box = start.saturating_add(size);
        }
    }

    /// What the bytes seen so far are, taken as the whole file.
    pub fn verdict(&self) -> Structure {
        let incomplete = |why: String| Structure::Incomplete(why);
        if let Some(why) = &self.broken {
            return incomplete(format!("not an MP4 file: {why}"));
        }
        if self.position == 0 {
            return incomplete("the file is empty".into());
        }
        if !self.header.is_empty() {
            return incomplete(format!(
                "it ends inside the header of a box at offset {}",
                self.next_box
            ));
        }
        if !self.to_end && self.position < self.next_box {
            let (kind, start, size) = self.last.expect("a box was read");
            return incomplete(format!(
                "it ends inside the {:?} box at offset {start}, which declares {size} bytes \
                 ({} of them are there)",
                type_name(&kind),
                self.position - start
            ));
        }
        if !self.moov {
            return incomplete("it has no \"moov\" box (the index a muxer writes last)".into());
        }
        if self.fragment_open {
            return incomplete("its last movie fragment (\"moof\") has no \"mdat\"".into());
        }
        Structure::Complete
    }
}

fn type_name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: usize) -> Vec<u8> {
        let mut b = ((8 + payload) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(8 + payload, 0x5a);
        b
    }

    fn large(kind: &[u8; 4], payload: usize) -> Vec<u8> {
        let mut b = 1u32.to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(&((16 + payload) as u64).to_be_bytes());
        b.resize(16 + payload, 0x5a);
        b
    }

    /// The verdict on `file`, fed in chunks of every size from 1 byte up.
    fn verdict(file: &[u8]) -> Structure {
        let whole = {
            let mut w = BoxWalker::new();
            w.update(file);
            w.verdict()
        };
        for chunk in [1, 3, 7, 8, 13, 100] {
            let mut w = BoxWalker::new();
            file.chunks(chunk).for_each(|c| w.update(c));
            assert_eq!(w.verdict(), whole, "in chunks of {chunk}");
        }
        whole
    }

    fn is_incomplete(file: &[u8], why: &str) {
        match verdict(file) {
            Structure::Incomplete(text) => assert!(text.contains(why), "{text:?} lacks {why:?}"),
            Structure::Complete => panic!("complete, expected incomplete ({why})"),
        }
    }

    #[test]
    fn boxes_that_tile_the_file_with_a_moov_are_complete() {
        let moov_last = [
            boxed(b"ftyp", 24),
            boxed(b"mdat", 1000),
            boxed(b"moov", 100),
        ]
        .concat();
        assert_eq!(verdict(&moov_last), Structure::Complete);
        let faststart = [boxed(b"ftyp", 24), boxed(b"moov", 100), large(b"mdat", 300)].concat();
        assert_eq!(verdict(&faststart), Structure::Complete);
        let mut to_end = [boxed(b"ftyp", 24), boxed(b"moov", 10)].concat();
        to_end.extend_from_slice(&0u32.to_be_bytes());
        to_end.extend_from_slice(b"mdat");
        to_end.resize(to_end.len() + 500, 1);
        assert_eq!(verdict(&to_end), Structure::Complete);
        let fragmented = [
            boxed(b"ftyp", 24),
            boxed(b"moov", 50),
            boxed(b"moof", 20),
            boxed(b"mdat", 200),
            boxed(b"moof", 20),
            boxed(b"mdat", 100),
            boxed(b"mfra", 16),
        ]
        .concat();
        assert_eq!(verdict(&fragmented), Structure::Complete);
    }

    #[test]
    fn a_file_cut_anywhere_is_incomplete() {
        let file = [
            boxed(b"ftyp", 24),
            large(b"mdat", 1000),
            boxed(b"moov", 100),
        ]
        .concat();
        for cut in 1..file.len() {
            assert_ne!(verdict(&file[..cut]), Structure::Complete, "cut at {cut}");
        }
        is_incomplete(&file[..500], "inside the \"mdat\" box at offset 32");
        is_incomplete(&file[..file.len() - 1], "inside the \"moov\" box");
        is_incomplete(&file[..36], "inside the header of a box at offset 32");
        // Cut exactly after the mdat: the boxes tile what is there, but no moov.
        is_incomplete(&file[..32 + 1016], "no \"moov\"");
        is_incomplete(&[], "empty");
    }

    #[test]
    fn an_unfinished_fragment_or_a_file_that_is_no_mp4_is_incomplete() {
        let open = [boxed(b"ftyp", 24), boxed(b"moov", 50), boxed(b"moof", 20)].concat();
        is_incomplete(&open, "no \"mdat\"");
        is_incomplete(b"<html>not a video</html>", "not an MP4");
        is_incomplete(
            &[boxed(b"moov", 10), boxed(b"ftyp", 8)].concat(),
            "not \"ftyp\"",
        );
        let mut tiny = boxed(b"ftyp", 24);
        tiny.extend_from_slice(&[0, 0, 0, 4, b'f', b'r', b'e', b'e']);
        is_incomplete(&tiny, "less than its header");
        let mut garbage = boxed(b"ftyp", 24);
        garbage.extend_from_slice(&[0, 0, 0, 9, 0, 1, 2, 3, 4]);
        is_incomplete(&garbage, "not a box header");
    }
}
