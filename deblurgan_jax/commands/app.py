"""A local web app: drop a blurred photo or a short video into a browser page, get it restored.

    python -m deblurgan_jax.app                                 # the shipped pretrained model
    python -m deblurgan_jax.app --params generator.msgpack      # a params file
    python -m deblurgan_jax.app --workdir runs/wild --which best
    python -m deblurgan_jax.app --host 0.0.0.0 --port 7860      # reachable from other machines

Built with Gradio (the optional extra `pip install '.[app]'`). The page shows, for a photo, the
restored photo beside the upload with a before/after slider, an enlarged crop of the region the
restoration changed most, the time taken and a button that downloads the full-resolution result
as PNG (grayscale, alpha and 16 bits kept: what `deblur` writes, in PNG); for a video, the
restored video (WebM, which browsers play) with a progress bar. A gallery of example photos ships
with the package (deblurgan_jax/app_examples/). Photos of any size are restored (large ones in
tiles, --tile); videos frame by frame (long ones take long on a CPU).

Bad input (not an image, a corrupt, empty or truncated file, a decompression bomb, a video that
cannot be read) gives a message in the page and the app goes on serving. Requests are served one
at a time, in a queue. The page works offline: Gradio's analytics and version check are off,
and its fonts and scripts are served by the app itself.

The server listens on 127.0.0.1 (this machine only) unless --host says otherwise; with
`--host 0.0.0.0` it serves anyone who can reach the port, without any login.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from typing import Any, Sequence

import numpy as np

from deblurgan_jax import api
from deblurgan_jax.blurring import video
from deblurgan_jax.commands import cli
from deblurgan_jax.evaluation import report
from deblurgan_jax.utils import images
from deblurgan_jax.weights import checkpoints

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
EXAMPLES_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app_examples"
)
PREVIEW_SIDE = 1600  # the slider shows photos at most this large; the download is full size
ZOOM_WINDOW = 96  # pixels of the crop the restoration changed most (as the evaluation report)
ZOOM_SCALE = 3  # nearest-neighbour enlargement of that crop
MAX_UPLOAD = "1gb"  # larger uploads are refused by the server before they reach the model
QUEUE_SIZE = 32  # requests waiting beyond this are told the app is busy
KEEP_OUTPUTS_S = 3600  # results stay downloadable this long
STARTUP_TIMEOUT_S = 120  # how long the started server may take to answer its first request
VIDEO_SUFFIX = ".webm"  # VP8: plays in every browser (MPEG-4 part 2 .mp4 does not)
INSTALL_HINT = (
    "the web app needs Gradio, an optional extra: pip install 'deblurgan-jax[app]' "
    "(or pip install -r requirements-app.txt in a checkout)"
)


def offline_environment() -> None:
    """Before Gradio is imported: no analytics, no version check, no Hugging Face telemetry or
    downloads. Forced (not defaults): the page promises to work offline."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


# --------------------------------------------------------------------------------------------
# What the page does, without Gradio (tested directly).


@dataclasses.dataclass
class PhotoResult:
    """A restored photo: what the page shows, or the message of why it could not be."""

    message: str
    before: np.ndarray | None = None  # (h, w, 3) uint8 preview of the upload
    after: np.ndarray | None = None  # the same of the restored photo
    zoom: np.ndarray | None = None  # enlarged crops, blurred | restored
    download: str | None = None  # the full-resolution PNG
    seconds: float | None = None  # restoration time (reading and writing excluded)


@dataclasses.dataclass
class VideoResultPage:
    message: str
    path: str | None = None  # the restored WebM


def example_photos() -> list[str]:
    """The example photos shipped with the package, sorted by name."""
    if not os.path.isdir(EXAMPLES_DIR):
        return []
    return [
        os.path.join(EXAMPLES_DIR, f)
        for f in sorted(os.listdir(EXAMPLES_DIR))
        if images.is_image_name(f)
    ]


