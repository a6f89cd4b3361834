"""EDF+ files from signals in mV, written with edfio (the service's reader): tests and the Holter bench.

Samples are stored in 1-uV steps (digital -32768..32767 = -32.768..32.767 mV), which
holds MIT-BIH's 5-uV steps exactly.
"""

import datetime

import numpy as np

UV_PER_STEP = 1.0
PHYSICAL_RANGE_MV = (-32.768, 32.767)
DIGITAL_RANGE = (-32768, 32767)
DEFAULT_START = datetime.datetime(2026, 1, 5, 8, 30, 0)


def to_digital(x_mv):
    """mV (n,) -> int16 (n,) in 1-uV steps, clipped to the EDF range."""
    d = np.rint(np.asarray(x_mv, dtype=np.float64) * (1000.0 / UV_PER_STEP))
    return np.clip(d, *DIGITAL_RANGE).astype(np.int16)


def write_edf(path, leads, fs, labels, start=DEFAULT_START, annotations=(), record_s=1):
    """Write ``leads`` (list of (n,) mV arrays, or of int16 digital arrays) at ``fs`` Hz as EDF+C.

    Each lead is cut to whole data records of ``record_s`` seconds. ``annotations``:
    ``(onset_s, text)`` pairs. Returns the number of samples per lead written.
    """
    from edfio import Edf, EdfAnnotation, EdfSignal, Recording

    per_record = int(round(fs * record_s))
    n = min(len(x) for x in leads) // per_record * per_record
    signals = [
        EdfSignal.from_digital(x[:n] if x.dtype == np.int16 else to_digital(x[:n]), fs, label=label,
                               physical_dimension="mV", physical_range=PHYSICAL_RANGE_MV,
                               digital_range=DIGITAL_RANGE)
        for x, label in zip(leads, labels)
    ]
    edf = Edf(signals, recording=Recording(startdate=start.date()), starttime=start.time(),
              data_record_duration=record_s,
              annotations=[EdfAnnotation(float(t), None, str(text)) for t, text in annotations])
    edf.write(path)
    return n


def without_records(path, out, dropped):
    """Write the EDF+C at ``path`` to ``out`` as an EDF+D without the data records ``dropped``
    (indices): a recording with gaps, as a recorder that pauses writes it. The records kept
    keep their timekeeping annotations, so each still says when it was recorded.
    Returns the number of records written.
    """
    from service.edf import check_layout

    layout = check_layout(path)
    data = np.fromfile(path, np.uint8)
    header = bytearray(data[:layout.header_bytes].tobytes())
    records = data[layout.header_bytes:].reshape(layout.n_records, layout.record_bytes)
    kept = np.setdiff1d(np.arange(layout.n_records), dropped)
    header[192:236] = b"EDF+D".ljust(44)
    header[236:244] = str(len(kept)).ljust(8).encode("ascii")
    with open(out, "wb") as f:
        f.write(header)
        f.write(records[kept].tobytes())
    return len(kept)
