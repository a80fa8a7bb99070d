"""TensorFlow image ops of the input pipeline: decoding, mirrored crops, FFT blur, seeds.

`blur_tf` is the TensorFlow twin of `motion_blur.blur` (NumPy): the pipeline gathers a kernel
from a seeded bank and convolves by FFT inside tf.data, which scales with the tf.data threads,
unlike a NumPy sampler in `tf.numpy_function` (GIL-bound).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from deblurgan_jax.utils import images

# First bytes of the formats tf.io.decode_image reads (PNG, JPEG, GIF; BMP is checked on two
# bytes); any other image file (TIFF, WebP) is decoded with Pillow.
_TF_DECODABLE_MAGIC = (b"\x89PN", b"\xff\xd8\xff", b"GIF")


# --------------------------------------------------------------------------- TF image ops


def decode_rgb8(path: tf.Tensor) -> tf.Tensor:
    """Any image file (utils/images.IMAGE_EXTENSIONS) as uint8 (H, W, 3): gray expanded, alpha
    dropped, 16 -> 8 bit."""
    contents = tf.io.read_file(path)
    tf_decodable = tf.logical_or(
        tf.reduce_any(tf.equal(tf.strings.substr(contents, 0, 3), _TF_DECODABLE_MAGIC)),
        tf.equal(tf.strings.substr(contents, 0, 2), b"BM"),
    )

    def with_tf():
        image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3])

    def with_pillow():
        image = tf.numpy_function(_pillow_rgb8, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, 3])

    return tf.cond(tf_decodable, with_tf, with_pillow)


def _pillow_rgb8(path: bytes) -> np.ndarray:
    """A file TensorFlow cannot decode, as stored (no EXIF turn, like the header scan's size)."""
    return images.load_rgb8(os.fsdecode(path), upright=False)


def reflect_indices(start: tf.Tensor, length: int | tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Indices start, ..., start + length - 1 mirrored into [0, size) about the edge pixels.

    The same as np.pad(mode='reflect') (what motion_blur.blur uses), repeated as often as
    needed, so it also pads an image smaller than the margin or the crop.
    """
    size = tf.cast(size, tf.int32)
    index = tf.cast(start, tf.int32) + tf.range(length, dtype=tf.int32)
    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(index, period)
    index = tf.where(index >= size, period - index, index)
    return tf.where(size > 1, index, tf.zeros_like(index))


def _full_res_indices(work_index: tf.Tensor, downscale: int) -> tf.Tensor:
    """Full-resolution rows/cols covering working-resolution rows/cols (downscale x d)."""
    if downscale == 1:
        return work_index
    return tf.reshape(work_index[:, None] * downscale + tf.range(downscale)[None, :], [-1])


def crop_window(
    image: tf.Tensor,
    top: tf.Tensor,
    left: tf.Tensor,
    size: int,
    work_height: tf.Tensor,
    work_width: tf.Tensor,
    downscale: int = 1,
    col_offset: tf.Tensor | int = 0,
) -> tf.Tensor:
    """Full-resolution uint8 window of working rows top..top+size-1 and cols left..left+size-1.

    Working coordinates are those of the image downscaled by `downscale`, of size
    (work_height, work_width); `col_offset` (full resolution) selects the right half of an AB
    image. Rows/cols outside the image are mirrored (np.pad 'reflect', repeated as needed). A
    window inside the image (the usual case) is a plain slice: mirroring needs a gather, which
    costs ~4x as much on a 512x512 window.
    """
    d = downscale

    def inside() -> tf.Tensor:
        return image[
            top * d : (top + size) * d, col_offset + left * d : col_offset + (left + size) * d
        ]

    def mirrored() -> tf.Tensor:
        rows = _full_res_indices(reflect_indices(top, size, work_height), d)
        cols = _full_res_indices(reflect_indices(left, size, work_width), d) + col_offset
        return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)

    in_bounds = (top >= 0) & (left >= 0) & (top + size <= work_height) & (left + size <= work_width)
    return tf.ensure_shape(tf.cond(in_bounds, inside, mirrored), [size * d, size * d, 3])


def downscale_to_float(window: tf.Tensor, downscale: int) -> tf.Tensor:
    """uint8 (H, W, 3) -> float32 [0, 255], box-averaged by `downscale` (exact area resize x1/d)."""
    window = tf.cast(window, tf.float32)
    if downscale == 1:
        return window
    return tf.nn.avg_pool2d(window[None], downscale, downscale, "VALID")[0]


def next_fast_len(n: int) -> int:
    """Smallest 2,3,5-smooth integer >= n (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def convolve_valid_fft(padded: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """'valid' 2-D convolution of (P1, P2, C) by (kh, kw), per channel, by FFT in float32.

    Output (P1 - kh + 1, P2 - kw + 1, C):
      out[i, j] = sum_{u, v} padded[i + kh - 1 - u, j + kw - 1 - v] * kernel[u, v].
    A circular convolution of size >= P has no wrap-around on the valid part, so no zero border is
    needed beyond rounding the size up to a fast FFT length.
    """
    kh, kw = kernel.shape[-2], kernel.shape[-1]
    p1, p2 = padded.shape[0], padded.shape[1]
    if p1 is not None and p2 is not None:
        fft_shape = tf.constant([next_fast_len(p1), next_fast_len(p2)], tf.int32)
    else:
        fft_shape = tf.shape(padded)[:2]
    channels_first = tf.transpose(padded, [2, 0, 1])
    spectrum = tf.signal.rfft2d(channels_first, fft_length=fft_shape) * tf.signal.rfft2d(
        tf.cast(kernel, tf.float32), fft_length=fft_shape
    )
    full = tf.signal.irfft2d(spectrum, fft_length=fft_shape)
    size = tf.shape(padded)[:2]
    valid = full[:, kh - 1 : size[0], kw - 1 : size[1]]
    return tf.transpose(valid, [1, 2, 0])


def blur_margins(kernel_size: int) -> tuple[int, int]:
    """(before, after) context pixels that `motion_blur.blur`'s kernel centre convention needs."""
    centre = (kernel_size - 1) // 2
    return kernel_size - 1 - centre, centre


def blur_tf(
    image: tf.Tensor, kernel: tf.Tensor, noise_std: float = 0.0, seed: tf.Tensor | None = None
) -> tf.Tensor:
    """TensorFlow twin of `motion_blur.blur`: same-size true convolution with reflection padding.

    Args:
      image: (H, W, C) float image, any range.
      kernel: (kh, kw) kernel summing to 1 (static shape).
      noise_std: std of additive Gaussian noise, in the image's units.
      seed: [2] int stateless seed for the noise (required when noise_std > 0).

    Returns:
      float32 (H, W, C), not clipped; equals motion_blur.blur(image, kernel) up to float32 rounding.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    kernel = tf.convert_to_tensor(kernel, tf.float32)
    (top, bottom), (left, right) = blur_margins(kernel.shape[0]), blur_margins(kernel.shape[1])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows = reflect_indices(-top, height + top + bottom, height)
    cols = reflect_indices(-left, width + left + right, width)
    blurred = convolve_valid_fft(tf.gather(tf.gather(image, rows, axis=0), cols, axis=1), kernel)
    if noise_std > 0:
        if seed is None:
            raise ValueError("noise_std > 0 needs a stateless seed")
        blurred += noise_std * tf.random.stateless_normal(tf.shape(blurred), seed)
    return blurred


def to_unit_range(image: tf.Tensor) -> tf.Tensor:
    """[0, 255] -> [-1, 1] float32 (clipped: blur noise can overshoot)."""
    return tf.clip_by_value(tf.cast(image, tf.float32) / 127.5 - 1.0, -1.0, 1.0)


# --------------------------------------------------------------------------- randomness


def fold_seed(seed: tf.Tensor, *data: int | tf.Tensor) -> tf.Tensor:
    for value in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int64))
    return seed


def root_seed(seed: int) -> tf.Tensor:
    return tf.constant([seed, 0], tf.int64)
