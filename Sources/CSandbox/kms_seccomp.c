/* The front's in-process seccomp filter: a BPF allow list of our own (docs/architecture.md says
   why not libseccomp). The list is front_syscalls.inc, derived from traces of the e2e flow by
   scripts/derive-front-syscalls.py. Each allowed syscall is one compare and one return, so no
   jump can exceed BPF's 8-bit offsets whatever the list's length. */
#define _GNU_SOURCE
#include "kms_sandbox.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif

struct allowed_syscall {
    int nr;
    const char *name;
};

#define KMS_SYSCALL(name) {SYS_##name, #name},
static const struct allowed_syscall allowed[] = {
#include "front_syscalls.inc"
};
#undef KMS_SYSCALL

#define ALLOWED_COUNT ((int)(sizeof allowed / sizeof allowed[0]))

#if defined(__x86_64__)
#define KMS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define KMS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

int kms_seccomp_allowed_count(void) { return ALLOWED_COUNT; }

const char *kms_seccomp_allowed_name(int index) {
    return index >= 0 && index < ALLOWED_COUNT ? allowed[index].name : NULL;
}

int kms_seccomp_mode(void) { return prctl(PR_GET_SECCOMP, 0, 0, 0, 0); }

#ifdef KMS_AUDIT_ARCH
int kms_seccomp_supported(void) { return 1; }

int kms_seccomp_apply(void) {
    /* arch check (2) + x32 check (2, x86_64) + nr load (1) + socket rule (5) + 2 per syscall + kill (1) */
    size_t capacity = 16 + 2 * (size_t)ALLOWED_COUNT;
    struct sock_filter *code = calloc(capacity, sizeof *code);
    if (!code) return -1;
    size_t n = 0;
    code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, KMS_AUDIT_ARCH, 1, 0);
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    /* x32 system calls (bit 30) reach the same kernel code under other numbers: refuse them all. */
    code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1);
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
    /* socket(2): AF_UNIX only; any other family fails with EAFNOSUPPORT (no TCP, UDP, netlink
       or raw socket can be created, whatever Landlock's ABI covers). */
    code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 4);
    code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1);
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EAFNOSUPPORT & SECCOMP_RET_DATA));
    for (int i = 0; i < ALLOWED_COUNT; i++) {
        if (allowed[i].nr == SYS_socket) continue;
        code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i].nr, 0, 1);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);

    struct sock_fprog program = {.len = (unsigned short)n, .filter = code};
    int status = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (status == 0) {
        /* TSYNC: every thread gets the filter, or none does. */
        status = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program);
        if (status > 0) {
            errno = EBUSY; /* the id of a thread that could not be synchronised */
            status = -1;
        } else if (status < 0 && (errno == ENOSYS || errno == EPERM)) {
            /* seccomp(2) missing (< 3.17) or filtered by an outer profile that still allows prctl
               (systemd 252's @system-service): the older interface, without TSYNC, which a
               single-threaded front does not need. */
            status = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0);
        }
    }
    int saved = errno;
    free(code);
    errno = saved;
    return status;
}
#else
int kms_seccomp_supported(void) { return 0; }

int kms_seccomp_apply(void) {
    errno = ENOSYS;
    return -1;
}
#endif
