"""Metrics against their references (scikit-image, pyssim), LPIPS sanity, whole-image and tiled
inference, and the evaluate command (tiny generators, CPU)."""

import csv
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import skimage.metrics
from PIL import Image

from deblurgan_jax.weights import checkpoints
from deblurgan_jax.commands import evaluate
from deblurgan_jax.evaluation import scoring, metrics
from deblurgan_jax.networks import inference, models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _u8(x):
    return jnp.asarray(x, jnp.float32)


def _blurred(image, size):
    return scipy.ndimage.uniform_filter(image, size=(size, size, 1))


def _photo_pairs():
    """(reference, distorted) uint8 pairs: real photos (noisy, blurred) and random images."""
    rng = np.random.default_rng(0)
    coffee = skimage.data.coffee()[:160, :200]
    astronaut = skimage.data.astronaut()[100:260, 150:350]
    noisy = np.clip(coffee.astype(int) + rng.integers(-25, 26, coffee.shape), 0, 255)
    random_a = rng.integers(0, 256, (64, 80, 3))
    random_b = np.clip(random_a + rng.integers(-40, 41, random_a.shape), 0, 255)
    return [
        (coffee, noisy.astype(np.uint8)),
        (astronaut, _blurred(astronaut, 5)),
        (random_a.astype(np.uint8), random_b.astype(np.uint8)),
    ]


@pytest.mark.parametrize("pair", range(3))
def test_psnr_and_ssim_match_skimage(pair):
    a, b = _photo_pairs()[pair]
    want_psnr = skimage.metrics.peak_signal_noise_ratio(a, b, data_range=255)
    want_ssim = skimage.metrics.structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=-1,
        data_range=255,
    )
    assert float(metrics.psnr(_u8(a)[None], _u8(b)[None])[0]) == pytest.approx(want_psnr, abs=1e-4)
    assert float(metrics.ssim(_u8(a)[None], _u8(b)[None])[0]) == pytest.approx(want_ssim, abs=1e-5)


def test_cw_ssim_matches_pyssim():
    from ssim import SSIM  # pyssim, the paper's CW-SSIM

    pairs = _photo_pairs()
    for a, b in pairs:
        want = SSIM(Image.fromarray(a)).cw_ssim_value(Image.fromarray(b))
        got = float(metrics.cw_ssim(_u8(a)[None], _u8(b)[None])[0])
        assert got == pytest.approx(want, abs=1e-5)
    # Batched and jitted: one value per image; identical images give exactly 1.
    a, b = pairs[0]
    got = jax.jit(metrics.cw_ssim)(_u8(np.stack([a, a])), _u8(np.stack([a, b])))
    np.testing.assert_allclose(np.asarray(got)[0], 1.0, atol=1e-6)
    # The paper's measure is far more lenient than the standard SSIM on the same pair.
    assert float(got[1]) > float(metrics.ssim(_u8(a)[None], _u8(b)[None])[0])


def test_pil_luma_is_pils_grayscale():
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    want = np.asarray(Image.fromarray(image).convert("L"))
    np.testing.assert_array_equal(np.asarray(metrics.pil_luma(_u8(image)[None]))[0], want)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_is_zero_for_identical_images_and_grows_with_blur(net):
    photo = skimage.data.coffee()[:128, :160]
    stack = _u8(np.stack([photo] + [_blurred(photo, k) for k in (3, 7, 15)]))
    same = metrics.lpips(stack, stack, net)
    np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-6)
    dist = np.asarray(metrics.lpips(jnp.broadcast_to(stack[:1], stack.shape), stack, net))
    assert dist[0] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(dist) > 0), dist


# --------------------------------------------------------------------------------------------
# Inference.


def _generator(ngf=8, n_blocks=2, seed=0):
    g = models.ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
    params = g.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))["params"]
    return g, params


def _unit(image):
    return np.asarray(image, np.float32)[None] / 127.5 - 1.0


def test_restore_keeps_any_size_and_batches():
    g, params = _generator()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 37, 53, 3)).astype(np.float32)
    y = inference.make_restore_fn(g)(params, x)
    assert y.shape == (2, 37, 53, 3)
    # A batch gives what each image gives alone (InstanceNorm is per image).
    alone = inference.make_restore_fn(g)(params, x[1:])
    np.testing.assert_allclose(np.asarray(y[1:]), np.asarray(alone), atol=1e-5)


def test_test_time_dropout_is_an_option():
    g, params = _generator()
    x = _unit(skimage.data.coffee()[:64, :64])
    plain = inference.restore(g, params, x)
    a = inference.restore(g, params, x, rng=jax.random.key(1))
    b = inference.restore(g, params, x, rng=jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(plain))


def test_tile_grid_partitions_the_image():
    for height, width, tile, overlap in [
        (400, 600, 256, 96),
        (1000, 1000, 1000, 192),
        (3000, 4000, 1024, 192),
        (148, 200, 128, 96),
    ]:
        tiles = inference.tile_grid(height, width, tile, overlap)
        cover = np.zeros((height, width), int)
        for t in tiles:
            r0, r1, c0, c1 = t.owned
            assert all(v % 4 == 0 for v in (t.top, t.left, r0, c0))
            # The owned part keeps half the overlap (minus the grid rounding) from tile edges.
            th, tw = min(tile, height), min(tile, width)
            for lo, hi, start, size, full in (
                (r0, r1, t.top, th, height),
                (c0, c1, t.left, tw, width),
            ):
                assert start <= lo < hi <= start + size
                if lo > 0:
                    assert lo - start >= overlap // 2 - 4
                if hi < full:
                    assert start + size - hi >= overlap // 2 - 4
            cover[r0:r1, c0:c1] += 1
        assert np.all(cover == 1)


