"""``python -m bench.robustness``: an EC57-style robustness report of the served model on DS2.

Every condition sends the 22 DS2 records through the service's own ``predict`` (the served
model, detector, decision and quality flag: what the API answers), once as whole records
and once as independent 10-s strips (``--strip-seconds``: another length), and scores the
answers against the reference beats (EC57 matching, +-150 ms, ventricular flutter excluded):

- QRS Se and +P; V Se, +P and F1 over matched beats; the false-V rate: non-V beats and
  artefacts (detections matching no beat) called V, over the reference beats;
- each twice: over every beat, where a V beat the service judged unreadable (and so did not
  call V) is a miss as EC57 counts it, and without the stretches judged unreadable
  (``readable only``).

Conditions (``CONDITIONS``):

- ``clean``: channel 0 (MLII) as recorded; ``lead1``: channel 1 (V1, V2, V4 or V5);
- ``bw``, ``ma``, ``em`` at 24 .. -6 dB: the MIT-BIH Noise Stress Test's protocol (Moody,
  Muldrow & Mark 1984; PhysioNet's ``nst``): the first 5 min clean, then 2 min noisy and 2 min
  clean in turn; SNR from the QRS peak-to-peak amplitude (``train.augment.nst_snr_gain``).
  ``bw`` and ``ma`` are nstdb's recordings (their last half, which training never uses);
  ``em`` is our electrode-motion model (``train.augment.electrode_motion``), drawn with seeds
  training never uses;
- ``pulses`` at 12, 6, 0 dB: an artefact family training never draws (:func:`pulse_artefacts`),
  nst's protocol and SNR: it shows whether what the networks learned of artefacts carries over to
  shapes they never saw, as it must for recorded motion noise (one rule after the network, the
  no-pause rule, was chosen with DS1's pulses among its views: ``bench.out_of_fold``);
- ``ma-rms``: ``ma`` over the whole record at an SNR of RMS over RMS, tiled from the start of
  the noise (the issue's table and targets);
- ``fs100``, ``fs128``, ``fs250``, ``fs257``, ``fs1000``: the record resampled and sent at that
  rate (100 Hz: the lowest the API takes; 257 Hz: INCART's, a rate 360 Hz shares no factor with);
- ``virtual 45°``, ``virtual 135°``: a lead the records do not have, ``cos(a) * MLII + sin(a) *
  channel 1`` (under the heart-dipole model, the heart vector's projection on another direction
  of the plane the two leads span): at 45° MLII's upright and V1's downward QRS complexes partly
  cancel (a low-voltage lead), at 135° they add (a large, mostly negative one); ``--angles
  DEG...`` runs virtual leads at other angles instead of the conditions (``bench/virtual_leads.md``:
  0 to 150° by 30°; a lead and its reverse, a + 180°, are sent upright alike);
- ``inverted``: the lead's polarity reversed; ``hum 0.3 mV``: 60-Hz mains interference of
  0.3 mV with a third harmonic of 0.09 mV, over the whole record; ``hum 50 Hz 1 mV``: 1 mV of
  50-Hz interference (a device without a mains filter);
- what devices do to a lead: ``uV, offset 300 mV`` (sent in microvolts on an offset: the
  service must read it as the same ECG), ``band 0.67-25 Hz`` (a wearable's causal 4th-order
  band-pass, which bends the ST segment and rounds the QRS), ``clipped 1.5 mV`` (an amplifier
  saturating 1.5 mV from the lead's median), ``ADC step 50 uV`` (a coarse converter: the lead
  rounded to multiples of 50 µV, as an 8-bit converter spanning ±6.4 mV records it), ``x0.1, hum
  0.15 mV`` (a low-voltage lead, a tenth of the record's size, with 0.15 mV of 50-Hz hum: as much
  hum for its size as 1.5 mV on the record);
- ``breathing 30 %``, ``breathing 60 %``, ``lead1, breathing 30 %``: the lead's size swung by that
  share over each 4-s breath (:func:`breathing_swing`), as breathing does to it, most in chest leads
  and wearables: the network sees each beat scaled by its group's median size, which a swing moves;
- ``slow 40 bpm``, ``slow 30 bpm``, ``lead1, slow 40 bpm``: the record's own beats spread to a slow
  rhythm (:func:`slow_rhythm`), as in sleep, an athlete or sinus node disease;
- ``block 2:1``, ``lead1, block 2:1``: a 2:1 atrioventricular block made of the record's rhythm
  (:func:`two_to_one_block`): every second P wave is followed by no QRS complex, and a P wave far
  from any QRS can be taken for a beat.

Writes ``bench/robustness.json`` and ``bench/robustness.md``. Needs MIT-BIH and the nstdb
noise records (``--data``, ``--noise``); 20-40 min on 2 cores.
"""

