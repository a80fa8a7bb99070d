"""The public Python API: a trained generator as a function on images and videos.

    from deblurgan_jax import Deblurrer

    deblurrer = Deblurrer.pretrained()      # or .from_params / .from_workdir / .from_official
    sharp = deblurrer(blurred)              # NumPy uint8 array or PIL image -> the same, same size
    deblurrer.video("shaky.mp4", "sharp.mp4")                   # every frame, at the clip's fps

What `deblurrer(image)` accepts and returns (the same type, size, dtype and layout it was given):
- NumPy arrays: (H, W) grayscale, (H, W, 1), (H, W, 2) grayscale + alpha, (H, W, 3) RGB,
  (H, W, 4) RGBA; uint8, or uint16 (restored with 16-bit precision: the generator's float output
  is quantised to 65535 levels instead of 255). Float arrays are refused (their range is a
  convention: convert to uint8 with `np.round(x * 255)`). Alpha is carried through untouched;
  grayscale goes in as three equal channels and comes out as the luma of the result.
- PIL images of modes L, LA, RGB, RGBA, I;16 and I come back in their mode; CMYK, YCbCr, LAB,
  HSV and RGBX are restored as RGB and converted back; P, PA and 1 come back as RGB/RGBA/L (a
  palette cannot hold the result). The pixels are taken as they are: EXIF orientation is NOT
  applied (use `PIL.ImageOps.exif_transpose` first; the deblur command does).
Images of any size of at least 8 x 8 pixels: padded to a multiple of 4 and cropped back, restored
in tiles beyond `tile` pixels (results equal the untiled ones, see inference.py). These are the
conversions of images.py, the same the deblur command uses.

`deblurrer.video(src, dst)` restores every frame of a video file (or of any iterable of frames) in
batches of `batch_size` frames of one size (the generator compiles once per frame size) and writes
`dst` with the input's frame rate, or returns an iterator of restored frames. Audio is not
carried. Video encoders need an even width and height: a video of odd size is written cropped by
one row/column (the restoration itself sees the whole frame) and a note says so on stderr.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from deblurgan_jax.blurring import video
from deblurgan_jax.utils import files, images

# JAX, Flax and the weights code load when a Deblurrer is made, not when this module is imported:
# `python -m deblurgan_jax.deblur --help` and `import deblurgan_jax` stay fast.

DEFAULT_TILE = 2048  # whole-image inference up to about 4 MP (a few GB on CPU), tiles beyond
MIN_SIDE = 8  # two stride-2 stages and reflect padding at quarter resolution need 8 pixels
_ARRAY_CHANNELS = (1, 2, 3, 4)  # gray, gray + alpha, RGB, RGBA
_PIL_ROUND_TRIP_MODES = ("CMYK", "YCbCr", "LAB", "HSV", "RGBX")


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What `Deblurrer.video` wrote."""

    path: str
    frames: int
    fps: float
    width: int
    height: int
    cropped_from: tuple[int, int] | None = None  # (width, height) of odd-sized input frames


# --------------------------------------------------------------------------------------------
# Conversions between what users hold and images.Picture.


def _is_pil_image(x: Any) -> bool:
    pil = sys.modules.get("PIL.Image")  # no PIL imported: it cannot be a PIL image
    return pil is not None and isinstance(x, pil.Image)


def picture_from_array(array: np.ndarray) -> images.Picture:
    """A Picture of a uint8/uint16 (H, W[, 1|2|3|4]) array (NumPy, or anything NumPy converts
    without copying rules of its own, such as a jax.Array); ValueError/TypeError otherwise."""
    a = np.asarray(array)
    if (
        a.dtype.kind == "u"
        and a.dtype.itemsize == 2
        and a.dtype.byteorder not in ("=", "|")
        and a.dtype != np.uint16
    ):
        a = a.astype(np.uint16)  # big-endian 16 bits ('>u2'): the same values, native order
    if a.dtype not in (np.uint8, np.uint16):
        if a.dtype.kind == "f":
            hint = "convert floats in [0, 1] with np.round(x * 255).astype(np.uint8)"
        elif a.dtype.kind == "b":
            hint = "convert a mask with x.astype(np.uint8) * 255"
        elif a.dtype.kind in "iu":
            hint = (
                "convert integers of 0..255 with x.astype(np.uint8), of 0..65535 with "
                "x.astype(np.uint16)"
            )
        else:
            hint = "pixels must be unsigned 8- or 16-bit integers"
        raise TypeError(f"images must be uint8 or uint16 arrays, got {a.dtype} ({hint})")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in _ARRAY_CHANNELS:
        raise ValueError(
            f"images must be (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or "
            f"(H, W, 4) arrays, got shape {np.shape(array)}"
        )
    gray = a.shape[-1] <= 2
    color = a[..., 0] if gray else a[..., :3]
    alpha = a[..., -1] if a.shape[-1] in (2, 4) else None
    return images.Picture(
        np.ascontiguousarray(color), None if alpha is None else np.ascontiguousarray(alpha)
    )


