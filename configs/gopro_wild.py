"""DeblurGAN_WILD: GoPro training pairs, frames downscaled x2 (paper, Sec. 5.1).

python train.py --config configs/gopro_wild.py --workdir runs/wild --config.data.root=/data/GoPro_Large
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "gopro"
    config.data.downscale = 2
    # Optional deviation from the paper: keep an exponential moving average of the generator's
    # weights and evaluate/export it (BasicSR, NAFNet), e.g. --config.ema_decay=0.999. 0 = off
    # (the paper). At 0.999 the average spans ~1000 steps, half an epoch of GoPro at batch 1.
    # config.ema_decay = 0.999
    config.ema_decay = 0.0
    return config
