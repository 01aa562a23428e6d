//! A throwaway SoftHSM2 installation: token files in a fresh directory, for the `pkcs11`
//! provider's tests.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, when the module is initialized, and the provider
//! initializes the module once per process. So the harness sets up one directory, with its
//! tokens, per test process, before any test touches the module: every test calls
//! [`setup`] first, and gives its keys labels of its own. (Under nextest each test is its own
//! process and gets its own directory; under `cargo test` the tests of this file share one.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sealgate_models::kms::pkcs11::{Pkcs11Config, Pkcs11Kms};
use zeroize::Zeroizing;

/// The token the tests keep their keys in.
pub const TOKEN: &str = "sealgate-test";

/// A second token, used only by the wrong-PIN test: PKCS#11 logins are per process and
/// token, so on a token where another test is logged in, any PIN would be accepted.
pub const PIN_TEST_TOKEN: &str = "sealgate-pin-test";

/// The user PIN of both tokens.
pub const USER_PIN: &str = "1234-user";

const SO_PIN: &str = "5678-so";

/// Prepares the tokens (once per process) and returns the SoftHSM directory.
pub fn setup() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = fresh_dir();
        let tokens = dir.join("tokens");
        fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        set_conf_variable(&conf);
        for label in [TOKEN, PIN_TEST_TOKEN] {
            let output = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN])
                .output()
                .expect("running softhsm2-util (install SoftHSM2 with `cargo xtask setup`)");
            assert!(
                output.status.success(),
                "softhsm2-util --init-token failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        dir
    })
}

/// Points SoftHSM (the `softhsm2-util` children and the module in this process) at `conf`.
#[allow(unsafe_code)]
fn set_conf_variable(conf: &Path) {
    // SAFETY: `set_var` is unsound only while another thread reads the environment through
    // libc. This runs inside the `OnceLock` initializer that every test calls before doing
    // anything else, so no test thread has loaded SoftHSM (the only C code here that reads
    // the environment), and Rust's own environment accesses are serialized by std's lock.
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
}

/// A new directory for this process under Cargo's temporary directory for tests, after
/// removing those of earlier processes that have exited (the `OnceLock` never drops, so
/// nothing can clean up at exit).
fn fresh_dir() -> PathBuf {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("softhsm2");
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
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The configuration for `token` with `pin`.
pub fn config(token: &str, pin: &str) -> Pkcs11Config {
    setup();
    Pkcs11Config::new(token, Zeroizing::new(pin.to_owned()))
}

/// A provider logged in to [`TOKEN`].
pub fn kms() -> Pkcs11Kms {
    Pkcs11Kms::new(config(TOKEN, USER_PIN)).unwrap()
}
