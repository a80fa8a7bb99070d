"""Image files in and out of the generator, keeping what the file was.

The generator sees RGB in [-1, 1]; a file can be grayscale, carry an alpha channel, hold 16 bits
per channel or be stored rotated with an EXIF orientation tag. `read_picture` keeps those facts
beside the pixels and `write_picture` puts them back:
- EXIF orientation is applied on reading (the output is upright and carries no orientation tag);
- grayscale goes in as three equal channels and comes out as one (ITU-R 601 luma of the result);
- alpha is carried through untouched (same values, same bit depth);
- 16-bit PNGs are read and written with 16 bits (Pillow reads 16-bit RGB PNGs as 8-bit, so PNGs
  of depth 16 are decoded with TensorFlow's PNG codec);
- the colour profile (ICC) of the input is copied to the output.
Whatever cannot be read (broken, empty or truncated files, a header claiming more pixels than
Pillow decodes -- a decompression bomb --, modes without an 8-bit meaning such as 32-bit float
TIFF) is a `PictureError` naming the file, so a command can skip it and go on with the others.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from typing import Sequence

import numpy as np

from deblurgan_jax.utils import files

# What folders are searched for, by every command and by the training data (a file named on the
# command line is tried whatever its name). Pillow reads them all; the tf.data pipeline decodes
# PNG/JPEG/BMP/GIF in TensorFlow and the others with Pillow (data/tf_ops.py).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
JPEG_QUALITY = 95


class PictureError(ValueError):
    """A file that cannot be read as a picture (or written back in its format)."""


@dataclasses.dataclass
class Picture:
    """Pixels of an image file with the facts needed to write the result back the same way."""

    color: np.ndarray  # (H, W, 3) RGB or (H, W) gray, uint8 or uint16, upright
    alpha: np.ndarray | None  # (H, W), same dtype as `color`, or None
    icc_profile: bytes | None = None

    @property
    def grayscale(self) -> bool:
        return self.color.ndim == 2

    @property
    def max_value(self) -> int:
        return int(np.iinfo(self.color.dtype).max)


def is_image_name(name: str) -> bool:
    return (
        not os.path.basename(name).startswith(".")
        and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
    )


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF orientation (1-8) to (H, W[, C]) pixels, as `ImageOps.exif_transpose`."""
    transpose = lambda a: np.swapaxes(a, 0, 1)  # noqa: E731
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: transpose,
        6: lambda a: np.rot90(a, -1),
        7: lambda a: transpose(a)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array)) if orientation in ops else array


def _png_bit_depth(path: str) -> int | None:
    """Bit depth from a PNG's IHDR chunk, or None for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE):
        return None
    return head[24]


def _read_png16(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    import tensorflow as tf

    try:
        pixels = tf.io.decode_png(tf.io.read_file(path), channels=0, dtype=tf.uint16).numpy()
    except Exception as e:  # TensorFlow raises its own error types
        raise PictureError(f"{path}: cannot decode 16-bit PNG: {e}") from None
    channels = pixels.shape[-1]
    color = pixels[..., 0] if channels in (1, 2) else pixels[..., :3]
    alpha = pixels[..., -1] if channels in (2, 4) else None
    return color, alpha


def _from_pil(image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(image).astype(np.uint16), None
    if mode == "I":
        return _from_int32(np.asarray(image)), None
    if mode == "1":
        image, mode = image.convert("L"), "L"
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode in ("LA", "La"):
        pixels = np.asarray(image.convert("LA"))
        return pixels[..., 0], pixels[..., 1]
    if mode == "L":
        return np.asarray(image), None
    if mode in ("RGBA", "RGBa"):
        pixels = np.asarray(image.convert("RGBA"))
        return pixels[..., :3], pixels[..., 3]
    if mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.asarray(image.convert("RGB")), None
    if mode == "F":
        raise PictureError(_FLOAT_MODE_MESSAGE)
    raise PictureError(
        f"unsupported image mode {mode!r}; convert it to 8- or 16-bit RGB or grayscale"
    )


def _from_int32(values: np.ndarray) -> np.ndarray:
    """Mode I (32-bit integers) has no range of its own: values within 0..255 are 8-bit (what
    convert("I") of an 8-bit image gives), within 0..65535 16-bit (what Pillow reads 16-bit
    PNGs and TIFFs as); others are refused rather than clipped."""
    low, high = int(values.min(initial=0)), int(values.max(initial=0))
    if low < 0 or high > 65535:
        raise PictureError(
            f"32-bit integer image (mode I) with values {low}..{high}: only "
            f"0..255 (8-bit) or 0..65535 (16-bit) have a defined range; rescale it"
        )
    return values.astype(np.uint8 if high <= 255 else np.uint16)


_FLOAT_MODE_MESSAGE = (
    "floating-point images (mode F, e.g. 32-bit float TIFF) have no defined "
    "8-bit range; convert it to 8 or 16 bits"
)


def _claimed_size(path: str, error: Exception) -> str:
    """'WxH pixels' from a PNG header, else the pixel count Pillow's error names."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return f"{width}x{height} pixels"
    except OSError:
        pass
    import re

    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{int(found.group(1))} pixels" if found else "more pixels than that"


