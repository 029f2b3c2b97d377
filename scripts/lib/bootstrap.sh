# Sourced by scripts/stack and scripts/test: make sure this machine can run the
# native stack. Installs Debian packages when run as root (says what to install
# otherwise) and keeps the repo's virtualenv (.venv) in step with
# deploy/requirements.txt, the lock, with the Switchyard runtime
# (services/switchyard) installed into it in editable mode.
#
#   bootstrap_debian PKG...   install the Debian packages that are missing
#   bootstrap_venv [VENV LOCK]  create/update VENV (default .venv) from LOCK
#                               (default deploy/requirements.txt; the default
#                               venv also gets the runtime)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV="$REPO/.venv"
LOCK="$REPO/deploy/requirements.txt"

say() { echo "switchyard: $*" >&2; }

bootstrap_debian() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "install them with: sudo apt-get install ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]} (apt-get)"
  # Keep the packages' own services (nginx on :80, redis on :6379) from
  # starting: the stack runs its own instances.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created" = 1 ] && rm -f "$policy"
  return 0
}

bootstrap_venv() {
  local VENV=${1:-$VENV} LOCK=${2:-$LOCK}
  local python=${PYTHON:-python3} stamp="$VENV/.lock.sha256" want
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    say "Python 3.11 or newer is needed ($python is $("$python" -V 2>&1))"; exit 1; }
  if [ ! -x "$VENV/bin/python" ]; then
    # Debian's python3 needs python3-venv for `-m venv` (ensurepip).
    "$python" -c 'import ensurepip' 2>/dev/null || bootstrap_debian python3-venv
    say "creating $VENV"
    "$python" -m venv "$VENV" || { say "python3 -m venv failed: apt-get install python3-venv"; exit 1; }
  fi
  local runtime=()
  [ "$VENV" = "$REPO/.venv" ] && runtime=("$REPO/services/switchyard/pyproject.toml")
  want=$(cat "$LOCK" "${runtime[@]}" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python packages from ${LOCK#"$REPO"/} into ${VENV#"$REPO"/}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$LOCK"
    if [ ${#runtime[@]} -gt 0 ]; then
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$REPO/services/switchyard"
    fi
    echo "$want" > "$stamp"
  fi
}
