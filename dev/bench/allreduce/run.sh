#!/usr/bin/env bash
# The gradient allreduce through attn-train's C shim next to a plain C program's MPI_Allreduce of the
# same size, at np 2 and 4, for each config's parameter count:
#   dev/bench/allreduce/run.sh [CONFIG...]     (default: the three Configs/)
# Prints a markdown table of the best and median time of 20 allreduces (ms).
set -euo pipefail
cd "$(dirname "$0")/../../.."
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(Configs/tiny.json Configs/shakespeare-char.json Configs/shakespeare-char-6l.json)
swift build -c release --product attn-bench >/dev/null
work="$(mktemp -d)"
mpicc -O2 dev/bench/allreduce/allreduce.c -o "$work/allreduce"
flags=(--oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)

echo "| config | floats | ranks | C MPI_Allreduce best / median ms | shim, one call | shim, 4 MiB buckets |"
echo "|---|---:|---:|---:|---:|---:|"
for config in "${configs[@]}"; do
  for ranks in 2 4; do
    swift_lines="$(mpirun "${flags[@]}" -np "$ranks" .build/release/attn-bench --allreduce "$config")"
    count="$(echo "$swift_lines" | awk '$1 == "swift" { print $2 }')"
    c_line="$(mpirun "${flags[@]}" -np "$ranks" "$work/allreduce" "$count" 20)"
    whole="$(echo "$swift_lines" | awk '$1 == "swift" { printf "%s / %s", $3, $4 }')"
    buckets="$(echo "$swift_lines" | awk '$1 == "swift-buckets" { printf "%s / %s", $3, $4 }')"
    c="$(echo "$c_line" | awk '{ printf "%s / %s", $3, $4 }')"
    echo "| $(basename "$config" .json) | $count | $ranks | $c | $whole | $buckets |"
  done
done
rm -rf "$work"
