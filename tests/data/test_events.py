"""Event datasets: N-MNIST / DVS Gesture readers, framing semantics, disk cache, synthetic data.

Every frame expectation here is computed by hand from events written in the real file formats.
Frames are indexed ``[c, y, x, k]``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from brainleaks_lava.data import events as ev_mod
from brainleaks_lava.data import (EventDataset, Framing, dvs_gesture_framing, load_events, nmnist_framing,
                                  synthetic_events)
from brainleaks_lava.data.events import DVS_CLASSES, NMNIST_URL, read_dvs_npy, read_nmnist_bin
from brainleaks_lava.data.framing import (Clamp, Denoise, Downsample, Events, MergePolarity, SelectPolarity,
                                          ToFrames)
from brainleaks_lava.errors import DatasetError, InputError
from event_fixtures import (NMNIST_OVERFLOW, nmnist_bytes, write_dvs_npy, write_dvs_sample, write_nmnist_bin,
                            write_nmnist_sample, write_pickled_npy, write_raw_pickle, write_synthetic_dvs,
                            write_synthetic_nmnist)


def events(rows, size=(34, 34)):
    """Events from (x, y, t, p) rows on a width x height sensor."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return Events.from_arrays(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], *size)


def kept(step, rows, size=(10, 10)):
    out = step(events(rows, size))
    return sorted(zip(out.x.tolist(), out.y.tolist(), out.t.tolist()))


# ------------------------------------------------------------------------------------------
# N-MNIST hand-made sample, used by several tests
# ------------------------------------------------------------------------------------------

# (x, y, t_us, p), time-sorted as in real files
NMNIST_EVENTS = [
    (10, 10, 500, 1),   # H: no neighbour event -> denoised away (so it does not set the time origin)
    (5, 5, 1000, 1),    # A: supported by B (simultaneous neighbour) -> origin = 1000, bin 0
    (6, 5, 1000, 0),    # B: OFF, supported by A, bin 0
    (5, 5, 3999, 1),    # C: same voxel as A (bin (3999-1000)//3000 = 0) -> clamped to one spike
    (5, 6, 4000, 1),    # D: exactly on the 1st boundary -> bin 1
    (20, 20, 5000, 1),  # E: isolated -> removed
    (21, 21, 5001, 1),  # I: diagonal neighbour of E does not count -> removed
    (6, 6, 10000, 0),   # G: OFF, supported by B at (6,5) 9 ms earlier -> bin 3
    (5, 7, 13000, 1),   # F: supported by D, bin 4 -> cropped when T = 4
]


def nmnist_expected(polarity, time_bins=4):
    """Hand-computed frames of NMNIST_EVENTS under nmnist_framing(time_bins, polarity)."""
    both = np.zeros((2, 34, 34, time_bins), dtype=np.uint8)
    both[1, 5, 5, 0] = 1  # A + C
    both[0, 5, 6, 0] = 1  # B
    both[1, 6, 5, 1] = 1  # D
    both[0, 6, 6, 3] = 1  # G
    if time_bins > 4:
        both[1, 7, 5, 4] = 1  # F
    return both if polarity == "both" else both[polarity:polarity + 1]


@pytest.fixture
def nmnist_root(tmp_path):
    root = tmp_path / "nmnist"
    write_nmnist_sample(root, "Train", 3, "00001", NMNIST_EVENTS)
    write_nmnist_sample(root, "Train", 7, "00002", [(1, 1, 0, 1), (1, 2, 10, 1)])
    write_nmnist_sample(root, "Test", 0, "00003", [(0, 0, 0, 0), (0, 1, 0, 0)])
    return root


# ------------------------------------------------------------------------------------------
# N-MNIST reader
# ------------------------------------------------------------------------------------------

def test_nmnist_reader_decodes_the_5_byte_records(tmp_path):
    path = write_nmnist_bin(tmp_path / "a.bin", [(33, 0, 2**23 - 1, 1), (0, 33, 0, 0), (7, 9, 0x012345, 1)])
    assert path.read_bytes()[:5] == bytes((33, 0, 0xFF, 0xFF, 0xFF))
    e = read_nmnist_bin(path)
    assert (e.width, e.height) == (34, 34)
    assert e.x.tolist() == [33, 0, 7] and e.y.tolist() == [0, 33, 9]
    assert e.t.tolist() == [2**23 - 1, 0, 0x012345] and e.p.tolist() == [1, 0, 1]


