"""Training and test sets: MIT-BIH records run through the serving code path.

Each record is cut into strips that are processed independently, exactly as the
service processes a request: resample, filter, detect, features
(:func:`ecg.pipeline.extract_beats`). Detected beats take the AAMI class of the
reference beat they match (EC57, ±150 ms); a detection that matches none is a
false beat, labelled ``-`` (not V: the model must learn to leave it alone).
"""

import hashlib
import json
import os
import uuid
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

import ecg
from ecg import MODEL_FS, features, pipeline
from ecg.ec57 import in_ranges, match_beats

from . import augment
from .data import AAMI_CLASS, load_record

MATCH_TOLERANCE = int(round(0.150 * MODEL_FS))


@dataclass
class BeatSet:
    """Beats of several records with their model inputs and labels (n beats)."""

    windows: np.ndarray  # (n, 360, 2) float32
    features: np.ndarray  # (n, 16) float32 (nv-pre-2)
    labels: np.ndarray  # (n,) str: AAMI class N S V F Q, or '-' for a false detection
    records: np.ndarray  # (n,) str
    strips: np.ndarray  # (n,) int, strip number within the record (-1: whole record)
    positions: np.ndarray  # (n,) int, sample in the record (360 Hz)

    def __len__(self):
        return len(self.labels)

    @property
    def y(self):
        return (self.labels == "V").astype(np.float32)

    def signals(self):
        """Each beat's signal (n,): one label per record's strip (per record when not cut), as
        the service would have received them, one request each."""
        if not len(self):
            return np.zeros(0, np.int64)
        change = np.r_[True, (self.records[1:] != self.records[:-1]) | (self.strips[1:] != self.strips[:-1])]
        return np.cumsum(change) - 1

    def groups(self, group_size=None):
        """Each beat's group (n,) as the service forms them for one request: within each
        record's strip (the whole record when not cut), runs of about ``group_size`` beats
        (:func:`ecg.features.beat_groups`); labels unique over the set. Formed on the beats
        kept: where an excluded range (record 207's flutter) dropped beats, the service, which
        sees them, would cut its groups elsewhere."""
        return features.groups_within(self.signals(), group_size or pipeline.PREPROCESSING["group_size_beats"])

    def subset(self, mask):
        return BeatSet(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @staticmethod
    def concat(sets):
        sets = [s for s in sets if s is not None]
        return BeatSet(**{f.name: np.concatenate([getattr(s, f.name) for s in sets]) for f in fields(BeatSet)})


@dataclass(frozen=True)
class View:
    """How a record is shown: which lead, and what each strip goes through first.

    ``transforms``: transformation kinds (:data:`train.augment.KINDS`) drawn at random per strip
    (training); ``noise``: ``(kind, snr_db)``, that noise at that nstdb SNR on every strip
    (validation views); ``noise_split``: which stretch of the noise records they use
    (:data:`train.augment.NOISE_SPLITS`). The draws are seeded by record, offset and strip, so
    a view is the same arrays every time (and can be cached).
    """

    lead: str = "MLII"
    transforms: tuple = ()
    noise: tuple | None = None
    noise_split: str = "train"

    @property
    def clean(self):
        return not self.transforms and self.noise is None

    def key(self):
        """A short stable name (cache keys, MLflow metric names)."""
        parts = [self.lead]
        if self.transforms:
            parts.append("aug-" + "+".join(sorted(self.transforms)))
        if self.noise is not None:
            parts.append(f"{self.noise[0]}{self.noise[1]:g}dB")
        if not self.clean:
            parts.append(self.noise_split)
        return "_".join(parts)

    def needs_nstdb(self):
        kinds = set(self.transforms) | ({self.noise[0]} if self.noise else set())
        return bool(kinds & set(augment.NSTDB_RECORDS))


CLEAN = View()


def strip_transform(view, noise_directory=None):
    """``f(x, beats, rng) -> x'`` for the strips of ``view``, or None for a clean view."""
    if view.clean:
        return None
    noise = augment.load_noise(augment.noise_dir(noise_directory), view.noise_split) if view.needs_nstdb() else None
    if view.transforms:
        recipe = augment.Recipe(tuple(view.transforms), noise)
        return lambda x, beats, rng: augment.transform_strip(x, beats, MODEL_FS, recipe, rng)
    kind, snr_db = view.noise
    return lambda x, beats, rng: augment.add_noise(
        x, augment.noise_stretch(noise, kind, len(x), MODEL_FS, rng), MODEL_FS, snr_db, beats)


def strip_rng(view, record, offset_s, strip):
    """The random draws of one strip of one view: the same every time it is built."""
    return np.random.default_rng([zlib.crc32(view.key().encode()), zlib.crc32(str(record).encode()),
                                  int(round(offset_s * 1000)), strip])


def label_detections(peaks, ref_samples, ref_symbols):
    """AAMI class of the reference beat each detection matches, '-' when none, shape (n,)."""
    labels = np.full(len(peaks), "-", dtype="<U1")
    ri, ti = match_beats(ref_samples, peaks, MATCH_TOLERANCE)
    labels[ti] = [AAMI_CLASS[s] for s in np.asarray(ref_symbols)[ri]]
    return labels


def strip_bounds(n, fs, strip_s, offset_s=0.0):
    """(start, end) sample pairs of consecutive ``strip_s`` strips; ``strip_s`` None: the whole signal."""
    if not strip_s:
        return [(0, n)]
    size, start = int(round(strip_s * fs)), int(round(offset_s * fs))
    bounds = [(a, min(a + size, n)) for a in range(start, n, size)]
    return [(a, b) for a, b in bounds if b - a >= size // 2]


def record_beats(record, strip_s=10.0, offset_s=0.0, use_reference=False, transform=None, view=CLEAN,
                 version=pipeline.PREPROCESSING["version"]):
    """Beats of one record processed strip by strip as the service would; a :class:`BeatSet`.

    ``use_reference``: take the reference beat positions instead of the detector's
    (the literature's protocol); false detections then do not exist.
    ``transform``: :func:`strip_transform` of ``view``, applied to each strip first.
    Beats inside excluded ranges (ventricular flutter) are dropped. ``version``: the
    preprocessing version to compute (``ecg.pipeline.extract_beats``).
    """
    assert record.fs == MODEL_FS, "MIT-BIH is recorded at 360 Hz"
    parts = []
    for k, (a, b) in enumerate(strip_bounds(len(record.signal), record.fs, strip_s, offset_s)):
        sel = (record.ann_samples >= a) & (record.ann_samples < b)
        ref, sym = record.ann_samples[sel] - a, record.ann_symbols[sel]
        x = record.signal[a:b]
        if transform is not None:
            x = transform(x, ref, strip_rng(view, record.name, offset_s, k))
        beats = pipeline.extract_beats(x, record.fs, peaks=ref if use_reference else None, version=version)
        if not len(beats):
            continue
        keep = ~in_ranges(beats.peaks + a, record.excluded)
        parts.append(BeatSet(
            windows=beats.windows[keep],
            features=beats.features[keep],
            labels=label_detections(beats.peaks, ref, sym)[keep],
            records=np.full(keep.sum(), record.name),
            strips=np.full(keep.sum(), k if strip_s else -1),
            positions=beats.peaks[keep] + a,
        ))
    return BeatSet.concat(parts) if parts else None


# ecg modules that do not shape a beat set (the decision runs on the network's outputs)
NOT_SHAPING_BEAT_SETS = ("decision.py",)


def fingerprinted_sources():
    """{path in the ecg package: source} of the modules :func:`code_fingerprint` covers."""
    package = Path(ecg.__file__).parent
    return {p.relative_to(package).as_posix(): p.read_text()
            for p in sorted(package.rglob("*.py")) if p.name not in NOT_SHAPING_BEAT_SETS}


def code_fingerprint():
    """Hash of the preprocessing code and spec: a cached set is reused only if it matches.

    The code is every module of the ``ecg`` package but ``NOT_SHAPING_BEAT_SETS``:
    resampling, filters, detector, features and the EC57 matching that labels the beats,
    and any module added to it; and ``train.augment``, which shapes the augmented views.
    """
    sources = {**fingerprinted_sources(), "train/augment.py": Path(augment.__file__).read_text()}
    src = "".join(path + text for path, text in sources.items())
    spec = json.dumps(pipeline.PREPROCESSING, sort_keys=True)
    return hashlib.sha256((src + spec).encode()).hexdigest()[:16]


def build(records, data_dir=None, strip_s=10.0, offsets=(0.0,), use_reference=False,
          cache_dir="cache", progress=print, view=CLEAN, noise_dir=None,
          version=pipeline.PREPROCESSING["version"]):
    """A :class:`BeatSet` over ``records`` (strips at each offset) as ``view`` shows them,
    cached on disk per record. ``noise_dir``: the nstdb noise records, for views that use them;
    ``version``: the preprocessing version (a model card's) to compute the beats' inputs for."""
    parts = []
    cache = Path(cache_dir) if cache_dir else None
    transform = strip_transform(view, noise_dir)
    view_key = "" if view == CLEAN else f"_{view.key()}"
    for i, name in enumerate(records):
        for off in offsets:
            key = (f"{name}_s{strip_s}_o{off}_{'ref' if use_reference else 'det'}{view_key}_"
                   f"{version}_{code_fingerprint()}.npz")
            if cache and (cache / key).exists():
                with np.load(cache / key) as z:
                    parts.append(BeatSet(**{f.name: z[f.name] for f in fields(BeatSet)}))
                continue
            bs = record_beats(load_record(name, data_dir, lead=view.lead), strip_s, off, use_reference,
                              transform, view, version)
            if bs is None:
                continue
            if cache:
                cache.mkdir(parents=True, exist_ok=True)
                # a name of this writer's own: training jobs started together (seeds, Optuna
                # workers) build the same records at once, and with one shared name a job's
                # rename took the file another was about to rename (FileNotFoundError)
                tmp = cache / f"{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.npz"
                np.savez(tmp, **{f.name: getattr(bs, f.name) for f in fields(bs)})
                tmp.replace(cache / key)
            parts.append(bs)
        if progress:
            progress(f"  beats: {i + 1}/{len(records)} records ({name})")
    return BeatSet.concat(parts)
