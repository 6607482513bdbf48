/*
 * Link-time stand-in for the NVIDIA driver's libcuda.so.1.
 *
 * candle links cudarc with `dynamic-linking`, so the linker wants a libcuda.so that
 * defines every driver function cudarc's bindings name, but libcuda belongs to the
 * driver and ships in no CUDA wheel. scripts/setup-cuda.sh appends one STUB(name) line
 * per `cu*` function found in cudarc's src/driver/sys/mod.rs and compiles the result
 * with soname libcuda.so.1, which is the name the binary then records as NEEDED.
 *
 * At run time the GPU machine's real driver library is found instead. Should this stub
 * ever be loaded, every call fails with CUDA_ERROR_NO_DEVICE (100) rather than crashing,
 * so a program reports "no CUDA device" instead of doing undefined work.
 *
 * The C signatures are deliberately uniform: only the symbol names matter to the linker.
 */
#define CUDA_ERROR_NO_DEVICE 100
#define STUB(name) \
    int name(void) { return CUDA_ERROR_NO_DEVICE; }
