# Sourced by scripts/*: creates .venv on first use and keeps it in step with pyproject.toml.
#
# CONVECTION_EXTRAS (set by the sourcing script) picks what is installed:
#   ""    (scripts/dev)  convection and its runtime dependencies only;
#   "dev" (scripts/test, the default) also numpy/psycopg and the test and lint tools (CI).
# The stamp file records what was installed; a venv with "dev" also satisfies "".
VENV="${CONVECTION_VENV:-$PWD/.venv}"
PY="${PYTHON:-python3}"
EXTRAS="${CONVECTION_EXTRAS-dev}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating the virtualenv $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp="$VENV/.convection-installed"
installed="$(cat "$stamp" 2>/dev/null || echo none)"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$EXTRAS" ] && [ "$installed" != "$EXTRAS" ]; }; then
    if [ -n "$EXTRAS" ]; then
        target=".[$EXTRAS]"
        echo "== installing convection with its [$EXTRAS] extras into $VENV (takes a few minutes the first time)"
    else
        target="."
        echo "== installing convection and its runtime dependencies into $VENV (about a minute the first time)"
    fi
    # pip's own lines (Collecting ..., Installing ...) are the progress; "already satisfied"
    # lines are noise.
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$target" 2>&1 \
        | { grep --line-buffered -v "^Requirement already satisfied" || true; }; then
        echo "== installing convection failed (see pip's messages above)" >&2
        return 1 2>/dev/null || exit 1
    fi
    # Keep the wider set when a narrower one is asked for ("dev" covers "").
    if [ -n "$EXTRAS" ] || [ "$installed" = none ]; then echo "$EXTRAS" > "$stamp"; else touch "$stamp"; fi
fi
export PATH="$VENV/bin:$PATH"
