"""End-to-end DS2 figures of an ONNX model computed the way the service computes them:
``ecg.pipeline.extract_beats`` on each signal, one ONNX Runtime call, ``ecg.decision.classify``.
"""

import numpy as np

from ecg.decision import classify
from train import dataset
from train.evaluate import end_to_end

from .onnx_export import OUTPUT, onnx_session


def onnx_labels(session, beats, decision, batch_size=4096):
    p = []
    for i in range(0, len(beats), batch_size):
        x = {"beat": beats.windows[i:i + batch_size], "rr": beats.features[i:i + batch_size]}
        p.append(session.run([OUTPUT], x)[0].reshape(-1))
    p = np.concatenate(p) if p else np.zeros(0)
    return np.where(classify(p, beats.features, decision)[0], "V", "N")


def end_to_end_onnx(onnx_path, card, records, directory, strip_s=10.0):
    """``{"e2e_f1_V": ..., "e2e_strip_f1_V": ...}`` (and the other e2e figures) for ``records``."""
    session = onnx_session(onnx_path)
    out = {}
    for prefix, strip in (("e2e", None), ("e2e_strip", strip_s)):
        beats = dataset.build(records, directory, strip, (0.0,), cache_dir=None, progress=None)
        metrics, _ = end_to_end(beats, onnx_labels(session, beats, card["decision"]), records, directory, prefix)
        out.update(metrics)
    return out
