"""The Python API (deblurgan_jax.Deblurrer): the deblur command's results for arrays and PIL
images of a size that is not a multiple of 4, against a direct computation; training runs,
official PyTorch checkpoints (against the PyTorch generator itself), videos as iterators, odd
sizes, bad input, and the README's five-line example run as written in the class docstring."""

import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import torch_reference as ref
from deblurgan_jax import Deblurrer, api
from deblurgan_jax.weights import checkpoints
from deblurgan_jax.commands import deblur
from deblurgan_jax.networks import inference, models
from deblurgan_jax.blurring import video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 47, 61  # not multiples of 4


@pytest.fixture(scope="module")
def params_file(tiny_generator_file):
    return tiny_generator_file(seed=3)


@pytest.fixture(scope="module")
def deblurrer(params_file):
    return Deblurrer.from_params(params_file)


def _photo():
    return skimage.data.astronaut()[80 : 80 + H, 150 : 150 + W]


def _rgba():
    alpha = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    return np.dstack([_photo(), alpha])


def _direct(params_file, rgb8, max_value=255):
    """The restoration written out: [-1, 1] in, generator, quantised back (no images.py)."""
    params, config = checkpoints.load_generator(params_file)
    x = rgb8.astype(np.float32) / (max_value / 2.0) - 1.0
    y = np.asarray(
        inference.restore(
            models.build_generator(config, conv_impl="xla"), params, jnp.asarray(x[None])
        )
    )[0]
    return np.round((np.clip(y, -1, 1) + 1) / 2 * max_value)


@pytest.fixture(scope="module")
def command_outputs(params_file, tmp_path_factory):
    """What `deblur` writes for an RGB, a grayscale and an RGBA PNG of 61x47 pixels."""
    root = tmp_path_factory.mktemp("command")
    inputs = root / "in"
    inputs.mkdir()
    Image.fromarray(_photo()).save(inputs / "rgb.png")
    Image.fromarray(_photo()[..., 1]).save(inputs / "gray.png")
    Image.fromarray(_rgba()).save(inputs / "rgba.png")
    assert (
        deblur.main(
            ["--params", params_file, str(inputs), "--out", str(root / "out"), "--noprogress"]
        )
        == 0
    )
    return {
        name: np.asarray(Image.open(root / "out" / f"{name}.png"))
        for name in ("rgb", "gray", "rgba")
    }


def test_arrays_give_what_the_command_writes(deblurrer, command_outputs, params_file):
    rgb = deblurrer(_photo())
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, command_outputs["rgb"])
    # Against the restoration written out directly (float rounding may move a level).
    assert np.abs(rgb.astype(int) - _direct(params_file, _photo())).max() <= 1
    assert np.abs(rgb.astype(int) - _photo()).mean() > 5  # the generator changes the image

    gray = deblurrer(_photo()[..., 1])
    assert gray.shape == (H, W) and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, command_outputs["gray"])
    luma = _direct(params_file, np.repeat(_photo()[..., 1:2], 3, -1)) / 255 @ [0.299, 0.587, 0.114]
    assert np.abs(gray.astype(int) - np.round(luma * 255)).max() <= 1
    np.testing.assert_array_equal(deblurrer(_photo()[..., 1:2])[..., 0], gray)  # (H, W, 1)

    rgba = deblurrer(_rgba())
    assert rgba.shape == (H, W, 4)
    np.testing.assert_array_equal(rgba, command_outputs["rgba"])
    np.testing.assert_array_equal(rgba[..., 3], _rgba()[..., 3])  # alpha untouched
    np.testing.assert_array_equal(rgba[..., :3], rgb)

    gray_alpha = deblurrer(np.dstack([_photo()[..., 1], _rgba()[..., 3]]))
    np.testing.assert_array_equal(gray_alpha[..., 0], gray)
    np.testing.assert_array_equal(gray_alpha[..., 1], _rgba()[..., 3])


