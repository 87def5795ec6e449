"""The server process of ``embgeo serve``: Voila, with the settings a shared server needs.

``embgeo serve`` (:mod:`embgeo._commands_serve`) checks its options and starts this module as
``python -m embgeo._voila_server NOTEBOOK --flags...``. On top of Voila it adds, each as a traitlets
option set on the command line:

* a cap on live kernels and a memory floor (:class:`EmbgeoKernelManager`): a page that would start
  one kernel too many, or start one while the machine has less free memory than the floor, gets a
  "server busy" page (HTTP 503, ``Retry-After``) and no kernel. Each kernel is counted once, by its
  id, from the moment its start is reserved until it is shut down;
* the token kept out of the kernels and the log: the ``token`` query parameter is removed from the
  request URL and query string that Voila copies into each kernel's environment
  (``VOILA_REQUEST_URL``, ``QUERY_STRING``), and the access log is jupyter-server's
  (:func:`jupyter_server.log.log_request`, which writes ``token=[secret]``), not tornado's, which logs
  every failed request's URL in full;
* a Host allowlist (:attr:`EmbgeoVoila.allowed_hosts`: loopback names on loopback, plus each
  ``--allow-host``): any request whose Host header names another host is refused with 403 before a
  handler runs (a DNS-rebinding page on ``evil.example:PORT`` reaches the loopback server with that
  Host), and jupyter-server's own check (``allow_remote_access=False``, ``local_hostnames``), which
  Voila turns off, is turned back on;
* cross-site requests that are not a top-level navigation (``Sec-Fetch-Site: cross-site`` or
  ``same-site`` with a ``Sec-Fetch-Mode`` other than ``navigate``) are refused with 403, so a web
  page open in the same browser cannot start kernels with ``fetch(..., {mode: "no-cors"})``;
* uploads up to :attr:`EmbgeoVoila.max_upload_mb`: tornado's ``websocket_max_message_size`` (10 MiB
  by default, after which the server closes the kernel's websocket and the upload vanishes) and the
  HTTP server's read buffer (``max_buffer_size``, 100 MB) are raised to fit one such file; the HTTP
  body limit (``max_body_size``) stays at tornado's 100 MB (raising the buffer would raise it too, and
  any request body, authenticated or not, is buffered whole before a handler runs);
* a refusal (400) of ``?template=`` and ``?theme=`` (the overrides are off; Voila ignores them too,
  with ``allow_template_override=NO``), before any kernel starts;
* ``/voila/files/`` (the files next to the notebook that Voila's ``file_allowlist`` lets through)
  behind the token, like every other page (Voila serves them with a plain ``StaticFileHandler``);
* ``GET /api/kernels`` (authenticated, read-only): how many kernels live and their execution states,
  never their ids (a kernel id is the key to that participant's session);
* a page whose kernel is lost while Voila runs its notebook (it died, or did not answer within Voila's
  start-up timeout) ends with a message saying so and its slot is freed: Voila renders in a task of its
  own whose failure it never reports, so the page otherwise stayed loading for as long as the browser
  waited (with its heartbeats, for ever). Until its page is sent, a kernel is not culled: its start
  (``kernel_info`` exchanges, which jupyter-server does not count as activity) is not idle time.

Culling (``MappingKernelManager.cull_idle_timeout`` and friends), the token and the template settings
are Voila's and jupyter-server's own options, passed by ``embgeo serve``.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import time
import html
import json
import os
import sys
import urllib.parse

import tornado.routing
import tornado.web
from tornado.log import app_log
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.log import log_request
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import ensure_async, url_path_join
from traitlets import Integer, List, TraitError, Unicode
from voila.app import Voila
from voila.static_file_handler import AllowListFileHandler
from voila.tornado.handler import TornadoVoilaHandler

#: The token travels in the environment, not on the command line (which ``ps`` shows every user).
TOKEN_ENV = "EMBGEO_SERVE_TOKEN"
#: Bytes a widget message carries besides the file itself (JSON header, name, type, dates), with room.
MESSAGE_OVERHEAD = 2 * 2**20
#: tornado's defaults for the HTTP server's body and read buffer; never lowered.
TORNADO_BUFFER_DEFAULT = 100 * 2**20
RETRY_AFTER_S = 60
#: Query parameters taken out of what Voila copies into a kernel's environment.
SECRET_PARAMS = ("token",)
#: The request's URL and query string as Voila hands them to each kernel (voila.utils.ENV_VARIABLE).
REQUEST_URL_ENV, QUERY_STRING_ENV = "VOILA_REQUEST_URL", "QUERY_STRING"
#: Seconds between the checks, while a page is sent, that its kernel still lives (Voila sends a
#: heartbeat every ``http_keep_alive_timeout`` seconds, 10 by default, so a stalled page is checked too).
KERNEL_CHECK_S = 2.0
#: The page a request is sending, as a dict: :meth:`EmbgeoKernelManager.start_kernel` records there the
#: kernel it starts for it. A context variable: Voila starts the kernel inside the page's generator,
#: which runs in the request's own task.
_PAGE = contextvars.ContextVar("embgeo_page", default=None)


class ServerBusy(Exception):
    """A new session refused: the kernel cap is reached or free memory is under the floor."""


def available_memory() -> int | None:
    """Bytes of memory available to new processes (psutil, else /proc/meminfo), None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or failing: the kernel's own reading
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return None


