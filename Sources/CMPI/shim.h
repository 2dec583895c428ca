// Open MPI's C interface; the include path comes from pkg-config "ompi-c". Only CMPIShim imports it.
#include <mpi.h>
