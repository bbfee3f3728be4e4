"""Files from the Hugging Face Hub (and pinned URLs), with the Hub's own conventions and one-line errors.

Everything goes through ``huggingface_hub``: its cache (``HF_HUB_CACHE`` / ``HF_HOME``), offline mode
(``HF_HUB_OFFLINE=1``), ``local_files_only``, ``revision`` and ``token``. Files are fetched one by
one (``hf_hub_download``) rather than as whole snapshots, so a model folder that holds fifteen
tokenizers downloads only the ones a call needs. When a file can be neither found in the cache
nor downloaded, :class:`HubFileMissing` says which repo, which file, and how to get it.

The one artifact not on the Hub, the official WordPiece text tokenizer, comes from a pinned URL
(a commit of the official repository, checked by SHA-256) into the same cache root.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .atomic import atomic_write
from .errors import NotFound

__all__ = ["HubOptions", "HubFileMissing", "Origin", "is_hub_id", "hub_file", "url_file", "offline", "locate", "push_folder"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class HubFileMissing(NotFound):
    """A file that is neither in the local cache nor downloadable now; the message says how to get it."""


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub: the same knobs as ``huggingface_hub``'s own functions."""

    revision: str | None = None
    cache_dir: str | os.PathLike | None = None
    token: str | bool | None = None
    local_files_only: bool = False


def is_hub_id(name: str) -> bool:
    """``owner/name`` (and not a file that happens to contain one slash)."""
    return bool(_HUB_ID.match(str(name))) and not str(name).lower().endswith((".safetensors", ".json", ".yaml"))


def offline(options: HubOptions | None = None) -> bool:
    """Whether downloads are off (``HF_HUB_OFFLINE`` read now, or ``local_files_only``)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(env or constants.HF_HUB_OFFLINE or (options and options.local_files_only))


def _how_to_get(repo_id: str, filenames: list[str], revision: str | None = None) -> str:
    flag = f" --revision {revision}" if revision else ""  # without it the command fetches main, still not what is asked
    return (f"on a connected machine run `huggingface-cli download {repo_id} {' '.join(filenames)}{flag}` (it fills the "
            "Hugging Face cache; copy that cache here or point HF_HUB_CACHE at it), or pass a local path instead")


def hub_file(repo_id: str, filename: str, options: HubOptions | None = None, *, what: str = "file",
             required: bool = True) -> Path | None:
    """The local path of ``filename`` in Hub repo ``repo_id`` (downloaded into the cache if allowed).

    With ``required=False`` a repo that exists but lacks the file gives None instead of an error.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (EntryNotFoundError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                       RepositoryNotFoundError, RevisionNotFoundError)

    opts = options or HubOptions()
    try:
        return Path(hf_hub_download(repo_id, filename, revision=opts.revision, cache_dir=opts.cache_dir,
                                    token=opts.token, local_files_only=opts.local_files_only or offline(opts)))
    except LocalEntryNotFoundError:
        if not required and _cached_snapshot_exists(repo_id, opts):
            return None
        where = "downloads are off (HF_HUB_OFFLINE=1 or local_files_only)" if offline(opts) else "the download failed"
        at = f" at revision {opts.revision!r}" if opts.revision else ""
        raise HubFileMissing(f"{what} {repo_id}: {filename}{at} is not in the local Hugging Face cache and {where}; "
                             + _how_to_get(repo_id, [filename], opts.revision)) from None
    except GatedRepoError:
        raise HubFileMissing(f"{what} {repo_id} is gated: accept its terms on huggingface.co and log in "
                             "(`huggingface-cli login` or token=...)") from None
    except RepositoryNotFoundError:
        raise HubFileMissing(f"no Hub repo {repo_id!r} (or it is private: log in with `huggingface-cli login` or pass "
                             "token=...); check the id with `open4m info --pretrained`") from None
    except RevisionNotFoundError:
        raise HubFileMissing(f"{what} {repo_id} has no revision {opts.revision!r}") from None
    except EntryNotFoundError:
        if not required:
            return None
        raise HubFileMissing(f"{what} {repo_id} has no file {filename!r}") from None
    except HfHubHTTPError as err:
        raise HubFileMissing(f"the Hub refused {repo_id}/{filename}: {err}") from None


