# Sourced by run.sh and test.sh: create .venv with python3.11 if needed,
# install the pinned requirements file given as $1 when it changed since
# the last install, and put .venv/bin first on PATH.
req=$1
python=${PYTHON:-}
if [ -z "$python" ]; then
  if command -v python3.11 >/dev/null; then
    python=python3.11
  else
    python=python3  # must be 3.11 or newer; checked below
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: $python is older than 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
  }
  echo "setup: creating .venv with $python" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(basename "$req")
digest=$(cat "$req" requirements.txt | cksum | cut -d" " -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "setup: installing $req" >&2
  .venv/bin/python -m pip install --disable-pip-version-check -q -r "$req"
  echo "$digest" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export VIRTUAL_ENV="$PWD/.venv"
