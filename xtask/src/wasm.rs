//! `cargo xtask wasm`: builds the browser package, and the tools it and its tests need.
//!
//! The package is `wasm-client/pkg/` (git-ignored): the module compiled with the size-tuned
//! `release-wasm` profile, bound by `wasm-bindgen --target web` at exactly the version of
//! the `wasm-bindgen` crate in Cargo.lock (the CLI and the crate must agree to the patch
//! level, or the generated glue does not match the module), shrunk with `wasm-opt -Oz` from
//! npm's `binaryen` (Debian's binaryen 108 produces modules that fail to load), and given a
//! `package.json` so it can be imported as `sealgate-wasm`. crates.io source paths are
//! shortened in the module (see [`remap_registry_paths`]). The demo site (the page of
//! `wasm-client/www/` plus the package in `pkg/`) is assembled into `target/wasm-demo/`, ready
//! for `cargo xtask serve --static target/wasm-demo`.
//!
//! `cargo xtask wasm test [--browser]` runs the crate's wasm-bindgen tests in Node or in
//! Chromium (through chromedriver), and checks the runner's summary line: Node exits with 0
//! when a test leaves nothing on its event loop, which would otherwise pass silently.
//!
//! [`setup`] installs, each only when missing: wasm-bindgen-cli (`cargo install`, several
//! minutes), Debian's chromium, chromium-driver and certutil (apt), and the npm packages of
//! `wasm-client/package.json` (playwright-core, binaryen).

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};

use crate::process::{cargo, describe, find_in_path, run, stdout_of};

/// The wasm target.
const TARGET: &str = "wasm32-unknown-unknown";

/// The crate and its module name.
const CRATE: &str = "sealgate-wasm";
const MODULE: &str = "sealgate_wasm";

/// The size-tuned profile of the root Cargo.toml.
const PROFILE: &str = "release-wasm";

/// Features the module is compiled with (Rust's wasm32 defaults), passed to wasm-opt so it
/// keeps using them.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// `wasm-client/` of the checkout.
pub fn crate_dir(root: &Path) -> PathBuf {
    root.join("wasm-client")
}

/// Builds the package into `wasm-client/pkg/` and the demo site into `target/wasm-demo/`.
/// Returns the package folder.
pub fn build(root: &Path) -> Result<PathBuf> {
    let bindgen = wasm_bindgen_cli(root)?;
    npm_packages(root)?;
    let dir = crate_dir(root);
    let pkg = dir.join("pkg");

    run(cargo()
        .current_dir(root)
        .args(["build", "-p", CRATE, "--target", TARGET, "--profile", PROFILE])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", remap_registry_paths()))
    .context("compiling the browser module")?;
    let module = target_dir(root).join(TARGET).join(PROFILE).join(format!("{MODULE}.wasm"));

    if pkg.exists() {
        fs::remove_dir_all(&pkg).with_context(|| format!("removing the old {}", pkg.display()))?;
    }
    run(Command::new(&bindgen)
        .args(["--target", "web", "--remove-name-section", "--remove-producers-section", "--out-dir"])
        .arg(&pkg)
        .arg(&module))
    .context("generating the JS bindings with wasm-bindgen")?;

    let bound = pkg.join(format!("{MODULE}_bg.wasm"));
    let before = file_size(&bound)?;
    let optimized = pkg.join(format!("{MODULE}_bg.opt.wasm"));
    run(Command::new(dir.join("node_modules/.bin/wasm-opt"))
        .arg("-Oz")
        .args(WASM_FEATURES)
        .arg(&bound)
        .arg("-o")
        .arg(&optimized))
    .context("shrinking the module with wasm-opt (npm binaryen)")?;
    fs::rename(&optimized, &bound).with_context(|| format!("replacing {}", bound.display()))?;

    fs::write(pkg.join("package.json"), package_json(root)?).context("writing pkg/package.json")?;
    let site = assemble_demo(root, &pkg)?;
    eprintln!(
        "wasm: {} is {} bytes ({before} before wasm-opt); demo site in {}; try `cargo xtask serve --static {}`",
        bound.display(),
        file_size(&bound)?,
        site.display(),
        site.strip_prefix(root).unwrap_or(&site).display()
    );
    Ok(pkg)
}

/// Runs the crate's wasm-bindgen tests in Node, or in Chromium with `browser`.
pub fn test(root: &Path, browser: bool) -> Result<()> {
    let bindgen = wasm_bindgen_cli(root)?;
    let runner = bindgen.with_file_name("wasm-bindgen-test-runner");
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["test", "-p", CRATE, "--target", TARGET, "--lib"])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &runner);
    if browser {
        let driver = find_in_path("chromedriver").context("chromedriver is missing; run `cargo xtask setup`")?;
        command.env("WASM_BINDGEN_USE_BROWSER", "1").env("CHROMEDRIVER", driver);
    }
    let line = describe(&command);
    let mut child = command.stdout(Stdio::piped()).spawn().with_context(|| format!("could not start `{line}`"))?;
    let mut summary = None;
    if let Some(stdout) = child.stdout.take() {
        for text in BufReader::new(stdout).lines() {
            let text = text.context("reading the test output")?;
            println!("{text}");
            if text.starts_with("test result: ") {
                summary = Some(text);
            }
        }
    }
    let status = child.wait().with_context(|| format!("waiting for `{line}`"))?;
    ensure!(status.success(), "`{line}` failed ({status})");
    match summary {
        Some(s) if s.starts_with("test result: ok.") => Ok(()),
        Some(s) => bail!("`{line}` reported: {s}"),
        None => bail!("`{line}` exited without a `test result:` line: a test stopped the runner early"),
    }
}

