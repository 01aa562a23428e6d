// Drives Debian's Chromium (playwright-core, headless) against a real Sealgate gateway that
// serves the demo page, and prints one JSON report on stdout for tests/browser.rs to check.
//
// Usage: NODE_EXTRA_CA_CERTS=ca.pem node wasm-client/tests/browser.mjs CONFIG.json (the
// extra CA is for playwright's own `route.fetch`, which runs in Node), where the config is
//   { "url": "https://127.0.0.1:PORT", "caPem": "/path/ca.pem", "pin": "<sha256 hex>",
//     "closedPort": 12345, "benchCalls": 200, "chromium": "/usr/bin/chromium",
//     "sealgate": "/path/to/sealgate", "dataDir": "/gateway/data/dir" }
//
// What it does, in order:
// 1. Makes Chromium trust the gateway's development CA the way a user would: an NSS database
//    in a private HOME (`certutil`), not --ignore-certificate-errors, so TLS is verified.
// 2. Records every request any page of the browser context sends (URL, method, headers,
//    body as hex), for the Rust side to search for plaintext feature values.
// 3. Loads the demo page, submits both forms, and reports the inputs the page sent and the
//    outputs it showed.
// 4. Runs the bad-input cases in the page (wrong URL, gateway down, pin mismatch, tampered
//    key configuration, tampered response, malformed tensors, inner errors, key rotation)
//    and reports each error's name, code, message and the requests sent meanwhile. Last, it
//    rotates the real gateway's keys (`sealgate keys rotate`, then `keys retire` of the key
//    a connected client holds) and fires concurrent calls through a counting `fetch`.
//    The cases that point the client at another origin run in a second page without the
//    gateway's Content-Security-Policy (whose `connect-src 'self'` would stop them first).
// 4b. Streams `streamRows` through `gw.inferStream` from an async generator, recording how
//    far the generator had been pulled when the first answer came; and breaks off a second
//    stream, recording that the generator was pulled no further and was closed.
// 4c. When `realRequests` is given ({ model: request }, for the real models of `cargo xtask
//    setup`), sends each through `gw.infer` and reports the outputs whole.
// 5. Checks the page under its Content-Security-Policy: the demo raised no violation, and
//    an injected inline script, inline event handler and script from another origin are
//    all refused (none runs; each raises a `securitypolicyviolation` event).
// 6. Times `benchCalls` encrypted calls through `gw.lastExchange` (time in the module:
//    `coreMs` is encapsulate + decapsulate, `moduleMs` everything the module does per call).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const log = (...args) => console.error("[browser.mjs]", ...args);
const GATEWAY_PATH = "/.well-known/ohttp-gateway";
// How many calls the rotation case fires at once (tests/browser.rs expects the same number).
const ROTATION_CALLS = 6;

const home = mkdtempSync(join(tmpdir(), "sealgate-chromium-"));
const report = { requests: [], console: [], forms: {}, cases: {}, bench: null, timer: null };

function trustCa() {
  const db = join(home, ".pki", "nssdb");
  mkdirSync(db, { recursive: true });
  execFileSync("certutil", ["-N", "-d", `sql:${db}`, "--empty-password"]);
  execFileSync("certutil", ["-A", "-d", `sql:${db}`, "-n", "sealgate-dev-ca", "-t", "C,,", "-i", config.caPem]);
}

