"""`make histories`: rerun the tests that record histories with RECORD_HISTORIES=1, so each
saves its workflows' runs for the replay tests (`tests/test_replay.py`), into
`tests/histories/unreleased/`, or with RELEASE=<version> into that release's folder. Commit the
result."""

import os
import subprocess
import sys

RECORDING_TESTS = [
    "tests/test_workflow_lifecycle.py",  # lifecycle/: every branch of the lifecycle
    "tests/test_contact_by_reference.py",  # lifecycle/: Active in the run that created the customer
    "tests/test_events_devserver.py",  # events/: a lifecycle delivering its events
    "tests/test_event_retries_time_skipping.py",  # events/: a backend failing for long, then back
    "tests/test_requirements_devserver.py",  # requirements-and-slas/
    "tests/test_sla_time_skipping.py",  # requirements-and-slas/
    "tests/test_wait_devserver.py",  # state-memo/: waits and the state view
    "tests/test_fleet_reconciliation_devserver.py",  # fleet-reconciliation/: a pass, and a run it woke
]

if __name__ == "__main__":
    env = dict(os.environ, RECORD_HISTORIES="1", HISTORIES_RELEASE=os.environ.get("RELEASE", ""))
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *RECORDING_TESTS], env=env))
