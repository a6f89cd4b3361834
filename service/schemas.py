"""Request and response schemas: they validate requests and generate the OpenAPI document.

Types are strict as JSON writes them (the contract): ``sampling_rate`` must be a JSON
integer (not ``"360"``, ``true``, ``360.5`` or ``null``), ``apply_ruleguard`` a JSON
boolean, ``signal_data`` an array of plain finite numbers. Unknown fields are ignored,
as the old service ignored them, and named in the response's warnings (a misspelt
``sampling_rate`` would otherwise silently become 360 Hz).
"""

import array

import numpy as np
from flask import current_app, g, has_app_context
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

MIN_SAMPLES = 360
MIN_SECONDS = 5.0
MIN_RATE_HZ = 100
# the fewest samples any valid request has: 5 s at the lowest rate (documented as minItems)
MIN_ITEMS = max(MIN_SAMPLES, int(MIN_SECONDS * MIN_RATE_HZ))
MAX_SAMPLES = 1_800_000  # 30 min at 1000 Hz; ECG_MAX_SAMPLES overrides it (service/config.py)
MAX_ABS_VALUE = 1e6  # far beyond any ECG in mV (or even in ADC counts or microvolts)

CONFIDENCE_DOC = (
    "Calibrated probability that the beat's predicted class is right: the V probability "
    "p_v when the beat is V, 1 - p_v when it is N. p_v is the ensemble's output after the "
    "model card's Platt calibration (served as a cascade: its first member's output for beats "
    "far from the threshold, the mean of all members otherwise); with the card's pooling, the "
    "mean (in logits) over the beats of the same pool whose QRS complex has the same shape (the "
    "pool is the whole signal when the card sets pool_size_beats, cut into blocks of that many "
    "beats from its start only from about 1.5 times that many; else groups of about 16 beats, a "
    "10-s strip being one); a beat is V when p_v >= threshold_used (and the "
    "RuleGuard, when applied, did not turn it back to N)."
)
OVERALL_CONFIDENCE_DOC = (
    "Confidence of the overall call: when V, the highest p_v among the V beats; when N, "
    "1 - the highest p_v of all beats (how sure the service is that no beat is V)."
)

# The decision's counts of beats it called otherwise than the networks would have, described once
# for a prediction's metadata and the recordings' report (service/recording_schemas.py)
DECISION_COUNTS = {
    "own_rhythm_beats": "beats the networks would call V, called N as the recording's dominant on-time shape",
    "v_by_timing_beats": "beats called V under the card's threshold: readable, premature, followed by a pause, "
                         "in a regular rhythm, and wider than and unlike the beats around them or of a shape "
                         "whose beats mostly are so timed",
    "v_without_pause_beats": "beats the networks call V, called N in a regular rhythm: those no pause follows, "
                             "over 50 bpm (an artefact the detector took for a beat leaves the rhythm as it was, "
                             "a PVC resets it; in a slower rhythm a PVC can fall between two beats without "
                             "moving them); "
                             "those on time with the rhythm's own ST segment and T wave: a normal beat "
                             "an artefact fell on, where a PVC changes them; and those whose window holds the "
                             "rhythm's own QRS, undetected, where its next beat was due: an artefact taken "
                             "instead of that beat",
    "v_small_without_t_wave_beats": "beats the networks call V, called N as smaller than a third of the beats "
                                    "either side and under 0.4 of their group's, with no T wave after them: "
                                    "a blocked P wave (an AV block) taken for a beat; a PVC is as large as the "
                                    "beats beside it or larger, and the ventricles repolarise after it",
}

# a prediction's metadata, field by field: the contract's counts, then what this service adds
PREDICTION_METADATA_DOC = (
    "total_beats, normal_beats, ventricular_beats, ruleguard_applied (as before), plus heart_rate_bpm, "
    "pvc_burden_percent, model_name, model_version, preprocessing_version, sampling_rate, resampled, "
    "duration_s, derivation, warnings (derivation and signal quality), signal_quality (beats per quality), "
    "unreadable_seconds and unreadable_intervals_s ([start, end] in seconds of the signal), "
    "ventricular_flutter_seconds and ventricular_flutter_intervals_s (stretches that look like ventricular "
    "flutter or fibrillation: a fast regular wave with no QRS complexes; risk_level keeps the contract's "
    "meaning, read from the V beats), "
    + ", ".join(f"{name} ({text})" for name, text in DECISION_COUNTS.items())
    + ", short_rhythm_beats (in a request, or a stretch between two leads off of a minute or more, too short "
    "for that rule, under 150 beats, its V calls of one on-time shape when they are more than half its beats: "
    "a slow ventricular rhythm or the patient's own, which a longer request would tell), pacemaker (as sent: "
    "with it the own-rhythm rule reads requests of any length, own_rhythm_beats counting the paced beats it "
    "called N), turned_upright (the signal was negated before the networks saw it, its QRS complexes mostly "
    "pointing down, for a model trained on upright leads); pvc_burden_percent is over the beats not judged "
    "unreadable"
)


