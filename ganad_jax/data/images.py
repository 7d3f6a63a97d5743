"""Image helpers shared by the image sources: resizing, channels, scaling.

Every image source ends with float32 arrays (N, size, size, channels) in
[-1, 1]. Resizing is PIL bilinear (with PIL's antialiasing when shrinking) on
the uint8 image (or on the float image for digits); masks use NEAREST.
"""

from collections.abc import Sequence

import numpy as np
from PIL import Image


def pil_to_uint8(image: Image.Image, channels: int) -> np.ndarray:
  """Converts a PIL image of any mode to a uint8 (H, W, channels) array.

  16-bit and 32-bit grayscale images (modes 'I;16*', 'I', 'F') are scaled to
  0..255 (divided by 65535 for 16-bit data, by their maximum beyond that, kept
  as they are when already within 0..255) instead of being clipped as
  `Image.convert('L')` would do.

  Args:
    image: an opened PIL image.
    channels: 1 (grayscale, PIL's ITU-R 601-2 luma) or 3 (RGB).

  Returns:
    uint8 array (H, W, channels).
  """
  if image.mode.startswith('I;16') or image.mode in ('I', 'F'):
    array = np.asarray(image, dtype=np.float64)
    peak = float(array.max()) if array.size else 0.0
    if image.mode.startswith('I;16') or 255.0 < peak <= 65535.0:
      top = 65535.0
    else:
      top = max(peak, 255.0)
    array = np.clip(np.rint(array / top * 255.0), 0, 255).astype(np.uint8)
    image = Image.fromarray(array)
  image = image.convert('L' if channels == 1 else 'RGB')
  array = np.asarray(image, dtype=np.uint8)
  if array.ndim == 2:
    array = array[..., None]
  return array


def resize_uint8(images: Sequence[np.ndarray] | np.ndarray,
                 size: int) -> np.ndarray:
  """Resizes uint8 images (H, W, C) of any sizes to (size, size), bilinear.

  Args:
    images: uint8 arrays (H, W, C) with C in {1, 3}, sizes may differ.
    size: output side.

  Returns:
    uint8 array (N, size, size, C); a copy of the input when nothing changes.
  """
  out = []
  for image in images:
    if image.shape[:2] == (size, size):
      out.append(image)
      continue
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    resized = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
    out.append(resized.reshape(size, size, image.shape[-1]))
  if not out:
    channels = images.shape[-1] if isinstance(images, np.ndarray) else 1
    return np.zeros((0, size, size, channels), np.uint8)
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


def size_note(sizes: set[tuple[int, int]], size: int, what: str) -> str:
  """Describes the original sizes and the resize, for info['notes'].

  Args:
    sizes: the distinct original (height, width) sizes.
    size: the output side.
    what: what the images are, e.g. 'digits'.

  Returns:
    e.g. 'digits 8x8 resized to 32x32 (bilinear)'.
  """
  if len(sizes) == 1:
    (h, w), = sizes
    if (h, w) == (size, size):
      return f'{what} {h}x{w} kept at {size}x{size} (no resize)'
    return f'{what} {h}x{w} resized to {size}x{size} (bilinear)'
  heights = [h for h, _ in sizes]
  widths = [w for _, w in sizes]
  return (f'{what} of varying sizes (height {min(heights)}-{max(heights)}, '
          f'width {min(widths)}-{max(widths)}) resized to {size}x{size} '
          '(bilinear)')
