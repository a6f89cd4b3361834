"""The pauses' baseline test on a whole recording (service.holter.disturbed_intervals): what it
finds, that it reads the file in spans, not once per long RR interval, and not at all across a
stretch where beats may have gone unseen."""

import numpy as np
import pytest

from ecg import MODEL_FS, holter as ecg_holter
from ecg.quality import Q_LEAD_S, T_WAVE_S
from service import edf, holter
from tests.conftest import write_swung_232

NOTHING_UNSEEN = np.zeros((0, 2))


def test_read_batches_fill_each_read_up_to_its_span():
    starts, ends = np.array([0, 10, 30, 100, 400]), np.array([8, 25, 40, 350, 410])
    assert [b.tolist() for b in holter.read_batches(starts, ends, 50)] == [[0, 1, 2], [3], [4]]
    assert [b.tolist() for b in holter.read_batches(starts, ends, 0)] == [[0], [1], [2], [3], [4]]
    assert [b.tolist() for b in holter.read_batches(starts, ends, 1000)] == [[0, 1, 2, 3, 4]]
    assert holter.read_batches(starts[:0], ends[:0], 50) == []


@pytest.fixture
def swung_232(tmp_path):
    """Record 232's 2 minutes (13 pauses) with a 2-mV baseline swing inside the pause from
    48.9 s, as an EDF channel, and its reference beats as stage 1's findings."""
    path = tmp_path / "swung.edf"
    rec = write_swung_232(path)
    channel = edf.open_channel(str(path))
    empty = np.zeros((0, 2))
    assert MODEL_FS == rec.fs == 360  # the reference beats are stage 1's peaks as they are
    found = holter.PartFindings(channel, rec.ann_samples, np.zeros(len(rec.ann_samples), np.int8), empty, empty,
                                np.zeros(0), empty, np.full(len(rec.ann_samples), 30.0))
    return channel, found, rec.ann_samples / 360.0


@pytest.fixture
def reads(monkeypatch):
    """Every slice read from an EDF file, as it is read."""
    done = []
    real_read = edf.read_samples
    monkeypatch.setattr(edf, "read_samples", lambda *a: done.append(a) or real_read(*a))
    return done


def test_the_baseline_test_reads_the_recording_in_spans(swung_232, reads, monkeypatch):
    channel, found, times = swung_232
    disturbed = holter.disturbed_intervals(channel, [found], NOTHING_UNSEEN)
    k = np.searchsorted(times, 48.8)
    assert disturbed.shape == (1, 2)
    assert disturbed[0] == pytest.approx([times[k] + T_WAVE_S, times[k + 1] - Q_LEAD_S], abs=0.01)
    assert len(reads) == 1  # two minutes: one span

    reads.clear()
    monkeypatch.setattr(holter, "BASELINE_READ_S", 0.0)  # one read per interval: the same answer
    assert np.array_equal(holter.disturbed_intervals(channel, [found], NOTHING_UNSEEN), disturbed)
    assert len(reads) == len(ecg_holter.pauses(times)) == 13


def test_no_interval_across_an_unseen_stretch_is_read(swung_232, reads):
    """An interval that touches an unreadable or flutter stretch is no pause whatever its baseline
    does, so it is not read: a lead off all night would be one interval of hours."""
    channel, found, times = swung_232
    k = np.searchsorted(times, 48.8)
    inside_the_swung_pause = np.array([[times[k] + 0.5, times[k] + 1.0]])
    assert len(holter.disturbed_intervals(channel, [found], inside_the_swung_pause)) == 0
    assert len(reads) == 1  # the other 12 long intervals, in one span
    reads.clear()
    assert len(holter.disturbed_intervals(channel, [found], np.array([[0.0, times[-1]]]))) == 0
    assert reads == []
