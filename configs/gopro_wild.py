"""DeblurGAN_WILD: GoPro training pairs, frames downscaled x2 (paper, Sec. 5.1).

python train.py --config configs/gopro_wild.py --workdir runs/wild --config.data.root=/data/GoPro_Large
"""
from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "gopro"
    config.data.downscale = 2
    return config
