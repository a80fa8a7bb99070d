"""The reliability catalogue: every command fed bad and unusual input.

`CATALOGUE` is a table of rows (command, how the test builds the input, expected exit code, a
phrase the message must contain). Each row runs the command in-process through its `main(argv)`
(root train.py through its own `parse_flags` and `main`, one row in a subprocess) and checks:
the exit code, the phrase, no 'Traceback' anywhere in the output, every input file unchanged
byte for byte, and what the row expects of the outputs (partial results kept, nothing left
behind). The classes covered: corrupt / empty / truncated / huge-header (decompression bomb) /
tiny / odd-mode images; wrong and wrongly typed configs; paths that cannot be written; plug-ins
that fail; outputs that would replace inputs.

Besides the table: Ctrl-C (SIGINT) and SIGKILL sent to `python train.py` at several points, with
the resumed run ending on params identical to an uninterrupted run; training on flat, saturated
and constant images runs to the end with finite losses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import tiny
from command_runner import run_main
from deblurgan_jax.commands import blur, convert, deblur, detection_benchmark, evaluate, export
from deblurgan_jax.weights import checkpoints
from deblurgan_jax.utils import images
from deblurgan_jax.networks import inference, models
from deblurgan_jax.evaluation import metrics
from deblurgan_jax.training import train
from deblurgan_jax.blurring import video
from deblurgan_jax import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "configs", "tiny.py")


# --------------------------------------------------------------------------------------------
# Inputs.


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png(path: Path, h: int = 32, w: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(h, w, seed)).save(path)
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def bomb_png(path: Path, width: int = 100000, height: int = 100000) -> Path:
    """A PNG of 69 bytes whose (valid, CRC-checked) header claims width x height RGB pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )
    return path


def corrupt_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png" + bytes(range(200)))
    return path


def empty_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def truncated_png(path: Path) -> Path:
    png(path, 64, 64, seed=3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def float_tiff(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).random((16, 16), np.float32), mode="F").save(path)
    return path


def odd_mode_images(folder: Path) -> list[Path]:
    """Readable images in unusual modes: 16-bit gray, palette, gray+alpha, RGBA."""
    folder.mkdir(parents=True, exist_ok=True)
    gray16 = (np.arange(24 * 20).reshape(24, 20) * 97 % 65536).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")
    Image.fromarray(_rgb(20, 24, 1)).convert("P").save(folder / "palette.png")
    la = np.dstack([_rgb(16, 16, 2)[..., 0], np.full((16, 16), 200, np.uint8)])
    Image.fromarray(la, mode="LA").save(folder / "gray_alpha.png")
    Image.fromarray(np.dstack([_rgb(16, 16, 3), np.full((16, 16), 9, np.uint8)])).save(
        folder / "rgba.png"
    )
    return sorted(folder.iterdir())


def paired_set(root: Path, names=("a.png", "b.png"), size=(32, 32)) -> Path:
    """ROOT/A (blurred) and ROOT/B (sharp), one pair per name."""
    for i, name in enumerate(names):
        png(root / "A" / name, *size, seed=i)
        png(root / "B" / name, *size, seed=i + 100)
    return root


