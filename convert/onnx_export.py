"""Keras -> ONNX with tf2onnx, and the checks that the two agree."""

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPSET = 17
INPUTS = {"beat": (None, 360, 2), "rr": (None, 10)}
OUTPUT = "p_v"


def export_onnx(model, path, opset=OPSET):
    """Write ``model`` (a Keras model with inputs ``beat``, ``rr``) as ONNX to ``path``.

    The batch dimension stays dynamic; inputs and output keep their names.
    ``tf2onnx.convert.from_keras`` rejects a dict-input Keras 3 model, so the
    model call is wrapped in a ``tf.function`` and converted with ``from_function``.
    """
    import tensorflow as tf
    import tf2onnx

    shapes = {name: model.input[name].shape if isinstance(model.input, dict) else None for name in INPUTS}
    spec = [tf.TensorSpec((None, *tuple(shapes[n] or INPUTS[n])[1:]), tf.float32, name=n) for n in INPUTS]

    @tf.function(input_signature=spec)
    def serve(beat, rr):
        return {OUTPUT: model({"beat": beat, "rr": rr}, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    proto, _ = fuse_conv1d_bias_relu(proto)
    proto, _ = pool_in_4d(proto)
    onnx.save(proto, str(path))
    return path


def _squeeze_axes(node, initializers):
    """The axes of a Squeeze/Unsqueeze node (an input since opset 13, an attribute before)."""
    if len(node.input) > 1 and node.input[1] in initializers:
        return numpy_helper.to_array(initializers[node.input[1]]).ravel().tolist()
    return next((list(a.ints) for a in node.attribute if a.name == "axes"), None)


def fuse_conv1d_bias_relu(model):
    """Give every Conv1D of ``model`` (an ONNX ModelProto) its bias and ReLU back, in place.

    TensorFlow runs a Conv1D as a 2-D convolution between ExpandDims and Squeeze, and
    tf2onnx keeps that shape: ``Conv -> Squeeze -> Add(bias) -> Relu -> Unsqueeze ->
    MaxPool``. The Squeeze between the convolution and its bias stops ONNX Runtime
    from fusing bias and ReLU into the convolution and from keeping the blocked
    (NCHWc) layout from one layer to the next, so each layer paid a separate Add, Relu
    and two layout reorders: a third of the ensemble's time. Here the bias becomes the
    Conv's third input, the ReLU follows it on the 4-D tensor, and a Squeeze/Unsqueeze
    pair around a MaxPool disappears; a Squeeze stays only where a consumer expects 3-D.
    The arithmetic is unchanged (convert.promote checks the outputs against Keras).
    Returns ``(model, number of convolutions fused)``.
    """
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for n in g.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)

    def only_consumer(tensor, op_type):
        c = consumers.get(tensor, [])
        return c[0] if len(c) == 1 and c[0].op_type == op_type else None

    drop, insert_after, fused = set(), {}, 0
    for conv in g.node:
        if conv.op_type != "Conv" or len(conv.input) != 2 or conv.input[1] not in inits:
            continue
        squeeze = only_consumer(conv.output[0], "Squeeze")
        if squeeze is None or _squeeze_axes(squeeze, inits) != [2]:
            continue
        n_filters = inits[conv.input[1]].dims[0]
        add = only_consumer(squeeze.output[0], "Add")  # none when the bias is all zeros
        if add is not None:
            bias_name = add.input[1] if add.input[0] == squeeze.output[0] else add.input[0]
            if bias_name not in inits or int(np.prod(inits[bias_name].dims)) != n_filters:
                continue
            bias = numpy_helper.to_array(inits[bias_name]).reshape(-1).astype(np.float32)
        relu = only_consumer((add or squeeze).output[0], "Relu")
        if relu is None:
            continue

        if add is not None:
            g.initializer.append(numpy_helper.from_array(bias, conv.name + "/bias"))
            conv.input.append(conv.name + "/bias")
            drop.add(id(add))
        relu_4d = conv.name + "/relu:0"
        new = [helper.make_node("Relu", [conv.output[0]], [relu_4d], name=conv.name + "/relu")]
        needs_3d = False
        for user in consumers.get(relu.output[0], []):
            if user.op_type == "Unsqueeze" and _squeeze_axes(user, inits) == [2]:
                for nxt in consumers.get(user.output[0], []):  # read the 4-D ReLU directly
                    for k, name in enumerate(nxt.input):
                        if name == user.output[0]:
                            nxt.input[k] = relu_4d
                drop.add(id(user))
            else:
                needs_3d = True
        if needs_3d:  # the old 3-D tensor, same name, for consumers such as the global pooling
            new.append(helper.make_node("Squeeze", [relu_4d, squeeze.input[1]], [relu.output[0]],
                                        name=conv.name + "/squeeze"))
        insert_after[id(conv)] = new
        drop.update({id(squeeze), id(relu)})
        fused += 1

    nodes = []
    for n in g.node:
        if id(n) not in drop:
            nodes.append(n)
            nodes.extend(insert_after.get(id(n), []))
    _set_nodes(model, nodes)
    return model, fused


def _set_nodes(model, nodes):
    """Make ``nodes`` the graph's, drop the initializers no node reads any more, check the model."""
    g = model.graph
    del g.node[:]
    g.node.extend(nodes)
    used = {name for n in g.node for name in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    onnx.checker.check_model(model)


def pool_in_4d(model):
    """Let each global average pooling read its convolution's 4-D output, in place.

    After :func:`fuse_conv1d_bias_relu` the last Conv1D of each network still ends in
    ``Relu (N, C, 1, L) -> Squeeze -> GlobalAveragePool (N, C, 1) -> Squeeze (N, C)``:
    the 3-D detour makes ONNX Runtime reorder the whole blocked (NCHWc) activation
    back to plain layout before pooling: the served first member without and with this
    change took 326 and 310 us on 14 beats, 72.4 and 63.6 ms on 2,601 (one thread). Pooled on the 4-D tensor
    (the mean over the same L values) the reorder touches only (N, C, 1, 1), and
    ``Squeeze`` takes axes 2 and 3. The pooling's summation order may differ, by float
    rounding (convert.promote checks the outputs against Keras).
    Returns ``(model, number of poolings moved)``.
    """
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {out: n for n in g.node for out in n.output}
    consumers = {}
    for n in g.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    drop, moved = set(), 0
    for pool in g.node:
        if pool.op_type != "GlobalAveragePool":
            continue
        before = producer.get(pool.input[0])
        after = consumers.get(pool.output[0], [])
        if (before is None or before.op_type != "Squeeze" or _squeeze_axes(before, inits) != [2]
                or len(consumers[before.output[0]]) != 1 or len(after) != 1
                or after[0].op_type != "Squeeze" or _squeeze_axes(after[0], inits) != [2]
                or len(after[0].input) < 2):  # axes as an input (opset >= 13)
            continue
        axes = pool.name + "/axes_2_3"
        g.initializer.append(numpy_helper.from_array(np.array([2, 3], np.int64), axes))
        pool.input[0] = before.input[0]
        after[0].input[1] = axes
        drop.add(id(before))
        moved += 1
    if moved:
        _set_nodes(model, [n for n in g.node if id(n) not in drop])
    return model, moved


def onnx_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare(model, session, windows, features, batch_size=2048):
    """Keras and ONNX Runtime V probabilities for the same inputs: ``(p_keras, p_onnx)``, each (n,).

    ``features``: (n, k) as ``extract_beats`` gives them; the network takes its first columns.
    """
    from ecg.pipeline import network_rr
    from train.evaluate import rr_width

    features = network_rr(features, rr_width(model))
    pk, po = [], []
    for i in range(0, len(windows), batch_size):
        x = {"beat": windows[i:i + batch_size].astype(np.float32), "rr": features[i:i + batch_size].astype(np.float32)}
        pk.append(np.asarray(model(x, training=False)).reshape(-1))
        po.append(session.run([OUTPUT], x)[0].reshape(-1))
    return np.concatenate(pk), np.concatenate(po)
