"""Log redaction (placeholder: passes events through)."""


def redact_processor(logger, method_name, event_dict):
    return event_dict
