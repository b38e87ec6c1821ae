"""What differs between the ComfyUI versions the simulator can pretend to be.

The exporter has to keep counting right on every release people run (0.3.x without ``/api/jobs``,
0.8.0, and the 0.38 line), so the simulator answers like whichever one a test asks for. Each
profile lists only what a monitor can observe; everything not named here is the same in all
versions (checked field by field against the 0.3.64 and 0.8.0 recordings; 0.38 from its source).

Sources: ``tests/fixtures/comfyui-0.3.64`` and ``tests/fixtures/comfyui-0.8.0`` (recordings of real
servers); 0.38 from reading upstream ``server.py``, ``execution.py``, ``comfy_execution/jobs.py`` and
``comfy/model_management.py`` (no recording exists: see docs/comfyui-versions.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

DEFAULT_VERSION = "0.8.0"

# (file, line, function) of the frames ComfyUI's own code adds above the failing node.
_EXEC_FRAMES_0364 = (
    ("/opt/ComfyUI/execution.py", 496, "execute"),
    ("/opt/ComfyUI/execution.py", 315, "get_output_data"),
    ("/opt/ComfyUI/execution.py", 289, "_async_map_node_over_list"),
    ("/opt/ComfyUI/execution.py", 277, "process_inputs"),
)
_EXEC_FRAMES_080 = (
    ("/opt/ComfyUI/execution.py", 518, "execute"),
    ("/opt/ComfyUI/execution.py", 329, "get_output_data"),
    ("/opt/ComfyUI/execution.py", 303, "_async_map_node_over_list"),
    ("/opt/ComfyUI/execution.py", 291, "process_inputs"),
)

_FEATURES_0364 = {"supports_preview_metadata": True, "max_upload_size": 104857600}
_FEATURES_080 = {**_FEATURES_0364, "extension": {"manager": {"supports_v4": True}}}


@dataclass(frozen=True)
class VersionProfile:
    """Observable behaviour of one ComfyUI release."""

    version: str
    frontend_version: str
    templates_version: str
    os_name: str  # ``system.os``: os.name on 0.3.64 ("posix"), sys.platform later ("linux")
    ram_total: int  # the recording host's RAM, so CPU-device numbers match the recordings
    jobs_api: bool  # GET /api/jobs, /api/jobs/{id} (added in 0.6.0)
    jobs_cancelled: bool  # interrupted prompts are "cancelled", not "failed" (after 0.8.0)
    jobs_cancel_api: bool  # POST /api/jobs/{id}/cancel and POST /api/jobs/cancel
    previewable_count: bool  # job summaries carry previewable_outputs_count
    create_time: bool  # POST /prompt stamps extra_data.create_time (not on 0.3.64)
    queue_hides_sensitive: bool  # /queue strips api_key_comfy_org etc. (0.3.64 shows them)
    strict_prompt_id: bool  # a client prompt_id must be a canonical UUID (400 invalid_prompt_id)
    missing_node_type: bool  # unknown / class-less nodes fail as "missing_node_type"
    all_devices: bool  # /system_stats lists every torch device, primary first
    usage_source: bool  # the Comfy-Usage-Source header lands in extra_data.comfy_usage_source
    exec_frames: tuple[tuple[str, int, str], ...]
    current_outputs_graph_order: bool  # execution_error.current_outputs in graph order (0.3.64)
    validation_lines: tuple[int, int]  # validate_prompt, validate_inputs frame lines
    features: dict[str, Any] = field(default_factory=dict)
    system_extra: dict[str, Any] = field(default_factory=dict)  # keys 0.38 added to system_stats


PROFILES: dict[str, VersionProfile] = {
    "0.3.64": VersionProfile(
        version="0.3.64",
        frontend_version="1.27.10",
        templates_version="0.1.95",
        os_name="posix",
        ram_total=25276071936,
        jobs_api=False,
        jobs_cancelled=False,
        jobs_cancel_api=False,
        previewable_count=False,
        create_time=False,
        queue_hides_sensitive=False,
        strict_prompt_id=False,
        missing_node_type=False,
        all_devices=False,
        usage_source=False,
        exec_frames=_EXEC_FRAMES_0364,
        current_outputs_graph_order=True,
        validation_lines=(1010, 788),
        features=_FEATURES_0364,
    ),
    "0.8.0": VersionProfile(
        version="0.8.0",
        frontend_version="1.35.9",
        templates_version="0.7.67",
        os_name="linux",
        ram_total=25276510208,
        jobs_api=True,
        jobs_cancelled=False,
        jobs_cancel_api=False,
        previewable_count=False,
        create_time=True,
        queue_hides_sensitive=True,
        strict_prompt_id=False,
        missing_node_type=False,
        all_devices=False,
        usage_source=False,
        exec_frames=_EXEC_FRAMES_080,
        current_outputs_graph_order=False,
        validation_lines=(1043, 818),
        features=_FEATURES_080,
    ),
    # Not recorded: read from the source. Frame line numbers and version strings of the
    # satellite packages are placeholders (nothing a monitor should depend on).
    "0.38": VersionProfile(
        version="0.38.0",
        frontend_version="1.60.2",
        templates_version="0.9.12",
        os_name="linux",
        ram_total=25276510208,
        jobs_api=True,
        jobs_cancelled=True,
        jobs_cancel_api=True,
        previewable_count=True,
        create_time=True,
        queue_hides_sensitive=True,
        strict_prompt_id=True,
        missing_node_type=True,
        all_devices=True,
        usage_source=True,
        exec_frames=_EXEC_FRAMES_080,
        current_outputs_graph_order=False,
        validation_lines=(1043, 818),
        features=_FEATURES_080,
        system_extra={"comfy_package_versions": {}, "deploy_environment": "local"},
    ),
}


def profile(version: str) -> VersionProfile:
    """The profile for ``version`` ("0.3.64", "0.8.0", "0.38"); ValueError names the choices."""
    try:
        return PROFILES[version]
    except KeyError:
        raise ValueError(f"unknown --comfyui-version {version!r}; choose one of {sorted(PROFILES)}") from None


def canonical_uuid(value: Any) -> bool:
    """0.38's job-id rule: a str that ``uuid.UUID`` gives back unchanged (lowercase, hyphenated)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
