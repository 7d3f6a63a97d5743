"""Convolutions whose gradients stay fast inside a loop (the latent search's scan).

Inside a while loop (the scan over steps), XLA:CPU gives the input-gradient
convolution of every conv layer a kernel in "01oi" layout (the flipped kernel
with input and output features swapped, left untransposed), which its conv
runtime handles 2-3x slower than the canonical HWIO layout it gets in
straight-line code. `apply_fast` applies a flax module with every nn.Conv /
nn.ConvTranspose replaced by the same convolution whose gradient uses a
flipped, transposed kernel computed once, outside the loop
(`backward_kernels`). Convolutions over a dilated input of at most 4x4 (a
transposed conv, and the input gradient of a strided conv) run as s*s phase
convolutions on the undilated input (`_dilated_conv_by_phases`), skipping the
inserted zeros.
Values and gradients are those of the module up to float32 summation order.

`lowered` does the same for straight-line code (the train steps and scoring
under `config.conv_lowering`): transposed convs run by phases, strided convs
over tiny maps by space-to-depth and convs that are matmuls as matmuls
(`cpu_conv`), the forms whose XLA gradients avoid XLA:CPU's slow paths
(GANomaly, DCGAN, U-Net and AE train steps 1.9x-4.3x faster on a 2-core CPU;
docs/performance.md, "CPU convolution lowering").
"""

import functools
from typing import Any

import flax.linen as nn
from flax.linen import linear as flax_linear
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _dilated(size: int, dilation: int) -> int:
  return 0 if size == 0 else 1 + dilation * (size - 1)


def _input_grad_padding(in_size, kernel, stride, out_size, pad, lhs_dilation):
  """Padding of the input-gradient convolution (as in jax's conv transpose rule)."""
  before = kernel - pad[0] - 1
  after = _dilated(in_size, lhs_dilation) + kernel - 1 - _dilated(out_size, stride) - before
  return before, after


# Below this many output features a transposed conv stays one lhs-dilated conv:
# s*s small convolutions cost more than the zeros they skip.
_MIN_PHASE_FEATURES = 16


