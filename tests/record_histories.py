"""`make histories`: rerun the lifecycle tests with RECORD_HISTORIES=1 so each branch saves
its histories under tests/histories/ for the replay tests. Commit the result."""

import os
import subprocess
import sys

if __name__ == "__main__":
    env = dict(os.environ, RECORD_HISTORIES="1")
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "tests/test_workflow_lifecycle.py"], env=env))
