/* GNU-only helpers and prctl wrappers declared in kms_linux.h. */
#define _GNU_SOURCE
#include "kms_linux.h"

#include <sys/prctl.h>
#include <sys/socket.h>

int kms_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t length = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int kms_set_dumpable(int dumpable) { return prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0); }
int kms_get_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }
