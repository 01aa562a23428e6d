//! One encrypted exchange, without I/O: choosing and pinning the key configuration, building
//! the inner Binary HTTP request, sealing it, opening the answer and reading its status.
//!
//! This mirrors the Rust SDK (`client-sdk/src/client.rs`) step for step so the two clients
//! behave alike: a pinned configuration wins, then one offering the preferred AEAD, then the
//! first; the inner request carries `accept`, `content-type` and `authorization` only inside
//! the encryption. Keeping it free of JavaScript lets the same tests run natively and in wasm.

use sealgate_protocol::{Aead, ClientRequest, ClientResponse, Kdf, Kem, KeyConfig, SymmetricSuite, bhttp};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// Parses a pinned key configuration fingerprint: 64 hexadecimal characters.
pub fn parse_pin(text: &str) -> Result<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let digits = text.trim().as_bytes();
    let mut pin = [0u8; 32];
    let mut valid = digits.len() == 64;
    for (byte, pair) in pin.iter_mut().zip(digits.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => *byte = (high << 4) | low,
            _ => valid = false,
        }
    }
    if valid {
        Ok(pin)
    } else {
        Err(ClientError::InvalidOptions("keyConfigSha256 must be 64 hexadecimal characters".into()))
    }
}

/// Lowercase hex, as `sealgate serve` prints fingerprints.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Parses an AEAD name as the options accept it (`AES-128-GCM`, `aes-256-gcm`, ...).
pub fn parse_aead(name: &str) -> Result<Aead> {
    match name.to_ascii_lowercase().as_str() {
        "aes-128-gcm" => Ok(Aead::Aes128Gcm),
        "aes-256-gcm" => Ok(Aead::Aes256Gcm),
        "chacha20-poly1305" => Ok(Aead::ChaCha20Poly1305),
        _ => Err(ClientError::InvalidOptions("aead must be one of AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305".into())),
    }
}

/// Decodes `application/ohttp-keys`, picks a configuration and checks the pin.
///
/// The pin is checked before anything is encrypted to the key, so a substituted key
/// configuration never receives a request.
pub fn choose_config(body: &[u8], pin: Option<[u8; 32]>, aead: Aead) -> Result<KeyConfig> {
    let configs = KeyConfig::decode_list(body).map_err(|e| ClientError::NoUsableKeyConfig(e.to_string()))?;
    let pinned = pin.and_then(|pin| configs.iter().find(|c| c.sha256() == pin));
    let chosen = pinned
        .or_else(|| configs.iter().find(|c| c.suite_for(aead).is_some()))
        .or_else(|| configs.first())
        .cloned()
        .ok_or_else(|| ClientError::NoUsableKeyConfig("empty list".into()))?;
    if let Some(pin) = pin {
        let got = chosen.sha256();
        if got != pin {
            return Err(ClientError::KeyConfigPinMismatch { got: to_hex(&got) });
        }
    }
    Ok(chosen)
}

/// The symmetric suite to use with `config`: the preferred AEAD when offered, else the
/// gateway's first choice.
pub fn suite_for(config: &KeyConfig, aead: Aead) -> SymmetricSuite {
    config
        .suite_for(aead)
        .or_else(|| config.suites().first().copied())
        .unwrap_or(SymmetricSuite::new(Kdf::HkdfSha256, aead))
}

/// The inner request as the SDK sends it: `method path` to the gateway's authority, JSON in
/// and out, and the bearer token, all of it only inside the encryption.
pub fn inner_request(authority: &str, token: Option<&str>, method: &str, path: &str, body: Vec<u8>) -> bhttp::Request {
    let mut request = bhttp::Request::new(method, "https", authority, path);
    request.headers.push(bhttp::Field::new("accept", "application/json"));
    if !body.is_empty() {
        request.headers.push(bhttp::Field::new("content-type", "application/json"));
    }
    if let Some(token) = token {
        request.headers.push(bhttp::Field::new("authorization", format!("Bearer {token}")));
    }
    request.body = body;
    request
}

/// What a page may show about an exchange: that it was encrypted, to which key, with what.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeInfo {
    /// The key identifier of the configuration used.
    pub key_id: u8,
    /// KEM, KDF and AEAD names.
    pub suite: SuiteNames,
    /// Size of the Binary HTTP request before encryption.
    pub plaintext_bytes: usize,
    /// Size of the encapsulated request that left the page (`message/ohttp-req`).
    pub request_bytes: usize,
    /// Size of the encapsulated response (`message/ohttp-res`).
    pub response_bytes: usize,
    /// Time in this module before sending: checking, encoding and encrypting, ms.
    pub encrypt_ms: f64,
    /// Time in this module after receiving: decrypting, decoding, building the result, ms.
    pub decrypt_ms: f64,
    /// Of `encrypt_ms`, the HPKE encapsulation alone (RFC 9458 section 4.3), ms.
    pub seal_ms: f64,
    /// Of `decrypt_ms`, the response decapsulation and Binary HTTP decoding alone, ms.
    pub open_ms: f64,
}

