"""deploy/: the systemd unit (systemd-analyze verify), the Pi installer (shellcheck; run twice into a throwaway
root with logging stand-ins for apt-get, useradd, systemctl ...: the second run changes nothing), the example
configs (they validate)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edge_inspect.config import load_config
from edge_inspect.config.models import (
    GpiozeroOutputConfig,
    GpiozeroTriggerConfig,
    JetsonOutputConfig,
    JetsonTriggerConfig,
    OpenCVSourceConfig,
    Picamera2SourceConfig,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "edge-inspect.service"
INSTALLER = DEPLOY / "install-pi.sh"


# ---------------------------------------------------------------------------------------------------- unit


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_has_the_required_settings() -> None:
    s = unit_settings(UNIT.read_text(encoding="utf-8"))
    expected = {
        "Type": "notify", "Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/edge-inspect",
        "User": "edge-inspect", "SupplementaryGroups": "gpio video", "WantedBy": "multi-user.target",
        "ExecStart": "/opt/edge-inspect/venv/bin/edge-inspect run --config /etc/edge-inspect/config.toml "
                     "--status-every-s 60",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    watchdog_s = int(s["WatchdogSec"][0])
    assert 10 <= watchdog_s <= 120
    assert int(s["TimeoutStartSec"][0]) > watchdog_s  # model loading happens before READY=1
    assert "PrivateDevices" not in s and "ProtectClock" not in s and "DeviceAllow" not in s  # camera, GPIO chips


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is absent (apt-get install systemd; .ci/run installs it)")
    # verify checks that ExecStart's program exists: point it at a stand-in, change nothing else.
    program = tmp_path / "edge-inspect"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8")
    assert text.count("/opt/edge-inspect/venv/bin/edge-inspect ") == 1
    unit = tmp_path / "edge-inspect.service"
    unit.write_text(text.replace("/opt/edge-inspect/venv/bin/edge-inspect ", f"{program} "), encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr  # no warnings


# ---------------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "path", [*sorted(DEPLOY.glob("examples/*.toml")), DEPLOY / "jetson" / "config.toml"], ids=lambda p: p.name
)
def test_example_configs_validate(path: Path) -> None:
    config = load_config(path)
    assert config.model.path == Path("/var/lib/edge-inspect/models/default.onnx")
    assert config.trigger.mode == "triggered"
    assert config.line.latency_budget_s < config.line.travel_delay_s
    assert config.web.db_path.is_absolute()  # the service's working directory is not where users live


def test_pi5_example_uses_picamera2_lores_lgpio_and_a_photo_eye() -> None:
    config = load_config(DEPLOY / "examples" / "pi5-camera-module-3.toml")
    assert isinstance(config.source, Picamera2SourceConfig) and config.source.inference_stream == "lores"
    assert isinstance(config.trigger.input, GpiozeroTriggerConfig) and config.trigger.input.pin_factory == "lgpio"
    outputs = [config.outputs.reject, config.outputs.ready, config.outputs.alarm]
    assert all(isinstance(o, GpiozeroOutputConfig) and o.pin_factory == "lgpio" and not o.active_high for o in outputs)


def test_jetson_configs_use_a_gstreamer_csi_pipeline_and_jetson_gpio() -> None:
    example = load_config(DEPLOY / "examples" / "jetson-orin-nano.toml")
    image_default = load_config(DEPLOY / "jetson" / "config.toml")
    assert example == image_default  # the image's default is the documented example
    source = example.source
    assert isinstance(source, OpenCVSourceConfig) and source.api == "gstreamer" and isinstance(source.device, str)
    assert source.device.startswith("nvarguscamerasrc")
    assert source.device.split(" ! ")[-1].startswith("appsink")
    assert isinstance(example.trigger.input, JetsonTriggerConfig)
    assert all(isinstance(o, JetsonOutputConfig) for o in (example.outputs.reject, example.outputs.ready))


def test_dockerfile_builds_on_l4t_jetpack_6() -> None:
    text = (DEPLOY / "jetson" / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}" in text and "ARG L4T_TAG=r36." in text
    assert "COPY deploy/jetson/config.toml /etc/edge-inspect/config.toml" in text
    assert "HEALTHCHECK" in text and "/readyz" in text


# ---------------------------------------------------------------------------------------------------- installer


def test_shellcheck_accepts_the_scripts() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is absent (apt-get install shellcheck; .ci/run installs it)")
    scripts = sorted(str(p) for p in DEPLOY.glob("*.sh"))
    assert scripts
    done = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


SHIMS: dict[str, str] = {
    # Each logs its command line; the ones with state keep it under $SHIM_STATE or in the throwaway root.
    "apt-get": """
if [ "$1" = install ]; then
    for a in "$@"; do case $a in -*|install) ;; *) echo "$a" >> "$SHIM_STATE/packages" ;; esac; done
fi
""",
    "dpkg-query": """
pkg=${*: -1}
if grep -qx "$pkg" "$SHIM_STATE/packages" 2>/dev/null; then printf 'install ok installed'; exit 0; fi
exit 1
""",
    "useradd": """
