#!/usr/bin/env bash
# Container setup for `make test` (issue 17): a working engine and the drum drop-in base image.
#
#   bash tools/containers/setup.sh
#
# Idempotent: every step is skipped when its result already exists, and the image build relies on the
# engine's layer cache (a rebuild with nothing changed takes about a second). Steps:
#   1. engine: `podman info` works -> podman; else `docker info` works -> docker; else, as root with
#      apt-get, install podman + runc + catatonit + debootstrap and write /etc/containers/containers.conf
#      (runc, ulimits below the host's hard limits); else skip.
#   2. base image (podman): localhost/drum-base:bookworm from debootstrap (Debian bookworm + python3,
#      python3-venv, ca-certificates; no registry needed). docker: the registry image docker.io/library/python:3.11-slim-bookworm.
#   3. localhost/drum-dropin-base:latest from docker/dropin_env_base/Dockerfile, built from a temporary
#      context: Dockerfile, certs/ (the host's /usr/local/share/ca-certificates, copied fresh) and
#      drum-src/ (pyproject.toml, README.md, src/ as in the working tree, uncommitted changes included).
#
# It prints one line per step and ends with `containers: ready (engine ..., images ...)` or
# `containers: skipped: <reason>`, and exits 0 in both cases so `make test` goes on; the container tests
# read the outcome from .venv/.containers (DRUM_CONTAINERS_STATE overrides the path), key=value lines:
#   ready:    engine=podman|docker, base_image=<image>, image=localhost/drum-dropin-base:latest
#   skipped:  skipped=<reason>          (one line, nothing else)
# The build output goes to .venv/.containers.log.
#
# Environment: DRUM_CONTAINERS=off (or 0/no/skip) skips everything; DRUM_CONTAINER_ENGINE=podman|docker
# considers only that engine (the name drum --docker reads too); DRUM_BASE_IMAGE=<image> builds on that image
# (Debian-based, python3 >= 3.10 with venv, ca-certificates) instead of the debootstrap/registry one.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${DRUM_CONTAINERS_STATE:-$ROOT/.venv/.containers}
LOG=$(dirname "$STATE")/.containers.log
DOCKERFILE_DIR=$ROOT/docker/dropin_env_base
DEBOOTSTRAP_IMAGE=localhost/drum-base:bookworm
REGISTRY_IMAGE=docker.io/library/python:3.11-slim-bookworm
DROPIN_IMAGE=localhost/drum-dropin-base:latest
SUITE=bookworm
APT_PACKAGES=(podman runc catatonit debootstrap)

BASE_FAIL=""
START=$(date +%s.%N)
STEP_START=$START
TMPDIRS=()

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f s", b - a }'; }
say() { echo "containers: $*"; }
# One line per finished step, with its own duration.
step() { local t; t=$(now); say "$* ($(secs "$STEP_START" "$t"))"; STEP_START=$t; }

write_state() {
    mkdir -p "$(dirname "$STATE")"
    printf '%s\n' "$@" >"$STATE.tmp.$$"
    mv -f "$STATE.tmp.$$" "$STATE"
}

skip() {
    local reason
    reason=$(printf '%s' "$*" | tr '\n' ' ')
    write_state "skipped=$reason"
    say "skipped: $reason"
    exit 0
}

# Temporary directories are always removed, also on failure or Ctrl-C. A debootstrap rootfs may still
# have /proc etc. mounted when interrupted: unmount those first and never cross into another filesystem.
cleanup() {
    local dir mnt
    for dir in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do
        [ -d "$dir" ] || continue
        if [ -r /proc/mounts ]; then
            awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
                umount -l "$mnt" 2>/dev/null || true
            done
        fi
        rm -rf --one-file-system "$dir" 2>/dev/null || rm -rf "$dir" || true
    done
}
# An unexpected failure (a bug here) must not stop `make test` either: it is reported as a skip.
# An interrupt (Ctrl-C, SIGTERM) keeps its status.
on_exit() {
    local rc=$?
    cleanup
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ]; then
        write_state "skipped=tools/containers/setup.sh failed (rc=$rc); see $LOG"
        say "skipped: tools/containers/setup.sh failed (rc=$rc); see $LOG"
        exit 0
    fi
}
trap on_exit EXIT

# Sets TMPDIR_MADE (not echoed: a $(...) subshell would lose the TMPDIRS entry and leak the directory).
mktempdir() { TMPDIR_MADE=$(mktemp -d "${TMPDIR:-/tmp}/drum-$1.XXXXXX"); TMPDIRS+=("$TMPDIR_MADE"); }

# Keep output short: show the tail of the log when something fails.
run_logged() {
    local rc
    echo "+ $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 && return 0
    rc=$?
    echo "containers: command failed (rc=$rc): $*" >&2
    tail -n 25 "$LOG" | sed 's/^/  | /' >&2
    return "$rc"
}

with_timeout() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; }

engine_works() { command -v "$1" >/dev/null 2>&1 && with_timeout 60 "$1" info >/dev/null 2>&1; }

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    run_logged apt-get install -y -q "$@" || { run_logged apt-get update -q && run_logged apt-get install -y -q "$@"; }
}

