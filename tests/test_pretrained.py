"""The pretrained generator shipped with the package: it loads through the API and the commands
(which say they use it), restores a deterministic synthetic camera-shake case better than its
input (PSNR against a closed-form reference), its float16 storage round-trips within 1/255 of
float32, and `deblur --report` writes a page for photos without ground truth. A test on the public
real-blur data skips when `../shared/data` is absent."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from command_runner import run_main
from deblurgan_jax import api
from deblurgan_jax.blurring import motion_blur
from deblurgan_jax.commands import deblur, export
from deblurgan_jax.networks import models
from deblurgan_jax.utils import images
from deblurgan_jax.weights import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Closed form on uint8 images, independent of the package's metrics."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def deblurrer():
    return api.Deblurrer.pretrained()


@pytest.fixture(scope="module")
def shaken():
    """(blurred, sharp) uint8: a 128x128 crop of scikit-image's coffee photo under a fixed
    centred camera-shake kernel of the recipe's kind, and the crop itself."""
    sharp = skimage.data.coffee()[100:228, 200:328]
    rng = np.random.default_rng(7)
    kernel = motion_blur.centre_kernels(
        motion_blur.sample_kernels(rng, 1, canvas=32, max_len=16.0, expl=0.005, fractions=(1.0,))
    )[0]
    blurred = np.clip(np.round(motion_blur.blur(sharp, kernel)), 0, 255).astype(np.uint8)
    return blurred, sharp


def test_package_ships_the_weights_and_their_card():
    path = checkpoints.pretrained_path()
    assert os.path.isfile(path) and os.path.getsize(path) < 10 * 2**20
    with open(checkpoints.model_config_path(path)) as f:
        card = json.load(f)
    provenance = card["provenance"]
    assert provenance["recipe"].startswith("configs/real_cpu.py")
    assert provenance["steps"] > 0 and provenance["storage"] == "float16"
    for field in models.GENERATOR_FIELDS:
        assert field in card
    params, model_config, prov = checkpoints.load_pretrained()
    leaves = [np.asarray(x) for x in __import__("jax").tree_util.tree_leaves(params)]
    assert all(x.dtype == np.float32 for x in leaves)
    assert prov["pretrained"] == checkpoints.PRETRAINED_NAME
    assert model_config["ngf"] == card["ngf"] and model_config["n_blocks"] == card["n_blocks"]


def test_restores_camera_shake_better_than_its_input(deblurrer, shaken):
    blurred, sharp = shaken
    restored = deblurrer(blurred)
    assert restored.shape == sharp.shape and restored.dtype == np.uint8
    before, after = psnr(blurred, sharp), psnr(restored, sharp)
    assert after > before + 0.3, (before, after)
    # Real conditions: a flat grey and a saturated white patch stay almost untouched (on a flat
    # input InstanceNorm scales rounding noise up, so a few levels of texture appear).
    for value in (128, 255):
        flat = np.full((40, 48, 3), value, np.uint8)
        error = np.abs(deblurrer(flat).astype(int) - value)
        assert error.max() <= 5 and error.mean() <= 1.0, (value, error.max(), error.mean())


def test_float16_storage_stays_within_one_level_of_float32(tmp_path, shaken):
    import jax

    params, model_config, _ = checkpoints.load_pretrained()
    # Weights that float16 cannot hold exactly, as a float32 training run leaves them.
    rng = np.random.default_rng(0)
    params32 = jax.tree_util.tree_map(
        lambda a: (np.asarray(a) * (1 + 1e-3 * rng.standard_normal(np.shape(a)))).astype(
            np.float32
        ),
        params,
    )
    path16 = str(tmp_path / "g16.msgpack")
    checkpoints.save_generator(params32, model_config, path16, dtype="float16")
    params16, config16 = checkpoints.load_generator(path16)
    assert config16 == model_config
    raw = jax.tree_util.tree_leaves(params32)[0]
    assert np.array_equal(
        jax.tree_util.tree_leaves(params16)[0],
        np.asarray(raw).astype(np.float16).astype(np.float32),
    )
    blurred, _ = shaken
    out32 = api.Deblurrer(params32, model_config, conv_impl="xla")(blurred).astype(int)
    out16 = api.Deblurrer(params16, model_config, conv_impl="xla")(blurred).astype(int)
    assert np.abs(out32 - out16).max() <= 1
    assert os.path.getsize(path16) < 0.55 * 4 * sum(
        np.size(a) for a in jax.tree_util.tree_leaves(params32)
    )


