//! Fuzz target `artifact`: a sealed artifact as the gateway reads it from disk or memory
//! (docs/ARTIFACT-FORMAT.md). The header parser [`Header::parse`], then the whole open path
//! with a customer-provided key: key unwrapping, commitment and header MAC, the frame layout
//! and the decryption of every frame ([`artifact::open_slice`], which decrypts straight from
//! memory, and the sequential [`artifact::open`] over a reader), and what is read out of an
//! opened artifact ([`Opened::model`], [`Opened::external_files`], [`Opened::model_digest`]).
//!
//! Each input is tried twice: as a whole artifact, and as the body after the fixed header of
//! the committed version-1 test vector (`vectors/artifact-v1.json`), so that every input
//! reaches the frame layout and decryption, which no forged header can (the header MAC needs
//! the data key).
//!
//! Asserted: a parsed header encodes back to the bytes it was parsed from (the MAC and every
//! frame's AAD are computed over that encoding), the two open paths agree, and an opened
//! artifact's files add up to its plaintext.

use std::io::Cursor;

use super::Seed;
use crate::artifact::{self, DigestCheck, Header, Opened};
use crate::kms::KmsProvider;
use crate::kms::customer::CustomerKey;

/// The committed test vectors: their artifacts open with their customer key.
const VECTOR_V1: &str = include_str!("../../vectors/artifact-v1.json");
const VECTOR_V2: &str = include_str!("../../vectors/artifact-v2.json");

/// The `artifact` target: the vectors' customer key and the version-1 vector's header.
pub struct Target {
    key: CustomerKey,
    v1_header: Vec<u8>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("v1_header", &self.v1_header.len()).finish_non_exhaustive()
    }
}

/// The parts of a test vector the target uses.
struct Vector {
    customer_key: Vec<u8>,
    artifact: Vec<u8>,
    header_length: usize,
    tampered: Vec<(String, Vec<u8>)>,
}

fn vector(json: &str) -> Result<Vector, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let hex_of = |v: &serde_json::Value| hex::decode(v.as_str().unwrap_or_default()).map_err(|e| e.to_string());
    let tampered = value["tampered"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| Ok((t["what"].as_str().unwrap_or_default().to_owned(), hex_of(&t["artifact"])?)))
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Vector {
        customer_key: hex_of(&value["customer_key"])?,
        artifact: hex_of(&value["artifact"])?,
        header_length: value["header_length"].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0),
        tampered,
    })
}

impl Target {
    /// Reads the committed test vectors' key and version-1 header.
    pub fn new() -> Result<Self, String> {
        let v1 = vector(VECTOR_V1)?;
        let key = CustomerKey::from_bytes(&v1.customer_key).map_err(|e| e.to_string())?;
        let v1_header = v1.artifact.get(..v1.header_length).ok_or("the v1 vector's header length")?.to_vec();
        Ok(Self { key, v1_header })
    }

    /// Opens `data` as an artifact, and as the body of the fixed version-1 header; true when
    /// either opened.
    pub fn run(&self, data: &[u8]) -> bool {
        let whole = self.open(data);
        let mut with_header = self.v1_header.clone();
        with_header.extend_from_slice(data);
        self.open(&with_header) || whole
    }

    fn open(&self, data: &[u8]) -> bool {
        if let Ok((header, used)) = Header::parse(data) {
            let encoded = header.encode();
            assert_eq!(Some(encoded.as_slice()), data.get(..used), "a parsed header encodes to its own bytes");
            assert!(matches!(Header::parse(&encoded), Ok((ref again, n)) if *again == header && n == used));
        }
        let keys: [&dyn KmsProvider; 1] = [&self.key];
        let recomputed = artifact::open_slice(data, &keys[..], DigestCheck::Recompute);
        let streamed = artifact::open(&mut Cursor::new(data), data.len() as u64, &keys[..], DigestCheck::TrustAead);
        // Recomputing the digests checks more than trusting the AEAD, never less.
        if recomputed.is_ok() {
            assert!(streamed.is_ok(), "an artifact that opens from memory opens from a reader");
        }
        if let (Ok(a), Ok(b)) = (&recomputed, &streamed) {
            assert!(a.header == b.header && a.plaintext.as_slice() == b.plaintext.as_slice(), "the open paths agree");
        }
        match recomputed.or(streamed) {
            Ok(opened) => {
                check_opened(&opened);
                true
            }
            Err(_) => false,
        }
    }

    /// The committed vectors (versions 1 and 2, which open) and their tampered variants
    /// (which must not), whole; and the version-1 vector's body, which opens after the fixed
    /// header.
    pub fn seeds(&self) -> Vec<Seed> {
        let mut seeds = Vec::new();
        for (version, json) in [("v1", VECTOR_V1), ("v2", VECTOR_V2)] {
            let Ok(v) = vector(json) else { continue };
            if version == "v1" {
                seeds.push(("v1-body".into(), v.artifact.get(v.header_length..).unwrap_or_default().to_vec()));
            }
            seeds.push((format!("{version}-artifact"), v.artifact));
            for (what, bytes) in v.tampered {
                let name: String = what
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
                    .collect();
                seeds.push((format!("{version}-tampered-{name}"), bytes));
            }
        }
        seeds
    }
}

/// What the gateway reads out of an opened artifact.
fn check_opened(opened: &Opened) {
    let model = opened.model();
    let files = opened.external_files();
    let _ = opened.model_digest();
    let total = model.len() + files.iter().map(|(_, bytes)| bytes.len()).sum::<usize>();
    assert_eq!(total, opened.plaintext.as_slice().len(), "the files add up to the plaintext");
    assert_eq!(files.len(), opened.header.files.len().saturating_sub(1), "one slice per external file");
}