# /etc/containers/containers.conf for the podman we installed: runc (crun 1.8 refuses cgroup v1/hybrid
# hosts), and default ulimits at or below the host's hard limits (podman's rootful default nofile=1048576
# makes runc fail with "error setting rlimit type 7: operation not permitted" where the hard limit is lower).
containers_conf() {
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] && nofile=1048576
    [ "$nproc" = unlimited ] && nproc=32768
    [ "$nofile" -gt 1048576 ] && nofile=1048576
    [ "$nproc" -gt 32768 ] && nproc=32768
    cat <<EOF
# Written by drum's tools/containers/setup.sh (rootful podman, runc, cgroupfs; no systemd needed).
[containers]
# At or below the host's hard limits (ulimit -Hn / -Hu), or runc cannot start any container.
default_ulimits = [
  "nofile=$nofile:$nofile",
  "nproc=$nproc:$nproc",
]

[engine]
# crun 1.8 refuses cgroup v1/hybrid hosts ("cgroups in hybrid mode not supported"); runc works everywhere.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

write_containers_conf() {
    local conf=/etc/containers/containers.conf want
    want=$(containers_conf)
    if [ -f "$conf" ] && [ "$(cat "$conf")" = "$want" ]; then
        step "$conf up to date"
        return
    fi
    mkdir -p /etc/containers
    [ -f "$conf" ] && cp -p "$conf" "$conf.drum-backup"
    printf '%s\n' "$want" >"$conf"
    step "wrote $conf$([ -f "$conf.drum-backup" ] && echo " (previous one kept as $conf.drum-backup)")"
}

