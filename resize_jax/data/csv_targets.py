"""The user's own regression data: images plus one CSV of targets per split (`name="csv"`).

Layout: `root/<split>.csv` (e.g. `train.csv`, `test.csv`; every `*.csv` in `root` is a split
named after its file), each with a header row whose first column is `image` and whose other
columns name the D targets, then one row per image:

    image,x,y
    faces/0001.png,-3.2,-7.5
    faces/0002.jpg,1.25,-11.0

Image paths are relative to the CSV's directory (absolute paths work too); PNG or JPEG of
any size. The targets are D finite decimal numbers, e.g. a gaze point on the screen in
centimetres. Every split must have the same header.

Errors (ValueError, naming the file and line): a missing `root` or no CSV in it; a header
that does not start with `image` or has no target column; a row with the wrong number of
fields; a value that is not a finite number; the same image listed twice in a split; an
image file that does not exist. Files that exist but cannot be read as images are skipped
with a logged count, as in the other file sources (`files.py`).
"""

from __future__ import annotations

import csv
import math
import os

from resize_jax.data import files

IMAGE_COLUMN = "image"


def _number(value: str, where: str, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(
            f"{where}: column {column!r} must be a finite number, got {value.strip()!r}."
        )
    return number


def parse_csv(path: str) -> tuple[tuple[str, ...], list[str], list[tuple[float, ...]]]:
    """Reads one split's CSV: (target names, image paths made absolute, targets).

    Blank lines are ignored. Raises ValueError for each malformed input, with the line.
    """
    directory = os.path.dirname(os.path.abspath(path))
    names: tuple[str, ...] | None = None
    paths, targets, first_line = [], [], {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            number = reader.line_num
            where = f"{path}, line {number}"
            if not row or all(not field.strip() for field in row):
                continue
            fields = [field.strip() for field in row]
            if names is None:
                if fields[0] != IMAGE_COLUMN or len(fields) < 2 or not all(fields[1:]):
                    raise ValueError(
                        f"{where}: the header must be `{IMAGE_COLUMN},<target>,...` with at "
                        f"least one named target column (e.g. `image,x,y`), got {row!r}."
                    )
                names = tuple(fields[1:])
                continue
            if len(fields) != len(names) + 1:
                raise ValueError(
                    f"{where}: expected {len(names) + 1} fields ({IMAGE_COLUMN}, "
                    f"{', '.join(names)}), got {len(fields)}: {','.join(row)!r}."
                )
            if not fields[0]:
                raise ValueError(f"{where}: the {IMAGE_COLUMN!r} field is empty.")
            image = os.path.normpath(os.path.join(directory, fields[0]))
            if image in first_line:
                raise ValueError(
                    f"{where}: image {fields[0]!r} is listed twice in this split (first on "
                    f"line {first_line[image]})."
                )
            first_line[image] = number
            if not os.path.isfile(image):
                raise ValueError(f"{where}: image file {image!r} does not exist.")
            targets.append(
                tuple(_number(v, where, c) for v, c in zip(fields[1:], names, strict=True))
            )
            paths.append(image)
    if names is None:
        raise ValueError(f"{path} is empty: expected a header `image,x,y` and one row per image.")
    if not paths:
        raise ValueError(f"{path} has a header but no image row.")
    return names, paths, targets


class CsvSource(files.ListSource):
    """Regression from `root/<split>.csv` files (see the module docstring)."""

    task = "regression"

    def __init__(self, root: str | None):
        if not root:
            raise ValueError(f"`root` must be set for dataset 'csv' (a folder), got {root!r}.")
        root = os.path.expanduser(root)
        if not os.path.isdir(root):
            raise ValueError(f"`root`={root!r} is not a directory (dataset 'csv').")
        csv_files = sorted(f for f in os.listdir(root) if f.endswith(".csv"))
        if not csv_files:
            raise ValueError(
                f"`root`={root!r} holds no <split>.csv file; expected e.g. train.csv and "
                f"test.csv with a header `image,x,y` (found {sorted(os.listdir(root))[:10]})."
            )
        examples, header = {}, None
        for name in csv_files:
            path = os.path.join(root, name)
            names, paths, targets = parse_csv(path)
            if header is None:
                header = (name, names)
            elif names != header[1]:
                raise ValueError(
                    f"{path}: target columns {list(names)} differ from {header[0]}'s "
                    f"{list(header[1])}; every split needs the same columns."
                )
            readable = files.image_headers(paths)
            files.log_skipped([p for p, h in zip(paths, readable, strict=True) if h is None], path)
            keep = [i for i, h in enumerate(readable) if h is not None]
            if not keep:
                raise ValueError(f"{path}: none of its {len(paths)} images is readable.")
            examples[os.path.splitext(name)[0]] = (
                [paths[i] for i in keep],
                [targets[i] for i in keep],
            )
        self.class_names = header[1]
        self.num_classes = len(header[1])
        super().__init__(examples)
