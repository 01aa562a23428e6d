//! Hardening through the real binary: what the kernel shows of a running `sealgate`
//! (non-dumpable, no core files), the security headers of the pages `--static` serves, a
//! data dir that others could write refused at start, and the audit log's tampering cases
//! through `sealgate audit verify`.
//!
//! Whether a process is dumpable is not printed anywhere in `/proc/PID/status`, so the tests
//! look at what the kernel does with it: the files in `/proc/PID/` of a non-dumpable process
//! are owned by root whatever its user (the folder itself keeps the user), and `/proc/PID/limits` shows the core-file limit.
//! The ownership test runs the binary as another user (`nobody`) when the tests run as root,
//! since for a root process both owners would be root.

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealgate_test_support::{Gateway, GatewayOptions};

use crate::SEALGATE;

/// The `Max core file size` line of `/proc/PID/limits`: (soft, hard).
fn core_limit(pid: u32) -> Option<(String, String)> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max core file size"))?;
    let mut fields = line.trim_start_matches("Max core file size").split_whitespace();
    Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
}

/// The user id this test runs as.
fn own_uid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

/// A running gateway has no core-file limit left to write a core with.
#[test]
fn the_gateway_runs_with_a_core_file_limit_of_zero() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    assert_eq!(core_limit(gateway.pid()), Some(("0".into(), "0".into())), "soft and hard RLIMIT_CORE");
    if own_uid() != 0 {
        // Non-dumpable: the kernel shows the process's files as root's, not ours.
        assert_eq!(fs::metadata(format!("/proc/{}/environ", gateway.pid())).unwrap().uid(), 0);
    }
}

/// The headers every page and file of `--static` carries, 404s included, checked through
/// real HTTPS (what the browser test shows a browser does with them is in
/// `wasm-client/tests/browser.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pages_carry_the_security_headers() {
    let site = tempfile::tempdir().unwrap();
    fs::write(site.path().join("index.html"), "<!doctype html><title>demo</title><script src=app.js></script>")
        .unwrap();
    fs::write(site.path().join("app.js"), "console.log('demo');").unwrap();
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).arg("--static").arg(site.path().to_str().unwrap()));
    let expected = [
        (
            "content-security-policy",
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ];
    for (path, status) in [("/", 200), ("/index.html", 200), ("/app.js", 200), ("/no-such-file.js", 404)] {
        let response = gateway.raw_http().get(gateway.endpoint(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "GET {path}");
        for (name, value) in expected {
            let all: Vec<_> = response.headers().get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
            assert_eq!(all, [value], "GET {path}: {name}");
        }
    }
    // The gateway's own resources are not pages; the static headers stay with the static
    // files (so a relay or SDK sees exactly the OHTTP headers it did before).
    let keys = gateway.raw_http().get(gateway.endpoint("/.well-known/ohttp-gateway")).send().await.unwrap();
    assert_eq!(keys.status().as_u16(), 200);
    assert!(keys.headers().get("content-security-policy").is_none());
}

/// A data dir (or a key folder in it) that group or others can write to, or that another
/// user owns, is refused at start with one line naming the path and the fix; put right, the
/// same data dir starts again.
#[test]
fn a_data_dir_others_could_change_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    drop(Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data)));
    let start = || Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).data_dir(&data));
    for (folder, mode, who) in [
        ("", 0o770, "its group"),
        ("keys", 0o702, "others"),
        ("kms", 0o777, "group and others"),
        ("tls", 0o720, "its group"),
    ] {
        let path = data.join(folder);
        let path = if folder.is_empty() { data.clone() } else { path };
        chmod(&path, mode);
        let failed = start();
        let expected = format!(
            "error: {} is writable by {who} (mode {mode:04o}), who could replace its keys; fix: chmod go-w {}\n",
            path.display(),
            path.display()
        );
        assert_eq!(failed.error(), expected, "{folder:?}: {}", failed.text());
        chmod(&path, 0o700);
    }
    if own_uid() == 0 {
        std::os::unix::fs::chown(data.join("keys"), Some(65534), None).unwrap();
        let failed = start();
        assert_eq!(
            failed.error(),
            format!(
                "error: {} is owned by uid 65534, not by uid 0 that runs sealgate, so that user could replace its \
                 keys; fix: chown -R 0 {}\n",
                data.join("keys").display(),
                data.join("keys").display()
            ),
            "{}",
            failed.text()
        );
        std::os::unix::fs::chown(data.join("keys"), Some(0), None).unwrap();
    }
    // The CLI opens the data dir the same way.
    chmod(&data, 0o775);
    let cli = sealgate_test_support::sealgate(SEALGATE, ["kms", "list", "--data-dir", data.to_str().unwrap()]);
    cli.assert_failure(&format!("{} is writable by", data.display()));
    chmod(&data, 0o700);
    drop(Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data)));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The audit log of a gateway that started and stopped, copied into a data dir of its own
