// MXFP4 experts outside the int8 products, one source for every variant (written over
// simd.h): the MXFP4 -> bf16 dequantizer (for oneDNN's bf16 matmul where AMX tiles make it the
// faster prefill path) and the fused clamped SwiGLU. The GEMV and GEMM are mxfp4_int8.cpp.
//
// Layout (Hugging Face gpt-oss): blocks [E, N, KB, 16] uint8, byte j of block b holds element
// 2j in its low nibble and 2j+1 in its high nibble; scales [E, N, KB] uint8 are E8M0
// exponents (value 2^(s-127)).
#include "simd.h"

namespace gptoss {

using S = Simd;

// Dequantizes one expert (blocks [N, KB, 16], scales [N, KB]) into bf16 [N, KB*32]: per block,
// vpshufb gives 2 * E2M1 of each nibble as int8, unpacked into element order, widened to
// float and multiplied by 2^(s-127) / 2.
at::Tensor mxfp4_dequantize_bf16(const at::Tensor& blocks, const at::Tensor& scales) {
  TORCH_CHECK(blocks.dtype() == at::kByte && blocks.dim() == 3 && blocks.size(2) == 16 &&
                  blocks.is_contiguous(), "blocks must be contiguous uint8 [N, K/32, 16]");
  TORCH_CHECK(scales.dtype() == at::kByte && scales.dim() == 2 && scales.size(0) == blocks.size(0) &&
                  scales.size(1) == blocks.size(1) && scales.is_contiguous(),
              "scales must be contiguous uint8 [N, K/32] matching blocks");
  const int64_t N = blocks.size(0), KB = blocks.size(1);
  auto out = at::empty({N, KB * 32}, blocks.options().dtype(at::kBFloat16));
  const uint8_t* wb = blocks.data_ptr<uint8_t>();
  const uint8_t* sb = scales.data_ptr<uint8_t>();
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  at::parallel_for(0, N * KB, 256, [&](int64_t begin, int64_t end) {
    const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kFp4x2));
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t b = begin; b < end; ++b) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + b * 16));
      const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(v, low4));
      const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(v, 4), low4));
      const __m128i halves[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)};
      const S::F scale = S::set1f(e8m0(sb[b]) * 0.5f);
      for (int h = 0; h < 2; ++h) {
        S::F f[16 / S::L];
        S::widen_i8x16(halves[h], f);
        for (int i = 0; i < 16 / S::L; ++i) S::store_bf16(op + b * 32 + h * 16 + i * S::L, S::mul(f[i], scale));
      }
    }
  });
  return out;
}

// Clamped SwiGLU on interleaved float32 [R, 2I] (gate at even, linear at odd columns) ->
// bf16 [R, width] (zero-padded from I to width, ready for the down projection):
// gate' = min(gate, limit), linear' = clamp(linear, -limit, limit),
// out = gate' * sigmoid(alpha * gate') * (linear' + 1).
at::Tensor swiglu_bf16(const at::Tensor& h, double alpha, double limit, int64_t width) {
  TORCH_CHECK(h.dtype() == at::kFloat && h.dim() == 2 && h.is_contiguous() && h.size(1) % 2 == 0,
              "h must be contiguous float32 [R, 2I]");
  const int64_t R = h.size(0), I = h.size(1) / 2;
  TORCH_CHECK(width >= I && width % 16 == 0 && I % 16 == 0, "swiglu width must be >= I, both multiples of 16");
  auto out = at::zeros({R, width}, h.options().dtype(at::kBFloat16));
  const float* hp = h.data_ptr<float>();
  auto* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const S::F lim = S::set1f((float)limit), neg_lim = S::set1f((float)-limit);
  const S::F neg_alpha = S::set1f((float)-alpha), one = S::set1f(1.0f);
  at::parallel_for(0, R, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t i = 0; i < I; i += S::L) {
        S::F gate, lin;
        S::deinterleave(S::loadf(hp + r * 2 * I + 2 * i), S::loadf(hp + r * 2 * I + 2 * i + S::L), gate, lin);
        gate = S::minf(gate, lim);
        lin = S::maxf(S::minf(lin, lim), neg_lim);
        const S::F sig = S::div(one, S::add(one, S::exp(S::mul(gate, neg_alpha))));
        S::store_bf16(op + r * width + i, S::mul(S::mul(gate, sig), S::add(lin, one)));
      }
  });
  return out;
}

}  // namespace gptoss
