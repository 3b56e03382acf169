#!/usr/bin/env bash
# Install edge-inspect as a systemd service on Raspberry Pi OS Bookworm (64-bit).
#
# Idempotent: run it again after `git pull` to upgrade, or to repair; whatever is already in place is
# left alone, and a run with nothing to do changes nothing. Steps:
#   1. OS packages python3-picamera2 and python3-lgpio (plus venv/pip), via apt
#   2. the system user edge-inspect, in the gpio and video groups
#   3. /opt/edge-inspect/venv with --system-site-packages (sees the OS's picamera2 and lgpio),
#      and this checkout installed into it with the [pi] extra
#   4. /etc/edge-inspect/config.toml from an example (never overwritten), /var/lib/edge-inspect
#   5. the unit edge-inspect.service, enabled
#   6. the first web admin, when there is none (password from --admin-password-file, a prompt, or
#      generated and left in /etc/edge-inspect/initial-admin-password, mode 0600)
#   7. start (or restart after an upgrade), once a model is in place
#
# Usage: sudo deploy/install-pi.sh [options]
#   --config FILE               config template for a first install (default: deploy/examples/pi5-camera-module-3.toml)
#   --model FILE                install FILE as /var/lib/edge-inspect/models/default.onnx
#   --admin-user NAME           name of the first admin (default: admin)
#   --admin-password-file FILE  read the first admin's password from FILE (first line)
#   --no-admin                  do not create the first web admin (e.g. when building an image)
#   --no-start                  install and enable, but do not start or restart
#   --dry-run                   print what would change, change nothing
#   --root DIR                  stage files under DIR instead of / (image builds, tests): useradd/usermod
#                               get --prefix DIR, systemctl gets --root=DIR, nothing is started; apt,
#                               dpkg-query and the admin step (through the config's web.db_path) still
#                               act on the running system
#   --force                     skip the Raspberry Pi OS Bookworm 64-bit check
#   -h, --help
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

APP_USER=edge-inspect
OPT_DIR=/opt/edge-inspect
VENV=$OPT_DIR/venv
CONF_DIR=/etc/edge-inspect
DATA_DIR=/var/lib/edge-inspect
UNIT=edge-inspect.service
UNIT_DIR=/etc/systemd/system
OS_PACKAGES=(python3-venv python3-pip python3-picamera2 python3-lgpio)
PYTHON=${PYTHON:-/usr/bin/python3}

ROOT=""
DRY_RUN=0
START=1
ADMIN=1
FORCE=0
CONFIG_TEMPLATE=$SRC_DIR/deploy/examples/pi5-camera-module-3.toml
MODEL_FILE=""
ADMIN_USER="admin"
ADMIN_PASSWORD_FILE=""

CHANGED=0        # anything changed in this run
FILE_CHANGED=0   # set by ensure_file
NEEDS_RESTART=0  # code or unit changed: a running service must restart

log() { printf 'install-pi: %s\n' "$*"; }
warn() { printf 'install-pi: WARNING: %s\n' "$*" >&2; }
die() { printf 'install-pi: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# A change: say it, and run it unless this is a dry run. (Checked here, not by set -e, which bash
# ignores inside functions called from a condition.)
change() {
    local what=$1
    shift
    CHANGED=1
    if [ "$DRY_RUN" = 1 ]; then
        log "would: $what ($*)"
    else
        log "$what"
        "$@" || die "failed while $what: $*"
    fi
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --root) ROOT=${2%/}; shift 2 ;;
            --dry-run) DRY_RUN=1; shift ;;
            --no-start) START=0; shift ;;
            --no-admin) ADMIN=0; shift ;;
            --force) FORCE=1; shift ;;
            --config) CONFIG_TEMPLATE=$2; shift 2 ;;
            --model) MODEL_FILE=$2; shift 2 ;;
            --admin-user) ADMIN_USER=$2; shift 2 ;;
            --admin-password-file) ADMIN_PASSWORD_FILE=$2; shift 2 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
    done
    [ -f "$CONFIG_TEMPLATE" ] || die "config template $CONFIG_TEMPLATE does not exist"
    [ -z "$MODEL_FILE" ] || [ -f "$MODEL_FILE" ] || die "model $MODEL_FILE does not exist"
    [ -z "$ADMIN_PASSWORD_FILE" ] || [ -r "$ADMIN_PASSWORD_FILE" ] || die "cannot read $ADMIN_PASSWORD_FILE"
    if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ] && [ "$DRY_RUN" = 0 ]; then
        die "run as root (sudo $0)"
    fi
}

check_os() {
    if [ "$FORCE" = 1 ] || [ -n "$ROOT" ]; then
        return 0
    fi
    local codename="" arch
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")
    arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    if [ "$codename" != bookworm ] || { [ "$arch" != arm64 ] && [ "$arch" != aarch64 ]; }; then
        die "this installer is for Raspberry Pi OS Bookworm 64-bit (found ${codename:-unknown}/$arch); --force to try anyway"
    fi
}