def test_nmnist_overflow_marker_shifts_later_timestamps(tmp_path):
    path = write_nmnist_bin(tmp_path / "a.bin", [(1, 1, 100, 1), NMNIST_OVERFLOW, (2, 2, 50, 0)])
    e = read_nmnist_bin(path)
    assert e.t.tolist() == [100, 50 + 2**13] and e.x.tolist() == [1, 2]


def test_nmnist_empty_file_is_an_empty_stream(tmp_path):
    path = tmp_path / "e.bin"
    path.write_bytes(b"")
    assert len(read_nmnist_bin(path)) == 0
    assert not nmnist_framing(time_bins=3)(read_nmnist_bin(path)).any()


@pytest.mark.parametrize("extra", [1, 2, 3, 4])
def test_nmnist_size_not_multiple_of_5_is_refused(tmp_path, extra):
    path = tmp_path / "bad.bin"
    path.write_bytes(nmnist_bytes([(1, 1, 0, 1)]) + b"\0" * extra)
    with pytest.raises(DatasetError, match="multiple of 5") as err:
        read_nmnist_bin(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("x, y", [(34, 0), (0, 34), (255, 3)])
def test_nmnist_coordinates_outside_the_sensor_are_refused(tmp_path, x, y):
    path = write_nmnist_bin(tmp_path / "bad.bin", [(1, 1, 0, 1), (x, y, 5, 0)])
    with pytest.raises(DatasetError, match="outside the 34x34") as err:
        read_nmnist_bin(path)
    assert str(path) in str(err.value)


def test_malformed_nmnist_file_fails_the_load_naming_it(nmnist_root):
    bad = nmnist_root / "Train" / "3" / "00009.bin"
    bad.write_bytes(b"\1\2\3")
    with pytest.raises(DatasetError) as err:
        load_events("nmnist", nmnist_root, "train", use_cache=False)
    assert str(bad) in str(err.value)


# ------------------------------------------------------------------------------------------
# framing steps, one by one
# ------------------------------------------------------------------------------------------

def test_to_frames_bin_boundaries_padding_and_cropping():
    # origin = earliest event (1000); bins [1000, 4000), [4000, 7000), ...
    e = events([(0, 0, 1000, 1), (1, 0, 3999, 1), (2, 0, 4000, 1), (3, 0, 7000, 0), (4, 0, 13000, 1)])
    counts = ToFrames(3000, 5)(e)
    assert counts.shape == (2, 34, 34, 5)
    assert counts[1, 0, 0, 0] == 1 and counts[1, 0, 1, 0] == 1  # 3999: still bin 0
    assert counts[1, 0, 2, 1] == 1                              # 4000: boundary -> later bin
    assert counts[0, 0, 3, 2] == 1                              # 7000: bin 2, OFF channel
    assert counts[1, 0, 4, 4] == 1                              # 13000: bin 4 (partial last window kept)
    assert counts.sum() == 5
    cropped = ToFrames(3000, 2)(e)                              # bins >= 2 are cropped
    assert cropped.sum() == 3 and cropped.shape[-1] == 2
    padded = ToFrames(3000, 10)(e)                              # trailing bins stay empty
    np.testing.assert_array_equal(padded[..., :5], counts)
    assert not padded[..., 5:].any()


def test_to_frames_fixed_origin_drops_earlier_events():
    e = events([(0, 0, 500, 1), (1, 0, 3000, 1), (2, 0, 5999, 1)])
    counts = ToFrames(3000, 3, origin_us=1000)(e)
    assert counts[1, 0, 1, 0] == 1 and counts[1, 0, 2, 1] == 1 and counts.sum() == 2


def test_clamp_two_events_in_one_voxel_give_one_spike():
    e = events([(4, 4, 0, 1), (4, 4, 10, 1), (4, 4, 20, 0)])
    counts = ToFrames(1000, 1)(e)
    assert counts[1, 4, 4, 0] == 2 and counts[0, 4, 4, 0] == 1
    frames = Framing(ToFrames(1000, 1), Clamp(1))(e)
    assert frames.dtype == np.uint8 and frames[1, 4, 4, 0] == 1 and frames.max() == 1
    merged = Framing(ToFrames(1000, 1), MergePolarity(), Clamp(1))(e)
    assert merged.shape == (1, 34, 34, 1) and merged[0, 4, 4, 0] == 1 and merged.sum() == 1


def test_polarity_selection_and_both_channels():
    e = events([(1, 2, 0, 1), (3, 4, 0, 0)])
    on = Framing(ToFrames(1000, 1), SelectPolarity(1), Clamp(1))(e)
    off = Framing(ToFrames(1000, 1), SelectPolarity(0), Clamp(1))(e)
    both = Framing(ToFrames(1000, 1), Clamp(1))(e)
    assert on.shape == off.shape == (1, 34, 34, 1) and both.shape == (2, 34, 34, 1)
    assert on[0, 2, 1, 0] == 1 and on.sum() == 1
    assert off[0, 4, 3, 0] == 1 and off.sum() == 1
    np.testing.assert_array_equal(both, np.concatenate([off, on]))


@pytest.mark.parametrize("rows, survivors", [
    ([(5, 5, 0)], []),                                    # isolated
    ([(5, 5, 0), (6, 5, 50)], [(6, 5, 50)]),              # supported by an earlier neighbour only
    ([(5, 5, 0), (6, 5, 99)], [(6, 5, 99)]),              # 99 < 100: inside the window
    ([(5, 5, 0), (6, 5, 100)], []),                       # exactly filter_time later: outside
    ([(5, 5, 0), (6, 6, 10)], []),                        # diagonal neighbours do not count
    ([(5, 5, 0), (5, 5, 10)], []),                        # nor does the same pixel
    ([(5, 5, 7), (5, 6, 7)], [(5, 5, 7), (5, 6, 7)]),     # simultaneous neighbours support each other
    ([(9, 0, 0), (0, 1, 10)], []),                        # no wrap-around between rows
    ([(0, 0, 0), (0, 1, 30), (1, 0, 60)], [(0, 1, 30), (1, 0, 60)]),  # sensor corner
])
def test_denoise_rule(rows, survivors):
    rows_p = [(x, y, t, 1) for x, y, t in rows]
    assert kept(Denoise(100), rows_p) == sorted(survivors)
    # the result does not depend on the event order in the file
    assert kept(Denoise(100), rows_p[::-1]) == sorted(survivors)


def test_denoise_ignores_polarity_and_time_offset():
    rows = [(5, 5, 10**9, 0), (6, 5, 10**9 + 5, 1)]
    assert kept(Denoise(100), rows) == [(6, 5, 10**9 + 5)]


def test_downsample_128_to_32_by_integer_division():
    xs = [0, 1, 2, 3, 4, 7, 8, 127]
    e = events([(x, 127 - x, i, 1) for i, x in enumerate(xs)], size=(128, 128))
    d = Downsample(4)(e)
    assert (d.width, d.height) == (32, 32)
    assert d.x.tolist() == [0, 0, 0, 0, 1, 1, 2, 31]
    assert d.y.tolist() == [31, 31, 31, 31, 30, 30, 29, 0]
    assert len(d) == len(e)  # nothing dropped
    frames = Framing(Downsample(4), ToFrames(1000, 1), MergePolarity(), Clamp(1))(e)
    assert frames.shape == (1, 32, 32, 1) and frames[0, 31, 0, 0] == 1 and frames.sum() == 4
    with pytest.raises(InputError, match="does not divide"):
        Framing(Downsample(3), ToFrames(1000, 1), Clamp(1)).output_shape(128, 128)


def test_framing_validates_its_steps():
    with pytest.raises(InputError, match="Clamp"):
        Framing(ToFrames(1000, 1))
    with pytest.raises(InputError, match="exactly one ToFrames"):
        Framing(ToFrames(1000, 1), ToFrames(1000, 1), Clamp(1))
    with pytest.raises(InputError, match="order"):
        Framing(ToFrames(1000, 1), Denoise(10), Clamp(1))
    with pytest.raises(InputError, match="order"):
        Framing(SelectPolarity(1), ToFrames(1000, 1), Clamp(1))
    with pytest.raises(InputError):
        Framing(ToFrames(1000, 1), MergePolarity(), SelectPolarity(0), Clamp(1)).output_shape(34, 34)
    for bad in (lambda: Denoise(0), lambda: ToFrames(1000, 0), lambda: SelectPolarity(2),
                lambda: Downsample(1.5), lambda: ToFrames(True, 3), lambda: Framing("Denoise")):
        with pytest.raises(InputError):
            bad()


def test_presets_have_the_papers_parameters_and_round_trip_through_describe():
    n = nmnist_framing()
    assert n.steps == (Denoise(40_000), ToFrames(3_000, 100), SelectPolarity(0), Clamp(1))
    assert n.output_shape(34, 34) == (1, 34, 34, 100)
    assert nmnist_framing(polarity="both").output_shape(34, 34) == (2, 34, 34, 100)
    d = dvs_gesture_framing()
    assert d.steps == (Denoise(100_000), Downsample(4), ToFrames(50_000, 30), MergePolarity(), Clamp(1))
    assert d.output_shape(128, 128) == (1, 32, 32, 30)
    assert dvs_gesture_framing(downsample=1, time_bins=8).output_shape(128, 128) == (1, 128, 128, 8)
    for f in (n, d, nmnist_framing(7, polarity="both")):
        assert Framing.from_description(f.describe()) == f
    with pytest.raises(InputError):
        Framing.from_description({"steps": [{"op": "Denoise", "filter_time_us": 5, "bogus": 1}]})


# ------------------------------------------------------------------------------------------
# N-MNIST end to end
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("polarity", [0, 1, "both"])
def test_nmnist_load_matches_hand_computed_frames(nmnist_root, polarity):
    ds = load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(4, polarity), use_cache=False)
    assert isinstance(ds, EventDataset) and len(ds) == 2
    assert ds.frames.dtype == np.uint8 and ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [3, 7] and ds.classes == tuple("0123456789")
    np.testing.assert_array_equal(ds.frames[0], nmnist_expected(polarity))
    assert ds.framing == nmnist_framing(4, polarity).describe()
    assert "N-MNIST train split" in ds.source and str(nmnist_root) in ds.source and "\n" not in ds.source


