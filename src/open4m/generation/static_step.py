"""One MaskGIT / ROAR step as a single `torch.compile` graph (`fullgraph=True`), with static shapes.

The eager step is shaped by the data: the encoder sees exactly the visible tokens (their count
grows as targets get committed), the decoder exactly the positions still to predict (their count
shrinks), and those counts are read from tensors. Compiled as is, every step would hit a new
shape (a recompile) and every count a host read (a graph break). Here every step of a generation
has the same shapes, so one graph serves them all:

- the encoder gets every input slot of the token dict, the hidden ones padded and blocked by the
  attention mask (a blocked key adds nothing), instead of the data-dependent visible count;
- the decoder gets a query at every position of the target, and the self-attention mask blocks
  the positions the eager step would not decode (already committed ones; for ROAR, the ones not
  drawn), so every query sees the same keys as in the eager step;
- temperature and guidance weights enter as tensors (schedules change them every step), while the
  scheme, top-k and top-p, which stay fixed for a target, are constants of the graph.

What stays outside the graph is cheap and needs the caller's `torch.Generator`, which TorchDynamo
cannot trace: ROAR's draw of positions, the multinomial draw (on exactly the rows the eager step
samples, so a seeded generator draws the same tokens) and MaskGIT's top-k commit. The outputs
match the eager step up to floating-point rounding: the same tokens at temperature 0 and with a
seeded generator, except where two candidates are within rounding of each other.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch
from torch._dynamo.exc import FailOnRecompileLimitHit

from ..batch import ModDict
from ..model.fourm import EncoderTokens, FourM
from .sampling import GREEDY_TEMPERATURE, draw_tokens, guide, token_probabilities
from .schedules import ScheduleStep

logger = logging.getLogger(__name__)

def gather_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows `idx` (B, n) of a (B, N, D) tensor."""
    return torch.gather(t, 1, idx[..., None].expand(-1, -1, t.shape[-1]))


def encoder_slots(model: FourM, mod_dict: ModDict) -> int:
    """How many tokens the model's encoder could take from `mod_dict`: the static encoder length."""
    return max(1, sum(e["input_mask"].shape[1] for n, e in mod_dict.items() if n in model.encoder_embeddings))


def step_distribution(model: FourM, passes: Sequence[ModDict], target: str, query_blocked: torch.Tensor,
                      num_encoder_tokens: int, weights: torch.Tensor | None, temperature: torch.Tensor,
                      top_k: int | float, top_p: float, greedy: bool) -> torch.Tensor:
    """Encode, decode every position of `target`, guide, filter: (B, N) argmax ids if `greedy`,
    else the (B, N, V) distribution to draw from.

    `query_blocked` (B, N) is True at positions the step does not predict; they still get a query
    (static shape) but no other query attends to them. All guidance passes share one encoder and
    one decoder batch: with a fixed encoder length they need no padding to stack.
    """
    parts = [model.select_encoder_tokens(d, num_encoder_tokens) for d in passes]
    tokens = EncoderTokens(*(torch.cat([getattr(p, f) for p in parts]) for f in ("x", "emb", "blocked", "mod_ids")))
    context = model.encode(tokens)
    entry = passes[0][target]
    queries = model.mask_token + model.decoder_embeddings[target].embed(entry)[1]
    n = query_blocked.shape[1]
    attn_blocked = query_blocked[:, None, :].expand(-1, n, -1)
    p = len(passes)
    hidden = model.decode(queries.repeat(p, 1, 1), context, attn_blocked.repeat(p, 1, 1))
    logits = model.logits(target, hidden)
    if weights is not None:
        logits = guide(logits, weights)
    if greedy:
        return logits.argmax(dim=-1)
    return token_probabilities(logits, temperature, top_k, top_p)


class CompiledStep:
    """`step_distribution` under `torch.compile(fullgraph=True)`, plus the eager draw on the rows the eager
    step would sample. One graph per pass count, greedy or not, and shape (batch, target, conditions);
    TorchDynamo keeps them with the function, so every sampler of the process shares them."""

    def __init__(self, model: FourM, backend: str | Callable = "inductor") -> None:
        self.model = model
        self.backend = backend
        self.fn = torch.compile(step_distribution, fullgraph=True, dynamic=False, backend=backend)
        self.limit_hit = False

    def covers(self, passes: Sequence[ModDict]) -> bool:
        """Whether the static step gives the eager step's result for these passes.

        Not when a row of a pass has no visible encoder token (the unconditional pass of the first
        guided step when every condition is guided, before any target token is committed): such a
        row's attention is uniform over blocked keys, and the eager step encodes that pass alone and
        pads its context with zeros, so its result depends on the padding that a static shape
        changes. That step runs eagerly; the next ones, with committed tokens visible, compile.
        """
        if self.model.config.num_register_tokens > 0:
            return True
        for d in passes:
            hidden = [e["input_mask"].all(dim=1) for n, e in d.items() if n in self.model.encoder_embeddings]
            if not hidden or bool(torch.stack(hidden).all(dim=0).any()):
                return False
        return True

    def __call__(self, passes: Sequence[ModDict], weights: tuple[float, ...] | None, step: ScheduleStep,
                 order: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(ids, confidence) at the positions `order` (B, n), as `Sampler._sample` gives them eagerly; None
        when this step's shapes would need a graph past TorchDynamo's recompile limit (run it eagerly)."""
        entry = passes[0][step.target]
        device = entry["target_mask"].device
        query_blocked = torch.ones_like(entry["target_mask"]).scatter(1, order, False)
        greedy = step.temperature < GREEDY_TEMPERATURE
        temperature = torch.tensor(1.0 if greedy else step.temperature, dtype=torch.float32, device=device)
        w = None if weights is None else torch.tensor(weights, dtype=torch.float32, device=device)
        try:
            out = self.fn(self.model, list(passes), step.target, query_blocked, encoder_slots(self.model, passes[0]), w,
                          temperature, step.top_k, step.top_p, greedy)
        except FailOnRecompileLimitHit:
            # TorchDynamo keeps a few graphs per function (torch._dynamo.config.recompile_limit, shared by every
            # sampler of the process); fullgraph=True turns one more into an error. Shapes it already compiled
            # keep running compiled; a new one runs eagerly instead of failing the generation.
            if not self.limit_hit:
                logger.warning("torch.compile's recompile limit is reached: new step shapes (batch size, target, "
                               "guidance passes) run eagerly; raise torch._dynamo.config.recompile_limit to "
                               "compile them")
            self.limit_hit = True
            return None
        if greedy:
            ids = out.gather(1, order)
            return ids, torch.ones(ids.shape, dtype=torch.float32, device=device)
        return draw_tokens(gather_rows(out, order), generator)


__all__ = ["CompiledStep", "step_distribution", "encoder_slots", "gather_rows"]