def _hashes(paths) -> dict[str, str]:
    """sha256 of every file under `paths` (files or folders, recursively)."""
    out = {}
    for path in paths:
        path = str(path)
        if os.path.isfile(path):
            out[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
        for dirpath, _, filenames in os.walk(path):
            for f in filenames:
                p = os.path.join(dirpath, f)
                out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# Shared, built once.


# The persistent XLA compilation cache that these runs share (in-process and `python train.py`)
# is the session-wide one of conftest.py.


INTERRUPT_STEPS = 4
# One critic step per generator step: half the program to compile, the same code paths.
INTERRUPT_OVERRIDES = (
    f"--config.num_steps={INTERRUPT_STEPS}",
    "--config.checkpoint_every=1",
    "--config.max_to_keep=10",
    "--config.n_critic=1",
)


def _interrupt_config():
    config = tiny.get_config()
    config.num_steps = INTERRUPT_STEPS
    config.checkpoint_every = 1
    config.max_to_keep = 10
    config.n_critic = 1
    return config


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> tuple[str, Any]:
    """The uninterrupted run the interrupted ones must end equal to (in-process), and a
    finished run directory for the resume rows."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    train.train_and_evaluate(_interrupt_config(), workdir, progress=False)
    params = checkpoints.load_generator_from_workdir(workdir)[0]
    return workdir, params


@pytest.fixture(scope="module")
def plugin_module(tmp_path_factory) -> str:
    """A detector plug-in module: factories that work, raise, or give detectors that raise."""
    folder = tmp_path_factory.mktemp("plugins")
    name = "reliability_detectors"
    (folder / f"{name}.py").write_text(
        "import numpy as np\n"
        "def works():\n"
        "    return lambda image: (np.array([[0, 0, 8, 8]]), ['thing'], [0.9])\n"
        "def raises_on_images():\n"
        "    def detector(image):\n"
        "        raise RuntimeError('model weights missing')\n"
        "    return detector\n"
        "def broken_factory():\n"
        "    raise OSError('no GPU found')\n"
    )
    sys.path.insert(0, str(folder))
    yield name
    sys.path.remove(str(folder))


# --------------------------------------------------------------------------------------------
# Running a command.


def _fresh_root_train_module():
    """Root train.py loaded anew, its absl flags defined afresh: absl's flags are process-wide
    and a parse that failed half-way (or the config overrides of an earlier parse) would leak
    into the next row."""
    from absl import flags

    for name in list(flags.FLAGS):
        if name in ("config", "workdir", "progress") or name.startswith("config."):
            delattr(flags.FLAGS, name)
    spec = importlib.util.spec_from_file_location(
        "reliability_root_train", os.path.join(ROOT, "train.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_train_in_process(argv: list[str]) -> int:
    """`python train.py ARGV` without a new interpreter: its flag parser, then its main."""
    root = _fresh_root_train_module()
    saved_argv, sys.argv = sys.argv, ["train.py", *argv]  # config overrides are read from it
    try:
        rest = root.parse_flags(sys.argv)
    except SystemExit as e:
        return int(e.code)
    finally:
        sys.argv = saved_argv
    return root.main(rest)


def run_subprocess(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    r = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    return r.returncode, r.stdout + r.stderr


MAINS: dict[str, Callable[[list[str]], int]] = {
    "deblur": deblur.main,
    "evaluate": evaluate.main,
    "export": export.main,
    "blur": blur.main,
    "detection_benchmark": detection_benchmark.main,
    "convert": convert.main,
    "train": run_train_in_process,
}


@dataclasses.dataclass
class Setup:
    """What a row's builder returns."""

    argv: list[str]
    inputs: list[Path]  # files / folders that must stay byte-identical
    check: Callable[[str], None] | None = None  # called with the output text after the run
    subprocess: bool = False  # run `python ARGV` instead of main(argv)


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    command: str
    build: Callable[..., Setup]  # (tmp: Path, env: Env) -> Setup
    code: int
    phrase: str


@dataclasses.dataclass
class Env:
    params: str
    plugin: str
    reference_workdir: str
    monkeypatch: Any


# --- deblur ----------------------------------------------------------------------------------


def _deblur_folder_with(bad_name: str, make_bad: Callable[[Path], Path]):
    """A folder of two good images and one bad one: the good ones must still be written."""

    def build(tmp: Path, env: Env) -> Setup:
        folder = tmp / "in"
        png(folder / "good1.png")
        png(folder / "sub" / "good2.png", 24, 40, seed=1)
        make_bad(folder / bad_name)
        out = tmp / "out"

        def check(text: str) -> None:
            assert _files_under(out) == ["good1.png", "sub/good2.png"]  # partial results kept

        return Setup(
            [str(folder), "--out", str(out), "--params", env.params, "--noprogress"],
            [folder, Path(env.params)],
            check,
        )

    return build


def _deblur_odd_modes(tmp: Path, env: Env) -> Setup:
    folder = tmp / "in"
    odd_mode_images(folder)
    out = tmp / "out"

    def check(text: str) -> None:
        for name in ("gray16.png", "palette.png", "gray_alpha.png", "rgba.png"):
            with Image.open(folder / name) as a, Image.open(out / name) as b:
                assert a.size == b.size
        with Image.open(out / "gray16.png") as g:
            assert np.asarray(g).dtype == np.uint16  # 16 bits stay 16 bits

    return Setup(
        [str(folder), "--out", str(out), "--params", env.params, "--noprogress"], [folder], check
    )


def _deblur_out_is_input(tmp: Path, env: Env) -> Setup:
    folder = tmp / "in"
    png(folder / "a.png")
    return Setup(
        [str(folder), "--out", str(folder), "--params", env.params, "--overwrite", "--noprogress"],
        [folder],
    )


def _deblur_out_below_file(tmp: Path, env: Env) -> Setup:
    a = png(tmp / "a.png")
    blocker = tmp / "file.txt"
    blocker.write_text("x")
    return Setup(
        [str(a), "--out", str(blocker / "out"), "--params", env.params, "--noprogress"],
        [a, blocker],
    )


def _deblur_bad_params(content: bytes | None, json_text: str | None):
    def build(tmp: Path, env: Env) -> Setup:
        a = png(tmp / "a.png")
        params = tmp / "g.msgpack"
        params.write_bytes(open(env.params, "rb").read() if content is None else content)
        if json_text is not None:
            (tmp / "g.json").write_text(json_text)
        out = tmp / "out"

        def check(text: str) -> None:
            assert not out.exists() or not any(out.iterdir())

        return Setup(
            [str(a), "--out", str(out), "--params", str(params), "--noprogress"],
            [tmp / "a.png", params] + ([tmp / "g.json"] if json_text else []),
            check,
        )

    return build


# --- evaluate --------------------------------------------------------------------------------


def _evaluate_set(
    extra: Callable[[Path], Any] | None = None,
    sizes=((32, 32),) * 2,
    expect_rows: int | None = None,
    metric_names: str = "psnr,ssim",
):
    def build(tmp: Path, env: Env) -> Setup:
        data = tmp / "set"
        for i, size in enumerate(sizes):
            paired_set(data, names=(f"img{i}.png",), size=size)
        if extra is not None:
            extra(data)
        out = tmp / "out"

        def check(text: str) -> None:
            if expect_rows is not None:
                rows = (out / "metrics.csv").read_text().strip().splitlines()
                assert len(rows) == 1 + expect_rows
                json.loads((out / "summary.json").read_text())  # strict JSON

        return Setup(
            [
                "--params",
                env.params,
                "--data",
                str(data),
                "--layout",
                "paired",
                "--out",
                str(out),
                "--metrics",
                metric_names,
                "--noprogress",
            ],
            [data],
            check,
        )

    return build


def _evaluate_tiny(tmp: Path, env: Env) -> Setup:
    """9x9 and 5x7 pairs: SSIM (11x11 window) is undefined there: NaN in metrics.csv, null-free
    strict JSON, and the mean SSIM is that of the one image large enough (an independent
    recomputation from the CSV)."""
    setup = _evaluate_set(sizes=((32, 32), (9, 9), (7, 5)))(tmp, env)
    out = Path(setup.argv[setup.argv.index("--out") + 1])

    def check(text: str) -> None:
        import csv

        with open(out / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        assert [r["name"] for r in rows] == ["img0.png", "img1.png", "img2.png"]
        assert [r["ssim"] for r in rows[1:]] == ["nan", "nan"]
        assert all(np.isfinite(float(r["psnr"])) for r in rows)

        def refuse(constant):
            raise AssertionError(f"non-standard JSON constant {constant}")

        summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
        assert summary["ssim"] == pytest.approx(float(rows[0]["ssim"]))
        assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]))

    setup.check = check
    return setup


def _evaluate_interrupted(error: type[BaseException]):
    """The second image's restoration raises `error` (Ctrl-C, out of memory): the first is kept."""

    def build(tmp: Path, env: Env) -> Setup:
        make = inference.make_inference_fn

        def failing_second_call(*args, **kwargs):
            infer, calls = make(*args, **kwargs), []

            def wrapped(params, batch):
                calls.append(1)
                if len(calls) == 3:  # a warm-up call and image 1, then image 2
                    raise error()
                return infer(params, batch)

            return wrapped

        env.monkeypatch.setattr(inference, "make_inference_fn", failing_second_call)
        setup = _evaluate_set(sizes=((32, 32),) * 3)(tmp, env)
        out = Path(setup.argv[setup.argv.index("--out") + 1])

        def check(text: str) -> None:
            assert len((out / "metrics.csv").read_text().strip().splitlines()) == 2
            assert json.loads((out / "summary.json").read_text())["complete"] is False

        setup.check = check
        return setup

    return build


def _evaluate_out_below_file(tmp: Path, env: Env) -> Setup:
    setup = _evaluate_set()(tmp, env)
    blocker = tmp / "file.txt"
    blocker.write_text("x")
    setup.argv[setup.argv.index("--out") + 1] = str(blocker / "out")
    setup.inputs.append(blocker)
    return setup


# --- export ----------------------------------------------------------------------------------


def _export_onto_input(fmt: str):
    def build(tmp: Path, env: Env) -> Setup:
        params = tmp / "g.msgpack"
        shutil.copy(env.params, params)
        shutil.copy(checkpoints.model_config_path(env.params), tmp / "g.json")
        return Setup(
            ["--params", str(params), "--out", str(params), "--overwrite", "--format", fmt],
            [params, tmp / "g.json"],
        )

    return build


def _export_out_below_file(tmp: Path, env: Env) -> Setup:
    blocker = tmp / "file.txt"
    blocker.write_text("x")
    return Setup(
        ["--params", env.params, "--out", str(blocker / "g.msgpack")], [blocker, Path(env.params)]
    )


