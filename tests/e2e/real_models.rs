//! The real models of the embedded default (models/README.md) through the real binary: the
//! gateway seals and serves `seizure-risk` (brainmaze-eeg-models' CNN + BiLSTM) and
//! `text-embedding` (all-MiniLM-L6-v2, int8) beside the demo models; through the Rust SDK
//! they answer as Python onnxruntime answers on the same `.onnx` file, and the bad inputs
//! they are likely to get come back as inner 400s with fixed texts.
//!
//! The tolerance, and why, is in tests/support/src/real_models.rs: 1e-5 + 1e-4 × |value|
//! per element, where both sides are the same runtime with one thread and agree exactly.
//!
//! The models come from `cargo xtask setup` (`.tools/models/`, not committed): without them
//! the tests skip with a message, except in CI, where they fail.

use std::time::{Duration, Instant};

use sealgate_client::inference::{DataType, InferenceRequest, TensorData};
use sealgate_client::{Client, Error, ExchangeError};
use sealgate_test_support::{
    DEMO_MODELS, Gateway, GatewayOptions, REAL_MODELS, SPECTROGRAM_BINS, assert_matches_onnxruntime, fixture_sentences,
    real_models_installed, spectrogram_request, token_request,
};

use crate::SEALGATE;

/// The columns of a 300 s window, the seizure model's design.
const FIVE_MINUTES: u64 = 599;

/// The MiniLM vocabulary: token ids are 0..VOCABULARY.
const VOCABULARY: i64 = 30522;
/// Width of MiniLM's token vectors.
const HIDDEN: u64 = 384;

/// Calls timed per model, after one warm-up call.
const TIMED_CALLS: usize = 10;

/// A gateway on the embedded default with the real models.
fn real_models_gateway() -> Gateway {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).real_models());
    let startup = gateway.logs();
    for model in DEMO_MODELS.iter().chain(&REAL_MODELS) {
        assert!(startup.contains(&format!("{model} v1")), "{model} is not served:\n{startup}");
    }
    gateway
}

/// Asserts that `request` gets an inner 400 whose message contains each of `needles`;
/// returns the message.
async fn assert_refused(client: &Client, model: &str, request: &InferenceRequest, needles: &[&str]) -> String {
    match client.infer(model, request).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 400, message })) => {
            for needle in needles {
                assert!(message.contains(needle), "{model}: expected '{needle}' in the refusal: {message}");
            }
            message
        }
        other => panic!("{model}: expected an inner 400, got {other:?}"),
    }
}

