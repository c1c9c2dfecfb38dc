"""The messenger against plain Synapse of the same version, in one run, alternating rounds: a
served medicus (its managed Synapse behind the Messenger-Proxy, two physicians of two
hospitals, both on the federation list, the invitee listed in the directory, logging in with
login tokens from medicus) and a plain Synapse (a generated configuration with medicus's
upload limit and rate limits, SQLite, password login), driven by the same client code (httpx):
login time (p50), send→receive latency of a message (p50/p95; user A sends, user B receives it
through a /sync long-poll), messages/s with 20 sends in flight, and upload and download MB/s of
a large file (streamed from disk, SHA-256 checked). Each number per side, medicus's ratio to
plain Synapse and what medicus adds, against the goal "medicus adds ≤ 10 % to each"; the CPU
each process spends per login, message and MB. A third, diagnostic side (`--no-direct` leaves
it out) drives medicus's own Synapse at its own port, without the proxy: `proxy_adds` is what
the proxy costs, `managed_vs_plain_synapse` what the two configurations differ by. In each
phase of a round the sides take turns, who goes first rotating. Prints JSON (progress on
stderr).

    python -m benchmarks.messenger [--mb 500] [--rounds 3] [--messages 200] [--logins 20]
                                   [--no-direct]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import yaml  # type: ignore[import-untyped]

from benchmarks.harness import demo_token, free_port
from benchmarks.storage import MEGABYTE, TOKEN_SECONDS, percentile, write_source

MEDICUS_SERVER_NAME = "medicus.bench"
SYNAPSE_SERVER_NAME = "synapse.bench"
"""The two homeservers' names: as long as each other, so that events are as large."""
ALICE = "dr.berg@uk-nordstadt.example"
"""The sender: a physician of the university hospital (demo data)."""
BOB = "dr.koch@kkh-suedheim.example"
"""The receiver: a physician of the district hospital, listed in the directory by its admin."""
BOB_ADMIN = "admin@kkh-suedheim.example"
DIRECT_SENDER = "dr.yilmaz@uk-nordstadt.example"
DIRECT_RECEIVER = "pfleger.lang@uk-nordstadt.example"
"""The diagnostic side's two people (medicus's Synapse without the proxy): others than Alice
and Bob, whose syncs would otherwise also walk that side's room (measured: +20 % Synapse CPU
per message, wrongly put down to medicus's Synapse configuration)."""
GOAL_PERCENT = 10.0
"""The issue's goal: medicus adds at most this much to each number."""
IN_FLIGHT = 20
WARMUP_MESSAGES = 10
SYNC_TIMEOUT_MS = 30_000
TIMELINE_LIMIT = 1000
"""Events one sync may bring of the room: more than a round sends between two syncs."""
RATE_LIMITS = ("rc_login", "rc_message", "rc_joins", "rc_invites")
STARTUP_SECONDS = 180.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- arithmetic


def added_percent(medicus: float, synapse: float, higher_is_better: bool) -> float:
    """How much medicus adds, in per cent of plain Synapse's: to the time (of a login, of a
    message's way) for times; to the time per message or per MB for rates (medicus's rate
    half of Synapse's adds 100 %). Negative: medicus is faster."""
    if higher_is_better:
        return (synapse / medicus - 1) * 100
    return (medicus / synapse - 1) * 100


def compare(medicus: float, synapse: float, higher_is_better: bool) -> dict[str, Any]:
    """One number of both sides, their ratio (medicus/synapse), what medicus adds, and
    whether that meets the goal."""
    added = round(added_percent(medicus, synapse, higher_is_better), 1)
    return {
        "medicus": round(medicus, 2),
        "synapse": round(synapse, 2),
        "ratio": round(medicus / synapse, 3),
        "added_percent": added,
        "goal_met": added <= GOAL_PERCENT,
    }


