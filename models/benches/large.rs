//! The large-model benchmark behind `cargo xtask bench --large`: a model with external
//! initializers (about 3 GB, made by models/make/make_large_model.py) sealed into one
//! version-2 artifact, against ONNX Runtime loading the same files from disk.
//!
//! ```text
//! ORT_DYLIB_PATH=... cargo bench -p sealgate-models --bench large -- \
//!     --onnx DIR/large.onnx --sealed DIR/large.sealed --data KMS_DIR [--runs 3]
//! ```
//!
//! Prints, measured side by side in this one run (alternating, medians):
//! - time to a ready session: plaintext (`commit_from_file`, ONNX Runtime reading the
//!   external files itself) against sealed (`open_file` into locked memory, then the
//!   session from memory with the files handed over by pointer), each in a fresh process,
//!   with that process's peak RSS (VmHWM);
//! - decryption throughput of `open_file` against one raw single-pass aws-lc-rs
//!   AES-256-GCM open of a buffer of the same size, with both cores free and with a
//!   busy-looping thread on the other core.
//!
//! `--child plaintext|sealed` is the per-process load (internal).

mod common;

use common::{arg, env, median, vm_hwm_kib};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sealgate_models::ModelFiles;
use sealgate_models::artifact::{self, DigestCheck};
use sealgate_models::kms::KmsProvider;
use sealgate_models::kms::local::{LocalKms, RootKey};

/// One load in this process; prints "SECONDS VMHWM_KIB".
fn child(kind: &str, onnx: &Path, sealed: &Path, data: &Path) {
    let env = env();
    let t = Instant::now();
    match kind {
        "plaintext" => {
            let session = ort::session::Session::builder(env)
                .unwrap()
                .with_intra_threads(1)
                .unwrap()
                .with_inter_threads(1)
                .unwrap()
                .commit_from_file(onnx)
                .unwrap();
            let elapsed = t.elapsed();
            println!("{} {}", elapsed.as_secs_f64(), vm_hwm_kib());
            drop(session);
        }
        _ => {
            let kms = LocalKms::open(data, RootKey::File).unwrap();
            let set: &[&dyn KmsProvider] = &[&kms];
            let file = std::fs::File::open(sealed).unwrap();
            let opened = artifact::open_file(&file, set, DigestCheck::TrustAead).unwrap();
            let decrypted = t.elapsed();
            let empty = tempfile::tempdir().unwrap();
            let external = opened.external_files();
            let files = ModelFiles { onnx: opened.model(), external: &external, empty_dir: Some(empty.path()) };
            let model =
                sealgate_models::Model::from_files(env, "large", "1", &files, 1, opened.model_digest().unwrap())
                    .unwrap();
            let built = t.elapsed();
            drop(external);
            drop(opened);
            let elapsed = t.elapsed();
            if std::env::var_os("BENCH_TRACE").is_some() {
                eprintln!("sealed: open_file {decrypted:?}, sessions at {built:?}, buffer wiped at {elapsed:?}");
            }
            println!("{} {}", elapsed.as_secs_f64(), vm_hwm_kib());
            drop(model);
        }
    }
}

/// A thread spinning on the other core until dropped.
struct Busy(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Busy {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut x = 0u64;
            while !flag.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
        Self(stop, Some(handle))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--bench") && arg("--onnx").is_none() {
        // `cargo bench` without arguments (as in CI-like sweeps): nothing to do.
        eprintln!("large: pass --onnx, --sealed and --data (cargo xtask bench --large does)");
        return;
    }
    let onnx = PathBuf::from(arg("--onnx").expect("--onnx"));
    let sealed = PathBuf::from(arg("--sealed").expect("--sealed"));
    let data = PathBuf::from(arg("--data").expect("--data"));
    if let Some(kind) = arg("--child") {
        return child(&kind, &onnx, &sealed, &data);
    }
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(3);
    let exe = std::env::current_exe().unwrap();
    let load = |kind: &str| -> (f64, u64) {
        let out = Command::new(&exe)
            .args(["--child", kind, "--onnx"])
            .arg(&onnx)
            .arg("--sealed")
            .arg(&sealed)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind} load failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let mut it = text.split_whitespace();
        (it.next().unwrap().parse().unwrap(), it.next().unwrap().parse().unwrap())
    };
    let (mut plain, mut seal) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        plain.push(load("plaintext"));
        seal.push(load("sealed"));
    }
    let secs = |v: &[(f64, u64)]| median(v.iter().map(|x| Duration::from_secs_f64(x.0)).collect());
    let peak = |v: &[(f64, u64)]| v.iter().map(|x| x.1).max().unwrap();
    let model_bytes: u64 = std::fs::metadata(&onnx).unwrap().len()
        + std::fs::read_dir(onnx.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".bin"))
            .map(|e| e.metadata().unwrap().len())
            .sum::<u64>();
    let (pt, st) = (secs(&plain), secs(&seal));
    let (pp, sp) = (peak(&plain), peak(&seal));
    println!("model: {} with external files, {:.2} GB; runs: {runs}", onnx.display(), model_bytes as f64 / 1e9);
    println!(
        "time to a ready session: plaintext {:.2} s, sealed {:.2} s, ratio {:.3} (target <= 1.10)",
        pt.as_secs_f64(),
        st.as_secs_f64(),
        st.as_secs_f64() / pt.as_secs_f64()
    );
    println!(
        "peak RSS: plaintext {:.2} GB, sealed {:.2} GB; sealed - plaintext = {:.2}x the model (target <= 1.10)",
        pp as f64 * 1024.0 / 1e9,
        sp as f64 * 1024.0 / 1e9,
        (sp as f64 - pp as f64) * 1024.0 / model_bytes as f64
    );

    // Decryption against raw AES-256-GCM over the same number of bytes, both cores free and
    // with the second core busy.
    let kms = LocalKms::open(&data, RootKey::File).unwrap();
    let set: &[&dyn KmsProvider] = &[&kms];
    let file = std::fs::File::open(&sealed).unwrap();
    let size = artifact::open_file(&file, set, DigestCheck::TrustAead).unwrap().plaintext.as_slice().len();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut raw = vec![0x5au8; size];
    let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut raw).unwrap();
    raw.extend_from_slice(tag.as_ref());
    let mut buf = raw.clone();
    for busy in [false, true] {
        let _busy = busy.then(Busy::start);
        let (mut raw_t, mut open_t, mut alloc_t) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            let b = artifact::LockedBuffer::new(size).unwrap();
            alloc_t.push(t.elapsed());
            drop(b);
            buf.copy_from_slice(&raw);
            let t = Instant::now();
            key.open_in_place(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut buf).unwrap();
            raw_t.push(t.elapsed());
            let t = Instant::now();
            let opened = artifact::open_file(&file, set, DigestCheck::TrustAead).unwrap();
            open_t.push(t.elapsed());
            drop(opened);
        }
        let gbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e9;
        let (r, o, a) = (median(raw_t), median(open_t), median(alloc_t));
        let d = o.saturating_sub(a);
        println!(
            "decryption{}: open_file {:.2} GB/s; minus the {:.2} s locked-buffer creation {:.2} GB/s; raw aws-lc-rs \
             AES-256-GCM single pass {:.2} GB/s; ratios {:.2} / {:.2} (target >= 0.85)",
            if busy { " (second core busy)" } else { " (both cores free)" },
            gbps(o),
            a.as_secs_f64(),
            gbps(d),
            gbps(r),
            gbps(o) / gbps(r),
            gbps(d) / gbps(r)
        );
    }
}