/// Installs what the browser package and its tests need, each only when missing.
pub fn setup(root: &Path) -> Result<()> {
    wasm_bindgen_cli(root)?;
    browser_tools()?;
    npm_packages(root)
}

/// The `wasm-bindgen` version in Cargo.lock.
fn locked_wasm_bindgen(root: &Path) -> Result<String> {
    let lock = fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            let version = lines.next().and_then(|l| l.strip_prefix("version = \"")?.strip_suffix('"'));
            return version.map(str::to_owned).context("Cargo.lock: no version after name = \"wasm-bindgen\"");
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package; is wasm-client a workspace member?")
}

/// Ensures `wasm-bindgen` of exactly the locked version; returns its path.
fn wasm_bindgen_cli(root: &Path) -> Result<PathBuf> {
    let version = locked_wasm_bindgen(root)?;
    let installed = find_in_path("wasm-bindgen")
        .or_else(|| std::env::var_os("CARGO_HOME").map(|home| PathBuf::from(home).join("bin/wasm-bindgen")))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/wasm-bindgen")))
        .filter(|path| path.is_file());
    if let Some(path) = installed {
        let reported = stdout_of(Command::new(&path).arg("--version")).unwrap_or_default();
        if reported.split_whitespace().nth(1) == Some(version.as_str()) {
            eprintln!("wasm-bindgen-cli: {version} present at {}", path.display());
            return Ok(path);
        }
        eprintln!("wasm-bindgen-cli: {} reports '{}', need {version}", path.display(), reported.trim());
    }
    eprintln!("wasm-bindgen-cli: installing {version} with cargo install (takes a few minutes, once)");
    // No --locked: the CLI's own lock file pins versions that do not build here.
    run(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))
        .with_context(|| format!("installing wasm-bindgen-cli {version}"))?;
    let path = find_in_path("wasm-bindgen")
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/wasm-bindgen")))
        .filter(|path| path.is_file())
        .context("cargo install finished but no wasm-bindgen is on PATH or in ~/.cargo/bin")?;
    Ok(path)
}

