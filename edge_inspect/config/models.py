"""The validated configuration tree.

Every model forbids unknown keys (a typo is an error, not a silently ignored setting), every field has
a description and carries its unit in its name. Backends are chosen by each section's ``type`` key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .actuation import ActuationConfig
from .base import StrictModel
from .defect_log import DefectLogConfig
from .encoder import EncoderConfig
from .mqtt import MqttConfig
from .plant import PlantConfig
from .plc import ModbusTriggerConfig, PlcConfig
from .settings import SettingsConfig
from .web import WebConfig

# ---------------------------------------------------------------------------------------------------
# Frame sources
# ---------------------------------------------------------------------------------------------------


class ReplaySourceConfig(StrictModel):
    """Replays a folder of images or a video file at a set rate, looping, from frames held in memory."""

    type: Literal["replay"] = "replay"
    path: Path = Field(Path("sample_images"), description="Folder of images, or a video file.")
    frames_per_second: float = Field(20.0, gt=0, le=1000, description="Replay rate, frames per second.")
    loop: bool = Field(True, description="Start again at the first frame after the last.")
    max_frames: int = Field(
        2000, gt=0, description="At most this many frames are decoded and held in memory."
    )


class OpenCVSourceConfig(StrictModel):
    """A camera through OpenCV: USB/V4L2 index, RTSP/HTTP URL, or a GStreamer pipeline (Jetson CSI)."""

    type: Literal["opencv"] = "opencv"
    device: int | str = Field(
        0, description="V4L2 index (0), a URL (rtsp://...), or a GStreamer pipeline ending in appsink."
    )
    api: Literal["auto", "v4l2", "gstreamer", "ffmpeg"] = Field(
        "auto", description="OpenCV capture backend; 'auto' picks gstreamer for pipelines."
    )
    width_px: int | None = Field(None, gt=0, description="Requested frame width, pixels.")
    height_px: int | None = Field(None, gt=0, description="Requested frame height, pixels.")
    frames_per_second: float | None = Field(None, gt=0, description="Requested camera frame rate.")
    buffer_frames: int = Field(1, ge=1, le=16, description="Driver buffer depth; 1 keeps latency low.")
    open_timeout_s: float = Field(10.0, gt=0, description="Give up opening the device after this long.")


class Picamera2SourceConfig(StrictModel):
    """The Raspberry Pi CSI camera through picamera2 (libcamera)."""

    type: Literal["picamera2"] = "picamera2"
    camera_index: int = Field(0, ge=0, description="Which CSI camera (0 or 1 on a Pi 5).")
    main_size_px: tuple[int, int] = Field((1536, 864), description="Main stream (width, height), pixels.")
    lores_size_px: tuple[int, int] | None = Field(
        None, description="Optional low-resolution stream (width, height) used for inference."
    )
    inference_stream: Literal["main", "lores"] = Field(
        "main", description="Which stream's frames are inspected."
    )
    buffer_count: int = Field(4, ge=1, le=16, description="Number of camera buffers libcamera allocates.")
    frames_per_second: float = Field(30.0, gt=0, le=240, description="Sensor frame rate.")
    exposure_time_us: int | None = Field(None, gt=0, description="Fixed exposure, microseconds (None=auto).")
    analogue_gain: float | None = Field(None, gt=0, description="Fixed analogue gain (None=auto).")

    @model_validator(mode="after")
    def _lores_needs_size(self) -> Picamera2SourceConfig:
        if self.inference_stream == "lores" and self.lores_size_px is None:
            raise ValueError("inference_stream 'lores' needs lores_size_px")
        return self


SourceConfig = Annotated[
    ReplaySourceConfig | OpenCVSourceConfig | Picamera2SourceConfig, Field(discriminator="type")
]


# ---------------------------------------------------------------------------------------------------
# Outputs (reject, ready, alarm) and trigger inputs
# ---------------------------------------------------------------------------------------------------


class SimulatedOutputConfig(StrictModel):
    """A simulated output line that records each level change and its time (demo and tests)."""

    type: Literal["simulated"] = "simulated"
    active_high: bool = Field(True, description="Electrical polarity (recorded, no pin is driven).")


class GpiozeroOutputConfig(StrictModel):
    """A Raspberry Pi GPIO output through gpiozero (lgpio pin factory on a Pi 5)."""

    type: Literal["gpiozero"] = "gpiozero"
    pin: int | str = Field(description="GPIO pin: BCM number (17) or a gpiozero name ('GPIO17', 'BOARD11').")
    active_high: bool = Field(True, description="False for active-low relay boards.")
    pin_factory: Literal["lgpio", "rpigpio", "native", "mock"] | None = Field(
        None, description="gpiozero pin factory; None lets gpiozero choose (lgpio on a Pi 5)."
    )


class JetsonOutputConfig(StrictModel):
    """A Jetson GPIO output through Jetson.GPIO."""

    type: Literal["jetson"] = "jetson"
    pin: int = Field(description="Pin number in the chosen numbering mode.")
    numbering: Literal["BOARD", "BCM", "CVM", "TEGRA_SOC"] = Field(
        "BOARD", description="Jetson.GPIO pin numbering mode."
    )
    active_high: bool = Field(True, description="False for active-low relay boards.")


OutputConfig = Annotated[
    SimulatedOutputConfig | GpiozeroOutputConfig | JetsonOutputConfig, Field(discriminator="type")
]


class OutputsConfig(StrictModel):
    """The appliance's output lines. ``ready`` and ``alarm`` are optional."""

    reject: OutputConfig = Field(default_factory=SimulatedOutputConfig, description="Diverter line.")
    ready: OutputConfig | None = Field(None, description="Asserted while inspecting (heartbeat).")
    alarm: OutputConfig | None = Field(None, description="Asserted while in FAULT.")
    ready_heartbeat_period_ms: float = Field(
        0.0, ge=0, description="0: READY held steady while inspecting; >0: toggled at this period."
    )


