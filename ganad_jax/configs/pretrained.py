"""The `pretrained` section of the config: the ImageNet backbone of gaussian / padim."""

import ml_collections

# Input normalisations of published weights: (mean, std) per RGB channel on
# images in [0, 1]; the backbone sees (x - mean) / std.
NORMALIZATIONS = {
    # torchvision ResNets, lukemelas EfficientNet-B0..B7, timm tf_efficientnet_b* (not _ap).
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # [-1, 1]: AdvProp (lukemelas adv-efficientnet-b*, timm tf_efficientnet_b*_ap).
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # TF's EfficientNet-Lite builder: (v - 127) / 128 of 8-bit v.
    "lite": ((127 / 255,) * 3, (128 / 255,) * 3),
}


def pretrained_config() -> ml_collections.ConfigDict:
  """Returns the `pretrained` section (read by `methods/backbone.py`).

  Fields:
    backbone: "efficientnet-lite0".."efficientnet-lite4", "efficientnet-b0"..
      "efficientnet-b7", "resnet18", "resnet34", "resnet50", "wide_resnet50_2".
    weights: a .pth / .pt / .bin (needs torch) or .safetensors state dict; ""
      = the installed weight package (Lite0-2), else a download when
      `allow_download`, else an error naming what to install. Loading is
      strict: keys the backbone does not read (but the classifier head and
      num_batches_tracked) are refused.
    normalization: the input normalisation the weights expect: "imagenet"
      (ImageNet mean / std), "inception" ([-1, 1]: AdvProp and timm `_ap`
      EfficientNets), "lite" ((v - 127) / 128, the EfficientNet-Lite
      weights), or explicit "mean=m1,m2,m3;std=s1,s2,s3" (RGB, on images in
      [0, 1]). "" = the weights' own: the Lite packages and published
      downloads carry theirs; a `weights` file gets "lite" for Lite
      backbones, else "imagenet", with a warning saying so. Recorded with
      the file's SHA-256 in the checkpoints and results.json.
    input_size: side of the square backbone input; 0 = the native size.
    cache_dir: where converted weights are cached; "" = $GANAD_JAX_CACHE or
      ~/.cache/ganad_jax.
    allow_download: fetch missing weights (B0-B7, ResNets) from their
      published URLs; off by default (no network at run time unless asked).
  """
  config = ml_collections.ConfigDict()
  config.backbone = "efficientnet-lite0"
  config.weights = ""
  config.normalization = ""
  config.input_size = 0
  config.cache_dir = ""
  config.allow_download = False
  return config


def parse_normalization(text: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
  """`pretrained.normalization` -> (name, mean, std); "mean=...;std=..." is named "custom".

  Raises:
    ValueError: an unknown name, or explicit values that are not three
      numbers each with every std > 0 (the message names the field).
  """
  if text in NORMALIZATIONS:
    return (text, *NORMALIZATIONS[text])
  field = f"pretrained.normalization={text!r}"
  parts = dict(part.partition("=")[::2] for part in text.replace(" ", "").split(";") if part)
  try:
    mean, std = (tuple(float(v) for v in parts[k].split(",")) for k in ("mean", "std"))
  except (KeyError, ValueError):
    raise ValueError(f"{field}: use one of {', '.join(map(repr, NORMALIZATIONS))} or "
                     "'mean=m1,m2,m3;std=s1,s2,s3' (RGB, images in [0, 1]).") from None
  if set(parts) != {"mean", "std"} or len(mean) != 3 or len(std) != 3 or min(std) <= 0:
    raise ValueError(f"{field}: explicit values are 'mean=m1,m2,m3;std=s1,s2,s3', three "
                     "numbers each, every std > 0.")
  return "custom", mean, std
