#!/usr/bin/env bash
# `make board-check`: prove that the board side installs and runs on a board's architecture.
#
# Builds a Debian bookworm arm64 root (the base of Raspberry Pi OS) with debootstrap, runs it under
# qemu-user-static through binfmt_misc, installs the board extra (`pip install ".[agent]"`: devices +
# onnxruntime, no torch) there from PyPI, and runs the device-side tests, `testbed doctor` on an emulated
# Pi 4, and an emulated agent that loads and measures an ONNX model — all as aarch64 code. Prints one
# summary line (`board-check: PASS …` or `board-check: FAIL …`); the full log is in $BOARD_CHECK_DIR.
#
# What it proves: the wheels exist for aarch64 (numpy, pydantic-core, onnxruntime, psutil, …), the board
# side imports and works without torch on arm64 Python 3.11, and the agent serves and measures there.
# What it cannot prove: anything about timing or power (qemu translates instructions; latencies are 5–50x
# slower and unrelated to a Cortex-A72), the real kernel's cpufreq driver, or real meters over Bluetooth.
# qemu-user passes the host's /proc through, so a Pi 4's /proc/cpuinfo is bind-mounted over it.
#
# Needs root (debootstrap, chroot, mount), apt and network access to a Debian mirror and to PyPI.
# Slow: about 15–40 minutes the first time (the root is cached in $BOARD_CHECK_DIR for later runs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${BOARD_CHECK_DIR:-/var/tmp/rt3-board-check}"
ROOTFS="$WORK/bookworm-arm64"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_PY="${HOST_PYTHON:-$REPO/.venv/bin/python}"
LOG="$WORK/board-check.log"
SUITE="bookworm"

# Device-side tests that do not need the controller side (torch, Ray): the board runs them.
BOARD_TESTS=(tests/devices tests/meters tests/cli/test_doctor.py)
# ... minus those that import controller registries (strategies, search algorithms pull torch).
BOARD_IGNORE=(--ignore=tests/devices/test_registry.py
  # timing, which emulation cannot keep: the fake Arduino's 100 Hz stream and its mean power over a window
  "--deselect=tests/meters/test_cli.py::test_read_an_arduino_stream"
  # timing: whether a 0.5 s hang-up is seen as a stall or as an error depends on how fast qemu runs
  "--deselect=tests/meters/test_um_meter.py::test_disconnect_during_a_window_marks_it_incomplete_and_the_sampler_reconnects"
  # builds its ONNX model with the onnx package, which only the controller side installs
  "--deselect=tests/meters/test_empty_meter.py::test_an_agent_without_a_meter_measures_and_reports_no_energy")

fail() { echo "board-check: FAIL $* (log: $LOG)"; exit 1; }
step() { echo "== $*" >>"$LOG"; }

[ "$(id -u)" = 0 ] || { echo "error: board-check needs root (debootstrap, chroot, mount); run it with sudo" >&2; exit 2; }
mkdir -p "$WORK"
: >"$LOG"

step "host packages: debootstrap, qemu-user-static, binfmt-support (Debian's own)"
if ! command -v debootstrap >/dev/null || [ ! -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] \
    && ! command -v qemu-aarch64-static >/dev/null; then
  (apt-get update -q && apt-get install -y -q debootstrap qemu-user-static binfmt-support) >>"$LOG" 2>&1 \
    || fail "apt-get install debootstrap qemu-user-static failed"
fi

step "binfmt_misc mounted and the qemu-aarch64 handler registered"
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc >>"$LOG" 2>&1 || fail "cannot mount binfmt_misc"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 >>"$LOG" 2>&1 \
    || cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register 2>>"$LOG" \
    || fail "cannot register the qemu-aarch64 binfmt handler"
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || fail "the qemu-aarch64 binfmt handler is disabled"

step "Debian $SUITE arm64 root in $ROOTFS"
if [ ! -f "$ROOTFS/.board-check-complete" ]; then
  rm -rf "$ROOTFS"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >>"$LOG" 2>&1 || fail "debootstrap of $SUITE arm64 failed"
  touch "$ROOTFS/.board-check-complete"
fi
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# The host's extra CAs (a TLS-inspecting proxy, a company CA) are trusted inside the root too.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" /usr/sbin/update-ca-certificates >>"$LOG" 2>&1 || fail "update-ca-certificates in the root failed"
fi

MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc sys dev dev/pts; do
  mkdir -p "$ROOTFS/$m"
  case $m in
    proc) mount -t proc proc "$ROOTFS/proc" ;;
    sys) mount -t sysfs sysfs "$ROOTFS/sys" ;;
    dev) mount --bind /dev "$ROOTFS/dev" ;;
    dev/pts) mount --bind /dev/pts "$ROOTFS/dev/pts" ;;
  esac
  MOUNTS+=("$ROOTFS/$m")
done
# qemu-user shows the host's (x86) /proc/cpuinfo, which ARM code that probes the CPU (onnxruntime's
# cpuinfo) cannot parse and crashes on: show it what a Raspberry Pi 4 (4x Cortex-A72) reports instead.
CPUINFO="$WORK/cpuinfo-rpi4"
for n in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n' "$n"
  printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done >"$CPUINFO"
printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n' >>"$CPUINFO"
mount --bind "$CPUINFO" "$ROOTFS/proc/cpuinfo"
MOUNTS+=("$ROOTFS/proc/cpuinfo")
# Tools (the fake vcgencmd/nvpmodel are Python scripts) start many times slower under qemu: stretch timeouts.
in_root() {
  chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/opt/venv/bin:/usr/bin:/bin LANG=C.UTF-8 \
    TESTBED_TOOL_TIMEOUT_SCALE=30 "$@"
}

ARCH="$(in_root uname -m)"
[ "$ARCH" = aarch64 ] || fail "the root runs as $ARCH, not aarch64"

step "the project's tracked files copied to /opt/rt3-testbed"
rm -rf "$ROOTFS/opt/rt3-testbed"
mkdir -p "$ROOTFS/opt/rt3-testbed"
(cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
  | tar --null -T - -cf -) | tar -xf - -C "$ROOTFS/opt/rt3-testbed"

step "pip install the board extra (.[agent]) and the test runner in a venv, under emulation"
[ -x "$ROOTFS/opt/venv/bin/python" ] || in_root python3 -m venv /opt/venv >>"$LOG" 2>&1 || fail "venv failed"
[ -f "$ROOTFS/opt/venv/.pip-upgraded" ] || { in_root /opt/venv/bin/python -m pip install -q --upgrade pip >>"$LOG" 2>&1 && touch "$ROOTFS/opt/venv/.pip-upgraded"; } || fail "pip upgrade failed"
in_root /opt/venv/bin/python -m pip install -q "/opt/rt3-testbed[agent]" pytest pytest-timeout hypothesis \
  >>"$LOG" 2>&1 || fail "pip install .[agent] failed on arm64"
in_root /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
  || fail "the board extra pulled torch"
ORT="$(in_root /opt/venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')" || fail "onnxruntime import"
PYV="$(in_root /opt/venv/bin/python -c 'import platform; print(platform.python_version())')"

step "device-side tests under emulation"
set +e
in_root sh -c "cd /opt/rt3-testbed && /opt/venv/bin/python -m pytest -q -p no:cacheprovider -m 'not slow' \
  --timeout 1200 ${BOARD_IGNORE[*]} ${BOARD_TESTS[*]}" >"$WORK/pytest.txt" 2>&1
TEST_RC=$?
set -e
cat "$WORK/pytest.txt" >>"$LOG"
TESTS="$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$WORK/pytest.txt" | tail -1 | tr -d '=' | xargs)"
[ "$TEST_RC" = 0 ] || fail "device tests on arm64: ${TESTS:-pytest exit $TEST_RC}"

step "an emulated Pi 4: doctor, then an agent that loads and measures an ONNX model"
"$HOST_PY" - "$ROOTFS/opt/mlp.onnx" >>"$LOG" 2>&1 <<'EOF' || fail "cannot build the test ONNX model on the host"
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "mlp",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])], [numpy_helper.from_array(w, "W")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
onnx.save(m, sys.argv[1])
EOF
AGENT_SCRIPT='
set -e
export TESTBED_STATE_DIR=/tmp/bc-state
rm -rf /tmp/bc-pi4 /tmp/bc-state /tmp/bc-token
testbed board emulate rpi4 --root /tmp/bc-pi4 >/dev/null
testbed doctor --sysfs-root /tmp/bc-pi4 --meter model://rpi4 --agent-port 0 >/tmp/bc-doctor.txt
testbed agent serve --emulate rpi4 --sysfs-root /tmp/bc-pi4 --port 18765 --token-file /tmp/bc-token >/tmp/bc-agent.txt 2>&1 &
pid=$!
for i in $(seq 1 240); do grep -q listening /tmp/bc-agent.txt && break; sleep 0.5; done
export TESTBED_AGENT_TOKEN=$(cat /tmp/bc-token)
testbed agent info http://127.0.0.1:18765 >/dev/null
testbed agent measure http://127.0.0.1:18765 --model /opt/mlp.onnx --upload --inferences 20 --level f600 --json \
  | python3 -c "import json,sys; r=json.load(sys.stdin); print(r[\"latency\"][\"p50_ms\"])" >/tmp/bc-p50.txt
kill -TERM $pid; wait $pid || true
'
in_root sh -c "$AGENT_SCRIPT" >>"$LOG" 2>&1 || fail "emulated agent on arm64 (see $ROOTFS/tmp/bc-agent.txt)"
cat "$ROOTFS/tmp/bc-doctor.txt" >>"$LOG"
P50="$(cat "$ROOTFS/tmp/bc-p50.txt")"

echo "board-check: PASS debian $SUITE arm64 ($ARCH, python $PYV under qemu-user-static): pip install .[agent]" \
  "ok without torch (onnxruntime $ORT); device tests: $TESTS; doctor PASS on an emulated rpi4;" \
  "agent served and measured an ONNX model (p50 $P50 ms under emulation, not a timing result)"
