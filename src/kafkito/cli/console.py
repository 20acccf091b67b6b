"""`kafkito console`: the web console on the configured cluster, loopback by default."""

from __future__ import annotations

import logging

import click

from kafkito.cli.context import EXIT_USAGE, CliContext, CliError, check_port_free, handle_errors


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve on (loopback: only this machine can reach the console).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port (0: any free port).",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Refuse every change (create, edit, delete, produce, reset, re-publish).",
)
@click.pass_obj
def console(obj: CliContext, host: str, port: int, read_only: bool) -> None:
    """Serve the web console: topics, message search, groups and lag, dead letters.

    It connects with the configured brokers and credentials (--brokers, --config). On an
    address other than 127.0.0.1 anyone who can reach it can act on the cluster: use
    --read-only, or keep it behind an authenticating proxy.

    \b
    Examples:
      kafkito console                          # then open http://127.0.0.1:8080/
      kafkito console --read-only --config prod.yaml --port 9000
    """
    import importlib.util

    for module in ("starlette", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            raise CliError(
                f"the console needs {module}, which is not installed; install it with: "
                "pip install 'kafkito[console]'",
                EXIT_USAGE,
            )
    check_port_free(host, port, what="the console", option="--port")
    if port == 0:  # pick the free port here, so the line below can name it
        import socket

        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    with handle_errors(obj):
        import uvicorn

        from kafkito.console.app import create_app

        settings = obj.librdkafka()
        obj.admin().close()  # the brokers answer and the credentials work, or exit 3/5 now
        if host not in ("127.0.0.1", "localhost", "::1") and not read_only:
            logging.getLogger("kafkito").warning(
                "serving the console on %s without --read-only: anyone who reaches it can "
                "change the cluster",
                host,
            )
        app = create_app(settings, read_only=read_only)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
        server = uvicorn.Server(config)
        click.echo(
            f"kafkito console on http://{host}:{port}/ for {settings['bootstrap.servers']}"
            + (" (read-only)" if read_only else ""),
            err=True,
        )
        server.run()