async function main() {
  trustCa();
  const context = await chromium.launchPersistentContext(join(home, "profile"), {
    executablePath: config.chromium ?? "/usr/bin/chromium",
    headless: true,
    env: { ...process.env, HOME: home },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  let phase = "load";
  context.on("request", (request) => {
    const body = request.postDataBuffer();
    report.requests.push({
      phase,
      url: request.url(),
      method: request.method(),
      headers: request.headers(),
      body: body ? body.toString("hex") : "",
    });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => report.console.push(`pageerror: ${error.message}`));

  // Every Content-Security-Policy violation in any page, from the first script on (an
  // init script runs through DevTools, outside the page's policy).
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations.push({ directive: e.effectiveDirective, blockedURI: e.blockedURI, sample: e.sample });
    });
  });

  try {
    const response = await page.goto(`${config.url}/?pin=${config.pin}#token=${config.token}`);
    report.pageHeaders = response.headers();
    await page.waitForSelector("#status:is([data-state=connected],[data-state=error])", { timeout: 30000 });
    report.status = {
      state: await page.getAttribute("#status", "data-state"),
      text: await page.textContent("#status"),
    };
    if (report.status.state !== "connected") throw new Error(`the page did not connect: ${report.status.text}`);

    phase = "forms";
    for (const [form, model] of [["patient", "breast-cancer"], ["loan", "credit-risk"]]) {
      const inputs = await page.$$eval(`#${form} input`, (els) => els.map((e) => Number.parseFloat(e.value)));
      await page.click(`#${form} button[type=submit]`);
      const result = `#${form}-result`;
      await page.waitForSelector(`${result}:is([data-state=done],[data-state=error])`, { timeout: 30000 });
      report.forms[form] = {
        model,
        inputs,
        state: await page.getAttribute(result, "data-state"),
        outputs: JSON.parse((await page.getAttribute(result, "data-result")) ?? "null"),
        text: await page.textContent(result),
      };
    }

    phase = "cases";
    // The cases that point the client at another origin run in a page without the
    // gateway's policy (its `connect-src 'self'` would stop them before the client's own
    // checks, which are what they test); everything else runs under the policy.
    const otherOrigins = await context.newPage();
    await otherOrigins.route(`${config.url}/?other-origins`, async (route) => {
      const response = await route.fetch();
      const headers = { ...response.headers() };
      delete headers["content-security-policy"];
      return route.fulfill({ response, headers });
    });
    await otherOrigins.goto(`${config.url}/?other-origins`);
    // The cases import the page's module without initializing it: wait until the page's own
    // start-up (`await init()`, then its first connect) is over, as for the first page.
    await otherOrigins.waitForSelector("#status:is([data-state=connected],[data-state=error])", { timeout: 30000 });
    await badInput(page, otherOrigins);
    await otherOrigins.close();

    // Streamed scoring under the page's policy: `config.streamRows` through `inferStream`.
    phase = "stream";
    report.stream = await page.evaluate(streamRows, {
      url: config.url,
      token: config.token,
      rows: config.streamRows ?? [],
      errorRow: config.streamErrorRow ?? -1,
    });
    log("stream:", report.stream.answers.length, "answers in", Math.round(report.stream.ms), "ms; first after",
      report.stream.pulledAtFirstAnswer, "of", report.stream.rows, "pulled");

    // The real models, when the gateway serves them: the requests the Rust side made, each
    // through `gw.infer` under the page's policy, every output reported whole.
    if (config.realRequests) {
      phase = "real";
      report.real = await page.evaluate(realModels, { url: config.url, token: config.token, requests: config.realRequests });
      log("real models:", Object.entries(report.real).map(([m, a]) => `${m} ${Math.round(a.ms)} ms`).join(", "));
    }

    // The demo ran under the policy without a single violation; then scripts injected into
    // the page the way an XSS would (an inline script, an inline event handler, a script
    // from another origin) are refused, each with a violation event.
    phase = "csp";
    report.csp = { demoViolations: await page.evaluate(() => window.__cspViolations.slice()), fetched: false };
    // Were the other origin's script fetched (the route sees only requests that reach the
    // network), it would run and say so.
    await page.route("https://not-a-gateway.test/injected.js", (route) => {
      report.csp.fetched = true;
      return route.fulfill({ contentType: "text/javascript", body: "window.__injected.push('external script')" });
    });
    await page.evaluate(() => {
      window.__injected = [];
      const inline = document.createElement("script");
      inline.textContent = "window.__injected.push('inline script')";
      document.body.appendChild(inline);
      const holder = document.createElement("div");
      holder.innerHTML = `<img src="/no-such-image.png" onerror="window.__injected.push('inline handler')">`;
      document.body.appendChild(holder);
      const external = document.createElement("script");
      external.src = "https://not-a-gateway.test/injected.js";
      document.body.appendChild(external);
    });
    await page.waitForFunction(() => window.__cspViolations.length >= 3, null, { timeout: 10000 }).catch(() => {});
    report.csp.injected = await page.evaluate(() => window.__injected.slice());
    report.csp.violations = await page.evaluate(() => window.__cspViolations.slice());

    // Chromium coarsens performance.now() to 100 us unless the page is cross-origin
    // isolated; the benchmark page gets the two headers that isolate it (COOP comes from
    // the gateway; COEP, which the gateway's static files do not carry, is added here, in
    // the test) for 5 us timers.
    phase = "bench";
    const benchPage = await context.newPage();
    await benchPage.route(`${config.url}/?bench`, async (route) => {
      const response = await route.fetch();
      const headers = {
        ...response.headers(),
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
      };
      return route.fulfill({ response, headers });
    });
    await benchPage.goto(`${config.url}/?bench`);
    report.timer = await benchPage.evaluate(timerResolution);
    report.bench = await benchPage.evaluate(bench, { calls: config.benchCalls ?? 200, row: report.forms.patient.inputs, token: config.token });
  } finally {
    await context.close();
    rmSync(home, { recursive: true, force: true });
  }
}

