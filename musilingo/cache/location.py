"""Where a cache lives: a local folder, or a prefix in an object store (s3://, gs://, az://).

    loc = Location("s3://lab-features/msd.zarr")     # or "msd.zarr", "file:///data/msd.zarr"
    zarr.open_group(loc.zarr_store(read_only=True), mode="r")
    loc.is_file("commits/0.json"), loc.names("commits"), loc.total_bytes()

Remote caches go through Zarr's `ObjectStore` over `obstore`: against moto's S3 server on
loopback it read single rows 1.12-1.14x as fast as `FsspecStore` over s3fs and opened a cache
2.3-2.7x as fast (benchmarks/README.md, "Feature caches over the network"), and it needs no
asyncio bridge; s3fs is not a dependency. The
credentials, region and endpoint come only from the object store's standard environment (for
S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL,
AWS_ALLOW_HTTP for a plain-http server), never from our options, and a cache records only its
URL. The cloud instance-metadata service is asked only when AWS_METADATA_ENDPOINT says so.
Every object write is atomic, so the local layout's rule carries over: a shard's commit record
is written last and commits it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write, is_temporary

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")
ENV_HINT = ("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, "
            "AWS_ENDPOINT_URL for an S3-compatible server")
# Where obstore's S3 client finds credentials without asking the network: static keys, a web
# identity token (EKS), an ECS container role, or no signing at all (a public bucket).
S3_CREDENTIAL_SOURCES = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
                         ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"),
                         ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",),
                         ("AWS_CONTAINER_CREDENTIALS_FULL_URI",))


def _s3_credentials_named() -> bool:
    """Whether the environment names an S3 credential source. With none, obstore's last resort is
    the cloud instance-metadata address (169.254.169.254): on a laptop or a cluster node that is a
    request to whatever answers there and a long timeout, not the "no credentials" a user needs.
    Setting AWS_METADATA_ENDPOINT asks for that lookup on purpose (an instance role)."""
    env = os.environ
    if env.get("AWS_SKIP_SIGNATURE", "").strip().lower() in ("1", "true", "yes"):
        return True
    return bool(env.get("AWS_METADATA_ENDPOINT")) or any(
        all(env.get(name) for name in names) for names in S3_CREDENTIAL_SOURCES)


def is_url(spec) -> bool:
    return isinstance(spec, str) and bool(_URL.match(spec)) and not spec.startswith("file://")


def _safe(url: str) -> str:
    """The URL without user:password@ (a credential must never reach a log or a cache)."""
    return re.sub(r"^([a-z0-9+.-]+://)[^/@]*@", r"\1", url)


# what a zarr write killed before its rename leaves (zarr's LocalStore writes <name>.<uuid>.partial)
_ZARR_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


class Location:
    """A cache's root: `url` is a local path or an object-store URL, `remote` says which."""

    def __init__(self, spec):
        if isinstance(spec, Location):
            spec = spec.url
        text = str(spec)
        if text.startswith("file://"):
            text = text[len("file://"):]
        self.remote = is_url(text)
        if self.remote and _safe(text) != text:
            raise UserError(f"{_safe(text)}: credentials do not go in a cache URL; set them in "
                            f"the object store's environment ({ENV_HINT})")
        self.url = text.rstrip("/") if self.remote else str(Path(text).expanduser())
        self._objects = None

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    def __getstate__(self):  # an obstore handle is re-made in each process
        return {"url": self.url, "remote": self.remote, "_objects": None}

    @property
    def path(self) -> Path:
        if self.remote:
            raise TypeError(f"{self.url} is not a local path")
        return Path(self.url)

    def with_suffix_name(self, suffix: str) -> "Location":
        """A sibling location: the same name with `suffix` appended (creation in progress)."""
        if self.remote:
            return Location(self.url + suffix)
        p = self.path
        return Location(p.with_name(f".{p.name}{suffix}"))

    @property
    def objects(self):
        """The obstore store rooted at this prefix (remote only)."""
        if self._objects is None:
            try:
                from obstore.store import from_url
            except ImportError:
                raise UserError(f"{self.url}: remote caches need the obstore package "
                                "(pip install obstore)") from None
            if self.url.startswith(("s3://", "s3a://")) and not _s3_credentials_named():
                raise UserError(f"{self.url}: no S3 credentials found; set {ENV_HINT}, or "
                                "AWS_SKIP_SIGNATURE=true for a public bucket, or "
                                "AWS_METADATA_ENDPOINT=http://169.254.169.254 to use this "
                                "machine's cloud instance role")
            try:
                self._objects = from_url(self.url)
            except Exception as exc:  # unknown scheme, bad bucket name, bad config
                raise UserError(f"{self.url}: cannot open this object-store URL "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); the "
                                f"credentials and endpoint come from {ENV_HINT}") from None
        return self._objects

    def zarr_store(self, read_only: bool = False):
        """What `zarr.open_group(store=...)` takes for this location."""
        if not self.remote:
            return self.url
        from zarr.storage import ObjectStore

        return ObjectStore(self.objects, read_only=read_only)

    def is_file(self, key: str) -> bool:
        if not self.remote:
            return (self.path / key).is_file()
        import obstore

        try:
            obstore.head(self.objects, key)
            return True
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise remote_error(self, exc) from None

    def keys(self) -> list[tuple[str, int]]:
        """(key, size) of every file or object under the location."""
        if not self.remote:
            root = self.path
            return [(p.relative_to(root).as_posix(), p.stat().st_size)
                    for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        import obstore

        try:
            return [(o["path"], int(o["size"])) for o in obstore.list(self.objects).collect()]
        except Exception as exc:
            raise remote_error(self, exc) from None

    def names(self, prefix: str) -> list[str]:
        """Names directly under the folder `prefix` (one listing; [] when it does not exist)."""
        if not self.remote:
            folder = self.path / prefix
            return sorted(os.listdir(folder)) if folder.is_dir() else []
        import obstore

        try:
            found = obstore.list(self.objects, prefix.rstrip("/") + "/").collect()
        except Exception as exc:
            raise remote_error(self, exc) from None
        start = len(prefix.rstrip("/")) + 1
        return sorted(o["path"][start:] for o in found if "/" not in o["path"][start:])

    def sweep_temporaries(self) -> int:
        """Remove the temporary files that writes killed before their rename left behind:
        `files.temp_path`'s `.<name>.tmp<pid>` (commit records) and zarr's
        `<name>.<uuid hex>.partial` (any object); returns how many. One walk of the folder.
        Only a writer holding the cache's lock may call this (another writer's live temporary
        would go)."""
        if self.remote:  # an object store has no temporaries: a put is whole or absent
            return 0
        swept = 0
        for folder, _, files in os.walk(self.path):
            for name in files:
                if is_temporary(name) or _ZARR_PARTIAL.search(name):
                    os.unlink(os.path.join(folder, name))
                    swept += 1
        return swept

    def put(self, key: str, data: bytes) -> None:
        """Write one file or object atomically (local: a temporary file, then a rename)."""
        if not self.remote:
            target = self.path / key
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data)
            return
        import obstore

        try:
            obstore.put(self.objects, key, data)
        except Exception as exc:
            raise remote_error(self, exc) from None

    def get(self, key: str) -> bytes:
        """A file's or object's bytes (FileNotFoundError when absent)."""
        if not self.remote:
            return (self.path / key).read_bytes()
        import obstore

        try:
            return bytes(obstore.get(self.objects, key).bytes())
        except FileNotFoundError:
            raise
        except Exception as exc:
            if "not found" in str(exc).lower():
                raise FileNotFoundError(key) from None
            raise remote_error(self, exc) from None

    def size(self, key: str) -> int:
        if not self.remote:
            return (self.path / key).stat().st_size
        import obstore

        try:
            return int(obstore.head(self.objects, key)["size"])
        except Exception as exc:
            raise remote_error(self, exc) from None

    def delete(self, keys: list[str]) -> None:
        if not self.remote:
            for key in keys:
                (self.path / key).unlink(missing_ok=True)
            return
        import obstore

        if keys:
            obstore.delete(self.objects, keys)

    def total_bytes(self) -> int:
        return sum(size for _, size in self.keys())

    def holds_anything(self) -> bool:
        if not self.remote:
            p = self.path
            return p.exists() and (not p.is_dir() or any(p.iterdir()))
        return bool(self.keys())

    def delete_all(self) -> None:
        if not self.remote:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)
            return
        import obstore

        keys = [k for k, _ in self.keys()]
        if keys:
            obstore.delete(self.objects, keys)

    def copy_tree_to(self, dest: "Location", last: str = "zarr.json") -> None:
        """Copy every object to `dest`, `last` written last (it makes the copy visible)."""
        import obstore

        for key in sorted((k for k, _ in self.keys()), key=lambda k: (k == last, k)):
            data = obstore.get(self.objects, key).bytes()
            obstore.put(dest.objects, key, bytes(data))


def remote_error(loc: Location, exc: Exception) -> UserError:
    """One line for an object-store failure (no such bucket, refused credentials, no network)."""
    if isinstance(exc, UserError):  # already said (no credentials, a bad URL)
        return exc
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return UserError(f"{loc.url}: the object store refused or failed the request "
                     f"({type(exc).__name__}: {first}); check the bucket and the credentials in "
                     f"{ENV_HINT}")
