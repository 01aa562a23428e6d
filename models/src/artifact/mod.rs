//! Sealed model artifacts: envelope encryption of ONNX weights at rest.
//!
//! [`seal`] encrypts a model under a fresh data key that one or more KMS keys wrap;
//! [`open`] unwraps the data key and decrypts the body, frame by frame, straight into one
//! [`LockedBuffer`] — the only plaintext copy outside ONNX Runtime — which the caller wipes
//! as soon as the session is built. The format (see [`format`] and
//! docs/ARTIFACT-FORMAT.md) borrows from the AWS Encryption SDK v2 message format (key
//! commitment, framed body, final-frame marker) and Tink's streaming AEAD (per-artifact key
//! derivation, segment numbers in the nonce).
//!
//! Key schedule, with `dek` the 32-byte data key:
//!
//! ```text
//! prk        = HKDF-Extract(salt = message_id, ikm = dek)
//! body_key   = HKDF-Expand(prk, "sealgate v1 body key", 32)
//! mac_key    = HKDF-Expand(prk, "sealgate v1 header mac", 32)
//! commitment = HKDF-Expand(prk, "sealgate v1 key commitment", 32)
//! frame i:     nonce = 0x00000000 || u64 i;  aad = SHA-256(fixed header) || u64 i || final?1:0
//! ```

pub mod format;
mod locked;
mod mapped;

use std::io::{Read, Write};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use format::{FileEntry, Header};
pub use locked::LockedBuffer;

use crate::kms::{DataKey, EncryptionContext, KmsError, KmsProvider, WrappedKey};

/// Context key: the model name.
pub const CONTEXT_MODEL: &str = "model";
/// Context key: the model version.
pub const CONTEXT_VERSION: &str = "version";
/// Context key: hex SHA-256 of the plaintext model.
pub const CONTEXT_SHA256: &str = "sha256";
/// Context key: creation time, Unix seconds.
pub const CONTEXT_CREATED: &str = "created";

/// The name file 0 gets in a version-2 artifact sealed from bytes alone ([`seal`]).
pub const MODEL_FILE: &str = "model.onnx";

/// Default plaintext bytes per frame.
pub const DEFAULT_FRAME_SIZE: u32 = 1 << 20;

/// Why an artifact could not be sealed or opened. No variant carries key material or
/// plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The header is malformed; the text names the field.
    #[error("malformed artifact header: {0}")]
    Format(&'static str),
    /// The file ends early (or has bytes cut from the body).
    #[error("the artifact is truncated")]
    Truncated,
    /// No wrapped key could be unwrapped; one entry per wrapped key tried.
    #[error("no wrapped data key could be unwrapped: {}", .0.join("; "))]
    NoUsableKey(Vec<String>),
    /// The KMS failed in a way worth retrying (unreachable).
    #[error(transparent)]
    KmsUnavailable(KmsError),
    /// The KMS refused to generate or wrap a data key while sealing or re-wrapping.
    #[error("the KMS refused: {0}")]
    KmsRefused(KmsError),
    /// The unwrapped data key is not the one the artifact was sealed with.
    #[error("key commitment mismatch: the data key does not belong to this artifact")]
    Commitment,
    /// The header MAC does not verify: the header (or key section) was modified.
    #[error("the artifact header has been modified (header MAC mismatch)")]
    HeaderMac,
    /// A frame failed to authenticate: modified, reordered, swapped, duplicated or cut.
    #[error("frame {0} failed authentication (modified, reordered or truncated body)")]
    Frame(u64),
    /// The decrypted model does not match the digest in the header.
    #[error("the decrypted model's SHA-256 does not match the header")]
    Digest,
    /// A file of a version-2 artifact does not match its SHA-256 in the header.
    #[error("file '{0}' does not match its SHA-256 in the header")]
    FileDigest(String),
    /// The body does not hold the files the header lists.
    #[error(
        "the body holds {body} bytes of plaintext but the header lists {files} file(s) of {listed} bytes: \
         a file is missing, truncated or added"
    )]
    FileList {
        /// Plaintext bytes the body holds.
        body: u64,
        /// Files the header lists.
        files: usize,
        /// Their total size.
        listed: u64,
    },
    /// The artifact is not the model it is presented as.
    #[error("artifact identity mismatch: {0}")]
    Identity(String),
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The keys derived from a data key for one artifact.
struct Keys {
    body: LessSafeKey,
    mac: Zeroizing<[u8; 32]>,
    commitment: [u8; 32],
}

