"""The `pretrained` section of the config: the ImageNet backbone of gaussian / padim."""

import ml_collections


def pretrained_config() -> ml_collections.ConfigDict:
  """Returns the `pretrained` section (read by `methods/backbone.py`).

  Fields:
    backbone: "efficientnet-lite0".."efficientnet-lite4", "efficientnet-b0"..
      "efficientnet-b7", "resnet18", "resnet34", "resnet50", "wide_resnet50_2".
    weights: a .pth / .pt / .bin (needs torch) or .safetensors state dict; ""
      = the installed weight package (Lite0-2), else a download when
      `allow_download`, else an error naming what to install.
    input_size: side of the square backbone input; 0 = the native size.
    cache_dir: where converted weights are cached; "" = $GANAD_JAX_CACHE or
      ~/.cache/ganad_jax.
    allow_download: fetch missing weights (B0-B7, ResNets) from their
      published URLs; off by default (no network at run time unless asked).
  """
  config = ml_collections.ConfigDict()
  config.backbone = "efficientnet-lite0"
  config.weights = ""
  config.input_size = 0
  config.cache_dir = ""
  config.allow_download = False
  return config