/// for each tampering case (`audit.log` and `audit.head` as given, `None` for a removed
/// file, with the gateway's local keyring and `audit.key`), and `sealgate audit verify` run
/// on it.
struct AuditCopy {
    root: tempfile::TempDir,
    data: PathBuf,
    log: String,
    head: String,
}

impl AuditCopy {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        drop(Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data)));
        let log = fs::read_to_string(data.join("audit.log")).unwrap();
        let head = fs::read_to_string(data.join("audit.head")).unwrap();
        Self { root, data, log, head }
    }

    fn entries(&self) -> usize {
        self.log.lines().count()
    }

    /// The case's data dir: the keyring and audit key of the gateway, `log` and `head`.
    fn case(&self, case: &str, log: Option<&str>, head: Option<&str>) -> PathBuf {
        let dir = self.root.path().join(case);
        if !dir.exists() {
            sealgate_test_support::copy_audit_key(&self.data, &dir);
            if let Some(log) = log {
                fs::write(dir.join("audit.log"), log).unwrap();
            }
            if let Some(head) = head {
                fs::write(dir.join("audit.head"), head).unwrap();
            }
        }
        dir
    }

    fn verify(
        &self,
        case: &str,
        log: Option<&str>,
        head: Option<&str>,
        extra: &[&str],
    ) -> sealgate_test_support::CliOutput {
        let dir = self.case(case, log, head);
        sealgate_test_support::sealgate(
            SEALGATE,
            ["audit", "verify", "--data-dir", dir.to_str().unwrap()].into_iter().chain(extra.iter().copied()),
        )
    }
}

/// Each way of rewriting the log without the chain noticing is caught by `audit verify`:
/// an emptied or deleted log (with or without its head), a field the hash does not cover,
/// and only the operator's `--new-log` accepts a log that is gone.
#[test]
fn audit_verify_catches_an_emptied_deleted_or_extended_log() {
    let copy = AuditCopy::new();
    let n = copy.entries();
    assert!(n >= 3, "a first start audits key creation and unwraps: {}", copy.log);
    copy.verify("intact", Some(&copy.log), Some(&copy.head), &[])
        .assert_success()
        .assert_stdout_contains(&format!("intact, {n} entries"));

    let cut = format!(
        "the audit log ends at entry 0 but entry {n} was written (lines removed, or the log emptied or deleted)"
    );
    copy.verify("emptied", Some(""), Some(&copy.head), &[]).assert_failure(&cut);
    copy.verify("deleted", None, Some(&copy.head), &[]).assert_failure(&cut);
    // `--new-log` never discards a log that has entries, nor hides a cut one.
    copy.verify("kept", Some(&copy.log), Some(&copy.head), &["--new-log"]).assert_failure("has entries");

    // Log and head both gone: refused until the operator says the log is new.
    let gone = "audit.head is missing (the log has 0 entries): the audit log was deleted or replaced; if this data \
                dir's log is new on purpose, accept it with `sealgate audit verify --new-log`";
    copy.verify("gone", None, None, &[]).assert_failure(gone);
    copy.verify("gone", None, None, &["--new-log"])
        .assert_success()
        .assert_stdout_contains("a new audit log starts at entry 0");
    copy.verify("gone", None, None, &[]).assert_success().assert_stdout_contains("intact, 0 entries");
    // A log whose head was removed.
    copy.verify("headless", Some(&copy.log), None, &[]).assert_failure(&format!("the log has {n} entries"));

    // A field added to an entry: the hash covers only the known fields, so it is refused.
    let mut lines: Vec<String> = copy.log.lines().map(String::from).collect();
    lines[1] = lines[1].replacen('{', "{\"approved_by\":\"intruder\",", 1);
    let extended = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    copy.verify("extended", Some(&extended), Some(&copy.head), &[])
        .assert_failure("audit log line 2: not a valid audit entry");
}

