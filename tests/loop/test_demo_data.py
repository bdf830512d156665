"""The demo's data: a local copy is verified, a download is verified, a bad file is refused."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gyre.core.errors import SourceError
from gyre.loop import demo_data


@pytest.fixture
def hour_csv(shared_data: Path) -> Path:
    return shared_data / "drift" / "bike-sharing" / "hour.csv"


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def archive_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A real HTTP server on loopback serving whatever bytes the test puts in ``served``."""
    served: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def test_a_local_copy_is_verified_and_used(hour_csv: Path) -> None:
    assert demo_data.locate(hour_csv.parent) == hour_csv


def test_line_endings_do_not_change_the_verdict(hour_csv: Path, tmp_path: Path) -> None:
    lf = tmp_path / "hour.csv"
    lf.write_bytes(hour_csv.read_bytes().replace(b"\r\n", b"\n"))
    assert demo_data.locate(tmp_path) == lf


def test_a_changed_number_is_refused(hour_csv: Path, tmp_path: Path) -> None:
    data = bytearray(hour_csv.read_bytes())
    at = data.rindex(b",") + 1
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    (tmp_path / "hour.csv").write_bytes(bytes(data))
    with pytest.raises(SourceError, match=r"is not the UCI bike-sharing hour\.csv"):
        demo_data.locate(tmp_path)


def test_a_missing_file_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=f"no hour.csv in {tmp_path}"):
        demo_data.locate(tmp_path)


def test_download_verifies_caches_and_is_reused(
    hour_csv: Path, tmp_path: Path, archive_server: tuple[str, dict[str, bytes]]
) -> None:
    base, served = archive_server
    served["/bikes.zip"] = _zip({"hour.csv": hour_csv.read_bytes(), "day.csv": b"x"})
    cache = tmp_path / "cache"
    path = demo_data.download(cache, url=f"{base}/bikes.zip")
    assert path == cache / "hour.csv"
    assert path.read_bytes() == hour_csv.read_bytes()
    assert not list(cache.glob(".*partial"))
    del served["/bikes.zip"]  # a second locate must not need the network
    assert demo_data.locate(None, cache_dir=cache) == path


def test_download_of_a_tampered_archive_is_refused(
    tmp_path: Path, archive_server: tuple[str, dict[str, bytes]]
) -> None:
    base, served = archive_server
    served["/bikes.zip"] = _zip({"hour.csv": b"instant,dteday\n1,2011-01-01\n"})
    with pytest.raises(SourceError, match="failed verification"):
        demo_data.download(tmp_path, url=f"{base}/bikes.zip")
    assert not (tmp_path / "hour.csv").exists()


def test_download_errors_are_clear_and_retryable(
    tmp_path: Path, archive_server: tuple[str, dict[str, bytes]]
) -> None:
    base, _ = archive_server
    with pytest.raises(SourceError, match="cannot download") as missing:
        demo_data.download(tmp_path, url=f"{base}/nothing.zip")
    assert missing.value.retryable
    assert "--data" in (missing.value.hint or "")
