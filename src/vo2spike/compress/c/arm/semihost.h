/* ARM semihosting (bkpt 0xAB) for the QEMU test image. */
#ifndef VO2_SEMIHOST_H
#define VO2_SEMIHOST_H

#include <stdint.h>

void sh_write0(const char *s); /* SYS_WRITE0: print a NUL-terminated string */
void sh_exit(int ok);          /* SYS_EXIT: stop QEMU (exit status 0 when ok) */

#endif
