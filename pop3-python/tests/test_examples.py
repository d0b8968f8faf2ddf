"""The example programs run against the real Dovecot."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run_example(name, *args, password):
    env = dict(os.environ, POP3_PASSWORD=password)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("tls", ["implicit", "starttls", "none"])
def test_sansio_example(dovecot, tls):
    out = run_example(
        "sansio_blocking.py", dovecot.host, "--port", str(dovecot.port(tls)), "--tls", tls,
        "--ca", dovecot.ca, "--user", dovecot.user, password=dovecot.password,
    )
    assert "Subject: Hello from the sample mailbox" in out
    assert len(out.strip().splitlines()) == 1 + len(dovecot.messages)


def test_aio_example(dovecot, tmp_path):
    out = run_example(
        "aio_fetch.py", dovecot.host, "--port", str(dovecot.tls_port), "--ca", dovecot.ca,
        "--user", dovecot.user, "--out", str(tmp_path), password=dovecot.password,
    )
    assert f"{len(dovecot.messages)} messages" in out
    assert sorted(p.read_bytes() for p in tmp_path.iterdir()) == sorted(dovecot.messages)


def test_poplib_example(dovecot, tmp_path):
    out = run_example(
        "poplib_dropin.py", dovecot.host, "--port", str(dovecot.tls_port), "--ca", dovecot.ca,
        "--user", dovecot.user, "--out", str(tmp_path), password=dovecot.password,
    )
    assert "as expected: -ERR" in out
    for n, on_disk in enumerate(dovecot.messages, start=1):
        assert (tmp_path / f"{n}.eml").read_bytes() == on_disk
