"""An interrupted huggingface_hub download resumes with Range against the hub's local-disk serving."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from huggingface_hub import constants, hf_hub_download
from safetensors.torch import save

from tests.hf.proxy import CuttingProxy
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db(transaction=True)


def test_dropped_connection_resumes_with_a_range_request(alice, local_storage, live_server, tmp_path):
    # huggingface_hub writes in DOWNLOAD_CHUNK_SIZE pieces, so only a file larger
    # than one chunk has bytes on disk to resume from when the link drops.
    chunk = constants.DOWNLOAD_CHUNK_SIZE
    data = save({"w": torch.arange((chunk + 2 * 1024 * 1024) // 4, dtype=torch.float32)})
    assert len(data) > chunk
    make_published_model(alice, "Big One", data=data)
    upstream = urlsplit(live_server.url)

    def cut_first_full_get(method: str, path: str, headers: dict[str, str]) -> int | None:
        if method == "GET" and "/resolve/" in path and "range" not in headers:
            return chunk + 1024 * 1024  # one full chunk and a bit, then the link drops
        return None

    with CuttingProxy((upstream.hostname, upstream.port), cut_when=cut_first_full_get) as proxy:
        path = hf_hub_download(
            "alice/big-one", "big-one.safetensors", endpoint=proxy.url, cache_dir=tmp_path / "cache", token=False
        )
    assert Path(path).read_bytes() == data
    gets = [(e.headers.get("range"), e.status, e.cut) for e in proxy.exchanges if e.method == "GET"]
    assert gets == [(None, 200, True), (f"bytes={chunk}-", 206, False)]
