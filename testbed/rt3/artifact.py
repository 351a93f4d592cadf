"""The RT3 artifact format; it lives in :mod:`devices.artifact` because a board (no torch) reads it too."""

from devices.artifact import FORMAT, FORMAT_VERSION, MANIFEST, Artifact, sha256_bytes, write_artifact

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "Artifact", "sha256_bytes", "write_artifact"]
