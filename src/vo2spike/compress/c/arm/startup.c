/* Minimal Cortex-M4 start-up for QEMU's mps2-an386: vector table, .data copy, .bss
 * clearing, main(), then a semihosting exit. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern void vo2_stack_top(void); /* defined by the linker script: the initial stack pointer */
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

static int32_t sh_call(int32_t op, uint32_t arg)
{
    register int32_t r0 __asm__("r0") = op;
    register uint32_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_write0(const char *s)
{
    sh_call(0x04, (uint32_t)(uintptr_t)s);
}

void sh_exit(int ok)
{
    /* ADP_Stopped_ApplicationExit (status 0) or ADP_Stopped_RunTimeErrorUnknown (1) */
    sh_call(0x18, ok ? 0x20026u : 0x20023u);
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = __data_load, *dst = __data_start;
    while (dst < __data_end)
        *dst++ = *src++;
    for (dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
    sh_exit(main() == 0);
}

void Fault_Handler(void)
{
    sh_write0("FAULT\n");
    sh_exit(0);
}

typedef void (*vo2_vector_t)(void);

__attribute__((section(".vectors"), used)) const vo2_vector_t vo2_vectors[16] = {
    vo2_stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0,
    Fault_Handler, Fault_Handler,
};
