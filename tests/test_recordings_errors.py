"""POST /api/v1/recordings refuses bad files with a 4xx and a detail saying what is wrong."""

import re

import numpy as np
import pytest

from bench.edf_files import to_digital, without_records, write_edf
from service import create_app
from service.edf import check_layout
from tests.conftest import FIXTURES
from tests.service_helpers import MODEL_DIR

RECORDINGS = "/api/v1/recordings"


@pytest.fixture(scope="module")
def ecg_119():
    from train.data import load_record

    return load_record("119", FIXTURES).signal  # 3 min at 360 Hz


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    uploads = tmp_path_factory.mktemp("uploads")
    return create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING",
                       "RECORDING_TMP_DIR": str(uploads), "MAX_RECORDING_BYTES": 2_000_000}).test_client()


@pytest.fixture
def good(ecg_119, tmp_path):
    path = tmp_path / "good.edf"
    write_edf(path, [ecg_119], 360, ["ECG MLII"], annotations=[(1.0, "start")])
    return path


def post(client, body, query=""):
    return client.post(RECORDINGS + query, data=body, content_type="application/octet-stream")


def refused(response, status, *words):
    body = response.get_json()
    assert response.status_code == status, body
    for word in words:
        assert word in body["detail"], body["detail"]
    return body["detail"]


def test_not_edf(client):
    refused(post(client, b"%PDF-1.4 not an ecg at all" * 20), 422, "not an EDF file")
    refused(post(client, b""), 422, "empty")


def test_truncated(client, good):
    data = good.read_bytes()
    refused(post(client, data[:len(data) - 1000]), 422, "truncated", "data records")


def test_header_lies_about_the_length(client, good):
    data = good.read_bytes()
    refused(post(client, data + b"\0" * 720), 422, "does not match the file's length")
    unknown = data[:236] + b"-1      " + data[244:]
    refused(post(client, unknown), 422, "-1")
    header_only = data[:check_layout(good).header_bytes]
    refused(post(client, header_only[:236] + b"0       " + header_only[244:]), 422, "no data record")


def test_no_such_channel(client, good):
    data = good.read_bytes()
    refused(post(client, data, "?channel=2"), 422, "no channel 2", "'ECG MLII'")
    refused(post(client, data, "?channel=V5"), 422, "no channel labelled 'V5'")


@pytest.mark.parametrize("fs", [50, 5000])
def test_rate_outside_100_to_4096_hz(client, tmp_path, fs):
    path = tmp_path / "rate.edf"
    write_edf(path, [np.zeros(fs * 20) + 0.1], fs, ["ECG"])
    refused(post(client, path.read_bytes()), 422, f"{fs} Hz", "100-4096")


def test_all_zero_and_saturated_channels(client, ecg_119, tmp_path):
    path = tmp_path / "zero.edf"
    write_edf(path, [np.zeros(360 * 60)], 360, ["ECG"])
    refused(post(client, path.read_bytes()), 422, "all zeros")
    clipped = to_digital(ecg_119 * 40.0)  # +-32 mV rails: most samples pinned
    write_edf(path, [np.where(np.arange(len(clipped)) % 3, 32767, clipped).astype(np.int16)], 360, ["ECG"])
    refused(post(client, path.read_bytes()), 422, "saturated")


@pytest.mark.parametrize("rail", [0, -1])
def test_a_lead_off_held_at_a_rail_for_most_of_the_recording_is_no_saturated_channel(client, ecg_119, tmp_path, rail):
    """Record 119, then 8 min pinned to the channel's maximum or minimum (a recorder's open
    input), then 119 again: 57 % of the samples at a rail, but held there, not a clipped signal.
    The 6 min of ECG are analysed, and the 8 min are unreadable."""
    from bench.edf_files import DIGITAL_RANGE

    pinned = np.full(8 * 60 * 360, DIGITAL_RANGE[rail], np.int16)
    path = tmp_path / "pinned.edf"
    write_edf(path, [np.concatenate([to_digital(ecg_119), pinned, to_digital(ecg_119)])], 360, ["ECG MLII"])
    r = post(client, path.read_bytes())
    assert r.status_code == 201, r.get_json()
    report = r.get_json()
    assert report["unreadable_seconds"] >= 8 * 60 - 2 and report["total_beats"] > 380
    assert any("57.1% of the samples sit at" in w for w in report["warnings"])


