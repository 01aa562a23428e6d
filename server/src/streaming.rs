//! Streaming batch scoring inside the encryption: `POST /v2/models/{name}/infer` with
//! `content-type: application/x-ndjson`, one KServe V2 inference request per line, answered
//! with `application/x-ndjson`, one line per request line, in order.
//!
//! The request body is read as it arrives and cut into lines by [`LineSplitter`] (bounded:
//! a line longer than the limit is skipped to its end, never buffered whole, and answered
//! with an error line). The lines already read are scored together, up to half of
//! `--stream-window` at a time with two such groups in flight: each line is checked for the
//! tenant here, then the group goes to a session's blocking thread, where each line is parsed
//! on its own and those that parse run through the same code as a single request (queue for
//! a session, run, serialize with the size cap), stacked into one run of the runtime when the
//! model and the lines allow it (`Model::infer_batch`: each line still gets the answer it
//! would get alone). Parsing there, not on the task that moves the bytes, lets the two groups
//! in flight use two cores. Answers go out in request order as soon as their group is scored.
//! Nothing is read ahead of what the client reads back: the response body is a
//! stream the transport pulls, and lines are taken from the request only when a window slot
//! is free, so a client that stops reading stops the scoring and holds at most a window of
//! lines in memory. Tenant checks and rate limits apply to every line (the stream itself
//! was authorized, and charged, as the first line).
//!
//! A bad line (not JSON, not an inference request, too long, refused for the tenant, the
//! model busy) gets an error line, `{"error": "...", "status": 400, "line": 3}`, and the
//! stream goes on. A request body that fails (cut off, or a chunk that did not decrypt) ends
//! the answer with one last error line saying from which line on nothing was read. Error
//! texts are the inner API's fixed texts, never request values.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use http_body_util::BodyExt;
use serde::Serialize;

use crate::authorization::Reauthorize;
use crate::inference::{InnerError, Models};

/// The media type of a stream of JSON lines.
pub const NDJSON: &str = "application/x-ndjson";

/// True when `headers` declare an NDJSON body.
pub fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(NDJSON))
}

/// One line cut from the request body.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// Line `number` (1-based), without its newline.
    Text {
        /// 1-based line number.
        number: u64,
        /// The line's bytes.
        bytes: Vec<u8>,
    },
    /// Line `number` was longer than the limit; its bytes were dropped as they came.
    TooLong {
        /// 1-based line number.
        number: u64,
    },
}

/// Cuts a byte stream into lines of at most `max` bytes, incrementally: fed any slices, it
/// holds at most one partial line (at most `max` bytes). Blank lines (empty, or only
/// whitespace and a `\r`) are skipped but counted, so line numbers match the client's.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    partial: Vec<u8>,
    /// The line being read is over the limit: its bytes are dropped until its newline.
    skipping: bool,
    number: u64,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max, partial: Vec::new(), skipping: false, number: 0 }
    }

    /// Feeds `bytes`; complete lines are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut VecDeque<Line>) {
        while !bytes.is_empty() {
            let (piece, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(at) => (&bytes[..at], &bytes[at + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if !self.skipping {
                if self.partial.len() + piece.len() > self.max {
                    self.skipping = true;
                    self.partial = Vec::new();
                } else {
                    self.partial.extend_from_slice(piece);
                }
            }
            if ended {
                self.end_line(out);
            }
        }
    }

    /// The end of the body: a last line without a newline is a line too.
    pub fn finish(&mut self, out: &mut VecDeque<Line>) {
        if self.skipping || !self.partial.is_empty() {
            self.end_line(out);
        }
    }

    /// How many lines (blank ones included) have ended so far.
    pub fn lines(&self) -> u64 {
        self.number
    }

    fn end_line(&mut self, out: &mut VecDeque<Line>) {
        self.number += 1;
        let number = self.number;
        if std::mem::take(&mut self.skipping) {
            out.push_back(Line::TooLong { number });
        } else {
            let bytes = std::mem::take(&mut self.partial);
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                out.push_back(Line::Text { number, bytes });
            }
        }
    }
}

/// What a failed line is answered with.
#[derive(Serialize)]
struct ErrorLine<'a> {
    error: &'a str,
    status: u16,
    line: u64,
}

fn error_line(error: &InnerError, line: u64) -> Bytes {
    let mut out = serde_json::to_vec(&ErrorLine { error: error.message(), status: error.status().as_u16(), line })
        .unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// The reading side of a stream: the body, the splitter, lines cut but not taken yet.
struct Reader {
    body: Body,
    splitter: LineSplitter,
    ready: VecDeque<Line>,
    ended: bool,
}

/// What the reader hands the scorer next.
enum Next {
    Line(Line),
    /// The body failed after `lines` lines, for the reason `why` (a fixed text of the
    /// gateway's): the last thing the answer says.
    Failed {
        why: String,
        lines: u64,
    },
}

impl Reader {
    async fn next(&mut self) -> Option<Next> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Some(Next::Line(line));
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.splitter.push(&data, &mut self.ready);
                    }
                }
                Some(Err(e)) => {
                    self.ended = true;
                    self.ready.clear();
                    return Some(Next::Failed { lines: self.splitter.lines(), why: e.to_string() });
                }
                None => {
                    self.ended = true;
                    self.splitter.finish(&mut self.ready);
                }
            }
        }
    }
}