def example_signal(fs=360, seconds=10.0):
    """A synthetic 10-s lead for the OpenAPI example, so "Try it out" gets a 201.

    Narrow beats at 75 bpm in mV, with one premature wide beat at 4.3 s (a PVC-like shape).
    """
    t = np.arange(int(fs * seconds)) / fs
    x = np.zeros_like(t)
    for r in (0.4, 1.2, 2.0, 2.8, 3.6, 5.2, 6.0, 6.8, 7.6, 8.4, 9.2):
        x += 0.15 * np.exp(-0.5 * ((t - r + 0.16) / 0.02) ** 2)  # P
        x += 1.1 * np.exp(-0.5 * ((t - r) / 0.012) ** 2)  # R
        x += 0.3 * np.exp(-0.5 * ((t - r - 0.3) / 0.05) ** 2)  # T
    x += -1.4 * np.exp(-0.5 * ((t - 4.3) / 0.035) ** 2) + 0.4 * np.exp(-0.5 * ((t - 4.6) / 0.07) ** 2)
    return np.round(x, 3).tolist()


def _json_kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class StrictInteger(fields.Integer):
    """A JSON integer only: marshmallow's strict Integer still takes ``true`` as 1."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """``true`` or ``false`` only: marshmallow's Boolean also takes 1, "yes", "on"..."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _numbers_only(value):
    """``value`` (a list) as a float64 array when it holds JSON numbers only, else None.

    ``array.array("d", value)`` converts in C and takes exactly floats, ints and
    booleans: a string, null, object or nested array stops it (TypeError), as does an
    integer too large for a float (OverflowError). Booleans become 1/0, so the elements
    equal to 0 or 1, a few on a real ECG, are looked at one by one. Same array as
    ``np.array(value, dtype=np.float64)``, in about half the time of checking every
    element's type in Python first. Not ``np.array(value)``'s own type discovery: one
    long string among the numbers makes it allocate the string's size for every element.
    """
    try:
        x = np.frombuffer(array.array("d", value), dtype=np.float64)
    except (TypeError, OverflowError):
        return None
    suspects = np.flatnonzero((x == 0.0) | (x == 1.0)).tolist()
    if any(type(value[i]) is bool for i in suspects):
        return None
    return x


class SignalField(fields.List):
    """A JSON array of finite numbers, loaded straight into a float64 numpy array.

    Documented as an array of numbers (it is a List for apispec), but checked in bulk:
    marshmallow's per-element Float is far too slow for a 30-min record (docs/PERFORMANCE.md).
    """

    def __init__(self, **kwargs):
        super().__init__(fields.Float(allow_nan=False), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError(f"Must be an array of numbers, got {_json_kind(value)}.")
        limit = current_app.config.get("MAX_SAMPLES", MAX_SAMPLES) if has_app_context() else MAX_SAMPLES
        if len(value) > limit:  # before any per-sample work: the limit bounds a request's cost
            raise ValidationError(f"At most {limit} samples are accepted (ECG_MAX_SAMPLES), "
                                  f"got {len(value)}: split the record.")
        x = _numbers_only(value)
        if x is None:  # something other than numbers, or too large: find it and say which
            if not set(map(type, value)) <= {float, int}:  # bool is its own type: rejected
                i, bad = next((i, v) for i, v in enumerate(value) if type(v) not in (float, int))
                raise ValidationError(f"Element {i} is {_json_kind(bad)}: only numbers are allowed.")
            # only floats and ints, so what stopped _numbers_only was an integer too large
            raise ValidationError("Contains a number too large for a float.")
        bad = ~np.isfinite(x) | (np.abs(x) > MAX_ABS_VALUE)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValidationError(
                f"Element {i} ({value[i]!r}) is not a finite number within ±{MAX_ABS_VALUE:g}."
            )
        if len(x) < MIN_SAMPLES:
            raise ValidationError(f"At least {MIN_SAMPLES} samples are needed, got {len(x)}.")
        return x


class PredictionRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    signal_data = SignalField(
        required=True,
        metadata={
            "description": "One ECG lead in millivolts: at least 360 samples and at least "
            f"5 s of signal (so never fewer than {MIN_ITEMS}), at most {MAX_SAMPLES} samples by "
            "default (ECG_MAX_SAMPLES); finite numbers only (no strings, null, NaN or Infinity).",
            "minItems": MIN_ITEMS,
            "maxItems": MAX_SAMPLES,
        },
    )
    sampling_rate = StrictInteger(
        load_default=360,
        validate=validate.Range(min=MIN_RATE_HZ, max=1000),
        metadata={"description": "Hz, a JSON integer from 100 to 1000; resampled to 360 Hz "
                                 "by the service.", "example": 360},
    )
    derivation = fields.String(
        load_default="MLII",
        validate=validate.Length(min=1, max=32),
        metadata={"description": "Lead name (MLII, V1, V5...). The model is trained on MLII: "
                                 "another lead is accepted and flagged in metadata."},
    )
    patient_id = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=256),
        metadata={"description": "Opaque client identifier, echoed in metadata, never logged."},
    )
    apply_ruleguard = StrictBoolean(
        load_default=True,
        metadata={"description": "Apply the rule-based post-filter that turns likely false "
                                 "V calls back to N (when the model card enables it)."},
    )
    pacemaker = StrictBoolean(
        load_default=False,
        metadata={"description": "The patient has a pacemaker: the request's dominant QRS shape, on "
                                 "time and under 100 bpm, is taken for paced beats and called N however "
                                 "short the request (without it only from 150 beats: in a 10-s strip it "
                                 "could be a slow ventricular rhythm). Premature beats keep their call."},
    )

    @pre_load
    def _note_unknown_fields(self, data, **kwargs):
        if isinstance(data, dict) and has_app_context():
            g.unknown_fields = sorted(set(data) - set(self.fields))
        return data

    @validates_schema
    def _long_enough(self, data, **kwargs):
        x, fs = data.get("signal_data"), data.get("sampling_rate")
        if x is not None and isinstance(fs, int) and len(x) / fs < MIN_SECONDS:
            raise ValidationError(
                f"At least {MIN_SECONDS:g} s of signal is needed, got {len(x) / fs:.2f} s "
                f"({len(x)} samples at {fs} Hz).",
                field_name="signal_data",
            )


