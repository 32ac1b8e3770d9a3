#ifndef KMS_ARGS_H
#define KMS_ARGS_H
/* The process' real argc/argv, captured before main by an .init_array function (glibc calls
   those with argc, argv and envp). Swift's CommandLine reads /proc/self/cmdline on Linux, which
   is empty where /proc is not mounted (a chroot, a minimal root): the binaries parse these instead. */

/* argc as the kernel passed it, or -1 when the capture did not run (no glibc init_array call). */
int kms_args_count(void);

/* argv[index] for 0 <= index < kms_args_count(), else NULL. */
const char *kms_args_value(int index);
#endif
