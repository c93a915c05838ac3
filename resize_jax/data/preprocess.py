"""Per-example preprocessing in TensorFlow: decode, crop, resize to the high-resolution input.

The pipeline delivers the *high-resolution* image (the front-end downsamples), so resizing
here only brings arbitrary source images to the configured `image_size`: bilinear with
antialiasing for images (a plain data-loading resize, unrelated to the front-ends' choice)
and nearest for label maps.

- train, augment "crop_flip": a random resized crop (area fraction in `crop_area_range`,
  aspect ratio in `crop_aspect_range`, as in Inception/ResNet training), resized to
  `image_size`, then a random horizontal flip;
- train, augment "flip": the eval view, then a random horizontal flip;
- eval (and train without augmentation): the largest central box with the aspect ratio of
  `image_size`, shrunk by `eval_crop_fraction` (0.875 = ImageNet's "resize 256, crop 224"),
  resized to `image_size`.

Every random choice uses stateless ops seeded per example, so a pipeline is deterministic
for a given seed whatever its parallelism. Segmentation masks get exactly the same crop and
flip as their images.
"""

from __future__ import annotations

import tensorflow as tf

from resize_jax.data.config import Options

__all__ = ["Options", "decode_image", "padding_example", "preprocess", "to_value_range"]


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Encoded PNG/JPEG/GIF/BMP bytes → uint8[h, w, 3] (grey images are repeated to RGB)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_mask(data: tf.Tensor) -> tf.Tensor:
    """Encoded single-channel PNG label map → uint8[h, w, 1]."""
    mask = tf.io.decode_png(data, channels=1)
    mask.set_shape([None, None, 1])
    return mask


def central_box(height, width, image_size, fraction):
    """(top, left, crop_h, crop_w) of the central box with the aspect of `image_size`."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    aspect = image_size[0] / image_size[1]  # target H / W
    box_h = tf.minimum(h, w * aspect) * fraction
    box_w = tf.minimum(w, h / aspect) * fraction
    crop_h = tf.maximum(tf.cast(tf.round(box_h), tf.int32), 1)
    crop_w = tf.maximum(tf.cast(tf.round(box_w), tf.int32), 1)
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def random_box(height, width, seed, area_range, aspect_range):
    """(top, left, crop_h, crop_w) of a random box (Inception-style random resized crop)."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_size=tf.stack([height, width, 1]),
        bounding_boxes=tf.zeros([1, 0, 4], tf.float32),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=aspect_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin[0], begin[1], size[0], size[1]


def _crop_resize(image, box, image_size, method):
    top, left, crop_h, crop_w = box
    crop = image[top : top + crop_h, left : left + crop_w]
    if method == "nearest":
        out = tf.image.resize(crop, image_size, method="nearest")
    else:
        out = tf.image.resize(tf.cast(crop, tf.float32), image_size, "bilinear", antialias=True)
    out.set_shape([*image_size, image.shape[-1]])
    return out


def preprocess(example: dict, seed: tf.Tensor | None, opts: Options, *, train: bool) -> dict:
    """Raw example → {"image": f32[H, W, C] in value_range, "label": task-specific}.

    Args:
      example: {"image": encoded bytes, "label": see `base.Source`}.
      seed: int64[2] stateless seed for this example (train only).
      opts: the resolved options.
      train: train (augmentation) or eval view.
    """
    image = decode_image(example["image"])
    label = example["label"]
    mask = decode_mask(label) if opts.task == "segmentation" else None
    if mask is not None:
        # Images and masks must be pixel-aligned; a mismatch is a data error, not a crop.
        tf.debugging.assert_equal(
            tf.shape(image)[:2],
            tf.shape(mask)[:2],
            message="segmentation image and mask sizes differ",
        )
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    augment = opts.augment if train else "none"
    if augment == "crop_flip":
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        box = random_box(height, width, crop_seed, opts.crop_area_range, opts.crop_aspect_range)
    else:
        flip_seed = seed
        fraction = opts.eval_crop_fraction
        box = central_box(height, width, opts.image_size, fraction)
    image = _crop_resize(image, box, opts.image_size, "bilinear")
    if mask is not None:
        mask = _crop_resize(mask, box, opts.image_size, "nearest")
    if augment in ("crop_flip", "flip"):
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        if mask is not None:
            mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    return {"image": to_value_range(image, opts.value_range), "label": _label(label, mask, opts)}


def to_value_range(image: tf.Tensor, value_range: tuple[float, float]) -> tf.Tensor:
    """f32 pixels in [0, 255] (clipped: resizing overshoots) → [low, high]."""
    low, high = value_range
    return tf.clip_by_value(image, 0.0, 255.0) * ((high - low) / 255.0) + low


def _label(label, mask, opts: Options) -> tf.Tensor:
    if opts.task == "classification":
        label = tf.cast(label, tf.int32)
        return tf.one_hot(label, opts.num_classes, dtype=tf.float32) if opts.one_hot else label
    if opts.task == "regression":
        return tf.cast(label, tf.float32)
    if opts.task == "segmentation":
        label_map = tf.cast(mask[..., 0], tf.int32)
        valid = tf.not_equal(label_map, opts.ignore_label)
        tf.debugging.assert_less(
            tf.reduce_max(tf.where(valid, label_map, 0)),
            opts.num_classes,
            message=f"a mask holds a value >= num_classes={opts.num_classes} that is not the "
            f"ignore_label {opts.ignore_label}",
        )
        return label_map
    counts = tf.cast(label, tf.float32)
    return counts / tf.reduce_sum(counts)


def padding_example(opts: Options, channels: int = 3) -> dict:
    """An eval example that pads the last batches: image at the range's low end, label 0
    (segmentation: all ignore_label; image quality: a zero histogram; regression: zero
    targets)."""
    image = tf.fill([*opts.image_size, channels], tf.constant(opts.value_range[0], tf.float32))
    if opts.task == "classification":
        label = (
            tf.zeros([opts.num_classes], tf.float32) if opts.one_hot else tf.constant(0, tf.int32)
        )
    elif opts.task == "segmentation":
        label = tf.fill(list(opts.image_size), tf.constant(opts.ignore_label, tf.int32))
    else:
        label = tf.zeros([opts.num_classes], tf.float32)
    return {"image": image, "label": label}