@pytest.mark.parametrize("ngf,n_blocks,tile", [(8, 2, 128), (4, 9, 256)])
def test_tiled_matches_untiled_on_a_real_photo(ngf, n_blocks, tile):
    # Random weights are the hard case: per-tile statistics would change the output by tens of
    # levels; with whole-image statistics tiles reproduce the whole-image result.
    g, params = _generator(ngf, n_blocks, seed=3)
    x = _unit(skimage.data.coffee()[:301, :447])  # not multiples of 4 either
    untiled = np.asarray(metrics.to_uint8_range(inference.restore(g, params, x)))
    calls = []
    tiled = inference.restore_tiled(g, params, x, tile=tile, progress=calls.append)
    assert tiled.shape == x.shape
    num_tiles = len(inference.tile_grid(304, 448, tile, inference.default_tile_overlap(n_blocks)))
    # norm='global' passes over the tiles: encoder 3 + 1, 3 per block, decoder 3.
    assert num_tiles >= 4 and sum(calls) == num_tiles * (4 + 3 * n_blocks + 3)
    diff = np.abs(np.asarray(metrics.to_uint8_range(tiled)) - untiled)
    assert diff.max() <= 1, diff.max()
    # One tile covering everything is the whole-image computation itself.
    single = inference.restore_tiled(g, params, x, tile=512)
    np.testing.assert_allclose(single, np.asarray(inference.restore(g, params, x)), atol=2e-5)


def test_local_tiles_and_tiled_dropout_run():
    g, params = _generator()
    x = _unit(skimage.data.coffee()[:200, :260])
    local = inference.restore_tiled(g, params, x, tile=128, norm="local")
    assert local.shape == x.shape and np.all(np.abs(local) <= 1)
    a = inference.restore_tiled(g, params, x, tile=128, rng=jax.random.key(0))
    b = inference.restore_tiled(g, params, x, tile=128, rng=jax.random.key(0))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="larger than the overlap"):
        inference.restore_tiled(g, params, x, tile=64)


# --------------------------------------------------------------------------------------------
# The command.


def _paired_folder(root, sizes=((48, 64), (48, 64))):
    for i, (h, w) in enumerate(sizes):
        sharp = skimage.data.astronaut()[i * 50 : i * 50 + h, 100 : 100 + w]
        for sub, image in (("A", _blurred(sharp, 5)), ("B", sharp)):
            os.makedirs(os.path.join(root, "test", sub), exist_ok=True)
            Image.fromarray(image).save(os.path.join(root, "test", sub, f"img{i}.png"))
    return str(root)


def test_evaluate_command_on_the_demo_photos(params_file, tmp_path):
    out = tmp_path / "eval"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deblurgan_jax.evaluate",
            "--params",
            params_file,
            "--data",
            "demo",
            "--out",
            str(out),
            "--save-images",
            "--max-images",
            "2",
            "--downscale",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "CW-SSIM" in r.stdout and "LPIPS (VGG)" in r.stdout
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["name"] for row in rows] == ["chelsea", "coffee"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 2 and summary["source"]["params"].endswith("g.msgpack")
    for m in scoring.REPORTED_METRICS:
        assert np.isfinite(summary[m]) and np.isfinite(summary[f"{m}_blurred"])
        assert summary[m] == pytest.approx(np.mean([float(row[m]) for row in rows]))
    assert summary["seconds_per_image"] > 0
    restored = np.asarray(Image.open(out / "restored" / "coffee.png"))
    comparison = np.asarray(Image.open(out / "comparisons" / "coffee.png"))
    assert restored.shape == (200, 300, 3) and comparison.shape == (200, 900, 3)
    assert (out / "index.html").exists()  # the report (its structure: test_video.py)
    # A non-empty --out is refused without --overwrite.
    assert evaluate.main(["--params", params_file, "--data", "demo", "--out", str(out)]) == 2


def test_evaluate_paired_folder_in_process_matches_restore(params_file, tmp_path):
    data = _paired_folder(tmp_path / "pairs")
    out = tmp_path / "eval"
    code = evaluate.main(
        [
            "--params",
            params_file,
            "--data",
            data,
            "--layout",
            "paired",
            "--out",
            str(out),
            "--metrics",
            "psnr,ssim",
            "--noprogress",
            "--batch-size",
            "2",
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    params, config = checkpoints.load_generator(params_file)
    g = models.build_generator(config)
    sharp = np.asarray(Image.open(os.path.join(data, "test", "B", "img1.png")))
    blurred = np.asarray(Image.open(os.path.join(data, "test", "A", "img1.png")))
    restored = metrics.to_uint8_range(inference.restore(g, params, _unit(blurred)))
    want = float(metrics.psnr(restored, _u8(sharp)[None])[0])
    assert float(rows[1]["psnr"]) == pytest.approx(want, abs=1e-3)


@pytest.mark.parametrize("case", ["workdir", "params", "truncated", "data"])
def test_evaluate_errors_name_the_path(case, params_file, tmp_path, capsys):
    bad = str(
        tmp_path
        / {
            "workdir": "no_run",
            "params": "missing.msgpack",
            "truncated": "cut.msgpack",
            "data": "no_data",
        }[case]
    )
    args = {
        "workdir": ["--workdir", bad, "--data", "demo"],
        "params": ["--params", bad, "--data", "demo"],
        "truncated": ["--params", bad, "--data", "demo"],
        "data": ["--params", params_file, "--data", bad],
    }[case]
    with open(params_file, "rb") as f:
        (tmp_path / "cut.msgpack").write_bytes(f.read()[:1000])
    code = evaluate.main(args + ["--out", str(tmp_path / "out"), "--noprogress"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and bad in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "out")  # nothing written