def test_nmnist_longer_t_pads_and_keeps_the_late_event(nmnist_root):
    ds = load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(8, 1), use_cache=False)
    np.testing.assert_array_equal(ds.frames[0], nmnist_expected(1, time_bins=8))
    assert not ds.frames[0, ..., 5:].any()


def test_nmnist_splits_and_default_framing(nmnist_root):
    val = load_events("nmnist", nmnist_root, "val", use_cache=False)
    assert val.labels.tolist() == [0] and val.sample_shape == (1, 34, 34, 100)
    # both events are OFF (kept by default), at (0, 0) and (0, 1), time 0
    assert val.frames[0, 0, 0, 0, 0] == 1 and val.frames[0, 0, 1, 0, 0] == 1 and val.frames.sum() == 2
    everything = load_events("nmnist", nmnist_root, "all", use_cache=False)
    assert everything.labels.tolist() == [3, 7, 0]


@pytest.mark.parametrize("extra", ["NMNIST", "whatever"])
def test_nmnist_root_may_be_one_level_above(tmp_path, extra):
    write_nmnist_sample(tmp_path / extra, "Train", 2, "1", [(0, 0, 0, 1), (1, 0, 0, 1)])
    ds = load_events("nmnist", tmp_path, "train", framing=nmnist_framing(2, 1), use_cache=False)
    assert ds.labels.tolist() == [2] and str(tmp_path / extra) in ds.source


