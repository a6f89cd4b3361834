"""The model of this worker: card + its ONNX Runtime session(s), loaded once at start-up.

A card with a cascade (``decision.cascade``, ``onnx.cascade``) is served as two graphs:
the first ensemble member on every beat, the other members only on the beats whose
first-member probability lies inside the card's band (``LoadedModel.p_v``). The band
is chosen on honest DS1 predictions of whole ensembles (``python -m train.cascade``).

A missing, corrupt or incompatible model never stops the service: the worker starts
degraded, with the reason, and predictions answer 503 saying it.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ecg.decision import MAX_POOL_SIZE_BEATS, POOLING_KEYS, RULEGUARD_KEYS, in_cascade_band
from ecg.features import RR_FEATURE_NAMES
from ecg.pipeline import PREPROCESSING, SUPPORTED_VERSIONS, network_rr

log = logging.getLogger("service.model")

BEAT_SHAPE = (2 * PREPROCESSING["window_samples"][0], 2)  # (360, 2)
# The figures of the card's "metrics" that /health reports, when the card has them: the
# served model's on DS2 and on its DS1 validation split. The card keeps every figure of
# its training run besides; the service shows these and needs to know nothing of the rest.
HEALTH_METRICS = (
    # DS2, the reference beats
    "test_f1_V", "test_precision_V", "test_recall_V", "test_fpr_V", "test_accuracy",
    "test_TP", "test_FP", "test_TN", "test_FN",
    # DS2 end to end (detected beats), on whole records (e2e_) and on 10-s strips (e2e_strip_);
    # strict: missed V and false detections count
    "e2e_f1_V", "e2e_precision_V", "e2e_recall_V",
    "e2e_strict_f1_V", "e2e_strict_precision_V", "e2e_strict_recall_V", "e2e_qrs_se", "e2e_qrs_ppv",
    "e2e_strip_f1_V", "e2e_strip_precision_V", "e2e_strip_recall_V",
    "e2e_strip_strict_f1_V", "e2e_strip_strict_precision_V", "e2e_strip_strict_recall_V",
    "e2e_strip_qrs_se", "e2e_strip_qrs_ppv",
    # DS1 validation
    "val_f1_V", "val_f1_V_no_ruleguard", "val_f1_V_nested_ensemble",
)
# beats per ONNX call: a 10-s strip (and up to ~30 s) is one call, a 30-min record ~40.
# Small batches keep each layer's activations in cache and ONNX Runtime's arena small:
# 64 was faster than 256 and 32 no better (docs/PERFORMANCE.md).
BATCH_BEATS = 64
DECISION_KEYS = frozenset({"calibration", "threshold", "ruleguard", "cascade", "pooling"})


# A promotion (convert.promote.install) renames the ONNX file, then the card: a worker
# reading between the two renames sees a pair whose sha256 differ. Read again a few
# times before calling the model corrupt.
SHA_MISMATCH_RETRIES = 3
SHA_MISMATCH_WAIT_S = 0.2


class ModelUnavailable(Exception):
    """The model cannot be used; the message says why, for /health and 503s.

    Messages name files, never their folder: they reach clients, and a client has
    no business knowing the server's paths (the log has the folder).
    """


class ShaMismatch(ModelUnavailable):
    """The card and a graph file disagree: maybe a promotion between its renames, read again."""


class GraphMissing(ShaMismatch):
    """A graph the card names is gone: maybe a promotion removed it after a new card, read again."""


# a card's training.leads entry for MIT-BIH's second channel (train.data.OTHER_LEAD), and the
# leads that channel holds across the database's 48 records
OTHER_LEAD = "other"
MITDB_OTHER_LEADS = frozenset({"V1", "V2", "V4", "V5"})


@dataclass
class LoadedModel:
    card: dict
    session: ort.InferenceSession  # the whole ensemble; with a cascade, its first member
    rest: ort.InferenceSession | None = None  # with a cascade: the mean of the other members

    @property
    def decision(self):
        return self.card["decision"]

    @property
    def threshold(self):
        return float(self.card["decision"]["threshold"])

    @property
    def version(self):
        return str(self.card["version"])

    @property
    def name(self):
        return str(self.card.get("name", "ecg_nv_cnn"))

    @property
    def preprocessing_version(self):
        return self.card["preprocessing"]["version"]

    @property
    def trained_leads(self):
        """The lead names (upper case) the network was trained on: MLII, and with the card's
        ``training.leads`` naming ``"other"``, MIT-BIH's second leads as well."""
        leads = (self.card.get("training") or {}).get("leads") or ["MLII"]
        names = {lead.upper() for lead in leads if lead != OTHER_LEAD}
        return frozenset(names | (MITDB_OTHER_LEADS if OTHER_LEAD in leads else set()))

    @property
    def rr_width(self):
        """How many of the beats' feature columns the network takes (its version's)."""
        return SUPPORTED_VERSIONS[self.preprocessing_version]

    def summary(self):
        metrics = self.card.get("metrics") or {}
        return {
            "name": self.name,
            "version": self.version,
            "preprocessing_version": self.preprocessing_version,
            "mlflow_run_id": (self.card.get("mlflow") or {}).get("run_id"),
            "threshold": self.threshold,
            "created_at": self.card.get("created_at"),
            "metrics": {k: metrics[k] for k in HEALTH_METRICS if k in metrics},
            "cascade": ({"low": self.decision["cascade"]["low"], "high": self.decision["cascade"]["high"],
                         "members": self.card["onnx"]["cascade"]["rest"]["members"] + 1}
                        if self.rest is not None else None),
            # "metrics" are the training run's, made without it; promotion records the pooled ones
            "pooling": ({"min_corr": self.decision["pooling"]["min_corr"],
                         "own_weight": self.decision["pooling"].get("own_weight", 0.0),
                         # None: within the groups of ~16 beats; a number: the whole signal
                         "pool_size_beats": self.decision["pooling"].get("pool_size_beats"),
                         "ds2_figures": ((self.card.get("verification") or {}).get("end_to_end") or {})
                         .get("with_pooling")}
                        if self.decision.get("pooling") else None),
        }

    def p_v(self, windows, features):
        """Raw V probabilities (n,) of n beats: the ensemble mean, or with a cascade,
        the first member's where it is outside the card's band.

        ``windows`` (n, 360, 2) and ``features`` (n, 16) as ``extract_beats`` gives them;
        the network gets the feature columns of its version.

        Beats whose first-member probability is at or below ``low``, or at or above
        ``high``, keep it; the others get the mean of all members, from one more call
        on those beats only.
        """
        features = network_rr(features, self.rr_width)
        p = self._run(self.session, windows, features)
        if self.rest is None:
            return p
        unsure = np.flatnonzero(in_cascade_band(p, self.decision["cascade"]))
        if len(unsure):
            n_rest = self.card["onnx"]["cascade"]["rest"]["members"]
            p_rest = self._run(self.rest, windows[unsure], features[unsure])
            p[unsure] = (p[unsure] + n_rest * p_rest) / (n_rest + 1)
        return p

    @staticmethod
    def _run(session, windows, features):
        """One batched ONNX call per ``BATCH_BEATS`` beats: (n,) float32.

        A 30-min record (~2,500 beats) in one call would make ONNX Runtime's arena hold
        hundreds of MB of activations for the worker's lifetime; in batches it stays
        small, and each beat's probability is the same bit for bit (the network treats
        beats independently).
        """
        n = len(windows)
        if n <= BATCH_BEATS:
            return session.run(["p_v"], {"beat": windows, "rr": features})[0][:, 0]
        return np.concatenate([
            session.run(["p_v"], {"beat": windows[i:i + BATCH_BEATS], "rr": features[i:i + BATCH_BEATS]})[0][:, 0]
            for i in range(0, n, BATCH_BEATS)])