def open_image(path: str | os.PathLike[str]):
    """`PIL.Image.open` (a context manager; pixels not yet decoded), with a header that claims
    more pixels than Pillow decodes at all (its decompression-bomb limit, twice
    `Image.MAX_IMAGE_PIXELS`, about 179 MP) refused as a PictureError naming the file and the
    claimed size. A decompression bomb is a small file whose header claims a huge image: decoding
    it would take gigabytes, so it is refused before any pixel is read. Headers between once and
    twice the limit (e.g. a 100 MP photo) are read without Pillow's warning: the commands tile
    large images, and such a file is as likely a real photo as a bomb."""
    import warnings

    from PIL import Image

    # Moved to the front of the (process-wide) filters on every call: a `catch_warnings` block
    # of a caller may have dropped or shadowed it since. Not a `catch_warnings` here: that is
    # not thread-safe, and headers are scanned in threads (data/sources.py).
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        return Image.open(path)
    except Image.DecompressionBombError as e:
        raise PictureError(
            f"{path}: the header claims {_claimed_size(str(path), e)}, more than the "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0)} that Pillow decodes (its decompression-bomb "
            f"limit); "
            f"not read. A damaged or malicious file? Split a real image this large into "
            f"parts."
        ) from None


def _unreadable(path: str | os.PathLike[str], error: Exception) -> PictureError:
    """A PictureError naming the file; Pillow raises many types for broken files."""
    if isinstance(error, PictureError):
        text = str(error)
        return error if text.startswith(str(path)) else PictureError(f"{path}: {text}")
    return PictureError(f"{path}: not a readable image ({type(error).__name__}: {error})")


def picture_from_pil(image) -> Picture:
    """A Picture of an in-memory PIL image, its pixels as they are (no EXIF orientation)."""
    color, alpha = _from_pil(image)
    return Picture(color, alpha, image.info.get("icc_profile"))


def read_picture(path: str) -> Picture:
    """Reads an image file upright, keeping grayscale, alpha and 16-bit depth. Anything that
    cannot be read (broken, truncated, empty, a decompression bomb, an unsupported mode) is a
    PictureError naming the file."""
    try:
        with open_image(path) as image:
            image.load()
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            icc = image.info.get("icc_profile")
            if _png_bit_depth(path) == 16:
                color, alpha = _read_png16(path)
            else:
                color, alpha = _from_pil(image)
    except MemoryError:
        raise
    except Exception as e:  # Pillow raises many types
        raise _unreadable(path, e) from None
    if min(color.shape[:2]) < 8:
        raise PictureError(
            f"{path}: {color.shape[1]}x{color.shape[0]} is too small "
            f"(the generator needs at least 8x8)"
        )
    color = orient(color, orientation)
    alpha = None if alpha is None else orient(alpha, orientation)
    return Picture(color, alpha, icc)


def to_model_input(picture: Picture) -> np.ndarray:
    """(H, W, 3) float32 RGB in [-1, 1] (grayscale repeated over the channels)."""
    color = picture.color.astype(np.float32) * (2.0 / picture.max_value) - 1.0
    return np.repeat(color[..., None], 3, axis=-1) if picture.grayscale else color


def from_model_output(restored: np.ndarray, like: Picture) -> Picture:
    """A Picture of the restored (H, W, 3) [-1, 1] image in the format of `like`."""
    unit = (np.clip(np.asarray(restored, np.float64), -1.0, 1.0) + 1.0) / 2.0
    if like.grayscale:
        unit = unit @ np.array([0.299, 0.587, 0.114])  # luma, as PIL's convert('L')
    color = np.round(unit * like.max_value).astype(like.color.dtype)
    return Picture(color, like.alpha, like.icc_profile)


