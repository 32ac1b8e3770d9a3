/* fork -> drop privileges -> exec for the front process.
   Between fork and exec only async-signal-safe calls are made: the broker may be multi-library
   (libcurl, OpenSSL) and no lock taken by another thread in the parent may be touched. */
#define _GNU_SOURCE
#include "kms_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct report { int step; int err; };

static void child_fail(int pipe_w, int step) {
    struct report r = { step, errno };
    ssize_t ignored = write(pipe_w, &r, sizeof r);
    (void)ignored;
    _exit(127);
}

static int close_from(int lowest, int keep) {
#ifdef SYS_close_range
    /* close_range(lowest, ~0U, 0) closes everything at or above lowest; keep the report pipe by
       closing in two ranges around it. */
    if (keep >= lowest) {
        if (keep > lowest && syscall(SYS_close_range, (unsigned)lowest, (unsigned)(keep - 1), 0) != 0) goto fallback;
        if (syscall(SYS_close_range, (unsigned)(keep + 1), ~0U, 0) != 0) goto fallback;
    } else if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) != 0) {
        goto fallback;
    }
    return 0;
fallback:
#endif
    {
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 1048576) max = 1048576;
        for (int fd = lowest; fd < max; fd++) if (fd != keep) close(fd);
    }
    return 0;
}

struct kms_spawn_result kms_spawn(const struct kms_spawn_request *rq) {
    struct kms_spawn_result result = { -1, KMS_SPAWN_OK, 0 };
    int report_pipe[2];
    if (pipe2(report_pipe, O_CLOEXEC) != 0) {
        result.failed_step = KMS_SPAWN_PIPE;
        result.error_number = errno;
        return result;
    }
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid < 0) {
        result.failed_step = KMS_SPAWN_FORK;
        result.error_number = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(report_pipe[0]);
        close(report_pipe[1]);
        return result;
    }
    if (pid == 0) {
        int w = report_pipe[1];
        /* Default dispositions: the broker's handlers and signalfd masks must not leak. */
        for (int s = 1; s < NSIG; s++) {
            if (s == SIGKILL || s == SIGSTOP) continue;
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            sigaction(s, &dfl, NULL);
        }
        /* Move the report pipe above the inherited range so dup2 cannot clobber it. */
        int base = 3 + rq->inherit_count;
        if (w < base + 64) {
            int moved = fcntl(w, F_DUPFD_CLOEXEC, base + 64);
            if (moved < 0) child_fail(w, KMS_SPAWN_DUP2);
            w = moved;
        }
        /* Place inherited fds at 3.. without collisions: first lift them all high, then down. */
        int lifted[16];
        if (rq->inherit_count > 16) { errno = EINVAL; child_fail(w, KMS_SPAWN_DUP2); }
        for (int i = 0; i < rq->inherit_count; i++) {
            lifted[i] = fcntl(rq->inherit_fds[i], F_DUPFD, base + 128);
            if (lifted[i] < 0) child_fail(w, KMS_SPAWN_DUP2);
        }
        for (int i = 0; i < rq->inherit_count; i++) {
            if (dup2(lifted[i], 3 + i) < 0) child_fail(w, KMS_SPAWN_DUP2);
        }
        close_from(base, w);
        if (rq->change_ids) {
            /* Empty the capability bounding set and the ambient set while still privileged, so
               nothing can be regained by executing a file with capabilities. */
            for (int cap = 0; cap <= 63; cap++) {
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) child_fail(w, KMS_SPAWN_CAPBSET);
            }
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
            gid_t groups[1] = { rq->gid };
            if (setgroups(1, groups) != 0) child_fail(w, KMS_SPAWN_SETGROUPS);
            if (setresgid(rq->gid, rq->gid, rq->gid) != 0) child_fail(w, KMS_SPAWN_SETRESGID);
            if (setresuid(rq->uid, rq->uid, rq->uid) != 0) child_fail(w, KMS_SPAWN_SETRESUID);
            uid_t ru, eu, su; gid_t rg, eg, sg;
            if (getresuid(&ru, &eu, &su) != 0 || ru != rq->uid || eu != rq->uid || su != rq->uid ||
                getresgid(&rg, &eg, &sg) != 0 || rg != rq->gid || eg != rq->gid || sg != rq->gid) {
                errno = EPERM;
                child_fail(w, KMS_SPAWN_VERIFY_IDS);
            }
            /* Regaining root must be impossible. */
            if (rq->uid != 0 && setuid(0) == 0) { errno = EPERM; child_fail(w, KMS_SPAWN_VERIFY_IDS); }
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(w, KMS_SPAWN_NO_NEW_PRIVS);
        if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0) child_fail(w, KMS_SPAWN_PDEATHSIG);
        /* The parent may have died before PDEATHSIG was armed. */
        if (getppid() != parent) { errno = ESRCH; child_fail(w, KMS_SPAWN_PARENT_GONE); }
        sigset_t none;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) child_fail(w, KMS_SPAWN_SIGMASK);
        execve(rq->path, rq->argv, rq->envp);
        child_fail(w, KMS_SPAWN_EXEC);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report_pipe[1]);
    struct report r;
    ssize_t n;
    do { n = read(report_pipe[0], &r, sizeof r); } while (n < 0 && errno == EINTR);
    close(report_pipe[0]);
    if (n == (ssize_t)sizeof r) {
        /* The child failed before exec; it has exited with 127 and the caller reaps it. */
        result.pid = pid;
        result.failed_step = r.step;
        result.error_number = r.err;
        return result;
    }
    result.pid = pid;
    return result;
}

const char *kms_spawn_step_name(int step) {
    switch (step) {
    case KMS_SPAWN_OK: return "ok";
    case KMS_SPAWN_DUP2: return "dup2";
    case KMS_SPAWN_CLOSE_FDS: return "close-fds";
    case KMS_SPAWN_CAPBSET: return "drop-capability-bounding-set";
    case KMS_SPAWN_SETGROUPS: return "setgroups";
    case KMS_SPAWN_SETRESGID: return "setresgid";
    case KMS_SPAWN_SETRESUID: return "setresuid";
    case KMS_SPAWN_VERIFY_IDS: return "verify-ids";
    case KMS_SPAWN_NO_NEW_PRIVS: return "no-new-privs";
    case KMS_SPAWN_PDEATHSIG: return "parent-death-signal";
    case KMS_SPAWN_PARENT_GONE: return "parent-gone";
    case KMS_SPAWN_EXEC: return "exec";
    case KMS_SPAWN_FORK: return "fork";
    case KMS_SPAWN_PIPE: return "pipe";
    case KMS_SPAWN_SIGMASK: return "sigmask";
    default: return "unknown";
    }
}

int kms_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}
