// RMSNorm and RoPE on bf16 activations. Each is one pass over a few kilobytes per token, so in
// decode the cost is not arithmetic but the ~8 small torch ops the reference needs (each a
// dispatch and an allocation); one call here replaces them, twice (q, k) or twice (two norms)
// per layer and token.
#include "kernels.h"

namespace gptoss {

// out = bf16(w * x * rsqrt(mean(x^2) + eps)), in float32, per row of x bf16 [R, H].
at::Tensor rms_norm_bf16(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.is_contiguous() && x.size(-1) % 16 == 0,
              "x must be contiguous bf16 [..., H] with H a multiple of 16");
  const int64_t H = x.size(-1), R = x.numel() / H;
  TORCH_CHECK(w.dtype() == at::kFloat && w.is_contiguous() && w.numel() == H, "weight must be float32 [", H, "]");
  auto out = at::empty_like(x);
  const auto* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const float* wp = w.data_ptr<float>();
  at::parallel_for(0, R, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint16_t* row = xp + r * H;
      __m512 sq = _mm512_setzero_ps();
      for (int64_t i = 0; i < H; i += 16) {
        const __m512 v = bf16x16_to_ps(row + i);
        sq = _mm512_fmadd_ps(v, v, sq);
      }
      const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(hsum(sq) / H + (float)eps));
      for (int64_t i = 0; i < H; i += 16) {
        const __m512 v = _mm512_mul_ps(_mm512_mul_ps(bf16x16_to_ps(row + i), inv), _mm512_loadu_ps(wp + i));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(op + r * H + i), (__m256i)_mm512_cvtneps_pbh(v));
      }
    }
  });
  return out;
}

// Half-split rotation of x bf16 [B, T, heads, D] by cos/sin float32 [B, T, D/2]: pairs
// (i, i + D/2) -> (a cos - b sin, b cos + a sin). cos and sin are rounded to bf16 first, as the
// reference does; the products are kept in float32 and rounded once.
at::Tensor rope_bf16(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 4 && x.is_contiguous() && x.size(3) % 32 == 0,
              "x must be contiguous bf16 [B, T, heads, D] with D a multiple of 32");
  const int64_t B = x.size(0), T = x.size(1), heads = x.size(2), half = x.size(3) / 2;
  TORCH_CHECK(cos.dtype() == at::kFloat && sin.dtype() == at::kFloat && cos.is_contiguous() &&
                  sin.is_contiguous() && cos.numel() == B * T * half && sin.numel() == B * T * half,
              "cos and sin must be contiguous float32 [B, T, ", half, "]");
  auto out = at::empty_like(x);
  const auto* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  at::parallel_for(0, B * T, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt)
      for (int64_t i = 0; i < half; i += 16) {
        // float -> bf16 -> float: the reference multiplies by bf16 cos/sin
        const __m512 c = bf16x16_to_ps_raw(_mm512_cvtneps_pbh(_mm512_loadu_ps(cp + bt * half + i)));
        const __m512 s = bf16x16_to_ps_raw(_mm512_cvtneps_pbh(_mm512_loadu_ps(sp + bt * half + i)));
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t base = (bt * heads + h) * 2 * half;
          const __m512 a = bf16x16_to_ps(xp + base + i), b = bf16x16_to_ps(xp + base + half + i);
          const __m512 first = _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s));
          const __m512 second = _mm512_add_ps(_mm512_mul_ps(b, c), _mm512_mul_ps(a, s));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(op + base + i), (__m256i)_mm512_cvtneps_pbh(first));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(op + base + half + i), (__m256i)_mm512_cvtneps_pbh(second));
        }
      }
  });
  return out;
}

}  // namespace gptoss
