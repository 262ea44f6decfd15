// Shared pieces of the CPU kernels (see mxfp4.cpp, dense.cpp; bound to Python in module.cpp).
// Built by build.py with AVX-512 F/BW/VL/DQ and AVX512_BF16.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace gptoss {

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// Unaligned load of 32 bf16: tensors (e.g. mmap'd safetensors) need not be 64-byte aligned.
inline __m512bh load_bf16(const __m512bh* p) { return (__m512bh)_mm512_loadu_si512(p); }

// 16 bf16 values (raw bits) -> 16 floats (exact: bf16 is the top half of a float)
inline __m512 bf16x16_to_ps(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
inline __m512 bf16x16_to_ps_raw(__m256bh v) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)v), 16));
}

constexpr int kMaxRows = 4;  // activation rows sharing one decoded weight block

// exp(x) for 16 floats: 2^(x log2 e) split as 2^n * 2^f, |f| <= 1/2, 2^f by a degree-6
// polynomial (relative error ~2e-7); vscalefps applies 2^n and saturates to 0 / inf.
inline __m512 exp_ps(__m512 x) {
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_mul_ps(_mm512_sub_ps(t, n), _mm512_set1_ps(0.69314718055994531f));
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// mxfp4.cpp
at::Tensor moe_mxfp4_gemv(const at::Tensor& x, const at::Tensor& blocks, const at::Tensor& scales,
                          const at::Tensor& bias, const at::Tensor& experts, const at::Tensor& offsets);
at::Tensor mxfp4_dequantize_bf16(const at::Tensor& blocks, const at::Tensor& scales);
at::Tensor swiglu_bf16(const at::Tensor& h, double alpha, double limit, int64_t width);
at::Tensor moe_decode(const at::Tensor& x, const at::Tensor& router_w, const at::Tensor& router_b,
                      int64_t top_k, const at::Tensor& gu_blocks, const at::Tensor& gu_scales,
                      const at::Tensor& gu_bias, const at::Tensor& dn_blocks, const at::Tensor& dn_scales,
                      const at::Tensor& dn_bias, double alpha, double limit);
// attention.cpp
at::Tensor attention_decode(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& sinks, const at::Tensor& q_positions, int64_t k_offset,
                            int64_t window, double scale);
// norm_rope.cpp
at::Tensor rms_norm_bf16(const at::Tensor& x, const at::Tensor& w, double eps);
at::Tensor rope_bf16(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
// dense.cpp
// bias (float32 or bf16 [N]) is added; out_bf16 rounds the result to bf16, else float32
at::Tensor bf16_gemv(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias,
                     bool out_bf16);
at::Tensor int8_gemv(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s,
                     const c10::optional<at::Tensor>& bias, bool out_bf16);
int64_t stream_read(const at::Tensor& buf);

}  // namespace gptoss
