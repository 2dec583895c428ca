#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H
/// Starts counting heap allocations made by the calling thread (malloc, calloc, realloc and the
/// aligned variants); other threads are not counted.
void attn_allocations_start(void);
/// Stops counting on the calling thread and returns how many allocations it made since start.
long attn_allocations_stop(void);
#endif
