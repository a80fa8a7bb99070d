"""Tests for deblurgan_jax.video: real-blur pairs from video clips, and reading/writing videos.

Test clips are made here: a crop window moving 1 px per frame to the right over a downscaled
`skimage.data.astronaut()`. The end-to-end test goes from a 240-fps clip through
`blur from-video`, training and `evaluate --save-images` (its HTML report parsed) to a Deblurrer. Expected values are computed directly with NumPy from frames decoded
with plain OpenCV (not with the module's reader), so codec losses do not matter.
"""

from __future__ import annotations

import csv
import html.parser
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from deblurgan_jax.blurring import video

W, H = 96, 64  # test clip size


# ----------------------------------------------------------------------------- helpers


def _scene() -> np.ndarray:
    return np.asarray(Image.fromarray(skdata.astronaut()).resize((128, 128), Image.BILINEAR))


def _camera_path(count: int = 21, width: int = W, height: int = H) -> list[np.ndarray]:
    """`count` RGB frames of a window moving 1 px to the right per frame."""
    scene = _scene()
    top = (scene.shape[0] - height) // 2
    return [scene[top : top + height, i : i + width].copy() for i in range(count)]


def _cv2_write(path: Path, frames_rgb, fourcc: str = "MJPG", fps: float = 24.0) -> Path:
    """Writes a clip with plain OpenCV (independent of video.VideoWriter)."""
    height, width = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height)
    )
    assert writer.isOpened()
    for frame in frames_rgb:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def _cv2_read(path: Path) -> list[np.ndarray]:
    """All frames of a clip as RGB, decoded with plain OpenCV."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1].copy())
    capture.release()
    return frames


def _direct_average(frames, gamma: float) -> np.ndarray:
    """The Nah et al. average written out: (mean of (f/255)^g)^(1/g) * 255, rounded."""
    stack = np.stack(frames).astype(np.float64) / 255.0
    return np.rint(255.0 * np.mean(stack**gamma, axis=0) ** (1.0 / gamma)).astype(np.uint8)


def _load_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 21-frame 96x64 MJPG .avi written with video.VideoWriter."""
    path = tmp_path_factory.mktemp("clips") / "walk.avi"
    with video.VideoWriter(str(path), fps=24, size=(W, H)) as writer:
        for frame in _camera_path(21):
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def clip_frames(clip) -> list[np.ndarray]:
    frames = _cv2_read(clip)
    assert len(frames) == 21
    return frames


# ----------------------------------------------------------------------------- averaging


def test_closed_form_averages():
    ten, twenty = np.full((4, 5, 3), 10, np.uint8), np.full((4, 5, 3), 20, np.uint8)
    assert np.all(video.linear_light_average([ten, twenty], gamma=1) == 15)
    black, white = np.zeros((3, 3), np.uint8), np.full((3, 3), 255, np.uint8)
    assert np.all(video.linear_light_average([black, white], gamma=2) == 180)
    assert round(255 * np.sqrt(0.5)) == 180
    # sRGB-like gamma makes the average of black and white brighter than the plain mean.
    assert np.all(
        video.linear_light_average([black, white], gamma=2.2) == round(255 * 0.5 ** (1 / 2.2))
    )
    # Gamma 1 is the plain mean rounded half to even.
    assert np.all(video.linear_light_average([ten, np.full_like(ten, 21)], gamma=1) == 16)
    assert np.all(video.linear_light_average([ten, np.full_like(ten, 11)], gamma=1) == 10)
    # ... for every pair of values (the float formula misrounds thousands of these ties).
    x, y = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8))
    np.testing.assert_array_equal(
        video.linear_light_average([x, y], gamma=1), np.rint((x.astype(int) + y) / 2)
    )


@pytest.mark.parametrize("gamma", [2.2, 1.0, 0.45, 3])
def test_average_matches_direct_computation(gamma):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (17, 13, 3), dtype=np.uint8) for _ in range(7)]
    expected = _direct_average(frames, gamma)
    result = video.linear_light_average(frames, gamma)
    assert result.dtype == np.uint8 and result.shape == (17, 13, 3)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(video.linear_light_average(np.stack(frames), gamma), expected)