def _export_not_a_run(tmp: Path, env: Env) -> Setup:
    png(tmp / "run" / "photo.png")

    def check(text: str) -> None:
        assert _files_under(tmp) == ["run/photo.png"]

    return Setup(
        ["--workdir", str(tmp / "run"), "--out", str(tmp / "g.msgpack")], [tmp / "run"], check
    )


# --- blur ------------------------------------------------------------------------------------


def _show_kernels(out_name: str, blocker: bool = False):
    def build(tmp: Path, env: Env) -> Setup:
        inputs = []
        if blocker:
            (tmp / "file.txt").write_text("x")
            inputs.append(tmp / "file.txt")
        out = tmp / out_name

        def check(text: str) -> None:
            assert not out.exists()

        return Setup(
            [
                "show-kernels",
                "--out",
                str(out),
                "--n",
                "4",
                "--canvas",
                "16",
                "--max-len",
                "8",
                "--iters",
                "100",
            ],
            inputs,
            check,
        )

    return build


def _make_dataset(kind: str):
    """make-dataset over a folder of good and bad photos, or with --out inside --sharp."""

    def build(tmp: Path, env: Env) -> Setup:
        sharp = tmp / "sharp"
        png(sharp / "good.png")
        out = tmp / "pairs"
        check = None
        if kind == "inside":
            out = sharp / "pairs"
        elif kind == "below_file":
            (tmp / "file.txt").write_text("x")
            out = tmp / "file.txt" / "pairs"
        else:
            bomb_png(sharp / "bomb.png")
            corrupt_png(sharp / "corrupt.png")
            empty_file(sharp / "empty.png")
            float_tiff(sharp / "float.tif")

            def check(text: str) -> None:
                assert _files_under(out) == ["blur/good.png", "kernels/good.png", "sharp/good.png"]
                for name in ("bomb.png", "corrupt.png", "empty.png", "float.tif"):
                    assert name in text

        return Setup(
            [
                "make-dataset",
                "--sharp",
                str(sharp),
                "--out",
                str(out),
                "--canvas",
                "16",
                "--max-len",
                "8",
                "--iters",
                "100",
            ],
            [sharp],
            check,
        )

    return build


# --- detection_benchmark -----------------------------------------------------------------------


def _detection(factory: str, extra: Callable[[Path], Any] | None = None, left_out: bool = True):
    def build(tmp: Path, env: Env) -> Setup:
        data = paired_set(tmp / "set", names=("p1.png", "p2.png"))
        if extra is not None:
            extra(data)
        out = tmp / "out"

        def check(text: str) -> None:
            if left_out:
                assert not out.exists(), "an empty --out was left behind"
            else:
                assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3

        return Setup(
            [
                "--params",
                env.params,
                "--data",
                str(data),
                "--layout",
                "paired",
                "--detector",
                f"{env.plugin}:{factory}" if ":" not in factory else factory,
                "--out",
                str(out),
                "--noprogress",
            ],
            [data],
            check,
        )

    return build


# --- convert ---------------------------------------------------------------------------------


def _convert(content: bytes):
    def build(tmp: Path, env: Env) -> Setup:
        pth = tmp / "latest_net_G.pth"
        pth.write_bytes(content)
        out = tmp / "g.msgpack"

        def check(text: str) -> None:
            assert not out.exists()

        return Setup(["generator", "--pth", str(pth), "--out", str(out)], [pth], check)

    return build


# --- train.py --------------------------------------------------------------------------------


def _train(
    *overrides: str,
    config: str = TINY_CONFIG,
    below_file: bool = False,
    subprocess_run: bool = False,
    max_seconds: float | None = None,
):
    """train.py with a bad config: refused before anything is written (no workdir made)."""

    def build(tmp: Path, env: Env) -> Setup:
        workdir = tmp / "run"
        inputs = []
        if below_file:
            (tmp / "file.txt").write_text("x")
            workdir = tmp / "file.txt" / "run"
            inputs.append(tmp / "file.txt")
        started = time.perf_counter()

        def check(text: str) -> None:
            if not below_file:
                assert not workdir.exists(), f"left behind: {_files_under(workdir)}"
            if max_seconds is not None:
                assert time.perf_counter() - started < max_seconds

        argv = ["--config", config, "--workdir", str(workdir), "--noprogress", *overrides]
        return Setup(
            (["train.py"] if subprocess_run else []) + argv,
            inputs,
            check,
            subprocess=subprocess_run,
        )

    return build


def _train_resume_with(*overrides: str):
    """Resuming the reference run with a changed model field: refused, nothing touched."""

    def build(tmp: Path, env: Env) -> Setup:
        workdir = tmp / "run"
        shutil.copytree(env.reference_workdir, workdir)
        argv = [
            "--config",
            TINY_CONFIG,
            "--workdir",
            str(workdir),
            "--noprogress",
            *INTERRUPT_OVERRIDES,
            *overrides,
        ]
        return Setup(argv, [workdir])  # config.json and checkpoints byte-identical

    return build


def _train_resume_harmless(tmp: Path, env: Env) -> Setup:
    """Resuming the finished reference run with a changed log_every: allowed and recorded; the
    first start's config kept byte for byte, the checkpoints untouched."""
    workdir = tmp / "run"
    shutil.copytree(env.reference_workdir, workdir)
    stored = (workdir / checkpoints.CONFIG_FILE).read_bytes()

    def check(text: str) -> None:
        assert (workdir / checkpoints.ORIGINAL_CONFIG_FILE).read_bytes() == stored
        assert json.loads((workdir / checkpoints.CONFIG_FILE).read_text())["log_every"] == 3
        lines = (workdir / checkpoints.CHANGES_FILE).read_text().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["changes"]["log_every"] == [2, 3]

    argv = [
        "--config",
        TINY_CONFIG,
        "--workdir",
        str(workdir),
        "--noprogress",
        *INTERRUPT_OVERRIDES,
        "--config.log_every=3",
    ]
    return Setup(argv, [workdir / checkpoints.CHECKPOINT_DIR], check)


# --- issue 17: nothing a user owns is lost or silently changed --------------------------------


def clip_file(path: Path, frames: int = 21, size=(32, 24), seed: int = 0) -> Path:
    """A lossless (FFV1) clip of random frames, so pairs can be compared exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with video.VideoWriter(str(path), fps=240.0, size=size, codec="FFV1") as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return path


def truncated_clip(path: Path) -> Path:
    clip_file(path, frames=60, size=(64, 48))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def gopro_copy(sequence: Path, count: int = 3) -> Path:
    """A real data set's sequence folder: blur/ and sharp/ NNNNNN.png, no pairs.json."""
    for i in range(count):
        png(sequence / "blur" / f"{i:06d}.png", seed=i)
        png(sequence / "sharp" / f"{i:06d}.png", seed=50 + i)
    return sequence


