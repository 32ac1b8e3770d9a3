#ifndef CSYSTEMD_SHIM_H
#define CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>

/* sd_journal_send is variadic; Swift calls sd_journal_sendv with an iovec array instead. */
static inline int kms_sd_journal_sendv(const struct iovec *iov, int n) { return sd_journal_sendv(iov, n); }
#endif
