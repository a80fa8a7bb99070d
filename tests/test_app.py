"""The web app's work without a browser: a photo's download equals the Python API's result,
bad inputs (not an image, empty, corrupt, a decompression bomb, too small, unreadable videos)
give messages and the next request is still served, a video comes back frame for frame, the
shipped example photos, the command's model choice and errors, and one subprocess smoke test
(the URL printed, the page served, SIGTERM stops it). The page itself is driven in Chromium by
tests/test_browser.py."""

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from fnmatch import fnmatch

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from app_inputs import H, W, bad_photos, blurred_photo, free_port, tiny_params_file
from command_runner import run_main
from deblurgan_jax import Deblurrer
from deblurgan_jax.commands import app
from deblurgan_jax.evaluation import report
from deblurgan_jax.weights import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    return tiny_params_file(tmp_path_factory.mktemp("params"))


@pytest.fixture(scope="module")
def deblurrer(params_file):
    return Deblurrer.from_params(params_file)


@pytest.fixture
def outputs():
    out = app.Outputs()
    yield out
    out.close()
    assert not os.path.exists(out.root)


def test_photo_download_equals_the_api(deblurrer, outputs, tmp_path):
    photo = blurred_photo()
    path = tmp_path / "shaky photo.png"
    Image.fromarray(photo).save(path)
    result = app.restore_photo(deblurrer, str(path), outputs)
    assert result.download is not None, result.message
    assert os.path.basename(result.download) == "shaky photo_deblurred.png"
    downloaded = np.asarray(Image.open(result.download))
    np.testing.assert_array_equal(downloaded, deblurrer(photo))
    assert np.abs(downloaded.astype(int) - photo).mean() > 5  # the model changed the photo
    # What the page shows: the photo and its restoration (small: not shrunk), the timing.
    np.testing.assert_array_equal(result.before, photo)
    np.testing.assert_array_equal(result.after, downloaded)
    assert f"{W}x{H} pixels restored in" in result.message and result.seconds > 0
    assert str(tmp_path) not in result.message  # file names, not server paths
    # The zoom: the window report.changed_region picks, enlarged 3x, blurred | restored.
    top, left, h, w = report.changed_region(photo, downloaded, app.ZOOM_WINDOW)
    s = app.ZOOM_SCALE
    assert result.zoom.shape == (h * s, 2 * w * s + 4 * s, 3)
    np.testing.assert_array_equal(
        result.zoom[::s, : w * s : s], photo[top : top + h, left : left + w]
    )
    np.testing.assert_array_equal(
        result.zoom[::s, -w * s :: s], downloaded[top : top + h, left : left + w]
    )


def test_photo_formats_are_kept_in_the_png(deblurrer, outputs, tmp_path):
    """16-bit grayscale with alpha stays so in the download (what deblur writes)."""
    gray16 = blurred_photo()[..., 1].astype(np.uint16) * 257
    alpha = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    path = tmp_path / "gray16.png"
    import tensorflow as tf

    path.write_bytes(tf.io.encode_png(np.dstack([gray16, alpha])).numpy())
    result = app.restore_photo(deblurrer, str(path), outputs)
    assert result.download is not None, result.message
    restored = tf.io.decode_png(
        open(result.download, "rb").read(), channels=0, dtype=tf.uint16
    ).numpy()
    np.testing.assert_array_equal(restored, deblurrer(np.dstack([gray16, alpha])))
    assert result.before.dtype == np.uint8 and result.before.shape == (H, W, 3)
    np.testing.assert_array_equal(result.before[..., 0], np.round(gray16 / 257))


def test_large_photos_are_shown_shrunk_and_downloaded_full(
    deblurrer, outputs, tmp_path, monkeypatch
):
    monkeypatch.setattr(app, "PREVIEW_SIDE", 50)
    path = tmp_path / "big.png"
    Image.fromarray(blurred_photo()).save(path)
    result = app.restore_photo(deblurrer, str(path), outputs)
    assert max(result.before.shape[:2]) == 50 and max(result.after.shape[:2]) == 50
    assert Image.open(result.download).size == (W, H)
    assert "the download is full size" in result.message


