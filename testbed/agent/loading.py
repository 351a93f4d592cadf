"""Putting a model artifact on an agent: by path when it shares this file system, else by upload.

An agent loads only from its models directory: a local artifact elsewhere is uploaded (a file) or copied into
that directory (a model directory).

Failure modes: :class:`~devices.errors.BadInputError` for a missing artifact, or a directory artifact
for a remote agent (only single files upload); agent errors propagate (see :mod:`testbed.agent.api`).
"""

from __future__ import annotations

from pathlib import Path

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI, ModelInfo


def _copy_into_models_dir(agent: AgentAPI, artifact: Path) -> str:
    """Copy a directory artifact into a local agent's models directory; its name there."""
    import hashlib
    import shutil
    from typing import Any, cast

    models_dir = cast(dict[str, Any], agent.info()).get("models_dir")
    if not models_dir:
        raise BadInputError(f"{artifact}: the agent loads only from its models directory; copy the artifact there")
    name = f"imported-{hashlib.sha256(str(artifact.resolve()).encode()).hexdigest()[:16]}"
    shutil.copytree(artifact, Path(models_dir) / name, dirs_exist_ok=True)
    return name


def load_on_agent(agent: AgentAPI, artifact: Path, local: bool) -> ModelInfo:
    """Load ``artifact`` (``.rt3``, ``.onnx`` or a directory) on ``agent``; ``local``: load by path."""
    if not artifact.exists():
        raise BadInputError(f"{artifact}: no such artifact")
    if local:
        from testbed.agent.client import AgentRequestError

        try:
            return agent.load_model(str(artifact.resolve()))
        except AgentRequestError as exc:
            if exc.status != 403:  # 403: outside the agent's models directory
                raise
        if artifact.is_dir():  # cannot be uploaded: copy it into the (local) agent's models directory
            return agent.load_model(_copy_into_models_dir(agent, artifact))
        return agent.upload_model(artifact)
    if artifact.is_dir():
        raise BadInputError(f"{artifact}: a remote agent needs a single-file artifact (.rt3 or .onnx) to upload")
    return agent.upload_model(artifact)
