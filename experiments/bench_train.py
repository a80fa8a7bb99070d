"""One DeblurGAN training iteration (5 critic updates + 1 generator update, WGAN-GP + 100 x
perceptual loss on VGG conv3_3) at 256x256, full-size networks: deblurgan-jax's jitted step vs
the same iteration written in PyTorch (the reference networks of tests/torch_reference.py), on
the same machine. Prints one JSON object.

  python experiments/bench_train.py [--batch-sizes 1,8] [--repeats 2] [--dtypes float32]

On a GPU machine pass `--dtypes float32,bfloat16 --skip-torch` for iterations/s per dtype.
Each measurement runs in a fresh subprocess (peak RSS per framework and size).
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def time_jax(batch, size, repeats, dtype):
    import jax
    import jax.numpy as jnp
    import numpy as np
    sys.path.insert(0, ROOT)
    from configs import default
    from deblurgan_jax import train

    config = default.get_config()
    config.batch_size = batch
    config.crop_size = size
    config.loss.vgg_arch = "vgg16"  # same layers as VGG19 up to conv3_3; weights ship offline
    config.compute_dtype = dtype
    feature_params, preprocess = train.load_feature_params(config)
    networks = train.create_networks(config, preprocess)
    state = train.create_train_state(config, networks)
    step = train.make_train_step(config, networks)
    rng = np.random.default_rng(0)
    batch_arrays = {k: jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3)), jnp.float32)
                    for k in ("blurred", "sharp")}
    t0 = time.perf_counter()
    state, metrics = step(state, batch_arrays, feature_params)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = step(state, batch_arrays, feature_params)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return {"median_s": sorted(times)[len(times) // 2], "first_call_s": first,
            "device": str(jax.devices()[0].platform)}


def time_torch(batch, size, repeats):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import torch_reference as ref

    g, d = ref.ResnetGenerator(), ref.NLayerDiscriminator()
    vgg = ref.VGGTrunk().eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.5, 0.999))
    blurred = torch.rand(batch, 3, size, size) * 2 - 1
    sharp = torch.rand(batch, 3, size, size) * 2 - 1

    def iteration():
        fake = g(blurred)  # one forward, reused by the critic updates (as the original code)
        for _ in range(5):
            opt_d.zero_grad()
            f = fake.detach()
            alpha = torch.rand(batch, 1, 1, 1)
            x_hat = (alpha * sharp + (1 - alpha) * f).requires_grad_(True)
            score = d(x_hat).mean(dim=(1, 2, 3))
            grad, = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss_d = d(f).mean() - d(sharp).mean() + 10 * gp
            loss_d.backward()
            opt_d.step()
        opt_g.zero_grad()
        loss_g = -d(fake).mean() + 100 * torch.mean((vgg(fake) - vgg(sharp)) ** 2)
        loss_g.backward()
        opt_g.step()

    iteration()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    return {"median_s": sorted(times)[len(times) // 2], "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--dtypes", default="float32", help="JAX compute dtypes, comma-separated")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        fw, batch, dtype = args.child
        if fw == "jax":
            out = time_jax(int(batch), args.size, args.repeats, dtype)
        else:
            out = time_torch(int(batch), args.size, args.repeats)
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
               "iteration": "5 critic (WGAN-GP) + 1 generator (adversarial + 100 x VGG conv3_3)",
               "size": args.size, "batches": {}}

    def run(fw, batch, dtype):
        r = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--repeats",
                            str(args.repeats), "--child", fw, str(batch), dtype], env=env,
                           capture_output=True, text=True)
        if r.returncode:
            return {"error": r.stderr[-2000:]}
        return json.loads(r.stdout.strip().splitlines()[-1])

    for batch in map(int, args.batch_sizes.split(",")):
        row = {f"jax_{dt}": run("jax", batch, dt) for dt in args.dtypes.split(",")}
        if not args.skip_torch:
            row["torch"] = run("torch", batch, "float32")
            if "median_s" in row.get("jax_float32", {}) and "median_s" in row["torch"]:
                row["jax_over_torch"] = row["jax_float32"]["median_s"] / row["torch"]["median_s"]
        for k, v in row.items():
            if isinstance(v, dict) and "median_s" in v:
                v["iterations_per_s"] = 1.0 / v["median_s"]
                v["pairs_per_s"] = batch / v["median_s"]
        results["batches"][str(batch)] = row
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
