"""What the generated TFDS datasets share: sizes, a `tiny` variant, two generated splits.

A dataset subclasses `GeneratedBuilder`, names its features and writes one example per
`(split, index)`; the builder makes both splits in parallel (`render.generate`), each example
from its own seed, so any example can be regenerated alone and two builds are identical.
"""

from __future__ import annotations

import dataclasses
import sys

import tensorflow_datasets as tfds

from resize_jax.data.generated import render

SPLIT_SEEDS = {"train": 0, "test": 1}


@dataclasses.dataclass
class GeneratedConfig(tfds.core.BuilderConfig):
    """Sizes of a generated dataset's variant."""

    image_size: int = 128
    num_train: int = 0
    num_test: int = 0


def default_and_tiny(default: tuple[int, int], tiny: tuple[int, int]) -> list[GeneratedConfig]:
    """The configs `default` and `tiny` (for tests), each as (num_train, num_test) at 128×128."""

    def config(name, sizes, note=""):
        return GeneratedConfig(
            name=name,
            description=f"128×128, {sizes[0]} train / {sizes[1]} test{note}.",
            num_train=sizes[0],
            num_test=sizes[1],
        )

    return [config("default", default), config("tiny", tiny, " (tests)")]


class GeneratedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the generated datasets (not a dataset itself: TFDS does not register it).

    Subclasses set `BUILDER_CONFIGS` (`default_and_tiny(...)`), `SEED`, `IMAGE_KEYS` (the
    features written as PNG), optionally `SUPERVISED_KEYS`, and define `features(size)` and
    `make_example(seed, index, size)`. The description is the subclass module's docstring.

    A classification set with boxes needs neither: it sets `CLASS_NAMES`, `BOX_KEYS` (the
    f32[4] (ymin, xmin, ymax, xmax) entries of its examples, written as TFDS boxes) and
    `generate` (`staticmethod` of its `make_example(seed, size)`).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012 (TFDS class attribute)
    SEED: int = 0
    IMAGE_KEYS: tuple[str, ...] = ("image",)
    SUPERVISED_KEYS: tuple[str, str] | None = None
    CLASS_NAMES: tuple[str, ...] = ()
    BOX_KEYS: tuple[str, ...] = ()

    def features(self, size: int) -> dict:
        """The feature connectors of one example at `size`×`size`."""
        if not self.CLASS_NAMES:
            raise NotImplementedError
        return {
            "image": tfds.features.Image(shape=(size, size, 3)),
            "label": tfds.features.ClassLabel(names=self.CLASS_NAMES),
            **{key: tfds.features.BBoxFeature() for key in self.BOX_KEYS},
        }

    def make_example(self, seed: tuple[int, ...], index: int, size: int) -> dict:
        """Example `index` of a split, from `seed` = (SEED, split seed, index)."""
        del index  # In the seed already.
        example = self.generate(seed, size)
        for key in self.BOX_KEYS:
            example[key] = tfds.features.BBox(*example[key].tolist())
        return example

    @staticmethod
    def generate(seed: tuple[int, ...], size: int) -> dict:
        """The example of `seed` (the default `make_example`'s source)."""
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=sys.modules[type(self).__module__].__doc__,
            features=tfds.features.FeaturesDict(self.features(self.builder_config.image_size)),
            supervised_keys=self.SUPERVISED_KEYS,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: everything is generated.
        cfg = self.builder_config
        return {
            "train": self._generate_examples("train", cfg.num_train),
            "test": self._generate_examples("test", cfg.num_test),
        }

    def _generate_examples(self, split: str, count: int):
        size = self.builder_config.image_size
        split_seed = SPLIT_SEEDS[split]
        return render.generate(
            lambda index: self.make_example((self.SEED, split_seed, index), index, size),
            count,
            self.IMAGE_KEYS,
        )
