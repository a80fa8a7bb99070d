"""Tests of the data sources and tf.data pipelines (deblurgan_jax/data/), the GoPro TFDS builder, the
demo split.

Small images (40x56, crop 32) keep the file fast. Real pairs are written with blurred = 255 - sharp,
so blurred == -sharp in [-1, 1] exactly when both got the same crop and flip, while they differ.
"""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from configs import data as data_configs
from deblurgan_jax.blurring import motion_blur
from deblurgan_jax.data import pipeline, sources, tf_ops
from deblurgan_jax.data import demo_data
from deblurgan_jax import config as config_lib

HEIGHT, WIDTH, CROP, BATCH = 40, 56, 32, 4


def _random_image(rng, height=HEIGHT, width=WIDTH):
    # Smooth-ish random content, so crops at different offsets differ.
    return (rng.random((height, width, 3)) * 255).astype(np.uint8)


def _save(array, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def _make_gopro(root, rng, sequences=2, frames=3, test_frames=2):
    for split, n_seq, n_frames in (("train", sequences, frames), ("test", 1, test_frames)):
        for s in range(n_seq):
            for f in range(n_frames):
                sharp = _random_image(rng)
                _save(sharp, os.path.join(root, split, f"GOPR{s:04d}", "sharp", f"{f:06d}.png"))
                blur_path = os.path.join(root, split, f"GOPR{s:04d}", "blur", f"{f:06d}.png")
                _save(255 - sharp, blur_path)
    return str(root)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    rng = np.random.default_rng(0)
    base = tmp_path_factory.mktemp("data")
    gopro = _make_gopro(base / "gopro", rng)
    paired = base / "paired"
    for i in range(4):
        sharp = _random_image(rng)
        _save(sharp, str(paired / "B" / f"im{i}.png"))
        _save(255 - sharp, str(paired / "A" / f"im{i}.png"))
    _save(_random_image(rng), str(paired / "A" / "lonely.png"))  # no partner: ignored
    ab = base / "ab"
    for i in range(4):
        sharp = _random_image(rng)
        _save(np.concatenate([255 - sharp, sharp], axis=1), str(ab / "train" / f"ab{i}.png"))
    sharp_dir = base / "sharp"
    for i in range(5):
        _save(
            _random_image(rng, 48, 60),
            str(sharp_dir / f"photo{i}.jpg" if i == 0 else sharp_dir / "sub" / f"photo{i}.png"),
        )
    return {
        "gopro": gopro,
        "paired": str(paired),
        "ab": str(ab),
        "sharp": str(sharp_dir),
        "base": base,
    }


def _config(source, folders, **overrides):
    config = data_configs.get_config()
    config.source = source
    config.root = folders.get({"comb": "gopro"}.get(source, source), "")
    config.sharp_root = folders["sharp"]
    config.blur.kernel_bank_size = 8
    config.blur.iters = 300  # fast bank; geometry as the paper's
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return config


def _batches(config, n, batch_size=BATCH, seed=0, **kwargs):
    kwargs.setdefault("process_index", 0)
    kwargs.setdefault("process_count", 1)
    dataset = pipeline.create_train_dataset(
        config, batch_size=batch_size, crop_size=CROP, seed=seed, **kwargs
    )
    iterator = iter(dataset)
    batches = [next(iterator) for _ in range(n)]
    dataset.close()  # now, not when garbage-collected (an idle iterator can take seconds)
    return batches


def _stack(batches, key):
    return np.stack([b[key] for b in batches])


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize("source", ["gopro", "paired", "ab", "synthetic", "comb", "demo"])
def test_source_yields_unit_range_batches(source, folders):
    (batch,) = _batches(_config(source, folders), 1)
    assert set(batch) == {"blurred", "sharp"}
    for key in ("blurred", "sharp"):
        assert batch[key].shape == (BATCH, CROP, CROP, 3)
        assert batch[key].dtype == np.float32
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
    assert np.abs(batch["blurred"] - batch["sharp"]).mean() > 0.01


@pytest.mark.parametrize(
    "source,downscale", [("gopro", 1), ("gopro", 2), ("paired", 1), ("ab", 1), ("ab", 2)]
)
def test_blurred_and_sharp_get_the_same_crop_and_flip(source, downscale, folders):
    # Pairs are (255 - x, x): the same crop/flip/downscale for both gives blurred == -sharp.
    config = _config(source, folders, downscale=downscale)
    batches = _batches(config, 3)
    blurred, sharp = _stack(batches, "blurred"), _stack(batches, "sharp")
    np.testing.assert_allclose(blurred, -sharp, atol=1e-6)
    # Crops really move around and flips happen: not every example is the top-left corner.
    assert len({s.tobytes() for s in sharp.reshape(-1, CROP, CROP, 3)}) > 3


def test_downscale_halves_before_cropping(folders, tmp_path):
    # An image of exactly 2 x crop is downscaled to the crop: no randomness but the flip.
    rng = np.random.default_rng(1)
    sharp = _random_image(rng, 2 * CROP, 2 * CROP)
    _save(sharp, str(tmp_path / "A" / "x.png"))
    _save(sharp, str(tmp_path / "B" / "x.png"))
    config = _config("paired", folders, root=str(tmp_path), downscale=2, flip=False)
    (batch,) = _batches(config, 1, batch_size=1)
    expected = sharp.astype(np.float32).reshape(CROP, 2, CROP, 2, 3).mean(axis=(1, 3)) / 127.5 - 1
    np.testing.assert_allclose(batch["sharp"][0], expected, atol=1e-5)


def test_comb_mixes_at_the_configured_ratio(folders):
    # Real GoPro pairs satisfy blurred == -sharp; synthetic ones do not.
    config = _config("comb", folders, synthetic_ratio=0.25)
    (batch,) = _batches(config, 1, batch_size=8)
    real = [np.allclose(b, -s, atol=1e-6) for b, s in zip(batch["blurred"], batch["sharp"])]
    assert sum(real) == 6  # floor(8 * 0.25) = 2 synthetic


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("source", ["gopro", "synthetic"])
def test_same_seed_same_batches_different_seed_differs(source, folders):
    config = _config(source, folders)
    first, again = _batches(config, 3, seed=7), _batches(config, 3, seed=7)
    other = _batches(config, 3, seed=8)
    for key in ("blurred", "sharp"):
        np.testing.assert_array_equal(_stack(first, key), _stack(again, key))
        assert not np.array_equal(_stack(first, key), _stack(other, key))


@pytest.mark.parametrize("source", ["gopro", "comb"])
def test_resume_from_start_index_repeats_the_straight_run(source, folders):
    # 5 batches of 4 cross the 6-pair epoch boundary (and the comb tables' epochs).
    config = _config(source, folders)
    straight = _batches(config, 5)
    resumed = _batches(config, 3, start_index=2 * BATCH)
    for key in ("blurred", "sharp"):
        np.testing.assert_array_equal(_stack(resumed, key), _stack(straight[2:], key))


def test_each_epoch_visits_every_file_once(folders):
    config = _config("gopro", folders, flip=False)
    batches = _batches(config, 3, batch_size=6)  # 6 train pairs: one epoch per batch
    for batch in batches:
        # Which file an example came from: its crop appears in exactly one source image.
        assert len({s.tobytes() for s in batch["sharp"]}) == 6
    assert not np.array_equal(batches[0]["sharp"], batches[1]["sharp"])  # epochs reshuffle


def test_start_index_must_be_a_multiple_of_the_batch(folders):
    with pytest.raises(ValueError, match="start_index"):
        pipeline.create_train_dataset(
            _config("gopro", folders),
            batch_size=4,
            crop_size=CROP,
            seed=0,
            start_index=3,
            process_index=0,
            process_count=1,
        )


# --------------------------------------------------------------------------- devices and hosts


def test_device_axis(folders):
    (batch,) = _batches(_config("gopro", folders), 1, batch_size=8, num_devices=2)
    assert batch["blurred"].shape == (2, 4, CROP, CROP, 3)
    assert batch["sharp"].shape == (2, 4, CROP, CROP, 3)
    with pytest.raises(ValueError, match="num_devices"):
        _batches(_config("gopro", folders), 1, batch_size=6, num_devices=4)


@pytest.mark.parametrize("source", ["gopro", "synthetic"])
def test_host_shards_are_disjoint_slices_of_the_global_batch(source, folders):
    config = _config(source, folders)
    whole = _batches(config, 2, batch_size=8)
    shards = [_batches(config, 2, batch_size=8, process_index=h, process_count=2) for h in (0, 1)]
    for step in range(2):
        for key in ("blurred", "sharp"):
            parts = [shards[h][step][key] for h in (0, 1)]
            assert parts[0].shape == (4, CROP, CROP, 3)
            np.testing.assert_array_equal(np.concatenate(parts), whole[step][key])
            assert not any(np.array_equal(a, b) for a in parts[0] for b in parts[1])


# --------------------------------------------------------------------------- synthetic blur


@pytest.mark.parametrize(
    "height,width,canvas,max_len", [(37, 45, 64, 60), (70, 33, 16, 10), (9, 12, 15, 8)]
)
def test_tf_blur_matches_numpy_blur(height, width, canvas, max_len):
    rng = np.random.default_rng(3)
    image = rng.random((height, width, 3)).astype(np.float32)
    (kernel,) = motion_blur.sample_kernels(rng, 1, canvas=canvas, iters=500, max_len=max_len)
    expected = motion_blur.blur(image, kernel)
    actual = tf_ops.blur_tf(image, kernel).numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-4)


