"""``ctxcomp serve``: run the compression proxy (mounted by ctxcomp.cli)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import CtxcompError

CONFIG_ENV = "CTXCOMP_SERVE_CONFIG"  # the resolved config, for worker processes


def serve_command(
    upstream: Annotated[
        str | None,
        typer.Option(
            help="Base URL of the model server as an OpenAI client takes it, e.g. "
            "https://api.openai.com/v1 or http://127.0.0.1:8000/v1 (vLLM)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML/JSON file: the ctxcomp table (pipeline) and the serve table (proxy)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option(help="Worker processes (they share the segment cache).")
    ] = 1,
    upstream_api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the upstream's key (then clients' keys are "
            "never forwarded); default: clients' keys pass through."
        ),
    ] = None,
    ratio: Annotated[
        float | None, typer.Option(help="Keep this fraction of the compressible parts.")
    ] = None,
    max_prompt_tokens: Annotated[
        int | None, typer.Option(help="Token budget of the whole prompt (reader tokens).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    check: Annotated[
        bool, typer.Option("--check", help="Validate the config, print it as JSON, exit.")
    ] = False,
) -> None:
    """Run an OpenAI/Anthropic-compatible proxy that compresses requests before the upstream."""
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    try:
        cfg = _load(config, upstream, upstream_api_key_env, ratio, max_prompt_tokens)
        if check:
            typer.echo(json.dumps(cfg.to_mapping(), indent=2))
            return
        from .serve import require_serve

        require_serve()
    except CtxcompError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    import uvicorn

    _setup_logging(log_level)
    kw: dict[str, Any] = dict(
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # the proxy logs its own lines, without keys or query strings
        ws="none",
        lifespan="on",
        timeout_keep_alive=cfg.client_keep_alive,
    )
    err.print(f"ctxcomp serve: http://{host}:{port}/v1 -> {cfg.upstream} ({workers} worker(s))")
    if workers > 1:
        os.environ[CONFIG_ENV] = json.dumps(cfg.to_mapping())
        os.environ["CTXCOMP_SERVE_LOG_LEVEL"] = log_level
        uvicorn.run("ctxcomp.cli_serve:app_from_env", factory=True, workers=workers, **kw)
    else:
        from .serve import create_app

        uvicorn.run(create_app(cfg), **kw)


def _load(
    path: Path | None,
    upstream: str | None,
    key_env: str | None,
    ratio: float | None,
    max_prompt_tokens: int | None,
) -> Any:
    from .serve.config import ServeConfig

    flags = {"upstream": upstream, "upstream_api_key_env": key_env}
    policy = {
        k: v
        for k, v in (("ratio", ratio), ("max_prompt_tokens", max_prompt_tokens))
        if v is not None
    }
    if path is not None:
        cfg = ServeConfig.from_file(path, **flags)
    else:
        serve = {k: v for k, v in flags.items() if v is not None}
        cfg = ServeConfig.from_mapping({"serve": serve})
    if policy:
        m = cfg.to_mapping()
        m["serve"]["policy"].update(policy)
        if max_prompt_tokens is not None and ratio is None:  # a budget flag alone: the budget alone
            m["serve"]["policy"]["ratio"] = None
        cfg = ServeConfig.from_mapping(m)
    return cfg


def _setup_logging(level: str) -> None:
    logger = logging.getLogger("ctxcomp.serve")
    if not logger.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(h)
    logger.setLevel(level.upper())


def app_from_env() -> Any:
    """uvicorn factory for worker processes: the config comes from ``$CTXCOMP_SERVE_CONFIG``."""
    from .serve import create_app
    from .serve.config import ServeConfig

    _setup_logging(os.environ.get("CTXCOMP_SERVE_LOG_LEVEL", "info"))
    return create_app(ServeConfig.from_mapping(json.loads(os.environ[CONFIG_ENV])))
