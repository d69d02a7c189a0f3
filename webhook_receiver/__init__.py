"""HTTP service that verifies Iron's webhooks and signals the customer's onboarding workflow."""

from webhook_receiver.app import WEBHOOK_PATH, create_app
from runtime.temporal import TemporalClientProvider
from webhook_receiver.routing import CustomerRouter
from webhook_receiver.settings import ReceiverSettings, SettingsError

__all__ = [
    "WEBHOOK_PATH",
    "create_app",
    "CustomerRouter",
    "ReceiverSettings",
    "SettingsError",
    "TemporalClientProvider",
]
