"""Activities: one per Iron call, each with an idempotency key derived from the workflow ID."""