def _cached_snapshot_exists(repo_id: str, opts: HubOptions) -> bool:
    """Whether the cache holds some snapshot of the repo (then a missing optional file is just absent)."""
    from huggingface_hub import constants

    root = Path(opts.cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return root.is_dir() and any(root.iterdir())


def url_file(url: str, filename: str, sha256: str, options: HubOptions | None = None, *, what: str = "file") -> Path:
    """A pinned file from a URL, cached under the Hub cache root as ``open4m/<filename>``.

    A download is checked against ``sha256`` before it enters the cache; a file already in the cache
    is used as it is (as the Hub cache does), so a copy placed there by hand works offline.
    """
    from huggingface_hub import constants

    root = Path((options and options.cache_dir) or constants.HF_HUB_CACHE) / "open4m"
    path = root / filename
    if path.is_file():  # checked when it was downloaded; like the Hub cache, trusted afterwards
        return path
    if offline(options):
        raise HubFileMissing(f"{what} {filename} is not in the local cache ({path}) and downloads are off "
                             f"(HF_HUB_OFFLINE=1 or local_files_only); on a connected machine run "
                             f"`curl -L {url} -o {path}`, or pass a local path instead")
    def download(tmp: Path) -> None:  # checked before atomic_write moves it into the cache
        try:
            urllib.request.urlretrieve(url, tmp)  # noqa: S310 - a fixed https URL
        except OSError as err:
            raise HubFileMissing(f"cannot download {what} from {url} ({err}); fetch it with `curl -L {url} -o {path}` "
                                 "or pass a local path instead") from None
        if _sha256(tmp) != sha256:
            raise HubFileMissing(f"{url} did not have the expected content (SHA-256 mismatch); pass a local copy "
                                 "instead")

    return atomic_write(path, download)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Origin:
    """Where a loaded model's files live: a local folder and, for Hub models, the repo to fetch more from.

    Why: a model folder may list tokenizers that are only downloaded when a call needs them; the
    origin remembers where to get them (the same snapshot folder, revision and token).
    """

    folder: Path | None
    repo_id: str | None = None
    options: HubOptions = HubOptions()

    def file(self, relpath: str, *, what: str = "file", required: bool = False) -> Path | None:
        """``relpath`` inside the model's folder (fetched from its repo on first use), or None when absent."""
        if self.folder is not None and (self.folder / relpath).is_file():
            return self.folder / relpath
        if self.folder is not None and (self.folder / relpath).exists():
            raise HubFileMissing(f"{what}: {self.folder / relpath} is a folder, not a file; restore the file (or save "
                                 "the model again)")
        if self.repo_id is not None:
            return hub_file(self.repo_id, relpath, self.options, what=what, required=required)
        if required:
            raise HubFileMissing(f"{what}: {relpath} is not in {self.folder}; restore it, or save the model again "
                                 "with its tokenizers")
        return None

    def __str__(self) -> str:
        return self.repo_id or str(self.folder)


def locate(source: str | os.PathLike, *, what: str, files: tuple[str, ...], optional: tuple[str, ...] = (),
           options: HubOptions | None = None) -> tuple[Path, Origin]:
    """A local file or folder as is; a released name (``4M-21_B``) or Hub id -> its snapshot folder.

    For the Hub, ``files`` are fetched (each required) and ``optional`` ones when the repo has them.
    """
    from .pretrained import find, suggest

    path = Path(source).expanduser()
    if path.exists():
        return path, Origin(path if path.is_dir() else path.parent, None, options or HubOptions())
    entry = find(str(source))
    repo_id = entry.repo_id if entry is not None and entry.kind != "text" else str(source)
    if entry is None and not is_hub_id(repo_id):
        hint = suggest(str(source))
        raise NotFound(
            f"no {what} at {str(source)!r}: it is neither an existing file or folder, nor a released name "
            f"(`open4m info --pretrained`), nor a Hub repo id (owner/name)"
            + (f"; did you mean {' or '.join(hint)}?" if hint else ""))
    opts = options or HubOptions()
    first = hub_file(repo_id, files[0], opts, what=what)
    for name in files[1:]:
        hub_file(repo_id, name, opts, what=what)
    for name in optional:
        hub_file(repo_id, name, opts, what=what, required=False)
    return first.parent, Origin(first.parent, repo_id, opts)


def push_folder(repo_id: str, save: Callable[[Path], object], *, private: bool | None = None,
                token: str | bool | None = None, commit_message: str = "Upload with open4m",
                branch: str | None = None, create_pr: bool = False) -> str:
    """``save(tmpdir)`` then upload that folder to ``repo_id`` (created if needed); returns the commit URL.

    The same arguments as ``huggingface_hub``'s ``push_to_hub``; nothing is written outside a temporary folder.
    """
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="open4m-push-") as tmp:
        save(Path(tmp))
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message, revision=branch,
                                 create_pr=create_pr)
    return str(getattr(info, "commit_url", info))
