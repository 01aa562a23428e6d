//! The `*.sealed` artifact format, versions 1 and 2: header layout, parsing and serialization.
//!
//! Specified in docs/ARTIFACT-FORMAT.md; this file is its executable form. All integers are
//! big-endian. Parsing takes untrusted bytes and never panics; every length is bounded
//! before anything is allocated.
//!
//! ```text
//! fixed header   magic "SGSEALED" | version u8 (1 or 2) | suite u16 = 1 | message_id [32]
//!                | frame_size u32 | context: count u16, (klen u16, key, vlen u16, value)*
//!                | version 2 only: files: count u16 (1..=256), (nlen u16, name, size u64, sha256 [32])*
//!                | commitment [32]
//! key section    count u8 (1..=8), (plen u8, provider, kidlen u16, key_id, ctlen u16, ct)*
//! header_mac     [32]  HMAC-SHA256(mac_key, fixed header || key section)
//! body           frames: AES-256-GCM(ciphertext || tag), all frame_size bytes of plaintext
//!                but the last, which holds 0..=frame_size bytes; in version 2 the plaintext
//!                is the listed files concatenated in order
//! ```
//!
//! Version 2 carries a model with its external data files in one artifact: file 0 is the
//! ONNX model, the others are named by the exact `location` the model's initializers give.
//!
//! The fixed header is bound into every frame's AAD; the key section is authenticated only
//! by the header MAC, so `sealgate rewrap` can replace wrapped keys without touching the body.

use crate::kms::{EncryptionContext, WrappedKey};

use super::ArtifactError;

/// The first eight bytes of every sealed artifact.
pub const MAGIC: &[u8; 8] = b"SGSEALED";
/// Version 1: the body is one ONNX file.
pub const VERSION_1: u8 = 1;
/// Version 2: the header lists the files the body holds (an ONNX model and its external data).
pub const VERSION_2: u8 = 2;
/// The version `seal` writes.
pub const VERSION: u8 = VERSION_2;
/// Most files one version-2 artifact holds.
pub const MAX_FILES: usize = 256;
/// Longest file name, in bytes.
pub const MAX_FILE_NAME: usize = 255;
/// Suite 1: AES-256-GCM frames, HKDF-SHA256 key derivation, HMAC-SHA256 header MAC and key
/// commitment.
pub const SUITE_AES256GCM_HKDF_SHA256: u16 = 1;
/// Bytes of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Smallest and largest frame size accepted.
pub const FRAME_SIZE_RANGE: std::ops::RangeInclusive<u32> = 4096..=(64 << 20);
/// Most wrapped keys in one header.
pub const MAX_WRAPPED_KEYS: usize = 8;
const MAX_CONTEXT_ENTRIES: usize = 32;
const MAX_WRAPPED_CIPHERTEXT: usize = 4096;

/// One file of a version-2 artifact, as its authenticated header lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// File 0: the ONNX file's base name; the others: the `location` the model references.
    pub name: String,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
}

/// Checks a file name of a version-2 header: relative, `/`-separated, no empty, `.` or `..`
/// component, no backslash or NUL, 1 to 255 bytes. The same rule refuses an external-data
/// location that could leave the model's folder when sealing.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_FILE_NAME {
        return Err("a file name has 1 to 255 bytes");
    }
    if name.starts_with('/') {
        return Err("an absolute path");
    }
    if name.contains(['\\', '\0']) {
        return Err("a backslash or NUL in the name");
    }
    if name.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err("an empty, '.' or '..' path component");
    }
    Ok(())
}

/// The parsed header of a sealed artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version: [`VERSION_1`] or [`VERSION_2`].
    pub version: u8,
    /// Random per artifact; salts the key derivation.
    pub message_id: [u8; 32],
    /// Plaintext bytes per frame.
    pub frame_size: u32,
    /// Model name, version, plaintext SHA-256, creation time (and any extra entries).
    pub context: EncryptionContext,
    /// Version 2: the files the body holds, in order (file 0 is the ONNX model). Empty in
    /// version 1, whose body is one ONNX file.
    pub files: Vec<FileEntry>,
    /// Key commitment: proves which data key the artifact was sealed with.
    pub commitment: [u8; 32],
    /// The data key wrapped by one or more KMS keys.
    pub wrapped_keys: Vec<WrappedKey>,
    /// HMAC over the fixed header and key section.
    pub header_mac: [u8; 32],
}