def test_average_of_one_frame_is_the_frame():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for gamma in (2.2, 1, 0.7):
        np.testing.assert_array_equal(video.linear_light_average([values], gamma), values)


@pytest.mark.parametrize("gamma", [0, -2.2, float("nan"), float("inf")])
def test_average_rejects_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        video.linear_light_average([np.zeros((2, 2), np.uint8)], gamma)


def test_average_rejects_mixed_shapes_and_dtypes():
    with pytest.raises(ValueError, match="same shape"):
        video.linear_light_average([np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        video.linear_light_average([np.zeros((2, 2), np.float32)])
    with pytest.raises(ValueError):
        video.linear_light_average([])


# ----------------------------------------------------------------------------- windows


def test_blur_windows():
    assert video.blur_windows(21, 7) == [(0, 3), (7, 10), (14, 17)]
    assert video.blur_windows(21, 7, stride=2) == [(s, s + 3) for s in range(0, 15, 2)]
    assert len(video.blur_windows(21, 7, stride=2)) == 8
    assert video.blur_windows(20, 7) == [(0, 3), (7, 10)]
    assert video.blur_windows(7, 7) == [(0, 3)]
    assert video.blur_windows(6, 7) == []
    assert video.blur_windows(0, 7) == []
    assert video.blur_windows(3, 1) == [(0, 0), (1, 1), (2, 2)]
    for bad in (6, 0, -1, 2.0, True):
        with pytest.raises(ValueError):
            video.blur_windows(21, bad)
    with pytest.raises(ValueError):
        video.blur_windows(21, 7, stride=0)


def test_pairs_from_frames_streams_windows():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(21)]
    pulled = []

    def source():
        for i, frame in enumerate(frames):
            pulled.append(i)
            yield frame

    pairs = video.pairs_from_frames(source(), frames_per_pair=7, stride=2, gamma=2.2)
    assert pulled == []  # lazy
    first = next(pairs)
    assert len(pulled) == 7  # the first pair needs exactly 7 frames
    rest = list(pairs)
    assert [p[0] for p in [first] + rest] == list(range(8))
    for (index, blurred, sharp), (start, middle) in zip(
        [first] + rest, video.blur_windows(21, 7, 2)
    ):
        np.testing.assert_array_equal(blurred, _direct_average(frames[start : start + 7], 2.2))
        np.testing.assert_array_equal(sharp, frames[middle])
    with pytest.raises(ValueError):
        video.pairs_from_frames(iter(frames), frames_per_pair=4)
    with pytest.raises(ValueError):
        video.pairs_from_frames(iter(frames), gamma=0)


# ----------------------------------------------------------------------------- prepare_frame


def test_prepare_frame_crop_and_downscale():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    np.testing.assert_array_equal(video.prepare_frame(frame, None, 1), frame)
    np.testing.assert_array_equal(video.prepare_frame(frame, 32, 1), frame[16:48, 32:64])
    small = video.prepare_frame(frame, 32, 2)
    assert small.shape == (16, 16, 3) and small.dtype == np.uint8
    crop = frame[16:48, 32:64].astype(np.float64)
    for y in range(16):
        for x in range(16):
            block = crop[2 * y : 2 * y + 2, 2 * x : 2 * x + 2].reshape(4, 3)
            np.testing.assert_array_equal(small[y, x], np.rint(block.mean(axis=0)))
    # Exact 2x2 mean, rounded half to even: (1 + 2 + 2 + 2) / 4 = 1.75 -> 2; 10 / 4 = 2.5 -> 2.
    tile = np.array([[1, 2], [2, 2]], np.uint8)
    assert video.prepare_frame(tile, None, 2)[0, 0] == 2
    assert video.prepare_frame(np.array([[2, 3], [2, 3]], np.uint8), None, 2)[0, 0] == 2
    # Rows/columns that do not fill a block are dropped.
    assert video.prepare_frame(frame[:63, :95], None, 2).shape == (31, 47, 3)
    with pytest.raises(ValueError, match="crop"):
        video.prepare_frame(frame, 65, 1)
    with pytest.raises(ValueError):
        video.prepare_frame(frame, None, 0)


# ----------------------------------------------------------------------------- reading


def test_is_video_name():
    assert video.is_video_name("a.mp4") and video.is_video_name("dir/CLIP.MOV")
    assert all(video.is_video_name("x" + ext) for ext in video.VIDEO_EXTENSIONS)
    assert not video.is_video_name("a.png") and not video.is_video_name("mp4")
    assert not video.is_video_name(".clip.partial.mp4")  # hidden (a writer's temporary file)


def test_read_frames_and_probe(clip, clip_frames):
    info = video.probe(str(clip))
    assert info == video.VideoInfo(fps=24.0, frame_count=21, width=W, height=H)
    frames = list(video.read_frames(str(clip)))
    assert len(frames) == 21
    for ours, plain in zip(frames, clip_frames):
        assert ours.dtype == np.uint8 and ours.shape == (H, W, 3)
        np.testing.assert_array_equal(ours, plain)


def test_read_frames_is_rgb(tmp_path):
    """A lossless clip written as BGR by plain OpenCV reads back as the original RGB."""
    frames = _camera_path(3)
    path = _cv2_write(tmp_path / "exact.avi", frames, fourcc="FFV1")
    for ours, original in zip(video.read_frames(str(path)), frames, strict=True):
        np.testing.assert_array_equal(ours, original)


def _make_bad_inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 100)
    (tmp_path / "folder.mp4").mkdir()
    return {
        "missing": tmp_path / "missing.mp4",
        "zero": tmp_path / "zero.mp4",
        "text": tmp_path / "text.mp4",
        "folder": tmp_path / "folder.mp4",
    }