// Runs one case in the page: `body` gets the module and returns a promise that must reject.
// Every case gets the gateway's bearer token as `arg.token` (the `dev` tenant's).
async function runCase(page, name, body, arg) {
  arg = { token: config.token, ...arg };
  const before = report.requests.length;
  const outcome = await page.evaluate(
    async ({ body, arg }) => {
      // Compiled before the first `await`: the page's policy forbids eval, and only code
      // DevTools runs synchronously is exempt from it.
      // eslint-disable-next-line no-new-func
      const run = new Function("Sealgate", "arg", `return (${body})(Sealgate, arg);`);
      const { Sealgate } = await import("/pkg/sealgate_wasm.js");
      try {
        const value = await run(Sealgate, arg);
        return { rejected: false, value: JSON.stringify(value ?? null) };
      } catch (e) {
        return {
          rejected: true,
          isError: e instanceof Error,
          name: e?.name,
          code: e?.code,
          status: e?.status,
          problemType: e?.problemType,
          message: e?.message,
        };
      }
    },
    { body: body.toString(), arg },
  );
  outcome.requests = report.requests.slice(before).map((r) => ({ method: r.method, url: r.url }));
  report.cases[name] = outcome;
  log(name, outcome.rejected ? `${outcome.code}: ${outcome.message}` : "resolved");
}

// A route handler whose failure aborts the request (and is reported) instead of crashing.
function safe(handler) {
  return async (route) => {
    try {
      await handler(route);
    } catch (error) {
      report.console.push(`route handler failed: ${error.message}`);
      await route.abort("failed").catch(() => {});
    }
  };
}