impl Keys {
    fn derive(dek: &DataKey, message_id: &[u8; 32]) -> Result<Self, ArtifactError> {
        let hk = Hkdf::<Sha256>::new(Some(message_id), dek.expose());
        let mut body = Zeroizing::new([0u8; 32]);
        let mut mac = Zeroizing::new([0u8; 32]);
        let mut commitment = [0u8; 32];
        let expand = |info: &[u8], out: &mut [u8]| hk.expand(info, out).map_err(|_| ArtifactError::Format("hkdf"));
        expand(b"sealgate v1 body key", body.as_mut())?;
        expand(b"sealgate v1 header mac", mac.as_mut())?;
        expand(b"sealgate v1 key commitment", &mut commitment)?;
        let unbound = UnboundKey::new(&AES_256_GCM, body.as_ref()).map_err(|_| ArtifactError::Format("body key"))?;
        Ok(Self { body: LessSafeKey::new(unbound), mac, commitment })
    }

    fn header_mac(&self, header: &Header) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(self.mac.as_ref()).expect("any key length");
        mac.update(&header.encode_fixed());
        mac.update(&header.encode_keys());
        mac.finalize().into_bytes().into()
    }
}

fn frame_nonce(seq: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

fn frame_aad(header_digest: &[u8; 32], seq: u64, last: bool) -> [u8; 41] {
    let mut aad = [0u8; 41];
    aad[..32].copy_from_slice(header_digest);
    aad[32..40].copy_from_slice(&seq.to_be_bytes());
    aad[40] = u8::from(last);
    aad
}

/// What to seal and under which keys.
pub struct SealRequest<'a> {
    /// Model name.
    pub model: &'a str,
    /// Model version.
    pub version: &'a str,
    /// The KMS that generates the data key, and the key it uses.
    pub primary: (&'a dyn KmsProvider, &'a str),
    /// Further KMS keys that also wrap the data key (recovery paths).
    pub recovery: Vec<(&'a dyn KmsProvider, &'a str)>,
    /// Plaintext bytes per frame.
    pub frame_size: u32,
}

/// One plaintext file to seal.
#[derive(Clone, Copy)]
pub struct PlainFile<'a> {
    /// Its name in the header (file 0: the ONNX file's base name; the others: the
    /// `location` the model references).
    pub name: &'a str,
    /// Its content.
    pub bytes: &'a [u8],
}

/// Seals one ONNX model held in `plaintext` as a version-2 artifact whose one file is
/// [`MODEL_FILE`], and writes it to `out`. `progress` is called with bytes encrypted so far.
pub fn seal(
    request: &SealRequest<'_>,
    plaintext: &[u8],
    out: &mut impl Write,
    progress: impl FnMut(u64),
) -> Result<Header, ArtifactError> {
    seal_files(request, format::VERSION, &[PlainFile { name: MODEL_FILE, bytes: plaintext }], out, progress)
}

