"""Evaluation (application layer): any model on any labelled source, against trivial baselines.

`open4m.eval.runner` (`open4m eval`) scores the tasks a model and the data both have the modalities
of, on world scenes, shards or a folder of labelled photos of any size; `open4m.eval.scoring` scores
one task and its baselines; `open4m.eval.models.EvalModel` runs the model through
`open4m.generation.Pipeline` (one per target spec); `open4m.eval.captions` checks generated world
captions against the scene graph. The task metrics themselves are library code (`open4m.metrics`),
re-exported here.
"""

from ..metrics import (BoxAP, CaptionMetrics, DepthMetrics, NormalMetrics, SegmentationMetrics, box_iou, caption_words,
                       palette_distance, reconstruction_metrics)

__all__ = ["BoxAP", "CaptionMetrics", "DepthMetrics", "NormalMetrics", "SegmentationMetrics", "box_iou",
           "caption_words", "palette_distance", "reconstruction_metrics"]