@dataclass
class Measured:
    """One side's samples over every round."""

    login_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    sent_per_s: list[float] = field(default_factory=list)
    delivered_per_s: list[float] = field(default_factory=list)
    upload_mb_per_s: list[float] = field(default_factory=list)
    download_mb_per_s: list[float] = field(default_factory=list)
    cpu_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per phase, the CPU seconds each process spent in it (all rounds)."""
    units: dict[str, float] = field(default_factory=dict)
    """Per phase, how many logins, messages or MB it had (all rounds)."""

    def cpu_ms_per_unit(self) -> dict[str, dict[str, float]]:
        """Per phase, each process's CPU milliseconds per login, message or MB."""
        return {
            f"{phase}_per_{PHASE_UNITS[phase]}": {
                name: round(seconds * 1000 / self.units[phase], 3)
                for name, seconds in processes.items()
            }
            for phase, processes in self.cpu_seconds.items()
        }

    def server_cpu_ms_per_unit(self) -> dict[str, float]:
        """Per phase, the CPU milliseconds of all the side's servers together (not the
        client's) per login, message or MB: less disturbed by other work on the machine than
        the wall-clock numbers."""
        return {
            phase: round(sum(v for k, v in processes.items() if k != "client"), 3)
            for phase, processes in self.cpu_ms_per_unit().items()
        }

    def latest(self, logins: int, messages: int) -> dict[str, float]:
        """The last round's numbers (for the progress lines)."""
        return {
            "login_p50_ms": round(statistics.median(self.login_ms[-logins:]), 1),
            "latency_p50_ms": round(statistics.median(self.latency_ms[-messages:]), 1),
            "messages_per_s": round(self.sent_per_s[-1], 1),
            "upload_mb_per_s": round(self.upload_mb_per_s[-1], 1),
            "download_mb_per_s": round(self.download_mb_per_s[-1], 1),
        }

    def summary(self) -> dict[str, float]:
        """Times as percentiles over the samples of all rounds; rates as the median of the
        rounds'."""
        return {
            "login_p50_ms": percentile(self.login_ms, 0.5),
            "latency_p50_ms": percentile(self.latency_ms, 0.5),
            "latency_p95_ms": percentile(self.latency_ms, 0.95),
            "messages_per_s": statistics.median(self.sent_per_s),
            "delivered_per_s": statistics.median(self.delivered_per_s),
            "upload_mb_per_s": statistics.median(self.upload_mb_per_s),
            "download_mb_per_s": statistics.median(self.download_mb_per_s),
        }


PHASE_UNITS = {
    "login": "login",
    "latency": "message",
    "load": "message",
    "upload": "mb",
    "download": "mb",
}


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def metered(side: Side, measured: Measured, phase: str, units: float) -> Iterator[None]:
    """Adds the CPU seconds the side's servers and this client spend in the block to
    `measured`, and `units` to the phase's count."""

    def taken() -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in side.pids.items()}
        return {**now, "client": time.process_time()}

    before = taken()
    yield
    after = taken()
    spent = measured.cpu_seconds.setdefault(phase, {})
    for name, seconds in after.items():
        spent[name] = spent.get(name, 0.0) + seconds - before[name]
    measured.units[phase] = measured.units.get(phase, 0.0) + units


LOWER_IS_BETTER = frozenset({"login_p50_ms", "latency_p50_ms", "latency_p95_ms"})


def comparison(medicus: dict[str, float], synapse: dict[str, float]) -> dict[str, Any]:
    rows = {
        name: compare(medicus[name], synapse[name], name not in LOWER_IS_BETTER) for name in medicus
    }
    return {"rows": rows, "goal_met_everywhere": all(row["goal_met"] for row in rows.values())}


# ---------------------------------------------------------------- the two servers


@dataclass
class User:
    user_id: str
    """The Matrix ID."""
    access_token: str = ""


@dataclass
class Side:
    """One homeserver as the clients see it: where it answers, and how a user logs in."""

    name: str
    base_url: str
    alice: User
    bob: User
    login: Callable[[httpx.AsyncClient, User], Awaitable[str]]
    """Logs a user in (everything a client does for it); their new access token."""
    notes: dict[str, Any] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    """The server processes whose CPU time is counted: "medicus", "synapse"."""
    room_id: str = ""
    bob_filter: str = ""
    bob_since: str = ""
    """Where Bob's syncs stand (kept from round to round: Synapse answers a repeated initial
    sync from its cache, from where the first one stood)."""


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], cwd: Path, output: Path) -> Iterator[Any]:
    """A child in a session of its own (Ctrl+C reaches this benchmark only, which stops it):
    SIGTERM at the end, SIGKILL after 30 s."""
    with output.open("ab") as out:
        child = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield child
    finally:
        stop(child.pid, child)


