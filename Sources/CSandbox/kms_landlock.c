/* Landlock for the front. The system headers of older distributions lack the newer ABI's
   constants, so the few needed are defined here with the kernel's values (uapi/linux/landlock.h). */
#define _GNU_SOURCE
#include "kms_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2

/* Filesystem rights by the ABI that introduced them. */
#define LL_FS_ABI1 ((1ULL << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define LL_FS_REFER (1ULL << 13)      /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)   /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)  /* ABI 5 */
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_NET_BIND_TCP (1ULL << 0)   /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

int kms_landlock_abi(void) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return abi < 0 ? -1 : (int)abi;
}

static int fail(struct kms_landlock_result *result, const char *step, int ruleset) {
    result->error_number = errno;
    result->failed_step = step;
    result->enforced_abi = 0;
    result->fs_rules = result->net_rules = result->scoped_abstract = result->scoped_signal = 0;
    if (ruleset >= 0) close(ruleset);
    return -1;
}

int kms_landlock_apply(const struct kms_landlock_request *request, struct kms_landlock_result *result) {
    memset(result, 0, sizeof *result);
    int abi = kms_landlock_abi();
    if (abi < 1) return fail(result, "landlock_create_ruleset(VERSION)", -1);
    result->kernel_abi = abi;
    if (abi > KMS_LANDLOCK_ABI_SUPPORTED) abi = KMS_LANDLOCK_ABI_SUPPORTED;

    struct ll_ruleset_attr attr = {0};
    attr.handled_access_fs = LL_FS_ABI1;
    if (abi >= 2) attr.handled_access_fs |= LL_FS_REFER;
    if (abi >= 3) attr.handled_access_fs |= LL_FS_TRUNCATE;
    if (abi >= 5) attr.handled_access_fs |= LL_FS_IOCTL_DEV;
    if (abi >= 4) attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    if (abi >= 6) {
        if (request->scope_abstract_unix) attr.scoped |= LL_SCOPE_ABSTRACT_UNIX;
        if (request->scope_signal) attr.scoped |= LL_SCOPE_SIGNAL;
    }
    /* The size the kernel knows for this ABI: older kernels reject unknown trailing fields. */
    size_t size = abi >= 6 ? sizeof attr : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0) return fail(result, "landlock_create_ruleset", -1);

    if (request->remove_dir) {
        int directory = open(request->remove_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (directory < 0) return fail(result, "open(socket directory)", ruleset);
        struct ll_path_beneath_attr beneath = {.allowed_access = LL_FS_REMOVE_FILE, .parent_fd = directory};
        long added = syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &beneath, 0);
        int saved = errno;
        close(directory);
        errno = saved;
        if (added != 0) return fail(result, "landlock_add_rule(path)", ruleset);
    }
    if (abi >= 4) {
        for (int i = 0; i < request->bind_port_count; i++) {
            struct ll_net_port_attr port = {.allowed_access = LL_NET_BIND_TCP, .port = request->bind_ports[i]};
            if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_NET_PORT, &port, 0) != 0)
                return fail(result, "landlock_add_rule(port)", ruleset);
        }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(result, "prctl(PR_SET_NO_NEW_PRIVS)", ruleset);
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) return fail(result, "landlock_restrict_self", ruleset);
    close(ruleset);
    result->enforced_abi = abi;
    result->fs_rules = 1;
    result->net_rules = abi >= 4;
    result->scoped_abstract = (attr.scoped & LL_SCOPE_ABSTRACT_UNIX) != 0;
    result->scoped_signal = (attr.scoped & LL_SCOPE_SIGNAL) != 0;
    return 0;
}
