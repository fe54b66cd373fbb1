#!/usr/bin/env bash
# Runtimes for `make test`: R with rpy2, a JDK with py4j (issue 19), Ray Serve and Ray Data (issue 20).
#
#   bash tools/runtimes/setup.sh [VENV]        (VENV defaults to .venv)
#
# Idempotent: each step runs only when its result is missing.
#   R:    `R` on PATH, else (root with apt-get) Debian's r-base-core + r-cran-matrix; then rpy2 (3.5.x: the
#         3.6 line needs R >= 4.3, Debian bookworm has 4.2) into VENV when it does not import.
#   Java: `javac` on PATH, else (root with apt-get) Debian's default-jdk-headless; then py4j and h2o (the H2O
#         tests train with it, and drum takes h2o-genmodel from its h2o.jar) into VENV.
# Writes VENV/.runtimes (DRUM_RUNTIMES_STATE overrides the path), key=value lines read by the R and Java
# tests: `r=ready` or `r=skipped: <reason>`, `java=ready` or `java=skipped: <reason>`. Always exits 0, so
# `make test` goes on; the tests then skip with the reason. DRUM_RUNTIMES=off skips everything.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${1:-$ROOT/.venv}
PY=$VENV/bin/python
STATE=${DRUM_RUNTIMES_STATE:-$VENV/.runtimes}
LOG=$(dirname "$STATE")/.runtimes.log
RPY2_SPEC='rpy2>=3.5.8,<3.6'
PY4J_SPEC='py4j>=0.10.9'
# The tests train H2O models (MOJO, POJO) with the h2o package, whose h2o.jar also gives drum h2o-genmodel.
# 3.46.0.11 is the newest wheel; 3.46.0.12 is a 266 MB sdist whose client refuses MOJO/POJO export.
H2O_SPEC='h2o==3.46.0.11'
RAY_SPEC='ray[serve,data]>=2.40'

say() { echo "runtimes: $*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
    command -v apt-get >/dev/null 2>&1 && is_root || return 1
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends "$@" || { apt-get update -q && apt-get install -y -q --no-install-recommends "$@"; }; } >>"$LOG" 2>&1
}

mkdir -p "$(dirname "$STATE")"
: >"$LOG"
case "${DRUM_RUNTIMES:-on}" in
    off|0|no|skip)
        printf 'r=skipped: DRUM_RUNTIMES=%s\njava=skipped: DRUM_RUNTIMES=%s\nray=skipped: DRUM_RUNTIMES=%s\n' \
            "$DRUM_RUNTIMES" "$DRUM_RUNTIMES" "$DRUM_RUNTIMES" >"$STATE"
        say "skipped (DRUM_RUNTIMES=$DRUM_RUNTIMES)"
        exit 0 ;;
esac

r_state() {
    if ! command -v R >/dev/null 2>&1; then
        say "R: installing r-base-core and r-cran-matrix with apt-get"
        apt_install r-base-core r-cran-matrix || { echo "skipped: R is not installed and apt-get could not install r-base-core (not root, or no network); see $LOG"; return; }
    fi
    if ! Rscript -e 'suppressMessages(library(Matrix))' >>"$LOG" 2>&1; then
        apt_install r-cran-matrix || { echo "skipped: the R package Matrix is missing and apt-get could not install r-cran-matrix"; return; }
    fi
    if ! "$PY" -c 'import rpy2.robjects' >>"$LOG" 2>&1; then
        say "R: installing $RPY2_SPEC into $VENV"
        "$PY" -m pip install -q "$RPY2_SPEC" >>"$LOG" 2>&1 || { echo "skipped: pip could not install $RPY2_SPEC; see $LOG"; return; }
        "$PY" -c 'import rpy2.robjects' >>"$LOG" 2>&1 || { echo "skipped: rpy2 does not start R; see $LOG"; return; }
    fi
    echo ready
}

java_state() {
    if ! command -v javac >/dev/null 2>&1; then
        say "Java: installing default-jdk-headless with apt-get"
        apt_install default-jdk-headless || { echo "skipped: no JDK (javac) and apt-get could not install default-jdk-headless; see $LOG"; return; }
    fi
    if ! "$PY" -c 'import py4j' >>"$LOG" 2>&1; then
        say "Java: installing $PY4J_SPEC into $VENV"
        "$PY" -m pip install -q "$PY4J_SPEC" >>"$LOG" 2>&1 || { echo "skipped: pip could not install $PY4J_SPEC; see $LOG"; return; }
    fi
    if ! "$PY" -c 'import h2o' >>"$LOG" 2>&1; then
        say "Java: installing $H2O_SPEC into $VENV (about 270 MB)"
        "$PY" -m pip install -q "$H2O_SPEC" >>"$LOG" 2>&1 || say "Java: pip could not install $H2O_SPEC: the H2O tests will skip"
    fi
    echo ready
}

ray_state() {
    if ! "$PY" -c 'import ray, ray.serve, ray.data' >>"$LOG" 2>&1; then
        say "Ray: installing $RAY_SPEC into $VENV"
        "$PY" -m pip install -q "$RAY_SPEC" >>"$LOG" 2>&1 || { echo "skipped: pip could not install $RAY_SPEC; see $LOG"; return; }
    fi
    echo ready
}

R_STATE=$(r_state | tail -n 1)
JAVA_STATE=$(java_state | tail -n 1)
RAY_STATE=$(ray_state | tail -n 1)
printf 'r=%s\njava=%s\nray=%s\n' "$R_STATE" "$JAVA_STATE" "$RAY_STATE" >"$STATE"
say "R $R_STATE; Java $JAVA_STATE; Ray $RAY_STATE"
exit 0