class EmbgeoKernelManager(AsyncMappingKernelManager):
    """jupyter-server's kernel manager with a cap on kernels and a memory floor for new ones."""

    max_kernels = Integer(0, config=True, help="Most kernels alive at once (0: no cap).")
    memory_floor = Integer(0, config=True, help="Bytes of free memory under which no new kernel starts (0: off).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        #: ids of kernels whose start is under way: they hold a slot before jupyter-client lists them
        self._reserved: set[str] = set()
        #: ids of kernels whose page is still being sent: never culled (see :meth:`cull_kernel_if_idle`)
        self._rendering: set[str] = set()

    def in_use(self) -> int:
        """Kernels holding a slot: running, starting (jupyter-client's pending ones) or reserved here,
        each counted once by its id (a kernel is in ``_kernels`` before its start has finished)."""
        return len(set(self._kernels) | set(self._pending_kernels) | self._reserved)

    def refusal(self) -> str | None:
        """Why a new kernel may not start now, or None."""
        in_use = self.in_use()
        if self.max_kernels and in_use >= self.max_kernels:
            return f"all {self.max_kernels} sessions are in use"
        if self.memory_floor:
            free = available_memory()
            if free is not None and free < self.memory_floor:
                return (f"the machine has {free / 2**30:.1f} GiB of memory free, under the "
                        f"{self.memory_floor / 2**30:.1f} GiB this server keeps in reserve")
        return None

    async def start_kernel(self, *args, **kwargs):
        if kwargs.get("kernel_id") is not None and kwargs["kernel_id"] in self:  # an existing kernel
            return await super().start_kernel(*args, **kwargs)
        if isinstance(kwargs.get("env"), dict):
            kwargs["env"] = scrub_kernel_env(kwargs["env"])
        # check and reserve with no await in between: the server runs on one event loop, so two
        # pages arriving together cannot both take the last slot
        reason = self.refusal()
        if reason is not None:
            self.log.warning("embgeo: refused a new session: %s", reason)
            raise ServerBusy(reason)
        kernel_id = kwargs["kernel_id"] = kwargs.get("kernel_id") or self.new_kernel_id()
        self._reserved.add(kernel_id)
        page = _PAGE.get()
        if page is not None:
            page["kernel_id"] = kernel_id
            self._rendering.add(kernel_id)
        try:
            return await super().start_kernel(*args, **kwargs)
        finally:
            self._reserved.discard(kernel_id)

    def page_sent(self, kernel_id: str | None) -> None:
        """The page of ``kernel_id`` is sent (or its request is gone): the culler may look at it again."""
        self._rendering.discard(kernel_id)

    async def kernel_lost(self, kernel_id: str) -> bool:
        """Whether ``kernel_id`` is gone, dead or its process not running (Voila's executor shuts a
        kernel down itself when it does not answer in time)."""
        kernel = self._kernels.get(kernel_id)
        if kernel is None or getattr(kernel, "execution_state", None) == "dead":
            return True
        try:
            return not await ensure_async(kernel.is_alive())
        except Exception:  # a manager half torn down: its kernel is no use to the page either
            return True

    async def cull_kernel_if_idle(self, kernel_id):
        if kernel_id in self._rendering:
            # jupyter-server counts a kernel's start as idle time (the kernel_info exchanges are not
            # activity), so on a busy machine a short --idle-timeout culled kernels still starting,
            # and their pages never loaded
            return None
        # jupyter-server lists a kernel before its start has set ``last_activity``; its culler then reads
        # the unset trait and logs a TraitError traceback (seen with 8 sessions starting at once)
        kernel = self._kernels.get(kernel_id)
        try:
            kernel.last_activity  # noqa: B018 (read to see whether it is set)
        except (TraitError, AttributeError):
            return None
        return await super().cull_kernel_if_idle(kernel_id)


def scrub_query(query: str) -> str:
    """``query`` (a URL's query string) without its :data:`SECRET_PARAMS`."""
    parts = [p for p in query.split("&") if p and urllib.parse.unquote_plus(p.partition("=")[0]) not in SECRET_PARAMS]
    return "&".join(parts)


def scrub_url(url: str) -> str:
    """``url`` without the :data:`SECRET_PARAMS` in its query string."""
    parsed = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parsed._replace(query=scrub_query(parsed.query))) if parsed.query else url


