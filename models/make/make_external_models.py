"""Makes the small ONNX models with external data that the tests need
(tests/models/external/), deterministically. Each fixture is in its own folder; the
external tensors are written by hand (TensorProto.data_location = EXTERNAL with
`location`, `offset` and `length` entries, no raw_data) and so are their data files
(little-endian float32).

- mlp/mlp.onnx: input `x` FP32 [N, 16] (N free), `h = Relu(x @ w1 + b1)`,
  `y = (h @ w2 + b2) * scale`, output `y` FP32 [N, 4]. w1 [16, 32] and b1 [32] are in
  `weights/layer1.bin` (a subfolder: that exact location string), w1 at offset 0 and b1 at
  offset 4096 (zeros in between, so `offset` matters); w2 [32, 4] and b2 [4] are in
  `layer2.bin`, w2 at 0 and b2 right after it (offset 512). `scale` FP32 [] = 1.0 is
  inline, so both kinds of initializer coexist. ONNX Runtime runs it from any working
  directory (it resolves locations against the model's folder).
- escape-dotdot/model.onnx, escape-absolute/model.onnx, symlink/model.onnx,
  missing/model.onnx: the same network, all inline except w1 (2048 bytes, offset 0, length
  2048), whose location a loader must refuse or fail on:
    escape-dotdot    `../outside.bin`; tests/models/external/outside.bin exists (it holds
                     exactly w1), so the file really is there, one level above the folder.
    escape-absolute  `/tmp/sealgate-absolute-weights.bin` (not in the repository; a test
                     may copy outside.bin there to show that existing is not enough).
    symlink          `link.bin`, which is not committed: the test makes it a symlink to
                     a file outside the folder (outside.bin is the right size).
    missing          `absent.bin`, which does not exist.
  onnx.checker refuses the first three itself, and the fourth for the missing file.
- function-attr/model.onnx: input `x` FP32 [4], output `y` FP32 [4] = x + bias, computed
  by a model-local function `sealgate.test.AddBias` whose attribute `bias` has a default
  (FunctionProto.attribute_proto) that is a tensor stored EXTERNAL in `fn.bin`
  ([0.5, -1, 2, 0.25]); the function body is `Constant(value = @bias)` (an attribute
  reference, ref_attr_name) then `Add`, and the graph calls it without the attribute. So
  an external-data reference can hide outside the graph's initializers: a loader that
  looks only at initializers misses it. ONNX Runtime 1.31.1 loads it and reads fn.bin.

Run: python3 models/make/make_external_models.py (needs `onnx` and `numpy` only).
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[2] / "tests" / "models" / "external"
OPSET = [helper.make_opsetid("", 17)]
FN_DOMAIN = "sealgate.test"


def external(name, array, location, offset):
    """A TensorProto whose data lives in `location` at `offset` (no raw_data)."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(array.shape)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", array.nbytes)):
        entry = t.external_data.add()
        entry.key, entry.value = key, str(value)
    return t


def le32(array):
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"wrote {path} ({len(data)} bytes)")


def save(graph, folder, name, check=True, functions=(), opsets=OPSET):
    model = helper.make_model(
        graph, opset_imports=opsets, producer_name="sealgate-tests", functions=list(functions)
    )
    model.ir_version = 8
    path = OUT / folder / name
    write(path, model.SerializeToString())
    # The checker needs the path: only then does it look at the external files.
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as e:
        if check:
            raise
        print(f"  checker refuses it, as expected: {str(e).splitlines()[0]}")
    else:
        if not check:
            print("  (the checker accepts it)")


def weights():
    rng = np.random.default_rng(20261202)
    w1 = (rng.standard_normal((16, 32)) / 4).astype(np.float32)
    b1 = (rng.standard_normal(32) / 10).astype(np.float32)
    w2 = (rng.standard_normal((32, 4)) / np.sqrt(32)).astype(np.float32)
    b2 = (rng.standard_normal(4) / 10).astype(np.float32)
    return w1, b1, w2, b2


def mlp_graph(name, initializers):
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["a2"]),
        helper.make_node("Mul", ["a2", "scale"], ["y"]),
    ]
    return helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializers,
    )


def scale():
    return numpy_helper.from_array(np.array(1.0, dtype=np.float32), "scale")


def mlp():
    w1, b1, w2, b2 = weights()
    layer1 = le32(w1) + bytes(4096 - w1.nbytes) + le32(b1)
    write(OUT / "mlp" / "weights" / "layer1.bin", layer1)
    write(OUT / "mlp" / "layer2.bin", le32(w2) + le32(b2))
    inits = [
        external("w1", w1, "weights/layer1.bin", 0),
        external("b1", b1, "weights/layer1.bin", 4096),
        external("w2", w2, "layer2.bin", 0),
        external("b2", b2, "layer2.bin", w2.nbytes),
        scale(),
    ]
    save(mlp_graph("mlp", inits), "mlp", "mlp.onnx")


def bad(folder, location):
    w1, b1, w2, b2 = weights()
    inits = [
        external("w1", w1, location, 0),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
        scale(),
    ]
    save(mlp_graph(folder, inits), folder, "model.onnx", check=False)


def function_attr():
    bias = np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32)
    write(OUT / "function-attr" / "fn.bin", le32(bias))
    default = helper.make_attribute("bias", external("bias", bias, "fn.bin", 0))
    value = onnx.AttributeProto()
    value.name, value.ref_attr_name, value.type = "value", "bias", onnx.AttributeProto.TENSOR
    constant = helper.make_node("Constant", [], ["b"])
    constant.attribute.append(value)
    function = helper.make_function(
        FN_DOMAIN,
        "AddBias",
        ["X"],
        ["Y"],
        [constant, helper.make_node("Add", ["X", "b"], ["Y"])],
        OPSET,
    )
    function.attribute_proto.append(default)
    graph = helper.make_graph(
        [helper.make_node("AddBias", ["x"], ["y"], domain=FN_DOMAIN)],
        "function-attr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    opsets = OPSET + [helper.make_opsetid(FN_DOMAIN, 1)]
    save(graph, "function-attr", "model.onnx", functions=[function], opsets=opsets)


if __name__ == "__main__":
    mlp()
    write(OUT / "outside.bin", le32(weights()[0]))
    bad("escape-dotdot", "../outside.bin")
    bad("escape-absolute", "/tmp/sealgate-absolute-weights.bin")
    bad("symlink", "link.bin")
    bad("missing", "absent.bin")
    function_attr()
