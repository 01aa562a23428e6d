"""Makes the small ONNX models the end-to-end tests need (tests/models/), deterministically.

- slow.onnx: work that the caller sizes. Inputs `x` FP32 [1, 256] and `repeats` INT64 [2];
  `Tile(x, repeats)` makes a [R, 256] matrix that goes through 32 256x256 MatMul + Tanh
  layers; output `y` FP32 [1, 1] (the mean). One call costs about R x 4 MFLOP, so
  repeats [R, 1] sets how long an inference runs (R = 1000: about 70 ms here, one thread).
  The admission-control tests use it to hold sessions busy.
- gather.onnx: input `index` INT64 [1], output `value` FP32 [1] = [0.5, 1.5, 2.5][index].
  An index out of range makes ONNX Runtime fail with a message that quotes the index: the
  canary test checks that this text never reaches the gateway's log.

Run: python3 models/make/make_test_models.py (needs `onnx` and `numpy`).
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[2] / "tests" / "models"
LAYERS = 32
OPSET = [helper.make_opsetid("", 17)]


def save(graph, name):
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="sealgate-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    OUT.mkdir(parents=True, exist_ok=True)
    onnx.save(model, OUT / name)
    print(f"wrote {OUT / name}")


def slow():
    rng = np.random.default_rng(20261201)
    w = (rng.standard_normal((256, 256)) / 16).astype(np.float32)
    nodes = [helper.make_node("Tile", ["x", "repeats"], ["h0"])]
    for i in range(LAYERS):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("ReduceMean", [f"h{LAYERS}"], ["y"], keepdims=1))
    graph = helper.make_graph(
        nodes,
        "slow",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256]),
            helper.make_tensor_value_info("repeats", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(w, "w")],
    )
    save(graph, "slow.onnx")


def gather():
    data = numpy_helper.from_array(np.array([0.5, 1.5, 2.5], dtype=np.float32), "data")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["data", "index"], ["value"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("index", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [1])],
        [data],
    )
    save(graph, "gather.onnx")


if __name__ == "__main__":
    slow()
    gather()
