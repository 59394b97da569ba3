"""Helpers for the end-to-end UI tests: `dagster-webserver` on a free loopback port over a given
Dagster instance, its GraphQL API, and headless chromium rendering its pages.

Only loopback is used and telemetry is off. Every process started here runs in its own process
group and is stopped by its id, whatever happens.
Chromium: `require_chromium()` skips when /usr/bin/chromium is missing, or fails the test if
SMARTGRID_REQUIRE_CHROMIUM=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = REPO_ROOT / "workspace.yaml"
CHROMIUM = Path("/usr/bin/chromium")

# nux off: otherwise the UI opens a "Join the Dagster community" sign-up modal over every page
# served from 127.0.0.1 (it covers the screenshot; once submitted it loads a remote iframe).
DAGSTER_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""
SERVER_START_TIMEOUT_S = 90
HTTP_TIMEOUT_S = 30
CHROMIUM_TIMEOUT_S = 60
# Virtual time: chromium fast-forwards timers but pauses while network fetches are pending, so
# the JS app gets its GraphQL answers however slow the server is. Retried once with more budget.
VIRTUAL_TIME_BUDGETS_MS = (15_000, 30_000)
T = TypeVar("T")


# =========================================================================================
# Free port, bounded waiting, process shutdown, GraphQL
# =========================================================================================


class ProcessExited(RuntimeError):
    """The process being waited for is gone: waiting longer cannot help."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry if it got taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.5
) -> T:
    """Call `probe` until it returns something truthy and return that.

    Exceptions count as "not yet", except ProcessExited, which is raised at once. Raises
    TimeoutError after `timeout` seconds, with the last exception or falsy value.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except ProcessExited:
            raise
        except Exception as exc:  # not ready yet; keep the reason for the timeout message
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def stop_process_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a process started with `start_new_session=True`, by its id: SIGTERM, wait, SIGKILL.

    Then SIGKILL whatever is left in its process group (whose id is the process id), e.g. the
    code server `dagster-webserver` spawned, or chromium's renderer processes.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


def no_proxy_session() -> requests.Session:
    """Talk to 127.0.0.1 directly, whatever HTTP(S)_PROXY the environment sets."""
    session = requests.Session()
    session.trust_env = False
    return session


def graphql(
    session: requests.Session, base_url: str, query: str, variables: dict | None = None
) -> dict[str, Any]:
    response = session.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": variables or {}},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200, f"GraphQL HTTP {response.status_code}: {response.text}"
    body = response.json()
    assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
    return body["data"]


# =========================================================================================
# dagster-webserver over an instance
# =========================================================================================

LOCATIONS_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message cause { message cause { message } } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def workspace_location_name() -> str:
    (entry,) = yaml.safe_load(WORKSPACE.read_text())["load_from"]
    return entry["python_module"]["location_name"]


def webserver_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("dagster-webserver")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "dagster_webserver"]
    return [*launcher, "-h", "127.0.0.1", "-p", str(port), "-w", str(WORKSPACE)]


def webserver_env(dagster_home: Path, settings_env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its smartgrid and Dagster settings, plus those the
    runs used (`settings_env`) and the instance's DAGSTER_HOME; telemetry off, no proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTGRID_", "DAGSTER_"))}
    env.update(settings_env)
    env["DAGSTER_HOME"] = str(dagster_home)
    env["DO_NOT_TRACK"] = "1"
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def wait_for_location(
    proc: subprocess.Popen, session: requests.Session, base_url: str, location: str, log: Path
) -> None:
    """Wait (bounded) until /server_info answers and the code location is LOADED without error."""

    def alive() -> None:
        if proc.poll() is not None:
            raise ProcessExited(f"webserver exited with {proc.returncode}:\n{log_tail(log)}")

    def server_info() -> bool:
        alive()
        response = session.get(f"{base_url}/server_info", timeout=5)
        return response.status_code == 200 and "dagster_webserver_version" in response.json()

    def location_loaded() -> dict | None:
        alive()
        data = graphql(session, base_url, LOCATIONS_QUERY)["workspaceOrError"]
        assert data["__typename"] == "Workspace", data
        entry = {e["name"]: e for e in data["locationEntries"]}.get(location)
        return entry if entry and entry["loadStatus"] == "LOADED" else None

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    wait_until(server_info, timeout=SERVER_START_TIMEOUT_S, what="GET /server_info")
    entry = wait_until(
        location_loaded,
        timeout=max(deadline - time.monotonic(), 5),
        what=f"code location {location!r} LOADED",
    )
    loaded = entry["locationOrLoadError"]
    assert loaded and loaded["__typename"] == "RepositoryLocation", (
        f"code location {location!r} failed to load: {loaded}\n{log_tail(log)}"
    )


@dataclass(frozen=True)
class Webserver:
    base_url: str
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def serve(dagster_home: Path, settings_env: Mapping[str, str], logs: Path) -> Iterator[Webserver]:
    """`dagster-webserver` on a free loopback port over the instance in `dagster_home`, serving
    the repository's workspace with `settings_env`; stopped by its process id on exit."""
    location = workspace_location_name()
    session = no_proxy_session()
    # The free port can be taken between probing and binding: then the server exits at once
    # and the next attempt gets another port.
    attempts = 3
    for attempt in range(attempts):
        port = free_port()
        log = logs / f"webserver-{attempt}.log"
        base_url = f"http://127.0.0.1:{port}"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                webserver_command(port),
                cwd=REPO_ROOT,
                env=webserver_env(dagster_home, settings_env),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, with the code server it spawns
            )
        try:
            wait_for_location(proc, session, base_url, location, log)
        except BaseException as exc:
            stop_process_group(proc)
            port_taken = "address already in use" in log_tail(log, 50_000).lower()
            if isinstance(exc, ProcessExited) and port_taken and attempt < attempts - 1:
                continue
            raise
        try:
            yield Webserver(base_url=base_url, proc=proc, log=log)
        finally:
            stop_process_group(proc)
        return