/// What someone who can write the data dir but not use the KMS key that wraps the audit key
/// would do to hide key uses, each refused: cut the last entries and write the head the
/// remaining ones call for, delete the log and write the head of a new one, delete the audit
/// key. Only the operator's `--rekey` authenticates an intact log again, never a cut one.
#[test]
fn a_rewritten_log_with_a_matching_head_fails_without_the_audit_key() {
    let copy = AuditCopy::new();
    let n = copy.entries();
    let entry = |line: &str| -> (u64, String) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        (value["seq"].as_u64().unwrap(), value["hash"].as_str().unwrap().to_owned())
    };
    let not_authentic = "audit.head is not authenticated by this data dir's audit key";

    // The last entry cut, and the head rewritten to the entry now last: the chain holds.
    let kept: Vec<&str> = copy.log.lines().take(n - 1).collect();
    let (seq, hash) = entry(kept[kept.len() - 1]);
    let cut_log: String = kept.iter().map(|l| format!("{l}\n")).collect();
    let forged_head = format!("{seq} {hash}\n");
    copy.verify("cut", Some(&cut_log), Some(&forged_head), &[]).assert_failure(not_authentic);
    // With a made-up MAC too.
    let made_up = format!("{seq} {hash} {}\n", "ab".repeat(32));
    copy.verify("made-up", Some(&cut_log), Some(&made_up), &[]).assert_failure(not_authentic);
    // `--rekey` does not authenticate a cut log: the head still names the last entry written.
    copy.verify("cut-rekey", Some(&cut_log), Some(&copy.head), &["--rekey"])
        .assert_failure(&format!("the audit log ends at entry {seq} but entry {n} was written"));
    // A gateway does not append to it either.
    let dir = copy.case("cut", None, None);
    Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).data_dir(&dir))
        .assert_stderr_contains(not_authentic);
    assert_eq!(fs::read_to_string(dir.join("audit.log")).unwrap(), cut_log, "nothing was appended");

    // The log deleted and the head of a new, empty log written in its place.
    let genesis = format!("0 {}\n", "0".repeat(64));
    copy.verify("restarted", None, Some(&genesis), &[]).assert_failure(not_authentic);

    // The audit key deleted: refused, until the operator re-keys the intact log.
    let dir = copy.case("keyless", Some(&copy.log), Some(&copy.head));
    fs::remove_file(dir.join("audit.key")).unwrap();
    copy.verify("keyless", None, None, &[]).assert_failure("audit.key is missing");
    copy.verify("keyless", None, None, &["--rekey"])
        .assert_success()
        .assert_stdout_contains(&format!("audit log intact, {n} entries; its head is now authenticated by a new key"));
    copy.verify("keyless", None, None, &[])
        .assert_success()
        .assert_stdout_contains(&format!("intact, {} entries", n + 1));
    let log = fs::read_to_string(dir.join("audit.log")).unwrap();
    assert!(log.lines().last().unwrap().contains("\"op\":\"rekey\""), "the rekey is audited: {log}");
}

/// A gateway does not write past a log that was cut: its first key use at start is refused
/// (nothing unaudited), and the cut stays visible to `audit verify`.
#[test]
fn a_gateway_refuses_to_continue_a_cut_audit_log() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    drop(Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data)));
    let log = fs::read_to_string(data.join("audit.log")).unwrap();
    let n = log.lines().count();
    let cut: String = log.lines().take(n - 1).map(|l| format!("{l}\n")).collect();
    fs::write(data.join("audit.log"), &cut).unwrap();
    let failed = Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).data_dir(&data));
    failed.assert_stderr_contains(&format!(
        "the audit log ends at entry {} but audit.head records entry {n}: the log was changed",
        n - 1
    ));
    assert_eq!(fs::read_to_string(data.join("audit.log")).unwrap(), cut, "nothing was appended");
    sealgate_test_support::sealgate(SEALGATE, ["audit", "verify", "--data-dir", data.to_str().unwrap()])
        .assert_failure("lines removed");
}

/// A `sealgate` process running as another user: its `/proc/PID/` files are owned by root,
/// which the kernel does only for a non-dumpable process. The command (`seal` of a demo
/// model with the customer key read from stdin) waits on its stdin, held open here, so it is alive while
/// the test looks.
#[test]
fn a_sealgate_process_is_not_dumpable() {
    let data = tempfile::tempdir().unwrap();
    // `seal` reads and checks the model before it opens the data dir and reads the key.
    fs::copy(sealgate_test_support::demo_model_path("breast-cancer"), data.path().join("model.onnx")).unwrap();
    let uid = if own_uid() == 0 { 65534 } else { own_uid() };
    let mut command = Command::new(SEALGATE);
    command
        .args(["seal", "--kms", "customer-provided", "--customer-key", "-", "--model", "m", "--version", "1"])
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .arg(data.path().join("model.onnx"))
        .arg("-o")
        .arg(data.path().join("model.sealed"))
        .current_dir(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if own_uid() == 0 {
        std::os::unix::fs::chown(data.path(), Some(uid), Some(uid)).unwrap();
        command.uid(uid).gid(uid);
    }
    let mut child = command.spawn().unwrap();
    let pid = child.id();
    // Hardening is the first thing `main` does; wait until the kernel shows it (or the
    // process ends, which fails the test below with its stderr).
    let deadline = Instant::now() + Duration::from_secs(20);
    while core_limit(pid) != Some(("0".into(), "0".into())) && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let user = fs::metadata(format!("/proc/{pid}")).map(|m| m.uid());
    let owner = fs::metadata(format!("/proc/{pid}/environ")).map(|m| (m.uid(), m.gid()));
    let limit = core_limit(pid);
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(still_running, "sealgate seal exited early: {stderr}");
    assert_eq!(limit, Some(("0".into(), "0".into())), "RLIMIT_CORE of a process of uid {uid}");
    // The folder keeps the process's user (the kernel's rule for `/proc/PID` itself), so this
    // is the right process; the files in it are root's only when it is non-dumpable.
    assert_eq!(user.unwrap(), uid, "/proc/{pid} is the process's user");
    assert_eq!(owner.unwrap(), (0, 0), "/proc/{pid}/environ of a process of uid {uid} (root only when non-dumpable)");
}