def _from_video(
    *flags: str,
    prepare: Callable[[Path], list[Path]] | None = None,
    clips: Callable[[Path], list[Path]] | None = None,
    check: Callable[[Path, str], None] | None = None,
):
    """from-video on one good clip (or `clips(tmp)`) into tmp/out; `prepare(out)` fills the
    output folder first and returns what must stay byte-identical."""

    def build(tmp: Path, env: Env) -> Setup:
        sources = clips(tmp) if clips is not None else [clip_file(tmp / "clip.avi")]
        out = tmp / "out"
        kept = prepare(out) if prepare is not None else []
        return Setup(
            ["from-video", *map(str, sources), "--out", str(out), "--noprogress", *flags],
            [*sources, *kept],
            None if check is None else lambda text: check(out, text),
        )

    return build


def _earlier_run(out: Path) -> list[Path]:
    video.make_pairs_from_videos(
        [str(clip_file(out.parent / "earlier" / "clip.avi", frames=9))],
        str(out),
        frames=3,
        progress=False,
    )
    return [out]


def _earlier_run_plus_foreign_frame(out: Path) -> list[Path]:
    _earlier_run(out)
    png(out / "train" / "clip" / "blur" / "000100.png", seed=7)
    return [out]


def _no_sequence_written_for_the_truncated_clip(out: Path, text: str) -> None:
    assert _files_under(out / "train" / "good")[-1] == "sharp/000002.png"
    assert sorted(os.listdir(out / "train")) == ["good"]  # nothing, not even hidden, for cut


def _deblur_all_inputs_fail(tmp: Path, env: Env) -> Setup:
    bad = tmp / "in" / "bad.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 but no video" * 8)
    out = tmp / "out"

    def check(text: str) -> None:
        assert not out.exists()  # no empty --out left behind

    return Setup(
        [str(bad), "--out", str(out), "--params", env.params, "--noprogress"], [bad], check
    )


def _deblur_empty_folder_named(tmp: Path, env: Env) -> Setup:
    good = png(tmp / "good.png")
    (tmp / "empty").mkdir()
    out = tmp / "out"

    def check(text: str) -> None:
        assert _files_under(out) == ["good.png"]

    return Setup(
        [str(good), str(tmp / "empty"), "--out", str(out), "--params", env.params, "--noprogress"],
        [good],
        check,
    )


def _deblur_side_by_side_images(tmp: Path, env: Env) -> Setup:
    good = png(tmp / "good.png")
    return Setup(
        [
            str(good),
            "--out",
            str(tmp / "out"),
            "--params",
            env.params,
            "--noprogress",
            "--side-by-side",
        ],
        [good],
    )


def _evaluate_names_sharing_a_stem(tmp: Path, env: Env) -> Setup:
    """x.png, x.jpg and x.PNG in one set: three restored images, none overwriting another."""
    data = tmp / "set"
    for i, name in enumerate(("x.png", "x.jpg", "x.PNG")):
        for side, seed in (("A", i), ("B", i + 100)):
            (data / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_rgb(32, 32, seed)).save(
                data / side / name, format="JPEG" if name.endswith("jpg") else "PNG"
            )
    out = tmp / "out"

    def check(text: str) -> None:
        restored = sorted(os.listdir(out / "restored"))
        assert restored == ["x.jpg.png", "x.png", "x.png.png"], restored  # x.PNG came first
        assert sorted(os.listdir(out / "comparisons")) == restored
        # Each comparison shows its own input (the blurred third): PNGs exactly, the JPEG up to
        # its decoder's rounding, and far from the other two inputs.
        for name, saved in (("x.png", "x.png.png"), ("x.PNG", "x.png")):
            comparison = np.asarray(Image.open(out / "comparisons" / saved))
            np.testing.assert_array_equal(
                comparison[:, :32], np.asarray(Image.open(data / "A" / name))
            )
        comparison = np.asarray(Image.open(out / "comparisons" / "x.jpg.png")).astype(int)
        jpeg = np.asarray(Image.open(data / "A" / "x.jpg").convert("RGB")).astype(int)
        assert np.abs(comparison[:, :32] - jpeg).mean() < 3

    return Setup(
        [
            "--params",
            env.params,
            "--data",
            str(data),
            "--layout",
            "paired",
            "--out",
            str(out),
            "--metrics",
            "psnr",
            "--noprogress",
            "--save-images",
        ],
        [data],
        check,
    )