@pytest.mark.parametrize("kind", ["missing", "zero", "text", "folder"])
def test_unreadable_files_raise_video_error(tmp_path, kind):
    path = _make_bad_inputs(tmp_path)[kind]
    for call in (
        video.probe,
        lambda p: list(video.read_frames(p)),
        lambda p: video.make_pairs_from_videos([p], str(tmp_path / "out"), progress=False),
    ):
        with pytest.raises(video.VideoError) as info:
            call(str(path))
        assert str(path) in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "ext,fourcc", [(".mp4", "mp4v"), (".avi", "MJPG"), (".mkv", "mp4v"), (".avi", "FFV1")]
)
def test_truncated_video(tmp_path, ext, fourcc):
    path = _cv2_write(tmp_path / f"cut{ext}", _camera_path(21), fourcc=fourcc)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    try:
        frames = list(video.read_frames(str(path)))
    except video.VideoError as e:
        assert str(path) in str(e)
    else:
        assert 0 < len(frames) < 21
        assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    try:
        video.probe(str(path))
    except video.VideoError:
        pass
    out = tmp_path / "out"
    try:
        summary = video.make_pairs_from_videos([str(path)], str(out), progress=False)
    except video.VideoError:
        pass
    else:
        assert summary["cut"]["frames_read"] < 21


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"])
def test_writer_round_trip(tmp_path, ext):
    frames = _camera_path(9)
    path = tmp_path / f"out{ext}"
    with video.VideoWriter(str(path), fps=12.5, size=(W, H)) as writer:
        for frame in frames:
            writer.write(frame)
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left
    info = video.probe(str(path))
    assert (info.frame_count, info.width, info.height) == (9, W, H)
    assert info.fps == pytest.approx(12.5)
    decoded = _cv2_read(path)
    assert len(decoded) == 9
    # Lossy codecs: close to the frames, and in RGB order (a channel swap is far off).
    for got, want in zip(decoded, frames):
        assert np.abs(got.astype(int) - want).mean() < 12
        assert (
            np.abs(got.astype(int) - want[:, :, ::-1]).mean()
            > 2 * np.abs(got.astype(int) - want).mean()
        )