def test_flat_line_and_noise_have_no_heartbeat(client, tmp_path):
    path = tmp_path / "flat.edf"
    write_edf(path, [np.full(360 * 60, 0.3)], 360, ["ECG"])
    refused(post(client, path.read_bytes()), 422, "flat at 0.300 mV")
    quiet = np.random.default_rng(0).standard_normal(360 * 60) * 0.002  # 2-uV noise: no QRS
    write_edf(path, [quiet], 360, ["ECG"])
    refused(post(client, path.read_bytes()), 422, "No heartbeat")


def _as_edf_plus_d(data, moved_record=None):
    """The EDF+C ``data`` declared EDF+D, with record ``moved_record``'s onset 5 s later."""
    data = bytearray(data[:192] + b"EDF+D".ljust(44) + data[236:])
    if moved_record is not None:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".edf") as f:
            f.write(data)
            f.flush()
            layout = check_layout(f.name)
        k = layout.labels.index("EDF Annotations")
        start = layout.header_bytes + moved_record * layout.record_bytes + 2 * sum(layout.per_record[:k])
        old = f"+{moved_record}\x14".encode()
        assert data[start:start + len(old)] == old
        data[start:start + len(old)] = f"+{moved_record + 5}\x14".encode()[:len(old)].ljust(len(old), b"\0")
    return bytes(data)


def test_edf_plus_d_with_overlapping_records_is_refused_and_without_gaps_read(client, good):
    data = good.read_bytes()
    # record 20 said to start at 25 s: record 21, at 21 s, starts before it ends
    detail = refused(post(client, _as_edf_plus_d(data, moved_record=20)), 422, "EDF+D", "overlap")
    assert re.search(r"record 21 starts at 21 s, before the previous one ends \(26 s\)", detail)
    r = post(client, _as_edf_plus_d(data))
    assert r.status_code == 201, r.get_json()
    assert any("EDF+D" in w and "no gap" in w for w in r.get_json()["warnings"])
    assert r.get_json()["gap_intervals_s"] == []


def test_edf_plus_d_whose_parts_are_all_too_short_is_refused(client, good, tmp_path):
    gapped = tmp_path / "every_other_second.edf"
    without_records(good, gapped, np.arange(1, 180, 2))
    refused(post(client, gapped.read_bytes()), 422, "EDF+D", "all shorter than 5 s")


def test_content_type_size_and_form(client, good):
    data = good.read_bytes()
    r = client.post(RECORDINGS, data=data, content_type="application/json")
    refused(r, 415, "application/octet-stream")
    refused(post(client, b"0" * 2_000_001), 413, "ECG_MAX_RECORDING_MB")
    r = client.post(RECORDINGS, data={"other": "x"}, content_type="multipart/form-data")
    refused(r, 400, "'file'")
    refused(client.post(RECORDINGS + "?include_beats=maybe", data=data,
                        content_type="application/octet-stream"), 422, "include_beats")


def test_edf_plus_d_parts_come_from_the_record_onsets_to_half_a_sample():
    from service.edf import EdfError, Part, parts_from_onsets

    fs, record_s = 256, 0.5  # 128 samples a record
    onsets = np.arange(8) * record_s + np.array([0, 1e-4, -1e-4, 0, 0.25, 0.25, 0.25 + 1e-3, 0.25])
    # record 4 starts 0.25 s late: a gap; jitter under half a sample (1.95 ms) is none
    assert parts_from_onsets(onsets, record_s, fs) == [Part(0, 4 * 128, 0.0), Part(4 * 128, 8 * 128, 2.25)]
    assert parts_from_onsets(onsets + 100.0, record_s, fs)[1].onset_s == pytest.approx(2.25)  # from the first
    with pytest.raises(EdfError, match="record 3 starts at 1.2 s, before the previous one ends"):
        parts_from_onsets(np.array([0.0, 0.5, 1.0, 1.2]), record_s, fs)
