"""Keras -> ONNX export: the Conv1D layers come out fused, with the same outputs."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import onnx

    from convert.onnx_export import export_onnx
    from train.model import average_models, build_model

    members = [build_model((360, 2), 10, np.zeros(10, np.float32), np.ones(10, np.float32),
                           {"filters": 4}, name=f"m{k}") for k in range(2)]
    rng = np.random.default_rng(0)
    for m in members:  # trained biases are not zero (a zero bias is not even exported)
        for layer in m.layers:
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
    model = average_models(members)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return model, path, onnx.load(str(path))


def test_every_conv_carries_its_bias_and_relu(exported):
    _, _, proto = exported
    nodes = proto.graph.node
    convs = [n for n in nodes if n.op_type == "Conv"]
    assert len(convs) == 6  # 3 layers x 2 members
    assert all(len(c.input) == 3 for c in convs)  # X, W, B
    consumers = {i: n.op_type for n in nodes for i in n.input}
    assert all(consumers[c.output[0]] == "Relu" for c in convs)
    # what is left of the Conv1D reshaping: the input's Unsqueeze, and per member one Squeeze
    # after the global pooling; no 3-D detour between the layers nor before the pooling
    assert sum(n.op_type == "Unsqueeze" for n in nodes) == 1
    assert sum(n.op_type == "Squeeze" for n in nodes) == 2
    producer = {o: n for n in nodes for o in n.output}
    pools = [n for n in nodes if n.op_type == "GlobalAveragePool"]
    assert len(pools) == 2 and all(producer[p.input[0]].op_type == "Relu" for p in pools)
    assert not [n for n in nodes if n.op_type == "MaxPool" and not n.input[0].endswith("/relu:0")]


def test_outputs_match_keras(exported):
    from convert.onnx_export import compare, onnx_session

    model, path, _ = exported
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((300, 360, 2)).astype(np.float32)
    feats = rng.standard_normal((300, 10)).astype(np.float32)
    pk, po = compare(model, onnx_session(path), windows, feats)
    assert np.abs(pk - po).max() < 1e-5
    assert pk.std() > 1e-4  # not a constant output that any graph would match


def test_fusion_leaves_other_graphs_alone():
    from onnx import TensorProto, helper

    from convert.onnx_export import fuse_conv1d_bias_relu

    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 1, 3], np.ones(6, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[0, 1, 0, 1]),
         helper.make_node("Relu", ["y"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 1, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    _, fused = fuse_conv1d_bias_relu(model)
    assert fused == 0 and model.SerializeToString() == before


def test_pooling_stays_put_on_a_3d_input():
    """pool_in_4d only moves a pooling whose input is a Conv1D's squeezed 4-D output."""
    from onnx import TensorProto, helper, numpy_helper

    from convert.onnx_export import pool_in_4d

    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["p"]),
         helper.make_node("Squeeze", ["p", "axes"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    _, moved = pool_in_4d(model)
    assert moved == 0 and model.SerializeToString() == before
