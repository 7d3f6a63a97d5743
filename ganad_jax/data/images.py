"""Image helpers shared by the image sources: resizing, channels, scaling.

Every image source ends with float32 arrays (N, size, size, channels) in
[-1, 1] (source 'folder': (N, height, width, channels) with data.image_width). Resizing is PIL bilinear (with PIL's antialiasing when shrinking) on
the uint8 image (or on the float image for digits); masks use NEAREST.

Decoding rule (`pil_to_uint8`): a file's values are scaled by its declared
sample type (8-bit / 255, 16-bit / 65535, 1-bit {0, 1}, float / the declared
float_scale), never by its own content; a file whose values fit no rule is
refused naming the file and its value range. Mask rule (`mask_defects`): a
pixel is a defect when non-zero in any colour channel.
"""

from collections.abc import Sequence

import numpy as np
from PIL import Image


class ImageDecodeError(ValueError):
  """An image or mask file that fits no decoding rule; names the file."""


# Modes whose samples are 8-bit (or 1-bit) by construction; PIL converts them.
_EIGHT_BIT_MODES = frozenset(
    {'1', 'L', 'P', 'LA', 'La', 'PA', 'RGB', 'RGBA', 'RGBa', 'RGBX', 'CMYK',
     'YCbCr'})
_ALPHA_MODES = frozenset({'LA', 'La', 'PA', 'RGBA', 'RGBa'})


def _integer_depth(image: Image.Image, path: str) -> tuple[int, bool]:
  """Returns (bits, signed) declared by a mode 'I' / 'I;16*' file's format."""
  if image.mode.startswith('I;16'):
    return 16, image.mode.endswith('S')
  if image.format == 'TIFF':
    tags = getattr(image, 'tag_v2', {})
    bits = tags.get(258, (32,))
    bits = int(bits[0] if isinstance(bits, tuple) else bits)
    sample_format = tags.get(339, (1,))
    sample_format = int(sample_format[0] if isinstance(sample_format, tuple)
                        else sample_format)
    return bits, sample_format == 2
  if image.format == 'PNG':  # PNG stores at most 16 bits a sample.
    return 16, False
  if image.format == 'PPM':  # PIL rescales PGM's maxval to 0..65535.
    return 16, False
  raise ImageDecodeError(
      f'Image {path}: mode {image.mode} in format {image.format} declares no '
      'bit depth this loader knows (TIFF, PNG, PGM do); convert it to 8- or '
      '16-bit PNG.')


def decode_unit(image: Image.Image, path: str,
                float_scale: float = 1.0) -> np.ndarray:
  """Decodes a high-bit-depth image (modes 'I;16*', 'I', 'F') to [0, 1].

  The scale comes from the file's declared sample type, never from its
  values: 16-bit integers / 65535; other integers / (2**bits - 1) (unsigned)
  or / (2**(bits - 1) - 1) (signed, e.g. TIFF 'I' written by PIL is signed
  32-bit); float / float_scale. A value outside [0, that maximum] (a negative
  integer, a float outside [0, float_scale], NaN or inf) fits no rule.

  Args:
    image: an opened PIL image of mode 'I;16*', 'I' or 'F'.
    path: the file, for error messages.
    float_scale: the declared maximum of float files (config
      data.float_scale), 1.0 or 255.0 in practice.

  Returns:
    float64 array (H, W) in [0, 1].

  Raises:
    ImageDecodeError: naming the file, its mode and its value range.
  """
  array = np.asarray(image, dtype=np.float64)
  if image.mode == 'F':
    top, rule = float(float_scale), f'[0, {float_scale:g}] (data.float_scale)'
  else:
    bits, signed = _integer_depth(image, path)
    top = float(2**(bits - 1) - 1 if signed else 2**bits - 1)
    rule = (f"[0, {top:.0f}] ({'signed' if signed else 'unsigned'} "
            f'{bits}-bit)')
  low = float(array.min()) if array.size else 0.0
  high = float(array.max()) if array.size else 0.0
  if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low and
          high <= top):
    hint = ('; set data.float_scale=255 if its values are 0..255'
            if image.mode == 'F' and 0.0 <= low and high <= 255.0 else '')
    raise ImageDecodeError(
        f'Image {path} (mode {image.mode}) has values in [{low:g}, {high:g}], '
        f'outside the rule for its type: {rule}{hint}.')
  return array / top


