"""The 'demo' data source: colour sample photos bundled with scikit-image, split once and for all.

The demo trains and evaluates without any download: it reads the colour photos that the
installed scikit-image package ships in `skimage/data/` (the same files `skimage.data.astronaut()`
and friends load). They are split into a FIXED training set and a held-out set, chosen by name
here so that the split never depends on a seed, a file listing order or the skimage version:

  train (6):    astronaut, hubble_deep_field, immunohistochemistry, retina, colorwheel,
                motorcycle_left
  held-out (3): chelsea, coffee, rocket

`skimage.data.cat()` is the same image as `chelsea()` (the same file), so it is listed once, in
the held-out set; putting it on both sides would leak a test image into training. There is no
`skimage.data.motorcycle_left` function: `stereo_motorcycle()[0]` returns that file.

Training pairs are blurred on the fly (like the 'synthetic' source); held-out pairs are blurred
deterministically from `config.eval_blur_seed` (see `data.create_eval_dataset`).
"""

from __future__ import annotations

import os

# name -> file inside skimage/data/. The names are the skimage.data loader functions.
DEMO_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "retina": "retina.jpg",
    "colorwheel": "color.png",
    "motorcycle_left": "motorcycle_left.png",
    "chelsea": "chelsea.png",  # also skimage.data.cat()
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
}
DEMO_TRAIN: tuple[str, ...] = (
    "astronaut",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "motorcycle_left",
)
DEMO_HELD_OUT: tuple[str, ...] = ("chelsea", "coffee", "rocket")


def skimage_data_dir() -> str:
    """The folder of the installed scikit-image package's bundled sample images."""
    import skimage.data

    return os.path.dirname(os.path.abspath(skimage.data.__file__))


def demo_images(split: str) -> list[tuple[str, str]]:
    """(name, path) of the demo images of `split`: 'train', or anything else for held-out.

    Any split other than 'train' ('test', 'eval', 'val', ...) is the held-out set, so that
    `config.eval_split` works unchanged with the demo source.
    """
    names = DEMO_TRAIN if split == "train" else DEMO_HELD_OUT
    folder = skimage_data_dir()
    return [(name, os.path.join(folder, DEMO_FILES[name])) for name in names]