def scrub_kernel_env(env: dict) -> dict:
    """A kernel's environment with the token taken out of the request URL and query string that Voila
    puts there (the notebook's code, and anything it prints or logs, can read them)."""
    env = dict(env)
    if env.get(REQUEST_URL_ENV):
        env[REQUEST_URL_ENV] = scrub_url(env[REQUEST_URL_ENV])
    if env.get(QUERY_STRING_ENV):
        env[QUERY_STRING_ENV] = scrub_query(env[QUERY_STRING_ENV])
    return env


def upload_limits(max_upload_mb: int) -> dict[str, int]:
    """The tornado limits that let one upload of ``max_upload_mb`` MiB through: the websocket message
    size (an application setting) and the HTTP server's read buffer, which holds a whole websocket
    frame (never below tornado's default). The HTTP body limit stays at tornado's default: it
    follows the read buffer unless it is given, and uploads do not come as request bodies."""
    message = max_upload_mb * 2**20 + MESSAGE_OVERHEAD
    return {"websocket_max_message_size": message,
            "max_body_size": TORNADO_BUFFER_DEFAULT,
            "max_buffer_size": max(TORNADO_BUFFER_DEFAULT, message + MESSAGE_OVERHEAD)}


def _page(title: str, text: str) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>embgeo: "
            f"{html.escape(title)}</title></head><body style='font-family:sans-serif;max-width:40em;"
            f"margin:4em auto;color:#222'><h1 style='font-size:1.4em'>embgeo: {html.escape(title)}</h1>"
            f"<p class='embgeo-server-message'>{html.escape(text)}</p></body></html>")


def busy_page(reason: str) -> str:
    """The page a session over the cap (or under the memory floor) gets instead of the app."""
    return _page("server busy", f"The server is busy: {reason}. No session was started for you; "
                                "try again in a minute or two (reload this page).")


