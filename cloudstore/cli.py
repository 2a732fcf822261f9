"""The ``cloudstore`` command: ls, mb, rb, cp, sync, rm, cat, url and serve.

Objects are addressed as ``PROVIDER://bucket/key`` (``local``, ``aws``/``s3``,
``openstack``/``swift``, ``azure``, ``gcp``/``gs``); ``-`` in ``cp`` is stdin or
stdout. Provider settings come from ``--config key=value`` options, then the
environment, then the config file, as in :class:`~cloudstore.CloudProviderFactory`.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from cloudstore._engine import ChunkStream
from cloudstore.bulk import BulkReport, copy_tree, sync
from cloudstore.exceptions import CloudStoreException, InvalidParamException
from cloudstore.factory import CloudProviderFactory, list_providers
from cloudstore.model import Bucket, BucketObject, CloudProvider
from cloudstore.registry import parse_address as registry_parse_address
from cloudstore.registry import registered, spec_for

F = TypeVar("F", bound=Callable[..., Any])


class UserMistake(click.ClickException):
    """A mistake in the command line: one line on stderr, exit status 2, no usage dump."""

    exit_code = 2


@dataclass
class Address:
    #: The registered provider id the scheme names.
    provider: str
    bucket: str
    key: str


def parse_address(text: str) -> Address | None:
    """``PROVIDER://bucket/key`` as an Address, or None for a local file path."""
    try:
        parsed = registry_parse_address(text)
    except InvalidParamException as err:
        raise UserMistake(str(err)) from None
    return None if parsed is None else Address(*parsed)


class _Context:
    def __init__(self, settings: tuple[str, ...]) -> None:
        known = {key for spec in registered().values() for key in spec.keys}
        self.settings: dict[str, str] = {}
        for item in settings:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                # Not echoed: a value given without its key may well be a secret.
                raise UserMistake("--config expects KEY=VALUE (no '=' found)")
            if key not in known:
                raise UserMistake(f"unknown config key {key!r} in --config")
            self.settings[key] = value
        self._providers: dict[str, CloudProvider] = {}

    def settings_for(self, which: str) -> dict[str, Any]:
        """The ``--config`` values that belong to provider ``which``, parsed as the config file's would be."""
        from cloudstore.config import coerce_value

        keys = spec_for(which).keys
        return {k: coerce_value(k, keys[k], v) for k, v in self.settings.items() if k in keys}

    def provider(self, which: str) -> CloudProvider:
        if which not in self._providers:
            self._providers[which] = CloudProviderFactory().create_provider(which, self.settings_for(which))
        return self._providers[which]

    def bucket(self, address: Address) -> Bucket:
        if not address.bucket:
            raise UserMistake("the address names no bucket")
        bucket = self.provider(address.provider).storage.buckets.get(address.bucket)
        if bucket is None:
            raise click.ClickException(f"bucket {address.bucket!r} does not exist")
        return bucket

    def existing_object(self, address: Address) -> BucketObject:
        obj = self.bucket(address).objects.get(address.key)
        if obj is None:
            raise click.ClickException(f"object {address.key!r} does not exist in bucket {address.bucket!r}")
        return obj


def _friendly_errors(fn: F) -> F:
    """Turn cloudstore errors into a one-line message and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CloudStoreException as err:
            raise click.ClickException(f"{type(err).__name__}: {err}") from err
        except OSError as err:  # a local file that cannot be read or written
            where = f": {err.filename}" if err.filename else ""
            raise click.ClickException(f"{err.strerror or err}{where}") from err

    return wrapper  # type: ignore[return-value]


def _address(text: str, need_key: bool = False) -> Address:
    address = parse_address(text)
    if address is None:
        raise UserMistake(f"{text!r} is not a PROVIDER://bucket/key address")
    if need_key and not address.key:
        raise UserMistake(f"{text!r} names no object")
    return address


def _bucket_address(text: str) -> Address:
    """A ``PROVIDER://bucket`` address: naming an object too is a mistake (rb would delete the whole bucket)."""
    address = _address(text)
    if address.key:
        raise UserMistake(f"{text!r} names an object; give the bucket alone: {address.provider}://{address.bucket}")
    return address


def _progress_bar(total: int | None, label: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=None, leave=False)


