// Shared by the native kernels: the width of the machine's vector registers, as -march=native
// makes it, and how many there are.
//
// Each kernel works in vectors of exactly this width. A GCC vector type wider than the
// machine's registers is lowered to a block of memory that every operation loads and stores
// piece by piece: with 16-float vectors on an AVX2 machine the convolutions ran at a tenth of
// its matmul rate, 3x slower than XLA's own. Register blocks (accumulators, plus the values
// each step loads) are sized for kVectorRegisters.

#ifndef RESIZE_JAX_OPS_NATIVE_VECTOR_WIDTH_H_
#define RESIZE_JAX_OPS_NATIVE_VECTOR_WIDTH_H_

namespace resize_jax {

#if defined(__AVX512F__)
inline constexpr int kVectorLanes = 16, kVectorRegisters = 32;
#elif defined(__AVX__)
inline constexpr int kVectorLanes = 8, kVectorRegisters = 16;
#elif defined(__aarch64__)
inline constexpr int kVectorLanes = 4, kVectorRegisters = 32;
#else
inline constexpr int kVectorLanes = 4, kVectorRegisters = 16;
#endif

}  // namespace resize_jax

#endif  // RESIZE_JAX_OPS_NATIVE_VECTOR_WIDTH_H_
