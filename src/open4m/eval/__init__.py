"""Evaluation: task metrics (depth, normals, segmentation, boxes, captions, palettes, reconstruction)."""

from ..metrics import BoxAP, DepthMetrics, NormalMetrics, SegmentationMetrics, box_iou, palette_distance, reconstruction_metrics

__all__ = ["BoxAP", "DepthMetrics", "NormalMetrics", "SegmentationMetrics", "box_iou", "palette_distance",
           "reconstruction_metrics"]
