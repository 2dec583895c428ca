// CMPIShim: the only C that touches MPI. Open MPI spells MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM and
// MPI_IN_PLACE as cast macros that Swift cannot import, so every collective the trainer needs is a
// plain C function here. This header uses plain C types only and does not include <mpi.h>, which
// keeps MPI's headers out of Swift. Every function but cmpi_wtime returns an MPI error code
// (CMPI_SUCCESS on success); MPICommunicator.swift lifts those codes into MPIError.
#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// MPI_SUCCESS is 0 in every MPI; restated here because Swift cannot see <mpi.h>.
#define CMPI_SUCCESS 0

// Not an MPI code: returned by cmpi_init when MPI was already initialized (or finalized) in this
// process, because MPI allows MPI_Init once per process and a second call is undefined behaviour.
#define CMPI_ERR_INIT_ONCE (-1)

// Thread support levels as plain ints, so Swift can name them without <mpi.h>; the shim maps them
// to MPI_THREAD_* (whose values MPI leaves to the implementation).
#define CMPI_THREAD_SINGLE 0
#define CMPI_THREAD_FUNNELED 1
#define CMPI_THREAD_SERIALIZED 2
#define CMPI_THREAD_MULTIPLE 3

// Large enough for any MPI_Error_string (Open MPI's MPI_MAX_ERROR_STRING is 256; checked in shim.c).
#define CMPI_MAX_ERROR_STRING 512

// MPI_Init_thread, guarded so it runs at most once per process (see CMPI_ERR_INIT_ONCE). It also
// sets MPI_ERRORS_RETURN on the world communicator, so failures come back as codes instead of
// killing the job silently, and splits off the node-local communicator that local rank/size use.
// `provided_level` receives the CMPI_THREAD_* level MPI actually granted. Asking for
// CMPI_THREAD_SERIALIZED or above also makes Open MPI yield the core while a call waits (see
// shim.c), unless OMPI_MCA_mpi_yield_when_idle is already set.
int cmpi_init(int requested_level, int *provided_level);

// Open MPI's mpi_yield_when_idle as MPI_Init took it (through the MPI tool interface): *value is 1
// when waiting calls yield the core, 0 when they busy-poll.
int cmpi_yield_when_idle(int *value);

// MPI_Initialized / MPI_Finalized: the only queries MPI allows before init and after finalize.
int cmpi_initialized(int *flag);
int cmpi_finalized(int *flag);

// Rank and size in MPI_COMM_WORLD, which Swift cannot name.
int cmpi_world_rank(int *rank);
int cmpi_world_size(int *size);

// Rank and size among the processes on this node (MPI_COMM_TYPE_SHARED split made in cmpi_init):
// what a rank needs to pick its share of the node's cores or devices.
int cmpi_local_rank(int *rank);
int cmpi_local_size(int *size);

// In-place allreduce over MPI_COMM_WORLD. Counts are size_t: MPI counts are int, so buffers over
// INT32_MAX elements go in chunks here rather than every caller having to remember.
int cmpi_allreduce_sum_float(float *buffer, size_t count);
int cmpi_allreduce_sum_double(double *buffer, size_t count);
int cmpi_allreduce_max_float(float *buffer, size_t count);
int cmpi_allreduce_max_double(double *buffer, size_t count);

// The two halves of an allreduce, as rings of MPI_Sendrecv between neighbours over MPI_COMM_WORLD.
// The buffer is split into one share per rank, rank r's share being elements
// [count * r / size, count * (r + 1) / size). After reduce-scatter, this rank's share holds the sum
// over ranks (added in a fixed order per share) and the other shares hold partial sums; a peer's
// pieces arrive in `scratch` (any size of at least one element: larger shares go in pieces).
// Allgather then copies every rank's share into place on every rank.
int cmpi_reduce_scatter_sum_float(float *buffer, size_t count, float *scratch, size_t scratch_count);
int cmpi_allgather_float(float *buffer, size_t count);

// In-place broadcast of raw bytes from `root` over MPI_COMM_WORLD, chunked like the allreduces.
int cmpi_broadcast_bytes(void *buffer, size_t count, int root);

// MPI_Barrier on MPI_COMM_WORLD.
int cmpi_barrier(void);

// Flushes C stdio (which Swift's print writes through), so this rank's last words reach mpirun,
// then MPI_Abort on MPI_COMM_WORLD: the one call that takes every rank down, including ranks that
// are waiting in a collective this rank will never enter. Returns only if MPI_Abort does.
int cmpi_abort(int code);

// Frees the node-local communicator, then MPI_Finalize.
int cmpi_finalize(void);

// Writes MPI_Error_string(code) (or the shim's own text for CMPI_ERR_INIT_ONCE, or a generic line
// when MPI is not running and cannot be asked) into `buffer`, NUL-terminated and truncated to
// `capacity` bytes.
int cmpi_error_string(int code, char *buffer, size_t capacity);

// MPI_Wtime: the clock mpirun-launched ranks share a notion of; seconds as a double.
double cmpi_wtime(void);

// Lowers the chunk size (in elements) used by the allreduces and broadcast, so tests can exercise
// the chunk loop without 8 GiB buffers. 0 restores the default (INT32_MAX). Not for production use.
void cmpi_set_chunk_limit_for_testing(size_t elements);

#ifdef __cplusplus
}
#endif

#endif  // CMPI_SHIM_H