@pytest.mark.parametrize("downscale", [1, 2])
def test_synthetic_crop_equals_numpy_blur_of_the_image(downscale, folders, tmp_path):
    # One image of exactly the crop (after downscale) and a one-kernel bank: the pipeline's crop
    # with its kernel margin must equal motion_blur.blur of the whole (mirror-padded) image.
    rng = np.random.default_rng(4)
    sharp = _random_image(rng, CROP * downscale, CROP * downscale)
    _save(sharp, str(tmp_path / "only.png"))
    config = _config(
        "synthetic", folders, sharp_root=str(tmp_path), flip=False, downscale=downscale
    )
    config.blur.kernel_bank_size = 1
    (batch,) = _batches(config, 1, batch_size=1, seed=5)
    (kernel,) = pipeline.kernel_bank(config.blur, seed=5)
    image = sharp.astype(np.float64).reshape(CROP, downscale, CROP, downscale, 3).mean(axis=(1, 3))
    expected = np.clip(motion_blur.blur(image / 255.0, kernel) * 2 - 1, -1, 1)
    np.testing.assert_allclose(batch["blurred"][0], expected, atol=2e-4)
    np.testing.assert_allclose(batch["sharp"][0], image / 127.5 - 1, atol=1e-5)


# --------------------------------------------------------------------------- bad input