CATALOGUE = [
    # deblur: bad files are named and skipped, the others written (exit 1).
    Row("deblur-corrupt", "deblur", _deblur_folder_with("bad.png", corrupt_png), 1, "bad.png"),
    Row("deblur-empty", "deblur", _deblur_folder_with("bad.png", empty_file), 1, "bad.png"),
    Row(
        "deblur-truncated",
        "deblur",
        _deblur_folder_with("bad.png", truncated_png),
        1,
        "bad.png: not a readable image",
    ),
    Row(
        "deblur-bomb",
        "deblur",
        _deblur_folder_with("bomb.png", bomb_png),
        1,
        "bomb.png: the header claims 100000x100000 pixels",
    ),
    Row(
        "deblur-tiny-5x7",
        "deblur",
        _deblur_folder_with("tiny.png", lambda p: png(p, 7, 5)),
        1,
        "5x7 is too small",
    ),
    Row(
        "deblur-float-tiff",
        "deblur",
        _deblur_folder_with("float.tif", float_tiff),
        1,
        "float.tif: floating-point images (mode F",
    ),
    Row("deblur-odd-modes", "deblur", _deblur_odd_modes, 0, "wrote 4 image(s)"),
    Row("deblur-out-is-input", "deblur", _deblur_out_is_input, 2, "would overwrite the input"),
    Row("deblur-out-below-file", "deblur", _deblur_out_below_file, 2, "is a file, not a folder"),
    Row(
        "deblur-params-truncated",
        "deblur",
        _deblur_bad_params(b"\x85\xa4stem", None),
        1,
        "not a readable params file",
    ),
    Row(
        "deblur-params-json-typed",
        "deblur",
        _deblur_bad_params(None, '{"ngf": "abc"}'),
        1,
        "field 'ngf' must be int",
    ),
    # evaluate: unreadable pairs named and skipped; metrics undefined on tiny images are n/a.
    Row(
        "evaluate-bomb",
        "evaluate",
        _evaluate_set(
            lambda d: (bomb_png(d / "A" / "x.png"), png(d / "B" / "x.png")), expect_rows=2
        ),
        1,
        "x.png: unreadable",
    ),
    Row(
        "evaluate-corrupt-and-empty",
        "evaluate",
        _evaluate_set(
            lambda d: (
                corrupt_png(d / "A" / "c.png"),
                png(d / "B" / "c.png"),
                empty_file(d / "A" / "e.png"),
                png(d / "B" / "e.png"),
            ),
            expect_rows=2,
        ),
        1,
        "e.png: unreadable",
    ),
    Row(
        "evaluate-tiny-9x9-5x7",
        "evaluate",
        _evaluate_tiny,
        0,
        "undefined on 2 image(s) too small for it",
    ),
    Row(
        "evaluate-ctrl-c-keeps-partial",
        "evaluate",
        _evaluate_interrupted(KeyboardInterrupt),
        130,
        "kept the 1 image(s) evaluated so far",
    ),
    Row(
        "evaluate-out-of-memory-keeps-partial",
        "evaluate",
        _evaluate_interrupted(MemoryError),
        1,
        "out of memory",
    ),
    Row("evaluate-out-below-file", "evaluate", _evaluate_out_below_file, 2, "is a file"),
    # export: never over its own input.
    Row(
        "export-params-onto-itself",
        "export",
        _export_onto_input("params"),
        2,
        "would replace the input",
    ),
    Row(
        "export-onnx-onto-itself",
        "export",
        _export_onto_input("onnx"),
        2,
        "would replace the input",
    ),
    Row("export-out-below-file", "export", _export_out_below_file, 2, "is a file"),
    Row("export-not-a-run", "export", _export_not_a_run, 1, "not a deblurgan-jax training"),
    # blur.
    Row("show-kernels-not-png", "blur", _show_kernels("k.xyz"), 2, "name it *.png"),
    Row(
        "show-kernels-below-file",
        "blur",
        _show_kernels("file.txt/k.png", blocker=True),
        2,
        "is a file",
    ),
    Row(
        "make-dataset-bad-files",
        "blur",
        _make_dataset("bad_files"),
        1,
        "skipped 4 unreadable file(s)",
    ),
    Row("make-dataset-out-inside-sharp", "blur", _make_dataset("inside"), 2, "inside --sharp"),
    Row(
        "make-dataset-out-below-file",
        "blur",
        _make_dataset("below_file"),
        2,
        "is a file, not a folder",
    ),
    # detection_benchmark: failing plug-ins.
    Row(
        "detector-raises-on-image",
        "detection_benchmark",
        _detection("raises_on_images"),
        1,
        "raises_on_images' on p1.png: raised RuntimeError: model weights missing",
    ),
    Row(
        "detector-factory-raises", "detection_benchmark", _detection("broken_factory"), 2, "factory"
    ),
    Row(
        "detector-not-importable",
        "detection_benchmark",
        _detection("no_such_module_xyz:make"),
        2,
        "cannot import 'no_such_module_xyz'",
    ),
    Row(
        "detector-bomb-in-set",
        "detection_benchmark",
        _detection(
            "works", lambda d: (bomb_png(d / "A" / "x.png"), png(d / "B" / "x.png")), left_out=False
        ),
        1,
        "x.png",
    ),
    # convert.
    Row("convert-empty-pth", "convert", _convert(b""), 1, "latest_net_G.pth"),
    Row(
        "convert-corrupt-pth",
        "convert",
        _convert(b"PK\x03\x04 garbage" * 10),
        1,
        "latest_net_G.pth",
    ),
    # train.py: configs refused before anything is written.
    Row(
        "train-unknown-key-subprocess",
        "train",
        _train("--config.foo=1", subprocess_run=True),
        2,
        "unknown config field",
    ),
    Row("train-unknown-key", "train", _train("--config.foo=1"), 2, "foo"),
    Row("train-missing-config-file", "train", _train(config="configs/nothere.py"), 2, "nothere.py"),
    Row("train-typed-wrong", "train", _train("--config.num_steps=abc"), 2, "abc"),
    Row("train-num-steps-0", "train", _train("--config.num_steps=0"), 2, "config.num_steps"),
    Row(
        "train-num-steps-negative", "train", _train("--config.num_steps=-1"), 2, "config.num_steps"
    ),
    Row("train-batch-size-0", "train", _train("--config.batch_size=0"), 2, "config.batch_size"),
    Row(
        "train-crop-size-30",
        "train",
        _train("--config.crop_size=30", max_seconds=5.0),
        2,
        "config.crop_size",
    ),
    Row("train-workdir-below-file", "train", _train(below_file=True), 2, "is a file"),
    Row(
        "train-resume-model-change",
        "train",
        _train_resume_with("--config.model.ngf=16"),
        2,
        "config.model.ngf 8 -> 16",
    ),
    Row(
        "train-resume-ema-change",
        "train",
        _train_resume_with("--config.ema_decay=0.999"),
        2,
        "config.ema_decay",
    ),
    Row("train-resume-harmless-change", "train", _train_resume_harmless, 0, "resumed from step 4"),
    # Issue 17: outputs never destroy or mix files the command did not write.
    Row(
        "from-video-empty-file",
        "blur",
        _from_video(clips=lambda t: [empty_file(t / "clip.mp4")]),
        1,
        "the file is empty",
    ),
    Row(
        "from-video-existing-folder-is-usage",
        "blur",
        _from_video(prepare=_earlier_run),
        2,
        "already exists and is not empty",
    ),
    Row(
        "from-video-crop-larger-than-frame",
        "blur",
        _from_video("--crop", "100"),
        2,
        "cannot crop a 100x100 square",
    ),
    Row("from-video-gamma-tiny", "blur", _from_video("--gamma", "1e-300"), 2, "between 0.1 and 10"),
    Row("from-video-gamma-huge", "blur", _from_video("--gamma", "1e300"), 2, "between 0.1 and 10"),
    Row(
        "from-video-overwrite-onto-gopro-copy",
        "blur",
        _from_video("--overwrite", prepare=lambda out: [gopro_copy(out / "train" / "clip")]),
        2,
        "holds files that from-video did not write (blur/000000.png",
    ),
    Row(
        "from-video-overwrite-with-a-foreign-frame",
        "blur",
        _from_video("--overwrite", prepare=_earlier_run_plus_foreign_frame),
        2,
        "blur/000100.png",
    ),
    Row(
        "from-video-truncated-clip-skipped",
        "blur",
        _from_video(
            clips=lambda t: [clip_file(t / "good.avi"), truncated_clip(t / "cut.avi")],
            check=_no_sequence_written_for_the_truncated_clip,
        ),
        1,
        "cut.avi: only",
    ),
    Row(
        "from-video-out-is-the-clip",
        "blur",
        lambda tmp, env: Setup(
            [
                "from-video",
                str(clip_file(tmp / "c.avi")),
                "--out",
                str(tmp / "x" / ".." / "c.avi"),
                "--noprogress",
            ],
            [tmp / "c.avi"],
        ),
        2,
        "is the clip",
    ),
    Row("deblur-every-input-fails-leaves-no-out", "deblur", _deblur_all_inputs_fail, 1, "bad.mp4"),
    Row(
        "deblur-empty-folder-named",
        "deblur",
        _deblur_empty_folder_named,
        1,
        "a folder without image or video files",
    ),
    Row(
        "deblur-side-by-side-on-images",
        "deblur",
        _deblur_side_by_side_images,
        0,
        "--side-by-side applies to videos",
    ),
    Row("evaluate-names-sharing-a-stem", "evaluate", _evaluate_names_sharing_a_stem, 0, "wrote"),
]


