"""A local Pixazo gateway for tests, example DAGs and demos: real HTTP on 127.0.0.1, no network.

It speaks the documented GPT Image 1.5 / GPT Image 2 API: submit (``202`` + ``request_id``), the
universal status endpoint, media downloads (real images drawn with Pillow) and webhooks, with
the gateway's error answers (401/403/402/400/404) and injectable faults (429/500/dropped
connections/latency)::

    from airflow_provider_pixazo.testing.emulator import FaultConfig, PixazoEmulator

    with PixazoEmulator(processing_seconds=0.2, faults=FaultConfig(first_n_submits_429=1)) as emu:
        ...  # point a client at emu.url with key emu.api_key; inspect emu.calls afterwards

Prompt markers choose the outcome: ``[fail]`` ends FAILED, ``[error]`` ends ERROR.

From a shell (prints the URL as the first line of stdout, serves until SIGTERM/SIGINT)::

    python -m airflow_provider_pixazo.testing.emulator --port 0 --url-file /tmp/pixazo.url
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_pixazo.testing._faults import Fault, FaultConfig, FaultInjector
from airflow_provider_pixazo.testing._images import render_image, require_pillow
from airflow_provider_pixazo.testing._jobs import EmulatedJob, JobStatus, new_request_id, outcome_for
from airflow_provider_pixazo.testing._server import EmulatorHTTPServer, HttpRequest, HttpResponse
from airflow_provider_pixazo.testing._validation import (
    BadRequest,
    JobSpec,
    parse_gpt_image_1_5,
    parse_gpt_image_2,
    parse_webhook,
)
from airflow_provider_pixazo.testing._webhooks import WebhookDelivery, WebhookDispatcher

__all__ = [
    "EmulatedJob",
    "FaultConfig",
    "JobStatus",
    "PixazoEmulator",
    "RecordedCall",
    "WebhookDelivery",
    "main",
]

DEFAULT_API_KEY = "pixazo-test-key"
API_KEY_ENV = "PIXAZO_EMULATOR_API_KEY"
KEY_HEADER = "ocp-apim-subscription-key"
MODEL_GPT_IMAGE_1_5 = "gpt-image-1-5-api-923"
MODEL_GPT_IMAGE_2 = "gpt-image-2"
STATUS_PREFIX = "/v2/requests/status/"
MEDIA_PREFIX = "/media/"

INVALID_KEY_BODY = {
    "statusCode": 401,
    "message": "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription.",
}
FORBIDDEN_BODY = {
    "statusCode": 403,
    "message": "Access denied. This subscription key is not allowed to use this API.",
}
INSUFFICIENT_BALANCE_BODY = {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}
SERVER_ERROR_BODY = {
    "error": "Internal Server Error",
    "message": "The gateway failed to handle the request (emulated).",
}
NO_ROUTE_BODY = {"statusCode": 404, "message": "Resource not found"}


@dataclass(frozen=True)
class _SubmitRoute:
    model_id: str
    parse: Callable[[Mapping[str, Any]], JobSpec]


SUBMIT_ROUTES: dict[str, _SubmitRoute] = {
    "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request": _SubmitRoute(MODEL_GPT_IMAGE_1_5, parse_gpt_image_1_5),
    "/gpt-image-2/v1/text-to-image": _SubmitRoute(MODEL_GPT_IMAGE_2, partial(parse_gpt_image_2, edit=False)),
    "/gpt-image-2/v1/image-to-image-edit": _SubmitRoute(MODEL_GPT_IMAGE_2, partial(parse_gpt_image_2, edit=True)),
}
_MEDIA_PATH = re.compile(r"^/media/([^/]+)/([0-9]+)\.(png|jpeg|jpg|webp)$")


def endpoint_kind(method: str, path: str) -> str | None:
    """Classify a request: ``submit``, ``status``, ``media``, or ``None`` for anything else.

    :param method: HTTP method.
    :param path: URL path, without query string.
    """
    if method == "POST" and path in SUBMIT_ROUTES:
        return "submit"
    if method == "GET" and path.startswith(STATUS_PREFIX):
        return "status"
    if method in ("GET", "HEAD") and path.startswith(MEDIA_PREFIX):
        return "media"
    return None


@dataclass(frozen=True)
class RecordedCall:
    """One request the emulator received.

    :param method: HTTP method.
    :param path: Request target (query string included).
    :param headers: Request headers, lower-case names.
    :param json: Decoded JSON body, or ``None`` (no body, or not JSON).
    :param status: Status answered; ``0`` when the connection was dropped by a fault.
    :param at: ``time.monotonic()`` when the answer was decided.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any | None
    status: int
    at: float

    @property
    def kind(self) -> str | None:
        """``submit``, ``status``, ``media`` or ``None``."""
        return endpoint_kind(self.method, urlsplit(self.path).path)

    @property
    def sent_key(self) -> bool:
        """Whether the request carried an ``Ocp-Apim-Subscription-Key`` header."""
        return KEY_HEADER in self.headers


