/* The raw operations the sandbox self-test attempts (debug builds only call them). Each undoes
   what it achieved, so a self-test against a missing sandbox leaves nothing behind. */
#define _GNU_SOURCE
#include "kms_sandbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int result_of(int status) { return status == 0 ? 0 : errno; }

int kms_try_ptrace_attach(pid_t pid) {
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0) return errno;
    waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return 0;
}

int kms_try_signal(pid_t pid, int sig) { return result_of(kill(pid, sig)); }

int kms_try_open(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    close(fd);
    if (flags & O_CREAT) unlink(path);
    return 0;
}

static int inet_socket(void) { return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }

int kms_try_inet_socket(void) {
    int fd = inet_socket();
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

int kms_try_tcp_connect(uint32_t host, uint16_t port) {
    int fd = inet_socket();
    if (fd < 0) return errno;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(host)};
    int status = connect(fd, (struct sockaddr *)&address, sizeof address);
    int error = errno;
    close(fd);
    return status == 0 ? 0 : error;
}

int kms_try_tcp_bind(uint16_t port) {
    int fd = inet_socket();
    if (fd < 0) return errno;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int status = bind(fd, (struct sockaddr *)&address, sizeof address);
    int error = errno;
    close(fd);
    return status == 0 ? 0 : error;
}

int kms_try_abstract_connect(const char *name) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t length = strnlen(name, sizeof address.sun_path - 1);
    memcpy(address.sun_path + 1, name, length);
    int status = connect(fd, (struct sockaddr *)&address, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + length));
    int error = errno;
    close(fd);
    return status == 0 ? 0 : error;
}

int kms_try_exec(const char *path) {
    char *const argv[] = {(char *)path, NULL};
    char *const envp[] = {NULL};
    execve(path, argv, envp);
    return errno;
}

int kms_forbidden_syscall(void) { return result_of((int)syscall(SYS_personality, 0xffffffffUL) < 0 ? -1 : 0); }
