"""Object detectors behind one interface, and how their boxes are scored against reference boxes.

The DeblurGAN paper (Sec. 5.3) measures deblurring by what it does for a detector: detections on
the sharp image are the reference ("ground truth"), and the detections on the blurred and on the
restored image are scored against them. `detection_benchmark.py` runs that protocol; this module
holds the parts that know nothing of deblurring.

The detector interface. A detector is any callable `detector(image) -> Detections`:
- `image`: (H, W, 3) uint8 RGB (grayscale photos arrive with three equal channels);
- `Detections.boxes`: float32 (N, 4) as x0, y0, x1, y1 in pixels of that image (x1, y1 the far
  edges, so a box's width is x1 - x0); `classes`: (N,) labels, compared by equality (ints or
  strings; stored as strings); `scores`: float32 (N,) confidences, larger is surer.
A plain `(boxes, classes, scores)` tuple is accepted too, so wrapping YOLO or any other model is
a few lines. `make_detector('hog')` gives the built-in OpenCV HOG people detector;
`make_detector('my.module:factory')` imports `factory` and calls it with no arguments to get a
detector (see README.md for a YOLO example).

Matching (`match`): predictions are taken in order of decreasing score; each is matched to the
not yet matched reference box of the same class with the highest IoU, if that IoU is >= the
threshold (0.5 in the paper). Every reference box is matched at most once, so a duplicate
prediction of a found object is a false positive. TP = matched pairs, FP = unmatched
predictions, FN = unmatched reference boxes.

Scores (`Counts`): recall = TP / (TP + FN), precision = TP / (TP + FP), F1 = 2 TP / (2 TP + FP +
FN) (the harmonic mean of the two). Empty cases: with no reference boxes nothing can be missed,
so recall is 1; with no predictions nothing is wrong, so precision is 1; F1 is 1 only when both
are empty (no reference and no prediction: a perfect answer) and 0 when just one side is.
Totals over images add the counts first and divide once (micro average).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Protocol

import numpy as np


class DetectorError(ValueError):
    """A detector that cannot be made (unknown name, failed import) or gives malformed output."""


@dataclasses.dataclass(frozen=True)
class Detections:
    """The boxes a detector found in one image (see the module doc for the conventions)."""

    boxes: np.ndarray  # float32 (N, 4): x0, y0, x1, y1 in pixels
    classes: np.ndarray  # str (N,)
    scores: np.ndarray  # float32 (N,)

    def __post_init__(self):
        boxes = np.asarray(self.boxes, np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)  # [] and (0,) mean "nothing found" too
        classes = np.asarray(self.classes).astype(str).reshape(-1)
        scores = np.asarray(self.scores, np.float32).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise DetectorError(f"boxes must have shape (N, 4), got {boxes.shape}")
        if not len(boxes) == len(classes) == len(scores):
            raise DetectorError(
                f"{len(boxes)} boxes, {len(classes)} classes and {len(scores)} "
                f"scores: one of each per detection expected"
            )
        if not (np.all(np.isfinite(boxes)) and np.all(np.isfinite(scores))):
            raise DetectorError("boxes and scores must be finite")
        # Frozen: the normalised arrays replace the given ones once, here.
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), str), np.zeros((0,), np.float32))

    @classmethod
    def from_output(cls, output: Any) -> Detections:
        """A detector's answer: `Detections` itself or a (boxes, classes, scores) tuple."""
        if isinstance(output, Detections):
            return output
        if isinstance(output, (tuple, list)) and len(output) == 3:
            return cls(*output)
        raise DetectorError(
            f"a detector must return Detections or (boxes, classes, scores), "
            f"got {type(output).__name__}"
        )

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"box": [round(float(v), 2) for v in b], "class": str(c), "score": float(s)}
            for b, c, s in zip(self.boxes, self.classes, self.scores)
        ]


class Detector(Protocol):
    """image (H, W, 3) uint8 RGB -> Detections (or a (boxes, classes, scores) tuple)."""

    def __call__(self, image: np.ndarray) -> Detections | tuple[Any, Any, Any]: ...


# --------------------------------------------------------------------------------------------
# Boxes and matching.


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of (N, 4) and (M, 4) x0, y0, x1, y1 boxes (0 for empty)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=-1)
    area = lambda z: np.prod(np.clip(z[:, 2:] - z[:, :2], 0.0, None), axis=-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best first: a box is dropped when it overlaps
    an already kept, higher-scoring box by IoU > `iou_threshold`."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    iou = box_iou(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if all(iou[i, k] <= iou_threshold for k in kept):
            kept.append(int(i))
    return np.asarray(kept, np.int64)


@dataclasses.dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives; add them up over images."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "recall": self.recall,
            "precision": self.precision,
            "f1": self.f1,
        }


@dataclasses.dataclass(frozen=True)
class Match:
    """Which prediction found which reference box, and the resulting counts."""

    pairs: tuple[tuple[int, int], ...]  # (prediction index, reference index)
    counts: Counts

    @property
    def matched_predictions(self) -> set[int]:
        return {p for p, _ in self.pairs}