import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import log, served_model_parser
from ecg.ec57 import count_metrics, end_to_end_metrics, in_ranges
from ecg.signal import resample
from train.cli import at_least

BENCH_DIR = Path(__file__).resolve().parent
NST_SNRS = (24, 18, 12, 6, 0, -6)
NST_LEARNING_S = 300  # nst's standard protocol: 5 min clean ...
NST_PERIOD_S = 120  # ... then 2 min noisy, 2 min clean, in turn
STRIP_S = 10.0
MODES = ("whole", "strips")  # each record sent whole, and as independent strips: a report's two halves
VIRTUAL_LEAD_DEG = (45, 135)  # a low-voltage and a large lead made from MLII and channel 1
PULSE_SNRS = (12, 6, 0)
PULSES_PER_S = 1.0  # pulse_artefacts: Poisson times, about one a second ...
PULSE_SIGMA_S = (0.010, 0.040)  # ... each a Gaussian of this standard deviation (24-94 ms wide) ...
PULSE_WALK_SHARE = 0.5  # ... over a random walk of this RMS against the pulses'
TEST_SEED = 20_260_917  # the electrode-motion draws of the report: no training seed is near it
BREATH_S = 4.0  # breathing_swing: one breath every 4 s (15 a minute, at rest)
BREATHING = (0.3, 0.6)  # ... swinging the ECG's size by +-30 % (deep breaths) or +-60 % (a wearable's lead)
SLOW_BPM = (40, 30)  # slow rhythms (slow_rhythm): sleep, an athlete, sinus node disease
SLOW_BEFORE = (0.25, 0.35)  # a beat's window in a slow rhythm starts this many s before its R peak (its
# P wave), at most this share of the RR before it ...
SLOW_AFTER = (0.50, 0.60)  # ... and ends this many s after it (its T wave), at most this share of the RR after
# two_to_one_block: a blocked beat loses the signal from just before its QRS complex to the end of its T wave ...
BLOCKED_FROM_S = 0.08  # ... from this long before its R peak (its P wave, ~150 ms before, stays) ...
BLOCKED_TO_RR = 0.45  # ... to this share of the RR after it (a T wave ends within ~40 % of the RR) ...
NEXT_P_CLEARANCE_S = 0.25  # ... and never closer than this to the next R peak (that beat's P wave)
BLOCK_2TO1 = "block 2:1"  # the condition's name, here and in bench.detector_noise


