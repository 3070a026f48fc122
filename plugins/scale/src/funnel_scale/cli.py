"""The scale-out commands: ``funnel score``, ``funnel repo check|push``, ``funnel deploy kserve``.

Added to the main ``funnel`` group by :func:`funnel_scale.plugin.register_commands` (the
``register_commands`` hook), so they appear once ``funnel-scale`` is installed. dask, boto3
and kserve are only imported when a command runs.
"""

from __future__ import annotations

import click

from funnel.errors import FunnelError

__all__ = ["repo_group", "deploy_group", "score_cmd", "register"]


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("repo")
def repo_group() -> None:
    """Model repositories: check one is self-contained, push it to object storage."""


@repo_group.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def repo_check_cmd(directory: str) -> None:
    """Check DIRECTORY (an export) can be served from object storage: every model directory
    self-contained, no path in a graph pointing outside the repository."""
    from funnel_scale.storage import check_repository  # noqa: PLC0415

    try:
        check = check_repository(directory)
    except FunnelError as exc:
        raise _fail(exc) from exc
    click.echo(f"{directory}: {len(check.models)} model(s) {check.models}, {len(check.files)} files, "
               f"{check.total_bytes / 1e6:.1f} MB — self-contained")
    for ext in check.overridable:
        click.echo(f"  note: {ext.describe()}")


@repo_group.command("push")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.argument("url")
@click.option("--overwrite", is_flag=True, help="Replace what is under URL (old objects are deleted first).")
@click.option("--create-bucket", is_flag=True, help="Create the bucket when it does not exist.")
def repo_push_cmd(directory: str, url: str, overwrite: bool, create_bucket: bool) -> None:
    """Upload the model repository DIRECTORY to URL (s3://BUCKET/PATH, or s3://HOST:PORT/BUCKET/PATH
    for an S3-compatible endpoint — the form tritonserver's --model-repository takes).

    Credentials come only from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION, or a profile / instance role); a repository containing the secret key
    is refused. Serve it with: tritonserver --model-repository=URL (same variables set).
    """
    from funnel_scale.storage import push_repository  # noqa: PLC0415

    def progress(done: int, total: int, key: str) -> None:
        if done == total or done % 50 == 0:
            click.echo(f"  {done}/{total} {key}", err=True)

    try:
        result = push_repository(directory, url, overwrite=overwrite, create_bucket=create_bucket, progress=progress)
    except FunnelError as exc:
        raise _fail(exc) from exc
    replaced = f", replaced {result.deleted} old object(s)" if result.deleted else ""
    click.echo(f"uploaded {result.uploaded} files ({result.check.total_bytes / 1e6:.1f} MB) of "
               f"{len(result.check.models)} model(s) to {url}{replaced}")
    for ext in result.check.overridable:
        click.echo(f"  note: {ext.describe()}")
    click.echo(f"serve it with: tritonserver --model-repository={url}  (AWS_* variables in its environment)")


@click.group("deploy")
def deploy_group() -> None:
    """Deployment manifests for serving an exported repository on a cluster."""