def _is_array(x: Any) -> bool:
    """NumPy arrays and arrays of other libraries that hand NumPy their pixels (jax.Array)."""
    return isinstance(x, np.ndarray) or (
        hasattr(x, "__array__") and hasattr(x, "shape") and hasattr(x, "dtype")
    )


def array_from_picture(picture: images.Picture, like_shape: tuple[int, ...]) -> np.ndarray:
    """The pixels of `picture` in the array layout `like_shape` had (see picture_from_array)."""
    layers = [picture.color[..., None] if picture.grayscale else picture.color]
    if picture.alpha is not None:
        layers.append(picture.alpha[..., None])
    out = np.concatenate(layers, axis=-1) if len(layers) > 1 else layers[0]
    return out[..., 0] if len(like_shape) == 2 else out


def pil_from_picture(picture: images.Picture, like: Any) -> Any:
    """A PIL image of `picture` in the mode of the PIL image `like` where it can hold it."""
    from PIL import Image

    if picture.color.dtype == np.uint16:
        out = Image.fromarray(picture.color)  # I;16 (16-bit images carry no alpha in PIL)
        return out.convert("I") if like.mode == "I" else out
    if like.mode == "I":  # 32-bit integers holding 8-bit values (images.py)
        return Image.fromarray(picture.color).convert("I")
    color = Image.fromarray(picture.color)
    if picture.alpha is None:
        out = color
    else:
        bands = [color] if picture.grayscale else list(color.split())
        out = Image.merge(
            "LA" if picture.grayscale else "RGBA", bands + [Image.fromarray(picture.alpha)]
        )
    if like.mode in _PIL_ROUND_TRIP_MODES:
        out = out.convert(like.mode)
    if picture.icc_profile:
        out.info["icc_profile"] = picture.icc_profile
    return out


def _check_size(picture: images.Picture) -> None:
    height, width = picture.color.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"a {width}x{height} image is too small (the generator needs at least "
            f"{MIN_SIDE}x{MIN_SIDE} pixels)"
        )


def _padded_size(count: int, batch_size: int) -> int:
    """The batch a short batch of `count` frames is padded to: the next power of two, at most
    `batch_size`."""
    return min(batch_size, 1 << max(count - 1, 0).bit_length())


def _even(frame: np.ndarray) -> np.ndarray:
    """The frame without its last row/column where its height/width is odd."""
    return frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]


# --------------------------------------------------------------------------------------------
# The Deblurrer.