@dataclass(frozen=True)
class Condition:
    name: str
    lead: str = "MLII"  # or train.data.OTHER_LEAD, or MIXED_LEAD with mix_deg
    mix_deg: float | None = None  # the lead sent: cos(a) x MLII + sin(a) x the other lead
    noise: str | None = None  # "bw", "ma", "em", "pulses"
    snr_db: float | None = None
    definition: str = "nst"  # SNR: "nst" (QRS peak to peak) or "rms"
    protocol: str = "nst"  # where the noise is: "nst" (alternating) or "continuous"
    fs: int = 360  # the rate the signal is sent at
    inverted: bool = False  # the lead's polarity reversed (electrodes swapped)
    hum_mv: float = 0.0  # mains interference of this amplitude (mV) ...
    hum_hz: float = 60.0  # ... at this frequency ...
    hum_harmonic: float = 0.3  # ... with a third harmonic of this x hum_mv
    device_band_hz: tuple | None = None  # a device's own causal band-pass (4th-order Butterworth)
    clip_mv: float | None = None  # the amplifier saturates this far from the lead's median
    quantum_mv: float | None = None  # a coarse ADC: the lead rounded to multiples of this
    units_per_mv: float = 1.0  # sent in other units (1000: microvolts) ...
    offset_mv: float = 0.0  # ... on an offset (electrode half-cell potentials)
    slow_bpm: float | None = None  # the record's own beats spread to this slower rate (slow_rhythm)
    breathing: float | None = None  # the ECG's size swung by this share with each breath (breathing_swing)
    block: bool = False  # every second normal beat's QRS and T wave gone, its P wave left (two_to_one_block)


def conditions():
    out = [Condition("clean"), Condition("lead1", lead="other")]
    for kind in ("bw", "ma", "em"):
        out += [Condition(f"{kind} {snr:+d} dB", noise=kind, snr_db=snr) for snr in NST_SNRS]
    out += [Condition(f"pulses {snr:+d} dB", noise="pulses", snr_db=snr) for snr in PULSE_SNRS]
    out += [Condition(f"ma-rms {snr:+d} dB", noise="ma", snr_db=snr, definition="rms", protocol="continuous")
            for snr in (12, 6, 0)]
    out += [Condition("fs100", fs=100), Condition("fs128", fs=128), Condition("fs250", fs=250),
            Condition("fs257", fs=257), Condition("fs1000", fs=1000)]
    out += [Condition(f"virtual {a}°", lead="mixed", mix_deg=a) for a in VIRTUAL_LEAD_DEG]
    out += [Condition("inverted", inverted=True), Condition("hum 0.3 mV", hum_mv=0.3),
            Condition("hum 50 Hz 1 mV", hum_mv=1.0, hum_hz=50.0, hum_harmonic=0.0)]
    out += [Condition("uV, offset 300 mV", units_per_mv=1000.0, offset_mv=300.0),
            Condition("band 0.67-25 Hz", device_band_hz=(0.67, 25.0)), Condition("clipped 1.5 mV", clip_mv=1.5),
            Condition("ADC step 50 uV", quantum_mv=0.05),
            # the hum is added before the lead is scaled: 1.5 mV on the record, 0.15 mV as sent
            Condition("x0.1, hum 0.15 mV", units_per_mv=0.1, hum_mv=1.5, hum_hz=50.0, hum_harmonic=0.0)]
    out += [Condition(f"breathing {100 * d:.0f} %", breathing=d) for d in BREATHING]
    out += [Condition(f"lead1, breathing {100 * BREATHING[0]:.0f} %", lead="other", breathing=BREATHING[0])]
    out += [Condition(f"slow {bpm} bpm", slow_bpm=bpm) for bpm in SLOW_BPM]
    out += [Condition(f"lead1, slow {SLOW_BPM[0]} bpm", lead="other", slow_bpm=SLOW_BPM[0])]
    out += [Condition(BLOCK_2TO1, block=True), Condition(f"lead1, {BLOCK_2TO1}", lead="other", block=True)]
    return out


