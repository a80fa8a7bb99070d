"""The deblur command: file formats kept (EXIF orientation, grayscale, alpha, 16-bit), bad inputs
skipped and listed, outputs never written over inputs or existing files, tiles; videos restored
frame by frame (read back with plain OpenCV), side by side, truncated videos skipped."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image, ImageOps

from deblurgan_jax import api
from deblurgan_jax.weights import checkpoints
from deblurgan_jax.commands import deblur
from deblurgan_jax.utils import images
from deblurgan_jax.networks import inference, models
from deblurgan_jax.blurring import video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _photo(h, w, top=0):
    return skimage.data.astronaut()[top : top + h, 100 : 100 + w]


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _png16(path, pixels):
    tf.io.write_file(str(path), tf.io.encode_png(pixels))


def _png_depth(path):
    with open(path, "rb") as f:
        return f.read(26)[24]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    path = str(tmp_path / "o.png")
    Image.fromarray(_photo(12, 20)).save(path, exif=_exif(orientation))
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(images.read_picture(path).color, want)


@pytest.fixture
def inputs(tmp_path):
    """A folder of every kind of input, plus two broken files."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(_photo(24, 40)).save(d / "rotated.jpg", exif=_exif(6), quality=95)
    Image.fromarray(_photo(32, 40)[..., 0]).save(d / "gray.png")
    rgba = np.concatenate(
        [_photo(32, 36), np.arange(32 * 36, dtype=np.uint8).reshape(32, 36, 1)], axis=-1
    )
    Image.fromarray(rgba).save(d / "rgba.png")
    Image.fromarray(
        np.stack([_photo(28, 32)[..., 1], np.full((28, 32), 77, np.uint8)], -1), mode="LA"
    ).save(d / "sub" / "la.png")
    Image.fromarray(_photo(24, 24)).convert("P").save(d / "palette.png")
    gray16 = (np.linspace(0, 65535, 32 * 44).reshape(32, 44)).astype(np.uint16)
    Image.fromarray(gray16).save(d / "gray16.png")
    rgba16 = _photo(36, 28, 50).astype(np.uint16) * 257 + 100
    alpha16 = np.arange(36 * 28, dtype=np.uint16).reshape(36, 28, 1) * 50
    _png16(d / "sub" / "rgba16.png", np.concatenate([rgba16, alpha16], -1))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    good_jpeg = tmp_path / "whole.jpg"
    Image.fromarray(_photo(64, 64)).save(good_jpeg)
    (d / "cut.jpg").write_bytes(good_jpeg.read_bytes()[:300])
    return d


def test_formats_are_kept_and_bad_files_skipped(params_file, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    missing = str(tmp_path / "nope.png")
    code = deblur.main(
        ["--params", params_file, str(inputs), missing, "--out", str(out), "--noprogress"]
    )
    err = capsys.readouterr().err
    assert code == 1
    for name in ("broken.png", "cut.jpg", "nope.png"):
        assert name in err
    assert not (out / "broken.png").exists() and not (out / "cut.jpg").exists()

    rotated = Image.open(out / "rotated.jpg")
    assert rotated.size == (24, 40) and rotated.mode == "RGB"  # upright, 40 high
    assert 0x0112 not in rotated.getexif() or rotated.getexif()[0x0112] == 1
    assert Image.open(out / "gray.png").mode == "L"
    rgba_in, rgba_out = Image.open(inputs / "rgba.png"), Image.open(out / "rgba.png")
    assert rgba_out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(rgba_out)[..., 3], np.asarray(rgba_in)[..., 3])
    la = Image.open(out / "sub" / "la.png")
    assert la.mode == "LA" and np.all(np.asarray(la)[..., 1] == 77)
    assert Image.open(out / "palette.png").mode == "RGB"

    # 16 bits stay 16 bits, and carry more than 8 bits of the result.
    assert _png_depth(out / "gray16.png") == 16
    gray16 = np.asarray(Image.open(out / "gray16.png"))
    assert gray16.dtype == np.uint16 and gray16.shape == (32, 44) and np.any(gray16 % 257)
    picture = images.read_picture(str(inputs / "gray16.png"))
    params, config = checkpoints.load_generator(params_file)
    restored = inference.restore(
        models.build_generator(config), params, images.to_model_input(picture)[None]
    )[0]
    want = images.from_model_output(np.asarray(restored), picture).color
    assert np.abs(gray16.astype(int) - want).max() <= 2
    assert _png_depth(out / "sub" / "rgba16.png") == 16
    rgba16 = tf.io.decode_png(
        tf.io.read_file(str(out / "sub" / "rgba16.png")), dtype=tf.uint16
    ).numpy()
    alpha_in = tf.io.decode_png(
        tf.io.read_file(str(inputs / "sub" / "rgba16.png")), dtype=tf.uint16
    ).numpy()[..., 3]
    assert rgba16.shape == (36, 28, 4)
    np.testing.assert_array_equal(rgba16[..., 3], alpha_in)


