// The C side of CMPIShim: thin wrappers over Open MPI for what Swift cannot express (cast macros),
// plus the two policies that belong next to MPI itself: MPI_Init runs at most once per process, and
// counts above INT32_MAX are split into chunks because MPI counts are int.
#include "CMPIShim.h"

#include <limits.h>
#include <mpi.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

_Static_assert(CMPI_MAX_ERROR_STRING >= MPI_MAX_ERROR_STRING,
               "CMPI_MAX_ERROR_STRING must hold any MPI error string");

// Set by the first cmpi_init; a second caller gets CMPI_ERR_INIT_ONCE even if it races the first.
static atomic_int init_called = 0;

// Kept from init to finalize: MPI_Comm_split_type is collective, so it cannot be made lazily when
// one rank happens to ask for its local rank.
static MPI_Comm local_comm = MPI_COMM_NULL;

// Elements per MPI call. Only tests lower it (cmpi_set_chunk_limit_for_testing).
static size_t chunk_limit = INT_MAX;

static int to_mpi_thread_level(int level) {
  switch (level) {
  case CMPI_THREAD_FUNNELED: return MPI_THREAD_FUNNELED;
  case CMPI_THREAD_SERIALIZED: return MPI_THREAD_SERIALIZED;
  case CMPI_THREAD_MULTIPLE: return MPI_THREAD_MULTIPLE;
  default: return MPI_THREAD_SINGLE;
  }
}

static int from_mpi_thread_level(int level) {
  if (level == MPI_THREAD_MULTIPLE) return CMPI_THREAD_MULTIPLE;
  if (level == MPI_THREAD_SERIALIZED) return CMPI_THREAD_SERIALIZED;
  if (level == MPI_THREAD_FUNNELED) return CMPI_THREAD_FUNNELED;
  return CMPI_THREAD_SINGLE;
}

int cmpi_init(int requested_level, int *provided_level) {
  if (atomic_exchange(&init_called, 1) != 0) return CMPI_ERR_INIT_ONCE;
  // Someone else in the process may have initialized MPI without the shim.
  int flag = 0;
  MPI_Initialized(&flag);
  if (!flag) MPI_Finalized(&flag);
  if (flag) return CMPI_ERR_INIT_ONCE;

  // A caller that asks for a second MPI thread runs communication beside its compute threads,
  // usually on the same cores. Open MPI's default busy-polls while a collective waits for the other
  // ranks, and that spinning thread took its core from the rank's compute thread. Yielding instead,
  // medium at 2 ranks x 1 thread with the overlapped allreduce: 2,470 and 2,483 tok/s against
  // 2,413 and 2,446 (medians of 3 alternating runs); small and tiny within noise. The setting is
  // read by MPI_Init; a value the user exported wins.
  if (requested_level >= CMPI_THREAD_SERIALIZED) setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);

  int provided = MPI_THREAD_SINGLE;
  int rc = MPI_Init_thread(NULL, NULL, to_mpi_thread_level(requested_level), &provided);
  if (rc != MPI_SUCCESS) return rc;
  *provided_level = from_mpi_thread_level(provided);

  rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) return rc;
  rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local_comm);
  if (rc != MPI_SUCCESS) return rc;
  return MPI_Comm_set_errhandler(local_comm, MPI_ERRORS_RETURN);
}

int cmpi_yield_when_idle(int *value) {
  int provided = 0, index = 0, count = 0;
  int rc = MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
  if (rc != MPI_SUCCESS) return rc;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_T_cvar_handle handle = MPI_T_CVAR_HANDLE_NULL;
  rc = MPI_T_cvar_get_index("mpi_yield_when_idle", &index);
  if (rc == MPI_SUCCESS) rc = MPI_T_cvar_get_info(index, NULL, NULL, NULL, &type, NULL, NULL, NULL, NULL, NULL);
  if (rc == MPI_SUCCESS) rc = MPI_T_cvar_handle_alloc(index, NULL, &handle, &count);
  // Open MPI registers the setting as a C bool (one byte); an int is read as one as well.
  union { _Bool flag; int number; } read = {.number = 0};
  if (rc == MPI_SUCCESS) rc = MPI_T_cvar_read(handle, &read);
  if (rc == MPI_SUCCESS) *value = type == MPI_INT ? read.number != 0 : read.flag;
  if (handle != MPI_T_CVAR_HANDLE_NULL) MPI_T_cvar_handle_free(&handle);
  MPI_T_finalize();
  return rc;
}

int cmpi_initialized(int *flag) { return MPI_Initialized(flag); }

int cmpi_finalized(int *flag) { return MPI_Finalized(flag); }

int cmpi_world_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }

int cmpi_world_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

int cmpi_local_rank(int *rank) {
  if (local_comm == MPI_COMM_NULL) return MPI_ERR_COMM;
  return MPI_Comm_rank(local_comm, rank);
}

int cmpi_local_size(int *size) {
  if (local_comm == MPI_COMM_NULL) return MPI_ERR_COMM;
  return MPI_Comm_size(local_comm, size);
}

