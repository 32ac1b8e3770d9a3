#ifndef KMS_SPAWN_H
#define KMS_SPAWN_H
#include <sys/types.h>

/* Which step of the child's privilege drop failed; written to the parent over a CLOEXEC pipe
   together with errno, so the broker can say exactly why the front did not start. */
enum kms_spawn_step {
    KMS_SPAWN_OK = 0,
    KMS_SPAWN_DUP2 = 1,
    KMS_SPAWN_CLOSE_FDS = 2,
    KMS_SPAWN_CAPBSET = 3,
    KMS_SPAWN_SETGROUPS = 4,
    KMS_SPAWN_SETRESGID = 5,
    KMS_SPAWN_SETRESUID = 6,
    KMS_SPAWN_VERIFY_IDS = 7,
    KMS_SPAWN_NO_NEW_PRIVS = 8,
    KMS_SPAWN_PDEATHSIG = 9,
    KMS_SPAWN_PARENT_GONE = 10,
    KMS_SPAWN_EXEC = 11,
    KMS_SPAWN_FORK = 12,
    KMS_SPAWN_PIPE = 13,
    KMS_SPAWN_SIGMASK = 14,
};

struct kms_spawn_request {
    const char *path;          /* absolute path of the executable */
    char *const *argv;         /* NULL-terminated */
    char *const *envp;         /* NULL-terminated, already minimal */
    const int *inherit_fds;    /* fds placed at 3, 4, ... in this order */
    int inherit_count;
    int change_ids;            /* 1: setgroups/setresgid/setresuid to uid/gid and drop capabilities */
    uid_t uid;
    gid_t gid;
};

struct kms_spawn_result {
    pid_t pid;                 /* > 0 on success */
    int failed_step;           /* enum kms_spawn_step */
    int error_number;          /* errno of the failed step */
};

/* Forks and execs the front. Everything between fork and exec is async-signal-safe. */
struct kms_spawn_result kms_spawn(const struct kms_spawn_request *request);

/* Human-readable name of a failed step. */
const char *kms_spawn_step_name(int step);

/* pidfd_open(2) through syscall(2), which is variadic: readable in epoll when the process exits.
   Returns -1 with errno set on kernels without it (< 5.3). */
int kms_pidfd_open(pid_t pid);
#endif