def test_limit_takes_classes_round_robin(tmp_path):
    for label in (0, 1, 2):
        for i in range(3):
            write_nmnist_sample(tmp_path, "Train", label, f"{label}{i}", [(0, 0, 0, 1)])
    ds = load_events("nmnist", tmp_path, "train", framing=nmnist_framing(2), limit=4, use_cache=False)
    assert ds.labels.tolist() == [0, 0, 1, 2]
    assert "4 of 9" in ds.source


# ------------------------------------------------------------------------------------------
# missing or incomplete directories
# ------------------------------------------------------------------------------------------

def test_missing_nmnist_root_says_where_to_put_the_files(tmp_path):
    root = tmp_path / "nope"
    with pytest.raises(DatasetError) as err:
        load_events("nmnist", root)
    msg = str(err.value)
    assert str(root) in msg and "put N-MNIST's Train/ and Test/ folders" in msg and NMNIST_URL in msg
    assert "\n" not in msg


def test_nmnist_root_without_split_folders(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(DatasetError, match=r"no Train/ or Test/ folder") as err:
        load_events("nmnist", tmp_path)
    assert f"in {tmp_path}" in str(err.value)


def test_nmnist_val_needs_the_test_folder(nmnist_root):
    import shutil

    shutil.rmtree(nmnist_root / "Test")
    load_events("nmnist", nmnist_root, "train", use_cache=False)
    for split in ("val", "all"):
        with pytest.raises(DatasetError, match=r"Test/, which is missing.*put N-MNIST's Train/ and Test/"):
            load_events("nmnist", nmnist_root, split, use_cache=False)


def test_nmnist_split_folder_without_files(tmp_path):
    (tmp_path / "Train" / "3").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no .bin event files") as err:
        load_events("nmnist", tmp_path)
    assert str(tmp_path / "Train") in str(err.value)


def test_missing_dvs_root_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_events("dvs-gesture", tmp_path / "nope")
    msg = str(err.value)
    assert str(tmp_path / "nope") in msg and "ibmGestureTrain/ and ibmGestureTest/" in msg
    (tmp_path / "ibmGestureTrain").mkdir()
    with pytest.raises(DatasetError, match="no <user>_<lighting>/<label>.npy files"):
        load_events("dvs-gesture", tmp_path)
    with pytest.raises(DatasetError, match="ibmGestureTest/, which is missing"):
        load_events("dvs-gesture", tmp_path, "val")


def test_bad_arguments_are_input_errors(nmnist_root):
    with pytest.raises(InputError, match="unknown event dataset"):
        load_events("cifar10-dvs", nmnist_root)
    with pytest.raises(InputError, match="split"):
        load_events("nmnist", nmnist_root, "test")
    with pytest.raises(InputError, match="limit"):
        load_events("nmnist", nmnist_root, limit=0)
    with pytest.raises(InputError, match="Framing"):
        load_events("nmnist", nmnist_root, framing=[Denoise(1)])
    with pytest.raises(InputError, match="data root"):
        load_events("dvs-gesture", None)


# ------------------------------------------------------------------------------------------
# DVS Gesture
# ------------------------------------------------------------------------------------------

# rows (x, y, p, t_ms), time-sorted; framing = dvs_gesture_framing(downsample=4, time_bins=4):
# Denoise 100 ms at 128x128, then x, y // 4, 50 ms bins from the first surviving event (10 ms).
DVS_ROWS = [
    (0, 0, 1, 10),      # supported by the simultaneous (1, 0) -> (0, 0), bin 0
    (1, 0, 0, 10),      # -> (0, 0), bin 0 (merged and clamped with the previous one)
    (3, 3, 1, 20),      # its neighbour (3, 2) fires only later -> removed
    (3, 2, 0, 30),      # supported by (3, 3) 10 ms earlier -> (0, 0), bin 0
    (4, 0, 1, 60),      # with (4, 1): kept; t = 60 ms is exactly the first boundary -> bin 1, (1, 0)
    (4, 1, 1, 60),
    (127, 127, 1, 70),  # with (126, 127): kept -> (31, 31), bin 1
    (126, 127, 1, 70),
    (127, 126, 0, 160),  # supported by (127, 127) 90 ms earlier -> (31, 31), bin 3
    (50, 50, 1, 200),   # isolated -> removed
    (126, 126, 1, 215),  # supported by (127, 126) 55 ms earlier, bin 4 -> cropped
]


def dvs_expected():
    f = np.zeros((1, 32, 32, 4), dtype=np.uint8)
    f[0, 0, 0, 0] = 1
    f[0, 0, 1, 1] = 1
    f[0, 31, 31, 1] = 1
    f[0, 31, 31, 3] = 1
    return f


@pytest.fixture
def dvs_root(tmp_path):
    root = tmp_path / "dvs"
    write_dvs_sample(root, "ibmGestureTrain", "user01_fluorescent", 3, DVS_ROWS)
    write_dvs_sample(root, "ibmGestureTrain", "user01_fluorescent", 10, DVS_ROWS)  # "other": dropped
    write_dvs_sample(root, "ibmGestureTrain", "user02_led", 0, [(5, 5, 1, 0), (5, 6, 0, 1)])
    write_dvs_sample(root, "ibmGestureTest", "user24_led", 9, [(5, 5, 1, 0), (5, 6, 0, 1)])
    return root


def test_dvs_reader_converts_ms_to_us(tmp_path):
    e = read_dvs_npy(write_dvs_npy(tmp_path / "0.npy", [(127, 0, 1, 3), (0, 127, 0, 0)]))
    assert (e.width, e.height) == (128, 128)
    assert e.x.tolist() == [127, 0] and e.y.tolist() == [0, 127]
    assert e.p.tolist() == [1, 0] and e.t.tolist() == [3000, 0]
    f = read_dvs_npy(write_dvs_npy(tmp_path / "1.npy", np.array([[1.0, 2.0, 1.0, 1.5]])))
    assert f.t.tolist() == [1500] and f.x.tolist() == [1]


def test_dvs_load_matches_hand_computed_frames_and_drops_other(dvs_root):
    ds = load_events("dvs-gesture", dvs_root, "train", framing=dvs_gesture_framing(4, 4), use_cache=False)
    assert ds.classes == DVS_CLASSES and len(ds.classes) == 10 and "other gestures" not in ds.classes
    assert ds.labels.tolist() == [3, 0]  # user01 then user02; label 10 excluded
    np.testing.assert_array_equal(ds.frames[0], dvs_expected())
    assert "1 samples of class 10 'other gestures' excluded" in ds.source
    val = load_events("dvs-gesture", dvs_root, "val", framing=dvs_gesture_framing(4, 4), use_cache=False)
    assert val.labels.tolist() == [9]
    assert load_events("dvs-gesture", dvs_root, "all", framing=dvs_gesture_framing(4, 4),
                       use_cache=False).labels.tolist() == [3, 0, 9]


def test_dvs_full_resolution_and_two_channels(dvs_root):
    ds = load_events("dvs-gesture", dvs_root, "train",
                     framing=dvs_gesture_framing(1, 4, merge_polarity=False), use_cache=False)
    f = ds.frames[0]
    assert f.shape == (2, 128, 128, 4)
    on = {(y, x, k) for y, x, k in zip(*np.nonzero(f[1]))}
    off = {(y, x, k) for y, x, k in zip(*np.nonzero(f[0]))}
    assert on == {(0, 0, 0), (0, 4, 1), (1, 4, 1), (127, 127, 1), (127, 126, 1)}
    assert off == {(0, 1, 0), (2, 3, 0), (126, 127, 3)}


def test_dvs_tonic_layout_one_level_down(tmp_path):
    write_dvs_sample(tmp_path / "DVSGesture", "ibmGestureTrain", "user03_natural", 5, [(0, 0, 1, 0), (0, 1, 1, 0)])
    ds = load_events("dvs-gesture", tmp_path, "train", use_cache=False)
    assert ds.labels.tolist() == [5] and ds.sample_shape == (1, 32, 32, 30)


@pytest.mark.parametrize("arr, match", [
    (np.zeros((3, 3), dtype=np.int64), r"shape \(3, 3\)"),
    (np.zeros(4, dtype=np.int64), r"shape \(4,\)"),
    (np.zeros((2, 4), dtype=[("a", "i4")]), "dtype"),
    (np.array([["1", "2", "3", "4"]]), "dtype"),
    (np.array([[128, 0, 1, 0]]), "outside the 128x128"),
    (np.array([[0, -1, 1, 0]]), "outside the 128x128"),
    (np.array([[0, 0, 2, 0]]), "polarity"),
    (np.array([[0.5, 0, 1, 0]]), "non-integer"),
    (np.array([[0, 0, 1, np.nan]]), "NaN"),
])
def test_malformed_dvs_arrays_are_refused_naming_the_file(tmp_path, arr, match):
    path = write_dvs_npy(tmp_path / "ibmGestureTrain" / "user01_led" / "2.npy", arr)
    with pytest.raises(DatasetError, match=match) as err:
        read_dvs_npy(path)
    assert str(path) in str(err.value)
    with pytest.raises(DatasetError) as err:
        load_events("dvs-gesture", tmp_path, use_cache=False)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("writer", [write_pickled_npy, write_raw_pickle])
def test_pickled_dvs_files_are_refused_not_unpickled(tmp_path, writer):
    marker = tmp_path / "UNPICKLED"
    path = writer(tmp_path / "ibmGestureTrain" / "user01_led" / "1.npy", marker)
    with pytest.raises(DatasetError, match="pickle") as err:
        load_events("dvs-gesture", tmp_path, use_cache=False)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_truncated_and_misnamed_dvs_files(tmp_path):
    path = write_dvs_npy(tmp_path / "ibmGestureTrain" / "user01_led" / "1.npy", [(0, 0, 1, 0)] * 50)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DatasetError) as err:
        read_dvs_npy(path)
    assert str(path) in str(err.value)
    path.unlink()
    odd = write_dvs_npy(tmp_path / "ibmGestureTrain" / "user01_led" / "11.npy", [(0, 0, 1, 0)])
    with pytest.raises(DatasetError, match=r"<class index>.npy") as err:
        load_events("dvs-gesture", tmp_path, use_cache=False)
    assert str(odd) in str(err.value)


