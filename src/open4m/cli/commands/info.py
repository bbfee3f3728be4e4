"""`open4m info`: the modality registry and the model presets, as tables; `--pretrained`: every released model."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="list the registered modalities and the model presets (--pretrained: the "
                                    "released 4M models and tokenizers)")
    p.add_argument("--preset", choices=["all", "4M-7", "4M-21", "4M-7-SR"], default="all",
                   help="only the modalities of one official modality set")
    p.add_argument("--pretrained", action="store_true",
                   help="list every released 4M model and tokenizer (names usable as --model / tokenizer ids)")
    p.set_defaults(handler=run)


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A plain aligned text table (no dependency needed for a few columns)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def print_pretrained() -> None:
    from open4m.pretrained import list_pretrained

    models = [p for p in list_pretrained() if p.is_model]
    rows = [[p.name, p.kind, p.params, p.data, f"{len(p.modalities)}", p.repo_id] for p in models]
    print(f"Released 4M models ({len(rows)}):")
    print(format_table(rows, ["name", "kind", "params", "data", "modalities", "Hub id"]))
    print()
    toks = [p for p in list_pretrained() if not p.is_model]
    rows = [[p.name, ", ".join(p.modalities), p.expects] for p in toks]
    print(f"Released tokenizers ({len(rows)}), resolved automatically from a model's modalities:")
    print(format_table(rows, ["name", "serves", "expects"]))
    print()
    print("Files are fetched on first use into the Hugging Face cache (HF_HUB_CACHE); HF_HUB_OFFLINE=1 works once "
          "they are there. See docs/pretrained.md.")


def run(args: argparse.Namespace) -> int:
    from open4m import modalities
    from open4m.model.config import PRESETS

    if args.pretrained:
        print_pretrained()
        return 0
    names = list(modalities.all_modalities()) if args.preset == "all" else list(modalities.PRESETS[args.preset])
    rows = []
    for name in names:
        m = modalities.get(name)
        if m.is_image_like:
            layout = f"{m.num_tokens()} ({'x'.join(map(str, m.grid_size()))}, patch {m.patch_size})"
        else:
            layout = str(m.max_tokens or "-")
        sets = ",".join(k for k, v in modalities.PRESETS.items() if name in v) or "-"
        enc_dec = ("E" if m.encoder else "-") + ("D" if m.decoder else "-")
        rows.append([name, m.kind.value, str(m.vocab_size or "-"), layout, enc_dec, str(m.id), sets])
    print(f"Modalities ({len(rows)}):")
    print(format_table(rows, ["name", "kind", "vocab", "tokens", "enc/dec", "id", "official sets"]))
    print()
    prow = [[n, str(c["dim"]), f"{c['encoder_depth']}+{c['decoder_depth']}", str(c["num_heads"]),
             "SwiGLU" if c["gated_mlp"] else "GELU", "yes" if c.get("qk_norm") else "no",
             "yes" if c["qkv_bias"] else "no"] for n, c in PRESETS.items()]
    print(f"FourM presets ({len(prow)}):")
    print(format_table(prow, ["preset", "dim", "enc+dec", "heads", "mlp", "qk-norm", "bias"]))
    return 0
