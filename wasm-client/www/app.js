// The Sealgate browser demo's script: connects to the gateway with the sealgate-wasm module,
// builds the two forms, and runs each submission as an end-to-end encrypted inference
// (`gw.infer`), then shows the answer and what left the browser (`gw.lastExchange`: the
// ciphertext's size, the key id and the algorithms). Nothing here sends a feature value in
// any other way: no query strings, no form posts, no storage, no analytics. The prefilled
// values are the first row of models/demo/*.example.json (the end-to-end test checks this).
// The bearer token (from `.sealgate/dev.token`) is typed into the form or passed in the URL
// fragment (`#token=...`); it leaves the page only inside the encryption.
//
// State for automated tests is kept in data attributes: `#status[data-state]`
// (connecting/connected/error), and on each result `data-state` (busy/done/error),
// `data-result` (the outputs as JSON) and `data-error-code`.

import init, { Sealgate } from "./pkg/sealgate_wasm.js";

const MODELS = {
  "breast-cancer": {
    form: "patient",
    input: "input",
    classes: ["malignant", "benign"],
    features: [
      "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness",
      "mean compactness", "mean concavity", "mean concave points", "mean symmetry",
      "mean fractal dimension", "radius error", "texture error", "perimeter error", "area error",
      "smoothness error", "compactness error", "concavity error", "concave points error",
      "symmetry error", "fractal dimension error", "worst radius", "worst texture",
      "worst perimeter", "worst area", "worst smoothness", "worst compactness",
      "worst concavity", "worst concave points", "worst symmetry", "worst fractal dimension",
    ],
    example: [
      17.99, 20.66, 117.8, 991.7, 0.1036, 0.1304, 0.1201, 0.08824, 0.1992, 0.06069, 0.4537,
      0.8733, 3.061, 49.81, 0.007231, 0.02772, 0.02509, 0.0148, 0.01414, 0.003336, 21.08, 25.41,
      138.1, 1349.0, 0.1482, 0.3735, 0.3301, 0.1974, 0.306, 0.08503,
    ],
  },
  "credit-risk": {
    form: "loan",
    input: "input",
    classes: ["repaid", "defaulted"],
    features: [
      "age (years)", "annual income (k USD)", "years with employer",
      "home (0 rent, 1 mortgage, 2 own)", "loan amount (k USD)", "term (months)",
      "interest rate (%)", "monthly installment (USD)", "debt to income (%)",
      "credit history (years)", "open accounts", "total credit limit (k USD)",
      "revolving balance (k USD)", "credit utilization (%)", "inquiries, last 6 months",
      "late payments, last 12 months", "delinquencies, last 2 years",
      "months since last delinquency (120 = none)", "savings (k USD)", "cosigner (0 no, 1 yes)",
    ],
    example: [
      21.0, 81.5, 3.0, 2.0, 6.4, 60.0, 8.4, 131.0, 9.9, 0.5, 2.0, 34.3, 10.5, 30.7, 1.0, 2.0,
      0.0, 120.0, 75.6, 0.0,
    ],
  },
};

let gateway = null;

const $ = (selector) => document.querySelector(selector);

function setState(element, state, text) {
  element.dataset.state = state;
  if (text !== undefined) element.textContent = text;
}

function buildForm(model, spec) {
  const fields = document.querySelector(`#${spec.form} .fields`);
  spec.features.forEach((feature, index) => {
    const label = document.createElement("label");
    label.textContent = feature;
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.required = true;
    input.value = String(spec.example[index]);
    input.dataset.feature = String(index);
    label.append(input);
    fields.append(label);
  });
  document.getElementById(spec.form).addEventListener("submit", (event) => {
    event.preventDefault();
    submit(model, spec);
  });
}

async function connect() {
  const status = $("#status");
  const url = $("#gateway-url").value.trim();
  const pin = $("#gateway-pin").value.trim();
  const token = $("#gateway-token").value.trim();
  setState(status, "connecting", `Connecting to ${url} ...`);
  gateway = null;
  try {
    const options = {};
    if (pin) options.keyConfigSha256 = pin;
    // The token travels only inside the encryption, as the inner `authorization` field.
    if (token) options.token = token;
    gateway = await Sealgate.connect(url, options);
    const suite = gateway.suite;
    status.replaceChildren(
      `Connected to ${url}. Key id ${gateway.keyId}, ${suite.kem}, ${suite.kdf}, ${suite.aead}. ` +
        `Key configuration SHA-256 `,
      code(gateway.keyConfigSha256),
      pin ? " (pinned)." : " (not pinned: compare it with what the gateway printed).",
    );
    setState(status, "connected");
  } catch (error) {
    setState(status, "error", `${error.message}`);
    status.dataset.errorCode = error.code ?? "";
  }
}

function code(text) {
  const element = document.createElement("code");
  element.textContent = text;
  return element;
}

async function submit(model, spec) {
  const form = document.getElementById(spec.form);
  const result = document.getElementById(`${spec.form}-result`);
  const button = form.querySelector("button");
  delete result.dataset.result;
  delete result.dataset.errorCode;
  if (!gateway) {
    setState(result, "error", "Not connected to a gateway.");
    return;
  }
  // An empty or malformed field becomes NaN: the module refuses it before sending anything.
  const values = [...form.querySelectorAll("input")].map((input) => Number.parseFloat(input.value));
  const request = {
    inputs: [{ name: spec.input, shape: [1, values.length], datatype: "FP32", data: values }],
  };
  button.disabled = true;
  setState(result, "busy", "Encrypting and sending ...");
  try {
    const answer = await gateway.infer(model, request);
    const label = answer.outputs.find((o) => o.name === "label").data[0];
    const probabilities = answer.outputs.find((o) => o.name === "probabilities").data;
    const info = gateway.lastExchange;
    const verdict = document.createElement("p");
    verdict.className = "answer";
    verdict.textContent =
      `${spec.classes[label] ?? `class ${label}`} ` +
      `(probability ${(100 * probabilities[label]).toFixed(1)} %)`;
    const wire = document.createElement("p");
    wire.className = "wire";
    wire.textContent =
      `Left this page: ${info.requestBytes} bytes of message/ohttp-req (the ${info.plaintextBytes}-byte ` +
      `request, encrypted to key ${info.keyId} with ${info.suite.kem}, ${info.suite.kdf}, ` +
      `${info.suite.aead}). Came back: ${info.responseBytes} bytes of message/ohttp-res. ` +
      `Time in the module: ${info.encryptMs.toFixed(2)} ms to encrypt, ` +
      `${info.decryptMs.toFixed(2)} ms to decrypt.`;
    result.replaceChildren(verdict, wire);
    result.dataset.result = JSON.stringify(answer.outputs);
    setState(result, "done");
  } catch (error) {
    result.dataset.errorCode = error.code ?? "";
    setState(result, "error", error.message);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  for (const [model, spec] of Object.entries(MODELS)) buildForm(model, spec);
  const params = new URLSearchParams(location.search);
  $("#gateway-url").value = params.get("gateway") ?? location.origin;
  $("#gateway-pin").value = params.get("pin") ?? "";
  // A token may come in the URL fragment (`#token=sg_...`), which the browser never sends to
  // any server; it is removed from the address bar and history at once.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has("token")) {
    $("#gateway-token").value = fragment.get("token");
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("#connect-form").addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  await init();
  await connect();
}

main().catch((error) => setState($("#status"), "error", `The demo failed to start: ${error.message}`));
