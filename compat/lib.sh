# Shared by compat/install.sh and compat/pyspark/install.sh (sourced, not run).
# The caller sets LOG_TAG first; this defines log/die, an ERR trap naming the failed
# line, apt_install (apt-get update once per run, sudo when not root) and ensure_venv.
# shellcheck shell=bash

log() { echo "[$LOG_TAG] $*"; }
die() { echo "[$LOG_TAG] ERROR: $*" >&2; exit 1; }
trap 'echo "[$LOG_TAG] FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}

# ensure_venv VENV REQUIREMENTS [NOTE]: a venv at VENV with the pinned REQUIREMENTS,
# skipped when the venv's marker holds the requirements file's sha256.
ensure_venv() {
  local venv="$1" req="$2" note="${3:-}" hash
  hash="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$hash" ]; then
    log "venv up to date: $venv"
    return
  fi
  if [ ! -x "$venv/bin/python" ]; then
    log "creating venv $venv"
    if ! python3 -m venv "$venv"; then
      rm -rf "$venv"          # Debian's python3 ships venv/ensurepip separately
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  log "pip install -r $req $note"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$hash" > "$venv/.requirements.sha256"
}
