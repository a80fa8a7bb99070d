"""Tests for deblurgan_jax.blur: trajectories, kernels, convolution and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, signal

from command_runner import run_main
from deblurgan_jax.commands import blur as blur_lib
from deblurgan_jax.blurring import motion_blur

ROOT = Path(__file__).resolve().parents[1]
# Small settings for properties that do not need the original's defaults.
SMALL = dict(canvas=32, iters=200, max_len=24)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _reference_kernel(positions: np.ndarray, fraction: float, canvas: int) -> np.ndarray:
    """One kernel, sample by sample: the straightforward loop the vectorised code replaces."""
    kernel = np.zeros((canvas, canvas))
    exposure = fraction * len(positions)
    for t, position in enumerate(positions):
        weight = min(max(exposure - t, 0.0), 1.0)
        row0, col0 = int(np.floor(position.imag)), int(np.floor(position.real))
        for row in (row0, row0 + 1):
            for col in (col0, col0 + 1):
                if 0 <= row < canvas and 0 <= col < canvas:
                    kernel[row, col] += (
                        weight
                        * max(0.0, 1 - abs(position.real - col))
                        * max(0.0, 1 - abs(position.imag - row))
                    )
    return kernel / kernel.sum()


# ----------------------------------------------------------------------------- trajectories


@pytest.mark.parametrize("expl", [None, 0.0, 0.005, 0.1])
def test_trajectory_length_is_max_len(expl):
    traj = motion_blur.sample_trajectories(_rng(), 16, expl=expl)  # original defaults
    assert traj.shape == (16, 2000) and traj.dtype == np.complex128
    length = np.abs(np.diff(traj, axis=1)).sum(axis=1)
    np.testing.assert_allclose(length, 60.0, rtol=0.01)


def test_trajectories_are_centred_inside_the_canvas():
    # expl=0 gives straight lines, the widest trajectories: the worst case for clipping.
    for expl in (None, 0.0):
        traj = motion_blur.sample_trajectories(_rng(1), 400, expl=expl)
        assert traj.real.min() >= 0 and traj.imag.min() >= 0
        assert traj.real.max() <= 63 and traj.imag.max() <= 63
        box_centre_col = (traj.real.min(1) + traj.real.max(1)) / 2
        box_centre_row = (traj.imag.min(1) + traj.imag.max(1)) / 2
        assert np.all(np.abs(box_centre_col - 32) <= 1.5)
        assert np.all(np.abs(box_centre_row - 32) <= 1.5)
        # No clipping loss: the splatted mass is exactly the exposure before normalisation,
        # so the normalised kernel matches a loop that drops nothing, and the rim is empty.
        kernels = motion_blur.trajectories_to_kernels(traj[:8], 64, fractions=(1.0,))[:, 0]
        assert np.all(kernels[:, 0, :] == 0) and np.all(kernels[:, :, 0] == 0)


def test_trajectory_too_long_for_canvas_is_rejected():
    with pytest.raises(ValueError, match="max_len"):
        motion_blur.sample_trajectories(_rng(), 2, canvas=32, max_len=40)


def test_same_seed_same_output_different_seed_differs():
    a = motion_blur.sample_trajectories(_rng(7), 4, **SMALL)
    b = motion_blur.sample_trajectories(_rng(7), 4, **SMALL)
    c = motion_blur.sample_trajectories(_rng(8), 4, **SMALL)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    ka = motion_blur.sample_kernels(_rng(7), 4, **SMALL)
    np.testing.assert_array_equal(ka, motion_blur.sample_kernels(_rng(7), 4, **SMALL))
    assert not np.allclose(ka, motion_blur.sample_kernels(_rng(8), 4, **SMALL))


def test_global_numpy_rng_is_not_used():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    motion_blur.sample_kernels(_rng(), 3, **SMALL)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


# ----------------------------------------------------------------------------- kernels


def test_kernels_are_non_negative_and_sum_to_one_for_every_fraction():
    traj = motion_blur.sample_trajectories(_rng(2), 32)
    kernels = motion_blur.trajectories_to_kernels(traj, 64)
    assert kernels.shape == (32, 4, 64, 64) and kernels.dtype == np.float32
    assert kernels.min() >= 0
    np.testing.assert_allclose(kernels.sum(axis=(2, 3)), 1.0, atol=1e-5)


def test_each_fraction_is_its_own_kernel():
    """Regression for the original generate_PSF.py, which carries one buffer across fractions
    and divides every kernel by the full length (they sum to the fraction, not 1). Here each
    fraction's kernel is the splat of exactly its own first fraction * iters samples."""
    traj = motion_blur.sample_trajectories(_rng(3), 6, **SMALL)
    fractions = (1 / 100, 1 / 10, 1 / 2, 1)
    together = motion_blur.trajectories_to_kernels(traj, 32, fractions=fractions)
    np.testing.assert_allclose(together.sum(axis=(2, 3)), 1.0, atol=1e-5)
    for k, fraction in enumerate(fractions):
        alone = motion_blur.trajectories_to_kernels(traj, 32, fractions=(fraction,))[:, 0]
        np.testing.assert_array_equal(together[:, k], alone)
        for i in range(2):
            np.testing.assert_allclose(
                together[i, k], _reference_kernel(traj[i], fraction, 32), atol=1e-6
            )
    # The shortest exposure (2 of 200 samples) is a near-delta; later ones are spread out.
    for k in range(1, 4):
        assert np.abs(together[:, 0] - together[:, k]).max(axis=(1, 2)).min() > 0.1
    assert np.all(together[:, 0].max(axis=(1, 2)) > together[:, 3].max(axis=(1, 2)))


