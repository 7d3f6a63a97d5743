"""Groups of fields that several config files share: a data set and its batch sizes."""

import ml_collections


def digits_anomaly_class(config: ml_collections.ConfigDict, digit: int = 0) -> None:
  """Sets `config.data` to GANomaly's anomaly_class protocol on scikit-learn's digits.

  One digit is the anomaly, the other nine are normal; the loader resizes the
  8x8 grayscale digits to 16x16 (bilinear).

  Args:
    config: an experiment config, changed in place.
    digit: the anomalous digit, 0-9.
  """
  config.data.source = "digits"
  config.data.protocol = "anomaly_class"
  config.data.class_index = digit
  config.data.image_size = 16  # The smallest size the nets take; digits are 8x8.
  config.data.channels = 1


def magnetic_tile_folder(config: ml_collections.ConfigDict, path: str) -> None:
  """Sets `config.data` to an MVTec-AD-style folder of grayscale photos at 64x64.

  The magnetic-tile configs' data: train on train/good, test on test/*, pixel
  metrics from the ground-truth masks.

  Args:
    config: an experiment config, changed in place.
    path: the category folder (Magnetic-Tile-Defect or any MVTec AD category).
  """
  config.data.source = "folder"
  config.data.protocol = "folder"
  config.data.path = path
  config.data.image_size = 64  # Photos of 103-632 x 222-403 px, resized (bilinear).
  config.data.channels = 1
  # 4 `uneven` photos of Magnetic-Tile-Defect have all-zero masks in their
  # files: kept as anomalous images with empty masks, and named in the notes.
  config.data.empty_masks = "keep"


def breast_cancer_table(config: ml_collections.ConfigDict) -> None:
  """Sets the data of the breast-cancer configs and the batch sizes that suit them.

  scikit-learn's bundled breast-cancer table, protocol anomaly_class with the
  malignant rows as the anomaly. Batches of 32 for the 257 training rows and
  512 for evaluation (all 283 test rows in one batch).

  Args:
    config: an experiment config, changed in place.
  """
  config.data.source = "sklearn_tabular"
  config.data.sklearn_name = "breast_cancer"
  config.data.protocol = "anomaly_class"
  config.data.class_name = "malignant"
  config.train.batch_size = 32
  config.eval.batch_size = 512


def magnetic_tile_patches(config: ml_collections.ConfigDict, image_size: int, size: int,
                          stride: int) -> None:
  """Sets AnoGAN's patch protocol (`configs.patch`) on a magnetic-tile config.

  The photos (103-632 px wide, 222-403 px high; width / height 0.36-2.68,
  median 0.85) are all resized to image_size x image_size: no one (H, W)
  keeps every photo's aspect, and resizing rather than cropping or padding
  keeps every pixel of every photo and mask in the pixel metrics, with no
  padding for the tiles to flag; square is within 15 % of the median aspect.
  The nets see size x size crops; test and val images are scored by tiles
  `stride` apart.

  Args:
    config: a magnetic-tile config (`magnetic_tile_folder`), changed in place.
    image_size: the side the photos are resized to.
    size: the side of the crops and tiles.
    stride: the step between test tiles.
  """
  config.data.image_size = image_size
  config.patch.size = size
  config.patch.stride = stride
