//! Fuzz target `chunked`: chunked OHTTP streams (draft-ietf-ohai-chunked-ohttp-08) as they
//! arrive in pieces. A request on the gateway: [`RequestHeaderReader`],
//! [`GatewayKeys::decapsulate_chunked`] on both HPKE backends and [`RequestOpener`], its
//! plaintext fed to the incremental Binary HTTP request decoder as the gateway does, and an
//! answer sealed by [`ChunkedServerResponse`]. A response on the client: the
//! [`ResponseOpener`] of a fixed request, its plaintext fed to the response decoder.
//!
//! The input's first byte picks how the rest is sliced into pushes ([`super::slicing`]).
//! Asserted: both backends open the same request chunks, or both fail.

use alloc::format;
use alloc::vec::Vec;

use super::{FixedRng, Seed, X25519_KEY_ID, aead_name, sliced, slicing};
use crate::bhttp::stream::{Decoder, Encoder};
use crate::chunked::{ChunkedClientRequest, ChunkedServerResponse, RequestHeaderReader};
use crate::{GatewayKeys, KeyConfig, Result, SymmetricSuite, bhttp, rand_core};

/// The RNG seed of the fixed client request whose responses the target opens.
const CLIENT_SEED: u64 = 7;
/// The suite of the fixed client request.
const CLIENT_SUITE: SymmetricSuite = SymmetricSuite::ALL[0];

/// The `chunked` target: one gateway per backend, and the fixed client's configuration.
#[derive(Debug)]
pub struct Target {
    gateways: Vec<GatewayKeys>,
    client_config: KeyConfig,
}

/// What opening a chunked request produced: the chunks' plaintext joined, or the failure.
type Opened = core::result::Result<Vec<u8>, ()>;

impl Target {
    /// Derives the fixed keys on every backend.
    pub fn new() -> Result<Self> {
        let super::Gateways { gateways, client_config } = super::Gateways::new()?;
        Ok(Self { gateways, client_config })
    }

    /// Feeds `data` (after its slicing byte) to a request opener on every gateway and to the
    /// fixed request's response opener; true when either stream opened completely.
    pub fn run(&self, data: &[u8]) -> bool {
        let Some((piece, data)) = slicing(data) else { return false };
        let mut first: Option<Opened> = None;
        for gateway in &self.gateways {
            let opened = open_request(gateway, data, piece);
            match &first {
                None => first = Some(opened),
                Some(first) => assert_eq!(first, &opened, "the backends open the same chunks"),
            }
        }
        let request_ok = matches!(first, Some(Ok(_)));
        request_ok | self.open_response(data, piece)
    }

    /// The response opener of the fixed request, fed `data` in pieces of `piece` bytes.
    fn open_response(&self, data: &[u8], piece: usize) -> bool {
        let mut rng = rand_core::UnwrapErr(FixedRng::new(CLIENT_SEED));
        let Ok((_, _, mut response)) =
            ChunkedClientRequest::new(&self.client_config, CLIENT_SUITE).and_then(|request| request.start(&mut rng))
        else {
            return false;
        };
        let mut decoder = Decoder::response();
        for piece in data.chunks(piece) {
            let Ok(chunks) = response.push(piece) else { return false };
            for chunk in chunks {
                let _ = decoder.push(&chunk);
            }
        }
        match response.finish() {
            Ok(last) => {
                let _ = decoder.push(&last);
                let _ = decoder.finish();
                true
            }
            Err(_) => false,
        }
    }

    /// Valid chunked requests (each key and AEAD; one chunk, several, an empty final one) and
    /// valid responses to the fixed request, each sliced a few ways.
    pub fn seeds(&self) -> Vec<Seed> {
        let mut seeds = Vec::new();
        let Some(gateway) = self.gateways.first() else { return seeds };
        let mut rng = rand_core::UnwrapErr(FixedRng::new(11));
        let (head, body) = ndjson_request();
        for config in gateway.configs() {
            let kem = if config.key_id() == X25519_KEY_ID { "x25519" } else { "xwing" };
            for (i, &suite) in SymmetricSuite::ALL.iter().enumerate() {
                let Ok((mut wire, mut sealer, _)) =
                    ChunkedClientRequest::new(&config, suite).and_then(|r| r.start(&mut rng))
                else {
                    continue;
                };
                let (message, mut encoder) = Encoder::request(&head);
                let mut sealed = sealer.seal(&message);
                for line in body.iter().take(i + 1) {
                    sealed = sealed.and_then(|mut out| {
                        out.extend(sealer.seal(&encoder.body(line))?);
                        Ok(out)
                    });
                }
                let end = encoder.finish(&[]);
                let sealed = sealed.and_then(|mut out| {
                    // The last seed of each key ends with an empty final chunk.
                    if i == 2 {
                        out.extend(sealer.seal(&end)?);
                        out.extend(sealer.finish(b"")?);
                    } else {
                        out.extend(sealer.finish(&end)?);
                    }
                    Ok(out)
                });
                if let Ok(sealed) = sealed {
                    wire.extend(sealed);
                    for piece in [64, 7] {
                        seeds.push((format!("request-{kem}-{}-{piece}", aead_name(suite)), sliced(piece, &wire)));
                    }
                }
            }
        }
        // Responses to the fixed request, sealed by the gateway that opened it.
        for lines in [0, 1, 3] {
            if let Some(wire) = self.fixed_response(gateway, lines) {
                for piece in [64, 1] {
                    seeds.push((format!("response-{lines}-lines-{piece}"), sliced(piece, &wire)));
                }
            }
        }
        seeds
    }

    /// The gateway's answer to the fixed request: a 200 with `lines` NDJSON lines.
    fn fixed_response(&self, gateway: &GatewayKeys, lines: usize) -> Option<Vec<u8>> {
        let mut rng = rand_core::UnwrapErr(FixedRng::new(CLIENT_SEED));
        let (header, sealer, _) =
            ChunkedClientRequest::new(&self.client_config, CLIENT_SUITE).and_then(|r| r.start(&mut rng)).ok()?;
        let mut wire = header;
        wire.extend(sealer.finish(b"").ok()?);
        let mut reader = RequestHeaderReader::new();
        reader.push(&wire).ok()?;
        let (_, responder) = gateway.decapsulate_chunked(reader).ok()?;
        let (mut out, mut sealer) = responder.start(&mut rand_core::UnwrapErr(FixedRng::new(5))).ok()?;
        let head = bhttp::Response::new(
            200,
            alloc::vec![bhttp::Field::new("content-type", "application/x-ndjson")],
            alloc::vec![],
        );
        let (message, mut encoder) = Encoder::response(&head);
        out.extend(sealer.seal(&message).ok()?);
        for line in ndjson_request().1.iter().take(lines) {
            out.extend(sealer.seal(&encoder.body(line)).ok()?);
        }
        out.extend(sealer.finish(&encoder.finish(&[])).ok()?);
        Some(out)
    }
}

/// Opens a chunked request on `gateway` as it arrives in pieces of `piece` bytes, feeding
/// its plaintext to the Binary HTTP request decoder and answering it when it opened.
fn open_request(gateway: &GatewayKeys, data: &[u8], piece: usize) -> Opened {
    let mut header = RequestHeaderReader::new();
    let mut opened = None;
    let mut plaintext = Vec::new();
    let mut decoder = Decoder::request();
    for mut piece in data.chunks(piece) {
        if opened.is_none() {
            let used = header.push(piece).map_err(drop)?;
            piece = piece.get(used..).unwrap_or_default();
            if !header.is_complete() {
                continue;
            }
            opened = Some(gateway.decapsulate_chunked(core::mem::take(&mut header)).map_err(drop)?);
        }
        if let Some((opener, _)) = opened.as_mut() {
            for chunk in opener.push(piece).map_err(drop)? {
                let _ = decoder.push(&chunk);
                plaintext.extend_from_slice(&chunk);
            }
        }
    }
    let (opener, responder) = opened.ok_or(())?;
    let last = opener.finish().map_err(drop)?;
    let _ = decoder.push(&last);
    let _ = decoder.finish();
    plaintext.extend_from_slice(&last);
    answer(responder);
    Ok(plaintext)
}

/// Answers a request that opened, as the gateway does: the nonce, one chunk, the final one.
fn answer(responder: ChunkedServerResponse) {
    if let Ok((_, mut sealer)) = responder.start(&mut rand_core::UnwrapErr(FixedRng::new(9))) {
        let _ = sealer.seal(b"{\"outputs\":[]}\n");
        let _ = sealer.finish(b"");
    }
}

/// An NDJSON inference request's head and three body lines, as the SDK streams them.
fn ndjson_request() -> (bhttp::Request, [&'static [u8]; 3]) {
    let mut head = bhttp::Request::new("POST", "https", "gateway.example", "/v2/models/credit-risk/infer");
    head.headers.push(bhttp::Field::new("content-type", "application/x-ndjson"));
    let line = b"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,2],\"datatype\":\"FP32\",\"data\":[0.5,1.5]}]}\n";
    (head, [line, line, b"{\"inputs\":[]}\n"])
}
