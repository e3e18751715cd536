"""Where a remote cache's credentials come from: the object store's environment, never a URL, and
never a silent probe of the cloud instance-metadata address."""
from __future__ import annotations

import http.server
import os
import threading

import pytest

from musilingo.cache.location import Location
from musilingo.errors import UserError
from tests.helpers.cli import run_cli


@pytest.fixture
def no_aws_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


def test_url_with_credentials_is_refused():
    with pytest.raises(UserError, match="credentials do not go in a cache URL") as err:
        Location("s3://AKIAEXAMPLE:secret@bucket/msd.zarr")
    assert "secret" not in str(err.value) and "AKIAEXAMPLE" not in str(err.value)


def test_no_credentials_is_said_at_once(no_aws_env, capsys):
    """Before: obstore fell through to 169.254.169.254 and failed (or hung) on whatever answered."""
    with pytest.raises(UserError, match=r"s3://bucket/msd.zarr: no S3 credentials found"):
        Location("s3://bucket/msd.zarr").is_file("zarr.json")
    code, _, err = run_cli(capsys, "cache", "info", "s3://bucket/msd.zarr")
    assert code == 2, err
    assert "no S3 credentials found" in err and "AWS_METADATA_ENDPOINT" in err


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def _answer(self):
        self.seen.append((self.command, self.path))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = _answer

    def log_message(self, *args):
        pass


def test_instance_role_lookup_only_when_asked(no_aws_env, monkeypatch):
    """AWS_METADATA_ENDPOINT is the opt-in: then (and only then) the metadata service is asked."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        with pytest.raises(UserError, match="no S3 credentials"):
            Location("s3://bucket/msd.zarr").is_file("zarr.json")
        assert _Recorder.seen == []
        monkeypatch.setenv("AWS_METADATA_ENDPOINT", endpoint)
        with pytest.raises(UserError, match="refused or failed"):
            Location("s3://bucket/msd.zarr").is_file("zarr.json")
        assert any("/latest/" in path for _, path in _Recorder.seen), _Recorder.seen
    finally:
        server.shutdown()