def _pace_options(fn: F) -> F:
    """How fast a job that makes many requests goes: workers, and a cap on the request rate."""
    for option in reversed(
        [
            click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Objects in flight at once."),
            click.option(
                "--max-requests-per-second",
                type=click.FloatRange(min=0, min_open=True),
                default=None,
                metavar="RATE",
                help="At most RATE requests a second to each service, for the whole job.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _bulk_options(fn: F) -> F:
    """The options of the commands that move many objects."""
    for option in reversed(
        [
            click.option("--include", multiple=True, metavar="GLOB", help="Only relative paths matching GLOB."),
            click.option("--exclude", multiple=True, metavar="GLOB", help="Not relative paths matching GLOB."),
        ]
    ):
        fn = option(fn)
    return _pace_options(fn)


def _pace(concurrency: int | None, max_requests_per_second: float | None) -> dict[str, Any]:
    """The bulk job options the pace options ask for (those left unset keep the job's defaults)."""
    given = {"concurrency": concurrency, "max_requests_per_second": max_requests_per_second}
    return {key: value for key, value in given.items() if value is not None}


def _bulk_job(
    ctx: _Context,
    source: str,
    destination: str,
    quiet: bool,
    run: Callable[..., BulkReport],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    pace: dict[str, Any],
) -> None:
    """Run a bulk job between two places, with one progress bar (on a terminal) and a summary line."""
    sides = [parse_address(source), parse_address(destination)]
    if not any(sides):
        raise UserMistake("one side must be a PROVIDER://bucket/prefix address")
    providers = {side.provider: ctx.provider(side.provider) for side in sides if side is not None}
    with _NoBar() if quiet else _progress_bar(None, "bytes") as bar:
        report = run(
            source,
            destination,
            include=list(include) or None,
            exclude=list(exclude) or None,
            progress=bar.update,
            providers=providers,
            **pace,
        )
    _finish(report)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, amount: int) -> None:
        pass


def _finish(report: BulkReport) -> None:
    """Print what a bulk job did: the planned actions of a dry run, each failure, a summary line;
    exit status 1 if any item failed."""
    for action, name in report.actions:
        click.echo(f"(dry run) {action} {name}")
    for failure in report.failed:
        click.echo(f"failed: {failure.name}: {failure.reason}", err=True)
    click.echo(report.summary())
    if report.failed:
        raise SystemExit(1)


class _Main(click.Group):
    """The command group, whose help lists the registered providers and their schemes."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        named = [
            spec.id + (f" (or {', '.join(spec.all_schemes[1:])})" if spec.schemes else "")
            for spec in registered().values()
        ]
        with formatter.indentation():
            formatter.write_paragraph()
            formatter.write_text(f"PROVIDER is {', '.join(named)}.")


@click.group(cls=_Main)
@click.option(
    "--config",
    "-c",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provider config key (wins over the environment and the config file).",
)
@click.version_option(package_name="cloudstore")
@click.pass_context
def main(ctx: click.Context, settings: tuple[str, ...]) -> None:
    """Work with object storage on any cloud: PROVIDER://bucket/key.

    `cloudstore providers` lists the providers, with their config keys.
    """
    ctx.obj = _Context(settings)


def _when(moment: datetime | None) -> str:
    """A listing's time column: UTC, to the second (as ``gsutil ls -l`` shows it)."""
    if moment is None:
        return " " * 20
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(size: int) -> str:
    """``1.5 KiB``, as ``aws s3 ls --human-readable`` shows sizes."""
    if size < 1024:
        return f"{size} Bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


@main.command("ls")
@click.argument("address")
@click.option("--recursive", "-r", is_flag=True, help="List every key, not just one level.")
@click.option("--human-readable", "-h", "human", is_flag=True, help="Sizes in KiB, MiB, GiB.")
@click.pass_obj
@_friendly_errors
def list_command(ctx: _Context, address: str, recursive: bool, human: bool) -> None:
    """List buckets (PROVIDER://) or objects (PROVIDER://bucket/prefix), with their times (UTC) and sizes."""
    where = _address(address)
    if not where.bucket:
        for bucket in ctx.provider(where.provider).storage.buckets:
            click.echo(f"{_when(bucket.created)}  {bucket.name}")
        return
    bucket = ctx.bucket(where)
    marker = None
    while True:
        page = bucket.objects.list(prefix=where.key or None, delimiter=None if recursive else "/", marker=marker)
        # Pseudo-folders and objects together, in key order (as `aws s3 ls` shows them).
        rows = [(prefix, f"{'':20}  {'PRE':>12}  {prefix}") for prefix in page.prefixes]
        rows += [
            (obj.name, f"{_when(obj.last_modified)}  {_human(obj.size) if human else obj.size:>12}  {obj.name}")
            for obj in page
        ]
        for _, row in sorted(rows):
            click.echo(row)
        if not page.is_truncated:
            return
        marker = page.marker


@main.command("mb")
@click.argument("address")
@click.option("--location", default=None, help="Region or location of the new bucket.")
@click.pass_obj
@_friendly_errors
def make_bucket(ctx: _Context, address: str, location: str | None) -> None:
    """Create a bucket."""
    where = _bucket_address(address)
    ctx.provider(where.provider).storage.buckets.create(where.bucket, location)
    click.echo(f"created {address}")


@main.command("rb")
@click.argument("address")
@click.option("--force", is_flag=True, help="Delete the objects in it too.")
@click.pass_obj
@_friendly_errors
def remove_bucket(ctx: _Context, address: str, force: bool) -> None:
    """Delete a bucket (it must be empty unless --force)."""
    ctx.bucket(_bucket_address(address)).delete(delete_contents=force)
    click.echo(f"deleted {address}")


@main.command("rm")
@click.argument("address")
@click.option("--recursive", "-r", is_flag=True, help="Delete every object under the folder ADDRESS names.")
@_pace_options
@click.pass_obj
@_friendly_errors
def remove(
    ctx: _Context, address: str, recursive: bool, concurrency: int | None, max_requests_per_second: float | None
) -> None:
    """Delete an object; with -r, every object under a folder (PROVIDER://bucket/folder/) or in a bucket
    (in the service's batch requests)."""
    if recursive:
        where = _address(address)
        folder = where.key if not where.key or where.key.endswith("/") else where.key + "/"
        _finish(ctx.bucket(where).objects.delete_prefix(folder, **_pace(concurrency, max_requests_per_second)))
        return
    ctx.existing_object(_address(address, need_key=True)).delete()
    click.echo(f"deleted {address}")


@main.command("cp")
@click.argument("source")
@click.argument("destination")
@click.option("--content-type", default=None, help="Content type of an uploaded object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--recursive", "-r", is_flag=True, help="Copy a whole folder or prefix (see sync for the options).")
@_bulk_options
@click.pass_obj
@_friendly_errors
def copy(
    ctx: _Context,
    source: str,
    destination: str,
    content_type: str | None,
    quiet: bool,
    recursive: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    concurrency: int | None,
    max_requests_per_second: float | None,
) -> None:
    """Copy a file to an object, an object to a file, or an object to an object.

    A SOURCE of - reads standard input; a DESTINATION of - writes to standard output. With -r,
    everything under the folder or prefix SOURCE goes under DESTINATION, every file copied.
    """
    if recursive:
        pace = _pace(concurrency, max_requests_per_second)
        _bulk_job(ctx, source, destination, quiet, copy_tree, include, exclude, pace)
        return
    src, dst = parse_address(source), parse_address(destination)
    if src is None and dst is None:
        raise UserMistake("one side must be a PROVIDER://bucket/key address")
    if src is None and dst is not None:
        if source == "-":
            if not dst.key or dst.key.endswith("/"):
                raise UserMistake(f"{destination!r} names no object: give the key to store standard input as")
            ctx.bucket(dst).objects.create(dst.key).upload(sys.stdin.buffer, content_type=content_type)
            click.echo(f"- -> {destination}", err=True)
            return
        path = Path(source)
        if not path.exists() or path.is_dir():
            raise click.ClickException(f"{source!r} is not a readable file")
        key = dst.key if dst.key and not dst.key.endswith("/") else dst.key + path.name
        obj = ctx.bucket(dst).objects.create(key)
        status = path.stat()
        # A FIFO or a /proc file has no size to show: the bar then counts bytes without a total.
        total = status.st_size if stat.S_ISREG(status.st_mode) and status.st_blocks else None
        with _progress_bar(0 if quiet else total, "upload") as bar:
            obj.upload_from_file(path, content_type=content_type, progress=None if quiet else bar.update)
        click.echo(f"{source} -> {dst.provider}://{dst.bucket}/{key}")
        return
    assert src is not None
    if not src.key:
        raise UserMistake(f"{source!r} names no object")
    obj = ctx.existing_object(src)
    if destination == "-":
        stdout = sys.stdout.buffer
        obj.save_content(stdout)
        stdout.flush()
        return
    if dst is None:
        target = Path(destination)
        if target.is_dir():
            target = target / Path(src.key).name
        with _progress_bar(0 if quiet else obj.size, "download") as bar:
            obj.download_to_file(target, progress=None if quiet else bar.update)
        click.echo(f"{source} -> {target}")
        return
    key = dst.key or src.key
    if key.endswith("/"):
        key += src.key.rsplit("/", 1)[-1]
    if dst.provider == src.provider:
        obj.copy_to(ctx.bucket(dst), key)
    else:
        ctx.bucket(dst).objects.create(key).upload(
            ChunkStream(obj.iter_content()), content_type=obj.content_type, metadata=obj.metadata
        )
    click.echo(f"{source} -> {destination}")


@main.command("providers")
@click.option("--keys", "-k", "show_keys", is_flag=True, help="List each provider's config keys too.")
def providers_command(show_keys: bool) -> None:
    """List the registered providers: schemes, whether their SDK is installed, and config keys."""
    installed = set(list_providers())
    for spec in registered().values():
        state = "installed" if spec.id in installed else f'needs pip install "cloudstore[{spec.extra}]"'
        if spec.id not in installed and not spec.extra:
            state = f"needs {', '.join(spec.sdk_modules)}"
        click.echo(f"{spec.id:<10} {', '.join(s + '://' for s in spec.all_schemes):<24} {state}")
        if spec.description:
            click.echo(f"{'':<10} {spec.description}")
        if show_keys:
            for name, key in spec.keys.items():
                where = f" [{key.env}]" if key.env else ""
                click.echo(f"{'':<12}{name}{where}: {key.help}{' (secret)' if key.secret else ''}")


@main.command("sync")
@click.argument("source")
@click.argument("destination")
@click.option("--delete", is_flag=True, help="Delete what DESTINATION has beyond SOURCE.")
@click.option("--dry-run", is_flag=True, help="Show what would be copied and deleted; change nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_bulk_options
@click.pass_obj
@_friendly_errors
def sync_command(
    ctx: _Context,
    source: str,
    destination: str,
    delete: bool,
    dry_run: bool,
    quiet: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    concurrency: int | None,
    max_requests_per_second: float | None,
) -> None:
    """Make DESTINATION hold what SOURCE holds, copying only what differs (size and checksum).

    Each side is a local folder or PROVIDER://bucket/prefix. Exit status 1 if any item failed.
    """
    run = functools.partial(sync, delete=delete, dry_run=dry_run)
    _bulk_job(ctx, source, destination, quiet, run, include, exclude, _pace(concurrency, max_requests_per_second))


@main.command("cat")
@click.argument("address")
@click.pass_obj
@_friendly_errors
def cat(ctx: _Context, address: str) -> None:
    """Write an object's content to standard output."""
    stdout = sys.stdout.buffer
    for chunk in ctx.existing_object(_address(address, need_key=True)).iter_content():
        stdout.write(chunk)
    stdout.flush()


@main.command("url")
@click.argument("address")
@click.option("--expires", "expires_in", default=3600, show_default=True, help="Seconds until the URL expires.")
@click.option("--writable", is_flag=True, help="A URL for HTTP PUT instead of GET.")
@click.pass_obj
@_friendly_errors
def url(ctx: _Context, address: str, expires_in: int, writable: bool) -> None:
    """Print a signed URL for an object."""
    where = _address(address, need_key=True)
    bucket = ctx.bucket(where)
    obj = bucket.objects.create(where.key) if writable else ctx.existing_object(where)
    click.echo(obj.generate_url(expires_in=expires_in, writable=writable))


@main.command("serve")
@click.option("--root", default=None, help="The LOCAL root (default: local_root config or ~/.local/share/cloudstore).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int, metavar="PORT", help="0: any free port.")
@click.option("--secret", default=None, help="HMAC key of the signed URLs, 32+ bytes (default: local_secret config).")
@click.option(
    "--max-connections",
    default=100,
    show_default=True,
    type=int,
    metavar="N",
    help="Open connections at most.",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="Seconds allowed for headers, between pieces of a body, and for a client that stops reading.",
)
@click.pass_obj
@_friendly_errors
def serve_command(
    ctx: _Context, root: str | None, host: str, port: int, secret: str | None, max_connections: int, timeout: float
) -> None:
    """Serve LOCAL signed URLs over HTTP."""
    import logging

    from cloudstore.config import resolve_config
    from cloudstore.providers.local import SPEC
    from cloudstore.providers.local.backend import DEFAULT_ROOT
    from cloudstore.providers.local.server import Limits, SignedURLServer, is_loopback

    if not 0 <= port <= 65535:
        raise UserMistake(f"--port {port} is not a TCP port (0 to 65535; 0 picks a free one)")
    if max_connections < 1 or not timeout > 0:
        raise UserMistake("--max-connections and --timeout must be positive")
    config = resolve_config(SPEC, ctx.settings_for(SPEC.id))
    secret = secret or config.get("local_secret")
    if not secret:
        raise UserMistake("give --secret (or set local_secret / CLOUDSTORE_LOCAL_SECRET)")
    root = root or config.get("local_root")
    if not root:  # the default root is made on first use, private to this user
        root = os.path.expanduser(DEFAULT_ROOT)
        os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        server = SignedURLServer(root, secret, host, port, Limits(max_connections=max_connections, timeout=timeout))
    except ValueError as err:
        raise UserMistake(str(err)) from err
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    # An access log (method, path, status; never the query that carries the signature).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}, beyond this machine, in plain HTTP: "
            "put a TLS reverse proxy in front (see the LOCAL provider docs)",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {root} on http://{shown}:{server.port}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down cleanly, then re-raises it
        pass
    finally:
        server.close()


if __name__ == "__main__":  # pragma: no cover
    main()
