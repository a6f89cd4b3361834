"""End-to-end DS2 figures of a candidate model computed the way the service computes them:
the service's own loader (card and sha256 checks, its ONNX Runtime session(s)) and its
``p_v``, ``ecg.pipeline.extract_beats`` on every signal, ``ecg.decision.classify``.
"""

import numpy as np

from ecg.decision import classify
from train import dataset
from train.evaluate import end_to_end


def end_to_end_served(model_dir, records, directory, strip_s=10.0):
    """``{"e2e_f1_V": ..., "e2e_strip_f1_V": ...}`` (and the other e2e figures) for ``records``.

    ``model_dir`` holds ``model.onnx`` and ``model.json`` as the service would read them.
    """
    from service.model import load_model

    model = load_model(model_dir)
    out = {}
    for prefix, strip in (("e2e", None), ("e2e_strip", strip_s)):
        beats = dataset.build(records, directory, strip, (0.0,), cache_dir=None, progress=None)
        is_v = classify(model.p_v(beats.windows, beats.features), beats.features, model.decision)[0]
        metrics, _ = end_to_end(beats, np.where(is_v, "V", "N"), records, directory, prefix)
        out.update(metrics)
    return out