def pil_to_uint8(image: Image.Image, channels: int, path: str = '<image>',
                 float_scale: float = 1.0) -> np.ndarray:
  """Converts a PIL image to a uint8 (H, W, channels) array by one rule.

  The decoding rule depends on the file's mode (its declared sample type),
  never on its values:

  - 8-bit modes L, RGB, P (through its palette), CMYK (PIL: R = (255 - C) *
    (255 - K) / 255), YCbCr, and 1-bit ('1': 0 / 255) are converted by PIL;
    alpha (LA, PA, RGBA) is dropped, not composited.
  - 16-bit ('I;16*'), 32-bit integer ('I') and float ('F') images are scaled
    to [0, 1] by `decode_unit` (16-bit / 65535, signed 32-bit TIFF /
    (2**31 - 1), float / float_scale) and then rounded to 0..255, so they
    keep 8 bits of precision like every other image.
  - Any other mode (LAB, HSV, I;16S with negatives, ...) is refused.

  Grayscale is PIL's ITU-R 601-2 luma; grayscale -> RGB repeats the channel.

  Args:
    image: an opened PIL image.
    channels: 1 (grayscale) or 3 (RGB).
    path: the file, for error messages.
    float_scale: the declared maximum of float ('F') files.

  Returns:
    uint8 array (H, W, channels).

  Raises:
    ImageDecodeError: naming the file, when it fits no rule.
  """
  target = 'L' if channels == 1 else 'RGB'
  mode = image.mode
  if mode.startswith('I;16') or mode in ('I', 'F'):
    unit = decode_unit(image, path, float_scale)
    image = Image.fromarray(np.rint(unit * 255.0).astype(np.uint8), 'L')
  elif mode == 'PA':
    image = image.convert('RGBA')
  elif mode not in _EIGHT_BIT_MODES:
    raise ImageDecodeError(
        f'Image {path} has mode {mode}, which has no decoding rule (8-bit '
        'L/RGB/P/LA/RGBA/CMYK/YCbCr, 1-bit, 16-bit, 32-bit integer or float '
        'are decoded).')
  array = np.asarray(image.convert(target), dtype=np.uint8)
  if array.ndim == 2:
    array = array[..., None]
  return array


def mask_defects(image: Image.Image, path: str) -> np.ndarray:
  """Returns a mask file's defect pixels at its native resolution.

  Rule: a pixel is a defect when it is non-zero in any colour channel at the
  file's own bit depth (labels 1, 2, ..., grey 100, 16-bit 1, a red stroke on
  black, 255 all count). Palette ('P') masks are read through their palette
  (index -> colour); alpha is ignored; '1' masks are their bits.

  Args:
    image: an opened PIL mask.
    path: the file, for error messages.

  Returns:
    bool array (H, W).

  Raises:
    ImageDecodeError: for a mode with no such rule (LAB, HSV, ...).
  """
  mode = image.mode
  if mode in ('P', 'PA'):
    image, mode = image.convert('RGBA' if mode == 'PA' else 'RGB'), 'RGB'
  if mode in ('LA', 'La'):
    image, mode = image.getchannel(0), 'L'
  elif mode in _ALPHA_MODES or mode == 'RGBX':
    image, mode = image.convert('RGB'), 'RGB'
  if not (mode in ('1', 'L', 'RGB', 'CMYK', 'I', 'F') or
          mode.startswith('I;16')):
    raise ImageDecodeError(
        f'Mask {path} has mode {mode}, which has no mask rule (1-bit, L, P, '
        'RGB(A), CMYK, 16-bit, 32-bit integer or float masks are read).')
  array = np.asarray(image)
  defect = array != 0
  return defect.any(axis=-1) if defect.ndim == 3 else defect