def stop(pid: int, child: subprocess.Popen[bytes] | None = None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and alive(pid, child):
        time.sleep(0.1)
    if alive(pid, child):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if child is not None:
            child.wait(10)


def alive(pid: int, child: subprocess.Popen[bytes] | None) -> bool:
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not our child) counts as gone.
    with contextlib.suppress(OSError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:3]
    return False


def wait_answering(url: str, child: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{child.args!r} exited ({child.returncode}):\n{tail}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered at {url} within {STARTUP_SECONDS:.0f} s")


@contextlib.contextmanager
def medicus_side(folder: Path) -> Iterator[Side]:
    """`medicus serve` with its managed Synapse, demo data, both hospitals on the federation
    list and Bob listed in the directory; Matrix clients talk to medicus's port."""
    data_dir = folder / "medicus"
    data_dir.mkdir()
    port, synapse_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    synapse_url = f"http://127.0.0.1:{synapse_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDICUS_")}
    env.update(
        {
            "MEDICUS_DATA_DIR": str(data_dir),
            "MEDICUS_LOG_LEVEL": "WARNING",
            "MEDICUS_ACCESS_TOKEN_SECONDS": str(TOKEN_SECONDS),
            "MEDICUS_MESSENGER": "managed",
            "MEDICUS_MESSENGER_SYNAPSE_URL": synapse_url,
            "MEDICUS_MESSENGER_SERVER_NAME": MEDICUS_SERVER_NAME,
        }
    )
    command = [sys.executable, "-m", "medicus", "serve", "--port", str(port)]
    log_file = folder / "medicus.log"
    pid_file = data_dir / "messenger" / "homeserver.pid"
    try:
        with process(command, env, data_dir, log_file) as child:
            wait_answering(f"{url}/readyz", child, log_file)
            side = asyncio.run(_prepare_medicus(url, data_dir, synapse_url))
            side.pids = {"medicus": child.pid, "synapse": int(pid_file.read_text().strip())}
            side.notes["synapse_url"] = synapse_url
            yield side
    finally:
        # The managed Synapse ends with `medicus serve` (parent-death signal); make sure.
        with contextlib.suppress(OSError, ValueError):
            stop(int(pid_file.read_text().strip()))