def _dilated_conv_by_phases(x, kernel, padding, dilation: int):
  """`conv_general_dilated(x, kernel, 1, padding, lhs_dilation=dilation)` without the zeros.

  A conv over an input dilated by s is s*s stride-1 convolutions of the
  undilated input, one per output phase, interleaved: the s*s-fold fewer
  multiply-adds XLA:CPU would otherwise spend on inserted zeros. Returns None
  when the output size is not a multiple of s (the caller falls back).
  """
  s = dilation
  sizes, ksizes = x.shape[1:3], kernel.shape[:2]
  out = [(sizes[d] - 1) * s + 1 + padding[d][0] + padding[d][1] - ksizes[d] + 1
         for d in range(2)]
  if out[0] % s or out[1] % s:
    return None
  per_phase = [o // s for o in out]
  rows = []
  for r1 in range(s):
    cols = []
    for r2 in range(s):
      taps, pads = [], []
      for d, r in enumerate((r1, r2)):
        first = (padding[d][0] - r) % s  # First kernel tap that meets a real input.
        count = len(range(first, ksizes[d], s))
        offset = (r + first - padding[d][0]) // s  # Input index of output 0's first tap.
        taps.append(slice(first, None, s))
        pads.append((-offset, per_phase[d] + count - 2 + offset - (sizes[d] - 1)))
      phase_kernel = kernel[taps[0], taps[1]]
      if phase_kernel.shape[0] == 0 or phase_kernel.shape[1] == 0:
        cols.append(jnp.zeros((x.shape[0], *per_phase, kernel.shape[3]), x.dtype))
      else:
        cols.append(jax.lax.conv_general_dilated(x, phase_kernel, (1, 1), tuple(pads),
                                                 dimension_numbers=_DIMENSION_NUMBERS))
    rows.append(jnp.stack(cols, axis=3))  # (N, M0, M1, s, F)
  y = jnp.stack(rows, axis=2)  # (N, M0, s, M1, s, F)
  return y.reshape(x.shape[0], out[0], out[1], kernel.shape[3])


def _conv_as_matmul(x, kernel, strides, padding, lhs_dilation):
  """A conv that is a matmul, as one, or None.

  Two DCGAN layers are: the first transposed conv (1x1 input padded by k - 1
  on every side, so only one tap of each output meets it) and the last conv
  (a k x k kernel over a k x k map, VALID: one output). XLA:CPU runs the first
  as a full k*k-tap convolution over the zero padding.
  """
  kh, kw, c, f = kernel.shape
  if lhs_dilation != (1, 1):
    return None
  if (x.shape[1:3] == (1, 1) and strides == (1, 1)
      and padding == ((kh - 1, kh - 1), (kw - 1, kw - 1))):
    return jnp.einsum("nc,ijcf->nijf", x[:, 0, 0], jnp.flip(kernel, (0, 1)))
  if x.shape[1:3] == (kh, kw) and padding == ((0, 0), (0, 0)):
    return (x.reshape(x.shape[0], -1) @ kernel.reshape(-1, f)).reshape(x.shape[0], 1, 1, f)
  return None


def _conv(x, kernel, strides, padding, lhs_dilation, max_phase_size: int | None = None):
  """As a matmul if it is one, by phases if lhs-dilated (inputs <= `max_phase_size`), else XLA."""
  y = _conv_as_matmul(x, kernel, strides, padding, lhs_dilation)
  if y is not None:
    return y
  if (lhs_dilation != (1, 1) and lhs_dilation[0] == lhs_dilation[1] and strides == (1, 1)
      and kernel.shape[3] >= _MIN_PHASE_FEATURES
      and (max_phase_size is None or max(x.shape[1:3]) <= max_phase_size)):
    y = _dilated_conv_by_phases(x, kernel, padding, lhs_dilation[0])
    if y is not None:
      return y
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation=lhs_dilation,
                                      dimension_numbers=_DIMENSION_NUMBERS)


# Inside the search's loop, phases pay off only over small maps: over 8x8 and
# larger inputs XLA:CPU's own lhs-dilated conv is faster (the 32x32 DCGAN
# search, 64-sample chunks, alternating repeats: 915 against 858 sample-steps/s
# with phases at every size). In straight-line training code phases win at
# every size, because XLA's kernel gradient of a transposed conv is far slower.
_MAX_PHASE_SIZE_IN_LOOP = 4


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def conv_with_backward_kernel(x, kernel, backward_kernel, strides, padding, lhs_dilation):
  """NHWC / HWIO convolution whose input gradient convolves with `backward_kernel`.

  Args:
    x: (N, H, W, C) input.
    kernel: (kh, kw, C, F) kernel.
    backward_kernel: `flip_kernel(kernel)`, computed outside any loop.
    strides: window strides (2 ints).
    padding: ((lo, hi), (lo, hi)) explicit padding.
    lhs_dilation: input dilation (2 ints; the stride of a transposed conv).

  Returns:
    The convolution, exactly as `lax.conv_general_dilated`.
  """
  del backward_kernel
  return _conv(x, kernel, strides, padding, lhs_dilation, _MAX_PHASE_SIZE_IN_LOOP)


def _conv_fwd(x, kernel, backward_kernel, strides, padding, lhs_dilation):
  y = _conv(x, kernel, strides, padding, lhs_dilation, _MAX_PHASE_SIZE_IN_LOOP)
  return y, (x, kernel, backward_kernel)


def _conv_bwd(strides, padding, lhs_dilation, residuals, g):
  x, kernel, backward_kernel = residuals
  pads = tuple(_input_grad_padding(x.shape[1 + i], kernel.shape[i], strides[i], g.shape[1 + i],
                                   padding[i], lhs_dilation[i]) for i in range(2))
  dx = _conv(g, backward_kernel.astype(g.dtype), lhs_dilation, pads, strides,
             _MAX_PHASE_SIZE_IN_LOOP)
  # The kernel gradient is exact too (XLA drops it when, as in the search, it is unused).
  _, kernel_vjp = jax.vjp(lambda k: jax.lax.conv_general_dilated(
      x, k, strides, padding, lhs_dilation=lhs_dilation,
      dimension_numbers=_DIMENSION_NUMBERS), kernel)
  return dx.astype(x.dtype), kernel_vjp(g)[0], jnp.zeros_like(backward_kernel)


