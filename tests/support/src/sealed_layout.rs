//! Where the parts of a sealed artifact lie (formats 1 and 2, docs/ARTIFACT-FORMAT.md), found by
//! a parser written from the format document alone, not `sealgate-models`' own: a test that
//! flips a bit in a chosen part then checks the format, not one implementation against
//! itself.

/// with an independent parser so tests can flip bits in a chosen part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedLayout {
    /// Format version (1 or 2).
    pub version: u8,
    /// Version 2: each listed file's name, size and where its 8-byte size field lies.
    pub files: Vec<(String, u64, usize)>,
    /// Plaintext bytes per frame.
    pub frame_size: usize,
    /// The encryption context, in file order.
    pub context: Vec<(String, String)>,
    /// Where the context value of `model` starts.
    pub model_name_at: usize,
    /// Offset of the key section (the wrapped keys' count byte).
    pub key_section: usize,
    /// Each wrapped key: provider, key id, and the byte range of its ciphertext.
    pub wrapped_keys: Vec<(String, String, std::ops::Range<usize>)>,
    /// Offset of the 32-byte header MAC.
    pub header_mac: usize,
    /// Offset of the body (the header's length).
    pub body: usize,
    /// Byte range of each frame (ciphertext and tag); the last one is the final frame.
    pub frames: Vec<std::ops::Range<usize>>,
}

/// Bytes of an AES-GCM tag after each frame.
const FRAME_TAG_LEN: usize = 16;

impl SealedLayout {
    /// Parses `bytes`; panics (failing the test) when they are not a well-formed artifact.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut r = Reader { bytes, pos: 0 };
        assert_eq!(r.take(8), b"SGSEALED", "magic");
        let version = r.take(1)[0];
        assert!(matches!(version, 1 | 2), "version {version}");
        assert_eq!(r.take(2), [0, 1], "suite");
        r.take(32); // message id
        let frame_size = r.u32() as usize;
        let entries = r.u16();
        let mut context = Vec::new();
        let mut model_name_at = None;
        for _ in 0..entries {
            let key = r.text16();
            if key == "model" {
                model_name_at = Some(r.pos + 2);
            }
            context.push((key, r.text16()));
        }
        let mut files = Vec::new();
        if version == 2 {
            for _ in 0..r.u16() {
                let name = r.text16();
                let size_at = r.pos;
                let size = u64::from_be_bytes(r.take(8).try_into().expect("eight bytes"));
                r.take(32); // sha256
                files.push((name, size, size_at));
            }
        }
        r.take(32); // key commitment
        let key_section = r.pos;
        let count = r.take(1)[0];
        let mut wrapped_keys = Vec::new();
        for _ in 0..count {
            let len = usize::from(r.take(1)[0]);
            let provider = String::from_utf8(r.take(len).to_vec()).expect("UTF-8 provider");
            let key_id = r.text16();
            let len = usize::from(r.u16());
            let start = r.pos;
            r.take(len);
            wrapped_keys.push((provider, key_id, start..start + len));
        }
        let header_mac = r.pos;
        r.take(32);
        let body = r.pos;
        let full = frame_size + FRAME_TAG_LEN;
        let mut frames = Vec::new();
        let mut at = body;
        while bytes.len() - at >= full {
            frames.push(at..at + full);
            at += full;
        }
        // The final frame holds 0..frame_size bytes (a plaintext that is a multiple of the
        // frame size ends with an empty final frame).
        assert!(bytes.len() - at >= FRAME_TAG_LEN, "the body does not end with a final frame");
        frames.push(at..bytes.len());
        let model_name_at = model_name_at.expect("a 'model' entry in the encryption context");
        Self { version, files, frame_size, context, model_name_at, key_section, wrapped_keys, header_mac, body, frames }
    }

    /// Where file `index` of a version-2 artifact starts and ends in the plaintext stream.
    pub fn file_range(&self, index: usize) -> std::ops::Range<u64> {
        let start: u64 = self.files[..index].iter().map(|f| f.1).sum();
        start..start + self.files[index].1
    }

    /// The context value of `key`.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A cursor over artifact bytes for [`SealedLayout::parse`] (big-endian integers).
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// The next `n` bytes; panics (failing the test) when the artifact ends first.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let slice = self.bytes.get(self.pos..self.pos + n);
        let slice = slice.unwrap_or_else(|| panic!("the artifact ends at {} (wanted {n} more bytes)", self.pos));
        self.pos += n;
        slice
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().expect("two bytes"))
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().expect("four bytes"))
    }

    fn text16(&mut self) -> String {
        let len = usize::from(self.u16());
        String::from_utf8(self.take(len).to_vec()).expect("a UTF-8 text field")
    }
}
