/* Captures argc/argv before main (see kms_args.h). glibc's dynamic loader calls every
   .init_array function of the executable with (argc, argv, envp); the pointers stay valid for
   the whole life of the process (they point into the initial stack). */
#include "kms_args.h"

#include <stddef.h>

static int captured_count = -1;
static char **captured_values = NULL;

static void kms_args_capture(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 0 || argv == NULL) return;
    captured_count = argc;
    captured_values = argv;
}

/* Placed in .init_array explicitly (not __attribute__((constructor))) so that the three
   arguments glibc passes are part of the declared type. `used` keeps it in an optimized build. */
__attribute__((section(".init_array"), used)) static void (*const kms_args_init)(int, char **, char **) =
    kms_args_capture;

int kms_args_count(void) { return captured_count; }

const char *kms_args_value(int index) {
    if (index < 0 || index >= captured_count || captured_values == NULL) return NULL;
    return captured_values[index];
}
