"""Download the real PhysioNet release and verify it against pinned SHA256 sums."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from vo2spike.data.read import PHYSIONET_SHA256
from vo2spike.outputs import atomic_dir

PHYSIONET_URL = "https://physionet.org/files/treadmill-exercise-cardioresp/1.0.1/"
PHYSIONET_PAGE = "https://physionet.org/content/treadmill-exercise-cardioresp/1.0.1/"


class FetchError(RuntimeError):
    """A download failed or did not match its checksum; nothing was written."""


def _download(url: str, dest: Path, timeout: float) -> str:
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as f:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
    except urllib.error.HTTPError as e:
        raise FetchError(f"could not download {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(
            f"could not download {url}: {reason}. Without internet access, download the "
            f"release by hand from {PHYSIONET_PAGE} and pass its folder with --data "
            "(or set VO2SPIKE_DATA)."
        ) from e
    return h.hexdigest()


def fetch_physionet(out: Path, base_url: str = PHYSIONET_URL,
                    expected: dict[str, str] | None = None, force: bool = False,
                    timeout: float = 30.0) -> Path:
    """Download every file of the release into ``out`` and check its SHA256.

    All files land in a temporary folder first; ``out`` appears only if every download
    succeeded and matched, so a failure leaves nothing half-written.
    """
    expected = expected or PHYSIONET_SHA256
    with atomic_dir(Path(out), force=force, kind="release") as tmp:
        for name, sha in expected.items():
            url = base_url.rstrip("/") + "/" + name
            digest = _download(url, tmp / name, timeout)
            if digest != sha:
                raise FetchError(f"{url}: SHA256 {digest} does not match the published {sha}; "
                                 "the download is corrupt or not release 1.0.1")
    return Path(out)
