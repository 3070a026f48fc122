"""funnel-example-plugin: a minimal third-party funnel plugin with one operator."""

from funnel_example_plugin.ops import ItemRecency

__all__ = ["ItemRecency"]
