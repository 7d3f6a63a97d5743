"""The experiment config: its schema, checks, config-file helpers and run records.

Depends on ml_collections only (no jax, flax or scikit-learn), so loading a
config file is cheap and imports nothing else of ganad_jax. Modules:

  schema.py: `base_config(method)` (the shared fields and the method's),
    `validate`, `from_dict` (a config.json read back), `with_method`.
  data.py, model.py, train.py, patch.py, ensemble.py, mesh.py: the shared
    sections' defaults, documented field by field.
  methods/: each method's sections and their checks, registered by the
    method's own module (`methods/<name>.py`); pretrained.py: the backbone
    section the Gaussian and PaDiM read.
  dotted.py: `set_field`, the one setter of a field named "section.field".
  files.py: what config files call: `parse_arg`, `sibling_config`,
    `shared_data_path`.
  blocks.py: groups of fields several config files share (a data set).
  record.py: which runs are the same run (RESULT_NEUTRAL_FIELDS,
    RESUME_NEUTRAL_FIELDS, `run_record`, `differing_fields`, `describe`,
    `weights_change`).

The names below are the package's interface: `from ganad_jax import configs;
configs.base_config("ae")`.
"""

from ganad_jax.configs import blocks
from ganad_jax.configs import dotted
from ganad_jax.configs import files
from ganad_jax.configs import methods
from ganad_jax.configs import record
from ganad_jax.configs import schema

base_config = schema.base_config
validate = schema.validate
from_dict = schema.from_dict
with_method = schema.with_method
METHOD_NAMES = methods.NAMES
is_foreign_field = methods.is_foreign
set_field = dotted.set_field
parse_arg = files.parse_arg
sibling_config = files.sibling_config
shared_data_path = files.shared_data_path
digits_anomaly_class = blocks.digits_anomaly_class
magnetic_tile_folder = blocks.magnetic_tile_folder
magnetic_tile_patches = blocks.magnetic_tile_patches
breast_cancer_table = blocks.breast_cancer_table
RESULT_NEUTRAL_FIELDS = record.RESULT_NEUTRAL_FIELDS
RESUME_NEUTRAL_FIELDS = record.RESUME_NEUTRAL_FIELDS
flatten = record.flatten
run_record = record.run_record
differing_fields = record.differing_fields
describe = record.describe
weights_change = record.weights_change
