"""The backend API (FastAPI): status, opportunities, bundles, PnL, pools, operator controls and a
live stream, on the database the engine writes.

    app = create_app(make_session_factory(make_engine(url)), chain_id=1)
    await serve(app, "127.0.0.1", 8000, stop)   # or: arbx api --port 8000

``arbx.cli.api`` adds ``arbx api``, ``arbx token``, ``arbx mode`` and ``arbx limits``; it is
imported with every ``arbx`` command, so the web stack here loads only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbx.api.app import create_app, serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    """``create_app`` and ``serve``, imported on first use."""
    if name in __all__:
        from arbx.api import app  # noqa: PLC0415

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
