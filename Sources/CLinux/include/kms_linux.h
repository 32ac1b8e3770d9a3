#ifndef KMS_LINUX_H
#define KMS_LINUX_H
/* Linux declarations that Swift's Glibc module does not export (epoll, signalfd) and wrappers of
   calls it cannot make (variadic prctl, GNU-only struct ucred), exposed to KMSRuntime through this
   C target (the CNIOLinux pattern). No _GNU_SOURCE here: it would change
   glibc's struct definitions and clash with the Glibc module; GNU-only things live in kms_linux.c. */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

/* SO_PEERCRED of a connected Unix socket (struct ucred is GNU-only); 0 on success, -1 with errno. */
int kms_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/* prctl(PR_SET_DUMPABLE) and prctl(PR_GET_DUMPABLE) (prctl is variadic and cannot be called from Swift). */
int kms_set_dumpable(int dumpable);
int kms_get_dumpable(void);
#endif
