#!/usr/bin/env bash
# Runs attn-train under mpirun with what a single machine like a 2-core VM needs:
#   launch/mpirun.sh -np 4 Configs/shakespeare-char.json [attn-train options]
# - as root, Open MPI refuses to start without --allow-run-as-root (and that refusal exits 0);
# - more ranks than cores need oversubscription;
# - each rank gets cores/ranks threads (at least 1) unless ATTN_TRAIN_THREADS is set, since
#   oversubscribed ranks are not bound to cores and OpenBLAS would start a thread per core in each;
# - SIGTERM or SIGINT to this script becomes SIGUSR1 to mpirun. Open MPI 4.1's mpirun cannot forward
#   SIGTERM/SIGINT: it kills the ranks a second later and exits 1. SIGUSR1 it forwards to every
#   rank, which finishes its step, checkpoints and exits 0 (measured; see Sources/attn-train/Signals.swift).
# The binary is .build/release/attn-train unless ATTN_TRAIN points elsewhere.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${ATTN_TRAIN:-$here/.build/release/attn-train}"
if [ ! -x "$binary" ]; then
  echo "launch/mpirun.sh: $binary not found; build it first: swift build -c release" >&2
  exit 1
fi
if [ "${1:-}" != "-np" ] || [ -z "${2:-}" ]; then
  echo "usage: launch/mpirun.sh -np N CONFIG [attn-train options]" >&2
  exit 2
fi
ranks="$2"
shift 2

flags=(--oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)

# mpirun runs in the background of a job-control shell (its own process group, so a terminal's
# Ctrl-C reaches only this script), and the script relays stop requests until mpirun exits.
set -m
mpirun "${flags[@]}" -np "$ranks" "$binary" "$@" < /dev/null &
job=$!
trap 'kill -USR1 "$job" 2>/dev/null' TERM INT
while :; do
  wait "$job" && status=0 || status=$?
  kill -0 "$job" 2>/dev/null || break
done
exit "$status"
