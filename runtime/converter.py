"""The data converter every process uses, so what one writes the others read: Temporal's
pydantic converter, its type adapters shared by the whole process, with the payload codec when
encryption keys are configured."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
    PayloadConverter,
)


@functools.lru_cache(maxsize=1024)
def shared_type_adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class SharedAdaptersJSONConverter(PydanticJSONPlainPayloadConverter):
    """`PydanticJSONPlainPayloadConverter`, with one cache of type adapters for the process.

    A worker makes a payload converter for every workflow instance, and the SDK's converter keeps
    its type adapters per converter: every workflow built its adapters again, and an adapter of a
    type that is not a model (`dict`, `OnboardingState | None`) builds its schema each time
    (about 1% of the worker's CPU in a profile of the benchmark). Shared, each is built once per
    process. The JSON it reads and writes is the SDK's own (`tests/test_converter.py`)."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = type_hint if type_hint is not None else Any
        try:
            hash(hint)
        except TypeError:  # an unhashable hint cannot be a cache key
            return TypeAdapter(hint).validate_json(payload.data)
        return shared_type_adapter(hint).validate_json(payload.data)


class SharedAdaptersPayloadConverter(CompositePayloadConverter):
    """`PydanticPayloadConverter`'s encodings, JSON through `SharedAdaptersJSONConverter`."""

    def __init__(self) -> None:
        super().__init__(*(
            SharedAdaptersJSONConverter() if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ))


PYDANTIC_DATA_CONVERTER = DataConverter(payload_converter_class=SharedAdaptersPayloadConverter)


def converter_with_codec(codec: PayloadCodec | None) -> DataConverter:
    """The pydantic converter with `codec` (None: payloads in clear, development only)."""
    if codec is None:
        return PYDANTIC_DATA_CONVERTER
    # Failure messages and stack traces can echo customer data: encode them too.
    return dataclasses.replace(
        PYDANTIC_DATA_CONVERTER,
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
