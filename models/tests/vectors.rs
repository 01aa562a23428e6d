//! Test vectors of the sealed artifact format (`vectors/artifact-v1.json`, described in
//! docs/ARTIFACT-FORMAT.md): the committed artifact must open to the committed plaintext with
//! the committed customer-provided key, and each committed tampered variant must fail.
//!
//! Regenerate (only when the format changes, which needs a new version):
//! `cargo test -p sealgate-models --test vectors -- --ignored regenerate`.

use std::io::Cursor;

use sealgate_models::artifact::{self, DigestCheck, Header, SealRequest};
use sealgate_models::kms::KmsProvider;
use sealgate_models::kms::customer::CustomerKey;
use serde::{Deserialize, Serialize};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/artifact-v1.json");

#[derive(Serialize, Deserialize)]
struct Vectors {
    description: String,
    customer_key: String,
    plaintext: String,
    frame_size: u32,
    artifact: String,
    header_length: usize,
    tampered: Vec<Tampered>,
}

#[derive(Serialize, Deserialize)]
struct Tampered {
    what: String,
    artifact: String,
}

fn plaintext() -> Vec<u8> {
    (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

#[test]
#[ignore = "writes vectors/artifact-v1.json; run only when deliberately regenerating"]
fn regenerate() {
    let key_bytes: Vec<u8> = (0u8..32).collect();
    let key = CustomerKey::from_bytes(&key_bytes).unwrap();
    let data = plaintext();
    let mut sealed = Vec::new();
    let request =
        SealRequest { model: "vector-model", version: "1", primary: (&key, ""), recovery: vec![], frame_size: 4096 };
    let header = artifact::seal(&request, &data, &mut sealed, |_| {}).unwrap();
    let header_length = header.encode().len();
    let flip = |at: usize| {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        hex::encode(bad)
    };
    let full = 4096 + 16;
    let mut swapped = sealed[..header_length].to_vec();
    swapped.extend_from_slice(&sealed[header_length + full..header_length + 2 * full]);
    swapped.extend_from_slice(&sealed[header_length..header_length + full]);
    swapped.extend_from_slice(&sealed[header_length + 2 * full..]);
    let tampered = vec![
        Tampered { what: "bit flip in the encryption context (model name)".into(), artifact: flip(60) },
        Tampered { what: "bit flip in the wrapped key".into(), artifact: flip(header_length - 40) },
        Tampered { what: "bit flip in the header MAC".into(), artifact: flip(header_length - 1) },
        Tampered { what: "bit flip in frame 0".into(), artifact: flip(header_length + 10) },
        Tampered { what: "bit flip in the final frame's tag".into(), artifact: flip(sealed.len() - 1) },
        Tampered { what: "frames 0 and 1 swapped".into(), artifact: hex::encode(&swapped) },
        Tampered { what: "final frame removed".into(), artifact: hex::encode(&sealed[..header_length + 2 * full]) },
    ];
    let vectors = Vectors {
        description: "Sealgate sealed artifact v1; the data key is wrapped by the customer-provided provider \
                      under customer_key (docs/ARTIFACT-FORMAT.md). plaintext is 10000 bytes, frame size 4096."
            .into(),
        customer_key: hex::encode(&key_bytes),
        plaintext: hex::encode(&data),
        frame_size: 4096,
        artifact: hex::encode(&sealed),
        header_length,
        tampered,
    };
    std::fs::write(PATH, serde_json::to_string_pretty(&vectors).unwrap() + "\n").unwrap();
}

fn load() -> Vectors {
    serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap()
}

fn open(key: &CustomerKey, bytes: &[u8]) -> Result<artifact::Opened, artifact::ArtifactError> {
    let set: &[&dyn KmsProvider] = &[key];
    artifact::open(&mut Cursor::new(bytes), bytes.len() as u64, set, DigestCheck::Recompute)
}

#[test]
fn the_vector_opens_to_its_plaintext() {
    let v = load();
    let key = CustomerKey::from_bytes(&hex::decode(&v.customer_key).unwrap()).unwrap();
    let bytes = hex::decode(&v.artifact).unwrap();
    let opened = open(&key, &bytes).unwrap();
    assert_eq!(opened.plaintext.as_slice(), &hex::decode(&v.plaintext).unwrap()[..]);
    assert_eq!(hex::decode(&v.plaintext).unwrap(), plaintext());
    let (header, len) = Header::parse(&bytes).unwrap();
    assert_eq!(len, v.header_length);
    assert_eq!(header.frame_size, v.frame_size);
    assert_eq!(header.context["model"], "vector-model");
}

#[test]
fn every_tampered_vector_fails() {
    let v = load();
    let key = CustomerKey::from_bytes(&hex::decode(&v.customer_key).unwrap()).unwrap();
    assert!(v.tampered.len() >= 7);
    for t in &v.tampered {
        assert!(open(&key, &hex::decode(&t.artifact).unwrap()).is_err(), "{} was accepted", t.what);
    }
}

/// The decryptor in tests/interop/open_sealed.py was written from docs/ARTIFACT-FORMAT.md
/// alone; it must open the vector and refuse every tampered variant too.
#[test]
fn the_independent_python_decryptor_agrees() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/tests/interop/open_sealed.py"))
        .arg("--vectors")
        .arg(PATH)
        .output()
        .expect("python3 (cargo xtask setup installs the `cryptography` package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("ok: refused").count(), load().tampered.len(), "{stdout}");
}
