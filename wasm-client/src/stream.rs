//! `gw.inferStream(model, source, options)`: many inference requests from an (async)
//! iterable, answered through an async iterator, one result per request, in input order.
//!
//! Browsers send a request body as a stream only over HTTP/2, and Chromium hands the page
//! the response only once the request body has been sent whole (half duplex), so one chunked
//! request for the whole stream would let the page read nothing until its last line was
//! sent. The stream is therefore cut into consecutive batches of `batchLines` requests, and
//! each batch is its own chunked OHTTP exchange (draft-ietf-ohai-chunked-ohttp-08), built by
//! the client core's streaming exchange (`Session::start_stream`, each request one chunk).
//! At most `inFlight` batches are held at a time (being pulled into, sent, answered, or
//! waiting for the page to read their answers), so what the iterator holds is bounded and
//! the page's pace paces the pulling: answers of batch 1 are read while batch 2, 3 ... are
//! still being pulled and sent. Each answer is yielded as soon as its chunk has decrypted:
//! the response body is read as it arrives and fed to the core's receiver.
//!
//! A batch is held until answered, so it can be replayed honestly: when the gateway refuses
//! its key configuration (the `ohttp-key` problem), the configuration is fetched again (the
//! client's single-flight refetch) and the batch sent once more. A gateway error line
//! (`{"error", "status", "line"}`) is yielded as a `SealgateError` value (`code:
//! "inference"`, `status`, `line` numbered over the whole stream) and the stream goes on; a
//! failure of a whole batch (refused, truncated, not decrypting, the network) makes `next()`
//! reject once, after the answers before it, and the iterator then ends. `return()` (a
//! `for await` loop that breaks) stops the pulling, calls the source's own `return()`, and
//! aborts the outstanding fetches.
//!
//! Everything here runs on the page's one thread: the state is behind `Rc` and cells, no
//! borrow is held across an `await`, and whoever waits for a change of state parks its waker
//! in one list that every change wakes.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};

use js_sys::{Function, Object, Promise, Reflect, Symbol};
use sealgate_client_core::{DEFAULT_MAX_LINE, Error as CoreError, StreamEvent, StreamStart, line_error};
use sealgate_protocol::media_type;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise, spawn_local};
use web_sys::AbortController;
use zeroize::Zeroizing;

use crate::client::{Inner, instant, now, set};
use crate::error::{ClientError, Result};
use crate::json::{self, Answer};
use crate::tensor::request_body_from_js;

/// Requests per batch when the page does not say.
pub const DEFAULT_BATCH_LINES: u32 = 256;

/// Batches held at once when the page does not say.
pub const DEFAULT_IN_FLIGHT: u32 = 2;

/// The largest `batchLines`: a batch is held whole in memory until answered.
pub const MAX_BATCH_LINES: u32 = 100_000;

/// The largest `inFlight`.
pub const MAX_IN_FLIGHT: u32 = 64;

/// The options of `inferStream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Requests per batch (one chunked exchange each).
    pub batch_lines: u32,
    /// Batches held at once.
    pub in_flight: u32,
}

impl StreamOptions {
    /// Reads `{ batchLines?, inFlight? }`; `undefined` and `null` mean the defaults, and an
    /// unknown name is refused (a typo would otherwise silently keep a default).
    pub fn from_js(value: &JsValue) -> Result<Self> {
        let mut options = StreamOptions { batch_lines: DEFAULT_BATCH_LINES, in_flight: DEFAULT_IN_FLIGHT };
        if value.is_undefined() || value.is_null() {
            return Ok(options);
        }
        let object = value
            .dyn_ref::<Object>()
            .filter(|_| value.is_object())
            .ok_or_else(|| invalid("the stream options must be an object like { batchLines, inFlight }"))?;
        for entry in Object::entries(object).iter() {
            let name = Reflect::get_u32(&entry, 0).ok().and_then(|n| n.as_string()).unwrap_or_default();
            let value = Reflect::get_u32(&entry, 1).unwrap_or(JsValue::UNDEFINED);
            match name.as_str() {
                "batchLines" => options.batch_lines = whole(value.as_f64(), MAX_BATCH_LINES, "batchLines")?,
                "inFlight" => options.in_flight = whole(value.as_f64(), MAX_IN_FLIGHT, "inFlight")?,
                _ => {
                    return Err(ClientError::InvalidOptions(format!(
                        "unknown stream option '{name}' (known: batchLines, inFlight)"
                    )));
                }
            }
        }
        Ok(options)
    }
}