#: The end of a page whose kernel was lost while it was sent. The part already sent sits in Voila's
#: hidden cell container under its spinner: the script moves the message to the page's body and takes
#: the spinner away.
KERNEL_LOST_END = ("<div id='embgeo-session-lost' class='embgeo-server-message embgeo-error' style='font-family:"
                   "sans-serif;max-width:40em;margin:4em auto;color:#a00'><h1 style='font-size:1.4em'>embgeo: the "
                   "session stopped</h1><p>This page's session stopped before the page was ready (the server may "
                   "be short of memory, or too busy to start it in time). Reload the page to start a new one.</p>"
                   "</div><script>(function(){var m=document.getElementById('embgeo-session-lost');"
                   "document.body.appendChild(m);var l=document.getElementById('loading');if(l)l.remove();})()"
                   "</script></body></html>")


class EmbgeoVoilaHandler(TornadoVoilaHandler):
    """Voila's page handler, answering with the busy page when no kernel may start, and refusing
    template/theme overrides before a kernel starts."""

    @tornado.web.authenticated
    async def get(self, path=None):
        overrides = sorted({"template", "theme"} & set(self.request.arguments))
        if overrides:
            self.set_status(400)
            self.finish(_page("bad request", f"This server does not take {' or '.join(overrides)} from the "
                                             "address; open it without a query string."))
            return
        km = self.kernel_manager
        page: dict = {}
        context = _PAGE.set(page)
        try:
            checked = time.monotonic()
            async for snippet in self.get_generator(path=path):
                if page.get("kernel_id") and time.monotonic() - checked >= KERNEL_CHECK_S:
                    checked = time.monotonic()
                    if await km.kernel_lost(page["kernel_id"]):
                        await self._end_lost_page(page["kernel_id"])
                        return
                self.write(snippet)
                self.flush()
        except ServerBusy as exc:  # raised by start_kernel, before any byte of the page is written
            self.set_status(503)
            self.set_header("Retry-After", str(RETRY_AFTER_S))
            self.finish(busy_page(str(exc)))
        finally:
            _PAGE.reset(context)
            km.page_sent(page.get("kernel_id"))

    async def _end_lost_page(self, kernel_id: str) -> None:
        """End the page of a kernel that is lost, and free its slot at once (a reload may start one)."""
        self.log.warning("embgeo: a session's kernel was lost before its page was sent; the page says so")
        km = self.kernel_manager
        if kernel_id in km:
            with contextlib.suppress(Exception):  # already on its way out
                await ensure_async(km.shutdown_kernel(kernel_id, now=True))
        self.finish(KERNEL_LOST_END)


class KernelListHandler(APIHandler):
    """``GET /api/kernels``: how many kernels live, and their execution states; never their ids, which
    would let one participant reach another's kernel."""

    @tornado.web.authenticated
    async def get(self):
        km = self.kernel_manager
        states = collections.Counter(km.kernel_model(kid).get("execution_state", "unknown")
                                     for kid in km.list_kernel_ids())
        self.finish(json.dumps({"kernels": sum(states.values()), "execution_states": dict(states),
                                "max_kernels": getattr(km, "max_kernels", 0)}))


class AuthenticatedAllowListFileHandler(JupyterHandler, AllowListFileHandler):
    """Voila's ``/voila/files/`` handler (the notebook folder's files that ``file_allowlist`` lets
    through) behind the token, like the page."""

    @tornado.web.authenticated
    def head(self, path):
        return AllowListFileHandler.head(self, path)

    @tornado.web.authenticated
    def get(self, path, include_body=True):
        return AllowListFileHandler.get(self, path, include_body)


def is_cross_site_fetch(headers) -> bool:
    """Whether a browser says the request comes from another site's page, and is not a top-level
    navigation (``fetch``, ``<img>``, ``<script>``, a form in a frame...): Fetch Metadata headers,
    sent by current browsers and never by ``curl`` or scripts. ``same-site`` counts: a page on
    another port of ``localhost`` is the same site."""
    site = headers.get("Sec-Fetch-Site", "").lower()
    mode = headers.get("Sec-Fetch-Mode", "").lower()
    return site in ("cross-site", "same-site") and mode != "navigate"


