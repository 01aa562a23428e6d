//! The client core against an in-memory gateway (the protocol crate's gateway side): choice
//! and pinning, sealing, and every kind of answer `finish` classifies.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use sealgate_protocol::bhttp::stream as bstream;
use sealgate_protocol::{
    Aead, GatewayKey, GatewayKeys, Kdf, Kem, KeyConfig, SymmetricSuite, bhttp, chunked, media_type,
};

use super::*;

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn gateway(key_id: u8, kem: Kem, suites: Vec<SymmetricSuite>) -> GatewayKeys {
    GatewayKeys::new(vec![GatewayKey::generate(key_id, kem, suites, &mut rng()).unwrap()]).unwrap()
}

const AUTHORITY: &str = "gw.example:8443";

/// The callers' clock in these tests, UNIX seconds (2026-12-01 18:33:20 UTC).
const NOW: u64 = 1_796_150_000;

#[test]
fn key_configurations_are_chosen_by_kem_then_aead() {
    let config = |id, kem: Kem, aead| {
        let public_key = vec![9; kem.public_key_len()];
        KeyConfig::new(id, kem, public_key, vec![SymmetricSuite::new(Kdf::HkdfSha256, aead)]).unwrap()
    };
    let x25519 = config(1, Kem::X25519HkdfSha256, Aead::Aes128Gcm);
    let xwing = config(2, Kem::XWing, Aead::Aes128Gcm);
    let xwing_chacha = config(3, Kem::XWing, Aead::ChaCha20Poly1305);
    let both = [x25519.clone(), xwing.clone(), xwing_chacha.clone()];
    let pick = |configs: &[KeyConfig], pin, kem, aead| choose(configs, pin, kem, aead).unwrap().clone();
    // The default (X25519) stays X25519 while the gateway offers it ...
    assert_eq!(pick(&both, None, Kem::X25519HkdfSha256, Aead::Aes128Gcm), x25519);
    assert_eq!(pick(&both, None, Kem::X25519HkdfSha256, Aead::ChaCha20Poly1305), x25519);
    // ... and a gateway that offers only X-Wing is used with X-Wing.
    assert_eq!(pick(&both[1..], None, Kem::X25519HkdfSha256, Aead::Aes128Gcm), xwing);
    // Preferring X-Wing picks it, with the chosen AEAD where offered.
    assert_eq!(pick(&both, None, Kem::XWing, Aead::Aes128Gcm), xwing);
    assert_eq!(pick(&both, None, Kem::XWing, Aead::ChaCha20Poly1305), xwing_chacha);
    assert_eq!(pick(&both[..1], None, Kem::XWing, Aead::Aes128Gcm), x25519);
    // A pin wins over every preference.
    assert_eq!(pick(&both, Some(xwing_chacha.sha256()), Kem::X25519HkdfSha256, Aead::Aes128Gcm), xwing_chacha);
    assert_eq!(choose(&[], None, Kem::XWing, Aead::Aes128Gcm).unwrap_err(), Error::NoUsableKeyConfig { cause: None });
}

#[test]
fn the_session_uses_the_preferred_kem_and_aead() {
    let x25519 = gateway(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let xwing = gateway(2, Kem::XWing, SymmetricSuite::ALL.to_vec());
    let mut list = x25519.encoded_configs();
    list.extend(xwing.encoded_configs());
    let session = Preferences::new(AUTHORITY).session(&list).unwrap();
    assert_eq!(session.key_config().kem(), Kem::X25519HkdfSha256);
    assert_eq!(session.suite().aead, Aead::Aes128Gcm);
    let session = Preferences::new(AUTHORITY).kem(Kem::XWing).aead(Aead::ChaCha20Poly1305).session(&list).unwrap();
    assert_eq!((session.key_config().key_id(), session.suite().aead), (2, Aead::ChaCha20Poly1305));

    // The preferred AEAD when offered, else the gateway's first.
    let chacha_only =
        gateway(3, Kem::X25519HkdfSha256, vec![SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305)]);
    let session = Preferences::new(AUTHORITY).session(&chacha_only.encoded_configs()).unwrap();
    assert_eq!(session.suite().aead, Aead::ChaCha20Poly1305);
}

