"""Every page of the project opened in a real browser: Playwright drives the system's Chromium
(`apt-get install chromium`, which .ci/run does), with every request that leaves this machine
failed, so the pages are also shown to work offline.

- The web app (deblurgan_jax/app.py), started once on a free port with a tiny generator: a
  blurred photo uploaded, the result shown and downloaded, its pixels equal to `Deblurrer`'s
  on the same photo; bad files give messages and the app keeps serving; two users at once are
  both served (the queue); a video comes back playable. Screenshots go to the test's folder.
- The evaluation report (`evaluate --save-images`, OUT/index.html) and the deblur command's
  (`deblur --report`): every image loads, the per-image table sorts by clicking a header, the
  before/after slider moves, no console errors.
These skip, with the reason, only when no Chromium binary can be found."""

import shutil
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from app_inputs import H, W, bad_photos, blurred_photo, free_port, tiny_params_file
from deblurgan_jax import Deblurrer
from deblurgan_jax.commands import app, deblur, evaluate

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary found (apt-get install chromium; .ci/run installs it)",
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
RESULT_TIMEOUT_MS = 180_000  # a first photo compiles the model for its size (slow on 2 cores)


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("file", "data", "blob") or parts.hostname in LOCAL_HOSTS


class Pages:
    """Opens pages whose non-local requests fail, recording them and any console error."""

    def __init__(self, browser):
        self.context = browser.new_context(
            accept_downloads=True, viewport={"width": 1280, "height": 900}
        )
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route):
        if is_local(route.request.url):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def new(self):
        page = self.context.new_page()
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and self.errors.append(f"console: {m.text} ({m.location.get('url', '')})")
            ),
        )
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def pages(browser):
    """Pages for one test; after it, nothing was fetched from outside and nothing failed."""
    opened = Pages(browser)
    yield opened
    opened.context.close()
    assert opened.blocked == [], "requests that left this machine"
    assert opened.errors == [], "errors in the browser console"


def wait_for_images(page, selector: str = "img") -> int:
    """Scrolls every matching image into view (lazy ones load then), waits until each has
    loaded and checks it decoded (naturalWidth > 0); returns how many there are."""
    images = page.locator(selector)
    images.first.wait_for(state="attached", timeout=60_000)  # pages render after loading
    count = images.count()
    for i in range(count):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=image.element_handle())
        width = image.evaluate("img => img.naturalWidth")
        assert width > 0, f"image {image.get_attribute('src')} did not load"
    return count


# --------------------------------------------------------------------------------------------
# The web app.


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    """(url, params file) of the app serving a tiny generator on a free port, in a thread of
    this process (one start for the module)."""
    params_file = tiny_params_file(tmp_path_factory.mktemp("params"))
    outputs = app.Outputs()
    demo = app.build_app(Deblurrer.from_params(params_file), outputs)
    url = app.launch(demo, "127.0.0.1", free_port())
    yield url, params_file
    demo.close(verbose=False)
    outputs.close()


def upload(page, component: str, path) -> None:
    page.locator(f"#{component} input[type=file]").set_input_files(str(path))


def outcome(page, component: str = "photo-status") -> str:
    return page.locator(f"#{component} textarea").input_value()


def test_app_photo_round_trip_and_bad_file(served_app, pages, tmp_path):
    url, params_file = served_app
    photo = blurred_photo()
    Image.fromarray(photo).save(tmp_path / "shaky.png")
    bad = bad_photos(tmp_path)

    page = pages.new()
    page.goto(url)
    assert wait_for_images(page, "#examples img") == len(app.example_photos())
    upload(page, "photo-in", tmp_path / "shaky.png")
    page.locator("#download").wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    assert outcome(page).startswith(f"shaky.png: {W}x{H} pixels restored in")
    assert wait_for_images(page, "#slider img") == 2
    assert wait_for_images(page, "#zoom img") == 1
    page.screenshot(path=str(tmp_path / "app_restored.png"), full_page=True)
    with page.expect_download() as download:
        page.locator("#download").click()
    assert download.value.suggested_filename == "shaky_deblurred.png"
    download.value.save_as(str(tmp_path / "downloaded.png"))
    downloaded = np.asarray(Image.open(tmp_path / "downloaded.png"))
    np.testing.assert_array_equal(downloaded, Deblurrer.from_params(params_file)(photo))

    # Bad files, each in a fresh page: a message where the result would be, no download.
    for name in ("cut.jpg", "notes.txt", "empty.png", "bomb.png"):
        page = pages.new()
        page.goto(url)
        upload(page, "photo-in", tmp_path / name)
        page.wait_for_function(
            "name => (document.querySelector('#photo-status textarea') || {}).value"
            "?.startsWith('error: ' + name)",
            arg=name,
            timeout=RESULT_TIMEOUT_MS,
        )
        assert bad[name] in outcome(page)
        assert not page.locator("#download").is_visible()
        if name == "cut.jpg":
            page.screenshot(path=str(tmp_path / "app_error.png"), full_page=True)
    assert (tmp_path / "app_restored.png").stat().st_size > 0
    assert (tmp_path / "app_error.png").stat().st_size > 0


