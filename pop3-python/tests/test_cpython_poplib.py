"""Point 8: CPython's own test suite for poplib, run against the drop-in and
against the standard module under the same harness (cpython_poplib.py),
on this interpreter. The drop-in must pass at least 90% of what the
standard module passes."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def cpython_test_ca() -> str:
    found = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import test.test_poplib as t; print(t.CAFILE)"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        if os.environ.get("POP3_ALLOW_NO_CPYTHON_TESTS"):
            pytest.skip("this interpreter ships no test package (test.test_poplib)")
        raise AssertionError(
            "this interpreter ships no CPython test package (test.test_poplib): install it "
            "(Debian: libpython3.X-testsuite) or set POP3_ALLOW_NO_CPYTHON_TESTS=1\n" + found.stderr
        )
    return found.stdout.strip()


def run_suite(which: str, ca: str) -> dict:
    env = dict(os.environ, SSL_CERT_FILE=ca)
    done = subprocess.run(
        [sys.executable, "-W", "ignore", str(HERE / "cpython_poplib.py"), which],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1])




def test_cpython_test_poplib_passes_like_the_standard_module():
    ca = cpython_test_ca()
    standard = run_suite("std", ca)
    ours = run_suite("ours", ca)
    print(f"\nCPython test_poplib: standard {standard['passed']}/{standard['run']}, "
          f"pop3.poplib {ours['passed']}/{ours['run']}; not passed: {ours['not_passed']}")
    assert ours["run"] == standard["run"]
    assert ours["passed"] >= 0.9 * standard["passed"], (standard, ours)
