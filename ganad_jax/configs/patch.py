"""The `patch` section of the config: AnoGAN's patch protocol, and its checks.

Schlegl et al. 2017 (AnoGAN) train on random 64x64 patches of retinal OCT
scans kept at their resolution and score a scan by its patches. With
`size` > 0 every image method follows that protocol (`ganad_jax.patches`):
its nets see (size, size, C) crops; test and validation images are scored
tile by tile and their maps stitched back to the image.
"""

import numbers

import ml_collections

IMAGE_SCORES = ("max_map", "mean_patches")


def patch_config() -> ml_collections.ConfigDict:
  """Returns the `patch` section (size 0: off, the nets see whole images).

  Fields:
    size: side c of the square crops the nets see; 0 = off. The images stay
      at data.image_size x data.image_width (>= c each).
    stride: step between the overlapping c x c tiles a test (and val) image
      is cut into, 1..size (no gaps); the last tile of a row / column sits flush with the
      image's edge, so the tiles cover every pixel.
    image_score: "max_map" (the maximum of the stitched anomaly map after a
      Gaussian blur of `sigma` pixels) | "mean_patches" (the mean of the
      image's tile scores). The other rule is reported too, as
      "score_mean_patches" or "score_max_map".
    sigma: the blur of "max_map", in pixels of the image; 0 = none.
  """
  config = ml_collections.ConfigDict()
  config.size = 0
  config.stride = 16
  config.image_score = "max_map"
  config.sigma = 4.0
  return config


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.patch` against the data and the protocols it cannot join.

  Whether the method's nets take (size, size, C) inputs is theirs to check
  (`runner.build` names the patch size in their message).

  Args:
    config: the whole experiment config.

  Raises:
    ValueError: naming the field, its value and what is allowed.
  """
  patch, data = config.patch, config.data
  if not _is_int(patch.size) or patch.size < 0:
    raise ValueError(f"patch.size must be an int >= 0 (0 = off); got {patch.size!r}.")
  if not _is_int(data.image_width) or data.image_width < 0:
    raise ValueError(
        f"data.image_width must be an int >= 0 (0 = data.image_size); got {data.image_width!r}.")
  if patch.size == 0:
    if data.image_width not in (0, data.image_size):
      raise ValueError(
          f"data.image_width={data.image_width} makes {data.image_size}x{data.image_width} "
          "images, but the nets take square ones: non-square images need the patch protocol "
          "(patch.size > 0).")
    return
  if not _is_int(patch.stride) or not 1 <= patch.stride <= patch.size:
    raise ValueError(f"patch.stride must be an int from 1 to patch.size={patch.size} (tiles "
                     f"with no gaps between them); got {patch.stride!r}.")
  height, width = data.image_size, data.image_width or data.image_size
  if patch.size > min(height, width):
    raise ValueError(
        f"patch.size={patch.size} is larger than the {height}x{width} images "
        "(data.image_size x data.image_width).")
  if patch.image_score not in IMAGE_SCORES:
    raise ValueError(f"patch.image_score must be one of {IMAGE_SCORES}; got "
                     f"{patch.image_score!r}.")
  if not isinstance(patch.sigma, numbers.Real) or not 0.0 <= patch.sigma < float("inf"):
    raise ValueError(f"patch.sigma must be a finite number >= 0; got {patch.sigma!r}.")
  if config.eval.paper_repro:
    raise ValueError("eval.paper_repro scores whole images as the GAN references do; it "
                     f"cannot join the patch protocol (patch.size={patch.size}). Set one "
                     "of them off.")
