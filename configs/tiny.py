"""A tiny, fast config for tests: small networks, 32x32 crops, the demo photos, L1 content loss
(no VGG), CPU in seconds."""

from configs import default


def get_config():
    config = default.get_config()
    config.num_steps = 6
    config.batch_size = 2
    config.crop_size = 32
    config.n_critic = 2
    config.log_every = 2
    config.checkpoint_every = 2
    config.eval_every = 0
    config.max_to_keep = 2
    config.num_image_summaries = 1
    config.eval_max_images = 1
    config.model.ngf = 8
    config.model.n_blocks = 2
    config.model.ndf = 8
    # XLA's convolutions: at these sizes the CPU-fast forms gain nothing and take twice as long
    # to compile (README, "Measured design choices"). tests/test_conv_ops.py and tests/test_scale.py
    # cover 'cpu_fast' explicitly.
    config.model.conv_impl = "xla"
    config.loss.content = "l1"
    config.loss.vgg_arch = "vgg16"
    config.data.source = "demo"
    config.data.downscale = 1
    config.data.eval_downscale = 2
    config.data.blur.canvas = 16
    config.data.blur.max_len = 10.0
    config.data.blur.iters = 200
    config.data.blur.kernel_bank_size = 32
    return config