def test_pil_images_give_what_the_command_writes(deblurrer, command_outputs):
    for mode, pixels, name in (
        ("RGB", _photo(), "rgb"),
        ("L", _photo()[..., 1], "gray"),
        ("RGBA", _rgba(), "rgba"),
    ):
        out = deblurrer(Image.fromarray(pixels))
        assert isinstance(out, Image.Image) and out.mode == mode and out.size == (W, H)
        np.testing.assert_array_equal(np.asarray(out), command_outputs[name])
    # A palette image comes back as RGB (a palette cannot hold the result).
    out = deblurrer(Image.fromarray(_photo()).convert("P"))
    assert out.mode == "RGB" and out.size == (W, H)


def test_sixteen_bit_arrays_and_images(deblurrer, params_file):
    photo16 = _photo().astype(np.uint16) * 257 + 128
    out = deblurrer(photo16)
    assert out.dtype == np.uint16 and out.shape == (H, W, 3)
    assert np.abs(out.astype(int) - _direct(params_file, photo16, 65535)).max() <= 300
    assert np.any(out % 257)  # more than 8 bits of the result
    gray16 = Image.fromarray(photo16[..., 0])
    assert gray16.mode == "I;16"
    out = deblurrer(gray16)
    assert out.mode == "I;16" and out.size == (W, H)
    np.testing.assert_array_equal(np.asarray(out), deblurrer(photo16[..., 0]))


