"""The runner child: ``python -m vendo.runner serve|openapi`` (docs/design/runtime.md).

Stdlib only; imports nothing at import time so that ``vendo.runner.protocol`` stays
cheap for the parent.
"""

__all__: list = []
