"""Our readers and framing steps next to tonic's: identical where we use tonic, and the deliberate
differences (Denoise; ToFrames' fixed number of bins and time origin) shown on small cases.

Frames from tonic's ToFrame are (T, P, H, W); ours are (P, H, W, T).
"""
from __future__ import annotations

import numpy as np
import pytest
import tonic
import tonic.io
import tonic.transforms as tt

from brainleaks_lava.data.events import (DVS_FOLDERS, DVS_RAW_CLASSES, DVS_SENSOR, NMNIST_FOLDERS, NMNIST_SENSOR,
                                         read_nmnist_bin)
from brainleaks_lava.data.framing import (EVENT_DTYPE, Clamp, Denoise, Downsample, Events, Framing, MergePolarity,
                                          ToFrames)
from brainleaks_lava.errors import DatasetError, InputError
from event_fixtures import NMNIST_OVERFLOW, nmnist_bytes, write_nmnist_bin


def events(rows, size=(34, 34)) -> Events:
    """Events from (x, y, t, p) rows on a width x height sensor."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return Events.from_arrays(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], *size)


def random_events(rng, n, size, t_max, t_min=0) -> Events:
    t = np.sort(rng.integers(t_min, t_max, n))
    return Events.from_arrays(rng.integers(0, size[0], n), rng.integers(0, size[1], n), t,
                              rng.integers(0, 2, n), *size)


def tonic_frames(ev: Events, **kwargs) -> np.ndarray:
    """tonic's ToFrame on our events, as (P, H, W, T)."""
    frames = tt.ToFrame(sensor_size=(ev.width, ev.height, 2), **kwargs)(ev.as_structured())
    return frames.transpose(1, 2, 3, 0)


# ------------------------------------------------------------------------------------------
# readers and folder names: tonic's
# ------------------------------------------------------------------------------------------

def test_nmnist_reader_is_tonics(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        rows = [(int(x), int(y), int(t), int(p)) for x, y, t, p in
                zip(rng.integers(0, 34, 300), rng.integers(0, 34, 300), rng.integers(0, 2**23, 300),
                    rng.integers(0, 2, 300))]
        rows[50:50] = [NMNIST_OVERFLOW]
        rows[200:200] = [NMNIST_OVERFLOW, NMNIST_OVERFLOW]
        path = write_nmnist_bin(tmp_path / f"{i}.bin", rows)
        theirs = tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
        ours = read_nmnist_bin(path)
        for k in "xytp":
            np.testing.assert_array_equal(getattr(ours, k), theirs[k])


def test_nmnist_reader_checks_what_tonic_does_not(tmp_path):
    # one stray byte: tonic decodes the file as if it were not there; we refuse the file
    path = tmp_path / "stray.bin"
    path.write_bytes(nmnist_bytes([(1, 1, 0, 1), (2, 2, 5, 0)]) + b"\1")
    assert len(tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)) == 2
    with pytest.raises(DatasetError, match="multiple of 5"):
        read_nmnist_bin(path)
    # an event outside 34x34: tonic returns it; we refuse the file
    path = write_nmnist_bin(tmp_path / "wide.bin", [(50, 3, 0, 1)])
    assert tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)["x"].tolist() == [50]
    with pytest.raises(DatasetError, match="outside the 34x34"):
        read_nmnist_bin(path)


def test_folder_names_and_sizes_are_tonics():
    nmnist, dvs = tonic.datasets.NMNIST, tonic.datasets.DVSGesture
    assert NMNIST_FOLDERS == {"train": nmnist.train_folder, "val": nmnist.test_folder}
    assert (NMNIST_SENSOR, NMNIST_SENSOR, 2) == nmnist.sensor_size
    assert tuple(nmnist.dtype.names) == EVENT_DTYPE.names
    assert DVS_FOLDERS == {"train": dvs.train_filename.removesuffix(".tar.gz"),
                           "val": dvs.test_filename.removesuffix(".tar.gz")}
    assert (DVS_SENSOR, DVS_SENSOR, 2) == dvs.sensor_size
    assert len(DVS_RAW_CLASSES) == len(dvs.classes) == 11