# ------------------------------------------------------------------------------------------
# disk cache
# ------------------------------------------------------------------------------------------

@pytest.fixture
def count_reads(monkeypatch):
    calls = []
    real = ev_mod.read_nmnist_bin

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(ev_mod, "read_nmnist_bin", counting)
    return calls


def test_cache_hit_skips_the_raw_reader(nmnist_root, monkeypatch):
    first = load_events("nmnist", nmnist_root, "all", framing=nmnist_framing(4, 1))
    cache_files = sorted((nmnist_root / ".brainleaks_cache").rglob("*.npy"))
    assert len(cache_files) == 3

    def boom(path):
        raise AssertionError(f"raw reader called for {path}")

    monkeypatch.setattr(ev_mod, "read_nmnist_bin", boom)
    second = load_events("nmnist", nmnist_root, "all", framing=nmnist_framing(4, 1))
    np.testing.assert_array_equal(second.frames, first.frames)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert second.source == first.source


def test_changing_framing_or_file_invalidates_the_cache(nmnist_root, tmp_path, count_reads):
    cache = tmp_path / "cache"
    load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(4, 1), cache_dir=cache)
    assert len(count_reads) == 2
    load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(4, 1), cache_dir=cache)
    assert len(count_reads) == 2
    load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(5, 1), cache_dir=cache)
    assert len(count_reads) == 4
    load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(4, 0), cache_dir=cache)
    assert len(count_reads) == 6
    # rewrite one source file (new content, new mtime): only that one is re-read
    path = nmnist_root / "Train" / "7" / "00002.bin"
    write_nmnist_bin(path, [(2, 2, 0, 1), (2, 3, 0, 1)])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds = load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(4, 1), cache_dir=cache)
    assert count_reads[6:] == [path]
    assert ds.frames[1, 0, 2, 2, 0] == 1 and ds.frames[1, 0, 3, 2, 0] == 1 and ds.frames[1].sum() == 2
    assert not (nmnist_root / ".brainleaks_cache").exists()  # cache_dir given: nothing in root