/// Seals `files` (file 0 the ONNX model, then its external data files) as one artifact of
/// format `version` and writes it to `out`; version 1 holds exactly one file. Every file is
/// hashed first (the header commits to the digests), then the files are encrypted as one
/// framed stream. `progress` is called with bytes encrypted so far.
pub fn seal_files(
    request: &SealRequest<'_>,
    version: u8,
    files: &[PlainFile<'_>],
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<Header, ArtifactError> {
    if version == format::VERSION_1 && files.len() != 1 {
        return Err(ArtifactError::Format(
            "a version-1 artifact holds exactly one file: seal a model with external data as version 2",
        ));
    }
    let digests = sha256_all(files.iter().map(|f| f.bytes));
    let model_digest = digests.first().ok_or(ArtifactError::Format("nothing to seal"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut context = EncryptionContext::new();
    context.insert(CONTEXT_MODEL.into(), request.model.into());
    context.insert(CONTEXT_VERSION.into(), request.version.into());
    context.insert(CONTEXT_SHA256.into(), hex::encode(model_digest));
    context.insert(CONTEXT_CREATED.into(), now.to_string());
    let listed = if version == format::VERSION_1 {
        Vec::new()
    } else {
        files
            .iter()
            .zip(&digests)
            .map(|(f, d)| FileEntry { name: f.name.to_owned(), size: f.bytes.len() as u64, sha256: *d })
            .collect()
    };

    let (kms, key_id) = request.primary;
    let generated = kms.generate_data_key(key_id, &context).map_err(kms_error)?;
    let mut wrapped_keys = vec![generated.wrapped];
    for (kms, key_id) in &request.recovery {
        wrapped_keys.push(kms.wrap_data_key(key_id, &generated.plaintext, &context).map_err(kms_error)?);
    }

    let mut message_id = [0u8; 32];
    getrandom::fill(&mut message_id).map_err(|e| ArtifactError::Io(std::io::Error::other(e.to_string())))?;
    let keys = Keys::derive(&generated.plaintext, &message_id)?;
    let mut header = Header {
        version,
        message_id,
        frame_size: request.frame_size,
        context,
        files: listed,
        commitment: keys.commitment,
        wrapped_keys,
        header_mac: [0; 32],
    };
    header.validate()?;
    header.header_mac = keys.header_mac(&header);
    out.write_all(&header.encode())?;

    let digest: [u8; 32] = Sha256::digest(header.encode_fixed()).into();
    let frame = header.frame_size as usize;
    let mut buffer = Zeroizing::new(Vec::with_capacity(frame + format::TAG_LEN));
    // The files as one stream: frames span file boundaries.
    let mut parts = files.iter().map(|f| f.bytes);
    let mut current: &[u8] = &[];
    let mut seq = 0u64;
    let mut done = 0u64;
    loop {
        buffer.clear();
        while buffer.len() < frame {
            if current.is_empty() {
                match parts.next() {
                    Some(next) => current = next,
                    None => break,
                }
                continue;
            }
            let (now, rest) = current.split_at((frame - buffer.len()).min(current.len()));
            buffer.extend_from_slice(now);
            current = rest;
        }
        // The final frame is the first one shorter than a full frame; a plaintext that is an
        // exact multiple of the frame size ends with an empty final frame.
        let last = buffer.len() < frame;
        let len = buffer.len() as u64;
        let tag = keys
            .body
            .seal_in_place_separate_tag(frame_nonce(seq), Aad::from(frame_aad(&digest, seq, last)), &mut buffer)
            .map_err(|_| ArtifactError::Format("frame encryption"))?;
        out.write_all(&buffer)?;
        out.write_all(tag.as_ref())?;
        done += len;
        progress(done);
        if last {
            break;
        }
        seq += 1;
    }
    out.flush()?;
    Ok(header)
}

/// SHA-256 of each part, hashed on up to `available_parallelism` threads (a large model's
/// external files are hashed side by side).
fn sha256_all<'a>(parts: impl Iterator<Item = &'a [u8]>) -> Vec<[u8; 32]> {
    let parts: Vec<&[u8]> = parts.collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
    let hash = |bytes: &[u8]| -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    };
    if parts.len() < 2 || threads < 2 {
        return parts.into_iter().map(hash).collect();
    }
    let mut digests = vec![[0u8; 32]; parts.len()];
    let per_thread = parts.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (mine, out) in parts.chunks(per_thread).zip(digests.chunks_mut(per_thread)) {
            scope.spawn(move || {
                for (part, digest) in mine.iter().zip(out) {
                    *digest = hash(part);
                }
            });
        }
    });
    digests
}

fn kms_error(e: KmsError) -> ArtifactError {
    if e.is_transient() { ArtifactError::KmsUnavailable(e) } else { ArtifactError::KmsRefused(e) }
}

/// Finds a KMS provider by the name stored in a wrapped key.
pub trait KmsSet {
    /// The provider named `name`, if configured.
    fn provider(&self, name: &str) -> Option<&dyn KmsProvider>;
}

impl KmsSet for [&dyn KmsProvider] {
    fn provider(&self, name: &str) -> Option<&dyn KmsProvider> {
        self.iter().copied().find(|p| p.name() == name)
    }
}

