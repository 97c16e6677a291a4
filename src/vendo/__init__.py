"""Vendo: a self-hosted model platform that runs Cog models behind Replicate's API.

This module stays free of imports: the model runtime (``vendo.sdk``, ``vendo.schema``,
``vendo.runner``) is imported inside model environments that lack Vendo's own
dependencies, and importing it pulls in this file first.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
