"""`musilingo serve`: open a run in the browser (captioning, Q&A, chat).

    musilingo serve --run runs/instruct
    musilingo serve --run demo_out/runs/instruct --port 8000 --max-seconds 300
    musilingo serve --run runs/short --cache musiccaps.zarr     # features from a cache

The model loads once at start; the page is served on 127.0.0.1 unless --host says otherwise,
and runs fully offline (no share link, no analytics, no fonts from a CDN).
"""
from __future__ import annotations

import click

from ..infer.command import model_options


@click.command()
@model_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0 exposes the app to the network)")
@click.option("--port", type=int, default=7860, show_default=True, help="port to listen on")
@click.option("--max-seconds", type=float, default=600.0, show_default=True,
              help="longest clip accepted from a browser, in seconds")
def serve(host, port, max_seconds, **kw):
    """Serve a web app for captioning and Q&A about uploaded or recorded music."""
    from ..errors import UserError
    from ..infer.command import load_predictor
    from ..infer.run_card import RunCard
    from .app import build_app

    if not (max_seconds > 0):
        raise UserError("--max-seconds must be positive")
    card = RunCard.read(kw["run"])
    predictor = load_predictor(kw)
    app = build_app(predictor, card, max_seconds=max_seconds)
    click.echo(f"serving {card.folder} on http://{host}:{port} (Ctrl-C stops)", err=True)
    try:
        app.launch(server_name=host, server_port=port, share=False, ssr_mode=False,
                   theme=app.musilingo_theme, quiet=True, show_error=True,
                   max_file_size="500mb")
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc}); choose another --port") from None