def shape_of(size: int | tuple[int, int]) -> tuple[int, int]:
  """(height, width) of an output size given as a side or as (height, width)."""
  return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize_uint8(images: Sequence[np.ndarray] | np.ndarray,
                 size: int | tuple[int, int]) -> np.ndarray:
  """Resizes uint8 images (H, W, C) of any sizes to (size, size), bilinear.

  Args:
    images: uint8 arrays (H, W, C) with C in {1, 3}, sizes may differ.
    size: output side, or the output (height, width).

  Returns:
    uint8 array (N, height, width, C); a copy of the input when nothing
    changes.
  """
  height, width = shape_of(size)
  out = []
  for image in images:
    if image.shape[:2] == (height, width):
      out.append(image)
      continue
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    resized = np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR))
    out.append(resized.reshape(height, width, image.shape[-1]))
  if not out:
    channels = images.shape[-1] if isinstance(images, np.ndarray) else 1
    return np.zeros((0, height, width, channels), np.uint8)
  return np.stack(out).astype(np.uint8, copy=False)


def resize_float(images: np.ndarray, size: int) -> np.ndarray:
  """Resizes float grayscale images (N, H, W) to (N, size, size), bilinear.

  Args:
    images: float array (N, H, W).
    size: output side.

  Returns:
    float32 array (N, size, size).
  """
  images = np.asarray(images, np.float32)
  if images.shape[1:] == (size, size):
    return images.copy()
  out = np.empty((len(images), size, size), np.float32)
  for i, image in enumerate(images):
    pil = Image.fromarray(image)  # Mode 'F'.
    out[i] = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
  return out


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
  """Converts uint8 images (N, H, W, C) between grayscale and RGB.

  RGB -> grayscale uses PIL's integer luma formula (L = 0.299 R + 0.587 G +
  0.114 B); grayscale -> RGB repeats the channel.

  Args:
    images: uint8 array (N, H, W, C), C in {1, 3}.
    channels: 1 or 3.

  Returns:
    uint8 array (N, H, W, channels).
  """
  have = images.shape[-1]
  if have == channels:
    return images
  if have == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if have == 3 and channels == 1:
    rgb = images.astype(np.uint32)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 +
            0x8000) >> 16
    return luma.astype(np.uint8)[..., None]
  raise ValueError(
      f'Cannot convert images with {have} channels to {channels} channels.')


def uint8_to_unit(images: np.ndarray) -> np.ndarray:
  """Maps uint8 0..255 to float32 [-1, 1] (x / 127.5 - 1), in one buffer."""
  out = np.empty(images.shape, np.float32)
  np.divide(images, np.float32(127.5), out=out, dtype=np.float32)
  np.subtract(out, np.float32(1.0), out=out)
  return out


def prepare_uint8(images: Sequence[np.ndarray] | np.ndarray, size: int,
                  channels: int) -> np.ndarray:
  """Channels, then resize, then scale: uint8 images -> float32 in [-1, 1].

  Grayscale conversion runs before resizing and RGB replication after, so
  the resize always touches the fewest channels.

  Args:
    images: uint8 arrays (H, W, C), C in {1, 3}; sizes may differ.
    size: output side.
    channels: 1 or 3.

  Returns:
    float32 array (N, size, size, channels) in [-1, 1].
  """
  images = [to_channels(image[None], 1)[0] if channels == 1 else image
            for image in images]
  resized = resize_uint8(images, size)
  return uint8_to_unit(to_channels(resized, channels))


def size_note(sizes: set[tuple[int, int]], size: int | tuple[int, int],
              what: str) -> str:
  """Describes the original sizes and the resize, for info['notes'].

  Args:
    sizes: the distinct original (height, width) sizes.
    size: the output side, or the output (height, width).
    what: what the images are, e.g. 'digits'.

  Returns:
    e.g. 'digits 8x8 resized to 32x32 (bilinear)'.
  """
  out_h, out_w = shape_of(size)
  if len(sizes) == 1:
    (h, w), = sizes
    if (h, w) == (out_h, out_w):
      return f'{what} {h}x{w} kept at {out_h}x{out_w} (no resize)'
    return f'{what} {h}x{w} resized to {out_h}x{out_w} (bilinear)'
  heights = [h for h, _ in sizes]
  widths = [w for _, w in sizes]
  return (f'{what} of varying sizes (height {min(heights)}-{max(heights)}, '
          f'width {min(widths)}-{max(widths)}) resized to {out_h}x{out_w} '
          '(bilinear)')
