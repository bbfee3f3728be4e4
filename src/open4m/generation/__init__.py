"""Any-to-any generation: schedules, sampling primitives, placeholders and the sampler."""

from .confidence import scored_boxes
from .placeholders import blank, empty_target, from_token_lists, full_input
from .sampler import Sampler, TokenScores
from .sampling import filter_logits, sample_tokens
from .schedules import (GenerationSchedule, ScheduleStep, build_schedule, guidance_schedule, temperature_schedule,
                        token_schedule)

__all__ = [
    "GenerationSchedule", "ScheduleStep", "build_schedule", "token_schedule", "temperature_schedule", "guidance_schedule",
    "filter_logits", "sample_tokens", "Sampler", "TokenScores", "scored_boxes", "full_input", "empty_target", "blank", "from_token_lists",
]
