//! A throwaway SoftHSM2 installation for the `pkcs11` provider's end-to-end tests: a
//! configuration file and token directory in a fresh temporary directory, handed to the
//! `sealgate` processes through `SOFTHSM2_CONF` (the test process itself never loads the
//! module, so nothing here touches its own environment). Each [`SoftHsm`] is independent, so
//! tests run in parallel.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user PIN of every token [`SoftHsm::new`] creates.
pub const USER_PIN: &str = "5678";

const SO_PIN: &str = "1234";

/// The SoftHSM2 module the gateway loads by default.
pub const LIBRARY: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 configuration with initialized tokens; the directory goes on drop.
#[derive(Debug)]
pub struct SoftHsm {
    conf: PathBuf,
    // Declared last so it is removed after everything that names it.
    dir: tempfile::TempDir,
}

impl SoftHsm {
    /// Creates the configuration and one token per label (user PIN [`USER_PIN`]). Panics
    /// (failing the test) when `softhsm2-util` is missing or fails.
    pub fn new(labels: &[&str]) -> Self {
        let dir =
            tempfile::Builder::new().prefix("sealgate-softhsm-").tempdir().expect("creating a temporary directory");
        let tokens = dir.path().join("tokens");
        fs::create_dir_all(&tokens).expect("creating the token directory");
        let conf = dir.path().join("softhsm2.conf");
        fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .expect("writing softhsm2.conf");
        for label in labels {
            let output = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN])
                .env("SOFTHSM2_CONF", &conf)
                .output()
                .expect("running softhsm2-util (install SoftHSM2 with `cargo xtask setup`)");
            assert!(
                output.status.success(),
                "softhsm2-util --init-token failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Self { conf, dir }
    }

    /// The configuration file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The directory holding the configuration and the token files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment a `sealgate` process needs to use these tokens: `SOFTHSM2_CONF`, the
    /// module and the user PIN.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SOFTHSM2_CONF", self.conf.display().to_string()),
            ("SEALGATE_PKCS11_LIBRARY", LIBRARY.into()),
            ("SEALGATE_PKCS11_PIN", USER_PIN.into()),
        ]
    }
}
