"""Putting a model artifact on an agent: by path when it shares this file system, else by upload.

Failure modes: :class:`~devices.errors.BadInputError` for a missing artifact, or a directory artifact
for a remote agent (only single files upload); agent errors propagate (see :mod:`testbed.agent.api`).
"""

from __future__ import annotations

from pathlib import Path

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI, ModelInfo


def load_on_agent(agent: AgentAPI, artifact: Path, local: bool) -> ModelInfo:
    """Load ``artifact`` (``.rt3``, ``.onnx`` or a directory) on ``agent``; ``local``: load by path."""
    if not artifact.exists():
        raise BadInputError(f"{artifact}: no such artifact")
    if local:
        return agent.load_model(str(artifact.resolve()))
    if artifact.is_dir():
        raise BadInputError(f"{artifact}: a remote agent needs a single-file artifact (.rt3 or .onnx) to upload")
    return agent.upload_model(artifact)