impl Header {
    /// Encodes the fixed header (the part bound into every frame).
    pub fn encode_fixed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(MAGIC);
        out.push(self.version);
        out.extend_from_slice(&SUITE_AES256GCM_HKDF_SHA256.to_be_bytes());
        out.extend_from_slice(&self.message_id);
        out.extend_from_slice(&self.frame_size.to_be_bytes());
        // Sizes were checked when the header was built or parsed: they fit their fields.
        out.extend_from_slice(&(self.context.len() as u16).to_be_bytes());
        for (k, v) in &self.context {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u16).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        if self.version >= VERSION_2 {
            out.extend_from_slice(&(self.files.len() as u16).to_be_bytes());
            for file in &self.files {
                out.extend_from_slice(&(file.name.len() as u16).to_be_bytes());
                out.extend_from_slice(file.name.as_bytes());
                out.extend_from_slice(&file.size.to_be_bytes());
                out.extend_from_slice(&file.sha256);
            }
        }
        out.extend_from_slice(&self.commitment);
        out
    }

    /// The plaintext bytes the body holds, when the header says (version 2: the sum of the
    /// file sizes; `None` for version 1, where only the body's length tells).
    pub fn listed_plaintext_len(&self) -> Option<u64> {
        (self.version >= VERSION_2).then(|| self.files.iter().map(|f| f.size).sum())
    }

    /// Encodes the key section.
    pub fn encode_keys(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(self.wrapped_keys.len() as u8);
        for key in &self.wrapped_keys {
            out.push(key.provider.len() as u8);
            out.extend_from_slice(key.provider.as_bytes());
            out.extend_from_slice(&(key.key_id.len() as u16).to_be_bytes());
            out.extend_from_slice(key.key_id.as_bytes());
            out.extend_from_slice(&(key.ciphertext.len() as u16).to_be_bytes());
            out.extend_from_slice(&key.ciphertext);
        }
        out
    }

    /// Encodes the whole header including the MAC.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_fixed();
        out.extend_from_slice(&self.encode_keys());
        out.extend_from_slice(&self.header_mac);
        out
    }

    /// Checks the limits that parsing enforces, so a header we write can always be read.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        match self.version {
            VERSION_1 if !self.files.is_empty() => {
                return Err(ArtifactError::Format("a version-1 artifact holds one file and lists none"));
            }
            VERSION_1 => {}
            VERSION_2 => {
                if self.files.is_empty() || self.files.len() > MAX_FILES {
                    return Err(ArtifactError::Format("a version-2 artifact lists 1 to 256 files"));
                }
                for (i, file) in self.files.iter().enumerate() {
                    check_file_name(&file.name).map_err(|_| ArtifactError::Format("invalid file name"))?;
                    if self.files[..i].iter().any(|f| f.name == file.name) {
                        return Err(ArtifactError::Format("a file is listed twice"));
                    }
                }
                self.files
                    .iter()
                    .try_fold(0u64, |sum, f| sum.checked_add(f.size))
                    .ok_or(ArtifactError::Format("file sizes overflow"))?;
            }
            _ => return Err(ArtifactError::Format("unsupported artifact version")),
        }
        if !FRAME_SIZE_RANGE.contains(&self.frame_size) {
            return Err(ArtifactError::Format("frame size out of range"));
        }
        if self.context.len() > MAX_CONTEXT_ENTRIES
            || self.context.iter().any(|(k, v)| k.is_empty() || k.len() > 255 || v.len() > 1024)
        {
            return Err(ArtifactError::Format("encryption context too large"));
        }
        if self.wrapped_keys.is_empty() || self.wrapped_keys.len() > MAX_WRAPPED_KEYS {
            return Err(ArtifactError::Format("an artifact holds 1 to 8 wrapped keys"));
        }
        for key in &self.wrapped_keys {
            if key.provider.is_empty()
                || key.provider.len() > 64
                || key.key_id.len() > 1024
                || key.ciphertext.is_empty()
                || key.ciphertext.len() > MAX_WRAPPED_CIPHERTEXT
            {
                return Err(ArtifactError::Format("wrapped key field out of range"));
            }
        }
        Ok(())
    }

    /// Parses a header from the start of `bytes`; returns it with its encoded length.
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), ArtifactError> {
        let mut r = Cursor { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(ArtifactError::Format("not a Sealgate sealed artifact (bad magic)"));
        }
        let version = r.u8()?;
        if !matches!(version, VERSION_1 | VERSION_2) {
            return Err(ArtifactError::Format("unsupported artifact version"));
        }
        if r.u16()? != SUITE_AES256GCM_HKDF_SHA256 {
            return Err(ArtifactError::Format("unsupported artifact suite"));
        }
        let message_id = r.array32()?;
        let frame_size = r.u32()?;
        let entries = usize::from(r.u16()?);
        if entries > MAX_CONTEXT_ENTRIES {
            return Err(ArtifactError::Format("too many encryption context entries"));
        }
        let mut context = EncryptionContext::new();
        for _ in 0..entries {
            let k = r.text16()?;
            let v = r.text16()?;
            // Keys in strictly increasing byte order, as the format says and `encode_fixed`
            // writes them: the header MAC and every frame's AAD are computed over that
            // encoding, so a header whose entries were reordered must not parse (it would
            // otherwise authenticate as the sorted one; found by the `artifact` fuzz target).
            match context.last_key_value() {
                Some((last, _)) if *last == k => {
                    return Err(ArtifactError::Format("duplicate encryption context key"));
                }
                Some((last, _)) if last.as_bytes() > k.as_bytes() => {
                    return Err(ArtifactError::Format("encryption context keys out of order"));
                }
                _ => {}
            }
            context.insert(k, v);
        }
        let mut files = Vec::new();
        if version >= VERSION_2 {
            let count = usize::from(r.u16()?);
            if count == 0 || count > MAX_FILES {
                return Err(ArtifactError::Format("a version-2 artifact lists 1 to 256 files"));
            }
            for _ in 0..count {
                let name = r.text16()?;
                let size = r.u64()?;
                let sha256 = r.array32()?;
                files.push(FileEntry { name, size, sha256 });
            }
        }
        let commitment = r.array32()?;
        let count = usize::from(r.u8()?);
        let mut wrapped_keys = Vec::with_capacity(count.min(MAX_WRAPPED_KEYS));
        for _ in 0..count {
            let plen = usize::from(r.u8()?);
            let provider = r.text(plen)?;
            let kid_len = usize::from(r.u16()?);
            let key_id = r.text(kid_len)?;
            let ct_len = usize::from(r.u16()?);
            let ciphertext = r.take(ct_len)?.to_vec();
            wrapped_keys.push(WrappedKey { provider, key_id, ciphertext });
        }
        let header_mac = r.array32()?;
        let header = Header { version, message_id, frame_size, context, files, commitment, wrapped_keys, header_mac };
        header.validate()?;
        Ok((header, r.pos))
    }
}

