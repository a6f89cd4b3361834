"""Optional step (--accuracy): DS2 end to end through the HTTP API, on independent 10-s strips.

Every 10-s strip of each of the 22 DS2 records (train.dataset.strip_bounds: a last strip
shorter than 5 s is left out, as in training's e2e_strip figures) is POSTed to a running
gunicorn; the returned positions (plus the strip's offset) and labels are matched to the
record's reference beats with ecg.ec57.end_to_end_metrics (EC57, +-150 ms, ventricular
flutter ranges excluded), and the counts are summed over records.
"""

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np
import orjson

from ecg.ec57 import count_metrics, end_to_end_metrics

from .common import log
from .http_load import PREDICT_PATH

_local = threading.local()


def _post(port, body):
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", PREDICT_PATH, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        _local.conn = None
        raise


def _ratios(c):
    """Se, +P and F1 of summed counts; None (JSON null) where undefined."""
    m = count_metrics(c["TP"], c["FP"], c["FN"], c["TN"])
    return {k: None if np.isnan(m[k]) else m[k] for k in ("Se", "PPV", "F1")}


def measure(port, data_dir, records=None, strip_s=10.0, threads=4):
    from train.data import DS2, load_record
    from train.dataset import strip_bounds

    records = list(records or DS2)
    totals = {"matched": dict.fromkeys(("TP", "FP", "FN", "TN"), 0),
              "strict": dict.fromkeys(("TP", "FP", "FN", "TN"), 0),
              "qrs": dict.fromkeys(("TP", "FP", "FN"), 0)}
    rows, statuses, n_strips = [], {}, 0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for name in records:
            rec = load_record(name, data_dir)
            bounds = strip_bounds(len(rec.signal), rec.fs, strip_s)
            bodies = [orjson.dumps({"signal_data": rec.signal[a:b].tolist(), "sampling_rate": rec.fs,
                                    "derivation": rec.lead}) for a, b in bounds]
            answers = list(pool.map(lambda body: _post(port, body), bodies))
            pos, lab = [], []
            for (a, _), (status, data) in zip(bounds, answers):
                statuses[status] = statuses.get(status, 0) + 1
                if status != 201:  # 422: no beat found in this strip
                    continue
                for beat in orjson.loads(data)["beat_predictions"]:
                    pos.append(beat["position_sample"] + a)
                    lab.append(beat["arrhythmia_type"])
            n_strips += len(bounds)
            m = end_to_end_metrics(rec.ann_samples, rec.ann_classes, np.array(pos, np.int64), np.array(lab),
                                   rec.fs, excluded=rec.excluded)
            for key in totals:
                for k in totals[key]:
                    totals[key][k] += int(m[key][k])
            rows.append({"record": name, "strips": len(bounds), "ref_V": int(np.sum(rec.ann_classes == "V")),
                         "V_TP": int(m["matched"]["TP"]), "V_FP": int(m["matched"]["FP"]),
                         "V_FN": int(m["matched"]["FN"]), "qrs_FN": int(m["qrs"]["FN"]),
                         "qrs_FP": int(m["qrs"]["FP"])})
            log(f"  {name}: {len(bounds)} strips, V TP {rows[-1]['V_TP']} FP {rows[-1]['V_FP']} "
                f"FN {rows[-1]['V_FN']}")
    q = totals["qrs"]
    return {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records": records, "strips": n_strips, "http_statuses": {str(k): v for k, v in statuses.items()},
        "seconds": time.perf_counter() - t0,
        "V_matched": {**totals["matched"], **_ratios(totals["matched"])},
        "V_strict": {**totals["strict"], **_ratios(totals["strict"])},
        "qrs": {**q, "Se": q["TP"] / max(q["TP"] + q["FN"], 1), "PPV": q["TP"] / max(q["TP"] + q["FP"], 1)},
        "per_record": rows,
        "method": "every 10-s strip POSTed alone; EC57 matching (+-150 ms) to the reference beats, "
                  "flutter ranges excluded, counts summed over records; strict also counts missed V "
                  "beats as FN and unmatched detections called V as FP",
    }
