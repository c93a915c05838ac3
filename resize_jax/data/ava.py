"""AVA-format image-quality data: a ratings file plus a directory of `<image id>.jpg`.

The ratings file (AVA.txt in the AVA distribution) has one image per line, 15 fields
separated by white space:

    index  image_id  c1 c2 ... c10  tag1 tag2  challenge_id

where c_k is how many people rated the image k (scores 1..10), tag1/tag2 are semantic tag
ids (0 = none) and challenge_id the photo challenge. The target is the normalised 10-bin
histogram `c / sum(c)`, as in NIMA and the learned-resizer paper's AVA experiments.

The whole file is one split, "train", kept in file order; `train_split`/`eval_split` slice
it (defaults "train[:90%]" and "train[90%:]"). Lines with the wrong number of fields,
non-integer or negative counts, or no rating at all raise ValueError with the line number.
Images that are missing or unreadable are skipped with a logged count (see `files.py`);
the AVA download is known to lack a few of its listed images.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from resize_jax.data import base, files

NUM_FIELDS = 15


@dataclasses.dataclass(frozen=True)
class Rating:
    """One line of an AVA ratings file."""

    index: int
    image_id: str
    counts: tuple[int, ...]  # scores 1..10
    tags: tuple[int, int]
    challenge: int


def parse_ratings(path: str) -> list[Rating]:
    """Parses an AVA-format ratings file (blank lines are ignored).

    Raises:
      ValueError: if the file is missing or empty, or a line is malformed (with its number).
    """
    if not path or not os.path.isfile(path):
        raise ValueError(f"`ratings_file`={path!r} is not a file.")
    ratings = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}, line {number}"
            if len(fields) != NUM_FIELDS:
                raise ValueError(
                    f"{where}: expected {NUM_FIELDS} fields (index, image id, 10 rating counts, "
                    f"2 tag ids, challenge id), got {len(fields)}: {line.strip()!r}."
                )
            try:
                numbers = [int(v) for v in (fields[0], *fields[2:])]
            except ValueError:
                raise ValueError(
                    f"{where}: the index, counts, tags and challenge must be integers: "
                    f"{line.strip()!r}."
                ) from None
            image_id = fields[1]
            if (
                image_id in (".", "..")
                or os.path.basename(image_id) != image_id
                or (os.sep != "/" and "/" in image_id)
            ):
                # `<image_dir>/<id>.jpg` must stay inside image_dir: "../x" or "/abs/x" would
                # read a file from anywhere.
                raise ValueError(
                    f"{where}: the image id must be a file name inside `image_dir` (no path "
                    f"separator, not '.' or '..'), got {image_id!r}."
                )
            counts = tuple(numbers[1 : 1 + base.AVA_BINS])
            if min(counts) < 0 or sum(counts) == 0:
                raise ValueError(
                    f"{where}: rating counts must be non-negative with at least one rating, "
                    f"got {counts}."
                )
            ratings.append(
                Rating(numbers[0], image_id, counts, (numbers[11], numbers[12]), numbers[13])
            )
    if not ratings:
        raise ValueError(f"`ratings_file`={path!r} holds no rating line.")
    return ratings


def write_ratings(path: str, ratings: list[Rating]) -> None:
    """Writes `ratings` in the AVA format (the inverse of `parse_ratings`)."""
    with open(path, "w") as f:
        for r in ratings:
            fields = (r.index, r.image_id, *r.counts, *r.tags, r.challenge)
            f.write(" ".join(str(v) for v in fields) + "\n")


class AvaSource(files.ListSource):
    """Image quality from an AVA-format ratings file and its image directory."""

    task = "image_quality"
    num_classes = base.AVA_BINS

    def __init__(self, ratings_file: str | None, image_dir: str | None):
        ratings = parse_ratings(ratings_file)
        if not image_dir or not os.path.isdir(image_dir):
            raise ValueError(f"`image_dir`={image_dir!r} is not a directory (AVA images).")
        paths = [os.path.join(image_dir, f"{r.image_id}.jpg") for r in ratings]
        headers = files.image_headers(paths)
        files.log_skipped([p for p, h in zip(paths, headers, strict=True) if h is None], image_dir)
        keep = [i for i, h in enumerate(headers) if h is not None]
        if not keep:
            raise ValueError(
                f"None of the {len(paths)} images of `ratings_file`={ratings_file!r} is a "
                f"readable file in `image_dir`={image_dir!r} (expected <image id>.jpg, e.g. "
                f"{paths[0]})."
            )
        counts = np.asarray([ratings[i].counts for i in keep], np.float32)
        super().__init__({"train": ([paths[i] for i in keep], list(counts))})