/// Ciphertext length of a body holding `plaintext_len` bytes.
pub fn body_len(plaintext_len: u64, frame_size: u32) -> u64 {
    let frame = u64::from(frame_size);
    // Full frames, then a final frame of 0..=frame_size bytes; a plaintext that is an exact
    // multiple of the frame size ends with an empty final frame.
    let frames = plaintext_len / frame + 1;
    plaintext_len + frames * TAG_LEN as u64
}

/// Plaintext length of a body of `body_len` ciphertext bytes, or an error if no plaintext
/// length produces that body length (a truncated or padded file).
pub fn plaintext_len(body_len: u64, frame_size: u32) -> Result<u64, ArtifactError> {
    let full = u64::from(frame_size) + TAG_LEN as u64;
    let full_frames = body_len / full;
    let last = body_len % full;
    if last < TAG_LEN as u64 {
        return Err(ArtifactError::Truncated);
    }
    Ok(full_frames * u64::from(frame_size) + (last - TAG_LEN as u64))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ArtifactError> {
        let end = self.pos.checked_add(n).ok_or(ArtifactError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(ArtifactError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, ArtifactError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    fn u16(&mut self) -> Result<u16, ArtifactError> {
        let b: [u8; 2] = self.take(2)?.try_into().map_err(|_| ArtifactError::Truncated)?;
        Ok(u16::from_be_bytes(b))
    }
    fn u32(&mut self) -> Result<u32, ArtifactError> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| ArtifactError::Truncated)?;
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, ArtifactError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| ArtifactError::Truncated)?;
        Ok(u64::from_be_bytes(b))
    }
    fn array32(&mut self) -> Result<[u8; 32], ArtifactError> {
        self.take(32)?.try_into().map_err(|_| ArtifactError::Truncated)
    }
    fn text(&mut self, n: usize) -> Result<String, ArtifactError> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| ArtifactError::Format("text field is not UTF-8"))
    }
    fn text16(&mut self) -> Result<String, ArtifactError> {
        let n = usize::from(self.u16()?);
        self.text(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_length_arithmetic_round_trips() {
        for frame in [4096u32, 65536] {
            for len in [0u64, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 7, 1 << 20] {
                let body = body_len(len, frame);
                assert_eq!(plaintext_len(body, frame).unwrap(), len, "len {len} frame {frame}");
            }
        }
        // A body cut inside a tag cannot be any plaintext length.
        assert!(plaintext_len(4096 + 16 + 5, 4096).is_err());
        assert!(plaintext_len(3, 4096).is_err());
    }

    #[test]
    fn file_names_stay_inside_the_model_folder() {
        for good in ["w.bin", "weights/layer1.bin", "a.b/c..d", "x"] {
            assert_eq!(check_file_name(good), Ok(()), "{good}");
        }
        for bad in ["", "/etc/passwd", "../w.bin", "a/../../w", "./w.bin", "a//b", "a/", "a\\b", "a\0b"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_file_name(&"a".repeat(256)).is_err());
    }

    fn header_with(files: Vec<FileEntry>) -> Header {
        let mut context = EncryptionContext::new();
        context.insert("model".into(), "m".into());
        Header {
            version: VERSION_2,
            message_id: [1; 32],
            frame_size: 4096,
            context,
            files,
            commitment: [2; 32],
            wrapped_keys: vec![WrappedKey { provider: "local".into(), key_id: "k".into(), ciphertext: vec![3; 40] }],
            header_mac: [4; 32],
        }
    }

    #[test]
    fn version_2_headers_round_trip_and_refuse_bad_file_lists() {
        let file = |name: &str, size| FileEntry { name: name.into(), size, sha256: [9; 32] };
        let header = header_with(vec![file("m.onnx", 10), file("weights/a.bin", 1 << 33)]);
        let bytes = header.encode();
        assert_eq!(Header::parse(&bytes).unwrap(), (header.clone(), bytes.len()));
        assert_eq!(header.listed_plaintext_len(), Some(10 + (1 << 33)));
        for (files, why) in [
            (vec![], "a version-2 artifact lists 1 to 256 files"),
            (vec![file("m.onnx", 1), file("m.onnx", 2)], "a file is listed twice"),
            (vec![file("m.onnx", 1), file("../x", 2)], "invalid file name"),
            (vec![file("m.onnx", u64::MAX), file("x", 2)], "file sizes overflow"),
        ] {
            let bad = header_with(files);
            assert_eq!(bad.validate().unwrap_err().to_string(), format!("malformed artifact header: {why}"));
            // A writer that skipped validation still cannot get such a header read.
            assert!(Header::parse(&bad.encode()).is_err(), "{why}");
        }
        // Version 1 lists no files; the same bytes with version 1 and a list are refused.
        let mut v1 = header.clone();
        v1.version = VERSION_1;
        assert!(v1.validate().is_err());
        v1.files.clear();
        let bytes = v1.encode();
        assert_eq!(Header::parse(&bytes).unwrap().0, v1);
        let mut unknown = bytes;
        unknown[8] = 3;
        assert!(Header::parse(&unknown).is_err());
    }

    #[test]
    fn context_entries_out_of_order_or_repeated_are_refused() {
        let mut header = header_with(vec![FileEntry { name: "m.onnx".into(), size: 1, sha256: [9; 32] }]);
        header.context.insert("created".into(), "1".into());
        let bytes = header.encode();
        assert_eq!(Header::parse(&bytes).unwrap().0, header);
        // The same two entries swapped on disk: "model" then "created" (the regression input
        // fuzz/regressions/artifact/context-keys-out-of-order is such a header, found by the
        // fuzzer). Parsing used to accept it, and the header MAC over the re-encoded, sorted
        // header still verified.
        let created = b"\x00\x07created\x00\x011";
        let model = b"\x00\x05model\x00\x01m";
        let at = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle).unwrap();
        let (c, m) = (at(created), at(model));
        assert_eq!(m, c + created.len());
        let mut swapped = bytes.clone();
        swapped[c..c + model.len()].copy_from_slice(model);
        swapped[c + model.len()..m + model.len()].copy_from_slice(created);
        assert_eq!(
            Header::parse(&swapped).unwrap_err().to_string(),
            "malformed artifact header: encryption context keys out of order"
        );
        // "created" replaced by a second "model" of the same encoded length.
        let mut repeated = bytes;
        repeated[c..c + created.len()].copy_from_slice(b"\x00\x05model\x00\x03mmm");
        assert_eq!(
            Header::parse(&repeated).unwrap_err().to_string(),
            "malformed artifact header: duplicate encryption context key"
        );
    }
}
