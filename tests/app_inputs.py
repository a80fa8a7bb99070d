"""Inputs the app's tests share (tests/test_app.py, tests/test_browser.py): a tiny generator
params file, a blurred photo, a decompression-bomb PNG and a free port."""

import os
import socket
import struct
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data

from deblurgan_jax.blurring import motion_blur
from deblurgan_jax.networks import models
from deblurgan_jax.weights import checkpoints

H, W = 77, 101  # not multiples of 4


def tiny_params_file(folder) -> str:
    """A randomly initialised small generator (ngf 8, 2 blocks) saved as a params file."""
    g = models.ResnetGenerator(ngf=8, n_blocks=2)
    params = g.init(jax.random.key(3), jnp.zeros((1, 32, 32, 3)))["params"]
    path = os.path.join(str(folder), "g.msgpack")
    checkpoints.save_generator(params, {"ngf": 8, "n_blocks": 2}, path)
    return path


def blurred_photo() -> np.ndarray:
    """A (H, W, 3) uint8 crop of scikit-image's astronaut with camera shake."""
    kernel = motion_blur.sample_kernels(
        np.random.default_rng(7), 1, canvas=16, max_len=10, fractions=(1.0,)
    )[0]
    sharp = skimage.data.astronaut()[60 : 60 + H, 150 : 150 + W]
    return np.clip(np.rint(motion_blur.blur(sharp, kernel)), 0, 255).astype(np.uint8)


def bomb_png(path) -> None:
    """A valid-looking PNG whose header claims 100000 x 100000 pixels (a decompression bomb)."""

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64)
    with open(path, "wb") as f:
        f.write(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_photos(folder) -> dict[str, str]:
    """Writes good.jpg and bad photos into `folder`: {bad file name: what its message says}."""
    from PIL import Image

    good = folder / "good.jpg"
    Image.fromarray(blurred_photo()).save(good, quality=90)
    data = good.read_bytes()
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    (folder / "garbage.jpg").write_bytes(data[:20] + bytes(range(256)) * 8)
    Image.fromarray(np.zeros((5, 40, 3), np.uint8)).save(folder / "sliver.png")
    bomb_png(folder / "bomb.png")
    return {
        "notes.txt": "not a readable image",
        "empty.png": "the file is empty",
        "cut.jpg": "",
        "garbage.jpg": "",
        "sliver.png": "too small",
        "bomb.png": "decompression-bomb limit",
    }
