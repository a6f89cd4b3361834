"""The demo page in a real browser: Debian's headless Chromium driven by Playwright, against
the service under a real gunicorn on a loopback port.

Skipped only where Chromium is not installed (.ci/run installs it). Playwright cannot
download its own browser here, so it is pointed at the system one. Screenshots go to
tests/artifacts/ (git-ignored); their paths are printed (pytest -s shows them).
"""

import json
import shutil
from pathlib import Path

import pytest

from tests.service_helpers import PREDICT, ROOT, http, start_gunicorn, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
STRIPS_DIR = ROOT / "service" / "static" / "demo" / "strips"
JSON = {"Content-Type": "application/json"}
TIMEOUT_MS = 60_000


def strip(strip_id):
    return json.loads((STRIPS_DIR / f"{strip_id}.json").read_text())


def api_answer(base, body):
    status, _, answer = http("POST", base + PREDICT, json.dumps(body).encode(), JSON, timeout=120)
    return status, answer


@pytest.fixture(scope="module")
def server():
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"})
    yield base
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # launch() starts Chromium headless with a fresh temporary profile (user-data-dir)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class Console:
    """What the page said on its console and what it threw."""

    def __init__(self, page):
        self.errors = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


@pytest.fixture
def tab(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    yield tab
    context.close()


@pytest.fixture
def console(tab):
    return Console(tab)  # listening before the page loads


@pytest.fixture
def page(tab, console, server):
    tab.goto(server + "/")  # a browser's Accept: the page, not the JSON
    # the page analyses its first strip at once; wait for that before anything else
    tab.wait_for_selector("#result:not([hidden]) #markers .beat")
    return tab


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def markers(page):
    """(type, sample) of every beat marker, in order."""
    return page.eval_on_selector_all(
        "#markers .beat", "els => els.map(e => [e.dataset.type, Number(e.dataset.sample)])")


def analyse_strip(page, strip_id):
    page.select_option("#strip-select", strip_id)
    page.get_by_role("button", name="Analyse strip").click()
    page.wait_for_selector(f'#result[data-source="{strip_id}"]:not([aria-busy])')


def test_page_loads_without_console_errors(page, console, server):
    assert page.title().startswith("ECG beats")
    assert page.locator("#strip-select option").count() >= 3
    assert "MIT-BIH Arrhythmia Database" in page.inner_text("#attribution")
    assert console.errors == []


def test_a_bundled_strip_gets_one_marker_per_beat_at_its_r_peak(page, console, server):
    strip_id = "233-1350"
    analyse_strip(page, strip_id)
    data = strip(strip_id)
    status, answer = api_answer(server, {"signal_data": data["signal_data"],
                                         "sampling_rate": data["sampling_rate"]})
    assert status == 201

    shown = markers(page)
    assert [t for t, _ in shown].count("N") == answer["normal_beats"]
    assert [t for t, _ in shown].count("V") == answer["ventricular_beats"] > 0
    assert shown == [[b["arrhythmia_type"], b["position_sample"]] for b in answer["beat_predictions"]]

    summary = page.inner_text("#summary")
    assert f"{answer['total_beats']} ({answer['normal_beats']} N, {answer['ventricular_beats']} V)" in summary
    assert answer["risk_level"] in summary and answer["metadata"]["model_version"] in summary
    assert "bpm" in summary and "burden" in summary and "ms in the service" in summary
    q = answer["metadata"]["signal_quality"]
    assert f"{q['good']} good, {q['noisy']} noisy, {q['unreadable']} unreadable beats" in summary
    rows = page.locator("#beats-table tbody tr")
    assert rows.count() == answer["total_beats"]
    assert rows.nth(0).locator("td").last.text_content() == answer["beat_predictions"][0]["signal_quality"]

    # the whole strip in view: every marker shown, each at its R peak's time on the axis
    page.get_by_role("button", name="Whole signal").click()
    page.wait_for_function("document.querySelectorAll('#markers .beat:not([hidden])').length"
                           f" === {answer['total_beats']}")
    centres = page.eval_on_selector_all(
        "#markers .beat", "els => els.map(e => { const r = e.getBoundingClientRect(); return r.x + r.width / 2; })")
    plot = page.eval_on_selector("#markers", "e => { const r = e.getBoundingClientRect(); return [r.x, r.width]; }")
    seconds = [b["position_sample"] / data["sampling_rate"] for b in answer["beat_predictions"]]
    for centre, t in zip(centres, seconds):
        assert centre == pytest.approx(plot[0] + t / data["duration_s"] * plot[1], abs=1.5)
    screenshot(page, "page_strip_whole")
    assert console.errors == []


def test_beats_are_reachable_by_keyboard_with_their_confidence(page, server):
    page.get_by_role("button", name="Paper speed").click()
    page.locator("#markers .beat[tabindex='0']").focus()
    first = page.evaluate("document.activeElement.dataset.index")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.index") == str(int(first) + 1)
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible() and "confidence" in tooltip.inner_text()
    # End goes to the last beat, scrolling the trace to it
    page.keyboard.press("End")
    last = page.locator("#markers .beat").count() - 1
    assert page.evaluate("document.activeElement.dataset.index") == str(last)
    assert page.locator(f'#markers .beat[data-index="{last}"]').is_visible()
    screenshot(page, "page_keyboard_tooltip")


def test_a_too_short_upload_shows_the_apis_detail(page, console, server):
    values = [0.1, 0.5, 1.2, 0.3, -0.2] * 20  # 100 samples: under the contract's minimum
    status, answer = api_answer(server, {"signal_data": values, "sampling_rate": 360})
    assert status == 422 and answer["detail"]

    page.locator("#own-signal summary").click()
    page.get_by_label("Values in millivolts").fill("\n".join(map(str, values)))
    page.get_by_role("button", name="Analyse my signal").click()
    error = page.get_by_role("alert")
    error.wait_for(state="visible")
    assert error.locator(".detail").inner_text() == answer["detail"]
    assert any(line.startswith("signal_data:") for line in error.locator("li").all_inner_texts())
    assert page.locator("#result").is_hidden()
    screenshot(page, "page_upload_error")
    # the 422 itself is logged by Chromium as a failed resource; nothing else may be
    assert [e for e in console.errors if "status of 422" not in e] == []


def test_an_uploaded_file_with_its_own_rate_is_analysed(page, console, server):
    # record 200's strip at half the rate, as a one-column CSV with a header
    data = strip("200-1305")
    values = data["signal_data"][::2]
    csv = "MLII\n" + "\n".join(str(v) for v in values)
    page.locator("#own-signal summary").click()
    page.get_by_label("Sampling rate (Hz)").fill("180")
    page.get_by_label("or a file").set_input_files(
        {"name": "strip.csv", "mimeType": "text/csv", "buffer": csv.encode()})
    page.get_by_role("button", name="Analyse my signal").click()
    page.wait_for_selector('#result[data-source="own"]:not([aria-busy])')
    status, answer = api_answer(server, {"signal_data": values, "sampling_rate": 180})
    assert status == 201
    assert markers(page) == [[b["arrhythmia_type"], b["position_sample"]] for b in answer["beat_predictions"]]
    assert "180 Hz" in page.inner_text("#summary")
    assert console.errors == []


def test_a_30_minute_record_stays_responsive(page, console, server):
    data = strip("233-1350")
    values = data["signal_data"] * 60  # 30 s x 60: 648 000 samples
    page.locator("#own-signal summary").click()
    page.get_by_label("or a file").set_input_files(
        {"name": "long.json", "mimeType": "application/json", "buffer": json.dumps(values).encode()})
    page.get_by_role("button", name="Analyse my signal").click()
    page.wait_for_selector('#result[data-source="own"]:not([aria-busy])', timeout=180_000)
    beats = page.locator("#markers .beat").count()
    assert beats > 60 * 40
    # time from a click to the frame after it has been painted
    frame_ms = page.evaluate("""async (id) => {
        const t = performance.now();
        document.getElementById(id).click();
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        return performance.now() - t; }""", "zoom-all")
    print(f"30-min record, {beats} beats: whole-record redraw {frame_ms:.0f} ms")
    assert frame_ms < 1000
    # the overview draws ticks; one button stays, the Tab stop, and arrows zoom to detail
    assert page.locator("#markers").get_attribute("class") == "markers dense"
    assert page.locator("#markers .beat:not([hidden])").count() == 1
    screenshot(page, "page_30_min_whole")
    page.locator("#markers .beat[tabindex='0']").focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.index") == "1"
    assert page.locator("#markers").get_attribute("class") == "markers"
    assert page.locator("#markers .beat:not([hidden])").count() > 3
    page.get_by_role("button", name="Paper speed").click()
    page.get_by_label("Position").fill("900")
    assert "Showing 900.0" in page.inner_text("#view-text")
    assert console.errors == []


def test_the_page_fits_a_phone_screen(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        console = Console(phone)
        phone.goto(server + "/demo")
        phone.wait_for_selector("#result:not([hidden]) #markers .beat")
        # nothing wider than the screen: no sideways scrolling of the whole page
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.locator("#chart").bounding_box()["width"] <= 390
        assert phone.locator("#markers .beat:not([hidden])").count() >= 2
        screenshot(phone, "page_phone")
        assert console.errors == []
    finally:
        context.close()


def upload_values(page, values, fs, name):
    """Analyse ``values`` (mV) at ``fs`` Hz through the page's own-signal form, as a CSV file."""
    page.locator("#own-signal summary").click()
    page.get_by_label("Sampling rate (Hz)").fill(str(fs))
    page.get_by_label("or a file").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": "\n".join(map(str, values)).encode()})
    page.get_by_role("button", name="Analyse my signal").click()
    page.wait_for_selector('#result[data-source="own"]:not([aria-busy])')


def paper_colours(page, times_s, duration_s):
    """The whole signal on the trace: the RGB of the paper just under the marker lane at each time."""
    page.get_by_role("button", name="Whole signal").click()
    page.wait_for_timeout(200)  # one animation frame
    return page.evaluate(
        """([times, duration]) => {
            const canvas = document.querySelector("canvas#trace");
            const dpr = window.devicePixelRatio || 1;
            const width = canvas.width / dpr - 46 - 8;  // AXIS_LEFT, PAD_RIGHT of trace.js
            return times.map((s) => Array.from(canvas.getContext("2d").getImageData(
                Math.round((46 + s / duration * width) * dpr), Math.round((28 + 2) * dpr), 1, 1).data.slice(0, 3)));
        }""", [list(times_s), duration_s])


def test_unreadable_stretches_are_greyed_on_the_trace(page, console, server):
    """30 s of record 233 with 10 s of real muscle noise (nstdb, loud): that stretch is grey."""
    import numpy as np
    import wfdb

    data = strip("233-1350")
    x = np.asarray(data["signal_data"], float)
    fs = data["sampling_rate"]
    ma = wfdb.rdrecord(str(ROOT / "tests" / "data" / "nstdb-noise" / "ma")).p_signal[:, 0]
    a, b = 10 * fs, 20 * fs
    x[a:b] += 2.5 * (ma[:b - a] - ma[:b - a].mean()) / ma[:b - a].std()
    values = [round(v, 4) for v in x.tolist()]
    status, answer = api_answer(server, {"signal_data": values, "sampling_rate": fs})
    assert status == 201
    intervals = answer["metadata"]["unreadable_intervals_s"]
    assert intervals, "the noise should be judged unreadable"
    upload_values(page, values, fs, "noisy.csv")
    assert "unreadable" in page.inner_text("#summary")
    start, end = max(intervals, key=lambda iv: iv[1] - iv[0])
    grey, paper = paper_colours(page, [(start + end) / 2, 2.0], len(values) / fs)
    assert grey == [220, 220, 220] and paper != grey
    screenshot(page, "page_unreadable")
    assert console.errors == []


def test_a_strip_of_noise_alone_shows_no_heart_rate(page, console, server):
    """20 s of an open input's noise (50 uV RMS, no ECG): its detections are all unreadable, so the
    service gives no heart rate, and the page says so rather than reading the noise's intervals."""
    import numpy as np

    fs = 360
    values = [round(v, 4) for v in (0.05 * np.random.default_rng(3).standard_normal(20 * fs)).tolist()]
    status, answer = api_answer(server, {"signal_data": values, "sampling_rate": fs})
    assert status == 201 and answer["total_beats"] > 10
    assert answer["metadata"]["heart_rate_bpm"] is None
    upload_values(page, values, fs, "open_input.csv")
    assert "none: too few readable beats" in page.inner_text("#summary")
    assert console.errors == []


def test_ventricular_flutter_is_said_and_shaded_on_the_trace(page, console, server):
    """A minute of record 207 (tests/data/mitdb-flutter): its flutter from 21 s is named in the
    summary, in the risk colour, and shaded pink over the unreadable grey."""
    from train.data import load_record

    rec = load_record("207", ROOT / "tests" / "data" / "mitdb-flutter")
    values = [round(v, 4) for v in rec.signal.tolist()]
    status, answer = api_answer(server, {"signal_data": values, "sampling_rate": rec.fs})
    assert status == 201
    start, end = answer["metadata"]["ventricular_flutter_intervals_s"][0]
    upload_values(page, values, rec.fs, "flutter.csv")
    row = page.locator('#summary dd[data-field="Ventricular flutter"]')
    assert "ventricular flutter" in row.inner_text() and "risk-HIGH" in row.get_attribute("class")
    pink, paper = paper_colours(page, [(start + end) / 2, 5.0], len(values) / rec.fs)
    assert pink == [249, 197, 204] and paper != pink
    screenshot(page, "page_flutter")
    assert console.errors == []


def test_a_declared_pacemaker_is_sent_and_said(page, console, server):
    """10 s of record 217's V1 (tests/data/mitdb-paced): with the box ticked the page sends
    pacemaker: true, its markers are the API's answer to that, and the summary says so."""
    from train.data import OTHER_LEAD, load_record

    rec = load_record("217", ROOT / "tests" / "data" / "mitdb-paced", lead=OTHER_LEAD)
    values = [round(v, 4) for v in rec.signal[:10 * rec.fs].tolist()]
    answers = {pm: api_answer(server, {"signal_data": values, "sampling_rate": rec.fs, "pacemaker": pm})[1]
               for pm in (False, True)}
    assert answers[True]["ventricular_beats"] < answers[False]["ventricular_beats"]
    page.locator("#pacemaker").check()
    upload_values(page, values, rec.fs, "paced.csv")
    assert markers(page) == [[b["arrhythmia_type"], b["position_sample"]]
                             for b in answers[True]["beat_predictions"]]
    row = page.locator('#summary dd[data-field="Pacemaker"]').inner_text()
    assert f"declared: {answers[True]['metadata']['own_rhythm_beats']} paced beat(s)" in row
    assert console.errors == []
