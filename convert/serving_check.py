"""DS2 figures of a candidate model computed the way the service computes them: the service's
own loader (card and sha256 checks, its ONNX Runtime session(s)) and its ``p_v``,
``ecg.pipeline.extract_beats`` of the card's preprocessing version on every signal, the
card's decision as ``ecg.decision.classify`` applies it; scored as training scores DS2
(:func:`train.evaluate.score_ds2`).
"""

from train.evaluate import decide, score_ds2


def served_figures(model, records, directory, decisions=None, evaluations=("e2e", "e2e_strip"), strip_s=10.0):
    """``{name: {"e2e_f1_V": ..., "e2e_strip_f1_V": ..., ...}}``: the DS2 figures of ``records``
    for each decision of ``decisions``, a ``{name: decision}`` (default ``{"card": the card's}``).

    ``model``: the candidate as the service loads it (``service.model.load_model`` of the
    directory holding its ONNX files and card). ``evaluations``: those of
    :data:`train.evaluate.DS2_EVALUATIONS` to run ("test": the reference beat positions, the
    literature's protocol). The beats are found and the networks run once for all the
    decisions (promotion scores a pooled card's networks without the pooling too, against the
    training run's figures).
    """
    decisions = decisions or {"card": model.decision}

    def label(beats, evaluation):
        p_raw = model.p_v(beats.windows, beats.features)
        return {name: decide(p_raw, beats, decision) for name, decision in decisions.items()}

    metrics, _ = score_ds2(label, records, directory, strip_s, evaluations, version=model.preprocessing_version)
    return metrics