def test_sample_kernels_picks_one_of_the_dataset_fractions():
    kernels = motion_blur.sample_kernels(_rng(4), 12, **SMALL)
    assert kernels.shape == (12, 32, 32) and kernels.dtype == np.float32
    # Same generator state -> same trajectories (drawn first), so each sampled kernel must be
    # one of that trajectory's kernels at fractions 1/10, 1/2, 1.
    traj = motion_blur.sample_trajectories(_rng(4), 12, **SMALL)
    candidates = motion_blur.trajectories_to_kernels(
        traj, 32, fractions=motion_blur.DATASET_FRACTIONS
    )
    distance = np.abs(candidates - kernels[:, None]).max(axis=(2, 3))
    assert np.all(distance.min(axis=1) < 1e-6)


def test_kernels_reject_positions_off_the_canvas():
    traj = np.array([[1 + 1j, 40 + 1j]])
    with pytest.raises(ValueError, match="canvas"):
        motion_blur.trajectories_to_kernels(traj, 32, fractions=(1.0,))
    with pytest.raises(ValueError, match="fractions"):
        motion_blur.trajectories_to_kernels(traj, 64, fractions=(0.0,))


# ----------------------------------------------------------------------------- blur


def _random_kernel(shape, seed=0):
    kernel = _rng(seed).random(shape)
    return kernel / kernel.sum()


@pytest.mark.parametrize("shape", [(37, 41), (37, 41, 3)])
def test_blurring_a_constant_image_returns_it(shape):
    image = np.full(shape, 0.73)
    kernel = motion_blur.sample_kernels(_rng(), 1)[0]  # 64x64, larger than the image
    out = motion_blur.blur(image, kernel)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.73, rtol=1e-6)


