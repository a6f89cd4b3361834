"""Schemas of POST /api/v1/recordings: its query, and its report (for the OpenAPI document).

The body is a file, not JSON: described in the document by :data:`REQUEST_BODY`.
"""

from marshmallow import Schema, fields

from .schemas import DECISION_COUNTS

REQUEST_BODY = {
    "required": True,
    "description": "One EDF or EDF+ file (an EDF+D with gaps is analysed part by part), as the body itself or as the "
                   "`file` part of a form. At most ECG_MAX_RECORDING_MB (1024 MB by default).",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
    },
}


class RecordingQuerySchema(Schema):
    channel = fields.String(load_default=None, metadata={
        "description": "The signal to analyse: its index among the file's signals (0-based, "
                       "annotations not counted) or its label. Default: the first signal labelled "
                       "lead II or MLII, else the first whose label looks like an ECG lead (ECG, EKG, "
                       "V1...), else signal 0."})
    include_beats = fields.Boolean(load_default=False, metadata={
        "description": "Add every beat (`beats`) to the JSON report."})
    apply_ruleguard = fields.Boolean(load_default=True, metadata={
        "description": "Apply the model card's RuleGuard, as POST /api/v1/predictions does."})
    pacemaker = fields.Boolean(load_default=False, metadata={
        "description": "The patient has a pacemaker, as POST /api/v1/predictions reads it: the "
                       "dominant on-time slow QRS shape is paced beats, N, however short the recording."})


class ChannelSchema(Schema):
    index = fields.Integer()
    label = fields.String()
    sampling_rate = fields.Integer(metadata={"description": "Hz"})


class HeartRateSchema(Schema):
    min = fields.Float(allow_none=True, metadata={"description": "lowest 1-min rate, bpm"})
    mean = fields.Float(allow_none=True, metadata={"description": "the whole recording's, bpm"})
    max = fields.Float(allow_none=True, metadata={"description": "highest 1-min rate, bpm"})


class RunSchema(Schema):
    start_s = fields.Float(metadata={"description": "first V beat, seconds from the start"})
    beats = fields.Integer()
    duration_s = fields.Float(metadata={"description": "first to last R peak"})
    rate_bpm = fields.Float()
    kind = fields.String(metadata={"description": "NSVT (> 100 bpm, < 30 s), VT (> 100 bpm, >= 30 s) or slow"})


class PauseSchema(Schema):
    start_s = fields.Float(metadata={"description": "the R peak before the pause, seconds from the start"})
    duration_s = fields.Float(metadata={"description": "to the next R peak"})


class HourSchema(Schema):
    hour_start_s = fields.Float()
    beats = fields.Integer()
    ventricular_beats = fields.Integer()
    unreadable_beats = fields.Integer(metadata={"description": "of the hour's beats, those judged unreadable"})
    heart_rate_mean = fields.Float(allow_none=True)


class ModelSchema(Schema):
    name = fields.String()
    version = fields.String()


class BeatSchema(Schema):
    time_s = fields.Float(metadata={"description": "R peak, seconds from the recording's start (gaps included)"})
    sample = fields.Integer(metadata={"description": "R peak in the channel, at its sampling rate, from the "
                                                     "recording's start (gaps included)"})
    type = fields.String(metadata={"description": "N or V"})
    confidence = fields.Float()
    signal_quality = fields.String(metadata={"description": "good, noisy or unreadable (never V)"})


class RecordingReportSchema(Schema):
    """The Holter report (docs/HOLTER.md defines each count)."""

    recording_id = fields.String()
    channel = fields.Nested(ChannelSchema)
    start_time = fields.String(allow_none=True,
                               metadata={"description": "the file's, ISO 8601 (no zone: EDF has none)"})
    duration_s = fields.Float(metadata={"description": "the recording's seconds, from its first sample to its "
                                                       "last, gaps included"})
    total_beats = fields.Integer()
    normal_beats = fields.Integer()
    ventricular_beats = fields.Integer()
    unreadable_beats = fields.Integer(metadata={"description": "beats in unreadable stretches: called N"})
    own_rhythm_beats = fields.Integer(metadata={"description": DECISION_COUNTS["own_rhythm_beats"]})
    v_by_timing_beats = fields.Integer(metadata={"description": DECISION_COUNTS["v_by_timing_beats"]})
    v_without_pause_beats = fields.Integer(metadata={"description": DECISION_COUNTS["v_without_pause_beats"]})
    v_small_without_t_wave_beats = fields.Integer(
        metadata={"description": DECISION_COUNTS["v_small_without_t_wave_beats"]})
    short_rhythm_beats = fields.Integer(metadata={
        "description": "in a recording, or a stretch between two leads off of a minute or more, under "
                       "150 beats, too short for that rule: the V calls of its dominant on-time slow shape "
                       "when they are more than half its beats (a slow ventricular rhythm or the patient's "
                       "own wide-QRS rhythm); else 0"})
    pacemaker = fields.Boolean(metadata={
        "description": "as the query declared it: own_rhythm_beats are then paced beats, read in a "
                       "recording of any length"})
    turned_upright = fields.Boolean(metadata={
        "description": "the signal was negated before the networks saw it, the day's QRS complexes "
                       "mostly pointing down, for a model trained on upright leads"})
    pvc_burden_percent = fields.Float(metadata={"description": "V over the beats not unreadable"})
    pvc_per_hour = fields.Float(metadata={"description": "per readable hour"})
    heart_rate_bpm = fields.Nested(HeartRateSchema)
    isolated_pvcs = fields.Integer()
    couplets = fields.Integer(metadata={"description": "runs of exactly 2 V"})
    triplets = fields.Integer(metadata={"description": "runs of exactly 3 V (also in ventricular_runs)"})
    ventricular_runs = fields.List(fields.Nested(RunSchema), metadata={"description": "runs of 3 or more V"})
    pauses = fields.List(fields.Nested(PauseSchema), metadata={
        "description": "RR intervals of 2 s or more between beats that stand out of the noise, none over a "
                       "gap or an unreadable or flutter stretch nor amid mostly unreadable signal (docs/HOLTER.md)"})
    long_pauses = fields.Integer(metadata={"description": "pauses of 3 s or more"})
    longest_pause_s = fields.Float(allow_none=True, metadata={"description": "null when there is no pause"})
    bigeminy_episodes = fields.Integer()
    trigeminy_episodes = fields.Integer()
    hourly = fields.List(fields.Nested(HourSchema))
    unreadable_seconds = fields.Float()
    unreadable_intervals_s = fields.List(fields.List(fields.Float()), metadata={
        "description": "[start, end] in seconds of the recording"})
    ventricular_flutter_seconds = fields.Float(metadata={
        "description": "seconds that look like ventricular flutter or fibrillation (a fast regular wave "
                       "with no QRS complexes)"})
    ventricular_flutter_intervals_s = fields.List(fields.List(fields.Float()), metadata={
        "description": "those stretches, [start, end] in seconds of the recording"})
    gap_seconds = fields.Float(metadata={
        "description": "seconds an EDF+D file did not record (between its data records); 0 otherwise"})
    gap_intervals_s = fields.List(fields.List(fields.Float()), metadata={
        "description": "those gaps, [start, end] in seconds of the recording: no beat, RR interval, "
                       "couplet or run spans one"})
    model = fields.Nested(ModelSchema)
    processing_time_ms = fields.Float()
    warnings = fields.List(fields.String())
    beats = fields.List(fields.Nested(BeatSchema), metadata={"description": "only with include_beats"})
