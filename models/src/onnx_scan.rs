//! Finding references to external data files in an ONNX model, before ONNX Runtime sees it.
//!
//! An ONNX model loaded from memory that stores tensors "externally" makes ONNX Runtime open
//! files named by the model, relative to the working directory: a sealed artifact could
//! then pull unencrypted weights (or any readable file) from disk. The gateway refuses such
//! models. This is a small reader of the protobuf wire format that walks every place a
//! tensor can sit (initializers, sparse initializers, node attributes, subgraphs, functions,
//! training info) and looks for `TensorProto.data_location = EXTERNAL` or
//! `TensorProto.external_data` entries. It reads untrusted bytes: bounded recursion, no
//! panics, malformed input is an error.

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// No tensor refers to external data.
    SelfContained,
    /// At least one tensor stores its data in an external file.
    ExternalData,
}

/// Why the bytes could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid ONNX model: {0}")]
pub struct ScanError(&'static str);

/// One tensor whose data lives in an external file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTensor {
    /// The tensor's name (empty when the model gives none).
    pub tensor: String,
    /// The `location` entry, exactly as written (empty when missing).
    pub location: String,
    /// The `offset` entry (0 when absent).
    pub offset: u64,
    /// The `length` entry, if any.
    pub length: Option<u64>,
}

/// Every reference to external data in a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// External tensors among the main graph's initializers: the only place the gateway
    /// accepts them (ONNX Runtime is handed those files from memory).
    pub initializers: Vec<ExternalTensor>,
    /// External tensors anywhere else (node attributes, function attribute defaults, sparse
    /// initializers, subgraphs, training info), with where each sits. Refused: nothing would
    /// supply their data but a file on disk.
    pub elsewhere: Vec<(&'static str, ExternalTensor)>,
}

impl References {
    /// True when no tensor refers to external data.
    pub fn is_empty(&self) -> bool {
        self.initializers.is_empty() && self.elsewhere.is_empty()
    }

    /// The distinct files the initializers name, in first-reference order.
    pub fn files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = Vec::new();
        for t in &self.initializers {
            if !files.contains(&t.location.as_str()) {
                files.push(&t.location);
            }
        }
        files
    }

    /// Refuses an external tensor anywhere but among the main graph's initializers.
    pub fn check_placement(&self) -> Result<(), String> {
        match self.elsewhere.first() {
            Some((place, t)) => Err(format!(
                "tensor '{}' in {place} stores its data in external file '{}'; external data is accepted only \
                 for initializers of the main graph",
                crate::tensor::echo(&t.tensor),
                crate::tensor::echo(&t.location)
            )),
            None => Ok(()),
        }
    }

    /// Checks the references against the external files that will be supplied (name and
    /// size): every reference sits in a main-graph initializer, names a valid relative
    /// location among `files` and stays inside it; and every file is referenced. The one
    /// rule both sealing and serving apply. The error names the tensor and the file, never
    /// any data.
    pub fn check_against(&self, files: &[(&str, u64)]) -> Result<(), String> {
        self.check_placement()?;
        for t in &self.initializers {
            let name = crate::tensor::echo(&t.tensor);
            if t.location.is_empty() {
                return Err(format!("tensor '{name}' is marked external but names no location"));
            }
            let location = crate::tensor::echo(&t.location);
            crate::artifact::format::check_file_name(&t.location).map_err(|why| {
                format!("tensor '{name}' names external file '{location}', which is {why}: external files must lie inside the model's folder")
            })?;
            let size = files.iter().find(|(n, _)| *n == t.location).map(|(_, s)| *s).ok_or_else(|| {
                format!("tensor '{name}' needs external file '{location}', which the artifact does not hold")
            })?;
            let end = t.length.map_or(Some(t.offset), |len| t.offset.checked_add(len));
            if end.is_none_or(|end| end > size || t.offset > size) {
                return Err(format!("tensor '{name}' reads past the end of external file '{location}' ({size} bytes)"));
            }
        }
        if let Some((unused, _)) = files.iter().find(|(n, _)| !self.initializers.iter().any(|t| t.location == *n)) {
            return Err(format!("external file '{}' is not referenced by the model", crate::tensor::echo(unused)));
        }
        Ok(())
    }
}