@pytest.mark.parametrize("garbage", [b"", b"not an npy file", "wrong-shape"])
def test_corrupt_cache_entry_is_recomputed(nmnist_root, tmp_path, count_reads, garbage, caplog):
    cache = tmp_path / "cache"
    first = load_events("nmnist", nmnist_root, "val", framing=nmnist_framing(4, 0), cache_dir=cache)
    (entry,) = cache.rglob("*.npy")
    if garbage == "wrong-shape":
        np.save(entry, np.zeros((1, 34, 34, 3), dtype=np.uint8))
    else:
        entry.write_bytes(garbage)
    second = load_events("nmnist", nmnist_root, "val", framing=nmnist_framing(4, 0), cache_dir=cache)
    assert len(count_reads) == 2
    np.testing.assert_array_equal(second.frames, first.frames)
    assert "unusable" in caplog.text
    np.testing.assert_array_equal(np.load(entry, allow_pickle=False), first.frames[0])  # repaired


def test_unwritable_cache_is_not_fatal(nmnist_root, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ds = load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(4, 1), cache_dir=blocker)
    np.testing.assert_array_equal(ds.frames[0], nmnist_expected(1))
    assert "continuing without caching" in caplog.text


def test_use_cache_false_writes_nothing(nmnist_root):
    load_events("nmnist", nmnist_root, "train", framing=nmnist_framing(4, 1), use_cache=False)
    assert not (nmnist_root / ".brainleaks_cache").exists()