conv_with_backward_kernel.defvjp(_conv_fwd, _conv_bwd)


def flip_kernel(kernel: Array) -> Array:
  """HWIO kernel -> the kernel of its input-gradient convolution (flipped, I <-> O)."""
  return jnp.transpose(jnp.flip(kernel, (0, 1)), (0, 1, 3, 2))


def backward_kernels(params) -> dict[tuple[str, ...], Array]:
  """`flip_kernel` of every 4-D 'kernel' in a flax params tree, keyed by module path."""
  kernels = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = tuple(getattr(k, "key", str(k)) for k in path)
    if names and names[-1] == "kernel" and jnp.ndim(leaf) == 4:
      kernels[names[:-1]] = flip_kernel(leaf)
  return kernels


def _canonical_pairs(padding):
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _conv_arguments(module, x):
  """(x, kernel, bias, window strides, padding pairs, lhs dilation) of a flax
  nn.Conv / nn.ConvTranspose call as one `conv_general_dilated`, or None for
  configurations this module does not rewrite (masks, groups, dilations,
  circular padding, non-2-D)."""
  is_transpose = isinstance(module, nn.ConvTranspose)
  if x.ndim != 4 or getattr(module, "mask", None) is not None:
    return None
  if not module.has_variable("params", "kernel"):
    return None
  kernel_size = module.kernel_size
  if isinstance(kernel_size, int) or len(kernel_size) != 2:
    return None

  def pair(value):
    value = 1 if value is None else value
    return (value, value) if isinstance(value, int) else tuple(value)

  strides = pair(module.strides)
  if pair(module.kernel_dilation) != (1, 1) or module.precision is not None:
    return None
  padding = flax_linear.canonicalize_padding(module.padding, 2)
  kernel = module.get_variable("params", "kernel")
  if is_transpose:
    if module.transpose_kernel or module.preferred_element_type is not None:
      return None
    if isinstance(padding, str):
      if padding not in ("SAME", "VALID"):
        return None
      pads = []
      for k, s in zip(kernel.shape[:2], strides):
        pad_len = k + s - 2 + (max(k - s, 0) if padding == "VALID" else 0)
        pad_a = k - 1 if (padding == "VALID" or s > k - 1) else int(np.ceil(pad_len / 2))
        pads.append((pad_a, pad_len - pad_a))
      pads = tuple(pads)
    else:
      pads = _canonical_pairs(padding)
    window_strides, lhs_dilation = (1, 1), strides
  else:
    if (module.feature_group_count != 1 or not module.shared_weights
        or pair(module.input_dilation) != (1, 1) or module.conv_general_dilated is not None
        or module.conv_general_dilated_cls is not None):
      return None
    if isinstance(padding, str):
      if padding not in ("SAME", "SAME_LOWER", "VALID"):
        return None
      pads = _canonical_pairs(jax.lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides,
                                                      padding))
    else:
      pads = _canonical_pairs(padding)
    window_strides, lhs_dilation = strides, (1, 1)
  bias = module.get_variable("params", "bias") if module.use_bias else None
  x, kernel, bias = module.promote_dtype(x, kernel, bias, dtype=module.dtype)
  return x, kernel, bias, window_strides, pads, lhs_dilation


def _add_bias(y, bias):
  return y if bias is None else y + bias.reshape((1, 1, 1, -1))


def _fast_conv_call(module, x, backward_kernel):
  """The module's output via `conv_with_backward_kernel`, or None if unsupported."""
  arguments = _conv_arguments(module, x)
  if arguments is None:
    return None
  x, kernel, bias, window_strides, pads, lhs_dilation = arguments
  y = conv_with_backward_kernel(x, kernel, backward_kernel.astype(kernel.dtype),
                                window_strides, pads, lhs_dilation)
  return _add_bias(y, bias)


