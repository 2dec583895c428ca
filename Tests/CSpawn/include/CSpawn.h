#ifndef CSPAWN_H
#define CSPAWN_H

#include <sys/types.h>

// Starts `path` with `argv` and `envp` (both NULL-terminated): stdin from /dev/null, stdout and
// stderr into two new pipes whose read ends come back in `out_fd` and `err_fd` (close-on-exec),
// no other descriptor of this process, an empty signal mask and default signal dispositions.
// Returns 0, or an errno value.
int cspawn_child(const char *path, char *const argv[], char *const envp[], pid_t *pid, int *out_fd,
                 int *err_fd);

#endif
