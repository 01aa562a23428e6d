//! QUIC variable-length integers (RFC 9000 section 16), the length encoding of Binary HTTP
//! (RFC 9292) and of chunked OHTTP.
//!
//! Decoding takes a cursor over untrusted bytes and never panics: a short input is
//! [`Error::Truncated`].

use alloc::vec::Vec;

use crate::error::{Error, Result};

/// The largest value a QUIC varint can hold (2^62 - 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Appends `value` in the shortest QUIC varint encoding.
///
/// Values above [`MAX`] cannot be encoded; callers only pass lengths of in-memory buffers,
/// which are far below it, so this is a logic error and is clamped by a debug assertion.
pub fn encode(value: u64, out: &mut Vec<u8>) {
    debug_assert!(value <= MAX, "varint out of range");
    if value < 1 << 6 {
        out.push(value as u8);
    } else if value < 1 << 14 {
        out.extend_from_slice(&((value as u16) | 0x4000).to_be_bytes());
    } else if value < 1 << 30 {
        out.extend_from_slice(&((value as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(value | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// A forward-only reader over untrusted bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8> {
        let (&b, tail) = self.rest.split_first().ok_or(Error::Truncated)?;
        self.rest = tail;
        Ok(b)
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16> {
        let b: [u8; 2] = self.take(2)?.try_into().map_err(|_| Error::Truncated)?;
        Ok(u16::from_be_bytes(b))
    }

    /// Reads a QUIC varint.
    pub fn varint(&mut self) -> Result<u64> {
        let first = self.u8()?;
        let extra = (1usize << (first >> 6)) - 1;
        let mut value = u64::from(first & 0x3f);
        for &b in self.take(extra)? {
            value = (value << 8) | u64::from(b);
        }
        Ok(value)
    }

    /// Reads a varint length and then that many bytes.
    pub fn varint_prefixed(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| Error::Truncated)?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9000_examples_decode() {
        // RFC 9000 appendix A.1 sample encodings.
        let cases: [(&[u8], u64); 4] = [
            (&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c], 151_288_809_941_952_652),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, value) in cases {
            assert_eq!(Reader::new(bytes).varint(), Ok(value));
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn truncated_varint_is_an_error() {
        assert_eq!(Reader::new(&[0x9d, 0x7f]).varint(), Err(Error::Truncated));
        assert_eq!(Reader::new(&[]).varint(), Err(Error::Truncated));
    }
}
