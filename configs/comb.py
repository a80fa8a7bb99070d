"""DeblurGAN_Comb: GoPro pairs mixed with synthetic blur from sharp photos.

python train.py --config configs/comb.py --workdir runs/comb \
  --config.data.root=/data/GoPro_Large --config.data.sharp_root=/data/coco/train2017
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "comb"
    config.data.real_source = "gopro"
    config.data.synthetic_ratio = 0.5
    config.data.downscale = 1
    # Optional deviation from the paper: keep an exponential moving average of the generator's
    # weights and evaluate/export it (BasicSR, NAFNet), e.g. --config.ema_decay=0.999. 0 = off
    # (the paper). At 0.999 the average spans ~1000 steps, half an epoch of GoPro at batch 1.
    # config.ema_decay = 0.999
    config.ema_decay = 0.0
    return config
