"""The page's Holter view in Chromium (as tests/test_page_browser.py): an EDF uploaded, the
hourly V counts and runs as the API reports them, and a click on an hour or a run showing
that strip on the trace with the report's beats."""

import numpy as np
import pytest

from bench.edf_files import without_records, write_edf
from tests.conftest import FIXTURE_RECORDS, FIXTURES, PAUSES_FIXTURES
from tests.service_helpers import http
from tests.test_page_browser import CHROMIUM, Console, browser, screenshot, server  # noqa: F401

pytestmark = pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                                reason="Chromium is not installed")
REPEATS = 6  # the five excerpts six times: 78 min, so two hours to click


@pytest.fixture(scope="module")
def edf_bytes(tmp_path_factory):
    from train.data import load_record

    x = np.concatenate([load_record(r, FIXTURES).signal for r in FIXTURE_RECORDS] * REPEATS)
    path = tmp_path_factory.mktemp("holter") / "day.edf"
    write_edf(path, [x], 360, ["ECG MLII"])
    return path.read_bytes()


@pytest.fixture(scope="module")
def report(server, edf_bytes):  # noqa: F811
    status, _, answer = http("POST", server + "/api/v1/recordings?include_beats=true", edf_bytes,
                             {"Content-Type": "application/octet-stream"}, timeout=300)
    assert status == 201, answer
    return answer


@pytest.fixture
def holter_page(browser, server, edf_bytes):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(120_000)
    console = Console(tab)
    tab.goto(server + "/")
    tab.wait_for_selector("#result:not([hidden]) #markers .beat")
    tab.get_by_label("An EDF or EDF+ file").set_input_files(
        {"name": "day.edf", "mimeType": "application/octet-stream", "buffer": edf_bytes})
    tab.get_by_role("button", name="Analyse recording").click()
    tab.wait_for_selector("#holter:not([hidden]):not([aria-busy])")
    yield tab, console
    context.close()


def strip_markers(page):
    return page.eval_on_selector_all(
        "#markers .beat", "els => els.map(e => [e.dataset.type, Number(e.dataset.sample)])")


def test_the_report_is_drawn_as_the_api_gives_it(holter_page, report):
    page, console = holter_page
    bars = page.eval_on_selector_all("#holter-hours button", "els => els.map(e => Number(e.dataset.v))")
    assert bars == [h["ventricular_beats"] for h in report["hourly"]] and len(bars) == 2
    runs = page.locator("#holter-runs button").all_inner_texts()
    assert len(runs) == len(report["ventricular_runs"]) > 0
    assert f"{report['ventricular_runs'][0]['beats']} V" in runs[0]
    summary = page.inner_text("#holter-summary")
    assert f"{report['total_beats']} ({report['normal_beats']} N, {report['ventricular_beats']} V)" in summary
    assert f"{report['pvc_burden_percent']:.2f} %" in summary
    assert int(page.get_attribute("#holter-trend", "data-points")) >= 15  # 78 min in 5-min means
    screenshot(page, "page_holter_report")
    assert console.errors == []


def test_an_hour_and_a_run_open_their_strip_with_the_beats_marked(holter_page, report):
    page, console = holter_page
    fs = report["channel"]["sampling_rate"]
    page.locator("#holter-hours button[data-hour='1']").click()
    page.wait_for_selector('#result[data-source="hour-1"]')
    first = 3600 * fs
    want = [[b["type"], b["sample"] - first] for b in report["beats"] if b["sample"] >= first]
    assert strip_markers(page) == want
    screenshot(page, "page_holter_hour")

    run = report["ventricular_runs"][0]
    page.locator("#holter-runs button[data-run='0']").click()
    page.wait_for_selector('#result[data-source="run-0"]')
    shown = strip_markers(page)
    start = round(max(0.0, run["start_s"] - 10) * fs)
    at_run = [t for t, s in shown if abs(s + start - round(run["start_s"] * fs)) <= 1]
    assert at_run == ["V"]  # the run's first beat, marked V
    visible = page.eval_on_selector_all("#markers .beat:not([hidden])", "els => els.map(e => e.dataset.type)")
    assert visible.count("V") >= run["beats"]  # the view opens on the run
    screenshot(page, "page_holter_run")
    assert console.errors == []


def analysed_on_the_page(browser, server, path, query="", pacemaker=False):  # noqa: F811
    """``(report, page, console, context)``: the EDF at ``path`` posted to the API with ``query``
    (its report), then analysed through the page's Holter form, its box ticked if ``pacemaker``."""
    status, _, report = http("POST", server + "/api/v1/recordings" + query, path.read_bytes(),
                             {"Content-Type": "application/octet-stream"}, timeout=300)
    assert status == 201, report
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    console = Console(page)
    page.goto(server + "/")
    page.get_by_label("An EDF or EDF+ file").set_input_files(
        {"name": path.name, "mimeType": "application/octet-stream", "buffer": path.read_bytes()})
    if pacemaker:
        page.locator("#holter-pacemaker").check()
    page.get_by_role("button", name="Analyse recording").click()
    page.wait_for_selector("#holter:not([hidden]):not([aria-busy])")
    return report, page, console, context


