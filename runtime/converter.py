"""The data converter every process uses, so what one writes the others read: the pydantic
converter, with the payload codec when encryption keys are configured."""

from __future__ import annotations

import dataclasses

from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec, PayloadConverter


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