def test_app_serves_two_users_one_after_the_other(served_app, pages, tmp_path):
    url, _ = served_app
    photos = [tmp_path / "user0.png", tmp_path / "user1.png"]
    Image.fromarray(blurred_photo()).save(photos[0])
    Image.fromarray(blurred_photo()[::-1]).save(photos[1])
    users = [pages.new() for _ in photos]
    for page in users:
        page.goto(url)
    for page, path in zip(users, photos):  # both requests before either result
        upload(page, "photo-in", path)
    for i, page in enumerate(users):
        page.locator("#download").wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
        assert outcome(page).startswith(f"user{i}.png: {W}x{H} pixels restored in")


def test_app_video_comes_back_playable(served_app, pages, tmp_path):
    import cv2

    url, _ = served_app
    src = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(
        str(src), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 12, (64, 48)
    )
    frame = blurred_photo()[:48, :64, ::-1]
    for i in range(6):
        writer.write(np.ascontiguousarray(np.roll(frame, i, axis=1)))
    writer.release()
    page = pages.new()
    page.goto(url)
    page.get_by_role("tab", name="Video").click()
    upload(page, "video-in", src)
    page.wait_for_function(
        "() => (document.querySelector('#video-status textarea') || {}).value"
        "?.startsWith('walk.avi: 6 frames of 64x48')",
        timeout=RESULT_TIMEOUT_MS,
    )
    player = page.locator("#video-out video")
    player.wait_for(timeout=30_000)
    # Chromium decodes the restored WebM: its metadata (size, duration) loads.
    page.wait_for_function(
        "v => v.readyState >= 1 && v.videoWidth === 64", arg=player.element_handle(), timeout=30_000
    )
    assert player.evaluate("v => v.duration") > 0

    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    page = pages.new()
    page.goto(url)
    page.get_by_role("tab", name="Video").click()
    upload(page, "video-in", tmp_path / "text.mp4")
    page.wait_for_function(
        "() => (document.querySelector('#video-status textarea') || {}).value"
        "?.startsWith('error: text.mp4')",
        timeout=RESULT_TIMEOUT_MS,
    )


# --------------------------------------------------------------------------------------------
# The evaluation report.


@pytest.fixture(scope="module")
def evaluation_report(tmp_path_factory):
    """OUT/index.html of `evaluate --save-images` on two demo photos with a tiny generator."""
    root = tmp_path_factory.mktemp("report")
    params_file = tiny_params_file(root)
    out = root / "eval"
    assert (
        evaluate.main(
            [
                "--params",
                params_file,
                "--data",
                "demo",
                "--out",
                str(out),
                "--save-images",
                "--max-images",
                "2",
                "--metrics",
                "psnr,ssim",
                "--noprogress",
            ]
        )
        == 0
    )
    return out / "index.html"


def check_sorting(page, table: str = "#per-image-table") -> None:
    """Clicking a numeric header (the last) sorts the rows by it, ascending then descending."""
    header = page.locator(f"{table} thead th[data-type=number]").last
    column = header.evaluate("th => th.cellIndex")

    def values():
        return page.locator(f"{table} tbody tr").evaluate_all(
            "(rows, col) => rows.map(r => parseFloat(r.cells[col].getAttribute('data-v')))", column
        )

    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = values()
    assert len(ascending) >= 2 and ascending == sorted(ascending)
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert values() == sorted(ascending, reverse=True)


def check_slider(page) -> None:
    """The range input and a press on the picture both move the before/after split."""
    box = page.locator(".cmp").first
    box.scroll_into_view_if_needed()
    page.locator(".cmp-range").first.fill("30")
    assert box.evaluate("b => b.style.getPropertyValue('--pos')") == "30%"
    area = box.bounding_box()
    page.mouse.click(area["x"] + area["width"] * 0.75, area["y"] + area["height"] / 2)
    position = float(box.evaluate("b => b.style.getPropertyValue('--pos')").rstrip("%"))
    assert abs(position - 75) < 1.5


def test_evaluation_report_in_the_browser(evaluation_report, pages, tmp_path):
    page = pages.new()
    page.goto(evaluation_report.as_uri())
    assert wait_for_images(page) == 2 * 8  # per image: 3 pictures, 2 in the slider, 3 crops
    check_sorting(page)
    check_slider(page)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)


# --------------------------------------------------------------------------------------------
# The deblur command's report.


@pytest.fixture(scope="module")
def deblur_report(tmp_path_factory):
    """OUT/index.html of `deblur --report` on two photos (no sharp references)."""
    root = tmp_path_factory.mktemp("deblur_report")
    params_file = tiny_params_file(root)
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(blurred_photo()).save(photos / "shaky.png")
    Image.fromarray(blurred_photo()[::-1, ::-1]).save(photos / "upside down.jpg", quality=90)
    out = root / "sharp"
    assert (
        deblur.main(
            ["--params", params_file, str(photos), "--out", str(out), "--report", "--noprogress"]
        )
        == 0
    )
    return out / "index.html"


def test_deblur_report_in_the_browser(deblur_report, pages, tmp_path):
    page = pages.new()
    page.goto(deblur_report.as_uri())
    assert wait_for_images(page) == 2 * 6  # per photo: 2 pictures, 2 in the slider, 2 crops
    check_sorting(page)
    check_slider(page)
    page.screenshot(path=str(tmp_path / "deblur_report.png"), full_page=True)