@pytest.mark.parametrize("name", ["exact.avi", "exact.mkv"])
def test_writer_lossless_codec_is_exact(tmp_path, name):
    frames = _camera_path(4)
    with video.VideoWriter(str(tmp_path / name), fps=30, codec="FFV1") as writer:
        for frame in frames:
            writer.write(frame)
    for got, want in zip(_cv2_read(tmp_path / name), frames, strict=True):
        np.testing.assert_array_equal(got, want)


def test_writer_grayscale_frames(tmp_path):
    gray = np.tile(np.arange(W, dtype=np.uint8) * 2, (H, 1))
    with video.VideoWriter(str(tmp_path / "gray.avi"), 10, (W, H), codec="FFV1") as writer:
        writer.write(gray)
        writer.write(gray[:, :, None])
    decoded = _cv2_read(tmp_path / "gray.avi")
    assert len(decoded) == 2
    for frame in decoded:
        np.testing.assert_array_equal(frame, np.repeat(gray[:, :, None], 3, axis=2))


def test_writer_exception_leaves_nothing(tmp_path):
    target = tmp_path / "never.mp4"
    with pytest.raises(RuntimeError):
        with video.VideoWriter(str(target), 24, (W, H)) as writer:
            writer.write(_camera_path(1)[0])
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []
    # An existing file is not replaced when the block fails.
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with video.VideoWriter(str(target), 24, (W, H), overwrite=True) as writer:
            writer.write(_camera_path(1)[0])
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == ["never.mp4"] and target.read_bytes() == b"old"


