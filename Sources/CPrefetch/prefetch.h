// Software prefetch, which Swift has no spelling for. static inline, so a Swift caller compiles it
// to the one instruction (prefetcht0) in place.
#ifndef CPREFETCH_H
#define CPREFETCH_H

/// Asks for the cache line holding p to be brought into every cache level; never faults.
static inline void prefetch_for_reading(const void *p) { __builtin_prefetch(p, 0, 3); }

/// The same for a line about to be written.
static inline void prefetch_for_writing(const void *p) { __builtin_prefetch(p, 1, 3); }

#endif
