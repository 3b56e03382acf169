"""Reading and writing the edge-inspect metadata of an ONNX file (needs the ``onnx`` package to write)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelError
from .metadata import PREFIX, ModelMetadata


def _load(path: Path) -> object:
    try:
        import onnx
    except ImportError:
        raise ModelError("writing model metadata needs the onnx package: pip install onnx") from None
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and friends
        raise ModelError(f"model file {path} is not an ONNX model: {str(error).splitlines()[0]}") from None


def read_props(path: Path) -> dict[str, str]:
    """All metadata_props of an ONNX file (ours and others)."""
    model = _load(path)
    return {p.key: p.value for p in model.metadata_props}  # type: ignore[attr-defined]


def write_metadata(source: Path, meta: ModelMetadata, destination: Path) -> Path:
    """Copy ``source`` to ``destination`` with ``meta`` written into it; atomic, never in place over the source.

    Existing edge_inspect keys are replaced; other keys (an exporter's own) are kept.
    """
    import onnx

    model = _load(source)
    props = {p.key: p.value for p in model.metadata_props if not p.key.startswith(PREFIX)}  # type: ignore[attr-defined]
    props.update(meta.to_props())
    del model.metadata_props[:]  # type: ignore[attr-defined]
    for key, value in props.items():
        entry = model.metadata_props.add()  # type: ignore[attr-defined]
        entry.key, entry.value = key, value
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.tmp")
    onnx.save(model, str(tmp))  # type: ignore[arg-type]
    os.replace(tmp, destination)
    return destination


def next_free_name(path: Path, suffix: str) -> Path:
    """``model.onnx`` -> ``model.<suffix>.onnx`` (or ``.<suffix>-2`` ...) that does not exist yet."""
    candidate = path.with_name(f"{path.stem}.{suffix}{path.suffix}")
    counter = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.{suffix}-{counter}{path.suffix}")
        counter += 1
    return candidate
