"""Model select by number: loads and self-tests the chosen model file on a thread of its own.

The PLC writes a number (Modbus ``model_select``, OPC UA ``SelectModel``); ``plc.models`` maps it to
a file, 0 is the model the appliance started with. Loading never runs on the inspection loop or a
server's request path; the new classifier replaces the old one between parts through
``Inspector.swap_classifier`` (no part dropped). A file that fails to load or its self-test is
refused, counted, and the running model stays.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..classify import Region, load_classifier
from ..classify.base import Classifier
from ..pipeline import Inspector
from ..web.priority import lower_this_thread

log = logging.getLogger(__name__)

CHANGED_ELSEWHERE = 0xFFFF
"""``model_id`` when someone else (the web view) swapped the model after the PLC's last selection."""


class ModelSwitcher:
    """Turns model numbers into loaded, self-tested classifiers swapped into the Inspector."""

    def __init__(self, inspector: Inspector, models: dict[int, Path], thread_nice: int = 0) -> None:
        self.inspector = inspector
        self.thread_nice = thread_nice
        self.models = dict(models)
        self.active_number = 0
        self.failures = 0
        self.last_error: str | None = None
        self._default = inspector.classifier
        self._active: Classifier = inspector.classifier
        self._wanted: int | None = None
        self._is_loading = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    def is_known(self, number: int) -> bool:
        return number == 0 or number in self.models

    def request(self, number: int) -> bool:
        """Queue a switch to model ``number``; False when it is not configured."""
        if not self.is_known(number):
            return False
        with self._lock:
            self._wanted = number
            self._is_loading = True
        self._wake.set()
        return True

    @property
    def is_loading(self) -> bool:
        return self._is_loading

    @property
    def model_id(self) -> int:
        """The number in use, or CHANGED_ELSEWHERE when the classifier was swapped by someone else."""
        return self.active_number if self.inspector.classifier is self._active else CHANGED_ELSEWHERE

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ei-plc-models", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None

    def _run(self) -> None:
        lower_this_thread(self.thread_nice)  # loading a model is CPU work the line must not feel
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                number, self._wanted = self._wanted, None
            if number is not None and not self._stop.is_set():
                self._switch(number)
            with self._lock:
                self._is_loading = self._wanted is not None

    def _switch(self, number: int) -> None:
        if number == self.active_number and self.inspector.classifier is self._active:
            return
        try:
            classifier = self._default if number == 0 else self._load(self.models[number])
        except Exception as error:  # an untrusted file may break onnxruntime in any way: refuse it
            self.failures += 1
            self.last_error = f"model {number} ({self.models.get(number)}): {error}"
            log.warning("PLC model select refused, the running model stays: %s", self.last_error)
            return
        self.inspector.swap_classifier(classifier)
        self._active, self.active_number = classifier, number
        self.swaps += 1
        log.info("PLC selected model %d: %s %s", number, classifier.metadata.model_name,
                 classifier.metadata.model_version)

    def _load(self, path: Path) -> Classifier:
        """Load (the constructor self-tests and warms up), then classify the newest frame as a dry run."""
        config = self.inspector.config
        classifier = load_classifier(config.model.model_copy(update={"path": path}))
        frame = self.inspector.latest_frame()
        if frame is not None:
            regions = [Region(r.name, r.x_px, r.y_px, r.width_px, r.height_px) for r in config.inspection.regions]
            classifier.classify(frame.image, regions)
        return classifier
