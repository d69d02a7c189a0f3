"""The inbox: a webhook that arrived while its resource was being read again is answered by that
read; operator requests, signings and later webhooks always reach the loop."""

from __future__ import annotations

from workflows import decide as d
from workflows.inbox import Inbox

CUSTOMER_HINT = d.IronHint("customer_status", about_customer=True)
IDENTIFICATION_HINT = d.IronHint("identification_status", about_customer=False)


def test_a_read_answers_the_hints_about_it_posted_before_it_began():
    inbox = Inbox()
    inbox.post(CUSTOMER_HINT)
    inbox.post(IDENTIFICATION_HINT)
    inbox.reading(d.ReadCustomer(cause="webhook customer_status"))
    later = d.IronHint("customer_created", about_customer=True)
    inbox.post(later)
    inbox.drop_answered()
    assert inbox.take() == (IDENTIFICATION_HINT, later), "the identification hint is not a customer read's to answer"


def test_an_identification_read_answers_identification_hints_only():
    inbox = Inbox()
    inbox.post(IDENTIFICATION_HINT)
    inbox.post(CUSTOMER_HINT)
    inbox.reading(d.ReadIdentification(identification_id="idv-1", cause="poll"))
    inbox.drop_answered()
    assert inbox.take() == (CUSTOMER_HINT,)


def test_operator_requests_and_signings_are_never_answered_by_a_read():
    inbox = Inbox()
    wakes = (d.RestartRequested(reason="fixed"), d.SigningRequested("terms"), d.AmendRequested(fields=("email",), email_known=True))
    numbers = [inbox.post(w) for w in wakes]
    inbox.reading(d.ReadCustomer(cause="x"))
    inbox.drop_answered()
    assert inbox.taken < numbers[-1]
    assert inbox.take() == wakes and inbox.taken == numbers[-1]


def test_a_refresh_is_answered_by_a_customer_read_begun_after_it():
    inbox = Inbox()
    inbox.reading(d.ReadCustomer(cause="x"))  # began before the refresh: does not answer it
    inbox.post(d.RefreshRequested())
    inbox.drop_answered()
    assert inbox.has(d.RefreshRequested)
    inbox.reading(d.ReadCustomer(cause="refresh"))
    inbox.drop_answered()
    assert not inbox