def test_size_mismatch_names_both_files(folders, tmp_path):
    rng = np.random.default_rng(5)
    _save(_random_image(rng), str(tmp_path / "A" / "x.png"))
    _save(_random_image(rng, 44, 56), str(tmp_path / "B" / "x.png"))
    with pytest.raises(sources.DataError) as error:
        pipeline.create_train_dataset(
            _config("paired", folders, root=str(tmp_path)),
            batch_size=1,
            crop_size=CROP,
            seed=0,
            process_index=0,
            process_count=1,
        )
    assert str(tmp_path / "A" / "x.png") in str(error.value)
    assert str(tmp_path / "B" / "x.png") in str(error.value)


def test_gray_rgba_and_16_bit_become_8_bit_rgb(folders, tmp_path):
    gray = np.full((HEIGHT, WIDTH), 77, np.uint8)
    rgba = np.zeros((HEIGHT, WIDTH, 4), np.uint8) + np.array([10, 20, 30, 128], np.uint8)
    deep = np.full((HEIGHT, WIDTH), 40000, np.uint16)
    for name, array in (("gray", gray), ("rgba", rgba), ("deep", deep)):
        _save(array, str(tmp_path / "A" / f"{name}.png"))
        _save(array, str(tmp_path / "B" / f"{name}.png"))
    assert Image.open(tmp_path / "B" / "deep.png").mode.startswith("I;16")
    config = _config("paired", folders, root=str(tmp_path))
    images = {b["name"][0]: b["sharp"][0] for b in pipeline.create_eval_dataset(config)}
    expected = {"gray": [77] * 3, "rgba": [10, 20, 30], "deep": [40000 / 257] * 3}
    for name, rgb in expected.items():
        assert images[f"{name}.png"].shape == (HEIGHT, WIDTH, 3)
        np.testing.assert_allclose(
            images[f"{name}.png"].reshape(-1, 3).mean(0),
            np.array(rgb) / 127.5 - 1,
            atol=1.01 / 127.5,
        )
    (batch,) = _batches(config, 1, batch_size=3)  # the training path decodes them too
    assert batch["sharp"].shape == (3, CROP, CROP, 3)


