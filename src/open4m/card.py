"""Model cards (the Hub's ``README.md``) generated from what a saved model knows about itself.

The YAML header is ``huggingface_hub``'s :class:`ModelCardData`, so the Hub indexes licence, library
and tags; the body lists modalities, tokenizers, architecture, training data and metrics, the
facts a user needs to run the model and to judge it. Callers pass plain data, so this module
depends on nothing else in open4m.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

__all__ = ["CardInfo", "fourm_card", "tokenizer_card"]

CardInfo = Mapping[str, Any]
"""What a saving user may add: ``description``, ``data`` (training data), ``metrics`` (name -> value
or nested dict), ``license`` (SPDX id, default apache-2.0), ``tags``, ``notes``."""


def _header(info: CardInfo, tags: Sequence[str]) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(license=info.get("license", "apache-2.0"), library_name="open4m",
                         tags=sorted({"open4m", "4m", *tags, *info.get("tags", ())}),
                         pipeline_tag=info.get("pipeline_tag", "any-to-any"))
    return f"---\n{data.to_yaml()}\n---\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _metrics(metrics: Mapping[str, Any]) -> str:
    rows = []
    for task, value in metrics.items():
        if isinstance(value, Mapping):
            rows += [[task, k, _fmt(v)] for k, v in value.items()]
        else:
            rows.append([task, "", _fmt(value)])
    return _table(["task", "metric", "value"], rows)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return str(value)


def fourm_card(name: str, config: Mapping[str, Any], modality_rows: Sequence[Sequence[Any]],
               tokenizers: Mapping[str, str], info: CardInfo | None = None) -> str:
    """The card of a FourM folder: ``modality_rows`` are (name, kind, vocabulary, tokens, in/out)."""
    info = dict(info or {})
    arch = [["width", config.get("dim")], ["encoder blocks", config.get("encoder_depth")],
            ["decoder blocks", config.get("decoder_depth")], ["heads", config.get("num_heads")],
            ["image size", config.get("image_size")], ["patch size", config.get("patch_size")],
            ["MLP", "SwiGLU" if config.get("gated_mlp") else "GELU"]]
    parts = [_header(info, ["multimodal", "masked-modeling"]), f"# {name}\n",
             info.get("description", "A 4M-style any-to-any model (one encoder-decoder transformer over discrete "
                                     "tokens of many modalities), saved with open4m."), "",
             "## Use it\n", "```python\nimport open4m\n\n"
             f"pipe = open4m.pipeline(\"rgb->depth\", model=\"{info.get('repo_id', name)}\")  # pick any of the modalities "
             "below\nout = pipe(\"photo.jpg\", seed=0)\nout.save(\"outputs/\")\n```\n",
             "Its tokenizers are listed in `tokenizers.json` and load on first use.\n",
             "## Modalities\n", _table(["modality", "kind", "vocabulary", "tokens", "in/out"], modality_rows), "",
             "## Tokenizers\n",
             _table(["modality", "tokenizer"], [[k, f"`{v}`"] for k, v in sorted(tokenizers.items())]) if tokenizers
             else "No tokenizers were saved with this model; pass them to the pipeline.", "",
             "## Architecture\n", _table(["setting", "value"], arch), ""]
    if info.get("data"):
        parts += ["## Training data\n", str(info["data"]), ""]
    if info.get("metrics"):
        parts += ["## Metrics\n", _metrics(info["metrics"]), ""]
    if info.get("notes"):
        parts += ["## Notes\n", str(info["notes"]), ""]
    parts += ["## Licence\n", f"{info.get('license', 'apache-2.0')}.", ""]
    return "\n".join(parts)


def tokenizer_card(name: str, config: Mapping[str, Any], info: CardInfo | None = None) -> str:
    """The card of a tokenizer folder: what it encodes, its codebook and its input convention."""
    info = dict(info or {})
    keys = ("tokenizer_class", "modality", "image_size", "patch_size", "n_channels", "codebook_size",
            "num_codebooks", "latent_dim", "enc_type", "dec_type", "preprocess")
    rows = [[k, f"`{_fmt(config[k])}`"] for k in keys if config.get(k) not in (None, "", {})]
    parts = [_header(info, ["tokenizer"]), f"# {name}\n",
             info.get("description", "A 4M modality tokenizer (discrete tokens and back), saved with open4m."), "",
             "## Use it\n", f"```python\nimport open4m\n\ntok = open4m.load_tokenizer(\"{info.get('repo_id', name)}\")\n"
             "tokens = tok.encode(x)\ndecoded = tok.decode(tokens)\n```\n", "## Configuration\n",
             _table(["setting", "value"], rows), ""]
    if info.get("data"):
        parts += ["## Training data\n", str(info["data"]), ""]
    if info.get("metrics"):
        parts += ["## Metrics\n", _metrics(info["metrics"]), ""]
    parts += ["## Licence\n", f"{info.get('license', 'apache-2.0')}.", ""]
    return "\n".join(parts)