def apply_fast(module: nn.Module, variables, kernels: dict[tuple[str, ...], Array],
               *args, **kwargs) -> Any:
  """`module.apply(variables, *args, **kwargs)` with loop-friendly conv gradients.

  Every nn.Conv / nn.ConvTranspose whose path is in `kernels` (from
  `backward_kernels(variables['params'])`, computed OUTSIDE the search loop)
  runs through `conv_with_backward_kernel`; other layers and unsupported
  configurations (masks, groups, dilations, circular padding) run unchanged.
  """
  def interceptor(next_fun, call_args, call_kwargs, context):
    module_ = context.module
    if (context.method_name == "__call__" and isinstance(module_, (nn.Conv, nn.ConvTranspose))
        and len(call_args) == 1 and not call_kwargs):
      backward_kernel = kernels.get(tuple(module_.path))
      if backward_kernel is not None:
        y = _fast_conv_call(module_, call_args[0], backward_kernel)
        if y is not None:
          return y
    return next_fun(*call_args, **call_kwargs)

  with nn.intercept_methods(interceptor):
    return module.apply(variables, *args, **kwargs)


# ----------------------------------------------- straight-line code (training) ---


def _strided_conv_by_space_to_depth(x, kernel, stride: int, padding):
  """A stride-s conv as a stride-1 conv of the s x s space-to-depth of the padded input.

  Output pixel i reads padded rows s*i + t, t < k: block row i + t // s, phase
  t % s. So the kernel regroups to (k/s, k/s, s*s*C, F) and the convolution
  has stride 1, whose gradients XLA computes without dilating anything (the
  input gradient of a strided conv is a conv over an s-fold dilated input).
  Returns None unless the kernel and the padded input are multiples of s.
  """
  s = stride
  kh, kw, c, f = kernel.shape
  n, h, w, _ = x.shape
  (top, bottom), (left, right) = padding
  if kh % s or kw % s or (h + top + bottom) % s or (w + left + right) % s:
    return None
  x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  rows, cols = x.shape[1] // s, x.shape[2] // s
  x = x.reshape(n, rows, s, cols, s, c).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(n, rows, cols, s * s * c)
  kernel = kernel.reshape(kh // s, s, kw // s, s, c, f).transpose(0, 2, 1, 3, 4, 5)
  kernel = kernel.reshape(kh // s, kw // s, s * s * c, f)
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                      dimension_numbers=_DIMENSION_NUMBERS)


# Up to this input size (both sides) a strided conv runs by space-to-depth:
# XLA:CPU is 7-12x slower on the gradients of a strided conv over a 2x2 or 4x4
# map (U-Net bottlenecks), and 1.2-1.5x faster than space-to-depth above it.
_MAX_SPACE_TO_DEPTH_SIZE = 4


def cpu_conv(x, kernel, strides, padding, lhs_dilation):
  """`conv_general_dilated` (NHWC / HWIO) in the form whose autodiff XLA:CPU runs fastest.

  A transposed conv (lhs dilation) with >= 16 output features runs by phases,
  skipping the inserted zeros in the forward pass and in both gradients; a
  strided conv over a map of at most 4x4 runs by space-to-depth, and a conv
  that is a matmul as one.
  """
  if (strides != (1, 1) and strides[0] == strides[1] and lhs_dilation == (1, 1)
      and max(x.shape[1:3]) <= _MAX_SPACE_TO_DEPTH_SIZE):
    y = _strided_conv_by_space_to_depth(x, kernel, strides[0], padding)
    if y is not None:
      return y
  return _conv(x, kernel, strides, padding, lhs_dilation)  # Matmuls, phases, else XLA.


def _depthwise_conv_by_shifts(module: nn.Conv, x):
  """A depthwise nn.Conv (one k x k filter per channel) as k*k shifted multiply-adds, or None.

  XLA:CPU runs depthwise convolutions 3-20x slower than this (EfficientNet's
  3x3 and 5x5 layers at batch 16, 14x14 to 112x112 maps, measured per layer);
  autodiff of the sum is plain too. None for other configurations.
  """
  channels = x.shape[-1] if x.ndim == 4 else None
  if (channels is None or module.feature_group_count != channels or channels == 1
      or getattr(module, "mask", None) is not None or not module.shared_weights
      or module.conv_general_dilated is not None or module.conv_general_dilated_cls is not None
      or not module.has_variable("params", "kernel")):
    return None
  kernel = module.get_variable("params", "kernel")
  pair = lambda v: (1, 1) if v is None else ((v, v) if isinstance(v, int) else tuple(v))
  if (kernel.ndim != 4 or kernel.shape[2:] != (1, channels) or module.precision is not None
      or pair(module.kernel_dilation) != (1, 1) or pair(module.input_dilation) != (1, 1)):
    return None
  padding = flax_linear.canonicalize_padding(module.padding, 2)
  (kh, kw), (sh, sw) = kernel.shape[:2], pair(module.strides)
  if isinstance(padding, str):
    if padding not in ("SAME", "SAME_LOWER", "VALID"):
      return None
    padding = jax.lax.padtype_to_pads(x.shape[1:3], (kh, kw), (sh, sw), padding)
  bias = module.get_variable("params", "bias") if module.use_bias else None
  x, kernel, bias = module.promote_dtype(x, kernel, bias, dtype=module.dtype)
  x = jnp.pad(x, ((0, 0), *_canonical_pairs(padding), (0, 0)))
  rows, cols = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  y = sum(jax.lax.slice(x, (0, i, j, 0), (x.shape[0], i + (rows - 1) * sh + 1,
                                          j + (cols - 1) * sw + 1, channels), (1, sh, sw, 1))
          * kernel[i, j, 0] for i in range(kh) for j in range(kw))
  return _add_bias(y, bias)


def _cpu_conv_interceptor(next_fun, call_args, call_kwargs, context):
  module = context.module
  if (context.method_name == "__call__" and isinstance(module, (nn.Conv, nn.ConvTranspose))
      and len(call_args) == 1 and not call_kwargs):
    if isinstance(module, nn.Conv):
      y = _depthwise_conv_by_shifts(module, call_args[0])
      if y is not None:
        return y
    arguments = _conv_arguments(module, call_args[0])
    if arguments is not None:
      x, kernel, bias, window_strides, pads, lhs_dilation = arguments
      return _add_bias(cpu_conv(x, kernel, window_strides, pads, lhs_dilation), bias)
  return next_fun(*call_args, **call_kwargs)


def lowered(fn):
  """`fn` with every flax conv it traces run by `cpu_conv` (depthwise convs by shifts).

  Same values and gradients up to float32 summation order. Interceptors
  entered inside `fn` (the latent search's `apply_fast`) take precedence.
  """
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with nn.intercept_methods(_cpu_conv_interceptor):
      return fn(*args, **kwargs)
  return wrapped


def use_lowering(setting: str, platform: str | None = None) -> bool:
  """Whether `config.conv_lowering` ("auto", "cpu", "xla") asks for `lowered`.

  Args:
    setting: the config value; "auto" means "cpu" on the CPU platform and
      "xla" on any other.
    platform: the platform the program runs on, as `jax.default_backend()`
      names it ("cpu", "gpu", "tpu"; "cuda" and "rocm" count as GPUs);
      default: this process's default backend.

  Raises:
    ValueError: an unknown setting, naming config.conv_lowering.
  """
  if setting not in ("auto", "cpu", "xla"):
    raise ValueError(f"config.conv_lowering must be 'auto', 'cpu' or 'xla'; got {setting!r}.")
  platform = jax.default_backend() if platform is None else platform
  # GPU / TPU convolution libraries handle strides and transposed convs natively.
  return setting == "cpu" or (setting == "auto" and platform == "cpu")