@pytest.mark.parametrize("size", [1, 5, 64])
def test_delta_kernel_returns_the_input(size):
    image = _rng().random((50, 60, 3)) * 255
    delta = np.zeros((size, size))
    delta[(size - 1) // 2, (size - 1) // 2] = 1
    np.testing.assert_allclose(motion_blur.blur(image, delta), image, atol=1e-5 * 255)
    np.testing.assert_allclose(
        motion_blur.blur(image[..., 0] / 255, delta), image[..., 0] / 255, atol=1e-5
    )


@pytest.mark.parametrize("kernel_shape", [(7, 5), (6, 9), (64, 64)])
def test_blur_matches_scipy_in_the_interior(kernel_shape):
    image = _rng(1).random((150, 140))
    kernel = _random_kernel(kernel_shape, seed=2)
    out = motion_blur.blur(image, kernel)
    kh, kw = kernel_shape
    interior = (slice(kh, -kh), slice(kw, -kw))
    expected = signal.convolve2d(image, kernel, mode="same")
    np.testing.assert_allclose(out[interior], expected[interior], atol=1e-4)
    if kh % 2 and kw % 2:  # ndimage centres even kernels one pixel further on
        expected = ndimage.convolve(image, kernel)
        np.testing.assert_allclose(out[interior], expected[interior], atol=1e-4)
    # Every channel is blurred alike.
    colour = motion_blur.blur(np.stack([image, 2 * image], axis=-1), kernel)
    np.testing.assert_allclose(colour[..., 1], 2 * out, rtol=1e-5, atol=1e-6)


def test_blur_is_a_true_convolution():
    # A point of light is drawn as the kernel itself (not its mirror image).
    image = np.zeros((21, 21))
    image[10, 10] = 1
    kernel = np.zeros((5, 5))
    kernel[0, 4], kernel[2, 2] = 0.25, 0.75
    out = motion_blur.blur(image, kernel)
    np.testing.assert_allclose(out[8:13, 8:13], kernel, atol=1e-6)


def test_blur_noise_needs_a_generator_and_is_seeded():
    image = np.full((64, 64), 0.5)
    delta = np.ones((1, 1))
    with pytest.raises(ValueError, match="rng"):
        motion_blur.blur(image, delta, noise_std=0.1)
    a = motion_blur.blur(image, delta, noise_std=0.1, rng=_rng(5))
    np.testing.assert_array_equal(a, motion_blur.blur(image, delta, noise_std=0.1, rng=_rng(5)))
    assert abs(float(np.std(a)) - 0.1) < 0.01


@pytest.mark.parametrize(
    "kernel, message",
    [
        (np.full((3, 3), 2 / 9), "sum to 1"),
        (np.array([[1.5, -0.5]]), "non-negative"),
        (np.ones((2, 2, 2)) / 8, "2-D"),
        (np.zeros((0, 3)), "2-D"),
        (np.array([[np.nan, 1.0]]), "NaN"),
    ],
)
def test_blur_rejects_bad_kernels(kernel, message):
    with pytest.raises(ValueError, match=message):
        motion_blur.blur(np.zeros((8, 8)), kernel)


def test_blur_rejects_bad_images():
    with pytest.raises(ValueError, match="image"):
        motion_blur.blur(np.zeros(8), np.ones((1, 1)))


# ----------------------------------------------------------------------------- command line


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_main(blur_lib.main, *args)


def _run_subprocess(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it (one smoke test; the others call main in-process)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "deblurgan_jax.blur", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _make_sharp_folder(folder: Path) -> None:
    folder.mkdir()
    rng = _rng(6)
    Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(folder / "rgb.png")
    Image.fromarray((rng.random((36, 36)) * 255).astype(np.uint8)).save(folder / "gray.jpg")
    sixteen = np.full((30, 44), 65535, np.uint16)
    sixteen[:, :22] = 0
    Image.fromarray(sixteen).save(folder / "deep.png")  # 16-bit grayscale
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")


def test_make_dataset_writes_pairs_and_skips_the_corrupt_file(tmp_path):
    sharp, out = tmp_path / "sharp", tmp_path / "out"
    _make_sharp_folder(sharp)
    result = _run_cli(
        "make-dataset",
        "--sharp",
        str(sharp),
        "--out",
        str(out),
        "--seed",
        "1",
        "--canvas",
        "32",
        "--iters",
        "200",
        "--max-len",
        "20",
    )
    assert result.returncode == 1, result.stderr
    assert "corrupt.png" in result.stderr and "Traceback" not in result.stderr
    names = {"rgb.png", "gray.png", "deep.png"}
    for kind in ("blur", "sharp", "kernels"):
        assert {p.name for p in (out / kind).iterdir()} == names
    for name, size in (("rgb.png", (48, 40)), ("gray.png", (36, 36)), ("deep.png", (44, 30))):
        blurred, copy = Image.open(out / "blur" / name), Image.open(out / "sharp" / name)
        assert blurred.mode == copy.mode == "RGB" and blurred.size == copy.size == size
    deep = np.asarray(Image.open(out / "sharp" / "deep.png"))
    assert deep[:, :22].max() == 0 and deep[:, 22:].min() == 255  # 16-bit scaled, not clipped
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "sharp" / "rgb.png")), np.asarray(Image.open(sharp / "rgb.png"))
    )
    assert np.asarray(Image.open(out / "kernels" / "rgb.png")).max() == 255
    assert len(list(sharp.iterdir())) == 4  # inputs untouched

    # A non-empty --out needs --overwrite; with it, npy kernels sum to 1.
    again = _run_cli(
        "make-dataset",
        "--sharp",
        str(sharp),
        "--out",
        str(out),
        "--canvas",
        "32",
        "--iters",
        "200",
        "--max-len",
        "20",
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr
    again = _run_cli(
        "make-dataset",
        "--sharp",
        str(sharp),
        "--out",
        str(out),
        "--canvas",
        "32",
        "--iters",
        "200",
        "--max-len",
        "20",
        "--kernels",
        "npy",
        "--overwrite",
    )
    assert again.returncode == 1
    kernel = np.load(out / "kernels" / "rgb.npy")
    assert kernel.shape == (32, 32) and abs(float(kernel.sum()) - 1) < 1e-5


def test_make_dataset_refuses_an_output_inside_the_input(tmp_path):
    sharp = tmp_path / "sharp"
    _make_sharp_folder(sharp)
    for out in (sharp, sharp / "generated"):
        result = _run_cli("make-dataset", "--sharp", str(sharp), "--out", str(out))
        assert result.returncode == 2
        assert "--sharp" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in sharp.iterdir()) == [
        "corrupt.png",
        "deep.png",
        "gray.jpg",
        "rgb.png",
    ]


