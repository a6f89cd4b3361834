"""``python -m bench.edf_libraries FILE.edf``: pyedflib against edfio, reading one channel of a day.

Each way runs in a fresh interpreter: open time, then one channel (signal 1) read whole,
or in 30-min slices as the service reads it; wall time and peak RSS (ru_maxrss).
pyedflib is not a dependency of the project: put it on PYTHONPATH for this comparison
(``pip install --target DIR pyedflib``). The figures behind the choice are in docs/HOLTER.md.
"""

import json
import subprocess
import sys

SLICE_S = 1800

CHILD = r"""
import json, resource, sys, time
lib, mode, path, slice_s = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if lib == "pyedflib":
    import pyedflib
    base = rss(); t0 = time.perf_counter()
    f = pyedflib.EdfReader(path); fs = int(f.getSampleFrequency(1)); n = int(f.getNSamples()[1])
    opened = time.perf_counter() - t0
    read = (lambda a, b: f.readSignal(1, a, b - a))
else:
    import edfio
    base = rss(); t0 = time.perf_counter()
    e = edfio.read_edf(path, lazy_load_data=True); s = e.signals[1]; fs = int(s.sampling_frequency)
    n = int(round(e.duration * fs))
    opened = time.perf_counter() - t0
    if mode == "slices, file mapped anew each":  # as service.edf.read_samples
        read = lambda a, b: edfio.read_edf(path, lazy_load_data=True).signals[1].get_data_slice(a / fs, b / fs)
    else:
        read = lambda a, b: s.get_data_slice(a / fs, b / fs)
total = 0.0
step = n if mode == "whole" else slice_s * fs
for a in range(0, n, step):
    total += float(read(a, min(a + step, n)).sum())
print(json.dumps({"library": lib, "mode": mode, "open_ms": opened * 1000, "read_s": time.perf_counter() - t0,
                  "peak_rss_mb": rss(), "rss_after_import_mb": base, "checksum": total}))
"""

WAYS = [("pyedflib", "whole"), ("pyedflib", "slices"), ("edfio", "whole"), ("edfio", "slices"),
        ("edfio", "slices, file mapped anew each")]


def main(argv=None):
    path = (argv or sys.argv[1:])[0]
    rows = []
    for lib, mode in WAYS:
        out = subprocess.run([sys.executable, "-c", CHILD, lib, mode, path, str(SLICE_S)],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"{lib} ({mode}): {out.stderr.strip().splitlines()[-1]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout))
    print("| library | read | open ms | open + read s | peak RSS MB |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['library']} | {r['mode']} | {r['open_ms']:.1f} | {r['read_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
