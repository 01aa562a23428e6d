//! Test vectors of the sealed artifact format, described in docs/ARTIFACT-FORMAT.md:
//! `vectors/artifact-v1.json` (one file) and `vectors/artifact-v2.json` (a model with two
//! external data files). Each committed artifact must open to the committed plaintext with
//! the committed customer-provided key, and each committed tampered variant must fail — in
//! this crate and in the independent Python decryptor.
//!
//! Regenerate (only when the format changes, which needs a new version):
//! `cargo test -p sealgate-models --test vectors -- --ignored regenerate`.

use std::io::Cursor;

use sealgate_models::artifact::{self, DigestCheck, Header, PlainFile, SealRequest, format};
use sealgate_models::kms::KmsProvider;
use sealgate_models::kms::customer::CustomerKey;
use serde::{Deserialize, Serialize};

const V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/artifact-v1.json");
const V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/artifact-v2.json");

#[derive(Serialize, Deserialize)]
struct Vectors {
    description: String,
    customer_key: String,
    /// Version 1: the one plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    /// Version 2: the files, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<VectorFile>,
    frame_size: u32,
    artifact: String,
    header_length: usize,
    tampered: Vec<Tampered>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct VectorFile {
    name: String,
    plaintext: String,
}

#[derive(Serialize, Deserialize)]
struct Tampered {
    what: String,
    artifact: String,
}

fn bytes(n: u32, seed: u32) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

fn plaintext() -> Vec<u8> {
    bytes(10_000, 0)
}

/// The v2 vector's files: a model and two external files; 5,000 + 3,000 + 4,192 bytes, so
/// frames of 4,096 bytes span both file boundaries.
fn v2_files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("vector.onnx".into(), bytes(5_000, 1)),
        ("weights/a.bin".into(), bytes(3_000, 2)),
        ("b.bin".into(), bytes(4_192, 3)),
    ]
}

fn key_bytes() -> Vec<u8> {
    (0u8..32).collect()
}

#[test]
#[ignore = "writes vectors/artifact-v{1,2}.json; run only when deliberately regenerating"]
fn regenerate() {
    let key = CustomerKey::from_bytes(&key_bytes()).unwrap();
    let request =
        SealRequest { model: "vector-model", version: "1", primary: (&key, ""), recovery: vec![], frame_size: 4096 };
    let full = 4096 + 16;

    let data = plaintext();
    let mut sealed = Vec::new();
    let one = [PlainFile { name: artifact::MODEL_FILE, bytes: &data }];
    let header = artifact::seal_files(&request, format::VERSION_1, &one, &mut sealed, |_| {}).unwrap();
    let header_length = header.encode().len();
    let mut tampered = common_tampering(&sealed, header_length, full);
    tampered.insert(
        0,
        Tampered { what: "bit flip in the encryption context (model name)".into(), artifact: flip(&sealed, 60) },
    );
    write(
        V1,
        Vectors {
            description: "Sealgate sealed artifact v1; the data key is wrapped by the customer-provided provider \
                      under customer_key (docs/ARTIFACT-FORMAT.md). plaintext is 10000 bytes, frame size 4096."
                .into(),
            customer_key: hex::encode(key_bytes()),
            plaintext: Some(hex::encode(&data)),
            files: vec![],
            frame_size: 4096,
            artifact: hex::encode(&sealed),
            header_length,
            tampered,
        },
    );

    let files = v2_files();
    let plain: Vec<PlainFile<'_>> = files.iter().map(|(n, b)| PlainFile { name: n, bytes: b }).collect();
    let mut sealed = Vec::new();
    let header = artifact::seal_files(&request, format::VERSION_2, &plain, &mut sealed, |_| {}).unwrap();
    let header_length = header.encode().len();
    let fixed = header.encode_fixed();
    // The files section ends right before the 32-byte commitment at the end of the fixed header.
    let files_end = fixed.len() - 32;
    let last_size = files_end - 32 - 8; // the last file's size field
    let mut tampered = common_tampering(&sealed, header_length, full);
    let mut edit = |what: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut bad = sealed.clone();
        f(&mut bad);
        tampered.push(Tampered { what: what.into(), artifact: hex::encode(bad) });
    };
    edit("the last file's listed size one byte larger", &|b| b[last_size + 7] ^= 0x01);
    edit("bit flip in the last file's listed SHA-256", &|b| b[files_end - 1] ^= 0x01);
    edit("bit flip in a file name", &|b| {
        let at = fixed.windows(5).position(|w| w == b"b.bin").unwrap();
        b[at] = b'c';
    });
    write(
        V2,
        Vectors {
            description:
                "Sealgate sealed artifact v2: a model and two external data files in one artifact; the data key \
                      is wrapped by the customer-provided provider under customer_key (docs/ARTIFACT-FORMAT.md). \
                      Files of 5000, 3000 and 4192 bytes, frame size 4096 (frames span the file boundaries)."
                    .into(),
            customer_key: hex::encode(key_bytes()),
            plaintext: None,
            files: files.iter().map(|(n, b)| VectorFile { name: n.clone(), plaintext: hex::encode(b) }).collect(),
            frame_size: 4096,
            artifact: hex::encode(&sealed),
            header_length,
            tampered,
        },
    );
}