/// An opened artifact: the header and the plaintext in locked memory.
pub struct Opened {
    /// The authenticated header.
    pub header: Header,
    /// The decrypted files, one after the other, wiped on drop.
    pub plaintext: LockedBuffer,
    /// Which wrapped key opened it (provider, key id).
    pub opened_with: (String, String),
}

impl Opened {
    /// The ONNX model: the whole plaintext (version 1) or file 0 (version 2).
    pub fn model(&self) -> &[u8] {
        let all = self.plaintext.as_slice();
        match self.header.files.first() {
            // The body's length was checked against the listed sizes when it was opened.
            Some(file) => all.get(..file.size as usize).unwrap_or_default(),
            None => all,
        }
    }

    /// The external data files (version 2, files 1..), by name, in header order.
    pub fn external_files(&self) -> Vec<(&str, &[u8])> {
        let all = self.plaintext.as_slice();
        let mut at = self.header.files.first().map_or(0, |f| f.size as usize);
        let mut files = Vec::with_capacity(self.header.files.len().saturating_sub(1));
        for file in self.header.files.iter().skip(1) {
            let end = at.saturating_add(file.size as usize);
            files.push((file.name.as_str(), all.get(at..end).unwrap_or_default()));
            at = end;
        }
        files
    }

    /// The identity a gateway records for this name and version: the SHA-256 of the ONNX
    /// file for a model in one file; for a model with external data, SHA-256 over
    /// `"sealgate model files"` and the header's files section (every name, size and
    /// SHA-256), so that changing any file changes it.
    pub fn model_digest(&self) -> Result<[u8; 32], ArtifactError> {
        model_digest(&self.header)
    }
}

/// [`Opened::model_digest`] from a header alone.
pub fn model_digest(header: &Header) -> Result<[u8; 32], ArtifactError> {
    if header.files.len() > 1 {
        let mut hash = Sha256::new();
        hash.update(b"sealgate model files");
        for file in &header.files {
            hash.update((file.name.len() as u16).to_be_bytes());
            hash.update(file.name.as_bytes());
            hash.update(file.size.to_be_bytes());
            hash.update(file.sha256);
        }
        return Ok(hash.finalize().into());
    }
    header
        .context
        .get(CONTEXT_SHA256)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|d| d.try_into().ok())
        .ok_or(ArtifactError::Format("malformed sha256 in the encryption context"))
}

/// How thoroughly [`open`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCheck {
    /// Also recompute the plaintext SHA-256 and compare it with the header (`verify`).
    Recompute,
    /// Rely on the AEAD: every frame is authenticated under a committed key bound to the
    /// header that holds the digest (`serve`, where load time matters).
    TrustAead,
}

/// Unwraps the data key with the first wrapped key whose provider is configured.
pub fn unwrap_data_key(
    kms: &(impl KmsSet + ?Sized),
    header: &Header,
) -> Result<(DataKey, (String, String)), ArtifactError> {
    let mut failures = Vec::new();
    for wrapped in &header.wrapped_keys {
        let Some(provider) = kms.provider(&wrapped.provider) else {
            failures.push(format!("{} key '{}': provider not configured", wrapped.provider, wrapped.key_id));
            continue;
        };
        match provider.decrypt_data_key(wrapped, &header.context) {
            Ok(dek) => return Ok((dek, (wrapped.provider.clone(), wrapped.key_id.clone()))),
            Err(e) if e.is_transient() && header.wrapped_keys.len() == 1 => {
                return Err(ArtifactError::KmsUnavailable(e));
            }
            Err(e) => failures.push(format!("{} key '{}': {e}", wrapped.provider, wrapped.key_id)),
        }
    }
    Err(ArtifactError::NoUsableKey(failures))
}

/// A header that passed every check, with what was read past it and the keys.
struct CheckedHeader {
    header: Header,
    /// Bytes read after the header (the start of the body).
    rest: Vec<u8>,
    dek: DataKey,
    keys: Keys,
    opened_with: (String, String),
}

