"""The detection benchmark: IoU, matching and scores on hand-made boxes, the detector interface
(built-in HOG and a plug-in), the built people set and the command end to end (tiny generator)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from deblurgan_jax.commands import blur, detection_benchmark
from deblurgan_jax.evaluation import detection
from deblurgan_jax.evaluation.detection import Counts, Detections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dets(boxes, classes=None, scores=None):
    n = len(boxes)
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        ["person"] * n if classes is None else classes,
        np.linspace(1.0, 0.5, n) if scores is None else scores,
    )


# --------------------------------------------------------------------------------------------
# IoU, matching, scores.


def test_box_iou_known_values():
    a = [[0, 0, 10, 10]]
    b = [[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 5, 10], [20, 20, 30, 30], [3, 3, 3, 8]]
    np.testing.assert_allclose(detection.box_iou(a, b), [[1.0, 50 / 150, 0.5, 0.0, 0.0]])
    assert detection.box_iou(np.zeros((0, 4)), b).shape == (0, 5)


@pytest.mark.parametrize("bottom, matched", [(49, False), (50, True), (51, True)])
def test_iou_threshold_is_inclusive_at_one_half(bottom, matched):
    reference = _dets([[0, 0, 100, 100]])
    predicted = _dets([[0, 0, 100, bottom]])  # IoU = bottom / 100
    counts = detection.match(reference, predicted, 0.5).counts
    assert counts == (Counts(1, 0, 0) if matched else Counts(0, 1, 1))


def test_duplicate_detections_of_one_object_count_once():
    reference = _dets([[0, 0, 10, 20]])
    predicted = _dets([[1, 0, 10, 20], [0, 0, 10, 20]], scores=[0.4, 0.9])
    m = detection.match(reference, predicted)
    assert m.pairs == ((1, 0),)  # the higher score takes the reference box
    assert m.counts == Counts(tp=1, fp=1, fn=0)
    assert (m.counts.recall, m.counts.precision) == (1.0, 0.5)
    assert m.counts.f1 == pytest.approx(2 / 3)


def test_class_must_agree():
    reference = _dets([[0, 0, 10, 20], [50, 0, 60, 20]], classes=["person", "car"])
    predicted = _dets([[0, 0, 10, 20], [50, 0, 60, 20]], classes=["car", "car"])
    assert detection.match(reference, predicted).counts == Counts(tp=1, fp=1, fn=1)
    # Integer labels are compared as labels too.
    ints = Detections([[0, 0, 10, 20]], [3], [0.5])
    assert detection.match(ints, Detections([[0, 0, 10, 20]], np.array([3]), [0.7])).counts.tp == 1
    assert detection.match(ints, Detections([[0, 0, 10, 20]], [4], [0.7])).counts.tp == 0


def test_matching_is_greedy_by_score():
    # The surest prediction takes the reference box it overlaps most (the right one), leaving
    # the second prediction without a partner, though a one-to-one optimum would match both.
    reference = _dets([[0, 0, 10, 10], [2, 0, 12, 10]])
    # IoU: prediction 0 with references 0.74 and 0.90; prediction 1 with them 0.33 and 0.54.
    predicted = _dets([[1.5, 0, 11.5, 10], [5, 0, 15, 10]], scores=[0.9, 0.8])
    m = detection.match(reference, predicted)
    assert m.pairs == ((0, 1),)
    assert m.counts == Counts(tp=1, fp=1, fn=1)


@pytest.mark.parametrize(
    "n_ref, n_pred, recall, precision, f1",
    [
        (0, 0, 1.0, 1.0, 1.0),  # nothing to find, nothing found: perfect
        (2, 0, 0.0, 1.0, 0.0),  # missed everything, said nothing wrong
        (0, 3, 1.0, 0.0, 0.0),  # nothing to find, all false alarms
    ],
)
def test_empty_cases(n_ref, n_pred, recall, precision, f1):
    reference = _dets([[0, 0, 10, 10]] * n_ref)
    predicted = _dets([[50, 50, 60, 60]] * n_pred)
    counts = detection.match(reference, predicted).counts
    assert (counts.recall, counts.precision, counts.f1) == (recall, precision, f1)


def test_overall_scores_sum_counts_over_images():
    total = sum([Counts(tp=1, fn=1), Counts(fp=2), Counts()], Counts())
    assert total == Counts(tp=1, fp=2, fn=1)
    assert (total.recall, total.precision, total.f1) == (0.5, 1 / 3, 0.4)


def test_non_max_suppression():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10], [0, 0, 10, 10]]
    keep = detection.non_max_suppression(boxes, [0.5, 0.9, 0.7, 0.1], iou_threshold=0.3)
    assert keep.tolist() == [1, 2]


def test_detections_are_checked():
    assert len(Detections.from_output(([], [], []))) == 0
    got = Detections.from_output(([[1, 2, 3, 4]], [7], [0.5]))
    assert got.classes.tolist() == ["7"] and got.boxes.dtype == np.float32
    with pytest.raises(detection.DetectorError, match="one of each"):
        Detections([[1, 2, 3, 4]], ["a", "b"], [0.5])
    with pytest.raises(detection.DetectorError, match=r"\(N, 4\)"):
        Detections([[1, 2, 3]], ["a"], [0.5])
    with pytest.raises(detection.DetectorError, match="must return"):
        Detections.from_output({"boxes": []})


# --------------------------------------------------------------------------------------------
# Detectors.


def test_hog_finds_the_cameraman_and_nothing_in_a_flat_image():
    hog = detection.make_detector("hog")
    camera = np.repeat(skimage.data.camera()[::2, ::2, None], 3, axis=-1)
    found = detection.detect(hog, camera)
    assert len(found) >= 1 and set(found.classes) == {"person"}
    assert np.all(found.boxes[:, 2:] > found.boxes[:, :2])
    assert np.all((found.boxes >= 0) & (found.boxes <= 256))
    assert len(detection.detect(hog, np.full((40, 30, 3), 128, np.uint8))) == 0
    # Deterministic: the benchmark's sharp-vs-sharp sanity check relies on it.
    again = detection.detect(hog, camera)
    np.testing.assert_array_equal(found.boxes, again.boxes)


PLUGIN = '''
import numpy as np

def corner_box():
    """A detector that always finds one 'thing' (class 1) in the top-left quarter."""
    def detect(image):
        h, w = image.shape[:2]
        return np.array([[0, 0, w / 2, h / 2]]), np.array([1]), np.array([0.9])
    return detect

def fixed():
    """One box whatever the image (fast)."""
    return lambda image: ([[0, 0, 8, 8]], ["thing"], [1.0])

NOT_A_FACTORY = 3

def broken():
    raise RuntimeError("weights missing")
'''


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_detectors.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_detectors"


def test_plugin_detectors(plugin_module):
    detector = detection.make_detector(f"{plugin_module}:corner_box")
    found = detection.detect(detector, np.zeros((20, 40, 3), np.uint8))
    np.testing.assert_array_equal(found.boxes, [[0, 0, 20, 10]])
    assert found.classes.tolist() == ["1"]
    for spec, message in [
        ("yolo", "unknown detector"),
        ("no_such_module:f", "cannot import"),
        (f"{plugin_module}:missing", "has no"),
        (f"{plugin_module}:NOT_A_FACTORY", "not a factory"),
        (f"{plugin_module}:broken", "weights missing"),
    ]:
        with pytest.raises(detection.DetectorError, match=message):
            detection.make_detector(spec)


# --------------------------------------------------------------------------------------------
# The command, end to end.


@pytest.fixture(scope="module")
def params_file(tiny_generator_file):
    # Starts at the identity (zero head): restored == blurred, so their scores must agree.
    return tiny_generator_file(zero_init_head=True)


@pytest.fixture(scope="module")
def report(params_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    code = detection_benchmark.main(
        ["--params", params_file, "--out", str(out), "--save-images", "--noprogress"]
    )
    return code, out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_built_set_with_hog(report):
    code, out = report
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detector"] == "hog" and summary["iou_threshold"] == 0.5
    assert set(summary["overall"]) == {"blurred", "restored", "sharp"}
    assert summary["num_images"] == 8
    sharp = summary["overall"]["sharp"]
    assert sharp["recall"] == 1.0 and sharp["precision"] == 1.0 and sharp["fn"] == 0
    # The identity generator: restored images are the blurred ones, and so are their scores.
    assert summary["overall"]["restored"] == summary["overall"]["blurred"]
    assert summary["psnr"]["restored"] == pytest.approx(summary["psnr"]["blurred"])
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 8
    # Every sharp photo of the set shows the detector at least one person.
    assert all(int(r["reference"]) >= 1 for r in rows)
    assert sum(int(r["reference"]) for r in rows) == summary["reference_detections"]
    for condition in ("blurred", "restored", "sharp"):
        assert {f"{condition}_{k}" for k in ("tp", "fp", "fn", "recall", "precision", "f1")} <= set(
            rows[0]
        )
    boxes = json.loads((out / "detections.json").read_text())
    assert set(boxes) == {r["name"] for r in rows}
    first = boxes[rows[0]["name"]]
    assert set(first) == {"reference", "blurred", "restored", "sharp"}
    assert first["reference"][0]["class"] == "person"
    picture = Image.open(out / "pictures" / "bundled" / "camera_50.png")
    assert picture.size == (3 * 256, 256)


def test_built_set_is_a_gopro_split_made_like_blur_make_dataset(report, tmp_path):
    _, out = report
    folder = out / "data" / "test" / "bundled"
    names = sorted(os.listdir(folder / "sharp"))
    assert names == sorted(os.listdir(folder / "blur")) and len(names) == 8
    assert json.loads((out / "data" / "set.json").read_text())["blur"]["max_len"] == 16.0
    again = tmp_path / "again"
    assert (
        blur.main(
            [
                "make-dataset",
                "--sharp",
                str(folder / "sharp"),
                "--out",
                str(again),
                "--seed",
                "0",
                "--canvas",
                "32",
                "--max-len",
                "16",
                "--expl",
                "0.005",
            ]
        )
        == 0
    )
    for name in names:
        assert (again / "blur" / name).read_bytes() == (folder / "blur" / name).read_bytes()


def test_reusing_the_set_with_a_plugin_detector(
    report, params_file, plugin_module, tmp_path, capsys
):
    _, out = report
    out2 = tmp_path / "plugin"
    code = detection_benchmark.main(
        [
            "--params",
            params_file,
            "--data",
            str(out / "data"),
            "--detector",
            f"{plugin_module}:corner_box",
            "--max-images",
            "2",
            "--out",
            str(out2),
            "--noprogress",
        ]
    )
    assert code == 0
    assert "overall (micro)" in capsys.readouterr().out
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["detector"] == f"{plugin_module}:corner_box" and summary["num_images"] == 2
    for condition in ("blurred", "restored", "sharp"):
        assert summary["overall"][condition]["recall"] == 1.0
    assert not (out2 / "data").exists()  # a given set is read, never rebuilt


def test_user_photos_join_the_set_and_bad_files_are_listed(
    params_file, plugin_module, tmp_path, capsys
):
    people = tmp_path / "people" / "sub"
    people.mkdir(parents=True)
    Image.fromarray(skimage.data.astronaut()[::4, ::4]).save(people / "me.jpg")
    (people / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    out = tmp_path / "out"
    code = detection_benchmark.main(
        [
            "--params",
            params_file,
            "--people",
            str(tmp_path / "people"),
            "--detector",
            f"{plugin_module}:fixed",
            "--out",
            str(out),
            "--noprogress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "broken.png" in err
    assert (out / "data" / "test" / "people" / "sharp" / "sub__me.png").exists()
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 9 and rows[-1]["name"] == "people/sub__me.png"
    assert json.loads((out / "summary.json").read_text())["skipped"]


@pytest.mark.parametrize("case", ["no_data", "no_params", "bad_detector", "not_empty"])
def test_errors_are_messages(case, params_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--params", params_file, "--out", str(out), "--noprogress"]
    if case == "no_data":
        args += ["--data", str(tmp_path / "missing")]
    elif case == "no_params":
        args[1] = str(tmp_path / "missing.msgpack")
    elif case == "bad_detector":
        args += ["--detector", "yolo"]
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    # A missing input fails the run (1); an unknown detector or a non-empty --out is a usage
    # error (2).
    want = {"no_data": 1, "no_params": 1, "bad_detector": 2, "not_empty": 2}[case]
    assert detection_benchmark.main(args) == want
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    if case == "not_empty":
        assert os.listdir(out) == ["keep.txt"]
    else:
        assert not out.exists()


def test_command_line_error_has_no_traceback(params_file, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deblurgan_jax.detection_benchmark",
            "--params",
            params_file,
            "--data",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1
    assert "error: --data folder not found" in r.stderr and "Traceback" not in r.stderr
