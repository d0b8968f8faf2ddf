"""Runs CPython's own test suite for poplib (``test.test_poplib``, from the
interpreter's ``test`` package) against a poplib module, and prints one
JSON line: how many tests ran, passed, failed, errored and were skipped.

    python cpython_poplib.py std     # the standard module
    python cpython_poplib.py ours    # pop3.poplib, swapped in as "poplib"

Both runs share one harness, so that their counts compare: the dummy
server names itself ``localhost`` (the name in the test certificate, which
the drop-in verifies), and ``SSL_CERT_FILE`` names the test CA (set by
the caller, before the interpreter starts, so OpenSSL reads it)."""

import json
import sys
import unittest


def main() -> None:
    which = sys.argv[1]
    if which == "ours":
        import pop3.poplib

        sys.modules["poplib"] = pop3.poplib
    elif which != "std":
        raise SystemExit("usage: cpython_poplib.py std|ours")
    import test.test_poplib as suite

    if which == "ours":
        assert suite.poplib is sys.modules["poplib"]
    server_init = suite.DummyPOP3Server.__init__

    def init(self, *args, **kwargs):
        server_init(self, *args, **kwargs)
        self.host = "localhost"

    suite.DummyPOP3Server.__init__ = init
    tests = unittest.defaultTestLoader.loadTestsFromModule(suite)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=int(sys.argv[2]) if len(sys.argv) > 2 else 0).run(tests)
    bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(
        json.dumps(
            {
                "module": which,
                "run": result.testsRun,
                "passed": result.testsRun - bad - len(result.skipped) - len(result.expectedFailures),
                "failed": len(result.failures),
                "errors": len(result.errors),
                "skipped": len(result.skipped),
                "not_passed": sorted(t.id().split(".", 2)[-1] for t, _ in result.failures + result.errors),
            }
        )
    )


if __name__ == "__main__":
    main()