async def _prepare_medicus(url: str, data_dir: Path, synapse_url: str) -> Side:
    from medicus.demo import load_demo
    from medicus.iam import repository
    from medicus.platform import build_platform
    from medicus.settings import load_settings

    settings = load_settings(
        data_dir=data_dir,
        public_url=url,
        access_token_seconds=TOKEN_SECONDS,
        messenger="external",
        messenger_synapse_url=synapse_url,
        messenger_server_name=MEDICUS_SERVER_NAME,
    )
    platform = build_platform(settings)
    try:
        await load_demo(platform)
        assert platform.messenger is not None
        ids: dict[str, tuple[str, str]] = {}
        async with platform.database.snapshot() as session:
            for email in (ALICE, BOB, BOB_ADMIN, DIRECT_SENDER, DIRECT_RECEIVER):
                user = await repository.user_by_email(session, email)
                assert user is not None, email
                (_membership, organisation), *_ = await repository.memberships_of(session, user.id)
                ids[email] = (user.id, organisation.id)
        for _user, organisation_id in (ids[ALICE], ids[BOB]):
            await platform.messenger.service.federate(organisation_id, True, "benchmark")
        scopes = {email: "openid" for email in ids} | {BOB_ADMIN: "openid admin"}
        bearers = {email: await demo_token(platform, email, scopes[email]) for email in ids}
    finally:
        await platform.close()
    bob_id, bob_organisation = ids[BOB]
    async with httpx.AsyncClient(base_url=url) as http:
        listed = await http.put(
            f"/messenger/organisations/{bob_organisation}/listing/{bob_id}",
            json={"listed": True},
            headers={"Authorization": f"Bearer {bearers[BOB_ADMIN]}"},
        )
    assert listed.status_code == 204, listed.text
    matrix_ids = {ids[email][0]: f"@{ids[email][0]}:{MEDICUS_SERVER_NAME}" for email in ids}
    people = (ALICE, BOB, DIRECT_SENDER, DIRECT_RECEIVER)
    medicus_bearer = {matrix_ids[ids[email][0]]: bearers[email] for email in people}

    async def login(http: httpx.AsyncClient, user: User) -> str:
        """A login token from medicus, redeemed at medicus's `/_matrix` (the proxy)."""
        issued = await http.post(
            f"{url}/messenger/login-token",
            headers={"Authorization": f"Bearer {medicus_bearer[user.user_id]}"},
        )
        issued.raise_for_status()
        body = issued.json()
        assert body["user_id"] == user.user_id, body
        return await matrix_login(http, {"type": body["type"], "token": body["token"]})

    return Side(
        "medicus",
        url,
        User(matrix_ids[ids[ALICE][0]]),
        User(matrix_ids[ids[BOB][0]]),
        login,
        notes={
            "users": "two physicians of two organisations (Universitätsklinikum Nordstadt → "
            "Kreiskrankenhaus Südheim), both on the federation list, the invitee listed in "
            "the directory; logins with login tokens from medicus",
            "direct_sender": matrix_ids[ids[DIRECT_SENDER][0]],
            "direct_receiver": matrix_ids[ids[DIRECT_RECEIVER][0]],
        },
    )


@contextlib.contextmanager
def synapse_side(folder: Path, max_upload_bytes: int) -> Iterator[Side]:
    """Synapse with a configuration it generated itself: on loopback, SQLite, medicus's upload
    limit and rate limits, WARNING logging as medicus's Synapse; two users registered with the
    shared secret, logging in with passwords."""
    directory = folder / "synapse"
    directory.mkdir()
    config_path = directory / "homeserver.yaml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            "--generate-config",
            "--server-name",
            SYNAPSE_SERVER_NAME,
            "--config-path",
            str(config_path),
            "--data-directory",
            str(directory),
            "--report-stats=no",
        ],
        check=True,
        capture_output=True,
        cwd=directory,
    )
    port = free_port()
    config = yaml.safe_load(config_path.read_text())
    listener = config["listeners"][0]
    listener["port"] = port
    listener["bind_addresses"] = ["127.0.0.1"]
    config["max_upload_size"] = max_upload_bytes
    config.update(medicus_rate_limits())
    config_path.write_text(yaml.safe_dump(config))
    log_config_path = Path(config["log_config"])
    log_config = yaml.safe_load(log_config_path.read_text())
    log_config["root"]["level"] = "WARNING"
    for logger in log_config.get("loggers", {}).values():
        logger["level"] = "WARNING"
    log_config_path.write_text(yaml.safe_dump(log_config))
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(config_path)]
    log_file = folder / "synapse.log"
    with process(command, dict(os.environ), directory, log_file) as child:
        wait_answering(f"{url}/_matrix/client/versions", child, log_file)
        secret = str(config["registration_shared_secret"])
        password = uuid.uuid4().hex
        users = [register(url, secret, str(uuid.uuid4()), password) for _ in range(2)]

        async def login(http: httpx.AsyncClient, user: User) -> str:
            localpart = user.user_id.removeprefix("@").split(":")[0]
            identifier = {"type": "m.id.user", "user": localpart}
            return await matrix_login(
                http, {"type": "m.login.password", "identifier": identifier, "password": password}
            )

        yield Side(
            "synapse",
            url,
            User(users[0]),
            User(users[1]),
            login,
            pids={"synapse": child.pid},
            notes={
                "users": "two users registered with the shared secret; password logins",
                "config": "generated by Synapse; listener on 127.0.0.1, max_upload_size and "
                f"{', '.join(RATE_LIMITS)} as medicus writes them, logging at WARNING",
            },
        )


