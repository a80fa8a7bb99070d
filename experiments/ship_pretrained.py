"""Writes a training run's generator into the package as the shipped pretrained model.

python experiments/ship_pretrained.py runs/real_cpu [--results results.json] [--wall-minutes M]

Stores the run's latest EMA weights (raw when the run keeps none) in float16 as
deblurgan_jax/pretrained/<name>.msgpack, with <name>.json holding the generator config and its
provenance (recipe, steps, data by public name, wall time, the measured results of
experiments/eval_pretrained.py when --results is given). Refuses to replace the shipped model
without --overwrite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from deblurgan_jax.weights import checkpoints

DATA = (
    "GoPro training crops (Nah et al. 2017, CC BY 4.0): 49 real pairs, 256x256",
    "Urban100 (40), CBSD68 (68), Kodak24 (24), Set14 (14), Set5 (5) sharp photos with "
    "synthetic Boracchi-Foi camera shake (centred kernels, trajectories up to 48 px)",
)
HELD_OUT = (
    "GoPro test frames (3, full size)",
    "Levin et al. 2009 (32)",
    "McMaster (18) with synthetic shake",
    "DeblurGAN street crops (4, monitored)",
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", help="the training run (train.py --workdir)")
    parser.add_argument("--results", help="JSON printed by experiments/eval_pretrained.py")
    parser.add_argument("--wall-minutes", type=float, help="training wall time on 2 cores")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    params, model_config, source = checkpoints.load_generator_from_workdir(
        args.workdir, "latest", "auto"
    )
    run_config = checkpoints.read_run_config(args.workdir)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout
    provenance = {
        "recipe": "configs/real_cpu.py (python train.py --config configs/real_cpu.py)",
        "steps": source["step"],
        "weights": source["weights"],
        "storage": "float16",
        "batch_size": run_config.batch_size,
        "crop_size": run_config.crop_size,
        "seed": run_config.seed,
        "training_data": list(DATA),
        "held_out": list(HELD_OUT),
        "code_commit": commit.strip(),
        "model_card": "MODEL_CARD.md",
    }
    if args.wall_minutes:
        provenance["wall_minutes_2_cpu_cores"] = args.wall_minutes
    if args.results:
        with open(args.results) as f:
            provenance["results"] = json.load(f)
    checkpoints.save_generator(
        params,
        model_config,
        checkpoints.pretrained_path(),
        overwrite=args.overwrite,
        dtype="float16",
        provenance=provenance,
    )
    print(
        f"wrote {checkpoints.pretrained_path()} "
        f"({os.path.getsize(checkpoints.pretrained_path()) / 2**20:.2f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
