#!/usr/bin/env python3
"""Run a moto AWS emulator for lockreaper tests and scripts, and stop it when the caller goes away.

moto (pinned in infra/requirements.txt) is started in this process on a werkzeug threaded server, the
same way moto's own ThreadedMotoServer does it. With ``--port 0`` (the default) the operating system
picks a free port, so parallel test runs never collide.

Protocol for callers (the Rust test harness, infra/fixtures/capture.py, shell scripts):

* Once the server answers HTTP (a GET of ``/moto-api/``), exactly one line is printed to stdout::

      LOCKREAPER_EMULATOR_READY http://127.0.0.1:<port>

  Nothing else is ever written to stdout; logs go to stderr (quiet unless ``--verbose``).
* By default the process then reads stdin until EOF. EOF means the parent closed the pipe or died, so
  the server is stopped and the process exits 0. Keep the write end of our stdin open for as long as the
  emulator is needed; this guarantees cleanup even if the parent is SIGKILLed.
* With ``--no-stdin-guard`` it runs until SIGTERM or SIGINT. (Use this when stdin is /dev/null, e.g. when
  started in the background from a shell, or it would exit at once.)
* SIGTERM and SIGINT stop the server and exit 0 in both modes.

Exit codes: 0 clean stop, 1 start-up failure (port in use, moto missing, no answer), 2 bad arguments.

Example::

    infra/.venv/bin/python infra/emulator/moto_guard.py --port 0
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

READY_PREFIX = "LOCKREAPER_EMULATOR_READY"

log = logging.getLogger("moto_guard")


class _Stop(Exception):
    """Raised from the signal handler to leave the main wait."""


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="moto_guard.py",
        description=(
            "Start a moto AWS emulator (in-process) for lockreaper tests. Prints one line "
            f"'{READY_PREFIX} http://<host>:<port>' to stdout when it answers HTTP, then serves "
            "until stdin reaches EOF (default) or until SIGTERM/SIGINT."
        ),
        epilog="Logs go to stderr. Exit 0 on a clean stop, 1 if the server could not start.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to bind; 0 lets the OS pick a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--no-stdin-guard",
        action="store_true",
        help="do not watch stdin for EOF; run until SIGTERM/SIGINT instead",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the server to answer HTTP before giving up (default: %(default)s)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log every request (werkzeug access log) and moto's info messages to stderr",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    return args


def _url_host(host: str) -> str:
    """Host part of the URL clients should use for a bind address."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host:
        return f"[{host}]"
    return host


def _wait_until_answering(base_url: str, timeout: float, server_thread: threading.Thread) -> None:
    """GET /moto-api/ until any HTTP answer arrives (an HTTP error status also counts as an answer)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not server_thread.is_alive():
            raise RuntimeError("the server thread stopped before it answered (see the errors above)")
        try:
            with urllib.request.urlopen(f"{base_url}/moto-api/", timeout=2) as resp:
                resp.read()
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError) as exc:
            last_error = exc
            time.sleep(0.05)
    raise RuntimeError(f"no HTTP answer from {base_url}/moto-api/ within {timeout:g} s (last error: {last_error})")


def _wait_for_stdin_eof() -> None:
    """Block until stdin is closed. Data written to stdin is read and ignored."""
    fd = sys.stdin.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
        if not chunk:
            return


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    # stdout is reserved for the single readiness line: send any stray print() (moto or us) to stderr.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.WARNING,
        format="moto_guard: %(levelname)s %(name)s: %(message)s",
    )
    # werkzeug installs its own INFO handler when the logger level is NOTSET; set it explicitly so
    # there is no per-request access log unless --verbose.
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)

    def on_signal(signum: int, _frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    old_handlers: dict[int, object] = {}
    server = None
    server_thread: threading.Thread | None = None
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            old_handlers[sig] = signal.signal(sig, on_signal)
        try:
            from werkzeug.serving import make_server

            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
        except ImportError as exc:
            print(
                f"moto_guard: cannot import moto/werkzeug ({exc}). Run this with infra/.venv/bin/python "
                "(create it with: python3 -m venv infra/.venv && infra/.venv/bin/pip install -r "
                "infra/requirements.txt).",
                file=sys.stderr,
            )
            return 1

        try:
            server = make_server(
                args.host,
                args.port,
                DomainDispatcherApplication(create_backend_app),
                threaded=True,
                request_handler=MotoRequestHandler,
            )
        except OSError as exc:
            print(f"moto_guard: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        except SystemExit:
            # werkzeug prints its own explanation (e.g. "Port N is in use") and calls sys.exit(1).
            print(f"moto_guard: cannot bind {args.host}:{args.port} (see the message above)", file=sys.stderr)
            return 1

        port = server.socket.getsockname()[1]
        # Some moto services build URLs from MOTO_PORT; point it at the real port (this process only).
        os.environ["MOTO_PORT"] = str(port)
        base_url = f"http://{_url_host(args.host)}:{port}"

        server_thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
        server_thread.start()

        try:
            _wait_until_answering(base_url, args.ready_timeout, server_thread)
        except RuntimeError as exc:
            print(f"moto_guard: {exc}", file=sys.stderr)
            return 1

        real_stdout.write(f"{READY_PREFIX} {base_url}\n")
        real_stdout.flush()
        log.info("moto %s serving on %s", _moto_version(), base_url)

        if args.no_stdin_guard:
            while True:
                signal.pause()
        else:
            _wait_for_stdin_eof()
            log.info("stdin closed, stopping")
        return 0
    except _Stop as stop:
        log.info("received %s, stopping", stop)
        return 0
    finally:
        # Ignore further signals while shutting down so a second SIGTERM can't interrupt cleanup.
        for sig in old_handlers:
            signal.signal(sig, signal.SIG_IGN)
        if server is not None:
            if server_thread is not None and server_thread.is_alive():
                server.shutdown()
                server_thread.join(timeout=5)
            server.server_close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        sys.stdout = real_stdout


def _moto_version() -> str:
    try:
        import moto

        return moto.__version__
    except Exception:  # pragma: no cover - informational only
        return "?"


if __name__ == "__main__":
    sys.exit(main())