def test_small_images_are_mirror_padded_counted_and_logged(folders, tmp_path, caplog):
    rng = np.random.default_rng(6)
    small = _random_image(rng, 10, 12)
    _save(small, str(tmp_path / "A" / "small.png"))
    _save(small, str(tmp_path / "B" / "small.png"))
    _save(_random_image(rng), str(tmp_path / "A" / "big.png"))
    _save(_random_image(rng), str(tmp_path / "B" / "big.png"))
    config = _config("paired", folders, root=str(tmp_path), flip=False, shuffle=False)
    with caplog.at_level(logging.WARNING):
        batches = pipeline.create_train_dataset(
            config, batch_size=2, crop_size=CROP, seed=0, process_index=0, process_count=1
        )
    assert batches.stats.padded == 1
    assert "smaller than the 32x32 crop" in caplog.text
    batch = next(iter(batches))
    # Unshuffled order: big.png, small.png. The small image is centred and mirrored (np 'reflect').
    expected = np.pad(small, ((11, 11), (10, 10), (0, 0)), mode="reflect") / 127.5 - 1
    np.testing.assert_allclose(batch["sharp"][1], expected, atol=1e-6)


def test_unreadable_files_are_skipped_and_counted(folders, tmp_path, caplog):
    root = _make_gopro(tmp_path / "gopro", np.random.default_rng(7), sequences=1, frames=3)
    frame = os.path.join(root, "train", "GOPR0000", "{}", "000001.png")
    with open(frame.format("blur"), "wb") as f:
        f.write(b"not an image at all")
    with caplog.at_level(logging.WARNING):
        batches = pipeline.create_train_dataset(
            _config("gopro", folders, root=root),
            batch_size=2,
            crop_size=CROP,
            seed=0,
            process_index=0,
            process_count=1,
        )
    assert batches.stats.unreadable == [frame.format("blur")]
    assert batches.stats.num_pairs == 2
    assert "unreadable" in caplog.text
    assert next(iter(batches))["sharp"].shape == (2, CROP, CROP, 3)


