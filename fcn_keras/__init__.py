"""fcn_keras: Fully Convolutional Networks for semantic segmentation in Keras 3.

Public API:
    Models:   FCN32s, FCN16s, FCN8s, build_fcn, convolutionalize_vgg16
    Staged:   fcn16s_from_fcn32s, fcn8s_from_fcn16s, transfer_weights
    Layers:   CaffePreprocess, PadToMultiple, CropToReference,
              BilinearUpsampling, bilinear_kernel
    Data:     load_dataset, dataset_info, DatasetInfo (fcn_keras.data)
    Training: train, evaluate, SegmentationCrossEntropy, FocalLoss,
              median_frequency_weights, SegmentationMetrics (fcn_keras.training,
              fcn_keras.evaluation, fcn_keras.losses, fcn_keras.metrics)

Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015 (arXiv:1411.4038).
"""

from fcn_keras.convolutionalize import convolutionalize_vgg16
from fcn_keras.data import DatasetInfo, dataset_info, load_dataset
from fcn_keras.evaluation import evaluate
from fcn_keras.geometry import CropToReference, PadToMultiple
from fcn_keras.losses import FocalLoss, SegmentationCrossEntropy, median_frequency_weights
from fcn_keras.metrics import SegmentationMetrics
from fcn_keras.models import FCN8s, FCN16s, FCN32s, build_fcn
from fcn_keras.preprocessing import CaffePreprocess
from fcn_keras.staged import fcn8s_from_fcn16s, fcn16s_from_fcn32s, transfer_weights
from fcn_keras.training import train
from fcn_keras.upsampling import BilinearUpsampling, bilinear_kernel

__version__ = "0.1.0"

__all__ = [
    "FCN32s",
    "FCN16s",
    "FCN8s",
    "build_fcn",
    "convolutionalize_vgg16",
    "fcn16s_from_fcn32s",
    "fcn8s_from_fcn16s",
    "transfer_weights",
    "CaffePreprocess",
    "PadToMultiple",
    "CropToReference",
    "BilinearUpsampling",
    "bilinear_kernel",
    "load_dataset",
    "dataset_info",
    "DatasetInfo",
    "train",
    "evaluate",
    "SegmentationCrossEntropy",
    "FocalLoss",
    "median_frequency_weights",
    "SegmentationMetrics",
]
