"""A loopback HTTP proxy that makes a local AWS behave like a distant one, and counts.

The proxy listens on 127.0.0.1 (an ephemeral port), delays every request by a fixed
latency (standing in for the round trip to a real region), forwards it upstream
and counts it by service and API action, summing the upstream's own answer time so a
report can tell the stand-in AWS's processing from the client's. The upstream is an
HTTP endpoint (`HttpUpstream`: any moto server) or moto's WSGI application in the
proxy's own process (`WsgiUpstream`), which the benchmark uses. Each client
connection has its own thread over HTTP/1.1 keep-alive, so concurrent clients overlap
their waits and no call pays a TCP handshake it would not pay against AWS. Paths under
`/__latency_proxy__/` control the proxy itself (`ControlClient`), from any process.

Run `python -m reassembly_trigger.local.aws.latency_proxy` to start a moto server with a
proxy in front of it in a process of its own (`SubprocessStack` does this): the
benchmark then measures the handler's process alone, with "AWS" on another core.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

DEFAULT_LATENCY_MS = 5.0
#: Path prefix of the proxy's own endpoints (never forwarded).
CONTROL_PREFIX = "/__latency_proxy__/"
#: Headers that describe one hop, not the message (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_TARGET_SERVICES = {
    "DynamoDB": "dynamodb",
    "DynamoDBStreams": "dynamodbstreams",
    "AmazonSQS": "sqs",
}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


def identify_call(headers: Any, path: str, body: bytes) -> tuple[str, str]:
    """(service, action) of an AWS request, e.g. ("dynamodb", "Query"): from `X-Amz-Target`
    (JSON protocols, `DynamoDB_20120810.Query`) or `Action=` (query protocol)."""
    target = headers.get("X-Amz-Target")
    if target and "." in target:
        prefix, action = target.rsplit(".", 1)
        service = _TARGET_SERVICES.get(prefix.split("_", 1)[0], prefix.lower())
        return service, action
    scope = _CREDENTIAL_SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else "unknown"
    query = parse_qs(urlsplit(path).query)
    if "Action" not in query and body:
        query = parse_qs(body.decode("utf-8", "replace"))
    actions = query.get("Action")
    return service, actions[0] if actions else "unknown"


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """What went through the proxy since the last reset."""

    #: {service: {action: calls}}, e.g. {"dynamodb": {"Query": 430}}.
    calls: dict[str, dict[str, int]]
    #: Time the upstream took to answer, summed over every call (latency excluded).
    upstream_seconds: float
    #: CPU time of the proxy's process (the proxy, and moto when it runs inside it).
    process_cpu_seconds: float = 0.0

    @property
    def total(self) -> int:
        """Every call, whatever its service."""
        return sum(sum(actions.values()) for actions in self.calls.values())


class ProxyControl(Protocol):
    """Reading and resetting a proxy, wherever it runs."""

    def stats(self) -> ProxyStats:
        """Calls and upstream time since the last reset."""

    def reset(self) -> None:
        """Zero the counts."""

    def set_latency(self, latency_ms: float) -> None:
        """Change the added latency from now on."""


Response = tuple[int, list[tuple[str, str]], bytes]


class Upstream(Protocol):
    """Where the proxy sends a request once it has waited."""

    def send(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        """Status, headers and body of the upstream's answer."""


class HttpUpstream:
    """An HTTP endpoint, on one keep-alive connection per proxy thread."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._local = threading.local()  # `.connection`: this thread's, if it has one

    def send(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        """Send on this thread's connection; reconnect once if the upstream closed it."""
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
                self._local.connection = connection
            try:
                connection.request(method, path, body=body, headers=dict(headers))
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                # The upstream closed an idle keep-alive connection: open a new one.
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                connection.close()
                self._local.connection = None
            return response.status, response.getheaders(), data
        raise AssertionError("unreachable")


