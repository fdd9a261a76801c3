"""The gateway's exceptions, rooted at :class:`archipel.core.ArchipelError`.

Start-up rejects a bad configuration with :class:`GatewayConfigError`. On the
request path, the upstream seam raises the :class:`UpstreamError` family,
translated from the HTTP client's own exceptions, and the proxy catches them
to fail over. A client never sees them: it gets an OpenAI-format error whose
message is the error's :attr:`~UpstreamError.public` text, while ``str()`` (which
may name hosts and ports) goes to the log only::

    ArchipelError
    ├── InputError (also ValueError)
    │   └── DocumentError
    │       └── GatewayConfigError               gateway.yaml or its route table is invalid
    └── GatewayError
        └── UpstreamError                    one attempt at one replica failed
            ├── UpstreamConnectError         (also ConnectionError) no connection, or it dropped
            ├── UpstreamTimeoutError         (also TimeoutError) a phase deadline passed
            └── UpstreamStatusError          the replica answered 5xx or 429
"""

from __future__ import annotations

from archipel.core import ArchipelError, DocumentError


class GatewayConfigError(DocumentError):
    """The gateway configuration is invalid; ``problems`` names each field."""

    what = "gateway config"


class GatewayError(ArchipelError):
    """A fault while serving requests."""


class UpstreamError(GatewayError):
    """One attempt at one replica failed (the request may still be retried).

    ``str()`` is for the log and may name internal hosts and ports; :attr:`public`
    is what a client may read.
    """

    public = "upstream failed"


class UpstreamConnectError(UpstreamError, ConnectionError):
    """The connection could not be made, or dropped before the response completed."""

    def __init__(self, message: str, public: str = "connection failed") -> None:
        super().__init__(message)
        self.public = public


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    """A phase deadline (connect, first byte, idle between chunks) passed."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.public = f"upstream {phase} timeout"
        super().__init__(self.public)


class UpstreamStatusError(UpstreamError):
    """The replica answered with a retryable status (5xx or 429)."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        self.public = f"upstream answered {status}"
        super().__init__(self.public)
