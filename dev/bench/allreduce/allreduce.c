// The baseline for attn-train's allreduce: MPI_Allreduce of `count` floats, in place, summed, timed
// the same way attn-bench --allreduce times the Swift path (best and median of `repeats` after a
// warm-up), so the two columns of dev/bench/allreduce/run.sh compare like with like.
//   mpicc -O2 allreduce.c -o allreduce && mpirun -np 2 ./allreduce COUNT [REPEATS]
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  long count = argc > 1 ? atol(argv[1]) : 1000000;
  int repeats = argc > 2 ? atoi(argv[2]) : 20;
  float *buffer = malloc(sizeof(float) * (size_t)count);
  double *times = malloc(sizeof(double) * (size_t)repeats);
  for (long i = 0; i < count; i++) buffer[i] = 1e-3f * (float)(i % 1000);
  MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  for (int r = 0; r < repeats; r++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    times[r] = MPI_Wtime() - start;
  }
  qsort(times, (size_t)repeats, sizeof(double), compare);
  if (rank == 0) printf("c %ld %.3f %.3f\n", count, times[0] * 1e3, times[repeats / 2] * 1e3);
  free(buffer);
  free(times);
  MPI_Finalize();
  return 0;
}
