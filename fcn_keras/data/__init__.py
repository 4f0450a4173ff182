"""Segmentation data for FCNs: sources, joint augmentation and the tf.data pipeline.

Public API:
    load_dataset(source, split, ...) -> tf.data.Dataset of (image uint8, mask int32)
    dataset_info(source, ...)        -> DatasetInfo
    scan_dataset(source, split, ...) -> (num_good, SkipReport); raises BadExampleError
    DatasetInfo, Augment, SkipReport, BadExampleError, generate_synthetic

Modules: `pipeline` (load_dataset), `base` (the `Source` interface),
`sources` (the registry: source strings and their options), `synthetic`,
`voc` (VOC + SBD), `folders` (paired folders / list files, CamVid),
`tfds_source`, `transforms` (joint augmentation), `validation` (bad-input
checks, skip report), `info` (DatasetInfo). See docs/data.md.
"""

from fcn_keras.data.info import DatasetInfo
from fcn_keras.data.pipeline import dataset_info, load_dataset, scan_dataset
from fcn_keras.data.synthetic import generate_synthetic
from fcn_keras.data.transforms import Augment
from fcn_keras.data.validation import BadExampleError, SkipReport

__all__ = [
    "load_dataset",
    "dataset_info",
    "scan_dataset",
    "DatasetInfo",
    "Augment",
    "SkipReport",
    "BadExampleError",
    "generate_synthetic",
]