def preview(rgb8: np.ndarray) -> np.ndarray:
    """`rgb8` shrunk (Lanczos) to at most PREVIEW_SIDE pixels on its long side."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    side = PREVIEW_SIDE
    height, width = rgb8.shape[:2]
    if max(height, width) <= side:
        return rgb8
    image = Image.fromarray(rgb8)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


def zoom_pair(blurred8: np.ndarray, restored8: np.ndarray) -> np.ndarray:
    """blurred | restored crops of the window the restoration changed most, enlarged."""
    top, left, h, w = report.changed_region(blurred8, restored8, ZOOM_WINDOW)
    crops = [
        np.repeat(np.repeat(a[top : top + h, left : left + w], ZOOM_SCALE, 0), ZOOM_SCALE, 1)
        for a in (blurred8, restored8)
    ]
    gap = np.full((crops[0].shape[0], 4 * ZOOM_SCALE, 3), 255, np.uint8)
    return np.concatenate([crops[0], gap, crops[1]], axis=1)


def _shown(message: str, path: str) -> str:
    """The message with the server-side path of an upload replaced by its file name."""
    return message.replace(path, os.path.basename(path))


def _unexpected(error: BaseException, path: str) -> str:
    """A message for an error the library does not name (the traceback goes to the log)."""
    if isinstance(error, MemoryError):
        return f"error: {os.path.basename(path)}: out of memory (try a smaller --tile)"
    traceback.print_exc(file=sys.stderr)
    return (
        f"error: {os.path.basename(path)}: restoring failed ({type(error).__name__}: "
        f"{error}); the app keeps serving"
    )


class Outputs:
    """Per-request folders under one temporary root, removed after KEEP_OUTPUTS_S (and all
    at `close`), so a long-running app does not fill the disk."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="deblurgan_app_")

    def new(self) -> str:
        now = time.time()
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            try:
                if now - os.path.getmtime(path) > KEEP_OUTPUTS_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass
        return tempfile.mkdtemp(dir=self.root)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def restore_photo(deblurrer: api.Deblurrer, path: str | None, outputs: Outputs) -> PhotoResult:
    """Restores the photo file `path` (upright, format kept) into a full-resolution PNG."""
    if not path:
        return PhotoResult("upload a photo (or click an example)")
    name = os.path.basename(path)
    try:
        if os.path.getsize(path) == 0:
            return PhotoResult(f"error: {name}: the file is empty (0 bytes)")
        picture = images.read_picture(path)
        start = time.perf_counter()
        restored = deblurrer.restore_picture(picture)
        seconds = time.perf_counter() - start
        target = os.path.join(outputs.new(), os.path.splitext(name)[0] + "_deblurred.png")
        images.write_picture(target, restored)
    except (images.PictureError, ValueError, OSError) as e:
        return PhotoResult("error: " + _shown(str(e), path))
    except Exception as e:  # pylint: disable=broad-except  (the app keeps serving)
        return PhotoResult(_unexpected(e, path))
    before8, after8 = images.display_rgb8(picture), images.display_rgb8(restored)
    height, width = before8.shape[:2]
    shown = preview(before8)
    note = (
        ""
        if shown.shape == before8.shape
        else f"; shown at {shown.shape[1]}x{shown.shape[0]}, the download is full size"
    )
    message = (
        f"{name}: {width}x{height} pixels restored in {seconds:.2f} s (the first photo "
        f"of a size includes compiling the model for it){note}"
    )
    return PhotoResult(message, shown, preview(after8), zoom_pair(before8, after8), target, seconds)