prefix=""
while [ $# -gt 1 ]; do case $1 in --prefix) prefix=$2; shift 2 ;; *) shift ;; esac; done
echo "$1:x:990:990:edge-inspect appliance:/var/lib/edge-inspect:/usr/sbin/nologin" >> "$prefix/etc/passwd"
echo "$1:x:990:" >> "$prefix/etc/group"
""",
    "usermod": """
prefix="" group=""
while [ $# -gt 1 ]; do case $1 in --prefix) prefix=$2; shift 2 ;; --groups) group=$2; shift 2 ;; *) shift ;; esac; done
sed -i -E "s/^(${group}:[^:]*:[^:]*:)(.*)$/\\1\\2,$1/; s/^(${group}:[^:]*:[^:]*:),/\\1/" "$prefix/etc/group"
""",
    "systemctl": """
root="" args=()
for a in "$@"; do case $a in --root=*) root=${a#--root=} ;; --quiet) ;; *) args+=("$a") ;; esac; done
wants="$root/etc/systemd/system/multi-user.target.wants"
case ${args[0]} in
    is-enabled) [ -L "$wants/${args[1]}" ] ;;
    enable) mkdir -p "$wants" && ln -s "/etc/systemd/system/${args[1]}" "$wants/${args[1]}" ;;
    is-active) exit 3 ;;
esac
""",
    "python3": """
# python3 -m venv --system-site-packages DIR: a venv whose tools are stand-ins too
dir=${*: -1}
mkdir -p "$dir/bin"
for tool in python pip edge-inspect; do ln -s "$SHIM_DIR/venv-$tool" "$dir/bin/$tool"; done
""",
    "venv-python": "",
    "venv-pip": "",
    "venv-edge-inspect": """
# edge-inspect user --config FILE list|add NAME --role ROLE --password-stdin ; edge-inspect config validate FILE
if [ "$1" = user ]; then
    case $4 in
        list) cat "$SHIM_STATE/users" 2>/dev/null || true ;;
        add) read -r password; printf '%s\\t%s\\n' "$5" "$7" >> "$SHIM_STATE/users";
             printf '%s' "$password" > "$SHIM_STATE/password-of-$5" ;;
    esac