def test_never_overwrites_inputs_or_outputs(params_file, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_photo(32, 32)).save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    # --out pointing at the input folder would replace the input: refused, nothing written.
    assert (
        deblur.main(["--params", params_file, str(folder), "--out", str(folder), "--noprogress"])
        == 2
    )
    assert "would overwrite the input" in capsys.readouterr().err
    assert (folder / "a.png").read_bytes() == before
    out = tmp_path / "out"
    assert (
        deblur.main(
            ["--params", params_file, str(folder / "a.png"), "--out", str(out), "--noprogress"]
        )
        == 0
    )
    first = (out / "a.png").read_bytes()
    (out / "a.png").write_bytes(b"keep me")
    assert (
        deblur.main(["--params", params_file, str(folder), "--out", str(out), "--noprogress"]) == 2
    )
    assert "exist already" in capsys.readouterr().err
    assert (out / "a.png").read_bytes() == b"keep me"
    assert (
        deblur.main(
            ["--params", params_file, str(folder), "--out", str(out), "--overwrite", "--noprogress"]
        )
        == 0
    )
    assert (out / "a.png").read_bytes() == first
    # Two inputs with the same name would collide in --out: refused.
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(_photo(32, 32, 10)).save(other / "a.png")
    assert (
        deblur.main(
            [
                "--params",
                params_file,
                str(folder / "a.png"),
                str(other / "a.png"),
                "--out",
                str(tmp_path / "out2"),
                "--noprogress",
            ]
        )
        == 2
    )
    assert "both be written" in capsys.readouterr().err


