"""The web pages of ``vendo serve``: sign-in, explore, model pages with a playground,
prediction pages and the account's pages.

The server side is thin: Jinja2 templates, static JavaScript modules and CSS, and the
sign-in that sets the session cookie. Everything a page shows or does goes through the
same ``/v1`` API and SSE stream as any client (docs/web.md).
"""

from vendo.web.pages import routes

__all__ = ["routes"]
