// RMSNorm and RoPE on AVX2 + FMA: the algorithms of norm_rope.cpp (see there for why each is
// one call) with 8-wide vectors.
#include "avx2.h"

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
      __m256 sq = _mm256_setzero_ps();
      for (int64_t i = 0; i < H; i += 8) {
        const __m256 v = bf16x8_to_ps(row + i);
        sq = _mm256_fmadd_ps(v, v, sq);
      }
      const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(hsum8(sq) / H + (float)eps));
      for (int64_t i = 0; i < H; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_mul_ps(bf16x8_to_ps(row + i), inv), _mm256_loadu_ps(wp + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(op + r * H + i), ps_to_bf16x8(v));
      }
    }
  });
  return out;
}

// Half-split rotation of x bf16 [B, T, heads, D] by cos/sin float32 [B, T, D/2]: pairs
// (i, i + D/2) -> (a cos - b sin, b cos + a sin); cos and sin rounded to bf16 first, as the
// reference does, the products kept in float32 and rounded once.
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
      for (int64_t i = 0; i < half; i += 8) {
        alignas(16) uint16_t cb[8], sb[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(cb), ps_to_bf16x8(_mm256_loadu_ps(cp + bt * half + i)));
        _mm_store_si128(reinterpret_cast<__m128i*>(sb), ps_to_bf16x8(_mm256_loadu_ps(sp + bt * half + i)));
        const __m256 c = bf16x8_to_ps(cb), s = bf16x8_to_ps(sb);
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t base = (bt * heads + h) * 2 * half;
          const __m256 a = bf16x8_to_ps(xp + base + i), b = bf16x8_to_ps(xp + base + half + i);
          const __m256 first = _mm256_sub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, s));
          const __m256 second = _mm256_add_ps(_mm256_mul_ps(b, c), _mm256_mul_ps(a, s));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(op + base + i), ps_to_bf16x8(first));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(op + base + half + i), ps_to_bf16x8(second));
        }
      }
  });
  return out;
}

}  // namespace gptoss