def test_show_kernels_writes_a_png(tmp_path):
    out = tmp_path / "figure" / "kernels.png"
    result = _run_cli(
        "show-kernels",
        "--out",
        str(out),
        "--n",
        "6",
        "--seed",
        "3",
        "--iters",
        "500",
        "--expl",
        "0.005",
    )
    assert result.returncode == 0, result.stderr
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * 66 + 2, 3 * 66 + 2) and grid.max() == 255
    assert _run_cli("show-kernels", "--out", str(out)).returncode == 2  # exists


def test_cli_help_and_bad_arguments(tmp_path):
    result = _run_subprocess("make-dataset", "--help")
    assert result.returncode == 0 and "--per-image" in result.stdout
    result = _run_cli(
        "show-kernels", "--out", str(tmp_path / "k.png"), "--canvas", "32", "--max-len", "60"
    )
    assert result.returncode == 2 and "max_len" in result.stderr
    assert "Traceback" not in result.stderr


def test_centre_kernels_moves_the_centroid_to_the_convolution_centre():
    # Closed form: a single point anywhere lands on the centre pixel (k - 1) // 2.
    k = np.zeros((1, 6, 6), np.float32)
    k[0, 0, 5] = 1.0
    centred = motion_blur.centre_kernels(k)
    assert centred[0, 2, 2] == 1.0 and centred.sum() == 1.0
    # A two-pixel line (mass 0.5 + 0.5): its centroid is between them; the shift is whole pixels.
    k = np.zeros((1, 7, 7), np.float32)
    k[0, 6, 5] = k[0, 6, 6] = 0.5
    centred = motion_blur.centre_kernels(k)[0]
    rows, cols = np.nonzero(centred)
    assert list(rows) == [3, 3] and abs(cols.mean() - 3) <= 0.5
    # Random camera shake: every centroid within half a pixel per axis, mass and shape kept.
    kernels = motion_blur.sample_kernels(np.random.default_rng(3), 64, canvas=32, max_len=24.0)
    out = motion_blur.centre_kernels(kernels)
    grid = np.arange(32)
    cy = (out.sum(axis=2) * grid).sum(axis=1)
    cx = (out.sum(axis=1) * grid).sum(axis=1)
    assert np.all(np.abs(cy - 15) <= 0.5 + 1e-6) and np.all(np.abs(cx - 15) <= 0.5 + 1e-6)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), kernels.sum(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(np.sort(out.ravel()), np.sort(kernels.ravel()))
    # Degenerate input: an all-zero kernel is returned as is; a wrong shape is refused.
    assert not motion_blur.centre_kernels(np.zeros((1, 4, 4))).any()
    with pytest.raises(ValueError, match="n, k, k"):
        motion_blur.centre_kernels(np.zeros((4, 4)))
