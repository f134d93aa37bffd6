"""Hugging Face's model-loading progress bars, switched off while recbench loads an embedding model.

transformers (5.x) draws a tqdm bar, "Loading weights", each time it loads a model: on a terminal
it lands between recbench's own lines ("embedding 1,682 items with all-MiniLM-L6-v2 ...", the
embedding bar), and in a log file it leaves carriage-return debris. It tells nothing recbench
does not say itself, so `hide_loading_bars` turns transformers' bars off. huggingface_hub's download
bars stay as they were: transformers' switch turns them off too, and a first download of a large
hub model is worth a bar. recbench's own progress (recbench.progress, rich) is not touched.
"""

from __future__ import annotations


def hide_loading_bars() -> None:
    """transformers' progress bars off for the rest of the process; huggingface_hub's left as they were."""
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
        from transformers.utils import logging
    except ImportError:  # an older or a trimmed install: nothing to switch
        return
    downloads_shown = not are_progress_bars_disabled()
    logging.disable_progress_bar()
    if downloads_shown:
        enable_progress_bars()