fi
""",
}


class Installer:
    """Runs deploy/install-pi.sh from a frozen copy of the checkout into a throwaway root, with stand-ins."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.src = tmp / "src"
        self.shims = tmp / "shims"
        self.state = tmp / "state"
        self.log = tmp / "commands.log"
        for folder in (self.root / "etc", self.shims, self.state):
            folder.mkdir(parents=True)
        (self.root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        (self.root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\ngpio:x:993:pi\n")
        # A copy: other work in the checkout must not look like an upgrade between the two runs.
        self.src.mkdir()
        shutil.copy2(ROOT / "pyproject.toml", self.src)
        shutil.copytree(ROOT / "edge_inspect", self.src / "edge_inspect",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(DEPLOY, self.src / "deploy")
        for name, body in SHIMS.items():
            shim = self.shims / name
            shim.write_text(f'#!/bin/bash\necho "{name} $*" >> "$SHIM_LOG"\n{body}', encoding="utf-8")
            shim.chmod(0o755)
        self.password_file = tmp / "admin-password"
        self.password_file.write_text("correct-horse-battery\n")

    def run(self, *extra: str) -> tuple[str, list[str]]:
        """Run once; the script's output and the commands it ran."""
        before = self.log.read_text().splitlines() if self.log.exists() else []
        env = {
            "PATH": f"{self.shims}:{os.environ['PATH']}",
            "PYTHON": str(self.shims / "python3"),
            "SHIM_LOG": str(self.log), "SHIM_STATE": str(self.state), "SHIM_DIR": str(self.shims),
            "LC_ALL": "C",
        }
        done = subprocess.run(
            ["bash", str(self.src / "deploy" / "install-pi.sh"), "--root", str(self.root),
             "--admin-password-file", str(self.password_file), *extra],
            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        after = self.log.read_text().splitlines() if self.log.exists() else []
        return done.stdout + done.stderr, after[len(before):]


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under root with its type, mode, owner, times and content."""
    tree: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content: Any = None
        if stat.S_ISLNK(info.st_mode):
            content = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        tree[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, content)
    return tree


MUTATING = ("apt-get", "useradd", "usermod", "python3", "venv-pip")  # the logged commands that change things


@pytest.fixture
def installer(tmp_path: Path) -> Installer:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the installer sets file owners: run as root (CI does)")
    return Installer(tmp_path)


def test_install_into_a_throwaway_root_then_a_second_run_changes_nothing(installer: Installer) -> None:
    output, commands = installer.run()
    root = installer.root
    # What the first run did.
    assert commands.count("apt-get update") == 1
    install = next(c for c in commands if c.startswith("apt-get install"))
    assert install.split()[-4:] == ["python3-venv", "python3-pip", "python3-picamera2", "python3-lgpio"]
    assert any(c.startswith("useradd --prefix") and c.endswith(" edge-inspect") and "--system" in c for c in commands)
    groups = {line.split(":")[0]: line.split(":")[3] for line in (root / "etc" / "group").read_text().splitlines()}
    assert groups["gpio"] == "pi,edge-inspect" and groups["video"] == "edge-inspect"
    venv = f"{root}/opt/edge-inspect/venv"
    assert f"python3 -m venv --system-site-packages {venv}" in commands
    assert any(c.startswith("venv-pip install") and c.endswith("[pi]") and "pi-constraints.txt" in c for c in commands)
    assert f"systemctl --root={root} enable edge-inspect.service" in commands
    assert f"venv-edge-inspect user --config {root}/etc/edge-inspect/config.toml add admin --role admin " \
           "--password-stdin" in commands
    assert (installer.state / "password-of-admin").read_text() == "correct-horse-battery"
    assert (root / "etc/systemd/system/edge-inspect.service").read_bytes() == UNIT.read_bytes()
    assert (root / "etc/systemd/system/multi-user.target.wants/edge-inspect.service").is_symlink()
    config = root / "etc/edge-inspect/config.toml"
    assert config.read_bytes() == (DEPLOY / "examples" / "pi5-camera-module-3.toml").read_bytes()
    modes = {p: stat.S_IMODE((root / p).stat().st_mode) for p in
             ("etc/edge-inspect", "etc/edge-inspect/config.toml", "var/lib/edge-inspect", "var/lib/edge-inspect/web")}
    assert modes == {"etc/edge-inspect": 0o750, "etc/edge-inspect/config.toml": 0o640,
                     "var/lib/edge-inspect": 0o750, "var/lib/edge-inspect/web": 0o750}
    assert (root / "var/lib/edge-inspect").stat().st_uid == 990
    assert (root / "etc/edge-inspect/config.toml").stat().st_gid == 990 and config.stat().st_uid == 0
    assert not (root / "etc/edge-inspect/initial-admin-password").exists()  # the password came from a file

    tree = snapshot(root)
    output, commands = installer.run()
    assert snapshot(root) == tree  # nothing created, rewritten, re-owned or re-moded
    assert [c for c in commands if c.split()[0] in MUTATING] == []
    assert not any(" enable " in c or " add " in c for c in commands), commands
    assert "nothing to change" in output


def test_integrator_edits_survive_and_an_upgrade_reinstalls_only_the_code(installer: Installer) -> None:
    installer.run()
    config = installer.root / "etc/edge-inspect/config.toml"
    config.write_text(config.read_text().replace("pin = 17", "pin = 5"))
    (installer.src / "edge_inspect" / "__init__.py").write_text(
        (installer.src / "edge_inspect" / "__init__.py").read_text() + "\n# upgraded\n"
    )
    output, commands = installer.run()
    assert "pin = 5" in config.read_text()  # never overwritten
    assert [c.split()[0] for c in commands if c.split()[0] in MUTATING] == ["venv-pip"]
    assert "nothing to change" not in output


def test_dry_run_changes_nothing(installer: Installer) -> None:
    tree = snapshot(installer.root)
    output, commands = installer.run("--dry-run")
    assert snapshot(installer.root) == tree
    assert [c for c in commands if c.split()[0] in MUTATING or " enable " in c] == []
    assert "would: creating the system user edge-inspect" in output
    assert "dry run: nothing was changed" in output


def test_installer_help_and_bad_options() -> None:
    done = subprocess.run(["bash", str(INSTALLER), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "--root DIR" in done.stdout and "Raspberry Pi OS Bookworm" in done.stdout
    done = subprocess.run(["bash", str(INSTALLER), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "unknown option --frobnicate" in done.stderr


def test_unit_and_scripts_are_where_the_docs_say() -> None:
    docs = (ROOT / "docs" / "INTEGRATION.md").read_text(encoding="utf-8")
    for name in ("deploy/install-pi.sh", "deploy/edge-inspect.service", "deploy/jetson/Dockerfile",
                 "deploy/examples/pi5-camera-module-3.toml", "deploy/examples/jetson-orin-nano.toml"):
        assert name in docs and (ROOT / name).exists(), name


def test_deploy_configs_keep_all_data_under_var_lib() -> None:
    """The unit's ProtectSystem=strict allows writes only to /var/lib/edge-inspect: no relative data path."""
    from pydantic import BaseModel

    def paths(model: BaseModel) -> list[Path]:
        found: list[Path] = []
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, Path):
                found.append(value)
            elif isinstance(value, BaseModel):
                found.extend(paths(value))
        return found

    for config_file in [*sorted((DEPLOY / "examples").glob("*.toml")), DEPLOY / "jetson" / "config.toml"]:
        config = load_config(config_file)
        writable = [config.defect_log.data_dir, config.web.db_path, config.web.secret_key_path, config.settings.path]
        assert all(p.is_relative_to("/var/lib/edge-inspect") for p in writable), config_file
        assert all(p.is_relative_to("/") and not p.is_relative_to(DEPLOY) for p in paths(config)), config_file