def test_bad_photos_give_messages_and_the_next_photo_works(deblurrer, outputs, tmp_path):
    for name, expected in bad_photos(tmp_path).items():
        result = app.restore_photo(deblurrer, str(tmp_path / name), outputs)
        assert result.message.startswith(f"error: {name}"), (name, result.message)
        assert expected in result.message, (name, result.message)
        assert result.download is None and result.before is None
        assert str(tmp_path) not in result.message
    assert app.restore_photo(deblurrer, str(tmp_path / "good.jpg"), outputs).download
    assert "upload a photo" in app.restore_photo(deblurrer, None, outputs).message


def test_unexpected_errors_are_messages_too(deblurrer, outputs, tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    Image.fromarray(blurred_photo()).save(path)

    def broken(picture):
        raise RuntimeError("a plug-in failed")

    monkeypatch.setattr(deblurrer, "restore_picture", broken)
    result = app.restore_photo(deblurrer, str(path), outputs)
    assert result.message == (
        "error: photo.png: restoring failed (RuntimeError: a plug-in failed); the app keeps serving"
    )
    monkeypatch.setattr(
        deblurrer, "restore_picture", lambda p: (_ for _ in ()).throw(MemoryError())
    )
    assert "out of memory" in app.restore_photo(deblurrer, str(path), outputs).message


def _clip_frames():
    """(48, 64, 3) uint8 frames of a window moving 1 px to the right per frame."""
    scene = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((128, 128)))
    for i in range(64):
        yield np.ascontiguousarray(scene[40:88, i : i + 64])


def _clip(path, frames=9):
    """An MJPG .avi of `frames` frames at 12 fps, written with plain OpenCV."""
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 12, (64, 48)
    )
    for _, frame in zip(range(frames), _clip_frames()):
        writer.write(frame[..., ::-1])
    writer.release()
    return path


def test_video_comes_back_frame_for_frame(deblurrer, outputs, tmp_path):
    src = _clip(tmp_path / "walk.avi")
    result = app.restore_video(deblurrer, str(src), outputs, batch_size=4)
    assert result.path is not None and result.path.endswith("walk_deblurred.webm"), result.message
    assert result.message.startswith("walk.avi: 9 frames of 64x48 at 12 fps restored in")
    capture = cv2.VideoCapture(result.path)
    written = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        written.append(frame[..., ::-1])
    capture.release()
    expected = list(deblurrer.video(str(src), progress=False))
    inputs = [f for _, f in zip(range(9), _clip_frames())]
    assert len(written) == len(expected) == 9

    def block_means(frame):  # 8x8 blocks: what a lossy codec keeps of the model's fine noise
        return frame.astype(float).reshape(6, 8, 8, 8, 3).mean(axis=(1, 3))

    for got, want, blurred in zip(written, expected, inputs):
        to_restored = np.abs(block_means(got) - block_means(want)).mean()
        assert to_restored < 4
        assert to_restored < np.abs(block_means(got) - block_means(blurred)).mean() / 2


def test_bad_videos_give_messages(deblurrer, outputs, tmp_path):
    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.avi").write_bytes(b"RIFF" + bytes(range(256)) * 40)
    for name in ("text.mp4", "empty.mp4", "noise.avi"):
        result = app.restore_video(deblurrer, str(tmp_path / name), outputs)
        assert result.path is None and result.message.startswith(f"error: {name}"), result.message
        assert str(tmp_path) not in result.message
    for folder in os.listdir(outputs.root):  # a failed video leaves no file
        assert os.listdir(os.path.join(outputs.root, folder)) == []