def test_bad_input_is_a_clear_error(deblurrer):
    with pytest.raises(TypeError, match="uint8 or uint16"):
        deblurrer(_photo().astype(np.float32) / 255)
    with pytest.raises(ValueError, match="too small"):
        deblurrer(np.zeros((5, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        deblurrer(np.zeros((16, 16, 5), np.uint8))
    with pytest.raises(TypeError, match="NumPy array or a PIL image"):
        deblurrer(_photo().tolist())
    with pytest.raises(ValueError, match="tile"):
        Deblurrer(deblurrer.params, deblurrer.model_config, tile=30)


def test_flat_and_saturated_images(deblurrer):
    for value in (0, 255, 128):
        out = deblurrer(np.full((16, 24, 3), value, np.uint8))
        assert out.shape == (16, 24, 3) and out.dtype == np.uint8


def test_tiles_and_deblur_file(deblurrer, params_file, tmp_path):
    tiled = Deblurrer.from_params(params_file, tile=128)
    photo = skimage.data.coffee()[:150, :203]
    assert np.abs(tiled(photo).astype(int) - deblurrer(photo)).max() <= 1
    src, dst = tmp_path / "a.png", tmp_path / "out" / "a.png"
    Image.fromarray(_photo()).save(src)
    deblurrer.deblur_file(src, dst)
    np.testing.assert_array_equal(np.asarray(Image.open(dst)), deblurrer(_photo()))
    with pytest.raises(FileExistsError):
        deblurrer.deblur_file(src, dst)
    with pytest.raises(FileExistsError):
        deblurrer.deblur_file(src, src, overwrite=True)


# --------------------------------------------------------------------------------------------
# Videos.


def _frames(n, height=48, width=64):
    scene = skimage.data.astronaut()
    return [scene[100 : 100 + height, 120 + i : 120 + i + width].copy() for i in range(n)]


def test_video_iterator_equals_frame_by_frame(deblurrer):
    frames = _frames(7)
    # Batches of 3: 3, 3 and 1 frame (padded); then a frame of another size.
    restored = list(deblurrer.video(frames + _frames(1, 40, 56), batch_size=3, progress=False))
    assert len(restored) == 8 and restored[-1].shape == (40, 56, 3)
    for got, frame in zip(restored, frames + _frames(1, 40, 56)):  # batches round differently
        assert np.abs(got.astype(int) - deblurrer(frame)).max() <= 1
    pairs = list(deblurrer.video(frames[:2], side_by_side=True, progress=False))
    assert pairs[1].shape == (48, 128, 3)
    np.testing.assert_array_equal(pairs[1][:, :64], frames[1])
    assert np.abs(pairs[1][:, 64:].astype(int) - restored[1]).max() <= 1
    with pytest.raises(ValueError, match="batch_size"):
        deblurrer.video(frames, batch_size=0)


def test_video_of_odd_size_is_written_cropped_to_even(deblurrer, tmp_path, capsys):
    frames = _frames(5, 47, 61)
    result = deblurrer.video(frames, str(tmp_path / "odd.avi"), fps=12, progress=False)
    assert "61x47 frames are written as 60x46" in capsys.readouterr().err
    assert (result.frames, result.width, result.height, result.fps) == (5, 60, 46, 12)
    assert result.cropped_from == (61, 47)
    info = video.probe(str(tmp_path / "odd.avi"))
    assert (info.width, info.height, info.frame_count) == (60, 46, 5)


def test_truncated_video_raises_after_the_decodable_frames(deblurrer, tmp_path):
    path = tmp_path / "cut.avi"
    with video.VideoWriter(str(path), fps=24) as writer:
        for frame in _frames(12):
            writer.write(frame)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    seen = []
    with pytest.raises(video.VideoError, match="truncated") as info:
        for frame in deblurrer.video(str(path), progress=False):
            seen.append(frame)
    assert str(path) in str(info.value) and 0 < len(seen) < 12
    with pytest.raises(video.VideoError):
        deblurrer.video(str(path), str(tmp_path / "out.avi"), progress=False)
    assert os.listdir(tmp_path) == ["cut.avi"]  # no output, no partial file
    with pytest.raises(video.VideoError, match="no such file"):
        deblurrer.video(str(tmp_path / "missing.mp4"))


# --------------------------------------------------------------------------------------------
# Official checkpoints (from_workdir is tested on a trained run in tests/test_video.py's
# end-to-end test, which trains anyway).


def test_from_official_matches_the_pytorch_generator(tmp_path):
    torch.manual_seed(0)
    net = ref.randomize_biases(ref.ResnetGenerator(ngf=8, n_blocks=2), scale=0.5).eval()
    pth = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), pth)
    deblurrer = Deblurrer.from_official(pth)
    assert deblurrer.model_config["ngf"] == 8 and deblurrer.model_config["n_blocks"] == 2
    photo = _photo()[:44, :60]  # the PyTorch generator needs multiples of 4
    with torch.no_grad():
        y = ref.nhwc(net(ref.nchw(photo[None].astype(np.float32) / 127.5 - 1.0)))[0]
    want = np.round((y + 1) / 2 * 255)
    got = deblurrer(photo).astype(int)
    assert np.abs(got - want).max() <= 1 and np.abs(got - photo).mean() > 5


def test_from_official_without_torch_is_a_clear_error(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(ImportError, match="pip install torch"):
        Deblurrer.from_official(tmp_path / "g.pth")


# --------------------------------------------------------------------------------------------
# The README example and a cheap import.


def _docstring_example() -> str:
    """The indented code block of Deblurrer's docstring (the README shows the same lines)."""
    lines = inspect.cleandoc(api.Deblurrer.__doc__).split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("    from deblurgan_jax"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return textwrap.dedent("\n".join(lines[start:end]))


def test_readme_example_runs(params_file, tmp_path, monkeypatch):
    code = _docstring_example()
    assert len(code.splitlines()) == 5, code
    for suffix in ("msgpack", "json"):
        os.link(params_file[: -len("msgpack")] + suffix, tmp_path / f"generator.{suffix}")
    Image.fromarray(_photo()).save(tmp_path / "shaky.jpg")
    with video.VideoWriter(str(tmp_path / "shaky.mp4"), fps=30) as writer:
        for frame in _frames(4):
            writer.write(frame)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README example", "exec"), {})
    assert Image.open(tmp_path / "sharp.jpg").size == (W, H)
    info = video.probe(str(tmp_path / "sharp.mp4"))
    assert (info.frame_count, info.width, info.height, info.fps) == (4, 64, 48, 30)


def test_importing_the_package_is_cheap():
    code = (
        "import sys, deblurgan_jax; heavy = {'jax', 'tensorflow', 'flax', 'torch'}; "
        "print(sorted(heavy & set(sys.modules))); "
        "from deblurgan_jax import Deblurrer; print(Deblurrer.__module__)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "deblurgan_jax.api"]
