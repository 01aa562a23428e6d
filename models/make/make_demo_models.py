#!/usr/bin/env python3
"""Make the small ONNX demo models that Sealgate serves, and their sample inputs.

What it makes (in models/demo/ unless --out-dir says otherwise):

  breast-cancer.onnx            healthcare: StandardScaler + LogisticRegression
                                trained on scikit-learn's bundled Wisconsin
                                diagnostic breast cancer data (569 rows, 30
                                features). Label 0 = malignant, 1 = benign.
  credit-risk.onnx              finance: GradientBoostingClassifier trained on
                                synthetic loan applications with 20 named
                                features (see CREDIT_FEATURES below).
                                Label 0 = repaid, 1 = defaulted.
  breast-cancer.example.json    two real rows (one per class) as a KServe V2
  credit-risk.example.json      inference request body.
  README.md                     input layout, outputs, how to regenerate, and
                                the SHA-256 of each model.

Why: the gateway needs real, tiny models that handle sensitive data (patient
measurements, loan applications) to show end-to-end encrypted inference, and
the interop test (tests/interop/ohttp_client.py) needs a fixed model + input
to compare the gateway's answer with Python onnxruntime. Both models share
one I/O contract so the gateway can treat them alike:

  input          FP32  [N, F]   (F = 30 or 20), graph input name "input"
  label          INT64 [N]      predicted class
  probabilities  FP32  [N, 2]   class probabilities, column i = class i

skl2onnx's ZipMap is turned off so "probabilities" is a plain tensor rather
than a sequence of maps (which a KServe V2 response cannot carry).

Everything is seeded (RANDOM_STATE), and with the versions pinned in
requirements.txt the .onnx files come out byte-identical on every run.

Optionally, --mlp-30mb OUT.onnx also writes a ~30 MB random-weight MLP with the
same output contract (input FP32 [N, 256]) for load/latency benchmarks. That
file is not committed; all its weights are stored inside the .onnx file (no
external data files) so the gateway can load it like any other model.

Usage (from the repository root):
  python3 -m pip install -r models/make/requirements.txt
  python3 models/make/make_demo_models.py
  python3 models/make/make_demo_models.py --no-demo --mlp-30mb /tmp/mlp-30mb.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

RANDOM_STATE = 42

# Upper bounds for skl2onnx: opset 17 (ONNX 1.12, 2022) and ai.onnx.ml 3 are
# old enough for any current ONNX runtime (onnxruntime 1.31.1 here; Rust
# runtimes tend to lag behind) yet have everything these graphs use, and
# ai.onnx.ml 3 keeps the classic TreeEnsembleClassifier op rather than the
# newer TreeEnsemble of ml opset 5. skl2onnx then lowers each domain to the
# lowest opset the graph actually needs (see README.md for the result).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# IR version 8 is the one that goes with opset 17; pinning it stops onnx
# stamping its newest IR version on the hand-built MLP graph.
MLP_IR_VERSION = 8

OUTPUT_NAMES = ("label", "probabilities")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = REPO_ROOT / "models" / "demo"

# The credit-risk model's 20 input columns, in order, with units. Documented
# here and copied into models/demo/README.md.
CREDIT_FEATURES = [
    ("age", "applicant age, years"),
    ("annual_income", "gross annual income, thousand USD"),
    ("employment_years", "years with current employer"),
    ("home_ownership", "0 = rent, 1 = mortgage, 2 = own outright"),
    ("loan_amount", "requested loan amount, thousand USD"),
    ("loan_term_months", "36 or 60"),
    ("interest_rate", "offered annual interest rate, percent"),
    ("monthly_installment", "monthly payment for this loan, USD"),
    ("debt_to_income", "all monthly debt payments incl. this loan / monthly income, percent"),
    ("credit_history_years", "years since first credit line"),
    ("num_open_accounts", "open credit lines"),
    ("total_credit_limit", "sum of revolving credit limits, thousand USD"),
    ("revolving_balance", "current revolving balance, thousand USD"),
    ("credit_utilization", "revolving_balance / total_credit_limit, percent"),
    ("num_credit_inquiries_6m", "hard credit inquiries in the last 6 months"),
    ("num_late_payments_12m", "payments 30+ days late in the last 12 months"),
    ("num_delinquencies_2y", "delinquencies in the last 2 years"),
    ("months_since_last_delinquency", "months; 120 means none on record"),
    ("savings_balance", "liquid savings, thousand USD"),
    ("has_cosigner", "0 = no, 1 = yes"),
]
CREDIT_ROWS = 5000


def make_credit_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic loan book: plausible, correlated features and a default flag.

    Not real data (there is no suitable public credit data set bundled with
    scikit-learn); the aim is a model whose inputs look like a real
    application and whose predictions move in the expected direction (more
    late payments or higher utilization -> higher default risk).

    Uses the legacy np.random.RandomState on purpose: its streams are frozen
    across numpy versions, unlike np.random.Generator's distributions.
    """
    rs = np.random.RandomState(seed)

    age = rs.randint(21, 76, n).astype(np.float64)
    employment_years = np.round(np.minimum(rs.gamma(2.0, 3.0, n), age - 18), 1)
    annual_income = np.round(
        np.exp(rs.normal(np.log(55.0), 0.45, n)) * (1.0 + 0.015 * employment_years), 1
    )
    home_ownership = rs.choice([0, 1, 2], n, p=[0.40, 0.45, 0.15]).astype(np.float64)
    loan_amount = np.round(np.clip(annual_income * rs.uniform(0.05, 0.6, n), 1.0, 150.0), 1)
    loan_term_months = rs.choice([36, 60], n, p=[0.7, 0.3]).astype(np.float64)
    credit_history_years = np.round(rs.uniform(0.0, 1.0, n) * (age - 18), 1)
    num_late_payments_12m = rs.poisson(0.4, n).astype(np.float64)
    num_delinquencies_2y = rs.poisson(0.2 + 0.4 * num_late_payments_12m).astype(np.float64)
    months_since_last_delinquency = np.where(
        num_delinquencies_2y > 0, rs.randint(1, 25, n), 120
    ).astype(np.float64)
    num_credit_inquiries_6m = rs.poisson(1.0, n).astype(np.float64)
    num_open_accounts = (1 + rs.poisson(2.0 + credit_history_years / 4.0)).astype(np.float64)
    total_credit_limit = np.round(
        annual_income * rs.uniform(0.1, 0.8, n) + 1.5 * num_open_accounts, 1
    )
    credit_utilization = np.round(
        np.clip(rs.beta(2.0, 4.0, n) * 100.0 + 8.0 * num_late_payments_12m, 0.0, 100.0), 1
    )
    revolving_balance = np.round(total_credit_limit * credit_utilization / 100.0, 1)
    # Lenders price observable risk into the rate, so the rate is itself a
    # (noisy) risk signal, as in real loan books.
    interest_rate = np.round(
        np.clip(
            6.0
            + 0.08 * credit_utilization
            + 1.5 * num_delinquencies_2y
            + 0.8 * num_credit_inquiries_6m
            - 0.1 * credit_history_years
            + rs.normal(0.0, 1.5, n),
            3.0,
            30.0,
        ),
        2,
    )
    monthly_rate = interest_rate / 1200.0
    monthly_installment = np.round(
        loan_amount * 1000.0 * monthly_rate / (1.0 - (1.0 + monthly_rate) ** -loan_term_months), 2
    )
    other_monthly_debt = revolving_balance * 1000.0 * 0.03 + rs.uniform(0.0, 0.15, n) * (
        annual_income * 1000.0 / 12.0
    )
    debt_to_income = np.round(
        (monthly_installment + other_monthly_debt) / (annual_income * 1000.0 / 12.0) * 100.0, 1
    )
    savings_balance = np.round(
        np.exp(rs.normal(np.log(5.0), 1.2, n)) * (1.0 + 0.5 * home_ownership), 1
    )
    has_cosigner = rs.binomial(1, 0.1, n).astype(np.float64)

    X = np.column_stack(
        [
            age,
            annual_income,
            employment_years,
            home_ownership,
            loan_amount,
            loan_term_months,
            interest_rate,
            monthly_installment,
            debt_to_income,
            credit_history_years,
            num_open_accounts,
            total_credit_limit,
            revolving_balance,
            credit_utilization,
            num_credit_inquiries_6m,
            num_late_payments_12m,
            num_delinquencies_2y,
            months_since_last_delinquency,
            savings_balance,
            has_cosigner,
        ]
    )
    assert X.shape[1] == len(CREDIT_FEATURES)

    # Default happens with a probability given by a hidden logistic score;
    # the model only sees the features, so it cannot be perfect.
    logit = (
        -1.0
        + 0.07 * (debt_to_income - 30.0)
        + 0.035 * (credit_utilization - 35.0)
        + 0.9 * num_late_payments_12m
        + 0.7 * num_delinquencies_2y
        + 0.25 * num_credit_inquiries_6m
        + 0.08 * (interest_rate - 10.0)
        + 0.5 * (loan_term_months == 60)
        - 0.06 * employment_years
        - 0.03 * credit_history_years
        - 0.5 * np.log1p(savings_balance)
        - 1.0 * has_cosigner
        - 0.4 * (home_ownership == 2)
    )
    y = (rs.uniform(0.0, 1.0, n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return X, y


def to_onnx(estimator, graph_name: str, n_features: int, options_target) -> onnx.ModelProto:
    """Convert with the shared I/O contract: input "input", no ZipMap."""
    model = convert_sklearn(
        estimator,
        # An explicit graph name: skl2onnx otherwise uses a random UUID,
        # which would make every run's file (and SHA-256) different.
        name=graph_name,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options={id(options_target): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    # skl2onnx already calls the outputs "label" and "probabilities" for a
    # classifier without ZipMap; rename defensively in case a future version
    # does not, so the gateway's contract does not silently change.
    rename_outputs(model, OUTPUT_NAMES)
    # skl2onnx lowers each domain's opset to the lowest one the graph needs,
    # can list a domain twice, and collects the domains in a set, so their
    # order follows Python's per-process string hashing. One entry per
    # domain, sorted, makes the bytes reproducible.
    opsets: dict[str, int] = {}
    for o in model.opset_import:
        opsets[o.domain] = max(o.version, opsets.get(o.domain, 0))
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    return model


def rename_outputs(model: onnx.ModelProto, names: tuple[str, ...]) -> None:
    graph = model.graph
    assert len(graph.output) == len(names), [o.name for o in graph.output]
    for out, new in zip(graph.output, names):
        old = out.name
        if old == new:
            continue
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = new
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
        out.name = new


def save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One self-contained file: weights as raw_data inside the protobuf.
    onnx.save_model(model, str(path), save_as_external_data=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_contract(path: Path, n_features: int) -> ort.InferenceSession:
    """Load with onnxruntime and check names, element types and ranks."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    outputs = sess.get_outputs()
    got = (
        [(i.name, i.type, i.shape[1:]) for i in inputs],
        [(o.name, o.type, len(o.shape)) for o in outputs],
    )
    want = (
        [("input", "tensor(float)", [n_features])],
        [("label", "tensor(int64)", 1), ("probabilities", "tensor(float)", 2)],
    )
    if got != want:
        raise SystemExit(f"{path.name}: I/O contract mismatch:\n got  {got}\n want {want}")
    return sess


def check_against_sklearn(name, estimator, sess, X_test, y_test) -> None:
    """onnxruntime must agree with scikit-learn, and the model must be useful."""
    X32 = X_test.astype(np.float32)
    label, proba = sess.run(list(OUTPUT_NAMES), {"input": X32})
    sk_label = estimator.predict(X32)
    sk_proba = estimator.predict_proba(X32)
    if label.dtype != np.int64 or proba.dtype != np.float32 or proba.shape != (len(X32), 2):
        raise SystemExit(f"{name}: unexpected output dtypes/shapes {label.dtype} {proba.dtype} {proba.shape}")
    max_diff = float(np.max(np.abs(proba - sk_proba)))
    # A row sitting right on the 0.5 boundary could flip between float32 and
    # float64 arithmetic; allow that, but nothing beyond it.
    flips = int(np.sum(label != sk_label))
    if max_diff > 1e-4 or flips > 1:
        raise SystemExit(
            f"{name}: onnxruntime disagrees with scikit-learn (max |dp|={max_diff:.2e}, {flips} label flips)"
        )
    if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-5):
        raise SystemExit(f"{name}: probabilities do not sum to 1")
    if not np.array_equal(label, np.argmax(proba, axis=1)):
        raise SystemExit(f"{name}: label is not argmax(probabilities)")
    acc = float(np.mean(label == y_test))
    baseline = float(max(np.mean(y_test), 1.0 - np.mean(y_test)))
    auc = float(roc_auc_score(y_test, proba[:, 1]))
    print(
        f"  {name}: held-out accuracy {acc:.3f} (majority class {baseline:.3f}), ROC AUC {auc:.3f} "
        f"on {len(y_test)} rows; max |onnx - sklearn| = {max_diff:.1e}"
    )
    # Accuracy alone flatters an imbalanced problem, so also demand a real
    # ranking ability (AUC) and a clear win over always guessing the majority.
    if auc < 0.8 or acc < baseline + 0.03:
        raise SystemExit(f"{name}: not a sane demo model (accuracy {acc:.3f}, AUC {auc:.3f})")


def pick_example_rows(sess, X_test, y_test) -> np.ndarray:
    """One row of each class (0 then 1) that the model gets right.

    Prefer rows the model is fairly sure about (p >= 0.8), so the demo shows
    a clear answer rather than a coin toss near 0.5.
    """
    label, proba = sess.run(list(OUTPUT_NAMES), {"input": X_test.astype(np.float32)})
    rows = []
    for cls in (0, 1):
        correct = (y_test == cls) & (label == cls)
        confident = np.flatnonzero(correct & (proba[:, cls] >= 0.8))
        idx = confident if len(confident) else np.flatnonzero(correct)
        rows.append(X_test[idx[0]])
    return np.vstack(rows)


def write_example(path: Path, rows: np.ndarray) -> None:
    # Python floats of the original (short) dataset values, so the JSON reads
    # like the data; both sides parse them and round to float32 identically.
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": [float(v) for v in rows.reshape(-1)],
            }
        ]
    }
    path.write_text(json.dumps(body) + "\n")


def make_breast_cancer(out_dir: Path) -> dict:
    data = load_breast_cancer()
    X, y = data.data, data.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=RANDOM_STATE
    )
    clf = LogisticRegression(max_iter=5000, random_state=RANDOM_STATE)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", clf)])
    # Train on float32-rounded inputs: that is what the ONNX graph will see.
    pipe.fit(X_train.astype(np.float32), y_train)

    path = out_dir / "breast-cancer.onnx"
    model = to_onnx(pipe, "breast_cancer", X.shape[1], clf)
    model.doc_string = (
        "Sealgate demo: breast cancer (Wisconsin diagnostic) classifier, "
        "StandardScaler + LogisticRegression. label 0 = malignant, 1 = benign."
    )
    save(model, path)
    sess = check_contract(path, X.shape[1])
    check_against_sklearn("breast-cancer", pipe, sess, X_test, y_test)
    rows = pick_example_rows(sess, X_test, y_test)
    write_example(out_dir / "breast-cancer.example.json", rows)
    return {"path": path, "features": [str(f) for f in data.feature_names], "classes": list(data.target_names)}


def make_credit_risk(out_dir: Path) -> dict:
    X, y = make_credit_data(CREDIT_ROWS, RANDOM_STATE)
    print(f"  credit-risk: synthetic default rate {y.mean():.3f}")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=RANDOM_STATE
    )
    # Plain GradientBoostingClassifier on purpose: converting
    # HistGradientBoostingClassifier with skl2onnx fails.
    gbc = GradientBoostingClassifier(
        n_estimators=100, max_depth=3, learning_rate=0.1, subsample=0.9, random_state=RANDOM_STATE
    )
    gbc.fit(X_train.astype(np.float32), y_train)

    path = out_dir / "credit-risk.onnx"
    model = to_onnx(gbc, "credit_risk", X.shape[1], gbc)
    model.doc_string = (
        "Sealgate demo: credit default risk on synthetic loan applications, "
        "GradientBoostingClassifier. label 0 = repaid, 1 = defaulted."
    )
    save(model, path)
    sess = check_contract(path, X.shape[1])
    check_against_sklearn("credit-risk", gbc, sess, X_test, y_test)
    rows = pick_example_rows(sess, X_test, y_test)
    write_example(out_dir / "credit-risk.example.json", rows)
    return {"path": path}


def make_mlp(path: Path, target_mb: float = 30.0) -> None:
    """Random-weight MLP, input FP32 [N,256], ~target_mb of float32 weights.

    Built directly with onnx.helper (no training needed: it only has to cost
    realistic load time, memory and FLOPs). He-style scaling keeps the
    activations finite so Softmax gives real probabilities.
    """
    rs = np.random.RandomState(RANDOM_STATE)
    n_in, hidden = 256, 2048
    # 256 -> 2048 -> 2048 -> H3 -> 2; pick H3 so the total lands on target.
    budget = int(target_mb * 1e6 / 4)
    fixed = n_in * hidden + hidden + hidden * hidden + hidden
    h3 = max(16, (budget - fixed) // (hidden + 1 + 2))
    dims = [n_in, hidden, hidden, h3, 2]

    initializers, nodes = [], []
    x = "input"
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        w = (rs.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        initializers += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        y = f"gemm{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"B{i}"], [y], name=f"Gemm{i}"))
        if i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"], name=f"Relu{i}"))
            x = f"relu{i}"
        else:
            x = y
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=1, name="Softmax"))
    nodes.append(helper.make_node("ArgMax", [x], ["label"], axis=1, keepdims=0, name="ArgMax"))

    graph = helper.make_graph(
        nodes,
        "sealgate_mlp_bench",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_in])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
        ],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", TARGET_OPSET[""])],
        producer_name="sealgate-make_demo_models",
        doc_string="Sealgate benchmark MLP with random weights; predictions are meaningless.",
    )
    model.ir_version = MLP_IR_VERSION
    save(model, path)

    sess = check_contract(path, n_in)
    x_in = rs.standard_normal((4, n_in)).astype(np.float32)
    label, proba = sess.run(list(OUTPUT_NAMES), {"input": x_in})
    if not (np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)):
        raise SystemExit("mlp: probabilities are not finite / normalised")
    if not np.array_equal(label, np.argmax(proba, axis=1)):
        raise SystemExit("mlp: label is not argmax(probabilities)")
    params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    size = path.stat().st_size
    print(f"  mlp: layers {dims}, {params} parameters, {size / 1e6:.1f} MB, sha256 {sha256(path)}")


def write_readme(out_dir: Path, bc: dict, cr: dict) -> None:
    bc_sha = sha256(bc["path"])
    cr_sha = sha256(cr["path"])
    bc_size = bc["path"].stat().st_size
    cr_size = cr["path"].stat().st_size
    def opsets(path: Path) -> str:
        m = onnx.load(str(path))
        return ", ".join(f"`{o.domain or 'ai.onnx'}` {o.version}" for o in m.opset_import)

    bc_features = "\n".join(f"| {i} | {name} |" for i, name in enumerate(bc["features"]))
    cr_features = "\n".join(
        f"| {i} | `{name}` | {desc} |" for i, (name, desc) in enumerate(CREDIT_FEATURES)
    )
    text = f"""# Demo models

<!-- Generated by models/make/make_demo_models.py; edit that script, not this file. -->

Two small scikit-learn models exported to ONNX, used to demonstrate Sealgate's
end-to-end encrypted inference on sensitive data and by the interop test in
`tests/interop/`.

| file | domain | estimator | ONNX opsets | size | SHA-256 |
|---|---|---|---|---|---|
| `breast-cancer.onnx` | healthcare | StandardScaler + LogisticRegression | {opsets(bc["path"])} | {bc_size} B | `{bc_sha}` |
| `credit-risk.onnx` | finance | GradientBoostingClassifier (100 trees, depth 3) | {opsets(cr["path"])} | {cr_size} B | `{cr_sha}` |

## Common contract

Both models have one input and two outputs:

| name | direction | type | shape | meaning |
|---|---|---|---|---|
| `input` | input | FP32 | `[N, F]` | one row per case; F = 30 (breast-cancer) or 20 (credit-risk), columns in the order below |
| `label` | output | INT64 | `[N]` | predicted class |
| `probabilities` | output | FP32 | `[N, 2]` | probability of class 0 and class 1; `label` is the argmax |

Raw feature values go in; any scaling is inside the graph. The graphs use the
`ai.onnx.ml` operators `Scaler`, `LinearClassifier` and
`TreeEnsembleClassifier`, so the runtime needs ONNX-ML support (onnxruntime
has it); they load in onnxruntime 1.31.1.

## breast-cancer.onnx

Trained on scikit-learn's bundled Wisconsin diagnostic breast cancer data
(`sklearn.datasets.load_breast_cancer`, 569 cases; 75% used for training).
Classes: `0` = {bc["classes"][0]}, `1` = {bc["classes"][1]}.
Features are measurements of cell nuclei from a digitised fine-needle aspirate
image (mean, standard error and worst value of ten properties):

| column | feature |
|---|---|
{bc_features}

## credit-risk.onnx

Trained on {CREDIT_ROWS} **synthetic** loan applications generated (seeded) by the
script; no real person's data. Classes: `0` = repaid, `1` = defaulted.

| column | feature | unit / encoding |
|---|---|---|
{cr_features}

## Sample requests

`breast-cancer.example.json` and `credit-risk.example.json` are KServe V2
inference request bodies (`POST /v2/models/{{model}}/infer`) holding two rows from
the held-out data, one of each class (class 0 first), each predicted correctly
with probability at least 0.8:

```json
{{"inputs":[{{"name":"input","shape":[2,30],"datatype":"FP32","data":[...]}}]}}
```

## Regenerating

From the repository root:

```sh
python3 -m pip install -r models/make/requirements.txt
python3 models/make/make_demo_models.py
```

The script is seeded throughout; with the pinned package versions it rewrites
the same bytes (the SHA-256 values above). Other versions of scikit-learn,
skl2onnx or onnx may give numerically equivalent models with different hashes.
It also checks that each model loads in onnxruntime, matches scikit-learn, and
has a sane held-out accuracy.

A ~30 MB random-weight MLP with the same output contract (input FP32
`[N, 256]`) for benchmarks, not committed:

```sh
python3 models/make/make_demo_models.py --no-demo --mlp-30mb /tmp/mlp-30mb.onnx
```
"""
    (out_dir / "README.md").write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where the demo models go (default: models/demo)"
    )
    ap.add_argument("--mlp-30mb", type=Path, metavar="OUT.onnx", help="also write a ~30 MB benchmark MLP here")
    ap.add_argument("--no-demo", action="store_true", help="skip the demo models (use with --mlp-30mb)")
    args = ap.parse_args()

    if args.no_demo and not args.mlp_30mb:
        ap.error("--no-demo without --mlp-30mb would do nothing")

    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}")
    if not args.no_demo:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        bc = make_breast_cancer(args.out_dir)
        cr = make_credit_risk(args.out_dir)
        write_readme(args.out_dir, bc, cr)
        for info in (bc, cr):
            p = info["path"]
            print(f"  wrote {p} ({p.stat().st_size} bytes, sha256 {sha256(p)})")
    if args.mlp_30mb:
        make_mlp(args.mlp_30mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