/// Debian's chromium, chromium-driver and certutil (for trusting the gateway's development
/// CA in the browser tests), installed with apt when missing and running as root.
fn browser_tools() -> Result<()> {
    let missing: Vec<&str> =
        [("chromium", "chromium"), ("chromedriver", "chromium-driver"), ("certutil", "libnss3-tools")]
            .into_iter()
            .filter(|(command, _)| find_in_path(command).is_none())
            .map(|(_, package)| package)
            .collect();
    if missing.is_empty() {
        eprintln!("chromium, chromedriver, certutil: present");
        return Ok(());
    }
    let list = missing.join(" ");
    if !stdout_of(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0") {
        eprintln!("browser tools: missing; install them with `sudo apt-get install -y {list}`");
        return Ok(());
    }
    eprintln!("browser tools: installing {list} with apt-get (about a minute)");
    run(Command::new("apt-get").args(["update"]).env("DEBIAN_FRONTEND", "noninteractive"))
        .context("updating apt package lists")?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {list} with apt-get"))?;
    Ok(())
}

/// The npm packages of `wasm-client/package.json`, installed from its lock file when
/// `node_modules` lacks them.
fn npm_packages(root: &Path) -> Result<()> {
    let dir = crate_dir(root);
    let modules = dir.join("node_modules");
    if modules.join("playwright-core/package.json").is_file() && modules.join(".bin/wasm-opt").is_file() {
        eprintln!("npm packages: present in {}", modules.display());
        return Ok(());
    }
    eprintln!("npm packages: installing into {} with npm ci", modules.display());
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))
        .context("installing the npm packages of wasm-client/ (is npm installed?)")
}

/// `--remap-path-prefix` flags that shorten the paths of crates.io sources to
/// `crates/NAME-VERSION/...`. Panic locations keep their file names in the module; without
/// this each one carries the builder's Cargo home (`/root/.cargo/registry/src/index...`),
/// which costs a few kilobytes and tells every page visitor where the package was built.
fn remap_registry_paths() -> String {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let Some(sources) = cargo_home.map(|home| home.join("registry").join("src")) else { return String::new() };
    let Ok(entries) = fs::read_dir(&sources) else { return String::new() };
    let mut flags: Vec<String> =
        entries.flatten().map(|entry| format!("--remap-path-prefix={}=crates", entry.path().display())).collect();
    flags.sort();
    flags.join(" ")
}

/// The target directory, as Cargo reports it (`CARGO_TARGET_DIR` or `target/`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len())
}

/// `pkg/package.json`: the module as the npm package `sealgate-wasm`.
fn package_json(root: &Path) -> Result<String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .context("no version in [workspace.package] of Cargo.toml")?;
    Ok(format!(
        r#"{{
  "name": "sealgate-wasm",
  "version": "{version}",
  "description": "End-to-end encrypted (Oblivious HTTP) inference from the browser to a Sealgate gateway",
  "license": "Apache-2.0",
  "type": "module",
  "main": "{MODULE}.js",
  "types": "{MODULE}.d.ts",
  "files": ["{MODULE}_bg.wasm", "{MODULE}.js", "{MODULE}.d.ts", "{MODULE}_bg.wasm.d.ts"],
  "sideEffects": false
}}
"#
    ))
}

/// Copies `wasm-client/www/` and the package into `target/wasm-demo/` (with `pkg/`).
fn assemble_demo(root: &Path, pkg: &Path) -> Result<PathBuf> {
    let site = target_dir(root).join("wasm-demo");
    if site.exists() {
        fs::remove_dir_all(&site).with_context(|| format!("removing the old {}", site.display()))?;
    }
    copy_files(&crate_dir(root).join("www"), &site)?;
    copy_files(pkg, &site.join("pkg"))?;
    Ok(site)
}

/// Copies the files (not folders) of `from` into `to`.
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let path = entry?.path();
        if path.is_file() {
            let name = path.file_name().context("a file has a name")?;
            fs::copy(&path, to.join(name)).with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}