fn invalid(message: &str) -> ClientError {
    ClientError::InvalidOptions(message.to_owned())
}

/// Checks a count option: a whole number from 1 to `max`.
fn whole(value: Option<f64>, max: u32, name: &str) -> Result<u32> {
    match value {
        Some(v) if v.fract() == 0.0 && (1.0..=f64::from(max)).contains(&v) => Ok(v as u32),
        _ => Err(ClientError::InvalidOptions(format!("{name} must be a whole number from 1 to {max}"))),
    }
}

/// The async iterator `inferStream` returns: `next()`, `return()` and
/// `[Symbol.asyncIterator]()` (which returns the iterator itself).
#[wasm_bindgen]
pub struct InferStream {
    state: Rc<State>,
}

/// What the iterator, its pulling task and its batches share.
struct State {
    inner: Rc<Inner>,
    path: String,
    options: StreamOptions,
    /// The source's iterator and its `next` method; whether it is a sync iterator (whose
    /// values may be promises, awaited as `for await` does).
    source: JsValue,
    source_next: Function,
    sync_source: bool,
    /// The batches held, in input order: the first is the one the page reads from.
    batches: RefCell<VecDeque<Rc<Batch>>>,
    /// Whether the pulling task was started (on the first `next()`).
    started: Cell<bool>,
    /// Whether the source said it is done (then it needs no closing).
    source_done: Cell<bool>,
    /// Whether the pulling task has ended (the source is done, or failed, or was stopped).
    pulled: Cell<bool>,
    /// Why the pulling failed (the source threw, or a request was invalid), thrown once
    /// after the answers of the batches before it.
    pull_failure: RefCell<Option<JsValue>>,
    /// Set by `return()` and once a failure was thrown: no more pulling, no more yielding.
    ended: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
}

/// One batch: its answers as they arrive, until the page has read them.
struct Batch {
    /// The number of requests before this batch, so its gateway line numbers become the
    /// stream's.
    offset: u64,
    /// Answers and per-line errors not yet read by the page.
    results: RefCell<VecDeque<JsValue>>,
    /// The whole batch failed: thrown once its answers before the failure were read.
    failure: RefCell<Option<JsValue>>,
    done: Cell<bool>,
    /// Cancels the batch's fetch; `None` where the runtime has no `AbortController`.
    abort: Option<AbortController>,
}

impl State {
    fn wake(&self) {
        for waker in self.waiting.take() {
            waker.wake();
        }
    }