def direct(medicus: Side) -> Side:
    """The Synapse medicus manages, addressed without the Messenger-Proxy (a diagnostic: what
    the proxy costs, apart from the two Synapses' configurations): login tokens from medicus,
    redeemed by Synapse alone. Two other people than the medicus side's, in a room of their
    own."""
    return Side(
        "medicus_synapse_direct",
        medicus.notes["synapse_url"],
        User(medicus.notes["direct_sender"]),
        User(medicus.notes["direct_receiver"]),
        medicus.login,
        notes={"users": "two other people of medicus's, clients at its Synapse's own port"},
        pids=medicus.pids,
    )


def medicus_rate_limits() -> dict[str, object]:
    """The rate limits medicus writes into its Synapse's configuration."""
    from medicus.messenger.homeserver import Homeserver

    homeserver = Homeserver(MEDICUS_SERVER_NAME, "http://127.0.0.1:1", "", 1, Path("."))
    config = homeserver.synapse_config(b"\0" * 32, Path("log.yaml"))
    return {name: config[name] for name in RATE_LIMITS}


def medicus_max_upload_bytes() -> int:
    """The upload limit of the served medicus (its default: its environment has no
    `MEDICUS_*` variables but those this benchmark sets)."""
    from medicus.settings import Settings

    default = Settings.model_fields["messenger_max_upload_mb"].default
    return int(default) * 1024 * 1024


def register(url: str, shared_secret: str, localpart: str, password: str) -> str:
    """A user registered through Synapse's shared-secret admin API; their Matrix ID."""
    nonce = httpx.get(f"{url}/_synapse/admin/v1/register").json()["nonce"]
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\0".join([nonce.encode(), localpart.encode(), password.encode(), b"notadmin"]))
    answer = httpx.post(
        f"{url}/_synapse/admin/v1/register",
        json={
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": False,
            "mac": mac.hexdigest(),
        },
    )
    answer.raise_for_status()
    return str(answer.json()["user_id"])


# ---------------------------------------------------------------- the client (both sides)


async def matrix_login(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await http.post("/_matrix/client/v3/login", json=body)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def auth(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access_token}"}


async def call(
    http: httpx.AsyncClient, method: str, path: str, user: User, **arguments: Any
) -> dict[str, Any]:
    answer = await http.request(
        method, f"/_matrix/client/v3{path}", headers=auth(user), **arguments
    )
    if answer.status_code != 200:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
    body: dict[str, Any] = answer.json()
    return body


def client(side: Side) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=IN_FLIGHT + 5, max_keepalive_connections=IN_FLIGHT + 5)
    timeout = httpx.Timeout(SYNC_TIMEOUT_MS / 1000 + 30)
    return httpx.AsyncClient(base_url=side.base_url, limits=limits, timeout=timeout)


async def set_up(side: Side) -> None:
    """Alice and Bob logged in; a room Alice made with Bob invited, which he joined; Bob's
    sync filter (this room's messages only)."""
    async with client(side) as http:
        for user in (side.alice, side.bob):
            user.access_token = await side.login(http, user)
        created = await call(
            http,
            "POST",
            "/createRoom",
            side.alice,
            json={"preset": "private_chat", "name": "Konsil", "invite": [side.bob.user_id]},
        )
        side.room_id = created["room_id"]
        await call(http, "POST", f"/join/{quote(side.room_id, safe='')}", side.bob, json={})
        room_filter = {
            "presence": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
            "room": {
                "rooms": [side.room_id],
                "timeline": {"limit": TIMELINE_LIMIT, "types": ["m.room.message"]},
                "state": {"types": []},
                "ephemeral": {"not_types": ["*"]},
                "account_data": {"not_types": ["*"]},
            },
        }
        made = await call(
            http,
            "POST",
            f"/user/{quote(side.bob.user_id, safe='')}/filter",
            side.bob,
            json=room_filter,
        )
        side.bob_filter = made["filter_id"]
        params = {"filter": side.bob_filter, "timeout": "0"}
        side.bob_since = (await call(http, "GET", "/sync", side.bob, params=params))["next_batch"]


