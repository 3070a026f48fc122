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

__all__ = ["TritonServer", "find_tritonserver", "INSTALL_HINT"]

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


def server_environment(binary: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the server: wheel libraries and this interpreter's libpython first,
    this environment's ``bin/`` first on PATH (the stub finds its Python through PATH)."""
    env = dict(os.environ)
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
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None
        self._final_log = ""
        self._clients: dict[Any, Any] = {}
        self._local = threading.local()

    # -- addresses ------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        """``127.0.0.1:<port>`` of the HTTP endpoint (tritonclient's url form)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``127.0.0.1:<port>`` of the gRPC endpoint."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log(self) -> str:
        """The server's log so far."""
        if self._log_path is None or not self._log_path.exists():
            return self._final_log
        return self._log_path.read_text(errors="replace")

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> TritonServer:
        """Start the server and wait until it and its models are ready."""
        if self._proc is not None:
            return self
        self._workdir = tempfile.TemporaryDirectory(prefix="funnel-triton-")
        work = Path(self._workdir.name)
        backends = _backend_dir(self.binary, work)
        args = [
            str(self.binary),
            f"--model-repository={self.repository}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
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
        args += self.extra_args
        self._log_path = work / "tritonserver.log"
        log = self._log_path.open("wb")
        try:
            self._proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=server_environment(self.binary, self.env),
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerError(f"could not start {self.binary}: {exc}") from exc
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

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

    def stop(self) -> None:
        """Stop the server (SIGINT, then SIGKILL after 15 s) and remove its temporary files."""
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
                proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
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
            from funnel.triton.client import make_client  # noqa: PLC0415

            url = self.http_url if protocol == "http" else self.grpc_url
            per_thread[protocol] = make_client(url, protocol)
            self._clients[(protocol, id(per_thread))] = per_thread[protocol]
        return per_thread[protocol]

    def infer(self, data: Any, model: str = "funnel", protocol: str = "http", timeout: float | None = None) -> Any:
        """Send ``data`` (Table, dict of columns or DataFrame) to ``model``; returns a Table
        (a DataFrame when given one). Raises RequestError with the server's message."""
        from funnel.triton.client import infer  # noqa: PLC0415

        return infer(self.client(protocol), data, model=model, protocol=protocol, timeout=timeout)
