"""The paper's training settings (DeblurGAN, CVPR 2018), shared by the per-model configs.

Every field, with its meaning and default, is defined in `deblurgan_jax/config.py`
(`default_config()`), so the installed package has its defaults without this folder; configs here
start from it and change what they need. Override any field from the command line, e.g.
`--config.batch_size=8`.
"""

import ml_collections

from deblurgan_jax import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    return config_lib.default_config()