@pytest.mark.parametrize("row", CATALOGUE, ids=[r.id for r in CATALOGUE])
def test_catalogue(row, params_file, plugin_module, tmp_path, capsys, monkeypatch, request):
    needs_run = row.id.startswith("train-resume")
    env = Env(
        params_file,
        plugin_module,
        request.getfixturevalue("reference_run")[0] if needs_run else "",
        monkeypatch,
    )
    setup = row.build(tmp_path, env)
    before = _hashes(setup.inputs)
    assert before or not setup.inputs, "a row's inputs must hold files"
    if setup.subprocess:
        code, text = run_subprocess(setup.argv)
    else:
        code = MAINS[row.command](setup.argv)
        captured = capsys.readouterr()
        text = captured.out + captured.err
    assert code == row.code, text
    assert row.phrase in text, text
    assert "Traceback" not in text, text
    assert _hashes(setup.inputs) == before, "an input was changed"
    if setup.check is not None:
        setup.check(text)


def test_read_only_folder(params_file, tmp_path, capsys):
    """--out in a folder the user may not write to: a one-line error (meaningless as root)."""
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only folder is writable anyway")
    a = png(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = deblur.main(
            [str(a), "--out", str(locked / "out"), "--params", params_file, "--noprogress"]
        )
    finally:
        locked.chmod(0o700)
    text = "".join(capsys.readouterr())
    assert code == 1 and "Permission denied" in text and "Traceback" not in text


# --------------------------------------------------------------------------------------------
# Images: the readers themselves.


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = bomb_png(tmp_path / "bomb.png")
    assert path.stat().st_size < 100  # the header alone claims 10^10 pixels
    for read in (images.read_picture, images.load_rgb8):
        with pytest.raises(
            images.PictureError,
            match=r"bomb.png: the header claims "
            r"100000x100000 pixels",
        ):
            read(str(path))


def test_header_between_once_and_twice_the_limit_is_read_quietly(tmp_path, recwarn):
    """Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; in between the file is
    read (here: found truncated, since it has no pixel data) without a warning."""
    side = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)
    path = bomb_png(tmp_path / "big.png", side, side)
    with pytest.raises(images.PictureError, match="big.png: not a readable image"):
        images.read_picture(str(path))
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_header_scan_counts_a_bomb_as_unreadable(tmp_path):
    from deblurgan_jax.data import sources

    root = paired_set(tmp_path / "set", names=("a.png",))
    bomb_png(root / "A" / "x.png")
    png(root / "B" / "x.png")
    stats = sources.DataStats()
    table = sources.load_table("paired", str(root), "test", stats)
    assert [r.name for r in table.records] == ["a.png"]
    assert stats.unreadable == [str(root / "A" / "x.png")]


def test_odd_modes_read_as_pillow_converts_them(tmp_path):
    """Palette, gray+alpha and 16-bit gray: values as Pillow's own conversions (reference)."""
    for path in odd_mode_images(tmp_path):
        with Image.open(path) as im:
            if im.mode == "I;16":
                want = np.repeat(
                    np.rint(np.asarray(im, np.float64) * 255 / 65535).astype(np.uint8)[..., None],
                    3,
                    axis=-1,
                )
            else:
                want = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(images.load_rgb8(path), want)


# --------------------------------------------------------------------------------------------
# Interruptions of train.py.


def _sigint_as_in_a_terminal() -> None:
    """Children of a shell's background job (`pytest ... &`, nohup) start with SIGINT ignored,
    and Python then keeps it ignored; reset it, so Ctrl-C tests do not depend on how the suite
    was launched."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "--config",
            "configs/tiny.py",
            "--workdir",
            str(workdir),
            "--noprogress",
            *INTERRUPT_OVERRIDES,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )


def _steps(workdir: Path) -> list[int]:
    folder = workdir / "checkpoints"
    return sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if folder.is_dir() else []


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"exited early: {proc.communicate()}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def _stop(proc: subprocess.Popen, sig: int, timeout: float = 10.0) -> tuple[int, str, float]:
    sent = time.time()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no exit within {timeout} s of signal {sig}") from None
    return proc.returncode, err, time.time() - sent


def _assert_one_line_stop(code: int, err: str, seconds: float) -> None:
    assert code == 130, err
    assert seconds < 10.0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err


def test_sigint_and_sigkill_then_resume_equals_an_uninterrupted_run(reference_run, tmp_path):
    """SIGINT during start-up, SIGINT as the first checkpoint save starts (checkpoint_every=1),
    SIGKILL between later steps; every checkpoint left is complete, and resuming ends on the
    reference run's params exactly."""
    _, want = reference_run
    workdir = tmp_path / "run"

    # 1. Ctrl-C during start-up (imports), before any step: one line, exit 130 at once.
    proc = _start(workdir)
    time.sleep(1.0)
    code, err, seconds = _stop(proc, signal.SIGINT)
    _assert_one_line_stop(code, err, seconds)
    assert "before the first step" in err
    assert _steps(workdir) == []

    # 2. Ctrl-C right as the first checkpoint save starts: that step is saved, exit 130.
    proc = _start(workdir)
    _wait_for(
        lambda: (
            (workdir / "checkpoints").is_dir()
            and any(not n.startswith(".") for n in os.listdir(workdir / "checkpoints"))
        ),
        proc,
        240,
    )
    code, err, seconds = _stop(proc, signal.SIGINT)
    _assert_one_line_stop(code, err, seconds)
    assert "run the same command to resume" in err
    saved = _steps(workdir)
    assert saved and saved[-1] < INTERRUPT_STEPS, saved
    params, _, provenance = checkpoints.load_generator_from_workdir(str(workdir))
    assert provenance["step"] == saved[-1]

    # 3. SIGKILL once a later checkpoint appears (between steps, maybe mid-save).
    proc = _start(workdir)
    _wait_for(lambda: _steps(workdir) and _steps(workdir)[-1] > saved[-1], proc, 240)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Whatever Orbax finalised is complete and loads.
    checkpoints.load_generator_from_workdir(str(workdir))

    # 4. Resume to the end (in-process: same code path, no interpreter start-up).
    state = train.train_and_evaluate(_interrupt_config(), str(workdir), progress=False)
    assert int(state.step) == INTERRUPT_STEPS
    got = checkpoints.load_generator_from_workdir(str(workdir))[0]
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --------------------------------------------------------------------------------------------
# Flat data.


