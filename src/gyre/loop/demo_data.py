"""The demo's public data: UCI Bike Sharing (hourly), read locally or downloaded and verified.

``gyre demo --data DIR`` reads ``DIR/hour.csv``. Without it, the UCI archive is downloaded once
into the user's cache folder and its ``hour.csv`` is checked against a pinned SHA-256 of its
content (computed with line endings normalised to LF, since copies of this file circulate with
both CRLF and LF endings; the numbers are what matters). A mismatch is an error, never a
silent use of unverified data.

Citation: Fanaee-T, H. and Gama, J. (2013), Event labeling combining ensemble detectors and
background knowledge, Progress in Artificial Intelligence, doi:10.1007/s13748-013-0040-3.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from gyre.core.errors import SourceError

ARCHIVE_URL = "https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip"
HOUR_CSV_SHA256_LF = "b03a2d02e8c10f435c43c7f0b358b7e34a003afea53dbc37f0183f2763295133"
FILE_NAME = "hour.csv"


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def verify(path: Path) -> Path:
    digest = content_sha256(path.read_bytes())
    if digest != HOUR_CSV_SHA256_LF:
        raise SourceError(
            f"{path} is not the UCI bike-sharing hour.csv (content sha256 {digest[:16]}…, "
            f"expected {HOUR_CSV_SHA256_LF[:16]}…)",
            hint="point --data at the folder holding the original hour.csv, or delete the "
            "cached copy to download it again",
        )
    return path


def locate(data_dir: Path | None, cache_dir: Path | None = None) -> Path:
    """The verified hour.csv: from ``data_dir`` if given, else the cache (downloading once)."""
    if data_dir is not None:
        candidate = data_dir if data_dir.is_file() else data_dir / FILE_NAME
        if not candidate.is_file():
            raise SourceError(
                f"no {FILE_NAME} in {data_dir}",
                hint="--data takes the folder of the UCI Bike Sharing dataset (with hour.csv)",
            )
        return verify(candidate)
    cache = cache_dir or default_cache_dir()
    cached = cache / FILE_NAME
    if cached.is_file():
        return verify(cached)
    return download(cache)


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gyre")) / "bike-sharing"


def download(cache: Path, *, url: str = ARCHIVE_URL, timeout: float = 60.0) -> Path:
    """Download the archive, verify hour.csv, and store it atomically in ``cache``."""
    import httpx

    try:
        response = httpx.get(url, follow_redirects=True, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise SourceError(
            f"cannot download the bike-sharing data from {url}: {exc}",
            hint="without internet access, pass a local copy with --data DIR",
            retryable=True,
        ) from None
    try:
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            data = archive.read(FILE_NAME)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise SourceError(f"the archive at {url} is not the expected dataset: {exc}") from None
    digest = content_sha256(data)
    if digest != HOUR_CSV_SHA256_LF:
        raise SourceError(
            f"the downloaded {FILE_NAME} from {url} failed verification (sha256 {digest[:16]}…)",
            hint="the upstream file changed; pass a trusted local copy with --data DIR",
        )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{FILE_NAME}.partial"
    tmp.write_bytes(data)
    tmp.replace(cache / FILE_NAME)
    return cache / FILE_NAME
