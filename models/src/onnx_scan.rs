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

const MAX_DEPTH: usize = 64;

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
}

/// Length-delimited fields that hold nested messages we must visit, per message type
/// (field numbers from onnx.proto3).
fn child(message: Message, field: u64) -> Option<Message> {
    use Message::*;
    match (message, field) {
        (Model, 7) => Some(Graph),
        (Model, 25) => Some(Function),
        (Model, 20) => Some(TrainingInfo),
        (TrainingInfo, 1 | 2) => Some(Graph),
        (Graph, 1) => Some(Node),
        (Graph, 5) => Some(Tensor),
        (Graph, 15) => Some(SparseTensor),
        (Node, 5) => Some(Attribute),
        (Function, 7) => Some(Node),
        (Attribute, 5 | 10) => Some(Tensor),
        (Attribute, 6 | 11) => Some(Graph),
        (Attribute, 22 | 23) => Some(SparseTensor),
        (SparseTensor, 1 | 2) => Some(Tensor),
        _ => None,
    }
}

/// Scans a serialized `ModelProto`.
pub fn scan(model: &[u8]) -> Result<Scan, ScanError> {
    if visit(model, Message::Model, 0)? { Ok(Scan::ExternalData) } else { Ok(Scan::SelfContained) }
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

/// Returns true if this message or anything inside it refers to external data.
fn visit(bytes: &[u8], message: Message, depth: usize) -> Result<bool, ScanError> {
    if depth > MAX_DEPTH {
        return Err(ScanError("nesting too deep"));
    }
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = varint(bytes, &mut pos)?;
                // TensorProto.data_location = EXTERNAL (1).
                if matches!(message, Message::Tensor) && field == 14 && value == 1 {
                    return Ok(true);
                }
            }
            1 => pos = pos.checked_add(8).filter(|&p| p <= bytes.len()).ok_or(ScanError("truncated fixed64"))?,
            5 => pos = pos.checked_add(4).filter(|&p| p <= bytes.len()).ok_or(ScanError("truncated fixed32"))?,
            2 => {
                let len = usize::try_from(varint(bytes, &mut pos)?).map_err(|_| ScanError("length overflow"))?;
                let end = pos.checked_add(len).filter(|&e| e <= bytes.len()).ok_or(ScanError("truncated field"))?;
                let inner = bytes.get(pos..end).ok_or(ScanError("truncated field"))?;
                // TensorProto.external_data (repeated StringStringEntryProto).
                if matches!(message, Message::Tensor) && field == 13 {
                    return Ok(true);
                }
                if let Some(kind) = child(message, field)
                    && visit(inner, kind, depth + 1)?
                {
                    return Ok(true);
                }
                pos = end;
            }
            _ => return Err(ScanError("unsupported wire type")),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, payload.len() as u8];
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
}