def test_training_on_flat_saturated_and_constant_images_runs_to_the_end(tmp_path, capsys):
    """Every crop flat (black, white, mid-grey, saturated red): the identity-initialised
    generator restores them exactly (PSNR capped, not infinite) and training goes on."""
    root = tmp_path / "flat"
    colours = {
        "black": (0, 0, 0),
        "white": (255, 255, 255),
        "grey": (128, 128, 128),
        "red": (255, 0, 0),
    }
    for name, colour in colours.items():
        pixels = np.broadcast_to(np.array(colour, np.uint8), (40, 48, 3))
        for side in ("A", "B"):
            (root / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(pixels)).save(root / side / f"{name}.png")
    config = _interrupt_config()  # the reference run's program: compiled once (cache)
    config.data.source = "paired"
    config.data.root = str(root)
    config.num_steps = 4
    config.log_every = 1
    config.model.zero_init_head = True  # the generator starts as the identity (configs/demo.py)
    summaries = []
    check = train.check_finite

    def record(summary, step):
        summaries.append(dict(summary))
        check(summary, step)

    import unittest.mock

    with unittest.mock.patch.object(train, "check_finite", record):
        state = train.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
    assert int(state.step) == 4
    assert len(summaries) >= 4
    # Step 1: the identity generator restores every flat crop exactly: the documented cap
    # (metrics.PSNR_MAX_DB), where it used to be inf and stop the run as "diverged".
    assert summaries[0]["train_psnr"] == metrics.PSNR_MAX_DB
    for summary in summaries:
        for key in train.DIVERGENCE_METRICS:
            if key in summary:
                assert np.isfinite(summary[key]), summary
        assert np.isfinite(summary["train_psnr"]) and summary["train_psnr"] <= metrics.PSNR_MAX_DB


# ------------------------------------------------------------------------------------------
# Found in review: runs from older versions, failed first starts, exports over a run, and
# from-video settings the library refuses.


def test_a_run_from_before_ema_existed_still_resumes():
    config = tiny.get_config()
    stored = config.to_dict()
    del stored["ema_decay"]  # config.json written before the field existed
    assert config_lib.resume_changes(stored, config) == {"ema_decay": (None, 0.0)}
    config.ema_decay = 0.999  # switching EMA on is what changes the checkpoint
    with pytest.raises(config_lib.ConfigError, match="config.ema_decay None -> 0.999"):
        config_lib.resume_changes(stored, config)


def test_a_first_start_that_failed_before_any_checkpoint_does_not_pin_the_model(tmp_path):
    workdir = str(tmp_path / "run")
    first = tiny.get_config()
    checkpoints.record_run_config(workdir, first)  # then the start failed (e.g. bad data root)
    retry = tiny.get_config()
    retry.model.n_blocks = 3
    assert checkpoints.record_run_config(workdir, retry) == {}
    assert checkpoints.read_run_config(workdir).model.n_blocks == 3
    with open(os.path.join(workdir, checkpoints.ORIGINAL_CONFIG_FILE)) as f:
        assert json.load(f)["model"]["n_blocks"] == 3
    # With a checkpoint on disk the same change is refused.
    os.makedirs(os.path.join(workdir, checkpoints.CHECKPOINT_DIR, "2"))
    before = _file_hashes(tmp_path)
    with pytest.raises(config_lib.ConfigError, match="config.model.n_blocks 3 -> 2"):
        checkpoints.record_run_config(workdir, tiny.get_config())
    assert _file_hashes(tmp_path) == before


def _file_hashes(folder) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("out", ["run", "."])
def test_export_never_replaces_the_training_run(tmp_path, out, capsys):
    run = tmp_path / "run"
    (run / "checkpoints" / "2").mkdir(parents=True)
    (run / "checkpoints" / "2" / "state").write_bytes(b"weights")
    (run / "config.json").write_text("{}")
    before = _file_hashes(tmp_path)
    code = export.main(
        [
            "--workdir",
            str(run),
            "--format",
            "saved_model",
            "--overwrite",
            "--out",
            str(tmp_path / out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "would replace the training directory" in err
    assert "Traceback" not in err and _file_hashes(tmp_path) == before


@pytest.mark.parametrize(
    "flags, phrase",
    [(["--gamma", "0"], "must be a positive number"), (["--split", "a/b"], "split")],
)
def test_from_video_settings_the_library_refuses_are_usage_errors(tmp_path, flags, phrase):
    clip = tmp_path / "clip.avi"
    with video.VideoWriter(str(clip), fps=240.0, size=(32, 24)) as writer:
        for i in range(9):
            writer.write(np.full((24, 32, 3), 20 * i, np.uint8))
    before = _file_hashes(tmp_path)
    r = run_main(
        blur.main, "from-video", str(clip), "--out", str(tmp_path / "pairs"), "--noprogress", *flags
    )
    assert r.returncode == 2 and phrase in r.stderr and "Traceback" not in r.stderr
    assert _file_hashes(tmp_path) == before


# --------------------------------------------------------------------------------------------
# Issue 17 beyond the command table: the Python API, interrupted overwrites, file modes.


def _api_video_onto_itself(tmp: Path, d) -> tuple[Callable[[], Any], list[Path]]:
    clip = clip_file(tmp / "clip.avi", frames=3)
    other_spelling = tmp / "sub" / ".." / "clip.avi"
    (tmp / "sub").mkdir()
    return lambda: d.video(clip, str(other_spelling), overwrite=True, progress=False), [clip]


def _call(fn: Callable[[Any], Any]):
    return lambda tmp, d: ((lambda: fn(d)), [])


_GRAY = np.random.default_rng(5).integers(0, 256, (16, 16), dtype=np.uint8)
API_REFUSALS = [
    ("video-onto-its-source", _api_video_onto_itself, FileExistsError, "input video itself"),
    ("video-of-none", _call(lambda d: d.video(None)), TypeError, "src must be a video file"),
    (
        "video-of-bytes",
        _call(lambda d: d.video(b"clip.mp4")),
        TypeError,
        "src must be a video file",
    ),
    (
        "video-fps-0",
        lambda tmp, d: (
            (lambda: d.video([np.zeros((8, 8, 3), np.uint8)], str(tmp / "x.mp4"), fps=0)),
            [],
        ),
        ValueError,
        "fps must be a positive number",
    ),
    (
        "bool-image-hint",
        _call(lambda d: d(np.zeros((8, 8), bool))),
        TypeError,
        "astype(np.uint8) * 255",
    ),
    (
        "int64-image-hint",
        _call(lambda d: d(np.zeros((8, 8), np.int64))),
        TypeError,
        "x.astype(np.uint8)",
    ),
    (
        "mode-I-beyond-16-bits",
        _call(lambda d: d(Image.fromarray((_GRAY.astype(np.int32) * 1000)))),
        images.PictureError,
        "only 0..255 (8-bit)",
    ),
]


@pytest.fixture(scope="module")
def tiny_deblurrer(params_file):
    from deblurgan_jax import api

    return api.Deblurrer.from_params(params_file)


@pytest.mark.parametrize(
    "name, build, error, phrase", API_REFUSALS, ids=[r[0] for r in API_REFUSALS]
)
def test_api_refusals(name, build, error, phrase, tiny_deblurrer, tmp_path):
    call, inputs = build(tmp_path, tiny_deblurrer)
    before = _hashes(inputs)
    with pytest.raises(
        error,
        match=phrase.replace("(", r"\(")
        .replace(")", r"\)")
        .replace(".", r"\.")
        .replace("*", r"\*"),
    ):
        call()
    assert _hashes(inputs) == before


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: Image.fromarray(a).convert("I"),  # 32-bit integers holding 0..255
        jnp.asarray,  # a jax.Array
    ],
    ids=["pil-mode-I", "jax-array"],
)
def test_api_inputs_restore_like_their_uint8_equivalent(convert, tiny_deblurrer):
    expected = tiny_deblurrer(_GRAY)
    got = np.asarray(tiny_deblurrer(convert(_GRAY)))
    np.testing.assert_array_equal(got, expected)


def test_api_big_endian_uint16_is_read_by_value(tiny_deblurrer):
    native = _GRAY.astype(np.uint16) * 257
    got = tiny_deblurrer(native.astype(">u2"))
    assert got.dtype == np.dtype(">u2")
    np.testing.assert_array_equal(got.astype(np.uint16), tiny_deblurrer(native))


def test_a_short_video_batch_is_not_padded_to_the_batch_size(tiny_deblurrer, monkeypatch):
    seen = []
    infer = tiny_deblurrer._infer
    monkeypatch.setattr(
        tiny_deblurrer, "_infer", lambda p, batch: seen.append(len(batch)) or infer(p, batch)
    )
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(5)]
    out = list(tiny_deblurrer.video(frames, batch_size=256, progress=False))
    assert len(out) == 5 and seen == [8]  # the next power of two, not 256


