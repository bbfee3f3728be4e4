"""The any-to-any sampler: MaskGIT, random-order (ROAR) and autoregressive decoding on a FourM.

`Sampler(model).generate(conditions, schedule, generator=...)` walks a `GenerationSchedule`.
Every finished target stays in the token dict as a fully visible input, so it conditions every
later target (chained generation). It computes the same thing as the official sampler (token for
token at temperature 0), but does much less work:

- classifier-free guidance runs the conditional and unconditional passes (and, for
  multi-condition guidance, one pass per condition) as ONE decoder forward, stacked along the
  batch (the encoder too, unless padding the passes to one length would waste more than it
  saves); the decoder queries are shared, so ROAR picks the same positions in every pass (the
  official code drew them separately when unseeded and mixed logits of different positions);
- autoregressive decoding runs the encoder once per target, projects the cross-attention keys and
  values once, and feeds new tokens through a self-attention KV cache instead of re-decoding the
  whole prefix; each pass also verifies up to `draft_tokens` guessed next tokens (exact
  speculative decoding, see `speculative.py`), so one pass can yield several tokens;
- no deep copies of token dicts; unconditional passes share the untouched entries.

Also fixed: generated sequences are cut at their end token, and their target masks are "no
target" (the official merge copied the input mask into the target mask).

`Sampler(model, compile=True)` runs each MaskGIT / ROAR step as one `torch.compile` graph with
static shapes (`static_step.py`), with the same tokens; eager is the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from tqdm.auto import tqdm

from .. import modalities
from ..batch import ModalityBatch, ModDict
from ..data.masking import merge_spans
from ..modalities import SpecialTokens
from ..model.fourm import Context, EncoderTokens, FourM
from ..model.layers import rewind_cache
from ..ops import additive_mask
from .placeholders import blank, empty_target, from_token_lists, full_input
from .sampling import GREEDY_TEMPERATURE, guide, sample_tokens, token_probabilities
from .schedules import GenerationSchedule, ScheduleStep
from .static_step import CompiledStep, gather_rows
from .speculative import DraftLength, causal_block_mask, drafts_tensor, lookup_draft, verify
from ..errors import ConfigError, DataError

Condition = torch.Tensor | Mapping[str, torch.Tensor]
PADDING_SLACK = 1.25  # encode guidance passes as one batch while padding adds at most 25% tokens
#: How many likeliest tokens `TokenScores` keeps per generated position (the model's runner-up choices).
TOP_CHOICES = 5


@dataclass(frozen=True)
class TokenScores:
    """How sure the model was of one generated sequence, token by token.

    Read off the distributions the autoregressive decoder computed anyway (after guidance, at
    temperature 1, whatever temperature drew the tokens), so it costs no extra pass. Detections
    use it for their confidence and runner-up classes (`open4m.generation.scored_boxes`); the
    summed log-probability of a caption can rank several samples of it.
    """

    ids: list[int]  # the generated tokens, the end token included
    logprobs: list[float]  # log-probability of each generated token
    choices: list[list[tuple[int, float]]]  # per position, the TOP_CHOICES likeliest tokens and their log-probs


def _cat_encoder_tokens(parts: list[EncoderTokens]) -> EncoderTokens:
    """Stack several passes' encoder tokens along the batch, padding each to the longest one."""
    n = max(p.x.shape[1] for p in parts)

    def pad(t: torch.Tensor, value) -> torch.Tensor:
        missing = n - t.shape[1]
        if missing == 0:
            return t
        return torch.cat([t, t.new_full((t.shape[0], missing, *t.shape[2:]), value)], dim=1)

    return EncoderTokens(
        x=torch.cat([pad(p.x, 0.0) for p in parts]),
        emb=torch.cat([pad(p.emb, 0.0) for p in parts]),
        blocked=torch.cat([pad(p.blocked, True) for p in parts]),
        mod_ids=torch.cat([pad(p.mod_ids, -1) for p in parts]),
    )


def _cat_contexts(parts: list[Context]) -> Context:
    """Stack contexts along the batch; padded keys get a blocked cross-attention mask."""
    n = max(p.context.shape[1] for p in parts)
    dtype = parts[0].context.dtype
    contexts, masks = [], []
    for p in parts:
        b, m, d = p.context.shape
        contexts.append(torch.cat([p.context, p.context.new_zeros(b, n - m, d)], dim=1))
        blocked = torch.zeros(b, n, dtype=torch.bool, device=p.context.device)
        blocked[:, m:] = True
        mask = additive_mask(blocked[:, None, None, :], dtype)
        if p.mask is not None:
            mask[..., :m] = p.mask
        masks.append(mask)
    return Context(torch.cat(contexts), torch.cat(masks))