/// Reads and checks the header, unwraps the data key, verifies commitment and header MAC.
fn open_header(reader: &mut impl Read, kms: &(impl KmsSet + ?Sized)) -> Result<CheckedHeader, ArtifactError> {
    // Headers are small; read a bounded prefix, parse, and keep what follows it.
    let mut prefix = Vec::with_capacity(64 << 10);
    reader.take(64 << 10).read_to_end(&mut prefix)?;
    let (header, used) = Header::parse(&prefix)?;
    let rest = prefix.split_off(used);
    let (dek, opened_with) = unwrap_data_key(kms, &header)?;
    let keys = Keys::derive(&dek, &header.message_id)?;
    if !bool::from(keys.commitment.ct_eq(&header.commitment)) {
        return Err(ArtifactError::Commitment);
    }
    if !bool::from(keys.header_mac(&header).ct_eq(&header.header_mac)) {
        return Err(ArtifactError::HeaderMac);
    }
    Ok(CheckedHeader { header, rest, dek, keys, opened_with })
}

/// Opens an artifact of `total_len` bytes from `reader`, decrypting into locked memory.
/// Sequential; [`open_file`] is the faster path for files.
pub fn open(
    reader: &mut impl Read,
    total_len: u64,
    kms: &(impl KmsSet + ?Sized),
    check: DigestCheck,
) -> Result<Opened, ArtifactError> {
    let checked = open_header(reader, kms)?;
    let layout = Layout::new(&checked.header, total_len)?;
    let mut buffer = LockedBuffer::new(layout.plain_len)?;
    let mut body = std::io::Cursor::new(&checked.rest).chain(reader);
    let mut source = Staged::new(&layout, |_, frame: &mut [u8]| body.read_exact(frame).map_err(read_error));
    layout.decrypt(&checked.keys, 0, layout.frames(), buffer.as_mut_slice(), &mut source, &|_| {})?;
    drop(source);
    // Anything after the final frame means the file is not what was sealed.
    if body.read(&mut [0u8; 1])? != 0 {
        return Err(ArtifactError::Format("data after the final frame"));
    }
    finish(checked, buffer, check)
}

/// Opens a sealed file, decrypting into locked memory with up to `available_parallelism`
/// threads: frames are independent, so each thread decrypts its own frames into its part of
/// the locked buffer. A file only its owner (or root) can write is decrypted straight out of
/// a read-only memory map of it (no copy at all); any other file is read frame by frame
/// into a staging buffer first, so that a writer racing the gateway cannot change a frame's
/// bytes between its authentication and its decryption (see `mapped`).
pub fn open_file(
    file: &std::fs::File,
    kms: &(impl KmsSet + ?Sized),
    check: DigestCheck,
) -> Result<Opened, ArtifactError> {
    open_file_with_progress(file, kms, check, &|_| {})
}

/// [`open_file`], calling `progress` (from the decryption threads) with the plaintext bytes
/// of each frame as it is decrypted.
pub fn open_file_with_progress(
    file: &std::fs::File,
    kms: &(impl KmsSet + ?Sized),
    check: DigestCheck,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Opened, ArtifactError> {
    use std::os::unix::fs::FileExt;

    let total_len = file.metadata()?.len();
    // Positional reads from offset 0: the file's own cursor may be anywhere and is shared.
    let mut reader = ReadAt { file, pos: 0 };
    let checked = open_header(&mut reader, kms)?;
    let layout = Layout::new(&checked.header, total_len)?;
    let mut buffer = LockedBuffer::new(layout.plain_len)?;
    match mapped::map_if_trusted(file, total_len)? {
        // Frames decrypted straight out of the page cache: no staging copy.
        Some(map) => layout.decrypt_parallel(&checked.keys, &mut buffer, progress, || InMemory(map.bytes()))?,
        None => layout.decrypt_parallel(&checked.keys, &mut buffer, progress, || {
            Staged::new(&layout, |seq, dst: &mut [u8]| {
                file.read_exact_at(dst, layout.frame_offset(seq)).map_err(read_error)
            })
        })?,
    }
    finish(checked, buffer, check)
}

/// Opens an artifact held in memory (for example fetched from an object store), decrypting
/// every frame straight from `bytes` into locked memory on up to four threads.
pub fn open_slice(bytes: &[u8], kms: &(impl KmsSet + ?Sized), check: DigestCheck) -> Result<Opened, ArtifactError> {
    let checked = open_header(&mut &bytes[..], kms)?;
    let layout = Layout::new(&checked.header, bytes.len() as u64)?;
    let mut buffer = LockedBuffer::new(layout.plain_len)?;
    layout.decrypt_parallel(&checked.keys, &mut buffer, &|_| {}, || InMemory(bytes))?;
    finish(checked, buffer, check)
}

/// `Read` over positional reads, leaving the file's shared cursor alone.
struct ReadAt<'a> {
    file: &'a std::fs::File,
    pos: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_error(e: std::io::Error) -> ArtifactError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ArtifactError::Truncated,
        _ => ArtifactError::Io(e),
    }
}