def test_from_video_overwrite_interrupted_keeps_the_old_set(tmp_path, monkeypatch, capsys):
    """Ctrl-C half-way through --overwrite: the old pairs and pairs.json are left exactly as
    they were (no mix of 3- and 5-frame pairs), nothing hidden is left behind."""
    clip = clip_file(tmp_path / "clip.avi")
    out = tmp_path / "out"
    assert (
        blur.main(["from-video", str(clip), "--out", str(out), "--frames", "3", "--noprogress"])
        == 0
    )
    before = _hashes([tmp_path])
    real_write, calls = video._write_png, []

    def write_then_interrupt(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(path, image)

    monkeypatch.setattr(video, "_write_png", write_then_interrupt)
    code = blur.main(
        ["from-video", str(clip), "--out", str(out), "--frames", "5", "--overwrite", "--noprogress"]
    )
    text = "".join(capsys.readouterr())
    assert code == 130 and "Traceback" not in text
    assert _hashes([tmp_path]) == before
    assert sorted(os.listdir(out / "train")) == ["clip"]  # no hidden staging folder left


def test_from_video_overwrite_swap_interrupted_restores_the_old_set(tmp_path, monkeypatch):
    clip = clip_file(tmp_path / "clip.avi")
    out = tmp_path / "out"
    video.make_pairs_from_videos([str(clip)], str(out), frames=3, progress=False)
    before = _hashes([tmp_path])
    real_replace, moved_in = os.replace, []
    sequence = str(out / "train" / "clip") + os.sep

    def replace_then_interrupt(src, dst):
        if os.fspath(dst).startswith(sequence):  # a new pair being moved into place
            moved_in.append(dst)
            if len(moved_in) == 3:  # the old pairs are aside, two new ones are in
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        video.make_pairs_from_videos(
            [str(clip)], str(out), frames=5, overwrite=True, progress=False
        )
    monkeypatch.undo()
    assert len(moved_in) >= 3 and _hashes([tmp_path]) == before
    assert sorted(os.listdir(out / "train")) == ["clip"]


def test_from_video_overwrite_replaces_only_what_its_manifest_lists(tmp_path):
    clip = clip_file(tmp_path / "clip.avi")
    out = tmp_path / "out"
    video.make_pairs_from_videos([str(clip)], str(out), frames=3, progress=False)  # 7 pairs
    sequence = out / "train" / "clip"
    (sequence / "notes.txt").write_text("mine")
    video.make_pairs_from_videos([str(clip)], str(out), frames=7, overwrite=True, progress=False)
    assert _files_under(sequence) == [
        "blur/000000.png",
        "blur/000001.png",
        "blur/000002.png",
        "notes.txt",
        "pairs.json",
        "sharp/000000.png",
        "sharp/000001.png",
        "sharp/000002.png",
    ]
    assert (sequence / "notes.txt").read_text() == "mine"
    manifest = json.loads((sequence / "pairs.json").read_text())
    assert manifest["frames"] == 7 and manifest["pairs"] == 3
    # A manifest edited to list files outside the folder never makes overwrite remove them.
    victim = png(tmp_path / "victim.png")
    manifest["files"] = ["../../../victim.png", str(victim), "blur/000000.png"]
    (sequence / "pairs.json").write_text(json.dumps(manifest))
    with pytest.raises(FileExistsError, match="blur/000001.png"):
        video.make_pairs_from_videos(
            [str(clip)], str(out), frames=7, overwrite=True, progress=False
        )
    assert victim.exists()


def test_ctrl_c_during_from_video_exits_130_without_a_traceback(tmp_path):
    """The acceptance case of issue 17, as a user runs it: SIGINT 2 s after the start. The clip
    is long enough (several seconds of work without TensorFlow) that the signal lands mid-run."""
    clip = clip_file(tmp_path / "clip.avi", frames=6000, size=(96, 64))
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deblurgan_jax.blur", "from-video", str(clip), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130 and "Traceback" not in text, text
    assert not (out / "train").exists() or os.listdir(out / "train") == []  # nothing half-made


def test_from_video_rejects_an_empty_file_without_tensorflow(tmp_path):
    """Error mapping imports nothing: an empty clip is refused without loading TensorFlow."""
    empty = empty_file(tmp_path / "clip.mp4")
    script = (
        "import sys; from deblurgan_jax import blur; "
        f"code = blur.main(['from-video', {str(empty)!r}, '--out', {str(tmp_path / 'o')!r}]); "
        "print('tensorflow' in sys.modules, 'jax' in sys.modules); sys.exit(code)"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1 and "the file is empty" in r.stderr
    assert r.stdout.split() == ["False", "False"] and "Traceback" not in r.stderr


def test_exported_params_and_run_config_follow_the_umask(tmp_path):
    """Shared model folders: written files get 0666 & ~umask like any open(), not 0600."""
    g = models.ResnetGenerator(ngf=8, n_blocks=2)
    params = g.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    old = os.umask(0o022)
    try:
        path = tmp_path / "g.msgpack"
        checkpoints.save_generator(params, {"ngf": 8, "n_blocks": 2}, str(path))
        checkpoints.record_run_config(str(tmp_path / "run"), tiny.get_config())
    finally:
        os.umask(old)
    for written in (
        path,
        Path(checkpoints.model_config_path(str(path))),
        tmp_path / "run" / checkpoints.CONFIG_FILE,
    ):
        assert written.stat().st_mode & 0o777 == 0o644, written
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left
