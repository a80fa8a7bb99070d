"""Retakes the README's screenshots: docs/app.png (the web app on an example photo) and
docs/report.png (the top of an `evaluate --save-images` report on the demo photos).

    python experiments/app_screenshots.py                       # the shipped pretrained model
    python experiments/app_screenshots.py --params generator.msgpack

Needs the app extra (Gradio), Playwright and a Chromium binary on PATH (`apt-get install
chromium`). The PNGs are reduced to 256 colours to stay small in the repository.
"""

import argparse
import os
import shutil
import socket
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from PIL import Image  # noqa: E402

from deblurgan_jax import Deblurrer  # noqa: E402
from deblurgan_jax.commands import app, evaluate  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
VIEWPORT = {"width": 1200, "height": 820}


def small_png(src: str, dst: str) -> None:
    with Image.open(src) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
    print(dst, os.path.getsize(dst), "bytes")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--params", help="generator params file (default: the pretrained model)")
    p.add_argument("--example", default="kwentar_106.jpg", help="example photo to restore")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top

    deblurrer = Deblurrer.from_params(args.params) if args.params else Deblurrer.pretrained()
    os.makedirs(DOCS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="deblurgan_screenshots_")
    outputs = app.Outputs()
    demo = app.build_app(deblurrer, outputs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = app.launch(demo, "127.0.0.1", port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.locator("#photo-in input[type=file]").set_input_files(
                os.path.join(app.EXAMPLES_DIR, args.example)
            )
            page.locator("#download").wait_for(state="visible", timeout=600_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=os.path.join(work, "app.png"), full_page=True)

            out = os.path.join(work, "eval")
            model = ["--params", args.params] if args.params else []  # default: pretrained
            evaluate.main(
                model
                + [
                    "--data",
                    "demo",
                    "--out",
                    out,
                    "--save-images",
                    "--max-images",
                    "3",
                    "--noprogress",
                    "--metrics",
                    "psnr,ssim",
                ]
            )
            page = browser.new_page(viewport=VIEWPORT)
            page.goto("file://" + os.path.join(out, "index.html"))
            page.locator("#per-image-table").scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            page.screenshot(path=os.path.join(work, "report.png"))
            browser.close()
    finally:
        demo.close(verbose=False)
        outputs.close()
    small_png(os.path.join(work, "app.png"), os.path.join(DOCS, "app.png"))
    small_png(os.path.join(work, "report.png"), os.path.join(DOCS, "report.png"))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