# ------------------------------------------------------------------------------------------ 1. packages

is_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
    [ "$status" = "install ok installed" ]
}

install_packages() {
    local missing=() package
    for package in "${OS_PACKAGES[@]}"; do
        is_installed "$package" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    change "updating the package lists" apt-get update
    change "installing ${missing[*]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# ------------------------------------------------------------------------------------------ 2. user

prefix_args() { [ -z "$ROOT" ] || printf -- '--prefix\n%s\n' "$ROOT"; }

has_user() { grep -q "^$1:" "$ROOT/etc/passwd" 2>/dev/null; }
has_group() { grep -q "^$1:" "$ROOT/etc/group" 2>/dev/null; }
in_group() {
    awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 }
        END { exit !f }' "$ROOT/etc/group"
}
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$ROOT/etc/passwd"; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$ROOT/etc/group"; }

create_user() {
    local prefix group
    mapfile -t prefix < <(prefix_args)
    if ! has_user "$APP_USER"; then
        change "creating the system user $APP_USER" useradd "${prefix[@]}" --system --user-group \
            --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin \
            --comment "edge-inspect appliance" "$APP_USER"
    fi
    for group in gpio video; do
        if ! has_group "$group"; then
            warn "group $group does not exist (not Raspberry Pi OS?): $APP_USER cannot use the ${group} devices"
        elif ! in_group "$group" "$APP_USER"; then
            change "adding $APP_USER to the $group group" usermod "${prefix[@]}" --append --groups "$group" "$APP_USER"
        fi
    done
}

# ------------------------------------------------------------------------------------------ files

# ensure_dir PATH MODE OWNER GROUP: create it, or fix its mode and owner.
ensure_dir() {
    local path=$ROOT$1 mode=$2 owner group
    owner=$(uid_of "$3") group=$(gid_of "$4")
    if [ "$DRY_RUN" = 1 ] && [ -z "$owner" ]; then owner=0 group=0; fi  # user not created in a dry run
    if [ ! -d "$path" ]; then
        change "creating $1" install -d -m "$mode" -o "$owner" -g "$group" "$path"
        return 0
    fi
    [ "$(stat -c %a "$path")" = "${mode#0}" ] || change "setting the mode of $1 to $mode" chmod "$mode" "$path"
    [ "$(stat -c %u:%g "$path")" = "$owner:$group" ] || change "setting the owner of $1" chown "$owner:$group" "$path"
}

# ensure_file SOURCE DEST MODE OWNER GROUP [keep]: install SOURCE unless DEST is identical
# (with "keep": unless DEST exists at all: a file the integrator edits is never overwritten).
# Sets FILE_CHANGED to 1 when it installed the file.
ensure_file() {
    local source=$1 dest=$ROOT$2 mode=$3 owner group
    owner=$(uid_of "$4") group=$(gid_of "$5")
    if [ "$DRY_RUN" = 1 ] && [ -z "$owner" ]; then owner=0 group=0; fi
    FILE_CHANGED=0
    if [ -e "$dest" ] && { [ "${6:-}" = keep ] || cmp -s "$source" "$dest"; }; then
        return 0
    fi
    change "installing $2" install -m "$mode" -o "$owner" -g "$group" "$source" "$dest"
    FILE_CHANGED=1
}

make_dirs() {
    ensure_dir "$OPT_DIR" 0755 root root
    ensure_dir "$CONF_DIR" 0750 root "$APP_USER"
    ensure_dir "$DATA_DIR" 0750 "$APP_USER" "$APP_USER"
    ensure_dir "$DATA_DIR/models" 0750 "$APP_USER" "$APP_USER"
    ensure_dir "$DATA_DIR/web" 0750 "$APP_USER" "$APP_USER"
    ensure_dir "$UNIT_DIR" 0755 root root
    ensure_file "$CONFIG_TEMPLATE" "$CONF_DIR/config.toml" 0640 root "$APP_USER" keep
    if [ -n "$MODEL_FILE" ]; then
        ensure_file "$MODEL_FILE" "$DATA_DIR/models/default.onnx" 0640 "$APP_USER" "$APP_USER"
        [ "$FILE_CHANGED" = 0 ] || NEEDS_RESTART=1
    fi
}

# ------------------------------------------------------------------------------------------ 3. venv