def test_old_outputs_are_removed(outputs, monkeypatch):
    first = outputs.new()
    open(os.path.join(first, "x.png"), "wb").close()
    old = time.time() - app.KEEP_OUTPUTS_S - 10
    os.utime(first, (old, old))
    second = outputs.new()
    assert not os.path.exists(first) and os.path.isdir(second)


def test_example_photos_ship_small_and_readable():
    examples = app.example_photos()
    assert len(examples) >= 4
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["deblurgan_jax"]
    for path in examples:
        assert os.path.getsize(path) < 200_000, path
        rel = os.path.relpath(path, os.path.join(ROOT, "deblurgan_jax"))
        assert any(fnmatch(rel, pattern) for pattern in package_data), rel
        with Image.open(path) as image:
            assert image.mode == "RGB" and max(image.size) <= 640 and min(image.size) >= 256


# --------------------------------------------------------------------------------------------
# The command.


def test_without_a_model_the_command_says_what_to_give(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "pretrained_path", lambda: str(tmp_path / "none.msgpack"))
    result = run_main(app.main)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: no model: this installation ships no pretrained "
        "model; give --params FILE or --workdir DIR"
    )


def test_the_default_model_is_the_pretrained_one(monkeypatch, params_file):
    """Without --params/--workdir the app serves Deblurrer.pretrained() (here a params file
    standing in for the shipped one), with the command's tiling options."""
    monkeypatch.setattr(checkpoints, "pretrained_path", lambda: params_file)
    monkeypatch.setattr(
        checkpoints,
        "load_pretrained",
        lambda: (*checkpoints.load_generator(params_file), {"pretrained": "stand-in"}),
    )
    deblurrer = app.load_deblurrer(app.build_parser().parse_args(["--tile", "128"]))
    assert deblurrer.provenance == {"pretrained": "stand-in"} and deblurrer.tile == 128
    photo = blurred_photo()
    np.testing.assert_array_equal(deblurrer(photo), Deblurrer.from_params(params_file)(photo))


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["--params", "missing.msgpack"], 1, "missing.msgpack"),
        (["--params", "a", "--workdir", "b"], 2, "at most one of --workdir and --params"),
        (["--workdir", "no_such_run"], 1, "training directory not found: no_such_run"),
        (["--port", "70000", "--params", "a"], 2, "--port must be in 1..65535"),
        (["--batch-size", "0", "--params", "a"], 2, "--batch-size must be positive"),
    ],
)
def test_command_errors(argv, code, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_main(app.main, *argv)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch, params_file):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    result = run_main(app.main, "--params", params_file)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {app.INSTALL_HINT}"


def test_command_serves_the_page_and_stops_on_sigterm(params_file, tmp_path):
    """The one subprocess test: the printed URL serves the page; SIGTERM stops it (130)."""
    port = free_port()
    stderr = open(tmp_path / "stderr.txt", "w")  # a file: an unread pipe could fill and block
    proc = subprocess.Popen(
        [sys.executable, "-m", "deblurgan_jax.app", "--params", params_file, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: list[str] = []
    opened = threading.Event()

    def read_stdout():  # in a thread, so that a silent app fails the test instead of hanging it
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("open "):
                opened.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        opened.wait(timeout=300)
        assert (
            lines and lines[-1] == f"open http://127.0.0.1:{port}/ in a browser (Ctrl-C to stop)\n"
        ), (lines, (tmp_path / "stderr.txt").read_text())
        assert lines[0].startswith(f"serving model: params: {params_file}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            assert response.status == 200 and b"DeblurGAN" in response.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
        assert "interrupted" in (tmp_path / "stderr.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()


def test_readme_test_command_is_what_ci_runs():
    """The README's test command (which installs Chromium for the browser tests) is the
    command .ci/run runs."""
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = [
            line
            for line in f.read().splitlines()
            if line and not line.startswith(("#", "set ", "cd "))
        ]
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert len(ci) == 1 and "apt-get install -y -qq chromium" in ci[0]
    assert f"```bash\n{ci[0]}\n```" in readme
