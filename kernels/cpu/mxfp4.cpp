// MXFP4 experts on AVX-512: a fast MXFP4 -> bf16 dequantizer for prefill tiles (one permute
// through a 16-entry bf16 table of E2M1 values per block, the scale added to the exponents) and
// the fused clamped SwiGLU. The decode GEMV is mxfp4_int8.cpp, shared with AVX2.
//
// Layout (Hugging Face gpt-oss): blocks [E, N, KB, 16] uint8, byte j of block b holds element
// 2j in its low nibble and 2j+1 in its high nibble; scales [E, N, KB] uint8 are E8M0
// exponents (value 2^(s-127)).
#include "kernels.h"

namespace gptoss {
namespace {

// E2M1 code -> bf16 bits: 0, .5, 1, 1.5, 2, 3, 4, 6, then the same negated.
constexpr uint16_t kFp4Bf16[16] = {0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0,
                                   0x8000, 0xBF00, 0xBF80, 0xBFC0, 0xC000, 0xC040, 0xC080, 0xC0C0};

inline __m512i fp4_table() {
  alignas(64) uint16_t t[32];
  for (int i = 0; i < 32; ++i) t[i] = kFp4Bf16[i & 15];
  return _mm512_load_si512(t);
}

// 16 packed bytes -> 32 bf16 values in element order (2j = low nibble, 2j+1 = high nibble).
inline __m512bh decode_block(const uint8_t* p, __m512i table) {
  __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  __m512i hi = _mm512_slli_epi32(d, 12);  // high nibble moves to bits 16..19
  // (d | hi) & 0x000F000F: word 2j = low nibble, word 2j+1 = high nibble
  __m512i idx = _mm512_ternarylogic_epi32(d, hi, _mm512_set1_epi32(0x000F000F), 0xA8);
  return (__m512bh)_mm512_permutexvar_epi16(idx, table);
}

}  // namespace

// Dequantizes one expert (blocks [N, KB, 16], scales [N, KB]) into bf16 [N, KB*32].
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
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    const __m512i table = fp4_table();
    // table entries that are +-0 keep their bits; the others take the scale in their exponent
    const __mmask32 nonzero = ~((1u << 0) | (1u << 8) | (1u << 16) | (1u << 24));
    for (int64_t n = begin; n < end; ++n)
      for (int64_t b = 0; b < KB; ++b) {
        const int s = sb[n * KB + b];
        uint16_t* dst = op + (n * KB + b) * 32;
        if (s >= 3 && s <= 250) {  // exponent add cannot under/overflow (table exps 126..129)
          __m512i scaled = _mm512_mask_add_epi16(table, nonzero, table, _mm512_set1_epi16((int16_t)((s - 127) << 7)));
          _mm512_storeu_si512(dst, (__m512i)decode_block(wb + (n * KB + b) * 16, scaled));
          continue;
        }
        __m512i wi = (__m512i)decode_block(wb + (n * KB + b) * 16, table);
        __m512 lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(wi)), 16));
        __m512 hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(wi, 1)), 16));
        __m512 sc = _mm512_set1_ps(e8m0((uint8_t)s));
        _mm512_storeu_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, sc), _mm512_mul_ps(lo, sc)));
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
  const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
  const __m512 lim = _mm512_set1_ps((float)limit), neg_lim = _mm512_set1_ps((float)-limit);
  const __m512 neg_alpha = _mm512_set1_ps((float)-alpha), one = _mm512_set1_ps(1.0f);
  at::parallel_for(0, R, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t i = 0; i < I; i += 16) {
        const __m512 a = _mm512_loadu_ps(hp + r * 2 * I + 2 * i);
        const __m512 b = _mm512_loadu_ps(hp + r * 2 * I + 2 * i + 16);
        __m512 gate = _mm512_permutex2var_ps(a, evens, b);
        __m512 lin = _mm512_permutex2var_ps(a, odds, b);
        gate = _mm512_min_ps(gate, lim);
        lin = _mm512_max_ps(_mm512_min_ps(lin, lim), neg_lim);
        const __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_mul_ps(gate, neg_alpha))));
        const __m512 v = _mm512_mul_ps(_mm512_mul_ps(gate, sig), _mm512_add_ps(lin, one));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(op + r * width + i), (__m256i)_mm512_cvtneps_pbh(v));
      }
  });
  return out;
}

}  // namespace gptoss
