"""Tests of `data.folder`: MVTec-AD-style folders, masks, errors and duplicate images."""

import os
import shutil

import numpy as np
from PIL import Image
import pytest

from ganad_jax import data
from ganad_jax.data import folder
import helpers

TILE_DIR = os.path.join(helpers.SHARED_DATA, 'magnetic_tile')


def _image(path, size, mode, value=30):
  w, h = size
  array = np.full((h, w, 3) if mode == 'RGB' else (h, w), value, np.uint8)
  array[: h // 2] = 255 - value
  Image.fromarray(array).save(path)


def _mask(path, size, left_half=True):
  w, h = size
  array = np.zeros((h, w), np.uint8)
  if left_half:
    array[:, : w // 2] = 255
  Image.fromarray(array).save(path)


def _tiny_folder(root):
  """Writes an MVTec-like category: mixed formats, modes and sizes.

  Every image differs (the loader refuses identical pixels in two files).
  """
  value = iter(range(20, 40))
  os.makedirs(os.path.join(root, 'train', 'good'))
  for i in range(6):
    ext, mode = [('png', 'RGB'), ('jpg', 'L'), ('bmp', 'RGB')][i % 3]
    _image(os.path.join(root, 'train', 'good', f'{i:03d}.{ext}'),
           (20 + 4 * i, 30), mode, next(value))
  for kind, n in [('good', 2), ('scratch', 2), ('hole', 1)]:
    os.makedirs(os.path.join(root, 'test', kind))
    if kind != 'good':
      os.makedirs(os.path.join(root, 'ground_truth', kind))
    for i in range(n):
      size = (40, 24 + 8 * i)
      ext, mode = ('jpg', 'RGB') if i % 2 else ('png', 'L')
      _image(os.path.join(root, 'test', kind, f'{i:03d}.{ext}'), size, mode,
             next(value))
      if kind != 'good':
        _mask(os.path.join(root, 'ground_truth', kind, f'{i:03d}_mask.png'),
              size)
  with open(os.path.join(root, 'test', 'good', 'notes.txt'), 'w') as f:
    f.write('not an image')


@pytest.mark.parametrize('channels', [1, 3])
def test_folder_tiny(tmp_path, channels):
  root = str(tmp_path / 'cat')
  _tiny_folder(root)
  config = helpers.data_config(source='folder', protocol='folder', path=root,
                               image_size=16, channels=channels, val_fraction=0.2)
  s = data.load(config, seed=0)
  helpers.check_splits(s, (16, 16, channels))
  assert (len(s.train.y), len(s.val.y), len(s.test.y)) == (5, 1, 5)
  assert s.info['test_kinds'] == {'good': 2, 'hole': 1, 'scratch': 2}
  np.testing.assert_array_equal(s.test.y, s.test.kinds != 'good')
  for split in (s.train, s.val, s.test):
    assert split.masks.shape == split.x.shape[:3]
    assert split.masks.dtype == np.float32
    assert set(np.unique(split.masks)) <= {0.0, 1.0}
  assert not s.train.masks.any() and not s.val.masks.any()
  assert not s.test.masks[s.test.y == 0].any()
  for mask in s.test.masks[s.test.y == 1]:  # Left half set.
    assert mask[:, :8].all() and not mask[:, 8:].any()
  # Files line up with kinds, and top/bottom halves survive the resize.
  for file, kind in zip(s.info['files']['test'], s.test.kinds):
    assert file.split(os.sep)[:2] == ['test', kind]
  assert s.test.x[:, :4].mean() > 0.6 and s.test.x[:, -4:].mean() < -0.6
  again = data.load(config, seed=0)
  np.testing.assert_array_equal(again.test.x, s.test.x)
  other = data.load(config, seed=3)
  assert other.info['files']['val'] != s.info['files']['val'] or (
      other.info['files']['test'] != s.info['files']['test'])


def test_folder_without_ground_truth_has_no_masks(tmp_path):
  root = str(tmp_path / 'cat')
  _tiny_folder(root)
  os.rename(os.path.join(root, 'ground_truth'), os.path.join(root, 'gt_old'))
  s = data.load(helpers.data_config(source='folder', protocol='folder', path=root,
                                    val_fraction=0.2), seed=0)
  assert s.train.masks is None and s.test.masks is None
  assert any('no masks' in n for n in s.info['notes'])


@pytest.mark.parametrize('case,error,match', [
    ('missing', FileNotFoundError, r"'folder' not found: .*nowhere"),
    ('no_train_good', FileNotFoundError, r'No train/good folder in'),
    ('bad_image', ValueError, r'Cannot decode image .*train/good/bad\.png'),
    ('mask_size', ValueError, r'Mask .*scratch/000_mask\.png is 10x10 \(WxH\) '
     r'but its image .*scratch/000\.png is 40x24'),
    ('no_mask', FileNotFoundError, r'No mask for defective image .*hole/000'
     r'\.png: expected .*ground_truth/hole/000_mask\.png'),
    ('no_defects', ValueError, r'needs normal images .* and defective ones'),
])
def test_folder_bad_input(tmp_path, case, error, match):
  root = str(tmp_path / 'cat')
  _tiny_folder(root)
  path = root
  if case == 'missing':
    path = str(tmp_path / 'nowhere')
  elif case == 'no_train_good':
    os.rename(os.path.join(root, 'train', 'good'),
              os.path.join(root, 'train', 'ok'))
  elif case == 'bad_image':
    with open(os.path.join(root, 'train', 'good', 'bad.png'), 'wb') as f:
      f.write(b'not a png at all')
  elif case == 'mask_size':
    _mask(os.path.join(root, 'ground_truth', 'scratch', '000_mask.png'),
          (10, 10))
  elif case == 'no_mask':
    os.remove(os.path.join(root, 'ground_truth', 'hole', '000_mask.png'))
  elif case == 'no_defects':
    for kind in ('scratch', 'hole'):
      for name in os.listdir(os.path.join(root, 'test', kind)):
        os.remove(os.path.join(root, 'test', kind, name))
  with pytest.raises(error, match=match):
    data.load(helpers.data_config(source='folder', protocol='folder', path=path,
                                  val_fraction=0.2), seed=0)


def test_folder_real_magnetic_tile():
  if not os.path.isdir(TILE_DIR):
    pytest.skip(f'magnetic_tile not present at {TILE_DIR}')
  with pytest.raises(ValueError, match=r'Defective image .*uneven/exp3_num_'
                     r'45042\.jpg has an empty mask .* \(and 3 more'):
    data.load(helpers.data_config(source='folder', protocol='folder', path=TILE_DIR,
                                  image_size=32), seed=0)
  s = data.load(helpers.data_config(source='folder', protocol='folder', path=TILE_DIR,
                                    image_size=32, empty_masks='keep'), seed=0)
  helpers.check_splits(s, (32, 32, 1))
  assert s.info['sizes']['train_good'] == 762
  assert len(s.train.y) + len(s.val.y) == 762
  assert len(s.val.y) == helpers.round_half(0.1, 762)
  assert s.info['test_kinds'] == {'blowhole': 115, 'break': 85, 'crack': 57,
                                  'fray': 32, 'good': 190, 'uneven': 103}
  assert (s.test.y == 0).sum() == 190 and (s.test.y == 1).sum() == 392
  assert set(np.unique(s.test.masks)) == {0.0, 1.0}
  assert not s.test.masks[s.test.y == 0].any()
  empty = int((~s.test.masks[s.test.y == 1].any(axis=(1, 2))).sum())
  # 4 'uneven' masks are empty in the dataset itself (kept with
  # empty_masks='keep'), and NEAREST at 32x32 drops 29 thin defects.
  assert empty == 33
  assert ('29 defect masks lose all their pixels when resized to 32x32 '
          '(nearest)') in s.info['notes']
  assert any(n.startswith('4 defect masks empty in the files themselves')
             for n in s.info['notes'])


def _category(root, n_train=3, side=32):
  """train/good (3), test/good (1), test/scratch (1) with a mask; distinct."""
  for sub in ('train/good', 'test/good', 'test/scratch',
              'ground_truth/scratch'):
    os.makedirs(os.path.join(root, sub))
  value = iter(range(10, 250, 20))
  paths = [f'train/good/{i:03d}.png' for i in range(n_train)] + [
      'test/good/000.png', 'test/scratch/000.png']
  for path in paths:
    array = np.full((side, side), next(value), np.uint8)
    array[: side // 2] = 255 - array[0, 0]
    Image.fromarray(array).save(os.path.join(root, path))
  mask = np.zeros((side, side), np.uint8)
  mask[:, : side // 2] = 255
  Image.fromarray(mask).save(
      os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  return root


def _load(root, **overrides):
  return data.load(helpers.data_config(source='folder', protocol='folder', path=root,
                                       image_size=16, val_fraction=0.34, **overrides),
                   seed=0)


def _red_on_black(side=32):
  array = np.zeros((side, side, 3), np.uint8)
  array[:, : side // 2, 0] = 200
  return Image.fromarray(array)


def _palette(side=32):  # Its name is part of the test id ("palette_green-_palette").
  return helpers.palette_mask(side)


@pytest.mark.parametrize('case,make', [
    ('label_1', lambda: Image.fromarray(helpers.left_half(value=1))),
    ('label_2', lambda: Image.fromarray(helpers.left_half(value=2))),
    ('grey_100', lambda: Image.fromarray(helpers.left_half(value=100))),
    ('sixteen_bit_0_1', lambda: Image.fromarray(helpers.left_half(np.uint16, 1))),
    ('red_on_black_rgb', _red_on_black),
    ('palette_green', _palette),
    ('one_bit', lambda: Image.fromarray(helpers.left_half(value=1) > 0)),
    ('binary_255', lambda: Image.fromarray(helpers.left_half())),
])
def test_mask_nonzero_pixels_are_defects(tmp_path, case, make):
  root = _category(str(tmp_path / 'cat'))
  make().save(os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  s = _load(root)
  mask = s.test.masks[s.test.y == 1][0]
  assert mask[:, :8].all() and not mask[:, 8:].any(), case


def test_mask_empty_in_file_is_an_error_naming_the_image(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  Image.fromarray(helpers.left_half(value=0)).save(
      os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  with pytest.raises(folder.EmptyMaskError,
                     match=r'Defective image .*test/scratch/000\.png has an '
                     r'empty mask .*ground_truth/scratch/000_mask\.png'):
    _load(root)
  s = _load(root, empty_masks='keep')
  assert not s.test.masks.any()
  assert any('1 defect masks empty in the files themselves, kept all zero: '
             'ground_truth/scratch/000_mask.png' in n for n in s.info['notes'])


def test_mask_vanishing_on_downsizing_is_a_note(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  mask = np.zeros((32, 32), np.uint8)
  mask[2, 2] = 255  # NEAREST at 16x16 samples odd pixels only.
  Image.fromarray(mask).save(
      os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  s = _load(root)
  assert not s.test.masks.any()
  assert ('1 defect masks lose all their pixels when resized to 16x16 '
          '(nearest)') in s.info['notes']


def test_same_stem_two_formats_is_refused(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  with Image.open(os.path.join(root, 'train/good/001.png')) as image:
    image.save(os.path.join(root, 'train/good/001.jpg'))
  with pytest.raises(folder.DuplicateImageError,
                     match=r'Images .*train/good/001\.jpg and .*train/good/'
                     r'001\.png share a name stem'):
    _load(root)


@pytest.mark.parametrize('source,copy', [
    ('train/good/000.png', 'test/good/zz.png'),   # Byte copy, other name.
    ('train/good/001.png', 'test/scratch/zz.bmp'),  # Same pixels, BMP.
])
def test_identical_pixels_under_two_names_are_refused(tmp_path, source,
                                                      copy):
  root = _category(str(tmp_path / 'cat'))
  with Image.open(os.path.join(root, source)) as image:
    image.save(os.path.join(root, copy))
  if copy.startswith('test/scratch'):
    Image.fromarray(helpers.left_half()).save(
        os.path.join(root, 'ground_truth/scratch/zz_mask.png'))
  with pytest.raises(folder.DuplicateImageError,
                     match=f'Images {source} and {copy} hold identical pixels'
                     r' \(32x32 WxH'):
    _load(root)


def test_drafted_jpeg_duplicate_is_confirmed_at_native_resolution(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  rng = np.random.default_rng(0)
  photo = Image.fromarray(rng.integers(0, 256, (128, 128), np.uint8))
  photo.save(os.path.join(root, 'train/good/photo.jpg'), quality=90)
  shutil.copy(os.path.join(root, 'train/good/photo.jpg'),
              os.path.join(root, 'test/good/photo_copy.jpg'))
  decoded = folder.read_image(os.path.join(root, 'train/good/photo.jpg'), 16,
                              1)
  assert decoded.drafted  # 128x128 decoded at 1/4 or 1/8 scale.
  with pytest.raises(folder.DuplicateImageError,
                     match=r'train/good/photo\.jpg and test/good/photo_copy'):
    _load(root)


def test_draft_digest_collision_is_not_a_duplicate(tmp_path):
  rng = np.random.default_rng(1)
  paths = []
  for name in ('a.jpg', 'b.jpg'):
    paths.append(str(tmp_path / name))
    Image.fromarray(rng.integers(0, 256, (64, 64), np.uint8)).save(paths[-1])
  same = folder.Decoded(image=np.zeros((16, 16, 1), np.uint8),
                        original=(64, 64), digest='x', drafted=True)
  folder.check_duplicates(paths, [same, same], 1, 1.0)  # Differ natively.


def test_distinct_images_load_with_a_note(tmp_path):
  s = _load(_category(str(tmp_path / 'cat')))
  assert ('5 images checked for duplicates (same stem in a folder; '
          'identical decoded pixels): none') in s.info['notes']


def test_image_width_keeps_every_image_and_mask_at_height_x_width(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  s = _load(root, image_width=24)
  for split in (s.train, s.val, s.test):
    assert split.x.shape[1:] == (16, 24, 1) and split.masks.shape[1:] == (16, 24)
  defect = s.test.masks[s.test.y == 1][0]  # The left half, at the new width.
  assert defect[:, :12].all() and not defect[:, 12:].any()
  assert any('resized to 16x24 (nearest)' in n for n in s.info['notes'])


def test_an_empty_defect_folder_is_warned_about_and_listed(tmp_path, caplog):
  root = _category(str(tmp_path / 'cat'))
  os.makedirs(os.path.join(root, 'test', 'crack'))  # A defect type with no image.
  with caplog.at_level('WARNING'):
    s = _load(root)
  assert s.info['empty_kinds'] == ['crack']
  assert s.info['test_kinds'] == {'good': 1, 'scratch': 1}
  assert 'test folders without images, in no per-kind table: crack' in s.info['notes']
  assert any(os.path.join(root, 'test', 'crack') + ' holds no image' in r.getMessage()
             for r in caplog.records)
  assert _load(_category(str(tmp_path / 'full'))).info['empty_kinds'] == []