/// The median time of [`TIMED_CALLS`] calls of `request`, after one warm-up call.
async fn median_call(client: &Client, model: &str, request: &InferenceRequest) -> Duration {
    client.infer(model, request).await.unwrap();
    let mut times: Vec<Duration> = Vec::with_capacity(TIMED_CALLS);
    for _ in 0..TIMED_CALLS {
        let started = Instant::now();
        client.infer(model, request).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[TIMED_CALLS / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seizure_risk_matches_python_onnxruntime_and_refuses_bad_shapes() {
    if !real_models_installed() {
        return;
    }
    let gateway = real_models_gateway();
    let client = gateway.client();
    let metadata = client.model_metadata("seizure-risk").await.unwrap();
    let input = &metadata.inputs[0];
    assert_eq!((input.name.as_str(), input.datatype, &input.shape[..]), ("x", DataType::Fp32, &[-1, 100, -1][..]));
    let outputs: Vec<(&str, &[i64])> = metadata.outputs.iter().map(|o| (o.name.as_str(), &o.shape[..])).collect();
    assert_eq!(outputs, [("logits", &[-1, -1, 4][..]), ("probs", &[-1, -1, 4][..])]);

    // One 5-minute window (the model's design), then a batch of three 30 s windows.
    let mut worst = 0.0_f64;
    for (batch, time, seed) in [(1, FIVE_MINUTES, 7), (3, 59, 11)] {
        let request = spectrogram_request(batch, time, seed);
        let answer = client.infer("seizure-risk", &request).await.unwrap_or_else(|e| panic!("{e}\n{}", gateway.logs()));
        worst = worst.max(assert_matches_onnxruntime("seizure-risk", &request, &answer.outputs).await);
        let probs = answer.output("probs").unwrap();
        assert_eq!(probs.shape, [time, batch, 4], "probs is [time, batch, 4]");
        for classes in probs.as_f64().unwrap().chunks(4) {
            assert!((classes.iter().sum::<f64>() - 1.0).abs() < 1e-4, "a softmax: {classes:?}");
        }
    }
    eprintln!("seizure-risk: largest difference from Python onnxruntime {worst:e}");
    let took = median_call(&client, "seizure-risk", &spectrogram_request(1, FIVE_MINUTES, 7)).await;
    eprintln!("seizure-risk [1, 100, 599]: median {took:?} per call through the gateway");

    // A spectrogram without its batch axis, one with 99 bins, and integers for floats: each
    // refused by the gateway's checks before ONNX Runtime sees it, naming the rule.
    let mut unbatched = spectrogram_request(1, 10, 3);
    unbatched.inputs[0].shape = vec![SPECTROGRAM_BINS, 10];
    assert_refused(&client, "seizure-risk", &unbatched, &["input 'x' has shape [100, 10]", "[-1, 100, -1]"]).await;
    let mut bins = spectrogram_request(1, 10, 3);
    bins.inputs[0].shape = vec![1, 99, 10];
    bins.inputs[0].data = TensorData::Float(vec![0.5; 990]);
    assert_refused(&client, "seizure-risk", &bins, &["input 'x' has shape [1, 99, 10]"]).await;
    let mut integers = spectrogram_request(1, 10, 3);
    integers.inputs[0].datatype = DataType::Int64;
    integers.inputs[0].data = TensorData::Int(vec![1; 1000]);
    assert_refused(&client, "seizure-risk", &integers, &["datatype INT64", "expects datatype FP32"]).await;
    // Still serving, the same answer as before.
    let request = spectrogram_request(3, 59, 11);
    let answer = client.infer("seizure-risk", &request).await.unwrap();
    assert_matches_onnxruntime("seizure-risk", &request, &answer.outputs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_embedding_matches_python_onnxruntime_and_refuses_unknown_tokens() {
    if !real_models_installed() {
        return;
    }
    let gateway = real_models_gateway();
    let client = gateway.client();
    let metadata = client.model_metadata("text-embedding").await.unwrap();
    let inputs: Vec<(&str, DataType)> = metadata.inputs.iter().map(|i| (i.name.as_str(), i.datatype)).collect();
    assert_eq!(
        inputs,
        [("input_ids", DataType::Int64), ("attention_mask", DataType::Int64), ("token_type_ids", DataType::Int64)]
    );
    assert_eq!(metadata.outputs[0].shape, [-1, -1, 384]);

    // The fixture's three sentences as one padded batch, then the first alone.
    let ids = fixture_sentences();
    let batch = token_request(&ids);
    let answer = client.infer("text-embedding", &batch).await.unwrap_or_else(|e| panic!("{e}\n{}", gateway.logs()));
    let mut worst = assert_matches_onnxruntime("text-embedding", &batch, &answer.outputs).await;
    let length = ids.iter().map(Vec::len).max().unwrap() as u64;
    assert_eq!(answer.output("last_hidden_state").unwrap().shape, [ids.len() as u64, length, HIDDEN]);
    let single = token_request(&ids[..1]);
    let alone = client.infer("text-embedding", &single).await.unwrap();
    worst = worst.max(assert_matches_onnxruntime("text-embedding", &single, &alone.outputs).await);
    eprintln!("text-embedding: largest difference from Python onnxruntime {worst:e}");

    // The embeddings mean something: mean-pooled over each sentence's own tokens, the two
    // sentences about chest pain are far closer to each other than to the one about a loan.
    let hidden = answer.output("last_hidden_state").unwrap().as_f64().unwrap();
    let embeddings: Vec<Vec<f64>> = ids
        .iter()
        .zip(hidden.chunks(length as usize * HIDDEN as usize))
        .map(|(sentence, block)| {
            let mut sum = vec![0.0; HIDDEN as usize];
            for token in block.chunks(HIDDEN as usize).take(sentence.len()) {
                sum.iter_mut().zip(token).for_each(|(s, v)| *s += v);
            }
            let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
            sum.iter().map(|v| v / norm).collect()
        })
        .collect();
    let cosine = |a: usize, b: usize| embeddings[a].iter().zip(&embeddings[b]).map(|(x, y)| x * y).sum::<f64>();
    assert!(cosine(0, 1) > 0.5 && cosine(0, 2) < 0.2 && cosine(1, 2) < 0.2, "{:?}", [cosine(0, 1), cosine(0, 2)]);
    let took = median_call(&client, "text-embedding", &single).await;
    eprintln!("text-embedding [1, {}]: median {took:?} per call through the gateway", ids[0].len());

    // A token id outside the vocabulary, either end: ONNX Runtime's Gather refuses it with a
    // message that quotes the id; the client gets the gateway's fixed text, which names the
    // integer inputs and never the value.
    for outside in [VOCABULARY, 987_654, -VOCABULARY - 1] {
        let mut sentence = ids[0].clone();
        sentence[3] = outside;
        let message =
            assert_refused(&client, "text-embedding", &token_request(&[sentence]), &["'input_ids'", "vocabulary"])
                .await;
        assert!(!message.contains(&outside.unsigned_abs().to_string()), "the id reached the client: {message}");
    }
    // Ids as floats, and a mask of another shape than the ids: the gateway's checks.
    let mut floats = token_request(&ids[..1]);
    floats.inputs[0].datatype = DataType::Fp32;
    floats.inputs[0].data = TensorData::Float(ids[0].iter().map(|&i| i as f64 + 0.5).collect());
    assert_refused(&client, "text-embedding", &floats, &["input 'input_ids' has datatype FP32"]).await;
    // The mask's shape is checked against the model's (two dimensions, any size), not
    // against the ids': ONNX Runtime refuses the pair, which is still the caller's mistake.
    let mut ragged = token_request(&ids[..1]);
    ragged.inputs[1].shape = vec![1, 2];
    ragged.inputs[1].data = TensorData::Int(vec![1, 1]);
    match client.infer("text-embedding", &ragged).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 400, .. })) => {}
        other => panic!("a mask of another shape than the ids: expected an inner 400, got {other:?}"),
    }
    // Still serving, the same answer as before.
    let again = client.infer("text-embedding", &single).await.unwrap();
    assert_eq!(again.outputs, alone.outputs);
}
