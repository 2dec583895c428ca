// Why this exists: the training step must allocate nothing (STYLE habit 3), and the only way to
// prove it is to count. Defining malloc and friends in the test executable interposes them for the
// whole process (ELF symbol interposition); each forwards to glibc's own implementation and, when
// the calling thread asked for it, counts. Thread-local, so tests running concurrently on other
// threads do not disturb the count.
#include <errno.h>
#include <stddef.h>
#include "CAllocationCounter.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static __thread int counting;
static __thread long allocations;

static inline void note(void) {
  if (counting) allocations++;
}

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { note(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
  note();
  void *pointer = __libc_memalign(alignment, size);
  if (pointer == NULL) return ENOMEM;
  *out = pointer;
  return 0;
}
void free(void *pointer) { __libc_free(pointer); }

void attn_allocations_start(void) {
  allocations = 0;
  counting = 1;
}

long attn_allocations_stop(void) {
  counting = 0;
  return allocations;
}