# ------------------------------------------------------------------------------------------
# Downsample: tonic's
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [34, 128])
def test_downsample_is_tonics_for_every_factor_of_the_sensors(size):
    x = np.arange(size)
    ev = Events.from_arrays(x, x[::-1], x, x % 2, size, size)
    for f in (f for f in range(1, size + 1) if size % f == 0):
        theirs = tt.Downsample(spatial_factor=1 / f)(ev.as_structured())
        ours = Downsample(f)(ev)
        assert (ours.width, ours.height) == (size // f, size // f)
        np.testing.assert_array_equal(ours.x, x // f)
        np.testing.assert_array_equal(ours.y, x[::-1] // f)
        for k in "xytp":
            np.testing.assert_array_equal(getattr(ours, k), theirs[k])


def test_downsample_factor_where_tonics_float_arithmetic_is_inexact_is_refused():
    ev = Events.from_arrays([49], [0], [0], [1], 98, 98)
    assert tt.Downsample(spatial_factor=1 / 49)(ev.as_structured())["x"].tolist() == [0]  # not 49 // 49
    with pytest.raises(InputError, match="not exact"):
        Downsample(49)(ev)
    with pytest.raises(InputError, match="not exact"):
        Framing(Downsample(49), ToFrames(10, 1), Clamp(1)).output_shape(98, 98)


# ------------------------------------------------------------------------------------------
# ToFrames: tonic's ToFrame with the window fixed by us
# ------------------------------------------------------------------------------------------

def test_to_frames_is_tonics_to_frame_with_explicit_start_and_end():
    rng = np.random.default_rng(1)
    for trial in range(60):
        ev = random_events(rng, int(rng.integers(1, 300)), (5, 4), 600)
        w, n = int(rng.integers(1, 50)), int(rng.integers(1, 12))
        origin = None if trial % 2 else int(rng.integers(-50, 100))
        start = int(ev.t.min()) if origin is None else origin
        ours = ToFrames(w, n, origin)(ev)
        np.testing.assert_array_equal(ours, tonic_frames(ev, time_window=w, start_time=start, end_time=start + n * w))


def test_to_frames_keeps_the_last_incomplete_window_tonics_default_drops_it():
    ev = events([(0, 0, 0, 1), (1, 0, 2999, 1), (2, 0, 3000, 1), (3, 0, 7000, 0)])
    ours = ToFrames(3000, 3)(ev)
    assert ours.shape[-1] == 3 and ours.sum() == 4 and ours[0, 0, 3, 2] == 1  # 7000 -> bin 2
    theirs = tonic_frames(ev, time_window=3000)       # windows follow the recording: [0, 3000), [3000, 6000)
    assert theirs.shape[-1] == 2 and theirs.sum() == 3  # the event at 7000 is lost
    np.testing.assert_array_equal(ours[..., :2], theirs)
    # include_incomplete keeps the last window, but not an event exactly on the recording's end
    ev = events([(0, 0, 0, 1), (1, 0, 6000, 1)])
    theirs = tonic_frames(ev, time_window=3000, include_incomplete=True)
    assert theirs.shape[-1] == 2 and theirs.sum() == 1
    ours = ToFrames(3000, 3)(ev)
    assert ours[1, 0, 1, 2] == 1 and ours.sum() == 2


def test_to_frames_fixed_origin_versus_tonics_first_event_origin():
    ev = events([(0, 0, 2000, 1), (1, 0, 3500, 1)])
    ours = ToFrames(3000, 2, origin_us=0)(ev)  # [0, 3000), [3000, 6000)
    assert ours[1, 0, 0, 0] == 1 and ours[1, 0, 1, 1] == 1
    theirs = tonic_frames(ev, time_window=3000)  # starts at the first event: [2000, 5000)
    assert theirs.shape[-1] == 1 and theirs[1, 0, :2, 0].tolist() == [1, 1]
    np.testing.assert_array_equal(ours, tonic_frames(ev, time_window=3000, start_time=0, end_time=6000))


def test_to_frames_fixed_number_of_bins_pads_and_crops():
    ev = events([(0, 0, 0, 1), (1, 0, 7000, 1), (2, 0, 40_000, 1)])
    ours = ToFrames(3000, 5)(ev)
    assert ours.shape[-1] == 5 and ours.sum() == 2 and not ours[..., 3:].any()  # 40 ms cropped, bins 3, 4 empty
    assert tonic_frames(ev, time_window=3000).shape[-1] == 13  # tonic: as many frames as the recording needs


def test_to_frames_counts_do_not_wrap_around_like_tonics_int16():
    ev = Events.from_arrays(np.zeros(40_000), np.zeros(40_000), np.zeros(40_000), np.ones(40_000), 2, 2)
    assert tonic_frames(ev, time_window=10)[1, 0, 0, 0] == 40_000 - 2**16  # wrapped
    ours = ToFrames(10, 1)(ev)
    assert ours[1, 0, 0, 0] == 40_000 and ours.sum() == 40_000


def test_to_frames_accepts_events_out_of_time_order():
    rng = np.random.default_rng(2)
    ev = random_events(rng, 400, (6, 6), 1000)
    order = rng.permutation(len(ev))
    shuffled = Events(ev.x[order], ev.y[order], ev.t[order], ev.p[order], 6, 6)
    np.testing.assert_array_equal(ToFrames(70, 12)(shuffled), ToFrames(70, 12)(ev))


# ------------------------------------------------------------------------------------------
# MergePolarity: on frames, the counts of tonic's MergePolarities on events
# ------------------------------------------------------------------------------------------

def test_merge_polarity_counts_equal_tonics_merge_polarities():
    rng = np.random.default_rng(3)
    ev = random_events(rng, 500, (8, 6), 2000)
    ours = MergePolarity()(ToFrames(100, 20)(ev))
    merged = tt.MergePolarities()(ev.as_structured())
    theirs = tt.ToFrame(sensor_size=(8, 6, 1), time_window=100, start_time=int(ev.t.min()),
                        end_time=int(ev.t.min()) + 2000)(merged).transpose(1, 2, 3, 0)
    assert ours.shape == theirs.shape == (1, 6, 8, 20)
    np.testing.assert_array_equal(ours, theirs)


# ------------------------------------------------------------------------------------------
# Denoise: ours; identical to tonic's except at the start and for simultaneous neighbours
# ------------------------------------------------------------------------------------------

def survivors(ev):
    return sorted(zip(ev["x"].tolist(), ev["y"].tolist(), ev["t"].tolist())) if isinstance(ev, np.ndarray) \
        else sorted(zip(ev.x.tolist(), ev.y.tolist(), ev.t.tolist()))


def test_denoise_equals_tonics_after_the_first_window_with_distinct_timestamps():
    rng = np.random.default_rng(4)
    for _ in range(10):
        n = 1500
        t = np.sort(rng.choice(200_000, n, replace=False)) + 45_000
        ev = Events.from_arrays(rng.integers(0, 34, n), rng.integers(0, 34, n), t, rng.integers(0, 2, n), 34, 34)
        ours = Denoise(40_000)(ev)
        assert survivors(ours) == survivors(tt.Denoise(filter_time=40_000)(ev.as_structured()))
        assert 0 < len(ours) < n


def test_denoise_tonic_keeps_everything_in_the_first_window():
    ev = events([(5, 5, 10, 1), (20, 20, 150, 1)])  # both isolated
    assert survivors(tt.Denoise(filter_time=100)(ev.as_structured())) == [(5, 5, 10)]  # t < filter_time
    assert len(Denoise(100)(ev)) == 0


def test_denoise_simultaneous_neighbours_support_each_other_in_ours_only():
    ev = events([(5, 5, 500, 1), (6, 5, 500, 0)])  # same timestamp, edge neighbours, after the first window
    assert survivors(tt.Denoise(filter_time=100)(ev.as_structured())) == [(6, 5, 500)]  # the later in the file
    assert survivors(Denoise(100)(ev)) == [(5, 5, 500), (6, 5, 500)]
