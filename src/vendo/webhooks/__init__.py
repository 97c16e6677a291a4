"""Webhook delivery. Import from the submodules (``vendo.webhooks.sender``)."""

__all__: list[str] = []