def test_writer_refuses_existing_path(tmp_path):
    target = tmp_path / "there.avi"
    target.write_bytes(b"keep me")
    with pytest.raises(video.VideoError, match="exists"):
        video.VideoWriter(str(target), 24, (W, H))
    assert target.read_bytes() == b"keep me"
    with video.VideoWriter(str(target), 24, (W, H), overwrite=True) as writer:
        writer.write(_camera_path(1)[0])
    assert video.probe(str(target)).frame_count == 1
    assert os.listdir(tmp_path) == ["there.avi"]


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(video.VideoError, match="extension"):
        video.VideoWriter(str(tmp_path / "a.gif"), 24, (W, H))
    with pytest.raises(video.VideoError, match="does not exist"):
        video.VideoWriter(str(tmp_path / "no" / "a.mp4"), 24, (W, H))
    with pytest.raises(video.VideoError, match="even"):
        video.VideoWriter(str(tmp_path / "odd.mp4"), 24, (W + 1, H))
    with pytest.raises(video.VideoError, match="frame rate"):
        video.VideoWriter(str(tmp_path / "a.mp4"), 0, (W, H))
    with pytest.raises(video.VideoError, match="match"):
        with video.VideoWriter(str(tmp_path / "a.mp4"), 24, (W, H)) as writer:
            writer.write(np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(video.VideoError, match="uint8"):
        with video.VideoWriter(str(tmp_path / "a.mp4"), 24, (W, H)) as writer:
            writer.write(np.zeros((H, W, 3), np.float32))
    with pytest.raises(video.VideoError, match="no frame"):
        with video.VideoWriter(str(tmp_path / "a.mp4"), 24, (W, H)):
            pass
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- data set


@pytest.mark.parametrize("gamma,stride,count", [(2.2, None, 3), (1.0, None, 3), (2.2, 2, 8)])
def test_make_pairs_matches_direct_computation(tmp_path, clip, clip_frames, gamma, stride, count):
    out = tmp_path / "gopro"
    summary = video.make_pairs_from_videos(
        [str(clip)], str(out), frames=7, stride=stride, gamma=gamma, progress=False
    )
    folder = out / "train" / "walk"
    assert summary == {
        "walk": {
            "frames_read": 21,
            "frames_expected": 21,
            "pairs": count,
            "fps": 24.0,
            "folder": str(folder),
        }
    }
    names = [f"{i:06d}.png" for i in range(count)]
    assert _files(out) == (
        {f"train/walk/blur/{n}" for n in names}
        | {f"train/walk/sharp/{n}" for n in names}
        | {"train/walk/pairs.json"}
    )
    starts = range(0, 15, stride or 7)
    for name, start in zip(names, starts, strict=True):
        blurred, sharp = _load_png(folder / "blur" / name), _load_png(folder / "sharp" / name)
        assert blurred.shape == sharp.shape == (H, W, 3) and blurred.dtype == np.uint8
        window = clip_frames[start : start + 7]
        if gamma == 1.0:
            plain = np.rint(np.stack(window).astype(np.int64).sum(0) / 7).astype(np.uint8)
            np.testing.assert_array_equal(blurred, plain)
        np.testing.assert_array_equal(blurred, _direct_average(window, gamma))
        np.testing.assert_array_equal(sharp, clip_frames[start + 3])
    # The blur is real: the averaged frame differs from the sharp middle frame.
    assert (
        np.abs(
            _load_png(folder / "blur" / names[0]).astype(int)
            - _load_png(folder / "sharp" / names[0])
        ).mean()
        > 1
    )
    settings = json.loads((folder / "pairs.json").read_text())
    assert settings["frames"] == 7 and settings["stride"] == (stride or 7)
    assert settings["gamma"] == gamma and settings["fps"] == 24.0
    assert settings["source"] == os.path.abspath(clip)


def test_make_pairs_crop_and_downscale(tmp_path, clip, clip_frames):
    out = tmp_path / "small"
    summary = video.make_pairs_from_videos(
        [str(clip)], str(out), crop=32, downscale=2, split="test", progress=False
    )
    assert summary["walk"]["pairs"] == 3
    folder = out / "test" / "walk"
    for i, start in enumerate((0, 7, 14)):
        # Independent crop + 2x2 mean of every frame, then the average.
        prepared = []
        for frame in clip_frames[start : start + 7]:
            crop = frame[16:48, 32:64].astype(np.float64)
            prepared.append(
                np.rint(crop.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
            )
        blurred = _load_png(folder / "blur" / f"{i:06d}.png")
        sharp = _load_png(folder / "sharp" / f"{i:06d}.png")
        assert blurred.shape == sharp.shape == (16, 16, 3)
        np.testing.assert_array_equal(blurred, _direct_average(prepared, 2.2))
        np.testing.assert_array_equal(sharp, prepared[3])


def test_make_pairs_progress_bar(tmp_path, clip, capsys):
    video.make_pairs_from_videos([str(clip)], str(tmp_path / "o"), progress=True)
    captured = capsys.readouterr()
    assert "21/21" in captured.err and captured.out == ""


def test_make_pairs_too_short(tmp_path):
    short = _cv2_write(tmp_path / "short.avi", _camera_path(5))
    with pytest.raises(video.VideoError, match=r"too short: 5 frames, needs at least 7") as e:
        video.make_pairs_from_videos([str(short)], str(tmp_path / "out"), progress=False)
    assert str(short) in str(e.value)
    assert not (tmp_path / "out").exists()
    summary = video.make_pairs_from_videos(
        [str(short)], str(tmp_path / "out"), frames=5, progress=False
    )
    assert summary["short"]["pairs"] == 1


@pytest.mark.parametrize(
    "settings",
    [
        dict(frames=6),
        dict(frames=0),
        dict(gamma=0),
        dict(gamma=-1.0),
        dict(stride=0),
        dict(downscale=0),
        dict(split="../x"),
    ],
)
def test_make_pairs_rejects_bad_settings(tmp_path, clip, settings):
    with pytest.raises(ValueError):
        video.make_pairs_from_videos([str(clip)], str(tmp_path / "out"), progress=False, **settings)
    assert not (tmp_path / "out").exists()


def test_make_pairs_crop_larger_than_frame(tmp_path, clip):
    with pytest.raises(ValueError, match="crop") as e:  # a setting, not a broken video
        video.make_pairs_from_videos([str(clip)], str(tmp_path / "out"), crop=W, progress=False)
    assert not isinstance(e.value, video.VideoError)
    assert str(clip) in str(e.value)
    assert not (tmp_path / "out").exists()


def test_make_pairs_refuses_non_empty_output(tmp_path, clip):
    out = tmp_path / "out"
    video.make_pairs_from_videos([str(clip)], str(out), progress=False)
    before = _snapshot(out)
    other = _cv2_write(tmp_path / "other.avi", _camera_path(7))
    # The check covers every clip before anything is written: "other" is not started either.
    with pytest.raises(FileExistsError, match="not empty"):
        video.make_pairs_from_videos([str(other), str(clip)], str(out), stride=2, progress=False)
    assert _snapshot(out) == before
    # overwrite=True rewrites the sequence; pairs of the earlier run (its pairs.json lists
    # them) that are not rewritten go.
    summary = video.make_pairs_from_videos(
        [str(clip)], str(out), stride=2, overwrite=True, progress=False
    )
    assert summary["walk"]["pairs"] == 8
    summary = video.make_pairs_from_videos([str(clip)], str(out), overwrite=True, progress=False)
    assert summary["walk"]["pairs"] == 3
    assert sorted(os.listdir(out / "train" / "walk" / "blur")) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]
    assert sorted(os.listdir(out / "train" / "walk" / "sharp")) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]
    # An existing but empty sequence folder is fine.
    (tmp_path / "out2" / "train" / "walk").mkdir(parents=True)
    video.make_pairs_from_videos([str(clip)], str(tmp_path / "out2"), progress=False)


