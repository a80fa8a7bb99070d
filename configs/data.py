"""Data settings (`config.data` of the training configs): sources, augmentation, synthetic blur.

Every field, with its meaning and default, is defined in `deblurgan_jax/config.py`
(`data_config()`). Crop size, batch size and seed are top-level (`config.crop_size`,
`config.batch_size`, `config.seed`). Folder layouts are documented in `deblurgan_jax/data/sources.py`.
"""

import ml_collections

from deblurgan_jax import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    """All data fields with their defaults."""
    return config_lib.data_config()
