"""Any-to-any generation: schedules, sampling primitives (and, beside them, the sampler).

Only light modules are imported here, so `import open4m.generation` never builds a model.
"""

from .sampling import filter_logits, sample_tokens
from .schedules import GenerationSchedule, ScheduleStep, build_schedule, temperature_schedule, token_schedule

__all__ = [
    "GenerationSchedule", "ScheduleStep", "build_schedule", "token_schedule", "temperature_schedule",
    "filter_logits", "sample_tokens",
]