def match(reference: Detections, predicted: Detections, iou_threshold: float = 0.5) -> Match:
    """Greedy one-to-one matching by decreasing score, same class, IoU >= threshold."""
    iou = box_iou(predicted.boxes, reference.boxes)
    iou[predicted.classes[:, None] != reference.classes[None, :]] = -1.0
    taken = np.zeros(len(reference), bool)
    pairs = []
    for p in np.argsort(-predicted.scores, kind="stable"):
        if not len(reference):
            break
        candidates = np.where(taken, -1.0, iou[p])
        r = int(np.argmax(candidates))
        if candidates[r] >= iou_threshold:
            taken[r] = True
            pairs.append((int(p), r))
    tp = len(pairs)
    return Match(tuple(pairs), Counts(tp, len(predicted) - tp, len(reference) - tp))


# --------------------------------------------------------------------------------------------
# Detectors.


@dataclasses.dataclass(frozen=True)
class HogPeopleDetector:
    """OpenCV's HOG + linear SVM pedestrian detector (Dalal & Triggs 2005), class 'person'.

    Built into OpenCV (nothing downloads). It slides a 64x128 window over an image pyramid that
    only shrinks the image, and was trained on upright people filling about 48x96 pixels of the
    window with a margin around them. Two things make it find the people in ordinary photos:
    - `border`: the image is framed by a border of its mean colour, `border` x its longer side
      wide, so that windows can reach past the frame: a person cut by the image edge (the
      cameraman's legs, an astronaut's portrait) then still gets a window with the margin it
      was trained with. Boxes are clipped back to the image.
    - `min_side`: an image with a shorter side below it is upscaled to it first, since the
      pyramid never enlarges: people shorter than about 100 pixels are otherwise never found.
    Raw windows (OpenCV's own grouping off) scoring above `min_score` (the SVM margin) go
    through `non_max_suppression` at `nms_iou`. The gradient takes the strongest channel at each
    pixel, so the channel order (RGB or BGR) does not matter.
    """

    min_score: float = 0.3
    nms_iou: float = 0.3
    win_stride: int = 8
    scale: float = 1.05
    border: float = 0.25
    min_side: int = 256
    label: str = "person"

    def __call__(self, image: np.ndarray) -> Detections:
        import cv2

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise DetectorError(
                f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}"
            )
        height, width = image.shape[:2]
        zoom = max(1.0, self.min_side / min(height, width))
        if zoom > 1.0:
            image = cv2.resize(
                image, (round(width * zoom), round(height * zoom)), interpolation=cv2.INTER_CUBIC
            )
        pad = round(self.border * max(image.shape[:2]))
        mean = tuple(float(v) for v in image.reshape(-1, 3).mean(axis=0))
        framed = cv2.copyMakeBorder(
            np.ascontiguousarray(image), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=mean
        )
        windows, scores = _hog().detectMultiScale(
            framed,
            hitThreshold=self.min_score,
            winStride=(self.win_stride,) * 2,
            padding=(0, 0),
            scale=self.scale,
            groupThreshold=0,
        )
        if len(windows) == 0:
            return Detections.empty()
        windows = np.asarray(windows, np.float64).reshape(-1, 4)
        boxes = np.concatenate([windows[:, :2], windows[:, :2] + windows[:, 2:]], axis=1)
        boxes = (boxes - pad) / zoom
        scores = np.asarray(scores, np.float32).reshape(-1)
        keep = non_max_suppression(boxes, scores, self.nms_iou)
        boxes = np.clip(boxes[keep], 0.0, [width, height, width, height])
        return Detections(boxes, np.full(len(keep), self.label), scores[keep])


_HOG_CACHE: list[Any] = []


def _hog():
    """The people HOGDescriptor, made once (setting its SVM copies ~4k coefficients)."""
    import cv2

    if not _HOG_CACHE:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        _HOG_CACHE.append(hog)
    return _HOG_CACHE[0]


# Built-in detectors by name: factories that take no arguments.
DETECTORS: dict[str, Callable[[], Detector]] = {"hog": HogPeopleDetector}


def make_detector(spec: str) -> Detector:
    """A detector from a name of `DETECTORS` or 'module.path:factory' (called with no
    arguments; it must return a callable). DetectorError says what went wrong."""
    if spec in DETECTORS:
        return DETECTORS[spec]()
    if ":" not in spec:
        raise DetectorError(
            f"unknown detector {spec!r}: use one of {sorted(DETECTORS)} or 'module.path:factory'"
        )
    module_name, factory_name = spec.split(":", 1)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the module's own
        raise DetectorError(f"cannot import {module_name!r} for detector {spec!r}: {e}") from None
    for part in factory_name.split("."):
        if not hasattr(target, part):
            raise DetectorError(f"{module_name!r} has no {factory_name!r} (detector {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise DetectorError(f"{spec} is a {type(target).__name__}, not a factory")
    try:
        detector = target()
    except Exception as e:  # a plug-in can fail in any way
        raise DetectorError(f"detector factory {spec} failed: {type(e).__name__}: {e}") from None
    if not callable(detector):
        raise DetectorError(
            f"{spec} returned {type(detector).__name__}, not a callable "
            f"image -> (boxes, classes, scores)"
        )
    return detector


def detect(detector: Detector, image: np.ndarray) -> Detections:
    """Runs a detector on (H, W, 3) uint8 RGB and checks its answer. Whatever a detector (a
    plug-in) raises becomes a DetectorError saying what it raised; MemoryError and Ctrl-C pass."""
    try:
        output = detector(np.ascontiguousarray(image, np.uint8))
    except (DetectorError, MemoryError):
        raise
    except Exception as e:  # a plug-in can fail in any way
        raise DetectorError(f"raised {type(e).__name__}: {e}") from None
    return Detections.from_output(output)
