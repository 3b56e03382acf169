"""The model in its own process: prepared tensors in over a pipe, the verdict straight to the reject scheduler.

See :mod:`.client` (the inspection side) and :mod:`.worker` (``python -m edge_inspect.inference_worker``).
"""

from .client import InferenceWorker, WorkerError, WorkerReply

__all__ = ["InferenceWorker", "WorkerError", "WorkerReply"]
