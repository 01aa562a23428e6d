//! A throwaway SoftHSM2 installation for the `pkcs11` provider's tests: a configuration file
//! and initialized tokens in a fresh directory, all with the user PIN [`USER_PIN`].
//!
//! There are two ways to use one, because SoftHSM reads `SOFTHSM2_CONF` once, when the
//! module is initialized in a process:
//! - [`SoftHsm::new`], for tests that run `sealgate` processes: [`SoftHsm::env`] hands the
//!   configuration to those children, the test process never loads the module, and every
//!   test has installations of its own (they are removed on drop).
//! - [`SoftHsm::for_this_process`], for tests that load the module themselves (the provider
//!   in `sealgate-models`, which initializes it once per process): one installation per
//!   process, named in this process's `SOFTHSM2_CONF` before any test touches the module.
//!   Under nextest each test is its own process and gets its own; under `cargo test` the
//!   tests of one file share it, so they give their keys labels of their own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The user PIN of every token this harness creates.
pub const USER_PIN: &str = "1234-user";

/// The security officer PIN of every token; no test logs in as the officer.
const SO_PIN: &str = "5678-so";

/// The SoftHSM2 module the gateway loads by default.
pub const LIBRARY: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 configuration with initialized tokens.
#[derive(Debug)]
pub struct SoftHsm {
    conf: PathBuf,
    dir: PathBuf,
    /// Removes the directory on drop; `None` for the installation of
    /// [`SoftHsm::for_this_process`], which lives as long as the process and is removed by a
    /// later one.
    _owner: Option<tempfile::TempDir>,
}

impl SoftHsm {
    /// Creates a configuration and one token per label in a fresh temporary directory,
    /// removed on drop. Panics (failing the test) when `softhsm2-util` is missing or fails.
    pub fn new(labels: &[&str]) -> Self {
        let owner =
            tempfile::Builder::new().prefix("sealgate-softhsm-").tempdir().expect("creating a temporary directory");
        let dir = owner.path().to_path_buf();
        let conf = install(&dir, labels);
        Self { conf, dir, _owner: Some(owner) }
    }

    /// The installation of this process, created by the first call with its `labels` (later
    /// calls get the same one, whatever labels they pass), and named in this process's
    /// `SOFTHSM2_CONF`. Call it before anything loads the SoftHSM module.
    pub fn for_this_process(labels: &[&str]) -> &'static Self {
        static INSTALLED: OnceLock<SoftHsm> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            let dir = process_dir();
            let conf = install(&dir, labels);
            set_conf_variable(&conf);
            Self { conf, dir, _owner: None }
        })
    }

    /// The configuration file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The directory holding the configuration and the token files.
    pub fn dir(&self) -> &Path {
        &self.dir
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

/// Writes `dir/softhsm2.conf` with its token directory and initializes one token per label;
/// returns the configuration file.
fn install(dir: &Path, labels: &[&str]) -> PathBuf {
    let tokens = dir.join("tokens");
    fs::create_dir_all(&tokens).expect("creating the token directory");
    let conf = dir.join("softhsm2.conf");
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
    conf
}

/// Points the SoftHSM module of this process at `conf`.
#[allow(unsafe_code)]
fn set_conf_variable(conf: &Path) {
    // SAFETY: `set_var` is unsound only while another thread reads the environment through
    // libc. This runs inside the `OnceLock` initializer that every test calls before doing
    // anything else, so no test thread has loaded SoftHSM (the only C code here that reads
    // the environment), and Rust's own environment accesses are serialized by std's lock.
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
}

/// A new directory for this process, after removing those of earlier processes that have
/// exited (the `OnceLock` never drops, so nothing can clean up at exit).
fn process_dir() -> PathBuf {
    let parent = std::env::temp_dir().join("sealgate-softhsm-processes");
    if let Ok(entries) = fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !Path::new("/proc").join(&pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(std::process::id().to_string());
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating the SoftHSM directory of this process");
    dir
}
