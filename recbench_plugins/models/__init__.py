"""The torch networks of the built-in generators and tokenizers, one module per plugin (same name).

Each plugin module (recbench_plugins.<name>) registers its Generator or Tokenizer with its Config and
presets and imports its network from here inside `build()` (a tokenizer: `fit()`), so that resolving
a plugin's name or config imports no torch."""
