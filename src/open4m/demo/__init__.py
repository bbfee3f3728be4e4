"""The demo world model: 4M end to end on the procedural world, trained and run on a laptop CPU.

`open4m demo --train` runs :func:`recipe.run_recipe` (world -> tokenizers -> FourM -> bundle);
`open4m demo` loads the shipped bundle (:class:`bundle.WorldModel`) and runs :func:`run.run_demo`.
The world's model form (`WorldSpec`, conversions, rendering) is library code in
`open4m.data.synthetic.world`; the world as a training source is `open4m.sources.world`.
"""

from .bundle import MissingModelError, WorldModel, save_bundle
from ..data.synthetic.world import IMAGE_MODALITIES, SEQUENCE_MODALITIES, WorldSpec, register_modalities

__all__ = ["IMAGE_MODALITIES", "SEQUENCE_MODALITIES", "MissingModelError", "WorldModel", "WorldSpec",
           "register_modalities", "save_bundle"]