def restore_video(
    deblurrer: api.Deblurrer, path: str | None, outputs: Outputs, batch_size: int = 4
) -> VideoResultPage:
    """Restores every frame of the video file `path` into a WebM (progress on tqdm's bar)."""
    if not path:
        return VideoResultPage("upload a video")
    name = os.path.basename(path)
    target = os.path.join(outputs.new(), os.path.splitext(name)[0] + "_deblurred" + VIDEO_SUFFIX)
    try:
        if os.path.getsize(path) == 0:
            return VideoResultPage(f"error: {name}: the file is empty (0 bytes)")
        start = time.perf_counter()
        result = deblurrer.video(path, target, batch_size=batch_size, progress=True)
        seconds = time.perf_counter() - start
    except (video.VideoError, ValueError, OSError) as e:
        return VideoResultPage("error: " + _shown(str(e), path))
    except Exception as e:  # pylint: disable=broad-except  (the app keeps serving)
        return VideoResultPage(_unexpected(e, path))
    cropped = (
        ""
        if result.cropped_from is None
        else f" (cropped from {result.cropped_from[0]}x{result.cropped_from[1]}: video encoders "
        f"need an even size)"
    )
    return VideoResultPage(
        f"{name}: {result.frames} frames of {result.width}x{result.height}"
        f"{cropped} at {result.fps:.4g} fps restored in {seconds:.1f} s; "
        f"audio is not carried",
        result.path,
    )


def describe(deblurrer: api.Deblurrer) -> str:
    """One line naming the model the app serves."""
    provenance = deblurrer.provenance
    if "pretrained" in provenance:  # the shipped model: its name and recipe, not its whole card
        steps = f", {provenance['steps']} steps" if "steps" in provenance else ""
        source = f"the pretrained {provenance['pretrained']}{steps} (MODEL_CARD.md)"
    else:
        source = ", ".join(f"{k}: {v}" for k, v in provenance.items()) or "in memory"
    c = deblurrer.model_config
    return f"model: {source} (ngf {c['ngf']}, {c['n_blocks']} residual blocks)"


# --------------------------------------------------------------------------------------------
# The page.

_CSS = """
#photo-status textarea, #video-status textarea { font-family: monospace; }
"""


def build_app(deblurrer: api.Deblurrer, outputs: Outputs, batch_size: int = 4):
    """The Gradio Blocks of the page (queued, one request at a time)."""
    offline_environment()
    import gradio as gr  # pylint: disable=g-import-not-at-top

    examples = example_photos()

    def photo_outputs(result: PhotoResult):
        pair = None if result.before is None else (result.before, result.after)
        return (
            pair,
            result.zoom,
            result.message,
            gr.DownloadButton(value=result.download, visible=result.download is not None),
        )

    def on_photo(path):
        return photo_outputs(restore_photo(deblurrer, path, outputs))

    def on_example(evt):
        return photo_outputs(restore_photo(deblurrer, examples[evt.index], outputs))

    # Gradio passes the clicked item to a parameter annotated SelectData; a real class here,
    # since this module's string annotations cannot be resolved to the local `gr`.
    on_example.__annotations__ = {"evt": gr.SelectData}

    def on_video(path, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="reading the video")
        result = restore_video(deblurrer, path, outputs, batch_size)
        return result.path, result.message

    with gr.Blocks(
        title="DeblurGAN", analytics_enabled=False, delete_cache=(KEEP_OUTPUTS_S, KEEP_OUTPUTS_S)
    ) as demo:
        gr.Markdown("## DeblurGAN: restore blurred photos and videos\n" + describe(deblurrer))
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column(scale=1):
                    photo_in = gr.File(
                        label="blurred photo (any format deblur reads)", elem_id="photo-in"
                    )
                    gallery = gr.Gallery(
                        value=[(p, os.path.basename(p)) for p in examples],
                        label="examples: click one to restore it",
                        columns=2,
                        height="auto",
                        allow_preview=False,
                        elem_id="examples",
                        interactive=False,
                    )
                with gr.Column(scale=2):
                    slider = gr.ImageSlider(
                        label="before / after (drag the handle)",
                        type="numpy",
                        format="png",
                        elem_id="slider",
                        interactive=False,
                    )
                    status = gr.Textbox(
                        label="outcome", interactive=False, lines=2, elem_id="photo-status"
                    )
                    download = gr.DownloadButton(
                        "download the full-resolution PNG", visible=False, elem_id="download"
                    )
                    zoom = gr.Image(
                        label=f"where the restoration changed the image most: "
                        f"blurred | restored, x{ZOOM_SCALE}",
                        type="numpy",
                        format="png",
                        interactive=False,
                        elem_id="zoom",
                    )
            outputs_ = [slider, zoom, status, download]
            photo_in.upload(on_photo, photo_in, outputs_)
            gallery.select(on_example, None, outputs_)
        with gr.Tab("Video"):
            with gr.Row():
                video_in = gr.File(
                    label="blurred video (mp4, avi, mov, mkv, webm, ...)", elem_id="video-in"
                )
                with gr.Column():
                    video_out = gr.Video(
                        label="restored", format=None, interactive=False, elem_id="video-out"
                    )
                    video_status = gr.Textbox(
                        label="outcome", interactive=False, lines=2, elem_id="video-status"
                    )
            video_in.upload(on_video, video_in, [video_out, video_status])
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def launch(demo, host: str, port: int) -> str:
    """Starts the server in a thread; returns its local URL once it answers."""
    # Gradio's own check that the page answers gives up after one 3-second try (too short on a
    # busy machine) and then asks for a public share link; ours waits longer and never shares.
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        ssr_mode=False,
        quiet=True,
        prevent_thread_lock=True,
        show_error=True,
        max_file_size=MAX_UPLOAD,
        inbrowser=False,
        css=_CSS,
        _frontend=False,
    )
    url = demo.local_url
    try:
        wait_until_serving(url)
    except BaseException:
        demo.close(verbose=False)
        raise
    return url