fn flip(sealed: &[u8], at: usize) -> String {
    let mut bad = sealed.to_vec();
    bad[at] ^= 0x01;
    hex::encode(bad)
}

/// The tampering both versions get: wrapped key, MAC, frames, final frame.
fn common_tampering(sealed: &[u8], header_length: usize, full: usize) -> Vec<Tampered> {
    let mut swapped = sealed[..header_length].to_vec();
    swapped.extend_from_slice(&sealed[header_length + full..header_length + 2 * full]);
    swapped.extend_from_slice(&sealed[header_length..header_length + full]);
    swapped.extend_from_slice(&sealed[header_length + 2 * full..]);
    vec![
        Tampered { what: "bit flip in the wrapped key".into(), artifact: flip(sealed, header_length - 40) },
        Tampered { what: "bit flip in the header MAC".into(), artifact: flip(sealed, header_length - 1) },
        Tampered { what: "bit flip in frame 0".into(), artifact: flip(sealed, header_length + 10) },
        Tampered { what: "bit flip in the final frame's tag".into(), artifact: flip(sealed, sealed.len() - 1) },
        Tampered { what: "frames 0 and 1 swapped".into(), artifact: hex::encode(&swapped) },
        Tampered { what: "final frame removed".into(), artifact: hex::encode(&sealed[..header_length + 2 * full]) },
    ]
}

fn write(path: &str, vectors: Vectors) {
    std::fs::write(path, serde_json::to_string_pretty(&vectors).unwrap() + "\n").unwrap();
}

fn load(path: &str) -> Vectors {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn open(key: &CustomerKey, bytes: &[u8]) -> Result<artifact::Opened, artifact::ArtifactError> {
    let set: &[&dyn KmsProvider] = &[key];
    artifact::open(&mut Cursor::new(bytes), bytes.len() as u64, set, DigestCheck::Recompute)
}

#[test]
fn the_v1_vector_opens_to_its_plaintext() {
    let v = load(V1);
    let key = CustomerKey::from_bytes(&hex::decode(&v.customer_key).unwrap()).unwrap();
    let bytes = hex::decode(&v.artifact).unwrap();
    let opened = open(&key, &bytes).unwrap();
    let expected = hex::decode(v.plaintext.as_ref().unwrap()).unwrap();
    assert_eq!(opened.plaintext.as_slice(), &expected[..]);
    assert_eq!(opened.model(), &expected[..]);
    assert!(opened.external_files().is_empty());
    assert_eq!(expected, plaintext());
    let (header, len) = Header::parse(&bytes).unwrap();
    assert_eq!((header.version, len), (1, v.header_length));
    assert_eq!(header.frame_size, v.frame_size);
    assert_eq!(header.context["model"], "vector-model");
}

#[test]
fn the_v2_vector_opens_to_its_files() {
    let v = load(V2);
    let key = CustomerKey::from_bytes(&hex::decode(&v.customer_key).unwrap()).unwrap();
    let bytes = hex::decode(&v.artifact).unwrap();
    let opened = open(&key, &bytes).unwrap();
    let expected = v2_files();
    assert_eq!(
        v.files,
        expected.iter().map(|(n, b)| VectorFile { name: n.clone(), plaintext: hex::encode(b) }).collect::<Vec<_>>()
    );
    assert_eq!(opened.model(), &expected[0].1[..]);
    let external: Vec<(String, Vec<u8>)> =
        opened.external_files().into_iter().map(|(n, b)| (n.to_owned(), b.to_vec())).collect();
    assert_eq!(external, expected[1..]);
    let (header, len) = Header::parse(&bytes).unwrap();
    assert_eq!((header.version, len), (2, v.header_length));
    assert_eq!(
        header.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["vector.onnx", "weights/a.bin", "b.bin"]
    );
    assert_eq!(header.context["sha256"], hex::encode(header.files[0].sha256));
    // The same bytes through the memory-mapped, parallel path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sealed");
    std::fs::write(&path, &bytes).unwrap();
    let set: &[&dyn KmsProvider] = &[&key];
    let mapped = artifact::open_file(&std::fs::File::open(&path).unwrap(), set, DigestCheck::Recompute).unwrap();
    assert_eq!(mapped.plaintext.as_slice(), opened.plaintext.as_slice());
}

#[test]
fn every_tampered_vector_fails() {
    for path in [V1, V2] {
        let v = load(path);
        let key = CustomerKey::from_bytes(&hex::decode(&v.customer_key).unwrap()).unwrap();
        assert!(v.tampered.len() >= 7);
        for t in &v.tampered {
            assert!(open(&key, &hex::decode(&t.artifact).unwrap()).is_err(), "{path}: {} was accepted", t.what);
        }
    }
}

/// The decryptor in tests/interop/open_sealed.py was written from docs/ARTIFACT-FORMAT.md
/// alone; it must open both vectors and refuse every tampered variant too.
#[test]
fn the_independent_python_decryptor_agrees() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for path in [V1, V2] {
        let out = std::process::Command::new("python3")
            .arg(format!("{root}/tests/interop/open_sealed.py"))
            .arg("--vectors")
            .arg(path)
            .output()
            .expect("python3 (cargo xtask setup installs the `cryptography` package)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{path}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.matches("ok: refused").count(), load(path).tampered.len(), "{stdout}");
    }
}
