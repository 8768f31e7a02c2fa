#!/usr/bin/env bash
# The Debian packages vo2spike's tests and `vo2spike run` use beyond Python:
#   chromium                                   the demo's browser tests (no browser downloads)
#   gcc, make                                  the C engine's host build
#   gcc-arm-none-eabi, libnewlib-arm-none-eabi the Cortex-M4 build
#   qemu-system-arm                            runs that build on an emulated Cortex-M4
#   valgrind                                   instructions per window (callgrind)
# Installs what is missing when it can (as root, or with sudo that needs no password);
# otherwise names what is missing: the tests that need it are then skipped, unless
# VO2SPIKE_REQUIRE_TOOLS=1 (CI), which makes them fail.
set -euo pipefail
declare -A package=([chromium]=chromium [gcc]=gcc [make]=make
                    [arm-none-eabi-gcc]=gcc-arm-none-eabi [qemu-system-arm]=qemu-system-arm
                    [valgrind]=valgrind)
missing=()
for cmd in "${!package[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${package[$cmd]}")
done
if ! dpkg -s libnewlib-arm-none-eabi >/dev/null 2>&1; then
  missing+=(libnewlib-arm-none-eabi)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "note: Debian packages missing: ${missing[*]}; install them as root" \
       "(apt-get install ${missing[*]}). Tests that need them are skipped." >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
