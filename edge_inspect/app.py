"""Wiring: from a validated config to a ready Inspector with its devices. No policy lives here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from .classify import OnnxClassifier, load_classifier
from .config.models import AppConfig
from .encoders import Encoder, create_encoder
from .outputs import DigitalOutput, SimulatedOutput, create_output
from .pipeline import Inspector
from .sources import FrameSource, create_source
from .triggers import TriggerInput, create_trigger


@dataclass
class Devices:
    """The hardware (or its stand-ins) a config describes, opened and in their safe state."""

    source: FrameSource
    classifier: OnnxClassifier
    reject: DigitalOutput
    ready: DigitalOutput | None
    alarm: DigitalOutput | None
    trigger: TriggerInput | None
    encoder: Encoder | None = None

    def close(self) -> None:
        for output in (self.reject, self.ready, self.alarm):
            if output is not None:
                output.close()
        if self.trigger is not None:
            self.trigger.close()
        if self.encoder is not None:
            self.encoder.close()
        self.source.close()


@contextlib.contextmanager
def open_devices(config: AppConfig) -> Iterator[Devices]:
    """Load the model first (cheapest to get wrong), then outputs (safe state), then the camera."""
    stack = contextlib.ExitStack()
    with stack:
        classifier = load_classifier(config.model)
        reject, ready, alarm = _output_lines(config, stack)
        trigger = None
        if config.trigger.mode == "triggered" and config.trigger.input is not None:
            trigger = stack.enter_context(create_trigger(config.trigger.input))
        encoder = None
        # In process mode the scheduler process opens the encoder: it is read where the fire decision is made.
        if config.line.tracking == "encoder" and config.encoder is not None and config.actuation.mode == "thread":
            encoder = stack.enter_context(create_encoder(config.encoder))
        source = create_source(config.source)
        source.open()
        stack.callback(source.close)
        yield Devices(source, classifier, reject, ready, alarm, trigger, encoder)


def _output_lines(
    config: AppConfig, stack: contextlib.ExitStack
) -> tuple[DigitalOutput, DigitalOutput | None, DigitalOutput | None]:
    """The reject/ready/alarm objects the Inspector gets: the real lines in thread mode; in process mode
    mirrors that follow the scheduler process's edges (the scheduler opens the real lines itself)."""
    lines: list[DigitalOutput | None] = []
    for name in ("reject", "ready", "alarm"):
        line_config = getattr(config.outputs, name)
        if line_config is None:
            lines.append(None)
        elif config.actuation.mode == "process":
            lines.append(SimulatedOutput(name=name))
        else:
            output = stack.enter_context(create_output(line_config, name))
            output.set(False)
            lines.append(output)
    reject, ready, alarm = lines
    assert reject is not None
    return reject, ready, alarm


def build_inspector(config: AppConfig, devices: Devices) -> Inspector:
    return Inspector(
        config,
        source=devices.source,
        classifier=devices.classifier,
        reject=devices.reject,
        ready=devices.ready,
        alarm=devices.alarm,
        trigger=devices.trigger,
        encoder=devices.encoder,
    )