async function badInput(page, otherOrigins) {
  const origin = config.url;
  const gatewayUrl = `${origin}${GATEWAY_PATH}`;
  const row = report.forms.patient.inputs;
  const tensor = (data, shape = [1, data.length], datatype = "FP32") => ({
    inputs: [{ name: "input", shape, datatype, data }],
  });

  // Wrong gateway URLs.
  await runCase(otherOrigins, "closedPort", (S, a) => S.connect(a.url, { token: a.token }), { url: `https://127.0.0.1:${config.closedPort}` });
  await runCase(page, "plainHttp", (S, a) => S.connect(a.url, { token: a.token }), { url: origin.replace("https:", "http:") });
  await runCase(page, "notAUrl", (S) => S.connect("gateway"), {});
  await otherOrigins.route("https://not-a-gateway.test/**", (route) =>
    route.fulfill({ status: 404, contentType: "text/html", body: "<h1>Not Found</h1>" }),
  );
  await runCase(otherOrigins, "notAGateway", (S) => S.connect("https://not-a-gateway.test"), {});

  // Key configuration pins: a wrong pin, and the right pin with a substituted key.
  await runCase(page, "pinMismatch", (S, a) => S.connect(a.url, { keyConfigSha256: "00".repeat(32) }), { url: origin });
  await runCase(page, "unknownOption", (S, a) => S.connect(a.url, { pin: a.pin }), { url: origin, pin: config.pin });
  const substituteKey = safe(async (route) => {
    if (route.request().method() !== "GET") return route.fallback();
    const response = await route.fetch();
    const body = Buffer.from(await response.body());
    body[2 + 1 + 2 + 7] ^= 0x01; // one bit of the public key: length(2) key id(1) kem(2) ...
    return route.fulfill({ response, body });
  });
  await page.route(gatewayUrl, substituteKey);
  await runCase(page, "tamperedKeyConfig", (S, a) => S.connect(a.url, { keyConfigSha256: a.pin, token: a.token }), {
    url: origin,
    pin: config.pin,
  });
  await page.unroute(gatewayUrl, substituteKey);

  // A response altered on the way (one bit of the encrypted answer flipped), and the
  // gateway going down after connect. Armed here, they act on the next POST only, so the
  // key configuration fetch of `connect` is untouched.
  let armed = null;
  const onPost = safe(async (route) => {
    const action = armed;
    if (route.request().method() !== "POST" || action === null) return route.fallback();
    armed = null;
    if (action === "refuse") return route.abort("connectionrefused");
    const response = await route.fetch();
    const body = Buffer.from(await response.body());
    body[body.length - 1] ^= 0x01;
    return route.fulfill({ response, body });
  });
  await page.route(gatewayUrl, onPost);
  const connectThenInfer = async (S, a) => (await S.connect(a.url, { keyConfigSha256: a.pin, token: a.token })).infer("breast-cancer", a.request);
  armed = "tamper";
  await runCase(page, "tamperedResponse", connectThenInfer, { url: origin, pin: config.pin, request: tensor(row) });
  armed = "refuse";
  await runCase(page, "gatewayDown", connectThenInfer, { url: origin, pin: config.pin, request: tensor(row) });
  await page.unroute(gatewayUrl, onPost);

  // Malformed tensors from the page: refused before anything is sent.
  const malformed = {
    tooFewElements: tensor(row.slice(0, 29), [1, 30]),
    unknownDatatype: tensor(row, [1, 30], "float32"),
    notANumber: tensor([...row.slice(0, 29), Number.NaN], [1, 30]),
    textElement: tensor([...row.slice(0, 29), "1.5"], [1, 30]),
    nested: tensor([row], [1, 30]),
    negativeShape: tensor(row, [-1, 30]),
    noInputs: { input: [] },
  };
  // The connection is made first, so that any request recorded during the case was sent
  // by `infer` itself (there must be none).
  await page.evaluate(async (a) => {
    const { Sealgate } = await import("/pkg/sealgate_wasm.js");
    window.sealgateTest = await Sealgate.connect(a.url, { keyConfigSha256: a.pin, token: a.token });
  }, { url: origin, pin: config.pin, token: config.token });
  for (const [name, request] of Object.entries(malformed)) {
    await runCase(page, `malformed.${name}`, (S, a) => window.sealgateTest.infer("breast-cancer", a.request), { request });
  }
  await runCase(page, "badModelName", async (S, a) => (await S.connect(a.url, { token: a.token })).infer("../v2/models", a.request), {
    url: origin,
    request: tensor(row),
  });

  // Who may call: no token, and a well-formed token the gateway does not know. Both are
  // inner 401s: the token is checked inside the encryption.
  await runCase(page, "noToken", async (S, a) => (await S.connect(a.url)).infer("breast-cancer", a.request), {
    url: origin,
    request: tensor(row),
  });
  await runCase(page, "unknownToken", async (S, a) => (await S.connect(a.url, { token: a.token })).infer("breast-cancer", a.request), {
    url: origin,
    token: "sg_" + "A".repeat(43),
    request: tensor(row),
  });

  // Errors from the model, inside the encryption.
  await runCase(page, "unknownModel", async (S, a) => (await S.connect(a.url, { token: a.token })).infer("no-such-model", a.request), {
    url: origin,
    request: tensor(row),
  });
  await runCase(page, "wrongShape", async (S, a) => (await S.connect(a.url, { token: a.token })).infer("breast-cancer", a.request), {
    url: origin,
    request: tensor(row.slice(0, 29), [1, 29]),
  });
  await runCase(page, "wrongDatatype", async (S, a) => (await S.connect(a.url, { token: a.token })).infer("breast-cancer", a.request), {
    url: origin,
    request: tensor(row, [1, 30], "FP64"),
  });

  // A stale key id: the first key configuration the page sees has another key id; the
  // gateway answers 422 ohttp-key, the client refetches once and succeeds.
  let staleServed = false;
  const staleKeyId = safe(async (route) => {
    if (route.request().method() !== "GET" || staleServed) return route.fallback();
    staleServed = true;
    const response = await route.fetch();
    const body = Buffer.from(await response.body());
    body[2] ^= 0x80; // the key id
    return route.fulfill({ response, body });
  });
  await page.route(gatewayUrl, staleKeyId);
  await runCase(
    page,
    "keyRotation",
    async (S, a) => {
      const gw = await S.connect(a.url, { token: a.token });
      const before = gw.keyId;
      const result = await gw.infer("breast-cancer", a.request);
      return { before, after: gw.keyId, label: result.outputs.find((o) => o.name === "label").data };
    },
    { url: origin, request: tensor(row) },
  );
  await page.unroute(gatewayUrl, staleKeyId);

  await rotation(page, tensor(row));
}