/// Human-readable algorithm names, as the RFCs spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteNames {
    /// Such as `DHKEM(X25519, HKDF-SHA256)`.
    pub kem: &'static str,
    /// Such as `HKDF-SHA256`.
    pub kdf: &'static str,
    /// Such as `AES-128-GCM`.
    pub aead: &'static str,
}

impl SuiteNames {
    /// Names for `kem` with `suite`.
    pub fn new(kem: Kem, suite: SymmetricSuite) -> Self {
        // By IANA identifier, so that KEMs the protocol crate adds get their name here
        // without a code change in this match.
        let kem = match kem.id() {
            0x0020 => "DHKEM(X25519, HKDF-SHA256)",
            0x647a => "X-Wing",
            _ => "unknown KEM",
        };
        let kdf = match suite.kdf {
            Kdf::HkdfSha256 => "HKDF-SHA256",
            _ => "unknown KDF",
        };
        let aead = match suite.aead {
            Aead::Aes128Gcm => "AES-128-GCM",
            Aead::Aes256Gcm => "AES-256-GCM",
            Aead::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            _ => "unknown AEAD",
        };
        Self { kem, kdf, aead }
    }
}

/// A sealed request, ready to POST, with the one-shot state that opens its answer.
pub struct Sealed {
    /// The `message/ohttp-req` body.
    pub encapsulated: Vec<u8>,
    /// Opens the `message/ohttp-res` body; single use.
    pub pending: ClientResponse,
    /// Key id and algorithms used.
    pub info: ExchangeInfo,
}

/// Encrypts an encoded Binary HTTP request to `config` (RFC 9458 section 4.3).
pub fn seal(config: &KeyConfig, aead: Aead, encoded: &[u8], rng: &mut impl rand_core::CryptoRng) -> Result<Sealed> {
    let suite = suite_for(config, aead);
    let (encapsulated, pending) = ClientRequest::new(config, suite)?.encapsulate(encoded, rng)?;
    let info = ExchangeInfo {
        key_id: config.key_id(),
        suite: SuiteNames::new(config.kem(), suite),
        plaintext_bytes: encoded.len(),
        request_bytes: encapsulated.len(),
        response_bytes: 0,
        encrypt_ms: 0.0,
        decrypt_ms: 0.0,
        seal_ms: 0.0,
        open_ms: 0.0,
    };
    Ok(Sealed { encapsulated, pending, info })
}

/// A decrypted inner response.
pub struct InnerResponse {
    /// The inner HTTP status (the outer one is always 200).
    pub status: u16,
    /// The body, zeroized on drop.
    pub body: Zeroizing<Vec<u8>>,
}

/// Decrypts `message/ohttp-res` and decodes the Binary HTTP response inside.
pub fn open(pending: ClientResponse, encapsulated: &[u8]) -> Result<InnerResponse> {
    let plaintext = Zeroizing::new(pending.decapsulate(encapsulated)?);
    let mut response = bhttp::Response::decode(&plaintext)?;
    // The response zeroizes its own buffer on drop; move the body out into one that does too.
    let body = Zeroizing::new(core::mem::take(&mut response.body));
    Ok(InnerResponse { status: response.status, body })
}