def slow_rhythm(rec, bpm):
    """Record ``rec`` (one lead, a ``train.data.Record``) as a slower rhythm of its own beats.

    Every RR is scaled alike, so that their median is 60 / ``bpm`` s (a PVC's prematurity and
    pause kept in proportion; a record already that slow keeps its rate). Each beat's window
    (``SLOW_BEFORE`` / ``SLOW_AFTER``: its P wave, QRS and T wave, never a neighbour's) is placed at
    its new time, and the stretch between two windows, a slow rhythm's longer TP segment, is a
    straight line. Beats in ``rec.excluded`` are left out (an RR across such a range counts as the
    median). Returns a Record with the new signal and beats and nothing excluded.
    """
    from dataclasses import replace

    keep = ~in_ranges(rec.ann_samples, rec.excluded)
    peaks, symbols = rec.ann_samples[keep], rec.ann_symbols[keep]
    rr = np.diff(peaks).astype(np.float64)
    across = np.diff(np.searchsorted(np.sort(rec.excluded[:, 0]), peaks, side="right")) > 0  # a range starts inside
    median = np.median(rr[~across])
    rr[across] = median
    scale = max(60.0 / bpm * rec.fs / median, 1.0)
    before = np.minimum(SLOW_BEFORE[0] * rec.fs, SLOW_BEFORE[1] * np.concatenate([[median], rr])).astype(np.int64)
    after = np.minimum(SLOW_AFTER[0] * rec.fs, SLOW_AFTER[1] * np.concatenate([rr, [median]])).astype(np.int64)
    inside = (peaks - before >= 0) & (peaks + after < len(rec.signal))
    new_peaks = before[0] + np.concatenate([[0], np.cumsum(np.rint(rr * scale).astype(np.int64))])
    peaks, new_peaks, before, after, symbols = (v[inside] for v in (peaks, new_peaks, before, after, symbols))
    x = np.zeros(new_peaks[-1] + after[-1] + 1)
    for old, new, pre, post in zip(peaks, new_peaks, before, after):
        x[new - pre:new + post + 1] = rec.signal[old - pre:old + post + 1]
    for end, start in zip(new_peaks[:-1] + after[:-1], new_peaks[1:] - before[1:]):  # the TP segments
        x[end:start + 1] = np.linspace(x[end], x[start], start - end + 1)
    return replace(rec, signal=x, ann_samples=new_peaks, ann_symbols=symbols, excluded=np.zeros((0, 2), np.int64))


def two_to_one_block(rec):
    """Record ``rec`` (one lead, a ``train.data.Record``) as a 2:1 atrioventricular block would
    record it, made from its conducted rhythm.

    Every second normal beat (``N`` between two ``N``) is blocked: its QRS complex and T wave
    are replaced by a straight line (``BLOCKED_FROM_S`` before its R peak to ``BLOCKED_TO_RR``
    of the RR after it), its P wave is kept, and it leaves the reference. Returns a Record
    with the new signal and the beats left.
    """
    from dataclasses import replace

    x = np.array(rec.signal, dtype=np.float64)
    samples, symbols, fs = rec.ann_samples, rec.ann_symbols, rec.fs
    kept = np.ones(len(samples), bool)
    for i in range(1, len(samples) - 1, 2):
        if not (symbols[i - 1] == symbols[i] == symbols[i + 1] == "N"):
            continue
        a = samples[i] - int(BLOCKED_FROM_S * fs)
        b = min(samples[i] + int(BLOCKED_TO_RR * (samples[i + 1] - samples[i])),
                samples[i + 1] - int(NEXT_P_CLEARANCE_S * fs))
        if a < 0 or b <= a:
            continue
        x[a:b] = np.linspace(x[a], x[b], b - a, endpoint=False)
        kept[i] = False
    return replace(rec, signal=x, ann_samples=samples[kept], ann_symbols=symbols[kept])


