"""One DeblurGAN training iteration (5 critic updates + 1 generator update, WGAN-GP + 100 x
perceptual loss on VGG conv3_3) at 256x256, full-size networks: deblurgan-jax's jitted step vs
the same iteration written in PyTorch (the reference networks of tests/torch_reference.py), on
the same machine. Prints one JSON object.

  python experiments/bench_train.py [--batch-sizes 1,8] [--repeats 2] [--dtypes float32]
      [--remat none,blocks,full] [--skip-torch]
  python experiments/bench_train.py --recipe real_cpu --batch-sizes 4 --size 128 --repeats 8

`--recipe NAME` times the step of configs/NAME.py instead (its networks, n_critic, losses
incl. pixel L1, learning rate, EMA), against the same iteration in PyTorch: the shipped model's
recipe is `real_cpu` (batch 4, 128x128 crops).

On a GPU machine pass `--dtypes float32,bfloat16 --skip-torch` for iterations/s per dtype.
Each measurement (framework, batch, dtype, remat) runs in a fresh subprocess: ru_maxrss only
grows within a process, so that is what makes its peak RSS its own. Each JAX row also reports
XLA's compiled temporaries (`memory_analysis()`), its time and peak RSS relative to PyTorch's,
and, when 'none' is measured too, the largest parameter difference after the first step from
the run without remat (rematerialisation must not change results).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# = deblurgan_jax.train.KEEP_REMAT_BARRIERS_FLAG (not imported: the parent process stays light)
KEEP_REMAT_BARRIERS_FLAG = "--xla_disable_hlo_passes=cse_barrier_expander"


def reset_peak_rss():
    """Restarts the kernel's peak-RSS count (VmHWM) of this process (Linux >= 4.0), so that
    `step_peak_rss_mib` covers the steps only, not XLA's compilation before them."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def step_peak_rss_mib():
    """VmHWM of /proc/self/status in MiB (None where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def recipe_config(recipe):
    """configs/<recipe>.py's config, or the paper's (configs/default.py) for 'paper'."""
    import importlib

    sys.path.insert(0, ROOT)
    config = importlib.import_module(f"configs.{'default' if recipe == 'paper' else recipe}")
    config = config.get_config()
    config.loss.vgg_arch = "vgg16"  # same layers as VGG19 up to conv3_3; weights ship offline
    return config


def time_jax(batch, size, repeats, dtype, remat="none", params_out=None, recipe="paper"):
    import jax
    import jax.numpy as jnp
    import numpy as np

    config = recipe_config(recipe)  # puts the project root on sys.path
    from deblurgan_jax.training import train

    config.batch_size = batch
    config.crop_size = size
    config.compute_dtype = dtype
    config.remat = remat
    feature_params, preprocess = train.load_feature_params(config)
    networks = train.create_networks(config, preprocess)
    state = train.create_train_state(config, networks)
    step = train.make_train_step(config, networks)
    rng = np.random.default_rng(0)
    batch_arrays = {
        k: jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3)), jnp.float32)
        for k in ("blurred", "sharp")
    }
    t0 = time.perf_counter()
    compiled = step.lower(state, batch_arrays, feature_params).compile()
    compile_s = time.perf_counter() - t0
    train.release_freed_host_memory()  # as train_and_evaluate does after compiling
    analysis = compiled.memory_analysis()
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch_arrays, feature_params)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - t0
    first_metrics = {k: float(v) for k, v in metrics.items()}
    if params_out:
        leaves = jax.tree_util.tree_leaves_with_path({"g": state.g_params, "d": state.d_params})
        np.savez(params_out, **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch_arrays, feature_params)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    out = {
        "median_s": sorted(times)[len(times) // 2],
        "first_call_s": first,
        "compile_s": compile_s,
        "device": str(jax.devices()[0].platform),
        "remat": remat,
        "first_step_metrics": first_metrics,
    }
    if reset:
        out["step_peak_rss_mib"] = step_peak_rss_mib()
    if analysis is not None:
        out["xla_temp_mib"] = analysis.temp_size_in_bytes / 2**20
    return out


def time_torch(batch, size, repeats, recipe="paper"):
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import torch_reference as ref

    config = recipe_config(recipe)
    m, lr = config.model, config.learning_rate
    g = ref.ResnetGenerator(ngf=m.ngf, n_blocks=m.n_blocks)
    d = ref.NLayerDiscriminator(ndf=m.ndf, n_layers=m.n_layers)
    vgg = ref.VGGTrunk().eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(config.b1, config.b2))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(config.b1, config.b2))
    pixel_l1 = config.loss.get("pixel_l1_weight", 0.0)
    ema_decay = config.get("ema_decay", 0.0)
    ema = [p.detach().clone() for p in g.parameters()] if ema_decay else []
    blurred = torch.rand(batch, 3, size, size) * 2 - 1
    sharp = torch.rand(batch, 3, size, size) * 2 - 1

    def iteration():
        fake = g(blurred)  # one forward, reused by the critic updates (as the original code)
        for _ in range(config.n_critic):
            opt_d.zero_grad()
            f = fake.detach()
            alpha = torch.rand(batch, 1, 1, 1)
            x_hat = (alpha * sharp + (1 - alpha) * f).requires_grad_(True)
            score = d(x_hat).mean(dim=(1, 2, 3))
            (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss_d = d(f).mean() - d(sharp).mean() + 10 * gp
            loss_d.backward()
            opt_d.step()
        opt_g.zero_grad()
        loss_g = -d(fake).mean() + 100 * torch.mean((vgg(fake) - vgg(sharp)) ** 2)
        if pixel_l1:
            loss_g = loss_g + pixel_l1 * torch.mean(torch.abs(fake - sharp))
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            for e, p in zip(ema, g.parameters()):
                e.mul_(ema_decay).add_(p, alpha=1 - ema_decay)

    reset = reset_peak_rss()
    iteration()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    out = {"median_s": sorted(times)[len(times) // 2], "threads": torch.get_num_threads()}
    if reset:
        out["step_peak_rss_mib"] = step_peak_rss_mib()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--dtypes", default="float32", help="JAX compute dtypes, comma-separated")
    p.add_argument(
        "--remat",
        default="none",
        help="config.remat settings of the JAX step, comma-separated (none, blocks, full)",
    )
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument(
        "--recipe",
        default="paper",
        help="'paper' (configs/default.py: 5 critic updates, full-size networks) or a config "
        "name under configs/ (e.g. real_cpu): its networks, n_critic, losses and EMA",
    )
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.recipe != "paper" and not os.path.isfile(
        os.path.join(ROOT, "configs", f"{args.recipe}.py")
    ):
        p.error(f"--recipe {args.recipe!r}: no configs/{args.recipe}.py (or 'paper')")
    if args.child:
        fw, batch, dtype, remat, params_out = args.child
        if fw == "jax":
            out = time_jax(
                int(batch),
                args.size,
                args.repeats,
                dtype,
                remat,
                params_out if params_out != "-" else None,
                args.recipe,
            )
        else:
            out = time_torch(int(batch), args.size, args.repeats, args.recipe)
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "recipe": args.recipe,
        "iteration": "n_critic critic (WGAN-GP) + 1 generator (adversarial + 100 x VGG conv3_3"
        " [+ pixel L1]) [+ EMA]; n_critic 5, full-size networks for the paper",
        "size": args.size,
        "batches": {},
    }

    params_dir = tempfile.mkdtemp(prefix="bench_train_")

    def run(fw, batch, dtype, remat="none", params_out="-"):
        child_env = env
        if fw == "jax" and remat != "none":  # see train.keep_remat_barriers: XLA:CPU needs it
            child_env = dict(
                env, XLA_FLAGS=(env.get("XLA_FLAGS", "") + " " + KEEP_REMAT_BARRIERS_FLAG).strip()
            )
        r = subprocess.run(
            [
                sys.executable,
                __file__,
                "--size",
                str(args.size),
                "--repeats",
                str(args.repeats),
                "--recipe",
                args.recipe,
                "--child",
                fw,
                str(batch),
                dtype,
                remat,
                params_out,
            ],
            env=child_env,
            capture_output=True,
            text=True,
        )
        if r.returncode:
            return {"error": r.stderr[-2000:]}
        return json.loads(r.stdout.strip().splitlines()[-1])

    remats = args.remat.split(",")
    for batch in map(int, args.batch_sizes.split(",")):
        row, saved = {}, {}
        for dt in args.dtypes.split(","):
            for remat in remats:
                saved[dt, remat] = os.path.join(params_dir, f"{batch}_{dt}_{remat}.npz")
                row[f"jax_{dt}_remat_{remat}"] = run("jax", batch, dt, remat, saved[dt, remat])
        if not args.skip_torch:
            row["torch"] = run("torch", batch, "float32")
        torch_row = row.get("torch", {})
        for (dt, remat), path in saved.items():
            v = row[f"jax_{dt}_remat_{remat}"]
            if "median_s" in v and "median_s" in torch_row:
                v["time_over_torch"] = v["median_s"] / torch_row["median_s"]
                v["peak_rss_over_torch"] = v["peak_rss_mib"] / torch_row["peak_rss_mib"]
                if v.get("step_peak_rss_mib") and torch_row.get("step_peak_rss_mib"):
                    v["step_peak_rss_over_torch"] = (
                        v["step_peak_rss_mib"] / torch_row["step_peak_rss_mib"]
                    )
            reference = saved.get((dt, "none"))
            if remat != "none" and reference and os.path.exists(reference) and os.path.exists(path):
                v["max_param_diff_vs_none"] = max_param_diff(path, reference)
                # The step's losses and gradient norms, before Adam turns rounding in
                # near-zero gradients into lr-sized parameter steps.
                ref_metrics = row[f"jax_{dt}_remat_none"].get("first_step_metrics", {})
                v["first_step_metric_rel_diff_vs_none"] = {
                    k: abs(v["first_step_metrics"][k] - ref_metrics[k])
                    / max(abs(ref_metrics[k]), 1e-12)
                    for k in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")
                    if k in ref_metrics and k in v.get("first_step_metrics", {})
                }
        for k, v in row.items():
            if isinstance(v, dict) and "median_s" in v:
                v["iterations_per_s"] = 1.0 / v["median_s"]
                v["pairs_per_s"] = batch / v["median_s"]
        results["batches"][str(batch)] = row
    for name in os.listdir(params_dir):
        os.remove(os.path.join(params_dir, name))
    os.rmdir(params_dir)
    print(json.dumps(results, indent=2))


def max_param_diff(path_a, path_b):
    """The largest absolute difference between two parameter files of `time_jax`."""
    import numpy as np

    with np.load(path_a) as a, np.load(path_b) as b:
        if sorted(a.files) != sorted(b.files):
            return float("inf")
        return max(float(np.max(np.abs(a[k] - b[k]))) for k in a.files)


if __name__ == "__main__":
    main()
