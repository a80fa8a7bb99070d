"""Importers through real files and the command line: official-layout .pth -> Flax params,
torchvision/Keras VGG19 -> the perceptual-loss weights file, and the refusals."""

import os
import subprocess
import sys

import h5py
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from command_runner import run_main
from deblurgan_jax.weights import checkpoints, torch_weights
from deblurgan_jax.commands import convert
from deblurgan_jax.networks import models
import torch_reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args):
    return run_main(convert.main, *args)


def _subprocess_cli(*args):
    """The command as a user runs it (one smoke test; the others call main in-process)."""
    return subprocess.run(
        [sys.executable, "-m", "deblurgan_jax.convert", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def small_generator():
    torch.manual_seed(0)
    return ref.randomize_biases(ref.ResnetGenerator(ngf=8, n_blocks=3), scale=1.0).eval()


def test_generator_pth_round_trip_via_cli(tmp_path, small_generator):
    pth = tmp_path / "latest_net_G.pth"
    # DataParallel-saved checkpoints carry a 'module.' prefix; the importer strips it.
    torch.save({"module." + k: v for k, v in small_generator.state_dict().items()}, pth)
    out = tmp_path / "g.msgpack"
    r = _subprocess_cli("generator", "--pth", str(pth), "--out", str(out))
    assert r.returncode == 0, r.stderr
    params, cfg = checkpoints.load_generator(str(out))
    assert cfg["ngf"] == 8 and cfg["n_blocks"] == 3 and cfg["learn_residual"] is True
    # The Python API gives the same params.
    direct, _ = torch_weights.generator_params_from_state_dict(
        torch_weights.load_torch_state_dict(str(pth))
    )
    for a, b in zip(jax_leaves(direct), jax_leaves(params)):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 48, 64, 3)).astype(np.float32)
    want = ref.nhwc(small_generator(ref.nchw(x)))
    net = models.ResnetGenerator(ngf=cfg["ngf"], n_blocks=cfg["n_blocks"])
    got = np.asarray(net.apply({"params": params}, jnp.asarray(x)))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # Values converted = official values minus the dropped biases before InstanceNorm.
    n_torch = sum(p.numel() for p in small_generator.parameters())
    dropped = sum(
        v.numel()
        for k, v in small_generator.state_dict().items()
        if k.endswith("bias") and not k.startswith("model.20.")
    )  # head: 17 + 3 blocks
    assert models.count_params(params) == n_torch - dropped
    # Never overwrite without --overwrite.
    r = _cli("generator", "--pth", str(pth), "--out", str(out))
    assert r.returncode == 2 and "exists" in r.stderr and "Traceback" not in r.stderr


def jax_leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


def test_one_conv_2019_checkpoint_is_refused(tmp_path):
    net = ref.ResnetGenerator(ngf=8, n_blocks=2, block=ref.OneConvResnetBlock)
    pth = tmp_path / "g2019.pth"
    torch.save(net.state_dict(), pth)
    with pytest.raises(torch_weights.CheckpointError, match="2019") as e:
        torch_weights.generator_params_from_state_dict(
            torch_weights.load_torch_state_dict(str(pth))
        )
    assert "one convolution" in str(e.value).lower()
    r = _cli("generator", "--pth", str(pth), "--out", str(tmp_path / "x.msgpack"))
    assert r.returncode == 1 and "2019" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.msgpack").exists()


def test_wrong_and_missing_keys_are_listed_by_name(small_generator):
    sd = {k: v.numpy() for k, v in small_generator.state_dict().items()}
    del sd["model.11.conv_block.6.weight"]
    sd["model.99.extra"] = np.zeros(3, np.float32)
    with pytest.raises(torch_weights.CheckpointError) as e:
        torch_weights.generator_params_from_state_dict(sd)
    assert "model.11.conv_block.6.weight" in str(e.value)
    assert "model.99.extra" in str(e.value)
    with pytest.raises(torch_weights.CheckpointError, match="conv_block"):
        torch_weights.generator_params_from_state_dict({"foo.weight": np.zeros(3)})


def test_critic_pth_round_trip(tmp_path):
    net = ref.randomize_biases(ref.NLayerDiscriminator(ndf=8), scale=1.0).eval()
    pth = tmp_path / "latest_net_D.pth"
    torch.save(net.state_dict(), pth)
    params, _ = torch_weights.critic_params_from_state_dict(
        torch_weights.load_torch_state_dict(str(pth))
    )
    x = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    want = ref.nhwc(net(ref.nchw(x)))
    got = np.asarray(models.PatchCritic(ndf=8).apply({"params": params}, jnp.asarray(x)))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    r = _cli("critic", "--pth", str(pth), "--out", str(tmp_path / "d.msgpack"))
    assert r.returncode == 0, r.stderr