source_fingerprint() {
    (cd "$SRC_DIR" && find pyproject.toml edge_inspect deploy/pi-constraints.txt -type f \
        ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
        sha256sum | cut -d' ' -f1
}

install_venv() {
    local stamp=$ROOT$OPT_DIR/installed-source.sha256 fingerprint
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        change "creating $VENV (with the OS's picamera2 and lgpio visible)" \
            "$PYTHON" -m venv --system-site-packages "$ROOT$VENV"
    fi
    fingerprint=$(source_fingerprint)
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$fingerprint" ]; then
        change "installing edge-inspect from $SRC_DIR into $VENV" \
            "$ROOT$VENV/bin/pip" install --quiet --upgrade --constraint "$SRC_DIR/deploy/pi-constraints.txt" \
            "${SRC_DIR}[pi]"
        change "recording the installed source" write_file "$stamp" "$fingerprint"
        NEEDS_RESTART=1
    fi
}

write_file() { printf '%s\n' "$2" > "$1"; }

# ------------------------------------------------------------------------------------------ 4. service

systemctl_root() { [ -z "$ROOT" ] || printf -- '--root=%s\n' "$ROOT"; }

install_unit() {
    local root_args
    mapfile -t root_args < <(systemctl_root)
    ensure_file "$SRC_DIR/deploy/$UNIT" "$UNIT_DIR/$UNIT" 0644 root root
    if [ "$FILE_CHANGED" = 1 ]; then
        NEEDS_RESTART=1
        [ -n "$ROOT" ] || change "reloading systemd" systemctl daemon-reload
    fi
    if ! systemctl "${root_args[@]}" is-enabled --quiet "$UNIT" 2>/dev/null; then
        change "enabling $UNIT at boot" systemctl "${root_args[@]}" enable "$UNIT"
    fi
}

# ------------------------------------------------------------------------------------------ 5. admin

as_app_user() {
    if [ -z "$ROOT" ] && [ "$(id -u)" = 0 ]; then
        runuser -u "$APP_USER" -- "$@"  # the users database belongs to the service user
    else
        "$@"
    fi
}

admin_password() {
    local first second
    if [ -n "$ADMIN_PASSWORD_FILE" ]; then
        head -n 1 "$ADMIN_PASSWORD_FILE"
    elif [ -t 0 ]; then
        read -rsp "Password for the web admin '$ADMIN_USER': " first && echo >&2
        read -rsp "Again: " second && echo >&2
        [ "$first" = "$second" ] || die "the two passwords differ"
        printf '%s\n' "$first"
    else
        local generated password_file=$ROOT$CONF_DIR/initial-admin-password
        generated=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
        (umask 077 && printf '%s\n' "$generated" > "$password_file")
        warn "generated a password for '$ADMIN_USER': read it in $CONF_DIR/initial-admin-password, then delete that file"
        printf '%s\n' "$generated"
    fi
}

ensure_admin() {
    local cli=$ROOT$VENV/bin/edge-inspect config=$ROOT$CONF_DIR/config.toml users
    [ "$ADMIN" = 1 ] || return 0
    if [ "$DRY_RUN" = 1 ] && [ ! -x "$cli" ]; then
        log "would: add the web admin '$ADMIN_USER' if none exists"
        return 0
    fi
    users=$(as_app_user "$cli" user --config "$config" list 2>/dev/null || true)
    if printf '%s\n' "$users" | grep -q "$(printf '\tadmin$')"; then
        return 0
    fi
    if [ "$DRY_RUN" = 1 ]; then
        log "would: add the web admin '$ADMIN_USER'"
        CHANGED=1
        return 0
    fi
    CHANGED=1
    log "adding the web admin '$ADMIN_USER'"
    admin_password | as_app_user "$cli" user --config "$config" add "$ADMIN_USER" --role admin --password-stdin
}

# ------------------------------------------------------------------------------------------ 6. start

validate_config() {
    local cli=$ROOT$VENV/bin/edge-inspect
    [ -x "$cli" ] || return 0
    "$cli" config validate "$ROOT$CONF_DIR/config.toml" ||
        die "$CONF_DIR/config.toml is not valid: fix it and run this again"
}

configured_model() {
    "$VENV/bin/python" - "$CONF_DIR/config.toml" <<'PY'
import sys
from pathlib import Path

from edge_inspect.config import load_config

print(load_config(Path(sys.argv[1])).model.path)
PY
}

start_service() {
    local model
    if [ -n "$ROOT" ] || [ "$START" = 0 ]; then
        return 0
    fi
    model=$(configured_model 2>/dev/null || true)
    if [ -z "$model" ] || [ ! -f "$model" ]; then
        warn "no model at ${model:-the configured path} yet: put one there (or run again with --model FILE), then: systemctl start $UNIT"
        return 0
    fi
    if ! systemctl is-active --quiet "$UNIT"; then
        change "starting $UNIT" systemctl start "$UNIT"
    elif [ "$NEEDS_RESTART" = 1 ]; then
        change "restarting $UNIT with the new version" systemctl restart "$UNIT"
    fi
}

main() {
    parse_args "$@"
    check_os
    install_packages
    create_user
    make_dirs
    install_venv
    validate_config
    install_unit
    ensure_admin
    start_service
    if [ "$CHANGED" = 0 ]; then
        log "nothing to change: edge-inspect is installed"
    elif [ "$DRY_RUN" = 1 ]; then
        log "dry run: nothing was changed"
    else
        log "done: systemctl status $UNIT; journalctl -u $UNIT -f; web view on port 8080"
    fi
}

main "$@"
