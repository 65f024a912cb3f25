"""Redis session provider for chuk-artifacts (``SESSION_PROVIDER=redis``)."""

from .sessions import RedisSessions

__all__ = ["RedisSessions"]
__version__ = "0.1.0"