def _vgg_reference():
    torch.manual_seed(1)
    return ref.randomize_biases(ref.VGGTrunk(), scale=0.1).eval()


def test_torchvision_vgg19_round_trip_via_cli(tmp_path, monkeypatch):
    tnet = _vgg_reference()
    # A full torchvision VGG19 state_dict has more layers; the importer takes conv1_1..conv3_3.
    sd = dict(tnet.state_dict())
    sd["features.16.weight"] = torch.zeros(256, 256, 3, 3)
    sd["classifier.0.weight"] = torch.zeros(4, 4)
    pth = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(sd, pth)
    out = tmp_path / "weights" / "vgg19_conv3_3.npz"
    r = _cli("vgg19", "--torchvision", str(pth), "--out", str(out))
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv(models.VGG19_PATH_ENV, str(out))  # where training looks by default
    params, preprocess = models.load_vgg_params("vgg19")
    assert preprocess == "torch"
    x = np.random.default_rng(2).uniform(-1, 1, (1, 48, 80, 3)).astype(np.float32)
    xn = ((x + 1) / 2 - models.TORCH_MEAN) / models.TORCH_STD
    want = ref.nhwc(tnet(ref.nchw(xn.astype(np.float32))))
    got = np.asarray(models.VGGFeatures(arch="vgg19").apply({"params": params}, jnp.asarray(x)))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def _write_keras_h5(path, tnet):
    """The legacy Keras weights layout: a group per layer, datasets '<layer>/kernel:0'."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1"] + [
            n.encode() for n in torch_weights.KERAS_VGG_NAMES.values()
        ]
        f.create_group("input_1").attrs["weight_names"] = []
        sd = tnet.state_dict()
        for name, layer in torch_weights.KERAS_VGG_NAMES.items():
            idx = torch_weights.TORCHVISION_VGG_INDICES[name]
            g = f.create_group(layer)
            g.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            g.create_dataset(
                f"{layer}/kernel:0", data=sd[f"features.{idx}.weight"].numpy().transpose(2, 3, 1, 0)
            )
            g.create_dataset(f"{layer}/bias:0", data=sd[f"features.{idx}.bias"].numpy())


def test_keras_vgg19_round_trip_via_cli(tmp_path):
    tnet = _vgg_reference()
    h5 = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _write_keras_h5(h5, tnet)
    out = tmp_path / "vgg19_keras.npz"
    r = _cli("vgg19", "--keras", str(h5), "--out", str(out))
    assert r.returncode == 0, r.stderr
    params, preprocess = models.load_vgg_params("vgg19", str(out))
    assert preprocess == "caffe"
    x = np.random.default_rng(3).uniform(-1, 1, (1, 48, 80, 3)).astype(np.float32)
    # Keras (Caffe) convention: BGR in [0, 255] minus the ImageNet mean, done by hand here.
    xc = ((x + 1) / 2)[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68], np.float32)
    want = ref.nhwc(tnet(ref.nchw(np.ascontiguousarray(xc, np.float32))))
    net = models.VGGFeatures(arch="vgg19", preprocess=preprocess)
    got = np.asarray(net.apply({"params": params}, jnp.asarray(x)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_bad_vgg_files_give_clear_errors(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("not hdf5")
    r = _cli("vgg19", "--keras", str(bad), "--out", str(tmp_path / "o.npz"))
    assert r.returncode == 1 and "not an HDF5 file" in r.stderr and "Traceback" not in r.stderr
    pth = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, pth)
    r = _cli("vgg19", "--torchvision", str(pth), "--out", str(tmp_path / "o.npz"))
    assert r.returncode == 1 and "features.0.bias" in r.stderr
    r = _cli("generator", "--pth", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "not found" in r.stderr


def test_truncated_params_file_is_a_clear_error(tmp_path, small_generator):
    params, cfg = torch_weights.generator_params_from_state_dict(
        {k: v.numpy() for k, v in small_generator.state_dict().items()}
    )
    path = tmp_path / "g.msgpack"
    checkpoints.save_generator(params, cfg, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoints.ParamsFileError, match="truncated or corrupt"):
        checkpoints.load_generator(str(path))