# =========================================================================================
# Headless chromium
# =========================================================================================


def require_chromium() -> Path:
    """Chromium's path; skips the test without it, fails it if SMARTGRID_REQUIRE_CHROMIUM=1."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} not found (Debian package `chromium`)"
    if os.environ.get("SMARTGRID_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"SMARTGRID_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(f"{reason}; set SMARTGRID_REQUIRE_CHROMIUM=1 to make this a failure")


def run_chromium(args: list[str], profile: Path, budget_ms: int) -> subprocess.CompletedProcess:
    """Headless chromium on loopback only, bounded in time; its processes are stopped after."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--window-size=1400,900",
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_process_group(proc, timeout=5)
        _, stderr = proc.communicate()
        pytest.fail(f"chromium did not finish in {CHROMIUM_TIMEOUT_S} s: {stderr[-2000:]}")
    finally:
        stop_process_group(proc, timeout=5)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", html, flags=re.DOTALL | re.IGNORECASE)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def rendered_dom(
    url: str, workdir: Path, ready: Callable[[str], bool], height: int = 900
) -> tuple[str, str]:
    """The DOM of `url` rendered by chromium (`--dump-dom`) once `ready(dom)` holds, retried once
    with a larger virtual-time budget; returns (dom, chromium's stderr) of the last attempt."""
    dom, stderr = "", ""
    for attempt, budget_ms in enumerate(VIRTUAL_TIME_BUDGETS_MS):
        result = run_chromium(
            [f"--window-size=1400,{height}", "--dump-dom", url],
            workdir / f"profile-dom-{attempt}",
            budget_ms,
        )
        dom, stderr = result.stdout, result.stderr
        if result.returncode == 0 and ready(dom):
            break
    return dom, stderr


def rendered_text(url: str, workdir: Path, expected: list[str], height: int = 900) -> str:
    """The visible text of `url` rendered by chromium, once it shows every `expected` string.

    `height`: of the window (the last --window-size wins); lists the UI virtualises render only
    the rows that fit."""
    dom, stderr = rendered_dom(
        url, workdir, lambda d: all(s in visible_text(d) for s in expected), height
    )
    text = visible_text(dom)
    missing = [s for s in expected if s not in text]
    if missing:
        pytest.fail(
            f"{url} never rendered {missing}; text: {text[:3000]!r}; stderr: {stderr[-1500:]}"
        )
    return text


def screenshot(url: str, path: Path, workdir: Path, height: int = 900) -> bytes:
    """A PNG of `url` as chromium renders it in a 1400 x `height` window, saved at `path`."""
    shot = run_chromium(
        [f"--window-size=1400,{height}", f"--screenshot={path}", url],
        workdir / "profile-png",
        VIRTUAL_TIME_BUDGETS_MS[0],
    )
    assert path.exists(), f"no screenshot (rc {shot.returncode}): {shot.stderr[-2000:]}"
    return path.read_bytes()