# The Debian mirror apt uses (deb822 .sources or sources.list), else deb.debian.org.
debian_mirror() {
    local uri=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' /etc/apt/sources.list.d/*.sources \
            | grep -E '/debian/?$' | head -n 1 || true)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp):/) { print $i; break } }' \
            /etc/apt/sources.list | grep -E '/debian/?$' | head -n 1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# localhost/drum-base:bookworm without a registry: debootstrap minbase + python3, python3-venv (pip and
# setuptools wheels for `python3 -m venv`), ca-certificates; apt caches and indexes dropped; podman import.
debootstrap_base() {
    local mirror rootfs
    is_root || { BASE_FAIL="debootstrap needs root"; return 1; }
    if ! command -v debootstrap >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            apt_install debootstrap || { BASE_FAIL="apt-get install debootstrap failed"; return 1; }
        else
            BASE_FAIL="debootstrap is not installed (and no apt-get)"
            return 1
        fi
    fi
    mirror=$(debian_mirror)
    mktempdir rootfs
    rootfs=$TMPDIR_MADE
    say "debootstrap $SUITE from $mirror (about a minute)"
    BASE_FAIL="debootstrap $SUITE from $mirror failed"
    run_logged debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$rootfs" "$mirror" || return 1
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*_Packages \
        "$rootfs"/var/lib/apt/lists/*_InRelease
    tar -C "$rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$DEBOOTSTRAP_IMAGE" >>"$LOG" 2>&1 \
        || { BASE_FAIL="podman import of the debootstrap rootfs failed"; return 1; }
    cleanup
    TMPDIRS=()
}

# ---------------------------------------------------------------------------------------------------------
case "${DRUM_CONTAINERS:-}" in
    off | 0 | no | false | skip) skip "DRUM_CONTAINERS=${DRUM_CONTAINERS} (container setup turned off)" ;;
esac
mkdir -p "$(dirname "$STATE")"
: >"$LOG"

# Two `make test` runs at once would build the same tags: take turns.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$(dirname "$STATE")/.containers.lock"
    flock 9
fi

# 1. engine --------------------------------------------------------------------------------------------------
ENGINE=""
want=${DRUM_CONTAINER_ENGINE:-}
case "$want" in "" | podman | docker) ;; *) skip "DRUM_CONTAINER_ENGINE=$want is neither podman nor docker" ;; esac
if [ "$want" != docker ] && engine_works podman; then
    ENGINE=podman
elif [ "$want" != podman ] && engine_works docker; then
    ENGINE=docker
elif [ "$want" != docker ] && is_root && command -v apt-get >/dev/null 2>&1; then
    say "no working podman or docker: installing ${APT_PACKAGES[*]} with apt-get"
    apt_install "${APT_PACKAGES[@]}" || skip "apt-get install ${APT_PACKAGES[*]} failed (no network or no Debian repository?); see $LOG"
    step "installed $(podman --version 2>/dev/null || echo podman)"
    write_containers_conf
    engine_works podman || skip "podman was installed but \`podman info\` fails; see \`podman info\`"
    ENGINE=podman
else
    why="no working container engine:"
    [ "$want" != docker ] && why="$why $(command -v podman >/dev/null 2>&1 && echo '`podman info` fails' || echo 'no podman');"
    [ "$want" != podman ] && why="$why $(command -v docker >/dev/null 2>&1 && echo '`docker info` fails (no daemon?)' || echo 'no docker');"
    if [ -n "$want" ]; then
        why="$why only DRUM_CONTAINER_ENGINE=$want considered"
    elif ! is_root; then
        why="$why podman cannot be installed (not root)"
    else
        why="$why podman cannot be installed (no apt-get)"
    fi
    skip "$why"
fi
step "engine $ENGINE ($("$ENGINE" --version 2>/dev/null | head -n 1))"

# 2. base image --------------------------------------------------------------------------------------------
if [ -n "${DRUM_BASE_IMAGE:-}" ]; then
    BASE_IMAGE=$DRUM_BASE_IMAGE
    step "base image $BASE_IMAGE (DRUM_BASE_IMAGE)"
elif [ "$ENGINE" = podman ]; then
    if podman image exists "$DEBOOTSTRAP_IMAGE"; then
        BASE_IMAGE=$DEBOOTSTRAP_IMAGE
        step "base image $BASE_IMAGE present"
    elif debootstrap_base; then
        BASE_IMAGE=$DEBOOTSTRAP_IMAGE
        step "base image $BASE_IMAGE built with debootstrap"
    elif podman image exists "$REGISTRY_IMAGE" || run_logged podman pull -q "$REGISTRY_IMAGE"; then
        BASE_IMAGE=$REGISTRY_IMAGE
        step "$BASE_FAIL; base image $BASE_IMAGE from the registry"
    else
        skip "no base image: $BASE_FAIL, and $REGISTRY_IMAGE cannot be pulled; see $LOG"
    fi
else
    BASE_IMAGE=$REGISTRY_IMAGE
    step "base image $BASE_IMAGE (registry; pulled by the build if missing)"
fi

# 3. drum drop-in base image ---------------------------------------------------------------------------------
mktempdir ctx
CTX=$TMPDIR_MADE
cp "$DOCKERFILE_DIR/Dockerfile" "$CTX/Dockerfile"
mkdir -p "$CTX/certs" "$CTX/drum-src"
if [ -d /usr/local/share/ca-certificates ]; then
    cp -R /usr/local/share/ca-certificates/. "$CTX/certs/"
fi
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked + untracked-but-not-ignored files, as in the working tree (a deleted tracked file is left out)
    git -C "$ROOT" ls-files -z -co --exclude-standard -- pyproject.toml README.md src \
        | while IFS= read -r -d '' f; do if [ -e "$ROOT/$f" ]; then printf '%s\0' "$f"; fi; done \
        | tar -C "$ROOT" --null -T - -cf - | tar -C "$CTX/drum-src" -xf -
else
    tar -C "$ROOT" --exclude=__pycache__ --exclude='*.egg-info' -cf - pyproject.toml README.md src \
        | tar -C "$CTX/drum-src" -xf -
fi
# Fixed timestamps: the layer cache then depends on file contents only (a CA file re-created with the same
# contents, or a fresh checkout, still hits the cache).
find "$CTX" -exec touch -h -d '2000-01-01 00:00:00 UTC' {} +
ncerts=$(find "$CTX/certs" -name '*.crt' | wc -l)
step "build context: $(find "$CTX/drum-src" -type f | wc -l) drum source files, $ncerts CA certificate(s)"

old_id=$("$ENGINE" image inspect --format '{{.Id}}' "$DROPIN_IMAGE" 2>/dev/null || true)
build_args=(build -t "$DROPIN_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE")
# podman: never look for localhost/... in a registry (a missing image fails at once instead of after retries)
[ "$ENGINE" = podman ] && [ "$BASE_IMAGE" = "$DEBOOTSTRAP_IMAGE" ] && build_args+=(--pull=never)
run_logged "$ENGINE" "${build_args[@]}" "$CTX" \
    || skip "building $DROPIN_IMAGE from docker/dropin_env_base failed; see $LOG"
new_id=$("$ENGINE" image inspect --format '{{.Id}}' "$DROPIN_IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    # the previous build is now untagged: drop it (only that one; its layers stay while still shared)
    "$ENGINE" rmi "$old_id" >/dev/null 2>&1 || true
    step "built $DROPIN_IMAGE (changed)"
else
    step "built $DROPIN_IMAGE ($([ -n "$old_id" ] && echo "unchanged" || echo "new"))"
fi

# Smoke test: the image runs and drum starts (also catches engines that build but cannot run containers).
smoke=(run --rm --init --entrypoint '')
[ "$ENGINE" = podman ] && smoke+=(--pull=never)
version=$(with_timeout 120 "$ENGINE" "${smoke[@]}" "$DROPIN_IMAGE" drum --version 2>>"$LOG") \
    || skip "$ENGINE cannot run $DROPIN_IMAGE (\`$ENGINE run --rm --init $DROPIN_IMAGE drum --version\` failed); see $LOG"
step "$DROPIN_IMAGE runs: $version"

cleanup
TMPDIRS=()
write_state "engine=$ENGINE" "base_image=$BASE_IMAGE" "image=$DROPIN_IMAGE"
say "ready (engine $ENGINE, images $BASE_IMAGE $DROPIN_IMAGE; $(secs "$START" "$(now)") in all)"