# ------------------------------------------------------------------------------------------
# synthetic data
# ------------------------------------------------------------------------------------------

def test_synthetic_events_are_deterministic_binary_and_balanced():
    a = synthetic_events(5, n_classes=4, size=(12, 16), time_bins=10, seed=3)
    b = synthetic_events(5, n_classes=4, size=(12, 16), time_bins=10, seed=3)
    c = synthetic_events(5, n_classes=4, size=(12, 16), time_bins=10, seed=4)
    assert a.frames.shape == (20, 1, 12, 16, 10) and a.frames.dtype == np.uint8
    assert set(np.unique(a.frames)) == {0, 1}
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.frames, c.frames)
    assert np.bincount(a.labels).tolist() == [5, 5, 5, 5] and a.labels[:4].tolist() == [0, 1, 2, 3]
    assert len(a.classes) == 4 and a.framing["seed"] == 3
    with pytest.raises(InputError):
        synthetic_events(0)
    with pytest.raises(InputError):
        synthetic_events(2, n_classes=1)


def test_synthetic_classes_are_separable():
    # nearest class mean on the flattened frames: a stand-in for "a tiny SNN learns it"
    train, test = synthetic_events(20, seed=0), synthetic_events(10, seed=1)
    flat = lambda d: d.frames.reshape(len(d), -1).astype(np.float64)  # noqa: E731
    means = np.stack([flat(train)[train.labels == k].mean(0) for k in range(4)])
    pred = np.argmin(((flat(test)[:, None] - means) ** 2).sum(-1), axis=1)
    assert (pred == test.labels).mean() >= 0.9