class WsgiUpstream:
    """A WSGI application in this process (moto's own), called without a second HTTP hop.

    moto's HTTP server (werkzeug's development server) closes the connection after
    every response and starts a thread per connection; calling its application
    directly leaves only the work moto itself does.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def send(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        """Run the request through the application; buffer its answer."""
        from werkzeug.test import create_environ, run_wsgi_app

        environ = create_environ(path=path, method=method, headers=headers, data=body)
        # Buffered: werkzeug reads the whole answer and closes the application's iterator.
        chunks, status, response_headers = run_wsgi_app(self.app, environ, buffered=True)
        return int(status.split(" ", 1)[0]), list(response_headers.items()), b"".join(chunks)


class LatencyProxy:
    """The proxy: delay, forward, count. Start it, point clients at `endpoint_url`."""

    def __init__(
        self, upstream: str | Upstream, latency_ms: float = DEFAULT_LATENCY_MS, port: int = 0
    ) -> None:
        self.upstream = HttpUpstream(upstream) if isinstance(upstream, str) else upstream
        self.latency_seconds = latency_ms / 1000.0
        # AWS calls by service and action, and the upstream's time; shared by the threads.
        self._counts: Counter[tuple[str, str]] = Counter()
        self._upstream_seconds = 0.0
        self._cpu_at_reset = time.process_time()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler_class(self))
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        """Where clients should send their requests."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Serve in a background thread; return the endpoint URL."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="latency-proxy",
            daemon=True,
        )
        self._thread.start()
        return self.endpoint_url

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LatencyProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def control(self, method: str, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The proxy's own endpoints: `stats` (GET), `reset` and `latency` (POST)."""
        if name == "stats" and method == "GET":
            return 200, asdict(self.stats())
        if name == "reset" and method == "POST":
            self.reset()
            return 200, {}
        if name == "latency" and method == "POST":
            self.set_latency(float(json.loads(body or b"{}")["ms"]))
            return 200, {"latency_ms": self.latency_seconds * 1000.0}
        return 404, {"error": f"no control endpoint {method} {name}"}

    # The same three operations as `ControlClient`, for a proxy in this process.

    def stats(self) -> ProxyStats:
        """Calls and upstream time since the last reset."""
        calls: dict[str, dict[str, int]] = {}
        with self._lock:
            for (service, action), count in sorted(self._counts.items()):
                calls.setdefault(service, {})[action] = count
            cpu = time.process_time() - self._cpu_at_reset
            return ProxyStats(calls, self._upstream_seconds, process_cpu_seconds=cpu)

    def reset(self) -> None:
        """Zero the counts."""
        with self._lock:
            self._counts.clear()
            self._upstream_seconds = 0.0
            self._cpu_at_reset = time.process_time()

    def count(self, service: str, action: str, upstream_seconds: float) -> None:
        """Count one call that took the upstream `upstream_seconds` to answer."""
        with self._lock:
            self._counts[(service, action)] += 1
            self._upstream_seconds += upstream_seconds

    def set_latency(self, latency_ms: float) -> None:
        """Change the added latency from now on."""
        self.latency_seconds = latency_ms / 1000.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of new client connections (a pool
    # of 64 threads connecting at once) overflowed it, the kernel dropped the SYNs and
    # each client retried its connect 1 s later, past the handler's connect timeout.
    # AWS accepts any number of connections at once.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing its keep-alive connection is the normal end of it.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_class(proxy: LatencyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1: clients keep their connection (and this thread) across calls.
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK would add ~40 ms to every call.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith(CONTROL_PREFIX):
                status, payload = proxy.control(
                    self.command, self.path[len(CONTROL_PREFIX) :], body
                )
                self._reply(
                    status, [("Content-Type", "application/json")], json.dumps(payload).encode()
                )
                return
            service, action = identify_call(self.headers, self.path, body)
            if proxy.latency_seconds > 0:
                time.sleep(proxy.latency_seconds)
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            started = time.perf_counter()
            try:
                status, upstream_headers, data = proxy.upstream.send(
                    self.command, self.path, headers, body
                )
            except OSError as exc:
                status, upstream_headers = 502, [("Content-Type", "text/plain")]
                data = str(exc).encode()
            proxy.count(service, action, time.perf_counter() - started)
            kept = [
                (k, v)
                for k, v in upstream_headers
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
            ]
            self._reply(status, kept, data)

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response_only(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        # http.server dispatches on these names.
        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: one line per call would drown the benchmark's output."""

    return Handler


# ------------------------------------------------------------------ from another process


class ControlClient:
    """Reads and resets a proxy's counts over HTTP (the proxy may live in another process)."""

    def __init__(self, proxy_url: str) -> None:
        self._netloc = urlsplit(proxy_url).netloc  # host:port, as HTTPConnection takes it

    def _call(self, method: str, name: str, payload: dict[str, Any] | None = None) -> Any:
        connection = http.client.HTTPConnection(self._netloc, timeout=10)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            connection.request(method, CONTROL_PREFIX + name, body=body)
            response = connection.getresponse()
            data = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"latency proxy: {data}")
            return data
        finally:
            connection.close()

    def stats(self) -> ProxyStats:
        """Calls and upstream time since the last reset."""
        return ProxyStats(**self._call("GET", "stats"))

    def reset(self) -> None:
        """Zero the counts."""
        self._call("POST", "reset")

    def set_latency(self, latency_ms: float) -> None:
        """Change the added latency from now on."""
        self._call("POST", "latency", {"ms": latency_ms})


class SubprocessStack:
    """A moto server with a latency proxy in front, in a child process of its own.

    `upstream_url` reaches moto directly (for setting up data, uncounted and undelayed);
    `proxy_url` is the delayed, counted endpoint for the code under measurement.
    """

    def __init__(self, latency_ms: float = DEFAULT_LATENCY_MS, *, tune_moto: bool = True) -> None:
        self.latency_ms = latency_ms
        #: Take moto's own overheads out of the way (`moto_tuning`).
        self.tune_moto = tune_moto
        self.upstream_url = self.proxy_url = ""
        self._process: subprocess.Popen[str] | None = None
        self.control: ControlClient | None = None

    def start(self) -> SubprocessStack:
        """Start the child and wait for it to report its endpoints."""
        command = [sys.executable, "-m", __name__, "--latency-ms", str(self.latency_ms)]
        if self.tune_moto:
            command.append("--tune-moto")
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the latency proxy process exited before it was ready")
        ready = json.loads(line)
        self.upstream_url, self.proxy_url = ready["upstream"], ready["proxy"]
        self.control = ControlClient(self.proxy_url)
        return self

    def stop(self) -> None:
        """Ask the child to stop (close its stdin); kill it if it does not."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> SubprocessStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process started by `SubprocessStack`: run moto and the
    proxy until stdin closes, after announcing both URLs as one JSON line."""
    from reassembly_trigger.local.aws.stack import embedded_moto_server, moto_application

    parser = argparse.ArgumentParser(description="moto on 127.0.0.1 behind a latency proxy")
    parser.add_argument("--latency-ms", type=float, default=DEFAULT_LATENCY_MS)
    parser.add_argument(
        "--tune-moto",
        action="store_true",
        help="take moto's own overheads out of the way (moto_tuning)",
    )
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole foreground process group: the parent handles it and then
    # closes our stdin, which stops us; a KeyboardInterrupt here would only print a
    # traceback into the parent's terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.tune_moto:
        from reassembly_trigger.local.aws.moto_tuning import tune_moto

        tune_moto()
    # The proxy calls moto's application in this process: the same backends as the
    # server at `upstream`, without werkzeug's connection-per-request second hop.
    app = moto_application()
    with (
        embedded_moto_server() as upstream,
        LatencyProxy(WsgiUpstream(app), args.latency_ms) as proxy,
    ):
        print(json.dumps({"upstream": upstream, "proxy": proxy.endpoint_url}), flush=True)
        # The parent closes our stdin when done (or dies): then we stop too.
        while sys.stdin.read(4096):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
