//! `sealgate.toml` through the real binary: `sealgate config check` shows what `serve` would
//! run with and where each value came from (file < `SEALGATE_*` < flag), refuses unknown
//! keys and bad values naming them, and `serve --config` really runs with the file.

use std::path::Path;

use sealgate_test_support::{Gateway, GatewayOptions, SealgateCommand};

use crate::SEALGATE;

fn config_check(file: &Path) -> SealgateCommand {
    SealgateCommand::new(SEALGATE).args(["config", "check"]).arg(file)
}

/// The line of `key` in `config check`'s output.
fn line<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("no '{key}' in:\n{stdout}"))
}

#[test]
fn config_check_prints_the_effective_configuration_and_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealgate.toml");
    std::fs::write(
        &file,
        "max_in_flight = 64\nqueue_timeout = \"3s\"\ncors_origin = [\"https://a.example\", \"https://b.example\"]\n\
         danger_allow_anonymous = false\n",
    )
    .unwrap();
    let out = config_check(&file).env("SEALGATE_QUEUE_TIMEOUT", "5s").run();
    out.assert_success();
    assert_eq!(line(&out.stdout, "max_in_flight"), "max_in_flight = \"64\"  # file");
    assert_eq!(
        line(&out.stdout, "queue_timeout"),
        "queue_timeout = \"5s\"  # environment",
        "the environment beats the file"
    );
    assert_eq!(
        line(&out.stdout, "cors_origin"),
        "cors_origin = [\"https://a.example\", \"https://b.example\"]  # file"
    );
    assert_eq!(line(&out.stdout, "drain_timeout"), "drain_timeout = \"30s\"  # default");
    assert_eq!(line(&out.stdout, "danger_allow_anonymous"), "danger_allow_anonymous = false  # file");
}

#[test]
fn bad_configuration_files_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealgate.toml");
    for (text, expected) in [
        ("max_in_fligth = 3\n", "unknown option 'max_in_fligth' (did you mean 'max_in_flight'?)"),
        ("max_in_flight = \"lots\"\n", "--max-in-flight"),
        ("queue_timeout = \"soon\"\n", "--queue-timeout"),
        ("max_queue_delay = \"briefly\"\n", "--max-queue-delay"),
        ("danger_allow_anonymous = \"yes\"\n", "is a switch"),
        ("listen = \n", "not valid TOML"),
    ] {
        std::fs::write(&file, text).unwrap();
        config_check(&file).run().assert_failure(expected);
    }
    config_check(&dir.path().join("missing.toml")).run().assert_failure("reading the configuration");
    // `serve` refuses the same file the same way, before doing anything.
    std::fs::write(&file, "max_in_fligth = 3\n").unwrap();
    let failed = Gateway::start_expecting_failure(
        GatewayOptions::new(SEALGATE).data_dir(dir.path().join("data")).args(["--config", file.to_str().unwrap()]),
    );
    failed.assert_stderr_contains("unknown option 'max_in_fligth'");
    assert!(!dir.path().join("data").exists(), "nothing was created for a refused configuration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_with_the_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealgate.toml");
    std::fs::write(&file, "cors_origin = [\"https://file.example\"]\nmax_in_flight = 7\n").unwrap();
    let allowed = |gateway: &Gateway, origin: &'static str| {
        let request = gateway.raw_http().get(gateway.endpoint("/healthz")).header("origin", origin).send();
        async move {
            let response = request.await.unwrap();
            response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned())
        }
    };
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE).data_dir(dir.path().join("a")).args(["--config", file.to_str().unwrap()]),
    );
    assert_eq!(allowed(&gateway, "https://file.example").await.as_deref(), Some("https://file.example"));
    assert_eq!(allowed(&gateway, "https://other.example").await, None);
    drop(gateway);

    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).data_dir(dir.path().join("b")).args([
        "--config",
        file.to_str().unwrap(),
        "--cors-origin",
        "https://flag.example",
    ]));
    assert_eq!(allowed(&gateway, "https://flag.example").await.as_deref(), Some("https://flag.example"));
    assert_eq!(allowed(&gateway, "https://file.example").await, None, "the flag replaced the file's list");
}
