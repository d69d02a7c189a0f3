"""Failures are encoded with the payload codec, and still read in one line without it."""

from __future__ import annotations

import os

from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError, CancelledError

from data_protection.codec import EncryptionCodec
from data_protection.keys import KeyRing
from runtime.temporal import converter_with_codec

SECRET_MESSAGE = "customer philippa.q.unique@example.org refused: 422 email already used"


def converter():
    ring = KeyRing({"k1": os.urandom(32)}, current="k1")
    return converter_with_codec(EncryptionCodec(ring))


async def test_an_encoded_failure_reads_as_its_type_in_clear_and_holds_no_customer_data() -> None:
    dc = converter()
    failure = Failure()
    await dc.encode_failure(ApplicationError(SECRET_MESSAGE, type="IronRejected", non_retryable=True), failure)
    assert failure.message == "IronRejected (final): details encrypted"
    assert "philippa" not in failure.SerializeToString().decode("latin-1")


def test_a_plain_exception_and_a_cancellation_are_summarised_by_kind() -> None:
    dc = converter()
    plain, cancelled = Failure(), Failure()
    dc.failure_converter.to_failure(KeyError(SECRET_MESSAGE), dc.payload_converter, plain)
    dc.failure_converter.to_failure(CancelledError(SECRET_MESSAGE), dc.payload_converter, cancelled)
    assert plain.message == "KeyError: details encrypted"
    assert cancelled.message == "canceled: details encrypted"


async def test_a_client_with_the_codec_decodes_the_full_message_back() -> None:
    dc = converter()
    failure = Failure()
    await dc.encode_failure(ApplicationError(SECRET_MESSAGE, type="IronRejected"), failure)
    error = await dc.decode_failure(failure)
    assert isinstance(error, ApplicationError) and error.message == SECRET_MESSAGE and error.type == "IronRejected"