fn finish(checked: CheckedHeader, buffer: LockedBuffer, check: DigestCheck) -> Result<Opened, ArtifactError> {
    let CheckedHeader { header, opened_with, .. } = checked;
    // In version 2 the context's digest is file 0's, as listed (no hashing needed to check).
    if let Some(model) = header.files.first()
        && header.context.get(CONTEXT_SHA256).map(String::as_str) != Some(hex::encode(model.sha256).as_str())
    {
        return Err(ArtifactError::Digest);
    }
    let opened = Opened { header, plaintext: buffer, opened_with };
    if check == DigestCheck::Recompute {
        if opened.header.files.is_empty() {
            let actual = hex::encode(sha256_all(std::iter::once(opened.plaintext.as_slice()))[0]);
            if opened.header.context.get(CONTEXT_SHA256).map(String::as_str) != Some(actual.as_str()) {
                return Err(ArtifactError::Digest);
            }
        } else {
            let mut parts = vec![opened.model()];
            parts.extend(opened.external_files().into_iter().map(|(_, bytes)| bytes));
            for (file, actual) in opened.header.files.iter().zip(sha256_all(parts.into_iter())) {
                if actual != file.sha256 {
                    return Err(ArtifactError::FileDigest(file.name.clone()));
                }
            }
        }
    }
    Ok(opened)
}

/// Where frames are, for one artifact.
struct Layout {
    header_len: u64,
    frame_size: u32,
    plain_len: usize,
    digest: [u8; 32],
}

impl Layout {
    fn new(header: &Header, total_len: u64) -> Result<Self, ArtifactError> {
        let header_len = header.encode().len() as u64;
        let body_len = total_len.checked_sub(header_len).ok_or(ArtifactError::Truncated)?;
        let plain_len = format::plaintext_len(body_len, header.frame_size)?;
        if let Some(listed) = header.listed_plaintext_len()
            && listed != plain_len
        {
            return Err(ArtifactError::FileList { body: plain_len, files: header.files.len(), listed });
        }
        let plain_len = usize::try_from(plain_len).map_err(|_| ArtifactError::Format("artifact too large"))?;
        let digest = Sha256::digest(header.encode_fixed()).into();
        Ok(Self { header_len, frame_size: header.frame_size, plain_len, digest })
    }

    fn full_frame(&self) -> usize {
        self.frame_size as usize + format::TAG_LEN
    }

    /// Number of frames, the final one included.
    fn frames(&self) -> u64 {
        self.plain_len as u64 / u64::from(self.frame_size) + 1
    }

    fn frame_offset(&self, seq: u64) -> u64 {
        self.header_len + seq * self.full_frame() as u64
    }

    /// Decrypts the `count` consecutive frames from `first_seq` into `out`, which holds
    /// exactly their plaintext, taking each frame's ciphertext and tag from `source`.
    fn decrypt(
        &self,
        keys: &Keys,
        first_seq: u64,
        count: u64,
        out: &mut [u8],
        source: &mut impl FrameSource,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), ArtifactError> {
        let frame = self.frame_size as usize;
        let total_frames = self.frames();
        let mut offset = 0usize;
        for seq in first_seq..first_seq + count {
            let last = seq + 1 == total_frames;
            let len = if last { out.len() - offset } else { frame };
            let chunk = out.get_mut(offset..offset + len).ok_or(ArtifactError::Truncated)?;
            let sealed = source.frame(self, seq, len + format::TAG_LEN)?;
            let (ciphertext, tag) = sealed.split_at(len);
            let aad = Aad::from(frame_aad(&self.digest, seq, last));
            keys.body
                .open_separate_gather(frame_nonce(seq), aad, ciphertext, tag, chunk)
                .map_err(|_| ArtifactError::Frame(seq))?;
            offset += len;
            progress(len as u64);
        }
        Ok(())
    }

