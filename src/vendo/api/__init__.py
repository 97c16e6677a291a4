"""HTTP APIs: Cog's API for one model (``vendo.api.cog``) and Replicate's (``vendo.api.v1``).

Import from the submodules; this file stays empty so that importing one API does not
load the other.
"""

__all__: list[str] = []
