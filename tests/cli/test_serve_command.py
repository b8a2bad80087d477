"""``winback serve``: the command line and environment it hands ``bentoml serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.config import ENV_HOME, ServingConfig
from winback.commands.serving import BENTOML_CONFIG_OPTIONS, serve_command, serving_environment


def test_workers_reach_bentoml_through_its_config_options(tmp_path: Path) -> None:
    env = serving_environment(ServingConfig(home=tmp_path, workers=3), base={})
    assert env[BENTOML_CONFIG_OPTIONS] == "services.winback.workers=3"
    assert env[ENV_HOME] == str(tmp_path.resolve())


def test_users_own_bentoml_options_are_kept(tmp_path: Path) -> None:
    base = {BENTOML_CONFIG_OPTIONS: "api_server.http.port=4000"}
    env = serving_environment(ServingConfig(home=tmp_path), base=base)
    assert env[BENTOML_CONFIG_OPTIONS] == "api_server.http.port=4000 services.winback.workers=2"


def test_loopback_by_default(tmp_path: Path) -> None:
    command = serve_command(ServingConfig(home=tmp_path))
    assert command[1:3] == ["serve", "serving.api.service:WinbackService"]
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        ServingConfig(workers=0)


LAUNCHER = """
import sys
from winback.commands.serving import run_forwarding_signals
child = [sys.executable, "-c", "import os, sys, time; print(os.getpid(), flush=True); time.sleep(120)"]
sys.exit(run_forwarding_signals(child))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stopping_winback_serve_stops_the_server_it_started() -> None:
    """SIGTERM to the launcher alone (as systemd or Docker send it) ends its child too."""
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    assert _alive(child)
    launcher.send_signal(signal.SIGTERM)
    code = launcher.wait(timeout=30)
    assert code == 128 + signal.SIGTERM  # the child's status: ended by the forwarded SIGTERM
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
