"""A customer's contact (email and name) by reference, so no workflow history holds it.

The start puts the email and name in the document store, beside identification data, and the
workflow input carries only the reference (`OnboardingInput.contact_ref`). The activity that
creates the Iron customer reads it; nothing else does. With no personal data in its history, a
customer's run need not continue as new to leave the start data behind.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from data_protection.documents import CorruptDocument, DocumentStore


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str
    name: str | None = None


class InvalidContact(CorruptDocument):
    """A contact document that is not one (its values are not repeated: they are personal)."""


async def store_contact(documents: DocumentStore, email: str, name: str | None) -> str:
    """Put the contact in the store; returns its reference."""
    return await documents.put(Contact(email=email, name=name).model_dump_json().encode("utf-8"))


async def read_contact(documents: DocumentStore, ref: str) -> Contact:
    """The contact under `ref`; the store's own errors (not found, unreadable) pass through, and
    a document that is not a contact is `InvalidContact`, a `CorruptDocument`."""
    raw = await documents.get(ref)
    try:
        return Contact.model_validate_json(raw)
    except ValidationError:
        raise InvalidContact(f"document {ref} is not a contact (email and name)") from None

