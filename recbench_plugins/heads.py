"""The check a transformer generator's config makes in validate(): attention heads divide the width.

Apart from the layers themselves (recbench_plugins.models.layers), so that checking a config imports no torch."""

from __future__ import annotations

from recbench.errors import UsageError


def check_heads(n_embd: int, n_head: int) -> None:
    """Attention splits n_embd into n_head equal heads: n_head must divide it (a config's validate())."""
    if n_embd % n_head:
        raise UsageError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head}); e.g. --n_head="
                         f"{max(h for h in range(1, n_head + 1) if n_embd % h == 0)}.")
