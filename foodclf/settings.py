"""All configuration, read once from environment variables.

Nothing else in foodclf reads os.environ: callers build `Settings(...)` directly
(tests do) or call `load_settings()`.
"""

from __future__ import annotations

import dataclasses
import getpass
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Mapping

from foodclf.errors import SettingsError

DEFAULT_MODEL = "nateraw/food"
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # FOODCLF_PRECISION's values (int8: foodclf.engines)
ENGINES = ("auto", "torch", "openvino")  # FOODCLF_ENGINE's values (foodclf.engines runs them)


def _setting(default, env: str, help: str):
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every knob of foodclf, with its default and the variable that sets it."""

    model: str = _setting(
        DEFAULT_MODEL,
        "FOODCLF_MODEL",
        "Hugging Face hub id or local folder of an image-classification or CLIP model, or `starter` "
        "(built in, offline); unset: the default, or the starter model when the hub cannot be reached.",
    )
    zero_shot_labels: tuple[str, ...] = _setting(
        (), "FOODCLF_ZERO_SHOT_LABELS", "Comma-separated categories for a CLIP model (empty: the 101 Food-101 classes)."
    )
    database_url: str = _setting(
        "sqlite:///data/foodclf.db",
        "FOODCLF_DATABASE_URL",
        "SQLAlchemy URL of the feedback database (SQLite file or PostgreSQL).",
    )
    image_dir: str = _setting(
        "data/images", "FOODCLF_IMAGE_DIR", "Folder where stored photos are kept, named by content id."
    )
    model_dir: str = _setting("data/models", "FOODCLF_MODEL_DIR", "Folder where `foodclf train` writes new models.")
    cache_dir: str = _setting(
        "data/cache",
        "FOODCLF_CACHE_DIR",
        "Folder for the training feature cache, the starter model (built there on first use), and exports "
        "waiting to be downloaded (exports/, each removed once fetched or after 15 minutes).",
    )
    top_k: int = _setting(5, "FOODCLF_TOP_K", "How many categories to show per photo (0: all).")
    uncertain_below: float = _setting(
        0.5, "FOODCLF_UNCERTAIN_BELOW", "A top score under this marks the result uncertain (0 to 1)."
    )
    uncertain_margin: float = _setting(
        0.1, "FOODCLF_UNCERTAIN_MARGIN", "A top-1 minus top-2 gap under this marks the result uncertain (0 to 1)."
    )
    second_opinion_share: float = _setting(
        0.10,
        "FOODCLF_SECOND_OPINION_SHARE",
        "Share of decisions sent back, blind, to a different moderator for a second opinion (0 to 1; 0: none).",
    )
    drift_uncertain_rise: float = _setting(
        0.10,
        "FOODCLF_DRIFT_UNCERTAIN_RISE",
        "Stats flags drift when the share of uncertain photos rises this much above the previous weeks' (0 to 1).",
    )
    drift_confidence_drop: float = _setting(
        0.05,
        "FOODCLF_DRIFT_CONFIDENCE_DROP",
        "Stats flags drift when the mean top score falls this much below the previous weeks' (0 to 1).",
    )
    max_upload_mb: float = _setting(10.0, "FOODCLF_MAX_UPLOAD_MB", "Largest accepted file, in MB.")
    max_pixels: int = _setting(
        40_000_000, "FOODCLF_MAX_PIXELS", "Largest accepted image, in pixels (width x height), checked before decoding."
    )
    decode_budget_mp: float = _setting(
        64.0,
        "FOODCLF_DECODE_BUDGET_MP",
        "Megapixels that all photos being decoded at once may hold, per process (a 40 MP photo "
        "holds about 120 MB while it decodes; RGBA/16-bit ones count double/triple). A photo "
        "waits for room; set it to at least FOODCLF_MAX_PIXELS / 1,000,000 so the largest photo "
        "does not wait for an idle server.",
    )
    decode_wait_s: float = _setting(
        10.0,
        "FOODCLF_DECODE_WAIT_S",
        "Seconds a photo waits for decode budget before it is refused (the API answers 503 with Retry-After).",
    )
    device: str = _setting("auto", "FOODCLF_DEVICE", "auto, cpu, cuda or cuda:N.")
    precision: str = _setting(
        "auto",
        "FOODCLF_PRECISION",
        "auto, fp32, bf16, fp16 (GPU) or int8 (CPU, OpenVINO: quantised once per model on stored photos and kept "
        "only if its top-1 agrees with the float model's); auto uses bf16 only where the hardware runs it natively.",
    )
    engine: str = _setting(
        "auto",
        "FOODCLF_ENGINE",
        "auto, torch or openvino: what runs the model; auto uses OpenVINO on a CPU (the fastest "
        "measured; converted once per model and kept in FOODCLF_CACHE_DIR/openvino) and PyTorch on a GPU.",
    )
    batch_size: int = _setting(16, "FOODCLF_BATCH_SIZE", "Images per forward pass.")
    workers: int = _setting(2, "FOODCLF_WORKERS", "Threads that decode and preprocess images beside the model.")
    api_tokens: tuple[str, ...] = _setting(
        (), "FOODCLF_API_TOKENS", "Comma-separated bearer tokens the HTTP API accepts (none: loopback only)."
    )
    reviewer: str = _setting(
        "",
        "FOODCLF_REVIEWER",
        "Name recorded as who acts from the CLI, and as the local admin of a dashboard without sign-in "
        "(default: login name).",
    )
    role_claim: str = _setting(
        "groups", "FOODCLF_ROLE_CLAIM", "ID-token claim holding the signed-in person's groups (a list or a string)."
    )
    admin_groups: tuple[str, ...] = _setting(
        (), "FOODCLF_ADMIN_GROUPS", "Comma-separated groups whose members are admins (everything, audit log)."
    )
    moderator_groups: tuple[str, ...] = _setting(
        (),
        "FOODCLF_MODERATOR_GROUPS",
        "Comma-separated groups whose members are moderators (review queue, Classify, decisions).",
    )
    viewer_groups: tuple[str, ...] = _setting(
        (), "FOODCLF_VIEWER_GROUPS", "Comma-separated groups whose members are viewers (Stats, Browse, read only)."
    )
    session_hours: float = _setting(
        12.0,
        "FOODCLF_SESSION_HOURS",
        "Hours a dashboard sign-in lasts, from the ID token's issue time; then sign in again (0: no limit).",
    )
    # Not a variable of its own: whether FOODCLF_MODEL was set. Only the default left unset may give way
    # to the starter model offline; a model someone chose fails with a message instead.
    model_chosen: bool = False

    def __post_init__(self) -> None:
        _check(0.0 <= self.uncertain_below <= 1.0, "FOODCLF_UNCERTAIN_BELOW", "a number from 0 to 1")
        _check(0.0 <= self.uncertain_margin <= 1.0, "FOODCLF_UNCERTAIN_MARGIN", "a number from 0 to 1")
        _check(0.0 <= self.second_opinion_share <= 1.0, "FOODCLF_SECOND_OPINION_SHARE", "a number from 0 to 1")
        _check(0.0 < self.drift_uncertain_rise <= 1.0, "FOODCLF_DRIFT_UNCERTAIN_RISE", "a number over 0, at most 1")
        _check(0.0 < self.drift_confidence_drop <= 1.0, "FOODCLF_DRIFT_CONFIDENCE_DROP", "a number over 0, at most 1")
        _check(self.top_k >= 0, "FOODCLF_TOP_K", "0 or more")
        _check(self.max_upload_mb > 0, "FOODCLF_MAX_UPLOAD_MB", "more than 0")
        _check(self.max_pixels > 0, "FOODCLF_MAX_PIXELS", "more than 0")
        _check(self.decode_budget_mp > 0, "FOODCLF_DECODE_BUDGET_MP", "more than 0")
        _check(self.decode_wait_s >= 0, "FOODCLF_DECODE_WAIT_S", "0 or more")
        _check(self.batch_size >= 1, "FOODCLF_BATCH_SIZE", "1 or more")
        _check(self.workers >= 0, "FOODCLF_WORKERS", "0 or more")
        _check(self.precision in PRECISIONS, "FOODCLF_PRECISION", "one of auto, fp32, bf16, fp16, int8")
        _check(self.engine in ENGINES, "FOODCLF_ENGINE", "one of " + ", ".join(ENGINES))
        _check(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "FOODCLF_DEVICE",
            "auto, cpu, cuda or cuda:N",
        )
        _check(bool(self.model.strip()), "FOODCLF_MODEL", "a hub id or a folder")
        _check(bool(self.role_claim.strip()), "FOODCLF_ROLE_CLAIM", "the name of an ID-token claim")
        _check(self.session_hours >= 0, "FOODCLF_SESSION_HOURS", "0 or more")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def decode_budget_pixels(self) -> int:
        return int(self.decode_budget_mp * 1_000_000)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


def local_user(settings: Settings) -> str:
    """Who a command run on this machine acts as: FOODCLF_REVIEWER, else the login name, else "cli"."""
    if settings.reviewer:
        return settings.reviewer
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "cli"


def is_loopback(host: str) -> bool:
    """Whether only this machine can connect to an address: localhost or a loopback IP (127.x, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name may resolve to anything: treat it as exposed


def _check(ok: bool, env: str, expected: str) -> None:
    if not ok:
        raise SettingsError(f"{env} must be {expected}.")


def setting_fields() -> list[dataclasses.Field]:
    """The fields of Settings set by a variable, each with metadata env and help (for docs and tests)."""
    return [f for f in dataclasses.fields(Settings) if "env" in f.metadata]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables; unset ones keep their defaults.

    Raises:
        SettingsError: naming the variable whose value cannot be used.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for f in setting_fields():
        raw = environ.get(f.metadata["env"])
        if raw is None or raw.strip() == "":
            continue
        values[f.name] = _parse(raw.strip(), f)
    return Settings(**values, model_chosen="model" in values)


def _parse(raw: str, f: dataclasses.Field):
    kind = type(f.default)
    if kind is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        return kind(raw)
    except ValueError:
        expected = {int: "a whole number", float: "a number"}.get(kind, "text")
        raise SettingsError(f"{f.metadata['env']} must be {expected}, not {raw!r}.") from None