def test_make_pairs_refuses_shared_stem(tmp_path, clip):
    (tmp_path / "a").mkdir()
    twin = _cv2_write(tmp_path / "a" / "walk.mp4", _camera_path(7), fourcc="mp4v")
    with pytest.raises(video.VideoError, match="walk"):
        video.make_pairs_from_videos([str(clip), str(twin)], str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


def test_make_pairs_two_clips(tmp_path, clip):
    other = _cv2_write(tmp_path / "run.mp4", _camera_path(14), fourcc="mp4v")
    summary = video.make_pairs_from_videos(
        [str(clip), str(other)], str(tmp_path / "o"), progress=False
    )
    assert {k: v["pairs"] for k, v in summary.items()} == {"walk": 3, "run": 2}
    assert sorted(os.listdir(tmp_path / "o" / "train")) == ["run", "walk"]


# ----------------------------------------------------------------------------- end to end


class _References(html.parser.HTMLParser):
    """Every src/href of an HTML page, the tags seen, and whether it is well-formed enough."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.script_srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "script" and "src" in attrs:
            self.script_srcs.append(attrs["src"])
        for name in ("src", "href", "srcset", "poster", "data"):
            if attrs.get(name) is not None:
                self.refs.append((tag, attrs[name]))


def check_report_links(out: Path) -> _References:
    """index.html: every image and link is relative and resolves to a written file (or an id on
    the page); nothing is loaded from the network."""
    text = (out / "index.html").read_text(encoding="utf-8")
    parser = _References()
    parser.feed(text)
    parser.close()
    lowered = text.lower()
    for remote in ("http:", "https:", "//cdn", "@import", "url("):
        assert remote not in lowered, remote
    assert "link" not in parser.tags and not parser.script_srcs
    for tag, ref in parser.refs:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc and not ref.startswith("/"), ref
        if ref.startswith("#"):
            assert ref[1:] in parser.ids, ref
        else:
            assert (out / unquote(parts.path)).is_file(), ref
    return parser


def _pan_clip(path: Path, start: int, count: int = 21) -> Path:
    """A 240-fps clip of the scene seen by a camera moving 2 px right and 1 px down per frame
    (about 500 px/s right, the speed of a hand-held pan)."""
    scene, width, height = _scene(), 64, 48
    with video.VideoWriter(str(path), fps=240, size=(width, height)) as writer:
        for i in range(count):
            top, left = start + i // 2, start + 2 * i
            writer.write(scene[top : top + height, left : left + width])
    return path


def test_video_to_gopro_folder_to_training_to_evaluation(tmp_path):
    """The acceptance path: blur from-video (train and test clips) -> train.py's training on
    the GoPro folder (tiny config) -> evaluate --layout gopro --save-images, then the Deblurrer
    of the run."""
    import skimage.metrics

    from configs import tiny
    from deblurgan_jax import Deblurrer
    from deblurgan_jax.commands import blur, evaluate
    from deblurgan_jax.weights import checkpoints
    from deblurgan_jax.networks import inference, models
    from deblurgan_jax.training import train

    root = tmp_path / "gopro"
    for split, start in (("train", 0), ("test", 16)):
        clip = _pan_clip(tmp_path / f"pan_{split}.mp4", start)
        assert (
            blur.main(
                [
                    "from-video",
                    str(clip),
                    "--out",
                    str(root),
                    "--frames",
                    "7",
                    "--split",
                    split,
                    "--noprogress",
                ]
            )
            == 0
        )
        names = sorted(os.listdir(root / split / f"pan_{split}" / "blur"))
        assert names == ["000000.png", "000001.png", "000002.png"]
        assert sorted(os.listdir(root / split / f"pan_{split}" / "sharp")) == names

    config = tiny.get_config()
    config.data.source, config.data.root = "gopro", str(root)
    config.num_steps, config.checkpoint_every = 2, 2
    # Half the compile time of the tiny defaults (one critic step per generator step, XLA's own
    # convolutions); the data path under test is the same.
    config.n_critic, config.model.conv_impl = 1, "xla"
    workdir = tmp_path / "run"
    state = train.train_and_evaluate(config, str(workdir), progress=False)

    out = tmp_path / "eval"
    assert (
        evaluate.main(
            [
                "--workdir",
                str(workdir),
                "--data",
                str(root),
                "--layout",
                "gopro",
                "--out",
                str(out),
                "--save-images",
                "--metrics",
                "psnr,ssim",
                "--noprogress",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 3 and summary["complete"] is True
    assert summary["source"]["step"] == 2
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    # The blurred image's PSNR, recomputed with scikit-image from the pair files.
    sequence = root / "test" / "pan_test"
    for row in rows:
        name = os.path.basename(row["name"])
        want = skimage.metrics.peak_signal_noise_ratio(
            _load_png(sequence / "sharp" / name),
            _load_png(sequence / "blur" / name),
            data_range=255,
        )
        assert float(row["psnr_blurred"]) == pytest.approx(want, abs=1e-3)
    # The report: one section per image, every picture and link resolves, nothing remote.
    parser = check_report_links(out)
    images = [ref for tag, ref in parser.refs if tag == "img"]
    assert len(images) >= 3 * 3 and len(set(images)) >= 3 * 6

    # The run as a Deblurrer equals the trained params restored directly.
    deblurrer = Deblurrer.from_workdir(str(workdir), which="latest")
    assert deblurrer.provenance["step"] == 2
    blurred = _load_png(sequence / "blur" / "000001.png")
    generator = models.build_generator(checkpoints.generator_config(config), conv_impl="xla")
    x = blurred.astype(np.float32) / 127.5 - 1.0
    y = np.asarray(inference.restore(generator, state.g_params, x[None]))[0]
    want = np.round((np.clip(y, -1, 1) + 1) / 2 * 255)
    assert np.abs(deblurrer(blurred).astype(int) - want).max() <= 1
    with pytest.raises(checkpoints.RunError, match="which='latest'"):
        Deblurrer.from_workdir(str(workdir))  # 'best' needs an evaluated checkpoint
