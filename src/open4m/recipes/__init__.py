"""Named training recipes (application layer): what the library's engine runs to make a specific model.

- :mod:`open4m.recipes.world`: the world model (`open4m demo --train`; default recipe
  `configs/demo/world64.yaml`): procedural world -> tokenizers -> FourM -> a bundle, the model shipped
  in `open4m/assets/world64` and its card (:mod:`open4m.recipes.world_card`).
- :mod:`open4m.recipes.real_eval`: a real evaluation set that ships offline (`open4m dataset
  motorcycle`): skimage's Middlebury stereo pair as photos with metric depth and normals, for
  `open4m eval --data DIR`.

Fine-tuning presets are plain recipes in `configs/finetune/` for `open4m finetune` (the engine's
fine-tuning task, `open4m.train.tasks.finetune`); they need no code here.
"""