// Runs `sealgate keys ARGS --data-dir DIR` against the gateway's data dir, without the
// caller's SEALGATE_* and AWS_* variables (as the Rust harness runs the CLI).
function sealgateKeys(args) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("SEALGATE_") && !k.startsWith("AWS_")),
  );
  const argv = ["keys", ...args, "--data-dir", config.dataDir];
  return execFileSync(config.sealgate, argv, { env, stdio: ["ignore", "pipe", "pipe"] }).toString();
}

// The gateway rotates its keys while a page holds a connected client: the key the client
// sealed to is retired at once, so every call is refused with `ohttp-key`. Concurrent calls
// must all succeed after exactly one key-list GET between them, counted by the `fetch` the
// client was given (and, independently, by the recorded requests of the case).
async function rotation(page, request) {
  const held = await page.evaluate(async (a) => {
    const { Sealgate } = await import("/pkg/sealgate_wasm.js");
    window.keyListGets = 0;
    const counting = (url, init) => {
      if ((init?.method ?? "GET") === "GET") window.keyListGets += 1;
      return fetch(url, init);
    };
    window.rotating = await Sealgate.connect(a.url, { token: a.token, fetch: counting });
    return window.rotating.keyId;
  }, { url: config.url, token: config.token });
  sealgateKeys(["rotate", "--grace", "10m"]);
  sealgateKeys(["retire", String(held)]);
  // The gateway looks at its key list every second; wait until it no longer advertises the
  // retired key (a plain fetch, not the client's).
  const advertised = await page.evaluate(async (a) => {
    const deadline = performance.now() + 20000;
    for (;;) {
      const response = await fetch(a.url + a.path, { cache: "no-store" });
      const bytes = new Uint8Array(await response.arrayBuffer());
      const ids = [];
      for (let i = 0; i + 2 < bytes.length; i += 2 + ((bytes[i] << 8) | bytes[i + 1])) ids.push(bytes[i + 2]);
      if (!ids.includes(a.held) || performance.now() > deadline) return ids;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, { url: config.url, path: GATEWAY_PATH, held });
  log("rotation: retired key", held, "advertised now", advertised);
  await runCase(
    page,
    "rotationConcurrent",
    async (S, a) => {
      const gw = window.rotating;
      const before = gw.keyId;
      const gets = window.keyListGets;
      const results = await Promise.all(Array.from({ length: a.calls }, () => gw.infer("breast-cancer", a.request)));
      return {
        before,
        after: gw.keyId,
        answered: results.filter((r) => r.outputs.some((o) => o.name === "label")).length,
        keyListGets: window.keyListGets - gets,
        advertised: a.advertised,
      };
    },
    { request, calls: ROTATION_CALLS, advertised },
  );
}

// Streams `rows` (credit-risk feature rows) through `gw.inferStream` from an async generator
// that counts its pulls, and reports every item (answer or per-line error), how many rows
// had been pulled when the first answer arrived, and, for a second stream the loop breaks
// off, how many rows were pulled and whether the generator was closed. Row `errorRow` is
// sent as FP64, which the gateway refuses for that line alone.
async function streamRows({ url, token, rows, errorRow }) {
  const { Sealgate } = await import("/pkg/sealgate_wasm.js");
  const gw = await Sealgate.connect(url, { token });
  const request = (row, i) => ({
    inputs: [{ name: "input", shape: [1, row.length], datatype: i === errorRow ? "FP64" : "FP32", data: row }],
  });
  let pulled = 0;
  async function* source() {
    for (const [i, row] of rows.entries()) {
      pulled += 1;
      yield request(row, i);
    }
  }
  const answers = [];
  let pulledAtFirstAnswer = null;
  const started = performance.now();
  for await (const item of gw.inferStream("credit-risk", source(), { batchLines: 256, inFlight: 2 })) {
    if (pulledAtFirstAnswer === null) pulledAtFirstAnswer = pulled;
    if (item instanceof Error) {
      answers.push({ name: item.name, code: item.code, status: item.status, line: item.line, message: item.message });
    } else {
      const output = (name) => item.outputs.find((o) => o.name === name)?.data;
      answers.push({ label: output("label"), probabilities: output("probabilities") });
    }
  }
  const ms = performance.now() - started;

  // A loop that breaks off: the generator is pulled no further and closed.
  let brokenPulls = 0;
  let closed = false;
  async function* endless() {
    try {
      for (let i = 0; ; i++) {
        brokenPulls += 1;
        yield request(rows[i % rows.length], -1);
      }
    } finally {
      closed = true;
    }
  }
  let read = 0;
  for await (const item of gw.inferStream("credit-risk", endless(), { batchLines: 16, inFlight: 2 })) {
    if (item instanceof Error) throw item;
    read += 1;
    if (read === 20) break;
  }
  const pulledAtBreak = brokenPulls;
  await new Promise((resolve) => setTimeout(resolve, 200));
  return {
    answers,
    pulledAtFirstAnswer,
    rows: rows.length,
    ms,
    broken: { read, pulledAtBreak, pulledLater: brokenPulls, closed },
  };
}

// Sends each of `requests` ({ model: KServe request }) through `gw.infer` and returns each
// answer's outputs and the call's time.
async function realModels({ url, token, requests }) {
  const { Sealgate } = await import("/pkg/sealgate_wasm.js");
  const gw = await Sealgate.connect(url, { token });
  const answers = {};
  for (const [model, request] of Object.entries(requests)) {
    const started = performance.now();
    const answer = await gw.infer(model, request);
    answers[model] = { outputs: answer.outputs, ms: performance.now() - started };
  }
  return answers;
}

// Measures the smallest step of performance.now() (Chromium coarsens it).
function timerResolution() {
  let smallest = Infinity;
  for (let i = 0; i < 2000; i++) {
    const a = performance.now();
    let b = performance.now();
    while (b === a) b = performance.now();
    smallest = Math.min(smallest, b - a);
  }
  return { smallestStepMs: smallest, crossOriginIsolated: self.crossOriginIsolated };
}

// `calls` encrypted inferences of one row; time in the module from `gw.lastExchange`.
async function bench({ calls, row, token }) {
  const { default: init, Sealgate } = await import("/pkg/sealgate_wasm.js");
  await init();
  const gw = await Sealgate.connect(location.origin, { token });
  const request = { inputs: [{ name: "input", shape: [1, row.length], datatype: "FP32", data: row }] };
  for (let i = 0; i < 20; i++) await gw.infer("breast-cancer", request); // warm-up
  const core = [];
  const module = [];
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    await gw.infer("breast-cancer", request);
    const info = gw.lastExchange;
    core.push(info.sealMs + info.openMs);
    module.push(info.encryptMs + info.decryptMs);
  }
  const wallMs = performance.now() - started;
  const stats = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
    return { median: at(0.5), p90: at(0.9), p99: at(0.99), mean };
  };
  return {
    calls,
    coreMs: stats(core),
    moduleMs: stats(module),
    roundTripMs: wallMs / calls,
    requestBytes: gw.lastExchange.requestBytes,
    userAgent: navigator.userAgent,
  };
}

main()
  .then(() => {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  })
  .catch((error) => {
    report.fatal = String(error?.stack ?? error);
    process.stdout.write(`${JSON.stringify(report)}\n`);
    process.exitCode = 1;
  });
