"""The inbox: a webhook that arrived while its resource was being read again is answered by that
read; operator requests, signings and later webhooks always reach the loop."""

from __future__ import annotations

from contracts.messages import OnboardingState
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


# A webhook that says what the reads already showed is dropped too.

CUSTOMER, IDENTIFICATION = "cus-1", "idv-1"


def read_state() -> OnboardingState:
    return OnboardingState(
        external_id="ext-1", iron_customer_id=CUSTOMER, customer_status="SigningsRequired",
        identification_id=IDENTIFICATION, identification_status="Approved",
    )


def hint(event_type: str, status: str | None, entity_id: str | None, *, about_customer: bool = True) -> d.IronHint:
    return d.IronHint(event_type, about_customer=about_customer, status=status, entity_id=entity_id)


def after_the_read(*hints: d.IronHint, state) -> tuple[d.Wake, ...]:
    """`hints` posted while a customer read was in flight (its answer is in `state`)."""
    inbox = Inbox()
    inbox.reading(d.ReadCustomer(cause="webhook customer_status"))
    for h in hints:
        inbox.post(h)
    inbox.drop_answered(state)
    return inbox.take()


def test_a_webhook_saying_what_the_read_showed_costs_no_second_read():
    """The lifecycle's pair: Iron approves the identification and moves the customer on at once,
    and both webhooks arrive while the read that already shows both is in flight."""
    same_status = hint("customer_status", "SigningsRequired", CUSTOMER)
    approved = hint("identification_status", "Approved", IDENTIFICATION, about_customer=False)
    created = hint("customer_created", None, CUSTOMER)
    assert after_the_read(same_status, approved, created, state=read_state()) == ()


def test_a_webhook_with_news_is_read_and_without_a_read_state_every_hint_is_kept():
    moved = hint("customer_status", "Active", CUSTOMER)
    stale = hint("customer_status", "IdentificationRequired", CUSTOMER)  # an older delivery, reordered
    new_identification = hint("identification_status", "Approved", "idv-2")
    declined = hint("identification_status", "Declined", IDENTIFICATION, about_customer=False)
    no_status = hint("customer_status", None, CUSTOMER)
    news = (moved, stale, new_identification, declined, no_status)
    assert after_the_read(*news, state=read_state()) == news
    same = (hint("customer_status", "SigningsRequired", CUSTOMER), hint("customer_created", None, CUSTOMER))
    assert after_the_read(*same, state=None) == same


def test_the_creation_of_a_customer_not_yet_found_is_news():
    state = read_state().model_copy(update={"iron_customer_id": None, "customer_status": None})
    created = hint("customer_created", None, CUSTOMER)
    assert after_the_read(created, state=state) == (created,)


def test_dropping_says_whether_anything_was_known():
    """The loop waits on when every wake that came was already known (`_wait`)."""
    inbox = Inbox()
    inbox.reading(d.ReadCustomer(cause="x"))
    inbox.post(hint("customer_status", "SigningsRequired", CUSTOMER))
    assert inbox.drop_answered(read_state()) and not inbox
    assert not inbox.drop_answered(read_state())
    inbox.post(hint("customer_status", "Active", CUSTOMER))
    assert not inbox.drop_answered(read_state()) and inbox