    /// Decrypts every frame into `buffer`, splitting the frames over up to one thread per core (at most 16)
    /// (frames are independent); each thread gets its own source from `source`.
    fn decrypt_parallel<S: FrameSource>(
        &self,
        keys: &Keys,
        buffer: &mut LockedBuffer,
        progress: &(dyn Fn(u64) + Sync),
        source: impl Fn() -> S + Sync,
    ) -> Result<(), ArtifactError> {
        let frames = self.frames();
        let threads = if self.plain_len < 8 << 20 {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16) as u64
        };
        let per_thread = frames.div_ceil(threads);
        let frame = u64::from(self.frame_size);
        let results: Vec<Result<(), ArtifactError>> = std::thread::scope(|scope| {
            let mut rest = buffer.as_mut_slice();
            let mut handles = Vec::new();
            let mut first = 0u64;
            while first < frames {
                let count = per_thread.min(frames - first);
                // Every frame but the very last is full; the final frame holds the remainder.
                let bytes = if first + count == frames { rest.len() } else { (count * frame) as usize };
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(bytes);
                rest = tail;
                let source = &source;
                handles.push(scope.spawn(move || self.decrypt(keys, first, count, mine, &mut source(), progress)));
                first += count;
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(ArtifactError::Format("decryption thread panicked"))))
                .collect()
        });
        // Report the first failing frame in order, so errors do not depend on thread timing.
        results.into_iter().collect::<Result<Vec<()>, _>>().map(drop)
    }
}

/// Where a frame's ciphertext and tag come from.
trait FrameSource {
    /// The `len` bytes (ciphertext and tag) of frame `seq`.
    fn frame(&mut self, layout: &Layout, seq: u64, len: usize) -> Result<&[u8], ArtifactError>;
}

/// Frames read into a frame-sized staging buffer (from a file or a stream).
struct Staged<F> {
    staging: Zeroizing<Vec<u8>>,
    read: F,
}

impl<F: FnMut(u64, &mut [u8]) -> Result<(), ArtifactError>> Staged<F> {
    fn new(layout: &Layout, read: F) -> Self {
        Self { staging: Zeroizing::new(vec![0u8; layout.full_frame()]), read }
    }
}

impl<F: FnMut(u64, &mut [u8]) -> Result<(), ArtifactError>> FrameSource for Staged<F> {
    fn frame(&mut self, _: &Layout, seq: u64, len: usize) -> Result<&[u8], ArtifactError> {
        let staged = self.staging.get_mut(..len).ok_or(ArtifactError::Truncated)?;
        (self.read)(seq, staged)?;
        Ok(staged)
    }
}

/// Frames taken straight from an artifact held in memory: no copy at all.
struct InMemory<'a>(&'a [u8]);

impl FrameSource for InMemory<'_> {
    fn frame(&mut self, layout: &Layout, seq: u64, len: usize) -> Result<&[u8], ArtifactError> {
        let start = usize::try_from(layout.frame_offset(seq)).map_err(|_| ArtifactError::Truncated)?;
        self.0.get(start..start + len).ok_or(ArtifactError::Truncated)
    }
}

/// Replaces the key section: every wrapped key is replaced by `new_keys` wrapping the same
/// data key, and the header MAC is recomputed. The body bytes are copied unchanged.
pub fn rewrap(
    reader: &mut impl Read,
    kms: &(impl KmsSet + ?Sized),
    new_keys: &[(&dyn KmsProvider, &str)],
    keep_existing: bool,
    out: &mut impl Write,
) -> Result<Header, ArtifactError> {
    let CheckedHeader { mut header, rest, dek, keys, .. } = open_header(reader, kms)?;
    let mut wrapped: Vec<WrappedKey> = if keep_existing { header.wrapped_keys.clone() } else { Vec::new() };
    for (provider, key_id) in new_keys {
        wrapped.push(provider.wrap_data_key(key_id, &dek, &header.context).map_err(kms_error)?);
    }
    header.wrapped_keys = wrapped;
    header.validate()?;
    header.header_mac = keys.header_mac(&header);
    out.write_all(&header.encode())?;
    out.write_all(&rest)?;
    std::io::copy(reader, out)?;
    out.flush()?;
    Ok(header)
}