/// Scores the NDJSON stream `body` with model `name` (`version`, or the newest), lines
/// authorized by `reauthorize`; the answer streams as lines are ready.
pub fn score(
    models: Arc<Models>,
    name: String,
    version: Option<String>,
    reauthorize: Option<Reauthorize>,
    body: Body,
) -> Response {
    let limits = models.limits();
    let reader =
        Reader { body, splitter: LineSplitter::new(limits.max_line_bytes), ready: VecDeque::new(), ended: false };
    let lines = stream::unfold(reader, |mut reader| async move { reader.next().await.map(|next| (next, reader)) });
    // Lines already read are scored together, up to half the window at a time, and two such
    // groups are in flight: at most the window's lines are held.
    let group = (limits.stream_window / 2).max(1);
    let answers = lines
        .ready_chunks(group)
        .map(move |nexts| score_group(models.clone(), name.clone(), version.clone(), reauthorize.clone(), nexts))
        .buffered(2)
        .flat_map(stream::iter)
        .map(Ok::<_, std::convert::Infallible>);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON))], Body::from_stream(answers)).into_response()
}

/// Scores a group of lines: each is checked for the tenant here, then those allowed are
/// parsed, run together and serialized on the session's blocking thread
/// ([`Models::score_lines`]: stacked into one run of the runtime when they can be); the
/// answers come back in line order.
async fn score_group(
    models: Arc<Models>,
    name: String,
    version: Option<String>,
    reauthorize: Option<Reauthorize>,
    nexts: Vec<Next>,
) -> Vec<Bytes> {
    let limits = models.limits();
    let mut answers: Vec<Option<Bytes>> = Vec::with_capacity(nexts.len());
    let mut places = Vec::new();
    let mut lines = Vec::new();
    for next in nexts {
        let answer = match next {
            Next::Line(Line::Text { number, bytes }) => {
                // The stream's own authorization charged the first line.
                let checked = match &reauthorize {
                    Some(check) if number > 1 => check.again(&name),
                    _ => Ok(()),
                };
                match checked {
                    Ok(()) => {
                        places.push((answers.len(), number));
                        lines.push(bytes);
                        None
                    }
                    Err(e) => Some(error_line(&e, number)),
                }
            }
            Next::Line(Line::TooLong { number }) => Some(error_line(
                &InnerError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the line is longer than {} bytes; it was not read", limits.max_line_bytes),
                ),
                number,
            )),
            Next::Failed { lines, why } => Some(error_line(
                &InnerError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the request stream failed after line {lines} ({why}); nothing after it was read"),
                ),
                lines + 1,
            )),
        };
        answers.push(answer);
    }
    if !lines.is_empty() {
        match models.score_lines(&name, version.as_deref(), lines).await {
            Ok(results) => {
                for ((at, number), result) in places.into_iter().zip(results) {
                    answers[at] = Some(match result {
                        Ok(mut answer) => {
                            answer.push(b'\n');
                            Bytes::from(answer)
                        }
                        Err(e) => error_line(&e, number),
                    });
                }
            }
            Err(e) => {
                for (at, number) in places {
                    answers[at] = Some(error_line(&e, number));
                }
            }
        }
    }
    answers.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, pieces: &[&[u8]]) -> Vec<Line> {
        let mut splitter = LineSplitter::new(max);
        let mut out = VecDeque::new();
        for piece in pieces {
            splitter.push(piece, &mut out);
        }
        splitter.finish(&mut out);
        out.into_iter().collect()
    }

    fn text(number: u64, bytes: &str) -> Line {
        Line::Text { number, bytes: bytes.as_bytes().to_vec() }
    }

    #[test]
    fn lines_are_cut_wherever_the_pieces_end() {
        let whole: &[u8] = b"{\"a\":1}\n{\"b\":2}\r\n\n  \n{\"c\":3}";
        let expected = vec![text(1, "{\"a\":1}"), text(2, "{\"b\":2}\r"), text(5, "{\"c\":3}")];
        assert_eq!(split(64, &[whole]), expected);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(split(64, &bytes), expected, "one byte at a time");
        let (a, b) = whole.split_at(9);
        assert_eq!(split(64, &[a, b]), expected);
    }

    #[test]
    fn a_long_line_is_dropped_as_it_comes_and_the_next_one_is_read() {
        let long = vec![b'x'; 100];
        let mut splitter = LineSplitter::new(10);
        let mut out = VecDeque::new();
        splitter.push(b"short\n", &mut out);
        for piece in long.chunks(7) {
            splitter.push(piece, &mut out);
            assert!(splitter.partial.len() <= 10, "never more than the limit held");
        }
        splitter.push(b"\nnext\n", &mut out);
        splitter.push(&long, &mut out);
        splitter.finish(&mut out);
        let lines: Vec<Line> = out.into_iter().collect();
        assert_eq!(
            lines,
            vec![text(1, "short"), Line::TooLong { number: 2 }, text(3, "next"), Line::TooLong { number: 4 }]
        );
        // Exactly the limit is fine.
        assert_eq!(split(5, &[b"12345\n123456\n"]), vec![text(1, "12345"), Line::TooLong { number: 2 }]);
    }

    #[test]
    fn only_the_ndjson_media_type_streams() {
        let mut headers = HeaderMap::new();
        assert!(!is_ndjson(&headers));
        for (value, streams) in [
            ("application/x-ndjson", true),
            ("Application/X-NDJSON; charset=utf-8", true),
            ("application/json", false),
            ("application/x-ndjsonx", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_ndjson(&headers), streams, "{value}");
        }
    }
}
