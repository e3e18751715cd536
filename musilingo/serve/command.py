"""`musilingo serve`: open a run in the browser (captioning, Q&A, chat).

    musilingo serve --run runs/instruct
    musilingo serve --run demo_out/runs/instruct --port 8000 --max-seconds 300
    musilingo serve --run runs/short --cache musiccaps.zarr     # features from a cache

The model loads once at start; the page is served on 127.0.0.1 unless --host says otherwise,
and runs fully offline (no share link, no analytics, no fonts from a CDN).
"""
from __future__ import annotations

from dataclasses import dataclass

import click

from ..infer.config import GenerateConfig
from ..options import config_options, load_config, option as _opt


@dataclass
class ServeConfig(GenerateConfig):
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 exposes the app to the network)")
    port: int = _opt(7860, "port to listen on")
    max_seconds: float = _opt(600.0, "longest clip accepted from a browser, in seconds")

    HELP = {"cache": "serve the clips of this feature cache (picked by clip id in the app) "
                     "instead of audio uploaded from the browser"}

    def validate(self) -> "ServeConfig":
        from ..errors import UserError

        super().validate()
        if not (self.max_seconds > 0):
            raise UserError("--max-seconds must be positive")
        if not 0 < self.port < 65536:
            raise UserError(f"--port {self.port}: use a port from 1 to 65535")
        return self


@click.command()
@config_options(ServeConfig, "serve")
def serve(recipe, overrides, **flags):
    """Serve a web app for captioning and Q&A about uploaded or recorded music."""
    from ..errors import UserError
    from ..infer.predictor import Predictor
    from ..runs.card import RunCard
    from .app import build_app

    cfg = load_config(ServeConfig, "serve", recipe, flags, overrides)
    card = RunCard.read(cfg.run)
    predictor = Predictor.from_config(cfg, log=lambda m: click.echo(m, err=True))
    app = build_app(predictor, card, max_seconds=cfg.max_seconds)
    host, port = cfg.host, cfg.port
    click.echo(f"serving {card.folder} on http://{host}:{port} (Ctrl-C stops)", err=True)
    try:
        app.launch(server_name=host, server_port=port, share=False, ssr_mode=False,
                   theme=app.musilingo_theme, quiet=True, show_error=True,
                   max_file_size="500mb")
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc}); choose another --port") from None
