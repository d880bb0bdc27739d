"""Getting timm ImageNet checkpoints into the local Hugging Face cache: on first use, or ahead of time.

A checkpoint already in the cache is used as is. Otherwise, unless ``HF_HUB_OFFLINE`` is set, the hub is
first probed with a short connection timeout (so an unreachable network costs seconds, not huggingface_hub's
retry loop), then ``model.safetensors`` is downloaded with a progress bar into the standard cache
(``HF_HUB_CACHE`` / ``HF_HOME``, read at call time; ``HF_ENDPOINT`` too). Failures never raise: the result
says why, and the caller falls back to random initialisation.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from .weights import hf_cache_dir, hf_hub_id, resolve_timm_checkpoint

CONNECT_TIMEOUT_S = 5.0
DEFAULT_ENDPOINT = "https://huggingface.co"
CLASSIFIER_BACKBONES = ("resnet18", "resnet50", "vit_tiny_patch16_224", "vit_base_patch16_224")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class FetchResult:
    """The outcome for one timm model: 'cached', 'fetched' or 'failed' (with the reason)."""

    name: str
    status: str
    path: Path | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.path is not None

    def line(self) -> str:
        """One line for the user."""
        if self.ok:
            return f"{self.name}: {self.status} ({self.path})"
        return f"{self.name}: failed ({self.reason})"


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value now."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def hub_endpoint() -> str:
    """The hub URL: ``HF_ENDPOINT`` as it is now, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def preset_weight_names() -> list[str]:
    """The timm checkpoints the presets use: U-Net encoders, the Swin-UNet's Swin, the classification backbones."""
    from .swin_unet import IMAGENET_SWINS
    from .unet import timm_candidates

    encoders = [timm_candidates(e)[0] for e in ("resnet18", "resnet34", "resnet50")]
    return [*encoders, IMAGENET_SWINS[96], *CLASSIFIER_BACKBONES]


def fetch_weights(names: Iterable[str] | None = None, progress: bool = True) -> list[FetchResult]:
    """Bring each model's checkpoint into the cache (default: :func:`preset_weight_names`); one result each."""
    return [fetch_checkpoint(name, progress) for name in (list(names) if names else preset_weight_names())]


def imagenet_checkpoint(candidates: Sequence[str], progress: bool = True) -> FetchResult:
    """The first candidate found in the cache, else the first one downloaded (see the module docstring)."""
    for name in candidates:
        path = resolve_timm_checkpoint(name)
        if path is not None:
            return FetchResult(name, "cached", path)
    return fetch_checkpoint(candidates[0], progress)


def fetch_checkpoint(name: str, progress: bool = True) -> FetchResult:
    """A timm model's ``model.safetensors``: from the cache, else downloaded; never raises."""
    hub_id = hf_hub_id(name)
    if hub_id is None:
        return FetchResult(name, "failed", reason="timm has no pretrained weights of that name on the hub")
    path = resolve_timm_checkpoint(name)
    if path is not None:
        return FetchResult(name, "cached", path)
    cache = hf_cache_dir()
    if offline():
        return FetchResult(name, "failed", reason=f"offline (HF_HUB_OFFLINE is set) and not in the local cache {cache}")
    endpoint = hub_endpoint()
    unreachable = probe(endpoint)
    if unreachable:
        return FetchResult(name, "failed", reason=f"{endpoint} unreachable ({unreachable}), not in the cache {cache}")
    try:
        found = _download(hub_id, cache, endpoint, progress)
    except Exception as exc:  # any hub, network or disk error: the caller falls back
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return FetchResult(name, "failed", reason=f"download from {endpoint} failed: {type(exc).__name__} {detail}")
    return FetchResult(name, "fetched", Path(found))


def _download(hub_id: str, cache: Path, endpoint: str, progress: bool) -> str:
    """hf_hub_download of ``model.safetensors`` with a short metadata timeout; progress bar unless disabled."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        return str(
            hf_hub_download(
                hub_id,
                filename="model.safetensors",
                cache_dir=str(cache),
                endpoint=endpoint,
                etag_timeout=CONNECT_TIMEOUT_S,
                library_name="napari-s4mi",
            )
        )
    finally:
        if not progress and not was_disabled:
            enable_progress_bars()


def probe(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when a TCP connection to the hub (or the proxy in use) opens within ``timeout`` s, else why not.

    Name resolution runs in a daemon thread too, so a hanging DNS lookup is cut off at the same timeout.
    """
    host, port = _connect_target(endpoint)
    if not host:
        return f"bad endpoint URL {endpoint!r}"
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(exc.strerror or type(exc).__name__)

    worker = threading.Thread(target=connect, name="s4mi-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome:
        return f"no answer within {timeout:g} s"
    return outcome[0]


def _connect_target(endpoint: str) -> tuple[str, int]:
    """The host and port a request to ``endpoint`` connects to first: its proxy when one applies."""
    url = urlsplit(endpoint)
    host = url.hostname or ""
    proxy = getproxies().get(url.scheme or "https")
    if proxy and host and not proxy_bypass(host):
        url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = url.hostname or ""
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return "", 0
    return host, port
