//! Bearer tokens: how they are made, read from an `authorization` field, and stored.
//!
//! A token is `sg_` followed by 256 random bits in unpadded base64url (46 characters). It is
//! printed once when a tenant is created or rotated and never stored: the tenant file keeps
//! only its SHA-256. A plain hash is enough because the token is a uniformly random 256-bit
//! value, not a password: nobody can search that space, so a stolen tenant file yields no
//! token. The token travels only inside the encryption, as `authorization: Bearer sg_...`
//! in the Binary HTTP request (RFC 6750 section 2.1).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What every token starts with, so a leaked one is recognisable by secret scanners.
pub const PREFIX: &str = "sg_";

/// Random bytes in a token.
const RANDOM_BYTES: usize = 32;

/// Characters of a token: the prefix and 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = PREFIX.len() + 43;

/// A bearer token in the clear: only ever held briefly, to print it once. Zeroized on drop,
/// redacted in `Debug`.
pub struct Token(Zeroizing<String>);

impl Token {
    /// A fresh token from the operating system's RNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; RANDOM_BYTES]);
        // The system RNG failing is not something a caller can recover from, and a token
        // from a broken RNG must never be issued.
        #[allow(clippy::expect_used)]
        getrandom::fill(bytes.as_mut()).expect("the operating system's random number generator failed");
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_LEN));
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut text);
        Self(text)
    }

    /// The token text, for printing it once or handing it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the tenant file stores.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.as_bytes())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// SHA-256 of a token: what is stored and what a presented token is looked up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a presented token.
    pub fn of(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    /// Constant-time equality (`subtle`), for the final check after a lookup.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the stored hex form.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash prefix is enough to tell entries apart in a debugger and reveals nothing.
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// Why an `authorization` field did not yield a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `authorization` field, or an empty one.
    Missing,
    /// Not `Bearer sg_...` with a well-formed token.
    Malformed,
}

/// Reads the token out of an `authorization` field value: the `Bearer` scheme
/// (case-insensitive, RFC 6750 section 2.1) and a token of the form this gateway issues.
/// A well-formed token can still be unknown; that is decided by the lookup.
pub fn bearer_token(field: Option<&[u8]>) -> Result<&[u8], BearerError> {
    let field = field.map(<[u8]>::trim_ascii).filter(|f| !f.is_empty()).ok_or(BearerError::Missing)?;
    let (scheme, rest) = field.split_at_checked(6).ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return Err(BearerError::Malformed);
    }
    let token = rest.trim_ascii_start();
    let well_formed = token.len() == TOKEN_LEN
        && token.starts_with(PREFIX.as_bytes())
        && token[PREFIX.len()..].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if well_formed { Ok(token) } else { Err(BearerError::Malformed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_well_formed() {
        let (a, b) = (Token::generate(), Token::generate());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), TOKEN_LEN);
        let decoded = URL_SAFE_NO_PAD.decode(&a.expose()[PREFIX.len()..]).unwrap();
        assert_eq!(decoded.len(), 32, "256 random bits");
        let header = format!("Bearer {}", a.expose());
        assert_eq!(bearer_token(Some(header.as_bytes())), Ok(a.expose().as_bytes()));
        assert!(a.hash().ct_eq(&TokenHash::of(a.expose().as_bytes())));
        assert!(!a.hash().ct_eq(&b.hash()));
        assert_eq!(TokenHash::from_hex(&a.hash().to_hex()), Some(a.hash()));
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let token = Token::generate();
        assert!(!format!("{token:?}").contains(&token.expose()[3..]));
        assert!(!format!("{:?}", token.hash()).contains(&token.hash().to_hex()));
    }

    #[test]
    fn authorization_fields_are_parsed_strictly() {
        let token = Token::generate();
        let t = token.expose();
        assert_eq!(bearer_token(None), Err(BearerError::Missing));
        assert_eq!(bearer_token(Some(b"")), Err(BearerError::Missing));
        assert_eq!(bearer_token(Some(b"   ")), Err(BearerError::Missing));
        assert!(bearer_token(Some(format!("bearer   {t}").as_bytes())).is_ok(), "scheme is case-insensitive");
        for bad in [
            format!("Basic {t}"),
            format!("Bearer{t}"),
            format!("Bearer {}", &t[..t.len() - 1]),
            format!("Bearer {t}x"),
            format!("Bearer xx{}", &t[2..]),
            format!("Bearer {}+", &t[..t.len() - 1]),
            "Bearer".into(),
            "Bearer ".into(),
            "Bearer sg_".into(),
        ] {
            assert_eq!(bearer_token(Some(bad.as_bytes())), Err(BearerError::Malformed), "{bad}");
        }
    }
}
