"""Run `distrib` commands on a config of one ESP mailer, as a user would."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

from ..conftest import run_distrib


def esp_config(
    make_config: Callable[..., Path], mailer: str, options: str, extra_email: str = ""
) -> Path:
    return make_config(
        email=textwrap.dedent(f"""
        [email]
        mailer = "{mailer}"
        from = "Test News <news@test.example>"
        recipients = ["a@example.com", "b@example.com", "c@example.com"]
        unsubscribe_url = "https://test.example/unsubscribe?token={{token}}"
        {extra_email}
        [email.{mailer}]
        """)
        + options
        + "\n"
    )


def run_check(
    make_config: Callable[..., Path], mailer: str, options: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    path = esp_config(make_config, mailer, options)
    return run_distrib("check", "--config", str(path), env=env)