class GpiozeroTriggerConfig(StrictModel):
    """A photo-eye or PLC line on a Raspberry Pi GPIO input (gpiozero DigitalInputDevice)."""

    type: Literal["gpiozero"] = "gpiozero"
    pin: int | str = Field(description="GPIO pin: BCM number or gpiozero name.")
    pull_up: bool | None = Field(False, description="Internal pull-up (True), pull-down (False), none (None).")
    active_high: bool = Field(True, description="With pull_up None: which level means 'part present'.")
    bounce_ms: float | None = Field(5.0, ge=0, description="Debounce time, milliseconds.")
    pin_factory: Literal["lgpio", "rpigpio", "native", "mock"] | None = Field(
        None, description="gpiozero pin factory; None lets gpiozero choose."
    )


class JetsonTriggerConfig(StrictModel):
    """A photo-eye or PLC line on a Jetson GPIO input."""

    type: Literal["jetson"] = "jetson"
    pin: int = Field(description="Pin number in the chosen numbering mode.")
    numbering: Literal["BOARD", "BCM", "CVM", "TEGRA_SOC"] = Field("BOARD", description="Numbering mode.")
    edge: Literal["rising", "falling"] = Field("rising", description="Which edge means 'part present'.")
    bounce_ms: int = Field(5, ge=0, description="Debounce time, milliseconds.")


class SoftwareTriggerConfig(StrictModel):
    """Triggers fired in software (tests, ``POST /api/trigger`` of the web view; see docs/WEB.md)."""

    type: Literal["software"] = "software"
    http_token_file: Path | None = Field(
        None,
        description="File (mode 0600) holding the bearer token a machine sends to POST /api/trigger "
        "(None: only a logged-in admin may fire).",
    )
    http_max_per_s: float = Field(
        5.0, gt=0, le=100, description="POST /api/trigger accepts at most this many edges per second (else 429)."
    )


TriggerInputConfig = Annotated[
    GpiozeroTriggerConfig | JetsonTriggerConfig | SoftwareTriggerConfig | ModbusTriggerConfig,
    Field(discriminator="type"),
]


