"""Keras -> ONNX with tf2onnx, and the checks that the two agree."""

import numpy as np

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

    tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset, output_path=str(path))
    return path


def onnx_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare(model, session, windows, features, batch_size=2048):
    """Keras and ONNX Runtime V probabilities for the same inputs: ``(p_keras, p_onnx)``, each (n,)."""
    pk, po = [], []
    for i in range(0, len(windows), batch_size):
        x = {"beat": windows[i:i + batch_size].astype(np.float32), "rr": features[i:i + batch_size].astype(np.float32)}
        pk.append(np.asarray(model(x, training=False)).reshape(-1))
        po.append(session.run([OUTPUT], x)[0].reshape(-1))
    return np.concatenate(pk), np.concatenate(po)
