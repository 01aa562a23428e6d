//! Sealed-artifact load benchmark: decryption throughput against raw aws-lc-rs AES-256-GCM,
//! time to a ready ONNX Runtime session (sealed vs plaintext), and peak RSS of each load.
//!
//! ```text
//! python3 models/make/make_demo_models.py --no-demo --mlp-30mb target/bench/mlp-30mb.onnx
//! ORT_DYLIB_PATH=$(cargo xtask ort-path) cargo bench -p sealgate-models --bench artifact -- \
//!     --model target/bench/mlp-30mb.onnx
//! ```
//!
//! Peak RSS is read from `/proc/self/status` (VmHWM) of child processes that each do one
//! load and nothing else, so the two loads cannot share pages or allocator state. With
//! `BENCH_TRACE=1` every load also prints its phases (read/open, session build, drop).

mod common;

use common::{arg, env, median, vm_hwm_kib};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sealgate_models::Model;
use sealgate_models::artifact::{self, DigestCheck, SealRequest};
use sealgate_models::kms::KmsProvider;
use sealgate_models::kms::local::{LocalKms, RootKey};

fn load_plaintext(model: &Path) -> Model {
    let t0 = Instant::now();
    let bytes = std::fs::read(model).unwrap();
    let t1 = Instant::now();
    let m = Model::from_onnx_bytes(env(), "m", "1", &bytes, 1).unwrap();
    let t2 = Instant::now();
    drop(bytes);
    if std::env::var_os("BENCH_TRACE").is_some() {
        eprintln!("plaintext: read {:?} session {:?} drop {:?}", t1 - t0, t2 - t1, t2.elapsed());
    }
    m
}

fn load_sealed(kms: &LocalKms, sealed: &Path) -> Model {
    let t0 = Instant::now();
    let file = std::fs::File::open(sealed).unwrap();
    let set: &[&dyn KmsProvider] = &[kms];
    let opened = artifact::open_file(&file, set, DigestCheck::TrustAead).unwrap();
    let t1 = Instant::now();
    // As `serve` does: the authenticated header's digest, not a second hash of the model.
    let digest: [u8; 32] = hex::decode(&opened.header.context["sha256"]).unwrap().try_into().unwrap();
    let m = Model::from_onnx_bytes_with_digest(env(), "m", "1", opened.plaintext.as_slice(), 1, digest).unwrap();
    let t2 = Instant::now();
    drop(opened);
    if std::env::var_os("BENCH_TRACE").is_some() {
        eprintln!("sealed: open {:?} session {:?} drop {:?}", t1 - t0, t2 - t1, t2.elapsed());
    }
    m
}

/// One load in a fresh process; prints VmHWM in KiB.
fn child(kind: &str, model: &Path, sealed: &Path, data: &Path) {
    let _ = env();
    let kms = LocalKms::open(data, RootKey::File).unwrap();
    let before = vm_hwm_kib();
    let m = match kind {
        "plaintext" => Some(load_plaintext(model)),
        "sealed" => Some(load_sealed(&kms, sealed)),
        _ => None,
    };
    println!("{} {}", before, vm_hwm_kib());
    drop(m);
}

