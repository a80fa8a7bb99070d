"""Video files: GoPro-style real-blur training pairs from high-frame-rate clips, and frames in/out.

Real blur from sharp video (Nah, Kim and Lee, "Deep Multi-scale Convolutional Neural Network for
Dynamic Scene Deblurring", CVPR 2017 -- the GoPro data set): a camera filming at a high frame
rate (240 fps for GoPro) takes many short, nearly sharp exposures. Averaging `frames` consecutive
frames simulates one long exposure of the same moving scene, with the real camera shake and the
real object motion of the clip. The averaging is done on light, not on pixel values: each frame is
taken to linear light with an inverse gamma, the frames are averaged, and the mean is brought back
with the gamma,

    blurred = round(255 * mean_k((frame_k / 255) ** gamma) ** (1 / gamma)),

in float64. `gamma` 2.2 approximates the sRGB camera response (what Nah et al. use); gamma 1 is
the plain mean of the pixel values (rounded half to even). The sharp target of a pair is the
middle frame of its window, so `frames` must be odd. Windows of `frames` consecutive frames start
every `stride` frames (default `frames`: windows do not overlap, as in GoPro).

`make_pairs_from_videos` writes the GoPro folder layout that `deblurgan_jax.data` reads:

    OUT/<split>/<clip file stem>/blur/000000.png, 000001.png, ...
    OUT/<split>/<clip file stem>/sharp/000000.png, 000001.png, ...   (same names as blur/)
    OUT/<split>/<clip file stem>/pairs.json       (the settings used and the files written)

A sequence folder is written all or nothing (built hidden beside it, then swapped in), and
`overwrite` replaces only the pair files its pairs.json lists: a folder whose blur/ or sharp/
hold anything else (a real GoPro copy) is refused.

Every frame can first be centre-cropped to a square and/or box-downscaled by an integer factor
(`prepare_frame`); the same is done to the blurred and the sharp image since it is done to each
frame before the averaging.

Frames are uint8 RGB (H, W, 3) NumPy arrays everywhere in this module (OpenCV's BGR stays inside).
Videos are read and written with OpenCV's bundled FFmpeg. What this build (opencv-python-headless
4.14) writes and reads back, as tested: `.mp4`/`.m4v`/`.mov` with 'mp4v' (MPEG-4 part 2), `.avi`
with 'MJPG', `.mkv` with 'mp4v', `.webm` with 'VP80' (VP8); all of these are lossy. Lossless
choices that round-trip exactly: 'FFV1' or 'png ' in `.avi` or `.mkv` (pass `codec=`). H.264
('avc1') is not available. OpenCV's FFmpeg writer silently drops the last column/row of frames of
odd width/height, so `VideoWriter` refuses odd sizes instead.

This module is in the lowest layer of the package: it imports only `deblurgan_jax.utils`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

from deblurgan_jax.utils import files

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
# Used when a container stores no frame rate (OpenCV reports 0) but has frames.
DEFAULT_FPS = 30.0
# Codecs (FourCC) tried in order for each extension when writing.
WRITER_CODECS = {
    ".mp4": ("mp4v",),
    ".m4v": ("mp4v",),
    ".mov": ("mp4v",),
    ".avi": ("MJPG",),
    ".mkv": ("mp4v", "XVID"),
    ".webm": ("VP80", "VP90"),
}
# Containers whose frame count is estimated from the duration (not counted in an index): one
# frame fewer than announced is rounding, not truncation.
ESTIMATED_COUNT_EXTENSIONS = (".mkv", ".webm")


class VideoError(ValueError):
    """A video that cannot be read (missing, corrupt, too short) or written; names the file."""


def _cv2():
    # FFmpeg's and OpenCV's own log lines ("moov atom not found", "[ WARN:0@...]") would precede
    # the VideoError that says the same in words. FFmpeg's level is read when the first video is
    # opened, OpenCV's when it is imported.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - it is a runtime dependency
        raise VideoError(
            "reading and writing videos needs OpenCV: pip install opencv-python-headless"
        ) from e
    # The variable only counts when OpenCV is first imported; another package may have been first.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


def is_video_name(name: str) -> bool:
    """True for a file name with one of VIDEO_EXTENSIONS (any case); hidden files are skipped."""
    base = os.path.basename(os.fspath(name))
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in VIDEO_EXTENSIONS


# ----------------------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int  # as the container reports it (decoded frames counted when it reports none)
    width: int
    height: int


def _open_capture(path: str):
    """An opened cv2.VideoCapture (FFmpeg backend) for `path`, or VideoError."""
    cv2 = _cv2()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise VideoError(f"{path}: not a file")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes)")
    try:
        # FFmpeg named explicitly: the default backend list would also try the image-sequence
        # reader, which treats a '%' in the name as a frame-number pattern.
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    except cv2.error as e:
        raise VideoError(f"{path}: cannot open the video ({e})") from e
    if not capture.isOpened():
        capture.release()
        raise VideoError(
            f"{path}: cannot open the video (not a video file, corrupt or an unsupported format)"
        )
    return capture


def _read(capture, path: str) -> np.ndarray | None:
    """The next frame as RGB uint8, or None at the end of the stream."""
    cv2 = _cv2()
    try:
        ok, frame = capture.read()
    except cv2.error as e:
        raise VideoError(f"{path}: cannot decode the video ({e})") from e
    if not ok or frame is None:
        return None
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.dtype != np.uint8:  # OpenCV converts to 8 bits by default; be safe anyway.
        frame = (frame.astype(np.float64) * (255.0 / np.iinfo(frame.dtype).max)).round()
        frame = frame.astype(np.uint8)
    return np.ascontiguousarray(frame[:, :, ::-1])


def probe(path: str) -> VideoInfo:
    """Frame rate, frame count and size of a video; VideoError when no frame can be decoded.

    The size is the one of the first decoded frame. `frame_count` is what the container reports
    (a truncated file may decode fewer frames); when it reports none, the frames are counted.
    A container that reports a frame rate of 0 gets DEFAULT_FPS (30).
    """
    path = os.fspath(path)
    capture = _open_capture(path)
    cv2 = _cv2()
    try:
        first = _read(capture, path)
        if first is None:
            raise VideoError(
                f"{path}: the video has no frame that can be decoded (empty or corrupt)"
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        reported = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        count = int(reported) if math.isfinite(reported) and reported > 0 else 0
        if count <= 0:
            count = 1
            while True:
                try:
                    grabbed = capture.grab()
                except cv2.error:
                    break
                if not grabbed:
                    break
                count += 1
    finally:
        capture.release()
    if not math.isfinite(fps) or fps == 0:
        fps = DEFAULT_FPS
    if fps < 0:
        raise VideoError(f"{path}: the video reports an invalid frame rate ({fps})")
    return VideoInfo(
        fps=fps, frame_count=count, width=int(first.shape[1]), height=int(first.shape[0])
    )


def read_frames(path: str) -> Iterator[np.ndarray]:
    """Yields the frames of a video as RGB uint8 (H, W, 3) arrays.

    Opening the file and decoding its first frame happen on the call (VideoError if either
    fails); a file that is cut short just ends early (compare with `probe(path).frame_count`).
    """
    path = os.fspath(path)
    capture = _open_capture(path)
    try:
        first = _read(capture, path)
    except BaseException:
        capture.release()
        raise
    if first is None:
        capture.release()
        raise VideoError(f"{path}: the video has no frame that can be decoded (empty or corrupt)")

    def frames() -> Iterator[np.ndarray]:
        try:
            frame: np.ndarray | None = first
            while frame is not None:
                yield frame
                frame = _read(capture, path)
        finally:
            capture.release()

    return frames()


# ----------------------------------------------------------------------------------- writing


class VideoWriter:
    """Writes RGB uint8 frames to a video file that appears at `path` only once it is complete.

        with VideoWriter("out.mp4", fps=30, size=(width, height)) as writer:
            for frame in frames:
                writer.write(frame)

    Frames go to a hidden temporary file in the same folder that keeps the extension
    (".out.<random>.partial.mp4"); `close()` (or leaving the `with` block normally) checks that
    it can be read back and moves it to `path` with os.replace. An exception inside the `with`
    block (or `abort()`) removes the temporary file and leaves `path` untouched.

    The codec comes from the extension (WRITER_CODECS) unless `codec` (a FourCC such as 'FFV1')
    is given. `size` is (width, height), both even; when None it is taken from the first frame.
    Grayscale (H, W) frames are expanded to RGB.
    """

    def __init__(
        self,
        path: str,
        fps: float,
        size: tuple[int, int] | None = None,
        overwrite: bool = False,
        *,
        codec: str | None = None,
    ):
        self.path = os.fspath(path)
        ext = os.path.splitext(self.path)[1].lower()
        if ext not in WRITER_CODECS:
            raise VideoError(
                f"{self.path}: unsupported video extension {ext or '(none)'!r}; "
                f"use one of {', '.join(VIDEO_EXTENSIONS)}"
            )
        if (
            isinstance(fps, bool)
            or not isinstance(fps, (int, float, np.integer, np.floating))
            or not math.isfinite(fps)
            or fps <= 0
        ):
            raise VideoError(f"{self.path}: the frame rate must be a positive number, got {fps!r}")
        if codec is not None and (not isinstance(codec, str) or len(codec) != 4):
            raise VideoError(
                f"{self.path}: a codec is a four-character code such as 'mp4v', got {codec!r}"
            )
        if os.path.isdir(self.path):
            raise VideoError(f"{self.path}: is a folder")
        if os.path.lexists(self.path) and not overwrite:
            raise VideoError(f"{self.path}: already exists (pass overwrite=True to replace it)")
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise VideoError(f"{self.path}: cannot write: the folder {folder} does not exist")
        self.fps = float(fps)
        self.overwrite = overwrite
        self.codecs = (codec,) if codec is not None else WRITER_CODECS[ext]
        self.codec: str | None = None  # the FourCC in use once opened
        self.frames_written = 0
        self._tmp = files.temporary_name(self.path)
        self._writer: Any = None  # a cv2.VideoWriter once the first frame sets the size
        self._closed = False
        self.size: tuple[int, int] | None = None
        if size is not None:
            self.size = self._check_size(size)
            self._open()

    def _check_size(self, size) -> tuple[int, int]:
        try:
            width, height = (int(v) for v in size)
            ok = all(int(v) == v for v in size)
        except (TypeError, ValueError):
            ok = False
        if not ok or width <= 0 or height <= 0:
            raise VideoError(f"{self.path}: size must be (width, height) in pixels, got {size!r}")
        if width % 2 or height % 2:
            raise VideoError(
                f"{self.path}: cannot write {width}x{height} frames: OpenCV's FFmpeg writer "
                "needs an even width and height (it would silently drop the last column/row); "
                "crop or pad the frames by one pixel"
            )
        return width, height

    def _open(self) -> None:
        cv2 = _cv2()
        for fourcc in self.codecs:
            try:
                writer = cv2.VideoWriter(
                    self._tmp, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size
                )
            except cv2.error:
                writer = None
            if writer is not None and writer.isOpened():
                self._writer, self.codec = writer, fourcc
                return
            if writer is not None:
                writer.release()
            self._remove_tmp()
        raise VideoError(
            f"{self.path}: cannot write the video: OpenCV could not open a writer "
            f"with codec {' or '.join(repr(c) for c in self.codecs)}"
        )

    def write(self, frame: np.ndarray) -> None:
        """Appends one RGB uint8 (H, W, 3) or grayscale (H, W) frame of the writer's size."""
        if self._closed:
            raise VideoError(f"{self.path}: the writer is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise VideoError(f"{self.path}: frames must be uint8, got {frame.dtype}")
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise VideoError(
                f"{self.path}: frames must be RGB (H, W, 3) or grayscale (H, W), "
                f"got shape {frame.shape}"
            )
        if self._writer is None:
            self.size = self._check_size((frame.shape[1], frame.shape[0]))
            self._open()
        assert self.size is not None  # set just above or by the constructor
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise VideoError(
                f"{self.path}: frame of {frame.shape[1]}x{frame.shape[0]} pixels "
                f"does not match the video size {self.size[0]}x{self.size[1]}"
            )
        self._writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        self.frames_written += 1

    def close(self) -> None:
        """Finishes the file and moves it to `path`; VideoError (and no file) if that fails."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        try:
            if self.frames_written == 0:
                raise VideoError(f"{self.path}: no frame was written; the video was not created")
            try:
                info = probe(self._tmp)
            except VideoError as e:
                raise VideoError(
                    f"{self.path}: cannot write the video: the written file does "
                    f"not read back ({e})"
                ) from e
            assert self.size is not None  # set by the first frame written
            if (info.width, info.height) != self.size:
                raise VideoError(
                    f"{self.path}: cannot write the video: it reads back as "
                    f"{info.width}x{info.height}, not {self.size[0]}x{self.size[1]}"
                )
            if os.path.lexists(self.path) and not self.overwrite:
                raise VideoError(
                    f"{self.path}: appeared while writing; not replaced "
                    "(pass overwrite=True to replace it)"
                )
            os.replace(self._tmp, self.path)
        except BaseException:
            self._remove_tmp()
            raise

    def abort(self) -> None:
        """Stops writing and removes the temporary file; `path` is left as it was."""
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            os.remove(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


# ------------------------------------------------------------------------------ real blur

# Camera responses lie well inside this; far outside it every average rounds to black or white.
GAMMA_RANGE = (0.1, 10.0)


def _check_gamma(gamma: float) -> float:
    if (
        isinstance(gamma, bool)
        or not isinstance(gamma, (int, float, np.integer, np.floating))
        or not math.isfinite(gamma)
        or gamma <= 0
    ):
        raise ValueError(
            f"gamma must be a positive number (2.2 ~ sRGB, 1 = plain mean), got {gamma!r}"
        )
    if not GAMMA_RANGE[0] <= gamma <= GAMMA_RANGE[1]:
        raise ValueError(
            f"gamma must lie between {GAMMA_RANGE[0]} and {GAMMA_RANGE[1]} (2.2 ~ "
            f"sRGB, 1 = plain mean), got {gamma!r}"
        )
    return float(gamma)


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_frames(frames) -> int:
    frames = _check_int(frames, "frames", 1)
    if frames % 2 == 0:
        raise ValueError(f"frames must be odd (the sharp target is the middle frame), got {frames}")
    return frames


def linear_light_average(
    frames: Sequence[np.ndarray] | np.ndarray, gamma: float = 2.2
) -> np.ndarray:
    """round(255 * mean((f / 255) ** gamma) ** (1 / gamma)) over uint8 frames, in float64.

    Gamma 1 is the plain mean of the pixel values, rounded half to even (np.rint).
    """
    gamma = _check_gamma(gamma)
    frames = list(frames)
    if not frames:
        raise ValueError("linear_light_average needs at least one frame")
    shape = np.shape(frames[0])
    for frame in frames:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 arrays, got {getattr(frame, 'dtype', type(frame).__name__)}"
            )
        if frame.shape != shape:
            raise ValueError(f"all frames must have the same shape, got {shape} and {frame.shape}")
    if gamma == 1.0:
        total = np.zeros(shape, np.int64)
        for frame in frames:
            total += frame
        return np.rint(total / len(frames)).astype(np.uint8)
    # (v / 255) ** gamma for each of the 256 values, computed exactly as for the array.
    to_linear = (np.arange(256, dtype=np.float64) / 255.0) ** gamma
    total = np.zeros(shape, np.float64)
    for frame in frames:
        total += to_linear[frame]
    mean = total / len(frames)
    return np.clip(np.rint(255.0 * mean ** (1.0 / gamma)), 0, 255).astype(np.uint8)


def blur_windows(
    frame_count: int, frames: int = 7, stride: int | None = None
) -> list[tuple[int, int]]:
    """(first frame, middle frame) of each window of `frames` consecutive frames.

    Windows start every `stride` frames (default `frames`: no overlap); a clip shorter than
    `frames` has none.
    """
    frames = _check_frames(frames)
    stride = frames if stride is None else _check_int(stride, "stride", 1)
    frame_count = _check_int(frame_count, "frame_count", 0)
    return [(start, start + frames // 2) for start in range(0, frame_count - frames + 1, stride)]


def pairs_from_frames(
    frames: Iterable[np.ndarray],
    frames_per_pair: int = 7,
    stride: int | None = None,
    gamma: float = 2.2,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Streams (pair index, blurred, sharp) uint8 images from a stream of frames.

    The windows are those of `blur_windows`; only `frames_per_pair` frames are held at a time.
    Arguments are checked on the call, before any frame is read.
    """
    size = _check_frames(frames_per_pair)
    stride = size if stride is None else _check_int(stride, "stride", 1)
    gamma = _check_gamma(gamma)

    def pairs() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        window: collections.deque[np.ndarray] = collections.deque(maxlen=size)
        index = 0
        for position, frame in enumerate(frames):
            window.append(frame)
            start = position - size + 1
            if start >= 0 and start % stride == 0:
                yield index, linear_light_average(window, gamma), window[size // 2].copy()
                index += 1

    return pairs()


def prepare_frame(frame: np.ndarray, crop: int | None, downscale: int) -> np.ndarray:
    """Centre crop to a `crop` x `crop` square (None: no crop), then box downscale by `downscale`.

    The downscale averages each `downscale` x `downscale` block (rounded half to even); rows and
    columns that do not fill a whole block (at the bottom/right) are dropped.
    """
    frame = np.asarray(frame)
    downscale = _check_int(downscale, "downscale", 1)
    height, width = frame.shape[:2]
    if crop is not None:
        crop = _check_int(crop, "crop", 1)
        if crop > height or crop > width:
            raise ValueError(f"cannot crop a {crop}x{crop} square from a {width}x{height} frame")
        top, left = (height - crop) // 2, (width - crop) // 2
        frame = frame[top : top + crop, left : left + crop]
    if downscale > 1:
        height, width = frame.shape[:2]
        out_h, out_w = height // downscale, width // downscale
        if out_h == 0 or out_w == 0:
            raise ValueError(f"cannot downscale a {width}x{height} frame by {downscale}")
        blocks = frame[: out_h * downscale, : out_w * downscale].astype(np.int64)
        blocks = blocks.reshape(out_h, downscale, out_w, downscale, *frame.shape[2:])
        frame = np.rint(blocks.sum(axis=(1, 3)) / downscale**2).astype(np.uint8)
    return np.ascontiguousarray(frame)


# ------------------------------------------------------------------------------ data set

# The manifest of a sequence folder: the settings and the pair files this command wrote there.
MANIFEST = "pairs.json"
_PAIR_KINDS = ("blur", "sharp")


def truncation_error(path: str, frames_read: int, info: VideoInfo) -> str | None:
    """The message for a clip that decoded fewer frames than its container announces, else
    None. Containers that estimate the count from the duration (ESTIMATED_COUNT_EXTENSIONS)
    may announce one frame more than they hold: that is rounding, not truncation."""
    tolerance = 1 if os.path.splitext(path)[1].lower() in ESTIMATED_COUNT_EXTENSIONS else 0
    if frames_read >= info.frame_count - tolerance:
        return None
    return (
        f"{path}: only {frames_read} of the {info.frame_count} frames the file announces "
        f"could be decoded (truncated or corrupt)"
    )


def _write_png(path: str, image: np.ndarray) -> None:
    from PIL import Image

    files.write_with(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def _pair_files(count: int) -> list[str]:
    return [f"{kind}/{i:06d}.png" for kind in _PAIR_KINDS for i in range(count)]


def previous_outputs(folder: str) -> list[str]:
    """The pair files (relative paths) that this command's manifest in `folder` says an
    earlier run wrote and that are still there: all that overwrite=True may remove. Raises
    FileExistsError when the folder's blur/ or sharp/ hold anything else (say, the frames of a
    real GoPro copy, or pairs.json is not this command's), since replacing the set would then
    mix or destroy files this command never wrote."""
    manifest_path = os.path.join(folder, MANIFEST)
    listed: Any = []  # the manifest's 'files' once read (checked to be a list)
    if os.path.lexists(manifest_path):
        try:
            with open(manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, ValueError) as e:
            raise FileExistsError(
                f"{manifest_path}: not a manifest written by from-video ({e}); "
                "nothing was written; choose another output folder"
            ) from None
        if not isinstance(manifest, dict):
            raise FileExistsError(
                f"{manifest_path}: not a manifest written by from-video; "
                "nothing was written; choose another output folder"
            )
        listed = manifest.get("files")
        pairs = manifest.get("pairs")
        if listed is None and isinstance(pairs, int) and not isinstance(pairs, bool):
            listed = _pair_files(pairs)  # runs from before the manifest listed its files
        if not isinstance(listed, list):
            raise FileExistsError(
                f"{manifest_path}: lists no files written by from-video; "
                "nothing was written; choose another output folder"
            )
    ours = files.listed_outputs(folder, listed)
    foreign = []
    for kind in _PAIR_KINDS:
        sub = os.path.join(folder, kind)
        if os.path.lexists(sub) and not os.path.isdir(sub):
            foreign.append(kind)
        elif os.path.isdir(sub):
            foreign += [f"{kind}/{n}" for n in sorted(os.listdir(sub)) if f"{kind}/{n}" not in ours]
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise FileExistsError(
            f"{folder}: holds files that from-video did not write ({shown}); "
            "nothing was written and overwrite never removes them; choose "
            "another output folder"
        )
    return ours


def _swap_in(staging: str, folder: str, new: list[str], old: list[str]) -> None:
    """Replaces the `old` pair files and the manifest in `folder` by the `new` ones of
    `staging`, all or nothing: the old files are moved aside first and moved back if anything
    fails (Ctrl-C included); other files in `folder` are never touched."""
    if not os.path.isdir(folder) or not os.listdir(folder):
        if os.path.isdir(folder):
            os.rmdir(folder)
        os.replace(staging, folder)
        return
    backup = files.temporary_name(folder, "old")
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for rel in old + [MANIFEST]:
            if os.path.lexists(os.path.join(folder, rel)):
                os.makedirs(os.path.dirname(os.path.join(backup, rel)), exist_ok=True)
                os.replace(os.path.join(folder, rel), os.path.join(backup, rel))
                moved_old.append(rel)
        for rel in new + [MANIFEST]:
            os.makedirs(os.path.dirname(os.path.join(folder, rel)), exist_ok=True)
            os.replace(os.path.join(staging, rel), os.path.join(folder, rel))
            moved_new.append(rel)
    except BaseException:
        for rel in reversed(moved_new):
            os.replace(os.path.join(folder, rel), os.path.join(staging, rel))
        for rel in reversed(moved_old):
            os.replace(os.path.join(backup, rel), os.path.join(folder, rel))
        files.remove_empty_folders(backup)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    for kind in _PAIR_KINDS:  # an old run's folder that the new set no longer uses
        files.remove_empty_folders(os.path.join(folder, kind))
    os.makedirs(os.path.join(folder, _PAIR_KINDS[0]), exist_ok=True)
    os.makedirs(os.path.join(folder, _PAIR_KINDS[1]), exist_ok=True)


def make_pairs_from_videos(
    clips: Sequence[str],
    out: str,
    *,
    frames: int = 7,
    stride: int | None = None,
    gamma: float = 2.2,
    crop: int | None = None,
    downscale: int = 1,
    split: str = "train",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Writes GoPro-style (blurred, sharp) PNG pairs from each clip; see the module docstring.

    Everything is checked before anything is written: the settings (ValueError, also for a
    `crop` or `downscale` larger than a clip's frames), every clip (VideoError: it opens, is
    long enough), distinct clip stems, and the sequence folders OUT/<split>/<stem>
    (FileExistsError): one that holds files is refused unless `overwrite`, and even then when
    its blur/ or sharp/ hold files that this command's manifest (pairs.json) does not list.

    Each sequence is written all or nothing: its pairs go to a hidden folder beside it and are
    swapped in once the clip is done; only the pair files the old manifest lists are removed
    then. An interrupted or failed clip leaves its sequence folder as it was.

    A clip that decodes fewer frames than it announces (truncated or corrupt) is not used:
    nothing is written for it, the other clips are; its entry in the result has an "error".

    Returns {clip stem: {"frames_read", "frames_expected", "pairs", "fps", "folder"[,
    "error"]}}.
    """
    frames = _check_frames(frames)
    stride = frames if stride is None else _check_int(stride, "stride", 1)
    gamma = _check_gamma(gamma)
    downscale = _check_int(downscale, "downscale", 1)
    if crop is not None:
        crop = _check_int(crop, "crop", 1)
    if (
        not isinstance(split, str)
        or not split
        or split in (".", "..")
        or "/" in split
        or os.sep in split
    ):
        raise ValueError(
            f"split must be a plain folder name such as 'train' or 'test', got {split!r}"
        )
    if isinstance(clips, (str, os.PathLike)):
        clips = [clips]
    clips = [os.fspath(c) for c in clips]
    if not clips:
        raise VideoError("no video clips given")
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise VideoError(f"{out}: the output must be a folder, and this is a file")

    stems: dict[str, str] = {}
    infos: dict[str, VideoInfo] = {}
    previous: dict[str, list[str]] = {}
    for clip in clips:
        stem = os.path.splitext(os.path.basename(clip))[0]
        if not stem or stem.startswith("."):
            raise VideoError(
                f"{clip}: cannot name a sequence after this file (hidden folders "
                "are not read as sequences); rename it"
            )
        other = next((c for s, c in stems.items() if s.casefold() == stem.casefold()), None)
        if other is not None:
            raise VideoError(
                f"{clip} and {other} would both be written to the sequence folder "
                f"{stem!r}; rename one of them"
            )
        stems[stem] = clip
    for stem, clip in stems.items():
        info = probe(clip)
        if info.frame_count < frames:
            raise VideoError(
                f"{clip}: too short: {info.frame_count} frames, needs at least {frames} (--frames)"
            )
        if crop is not None and (crop > info.width or crop > info.height):
            raise ValueError(
                f"{clip}: cannot crop a {crop}x{crop} square (--crop) from its "
                f"{info.width}x{info.height} frames"
            )
        cropped = (crop, crop) if crop is not None else (info.width, info.height)
        if cropped[0] < downscale or cropped[1] < downscale:
            raise ValueError(
                f"{clip}: frames of {cropped[0]}x{cropped[1]} cannot be downscaled "
                f"by {downscale} (--downscale)"
            )
        folder = os.path.join(out, split, stem)
        for any_clip in clips:
            if files.is_within(any_clip, folder):
                raise FileExistsError(
                    f"{any_clip}: lies inside the output folder {folder}; "
                    "choose another output folder"
                )
        previous[stem] = []
        if os.path.lexists(folder):
            if not os.path.isdir(folder):
                raise FileExistsError(f"{folder}: exists and is not a folder")
            if os.listdir(folder):
                if not overwrite:
                    raise FileExistsError(
                        f"{folder}: already exists and is not empty; nothing was written (pass "
                        "overwrite=True / --overwrite to replace the pairs of an earlier run)"
                    )
                previous[stem] = previous_outputs(folder)
        infos[stem] = info

    from tqdm import tqdm

    summary: dict[str, dict] = {}
    total = sum(info.frame_count for info in infos.values())
    with tqdm(
        total=total, unit="frame", desc="video pairs", file=sys.stderr, disable=not progress
    ) as bar:
        for stem, clip in stems.items():
            info = infos[stem]
            folder = os.path.join(out, split, stem)
            os.makedirs(os.path.dirname(folder), exist_ok=True)
            staging = files.temporary_name(folder, "new")
            try:
                entry = _write_sequence(
                    clip, info, staging, frames, stride, gamma, crop, downscale, bar
                )
                entry["folder"] = folder
                if "error" not in entry:
                    _swap_in(staging, folder, _pair_files(entry["pairs"]), previous[stem])
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            summary[stem] = entry
    return summary


def _write_sequence(
    clip: str,
    info: VideoInfo,
    staging: str,
    frames: int,
    stride: int,
    gamma: float,
    crop: int | None,
    downscale: int,
    bar,
) -> dict:
    """Writes one clip's pairs and manifest into `staging`; its summary entry."""
    blur_dir, sharp_dir = (os.path.join(staging, kind) for kind in _PAIR_KINDS)
    os.makedirs(blur_dir)
    os.makedirs(sharp_dir)
    frames_read = 0

    def prepared(source: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal frames_read
        for frame in source:
            frames_read += 1
            bar.update(1)
            yield prepare_frame(frame, crop, downscale)

    count = 0
    error = None
    try:
        for index, blurred, sharp in pairs_from_frames(
            prepared(read_frames(clip)), frames, stride, gamma
        ):
            name = f"{index:06d}.png"
            _write_png(os.path.join(blur_dir, name), blurred)
            _write_png(os.path.join(sharp_dir, name), sharp)
            count += 1
    except VideoError as e:  # a decoding error part-way
        error = str(e)
    if frames_read < info.frame_count:  # keep the bar's total honest
        bar.total -= info.frame_count - frames_read
        bar.refresh()
    error = error or truncation_error(clip, frames_read, info)
    entry = {
        "frames_read": frames_read,
        "frames_expected": info.frame_count,
        "pairs": count,
        "fps": info.fps,
    }
    if error is not None:
        return entry | {"pairs": 0, "error": error}
    files.write_json(
        os.path.join(staging, MANIFEST),
        {
            "source": os.path.abspath(clip),
            "fps": info.fps,
            "frames": frames,
            "stride": stride,
            "gamma": gamma,
            "crop": crop,
            "downscale": downscale,
            "frames_read": frames_read,
            "frames_expected": info.frame_count,
            "pairs": count,
            "files": _pair_files(count),
        },
    )
    return entry
