//! Reading a bearer token from a file, such as the `DATA_DIR/dev.token` that `sealgate
//! serve` writes on first start.
//!
//! A token in a file (mode 0600) stays out of shell history and the process list. The
//! file's content is never echoed: errors name the file and what is wrong with it.

use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Reads a bearer token: the file's content without surrounding whitespace, which must be
/// one non-empty line of printable ASCII.
pub fn read_token_file(path: impl AsRef<Path>) -> Result<Zeroizing<String>> {
    let path = path.as_ref();
    let error = |problem, cause| Error::TokenFile { path: path.to_owned(), problem, cause };
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| error("cannot read it", Some(e)))?);
    let token = bytes.trim_ascii();
    if token.is_empty() {
        return Err(error("it is empty", None));
    }
    if !token.iter().all(|b| b.is_ascii_graphic()) {
        return Err(error("it does not hold a single bearer token", None));
    }
    // Every byte is printable ASCII, so this cannot fail.
    Ok(Zeroizing::new(String::from_utf8_lossy(token).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_bad_files_named_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "sg_abc\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap().as_str(), "sg_abc");
        std::fs::write(&path, " \n").unwrap();
        assert!(read_token_file(&path).unwrap_err().to_string().contains("is empty"));
        std::fs::write(&path, "sg_secret1 sg_secret2").unwrap();
        let error = read_token_file(&path).unwrap_err().to_string();
        assert!(error.contains("single bearer token") && !error.contains("secret"), "{error}");
        let missing = read_token_file(dir.path().join("missing")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        let cause = std::error::Error::source(&missing).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(cause.map(std::io::Error::kind), Some(std::io::ErrorKind::NotFound), "the I/O error is the source");
    }
}