def _bad_request(message: str) -> HttpResponse:
    return HttpResponse.json(400, {"error": "Bad Request", "message": message})


def _not_found(message: str) -> HttpResponse:
    return HttpResponse.json(404, {"error": "Not Found", "message": message})


class PixazoEmulator:
    """A Pixazo gateway served on a local port, from daemon threads.

    Jobs move QUEUED -> PROCESSING -> terminal on a clock that starts at submit: QUEUED for
    ``queued_seconds``, then PROCESSING for ``processing_seconds`` (with 0 and 0 the first
    status call already sees the terminal status). Checks run in the gateway's order: faults,
    key (401/403), balance (402), body and webhook headers (400), then acceptance (202).

    :param api_key: The one valid ``Ocp-Apim-Subscription-Key``.
    :param host: Interface to bind.
    :param port: Port to bind; 0 picks a free one (see :attr:`url`).
    :param queued_seconds: Time each job stays QUEUED.
    :param processing_seconds: Time each job stays PROCESSING.
    :param balance: Submits the wallet pays for (each accepted submit costs 1, then 402);
        ``None`` for unlimited.
    :param forbidden_keys: Keys answered 403.
    :param faults: Faults to inject; none by default.
    :param webhook_allow_http: Accept ``http://`` webhook targets (local tests only; the real
        gateway wants https).
    :param ssl_context: A server-side ``ssl.SSLContext`` (certificate loaded) to serve https with,
        e.g. from a throwaway CA made by ``trustme``; :attr:`url` and media URLs are then https.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        queued_seconds: float = 0.0,
        processing_seconds: float = 0.0,
        balance: int | None = None,
        forbidden_keys: Iterable[str] = (),
        faults: FaultConfig | None = None,
        webhook_allow_http: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.queued_seconds = queued_seconds
        self._ssl_context = ssl_context
        self.processing_seconds = processing_seconds
        self.webhook_allow_http = webhook_allow_http
        self._api_key = api_key
        self._host = host
        self._port = port
        self._forbidden_keys = frozenset(forbidden_keys)
        self._balance = balance
        self._injector = FaultInjector(faults or FaultConfig())
        self._lock = threading.Lock()
        self._calls: list[RecordedCall] = []
        self._jobs: dict[str, EmulatedJob] = {}
        self._media: dict[tuple[str, int], bytes] = {}
        self._render_locks: dict[tuple[str, int], threading.Lock] = {}
        self._server: EmulatorHTTPServer | None = None
        # Kept after stop() so counters stay readable in assertions made after teardown.
        self._last_server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._url: str | None = None
        # hold_submits(): submits past the first ``after`` wait here until release_submits().
        self._submit_gate = threading.Event()
        self._submit_gate.set()
        self._submits_let_through: int | None = None
        self._held = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PixazoEmulator:
        """Bind the port and serve from a daemon thread.

        :return: The emulator itself.
        :raises ImportError: Pillow (the ``emulator`` extra) is not installed.
        :raises RuntimeError: Already started.
        """
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        require_pillow()
        server = EmulatorHTTPServer((self._host, self._port), self._handle, self._ssl_context)
        scheme = "https" if self._ssl_context is not None else "http"
        self._url = f"{scheme}://{self._host}:{server.server_address[1]}"
        self._dispatcher = WebhookDispatcher()
        self._server = self._last_server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="pixazo-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and drop pending webhooks. Safe to call twice."""
        self.release_submits()  # no handler thread stays parked on the hold
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._dispatcher is not None:
            self._dispatcher.close()

    def __enter__(self) -> PixazoEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- configuration and inspection -----------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43567`` (still readable after :meth:`stop`)."""
        if self._url is None:
            raise RuntimeError("the emulator has not been started")
        return self._url

    @property
    def api_key(self) -> str:
        """The valid API key."""
        return self._api_key

    @property
    def is_running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def balance(self) -> int | None:
        """Submits left in the wallet, ``None`` for unlimited."""
        with self._lock:
            return self._balance

    @balance.setter
    def balance(self, value: int | None) -> None:
        with self._lock:
            self._balance = value

    @property
    def faults(self) -> FaultConfig:
        """The faults being injected."""
        return self._injector.config

    def set_faults(self, faults: FaultConfig) -> None:
        """Change the injected faults (their counters and random sequence start over).

        :param faults: The new faults.
        """
        self._injector = FaultInjector(faults)

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._calls)

    @property
    def requests(self) -> dict[str, EmulatedJob]:
        """Accepted jobs by request id (a snapshot)."""
        with self._lock:
            return dict(self._jobs)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start: 1 for a client that reuses its connection."""
        return self._last_server.connections_opened if self._last_server is not None else 0

    @property
    def tls_failures(self) -> int:
        """TLS handshakes that failed since start (clients that did not trust the certificate)."""
        return self._last_server.tls_failures if self._last_server is not None else 0

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Webhook attempts made so far."""
        return self._dispatcher.deliveries if self._dispatcher is not None else []

    def wait_for_webhooks(self, count: int, timeout: float = 5.0) -> list[WebhookDelivery]:
        """Wait until ``count`` webhook attempts were made (or ``timeout`` seconds passed).

        :param count: Attempts to wait for.
        :param timeout: Seconds to wait at most.
        :return: The attempts made so far.
        """
        if self._dispatcher is None:
            return []
        return self._dispatcher.wait_for(count, timeout)

    def submit_count(self, prompt: str | None = None) -> int:
        """Number of submits accepted (202): faulted or rejected submits do not count.

        :param prompt: Count only submits with this exact prompt.
        """
        return sum(
            1
            for call in self.calls
            if call.kind == "submit"
            and call.status == 202
            and (prompt is None or (isinstance(call.json, dict) and call.json.get("prompt") == prompt))
        )

    def status_count(self) -> int:
        """Number of status GETs received, whatever they were answered."""
        return sum(1 for call in self.calls if call.kind == "status")

    def media_count(self) -> int:
        """Number of media GET/HEAD requests received, whatever they were answered."""
        return sum(1 for call in self.calls if call.kind == "media")

    def reset(self) -> None:
        """Forget calls, jobs, rendered media, webhooks and fault counters.

        The balance and :attr:`connections_opened` are left as they are.
        """
        with self._lock:
            self._calls.clear()
            self._jobs.clear()
            self._media.clear()
        if self._dispatcher is not None:
            self._dispatcher.clear()
        self.set_faults(self.faults)

    def hold_submits(self, after: int = 0) -> None:
        """Let the next ``after`` submit POSTs through, then hold every later one until :meth:`release_submits`.

        A held submit has been read but not answered (nor accepted): a client killed meanwhile has sent a
        request the gateway takes once released, without ever hearing its request id. Lets a test kill a
        worker in the middle of its submits however slow the machine is.

        :param after: Submits answered as usual before the hold starts.
        """
        with self._lock:
            self._submits_let_through = after
            if after <= 0:
                self._submit_gate.clear()

    def release_submits(self) -> None:
        """Answer the held submits (each is then accepted or refused as usual) and stop holding."""
        with self._lock:
            self._submits_let_through = None
            self._submit_gate.set()

    @property
    def held_submits(self) -> int:
        """Submits waiting on :meth:`hold_submits` right now."""
        with self._lock:
            return self._held

    def _pass_submit_gate(self) -> None:
        with self._lock:
            if self._submits_let_through is not None:
                if self._submits_let_through > 0:
                    self._submits_let_through -= 1
                    return
                self._submit_gate.clear()
            if self._submit_gate.is_set():
                return
            self._held += 1
        try:
            self._submit_gate.wait()
        finally:
            with self._lock:
                self._held -= 1

    # -- request handling -----------------------------------------------------------------------

    def _handle(self, request: HttpRequest) -> HttpResponse:
        path = urlsplit(request.path).path
        kind = endpoint_kind(request.method, path)
        response = self._respond(request, path, kind)
        try:
            payload = json.loads(request.body) if request.body else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        call = RecordedCall(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            json=payload,
            status=0 if response.drop else response.status,
            at=time.monotonic(),
        )
        with self._lock:
            self._calls.append(call)
        return response

    def _respond(self, request: HttpRequest, path: str, kind: str | None) -> HttpResponse:
        if kind is not None:
            injector = self._injector
            fault, latency = injector.decide(kind)
            if latency > 0:
                time.sleep(latency)
            if fault is Fault.TOO_MANY_REQUESTS:
                retry_after = injector.config.retry_after
                return HttpResponse.json(
                    429,
                    {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {retry_after} seconds."},
                    headers={"Retry-After": str(retry_after)},
                )
            if fault is Fault.SERVER_ERROR:
                return HttpResponse.json(500, SERVER_ERROR_BODY)
            if fault is Fault.DROP:
                return HttpResponse(status=0, drop=True)
        if kind == "submit":
            self._pass_submit_gate()
            return self._submit(request, SUBMIT_ROUTES[path])
        if kind == "status":
            return self._status(request, path[len(STATUS_PREFIX) :])
        if kind == "media":
            return self._serve_media(path)
        return HttpResponse.json(404, NO_ROUTE_BODY)

    def _check_key(self, request: HttpRequest) -> HttpResponse | None:
        key = request.headers.get(KEY_HEADER)
        if key is not None and key in self._forbidden_keys:
            return HttpResponse.json(403, FORBIDDEN_BODY)
        if key != self._api_key:
            return HttpResponse.json(401, INVALID_KEY_BODY)
        return None

    def _submit(self, request: HttpRequest, route: _SubmitRoute) -> HttpResponse:
        denied = self._check_key(request)
        if denied is not None:
            return denied
        if self.balance is not None and self.balance <= 0:
            return HttpResponse.json(402, INSUFFICIENT_BALANCE_BODY)
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _bad_request("Request body must be valid JSON")
        if not isinstance(body, dict):
            return _bad_request("Request body must be a JSON object")
        try:
            spec = route.parse(body)
            webhook_url, webhook_mode = parse_webhook(
                request.headers.get("x-webhook-url"),
                request.headers.get("x-webhook-mode"),
                allow_http=self.webhook_allow_http,
            )
        except BadRequest as exc:
            return _bad_request(str(exc))
        request_id = new_request_id(route.model_id)
        outcome, error = outcome_for(body["prompt"])
        job = EmulatedJob(
            request_id=request_id,
            model_id=route.model_id,
            path=urlsplit(request.path).path,
            body=body,
            spec=spec,
            outcome=outcome,
            error=error,
            created_wall=time.time(),
            created_mono=time.monotonic(),
            queued_seconds=self.queued_seconds,
            processing_seconds=self.processing_seconds,
            media_urls=tuple(f"{self.url}{MEDIA_PREFIX}{request_id}/{i}.{spec.fmt}" for i in range(spec.n)),
            webhook_url=webhook_url,
            webhook_mode=webhook_mode,
        )
        with self._lock:
            # Checked again under the lock: two concurrent submits must not both spend the last unit.
            if self._balance is not None:
                if self._balance <= 0:
                    return HttpResponse.json(402, INSUFFICIENT_BALANCE_BODY)
                self._balance -= 1
            self._jobs[request_id] = job
        self._schedule_webhooks(job)
        return HttpResponse.json(
            202,
            {"request_id": request_id, "status": "QUEUED", "polling_url": f"{self.url}{STATUS_PREFIX}{request_id}"},
        )

    def _schedule_webhooks(self, job: EmulatedJob) -> None:
        if job.webhook_url is None or self._dispatcher is None:
            return
        if job.webhook_mode == "sync":
            statuses = [JobStatus.QUEUED, JobStatus.PROCESSING, job.outcome]
        else:
            statuses = [job.outcome]
        for status in statuses:
            due = job.created_mono + job.offset_of(status)
            self._dispatcher.schedule(due, job.webhook_url, job.payload(status))

    def _status(self, request: HttpRequest, request_id: str) -> HttpResponse:
        denied = self._check_key(request)
        if denied is not None:
            return denied
        with self._lock:
            job = self._jobs.get(request_id)
        if job is None:
            return _not_found(f"Request '{request_id}' not found")
        return HttpResponse.json(200, job.payload(job.status_at(time.monotonic())))

    def _serve_media(self, path: str) -> HttpResponse:
        # No key check on purpose: media lives on a public CDN, and clients must not leak the key
        # there (tests check RecordedCall.sent_key on these calls).
        match = _MEDIA_PATH.match(path)
        if match is None:
            return _not_found("No such media")
        request_id, index, ext = match.group(1), int(match.group(2)), match.group(3)
        with self._lock:
            job = self._jobs.get(request_id)
        fmt = "jpeg" if ext == "jpg" else ext
        if (
            job is None
            or job.status_at(time.monotonic()) is not JobStatus.COMPLETED
            or index >= job.spec.n
            or fmt != job.spec.fmt
        ):
            return _not_found("No such media")
        return HttpResponse(
            status=200,
            body=self._render(job, index),
            headers={"Content-Type": job.media_type, "Cache-Control": "public, max-age=31536000, immutable"},
        )

    def _render(self, job: EmulatedJob, index: int) -> bytes:
        key = (job.request_id, index)
        with self._lock:
            cached = self._media.get(key)
            if cached is not None:
                return cached
            render_lock = self._render_locks.setdefault(key, threading.Lock())
        # One lock per image: parallel downloads of the same image render it once, while
        # different images still render in parallel.
        with render_lock:
            with self._lock:
                cached = self._media.get(key)
            if cached is not None:
                return cached
            data = render_image(
                width=job.spec.width,
                height=job.spec.height,
                fmt=job.spec.fmt,
                index=index,
                seed=job.request_id,
                transparent=job.spec.transparent,
                compression=job.spec.compression,
            )
            with self._lock:
                self._media[key] = data
                self._render_locks.pop(key, None)
            return data


# -- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_pixazo.testing.emulator",
        description="Serve a local Pixazo gateway emulator. Prints its URL as the first line of stdout.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV, DEFAULT_API_KEY),
        help=f"valid subscription key (default: ${API_KEY_ENV} or {DEFAULT_API_KEY!r})",
    )
    parser.add_argument("--queued-seconds", type=float, default=0.0, help="time each job stays QUEUED")
    parser.add_argument("--processing-seconds", type=float, default=0.0, help="time each job stays PROCESSING")
    parser.add_argument("--balance", type=int, default=None, help="submits allowed before 402 (default unlimited)")
    parser.add_argument("--rate-429", type=float, default=0.0, help="probability of a 429 answer")
    parser.add_argument("--rate-500", type=float, default=0.0, help="probability of a 500 answer")
    parser.add_argument("--rate-drop", type=float, default=0.0, help="probability of a dropped connection")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault draws")
    parser.add_argument("--webhook-allow-http", action="store_true", help="accept http:// webhook targets")
    parser.add_argument("--url-file", default=None, help="also write the URL to this file")
    parser.add_argument("--tls-cert", default=None, help="serve https with this PEM certificate (chain)")
    parser.add_argument("--tls-key", default=None, help="private key of --tls-cert (if not in the same file)")
    return parser


def server_ssl_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server-side TLS context for the emulator's ``ssl_context`` from PEM files.

    :param certfile: The certificate (and chain), PEM; may also hold the key.
    :param keyfile: The private key, PEM, when not in ``certfile``.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def _write_atomically(path: str, text: str) -> None:
    # Scripts poll for this file: they must never read it half written.
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, encoding="utf-8") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT.

    :param argv: Arguments (default ``sys.argv[1:]``).
    :return: Exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    faults = FaultConfig(
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        rate_drop=args.rate_drop,
        latency_seconds=args.latency,
        seed=args.seed,
    )
    emulator = PixazoEmulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        queued_seconds=args.queued_seconds,
        processing_seconds=args.processing_seconds,
        balance=args.balance,
        faults=faults,
        webhook_allow_http=args.webhook_allow_http,
        ssl_context=server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None,
    )
    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator.start()
    try:
        # The file first: whoever sees the URL on stdout may go and read the file right away.
        if args.url_file:
            _write_atomically(args.url_file, emulator.url + "\n")
        print(emulator.url, flush=True)
        print(f"Pixazo emulator serving on {emulator.url}; stop with SIGTERM or Ctrl-C", file=sys.stderr, flush=True)
        # Short waits keep the main thread responsive to signals.
        while not stopping.wait(0.2):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
