"""What every process of the product shares: settings, the Temporal connection and data
converter (one place, so the worker, starter, receiver and tests agree), and logging."""
