"""Append-only audit trail for chuk-artifacts, fed by its lifecycle and ``access_denied`` hooks."""

from .sinks import CatalogSink, JsonlSink, open_sink, parse_since

__all__ = ["CatalogSink", "JsonlSink", "open_sink", "parse_since"]
__version__ = "0.1.0"