class Receiver:
    """Bob's sync loop: long-polls, and notes when each message body arrived."""

    def __init__(self, http: httpx.AsyncClient, side: Side) -> None:
        self._http = http
        self._side = side
        self.arrived: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.stop_body = f"stop {uuid.uuid4().hex}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(self._side.bob_since))

    async def _sync(self, since: str, timeout_ms: int) -> dict[str, Any]:
        params = {"filter": self._side.bob_filter, "timeout": str(timeout_ms), "since": since}
        return await call(self._http, "GET", "/sync", self._side.bob, params=params)

    async def _loop(self, since: str) -> None:
        try:
            await self._receive(since)
        except BaseException as error:
            self.failure = error
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(RuntimeError(f"Bob's sync failed: {error!r}"))
            raise

    async def _receive(self, since: str) -> None:
        while True:
            answer = await self._sync(since, SYNC_TIMEOUT_MS)
            now = time.perf_counter()
            since = self._side.bob_since = answer["next_batch"]
            room = answer.get("rooms", {}).get("join", {}).get(self._side.room_id, {})
            timeline = room.get("timeline", {})
            if timeline.get("limited") and self.arrived:
                raise RuntimeError("a sync skipped messages (its timeline was limited)")
            for event in timeline.get("events", []):
                body = event.get("content", {}).get("body")
                if not isinstance(body, str):
                    continue
                self.arrived[body] = now
                waiter = self._waiting.pop(body, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(now)
                if body == self.stop_body:
                    return

    def expect(self, body: str) -> asyncio.Future[float]:
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            raise RuntimeError(f"Bob's sync failed: {self.failure!r}")
        if body in self.arrived:
            waiter.set_result(self.arrived[body])
        else:
            self._waiting[body] = waiter
        return waiter

    async def stop(self, send: Callable[[str], Awaitable[None]]) -> None:
        assert self._task is not None
        await send(self.stop_body)
        await asyncio.wait_for(self._task, SYNC_TIMEOUT_MS / 1000)


_transactions = itertools.count()


class Session:
    """One side's clients in one round: Alice's, and Bob's with his sync loop running. Each
    method is one phase of the round; the phases of the sides take turns."""

    def __init__(self, side: Side, measured: Measured, arguments: argparse.Namespace) -> None:
        self.side = side
        self.measured = measured
        self.arguments = arguments
        self.http = client(side)
        self.bob_http = client(side)
        self.receiver = Receiver(self.bob_http, side)
        self.tag = uuid.uuid4().hex[:8]
        self.media = ""

    async def __aenter__(self) -> Session:
        await self.receiver.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.receiver.stop(self.send)
        finally:
            await self.http.aclose()
            await self.bob_http.aclose()

    async def send(self, body: str) -> None:
        room = quote(self.side.room_id, safe="")
        path = f"/rooms/{room}/send/m.room.message/b{os.getpid()}.{next(_transactions)}"
        content = {"msgtype": "m.text", "body": body}
        await call(self.http, "PUT", path, self.side.alice, json=content)

    async def logins(self) -> None:
        """Alice logs in `--logins` times (and out again, unmeasured)."""
        side, measured, count = self.side, self.measured, self.arguments.logins
        tokens = []
        with metered(side, measured, "login", count):
            for _ in range(count):
                began = time.perf_counter()
                tokens.append(await side.login(self.http, side.alice))
                measured.login_ms.append((time.perf_counter() - began) * 1000)
        for token in tokens:
            await self.http.post(
                "/_matrix/client/v3/logout", headers={"Authorization": f"Bearer {token}"}
            )

    async def latency(self) -> None:
        """Send→receive of messages one at a time (the first `WARMUP_MESSAGES` unmeasured)."""
        count = WARMUP_MESSAGES + self.arguments.messages
        with metered(self.side, self.measured, "latency", count):
            for number in range(count):
                body = f"{self.tag} latency {number}"
                arrival = self.receiver.expect(body)
                began = time.perf_counter()
                await self.send(body)
                arrived = await asyncio.wait_for(arrival, 60)
                if number >= WARMUP_MESSAGES:
                    self.measured.latency_ms.append((arrived - began) * 1000)

    async def load(self) -> None:
        """`--messages` messages from `IN_FLIGHT` senders at once: sent (acknowledged) and
        delivered (arrived at Bob's sync) per second."""
        count = self.arguments.messages
        names = [f"{self.tag} load {number}" for number in range(count)]
        arrivals = [self.receiver.expect(name) for name in names]
        bodies = iter(names)

        async def sender() -> None:
            for body in bodies:
                await self.send(body)

        with metered(self.side, self.measured, "load", count):
            began = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
            sent = time.perf_counter() - began
            last = max(await asyncio.wait_for(asyncio.gather(*arrivals), 60))
        self.measured.sent_per_s.append(count / sent)
        self.measured.delivered_per_s.append(count / (last - began))

    async def upload(self, source: Path) -> None:
        self.media = await asyncio.to_thread(upload, self.side, source, self.measured)

    async def download(self, source: Path, source_sha: str) -> None:
        args = (self.side, self.media, source, source_sha, self.measured)
        await asyncio.to_thread(download, *args)


def upload(side: Side, source: Path, measured: Measured) -> str:
    """Upload `source`, streamed from disk: its download path (MB/s noted)."""
    megabytes = source.stat().st_size / MEGABYTE
    with (
        httpx.Client(base_url=side.base_url, headers=auth(side.alice), timeout=600) as http,
        metered(side, measured, "upload", megabytes),
        source.open("rb") as body,
    ):
        began = time.perf_counter()
        uploaded = http.post(
            "/_matrix/media/v3/upload",
            params={"filename": source.name},
            headers={"Content-Type": "application/octet-stream"},
            content=body,
        )
        seconds = time.perf_counter() - began
    if uploaded.status_code != 200:
        raise RuntimeError(f"{side.name}: upload: {uploaded.status_code} {uploaded.text}")
    measured.upload_mb_per_s.append(megabytes / seconds)
    server, media_id = uploaded.json()["content_uri"].removeprefix("mxc://").split("/", 1)
    return f"/_matrix/client/v1/media/download/{server}/{media_id}"


def download(side: Side, location: str, source: Path, source_sha: str, measured: Measured) -> None:
    """Download the file, streamed and hashed (not kept); MB/s noted."""
    megabytes = source.stat().st_size / MEGABYTE
    digest = hashlib.sha256()
    with (
        httpx.Client(base_url=side.base_url, headers=auth(side.alice), timeout=600) as http,
        metered(side, measured, "download", megabytes),
    ):
        began = time.perf_counter()
        with http.stream("GET", location) as got:
            if got.status_code != 200:
                raise RuntimeError(f"{side.name}: download: {got.status_code} {got.read()!r}")
            for piece in got.iter_raw(MEGABYTE):
                digest.update(piece)
        seconds = time.perf_counter() - began
    if digest.hexdigest() != source_sha:
        raise RuntimeError(f"{side.name}: the download differs from the upload")
    measured.download_mb_per_s.append(megabytes / seconds)


async def one_round(
    sides: list[Side],
    measured: dict[str, Measured],
    arguments: argparse.Namespace,
    number: int,
    source: Path,
    source_sha: str,
) -> None:
    """Every phase of a round, the sides taking turns in each (who goes first rotates from
    round to round)."""
    turn = number % len(sides)
    order = sides[turn:] + sides[:turn]
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(Session(side, measured[side.name], arguments))
            for side in order
        ]
        phases: list[Callable[[Session], Awaitable[None]]] = [
            Session.logins,
            Session.latency,
            Session.load,
            lambda session: session.upload(source),
            lambda session: session.download(source, source_sha),
        ]
        for phase in phases:
            for session in sessions:
                await phase(session)
    for side in order:
        latest = measured[side.name].latest(arguments.logins, arguments.messages)
        log(f"round {number + 1}, {side.name}: {latest}")


