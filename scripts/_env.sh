# Sourced by scripts/*: creates .venv on first use and keeps it in step with pyproject.toml.
VENV="${CONVECTION_VENV:-$PWD/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp="$VENV/.convection-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "== installing convection and its dev dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
