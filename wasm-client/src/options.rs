//! The options of `Sealgate.connect(url, options)`, read from a plain JS object.
//!
//! Unknown option names are an error rather than ignored: a typo such as `{ pin: ... }` for
//! `keyConfigSha256` would otherwise silently turn off the key pin, which is exactly the
//! protection a page asked for.

use js_sys::{Function, Object, Reflect};
use sealgate_protocol::{Aead, Kem};
use wasm_bindgen::{JsCast as _, JsValue};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;

/// The option names `connect` understands.
pub const KNOWN: [&str; 6] = ["token", "keyConfigSha256", "aead", "kem", "timeoutMs", "fetch"];

/// [`KNOWN`] for messages (a literal: `join` would add a kilobyte to the module).
const KNOWN_LIST: &str = "token, keyConfigSha256, aead, kem, timeoutMs, fetch";

/// Parsed `connect` options.
pub struct ConnectOptions {
    /// Bearer token sent inside the encryption.
    pub token: Option<Zeroizing<String>>,
    /// Pinned SHA-256 of the key configuration.
    pub pin: Option<[u8; 32]>,
    /// Preferred AEAD.
    pub aead: Aead,
    /// Preferred KEM.
    pub kem: Kem,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: u32,
    /// A fetch-compatible function, instead of `globalThis.fetch`.
    pub fetch: Option<Function>,
}

fn invalid(message: &str) -> ClientError {
    ClientError::InvalidOptions(message.to_owned())
}

/// Checks the option names; pure so it is tested natively too.
pub fn check_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for name in names {
        if !KNOWN.contains(&name) {
            return Err(ClientError::InvalidOptions(format!("unknown option '{name}' (known: {KNOWN_LIST})")));
        }
    }
    Ok(())
}

/// Checks a timeout in milliseconds: a whole number from 1 to 2^31 - 1.
pub fn check_timeout(ms: f64) -> Result<u32> {
    if ms.fract() == 0.0 && (1.0..=f64::from(i32::MAX)).contains(&ms) {
        Ok(ms as u32)
    } else {
        Err(invalid("timeoutMs must be a whole number of milliseconds from 1 to 2147483647"))
    }
}

impl ConnectOptions {
    /// Reads the options object; `undefined` and `null` mean all defaults.
    pub fn from_js(value: &JsValue) -> Result<Self> {
        let mut options = ConnectOptions {
            token: None,
            pin: None,
            aead: Aead::Aes128Gcm,
            kem: Kem::X25519HkdfSha256,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            fetch: None,
        };
        if value.is_undefined() || value.is_null() {
            return Ok(options);
        }
        let object = value.dyn_ref::<Object>().filter(|_| value.is_object()).ok_or_else(|| {
            invalid("the options must be an object like { token, keyConfigSha256, aead, kem, timeoutMs, fetch }")
        })?;
        for entry in Object::entries(object).iter() {
            let name = Reflect::get_u32(&entry, 0).ok().and_then(|n| n.as_string()).unwrap_or_default();
            let value = Reflect::get_u32(&entry, 1).unwrap_or(JsValue::UNDEFINED);
            check_names([name.as_str()])?;
            if value.is_undefined() || value.is_null() {
                continue;
            }
            let text = value.as_string();
            match name.as_str() {
                "token" => {
                    let token =
                        text.filter(|t| !t.is_empty()).ok_or_else(|| invalid("token must be a non-empty string"))?;
                    options.token = Some(Zeroizing::new(token));
                }
                "keyConfigSha256" => {
                    let pin = text.as_deref().and_then(sealgate_client_core::parse_pin);
                    options.pin = Some(pin.ok_or_else(|| invalid("keyConfigSha256 must be 64 hexadecimal characters"))?)
                }
                "aead" => {
                    options.aead = text
                        .as_deref()
                        .and_then(sealgate_client_core::parse_aead)
                        .ok_or_else(|| invalid("aead must be one of AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305"))?
                }
                "kem" => {
                    options.kem = text
                        .as_deref()
                        .and_then(sealgate_client_core::parse_kem)
                        .ok_or_else(|| invalid("kem must be X25519 or X-Wing"))?
                }
                "timeoutMs" => options.timeout_ms = check_timeout(value.as_f64().unwrap_or(f64::NAN))?,
                // "fetch", the only name `check_names` leaves.
                _ => {
                    options.fetch = Some(value.dyn_into::<Function>().map_err(|_| invalid("fetch must be a function"))?)
                }
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    #[wasm_bindgen_test(unsupported = test)]
    fn unknown_names_are_refused() {
        assert_eq!(KNOWN.join(", "), KNOWN_LIST);
        assert!(check_names(["token", "keyConfigSha256", "aead", "kem", "timeoutMs", "fetch"]).is_ok());
        let e = check_names(["token", "pin"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid Sealgate options: unknown option 'pin' (known: token, keyConfigSha256, aead, kem, timeoutMs, fetch)"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn timeouts_are_whole_positive_milliseconds() {
        assert_eq!(check_timeout(1500.0).unwrap(), 1500);
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY, 3e9] {
            assert!(check_timeout(bad).is_err(), "{bad}");
        }
    }

    #[cfg(target_arch = "wasm32")]
    #[wasm_bindgen_test]
    fn options_are_read_from_js() {
        let o = Object::new();
        Reflect::set(&o, &"token".into(), &"t0k3n".into()).unwrap();
        Reflect::set(&o, &"aead".into(), &"ChaCha20-Poly1305".into()).unwrap();
        Reflect::set(&o, &"timeoutMs".into(), &JsValue::from(2500)).unwrap();
        Reflect::set(&o, &"kem".into(), &"X-Wing".into()).unwrap();
        let parsed = ConnectOptions::from_js(&o.into()).unwrap();
        assert_eq!(parsed.kem, Kem::XWing);
        assert_eq!(parsed.token.as_deref().map(String::as_str), Some("t0k3n"));
        assert_eq!((parsed.aead, parsed.timeout_ms, parsed.pin), (Aead::ChaCha20Poly1305, 2500, None));
        assert!(ConnectOptions::from_js(&JsValue::UNDEFINED).is_ok());
        assert!(ConnectOptions::from_js(&"token".into()).is_err());
        let bad = Object::new();
        Reflect::set(&bad, &"fetch".into(), &"not a function".into()).unwrap();
        assert!(matches!(ConnectOptions::from_js(&bad.into()), Err(ClientError::InvalidOptions(_))));
        for (name, value) in [("kem", "kyber"), ("aead", "AES-GCM"), ("keyConfigSha256", "00")] {
            let bad = Object::new();
            Reflect::set(&bad, &name.into(), &value.into()).unwrap();
            assert!(matches!(ConnectOptions::from_js(&bad.into()), Err(ClientError::InvalidOptions(_))), "{name}");
        }
    }
}
