#!/usr/bin/env python3
"""Time to ready of `sealgate serve` for the ~30 MB MLP: from a local models folder and
from S3 (moto's server on loopback), alternating, RUNS starts each (docs/PERFORMANCE.md,
"Time to ready from S3").

    python3 deploy/bench/s3_time_to_ready.py target/release/sealgate 9

Needs the MLP that `cargo xtask bench` generates (target/bench/mlp-30mb.onnx), moto and
boto3 (the test requirements), and ONNX Runtime (ORT_DYLIB_PATH, or `.tools/onnxruntime`).
Timed: from spawning the gateway to its `models: ` start-up line (printed once it listens).
"""
import os, re, subprocess, sys, time, tempfile, shutil, socket, json, statistics
import boto3
SG = sys.argv[1]; RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORT = os.environ.get("ORT_DYLIB_PATH") or next(
    (os.path.join(ROOT, ".tools/onnxruntime", f) for f in sorted(os.listdir(os.path.join(ROOT, ".tools/onnxruntime")))
     if f.startswith("libonnxruntime.so.")), None)
MLP = ROOT + "/target/bench/mlp-30mb.onnx"
work = tempfile.mkdtemp(prefix="sealgate-s3-perf-")
data = work + "/data"; models = work + "/models"; os.makedirs(models)
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
port = free_port()
moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
endpoint = f"http://127.0.0.1:{port}"
env = dict(os.environ, ORT_DYLIB_PATH=ORT, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", NO_COLOR="1")
env.pop("SEALGATE_LOG", None)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); break
        except OSError: time.sleep(0.1)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket="perf-models", ObjectLockEnabledForBucket=True)
    sealed = models + "/mlp-30mb.sealed"
    subprocess.run([SG, "seal", "--data-dir", data, "--model", "mlp-30mb", "--version", "1", MLP, "-o", sealed], env=env, check=True, capture_output=True)
    out = subprocess.run([SG, "publish", "--data-dir", data, sealed, "s3://perf-models/m/"], env=env, check=True, capture_output=True, text=True)
    print(out.stdout.strip())
    phases = {"download_ms": [], "sessions_ms": []}
    def start(source):
        log = work + "/gateway.log"
        t0 = time.perf_counter()
        p = subprocess.Popen([SG, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--models", source],
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
        for line in p.stdout:
            if line.startswith("models: "):
                t = time.perf_counter() - t0; break
        else:
            raise SystemExit("gateway did not start; see " + log)
        p.terminate(); p.wait(10)
        # The gateway's own figures for the phases: the download (S3 only) and the sessions.
        for name, values in phases.items():
            found = re.findall(name + r"=(\d+)", open(log).read())
            if found and source.startswith("s3://"):
                values.append(int(found[0]))
        return t
    start(models); start("s3://perf-models/m/")  # warm-up (page cache, published-models.json)
    local, remote = [], []
    for i in range(RUNS):
        local.append(start(models)); remote.append(start("s3://perf-models/m/"))
    ml, mr = statistics.median(local), statistics.median(remote)
    print("local  ms:", " ".join(f"{t*1000:.0f}" for t in local), f"median {ml*1000:.0f}")
    print("s3     ms:", " ".join(f"{t*1000:.0f}" for t in remote), f"median {mr*1000:.0f}")
    print(f"ratio s3/local (medians): {mr/ml:.2f}x; load average {os.getloadavg()}")
    for name, values in phases.items():
        values = values[-RUNS:]
        if values:
            print(f"s3 {name}:", " ".join(map(str, values)), f"median {statistics.median(values)}")
finally:
    moto.terminate(); moto.wait(10); shutil.rmtree(work, ignore_errors=True)