def test_file_corrupt_after_its_header_is_replaced_not_fatal(folders, tmp_path, caplog):
    root = _make_gopro(tmp_path / "gopro", np.random.default_rng(8), sequences=1, frames=3)
    frame = os.path.join(root, "train", "GOPR0000", "sharp", "000002.png")
    with open(frame, "rb") as f:
        payload = f.read()
    with open(frame, "wb") as f:
        f.write(payload[: len(payload) // 2])  # valid header, truncated pixels
    config = _config("gopro", folders, root=root)
    with caplog.at_level(logging.WARNING):
        batches = pipeline.create_train_dataset(
            config, batch_size=3, crop_size=CROP, seed=0, process_index=0, process_count=1
        )
        assert batches.stats.num_pairs == 3  # the header scan cannot tell
        got = [b for _, b in zip(range(4), batches)]  # 4 epochs: the broken file comes up 4 times
    assert all(b["sharp"].shape == (3, CROP, CROP, 3) for b in got)
    assert batches.stats.replaced == 4 and batches.stats.dropped == 0
    (failed,) = batches.stats.failed_files
    assert frame in failed
    assert "could not decode" in caplog.text
    for b in got:  # the replacement is a real pair, cropped alike
        np.testing.assert_allclose(b["blurred"], -b["sharp"], atol=1e-6)


def test_eval_skips_and_counts_a_file_that_fails_to_decode(folders, tmp_path, caplog):
    root = _make_gopro(tmp_path / "gopro", np.random.default_rng(9), sequences=1, frames=1)
    frame = os.path.join(root, "test", "GOPR0000", "blur", "000001.png")
    with open(frame, "rb") as f:
        payload = f.read()
    with open(frame, "wb") as f:
        f.write(payload[: len(payload) // 2])
    batches = pipeline.create_eval_dataset(_config("gopro", folders, root=root))
    with caplog.at_level(logging.WARNING):
        names = [b["name"][0] for b in batches]
    assert names == ["GOPR0000/000000.png"]
    assert batches.stats.dropped == 1
    assert "failed to decode" in caplog.text


@pytest.mark.parametrize("source", ["gopro", "paired", "ab", "synthetic"])
def test_folder_without_pairs_is_a_data_error(source, folders, tmp_path):
    empty = tmp_path / "empty"
    for sub in ("train", "test", "A", "B"):
        (empty / sub).mkdir(parents=True)
    config = _config(source, folders, root=str(empty), sharp_root=str(empty))
    with pytest.raises(sources.DataError, match="expected layout") as error:
        pipeline.create_train_dataset(
            config, batch_size=1, crop_size=CROP, seed=0, process_index=0, process_count=1
        )
    assert str(empty) in str(error.value)
    with pytest.raises(sources.DataError, match="does not exist"):
        pipeline.create_train_dataset(
            _config(
                source,
                folders,
                root=str(tmp_path / "nowhere"),
                sharp_root=str(tmp_path / "nowhere"),
            ),
            batch_size=1,
            crop_size=CROP,
            seed=0,
            process_index=0,
            process_count=1,
        )


# --------------------------------------------------------------------------- eval


def test_eval_gives_full_images_in_fixed_order_with_names(folders):
    config = _config("gopro", folders)
    batches = list(pipeline.create_eval_dataset(config))
    assert [b["name"] for b in batches] == [["GOPR0000/000000.png"], ["GOPR0000/000001.png"]]
    for b in batches:
        assert b["blurred"].shape == b["sharp"].shape == (1, HEIGHT, WIDTH, 3)
        np.testing.assert_allclose(b["blurred"], -b["sharp"], atol=1e-6)  # no crop, no flip
    (both,) = list(pipeline.create_eval_dataset(config, batch_size=2))
    np.testing.assert_array_equal(both["sharp"], np.concatenate([b["sharp"] for b in batches]))


def test_every_image_format_the_commands_read_is_paired_and_decoded(tmp_path):
    """.webp and .tif photos (which TensorFlow cannot decode) are listed like .png ones and read
    by Pillow: the same pixels as Pillow's own decoding, not skipped or replaced."""
    from PIL import Image

    rng = np.random.default_rng(3)
    expected = {}
    for ext in (".webp", ".tif", ".png"):
        pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        for side in ("A", "B"):
            os.makedirs(tmp_path / side, exist_ok=True)
            Image.fromarray(pixels if side == "B" else 255 - pixels).save(
                tmp_path / side / f"img{ext}", **({"lossless": True} if ext == ".webp" else {})
            )
        with Image.open(tmp_path / "B" / f"img{ext}") as im:
            expected[f"img{ext}"] = np.asarray(im.convert("RGB"), np.float32) / 127.5 - 1.0
    config = _config("paired", {"sharp": ""}, root=str(tmp_path))
    batches = list(pipeline.create_eval_dataset(config))
    assert sorted(b["name"][0] for b in batches) == sorted(expected)
    for b in batches:
        np.testing.assert_allclose(b["sharp"][0], expected[b["name"][0]], atol=1e-6)
        np.testing.assert_allclose(b["blurred"][0], -expected[b["name"][0]], atol=1e-6)


def test_synthetic_eval_is_blurred_deterministically(folders):
    config = _config("synthetic", folders, eval_split="test")  # no test/: the whole folder
    first = list(pipeline.create_eval_dataset(config))
    again = list(pipeline.create_eval_dataset(config))
    assert [b["name"][0] for b in first] == ["photo0.jpg"] + [
        f"sub/photo{i}.png" for i in range(1, 5)
    ]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["blurred"], b["blurred"])
        assert np.abs(a["blurred"] - a["sharp"]).mean() > 0.01


# --------------------------------------------------------------------------- demo and TFDS


def test_demo_split_is_fixed_disjoint_and_loads_without_download():
    import skimage.data

    train, held_out = demo_data.demo_images("train"), demo_data.demo_images("test")
    assert [n for n, _ in train] == [
        "astronaut",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "colorwheel",
        "motorcycle_left",
    ]
    assert [n for n, _ in held_out] == ["chelsea", "coffee", "rocket"]
    assert not {p for _, p in train} & {p for _, p in held_out}
    loaders = {"motorcycle_left": lambda: skimage.data.stereo_motorcycle()[0]}
    for name, path in train + held_out:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        expected = loaders.get(name, getattr(skimage.data, name, None))()
        np.testing.assert_array_equal(pixels, expected)
    # Why cat is not listed: it is chelsea.
    np.testing.assert_array_equal(skimage.data.cat(), skimage.data.chelsea())


def test_demo_eval_pairs_are_the_held_out_images(folders):
    batches = list(pipeline.create_eval_dataset(_config("demo", folders)))
    assert [b["name"][0] for b in batches] == ["chelsea", "coffee", "rocket"]
    assert batches[0]["sharp"].shape == (1, 300, 451, 3)


def test_tfds_gopro_builder_builds_from_a_manual_folder(folders, tmp_path):
    import tensorflow_datasets as tfds
    from deblurgan_jax.data import tfds_gopro

    manual = tmp_path / "manual"
    _make_gopro(manual / "GoPro_Large", np.random.default_rng(9), sequences=2, frames=2)
    builder = tfds_gopro.Gopro(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
    )
    assert builder.info.splits["train"].num_examples == 4
    assert builder.info.splits["test"].num_examples == 2
    examples = list(tfds.as_numpy(builder.as_dataset(split="test", shuffle_files=False)))
    assert sorted(e["name"].decode() for e in examples) == [
        "GOPR0000/000000.png",
        "GOPR0000/000001.png",
    ]
    for e in examples:
        path = manual / "GoPro_Large" / "test" / e["name"].decode().replace("/", "/sharp/")
        np.testing.assert_array_equal(e["sharp"], np.asarray(Image.open(path)))
        np.testing.assert_array_equal(e["blurred"], 255 - e["sharp"])


# --------------------------------------------------------------------------- misc


def test_config_has_every_field_and_tf_sees_no_gpu():
    config = data_configs.get_config()
    for field in (
        "source",
        "root",
        "real_source",
        "sharp_root",
        "synthetic_ratio",
        "train_split",
        "eval_split",
        "downscale",
        "eval_downscale",
        "flip",
        "shuffle",
        "decode_attempts",
        "eval_blur_seed",
        "blur.canvas",
        "blur.iters",
        "blur.max_len",
        "blur.expl",
        "blur.fractions",
        "blur.kernel_bank_size",
        "blur.noise_std",
    ):
        node = config
        for part in field.split("."):
            assert part in node, field
            node = node[part]
    pipeline.hide_gpus_from_tf()
    import tensorflow as tf

    assert not tf.config.get_visible_devices("GPU")


def test_kernel_bank_centres_kernels_when_asked():
    blur = config_lib.data_config().blur
    blur.canvas, blur.max_len, blur.kernel_bank_size = 32, 20.0, 16
    plain = pipeline.kernel_bank(blur, seed=5)
    blur.centre = True
    np.testing.assert_array_equal(
        pipeline.kernel_bank(blur, seed=5), motion_blur.centre_kernels(plain)
    )
    # A run whose config.json predates the field keeps the original's kernels.
    del blur["centre"]
    np.testing.assert_array_equal(pipeline.kernel_bank(blur, seed=5), plain)
