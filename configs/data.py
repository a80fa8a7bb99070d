"""Data settings (`config.data` of the training configs): sources, augmentation, synthetic blur.

Crop size, batch size and seed are top-level (`config.crop_size`, `config.batch_size`,
`config.seed`) and are passed to `deblurgan_jax.data.create_train_dataset` as arguments.
Folder layouts are documented in `deblurgan_jax/data.py` (`data.LAYOUTS`).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """All data fields with their defaults."""
    config = ml_collections.ConfigDict()
    # Where pairs come from: 'gopro' (ROOT/{train,test}/<seq>/{blur,sharp}), 'paired' (ROOT/A
    # blurred, ROOT/B sharp, matched by file name), 'ab' (blurred|sharp side by side, the original
    # DeblurGAN format), 'synthetic' (sharp photos in sharp_root, blurred on the fly: _Synth),
    # 'comb' (root in the `real_source` layout mixed with synthetic: _Comb), 'demo' (scikit-image's
    # bundled photos, fixed 6 train / 3 held-out; nothing to download).
    config.source = "gopro"
    # Folder of the real pairs ('gopro', 'paired', 'ab', 'comb'); e.g. /data/GoPro_Large.
    config.root = ""
    # Layout of `root` when source == 'comb': 'gopro', 'paired' or 'ab'.
    config.real_source = "gopro"
    # Folder of sharp photos (recursive) for 'synthetic' and 'comb' (the paper: MS COCO).
    config.sharp_root = ""
    # 'comb': fraction of synthetic examples: floor(n * ratio) of the first n, evenly spread.
    config.synthetic_ratio = 0.5
    # Subfolder names of the splits. 'paired'/'ab'/'synthetic' fall back to the folder itself when
    # the subfolder does not exist; 'gopro' requires both. 'demo' maps 'train' to its 6 training
    # photos and any other split name to its 3 held-out ones.
    config.train_split = "train"
    config.eval_split = "test"
    # Downscale factor (1 or 2, exact 2x2 box average) before cropping in training; the paper
    # trained DeblurGAN_WILD on GoPro halved (1280x720 -> 640x360).
    config.downscale = 1
    # Downscale factor of the full eval images (the paper reports GoPro test at full size: 1).
    config.eval_downscale = 1
    # Random horizontal flips (the same for blurred and sharp).
    config.flip = True
    # Full per-epoch permutation of the files, a pure function of (seed, epoch); no shuffle buffer
    # and no iterator state (see DESIGN "engineering conventions"). False: file order (debugging).
    config.shuffle = True
    # Tries per example when a file fails to decode at run time (after a valid header): try k reads
    # the k-th next file of the permutation; failures are counted in Batches.stats, never raised.
    config.decode_attempts = 4
    # Seed of the held-out blur for synthetic eval sets ('synthetic', 'demo'): image j gets kernel
    # j of a bank drawn from this seed, independent of the training seed, so the eval set is fixed.
    config.eval_blur_seed = 0

    # Synthetic blur (deblurgan_jax/blur.py, Boracchi & Foi trajectories as in DeblurGAN).
    config.blur = ml_collections.ConfigDict()
    config.blur.canvas = 64  # kernel side in pixels (original: 64)
    config.blur.iters = 2000  # samples per trajectory (original: 2000)
    config.blur.max_len = 60.0  # trajectory length in pixels, <= canvas - 4 (original: 60)
    # "Anxiety" of the shake; None draws U(0, 0.1) per kernel, as the original. A typed placeholder
    # so that --config.data.blur.expl=0.005 can override the None.
    config.blur.expl = ml_collections.config_dict.placeholder(float)
    # Exposure fractions a kernel is drawn from (the original dataset script: 1/10, 1/2, 1).
    config.blur.fractions = (0.1, 0.5, 1.0)
    # Kernels precomputed once per run from (seed, these settings) and gathered per example in TF:
    # a NumPy sampler per example is GIL-bound (~1.4k kernels/s). 2048 kernels = 32 MiB.
    config.blur.kernel_bank_size = 2048
    # Std of Gaussian noise added after blurring, on a 0..1 intensity scale (0: none).
    config.blur.noise_std = 0.0
    return config