def test_commands_use_the_pretrained_model_by_default(tmp_path, deblurrer, shaken):
    blurred, _ = shaken
    Image.fromarray(blurred).save(tmp_path / "shaky.png")
    r = run_main(
        deblur.main, str(tmp_path / "shaky.png"), "--out", str(tmp_path / "out"), "--noprogress"
    )
    assert r.returncode == 0, r.stderr
    assert "pretrained model" in r.stderr
    written = np.asarray(Image.open(tmp_path / "out" / "shaky.png"))
    assert np.array_equal(written, deblurrer(blurred))
    # export without a source exports the shipped weights (float16 on request).
    r = run_main(export.main, "--out", str(tmp_path / "g.msgpack"), "--dtype", "float16")
    assert r.returncode == 0, r.stderr
    assert "pretrained model" in r.stderr
    with open(checkpoints.pretrained_path(), "rb") as f, open(tmp_path / "g.msgpack", "rb") as g:
        assert f.read() == g.read()
    # Both sources at once is a usage error, nothing written.
    r = run_main(
        deblur.main,
        str(tmp_path / "shaky.png"),
        "--out",
        str(tmp_path / "o2"),
        "--params",
        str(tmp_path / "g.msgpack"),
        "--workdir",
        str(tmp_path),
    )
    assert r.returncode == 2 and "at most one" in r.stderr
    assert not os.path.exists(tmp_path / "o2")
    # --dtype only applies to params files.
    r = run_main(
        export.main, "--out", str(tmp_path / "sm"), "--format", "saved_model", "--dtype", "float16"
    )
    assert r.returncode == 2 and "--dtype" in r.stderr


def test_missing_weights_are_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", str(tmp_path))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "p.png")
    r = run_main(deblur.main, str(tmp_path / "p.png"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "pretrained model is missing" in r.stderr
    assert "Traceback" not in r.stderr and not os.path.exists(tmp_path / "o")


def test_deblur_report_for_photos_without_ground_truth(tmp_path, shaken):
    blurred, _ = shaken
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(blurred).save(photos / "a.png")
    Image.fromarray(skimage.data.camera()[:90, :70]).save(photos / "sub" / "tiny.jpg")  # grey
    Image.fromarray(np.full((9, 9, 3), 255, np.uint8)).save(photos / "flat.png")  # saturated
    out = tmp_path / "out"
    r = run_main(
        deblur.main,
        str(photos),
        "--out",
        str(out),
        "--report",
        "--noprogress",
        "--tile",
        "64",
        "--tile-overlap",
        "16",
    )
    assert r.returncode == 0, r.stderr
    html = (out / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs and all((out / ref).is_file() for ref in refs)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # nothing from the network
    for name in ("a.png", "sub/tiny.jpg", "flat.png"):
        assert name in html
    assert (out / "a.png").is_file() and (out / "sub" / "tiny.jpg").is_file()
    with Image.open(out / "sub" / "tiny.jpg") as im:
        assert im.mode == "L" and im.size == (70, 90)
    # The page is refused without --overwrite, replaced with it; an input named like the page's
    # folder is refused before anything is written.
    before = (out / "index.html").stat().st_mtime_ns
    r = run_main(deblur.main, str(photos), "--out", str(out), "--report")
    assert r.returncode == 2 and (out / "index.html").stat().st_mtime_ns == before
    r = run_main(
        deblur.main, str(photos), "--out", str(out), "--report", "--overwrite", "--noprogress"
    )
    assert r.returncode == 0, r.stderr
    clash = tmp_path / "clash"
    (clash / "report").mkdir(parents=True)
    Image.fromarray(blurred).save(clash / "report" / "x.png")
    r = run_main(deblur.main, str(clash), "--out", str(tmp_path / "o3"), "--report")
    assert r.returncode == 2 and "report" in r.stderr and not os.path.exists(tmp_path / "o3")


def test_deblur_smoke_without_params_in_a_subprocess(tmp_path, shaken):
    blurred, _ = shaken
    Image.fromarray(blurred).save(tmp_path / "photo.jpg")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deblurgan_jax.deblur",
            str(tmp_path / "photo.jpg"),
            "--out",
            str(tmp_path / "restored"),
            "--noprogress",
        ],
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "restored" / "photo.jpg").is_file()


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(SHARED_DATA, "sharp", "McMaster")),
    reason="the public image sets (../shared/data) are not present: they exist "
    "in the project's workspace and CI, not in a user's clone",
)
def test_restores_held_out_photos_under_the_recipe_blur(deblurrer):
    """Four McMaster photos (never trained on), each blurred with its own centred camera-shake
    kernel of the recipe's kind: the restored images are closer to the sharp ones on average."""
    folder = os.path.join(SHARED_DATA, "sharp", "McMaster")
    names = sorted(os.listdir(folder))[:4]
    rng = np.random.default_rng(11)
    kernels = motion_blur.centre_kernels(
        motion_blur.sample_kernels(rng, len(names), canvas=64, max_len=48.0, fractions=(0.5, 1.0))
    )
    gains = []
    for name, kernel in zip(names, kernels):
        sharp = images.load_rgb8(os.path.join(folder, name))[:256, :256]
        blurred = np.clip(np.round(motion_blur.blur(sharp, kernel)), 0, 255).astype(np.uint8)
        gains.append(psnr(deblurrer(blurred), sharp) - psnr(blurred, sharp))
    assert np.mean(gains) > 0.2, gains