def test_tiles_give_the_untiled_result(params_file, tmp_path):
    photo = tmp_path / "big.png"
    Image.fromarray(skimage.data.coffee()[:150, :203]).save(photo)
    for tile in (0, 128):
        assert (
            deblur.main(
                [
                    "--params",
                    params_file,
                    str(photo),
                    "--out",
                    str(tmp_path / f"t{tile}"),
                    "--tile",
                    str(tile),
                    "--noprogress",
                ]
            )
            == 0
        )
    whole = np.asarray(Image.open(tmp_path / "t0" / "big.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "t128" / "big.png")).astype(int)
    assert whole.shape == (150, 203, 3) and np.abs(whole - tiled).max() <= 1


def test_truncated_params_file_is_a_clear_error(params_file, tmp_path):
    cut = tmp_path / "cut.msgpack"
    with open(params_file, "rb") as f:
        cut.write_bytes(f.read()[:2000])
    photo = tmp_path / "a.png"
    Image.fromarray(_photo(32, 32)).save(photo)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deblurgan_jax.deblur",
            "--params",
            str(cut),
            str(photo),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1  # a run failure, as in evaluate and export (cli.py)
    assert "error:" in r.stderr and str(cut) in r.stderr and "truncated" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out" / "a.png").exists()


def test_deblur_and_its_help_start_without_tensorflow(params_file, tmp_path):
    """Photos are read with Pillow, so deblurring one loads no TensorFlow, and --help loads
    neither TensorFlow nor JAX (the command starts in a fraction of the time)."""
    photo = tmp_path / "a.png"
    Image.fromarray(_photo(32, 32)).save(photo)
    code = (
        "import runpy, sys\n"
        "code = None\n"
        "try:\n"
        "    runpy.run_module('deblurgan_jax.deblur', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print('exit', code, sorted({'tensorflow', 'jax'} & set(sys.modules)))\n"
    )

    def run(*args):
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    r = run("--help")
    assert r.stdout.strip().endswith("exit 0 []"), r.stderr
    r = run("--params", params_file, str(photo), "--out", str(tmp_path / "out"))
    assert r.stdout.strip().endswith("exit 0 ['jax']"), r.stderr
    assert (tmp_path / "out" / "a.png").exists()


# --------------------------------------------------------------------------------------------
# Videos.

W, H, FRAMES, FPS = 64, 48, 12, 24.0


def _clip(path, frames=FRAMES):
    """A camera panning 1 px per frame over the astronaut, written with video.VideoWriter."""
    with video.VideoWriter(str(path), fps=FPS, size=(W, H)) as writer:
        for i in range(frames):
            writer.write(skimage.data.astronaut()[100 : 100 + H, 120 + i : 120 + i + W])
    return path


def _cv2_frames(path):
    """(frames as RGB, fps) decoded with plain OpenCV (not the module under test)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    capture.release()
    return frames, fps


def _blocks(image, k=8):
    """Means of k x k blocks (what a lossy codec keeps)."""
    h, w = image.shape[0] // k, image.shape[1] // k
    return image[: h * k, : w * k].astype(float).reshape(h, k, w, k, -1).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def deblurrer(params_file):
    return api.Deblurrer.from_params(params_file)


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_video_keeps_frame_count_size_and_fps(params_file, deblurrer, tmp_path, ext, capsys):
    clip = _clip(tmp_path / f"clip{ext}")
    out = tmp_path / "out"
    assert (
        deblur.main(["--params", params_file, str(clip), "--out", str(out), "--batch-size", "5"])
        == 0
    )  # 12 frames: batches of 5, 5 and 2 (+3 pad)
    captured = capsys.readouterr()
    assert "audio is not carried" in captured.err and "frame/s" in captured.err
    frames, fps = _cv2_frames(out / clip.name)
    assert len(frames) == FRAMES and fps == pytest.approx(FPS)
    assert all(f.shape == (H, W, 3) for f in frames)
    # Each frame is the restoration of the decoded input frame, up to the codec's loss (compared
    # as 8x8 block means: the lossy codecs keep those, not the random generator's fine texture),
    # and in order; the generator changes the frames far more than that (the test can fail).
    inputs, _ = _cv2_frames(clip)
    wants = [_blocks(deblurrer(np.ascontiguousarray(frame))) for frame in inputs]
    for i, (got, frame) in enumerate(zip(frames, inputs)):
        errors = [np.abs(_blocks(got) - want).mean() for want in wants]
        assert errors[i] < 2.5 and int(np.argmin(errors)) == i
        assert np.abs(_blocks(frame) - wants[i]).mean() > 6


def test_video_side_by_side_and_folders(params_file, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _clip(folder / "sub" / "walk.avi")
    Image.fromarray(_photo(32, 40)).save(folder / "still.png")
    (folder / "notes.txt").write_text("not an input")
    out = tmp_path / "out"
    assert (
        deblur.main(
            [
                "--params",
                params_file,
                str(folder),
                "--out",
                str(out),
                "--side-by-side",
                "--noprogress",
            ]
        )
        == 0
    )
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "still.png",
        os.path.join("sub", "walk.avi"),
    ]
    frames, fps = _cv2_frames(out / "sub" / "walk.avi")
    inputs, _ = _cv2_frames(folder / "sub" / "walk.avi")
    assert len(frames) == FRAMES and fps == pytest.approx(FPS)
    assert frames[0].shape == (H, 2 * W, 3)
    for got, frame in zip(frames, inputs):  # left: the input; right: not the input
        assert np.abs(_blocks(got[:, :W]) - _blocks(frame)).mean() < 2.5
        assert np.abs(_blocks(got[:, W:]) - _blocks(frame)).mean() > 6
    # The video exists now: refused without --overwrite, like images.
    assert (
        deblur.main(["--params", params_file, str(folder), "--out", str(out), "--noprogress"]) == 2
    )


def test_truncated_and_corrupt_videos_are_skipped(params_file, tmp_path, capsys):
    whole = _clip(tmp_path / "whole.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(whole[: len(whole) * 2 // 3])  # opens, ends early
    (tmp_path / "half.avi").write_bytes(whole[: len(whole) // 2])  # does not open
    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    Image.fromarray(_photo(32, 40)).save(tmp_path / "still.png")
    out = tmp_path / "out"
    names = ["cut.avi", "half.avi", "text.mp4", "still.png"]
    code = deblur.main(
        [
            "--params",
            params_file,
            *(str(tmp_path / n) for n in names),
            "--out",
            str(out),
            "--noprogress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "3 input(s) skipped" in err
    for name in names[:3]:
        assert str(tmp_path / name) in err
    assert "of the 12 frames the file announces could be decoded (truncated" in err
    # The image was still written; no video, and no partial file left behind.
    assert sorted(os.listdir(out)) == ["still.png"]