#[test]
fn the_pin_is_checked_before_anything_is_encrypted() {
    let gw = gateway(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let sha = gw.configs()[0].sha256();
    let pinned = Preferences::new(AUTHORITY).pin(Some(sha));
    assert_eq!(pinned.session(&gw.encoded_configs()).unwrap().key_config(), &gw.configs()[0]);
    let other = gateway(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let e = pinned.session(&other.encoded_configs()).unwrap_err();
    assert_eq!(e, Error::KeyConfigPinMismatch { got: to_hex(&other.configs()[0].sha256()) });
    assert_eq!(e.code(), "key-config-pin-mismatch");
    let e = Preferences::new(AUTHORITY).session(b"\x00\x05junk").unwrap_err();
    assert!(matches!(e, Error::NoUsableKeyConfig { cause: Some(_) }), "{e:?}");
    assert!(core::error::Error::source(&e).is_some(), "the decoding error is kept as the cause");
}

#[test]
fn discovery_checks_status_and_media_type() {
    let gw = gateway(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let keys = gw.encoded_configs();
    let prefs = Preferences::new(AUTHORITY);
    assert!(prefs.discover(&OuterResponse::new(200, "Application/OHTTP-Keys; x=1", &keys)).is_ok());
    let e = prefs.discover(&OuterResponse::new(200, "text/html", &keys)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "https://gw.example:8443/.well-known/ohttp-gateway answered with content type 'text/html', not \
         application/ohttp-keys; is this the URL of a Sealgate gateway?"
    );
    let e = prefs.discover(&OuterResponse::new(404, "text/html", b"<h1>Not Found</h1>")).unwrap_err();
    assert!(e.to_string().ends_with("answered HTTP 404 (text/html); is this the URL of a Sealgate gateway?"), "{e}");
    assert_eq!((e.code(), e.status()), ("unexpected-response", Some(404)));
}

/// Seals a request to `gw`, lets `answer` build the outer answer from the decapsulated
/// request, and finishes the exchange.
fn exchange(
    gw: &GatewayKeys,
    session: &Session,
    answer: impl FnOnce(Vec<u8>, Vec<u8>) -> (u16, &'static str, Option<&'static str>, Vec<u8>),
) -> Result<Finished> {
    let sealed = session.prepare("POST", "/v2/models/m/infer", &[("x-trace", "1")], b"{}".to_vec(), NOW, &mut rng())?;
    let (status, content_type, retry_after, body) = match gw.decapsulate(&sealed.encapsulated) {
        Ok((inner, responder)) => {
            let encrypt = |response: bhttp::Response| responder.encapsulate(&response.encode(), &mut rng()).unwrap();
            answer(inner.to_vec(), encrypt(bhttp::Response::new(200, vec![], br#"{"ok":1}"#.to_vec())))
        }
        Err(_) => answer(Vec::new(), Vec::new()),
    };
    sealed.pending.finish(&OuterResponse::new(status, content_type, &body).retry_after(retry_after))
}

#[test]
fn a_sealed_request_round_trips_with_the_token_inside() {
    let gw = gateway(9, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let token = zeroize::Zeroizing::new("sg_s3cret".to_string());
    let session = Preferences::new(AUTHORITY).token(Some(token)).session(&gw.encoded_configs()).unwrap();
    let sealed = session.prepare("POST", "/v2/models/m/infer", &[], b"{}".to_vec(), NOW, &mut rng()).unwrap();
    assert!(!sealed.encapsulated.windows(9).any(|w| w == b"sg_s3cret"), "the token travels encrypted");
    let mut seen = None;
    let finished = exchange(&gw, &session, |inner, encrypted| {
        seen = Some(bhttp::Request::decode(&inner).unwrap());
        (200, media_type::OHTTP_RESPONSE, None, encrypted)
    })
    .unwrap();
    let inner = seen.unwrap();
    assert_eq!((inner.method.as_str(), inner.authority.as_str()), ("POST", AUTHORITY));
    assert_eq!(inner.header("authorization"), Some(&b"Bearer sg_s3cret"[..]));
    assert_eq!(inner.header("content-type"), Some(&b"application/json"[..]));
    assert_eq!(inner.header("x-trace"), Some(&b"1"[..]));
    assert_eq!(inner.header("date"), Some(crate::http_date(NOW).as_bytes()), "dated by the caller's clock");
    match finished {
        Finished::Answer(response) => assert_eq!((response.status, &response.body[..]), (200, &br#"{"ok":1}"#[..])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_answer_is_classified_in_one_place() {
    let gw = gateway(4, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let session = Preferences::new(AUTHORITY).session(&gw.encoded_configs()).unwrap();
    let answer = |status, content_type, retry_after: Option<&'static str>, body: &'static [u8]| {
        exchange(&gw, &session, move |_, _| (status, content_type, retry_after, body.to_vec()))
    };

    let key = br#"{"type":"https://iana.org/assignments/http-problem-types#ohttp-key","title":"key configuration mismatch","status":422}"#;
    match answer(422, media_type::PROBLEM_JSON, None, key).unwrap() {
        Finished::RefetchKeys(e) => assert!(e.is_key_config_mismatch() && e.code() == "problem"),
        other => panic!("{other:?}"),
    }
    let e = answer(401, media_type::PROBLEM_JSON, None, br#"{"title":"no","detail":"why"}"#).unwrap_err();
    assert_eq!(e.to_string(), "the gateway refused the request (401): no: why");
    assert!(matches!(&e, Error::Problem { problem_type, .. } if problem_type == "about:blank"));
    // Problem JSON counts only with the problem media type, and only when it parses.
    let e = answer(400, "application/json", None, br#"{"title":"x"}"#).unwrap_err();
    assert_eq!(e.code(), "unexpected-response");
    let e = answer(400, media_type::PROBLEM_JSON, None, b"{garbage").unwrap_err();
    assert_eq!(e.code(), "unexpected-response");

    let e = answer(503, media_type::PROBLEM_JSON, Some(" 2 "), b"{}").unwrap_err();
    assert_eq!(e, Error::Overloaded { retry_after: Some(Duration::from_secs(2)) });
    assert!(e.is_retryable());
    assert_eq!(e.to_string(), "the gateway is overloaded; retry after 2 s");
    let e = answer(503, "text/plain", Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"busy").unwrap_err();
    assert_eq!(e, Error::Overloaded { retry_after: None });

    let e = answer(200, "text/html", None, b"<html>").unwrap_err();
    assert_eq!(e.code(), "unexpected-response");
    assert!(e.to_string().contains("not message/ohttp-res"), "{e}");
}

#[test]
fn tampered_and_foreign_answers_do_not_decrypt() {
    let gw = gateway(5, Kem::XWing, SymmetricSuite::ALL.to_vec());
    let session = Preferences::new(AUTHORITY).session(&gw.encoded_configs()).unwrap();
    let e = exchange(&gw, &session, |_, mut encrypted| {
        let last = encrypted.len() - 1;
        encrypted[last] ^= 1;
        (200, media_type::OHTTP_RESPONSE, None, encrypted)
    })
    .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().starts_with("the gateway's response could not be decrypted")),
        ("decrypt", true)
    );

    // The answer to one request does not open another's pending state.
    let first = session.prepare("GET", "/v2/models", &[], Vec::new(), NOW, &mut rng()).unwrap();
    let second = session.prepare("GET", "/v2/models", &[], Vec::new(), NOW, &mut rng()).unwrap();
    let (_, responder) = gw.decapsulate(&first.encapsulated).unwrap();
    let body = responder.encapsulate(&bhttp::Response::new(200, vec![], vec![]).encode(), &mut rng()).unwrap();
    let e = second.pending.finish(&OuterResponse::new(200, media_type::OHTTP_RESPONSE, &body)).unwrap_err();
    assert_eq!(e, Error::Decrypt);
    assert!(matches!(
        first.pending.finish(&OuterResponse::new(200, media_type::OHTTP_RESPONSE, &body)),
        Ok(Finished::Answer(_))
    ));
}

#[test]
fn inner_error_statuses_carry_the_kserve_message() {
    let answer = |status, body: &[u8]| check_status(bhttp::Response::new(status, vec![], body.to_vec()));
    assert_eq!(answer(200, b"{}").unwrap().status, 200);
    let e = answer(403, br#"{"error":"this token may not use model 'x'"}"#).unwrap_err();
    assert_eq!(e.to_string(), "inference failed (403): this token may not use model 'x'");
    assert_eq!((e.code(), e.status(), e.is_retryable()), ("inference", Some(403), false));
    let e = answer(500, b"not json").unwrap_err();
    assert_eq!(e.to_string(), "inference failed (500): HTTP status 500 without a KServe error body");
    assert!(answer(429, b"{}").unwrap_err().is_retryable());
}

#[test]
fn names_and_pins_parse() {
    let hex = "9acaff75e986008a0b02760aae912f3501dcf3c26044f6f36b80c946408a3c24";
    assert_eq!(parse_pin(hex).unwrap()[0], 0x9a);
    assert_eq!(parse_pin(&hex.to_uppercase()).unwrap()[31], 0x24);
    assert_eq!(to_hex(&parse_pin(&alloc::format!(" {hex}\n")).unwrap()), hex);
    for bad in ["", "9acaff", &hex[1..], &alloc::format!("{hex}00"), &hex.replace('a', "g"), &hex.replace('a', "+")] {
        assert_eq!(parse_pin(bad), None, "{bad}");
    }
    assert_eq!(to_hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    assert_eq!(parse_aead("ChaCha20-Poly1305"), Some(Aead::ChaCha20Poly1305));
    assert_eq!(parse_aead("aes-256-gcm"), Some(Aead::Aes256Gcm));
    assert_eq!(parse_aead("AES-GCM"), None);
    assert_eq!(parse_kem("X-Wing"), Some(Kem::XWing));
    assert_eq!(parse_kem("x25519"), Some(Kem::X25519HkdfSha256));
    assert_eq!(parse_kem("kyber"), None);
}

#[test]
fn a_decryption_failure_after_max_age_means_refetch_once() {
    let gw = gateway(6, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let keys = gw.encoded_configs();
    let discover = |cache_control| {
        Preferences::new(AUTHORITY)
            .discover(&OuterResponse::new(200, media_type::OHTTP_KEYS, &keys).cache_control(cache_control))
            .unwrap()
    };
    let session = discover(Some("public, Max-Age=60"));
    assert_eq!(session.max_age(), Some(Duration::from_secs(60)));
    assert_eq!(discover(Some("no-store")).max_age(), Some(Duration::ZERO));
    assert_eq!(discover(Some("max-age=soon")).max_age(), Some(Duration::ZERO), "malformed errs toward a refetch");
    assert_eq!(discover(None).max_age(), None);

    let bad_request = br#"{"type":"about:blank","title":"Bad Request","status":400}"#;
    let finish = |session: &Session, status, age| {
        let sealed = session.prepare("GET", "/v2/models", &[], Vec::new(), NOW, &mut rng()).unwrap();
        sealed.pending.finish_at(&OuterResponse::new(status, media_type::PROBLEM_JSON, bad_request), age)
    };
    // Within max-age a 400 is what it says: the request itself was bad.
    assert_eq!(finish(&session, 400, Duration::from_secs(59)).unwrap_err().status(), Some(400));
    // Once max-age has run out the key may have been rotated away: refetch and retry once.
    assert!(matches!(finish(&session, 400, Duration::from_secs(60)), Ok(Finished::RefetchKeys(_))));
    assert!(matches!(finish(&session, 422, Duration::from_secs(61)), Ok(Finished::RefetchKeys(_))));
    // Other refusals are never a reason to refetch.
    assert_eq!(finish(&session, 401, Duration::from_secs(600)).unwrap_err().status(), Some(401));
    // Without a max-age (a configuration given, not discovered) the rule never applies.
    let given = Preferences::new(AUTHORITY).session(&keys).unwrap();
    assert_eq!(finish(&given, 400, Duration::from_secs(600)).unwrap_err().status(), Some(400));
}

/// Discovers `gw`'s configuration with the key list's `cache-control` header.
fn discovered(gw: &GatewayKeys, cache_control: Option<&str>) -> Session {
    let keys = gw.encoded_configs();
    Preferences::new(AUTHORITY)
        .discover(&OuterResponse::new(200, media_type::OHTTP_KEYS, &keys).cache_control(cache_control))
        .unwrap()
}

#[test]
fn a_cached_configuration_is_fresh_until_its_max_age() {
    let gw = gateway(7, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let secs = Duration::from_secs;
    let mut cache = KeyCache::new();
    assert!(cache.fresh(secs(0)).is_none(), "an empty cache fetches first");
    assert_eq!(cache.generation(), 0);
    let installed = cache.install(0, discovered(&gw, Some("max-age=60")), secs(100)).clone();
    assert_eq!(installed.generation(), 1);
    // Fresh while younger than max-age, on the caller's clock (instants only subtracted).
    assert_eq!(cache.fresh(secs(159)).map(Cached::generation), Some(1));
    assert_eq!(installed.age(secs(159)), secs(59));
    assert!(cache.fresh(secs(160)).is_none(), "stale once the age reaches max-age");
    assert!(cache.current().is_some(), "a stale configuration stays current until replaced");
    // A clock read before the fetch started is an age of zero, not an underflow.
    assert_eq!(installed.age(secs(50)), Duration::ZERO);

    // no-store and no-cache: fetched again before every request.
    let mut cache = KeyCache::new();
    cache.install(0, discovered(&gw, Some("no-store")), secs(5));
    assert!(cache.fresh(secs(5)).is_none());
    // No max-age at all (a configuration given, not discovered): only `ohttp-key` retires it.
    let mut cache = KeyCache::new();
    cache.install(0, Preferences::new(AUTHORITY).session(&gw.encoded_configs()).unwrap(), secs(0));
    assert!(cache.fresh(secs(1_000_000)).is_some());
}

#[test]
fn a_fetch_never_replaces_a_newer_configuration() {
    let old = gateway(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let new = gateway(2, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let secs = Duration::from_secs;
    let mut cache: KeyCache<alloc::rc::Rc<Session>> = KeyCache::new();
    cache.install(0, discovered(&old, None).into(), secs(0));
    // Two callers sealed with generation 1 and were both refused: the first refetches ...
    assert!(cache.newer_than(1).is_none(), "nothing newer yet: fetch");
    let second = cache.install(1, discovered(&new, None).into(), secs(10));
    assert_eq!((second.generation(), second.session().key_config().key_id()), (2, 2));
    // ... and the second, asking on behalf of generation 1 too, finds generation 2: no fetch.
    let newer = cache.newer_than(1).map(|c| (c.generation(), c.session().key_config().key_id()));
    assert_eq!(newer, Some((2, 2)));
    assert!(cache.newer_than(2).is_none(), "a caller refused with generation 2 fetches again");

    // A slow fetch that started while generation 1 was cached answers last, with the old key
    // list: generation 2 stays, and the caller gets it.
    let late = cache.install(1, discovered(&old, None).into(), secs(5));
    assert_eq!((late.generation(), late.session().key_config().key_id(), late.age(secs(10))), (2, 2, secs(0)));
    assert_eq!(cache.current().map(|c| c.session().key_config().key_id()), Some(2));
    // A fetch for generation 2 installs generation 3.
    assert_eq!(cache.install(2, discovered(&old, None).into(), secs(20)).generation(), 3);
}

/// The gateway side of a streamed exchange, from the protocol crate: opens the whole request
/// and returns its head, its body and the responder.
fn open_stream(gw: &GatewayKeys, wire: &[u8]) -> (bhttp::Request, Vec<u8>, chunked::ChunkedServerResponse) {
    let mut header = chunked::RequestHeaderReader::new();
    let used = header.push(wire).unwrap();
    let (mut opener, responder) = gw.decapsulate_chunked(header).unwrap();
    opener = opener.with_max_chunk(STREAM_MAX_CHUNK);
    let mut plaintext = Vec::new();
    for chunk in opener.push(&wire[used..]).unwrap() {
        plaintext.extend_from_slice(&chunk);
    }
    plaintext.extend_from_slice(&opener.finish().unwrap());
    let mut decoder = bstream::Decoder::request();
    let mut parts = decoder.push(&plaintext).unwrap();
    parts.extend(decoder.finish().unwrap());
    let (mut head, mut body) = (None, Vec::new());
    for part in parts {
        match part {
            bstream::Part::Request(h) => head = Some(h),
            bstream::Part::Body(piece) => body.extend_from_slice(&piece),
            _ => {}
        }
    }
    (head.unwrap(), body, responder)
}

/// A chunked answer with inner `status` whose body is `body` cut into chunks at `cuts`
/// (offsets into the body), with or without its final chunk.
fn stream_answer(
    responder: chunked::ChunkedServerResponse,
    status: u16,
    body: &[u8],
    cuts: &[usize],
    final_chunk: bool,
) -> Vec<u8> {
    let (mut wire, mut sealer) = responder.with_max_chunk(STREAM_MAX_CHUNK).start(&mut rng()).unwrap();
    let head = bhttp::Response::new(status, vec![bhttp::Field::new("content-type", NDJSON)], vec![]);
    let (encoded_head, mut encoder) = bstream::Encoder::response(&head);
    wire.extend(sealer.seal(&encoded_head).unwrap());
    let mut from = 0;
    for &cut in cuts.iter().chain([body.len()].iter()) {
        if cut > from {
            wire.extend(sealer.seal(&encoder.body(&body[from..cut])).unwrap());
            from = cut;
        }
    }
    if final_chunk {
        wire.extend(sealer.finish(&encoder.finish(&[])).unwrap());
    }
    wire
}

fn stream_session(gw: &GatewayKeys) -> Session {
    let token = zeroize::Zeroizing::new("sg_streamtoken".to_string());
    Preferences::new(AUTHORITY).token(Some(token)).session(&gw.encoded_configs()).unwrap()
}

/// Sends `lines`, answers with `answer` cut at `cuts`, and reads it back `feed` bytes at a time.
fn stream_round_trip(lines: &[&[u8]], answer: &[u8], cuts: &[usize], feed: usize) -> Result<Vec<StreamEvent>> {
    let gw = gateway(3, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let (mut wire, mut sender, mut receiver) =
        stream_session(&gw).start_stream("POST", "/v2/models/m/infer", &[], DEFAULT_MAX_LINE, NOW, &mut rng())?;
    for line in lines {
        wire.extend(sender.line(line)?);
    }
    wire.extend(sender.finish()?);
    let (_, _, responder) = open_stream(&gw, &wire);
    let outer = stream_answer(responder, 200, answer, cuts, true);
    let mut events = Vec::new();
    for piece in outer.chunks(feed) {
        events.extend(receiver.push(piece)?);
    }
    events.extend(receiver.finish()?);
    Ok(events)
}

fn lines_of(events: &[StreamEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Line(line) => Some(line.to_vec()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stream_round_trips_one_chunk_per_line_with_the_token_inside() {
    let gw = gateway(7, Kem::XWing, SymmetricSuite::ALL.to_vec());
    let session = stream_session(&gw);
    let (first, mut sender, mut receiver) = session
        .start_stream("POST", "/v2/models/m/infer", &[("x-trace", "7")], DEFAULT_MAX_LINE, NOW, &mut rng())
        .unwrap();
    let mut wire = first.clone();
    let mut sizes = Vec::new();
    for line in [&b"{\"a\":1}"[..], b"{\"a\":2}\n", b"{\"b\":[1,2,3]}"] {
        let sealed = sender.line(line).unwrap();
        sizes.push(sealed.len());
        wire.extend(sealed);
    }
    assert_eq!(sender.lines(), 3);
    wire.extend(sender.finish().unwrap());
    assert!(!wire.windows(14).any(|w| w == b"sg_streamtoken"), "the token travels encrypted");
    // One line is one chunk: varint(len) | ciphertext of varint(len) | line | padding | \n,
    // tag 16 bytes; short lines padded so that no chunk is a small HTTP/2 DATA frame.
    assert_eq!(sizes, [2 + 2 + MIN_LINE_BYTES + 16; 3]);
    assert!(sizes.iter().all(|&size| size >= 256));

    let (head, body, responder) = open_stream(&gw, &wire);
    assert_eq!(
        (head.method.as_str(), head.authority.as_str(), head.path.as_str()),
        ("POST", AUTHORITY, "/v2/models/m/infer")
    );
    assert_eq!(head.header("content-type"), Some(NDJSON.as_bytes()));
    assert_eq!(head.header("accept"), Some(NDJSON.as_bytes()));
    assert_eq!(head.header("authorization"), Some(&b"Bearer sg_streamtoken"[..]));
    assert_eq!(head.header("x-trace"), Some(&b"7"[..]));
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 4, "three lines, each ending with a line break");
    for (line, text) in lines.iter().zip([&b"{\"a\":1}"[..], b"{\"a\":2}", b"{\"b\":[1,2,3]}"]) {
        assert_eq!(line.len() + 1, MIN_LINE_BYTES);
        assert!(line.starts_with(text) && line[text.len()..].iter().all(|&b| b == b' '), "padded with spaces");
    }
    // A line longer than the minimum is sent as it is.
    let long = alloc::format!("{{\"x\":\"{}\"}}", "y".repeat(MIN_LINE_BYTES));
    let (_, mut sender, _) = session.start_stream("POST", "/p", &[], DEFAULT_MAX_LINE, NOW, &mut rng()).unwrap();
    assert_eq!(sender.line(long.as_bytes()).unwrap().len(), 2 + 2 + long.len() + 1 + 16);

    let outer = stream_answer(
        responder,
        200,
        b"{\"o\":1}\n{\"error\":\"bad\",\"status\":400,\"line\":2}\n{\"o\":3}\n",
        &[],
        true,
    );
    assert!(matches!(
        receiver.check_outer(&OuterResponse::new(200, media_type::OHTTP_CHUNKED_RESPONSE, &[])),
        Ok(StreamStart::Answering)
    ));
    let mut events = receiver.push(&outer).unwrap();
    events.extend(receiver.finish().unwrap());
    assert!(matches!(events[0], StreamEvent::Head { status: 200 }), "{events:?}");
    let lines = lines_of(&events);
    assert_eq!(lines.len(), 3);
    assert_eq!(line_error(&lines[0]), None);
    assert_eq!(line_error(&lines[1]), Some(Error::Line { line: 2, status: 400, message: "bad".to_string() }));
    assert_eq!(lines[2], b"{\"o\":3}");
}

#[test]
fn answer_lines_split_anywhere_read_the_same() {
    let answer = b"{\"o\":1}\n{\"o\":22}\r\n\n{\"o\":333}\n{\"last\":true}";
    let expected = [&b"{\"o\":1}"[..], b"{\"o\":22}", b"{\"o\":333}", b"{\"last\":true}"];
    // Every single cut point, each chunk one byte, and every feed size from one byte up.
    for cut in 0..answer.len() {
        let events = stream_round_trip(&[b"{}"], answer, &[cut], 7).unwrap();
        assert_eq!(lines_of(&events), expected, "cut at {cut}");
    }
    let every_byte: Vec<usize> = (1..answer.len()).collect();
    for feed in [1, 2, 3, 5, 64, 10_000] {
        let events = stream_round_trip(&[b"{}"], answer, &every_byte, feed).unwrap();
        assert_eq!(lines_of(&events), expected, "fed {feed} bytes at a time");
    }
}

#[test]
fn a_truncated_stream_is_an_error_never_a_quiet_end() {
    let gw = gateway(3, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let session = stream_session(&gw);
    // Without the final chunk, and cut inside the nonce or inside a chunk.
    for cut in [None, Some(3), Some(40)] {
        let (mut wire, mut sender, mut receiver) =
            session.start_stream("POST", "/p", &[], DEFAULT_MAX_LINE, NOW, &mut rng()).unwrap();
        wire.extend(sender.line(b"{}").unwrap());
        wire.extend(sender.finish().unwrap());
        let (_, _, responder) = open_stream(&gw, &wire);
        let mut outer = stream_answer(responder, 200, b"{\"o\":1}\n{\"o\":2}\n", &[], cut.is_some());
        if let Some(cut) = cut {
            outer.truncate(cut);
        }
        let events = receiver.push(&outer).unwrap();
        assert!(events.iter().all(|e| !matches!(e, StreamEvent::Line(_))) || cut.is_none());
        let e = receiver.finish().unwrap_err();
        assert_eq!(e, Error::Protocol(sealgate_protocol::Error::MissingFinalChunk), "cut {cut:?}");
        assert_eq!(e.code(), "protocol");
    }

    // A flipped bit anywhere after the nonce: the stream fails and stays failed.
    let (mut wire, mut sender, mut receiver) =
        session.start_stream("POST", "/p", &[], DEFAULT_MAX_LINE, NOW, &mut rng()).unwrap();
    wire.extend(sender.line(b"{}").unwrap());
    wire.extend(sender.finish().unwrap());
    let (_, _, responder) = open_stream(&gw, &wire);
    let mut outer = stream_answer(responder, 200, b"{\"o\":1}\n", &[], true);
    let at = outer.len() - 3;
    outer[at] ^= 1;
    let result = receiver.push(&outer).and_then(|mut events| {
        events.extend(receiver.finish()?);
        Ok(events)
    });
    assert_eq!(result.unwrap_err(), Error::Decrypt);
}

#[test]
fn answer_lines_are_bounded() {
    let gw = gateway(3, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let session = stream_session(&gw);
    let read_in = |answer: &[u8], max_line: usize, step: usize| {
        let (mut wire, mut sender, mut receiver) =
            session.start_stream("POST", "/p", &[], max_line, NOW, &mut rng()).unwrap();
        wire.extend(sender.line(b"{}").unwrap());
        wire.extend(sender.finish().unwrap());
        let (_, _, responder) = open_stream(&gw, &wire);
        // Cut into `step`-byte chunks, so the limit must hold across chunks.
        let cuts: Vec<usize> = (step..answer.len()).step_by(step).collect();
        let outer = stream_answer(responder, 200, answer, &cuts, true);
        let mut events = Vec::new();
        for piece in outer.chunks(step + 3) {
            events.extend(receiver.push(piece)?);
        }
        events.extend(receiver.finish()?);
        Ok::<_, Error>(lines_of(&events))
    };
    let read = |answer: &[u8], max_line| read_in(answer, max_line, 10);
    let exactly = alloc::format!("\"{}\"", "x".repeat(98));
    assert_eq!(read(alloc::format!("{exactly}\n{{}}\n").as_bytes(), 100).unwrap().len(), 2);
    let over = alloc::format!("\"{}\"\n{{}}\n", "x".repeat(99));
    let e = read(over.as_bytes(), 100).unwrap_err();
    assert_eq!((e.clone(), e.code()), (Error::LineTooLong { max: 100 }, "line-too-long"));
    // The last line, without its newline, is held to the bound too.
    assert_eq!(
        read(alloc::format!("{{}}\n\"{}\"", "x".repeat(99)).as_bytes(), 100).unwrap_err(),
        Error::LineTooLong { max: 100 }
    );
    // A 10 MB line is refused long before it is buffered whole.
    let huge = alloc::format!("\"{}\"\n", "x".repeat(10 << 20));
    assert_eq!(
        read_in(huge.as_bytes(), DEFAULT_MAX_LINE, 60_000).unwrap_err(),
        Error::LineTooLong { max: DEFAULT_MAX_LINE }
    );
}

#[test]
fn a_stream_refused_as_a_whole_reads_like_a_single_request() {
    let gw = gateway(3, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let session = stream_session(&gw);
    let (mut wire, mut sender, mut receiver) =
        session.start_stream("POST", "/p", &[], DEFAULT_MAX_LINE, NOW, &mut rng()).unwrap();
    wire.extend(sender.line(b"{}").unwrap());
    wire.extend(sender.finish().unwrap());
    let (_, _, responder) = open_stream(&gw, &wire);
    let outer = stream_answer(responder, 404, br#"{"error":"model 'm' not found"}"#, &[5, 9], true);
    let mut events = Vec::new();
    for piece in outer.chunks(1) {
        events.extend(receiver.push(piece).unwrap());
    }
    events.extend(receiver.finish().unwrap());
    assert!(matches!(events[0], StreamEvent::Head { status: 404 }), "{events:?}");
    match &events[1..] {
        [StreamEvent::Refused(e)] => {
            assert_eq!(e, &Error::Inference { status: 404, message: "model 'm' not found".to_string() })
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_outer_answer_to_a_stream_is_classified_like_a_single_one() {
    let gw = gateway(3, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let (_, _, receiver) =
        stream_session(&gw).start_stream("POST", "/p", &[], DEFAULT_MAX_LINE, NOW, &mut rng()).unwrap();
    let check = |status, content_type, body: &'static [u8]| {
        receiver.check_outer(&OuterResponse::new(status, content_type, body))
    };
    let key =
        br#"{"type":"https://iana.org/assignments/http-problem-types#ohttp-key","title":"key configuration mismatch"}"#;
    assert!(
        matches!(check(422, media_type::PROBLEM_JSON, key), Ok(StreamStart::RefetchKeys(e)) if e.is_key_config_mismatch())
    );
    assert!(matches!(check(503, "text/plain", b""), Err(Error::Overloaded { .. })));
    let e = check(200, media_type::OHTTP_RESPONSE, b"").unwrap_err();
    assert!(e.to_string().contains("not message/ohttp-chunked-res"), "{e}");
    let e = check(415, media_type::PROBLEM_JSON, br#"{"title":"unsupported media type"}"#).unwrap_err();
    assert_eq!(e.to_string(), "the gateway refused the request (415): unsupported media type");
}

#[test]
fn request_lines_with_line_breaks_and_odd_error_lines_are_refused() {
    let gw = gateway(3, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec());
    let (_, mut sender, _) =
        stream_session(&gw).start_stream("POST", "/p", &[], DEFAULT_MAX_LINE, NOW, &mut rng()).unwrap();
    for bad in [&b"{}\n{}"[..], b"{}\r", b"\n\n"] {
        assert_eq!(sender.line(bad).unwrap_err(), Error::InvalidLine, "{bad:?}");
    }
    assert_eq!(sender.lines(), 0, "nothing was sealed");
    for not_an_error in [
        &br#"{"outputs":[{"name":"error","data":[1]}]}"#[..],
        br#"{"error":"x","status":400}"#,
        br#"{"error":"x","status":70000,"line":1}"#,
        br#"{"error":1,"status":400,"line":1}"#,
        br#"{"error":"x","status":400,"line":1"#,
    ] {
        assert_eq!(line_error(not_an_error), None, "{}", core::str::from_utf8(not_an_error).unwrap());
    }
    let e = line_error(br#" {"line": 9, "status": 429, "error": "over the rate"} "#).unwrap();
    assert_eq!(
        (e.to_string(), e.code(), e.status(), e.is_retryable()),
        ("line 9 failed (429): over the rate".to_string(), "line", Some(429), true)
    );
}
