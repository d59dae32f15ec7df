#!/usr/bin/env bash
# Idempotent set-up of everything gridwatch needs on a Debian machine:
#   system packages (Mosquitto, VictoriaMetrics, PostgreSQL client, Chromium, GStreamer RTSP)
#   and a virtual environment in .venv with gridwatch and its dev tools installed.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  mosquitto mosquitto-clients          # device/uplink broker for tests and the demo
  victoria-metrics                     # InfluxDB v2 line-protocol server for time-series tests
  postgresql-client                    # psql, for the PostgreSQL store tests
  chromium fonts-noto-cjk              # headless console tests (Debian's browser, never a download)
  python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-rtsp gstreamer1.0-tools
)

SUDO_CMD=""
[[ $(id -u) -ne 0 ]] && SUDO_CMD="sudo"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO_CMD apt-get update -qq
  $SUDO_CMD apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The store tests need a PostgreSQL server; use the machine's if it answers, else install one.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
    echo "setup: installing PostgreSQL"
    $SUDO_CMD apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  echo "setup: starting PostgreSQL"
  $SUDO_CMD pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last successful install.
stamp=.venv/.gridwatch-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: installing gridwatch and its dev dependencies into .venv"
  # pip.conf on some machines names local mirrors that may be absent; their warnings are noise.
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import gridwatch, cv2, aiomqtt, fastapi, playwright" \
    || { echo "setup: the Python install failed (see pip's output above)" >&2; exit 1; }
  echo "$want" >"$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), $(mosquitto -h 2>/dev/null | head -1 || true))"