#[cfg(test)]
mod tests {
    use sealgate_protocol::{GatewayKey, GatewayKeys};
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    fn gateway(key_id: u8, suites: Vec<SymmetricSuite>) -> GatewayKeys {
        let key = GatewayKey::generate(key_id, Kem::X25519HkdfSha256, suites, &mut rng()).unwrap();
        GatewayKeys::new(vec![key]).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn pins_and_aeads_are_parsed() {
        let hex = "9acaff75e986008a0b02760aae912f3501dcf3c26044f6f36b80c946408a3c24";
        assert_eq!(parse_pin(hex).unwrap()[0], 0x9a);
        assert_eq!(parse_pin(&hex.to_uppercase()).unwrap()[31], 0x24);
        for bad in ["", "9acaff", &hex[1..], &format!("{hex}00"), &hex.replace('a', "g")] {
            assert!(matches!(parse_pin(bad), Err(ClientError::InvalidOptions(_))), "{bad}");
        }
        assert_eq!(to_hex(&parse_pin(hex).unwrap()), hex);
        assert_eq!(to_hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
        assert_eq!(parse_aead("ChaCha20-Poly1305").unwrap(), Aead::ChaCha20Poly1305);
        assert_eq!(parse_aead("aes-256-gcm").unwrap(), Aead::Aes256Gcm);
        assert!(parse_aead("AES-GCM").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_pin_is_checked_before_anything_is_encrypted() {
        let gw = gateway(1, SymmetricSuite::ALL.to_vec());
        let published = gw.encoded_configs();
        let sha = gw.configs()[0].sha256();
        assert_eq!(choose_config(&published, Some(sha), Aead::Aes128Gcm).unwrap(), gw.configs()[0]);
        let other = gateway(1, SymmetricSuite::ALL.to_vec());
        let e = choose_config(&other.encoded_configs(), Some(sha), Aead::Aes128Gcm).unwrap_err();
        assert_eq!(e, ClientError::KeyConfigPinMismatch { got: to_hex(&other.configs()[0].sha256()) });
        assert!(matches!(
            choose_config(b"\x00\x05junk", None, Aead::Aes128Gcm),
            Err(ClientError::NoUsableKeyConfig(_))
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_preferred_aead_is_used_when_offered() {
        let chacha_only = gateway(3, vec![SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305)]);
        let config = choose_config(&chacha_only.encoded_configs(), None, Aead::Aes128Gcm).unwrap();
        assert_eq!(suite_for(&config, Aead::Aes128Gcm).aead, Aead::ChaCha20Poly1305);
        let all = gateway(4, SymmetricSuite::ALL.to_vec());
        let config = choose_config(&all.encoded_configs(), None, Aead::Aes256Gcm).unwrap();
        assert_eq!(suite_for(&config, Aead::Aes256Gcm).aead, Aead::Aes256Gcm);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_sealed_request_round_trips_and_tampering_fails() {
        let gw = gateway(9, SymmetricSuite::ALL.to_vec());
        let config = gw.configs()[0].clone();
        let request = inner_request("gw.example", Some("s3cret"), "POST", "/v2/models/m/infer", b"{}".to_vec());
        let sealed = seal(&config, Aead::ChaCha20Poly1305, &request.encode(), &mut rng()).unwrap();
        assert_eq!(sealed.info.key_id, 9);
        assert_eq!(sealed.info.suite.aead, "ChaCha20-Poly1305");
        assert_eq!(sealed.info.suite.kem, "DHKEM(X25519, HKDF-SHA256)");
        assert_eq!(sealed.info.request_bytes, sealed.encapsulated.len());
        assert!(!sealed.encapsulated.windows(6).any(|w| w == b"s3cret"), "the token travels encrypted");

        let (inner, responder) = gw.decapsulate(&sealed.encapsulated).unwrap();
        let inner = bhttp::Request::decode(&inner).unwrap();
        assert_eq!(inner.header("authorization"), Some(&b"Bearer s3cret"[..]));
        assert_eq!(inner.header("content-type"), Some(&b"application/json"[..]));
        let answer = bhttp::Response::new(200, vec![], br#"{"ok":1}"#.to_vec());
        let mut encrypted = responder.encapsulate(&answer.encode(), &mut rng()).unwrap();
        let other = open_clone(&gw, &config, &encrypted);
        assert_eq!(other.err(), Some(ClientError::Decrypt), "a response for another request does not open");

        let opened = open(sealed.pending, &encrypted).unwrap();
        assert_eq!((opened.status, &**opened.body), (200, &br#"{"ok":1}"#[..]));
        // The same bytes with one bit flipped do not open with the right state either.
        let again = seal(&config, Aead::Aes128Gcm, &request.encode(), &mut rng()).unwrap();
        let (_, responder) = gw.decapsulate(&again.encapsulated).unwrap();
        encrypted = responder.encapsulate(&answer.encode(), &mut rng()).unwrap();
        let last = encrypted.len() - 1;
        encrypted[last] ^= 1;
        assert_eq!(open(again.pending, &encrypted).err(), Some(ClientError::Decrypt));
    }

    /// Opens `encrypted` with the state of a different request to the same key.
    fn open_clone(gw: &GatewayKeys, config: &KeyConfig, encrypted: &[u8]) -> Result<InnerResponse> {
        let other = seal(config, Aead::ChaCha20Poly1305, b"x", &mut rng()).unwrap();
        let _ = gw.decapsulate(&other.encapsulated).unwrap();
        open(other.pending, encrypted)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn inner_errors_come_back_with_their_status() {
        let gw = gateway(2, SymmetricSuite::ALL.to_vec());
        let sealed = seal(&gw.configs()[0], Aead::Aes128Gcm, b"irrelevant", &mut rng()).unwrap();
        let (_, responder) = gw.decapsulate(&sealed.encapsulated).unwrap();
        let answer = bhttp::Response::new(404, vec![], br#"{"error":"model 'nope' not found"}"#.to_vec());
        let encrypted = responder.encapsulate(&answer.encode(), &mut rng()).unwrap();
        let opened = open(sealed.pending, &encrypted).unwrap();
        assert_eq!(opened.status, 404);
        assert_eq!(&**opened.body, br#"{"error":"model 'nope' not found"}"#);
    }
}