def run(arguments: argparse.Namespace, folder: Path) -> dict[str, Any]:
    source = folder / "ct-series.bin"
    log(f"writing {arguments.mb} MB to {source}")
    source_sha = write_source(source, arguments.mb * MEGABYTE)
    max_upload = medicus_max_upload_bytes()
    load_before = os.getloadavg()
    with medicus_side(folder) as medicus, synapse_side(folder, max_upload) as synapse:
        sides = [medicus, synapse] + ([direct(medicus)] if arguments.direct else [])
        version = httpx.get(f"{synapse.base_url}/_matrix/federation/v1/version").json()
        for side in sides:
            asyncio.run(set_up(side))
        measured = {side.name: Measured() for side in sides}
        for number in range(arguments.rounds):
            asyncio.run(one_round(sides, measured, arguments, number, source, source_sha))
        notes = {side.name: side.notes for side in sides}
    summaries = {name: samples.summary() for name, samples in measured.items()}
    report: dict[str, Any] = {
        "benchmark": "messenger",
        "synapse": version.get("server", {}),
        "database": "sqlite (both)",
        "rounds": arguments.rounds,
        "logins_per_round": arguments.logins,
        "messages_per_round": arguments.messages,
        "in_flight": IN_FLIGHT,
        "file_mb": arguments.mb,
        "max_upload_bytes": max_upload,
        "cores": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "sides": notes,
        "goal": f"medicus adds <= {GOAL_PERCENT:.0f} % to each number",
        "added_percent_means": "extra time: (medicus/synapse - 1) for times, "
        "(synapse/medicus - 1) for rates",
        "login_note": "plain Synapse's password login checks a bcrypt hash (its default, 12 "
        "rounds); medicus's login issues and redeems an ES256 login token instead",
        **comparison(summaries["medicus"], summaries["synapse"]),
        "numbers": {name: rounded(summary) for name, summary in summaries.items()},
        "server_cpu_added_percent": server_cpu_added(measured["medicus"], measured["synapse"]),
        "cpu_ms": {name: samples.cpu_ms_per_unit() for name, samples in measured.items()},
        "samples_per_round": {
            name: {key: [round(value, 2) for value in getattr(samples, key)] for key in RATES}
            for name, samples in measured.items()
        },
    }
    if "medicus_synapse_direct" in summaries:
        the_direct = summaries["medicus_synapse_direct"]
        report["proxy_adds"] = diagnostic(summaries["medicus"], the_direct)
        report["managed_vs_plain_synapse"] = diagnostic(the_direct, summaries["synapse"])
    return report


