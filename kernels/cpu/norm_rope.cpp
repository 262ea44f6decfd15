// RMSNorm and RoPE on bf16 activations, written once over simd.h for both variants. Each is
// one pass over a few kilobytes per token, so in decode the cost is not arithmetic but the ~8
// small torch ops the reference needs (each a dispatch and an allocation); one call here
// replaces them, twice (q, k) or twice (two norms) per layer and token.
#include "simd.h"

namespace gptoss {

namespace {
using S = Simd;
constexpr int L = S::L;
}  // namespace

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
      typename S::F sq = S::zero();
      for (int64_t i = 0; i < H; i += L) {
        const typename S::F v = load_bf16_ps(row + i);
        sq = S::fmadd(v, v, sq);
      }
      const typename S::F inv = S::set1f(1.0f / std::sqrt(S::hsum(sq) / H + (float)eps));
      for (int64_t i = 0; i < H; i += L)
        S::store_bf16(op + r * H + i, S::mul(S::mul(load_bf16_ps(row + i), inv), S::loadf(wp + i)));
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
      for (int64_t i = 0; i < half; i += L) {
        alignas(64) uint16_t cb[L], sb[L];  // float -> bf16 -> float: the reference's bf16 cos/sin
        S::store_bf16(cb, S::loadf(cp + bt * half + i));
        S::store_bf16(sb, S::loadf(sp + bt * half + i));
        const typename S::F c = load_bf16_ps(cb), s = load_bf16_ps(sb);
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t base = (bt * heads + h) * 2 * half;
          const typename S::F a = load_bf16_ps(xp + base + i), b = load_bf16_ps(xp + base + half + i);
          S::store_bf16(op + base + i, S::sub(S::mul(a, c), S::mul(b, s)));
          S::store_bf16(op + base + half + i, S::add(S::mul(b, c), S::mul(a, s)));
        }
      }
  });
  return out;
}

}  // namespace gptoss
