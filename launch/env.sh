# Source this to make plain `mpirun -np 4 attn-train CONFIG` work as written on one machine:
#   source launch/env.sh
# It puts the release build on PATH and sets Open MPI's equivalents of --allow-run-as-root and
# --oversubscribe (harmless when not root or not oversubscribed). attn-train itself picks one BLAS
# thread per rank's share of the cores.
_attn_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_attn_root/.build/release:$PATH"
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
unset _attn_root
