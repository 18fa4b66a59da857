# Sourced by run.sh and test.sh: create .venv with python3.11 if needed,
# install the pinned requirements file given as $1 when it changed since
# the last install, and put .venv/bin first on PATH.
req=$1
python=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $python" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(basename "$req")
digest=$(cat "$req" requirements.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "setup: installing $req" >&2
  .venv/bin/python -m pip install --disable-pip-version-check -q -r "$req"
  echo "$digest" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export VIRTUAL_ENV="$PWD/.venv"
