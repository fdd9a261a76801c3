"""What the AWS backends (EC2, SageMaker) share: their boto3 clients and how errors read.

Clients use the standard AWS credential chain (environment, profile, instance role);
Archipel never stores nor logs a credential, and a backend holds none itself (boto3
resolves them when it signs a request). botocore's own debug log prints request
headers, the session token among them: building the clients raises the SDK's
loggers to WARNING, so debug logging never writes one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

#: makes the boto3 client of one service ("ec2", "s3", "sagemaker", "logs")
ClientFactory = Callable[[str], Any]


def error_code(exc: Exception) -> str:
    """The AWS error code of a failed call (``""`` when it never got an answer)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def describe(exc: Exception) -> str:
    """An error's text for a message: botocore's own (it names no credential)."""
    return f"{type(exc).__name__}: {exc}"


def api_errors() -> tuple[type[Exception], ...]:
    """What boto3 raises for a failed call (not a bug of ours); imported when first needed,
    so that a control plane without AWS sites never loads botocore."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, Boto3Error)


def quiet_aws_sdk_logs() -> None:
    """Keep botocore's debug log off: it prints every request's headers, the session
    token among them, so a server run with debug logging would write a credential.
    The SDK's loggers are set to WARNING (unless set higher), whatever the root's level
    is now or later."""
    for name in ("botocore", "boto3", "s3transfer"):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) inherits the root's, maybe DEBUG
            logger.setLevel(logging.WARNING)


def default_clients(region: str, endpoint_url: str | None, max_attempts: int) -> ClientFactory:
    """Clients of one region from the standard credential chain, retrying throttled and
    failed calls with botocore's ``standard`` mode (exponential backoff with jitter),
    ``max_attempts`` tries in all."""
    quiet_aws_sdk_logs()

    def make(service: str) -> Any:
        import boto3
        from botocore.config import Config

        retries: Any = {"mode": "standard", "total_max_attempts": max_attempts}
        return boto3.session.Session().client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(retries=retries, connect_timeout=5, read_timeout=30),
        )

    return make
