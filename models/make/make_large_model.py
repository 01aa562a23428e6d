#!/usr/bin/env python3
"""Makes a large generated ONNX model whose weights are external data, for load benchmarks
(sealing, opening and serving a multi-gigabyte model). Not committed and not used by CI.

What it writes in OUT_DIR:

  large.onnx            the graph (a few KB): input `x` FP32 [1, 8192], L layers of
                        `h = Tanh(h @ W_i)` with W_i FP32 [8192, 8192] (256 MiB each,
                        ~ standard normal / sqrt(8192), seeded per layer), then
                        `y = h[:, 0:16]` (Slice): output `y` FP32 [1, 16].
                        L = round(4 x --gib), but at least --files.
                        Every W_i is external: `location`,
                        `offset` (a multiple of 4096), `length`.
  large-weights-K.bin   K = 0 .. --files - 1; layer i goes to file i x files // L, in
                        order, so the total is about --gib GiB.
  request.json          a KServe V2 request for `x` (seeded values k/1024 in [-1, 1], exact
                        in FP32 and in decimal).
  expected.json         {"y": [16 floats]} from Python onnxruntime on the plaintext files
                        (CPU, one intra-op thread); --no-expected skips it.

The weights are generated and written one layer at a time (one 256 MiB array in memory),
and the .onnx is built without any tensor data, so memory stays well under 1 GB while
writing; computing expected.json loads the whole model into onnxruntime.

Usage: python3 models/make/make_large_model.py OUT_DIR [--gib 3.0] [--files 3] [--no-expected]
(needs `onnx` and `numpy`; `onnxruntime` too for expected.json).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

D = 8192
OUT_COLUMNS = 16
ALIGN = 4096
LAYER_SEED = 20261203
REQUEST_SEED = 20261299


def external(name, shape, location, offset, length):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        entry = t.external_data.add()
        entry.key, entry.value = key, str(value)
    return t


def layer_weights(i):
    w = np.random.default_rng(LAYER_SEED + i).standard_normal((D, D), dtype=np.float32)
    w *= np.float32(1 / np.sqrt(D))
    return w.astype("<f4", copy=False)


def write_weights(out, layers, files):
    """Writes the layers into the files; returns one external TensorProto per layer."""
    tensors, handles = [], {}
    try:
        for i in range(layers):
            k = i * files // layers
            name = f"large-weights-{k}.bin"
            if k not in handles:
                handles[k] = open(out / name, "wb")
            f = handles[k]
            offset = (f.tell() + ALIGN - 1) // ALIGN * ALIGN
            f.write(bytes(offset - f.tell()))
            w = layer_weights(i)
            f.write(memoryview(w).cast("B"))
            tensors.append(external(f"w{i}", [D, D], name, offset, w.nbytes))
            del w
            print(f"  layer {i + 1}/{layers} -> {name} @ {offset}", flush=True)
    finally:
        for f in handles.values():
            f.close()
    return tensors


def build(tensors):
    nodes, h = [], "x"
    for i, _ in enumerate(tensors):
        nodes.append(helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"]))
        h = f"h{i}"
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [h]))
    small = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([OUT_COLUMNS], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    ]
    nodes.append(helper.make_node("Slice", [h, "starts", "ends", "axes"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, OUT_COLUMNS])],
        tensors + small,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sealgate-bench"
    )
    model.ir_version = 8
    return model


def request_input():
    k = np.random.default_rng(REQUEST_SEED).integers(-1024, 1025, size=D)
    return (k / 1024).astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--gib", type=float, default=3.0, help="total size of the weights (GiB)")
    p.add_argument("--files", type=int, default=3, help="number of external data files")
    p.add_argument("--no-expected", action="store_true", help="do not write expected.json")
    a = p.parse_args()
    if a.files < 1:
        p.error("--files must be at least 1")
    layers = round(a.gib * 4)
    if layers < a.files:
        # Every file holds at least one layer (an unreferenced file would not be part of
        # the model), so a small --gib with several files grows to one layer per file.
        layers = a.files
        print(f"note: {a.files} files need {layers} layers: {layers / 4:g} GiB, not {a.gib:g}")
    out = a.out_dir
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    print(f"writing {layers} layers of {D}x{D} FP32 into {a.files} files in {out}", flush=True)
    tensors = write_weights(out, layers, a.files)
    model = build(tensors)
    (out / "large.onnx").write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(out / "large.onnx"))
    x = request_input()
    request = {"inputs": [{"name": "x", "shape": [1, D], "datatype": "FP32", "data": x.tolist()}]}
    (out / "request.json").write_text(json.dumps(request) + "\n")
    t1 = time.monotonic()
    print(f"wrote the model in {t1 - t0:.1f} s")

    if not a.no_expected:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(
            str(out / "large.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        t2 = time.monotonic()
        (y,) = session.run(["y"], {"x": x.reshape(1, D)})
        t3 = time.monotonic()
        expected = {"y": [float(v) for v in y.reshape(-1)]}
        (out / "expected.json").write_text(json.dumps(expected) + "\n")
        print(f"onnxruntime {ort.__version__}: session {t2 - t1:.1f} s, run {t3 - t2:.2f} s")

    total = 0
    for f in sorted(out.iterdir()):
        if f.is_file():
            size = f.stat().st_size
            total += size
            print(f"  {f.name:24} {size:>14,} bytes")
    print(f"  {'total':24} {total:>14,} bytes ({total / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