def test_synthetic_written_as_nmnist_reads_back_exactly(tmp_path):
    syn = synthetic_events(2, n_classes=3, size=(34, 34), time_bins=6, seed=5)
    write_synthetic_nmnist(tmp_path, syn)
    framing = Framing(ToFrames(3000, 6, origin_us=0), SelectPolarity(1), Clamp(1))
    ds = load_events("nmnist", tmp_path, "train", framing=framing, use_cache=False)
    order = np.argsort(syn.labels, kind="stable")  # the loader lists files class by class
    np.testing.assert_array_equal(ds.frames, syn.frames[order])
    np.testing.assert_array_equal(ds.labels, syn.labels[order])


def test_synthetic_written_as_dvs_reads_back_exactly(tmp_path):
    syn = synthetic_events(1, n_classes=3, size=(16, 16), time_bins=5, seed=6)
    write_synthetic_dvs(tmp_path, syn)
    framing = Framing(ToFrames(50_000, 5, origin_us=0), MergePolarity(), Clamp(1))
    ds = load_events("dvs-gesture", tmp_path, "train", framing=framing, use_cache=False)
    np.testing.assert_array_equal(ds.labels, syn.labels)
    np.testing.assert_array_equal(ds.frames[:, :, :16, :16], syn.frames)
    assert not ds.frames[:, :, 16:].any() and not ds.frames[:, :, :, 16:].any()


def test_event_dataset_validates_its_arrays():
    frames = np.zeros((2, 1, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1], dtype=np.int64)
    ds = EventDataset(frames, labels, ("a", "b"), "test", {})
    assert len(ds) == 2 and ds.sample_shape == (1, 4, 4, 3)
    with pytest.raises(InputError):
        EventDataset(frames.astype(np.float32), labels, ("a", "b"), "x", {})
    with pytest.raises(InputError):
        EventDataset(frames, labels.astype(np.int32), ("a", "b"), "x", {})
    with pytest.raises(InputError):
        EventDataset(frames, labels, ("a",), "x", {})
    with pytest.raises(InputError):
        EventDataset(frames + 2, labels, ("a", "b"), "x", {})


# ------------------------------------------------------------------------------------------
# agreement with the authors' tonic pipeline where the documented semantics coincide
# ------------------------------------------------------------------------------------------

def test_nmnist_preset_agrees_with_tonic_pipeline(tmp_path):
    """Denoise(40 ms) -> ToFrame(3 ms) -> channel 0 -> clamp, as in the authors' notebook.

    The rules coincide for events after the first 40 ms with distinct timestamps; tonic drops the
    last incomplete window, so compare the complete windows only."""
    tonic_transforms = pytest.importorskip("tonic.transforms")
    tonic_io = pytest.importorskip("tonic.io")
    rng = np.random.default_rng(0)
    n = 2000
    t = np.sort(rng.choice(250_000, n, replace=False)) + 45_000
    rows = list(zip(rng.integers(0, 34, n).tolist(), rng.integers(0, 34, n).tolist(), t.tolist(),
                    rng.integers(0, 2, n).tolist()))
    path = write_nmnist_bin(tmp_path / "x.bin", rows)
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    theirs = tonic_io.read_mnist_file(str(path), dtype=dtype)
    mine = read_nmnist_bin(path)
    assert all(np.array_equal(theirs[k], getattr(mine, k)) for k in "xytp")
    theirs = tonic_transforms.ToFrame(sensor_size=(34, 34, 2), time_window=3000)(
        tonic_transforms.Denoise(filter_time=40_000)(theirs))          # (T, P, H, W)
    theirs = np.minimum(theirs[:, 0:1], 1).transpose(1, 2, 3, 0)       # (1, H, W, T)
    ours = nmnist_framing(time_bins=theirs.shape[-1] + 1)(mine)
    assert theirs.sum() > 100
    np.testing.assert_array_equal(ours[..., :-1], theirs)