@dataclass
class ModelState:
    """What a worker has: a model, or the reason it has none."""

    model: LoadedModel | None
    reason: str | None = None

    @property
    def loaded(self):
        return self.model is not None


def _session_options(intra_op_threads):
    so = ort.SessionOptions()
    # Several gunicorn workers share the cores: one thread each, no spinning, so a
    # worker waiting for work does not burn a core another worker needs.
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def _check_card(card):
    try:
        version = card["preprocessing"]["version"]
        threshold = float(card["decision"]["threshold"])
        card["decision"]["calibration"]
        card["onnx"]["file"], card["onnx"]["sha256"]
        card["version"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelUnavailable(f"model card lacks a required entry: {exc}") from None
    if version not in SUPPORTED_VERSIONS:
        raise ModelUnavailable(
            f"model card's preprocessing version {version!r} is not one this service "
            f"produces ({', '.join(sorted(SUPPORTED_VERSIONS))})"
        )
    names = card["preprocessing"].get("rr_features")
    if names is not None and list(names) != list(RR_FEATURE_NAMES[:SUPPORTED_VERSIONS[version]]):
        raise ModelUnavailable(f"model card's features for {version!r} are not the ones this "
                               f"service computes for it: {names}")
    if not 0.0 <= threshold <= 1.0:
        raise ModelUnavailable(f"model card's threshold {threshold} is not in 0..1")
    unknown = set(card["decision"].get("ruleguard") or {}) - RULEGUARD_KEYS
    if unknown:
        raise ModelUnavailable(f"model card's RuleGuard has settings this service does not apply: "
                               f"{', '.join(sorted(unknown))}")
    unknown = set(card["decision"]) - DECISION_KEYS
    if unknown:  # a rule this service does not know would be silently skipped
        raise ModelUnavailable(f"model card's decision has parts this service does not apply: "
                               f"{', '.join(sorted(unknown))}")
    pooling = card["decision"].get("pooling")
    if pooling is not None:
        try:
            unknown = set(pooling) - POOLING_KEYS
            if unknown:
                raise ValueError(f"settings this service does not apply: {', '.join(sorted(unknown))}")
            # the values are used as they are: types checked, not converted
            lo, hi = pooling["core_samples"]
            corr, own = pooling["min_corr"], pooling.get("own_weight", 0.0)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
                raise ValueError("core_samples must be two integers")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (corr, own)):
                raise ValueError("min_corr and own_weight must be numbers")
            if not (-1.0 <= corr <= 1.0 and 0.0 <= own <= 1.0 and 0 <= lo < hi <= BEAT_SHAPE[0]):
                raise ValueError("min_corr, own_weight or core_samples out of range")
            size = pooling.get("pool_size_beats")  # absent or null: the groups of ~16 beats
            if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                     or not 1 <= size <= MAX_POOL_SIZE_BEATS):
                # a larger pool would make a request's work grow with the square of its beats
                raise ValueError(f"pool_size_beats must be an integer from 1 to {MAX_POOL_SIZE_BEATS}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelUnavailable(f"model card's pooling is unusable: {exc}") from None
    band = card["decision"].get("cascade")
    if band is not None:
        try:
            low, high = float(band["low"]), float(band["high"])
            graphs = card["onnx"]["cascade"]
            for part in ("first", "rest"):
                graphs[part]["file"], graphs[part]["sha256"]
            if int(graphs["first"]["members"]) != 1 or int(graphs["rest"]["members"]) < 1:
                raise ValueError("first must be one member, rest at least one")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelUnavailable(f"model card's cascade is incomplete: {exc}") from None
        if not 0.0 <= low < high <= 1.0:
            raise ModelUnavailable(f"model card's cascade band {low}..{high} is not an interval in 0..1")


def _check_io(session, rr_width):
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if set(inputs) != {"beat", "rr"} or "p_v" not in outputs:
        raise ModelUnavailable(f"ONNX model has inputs {sorted(inputs)} and outputs {outputs}, "
                               "expected inputs beat, rr and output p_v")
    if tuple(inputs["beat"][1:]) != BEAT_SHAPE or tuple(inputs["rr"][1:]) != (rr_width,):
        raise ModelUnavailable(f"ONNX input shapes {inputs} do not match the preprocessing "
                               f"(beat [N, {BEAT_SHAPE[0]}, {BEAT_SHAPE[1]}], rr [N, {rr_width}])")


def graph_files(card):
    """Every ONNX file of the card's release: {role: (file, sha256)}.

    ``model`` (the whole ensemble) always; with a cascade also ``first`` and ``rest``,
    which are what runs. All are verified: a release with any damaged file is refused.
    """
    files = {"model": (card["onnx"]["file"], card["onnx"]["sha256"])}
    if card["decision"].get("cascade") is not None:
        graphs = card["onnx"]["cascade"]
        files.update({role: (graphs[role]["file"], graphs[role]["sha256"]) for role in ("first", "rest")})
    return files


def _read_verified(model_dir):
    """(card, {role: ONNX bytes}) whose sha256 the card vouches for."""
    card_path = model_dir / "model.json"
    try:
        card = json.loads(card_path.read_bytes())
    except FileNotFoundError:
        raise ModelUnavailable("no model card (model.json) in the model folder") from None
    except OSError as exc:
        raise ModelUnavailable(f"model card unreadable (model.json: {exc.strerror})") from None
    except ValueError as exc:
        raise ModelUnavailable(f"model card unreadable (model.json is not valid JSON: {exc})") from None
    if not isinstance(card, dict):
        raise ModelUnavailable("model card model.json is not a JSON object")
    _check_card(card)

    blobs = {}
    for role, (file, want) in graph_files(card).items():
        onnx_name = Path(str(file)).name
        try:
            blob = (model_dir / file).read_bytes()
        except FileNotFoundError:
            raise GraphMissing(f"ONNX file missing ({onnx_name}), named by the card") from None
        except OSError as exc:
            raise ModelUnavailable(f"ONNX file unreadable ({onnx_name}: {exc.strerror})") from None
        digest = hashlib.sha256(blob).hexdigest()
        if digest != want:
            raise ShaMismatch(f"sha256 of {onnx_name} is {digest}, the card says "
                              f"{want}: corrupt or replaced file")
        blobs[role] = blob
    return card, blobs


def load_model(model_dir, intra_op_threads=1, session_options=None):
    """Card + verified ONNX session(s) from ``model_dir``; raises :class:`ModelUnavailable`.

    ``session_options``: ONNX Runtime options to use instead of the service's
    (``bench.ort_threads`` compares threading settings with them).
    """
    model_dir = Path(model_dir)
    for attempt in range(SHA_MISMATCH_RETRIES + 1):
        try:
            card, blobs = _read_verified(model_dir)
            break
        except ShaMismatch:
            if attempt == SHA_MISMATCH_RETRIES:
                raise
            time.sleep(SHA_MISMATCH_WAIT_S)  # maybe a promotion between its renames
    if "first" in blobs:  # a cascade runs its two graphs; the whole ensemble was only verified
        del blobs["model"]
    files = graph_files(card)
    rr_width = SUPPORTED_VERSIONS[card["preprocessing"]["version"]]
    sessions = {}
    for role, blob in blobs.items():
        onnx_name = Path(str(files[role][0])).name
        try:
            sessions[role] = ort.InferenceSession(blob, session_options or _session_options(intra_op_threads),
                                                  providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelUnavailable(f"ONNX Runtime cannot load {onnx_name}: {exc}") from None
        _check_io(sessions[role], rr_width)

    model = LoadedModel(card=card, session=sessions.get("model") or sessions["first"], rest=sessions.get("rest"))
    for session in sessions.values():  # one real run of every graph: catches a model that loads
        try:  # but cannot execute, and warms it up
            p = model._run(session, np.zeros((1, *BEAT_SHAPE), np.float32), np.zeros((1, rr_width), np.float32))
        except Exception as exc:
            raise ModelUnavailable(f"ONNX model fails on a test batch: {exc}") from None
        if p.shape != (1,) or not np.isfinite(p).all():
            raise ModelUnavailable(f"ONNX model returned {p!r} on a test batch")
    return model


def load_state(model_dir, intra_op_threads=1):
    try:
        model = load_model(model_dir, intra_op_threads)
    except ModelUnavailable as exc:
        log.error("model not loaded, service degraded",
                  extra={"fields": {"reason": str(exc), "model_dir": str(model_dir)}})
        return ModelState(model=None, reason=str(exc))
    log.info("model loaded", extra={"fields": {
        "model_name": model.name, "model_version": model.version, "model_dir": str(model_dir)}})
    return ModelState(model=model)


def init_app(app):
    app.extensions["ecg_model"] = load_state(app.config["MODEL_DIR"],
                                             app.config["ORT_INTRA_OP_THREADS"])


def get_state(app):
    return app.extensions["ecg_model"]