def noisy_mask(n, fs):
    """Samples (n,) bool that nst's standard protocol makes noisy."""
    t = np.arange(n) / fs
    after = t - NST_LEARNING_S
    return (after >= 0) & ((after // NST_PERIOD_S) % 2 == 0)


def nst_protocol(clean, noise, gain, fs):
    """``clean`` with ``gain`` x ``noise`` in nst's noisy periods; at each switch an offset keeps
    the output continuous, as nst does."""
    mask = noisy_mask(len(clean), fs)
    added = np.where(mask, gain * noise, 0.0)
    switches = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    offset = np.zeros(len(clean))
    level = 0.0
    for s in switches:
        level -= added[s] - added[s - 1]  # cancel the step the switch would make
        offset[s:] = level
    return clean + added + offset


def pulse_artefacts(n, fs, rng):
    """A held-out artefact family, (n,) with unit RMS: the report's, never training's.

    Isolated Gaussian pulses (standard deviation ``PULSE_SIGMA_S``), monophasic or biphasic (the
    Gaussian's derivative), of either sign and log-normal size, at Poisson times
    (``PULSES_PER_S``), over a random walk high-passed at 0.05 Hz (``PULSE_WALK_SHARE``). They
    are artefacts of other shapes than our electrode-motion model's damped oscillations
    (``train.augment.electrode_motion``): beat-like humps with no T wave.
    """
    from scipy.signal import butter, sosfiltfilt

    pulses = np.zeros(n)
    times = np.cumsum(rng.exponential(1.0 / PULSES_PER_S, int(n / fs * PULSES_PER_S * 2) + 10))
    for t0 in times[times < n / fs]:
        sigma = rng.uniform(*PULSE_SIGMA_S)
        half = int(4 * sigma * fs)
        tau = np.arange(-half, half + 1) / fs / sigma
        shape = np.exp(-0.5 * tau ** 2) * (1.0 if rng.random() < 0.5 else -1.65 * tau)  # both peak at ~1
        a = int(t0 * fs) - half
        seg = rng.choice([-1.0, 1.0]) * rng.lognormal(0.0, 0.5) * shape[max(-a, 0):n - a]
        pulses[max(a, 0):max(a, 0) + len(seg)] += seg
    walk = sosfiltfilt(butter(1, 0.05, btype="highpass", fs=fs, output="sos"), np.cumsum(rng.standard_normal(n)))
    unit = lambda v: v / max(np.sqrt(np.mean(v ** 2)), 1e-12)  # noqa: E731
    x = unit(pulses) + PULSE_WALK_SHARE * unit(walk)
    return unit(x - x.mean())


def noise_signal(kind, n, record, channel, noise, seed=TEST_SEED):
    """(n,) noise of ``kind`` for one record: nstdb's stretch in ``noise`` (tiled), the motion
    model or the held-out pulses, drawn from ``seed`` (the report's by default)."""
    from train import augment

    if kind == "em":
        rng = np.random.default_rng([seed, zlib.crc32(record.encode()), channel])
        return augment.electrode_motion(n, 360, rng)
    if kind == "pulses":
        return pulse_artefacts(n, 360, np.random.default_rng([seed, zlib.crc32(record.encode()), channel, 1]))
    stretch = noise[kind][:, channel % noise[kind].shape[1]]
    return np.resize(stretch - stretch.mean(), n)


def corrupt(rec, cond, noise, channel, seed=TEST_SEED):
    """The signal of ``rec`` (360 Hz) as ``cond`` sends it, and its rate (``seed``: electrode motion's)."""
    from train import augment

    x = rec.signal
    if cond.mix_deg is not None:
        a = np.deg2rad(cond.mix_deg)
        x = np.cos(a) * x[:, 0] + np.sin(a) * x[:, 1]
    if cond.noise is not None:
        nz = noise_signal(cond.noise, len(x), rec.name, channel, noise, seed)
        if cond.definition == "rms":
            gain = augment.rms_snr_gain(x, nz, cond.snr_db)
        else:
            gain = augment.nst_snr_gain(augment.qrs_amplitude(x, rec.ann_samples, rec.fs), nz, rec.fs, cond.snr_db)
        x = x + gain * nz if cond.protocol == "continuous" else nst_protocol(x, nz, gain, rec.fs)
    if cond.breathing:
        x = breathing_swing(x, rec.fs, cond.breathing)
    if cond.hum_mv:
        t = np.arange(len(x)) / rec.fs
        w = 2 * np.pi * cond.hum_hz * t
        x = x + cond.hum_mv * (np.sin(w) + cond.hum_harmonic * np.sin(3 * w))
    if cond.inverted:
        x = -x
    if cond.device_band_hz:
        from scipy.signal import butter, sosfilt

        x = sosfilt(butter(4, cond.device_band_hz, btype="bandpass", fs=rec.fs, output="sos"), x)
    if cond.clip_mv:
        centre = np.median(x)
        x = np.clip(x, centre - cond.clip_mv, centre + cond.clip_mv)
    if cond.quantum_mv:
        x = np.round(x / cond.quantum_mv) * cond.quantum_mv
    x = (x + cond.offset_mv) * cond.units_per_mv
    if cond.fs != rec.fs:
        x = resample(x, rec.fs, cond.fs)
    return x, cond.fs


def breathing_swing(x, fs, depth, breath_s=BREATH_S):
    """``x`` (n,) at ``fs`` Hz with its size swung by +-``depth`` once per breath.

    Breathing turns the heart's electrical axis and moves the lungs between it and the
    electrodes: every wave of the ECG grows and shrinks together over each breath, by a tenth to
    a few tenths (the swing ECG-derived respiration reads: Moody, Mark, Zoccola & Mantero 1985,
    Computers in Cardiology 12). The lead is scaled about its median (its offset stays) by
    ``1 + depth * sin(2 pi t / breath_s)``; its baseline wander swings with it, as little as the
    wander is.
    """
    centre = np.median(x)
    swing = 1.0 + depth * np.sin(2 * np.pi * np.arange(len(x)) / fs / breath_s)
    return centre + (x - centre) * swing


def served_beats(model, x, fs, lead, offset=0, pacemaker=False):
    """Positions (at ``fs``, plus ``offset``), labels and the unreadable intervals (s) of one request."""
    from service.inference import NoBeatsFound, predict

    try:
        result = predict(model, x, fs, derivation=lead, pacemaker=pacemaker)
    except NoBeatsFound:
        return np.zeros(0, np.int64), np.zeros(0, "<U1"), []
    beats = result["beat_predictions"]
    pos = np.array([b["position_sample"] for b in beats], np.int64) + offset
    lab = np.array([b["arrhythmia_type"] for b in beats])
    intervals = [(a + offset / fs, b + offset / fs)
                 for a, b in result["metadata"].get("unreadable_intervals_s", [])]
    return pos, lab, intervals


def request(model, x, fs, lead, mode, strip_s=STRIP_S, pacemaker=False):
    """The beats of a whole signal, sent whole or as independent strips of ``strip_s`` seconds."""
    from train.dataset import strip_bounds

    if mode == "whole":
        return served_beats(model, x, fs, lead, pacemaker=pacemaker)
    parts = [served_beats(model, x[a:b], fs, lead, a, pacemaker) for a, b in strip_bounds(len(x), fs, strip_s)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            [iv for p in parts for iv in p[2]])


def score(rec, pos, lab, fs, intervals):
    """Counts of one record, over every beat and over its readable stretches."""
    ref = rec.ann_samples
    scale = fs / rec.fs
    ref_at_fs = np.rint(ref * scale).astype(np.int64)
    excluded = np.rint(rec.excluded * scale).astype(np.int64)
    out = {}
    for way, extra in (("all", np.zeros((0, 2), np.int64)),
                       ("readable", np.rint(np.array(intervals, float).reshape(-1, 2) * fs).astype(np.int64))):
        ranges = np.concatenate([excluded.reshape(-1, 2), extra])
        m = end_to_end_metrics(ref_at_fs, rec.ann_classes, pos, lab, fs, excluded=ranges)
        n_ref = int(np.count_nonzero(~in_ranges(ref_at_fs, ranges)))
        out[way] = {"matched": m["matched"], "qrs": m["qrs"], "false_v": int(m["strict"]["FP"]), "ref": n_ref}
    return out


def summarise(per_record):
    """Totals over records: QRS Se/+P, V Se/+P/F1 (matched beats), false-V rate."""
    out = {}
    for way in ("all", "readable"):
        c = {k: sum(r[way]["matched"][k] for r in per_record) for k in ("TP", "FP", "FN", "TN")}
        q = {k: sum(r[way]["qrs"][k] for r in per_record) for k in ("TP", "FP", "FN")}
        m = count_metrics(c["TP"], c["FP"], c["FN"], c["TN"])
        n_ref = sum(r[way]["ref"] for r in per_record)
        out[way] = {"qrs_se": q["TP"] / max(q["TP"] + q["FN"], 1), "qrs_ppv": q["TP"] / max(q["TP"] + q["FP"], 1),
                    "v_se": m["Se"], "v_ppv": m["PPV"], "v_f1": m["F1"],
                    "false_v_rate": sum(r[way]["false_v"] for r in per_record) / max(n_ref, 1),
                    "ref_beats": n_ref, **{f"V_{k}": v for k, v in c.items()}}
    return out


def record_counts(row):
    """One record's counts over every beat (:func:`score`'s ``all``), kept in the report so that
    two reports compare record by record (``bench.compare --records``)."""
    a = row["all"]
    return {"V_TP": int(a["matched"]["TP"]), "V_FN": int(a["matched"]["FN"]), "V_FP": int(a["matched"]["FP"]),
            "false_v": int(a["false_v"]), "qrs_FP": int(a["qrs"]["FP"]), "qrs_FN": int(a["qrs"]["FN"])}


def false_v_count(counts):
    """The false V of a report cell's counts (``{"false_v_rate", "ref_beats", ...}``, as
    :func:`summarise` gives them): non-V beats and artefacts called V."""
    return round(counts["false_v_rate"] * counts["ref_beats"])


def run_condition(model, cond, records, data_dir, noise, log, strip_s=STRIP_S, seed=TEST_SEED, model_for=None):
    """Counts of ``cond`` over ``records``, whole and as strips, totals and each record's (``seed``:
    electrode motion's; ``model_for(name)``: the model that scores each record, default ``model``)."""
    from train.data import load_record

    rows = {mode: [] for mode in MODES}
    unreadable_s = dict.fromkeys(MODES, 0.0)
    for name in records:
        rec = load_record(name, data_dir, lead=cond.lead)
        if cond.slow_bpm:
            rec = slow_rhythm(rec, cond.slow_bpm)
        if cond.block:
            rec = two_to_one_block(rec)
        channel = 0 if cond.lead == "MLII" else 1
        x, fs = corrupt(rec, cond, noise, channel, seed)
        scorer = model_for(name) if model_for else model
        for mode in rows:
            pos, lab, intervals = request(scorer, x, fs, rec.lead, mode, strip_s)
            rows[mode].append(score(rec, pos, lab, fs, intervals))
            unreadable_s[mode] += sum(b - a for a, b in intervals)
    out = {mode: {**summarise(r), "unreadable_s": unreadable_s[mode],
                  "records": {name: record_counts(row) for name, row in zip(records, r)}}
           for mode, r in rows.items()}
    w = out["whole"]["all"]
    log(f"  {cond.name:>14}: whole QRS Se {w['qrs_se']:.4f} +P {w['qrs_ppv']:.4f}, V F1 {w['v_f1']:.4f} "
        f"(Se {w['v_se']:.4f} +P {w['v_ppv']:.4f}), false V {100 * w['false_v_rate']:.2f} %; "
        f"strips V F1 {out['strips']['all']['v_f1']:.4f}")
    return out


def write_markdown(path, report):
    fmt = lambda v: "" if v is None or v != v else f"{v:.4f}"  # noqa: E731
    from train.data import DS1, DS2

    named = {tuple(DS2): "DS2", tuple(DS1): "DS1"}.get(tuple(report["records"]), " ".join(report["records"]))
    title, module = report.get("title", "Robustness report"), report.get("module", "bench.robustness")
    lines = [f"# {title}: {named} through the served model (version {report['model']['version']})", "",
             f"Generated by `python -m {module}`; what each condition is and how it is scored: the "
             "module's docstring and docs/ROBUSTNESS.md. `all`: every beat (a V beat in a stretch judged "
             "unreadable is a miss); `readable`: without those stretches.", ""]
    for mode in MODES:
        strips = f"Independent {report.get('strip_s', STRIP_S):g}-s strips"
        lines += [f"## {'Whole records' if mode == 'whole' else strips}", "",
                  "| condition | QRS Se | QRS +P | V Se | V +P | V F1 | false V % | QRS +P readable | "
                  "V F1 readable | false V % readable | unreadable s |", "|---" * 11 + "|"]
        for name, res in report["conditions"].items():
            a, r = res[mode]["all"], res[mode]["readable"]
            lines.append(f"| {name} | {fmt(a['qrs_se'])} | {fmt(a['qrs_ppv'])} | {fmt(a['v_se'])} | "
                         f"{fmt(a['v_ppv'])} | {fmt(a['v_f1'])} | {100 * a['false_v_rate']:.2f} | "
                         f"{fmt(r['qrs_ppv'])} | {fmt(r['v_f1'])} | {100 * r['false_v_rate']:.2f} | "
                         f"{res[mode]['unreadable_s']:.0f} |")
        lines.append("")
    Path(path).write_text("\n".join(lines))


def save_report(out, report, markdown):
    """``report`` as JSON at ``out``, and as ``markdown(path, report)`` writes it beside (``.md``)."""
    out.write_text(json.dumps(report, indent=1))
    markdown(out.with_suffix(".md"), report)
    log(f"wrote {out} and {out.with_suffix('.md')} in {report['seconds']:.0f} s")


def main(argv=None):
    from service.model import ModelUnavailable, load_model
    from train import augment
    from train.data import DS2, data_dir, require_records

    ap = served_model_parser("python -m bench.robustness", __doc__)
    ap.add_argument("--noise", help="nstdb noise records (default: $ECG_NOISE_DIR, ...)")
    ap.add_argument("--records", nargs="+", default=list(DS2))
    ap.add_argument("--only", nargs="+", metavar="CONDITION", help="run these conditions only (names as listed)")
    ap.add_argument("--angles", nargs="+", type=float, metavar="DEG",
                    help="instead of the conditions (and --only): virtual leads at these angles (a sweep of the lead's "
                         "direction in the plane of MLII and channel 1; 0 is MLII, 90 channel 1)")
    ap.add_argument("--strip-seconds", type=at_least(float, 5.0), default=STRIP_S,
                    help="the length of the independent strips (s); 120 or 300: what longer requests get")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "robustness.json")
    args = ap.parse_args(argv)

    if args.angles:
        chosen = [Condition(f"virtual {a:g}°", lead="mixed", mix_deg=a) for a in args.angles]
    else:
        chosen = [c for c in conditions() if not args.only or c.name in args.only]
        if args.only and len(chosen) != len(args.only):
            known = ", ".join(c.name for c in conditions())
            print(f"robustness: unknown condition in {args.only}; known: {known}", file=sys.stderr)
            return 2
    try:
        ddir = data_dir(args.data)
        require_records(ddir, args.records)
        needs_noise = any(c.noise in augment.NSTDB_RECORDS for c in chosen)
        noise = augment.load_noise(augment.noise_dir(args.noise), "test") if needs_noise else {}
        model = load_model(args.model)
    except (FileNotFoundError, ModelUnavailable, ValueError) as exc:
        print(f"robustness: {exc}", file=sys.stderr)
        return 2
    report = {"model": model.summary(), "records": args.records, "strip_s": args.strip_seconds, "conditions": {}}
    t0 = time.perf_counter()
    for cond in chosen:
        report["conditions"][cond.name] = run_condition(model, cond, args.records, ddir, noise, log,
                                                        args.strip_seconds)
    report["seconds"] = time.perf_counter() - t0
    save_report(args.out, report, write_markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