RATES = ("sent_per_s", "delivered_per_s", "upload_mb_per_s", "download_mb_per_s")


def server_cpu_added(medicus: Measured, synapse: Measured) -> dict[str, float]:
    """Per phase, how much more CPU medicus's servers (medicus and its Synapse) spend than
    plain Synapse, in per cent."""
    mine, theirs = medicus.server_cpu_ms_per_unit(), synapse.server_cpu_ms_per_unit()
    return {
        phase: round(added_percent(mine[phase], theirs[phase], higher_is_better=False), 1)
        for phase in mine
        if theirs.get(phase)
    }


def rounded(summary: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 2) for name, value in summary.items()}


def diagnostic(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """What `first` adds to `second`, in per cent, number by number (no goal: diagnostics)."""
    return {
        name: round(added_percent(first[name], second[name], name not in LOWER_IS_BETTER), 1)
        for name in first
        if name != "login_p50_ms"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=500, help="size of the file moved, in MB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200, help="messages per round and test")
    parser.add_argument("--logins", type=int, default=20, help="logins per round")
    parser.add_argument(
        "--direct",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure medicus's own Synapse at its own port (without the proxy), to "
        "tell the proxy's cost from the two Synapses' configurations",
    )
    arguments = parser.parse_args()
    # SIGTERM ends the run as Ctrl+C does: through every `finally`, which stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="medicus-bench-messenger-") as folder:
        report = run(arguments, Path(folder))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
