"""Synthetic anomalies made from normal images, for choices made without anomaly labels.

`cutpaste` follows CutPaste (Li, Sohn, Yoon, Pfister, CVPR 2021, Sec. 3.1):
a rectangle of 2-15 % of the image area, aspect ratio log-uniform in
[0.3, 1/0.3], is cut from a random place of the image, its brightness scaled
by a factor in [0.8, 1.2], and pasted at another random place of the same
image. The methods use these copies of the validation normals to rank
feature levels (`gaussian.select_levels`); test labels never choose anything.
"""

import numpy as np


def cutpaste(images: np.ndarray, rng: np.random.Generator, area=(0.02, 0.15),
             aspect=(0.3, 1 / 0.3), brightness=(0.8, 1.2)) -> tuple[np.ndarray, np.ndarray]:
  """CutPaste copies of `images`.

  Args:
    images: float (N, H, W, C) in [-1, 1] (the project's image range).
    rng: the source of randomness (seed it for repeatable copies).
    area: range of the patch's area as a fraction of H * W.
    aspect: range of the patch's height / width, sampled log-uniformly.
    brightness: range of the factor applied to the patch's [0, 1] values.

  Returns:
    (copies, masks): float32 (N, H, W, C) in [-1, 1], each image with one
    pasted patch, and bool (N, H, W), True where the patch was pasted.

  Raises:
    ValueError: `images` is not (N, H, W, C) or smaller than 4 x 4.
  """
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or min(images.shape[1:3]) < 4:
    raise ValueError(f"cutpaste: images must be (N, H, W, C) of at least 4 x 4; got "
                     f"{images.shape}.")
  out = images.copy()
  masks = np.zeros(images.shape[:3], bool)
  n, height, width, _ = images.shape
  for i in range(n):
    patch_area = rng.uniform(*area) * height * width
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
    h = int(np.clip(round(np.sqrt(patch_area * ratio)), 1, height - 1))
    w = int(np.clip(round(np.sqrt(patch_area / ratio)), 1, width - 1))
    y0, x0 = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    y1, x1 = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    patch = (images[i, y0:y0 + h, x0:x0 + w] + 1.0) / 2.0 * rng.uniform(*brightness)
    out[i, y1:y1 + h, x1:x1 + w] = np.clip(patch, 0.0, 1.0) * 2.0 - 1.0
    masks[i, y1:y1 + h, x1:x1 + w] = True
  return out, masks