    /// Waits for the next change of state.
    async fn changed(&self) {
        let mut parked = false;
        std::future::poll_fn(|cx| {
            if parked {
                return Poll::Ready(());
            }
            parked = true;
            self.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// Stops everything: no more pulling, the source closed (its `return()`, as `for await`
    /// does) unless it has ended, the outstanding fetches aborted, nothing held.
    fn end(&self) {
        if self.ended.replace(true) {
            return;
        }
        let close = Reflect::get(&self.source, &JsValue::from_str("return")).ok();
        if let Some(close) = close.filter(|_| !self.source_done.get()).and_then(|f| f.dyn_into::<Function>().ok()) {
            // What the source's own `return()` answers or throws is not the page's concern
            // here: the stream is over.
            let _ = close.call0(&self.source);
        }
        for batch in self.batches.take() {
            if let Some(abort) = &batch.abort {
                abort.abort();
            }
        }
        self.wake();
    }
}

#[wasm_bindgen]
impl InferStream {
    /// The next answer (`{ value, done: false }`, the value an `InferenceResponse` or, for a
    /// request the gateway refused alone, a `SealgateError`), or `{ done: true }` after the
    /// last. Rejects once when the stream failed as a whole, and is done after that.
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<InferenceResponse | SealgateError, undefined>>")]
    pub fn next(&self) -> Promise {
        let state = self.state.clone();
        if !state.started.replace(true) {
            spawn_local(pull(state.clone()));
        }
        future_to_promise(async move {
            let value = next(&state).await?;
            Ok(iterator_result(value).into())
        })
    }

    /// Ends the stream early: stops pulling from the source (and calls its `return()`),
    /// aborts the batches in flight, and resolves `{ done: true }`.
    #[wasm_bindgen(js_name = "return", unchecked_return_type = "Promise<IteratorResult<never, undefined>>")]
    pub fn return_(&self) -> Promise {
        self.state.end();
        let done: JsValue = iterator_result(None).into();
        Promise::resolve(&done)
    }
}

/// `{ value, done }`.
fn iterator_result(value: Option<JsValue>) -> Object {
    let o = Object::new();
    set(&o, "done", value.is_none().into());
    set(&o, "value", value.unwrap_or(JsValue::UNDEFINED));
    o
}

/// Starts a stream (see the module documentation); `source` is checked to be iterable now.
pub(crate) fn start(
    inner: Rc<Inner>,
    path: String,
    source: &JsValue,
    options: &JsValue,
) -> core::result::Result<JsValue, JsValue> {
    let options = StreamOptions::from_js(options)?;
    let not_iterable =
        || ClientError::InvalidInput("the source must be an iterable or async iterable of requests".into());
    let method = |symbol: Symbol| {
        let key: JsValue = symbol.into();
        Reflect::get(source, &key).ok().and_then(|f| f.dyn_into::<Function>().ok()).filter(|_| source.is_object())
    };
    let (factory, sync_source) = match method(Symbol::async_iterator()) {
        Some(f) => (f, false),
        None => (method(Symbol::iterator()).ok_or_else(not_iterable)?, true),
    };
    let iterator = factory.call0(source)?;
    let source_next = Reflect::get(&iterator, &JsValue::from_str("next"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(not_iterable)?;
    let state = State {
        inner,
        path,
        options,
        source: iterator,
        source_next,
        sync_source,
        batches: RefCell::new(VecDeque::new()),
        started: Cell::new(false),
        source_done: Cell::new(false),
        pulled: Cell::new(false),
        pull_failure: RefCell::new(None),
        ended: Cell::new(false),
        waiting: RefCell::new(Vec::new()),
    };
    let stream: JsValue = InferStream { state: Rc::new(state) }.into();
    // `[Symbol.asyncIterator]()` returns the iterator itself, which is exactly what
    // `Object.prototype.valueOf` does for an object: no code of ours, no `eval`.
    if let Ok(prototype) = Reflect::get_prototype_of(&stream) {
        let key: JsValue = Symbol::async_iterator().into();
        if !Reflect::has(&prototype, &key).unwrap_or(true) {
            let value_of = Reflect::get(&Object::new(), &JsValue::from_str("valueOf")).unwrap_or(JsValue::UNDEFINED);
            let _ = Reflect::set(&prototype, &key, &value_of);
        }
    }
    Ok(stream)
}

/// The next answer for the page, `None` at the end.
async fn next(state: &State) -> core::result::Result<Option<JsValue>, JsValue> {
    loop {
        if state.ended.get() {
            return Ok(None);
        }
        let front = state.batches.borrow().front().cloned();
        match front {
            Some(batch) => {
                if let Some(value) = batch.results.borrow_mut().pop_front() {
                    return Ok(Some(value));
                }
                if batch.done.get() {
                    state.batches.borrow_mut().pop_front();
                    state.wake();
                    if let Some(failure) = batch.failure.take() {
                        state.end();
                        return Err(failure);
                    }
                    continue;
                }
            }
            None if state.pulled.get() => {
                let failure = state.pull_failure.take();
                state.end();
                return failure.map_or(Ok(None), Err);
            }
            None => {}
        }
        state.changed().await;
    }
}

/// The pulling task: fills batches from the source while fewer than `inFlight` are held,
/// and starts each one's exchange as soon as it is full (or the source has ended).
async fn pull(state: Rc<State>) {
    let (batch_lines, in_flight) = (state.options.batch_lines as usize, state.options.in_flight as usize);
    let mut offset = 0u64;
    'batches: loop {
        while !state.ended.get() && state.batches.borrow().len() >= in_flight {
            state.changed().await;
        }
        if state.ended.get() {
            break;
        }
        let mut lines = Vec::with_capacity(batch_lines.min(1024));
        let mut source_done = false;
        while lines.len() < batch_lines {
            let pulled = pull_one(&state).await;
            if state.ended.get() {
                break 'batches;
            }
            match pulled {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => {
                    state.source_done.set(true);
                    source_done = true;
                    break;
                }
                Err(e) => {
                    // The lines pulled before the failure are still sent and answered.
                    *state.pull_failure.borrow_mut() = Some(e);
                    source_done = true;
                    break;
                }
            }
        }
        if !lines.is_empty() {
            let batch = Rc::new(Batch {
                offset,
                results: RefCell::new(VecDeque::new()),
                failure: RefCell::new(None),
                done: Cell::new(false),
                abort: AbortController::new().ok(),
            });
            offset += lines.len() as u64;
            state.batches.borrow_mut().push_back(batch.clone());
            state.wake();
            spawn_local(run_batch(state.clone(), batch, lines));
        }
        if source_done {
            break;
        }
    }
    state.pulled.set(true);
    state.wake();
}

/// The source's next request, checked and serialized now (so the page changing it later
/// cannot change what is sent); `None` when the source is done.
async fn pull_one(state: &State) -> core::result::Result<Option<Zeroizing<Vec<u8>>>, JsValue> {
    let answer = state.source_next.call0(&state.source)?;
    let answer = JsFuture::from(Promise::resolve(&answer)).await?;
    if Reflect::get(&answer, &JsValue::from_str("done"))?.is_truthy() {
        return Ok(None);
    }
    let mut value = Reflect::get(&answer, &JsValue::from_str("value"))?;
    if state.sync_source {
        value = JsFuture::from(Promise::resolve(&value)).await?;
    }
    Ok(Some(Zeroizing::new(request_body_from_js(&value)?)))
}

/// One batch's exchange, its outcome recorded in the batch.
async fn run_batch(state: Rc<State>, batch: Rc<Batch>, lines: Vec<Zeroizing<Vec<u8>>>) {
    let outcome = exchange(&state, &batch, &lines).await;
    drop(lines);
    if let Err(e) = outcome {
        *batch.failure.borrow_mut() = Some(e.into());
    }
    batch.done.set(true);
    state.wake();
}

/// Seals the batch as one chunked request, posts it, and turns the answer into results as
/// it arrives. Sent once more with a refetched key configuration on `ohttp-key`.
async fn exchange(state: &State, batch: &Batch, lines: &[Zeroizing<Vec<u8>>]) -> Result<()> {
    let inner = &state.inner;
    let mut cached = inner.fresh_keys().await?;
    let mut refetched = false;
    loop {
        let rng = &mut rand_core::UnwrapErr(getrandom::SysRng);
        let (mut body, mut sender, mut receiver) = cached.session().start_stream(
            "POST",
            &state.path,
            &[],
            DEFAULT_MAX_LINE,
            crate::client::page_secs(),
            rng,
        )?;
        for line in lines {
            body.extend(sender.line(line)?);
        }
        body.extend(sender.finish()?);
        let url = &inner.gateway_url;
        let (chunked_req, chunked_res) = (media_type::OHTTP_CHUNKED_REQUEST, media_type::OHTTP_CHUNKED_RESPONSE);
        let mut response = inner
            .transport
            .post_open(url, chunked_req, chunked_res, &body, batch.abort.as_ref().map(AbortController::signal))
            .await?;
        drop(body);
        match receiver.check_outer_at(&response.head.outer(), cached.age(instant(now())))? {
            StreamStart::Answering => {}
            // A batch is held until answered, so sending it again replays nothing unseen.
            StreamStart::RefetchKeys(_) if !refetched => {
                refetched = true;
                cached = inner.refetch(cached.generation()).await?;
                continue;
            }
            StreamStart::RefetchKeys(e) => return Err(e.into()),
        }
        let mut answered = 0u64;
        while let Some(piece) = inner.transport.read(&mut response).await? {
            for event in receiver.push(&piece)? {
                deliver(state, batch, event, &mut answered)?;
            }
        }
        for event in receiver.finish()? {
            deliver(state, batch, event, &mut answered)?;
        }
        if answered != lines.len() as u64 {
            return Err(ClientError::InvalidResponse(format!(
                "the gateway answered {answered} of the {} requests of a batch",
                lines.len()
            )));
        }
        return Ok(());
    }
}

/// Records one event of a batch's answer for the page. A refusal of the whole batch is the
/// batch's failure.
fn deliver(state: &State, batch: &Batch, event: StreamEvent, answered: &mut u64) -> Result<()> {
    let value = match event {
        StreamEvent::Head { .. } => return Ok(()),
        StreamEvent::Refused(e) => return Err(e.into()),
        StreamEvent::Line(line) => match line_error(&line) {
            Some(CoreError::Line { line, status, message }) => {
                let line = batch.offset + line;
                ClientError::Exchange(CoreError::Line { line, status, message }).into()
            }
            Some(other) => ClientError::Exchange(other).into(),
            None => match json::answer(&line, Answer::Inference) {
                Ok(value) => value,
                Err(e) => e.into(),
            },
        },
    };
    *answered += 1;
    batch.results.borrow_mut().push_back(value);
    state.wake();
    Ok(())
}

/// `inferStream` against the in-memory gateway of the client tests, which answers chunked
/// requests line by line (`Fake::stream`). Runs in Node and in Chromium.
#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use js_sys::Array;
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;
    use crate::client::tests::{Fake, code, connect, kserve, rejected, settle};

    /// A request whose first element is `x` (the fake echoes it; a negative one is refused).
    fn row(x: f64) -> JsValue {
        js_sys::JSON::parse(&format!(
            r#"{{"inputs":[{{"name":"input","shape":[1,3],"datatype":"FP64","data":[{x},20.66,117.8]}}]}}"#
        ))
        .unwrap()
    }

    fn rows(xs: &[f64]) -> JsValue {
        xs.iter().map(|&x| row(x)).collect::<Array>().into()
    }

    fn stream_options(batch_lines: u32, in_flight: u32) -> JsValue {
        let o = Object::new();
        set(&o, "batchLines", batch_lines.into());
        set(&o, "inFlight", in_flight.into());
        o.into()
    }

    /// The iterator's next result: `Some(value)` or `None` when done.
    async fn next_of(stream: &JsValue) -> core::result::Result<Option<JsValue>, JsValue> {
        let next: Function = Reflect::get(stream, &"next".into()).unwrap().unchecked_into();
        let result = JsFuture::from(Promise::from(next.call0(stream).unwrap())).await?;
        if Reflect::get(&result, &"done".into()).unwrap().is_truthy() {
            return Ok(None);
        }
        Ok(Some(Reflect::get(&result, &"value".into()).unwrap()))
    }

    /// The echoed element of an answer.
    fn echoed(answer: &JsValue) -> f64 {
        let outputs: Array = Reflect::get(answer, &"outputs".into()).unwrap().unchecked_into();
        let data: Array = Reflect::get(&outputs.get(0), &"data".into()).unwrap().unchecked_into();
        data.get(0).as_f64().unwrap()
    }

    /// An endless async iterator of rows 0, 1, 2 ... counting its pulls and `return()` calls.
    fn endless(pulls: Rc<Cell<u32>>, returned: Rc<Cell<u32>>) -> JsValue {
        let iterator = Object::new();
        let next = Closure::<dyn Fn() -> Promise>::new(move || {
            let n = pulls.get();
            pulls.set(n + 1);
            let result = Object::new();
            set(&result, "done", false.into());
            set(&result, "value", row(f64::from(n)));
            let result: JsValue = result.into();
            Promise::resolve(&result)
        });
        set(&iterator, "next", next.into_js_value());
        let close = Closure::<dyn Fn() -> JsValue>::new(move || {
            returned.set(returned.get() + 1);
            iterator_result(None).into()
        });
        set(&iterator, "return", close.into_js_value());
        let iterable = Object::new();
        let it = iterator.clone();
        let factory = Closure::<dyn Fn() -> JsValue>::new(move || it.clone().into());
        Reflect::set(&iterable, &Symbol::async_iterator().into(), &factory.into_js_value()).unwrap();
        iterable.into()
    }

    #[wasm_bindgen_test]
    async fn answers_come_in_input_order_across_batches() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        let xs: Vec<f64> = (0..10).map(|i| 1000.5 + f64::from(i)).collect();
        let stream = gw.infer_stream("breast-cancer".into(), rows(&xs), stream_options(3, 2)).unwrap();
        // The iterator is its own async iterable, as `for await` needs.
        let own: Function = Reflect::get(&stream, &Symbol::async_iterator().into()).unwrap().unchecked_into();
        assert_eq!(own.call0(&stream).unwrap(), stream);
        let mut seen = Vec::new();
        while let Some(answer) = next_of(&stream).await.unwrap() {
            seen.push(echoed(&answer));
        }
        assert_eq!(seen, xs);
        assert_eq!(fake.posts.get(), 4, "batches of 3, 3, 3 and 1");
        assert!(next_of(&stream).await.unwrap().is_none(), "done stays done");
        // The feature values went out only inside the ciphertext.
        for body in fake.bodies.borrow().iter() {
            for needle in [&b"1000.5"[..], b"20.66", b"117.8"] {
                assert!(!body.windows(needle.len()).any(|w| w == needle));
            }
        }
    }

    #[wasm_bindgen_test]
    async fn an_error_line_is_yielded_with_its_stream_line_number_and_the_stream_goes_on() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        let stream =
            gw.infer_stream("breast-cancer".into(), rows(&[1.0, 2.0, -1.0, 4.0]), stream_options(2, 2)).unwrap();
        assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), 1.0);
        assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), 2.0);
        let e = next_of(&stream).await.unwrap().unwrap();
        assert_eq!(code(&e), "inference");
        assert_eq!(Reflect::get(&e, &"status".into()).unwrap(), 400);
        // Line 1 of the second batch is line 3 of the stream.
        assert_eq!(Reflect::get(&e, &"line".into()).unwrap(), 3);
        assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), 4.0);
        assert!(next_of(&stream).await.unwrap().is_none());
    }

    #[wasm_bindgen_test]
    async fn a_truncated_answer_throws_once_after_the_answers_before_it() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        fake.truncate.set(true);
        let stream = gw.infer_stream("breast-cancer".into(), rows(&[1.0, 2.0, 3.0]), stream_options(8, 2)).unwrap();
        assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), 1.0);
        assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), 2.0);
        assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), 3.0);
        let e = next_of(&stream).await.err().unwrap();
        assert_eq!(code(&e), "protocol");
        assert!(next_of(&stream).await.unwrap().is_none(), "the stream ends after its failure");
    }

    #[wasm_bindgen_test]
    async fn a_refused_stream_throws_once() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        let stream = gw.infer_stream("nope".into(), rows(&[1.0]), JsValue::UNDEFINED).unwrap();
        let e = next_of(&stream).await.err().unwrap();
        assert_eq!((code(&e), Reflect::get(&e, &"status".into()).unwrap()), ("inference".into(), 404.into()));
        assert!(next_of(&stream).await.unwrap().is_none());
    }

    #[wasm_bindgen_test]
    async fn breaking_off_stops_the_pulling_and_closes_the_source() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        let (pulls, returned) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let source = endless(pulls.clone(), returned.clone());
        let stream = gw.infer_stream("breast-cancer".into(), source, stream_options(4, 2)).unwrap();
        for expected in 0..6 {
            assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), f64::from(expected));
        }
        // At most `inFlight` batches are held: the endless source is pulled no further ahead.
        settle(50).await;
        assert!(pulls.get() <= 4 * 3, "pulled {} rows for 6 read", pulls.get());
        let close: Function = Reflect::get(&stream, &"return".into()).unwrap().unchecked_into();
        JsFuture::from(Promise::from(close.call0(&stream).unwrap())).await.unwrap();
        let pulled = pulls.get();
        settle(50).await;
        assert_eq!(pulls.get(), pulled, "no pulling after return()");
        assert_eq!(returned.get(), 1, "the source's own return() was called");
        assert!(next_of(&stream).await.unwrap().is_none());
    }

    #[wasm_bindgen_test]
    async fn a_rotated_key_refetches_once_and_resends_the_batch() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        fake.rotate(2);
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let stream = gw.infer_stream("breast-cancer".into(), rows(&xs), stream_options(3, 2)).unwrap();
        let mut seen = Vec::new();
        while let Some(answer) = next_of(&stream).await.unwrap() {
            seen.push(echoed(&answer));
        }
        assert_eq!(seen, xs);
        assert_eq!((fake.gets.get(), fake.posts.get()), (2, 4), "two refused batches, one key fetch, two resends");
        // A gateway that keeps refusing is not retried forever.
        *fake.served.borrow_mut() = crate::client::tests::keys(3);
        let stream = gw.infer_stream("breast-cancer".into(), rows(&xs), stream_options(3, 1)).unwrap();
        let e = next_of(&stream).await.err().unwrap();
        assert_eq!(code(&e), "problem");
        assert_eq!((fake.gets.get(), fake.posts.get()), (3, 6));
    }

    #[wasm_bindgen_test]
    async fn bad_arguments_throw_at_once() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        let o = Object::new();
        set(&o, "batchLine", 3.into());
        let e = gw.infer_stream("breast-cancer".into(), rows(&[1.0]), o.into()).err().unwrap();
        assert_eq!(code(&e), "invalid-options");
        let e = gw.infer_stream("breast-cancer".into(), rows(&[1.0]), stream_options(0, 1)).err().unwrap();
        assert_eq!(code(&e), "invalid-options");
        let e = gw.infer_stream("breast-cancer".into(), 42.into(), JsValue::UNDEFINED).err().unwrap();
        assert_eq!(code(&e), "invalid-input");
        let e = gw.infer_stream("../x".into(), rows(&[1.0]), JsValue::UNDEFINED).err().unwrap();
        assert_eq!(code(&e), "invalid-input");
        // A malformed request in the source: the stream ends with it, nothing of it sent.
        let bad: Array = [row(1.0), js_sys::JSON::parse(r#"{"inputs":[]}"#).unwrap()].into_iter().collect();
        let stream = gw.infer_stream("breast-cancer".into(), bad.into(), JsValue::UNDEFINED).unwrap();
        assert_eq!(echoed(&next_of(&stream).await.unwrap().unwrap()), 1.0);
        assert_eq!(code(&next_of(&stream).await.err().unwrap()), "invalid-input");
        let _ = rejected;
    }
}
