"""recbench's built-in plugins, installed as `recbench_plugins` and registered exactly as a
third-party package's plugins are (see recbench.registry.BUILTIN_PLUGINS)."""