fn main() {
    let model = PathBuf::from(arg("--model").expect("--model PATH (a ~30 MB ONNX file)"));
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(7);
    if let Some(kind) = arg("--child") {
        let sealed = PathBuf::from(arg("--sealed").unwrap());
        let data = PathBuf::from(arg("--data").unwrap());
        return child(&kind, &model, &sealed, &data);
    }

    let plaintext = std::fs::read(&model).unwrap();
    let size = plaintext.len();
    let work = tempfile::tempdir().unwrap();
    let kms = LocalKms::open(work.path(), RootKey::File).unwrap();
    kms.create_key("bench").unwrap();
    let sealed_path = work.path().join("m.sealed");
    let mut sealed = Vec::new();
    let request = SealRequest {
        model: "m",
        version: "1",
        primary: (&kms, "bench"),
        recovery: vec![],
        frame_size: artifact::DEFAULT_FRAME_SIZE,
    };
    artifact::seal(&request, &plaintext, &mut sealed, |_| {}).unwrap();
    std::fs::write(&sealed_path, &sealed).unwrap();
    let set: &[&dyn KmsProvider] = &[&kms];

    // 1. Decryption throughput: artifact::open_slice on the sealed artifact in memory —
    //    header, KMS unwrap, locked buffer, every frame authenticated and decrypted straight
    //    into it — against one in-place AES-256-GCM open of a buffer of the same size, on an
    //    already-faulted buffer, in one thread. open_file (the path `serve` takes, reading
    //    the page-cached file) and the sequential stream reader are shown too.
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut raw = plaintext.clone();
    let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut raw).unwrap();
    raw.extend_from_slice(tag.as_ref());
    let mut work_buf = raw.clone();
    let mut raw_times = Vec::new();
    let mut open_times = Vec::new();
    let mut sequential_times = Vec::new();
    let mut slice_times = Vec::new();
    let sealed_file = std::fs::File::open(&sealed_path).unwrap();
    for _ in 0..runs.max(5) {
        work_buf.copy_from_slice(&raw);
        let t = Instant::now();
        key.open_in_place(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut work_buf).unwrap();
        raw_times.push(t.elapsed());

        let t = Instant::now();
        let opened = artifact::open_file(&sealed_file, set, DigestCheck::TrustAead).unwrap();
        open_times.push(t.elapsed());
        assert_eq!(opened.plaintext.as_slice(), &plaintext[..]);
        drop(opened);

        let t = Instant::now();
        let opened =
            artifact::open(&mut Cursor::new(&sealed), sealed.len() as u64, set, DigestCheck::TrustAead).unwrap();
        sequential_times.push(t.elapsed());
        drop(opened);

        let t = Instant::now();
        let opened = artifact::open_slice(&sealed, set, DigestCheck::TrustAead).unwrap();
        slice_times.push(t.elapsed());
        drop(opened);
    }
    let mut alloc_times = Vec::new();
    for _ in 0..runs.max(5) {
        let t = Instant::now();
        let b = artifact::LockedBuffer::new(size).unwrap();
        alloc_times.push(t.elapsed());
        drop(b);
    }
    let alloc_t = median(alloc_times);
    let gbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e9;
    let (raw_t, open_t, seq_t, slice_t) =
        (median(raw_times), median(open_times), median(sequential_times), median(slice_times));

    // 2. Time to a ready session, alternating so drift hits both equally.
    let _ = env();
    let mut plain_times = Vec::new();
    let mut sealed_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        drop(load_plaintext(&model));
        plain_times.push(t.elapsed());
        let t = Instant::now();
        drop(load_sealed(&kms, &sealed_path));
        sealed_times.push(t.elapsed());
    }
    let (plain_t, sealed_t) = (median(plain_times), median(sealed_times));

    // 3. Peak RSS, one fresh process per load.
    let exe = std::env::current_exe().unwrap();
    let peak = |kind: &str| -> (u64, u64) {
        let out = Command::new(&exe)
            .args(["--child", kind, "--model"])
            .arg(&model)
            .arg("--sealed")
            .arg(&sealed_path)
            .arg("--data")
            .arg(work.path())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut it = text.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    let (_, plain_peak) = peak("plaintext");
    let (_, sealed_peak) = peak("sealed");
    let model_kib = size as u64 / 1024;

    println!("model: {} ({:.1} MB), runs: {runs}", model.display(), size as f64 / 1e6);
    let decrypt_t = slice_t.saturating_sub(alloc_t);
    println!(
        "decryption (open_slice minus the {:.2} ms locked-buffer allocation): {:.2} ms = {:.2} GB/s; raw aws-lc-rs \
         AES-256-GCM in place {:.2} ms = {:.2} GB/s; ratio {:.2} (target >= 0.80)",
        alloc_t.as_secs_f64() * 1e3,
        decrypt_t.as_secs_f64() * 1e3,
        gbps(decrypt_t),
        raw_t.as_secs_f64() * 1e3,
        gbps(raw_t),
        gbps(decrypt_t) / gbps(raw_t)
    );
    println!(
        "whole open_slice (header, KMS unwrap, mmap + mlock, decryption): {:.2} ms = {:.2} GB/s, ratio {:.2}",
        slice_t.as_secs_f64() * 1e3,
        gbps(slice_t),
        gbps(slice_t) / gbps(raw_t)
    );
    println!(
        "whole open_file from the page cache (what serve does): {:.2} ms = {:.2} GB/s, ratio {:.2}",
        open_t.as_secs_f64() * 1e3,
        gbps(open_t),
        gbps(open_t) / gbps(raw_t)
    );
    println!(
        "  (sequential reader path, one thread, from memory: {:.2} ms = {:.2} GB/s; threads available: {})",
        seq_t.as_secs_f64() * 1e3,
        gbps(seq_t),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "time to ready session: plaintext {:.1} ms, sealed {:.1} ms, ratio {:.3} (target <= 1.10)",
        plain_t.as_secs_f64() * 1e3,
        sealed_t.as_secs_f64() * 1e3,
        sealed_t.as_secs_f64() / plain_t.as_secs_f64()
    );
    println!(
        "peak RSS: plaintext load {} MiB, sealed load {} MiB, difference {:+.2} x model size (target <= 1.10)",
        plain_peak / 1024,
        sealed_peak / 1024,
        (sealed_peak as f64 - plain_peak as f64) / model_kib as f64
    );
}
