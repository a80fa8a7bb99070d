"""A tensorflow_datasets builder for the GoPro deblurring dataset (Nah et al., CVPR 2017).

TFDS 4.9 has no GoPro builder and GoPro cannot be downloaded automatically (it is served from a
web page / cloud drive), so this builder reads a manually downloaded copy from `manual_dir`:

    import tensorflow_datasets as tfds
    from deblurgan_jax.data import tfds_gopro  # registers 'gopro'
    builder = tfds_gopro.Gopro(data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/gopro_manual"))
    train = builder.as_dataset(split="train")  # {'blurred', 'sharp', 'name', 'sequence'}

Examples keep the original PNG bytes (no re-encoding); images decode to uint8 (H, W, 3).
Pairs are listed and checked like the folder pipeline (`sources.list_gopro` + `sources.scan_table`):
a size mismatch is a `DataError`, an unreadable file is skipped and logged.
"""

from __future__ import annotations

import os

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from deblurgan_jax.data import sources

_HOMEPAGE = "https://seungjunnah.github.io/Datasets/gopro"
_CITATION = """\
@inproceedings{nah2017deep,
  title={Deep Multi-Scale Convolutional Neural Network for Dynamic Scene Deblurring},
  author={Nah, Seungjun and Kim, Tae Hyun and Lee, Kyoung Mu},
  booktitle={CVPR},
  year={2017}
}"""


def find_gopro_root(manual_dir: str) -> str:
    """The folder holding train/ and test/: manual_dir itself or manual_dir/GoPro_Large."""
    for candidate in (manual_dir, os.path.join(manual_dir, "GoPro_Large")):
        if all(os.path.isdir(os.path.join(candidate, s)) for s in ("train", "test")):
            return candidate
    raise sources.DataError(
        f"no GoPro train/ and test/ folders in {manual_dir!r} or "
        f"{os.path.join(manual_dir, 'GoPro_Large')!r}; expected layout: "
        f"{sources.LAYOUTS['gopro']}. {Gopro.MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )


class Gopro(tfds.core.GeneratorBasedBuilder):
    """GoPro_Large: 3214 blurred/sharp 1280x720 pairs (2103 train, 1111 test) in 33 sequences."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: GoPro_Large blur/sharp pairs (not blur_gamma)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download GoPro_Large.zip (about 9 GB) from https://seungjunnah.github.io/Datasets/gopro (the
"GOPRO_Large" link) and unzip it into the manual_dir, so that either
  <manual_dir>/GoPro_Large/{train,test}/<sequence>/{blur,sharp}/<frame>.png
or
  <manual_dir>/{train,test}/<sequence>/{blur,sharp}/<frame>.png
exists. The blur_gamma/ folders are not used (DeblurGAN trains on blur/).
"""

    # TFDS 4.9.10 finds a builder's folder (for checksums.tsv) through `importlib_resources`, a
    # package it does not install, and fails for any builder living in a package. The builder's
    # own file is what that lookup would return.
    code_path = epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Pairs of motion-blurred frames (averages of consecutive 240 fps GoPro "
                "frames) and their sharp middle frame."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "blurred": tfds.features.Image(shape=(None, None, 3)),
                    "sharp": tfds.features.Image(shape=(None, None, 3)),
                    "sequence": tfds.features.Text(),
                    "name": tfds.features.Text(),  # '<sequence>/<frame>.png'
                }
            ),
            supervised_keys=("blurred", "sharp"),
            homepage=_HOMEPAGE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = find_gopro_root(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(root, split) for split in ("train", "test")}

    def _generate_examples(self, root: str, split: str):
        triples, unmatched = sources.list_gopro(root, split)
        if unmatched:
            logging.warning(
                "%d blurred frame(s) without a sharp twin are left out, e.g. %s",
                len(unmatched),
                unmatched[:3],
            )
        table = sources.scan_table(
            "pair", triples, os.path.join(root, split), "gopro", sources.DataStats()
        )
        for record in table.records:
            yield (
                record.name,
                {
                    "blurred": record.blurred_path,
                    "sharp": record.sharp_path,
                    "sequence": record.name.split("/")[0],
                    "name": record.name,
                },
            )
