#!/usr/bin/env bash
# The providers' own SDKs (twilio, vonage) for the conformance tests, in a virtualenv of their own outside the
# clone, keyed by tests/connectors/conformance/sdk-requirements.txt: they need pydantic 2 and a twilio newer
# than Rasa 3.6 allows, so they cannot share the project's environment. Prints the venv path; progress on stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$here/tests/connectors/conformance/sdk-requirements.txt"
find_python() {  # any Python the SDKs support (3.9 or later); the project's 3.10 first
  for candidate in ${PYTHON:-} python3.10 "$HOME"/.pyenv/versions/3.10.*/bin/python /usr/bin/python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
      command -v "$candidate"; return
    fi
  done
  echo "error: the providers' SDKs need Python 3.9 or later" >&2
  exit 3
}
py="$(find_python)"
hash="$(cat "$requirements" | sha256sum | cut -c1-16)"
root="${TONELINE_VENV_ROOT:-$HOME/.cache/toneline/venvs}"
venv="$root/sdk-$hash"
mkdir -p "$root"
exec 9>"$root/.sdk-lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "Creating the providers' SDK environment in $venv (about 100 MB, once)..." >&2
  rm -rf "$venv"
  "$py" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet -r "$requirements" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; } >&2
  "$venv/bin/python" -c "import twilio.request_validator, vonage_jwt, vonage_voice" >&2
  touch "$venv/.complete"
fi
echo "$venv"