def _remaining(entry: Mapping[str, torch.Tensor], name: str) -> tuple[torch.Tensor, int]:
    """Positions still to predict, in order (B, n), and n; every row must have the same count."""
    todo = ~entry["target_mask"]
    counts = todo.sum(dim=1)
    if bool((counts != counts[0]).any()):
        raise DataError(f"{name}: the rows of the batch have different numbers of positions left to generate "
                         f"({counts.tolist()}); generate them in separate batches")
    n = int(counts[0])
    order = torch.sort(entry["target_mask"].to(torch.uint8), dim=1, stable=True).indices[:, :n]
    return order, n


class Sampler:
    """Runs generation schedules on a FourM model (see the module docstring)."""

    def __init__(self, model: FourM, special: SpecialTokens = SpecialTokens(), *, draft_tokens: int = 8,
                 compile: bool | str | Callable = False) -> None:
        """`draft_tokens`: most guessed tokens one autoregressive decoder pass verifies
        (speculative decoding, `open4m.generation.speculative`); 0 decodes one token per pass.
        `compile`: run MaskGIT / ROAR steps as one `torch.compile` graph with static shapes
        (`open4m.generation.static_step`); True uses inductor, a string or callable is another backend.
        The first step of each shape pays the compilation; autoregressive passes stay eager."""
        if isinstance(draft_tokens, bool) or not isinstance(draft_tokens, int) or draft_tokens < 0:
            raise ConfigError(f"draft_tokens={draft_tokens!r}: give a count >= 0 (0 turns speculative decoding off)")
        if not (isinstance(compile, (bool, str)) or callable(compile)) or compile == "":
            raise ConfigError(f"compile={compile!r}: give True (inductor), False, or a torch.compile backend")
        self.model = model
        self.special = special
        self.image_size = model.config.image_size
        self.draft_tokens = draft_tokens
        backend = "inductor" if compile is True else compile
        self.compiled = CompiledStep(model, backend) if backend else None

    # -- setting up -----------------------------------------------------------------------------
    def prepare(self, conditions: Mapping[str, Condition], schedule: GenerationSchedule,
                batch_size: int | None = None) -> ModDict:
        """Conditions as full inputs followed by an empty placeholder for every target.

        A condition is a tensor (pixels, token ids, embeddings; see `full_input`) or a ready
        token-dict entry with its masks (for partial inputs such as span-masked text).
        """
        model, device = self.model, self.model.mask_token.device
        mod_dict: ModDict = {}
        for name, value in conditions.items():
            if name not in model.encoder_embeddings:
                modalities.get(name)  # unknown names raise with suggestions
                raise ConfigError(f"this model cannot take {name!r} as input; its inputs are {model.input_modalities}")
            if isinstance(value, Mapping):
                missing = {"tensor", "input_mask", "target_mask"} - set(value)
                if missing:
                    raise DataError(f"condition {name!r}: a token-dict entry needs {sorted(missing)}; "
                                     "or pass the bare tensor and the masks are built for you")
                entry = {k: v.to(device) for k, v in value.items()}
                entry.setdefault("decoder_attention_mask", torch.zeros_like(entry["input_mask"], dtype=torch.int32))
            else:
                entry = full_input(name, value.to(device), special=self.special, image_size=self.image_size)
            mod_dict[name] = entry
        sizes = {n: e["tensor"].shape[0] for n, e in mod_dict.items()}
        if batch_size is None:
            if not sizes:
                raise ConfigError("no conditions given: pass batch_size for unconditional generation")
            batch_size = next(iter(sizes.values()))
        wrong = {n: b for n, b in sizes.items() if b != batch_size}
        if wrong:
            raise DataError(f"conditions {wrong} do not have batch size {batch_size}; give every condition the same batch")
        for target in schedule.targets:
            if target in mod_dict:
                raise ConfigError(f"{target!r} is both a condition and a target; drop it from one of them")
            if target not in model.decoder_embeddings:
                raise ConfigError(f"this model cannot generate {target!r}; its outputs are {model.output_modalities}")
            first = schedule.steps_for(target)[0]
            n = first.num_tokens if first.scheme == "autoregressive" else None
            mod_dict[target] = empty_target(target, batch_size, n, device=device, special=self.special,
                                            image_size=self.image_size)
        return mod_dict

    # -- the loop -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, conditions: Mapping[str, Condition], schedule: GenerationSchedule, *,
                 generator: torch.Generator | None = None, batch_size: int | None = None,
                 progress: bool = False, scores: dict[str, list[TokenScores]] | None = None) -> ModDict:
        """Generate every target of `schedule`; returns the token dict with all of them filled in.

        Image-token targets come back as (B, N) ids; sequences as right-padded (B, L) ids whose
        `input_mask` hides the padding. Pass a seeded `generator` to reproduce a sample. Pass a
        dict as `scores` to get a `TokenScores` per row of every autoregressive target in it.
        """
        mod_dict = self.prepare(conditions, schedule, batch_size)
        for step in tqdm(schedule.steps, desc="generating", unit="step", disable=not progress):
            self.step(mod_dict, step, generator, scores)
        return mod_dict

    def step(self, mod_dict: ModDict, step: ScheduleStep, generator: torch.Generator | None = None,
             scores: dict[str, list[TokenScores]] | None = None) -> None:
        """Run one schedule step in place (for callers that show or edit intermediate results); an
        autoregressive step puts its `TokenScores` in `scores` when given."""
        if step.target not in mod_dict:
            raise DataError(f"{step.target!r} has no entry to fill; build the dict with Sampler.prepare")
        if step.scheme == "autoregressive":
            self._autoregressive(mod_dict, step, generator, scores)
        else:
            self._parallel(mod_dict, step, generator)

    # -- shared pieces --------------------------------------------------------------------------------
    def _passes(self, mod_dict: ModDict, step: ScheduleStep) -> tuple[list[ModDict], tuple[float, ...] | None]:
        """The token dicts one step runs together, and the guidance weights that combine them."""
        if not step.guided:
            return [mod_dict], None
        missing = [c for c in step.cfg_conditions if c not in mod_dict]
        if missing:
            raise ConfigError(f"guidance on {missing}, which are neither given nor generated yet")
        uncond = {n: blank(n, e, self.special) if n in step.cfg_conditions else e for n, e in mod_dict.items()}
        if isinstance(step.cfg_scale, tuple):
            conds = [{**uncond, c: mod_dict[c]} for c in step.cfg_conditions]
            return [*conds, uncond], step.cfg_scale
        return [mod_dict, uncond], (step.cfg_scale,)

    def _encode(self, passes: list[ModDict]) -> Context:
        """One context for all passes, stacked along the batch.

        Passes of similar length run through the encoder as one batch. An unconditional pass
        is often far shorter (RGB -> X guidance hides all 196 RGB tokens), and padding it to the
        conditional length would double the encoder's work, so such passes are encoded alone and
        only their contexts are padded: the decoder still runs once over all passes.
        """
        tokens = [self.model.select_encoder_tokens(d) for d in passes]
        if len(tokens) == 1:
            return self.model.encode(tokens[0])
        lengths = [t.x.shape[1] for t in tokens]
        if max(lengths) * len(lengths) <= PADDING_SLACK * sum(lengths):
            return self.model.encode(_cat_encoder_tokens(tokens))
        return _cat_contexts([self.model.encode(t) for t in tokens])

    def _sample(self, logits: torch.Tensor, weights: tuple[float, ...] | None, step: ScheduleStep,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        if weights is not None:
            logits = guide(logits, weights)
        return sample_tokens(logits, step.temperature, step.top_k, step.top_p, generator)

    def _logits(self, passes: list[ModDict], name: str, order: torch.Tensor) -> torch.Tensor:
        """Logits of image target `name` at positions `order` (B, n), every pass stacked along the batch."""
        context = self._encode(passes)
        emb = self.model.decoder_embeddings[name].embed(passes[0][name])[1]
        queries = self.model.mask_token + gather_rows(emb, order)
        hidden = self.model.decode(queries.repeat(len(passes), 1, 1), context, None)
        return self.model.logits(name, hidden)

    # -- image targets ------------------------------------------------------------------------------
    @torch.no_grad()
    def marginals(self, conditions: Mapping[str, Condition], schedule: GenerationSchedule, *,
                  temperature: float = 1.0, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """Each image target's per-token distributions given the conditions alone: {target: (B, N, vocab)}.

        One pass per target with all of its tokens masked, which is what the model is trained to predict
        at full masking. Squared error over pixels is minimised by each pixel's posterior mean, which
        depends only on these per-position distributions (for a decoder that maps each token to its own
        patch), so `Pipeline.estimate` draws independent grids from them. The mean of MaskGIT samples
        aims at the same mean but is biased: MaskGIT commits its most confident tokens first and the rest
        follow them, so its samples spread less than the model's own distributions. Guidance and top-k /
        top-p come from each target's first step; `temperature` 1 is the model's own distribution (0:
        the argmax, a one-hot distribution). Targets do not condition each other here.
        """
        if temperature < 0:
            raise ConfigError(f"temperature={temperature} < 0; use 1 for the model's own distribution, 0 for its argmax")
        sequences = [t for t in schedule.targets if schedule.steps_for(t)[0].scheme == "autoregressive"]
        if sequences:
            raise ConfigError(f"{sequences} are decoded autoregressively: their tokens have no distributions "
                              "independent of each other; estimate image targets only (generate sequences instead)")
        mod_dict = self.prepare(conditions, schedule, batch_size)
        given = {n: e for n, e in mod_dict.items() if n not in schedule.targets}
        out = {}
        for name in schedule.targets:
            step = schedule.steps_for(name)[0]
            order, _ = _remaining(mod_dict[name], name)
            passes, weights = self._passes({**given, name: mod_dict[name]}, step)
            logits = self._logits(passes, name, order)
            if weights is not None:
                logits = guide(logits, weights)
            if temperature < GREEDY_TEMPERATURE:
                probs = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
            else:
                probs = token_probabilities(logits, temperature, step.top_k, step.top_p)
            full = torch.zeros((*mod_dict[name]["tensor"].shape[:2], probs.shape[-1]), device=probs.device)
            out[name] = full.scatter(1, order[..., None].expand_as(probs), probs)
        return out

    def _parallel(self, mod_dict: ModDict, step: ScheduleStep, generator: torch.Generator | None) -> None:
        """One MaskGIT or ROAR step: predict masked positions, commit `num_tokens` of them."""
        name, entry = step.target, mod_dict[step.target]
        order, left = _remaining(entry, name)
        if step.num_tokens > left:
            raise DataError(f"{name}: the step commits {step.num_tokens} tokens but only {left} are left to generate")
        if step.scheme == "roar":
            # Random positions among the remaining ones, drawn per row from the caller's generator.
            noise = torch.rand(order.shape, generator=generator, device=order.device)
            order = order.gather(1, noise.argsort(dim=1)[:, :step.num_tokens])
        passes, weights = self._passes(mod_dict, step)
        sampled = None
        if self.compiled is not None and self.compiled.covers(passes):
            sampled = self.compiled(passes, weights, step, order, generator)
        if sampled is None:
            sampled = self._sample(self._logits(passes, name, order), weights, step, generator)
        ids, confidence = sampled
        if step.scheme == "maskgit":
            best = torch.topk(confidence, step.num_tokens, dim=-1).indices
            ids, order = ids.gather(1, best), order.gather(1, best)
        self._commit(entry, order, ids)

    @staticmethod
    def _commit(entry: ModalityBatch, positions: torch.Tensor, ids: torch.Tensor) -> None:
        b = entry["tensor"].shape[0]
        flat = entry["tensor"].reshape(b, -1)
        entry["tensor"] = flat.scatter(1, positions, ids.to(flat.dtype))
        entry["input_mask"] = entry["input_mask"].scatter(1, positions, False)
        entry["target_mask"] = entry["target_mask"].scatter(1, positions, True)

    # -- sequence targets ---------------------------------------------------------------------------
    def _autoregressive(self, mod_dict: ModDict, step: ScheduleStep, generator: torch.Generator | None,
                        scores: dict[str, list[TokenScores]] | None = None) -> None:
        """Decode a sequence with a KV cache (and verified guesses), then splice it into the entry.

        The target span starts with its first token (`[S_1]`) and ends at its last one (`[S_2]`,
        or `[EOS]` for text targets): generation stops once every row produced that end token, or
        after as many tokens as the span has positions (at most `max_tokens`).
        """
        model, name, entry = self.model, step.target, mod_dict[step.target]
        order, n = _remaining(entry, name)
        if n < 2:
            raise DataError(f"{name}: a sequence target needs a start and an end token; build it with empty_target")
        length = min(n, model.modality_info[name].max_tokens)
        start = entry["tensor"].gather(1, order[:, :1])
        stop = entry["tensor"].gather(1, order[:, n - 1:n])
        module = model.decoder_embeddings[name]
        # Positional + modality embeddings of the target ranks, added exactly as in training.
        pos_emb = gather_rows(module.embed(entry)[1], order[:, :length])

        passes, weights = self._passes(mod_dict, step)
        context = self._encode(passes)
        xa_mask = None if context.mask is None else context.mask.to(pos_emb.dtype)
        kv = [block.context_kv(context.context) for block in model.decoder]
        caches: list[dict] = [{"capacity": length} for _ in model.decoder]
        histories = [[t] for t in start[:, 0].tolist()]
        sources = self._draft_sources(mod_dict, name)

        tokens, token, fed, guess = [start], start, 0, DraftLength(self.draft_tokens)
        picks: list[tuple[torch.Tensor, ...]] = []  # per pass, for `scores`: (chosen, top values, top ids) log-probs
        done = (start == stop).squeeze(1)
        while fed < length and not bool(done.all()):
            room = min(guess.next(), length - fed - 1)
            drafts = [lookup_draft(h, src, room) for h, src in zip(histories, sources)]
            if any(drafts):
                draft = drafts_tensor(drafts, histories, token.device)
                feed = torch.cat([token, draft], dim=1)
                sa_mask = causal_block_mask(fed, feed.shape[1], pos_emb.dtype, pos_emb.device)
            else:
                draft, feed, sa_mask = token[:, :0], token, None
            y = (module.token_emb(feed) + pos_emb[:, fed:fed + feed.shape[1]]).repeat(len(passes), 1, 1)
            for block, block_kv, cache in zip(model.decoder, kv, caches):
                y = block(y, None, sa_mask, xa_mask, kv=block_kv, cache=cache)
            logits = model.logits(name, model.decoder_norm(y))
            if weights is not None:
                logits = guide(logits, weights)
            new = verify(logits, draft, done, step.temperature, step.top_k, step.top_p, generator)
            kept = new.shape[1] - 1
            if scores is not None:
                picks.append(_picks(logits[:, :kept + 1], new))
            fed += kept + 1
            for cache in caches:  # forget the keys/values of rejected guesses
                rewind_cache(cache, fed)
            guess.update(draft.shape[1], kept)
            tokens.append(new)
            for h, row in zip(histories, new.tolist()):
                h.extend(row)
            token = new[:, -1:]
            done = done | (new == stop).any(dim=1)
        generated = torch.cat(tokens, dim=1)
        if scores is not None:
            scores[name] = _token_scores(generated[:, 1:], picks, stop[:, 0])
        mod_dict[name] = self._merge(entry, generated, stop)

    def _draft_sources(self, mod_dict: ModDict, target: str) -> list[list[list[int]]]:
        """Per row, the visible tokens of every sequence in the dict that shares the target's vocabulary."""
        vocab = self.model.modality_info[target].vocab_size
        rows: list[list[list[int]]] = [[] for _ in range(mod_dict[target]["tensor"].shape[0])]
        for name, entry in mod_dict.items():
            mod = self.model.modality_info[name]
            if mod.kind is not modalities.Kind.SEQUENCE or mod.vocab_size != vocab:
                continue
            for row, ids, hidden in zip(rows, entry["tensor"].tolist(), entry["input_mask"].tolist()):
                row.append([t for t, h in zip(ids, hidden) if not h])
        return rows

    def _merge(self, entry: ModalityBatch, generated: torch.Tensor, stop: torch.Tensor) -> ModalityBatch:
        """Put each row's generated span where its sentinel sits in the input; cut at the end token."""
        rows = []
        for tensor, hidden, pred, end in zip(entry["tensor"].tolist(), entry["input_mask"].tolist(),
                                             generated.tolist(), stop[:, 0].tolist()):
            if end in pred[1:]:
                pred = pred[:pred.index(end, 1) + 1]
            visible = [t for t, h in zip(tensor, hidden) if not h]
            rows.append(merge_spans(visible, pred, self.special))
        return from_token_lists(rows, special=self.special, device=generated.device)


def _picks(logits: torch.Tensor, new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities of the tokens one pass chose, and the pass's likeliest tokens (kept small: the
    whole (B, L, vocab) distribution of a long sequence would not fit in memory)."""
    dist = logits.float().log_softmax(dim=-1)
    top = dist.topk(min(TOP_CHOICES, dist.shape[-1]), dim=-1)
    return dist.gather(-1, new[..., None]).squeeze(-1), top.values, top.indices


def _token_scores(new: torch.Tensor, picks: list[tuple[torch.Tensor, ...]], stop: torch.Tensor) -> list[TokenScores]:
    """Per row, the scores of the generated tokens up to and including the row's first end token."""
    if not picks:
        return [TokenScores([], [], []) for _ in range(new.shape[0])]
    chosen, values, indices = (torch.cat(parts, dim=1).tolist() for parts in zip(*picks))
    rows = []
    for ids, lps, vals, idx, end in zip(new.tolist(), chosen, values, indices, stop.tolist()):
        n = ids.index(end) + 1 if end in ids else len(ids)
        rows.append(TokenScores(ids[:n], lps[:n], [list(zip(i, v)) for i, v in zip(idx[:n], vals[:n])]))
    return rows


__all__ = ["Sampler", "TokenScores", "TOP_CHOICES"]
