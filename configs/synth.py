"""DeblurGAN_Synth: sharp photos (the paper: MS COCO) blurred on the fly by the synthesiser.

python train.py --config configs/synth.py --workdir runs/synth --config.data.sharp_root=/data/coco/train2017
"""
from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "synthetic"
    config.data.downscale = 1
    return config
