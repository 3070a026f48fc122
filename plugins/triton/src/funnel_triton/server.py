"""The embedded Triton server: find the binary, set up its environment, start, wait, stop.

``TritonServer(repo)`` runs the ``tritonserver`` shipped in the ``nvidia-pytriton`` wheel
(or one on ``PATH`` / given explicitly) on loopback with free ports, and waits until every
model in the repository is ready. Facts behind each setting: docs/serving.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from funnel.errors import ServerError

__all__ = ["TritonServer", "find_tritonserver", "INSTALL_HINT", "RESTRICTED_APIS", "ADMIN_HEADER", "ENV_ALLOW"]

#: Triton APIs closed to clients without the admin key (``restrict_api=True``, the default)
RESTRICTED_APIS = ("shared-memory", "model-repository", "logging", "trace")
#: the header (HTTP) / metadata key (gRPC) carrying the admin key
ADMIN_HEADER = "funnel-admin-key"
#: environment variables passed to the server and its Python stubs (besides ``env=`` and
#: ``pass_env=``): what the runtime, Feast/S3 clients and native libraries read.
ENV_ALLOW = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GOOGLE_APPLICATION_CREDENTIALS",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "TRANSFORMERS_OFFLINE", "TRANSFORMERS_CACHE", "XLA_FLAGS",
    "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
)
#: prefixes of allowed variable names
ENV_ALLOW_PREFIXES = (
    "FUNNEL_", "FEAST_", "AWS_", "AZURE_STORAGE_", "LC_", "TF_", "TORCH_", "CUDA_", "MKL_", "OPENBLAS_", "KMP_",
    "TRITON_", "DASK_", "CUPY_", "NUMBA_", "MALLOC_",
)


def allowed_environment(source: dict[str, str] | None = None, pass_env: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """The part of ``source`` (default: os.environ) a served model may see: :data:`ENV_ALLOW`,
    :data:`ENV_ALLOW_PREFIXES` and the names in ``pass_env``; every other variable (tokens,
    passwords, the caller's whole shell) stays out of the server and its stubs."""
    source = dict(os.environ if source is None else source)
    keep = set(ENV_ALLOW) | set(pass_env)
    return {k: v for k, v in source.items() if k in keep or k.startswith(ENV_ALLOW_PREFIXES)}

INSTALL_HINT = (
    'pip install "funnel[triton]" && pip install --no-deps "nvidia-pytriton==0.7.0"  '
    "(the wheel pins numpy<2; --no-deps keeps your numpy — only its tritonserver binary is used)"
)


def _pytriton_dir() -> Path | None:
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "tritonserver"


def _executable(path: Path) -> Path:
    if not os.access(path, os.X_OK):
        raise ServerError(
            f"{path} is not executable (unpacked without file modes?); run: chmod +x {path} "
            "or reinstall nvidia-pytriton with pip"
        )
    return path


def find_tritonserver(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The ``tritonserver`` binary: ``explicit``, else the nvidia-pytriton wheel's, else PATH.

    Raises ServerError with the exact install command when none is found.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ServerError(f"tritonserver binary {path} does not exist")
        return _executable(path)
    wheel = _pytriton_dir()
    if wheel is not None and (wheel / "bin" / "tritonserver").is_file():
        return _executable(wheel / "bin" / "tritonserver")
    on_path = shutil.which("tritonserver")
    if on_path:
        return Path(on_path)
    raise ServerError(f"no tritonserver binary found (not in the nvidia-pytriton wheel, not on PATH). Install it with: {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _backend_dir(binary: Path, workdir: Path) -> Path | None:
    """A backend directory holding the Python backend with the stub for this interpreter."""
    root = binary.parent.parent
    py_backend = root / "backends" / "python"
    stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    if not py_backend.is_dir():
        return None  # a system install: use its own backend directory
    if not stub.is_file():
        if (py_backend / "triton_python_backend_stub").is_file():
            return root / "backends"
        raise ServerError(
            f"the Triton Python backend at {py_backend} has no stub for Python "
            f"{sys.version_info.major}.{sys.version_info.minor} (looked for {stub})"
        )
    target = workdir / "backends" / "python"
    target.mkdir(parents=True)
    for item in py_backend.iterdir():
        if item.name == "__pycache__":
            continue
        if item.is_dir():
            shutil.copytree(item, target / item.name)
        else:
            shutil.copy2(item, target / item.name)
    shutil.copy2(stub, target / "triton_python_backend_stub")
    return workdir / "backends"


def server_environment(
    binary: Path, extra: dict[str, str] | None = None, pass_env: list[str] | tuple[str, ...] = ()
) -> dict[str, str]:
    """Environment for the server: the allowed part of os.environ (:func:`allowed_environment`),
    wheel libraries and this interpreter's libpython first, this environment's ``bin/`` first
    on PATH (the stub finds its Python through PATH), then ``extra``."""
    env = allowed_environment(None, pass_env)
    libs: list[str] = []
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        libs.append(str(libdir))
    wheel_libs = binary.parent.parent.parent.parent / "nvidia_pytriton.libs"
    if wheel_libs.is_dir():
        libs.append(str(wheel_libs))
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra or {})
    return env


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def _proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (R, S, Z...), or None when it no longer exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


class TritonServer:
    """An embedded ``tritonserver`` serving one model repository (a context manager).

    ``with TritonServer(repo) as server: server.infer(table)`` — starts on loopback with
    free ports, waits until the server and every model are ready (``timeout`` seconds),
    raises ServerError with the model load errors from the server log otherwise, and
    stops the server on exit. ``repository`` may also be a cloud URL Triton reads itself
    (``s3://host:port/bucket/path``; credentials from ``env`` / the environment, see docs/deploy.md).
    """

    def __init__(
        self,
        repository: str | os.PathLike[str],
        timeout: float = 120.0,
        http_port: int | None = None,
        grpc_port: int | None = None,
        tritonserver: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        log_verbose: int = 0,
        extra_args: list[str] | None = None,
        host: str = "127.0.0.1",
        restrict_api: bool = True,
        admin_key: str | None = None,
        pass_env: list[str] | tuple[str, ...] = (),
        watchdog: bool = True,
        probe_interval: float = 1.0,
    ) -> None:
        # a cloud repository (s3://host:port/bucket/path, gs://, as://) is read by Triton itself
        self.remote = isinstance(repository, str) and re.match(r"^(s3|gs|as)://", repository) is not None
        self.repository: Any = repository if self.remote else Path(repository).resolve()
        if not self.remote and not self.repository.is_dir():
            raise ServerError(f"model repository {self.repository} does not exist")
        self.timeout = timeout
        self.http_port = http_port or _free_port()
        self.grpc_port = grpc_port or _free_port()
        self.binary = find_tritonserver(tritonserver)
        self.env = env or {}
        self.log_verbose = log_verbose
        self.extra_args = list(extra_args or [])
        self.host = host
        self.restrict_api = bool(restrict_api)
        import secrets  # noqa: PLC0415

        self.admin_key = admin_key or secrets.token_urlsafe(24)
        self.pass_env = tuple(pass_env)
        self.watchdog = bool(watchdog)
        self.probe_interval = float(probe_interval)
        #: how many times the watchdog restarted the server, and why (newest last)
        self.restarts: list[str] = []
        self.watchdog_error: str | None = None
        self._stubs: dict[int, str] = {}
        self._lifecycle = threading.RLock()
        self._watch_stop = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None
        self._final_log = ""
        self._clients: dict[Any, Any] = {}
        self._local = threading.local()

    # -- addresses ------------------------------------------------------------------------
    @property
    def _connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "127.0.0.1") else self.host  # noqa: S104

    @property
    def http_url(self) -> str:
        """``<host>:<port>`` of the HTTP endpoint (tritonclient's url form; 127.0.0.1 by default)."""
        return f"{self._connect_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``<host>:<port>`` of the gRPC endpoint."""
        return f"{self._connect_host}:{self.grpc_port}"

    @property
    def admin_headers(self) -> dict[str, str]:
        """The header that opens the restricted APIs (shared memory, repository, logging, trace)."""
        return {ADMIN_HEADER: self.admin_key}

    @property
    def admin_grpc_headers(self) -> dict[str, str]:
        """The gRPC metadata that opens the restricted APIs (Triton prefixes the key's name)."""
        return {f"triton-grpc-protocol-{ADMIN_HEADER}": self.admin_key}

    @property
    def log(self) -> str:
        """The server's log so far."""
        if self._log_path is None or not self._log_path.exists():
            return self._final_log
        return self._log_path.read_text(errors="replace")

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> TritonServer:
        """Start the server and wait until it and its models are ready; then (``watchdog=True``)
        watch it: a dead or zombie Python stub, or a dead server, restarts the server on the
        same ports (docs/reliability.md states the bound)."""
        with self._lifecycle:
            if self._proc is not None:
                return self
            self._launch()
        if self.watchdog and (self._watch_thread is None or not self._watch_thread.is_alive()):
            self._watch_stop.clear()
            self._watch_thread = threading.Thread(target=self._watch, name="funnel-triton-watchdog", daemon=True)
            self._watch_thread.start()
        return self

    def _launch(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="funnel-triton-")
        work = Path(self._workdir.name)
        backends = _backend_dir(self.binary, work)
        args = [
            str(self.binary),
            f"--model-repository={self.repository}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=false",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=false",
            "--exit-on-error=true",
            "--strict-readiness=true",
            f"--log-verbose={self.log_verbose}",
        ]
        if backends is not None:
            args.append(f"--backend-directory={backends}")
        if self.restrict_api:
            apis = ",".join(RESTRICTED_APIS)
            args += [
                f"--http-restricted-api={apis}:{ADMIN_HEADER}={self.admin_key}",
                f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={self.admin_key}",
            ]
        args += self.extra_args
        self._log_path = work / "tritonserver.log"
        log = self._log_path.open("wb")
        try:
            self._proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=server_environment(self.binary, self.env, self.pass_env),
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerError(f"could not start {self.binary}: {exc}") from exc
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self._terminate()
            raise
        self._stubs = self._stub_processes()

    def _wait_ready(self) -> None:
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        assert self._proc is not None
        deadline = time.monotonic() + self.timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ServerError(
                    f"tritonserver exited with code {code} while loading {self.repository}:\n{self.load_errors()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback only
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise ServerError(f"tritonserver did not become ready within {self.timeout:.0f} s:\n{self.load_errors()}")

    def load_errors(self) -> str:
        """Why models failed to load, from the server log (or the log's tail)."""
        text = self.log
        errors = []
        for match in re.finditer(r"failed to load '([^']+)' version (\d+): (.*)", text):
            message = match.group(3).split("\\n\\nAt:", 1)[0].rstrip('"')
            errors.append(f"model {match.group(1)!r} (version {match.group(2)}) failed to load: {message}")
        if errors:
            return "\n".join(errors)
        lines = [ln for ln in text.splitlines() if not ln.startswith(("|", "+"))]
        return "\n".join(lines[-30:])

    # -- watchdog -------------------------------------------------------------------------
    def _stub_processes(self) -> dict[int, str]:
        """PID → shared-memory region of each Python backend stub the server started."""
        out: dict[int, str] = {}
        proc = self._proc
        if proc is None:
            return out
        for pid in _children(proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"triton_python_backend_stub"):
                region = next((a.decode(errors="replace") for a in argv if a.lstrip(b"/").startswith(b"triton_python_backend_shm")), "")
                out[pid] = region
        return out

    def unhealthy(self) -> str | None:
        """Why the server cannot serve right now (server exited, a stub dead or a zombie), else None."""
        proc = self._proc
        if proc is None:
            return "the server is not running"
        if proc.poll() is not None:
            return f"tritonserver exited with code {proc.returncode}"
        for pid in self._stubs:
            state = _proc_state(pid)
            if state is None or state in ("Z", "X"):
                return f"Python backend stub (pid {pid}) is {'gone' if state is None else 'a zombie'}"
        return None

    @property
    def healthy(self) -> bool:
        """True while the server and every Python stub it started are alive."""
        return self.unhealthy() is None

    def _watch(self) -> None:
        while not self._watch_stop.wait(self.probe_interval):
            with self._lifecycle:
                if self._watch_stop.is_set() or self._proc is None:
                    return
                why = self.unhealthy()
                if why is None:
                    continue
                self.restarts.append(why)
                sys.stderr.write(f"funnel: {why}; restarting tritonserver on the same ports\n")
                self._terminate(grace=5.0)
                try:
                    self._launch()
                except ServerError as exc:
                    self.watchdog_error = f"restart after '{why}' failed: {exc}"
                    sys.stderr.write(f"funnel: {self.watchdog_error}\n")
                    return

    def wait_healthy(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until the server is up and healthy (e.g. after a restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lifecycle:
                if self._proc is not None and self.healthy and self._ready_now():
                    return True
            time.sleep(0.1)
        return False

    def _ready_now(self) -> bool:
        import urllib.request  # noqa: PLC0415

        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1) as resp:  # noqa: S310
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the watchdog and the server (SIGINT, then SIGKILL after 15 s); remove its files."""
        self._watch_stop.set()
        thread, self._watch_thread = self._watch_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        with self._lifecycle:
            self._terminate()

    def _terminate(self, grace: float = 15.0) -> None:
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()
        self._local = threading.local()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=grace)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if proc is not None:
            try:  # a stub killed with the server leaves its process group; reap what is left
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for region in self._stubs.values():  # shared memory of stubs that died without cleaning up
            shm = Path("/dev/shm") / region.lstrip("/")
            if region and shm.is_file():
                try:
                    shm.unlink()
                except OSError:
                    pass
        self._stubs = {}
        if self._workdir is not None:
            self._final_log = self.log
            self._workdir.cleanup()
            self._workdir = None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- clients --------------------------------------------------------------------------
    def client(self, protocol: str = "http") -> Any:
        """A tritonclient client for this server (cached per protocol and thread: tritonclient's
        HTTP client is gevent-based and must not be shared across threads)."""
        per_thread = self._local.__dict__.setdefault("clients", {})
        if protocol not in per_thread:
            from funnel_triton.client import make_client  # noqa: PLC0415

            url = self.http_url if protocol == "http" else self.grpc_url
            per_thread[protocol] = make_client(url, protocol)
            self._clients[(protocol, id(per_thread))] = per_thread[protocol]
        return per_thread[protocol]

    def infer(self, data: Any, model: str = "funnel", protocol: str = "http", timeout: float | None = None) -> Any:
        """Send ``data`` (Table, dict of columns or DataFrame) to ``model``; returns a Table
        (a DataFrame when given one). Raises RequestError with the server's message."""
        from funnel_triton.client import infer  # noqa: PLC0415

        return infer(self.client(protocol), data, model=model, protocol=protocol, timeout=timeout)
