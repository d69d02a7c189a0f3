"""Connecting to Temporal the same way everywhere.

The connection comes from Temporal's own environment configuration (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, `TEMPORAL_PROFILE` and the TOML
config file), so the same worker runs against the local dev server, a self-hosted cluster or
Temporal Cloud. Every process uses `data_converter()`, so what one writes the others read.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from temporalio.client import Client
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec, PayloadConverter
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

DEFAULT_ADDRESS = "127.0.0.1:7233"


def data_converter() -> DataConverter:
    """The pydantic converter, with the payload codec when encryption keys are configured."""
    from data_protection.codec import codec_from_env

    return converter_with_codec(codec_from_env())


def converter_with_codec(codec: PayloadCodec | None) -> DataConverter:
    """The pydantic converter with `codec` (None: payloads in clear, development only)."""
    if codec is None:
        return pydantic_data_converter
    # Failure messages and stack traces can echo customer data: encode them too.
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=OneLineEncodedFailures,
    )


class OneLineEncodedFailures(DefaultFailureConverterWithEncodedAttributes):
    """Encodes a failure's message and stack trace, and leaves in clear a one-line summary made
    only of the error's type, so an operator's history rows read "IronRejected (final): details
    encrypted" instead of a row of identical "Encoded failure". A client or UI with the codec
    still decodes the full message; the type names a class, never customer data."""

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        super().to_failure(exception, payload_converter, failure)
        if failure.HasField("encoded_attributes"):
            failure.message = failure_summary(failure)


def failure_summary(failure: Failure) -> str:
    kind = failure.WhichOneof("failure_info") or "failure"
    if kind == "application_failure_info":
        info = failure.application_failure_info
        kind = (info.type or "ApplicationError") + (" (final)" if info.non_retryable else "")
    else:
        kind = kind.removesuffix("_failure_info").replace("_", " ")
    return f"{kind}: details encrypted"


def connect_config(profile: str | None = None) -> dict[str, Any]:
    config = dict(ClientConfig.load_client_connect_config(profile=profile or os.environ.get("TEMPORAL_PROFILE")))
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if not config.get("target_host"):
        config["target_host"] = DEFAULT_ADDRESS
    return config


async def connect(profile: str | None = None, **overrides: Any) -> Client:
    config = connect_config(profile)
    config.update(overrides)
    config["data_converter"] = overrides.get("data_converter") or data_converter()
    return await Client.connect(**config)
