"""``funnel serve`` (run an export on Triton until Ctrl-C) and ``funnel infer`` (send request rows).

Added to the main ``funnel`` group by :func:`funnel_triton.plugin.register_commands` (the
``register_commands`` hook), so they appear once ``funnel-triton`` is installed.
"""

from __future__ import annotations

import click

__all__ = ["serve_cmd", "infer_cmd", "register"]


@click.command("serve")
@click.argument("repository", type=click.Path(exists=True, file_okay=False))
@click.option("--http-port", type=int, default=8000, show_default=True, help="HTTP port (0 = any free port).")
@click.option("--grpc-port", type=int, default=8001, show_default=True, help="gRPC port (0 = any free port).")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for the models to load.")
@click.option("--tritonserver", "binary", type=click.Path(dir_okay=False), default=None,
              help="A tritonserver binary to use instead of the one in the nvidia-pytriton wheel / on PATH.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (0.0.0.0 = every interface: anyone who can reach this machine can query it).")
@click.option("--admin-key", envvar="FUNNEL_ADMIN_KEY", default=None,
              help="Key opening Triton's shared-memory, model-repository, logging and trace APIs "
                   "(header funnel-admin-key). Default: a random key printed at start.")
@click.option("--open-admin-api", is_flag=True,
              help="Leave those admin APIs open to every client (not recommended).")
@click.option("--pass-env", multiple=True, metavar="NAME",
              help="Pass this environment variable to the server and its models (repeatable); only "
                   "FUNNEL_*, FEAST_*, AWS_*, PATH, HOME, LD_LIBRARY_PATH and a few more pass by default.")
@click.option("--no-watchdog", is_flag=True, help="Do not restart the server when a model's Python stub dies.")
def serve_cmd(repository: str, http_port: int, grpc_port: int, timeout: float, binary: str | None, host: str,
              admin_key: str | None, open_admin_api: bool, pass_env: tuple[str, ...], no_watchdog: bool) -> None:
    """Serve an exported model repository with Triton until Ctrl-C.

    REPOSITORY is a directory written by Ensemble.export(). The server listens on
    127.0.0.1 unless --host says otherwise; Triton's admin APIs need the admin key; a
    dead model stub makes it restart on the same ports (docs/reliability.md). Query it
    with `funnel infer` or any Triton client.
    """
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    from funnel.errors import ServerError  # noqa: PLC0415
    from funnel_triton.server import TritonServer  # noqa: PLC0415

    try:
        server = TritonServer(repository, timeout=timeout, http_port=http_port or None,
                              grpc_port=grpc_port or None, tritonserver=binary, host=host,
                              restrict_api=not open_admin_api, admin_key=admin_key, pass_env=pass_env,
                              watchdog=not no_watchdog)
        server.start()
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    admin = "open to every client" if open_admin_api else f"header funnel-admin-key: {server.admin_key}"
    click.echo(f"serving {repository}\n  HTTP  {host}:{server.http_port}\n  gRPC  {host}:{server.grpc_port}\n"
               f"  admin APIs (shared-memory, model-repository, logging, trace): {admin}\nCtrl-C to stop")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    # Ctrl-C stops the server even when SIGINT came in ignored (a background job of a
    # non-interactive shell, as in CI scripts): Python then never installs its own handler
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    try:
        while not stop and server.watchdog_error is None and (server.running or server.watchdog):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        failed = server.watchdog_error or (None if server.running or server.watchdog else "tritonserver exited unexpectedly")
        server.stop()
    if failed:
        raise click.ClickException(failed)


def _read_rows(path: str) -> object:
    import pandas as pd  # noqa: PLC0415

    if not path.endswith((".parquet", ".csv", ".json", ".jsonl")):
        raise click.BadParameter("use a .json (list of row objects), .jsonl, .csv or .parquet file", param_hint="ROWS")
    try:
        if path.endswith(".parquet"):
            return pd.read_parquet(path)
        if path.endswith(".csv"):
            return pd.read_csv(path)
        with open(path) as f:
            first = f.read(1)
        return pd.read_json(path, lines=first != "[" and path.endswith(".jsonl"))
    except Exception as exc:  # noqa: BLE001 - any parser error: say which file and what is expected
        raise click.ClickException(
            f"cannot read request rows from {path}: {type(exc).__name__}: {exc}. Expected a JSON list of "
            'row objects such as [{"user_id": 1}], JSON lines, CSV with a header, or parquet'
        ) from exc


@click.command("infer")
@click.argument("rows", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default="127.0.0.1:8000", show_default=True,
              help="Server address host:port (8000 is HTTP's default, 8001 gRPC's).")
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="http", show_default=True)
@click.option("--model", default="funnel", show_default=True, help="Model name (the export's name=).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON records.")
def infer_cmd(rows: str, url: str, protocol: str, model: str, as_json: bool) -> None:
    """Send request rows from a file to a served model and print the result.

    ROWS is a .json file holding a list of row objects (e.g. [{"user_id": 1,
    "candidates": [3, 5, 7]}]), a .jsonl, .csv or .parquet file. List-valued fields
    become list columns. Columns are cast to the model's request dtypes.
    """
    from funnel.errors import FunnelError  # noqa: PLC0415
    from funnel_triton.client import cast_to_model, infer, make_client  # noqa: PLC0415

    frame = _read_rows(rows)
    try:
        client = make_client(url, protocol)
        table = cast_to_model(client, frame, model)
        result = infer(client, table, model=model, protocol=protocol)
    except FunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - connection errors from tritonclient
        raise click.ClickException(f"could not reach {url} ({protocol}): {exc}") from exc
    frame_out = result.to_pandas()
    if as_json:
        click.echo(frame_out.to_json(orient="records"))
    else:
        import pandas as pd  # noqa: PLC0415

        with pd.option_context("display.max_columns", None, "display.width", 200):
            click.echo(frame_out.to_string())


def register(cli: click.Group) -> None:
    """Add ``serve`` and ``infer`` to the ``funnel`` group."""
    cli.add_command(serve_cmd)
    cli.add_command(infer_cmd)