class Deblurrer:
    """A trained DeblurGAN generator as a function on images (NumPy or PIL) and videos.

        from deblurgan_jax import Deblurrer
        from PIL import Image
        deblurrer = Deblurrer.from_params("generator.msgpack")
        deblurrer(Image.open("shaky.jpg")).save("sharp.jpg")   # or a uint8 NumPy array
        deblurrer.video("shaky.mp4", "sharp.mp4")              # or: for frame in .video(...)

    Build one with `from_params`, `from_workdir` or `from_official`, or from `(params,
    model_config)` directly. Options:
      tile: restore images with a side longer than `tile` pixels in tiles (a multiple of 4;
        default 2048; 0 or None: never tile). Tiled results equal the untiled ones.
      tile_overlap: pixels shared by neighbouring tiles (default: twice the generator's
        receptive radius).
      dropout_seed: turns on the paper's test-time dropout with this seed (default off:
        deterministic).
      conv_impl: how convolutions are computed ('auto', 'xla', 'cpu_fast'; same results).
    The generator compiles once per image size (and batch size), on the first call with it.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        model_config: Mapping[str, Any],
        *,
        tile: int | None = DEFAULT_TILE,
        tile_overlap: int | None = None,
        dropout_seed: int | None = None,
        conv_impl: str = "auto",
        provenance: Mapping[str, Any] | None = None,
    ):
        import jax

        from deblurgan_jax.networks import inference, models
        from deblurgan_jax.weights import checkpoints

        self.model_config = checkpoints.full_generator_config(model_config)
        tile = tile or None
        if tile is not None:
            overlap = (
                inference.default_tile_overlap(self.model_config["n_blocks"])
                if tile_overlap is None
                else tile_overlap
            )
            if tile < 0 or tile % 4 or overlap < 0 or overlap % 4 or tile <= overlap:
                raise ValueError(
                    f"tile ({tile}) and tile_overlap ({overlap}) must be "
                    f"non-negative multiples of 4, the tile larger than the overlap"
                )
        self.tile, self.tile_overlap, self.dropout_seed = tile, tile_overlap, dropout_seed
        self.generator = models.build_generator(self.model_config, conv_impl=conv_impl)
        self.params = jax.device_put(params)  # once, not at every call
        self.provenance = dict(provenance or {})
        self._infer = inference.make_inference_fn(
            self.generator, tile=tile, overlap=tile_overlap, dropout_seed=dropout_seed
        )

    # ---------------------------------------------------------------------- constructors

    @classmethod
    def from_params(cls, path: str | os.PathLike[str], **options: Any) -> Deblurrer:
        """From a generator params file (`python -m deblurgan_jax.export`, or converted
        official weights): `path` and the `.json` model config beside it."""
        from deblurgan_jax.weights import checkpoints

        params, model_config = checkpoints.load_generator(os.fspath(path))
        return cls(params, model_config, provenance={"params": os.path.abspath(path)}, **options)

    @classmethod
    def pretrained(cls, **options: Any) -> Deblurrer:
        """The pretrained generator shipped with the package (trained on real GoPro blur and
        synthetic camera shake; see MODEL_CARD.md). Nothing is downloaded."""
        from deblurgan_jax.weights import checkpoints

        params, model_config, provenance = checkpoints.load_pretrained()
        return cls(params, model_config, provenance=provenance, **options)

    @classmethod
    def from_workdir(
        cls,
        workdir: str | os.PathLike[str],
        which: str = "best",
        weights: str = "auto",
        **options: Any,
    ) -> Deblurrer:
        """From a training run (`train.py --workdir DIR`): its 'best' checkpoint by eval PSNR
        (needs a run with config.eval_every > 0) or its 'latest'; `weights` 'auto' (the EMA of
        the weights when the run keeps one), 'ema' or 'raw'."""
        from deblurgan_jax.weights import checkpoints

        try:
            params, model_config, provenance = checkpoints.load_generator_from_workdir(
                os.fspath(workdir), which, weights
            )
        except checkpoints.RunError as e:
            if which == "best" and "no evaluated checkpoint" in str(e):
                raise checkpoints.RunError(
                    f"{e}; use which='latest' for the latest checkpoint"
                ) from None
            raise
        return cls(params, model_config, provenance=provenance, **options)

    @classmethod
    def from_official(cls, pth: str | os.PathLike[str], **options: Any) -> Deblurrer:
        """From an official DeblurGAN generator checkpoint (2018 code, e.g. latest_net_G.pth),
        converted on the fly. Needs PyTorch to read the file (`pip install torch`, the CPU build
        is enough); `python -m deblurgan_jax.convert generator` converts it once instead."""
        from deblurgan_jax.weights import torch_weights

        if importlib.util.find_spec("torch") is None:
            raise ImportError(
                "Deblurrer.from_official reads .pth files with PyTorch, which is "
                "not installed: pip install torch (the CPU build is enough), or "
                "convert the file once elsewhere with python -m "
                "deblurgan_jax.convert generator --pth FILE --out g.msgpack and "
                "use Deblurrer.from_params"
            )
        sd = torch_weights.load_torch_state_dict(os.fspath(pth))
        params, model_config = torch_weights.generator_params_from_state_dict(sd)
        return cls(params, model_config, provenance={"official": os.path.abspath(pth)}, **options)

    def __repr__(self) -> str:
        c = self.model_config
        return (
            f"Deblurrer(ngf={c['ngf']}, n_blocks={c['n_blocks']}, tile={self.tile}, "
            f"conv_impl={self.generator.conv_impl!r}, source={self.provenance})"
        )

    # ---------------------------------------------------------------------- images

    def restore_pictures(self, pictures: list[images.Picture]) -> list[images.Picture]:
        """Pictures of one size restored as one batch, each in its own format."""
        for picture in pictures:
            _check_size(picture)
        batch = np.stack([images.to_model_input(p) for p in pictures])
        restored = self._infer(self.params, batch)
        return [images.from_model_output(r, p) for r, p in zip(restored, pictures)]

    def restore_picture(self, picture: images.Picture) -> images.Picture:
        """One Picture (images.read_picture) restored in its format: what the deblur command
        writes."""
        return self.restore_pictures([picture])[0]

    def __call__(self, image: Any) -> Any:
        """The restored image: the same type (NumPy array or PIL image), size and layout."""
        if _is_pil_image(image):
            return pil_from_picture(self.restore_picture(images.picture_from_pil(image)), image)
        if not _is_array(image):
            raise TypeError(f"expected a NumPy array or a PIL image, got {type(image).__name__}")
        out = array_from_picture(
            self.restore_picture(picture_from_array(image)), tuple(image.shape)
        )
        if np.dtype(image.dtype).byteorder == ">":
            out = out.astype(image.dtype)  # back in the byte order it came in
        return out

    def deblur_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *, overwrite: bool = False
    ) -> None:
        """Restores an image file into `dst` in the input's format (EXIF orientation applied,
        grayscale, alpha and 16 bits kept; see images.py). Never replaces `src`, nor an
        existing `dst` unless `overwrite`."""
        src, dst = os.fspath(src), os.fspath(dst)
        if files.same_file(src, dst):
            raise FileExistsError(f"{dst}: is the input itself; choose another output")
        if os.path.exists(dst) and not overwrite:
            raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")
        restored = self.restore_picture(images.read_picture(src))
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        images.write_picture(dst, restored)

    # ---------------------------------------------------------------------- videos

    def restore_frames(
        self, frames: Iterable[np.ndarray], batch_size: int = 4
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame, restored frame) for each frame, restored in batches of `batch_size`
        consecutive frames of one shape. A short batch (the last one, or before a size change)
        is padded with copies of its last frame to the next power of two (at most
        `batch_size`), so the generator compiles for a few batch shapes per frame size and a
        short clip does not compute a whole batch of copies (each image of a batch is
        normalised on its own, so the copies change nothing)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

        def key(frame: np.ndarray) -> tuple:
            return (np.shape(frame), np.asarray(frame).dtype)

        def batches() -> Iterator[list[np.ndarray]]:
            batch: list[np.ndarray] = []
            for frame in frames:
                if not isinstance(frame, np.ndarray):
                    raise TypeError(
                        f"video frames must be NumPy arrays, got {type(frame).__name__}"
                    )
                if batch and (len(batch) == batch_size or key(frame) != key(batch[0])):
                    yield batch
                    batch = []
                batch.append(frame)
            if batch:
                yield batch

        def restored() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for batch in batches():
                pictures = [picture_from_array(f) for f in batch]
                padded = pictures + [pictures[-1]] * (
                    _padded_size(len(pictures), batch_size) - len(pictures)
                )
                for frame, out in zip(batch, self.restore_pictures(padded)):
                    yield frame, array_from_picture(out, frame.shape)

        return restored()  # batch_size is checked on the call, frames are read lazily

    def video(
        self,
        src: str | os.PathLike[str] | Iterable[np.ndarray],
        dst: str | os.PathLike[str] | None = None,
        *,
        side_by_side: bool = False,
        batch_size: int = 4,
        progress: bool = True,
        fps: float | None = None,
        overwrite: bool = False,
    ) -> VideoResult | Iterator[np.ndarray]:
        """Restores every frame of a video.

        Args:
          src: a video file (any format OpenCV's FFmpeg reads: mp4, avi, mov, mkv, webm, ...)
            or an iterable of uint8 (H, W[, C]) frames.
          dst: the video to write (mp4/m4v/mov/mkv: MPEG-4, avi: MJPEG, webm: VP8), with the
            frame rate of `src` (or `fps`; 30 for frames without one) and its size; it appears
            only once complete (video.VideoWriter). None: return an iterator of restored frames.
          side_by_side: each output frame is input | restored (twice as wide).
          batch_size: frames restored at once.
          progress: a progress bar on stderr (frames/s and, for files, the ETA).
          fps: frame rate of the written video (default: that of `src`).
          overwrite: replace an existing `dst`.

        Returns:
          with `dst`, a VideoResult; without, an iterator of restored frames (full size).

        Raises:
          video.VideoError naming the file when `src` cannot be read, or decodes fewer frames
          than it announces (truncated): nothing is written then. Audio is not carried.
        """
        if (
            src is None
            or isinstance(src, (bytes, bytearray))
            or not isinstance(src, (str, os.PathLike))
            and not hasattr(src, "__iter__")
        ):
            raise TypeError(
                f"src must be a video file path (str or os.PathLike) or an iterable "
                f"of frames, got {type(src).__name__}"
            )
        if dst is not None:
            if not isinstance(dst, (str, os.PathLike)) or isinstance(os.fspath(dst), bytes):
                raise TypeError(
                    f"dst must be a video file path (str or os.PathLike) or None, "
                    f"got {type(dst).__name__}"
                )
            dst = os.fspath(dst)
            if isinstance(src, (str, os.PathLike)) and files.same_file(src, dst):
                raise FileExistsError(f"{dst}: is the input video itself; choose another output")
        if fps is not None and (
            isinstance(fps, bool)
            or not isinstance(fps, (int, float))
            or not math.isfinite(fps)
            or fps <= 0
        ):
            raise ValueError(f"fps must be a positive number or None (the source's), got {fps!r}")
        frames, total, source_fps, name = self._open_source(src)
        restored = self._stream(frames, total, name, side_by_side, batch_size, progress)
        if dst is None:
            return restored
        return self._write(restored, dst, fps or source_fps or video.DEFAULT_FPS, overwrite)

    @staticmethod
    def _open_source(src) -> tuple[Iterator[np.ndarray], int | None, float | None, str]:
        """(frames, expected count, fps, name); a file is opened now, so errors come now."""
        if not isinstance(src, (str, os.PathLike)):
            total = len(src) if hasattr(src, "__len__") else None
            return iter(src), total, None, "video"
        path = os.fspath(src)
        info = video.probe(path)
        frames = video.read_frames(path)

        def checked() -> Iterator[np.ndarray]:
            count = 0
            for frame in frames:
                count += 1
                yield frame
            error = video.truncation_error(path, count, info)
            if error is not None:
                raise video.VideoError(error)

        return checked(), info.frame_count, info.fps, os.path.basename(path)

    def _stream(
        self, frames, total, name, side_by_side, batch_size, progress
    ) -> Iterator[np.ndarray]:
        from tqdm import tqdm

        pairs = self.restore_frames(frames, batch_size)  # checks batch_size now

        def stream() -> Iterator[np.ndarray]:
            with tqdm(
                total=total,
                desc=name,
                unit="frame",
                disable=not progress,
                dynamic_ncols=True,
                file=sys.stderr,
            ) as bar:
                for frame, restored in pairs:
                    bar.update(1)
                    yield np.concatenate([frame, restored], axis=1) if side_by_side else restored

        return stream()

    @staticmethod
    def _write(frames: Iterator[np.ndarray], dst: str, fps: float, overwrite: bool) -> VideoResult:
        writer = video.VideoWriter(dst, fps=fps, overwrite=overwrite)
        cropped_from = None
        with writer:
            for frame in frames:
                even = _even(frame)
                if even.shape != frame.shape and cropped_from is None:
                    cropped_from = (frame.shape[1], frame.shape[0])
                    print(
                        f"note: {dst}: the {frame.shape[1]}x{frame.shape[0]} frames are "
                        f"written as {even.shape[1]}x{even.shape[0]} (video encoders need an "
                        f"even width and height)",
                        file=sys.stderr,
                    )
                writer.write(even)
        assert writer.size is not None  # a video with no frame raised in close()
        width, height = writer.size
        return VideoResult(dst, writer.frames_written, writer.fps, width, height, cropped_from)
