#ifndef KMS_SANDBOX_H
#define KMS_SANDBOX_H
/* The front's kernel sandbox: Landlock (filesystem, TCP and scope rules) and an in-process
   seccomp filter (a BPF allow list of our own, Sources/CSandbox/front_syscalls.inc). Raw system
   calls only: landlock_* and seccomp have no libc wrappers, prctl and syscall are variadic. */
#include <stdint.h>
#include <sys/types.h>

/* The newest Landlock ABI this binary knows and uses. */
#define KMS_LANDLOCK_ABI_SUPPORTED 7

/* The kernel's Landlock ABI version (>= 1), or -1 with errno (ENOSYS: not built in,
   EOPNOTSUPP: built in but disabled at boot). */
int kms_landlock_abi(void);

struct kms_landlock_request {
    /* The one directory beneath which the front may remove files (the KMS socket it bound
       itself and unlinks on exit), or NULL for none. */
    const char *remove_dir;
    /* TCP ports the front may bind (health, metrics); every other bind and every connect is
       denied (ABI >= 4). */
    const uint16_t *bind_ports;
    int bind_port_count;
    /* 1: abstract Unix sockets created outside the sandbox cannot be reached (ABI >= 6). */
    int scope_abstract_unix;
    /* 1: processes outside the sandbox cannot be signalled (ABI >= 6). */
    int scope_signal;
};

struct kms_landlock_result {
    int kernel_abi;      /* what the kernel offers (0: no Landlock) */
    int enforced_abi;    /* min(kernel, supported) when enforced, 0 when not */
    int fs_rules;        /* 1 when filesystem access is restricted */
    int net_rules;       /* 1 when TCP bind/connect are restricted */
    int scoped_abstract; /* 1 when abstract Unix sockets are scoped */
    int scoped_signal;   /* 1 when signals are scoped */
    int error_number;    /* errno of the failed step, 0 on success */
    const char *failed_step; /* static string, NULL on success */
};

/* Sets no-new-privs and enforces the strongest ruleset the kernel offers. Returns 0 when a
   ruleset is enforced, -1 otherwise (result says why). */
int kms_landlock_apply(const struct kms_landlock_request *request, struct kms_landlock_result *result);

/* Loads the front's seccomp filter (no-new-privs set first): the syscalls of
   front_syscalls.inc are allowed, socket(2) only for AF_UNIX (other families fail with
   EAFNOSUPPORT), anything else kills the process (SIGSYS). Returns 0 or -1 with errno. */
int kms_seccomp_apply(void);
/* How many syscalls the filter allows, and their names (index 0 ..< count). */
int kms_seccomp_allowed_count(void);
const char *kms_seccomp_allowed_name(int index);
/* 1 when this architecture has a filter (x86_64, aarch64), else 0. */
int kms_seccomp_supported(void);
/* The "Seccomp:" mode of /proc/self/status through prctl(PR_GET_SECCOMP): 0, 1 or 2. */
int kms_seccomp_mode(void);

/* Raw attempts for the debug-build self-test of the sandbox (Sources/Front/SandboxSelfTest.swift).
   Each returns 0 when the operation succeeded (and undoes it) or the errno it failed with. They
   do nothing a process cannot do to itself without them. */
int kms_try_ptrace_attach(pid_t pid);
int kms_try_signal(pid_t pid, int sig);
int kms_try_open(const char *path, int flags);
int kms_try_tcp_connect(uint32_t ipv4_host_order, uint16_t port);
int kms_try_tcp_bind(uint16_t port);
int kms_try_inet_socket(void);
int kms_try_abstract_connect(const char *name);
int kms_try_exec(const char *path);
/* personality(0xffffffff): a query the front never makes; under the filter it kills. */
int kms_forbidden_syscall(void);
#endif