class TriggerConfig(StrictModel):
    """When a frame is a part: every Nth frame (free run) or the frame nearest a trigger edge."""

    mode: Literal["free_run", "triggered"] = Field(
        "free_run", description="free_run: frames are parts; triggered: trigger edges are parts."
    )
    every_nth_frame: int = Field(1, ge=1, description="free_run: every Nth frame is a part.")
    input: TriggerInputConfig | None = Field(None, description="triggered: where the edges come from.")
    max_frame_offset_ms: float = Field(
        40.0, gt=0, description="triggered: a frame this far or further from the edge cannot serve it."
    )

    @model_validator(mode="after")
    def _triggered_needs_input(self) -> TriggerConfig:
        if self.mode == "triggered" and self.input is None:
            raise ValueError("mode 'triggered' needs an [trigger.input] section")
        return self


# ---------------------------------------------------------------------------------------------------
# Model, regions, line timing
# ---------------------------------------------------------------------------------------------------


class ModelConfig(StrictModel):
    """The ONNX classifier. Everything about preprocessing comes from the model file's metadata."""

    path: Path = Field(Path("models/default.onnx"), description="ONNX model file with edge-inspect metadata.")
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        description="onnxruntime execution providers, in order of preference.",
    )
    intra_op_threads: int = Field(1, ge=0, description="onnxruntime intra-op threads (0: its default).")
    inter_op_threads: int = Field(1, ge=0, description="onnxruntime inter-op threads (0: its default).")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Override the model's defect-score threshold (None: use the model's)."
    )
    warmup_runs: int = Field(3, ge=0, description="Inferences run at load so the first part is not slow.")
    verify_selftest: bool = Field(True, description="Refuse a model whose embedded self-test fails.")


class RegionConfig(StrictModel):
    """A rectangle of the frame classified on its own; a part is defective if any region is."""

    name: str = Field(min_length=1, description="Region name shown in logs and the live view.")
    x_px: int = Field(ge=0, description="Left edge, pixels.")
    y_px: int = Field(ge=0, description="Top edge, pixels.")
    width_px: int = Field(gt=0, description="Width, pixels.")
    height_px: int = Field(gt=0, description="Height, pixels.")


class LineConfig(StrictModel):
    """Where and when the diverter acts. Give travel_delay_ms, or distance and belt speed."""

    travel_delay_ms: float | None = Field(
        None, gt=0, description="Fixed time from capture to the part reaching the diverter, ms."
    )
    camera_to_diverter_mm: float | None = Field(None, gt=0, description="Camera-to-diverter distance, mm.")
    belt_speed_mm_s: float | None = Field(None, gt=0, description="Belt speed, mm per second.")
    latency_budget_ms: float | None = Field(
        None,
        gt=0,
        description="A verdict later than capture + this is too late (fail-safe). Default: travel delay - 2 ms.",
    )
    pulse_width_ms: float = Field(10.0, gt=0, description="How long the reject output is asserted, ms.")
    failsafe_action: Literal["reject", "pass"] = Field(
        "reject", description="What an undecided part gets. 'pass' is unsafe and still counted."
    )
    tracking: Literal["time", "encoder"] = Field(
        "time",
        description=(
            "time: the reject fires travel delay after capture (constant belt speed); encoder: once the belt "
            "has moved camera_to_diverter_mm (needs [encoder]; belt_speed_mm_s is then the top speed)."
        ),
    )

    @model_validator(mode="after")
    def _one_delay(self) -> LineConfig:
        if self.tracking == "encoder" and self.camera_to_diverter_mm is None:
            raise ValueError("tracking 'encoder' needs camera_to_diverter_mm (and belt_speed_mm_s, the top speed)")
        by_distance = self.camera_to_diverter_mm is not None or self.belt_speed_mm_s is not None
        if self.travel_delay_ms is not None and by_distance:
            raise ValueError("give travel_delay_ms or camera_to_diverter_mm + belt_speed_mm_s, not both")
        if by_distance and (self.camera_to_diverter_mm is None or self.belt_speed_mm_s is None):
            raise ValueError("camera_to_diverter_mm and belt_speed_mm_s go together")
        if not by_distance and self.travel_delay_ms is None:
            raise ValueError("set travel_delay_ms, or camera_to_diverter_mm and belt_speed_mm_s")
        if self.latency_budget_ms is not None and self.latency_budget_ms > self.travel_delay_s * 1000.0:
            raise ValueError(
                f"latency_budget_ms ({self.latency_budget_ms}) exceeds the travel delay "
                f"({self.travel_delay_s * 1000.0:.1f} ms): the reject could not fire on time"
            )
        return self

    @property
    def travel_delay_s(self) -> float:
        """Capture-to-diverter time, seconds."""
        if self.travel_delay_ms is not None:
            return self.travel_delay_ms / 1000.0
        assert self.camera_to_diverter_mm is not None and self.belt_speed_mm_s is not None
        return self.camera_to_diverter_mm / self.belt_speed_mm_s

    @property
    def latency_budget_s(self) -> float:
        """Capture-to-verdict deadline, seconds."""
        if self.latency_budget_ms is not None:
            return self.latency_budget_ms / 1000.0
        return max(self.travel_delay_s - 0.002, self.travel_delay_s * 0.5)


