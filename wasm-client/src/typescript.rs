//! TypeScript types of the objects the JS API takes and returns.
//!
//! wasm-bindgen writes the `.d.ts` for the `Sealgate` class itself; the plain objects that
//! cross the boundary (requests, responses, options, errors) are JS values to it, so their
//! shapes are declared here and referenced from the class through `unchecked_param_type` and
//! `unchecked_return_type`. They follow KServe V2 / the Open Inference Protocol JSON and
//! `sealgate_protocol::inference`, field for field.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A KServe V2 tensor element type. */
export type Datatype = "FP32" | "FP64" | "INT32" | "INT64" | "BOOL";

/** One input tensor; `data` is flat, row-major, with as many elements as `shape` needs. */
export interface InputTensor {
  name: string;
  shape: number[];
  datatype: Datatype;
  data: number[] | boolean[] | Float32Array | Float64Array | Int32Array | Int16Array | Int8Array
      | Uint32Array | Uint16Array | Uint8Array;
}

/** `POST /v2/models/{model}/infer` body. */
export interface InferenceRequest {
  id?: string;
  inputs: InputTensor[];
  /** Outputs to return (all when absent), by name. */
  outputs?: (string | { name: string })[];
}

/** One output tensor of a response. */
export interface OutputTensor {
  name: string;
  shape: number[];
  datatype: Datatype;
  data: number[] | boolean[];
}

/** `POST /v2/models/{model}/infer` answer. */
export interface InferenceResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  outputs: OutputTensor[];
}

/** `GET /v2/models` answer. */
export interface ModelList {
  models: { name: string; versions: string[] }[];
}

/** Name, type and shape of a model input or output; -1 marks a variable dimension. */
export interface TensorMetadata {
  name: string;
  datatype: Datatype;
  shape: number[];
}

/** `GET /v2/models/{model}` answer. */
export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** Options of `Sealgate.connect`. Unknown names are refused. */
export interface ConnectOptions {
  /** Bearer token, sent only inside the encryption. */
  token?: string;
  /** SHA-256 (64 hex characters) of the key configuration, as `sealgate serve` prints it. */
  keyConfigSha256?: string;
  /** Preferred AEAD when the gateway offers it; default AES-128-GCM. */
  aead?: "AES-128-GCM" | "AES-256-GCM" | "ChaCha20-Poly1305";
  /** Preferred KEM when the gateway offers it; default X25519. "X-Wing" (ML-KEM-768 +
   * X25519) keeps requests confidential against a future quantum computer. */
  kem?: "X25519" | "X-Wing";
  /** Per-request timeout in milliseconds; default 30000. */
  timeoutMs?: number;
  /** A fetch-compatible function to use instead of `globalThis.fetch`. */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

/** Options of `gw.inferStream`. Unknown names are refused. */
export interface StreamOptions {
  /** Requests per batch, each batch one chunked OHTTP exchange; default 256. Chromium shows
   * a batch's answers only once the batch is sent whole, so a slow source wants smaller
   * batches. */
  batchLines?: number;
  /** Batches held at once (being filled, sent, answered or read); default 2. `connect`'s
   * `timeoutMs` bounds each batch's exchange, its answer included. */
  inFlight?: number;
}

/** What `gw.inferStream` returns: one item per request, in input order. An item is the
 * answer, or a `SealgateError` (`code: "inference"`, `status`, `line`) for a request the
 * gateway refused alone: such an item is yielded, not thrown, and the stream goes on. A
 * failure of the stream as a whole (refused, truncated, not decrypting, the network, the
 * source throwing or giving an invalid request) rejects `next()` once, after the answers
 * before it; the iterator is done after that. `return()` (a `for await` that breaks) stops
 * pulling from the source and aborts the requests in flight. */
export interface InferStream extends AsyncIterableIterator<InferenceResponse | SealgateError, undefined> {}

/** HPKE algorithms, named as in RFC 9180. */
export interface Suite {
  kem: string;
  kdf: string;
  aead: string;
}

/** What one exchange looked like on the wire, for showing that it was encrypted. */
export interface ExchangeInfo {
  keyId: number;
  suite: Suite;
  /** Binary HTTP request size before encryption. */
  plaintextBytes: number;
  /** `message/ohttp-req` size: what left the page. */
  requestBytes: number;
  /** `message/ohttp-res` size. */
  responseBytes: number;
  /** Time in the module before sending (check, encode, encrypt), ms. */
  encryptMs: number;
  /** Time in the module after receiving (decrypt, decode, parse), ms. */
  decryptMs: number;
  /** Of `encryptMs`, the HPKE encapsulation alone, ms. */
  sealMs: number;
  /** Of `decryptMs`, the response decapsulation (and Binary HTTP decoding) alone, ms. */
  openMs: number;
}

/** `error.code` of every error the API rejects with. */
export type SealgateErrorCode =
  | "invalid-options" | "invalid-input" | "network" | "timeout" | "unexpected-response"
  | "problem" | "overloaded" | "key-config-pin-mismatch" | "no-usable-key-config" | "decrypt"
  | "protocol" | "inference" | "invalid-response";

/** The errors `connect`, `infer`, `models`, `modelMetadata` and `inferStream` reject (or,
 * for one refused request of a stream, yield) with. */
export interface SealgateError extends Error {
  name: "SealgateError";
  code: SealgateErrorCode;
  /** Outer status for "problem", "overloaded" and "unexpected-response", inner status for
   * "inference". */
  status?: number;
  /** RFC 9457 problem type, for "problem". */
  problemType?: string;
  /** For an item of `inferStream`: the 1-based number of the request in the whole stream. */
  line?: number;
}
"#;
