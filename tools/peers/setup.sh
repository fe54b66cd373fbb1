#!/usr/bin/env bash
# Idempotent: the peer servers' own virtual environments, beside drum's and never inside it, for the
# side-by-side benchmark (bench/) and the tests that drive drum's V2 routes with the peers' Python clients:
#   VENV/peers/mlserver  mlserver + mlserver-sklearn (+ uvloop<0.22: with 0.22 its inference workers die with
#                        "There is no current event loop", MLServer issue 2286)
#   VENV/peers/kserve    kserve (its sklearnserver is not on PyPI: bench/peers/ has a kserve.Model around joblib)
# Each ends with a `ready` or `skipped: <reason>` line (no network, an old Python) and never fails the caller.
# Writes VENV/.peers with mlserver=<python or empty> and kserve=<python or empty> (absolute paths).
set -u
VENV=${1:-.venv}
PY=${PYTHON:-python3}
# The peers unpickle the bench's model: the same scikit-learn as drum's venv, when it has one.
SKLEARN=scikit-learn
if v=$("$VENV/bin/python" -c 'import sklearn; print(sklearn.__version__)' 2>/dev/null); then SKLEARN="scikit-learn==$v"; fi
MLSERVER_PKGS=(mlserver==1.7.1 mlserver-sklearn==1.7.1 "uvloop<0.22" "$SKLEARN" joblib)
KSERVE_PKGS=(kserve==0.21.* "$SKLEARN" joblib)
mkdir -p "$VENV/peers"
VENV=$(cd "$VENV" && pwd)  # absolute: .peers is read from other directories

make_venv() {  # name, packages...: prints the venv's python on success
  local name=$1; shift
  local dir="$VENV/peers/$name" stamp="$VENV/peers/$name/.installed"
  local want="$*"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$dir/bin/python"; return 0
  fi
  rm -rf "$dir"
  "$PY" -m venv "$dir" >&2 || return 1
  "$dir/bin/python" -m pip install -q --upgrade pip >&2 || return 1
  "$dir/bin/python" -m pip install -q "$@" >&2 || return 1
  printf '%s' "$want" > "$stamp"
  echo "$dir/bin/python"
}

out=""
for name in mlserver kserve; do
  if [ "$name" = mlserver ]; then pkgs=("${MLSERVER_PKGS[@]}"); else pkgs=("${KSERVE_PKGS[@]}"); fi
  if py=$(make_venv "$name" "${pkgs[@]}"); then
    echo "peers: $name ready ($py)"
  else
    echo "peers: $name skipped: pip could not install ${pkgs[*]} (see above)"
    py=""
  fi
  out+="$name=$py"$'\n'
done
printf '%s' "$out" > "$VENV/.peers"