class InspectionConfig(StrictModel):
    """What is inspected in each part's frame, and how much work may queue up."""

    regions: list[RegionConfig] = Field(
        default_factory=list, description="Regions of interest; empty means the whole frame."
    )
    inference_queue_parts: int = Field(
        8, ge=1, le=1024, description="Parts waiting for the classifier; a full queue fail-safes the part."
    )
    inference: Literal["process", "thread"] = Field(
        "process",
        description=(
            "Where the model runs: 'process' (its own process, which sends each verdict straight to the reject "
            "scheduler; needs actuation.mode 'process' and an ONNX model file) or 'thread' (in this process)."
        ),
    )
    inference_nice: int = Field(
        -10, ge=-20, le=19,
        description=(
            "Nice value of the inference process: below 0 it gets a core ahead of the inspection process's "
            "threads at saturation (needs root, CAP_SYS_NICE or LimitNICE; where refused it runs at 0 and says so)."
        ),
    )
    camera_timeout_ms: float = Field(
        2000.0, gt=0, description="No frame for this long is a camera FAULT (parts then fail-safe), ms."
    )
    event_queue_items: int = Field(
        256, ge=1, description="Per-consumer queue bound (log, web, MQTT); a full queue drops and counts."
    )


class AppConfig(StrictModel):
    """The whole appliance configuration."""

    source: SourceConfig = Field(default_factory=ReplaySourceConfig, description="The camera.")
    trigger: TriggerConfig = Field(default_factory=TriggerConfig, description="What makes a part.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The classifier.")
    inspection: InspectionConfig = Field(default_factory=InspectionConfig, description="Regions, queues.")
    line: LineConfig = Field(
        default_factory=lambda: LineConfig(travel_delay_ms=250.0), description="Diverter timing."
    )
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="Output lines.")
    actuation: ActuationConfig = Field(
        default_factory=ActuationConfig, description="The reject scheduler that drives the output lines."
    )
    web: WebConfig = Field(default_factory=WebConfig, description="Operator web view and JSON API.")
    defect_log: DefectLogConfig = Field(default_factory=DefectLogConfig, description="QA defect log.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT results publisher.")
    plant: PlantConfig = Field(default_factory=PlantConfig, description="Plant sync and model rollout.")
    settings: SettingsConfig = Field(default_factory=SettingsConfig, description="Settings changed at run time.")
    plc: PlcConfig = Field(default_factory=PlcConfig, description="PLC interfaces: Modbus TCP, OPC UA.")
    encoder: EncoderConfig | None = Field(None, description="Belt encoder, for line.tracking = 'encoder'.")

    @model_validator(mode="after")
    def _encoder_for_tracking(self) -> AppConfig:
        if self.line.tracking == "encoder" and self.encoder is None:
            raise ValueError("line.tracking 'encoder' needs an [encoder] section")
        return self

    @model_validator(mode="after")
    def _modbus_trigger_needs_server(self) -> AppConfig:
        if isinstance(self.trigger.input, ModbusTriggerConfig) and not self.plc.modbus.enabled:
            raise ValueError("trigger.input type 'modbus' needs [plc.modbus] enabled = true")
        return self
