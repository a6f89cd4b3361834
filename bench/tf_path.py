"""Part 2: the TensorFlow path, run in a process of its own (``python -m bench.tf_path``).

Same strips, same preprocessing, same request path (bench.inprocess.staged_request);
only the network differs: the Keras model through ``model.predict`` (what the old
service did), through a direct call ``model(x, training=False)``, and the ONNX session,
in alternating blocks of calls (``common.blocked``: each path is timed warm, as in a
server of its own). The 10-s request is also timed alternated call by call, where each
ONNX call follows a TensorFlow one: that figure is reported beside, not used for ratios.
Also model-only timings on the same beats, and this process's RSS once the Keras model
is loaded and has run (before onnxruntime is imported).

Prints one JSON object on stdout.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# calls run, not kept, at the start of each block (common.blocked): a 30-min request is
# long enough for one warm-up call per block
SETTLE = {"10s": 5, "30min": 1}


def load_keras_model():
    """(model, source): the production card's MLflow run's model.keras, else untrained networks
    of the same architecture, as many as the card serves, averaged as training averages them
    (weights do not matter for speed; the number of networks does)."""
    import keras
    import numpy as np

    from .common import PROJECT_DIR

    card = json.loads((PROJECT_DIR / "models" / "ecg_nv_cnn" / "model.json").read_text())
    run_id = (card.get("mlflow") or {}).get("run_id")
    reason = "the model card names no MLflow run"
    if run_id:
        try:
            import mlflow

            from train.tracking import tracking_uri

            mlflow.set_tracking_uri(tracking_uri())
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model")
            model = keras.saving.load_model(os.path.join(local, "model.keras"))
            return model, {"kind": "mlflow", "run_id": run_id}
        except Exception as exc:  # MLflow raises several types for a missing run or artifact
            reason = f"MLflow run {run_id} not loadable here ({type(exc).__name__}: {str(exc)[:160]})"
    from train.model import DEFAULTS, average_models, build_model

    training = card.get("training", {})
    params = {k: training[k] for k in DEFAULTS if k in training}  # the card records every one training used
    n_members = int(training.get("members") or 1)
    beat_shape, n_rr = tuple(card["inputs"]["beat"][1:]), int(card["inputs"]["rr"][-1])
    members = [build_model(beat_shape, n_rr, np.zeros(n_rr, np.float32), np.ones(n_rr, np.float32), params,
                           name=f"ecg_nv_cnn_{m}") for m in range(n_members)]
    model = average_models(members) if n_members > 1 else members[0]
    return model, {"kind": "train.model.build_model", "params": params, "members": n_members,
                   "note": f"{n_members} untrained network(s) of the served architecture, averaged: {reason}"}


def time_request_paths(label, body, n, onnx, schema, nets, source):
    """The whole request path with each network of ``nets`` ({name: p_v(windows, features)}),
    in alternating blocks of ``n`` calls (and call by call for the 10-s strip): medians, and
    whether every path gave the same labels."""
    import orjson

    from .common import blocked, interleaved, stats_ms
    from .inprocess import staged_request

    answers = {k: orjson.loads(staged_request(onnx, body, schema, infer=fn)) for k, fn in nets.items()}
    paths = {k: (lambda fn=fn: staged_request(onnx, body, schema, infer=fn)) for k, fn in nets.items()}
    runs = blocked(paths, n, settle=SETTLE[label])
    res = {k: stats_ms(v) for k, v in runs.items()}
    res["settle_calls"] = SETTLE[label]
    if label == "10s":
        res["alternated_per_call"] = {k: stats_ms(v) for k, v in interleaved(paths, n, warmup=1).items()}
    res["beats"] = answers["onnx"]["total_beats"]
    # the same weights give the same labels: a check that all paths ran the same network
    if source["kind"] != "mlflow":
        res["labels_agree"] = "n/a (untrained Keras network)"
    else:
        labels = {k: [b["arrhythmia_type"] for b in a["beat_predictions"]] for k, a in answers.items()}
        res["labels_agree"] = labels["onnx"] == labels["keras_predict"] == labels["keras_call"]
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n10", type=int, default=100, help="requests per path, 10-s strip")
    ap.add_argument("--n30", type=int, default=3, help="requests per path, 30-min record")
    ap.add_argument("--model-n", type=int, default=200, help="model-only calls per network")
    args = ap.parse_args(argv)

    from .common import blocked, log, payload_10s, payload_30min, rss_mb, stats_ms

    t0 = time.perf_counter()
    import numpy as np
    import tensorflow as tf

    model, source = load_keras_model()
    from ecg.pipeline import extract_beats, network_rr
    from train.evaluate import rr_width

    _, obj = payload_10s()
    beats = extract_beats(np.array(obj["signal_data"]), obj["sampling_rate"])
    width = rr_width(model)  # the Keras networks take their version's columns, as the service's do
    inputs = {"beat": beats.windows, "rr": network_rr(beats.features, width)}
    model.predict(inputs, verbose=0)
    model(inputs, training=False)
    keras_load_s = time.perf_counter() - t0
    rss_keras = rss_mb()
    log(f"  Keras model ({source['kind']}) loaded and run: RSS {rss_keras:.0f} MB")

    # now the service side, in this same process
    from service import model as service_model
    from service import schemas

    from .common import PROJECT_DIR

    onnx = service_model.load_model(PROJECT_DIR / "models" / "ecg_nv_cnn")
    schema = schemas.PredictionRequestSchema()

    def keras_predict(w, f):
        return model.predict({"beat": w, "rr": network_rr(f, width)}, verbose=0)[:, 0]

    def keras_call(w, f):
        return model({"beat": w, "rr": network_rr(f, width)}, training=False).numpy()[:, 0]

    nets = {"onnx": onnx.p_v, "keras_predict": keras_predict, "keras_call": keras_call}
    out = {"model_source": source, "tensorflow": tf.__version__, "rss_keras_process_mb": rss_keras,
           "keras_import_load_run_s": keras_load_s, "tf_threads": {
               "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
               "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}

    # model only, the same beats of the 10-s strip
    model_only = blocked({k: (lambda fn=fn: fn(beats.windows, beats.features)) for k, fn in nets.items()},
                         args.model_n, settle=SETTLE["10s"])
    out["model_only_10s"] = {"beats": len(beats), "settle_calls": SETTLE["10s"],
                             **{k: stats_ms(v) for k, v in model_only.items()}}

    body10, _ = payload_10s()
    body30, why = payload_30min()
    for label, body, n in (("10s", body10, args.n10), ("30min", body30, args.n30)):
        if body is None or n <= 0:
            out[f"request_{label}"] = {"skipped": why if body is None else "not asked (0 requests)"}
            continue
        out[f"request_{label}"] = res = time_request_paths(label, body, n, onnx, schema, nets, source)
        log(f"  TF path {label}: " + ", ".join(f"{k} {res[k]['median_ms']:.2f} ms" for k in nets))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