def wait_until_serving(url: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Returns once `url` answers 200 (proxies bypassed); OSError after `timeout_s`."""
    import urllib.error  # pylint: disable=g-import-not-at-top
    import urllib.request  # pylint: disable=g-import-not-at-top

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with opener.open(url, timeout=max(1.0, deadline - time.monotonic())) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise OSError(f"the app started but {url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# The command.


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deblurgan_jax.app",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_generator_flags(p)
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; "
        f"0.0.0.0 serves anyone who can reach the port, without login)",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})"
    )
    cli.add_inference_flags(p, default_tile=api.DEFAULT_TILE)
    p.add_argument(
        "--batch-size", type=int, default=4, help="videos: frames restored at once (default 4)"
    )
    return p


def load_deblurrer(args: argparse.Namespace) -> api.Deblurrer:
    """The model of --params or --workdir, else the shipped pretrained one; UsageError when
    neither is given and the installation ships none."""
    if args.params is not None and args.workdir is not None:
        raise cli.UsageError("give at most one of --workdir and --params")
    options: dict[str, Any] = {
        "tile": args.tile or None,
        "tile_overlap": args.tile_overlap,
        "dropout_seed": args.seed if args.dropout else None,
    }
    if args.params is not None:
        deblurrer = api.Deblurrer.from_params(args.params, **options)
    elif args.workdir is not None:
        deblurrer = api.Deblurrer.from_workdir(args.workdir, args.which, args.weights, **options)
    else:
        if not os.path.isfile(checkpoints.pretrained_path()):
            raise cli.UsageError(
                "no model: this installation ships no pretrained model; "
                "give --params FILE or --workdir DIR"
            )
        deblurrer = api.Deblurrer.pretrained(**options)
    cli.check_tile_args(args.tile, args.tile_overlap, deblurrer.model_config["n_blocks"])
    return deblurrer


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise cli.UsageError(f"--batch-size must be positive, got {args.batch_size}")
    if not 0 < args.port < 65536:
        raise cli.UsageError(f"--port must be in 1..65535, got {args.port}")
    try:
        import gradio  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
        raise cli.UsageError(INSTALL_HINT) from None
    deblurrer = load_deblurrer(args)
    outputs = Outputs()
    demo = build_app(deblurrer, outputs, args.batch_size)
    try:
        url = launch(demo, args.host, args.port)
        print(f"serving {describe(deblurrer)}")
        if args.host in ("0.0.0.0", "::"):
            print(
                f"warning: listening on all addresses: anyone who can reach port {args.port} "
                f"can use this app (there is no login)",
                file=sys.stderr,
            )
        print(f"open {url} in a browser (Ctrl-C to stop)", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does
        while demo.is_running:
            time.sleep(0.2)
    finally:
        demo.close(verbose=False)
        outputs.close()
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
