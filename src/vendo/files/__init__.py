"""Files: input downloads (``vendo.files.fetch``) and, later, object storage.

Import from the submodules; this file stays empty so importing the package is free.
"""

__all__: list[str] = []