def display_rgb8(picture: Picture) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a Picture for viewing (reports): 16 bits rounded to 8, grayscale
    repeated over the channels, alpha dropped."""
    color = picture.color
    if color.dtype != np.uint8:
        color = np.round(color.astype(np.float64) * (255.0 / picture.max_value)).astype(np.uint8)
    return np.repeat(color[..., None], 3, axis=-1) if picture.grayscale else color


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] floats as 0..255 uint8 (rounded, clipped)."""
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def save_png(path: str | os.PathLike[str], pixels: np.ndarray) -> None:
    """Writes uint8 (H, W[, C]) pixels as a PNG, atomically (utils/files.py)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels))
    files.write_with(path, lambda tmp: image.save(tmp, format="PNG"))


def write_picture(path: str, picture: Picture) -> None:
    """Writes in the format of the file extension; 16-bit PNGs keep 16 bits."""
    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    layers = [picture.color if not picture.grayscale else picture.color[..., None]]
    if picture.alpha is not None:
        if ext in (".jpg", ".jpeg"):
            raise PictureError(f"{path}: JPEG cannot hold the alpha channel")
        layers.append(picture.alpha[..., None])
    pixels = np.concatenate(layers, axis=-1)
    if pixels.dtype == np.uint16 and ext == ".png":
        import tensorflow as tf

        data = tf.io.encode_png(pixels).numpy()
        with open(path, "wb") as f:
            f.write(_with_iccp(data, picture.icc_profile))
        return
    if pixels.dtype == np.uint16:
        if pixels.shape[-1] != 1:
            raise PictureError(f"{path}: 16-bit colour or alpha can only be written as PNG")
        image = Image.fromarray(pixels[..., 0])  # mode I;16 (TIFF)
    else:
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    options = {"icc_profile": picture.icc_profile} if picture.icc_profile else {}
    if ext in (".jpg", ".jpeg"):
        options.update(quality=JPEG_QUALITY, subsampling=0)
    try:
        image.save(path, **options)
    except (OSError, ValueError, KeyError) as e:
        raise PictureError(f"{path}: cannot write this image as {ext}: {e}") from None


def _with_iccp(png: bytes, icc_profile: bytes | None) -> bytes:
    """Inserts an iCCP chunk after IHDR (TensorFlow's encoder writes none)."""
    if not icc_profile:
        return png
    import zlib

    body = b"icc\x00\x00" + zlib.compress(icc_profile)
    chunk = (
        struct.pack(">I", len(body))
        + b"iCCP"
        + body
        + struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    )
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def load_rgb8(path: str | os.PathLike[str], upright: bool = True) -> np.ndarray:
    """Reads an image file as (H, W, 3) uint8 RGB, whatever its mode (grayscale, RGBA, 16-bit),
    turned upright by its EXIF orientation unless `upright=False` (as stored, the way the
    training data's header scan measures it). Anything unreadable is a PictureError naming the
    file (see `read_picture`)."""
    try:
        return _load_rgb8(path, upright)
    except MemoryError:
        raise
    except Exception as e:  # Pillow raises many types
        raise _unreadable(path, e) from None


def _load_rgb8(path: str | os.PathLike[str], upright: bool = True) -> np.ndarray:
    from PIL import ImageOps

    with open_image(path) as image:
        image.load()
        if upright:
            image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I"):
            # 16-bit (and 32-bit integer) grayscale: convert("RGB") would clip, not rescale.
            values = np.asarray(image, dtype=np.float64)
            scale = 255.0 / 65535.0 if values.max(initial=0) > 255 or ";16" in image.mode else 1.0
            gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
            return np.repeat(gray[..., None], 3, axis=-1)
        if image.mode == "F":
            raise PictureError(_FLOAT_MODE_MESSAGE)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class Job:
    source: str  # input file
    target: str  # output file


def plan_jobs(inputs: Sequence[str], out: str, wanted=None) -> tuple[list[Job], list[str]]:
    """(jobs, missing inputs): files map to OUT/<name>, folders' files to OUT/<relative path>.

    Folders are searched for the names `wanted(name)` accepts (default: `is_image_name`)."""
    wanted = wanted or is_image_name
    jobs, missing = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [os.path.join(dirpath, f) for f in sorted(filenames) if wanted(f)]
            jobs += [Job(f, os.path.join(out, os.path.relpath(f, item))) for f in found]
        elif os.path.isfile(item):
            jobs.append(Job(item, os.path.join(out, os.path.basename(item))))
        else:
            missing.append(item)
    return jobs, missing