def test_the_heart_rate_trend_leaves_out_a_noisy_lead_off(browser, server, tmp_path):  # noqa: F811
    """The five excerpts, 10 min of an open input's noise (50 uV RMS: a detection every half
    second, all unreadable), the excerpts again: the trend's rates are those of the readable beats,
    as the report's heart rates are, not the noise's."""
    from train.data import load_record

    x = np.concatenate([load_record(r, FIXTURES).signal for r in FIXTURE_RECORDS])
    noise = 0.05 * np.random.default_rng(1).standard_normal(600 * 360)
    path = tmp_path / "noisy_lead_off.edf"
    write_edf(path, [np.concatenate([x, noise, x])], 360, ["ECG MLII"])
    report, page, console, context = analysed_on_the_page(browser, server, path, "?include_beats=true")
    assert report["unreadable_beats"] > 500
    t = np.array([b["time_s"] for b in report["beats"]])
    ok = np.array([b["signal_quality"] != "unreadable" for b in report["beats"]])
    rr, counted = np.diff(t), (np.diff(t) <= 3) & ok[1:] & ok[:-1]
    bins = (t[1:] // 300).astype(int)
    rates = [60 * np.sum(counted & (bins == b)) / rr[counted & (bins == b)].sum()
             for b in range(bins.max() + 1) if np.sum(counted & (bins == b)) >= 10]
    said = page.get_attribute("#holter-trend", "aria-label")
    assert said == f"Heart rate in 5-min means: {round(min(rates))} to {round(max(rates))} bpm"
    assert int(page.get_attribute("#holter-trend", "data-points")) == len(rates)
    assert max(rates) <= report["heart_rate_bpm"]["max"] + 1
    assert console.errors == []
    context.close()


def test_a_declared_pacemaker_is_sent_with_the_recording(browser, server, tmp_path):  # noqa: F811
    """A minute of record 217's V1 (tests/data/mitdb-paced) with the Holter form's pacemaker box
    ticked: the page draws the API's report for ?pacemaker=true and says how many beats it turned N."""
    from train.data import OTHER_LEAD, load_record

    rec = load_record("217", FIXTURES.parent / "mitdb-paced", lead=OTHER_LEAD)
    path = tmp_path / "paced.edf"
    write_edf(path, [rec.signal], rec.fs, ["ECG V1"])
    want, page, console, context = analysed_on_the_page(browser, server, path, "?pacemaker=true", pacemaker=True)
    assert want["pacemaker"] is True and want["own_rhythm_beats"] > 0, want
    summary = page.inner_text("#holter-summary")
    assert f"{want['total_beats']} ({want['normal_beats']} N, {want['ventricular_beats']} V)" in summary
    assert f"declared: {want['own_rhythm_beats']} paced beat(s)" in summary
    assert console.errors == []
    context.close()


def test_a_recording_with_gaps_shows_each_strip_from_its_own_part(browser, server, edf_bytes, tmp_path):  # noqa: F811
    """An EDF+D missing 5 min at 1000 s and 2 s at 3000 s: hour 1's strip is read from after both
    gaps (the file holds 302 s fewer), hour 0's stops where the first gap starts."""
    whole, gapped = tmp_path / "whole.edf", tmp_path / "gapped.edf"
    whole.write_bytes(edf_bytes)
    without_records(whole, gapped, np.r_[1000:1300, 3000:3002])
    report, page, console, context = analysed_on_the_page(browser, server, gapped, "?include_beats=true")
    assert report["gap_intervals_s"] == [[1000.0, 1300.0], [3000.0, 3002.0]], report
    assert "302 s in 2 gap(s)" in page.inner_text("#holter-summary")
    fs = report["channel"]["sampling_rate"]
    for hour, (t0, t1) in enumerate(((0, 1000), (3600, report["duration_s"]))):
        page.locator(f"#holter-hours button[data-hour='{hour}']").click()
        page.wait_for_selector(f'#result[data-source="hour-{hour}"]')
        assert f"{t1 - t0:.1f} s at {fs} Hz" in page.inner_text("#summary")
        want = [[b["type"], b["sample"] - t0 * fs] for b in report["beats"] if t0 <= b["time_s"] < t1]
        assert strip_markers(page) == want and len(want) > 1000
    assert console.errors == []
    context.close()


def test_pauses_are_listed_and_open_their_strip(browser, server, tmp_path):  # noqa: F811
    """Two minutes of record 232 (tests/data/mitdb-pauses): the page lists the API's 13 pauses, and
    a click on the longest shows its strip with the two beats around it marked."""
    from train.data import load_record

    rec = load_record("232", PAUSES_FIXTURES)
    path = tmp_path / "pauses.edf"
    write_edf(path, [rec.signal], rec.fs, ["ECG MLII"])
    report, page, console, context = analysed_on_the_page(browser, server, path, "?include_beats=true")
    assert len(report["pauses"]) == 13, report
    assert "13 of 2 s or more, 4 of 3 s or more" in page.inner_text("#holter-summary")
    assert len(page.locator("#holter-pauses button").all()) == 13
    longest = max(range(13), key=lambda i: report["pauses"][i]["duration_s"])
    page.locator(f"#holter-pauses button[data-pause='{longest}']").click()
    page.wait_for_selector(f'#result[data-source="pause-{longest}"]')
    pause = report["pauses"][longest]
    first = round((pause["start_s"] - 10) * rec.fs)
    around = [[b["type"], b["sample"] - first] for b in report["beats"]
              if pause["start_s"] - 0.01 <= b["time_s"] <= pause["start_s"] + pause["duration_s"] + 0.01]
    shown = strip_markers(page)
    assert len(around) == 2 and all(beat in shown for beat in around)
    assert console.errors == []
    context.close()
