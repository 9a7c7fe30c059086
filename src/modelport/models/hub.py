"""The Hugging Face Hub (or the mirror HF_ENDPOINT names) as a model source, through huggingface_hub.

huggingface_hub supplies the endpoint, the token (HF_TOKEN or a stored login), URLs, the HTTP
session, the Hub's error types and the downloader: `download_into` is `snapshot_download` into
a staging folder, limited to the exact files the puller chose, several at a time, retrying a
dropped connection from where it stopped, over Xet storage where the repository uses it and
`hf_xet` is installed. Its progress bars stay hidden: the bytes they count go to the puller's
own progress. The puller then checks every file against the listing before keeping it.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelport.models.remote import Advance, PullError, RemoteFile, RemoteListing, take_range
from modelport.models.sources import ModelSource

CHUNK = 1024 * 1024
# What the Hub's `sha` is: the cache names the snapshot folder after it, so nothing else is taken.
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
PARALLEL_FILES = 8  # huggingface_hub's own default
# The bar snapshot_download counts bytes written to disk on (resumed bytes included); its other
# bars count files and network bytes (which Xet's dedup makes differ from file sizes).
BYTES_BAR = "huggingface_hub.snapshot_download"
# huggingface_hub's bookkeeping folder inside a local_dir; a repository file there would clash.
LOCAL_DIR_METADATA = ".cache"


class HubRemote:
    def __init__(self, token: str | None = None) -> None:
        self.token = token  # None: huggingface_hub's own lookup (HF_TOKEN, then a stored login)

    def listing(self, source: ModelSource) -> RemoteListing:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        api = HfApi(token=self.token)
        where = f"{source.location} on {constants.ENDPOINT}"
        try:
            info = api.model_info(source.location, revision=source.revision, files_metadata=True)
        except GatedRepoError:
            raise PullError(f"{where} is gated: accept its terms on the Hub, then set HF_TOKEN") from None
        except RevisionNotFoundError:
            raise PullError(f"{where} has no revision {source.revision!r}") from None
        except RepositoryNotFoundError:
            raise PullError(
                f"{where} was not found, or is private: check the id, or set HF_TOKEN (an endpoint secret)"
            ) from None
        except HfHubHTTPError as exc:
            raise PullError(f"{where}: the Hub answered {exc}") from None
        except OSError as exc:
            raise PullError(
                f"cannot reach {constants.ENDPOINT} ({exc}); set HF_ENDPOINT for a mirror"
            ) from None
        if info.sha is None:
            raise PullError(f"{where} did not say which commit {source.revision or 'main'} is")
        if not COMMIT_RE.fullmatch(info.sha):
            raise PullError(f"{where} named commit {info.sha!r}, which is not a 40-hex commit id: refused")
        files = []
        for sibling in info.siblings or []:
            lfs = sibling.lfs
            files.append(
                RemoteFile(
                    path=sibling.rfilename,
                    size=int(lfs.size if lfs is not None else (sibling.size or 0)),
                    sha256=lfs.sha256 if lfs is not None else None,
                    git_sha1=None if lfs is not None else sibling.blob_id,
                )
            )
        return RemoteListing(revision=info.sha, files=tuple(files), origin={"endpoint": constants.ENDPOINT})

    def download_into(
        self,
        source: ModelSource,
        listing: RemoteListing,
        files: Sequence[RemoteFile],
        dest: Path,
        advance: Advance,
    ) -> None:
        from huggingface_hub import snapshot_download

        if not files:
            return
        clash = next((f.path for f in files if f.path.split("/")[0] == LOCAL_DIR_METADATA), None)
        if clash is not None:
            raise PullError(f"{source.display()}: refused: {clash!r} lies in huggingface_hub's own folder")
        try:
            snapshot_download(
                source.location,
                # by commit, so every file comes from the revision the listing resolved and was checked at
                revision=listing.revision,
                local_dir=dest,
                token=self.token,
                # the chosen names exactly (escaped: '[', '*' and '?' are legal in a file name)
                allow_patterns=[glob.escape(f.path) for f in files],
                max_workers=PARALLEL_FILES,
                tqdm_class=_byte_counter(advance),
            )
        except Exception as exc:
            raise PullError(
                f"downloading {source.display()} at {listing.revision[:12]} failed: {exc}; "
                "pull again to go on (the files that arrived are kept)"
            ) from None

    def read_range(
        self, source: ModelSource, listing: RemoteListing, file: RemoteFile, start: int, stop: int
    ) -> bytes:
        from huggingface_hub import get_session, hf_hub_url
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status  # type: ignore[attr-defined]

        stop = min(stop, file.size)
        if stop <= start:
            return b""
        url = hf_hub_url(source.location, file.path, revision=listing.revision)
        # the Range header survives the redirect to the LFS CDN; the token does not (another origin)
        headers = {**build_hf_headers(token=self.token), "Range": f"bytes={start}-{stop - 1}"}
        try:
            with get_session().stream("GET", url, headers=headers, timeout=60) as response:
                hf_raise_for_status(response)
                skip = 0 if response.status_code == 206 else start
                return take_range(response.iter_bytes(CHUNK), skip, stop - start)
        except Exception as exc:
            raise PullError(f"reading {file.path} from {source.location} failed: {exc}") from None


def _byte_counter(advance: Advance) -> type[Any]:
    """A tqdm class for snapshot_download: nothing is drawn, the bytes its byte bar counts go to
    `advance` (called from its worker threads)."""
    from huggingface_hub.utils.tqdm import tqdm

    class ByteCounter(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.forwards = kwargs.get("name") == BYTES_BAR
            super().__init__(*args, **{**kwargs, "disable": True})  # type: ignore[no-untyped-call]

        def update(self, n: float | None = 1) -> bool | None:
            if self.forwards and n:
                advance(int(n))
            return super().update(n)  # type: ignore[no-any-return]

    return ByteCounter