/// Reads an ONNX model from disk with every external data file it references, for sealing:
/// file 0 is the model under its base name, then each referenced file under its exact
/// `location`, in first-reference order. A location must be a plain relative path inside
/// the model's folder ([`crate::artifact::format::check_file_name`]: no `..`, not absolute)
/// and, resolved, must still lie inside that folder (a symbolic link that leads out is
/// refused) and be a regular file; every reference must pass
/// [`References::check_against`]. Errors name the model and the file.
pub fn read_with_external_files(model: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let shown = model.display();
    let onnx = std::fs::read(model).map_err(|e| format!("reading {shown}: {e}"))?;
    let base = model.file_name().and_then(|n| n.to_str()).unwrap_or(crate::artifact::MODEL_FILE).to_owned();
    let refs = references(&onnx).map_err(|e| format!("{shown}: {e}"))?;
    refs.check_placement().map_err(|e| format!("{shown}: {e}"))?;
    let folder = model.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let root = std::fs::canonicalize(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let mut files = vec![(base, onnx)];
    let mut sizes = Vec::new();
    for location in refs.files() {
        let shown_location = crate::tensor::echo(location);
        crate::artifact::format::check_file_name(location).map_err(|why| {
            format!("{shown}: external data file '{shown_location}' is {why}: external files must lie inside the model's folder")
        })?;
        let path = folder.join(location);
        let resolved = std::fs::canonicalize(&path).map_err(|e| {
            format!("{shown}: external data file '{shown_location}' cannot be read ({}: {e})", path.display())
        })?;
        if !resolved.starts_with(&root) {
            return Err(format!(
                "{shown}: external data file '{shown_location}' leads out of the model's folder (a symbolic link to {}): \
                 external files must lie inside it",
                resolved.display()
            ));
        }
        if !resolved.is_file() {
            return Err(format!("{shown}: external data file '{shown_location}' is not a regular file"));
        }
        let bytes = std::fs::read(&resolved).map_err(|e| format!("reading {}: {e}", path.display()))?;
        sizes.push((location, bytes.len() as u64));
        files.push((location.to_owned(), bytes));
    }
    refs.check_against(&sizes).map_err(|e| format!("{shown}: {e}"))?;
    Ok(files)
}

const MAX_DEPTH: usize = 64;
/// Most external tensors recorded (a model with more is refused as malformed).
const MAX_REFERENCES: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Message {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    SparseTensor,
    Function,
    TrainingInfo,
    StringEntry,
}

/// Where a message sits: whether a tensor here is a main-graph initializer, and a
/// description of the place for errors.
#[derive(Clone, Copy)]
struct Place {
    main_initializer: bool,
    main_graph: bool,
    what: &'static str,
}

/// Length-delimited fields that hold nested messages we must visit, per message type
/// (field numbers from onnx.proto3), and where their content then sits.
fn child(message: Message, field: u64, at: Place) -> Option<(Message, Place)> {
    use Message::*;
    let place = |what| Place { main_initializer: false, main_graph: false, what };
    Some(match (message, field) {
        (Model, 7) => (Graph, Place { main_initializer: false, main_graph: true, what: "the main graph" }),
        (Model, 25) => (Function, place("a model-local function")),
        (Model, 20) => (TrainingInfo, place("training info")),
        (TrainingInfo, 1 | 2) => (Graph, place("a training graph")),
        (Graph, 1) => (Node, place("a node attribute")),
        (Graph, 5) => {
            (Tensor, Place { main_initializer: at.main_graph, main_graph: false, what: "a subgraph initializer" })
        }
        (Graph, 15) => (SparseTensor, place("a sparse initializer")),
        (Node, 5) => (Attribute, at),
        (Function, 7) => (Node, place("a function's node attribute")),
        // FunctionProto.attribute_proto: attribute defaults, tensors included.
        (Function, 11) => (Attribute, place("a function attribute default")),
        (Attribute, 5 | 10) => (Tensor, at),
        (Attribute, 6 | 11) => (Graph, place("a subgraph")),
        (Attribute, 22 | 23) => (SparseTensor, at),
        (SparseTensor, 1 | 2) => (Tensor, Place { main_initializer: false, ..at }),
        (Tensor, 13) => (StringEntry, at),
        _ => return None,
    })
}

/// Scans a serialized `ModelProto`.
pub fn scan(model: &[u8]) -> Result<Scan, ScanError> {
    if references(model)?.is_empty() { Ok(Scan::SelfContained) } else { Ok(Scan::ExternalData) }
}

/// Every external-data reference of a serialized `ModelProto`, and where each sits.
pub fn references(model: &[u8]) -> Result<References, ScanError> {
    let mut found = References::default();
    let top = Place { main_initializer: false, main_graph: false, what: "the model" };
    visit(model, Message::Model, top, 0, &mut found, &mut None)?;
    Ok(found)
}

fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, ScanError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos).ok_or(ScanError("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ScanError("varint too long"))
}

/// What a `TensorProto` says about its storage, gathered while it is visited.
#[derive(Default)]
struct TensorFields {
    name: String,
    external: bool,
    location: String,
    offset: u64,
    length: Option<u64>,
}

/// Visits one message; tensors record themselves into `found`. `tensor` is the tensor being
/// visited when `message` is one of its `external_data` entries.
fn visit(
    bytes: &[u8],
    message: Message,
    at: Place,
    depth: usize,
    found: &mut References,
    tensor: &mut Option<TensorFields>,
) -> Result<(), ScanError> {
    if depth > MAX_DEPTH {
        return Err(ScanError("nesting too deep"));
    }
    let mut own = matches!(message, Message::Tensor).then(TensorFields::default);
    let mut entry: (Option<String>, Option<String>) = (None, None);
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = varint(bytes, &mut pos)?;
                // TensorProto.data_location = EXTERNAL (1).
                if let Some(t) = own.as_mut()
                    && field == 14
                    && value == 1
                {
                    t.external = true;
                }
            }
            1 => pos = pos.checked_add(8).filter(|&p| p <= bytes.len()).ok_or(ScanError("truncated fixed64"))?,
            5 => pos = pos.checked_add(4).filter(|&p| p <= bytes.len()).ok_or(ScanError("truncated fixed32"))?,
            2 => {
                let len = usize::try_from(varint(bytes, &mut pos)?).map_err(|_| ScanError("length overflow"))?;
                let end = pos.checked_add(len).filter(|&e| e <= bytes.len()).ok_or(ScanError("truncated field"))?;
                let inner = bytes.get(pos..end).ok_or(ScanError("truncated field"))?;
                let text = || String::from_utf8_lossy(inner).into_owned();
                match (message, field) {
                    (Message::Tensor, 8) => {
                        if let Some(t) = own.as_mut() {
                            t.name = text();
                        }
                    }
                    (Message::StringEntry, 1) => entry.0 = Some(text()),
                    (Message::StringEntry, 2) => entry.1 = Some(text()),
                    _ => {
                        if let Some((kind, place)) = child(message, field, at) {
                            // Any external_data entry makes the tensor external, whatever
                            // data_location says: ONNX Runtime would look for the file.
                            if let Some(t) = own.as_mut()
                                && field == 13
                            {
                                t.external = true;
                            }
                            visit(inner, kind, place, depth + 1, found, &mut own)?;
                        }
                    }
                }
                pos = end;
            }
            _ => return Err(ScanError("unsupported wire type")),
        }
    }
    if let (Message::StringEntry, Some(t)) = (message, tensor.as_mut()) {
        let value = entry.1.unwrap_or_default();
        match entry.0.as_deref() {
            Some("location") => t.location = value,
            Some("offset") => {
                t.offset = value.parse().map_err(|_| ScanError("external data offset is not a number"))?
            }
            Some("length") => {
                t.length = Some(value.parse().map_err(|_| ScanError("external data length is not a number"))?)
            }
            _ => {}
        }
    }
    if let Some(t) = own.filter(|t| t.external) {
        if found.initializers.len() + found.elsewhere.len() >= MAX_REFERENCES {
            return Err(ScanError("too many external tensors"));
        }
        let t = ExternalTensor { tensor: t.name, location: t.location, offset: t.offset, length: t.length };
        if at.main_initializer { found.initializers.push(t) } else { found.elsewhere.push((at.what, t)) }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(number << 3 | 2, &mut out);
        varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }

    fn model_with_initializer(tensor: &[u8]) -> Vec<u8> {
        field(7, &field(5, tensor))
    }

    #[test]
    fn external_initializers_are_found() {
        // TensorProto { name: "w", data_location: EXTERNAL }
        let external = [field(8, b"w"), vec![14 << 3, 1]].concat();
        assert_eq!(scan(&model_with_initializer(&external)), Ok(Scan::ExternalData));
        // TensorProto { external_data: [{key: "location", value: "w.bin"}] }
        let entry = [field(1, b"location"), field(2, b"w.bin")].concat();
        let listed = [field(8, b"w"), field(13, &entry)].concat();
        assert_eq!(scan(&model_with_initializer(&listed)), Ok(Scan::ExternalData));
        // The same inside a node attribute of a subgraph.
        let attribute = field(5, &external);
        let node = field(5, &attribute);
        let graph = field(1, &node);
        assert_eq!(scan(&field(7, &graph)), Ok(Scan::ExternalData));
    }

    #[test]
    fn self_contained_models_pass_and_garbage_fails() {
        let inline = [field(8, b"w"), vec![14 << 3, 0], field(9, &[0; 8])].concat();
        assert_eq!(scan(&model_with_initializer(&inline)), Ok(Scan::SelfContained));
        assert!(scan(&[0x3a, 0x10, 1]).is_err());
        assert!(scan(&[0xff; 20]).is_err());
        let mut deep = field(5, b"");
        for _ in 0..100 {
            deep = field(6, &field(5, &deep));
        }
        let _ = scan(&deep); // Must not overflow the stack, whatever it returns.
    }

    fn entry(key: &str, value: &str) -> Vec<u8> {
        field(13, &[field(1, key.as_bytes()), field(2, value.as_bytes())].concat())
    }

    fn external(name: &str, location: &str, offset: u64, length: u64) -> Vec<u8> {
        [
            field(8, name.as_bytes()),
            entry("location", location),
            entry("offset", &offset.to_string()),
            entry("length", &length.to_string()),
            vec![14 << 3, 1],
        ]
        .concat()
    }

    #[test]
    fn references_record_initializers_and_where_others_sit() {
        let graph =
            [field(5, &external("w", "weights/a.bin", 64, 32)), field(5, &external("b", "b.bin", 0, 8))].concat();
        let refs = references(&field(7, &graph)).unwrap();
        assert!(refs.elsewhere.is_empty());
        assert_eq!(refs.files(), ["weights/a.bin", "b.bin"]);
        assert_eq!(
            refs.initializers[0],
            ExternalTensor { tensor: "w".into(), location: "weights/a.bin".into(), offset: 64, length: Some(32) }
        );
        assert_eq!(refs.check_against(&[("weights/a.bin", 96), ("b.bin", 8)]), Ok(()));
        for (files, needle) in [
            (vec![("weights/a.bin", 95), ("b.bin", 8)], "reads past the end of external file 'weights/a.bin'"),
            (vec![("b.bin", 8)], "needs external file 'weights/a.bin', which the artifact does not hold"),
            (vec![("weights/a.bin", 96), ("b.bin", 8), ("c.bin", 1)], "external file 'c.bin' is not referenced"),
        ] {
            let e = refs.check_against(&files).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        // A FunctionProto attribute default (field 11) holding an external tensor.
        let attribute = [field(1, b"bias"), field(5, &external("bias", "fn.bin", 0, 4))].concat();
        let function = [field(1, b"f"), field(11, &attribute)].concat();
        let refs = references(&[field(7, &graph), field(25, &function)].concat()).unwrap();
        assert_eq!(refs.elsewhere[0].0, "a function attribute default");
        let e = refs.check_against(&[("weights/a.bin", 96), ("b.bin", 8)]).unwrap_err();
        assert!(e.contains("tensor 'bias' in a function attribute default"), "{e}");
        // A Constant node's value, a subgraph's initializer, a sparse initializer.
        let node = field(1, &field(5, &[field(1, b"value"), field(5, &external("c", "c.bin", 0, 4))].concat()));
        let sub = field(
            1,
            &field(5, &[field(1, b"then_branch"), field(6, &field(5, &external("s", "s.bin", 0, 4)))].concat()),
        );
        let sparse = field(15, &field(1, &external("v", "v.bin", 0, 4)));
        for (graph, place) in
            [(node, "a node attribute"), (sub, "a subgraph initializer"), (sparse, "a sparse initializer")]
        {
            assert_eq!(references(&field(7, &graph)).unwrap().elsewhere[0].0, place);
        }
        // Escaping locations are refused by the one file-name rule.
        for location in ["../w.bin", "/etc/passwd", "a/./b"] {
            let refs = references(&field(7, &field(5, &external("w", location, 0, 4)))).unwrap();
            let e = refs.check_against(&[(location, 4)]).unwrap_err();
            assert!(e.contains("must lie inside the model's folder"), "{e}");
        }
    }
}