class CrossSiteFetch(tornado.routing.Matcher):
    """Matches the requests :func:`is_cross_site_fetch` refuses."""

    def match(self, request):
        return {} if is_cross_site_fetch(request.headers) else None


class CrossSiteRefusedHandler(tornado.web.RequestHandler):
    """A cross-site request that is not a navigation: 403, nothing else runs (no kernel starts)."""

    def prepare(self):
        app_log.warning("embgeo: refused a cross-site %s request (Sec-Fetch-Mode %r)", self.request.method,
                        self.request.headers.get("Sec-Fetch-Mode", ""))
        self.set_status(403)
        self.finish(_page("forbidden", "This server does not answer requests made by other sites' pages."))


class ForbiddenHostHandler(tornado.web.RequestHandler):
    """Every request whose Host header is not on the allowlist: 403, nothing else runs."""

    def prepare(self):
        app_log.warning("embgeo: refused a request for Host %r (not in the allowlist)", self.request.host)
        self.set_status(403)
        self.finish(_page("forbidden", "This server answers only to its own address."))


def host_pattern(names: list[str]) -> str:
    """A tornado host pattern matching every host name except ``names`` (compared without the port,
    lower case, as tornado's ``request.host_name``)."""
    import re

    alternatives = "|".join(re.escape(n.lower()) for n in names)
    return rf"^(?!(?:{alternatives})$).*$"


class EmbgeoVoila(Voila):
    """Voila with an upload limit that the server accepts and a Host allowlist; see the module docstring."""

    max_upload_mb = Integer(50, config=True, help="Largest upload in MiB (the websocket limit is raised to fit it).")
    allowed_hosts = List(Unicode(), config=True,
                         help="Host names accepted in the Host header (empty: any; then a token guards the server).")

    def init_handlers(self):
        handlers = super().init_handlers()  # called by Voila.start once self.app exists
        limits = upload_limits(self.max_upload_mb)
        message_limit = self.app.settings["websocket_max_message_size"] = limits.pop("websocket_max_message_size")
        self.app.listen = functools.partial(self.app.listen, **limits)  # Voila.listen calls app.listen(port, ip)
        # jupyter-server's access log: the token (and other secrets) in a URL logged as [secret]
        self.app.settings["log_function"] = log_request
        if self.allowed_hosts:
            self.app.settings["allow_remote_access"] = False
            self.app.settings["local_hostnames"] = [h for h in self.allowed_hosts if not _is_ip(h)]
            # checked before any handler: static files and the login page included
            self.app.add_handlers(host_pattern(self.allowed_hosts), [(r".*", ForbiddenHostHandler)])
        # first of all rules, whatever the host
        router = self.app.default_router
        router.rules.insert(0, router.process_rule(tornado.routing.Rule(CrossSiteFetch(), CrossSiteRefusedHandler)))
        replace = {TornadoVoilaHandler: EmbgeoVoilaHandler, AllowListFileHandler: AuthenticatedAllowListFileHandler}
        handlers = [(h[0], replace.get(h[1], h[1]), *h[2:]) for h in handlers]
        handlers.insert(0, (url_path_join(self.server_url, r"/api/kernels"), KernelListHandler))
        self.log.info("embgeo: uploads up to %d MiB (websocket messages up to %d bytes); Host allowlist: %s",
                      self.max_upload_mb, message_limit, ", ".join(self.allowed_hosts) or "off (token)")
        return handlers


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    token = os.environ.pop(TOKEN_ENV, None)  # popped: the kernels inherit this process's environment
    EmbgeoVoila.launch_instance(argv if argv is not None else sys.argv[1:],
                                **({} if token is None else {"token": token}))


if __name__ == "__main__":
    # run the copy importable as embgeo._voila_server: the kernel manager class is configured by that
    # name, and its ServerBusy must be the one the page handler catches
    from embgeo._voila_server import main as _main

    _main()
