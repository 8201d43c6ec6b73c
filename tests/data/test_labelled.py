"""The one reader of member / non-member files (audit and mia): conversions, bounds read from headers, refusals."""
import numpy as np
import pytest

from brainleaks_lava.data.labelled import read_labelled_npz
from brainleaks_lava.errors import InputError

LIMITS = dict(max_bytes=1 << 24, max_images=100, max_values_per_image=784, max_values=100 * 784)


def test_uint8_grey_levels_become_intensities_and_float_labels_with_integral_values_are_accepted(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, images=np.array([[[0, 255], [51, 102]]], dtype=np.uint8), labels=np.array([3.0]))
    images, labels = read_labelled_npz(p, "--members", **LIMITS)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(images[0], np.array([[0, 1], [0.2, 0.4]], dtype=np.float32))
    assert labels.tolist() == [3]


def test_array_sizes_are_bounded_from_their_headers_before_reading(tmp_path):
    """A compressed archive that would unpack to more values than allowed is refused on its header alone."""
    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, images=np.zeros((50, 100, 100), dtype=np.uint8), labels=np.zeros(50, dtype=np.int64))
    assert p.stat().st_size < 100_000
    with pytest.raises(InputError, match=r"--members .*bomb.npz: array 'images' of shape \(50, 100, 100\) is larger"):
        read_labelled_npz(p, "--members", **LIMITS)
    np.savez(p, images=np.zeros((101, 2, 2)), labels=np.zeros(101, dtype=np.int64))
    with pytest.raises(InputError, match="'labels' of shape \\(101,\\) is larger than the 100 values"):
        read_labelled_npz(p, "--members", **LIMITS)


@pytest.mark.parametrize("images, labels, message", [
    (np.full((2, 3, 3), np.nan), np.zeros(2, int), "NaN"),
    (np.full((2, 3, 3), 2.0), np.zeros(2, int), r"outside \[0, 1\] \(from 2 to 2\)"),
    (np.zeros((2, 3, 3)), np.array([0.5, 1.0]), "integer class indices"),
    (np.zeros((3, 3, 3)), np.zeros(2, int), r"'images' has shape \(3, 3, 3\) for 2 labels"),
    (np.zeros((2, 3, 3)), np.zeros((2, 1), int), "non-empty vector"),
    (np.zeros((2, 3, 3), dtype=complex), np.zeros(2, int), "must hold numbers, got dtype complex128"),
    (np.array([object(), object()], dtype=object), np.zeros(2, int), "pickled Python objects"),
])
def test_refusals_name_the_option_the_file_and_the_field(tmp_path, images, labels, message):
    p = tmp_path / "bad.npz"
    np.savez(p, images=images, labels=labels)
    with pytest.raises(InputError, match=message) as e:
        read_labelled_npz(p, "--non-members", **LIMITS)
    assert str(e.value).startswith(f"--non-members {p}: ")


def test_a_pickle_or_a_lone_npy_is_not_opened(tmp_path):
    import pickle

    p = tmp_path / "x.npz"
    p.write_bytes(pickle.dumps({"images": 1}))
    with pytest.raises(InputError, match="not an .npz archive"):
        read_labelled_npz(p, "--members", **LIMITS)
    np.save(tmp_path / "y.npy", np.zeros(3))
    with pytest.raises(InputError, match="not an .npz archive"):
        read_labelled_npz(tmp_path / "y.npy", "--members", **LIMITS)