@click.command("score")
@click.argument("graph", type=click.Path(exists=True))
@click.argument("source")
@click.argument("output", type=click.Path())
@click.option("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786). Default: a LocalCluster here.")
@click.option("--workers", type=int, default=None, help="LocalCluster worker processes (default: one per core).")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Rows per transform() call (a request's size).")
@click.option("--npartitions", type=int, default=None, help="Repartition the dataset into this many partitions.")
@click.option("--ship-artifacts", is_flag=True,
              help="Send the graph's artifact files to the workers (when GRAPH is not on storage every worker reads).")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE",
              help="Environment variable for the workers, e.g. FUNNEL_FEAST_REPO_PATH=/data/feature_repo (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUTPUT directory.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def score_cmd(graph: str, source: str, output: str, scheduler: str | None, workers: int | None, batch_size: int,
              npartitions: int | None, ship_artifacts: bool, env_pairs: tuple[str, ...], overwrite: bool,
              no_progress: bool) -> None:
    """Score a parquet dataset offline with a funnel graph on Dask; write parquet.

    GRAPH is a directory written by Ensemble.save() or Ensemble.export(); SOURCE a parquet
    file, directory or glob holding the request columns; OUTPUT a directory that receives one
    part.NNNNN.parquet per partition with the graph's output schema (list columns as lists).
    """
    env = _env_option(env_pairs)
    from funnel_scale.dask import DaskExecutor  # noqa: PLC0415

    try:
        with DaskExecutor(graph, scheduler=scheduler, batch_size=batch_size, ship_artifacts=ship_artifacts,
                          env=env, n_workers=workers) as ex:
            result = ex.score(source, output, npartitions=npartitions, overwrite=overwrite, progress=not no_progress)
    except FunnelError as exc:
        raise _fail(exc) from exc
    click.echo(f"scored {result.rows} rows in {result.partitions} partition(s) in {result.seconds:.1f} s "
               f"({result.rows_per_second:.0f} rows/s) → {result.output}")


def _env_option(env_pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in env_pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


@deploy_group.command("kserve")
@click.argument("repository", type=click.Path(exists=True, file_okay=False))
@click.option("--storage-uri", required=True,
              help="Where the repository was pushed: s3://BUCKET/PATH or s3://HOST:PORT/BUCKET/PATH (S3-compatible).")
@click.option("--image", required=True,
              help="Triton image with funnel and the export's plugins installed (docs/deploy.md has a Dockerfile).")
@click.option("--name", default="funnel", show_default=True, help="InferenceService name.")
@click.option("--namespace", default=None)
@click.option("--replicas", type=int, default=1, show_default=True, help="Replicas (pods); each runs every model instance.")
@click.option("--max-replicas", type=int, default=None, help="Autoscale up to this many replicas (default: --replicas).")
@click.option("--cpu", default="2", show_default=True, help="CPU per replica (requests = limits).")
@click.option("--memory", default="4Gi", show_default=True, help="Memory per replica.")
@click.option("--gpus", type=int, default=None, help="GPUs per replica (default: 1 for a KIND_GPU export, else 0).")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE",
              help="Serve-time variable, e.g. FUNNEL_FEAST_REPO_PATH=/mnt/feature_repo (repeatable).")
@click.option("--credentials-secret", default="funnel-s3-credentials", show_default=True,
              help="Secret holding AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (created by you, never written here).")
@click.option("--service-account", default=None, help="Use this existing service account instead of writing one.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the YAML here (default: stdout).")
def deploy_kserve_cmd(repository: str, storage_uri: str, image: str, name: str, namespace: str | None, replicas: int,
                      max_replicas: int | None, cpu: str, memory: str, gpus: int | None, env_pairs: tuple[str, ...],
                      credentials_secret: str, service_account: str | None, output: str | None) -> None:
    """Write a KServe InferenceService manifest serving REPOSITORY (an export, pushed to
    --storage-uri with `funnel repo push`) on KServe's Triton runtime."""
    from funnel_scale.deploy import kserve_manifest, to_yaml  # noqa: PLC0415

    try:
        docs = kserve_manifest(
            repository, storage_uri=storage_uri, image=image, name=name, namespace=namespace, replicas=replicas,
            max_replicas=max_replicas, cpu=cpu, memory=memory, gpus=gpus, env=_env_option(env_pairs),
            credentials_secret=credentials_secret, service_account=service_account,
        )
    except FunnelError as exc:
        raise _fail(exc) from exc
    text = to_yaml(docs)
    if output:
        with open(output, "w") as f:
            f.write(text)
        click.echo(f"wrote {output}: kubectl apply -f {output}", err=True)
    else:
        click.echo(text, nl=False)


def register(cli: click.Group) -> None:
    """Add the scale-out commands to ``cli``."""
    cli.add_command(repo_group)
    cli.add_command(deploy_group)
    cli.add_command(score_cmd)