// Every rank passes the same count, so every rank makes the same sequence of calls.
static int allreduce_in_place(void *buffer, size_t count, size_t element_size, MPI_Datatype type,
                              MPI_Op op) {
  char *p = buffer;
  while (count > 0) {
    size_t n = count < chunk_limit ? count : chunk_limit;
    int rc = MPI_Allreduce(MPI_IN_PLACE, p, (int)n, type, op, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
    p += n * element_size;
    count -= n;
  }
  return MPI_SUCCESS;
}

int cmpi_allreduce_sum_float(float *buffer, size_t count) {
  return allreduce_in_place(buffer, count, sizeof(float), MPI_FLOAT, MPI_SUM);
}

int cmpi_allreduce_sum_double(double *buffer, size_t count) {
  return allreduce_in_place(buffer, count, sizeof(double), MPI_DOUBLE, MPI_SUM);
}

int cmpi_allreduce_max_float(float *buffer, size_t count) {
  return allreduce_in_place(buffer, count, sizeof(float), MPI_FLOAT, MPI_MAX);
}

int cmpi_allreduce_max_double(double *buffer, size_t count) {
  return allreduce_in_place(buffer, count, sizeof(double), MPI_DOUBLE, MPI_MAX);
}

// Share r of count elements; the shares tile [0, count) in rank order.
static size_t share_begin(size_t count, int r, int size) { return count * (size_t)r / (size_t)size; }
static size_t share_size(size_t count, int r, int size) {
  return share_begin(count, r + 1, size) - share_begin(count, r, size);
}

// i modulo size, for ring positions that count back from a rank.
static int ring_position(int i, int size) { return (i % size + size) % size; }

// One ring step between neighbours: share `send` of buffer goes to the right while share `receive`
// comes from the left, in pieces of at most `piece` elements. With `scratch`, each piece arrives
// there and is added to the share (the arriving partial sum second, so a share's total is
// ((own + left) + ...) in ring order); without, it lands in place. Every rank makes the same
// number of calls: pieces are counted from the largest share, and shorter shares send and receive
// empty pieces at the end.
static int ring_step(float *buffer, size_t count, int rank, int size, int send, int receive,
                     float *scratch, size_t piece) {
  if (piece > chunk_limit) piece = chunk_limit;
  size_t largest = (count + (size_t)size - 1) / (size_t)size;
  size_t pieces = largest == 0 ? 1 : (largest + piece - 1) / piece;
  size_t send_size = share_size(count, send, size), receive_size = share_size(count, receive, size);
  float *send_base = buffer + share_begin(count, send, size);
  float *receive_base = buffer + share_begin(count, receive, size);
  for (size_t i = 0; i < pieces; i++) {
    size_t offset = i * piece;
    size_t s = offset < send_size ? send_size - offset : 0, r = offset < receive_size ? receive_size - offset : 0;
    if (s > piece) s = piece;
    if (r > piece) r = piece;
    int rc = MPI_Sendrecv(send_base + (s ? offset : 0), (int)s, MPI_FLOAT, ring_position(rank + 1, size), 0x5EA,
                          scratch ? scratch : receive_base + offset, (int)r, MPI_FLOAT,
                          ring_position(rank - 1, size), 0x5EA, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return rc;
    if (scratch) {
      float *share = receive_base + offset;
      for (size_t k = 0; k < r; k++) share[k] += scratch[k];
    }
  }
  return MPI_SUCCESS;
}

// Step s sends share (rank - s - 1) and adds the left neighbour's partial sum of share
// (rank - s - 2): after size - 1 steps, share rank has every rank's term.
int cmpi_reduce_scatter_sum_float(float *buffer, size_t count, float *scratch, size_t scratch_count) {
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (scratch_count == 0 && size > 1) return MPI_ERR_COUNT;
  for (int s = 0; s < size - 1; s++) {
    int rc = ring_step(buffer, count, rank, size, ring_position(rank - s - 1, size),
                       ring_position(rank - s - 2, size), scratch, scratch_count);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

// Step s passes share (rank - s) on to the right and takes share (rank - s - 1) from the left.
int cmpi_allgather_float(float *buffer, size_t count) {
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (int s = 0; s < size - 1; s++) {
    int rc = ring_step(buffer, count, rank, size, ring_position(rank - s, size),
                       ring_position(rank - s - 1, size), NULL, chunk_limit);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

int cmpi_broadcast_bytes(void *buffer, size_t count, int root) {
  char *p = buffer;
  while (count > 0) {
    size_t n = count < chunk_limit ? count : chunk_limit;
    int rc = MPI_Bcast(p, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
    p += n;
    count -= n;
  }
  return MPI_SUCCESS;
}

int cmpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

int cmpi_abort(int code) {
  fflush(NULL);
  return MPI_Abort(MPI_COMM_WORLD, code);
}

int cmpi_finalize(void) {
  if (local_comm != MPI_COMM_NULL) {
    int rc = MPI_Comm_free(&local_comm);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_Finalize();
}

int cmpi_error_string(int code, char *buffer, size_t capacity) {
  if (capacity == 0) return CMPI_SUCCESS;
  if (code == CMPI_ERR_INIT_ONCE) {
    snprintf(buffer, capacity,
             "MPI was already initialized in this process, and MPI_Init may run only once "
             "per process");
    return CMPI_SUCCESS;
  }
  // Open MPI builds its error-string table inside MPI_Init, so it cannot be asked outside a run.
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    snprintf(buffer, capacity, "MPI error %d (MPI is not running, so it has no text for it)", code);
    return CMPI_SUCCESS;
  }
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  int rc = MPI_Error_string(code, text, &length);
  if (rc != MPI_SUCCESS) {
    snprintf(buffer, capacity, "MPI error %d (MPI_Error_string failed with %d)", code, rc);
    return rc;
  }
  snprintf(buffer, capacity, "%.*s", length, text);
  return CMPI_SUCCESS;
}

double cmpi_wtime(void) { return MPI_Wtime(); }

void cmpi_set_chunk_limit_for_testing(size_t elements) {
  chunk_limit = (elements == 0 || elements > INT_MAX) ? INT_MAX : elements;
}
