//! Fuzz target `onnx_scan`: the scan of an ONNX model for external data before ONNX Runtime
//! sees it ([`crate::onnx_scan`]): [`scan`] and [`references`] over the protobuf wire
//! format, then the rules sealing and serving apply to what was found,
//! [`References::check_placement`], [`References::files`] and [`References::check_against`]
//! (with [`crate::artifact::format::check_file_name`] on every location).
//!
//! Asserted: `scan` and `references` agree, `files` lists each location once, and a model
//! that `check_against` accepts has every reference inside a main-graph initializer, named
//! among the files and within its size.

use super::Seed;
use crate::onnx_scan::{References, Scan, references, scan};

/// The size every named file is given for [`References::check_against`].
const FILE_SIZE: u64 = 4096;

/// The `onnx_scan` target. It holds nothing.
#[derive(Debug, Default)]
pub struct Target(());

impl Target {
    /// The target.
    pub fn new() -> Self {
        Self(())
    }

    /// Scans `data` as a serialized `ModelProto`; true when it could be scanned.
    pub fn run(&self, data: &[u8]) -> bool {
        let found = references(data);
        let verdict = scan(data);
        assert_eq!(
            verdict.as_ref().map(|s| *s == Scan::ExternalData).map_err(Clone::clone),
            found.as_ref().map(|r| !r.is_empty()).map_err(Clone::clone),
            "scan and references agree"
        );
        let Ok(found) = found else { return false };
        check_rules(&found);
        true
    }

    /// Real models: the demo models (no external data), the test models with external data
    /// (accepted, and refused for each reason sealing refuses one), and a minimal one.
    pub fn seeds(&self) -> Vec<Seed> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = [
            ("demo-breast-cancer", root.join("demo/breast-cancer.onnx")),
            ("gather", root.join("../tests/models/gather.onnx")),
            ("external-mlp", root.join("../tests/models/external/mlp/mlp.onnx")),
            ("external-function-attr", root.join("../tests/models/external/function-attr/model.onnx")),
            ("external-escape-absolute", root.join("../tests/models/external/escape-absolute/model.onnx")),
            ("external-escape-dotdot", root.join("../tests/models/external/escape-dotdot/model.onnx")),
            ("external-missing", root.join("../tests/models/external/missing/model.onnx")),
            ("external-symlink", root.join("../tests/models/external/symlink/model.onnx")),
        ];
        let mut seeds: Vec<Seed> =
            files.into_iter().filter_map(|(name, path)| Some((name.to_owned(), std::fs::read(path).ok()?))).collect();
        seeds.push(("minimal-external-initializer".into(), minimal_external_model()));
        seeds
    }
}

/// The rules applied to the references, and what must hold when they pass.
fn check_rules(found: &References) {
    let placement = found.check_placement();
    let files = found.files();
    for (i, file) in files.iter().enumerate() {
        assert!(!files.iter().skip(i + 1).any(|other| other == file), "files lists each location once");
    }
    let sized: Vec<(&str, u64)> = files.iter().map(|&name| (name, FILE_SIZE)).collect();
    if found.check_against(&sized).is_ok() {
        assert!(placement.is_ok(), "check_against applies the placement rule");
        for t in &found.initializers {
            assert!(crate::artifact::format::check_file_name(&t.location).is_ok(), "a valid location");
            let end = t.length.map_or(Some(t.offset), |len| t.offset.checked_add(len));
            assert!(end.is_some_and(|end| end <= FILE_SIZE), "a reference within its file");
        }
    }
    let _ = found.check_against(&[("weights.bin", FILE_SIZE)]);
    let _ = found.check_against(&[]);
}

/// A `ModelProto` whose graph has one initializer stored in `weights.bin` (offset 0, length
/// 16), written field by field in the protobuf wire format.
fn minimal_external_model() -> Vec<u8> {
    fn field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let entry = |key: &str, value: &str| {
        let mut e = Vec::new();
        field(1, key.as_bytes(), &mut e);
        field(2, value.as_bytes(), &mut e);
        e
    };
    let mut tensor = Vec::new();
    varint(1 << 3, &mut tensor); // dims: [4]
    varint(4, &mut tensor);
    varint(2 << 3, &mut tensor); // data_type: FLOAT
    varint(1, &mut tensor);
    field(8, b"w", &mut tensor); // name
    for (k, v) in [("location", "weights.bin"), ("offset", "0"), ("length", "16")] {
        field(13, &entry(k, v), &mut tensor); // external_data
    }
    varint(14 << 3, &mut tensor); // data_location: EXTERNAL
    varint(1, &mut tensor);
    let mut graph = Vec::new();
    field(5, &tensor, &mut graph); // initializer
    field(2, b"g", &mut graph); // name
    let mut model = Vec::new();
    varint(1 << 3, &mut model); // ir_version
    varint(8, &mut model);
    field(7, &graph, &mut model); // graph
    model
}
