"""Generation schedules: the flat list of decoding steps a chained any-to-any generation runs.

A schedule says, for every target modality in order, how it is decoded (MaskGIT, random-order
ROAR, or autoregressive), how many tokens each step commits, at which temperature, with which
top-k / top-p, how strongly classifier-free guidance pushes, and on which conditions. It is plain
data, validated once here, so the sampler can trust it and users get errors that say why.

The token and temperature schedules reproduce the official ones number for number (cosine
rounding, `linspace` truncation, the `onex` curve indexed by step), which is what lets generation
match the official sampler at equal seeds.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .. import modalities
from ..errors import ConfigError, UnknownNameError
from ..modalities import Modality
from .presets import DEMO_TOP_P, demo_settings

SCHEMES = ("maskgit", "roar", "autoregressive")
TOKEN_SCHEDULES = ("cosine", "linear")
CFG_SCHEDULES = ("constant", "linear", "cosine", "rising")


# ------------------------------------------------------------------------------------------
# Token and temperature schedules
# ------------------------------------------------------------------------------------------
def _cumulative_counts(fractions: list[float], tokens: int) -> list[int]:
    """Per-step counts from the fraction committed after each step, rounded as running totals.

    Each step commits at least one token and leaves at least one for every later step, so any
    `len(fractions) <= tokens` schedule is valid and the counts sum to `tokens`.
    """
    steps, done, counts = len(fractions), 0, []
    for i, f in enumerate(fractions):
        total = min(max(round(tokens * f), done + 1), tokens - (steps - 1 - i))
        counts.append(total - done)
        done = total
    return counts


def token_schedule(kind: str, steps: int, tokens: int) -> list[int]:
    """Tokens committed per step; they sum to `tokens`.

    `cosine`: step i commits round(tokens * (s_i - s_i+1)) with s_i = (1 + cos(pi i / steps)) / 2,
    the last step takes the remainder (few tokens first and last, many in the middle).
    `linear`: the differences of `linspace(0, tokens, steps + 1)` truncated to ints, largest first.
    """
    if steps < 1:
        raise ConfigError(f"steps={steps}: a schedule needs at least one step")
    if not 1 <= steps <= tokens:
        raise ConfigError(f"{steps} steps for {tokens} tokens: every step must commit at least one token; use steps <= {tokens}")
    if kind == "cosine":
        s = [0.5 * (1 + math.cos(math.pi * i / steps)) for i in range(steps)]
        counts = [round(tokens * (a - b)) for a, b in zip(s[:-1], s[1:])]
        counts.append(tokens - sum(counts))
        if min(counts) < 1:  # rounding each step alone overshot (64 tokens in 16 steps): round the running total
            counts = _cumulative_counts([1 - v for v in s[1:]] + [1.0], tokens)
    elif kind == "linear":
        edges = np.linspace(0, tokens, steps + 1).astype(int)
        counts = sorted(np.diff(edges).tolist(), reverse=True)
    else:
        raise ConfigError(f"unknown token schedule {kind!r}; choose one of {TOKEN_SCHEDULES}")
    return counts


_ONEX = re.compile(r"onex:([^:]+):([^:]+)")


def temperature_schedule(kind: str, temperature: float, counts: Sequence[int]) -> list[float]:
    """One temperature per step of a token schedule `counts`.

    `constant`; `linear`: the start temperature times the fraction of tokens still masked before
    each step; `onex:{min_t}:{power}`: min_t + (T - min_t) * (1 - done_i) * y_i with y the
    normalised x^-power curve on linspace(1, 100, total tokens), indexed by *step* (as the
    official code does). `linear` and `onex` are clipped at 1e-9 like the official ones; a
    constant 0 stays 0, which is greedy decoding.
    """
    total = sum(counts)
    done = np.cumsum(counts) / total
    if kind == "constant":
        return [float(temperature)] * len(counts)
    if kind == "linear":
        temps = np.concatenate(([temperature], temperature * (1 - done[:-1])))
    elif (m := _ONEX.fullmatch(kind)) is not None:
        try:
            min_t, power = float(m.group(1)), float(m.group(2))
        except ValueError:
            raise ConfigError(f"temperature schedule {kind!r}: write onex:{{min_t}}:{{power}} with numbers, e.g. onex:0.5:0.5") from None
        # A NaN or infinite number makes every temperature NaN (torch.multinomial fails mid-generation), and a
        # negative floor was clipped to 1e-9 without a word, turning the schedule greedy: refuse both here.
        if not (math.isfinite(min_t) and math.isfinite(power)) or min_t < 0:
            raise ConfigError(f"temperature schedule {kind!r}: min_t must be a finite number >= 0 and power a finite "
                              "number, e.g. onex:0.5:0.5")
        y = np.linspace(1, 100, total) ** -power
        y = (y - y.min()) / (y.max() - y.min()) if y.max() > y.min() else np.ones_like(y)
        temps = min_t + (temperature - min_t) * (1 - done) * y[: len(counts)]
    else:
        raise ConfigError(f"unknown temperature schedule {kind!r}; use constant, linear or onex:{{min_t}}:{{power}}")
    return np.clip(temps, 1e-9, None).tolist()


def guidance_schedule(kind: str, scale: float | tuple[float, ...], counts: Sequence[int]) -> list:
    """One classifier-free guidance scale per step of a token schedule `counts`.

    Why schedules: guidance matters most while the first tokens fix the layout, and strong
    guidance to the end can over-saturate details, so `linear` and `cosine` fade it towards 1 (no
    guidance) as tokens get decoded; `rising` does the opposite, as MUSE's linearly increasing
    guidance. With r_i the fraction of tokens still masked before step i and d_i the fraction
    decoded after it: `constant` s; `linear` 1 + (s - 1) r_i; `cosine` 1 + (s - 1)(1 - cos(pi r_i)) / 2;
    `rising` 1 + (s - 1) d_i. All give s for a one-step target (autoregressive ones included).
    Per-condition weights have no neutral value to fade towards, so they only take `constant`.
    The official code has only `constant`.
    """
    if kind not in CFG_SCHEDULES:
        raise ConfigError(f"unknown guidance schedule {kind!r}; choose one of {CFG_SCHEDULES}")
    if kind == "constant":
        return [scale] * len(counts)
    if isinstance(scale, tuple):
        raise ConfigError(f"guidance schedule {kind!r} needs one guidance scale; per-condition weights {scale} "
                         "only take the 'constant' schedule")
    total = sum(counts)
    decoded_after = np.cumsum(counts) / total
    masked_before = 1 - np.concatenate(([0.0], decoded_after[:-1]))
    if kind == "linear":
        factor = masked_before
    elif kind == "cosine":
        factor = (1 - np.cos(np.pi * masked_before)) / 2
    else:
        factor = decoded_after
    return (1 + (scale - 1) * factor).tolist()


# ------------------------------------------------------------------------------------------
# Data classes
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleStep:
    """One decoding step of one target modality.

    For `autoregressive` targets a single step stands for the whole sequence: `num_tokens` is
    then the most tokens to generate (decoding stops earlier at the end token).
    `cfg_scale` is one float, or one weight per condition for multi-condition guidance;
    a scale of 1 (or no conditions) means no guidance.
    """

    target: str
    scheme: str
    num_tokens: int
    temperature: float
    top_k: int | float = 0
    top_p: float = 0.0
    cfg_scale: float | tuple[float, ...] = 1.0
    cfg_conditions: tuple[str, ...] = ()

    @property
    def guided(self) -> bool:
        if not self.cfg_conditions:
            return False
        scales = self.cfg_scale if isinstance(self.cfg_scale, tuple) else (self.cfg_scale,)
        return any(s != 1.0 for s in scales) or len(scales) > 1


@dataclass(frozen=True)
class GenerationSchedule:
    """The conditions given and the steps that produce every target, in order."""

    conditions: tuple[str, ...]
    steps: tuple[ScheduleStep, ...]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.target for s in self.steps))

    def steps_for(self, target: str) -> tuple[ScheduleStep, ...]:
        if target not in self.targets:
            close = difflib.get_close_matches(str(target), self.targets, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise UnknownNameError(f"{target!r} is not a target of this schedule; {hint}"
                                   f"use one of its targets: {', '.join(self.targets)}")
        return tuple(s for s in self.steps if s.target == target)

    def __iter__(self) -> Iterator[ScheduleStep]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        lines = [f"conditions: {', '.join(self.conditions) or '(none)'}"]
        for t in self.targets:
            steps = self.steps_for(t)
            first, last, temps = steps[0], steps[-1], [s.temperature for s in steps]
            cfg = first.cfg_scale if first.cfg_scale == last.cfg_scale else f"{first.cfg_scale:.3g}->{last.cfg_scale:.3g}"
            lines.append(
                f"{t}: {first.scheme}, {len(steps)} step(s), tokens {[s.num_tokens for s in steps]}, "
                f"temperature {temps[0]:.3g}->{temps[-1]:.3g}, top_k {first.top_k}, top_p {first.top_p}, "
                f"cfg {cfg} on [{', '.join(first.cfg_conditions)}]"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# The builder
# ------------------------------------------------------------------------------------------
_SEPARATOR = re.compile(r"(?<=[\d.])-")  # "3.0-0.5" -> two values; "-1.0" stays a negative number


def _per_target(value, n: int, name: str, cast) -> list:
    """Broadcast a scalar, split a hyphen string (`"3.0-0.5"`), or check a per-target list."""
    if isinstance(value, str) and cast is not str:
        parts = _SEPARATOR.split(value)
        value = parts if len(parts) > 1 else parts[0]  # "1.0" is one value for every target
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConfigError(f"{name}: {len(value)} values for {n} targets; give one value or one per target")
        return [None if v is None else _cast(cast, v, name) for v in value]
    return [None if value is None else _cast(cast, value, name)] * n


# What each numeric option takes, for the message when a value is not one (`--temps abc`).
_OPTION_FORMS = {"tokens": "a whole number of tokens, e.g. 64", "steps": "a whole number of steps, e.g. 8 or 8-4",
                 "temps": "a number, e.g. 1.0 or 3.0-0.5", "top_k": "0 (off), a count such as 40 or a fraction such as 0.1",
                 "top_p": "a number in [0, 1], e.g. 0.8", "cfg": "one scale (2.0) or weights per condition (caption=3,rgb=1)"}


def _cast(cast, value, name: str):
    """One option value through its cast; a value that is not a (finite) number is a `ConfigError` naming the option."""
    try:
        out = cast(value)
    except ConfigError:
        raise
    except (ValueError, TypeError):
        raise ConfigError(f"{name}={value!r} is not understood; give {_OPTION_FORMS.get(name, 'a valid value')} "
                          "(one value, or one per target)") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise ConfigError(f"{name}={value!r} is not finite; give {_OPTION_FORMS.get(name, 'a finite number')}")
    return out


def resolve_modality(name: str, image_size: int, *, target: bool) -> Modality:
    """The registered modality a user means by `name`, as a generation target or as a condition.

    Accepts the registry name or the short forms users type (`depth` -> `tok_depth@224` for a
    224-pixel model, `rgb` -> `rgb@224`). Unknown names raise `UnknownModalityError` with the closest
    names; a modality that cannot play the asked role (raw pixels as a target, say) raises `ConfigError`.
    """
    candidates = [name, f"{name}@{image_size}", f"tok_{name}@{image_size}", f"tok_{name}"]
    known = modalities.all_modalities()
    for c in candidates:
        mod = known.get(c)
        if mod is not None and (mod.decoder if target else mod.encoder):
            return mod
    mod = modalities.get(name)  # unknown names raise with suggestions
    role = "generated" if target else "given as a condition"
    raise ConfigError(f"modality {name!r} ({mod.kind.value}) cannot be {role}; "
                     + ("generate its tok_ form instead" if target else "tokenize it into its tok_ form"))


def _parse_spec(spec: str, image_size: int) -> tuple[list[Modality], list[Modality]]:
    parts = [p.strip() for p in spec.split("->")]
    if len(parts) < 2 or not all(parts[1:]):
        raise ConfigError(f"schedule spec {spec!r}: write 'conditions->target1->target2', e.g. 'caption->tok_clip@224->tok_rgb@224'")
    conds = [resolve_modality(n.strip(), image_size, target=False) for n in parts[0].split(",") if n.strip()]
    targets = [resolve_modality(n.strip(), image_size, target=True) for p in parts[1:] for n in p.split(",") if n.strip()]
    names = [m.name for m in conds + targets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"schedule spec {spec!r}: {dupes} appear more than once; a modality is either given or generated, once")
    return conds, targets


def _unknown_modalities(unknown: Sequence[str], known: Sequence[str]) -> str:
    """One line naming what the model lacks, the names it would accept instead, and everything it has.

    A model trained on its own variants of a modality (the world model's ``world_caption``) is the
    usual reason a registry name such as ``caption`` is missing, so names sharing a word come first.
    """
    names = sorted(set(known))
    hints = []
    for name in unknown:
        word = name.split("@")[0]
        close = [k for k in names if word in k.split("@")[0].split("_")] or difflib.get_close_matches(name, names, 3)
        if close:
            hints.append(f"for {name!r} use {' or '.join(repr(c) for c in close)}")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return f"the model does not know {', '.join(map(repr, unknown))}{hint}; it has {', '.join(names)}"


def build_schedule(
    spec: str,
    *,
    schemes: str | Sequence[str | None] | None = None,
    tokens: int | str | Sequence[int | None] | None = None,
    steps: int | str | Sequence[int | None] | None = None,
    token_schedules: str | Sequence[str | None] | None = None,
    temps: float | str | Sequence[float | None] | None = None,
    temp_schedules: str | Sequence[str | None] | None = None,
    top_k: int | float | str | Sequence[int | float | None] | None = None,
    top_p: float | str | Sequence[float | None] | None = None,
    cfg: float | str | Mapping[str, float] | Sequence[float | tuple[float, ...] | None] | None = None,
    cfg_schedules: str | Sequence[str | None] | None = None,
    cfg_grow_conditioning: bool | None = None,
    image_size: int = 224,
    model_modalities: Sequence[str] | None = None,
    preset: str = "open4m",
) -> GenerationSchedule:
    """Turn `"cond1,cond2->target1->target2"` plus per-target options into a validated schedule.

    Every option is one value for all targets, a list with one value per target (None = the
    default for that target), or a hyphen string (`temps="3.0-0.5"`). What is not given comes from
    the `preset`: `open4m` (image-like targets MaskGIT with 8 cosine steps over all their tokens,
    sequences autoregressive up to their `max_tokens`, temperature 1, no filtering, no guidance),
    `demo` (the official demo sampler's per-modality settings, see `open4m.generation.presets`,
    with `open4m` for modalities it does not know) or `auto` (`demo` when every modality is an
    official one). ROAR always uses the linear token schedule. Steps, token, temperature and
    guidance schedules do not apply to autoregressive targets (one step, one temperature, one
    guidance scale). Guidance schedules (`constant`, `linear`, `cosine`, `rising`; see
    `guidance_schedule`) set the scale per step of image-like targets. `cfg` may weight each
    condition (`{"caption": 3, "rgb": 1}` or `"caption=3,rgb=1"`, unnamed conditions 1): the
    guided logits are then uncond + sum_i w_i (cond_i - uncond); a weight may also name a target drawn
    before (`"caption->det->tok_rgb@224"` with `cfg=[1, "det=2,caption=0.5"]`), which then joins that
    target's guidance conditions. With `cfg_grow_conditioning`,
    every finished target joins the guidance conditions of the later ones. `model_modalities`,
    when given, is checked so a schedule never asks a model for a modality it does not know.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown schedule preset {preset!r}; choose one of {PRESETS}")
    conds, targets = _parse_spec(spec, image_size)
    n = len(targets)
    if model_modalities is not None:
        unknown = [m.name for m in conds + targets if m.name not in model_modalities]
        if unknown:
            raise ConfigError(_unknown_modalities(unknown, model_modalities))
    if preset == "auto":
        preset = "demo" if all(modalities.is_builtin(m.name) for m in conds + targets) else "open4m"
    cond_names = [m.name for m in conds]
    defaults = [(demo_settings(cond_names, m.name) if preset == "demo" else None) for m in targets]
    for d in defaults:
        if d is not None:
            d.setdefault("top_p", DEMO_TOP_P)
    if cfg_grow_conditioning is None:
        per_target = cfg if isinstance(cfg, list) else [cfg]
        weighted = any(isinstance(v, (Mapping, tuple)) or (isinstance(v, str) and "=" in v) for v in per_target)
        cfg_grow_conditioning = preset == "demo" and not weighted and any(d is not None for d in defaults)

    def option(value, name: str, cast) -> list:
        given = _per_target(value, n, name, cast)
        return [g if g is not None else _default(defaults[i], name, cast) for i, g in enumerate(given)]

    opt_schemes = option(schemes, "schemes", str)
    opt_tokens = _per_target(tokens, n, "tokens", _whole)
    opt_steps = option(steps, "steps", _whole)
    opt_tok_sched = option(token_schedules, "token_schedules", str)
    opt_temps = option(temps, "temps", float)
    opt_temp_sched = option(temp_schedules, "temp_schedules", str)
    opt_top_k = option(top_k, "top_k", _top_k_value)
    opt_top_p = option(top_p, "top_p", float)
    opt_cfg = option(cfg, "cfg", _cfg_value)
    opt_cfg_sched = option(cfg_schedules, "cfg_schedules", str)

    cfg_conditions = [m.name for m in conds]
    out: list[ScheduleStep] = []
    for i, mod in enumerate(targets):
        where = f"target {mod.name!r}"
        scheme = opt_schemes[i] or ("maskgit" if mod.is_image_like else "autoregressive")
        if scheme not in SCHEMES:
            raise ConfigError(f"{where}: unknown decoding scheme {scheme!r}; choose one of {SCHEMES}")
        if mod.is_image_like and scheme == "autoregressive":
            raise ConfigError(f"{where}: an image-like modality is decoded with 'maskgit' or 'roar', not 'autoregressive'")
        if not mod.is_image_like and scheme != "autoregressive":
            raise ConfigError(f"{where}: {scheme!r} decodes token grids; a {mod.kind.value} modality is decoded 'autoregressive'")
        limit = mod.num_tokens(image_size)
        n_tokens = opt_tokens[i] if opt_tokens[i] is not None else limit
        if not 1 <= n_tokens <= limit:
            raise ConfigError(f"{where}: tokens={n_tokens}, but it has at most {limit} tokens; use 1..{limit}")
        temperature, top_k_i, top_p_i, scale = opt_temps[i], opt_top_k[i], opt_top_p[i], opt_cfg[i]
        if temperature < 0:
            raise ConfigError(f"{where}: temperature {temperature} < 0; use 0 for greedy decoding")
        if not 0.0 <= top_p_i <= 1.0:
            raise ConfigError(f"{where}: top_p={top_p_i} must lie in [0, 1] (0 disables nucleus filtering)")
        step_conditions = cfg_conditions
        if isinstance(scale, dict):
            step_conditions, scale = _condition_weights(scale, cfg_conditions, [t.name for t in targets], i,
                                                        image_size, where)
        if isinstance(scale, tuple):
            if cfg_grow_conditioning:
                raise ConfigError(f"{where}: per-condition guidance weights cannot be combined with cfg_grow_conditioning "
                                 "(the condition set changes between targets); give one scale")
            if len(scale) != len(step_conditions):
                raise ConfigError(f"{where}: {len(scale)} guidance weights for {len(step_conditions)} conditions "
                                 f"{step_conditions}; give one weight per condition")
        common = dict(target=mod.name, scheme=scheme, top_k=top_k_i, top_p=top_p_i, cfg_conditions=tuple(step_conditions))
        if scheme == "autoregressive":
            counts, step_temps = [n_tokens], [temperature]
        else:
            kind = opt_tok_sched[i] or ("linear" if scheme == "roar" else "cosine")
            n_steps = opt_steps[i] if opt_steps[i] is not None else _default_steps(kind, n_tokens)
            if scheme == "roar" and kind != "linear":
                raise ConfigError(f"{where}: ROAR commits the same number of random tokens each step; use token_schedules='linear'")
            if n_steps > n_tokens:
                raise ConfigError(f"{where}: {n_steps} steps for {n_tokens} tokens; use at most {n_tokens} steps")
            counts = token_schedule(kind, n_steps, n_tokens)
            step_temps = temperature_schedule(opt_temp_sched[i], temperature, counts)
        try:
            step_scales = guidance_schedule(opt_cfg_sched[i], scale, counts)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
        out.extend(ScheduleStep(num_tokens=c, temperature=t, cfg_scale=g, **common)
                   for c, t, g in zip(counts, step_temps, step_scales))
        if cfg_grow_conditioning:
            cfg_conditions.append(mod.name)
    return GenerationSchedule(tuple(m.name for m in conds), tuple(out))


PRESETS = ("open4m", "demo", "auto")
# What the open4m preset uses for options a caller leaves out (None means: computed per target).
_OPEN4M_DEFAULTS: dict[str, Any] = dict(temps=1.0, temp_schedules="constant", top_k=0, top_p=0.0, cfg=1.0,
                                        cfg_schedules="constant")


def _default(settings: dict[str, Any] | None, name: str, cast) -> Any:
    value = settings.get(name) if settings is not None else None
    if value is None:
        value = _OPEN4M_DEFAULTS.get(name)
    return None if value is None else cast(value)


def _condition_weights(weights: dict[str, float], conditions: list[str], targets: list[str], index: int,
                       image_size: int, where: str) -> tuple[list[str], tuple[float, ...]]:
    """Per-condition guidance weights by name -> (the step's guidance conditions, one weight each; unnamed: 1).

    A weight may name a target drawn before this one (`caption->det->rgb` with `det=2` on the RGB target): that
    target then joins this step's guidance conditions, hidden in the unconditional pass and given a pass of its
    own, so a picture can be made to follow a link of its chain harder in one call. Unnamed earlier targets stay
    visible to every pass, as without guidance.
    """
    earlier = targets[:index]  # never conditions too: a spec names each modality once
    allowed = conditions + earlier
    resolved, given = {}, {}
    for key, w in weights.items():
        name = key if key in allowed or key in targets else resolve_modality(key, image_size, target=False).name
        if name not in allowed:
            drawn = f"; the targets drawn before it are {earlier}" if earlier else ""
            later = (f" ({name} is drawn at or after this target: weight it on a later target alone with one value "
                     f"per target, e.g. cfg=[1, '{key}=2'] or --cfg 1-{key}=2)" if name in targets else "")
            raise ConfigError(f"{where}: cfg names {key!r}, which is neither a condition nor a target drawn before "
                              f"it; the conditions are {conditions}{drawn}{later}")
        if name in resolved:  # `rgb=3,rgb@224=2`: the later weight silently replaced the earlier one
            raise ConfigError(f"{where}: cfg weights {given[name]!r} and {key!r} both weight the condition {name}; "
                              "give each condition one weight")
        resolved[name], given[name] = w, key
    guided = conditions + [t for t in earlier if t in resolved]
    return guided, tuple(float(resolved.get(c, 1.0)) for c in guided)


def _default_steps(kind: str, tokens: int, most: int = 8) -> int:
    """Up to 8 steps: the most that leave no step of the token schedule empty (small grids need fewer)."""
    for n in range(min(most, tokens), 1, -1):
        try:
            token_schedule(kind, n, tokens)
            return n
        except ValueError:
            continue
    return 1


def _top_k_value(v) -> int | float:
    """An int count, or a float fraction of the vocabulary (official convention)."""
    value = float(v)
    if value < 0:
        raise ConfigError(f"top_k={v} must be >= 0 (0 disables it)")
    if isinstance(v, int) or (isinstance(v, str) and value.is_integer() and "." not in v):
        return int(value)
    if value > 1:
        raise ConfigError(f"top_k={v}: a float is a fraction of the vocabulary in (0, 1]; give an int for a count")
    return value


def _whole(v) -> int:
    """A whole number of tokens or steps (8, "8", 8.0): 2.7 is refused rather than truncated to 2 by `int`."""
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError(f"not a whole number: {v!r}")
    return int(v)


def _cfg_value(v) -> float | tuple[float, ...] | dict[str, float]:
    weights = _cfg_weights(v)
    if isinstance(weights, float):
        return weights
    # per-condition weights must be finite: inf or NaN logits fail deep inside torch.multinomial
    bad = [w for w in (weights.values() if isinstance(weights, dict) else weights) if not math.isfinite(w)]
    if bad:
        raise ConfigError(f"cfg {v!r}: guidance weight {bad[0]} is not finite; give finite numbers (caption=3,rgb=1)")
    return weights


def _cfg_weights(v) -> float | tuple[float, ...] | dict[str, float]:
    if isinstance(v, Mapping):
        return {str(k): float(w) for k, w in v.items()}
    if isinstance(v, str) and "=" in v:
        pairs = [p.partition("=") for p in v.split(",") if p.strip()]
        if any(not sep or not k.strip() for k, sep, _ in pairs):
            raise ConfigError(f"cfg {v!r}: write one scale (2.0) or weights per condition (caption=3,rgb=1)")
        names = [k.strip() for k, _, _ in pairs]
        twice = sorted({k for k in names if names.count(k) > 1})
        if twice:  # a dict would keep the last weight of each name without a word
            raise ConfigError(f"cfg {v!r}: {', '.join(twice)} weighted more than once; give each condition one weight")
        try:
            return {k.strip(): float(w) for k, _, w in pairs}
        except ValueError:
            raise ConfigError(f"cfg {v!r}: each weight must be a number (caption=3,rgb=1)") from None
    if isinstance(v, (list, tuple)):
        if not v:
            raise ConfigError("cfg: an empty list of guidance weights; give one weight per condition")
        return tuple(float(x) for x in v)
    return float(v)


__all__ = [
    "SCHEMES", "TOKEN_SCHEDULES", "CFG_SCHEDULES", "PRESETS", "ScheduleStep", "GenerationSchedule", "build_schedule",
    "resolve_modality",
    "token_schedule", "temperature_schedule", "guidance_schedule",
]
