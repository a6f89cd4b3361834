"""End-to-end DS2 figures of a candidate model computed the way the service computes them:
the service's own loader (card and sha256 checks, its ONNX Runtime session(s)) and its
``p_v``, ``ecg.pipeline.extract_beats`` on every signal, ``ecg.decision.classify``.
"""

import numpy as np

from ecg.decision import classify
from train import dataset
from train.evaluate import end_to_end, reference_metrics


def end_to_end_served(model, records, directory, strip_s=10.0, decisions=None):
    """``{name: {"e2e_f1_V": ..., "e2e_strip_f1_V": ..., ...}}``: the e2e figures of ``records``
    for each decision of ``decisions``, a ``{name: decision}`` (default ``{"card": the card's}``).

    ``model``: the candidate as the service loads it (``service.model.load_model`` of the
    directory holding its ONNX files and card). The beats are found and the networks run once
    for all the decisions (promotion scores a pooled card's networks without the pooling too,
    against the training run's figures).
    """
    decisions = decisions or {"card": model.decision}
    out = {name: {} for name in decisions}
    for prefix, strip in (("e2e", None), ("e2e_strip", strip_s)):
        beats = dataset.build(records, directory, strip, (0.0,), cache_dir=None, progress=None)
        p_raw, groups, signals = model.p_v(beats.windows, beats.features), beats.groups(), beats.signals()
        for name, decision in decisions.items():
            is_v = classify(p_raw, beats.features, decision, windows=beats.windows, groups=groups,
                            signals=signals)[0]
            metrics, _ = end_to_end(beats, np.where(is_v, "V", "N"), records, directory, prefix)
            out[name].update(metrics)
    return out


def reference_served(model, records, directory):
    """The ``test_*`` figures (DS2 reference beat positions, whole records) through the served
    ``model`` (as :func:`end_to_end_served` takes it): the literature's protocol, with the
    service's networks and decision."""
    beats = dataset.build(records, directory, None, (0.0,), use_reference=True, cache_dir=None, progress=None)
    is_v = classify(model.p_v(beats.windows, beats.features), beats.features, model.decision,
                    windows=beats.windows, groups=beats.groups(), signals=beats.signals())[0]
    return reference_metrics(np.where(beats.labels == "V", "V", "N"), np.where(is_v, "V", "N"))