class BeatPredictionSchema(Schema):
    beat_index = fields.Integer(metadata={"description": "0-based index in this response"})
    position_sample = fields.Integer(metadata={
        "description": "R-peak sample index in the submitted signal, at the submitted "
                       "sampling_rate"})
    arrhythmia_type = fields.String(validate=validate.OneOf(["N", "V"]))
    confidence = fields.Float(metadata={"description": CONFIDENCE_DOC})
    rr_previous = fields.Float(allow_none=True, metadata={
        "description": "Seconds since the previous beat; null for the first beat"})
    rr_next = fields.Float(allow_none=True, metadata={
        "description": "Seconds to the next beat; null for the last beat"})
    qrs_width_ms = fields.Float(allow_none=True, metadata={
        "description": "Estimated QRS width in milliseconds"})
    signal_quality = fields.String(validate=validate.OneOf(["good", "noisy", "unreadable"]), metadata={
        "description": "The QRS's level over the noise around it (docs/ROBUSTNESS.md): "
                       "an unreadable beat is never called V and not counted in the PVC burden"})


class PredictionResponseSchema(Schema):
    prediction_id = fields.UUID()
    ecg_signal_id = fields.UUID()
    overall_arrhythmia_type = fields.String(validate=validate.OneOf(["N", "V"]), metadata={
        "description": "V when at least one beat is V"})
    overall_confidence = fields.Float(metadata={"description": OVERALL_CONFIDENCE_DOC})
    risk_level = fields.String(validate=validate.OneOf(["LOW", "MEDIUM", "HIGH"]), metadata={
        "description": "N overall: LOW. V overall: HIGH when overall_confidence >= 0.85, "
                       "MEDIUM when >= 0.70, else LOW"})
    threshold_used = fields.Float(metadata={
        "description": "Decision threshold on the calibrated V probability (model card)"})
    total_beats = fields.Integer()
    normal_beats = fields.Integer()
    ventricular_beats = fields.Integer()
    beat_predictions = fields.List(fields.Nested(BeatPredictionSchema), metadata={
        "description": "Every detected beat, in time order"})
    processing_time_ms = fields.Float()
    created_at = fields.DateTime(metadata={"description": "ISO 8601, UTC (+00:00)"})
    metadata = fields.Dict(allow_none=True, metadata={"description": PREDICTION_METADATA_DOC})


class ModelSummarySchema(Schema):
    name = fields.String()
    version = fields.String()
    preprocessing_version = fields.String()
    mlflow_run_id = fields.String(allow_none=True)
    threshold = fields.Float()
    created_at = fields.String(allow_none=True)
    metrics = fields.Dict()
    cascade = fields.Dict(allow_none=True, metadata={
        "description": "null when every beat gets the whole ensemble; else the band of first-member "
                       "probabilities (low, high) whose beats also get the other members"})
    pooling = fields.Dict(allow_none=True, metadata={
        "description": "null when each beat is judged alone; else the pooling by QRS shape (min_corr, "
                       "own_weight, pool_size_beats: null for groups of ~16 beats, else the whole "
                       "signal's pool) and the DS2 figures promotion measured with it (ds2_figures; "
                       "metrics are the training run's, made without it)"})


class HealthSchema(Schema):
    status = fields.String(validate=validate.OneOf(["healthy", "degraded"]))
    version = fields.String(metadata={"description": "service version"})
    model_loaded = fields.Boolean()
    timestamp = fields.DateTime()
    reason = fields.String(allow_none=True, metadata={
        "description": "why no model is loaded (degraded only)"})
    model = fields.Nested(ModelSummarySchema, allow_none=True)


class RootSchema(Schema):
    name = fields.String()
    version = fields.String()
    docs = fields.String()
    health = fields.String()
    redoc = fields.String()
    openapi = fields.String()


class ErrorSchema(Schema):
    detail = fields.String(metadata={"description": "what went wrong, for a human"})
    status = fields.Integer()
    errors = fields.Dict(metadata={"description": "422: messages per request field"})
    request_id = fields.String()
