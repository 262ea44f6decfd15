// MXFP4 experts on AVX2 + FMA (no AVX-512): the dequantizer for prefill tiles and the fused
// clamped SwiGLU; same contracts as mxfp4.cpp (the decode GEMV is mxfp4_int8.cpp, shared).
//
// Layout (Hugging Face gpt-oss): blocks [E, N, KB, 16] uint8, byte j of block b holds element
// 2j in its low nibble and 2j+1 in its high nibble; scales [E, N, KB] uint8 are E8M0
// exponents (value 2^(s-127)).
#include "avx2.h"

namespace gptoss {
namespace {

// One expert (blocks [N, KB, 16], scales [N, KB]) -> bf16 [N, KB*32], 32 values per block:
// vpshufb gives 2 * E2M1 as int8, widened to float and scaled by 2^(s-127) / 2.
at::Tensor dequantize(const at::Tensor& blocks, const at::Tensor& scales) {
  TORCH_CHECK(blocks.dtype() == at::kByte && blocks.dim() == 3 && blocks.size(2) == 16 &&
                  blocks.is_contiguous(), "blocks must be contiguous uint8 [N, K/32, 16]");
  TORCH_CHECK(scales.dtype() == at::kByte && scales.dim() == 2 && scales.size(0) == blocks.size(0) &&
                  scales.size(1) == blocks.size(1) && scales.is_contiguous(),
              "scales must be contiguous uint8 [N, K/32] matching blocks");
  const int64_t N = blocks.size(0), KB = blocks.size(1);
  auto out = at::empty({N, KB * 32}, blocks.options().dtype(at::kBFloat16));
  const uint8_t* wb = blocks.data_ptr<uint8_t>();
  const uint8_t* sb = scales.data_ptr<uint8_t>();
  void* base = out.data_ptr();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    alignas(16) int8_t t[16];
    for (int i = 0; i < 16; ++i) t[i] = kFp4x2[i];
    const __m128i table = _mm_load_si128(reinterpret_cast<const __m128i*>(t)), l4 = _mm_set1_epi8(0x0F);
    for (int64_t n = begin; n < end; ++n)
      for (int64_t b = 0; b < KB; ++b) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + (n * KB + b) * 16));
        const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(v, l4));
        const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(v, 4), l4));
        const __m128i part[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)};  // element order
        const __m256 sc = _mm256_set1_ps(e8m0(sb[n * KB + b]) * 0.5f);
        for (int h = 0; h < 4; ++h) {
          const __m128i eight = h % 2 ? _mm_srli_si128(part[h / 2], 8) : part[h / 2];
          const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(eight)), sc);
          const int64_t at = (n * KB + b) * 32 + 8 * h;
          _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(base) + at), ps_to_bf16x8(f));
        }
      }
  });
  return out;
}
}  // namespace

at::Tensor mxfp4_dequantize_bf16(const at::Tensor& blocks, const at::Tensor& scales) {
  return dequantize(blocks, scales);
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
  const __m256 lim = _mm256_set1_ps((float)limit), neg_lim = _mm256_set1_ps((float)-limit);
  const __m256 neg_alpha = _mm256_set1_ps((float)-alpha), one = _mm256_set1_ps(1.0f);
  const __m256i evens = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);  // per half: evens, then odds
  at::parallel_for(0, R, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t i = 0; i < I; i += 8) {
        const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(hp + r * 2 * I + 2 * i), evens);
        const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(hp + r * 2 * I + 2 * i + 8), evens);
        __m256 gate = _mm256_permute2f128_ps(a, b, 0x20), lin = _mm256_permute2f128_ps(a, b, 0x31);
        gate = _mm256_min_ps(gate, lim);
        lin = _mm256_max_ps(_mm256_min_ps(lin, lim), neg_lim);
        const __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, exp8_ps(_mm256_mul_ps(gate, neg_alpha))));
        const __m256 v = _mm256_mul_ps(_mm256_mul_ps(gate, sig), _mm256_add_ps(lin, one));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(op + r * width + i), ps_to_bf16x8(v));
      }
  });
  return out;
}

}  // namespace gptoss
