"""A plugin whose import fails, as a plugin with a missing dependency would."""

raise ImportError("recbench_broken needs the package 'not-installed-anywhere'")
