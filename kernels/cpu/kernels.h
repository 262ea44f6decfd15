// Shared pieces of the CPU kernels, bound to Python in module.cpp. build.py compiles every
// source once per CPU kind: AVX-512 (F/BW/VL/DQ, AVX512_BF16, AVX512_VNNI) or AVX2 + FMA; the
// kernels are written once over simd.h (moe_route.cpp is plain C++), so each declaration
// below has one definition and one contract.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace gptoss {

// The result of a GEMV with the bias added and, on request, rounded to bf16 as it is stored
// (what `linear` returns for bf16 inputs), so no torch op follows the kernel.
struct GemvOutput {
  at::Tensor tensor;
  float* f32 = nullptr;
  at::BFloat16* b16 = nullptr;
  const float* bias_f32 = nullptr;
  const at::BFloat16* bias_b16 = nullptr;
  int64_t N;

  GemvOutput(int64_t R, int64_t N, const at::TensorOptions& options,
             const c10::optional<at::Tensor>& bias, bool out_bf16) : N(N) {
    tensor = at::empty({R, N}, options.dtype(out_bf16 ? at::kBFloat16 : at::kFloat));
    if (out_bf16) b16 = tensor.data_ptr<at::BFloat16>(); else f32 = tensor.data_ptr<float>();
    if (bias.has_value() && bias->defined()) {
      TORCH_CHECK(bias->is_contiguous() && bias->numel() == N &&
                      (bias->dtype() == at::kFloat || bias->dtype() == at::kBFloat16),
                  "bias must be contiguous float32 or bf16 [", N, "]");
      if (bias->dtype() == at::kFloat) bias_f32 = bias->data_ptr<float>();
      else bias_b16 = bias->data_ptr<at::BFloat16>();
    }
  }
  void store(int64_t r, int64_t n, float v) const {
    if (bias_f32) v += bias_f32[n];
    if (bias_b16) v += static_cast<float>(bias_b16[n]);
    if (b16) b16[r * N + n] = at::BFloat16(v); else f32[r * N + n] = v;
  }
};

inline void check_mxfp4(const at::Tensor& blocks, const at::Tensor& scales) {
  TORCH_CHECK(blocks.dtype() == at::kByte && blocks.dim() == 4 && blocks.size(3) == 16,
              "mxfp4 blocks must be uint8 [E, N, K/32, 16], got ", blocks.sizes());
  TORCH_CHECK(scales.dtype() == at::kByte && scales.dim() == 3 &&
                  scales.size(0) == blocks.size(0) && scales.size(1) == blocks.size(1) &&
                  scales.size(2) == blocks.size(2),
              "mxfp4 scales must be uint8 [E, N, K/32] matching blocks, got ", scales.sizes());
  TORCH_CHECK(blocks.is_contiguous() && scales.is_contiguous(), "mxfp4 tensors must be contiguous");
}

// MXFP4 values: E2M1 code -> 2 * value (0, .5, 1, 1.5, 2, 3, 4, 6, then the same negated), and
// the E8M0 scale byte s -> 2^(s-127) (255 is NaN in the format).
constexpr int8_t kFp4x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
struct E8m0Table {
  float v[256];
  E8m0Table() {
    for (int s = 0; s < 256; ++s) v[s] = s == 255 ? NAN : std::ldexp(1.0f, s - 127);
  }
};
inline const E8m0Table kE8m0;
inline float e8m0(uint8_t s) { return kE8m0.v[s]; }
// A float16 scale (stored as its bits) as float (F16C, which every variant requires).
inline float half_to_float(const at::Half& h) { return _cvtsh_ss(h.x); }

// One block of 32 activations -> int8 steps of its absmax / 127 (round half to even, in float32
// as the int8 reference computes it); returns the absmax. The int8 GEMV and GEMMs lay the steps
// out each their own way.
template <typename T>
inline float quantize_block32(const T* src, int8_t steps[32]) {
  float v[32], amax = 0.f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i] = static_cast<float>(src[i])));
  const float inv = amax > 0 ? 127.f / amax : 0.f;
  // cvtss2si, not lrintf: inline, where lrintf is a library call per element
  for (int i = 0; i < 32; ++i) steps[i] = (int8_t)_mm_cvtss_si32(_mm_set_ss(v[i] * inv));
  return amax;
}

// x [R, K] float32 -> int16 steps of each row's absmax / 32767 (round half to even; error
// ~1e-5 of the row's max): the int8 GEMVs' activations. Returns the steps, one per row.
inline std::vector<float> quantize_rows_int16(const float* x, int64_t R, int64_t K, int16_t* q) {
  std::vector<float> steps(R);
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * K;
    float m = 0.f;
    for (int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs(xr[k]));
    steps[r] = m > 0 ? m / 32767.f : 1.f;
    const float inv = 1.f / steps[r];
    // cvtss2si, not lrintf: inline, where lrintf is a library call per element
    for (int64_t k = 0; k < K; ++k) q[r * K + k] = (int16_t)_mm_cvtss_si32(_mm_set_ss(xr[k] * inv));
  }
  return steps;
}

// The arguments of the grouped MXFP4 products (rows x[offsets[g]:offsets[g+1]] times expert
// experts[g]), checked, and what the kernels read of them.
struct GroupedMxfp4 {
  int64_t E, N, KB, R, groups;
  const int64_t* experts;
  const int64_t* offsets;
  const float* bias_f32 = nullptr;
  const at::BFloat16* bias_b16 = nullptr;
  GroupedMxfp4(const at::Tensor& x, const at::Tensor& blocks, const at::Tensor& scales,
               const at::Tensor& bias, const at::Tensor& experts_t, const at::Tensor& offsets_t) {
    check_mxfp4(blocks, scales);
    E = blocks.size(0), N = blocks.size(1), KB = blocks.size(2);
    TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 2 && x.size(1) == KB * 32 && x.is_contiguous(),
                "x must be contiguous bf16 [R, ", KB * 32, "], got ", x.sizes());
    TORCH_CHECK(experts_t.dtype() == at::kLong && offsets_t.dtype() == at::kLong &&
                    offsets_t.numel() == experts_t.numel() + 1,
                "experts must be int64 [G] and offsets int64 [G+1]");
    if (bias.defined() && bias.numel() > 0) {
      TORCH_CHECK((bias.dtype() == at::kFloat || bias.dtype() == at::kBFloat16) &&
                      bias.is_contiguous() && bias.numel() == E * N,
                  "bias must be contiguous float32 or bf16 [E, N]");
      if (bias.dtype() == at::kFloat) bias_f32 = bias.data_ptr<float>();
      else bias_b16 = bias.data_ptr<at::BFloat16>();
    }
    R = x.size(0), groups = experts_t.numel();
    experts = experts_t.data_ptr<int64_t>(), offsets = offsets_t.data_ptr<int64_t>();
    for (int64_t g = 0; g < groups; ++g)
      TORCH_CHECK(experts[g] >= 0 && experts[g] < E && offsets[g] <= offsets[g + 1] && offsets[g + 1] <= R,
                  "expert index ", experts[g], " or row offsets out of range");
    TORCH_CHECK(groups == 0 || offsets[0] >= 0, "row offsets out of range");
  }
  float bias(int64_t e, int64_t n) const {  // read per selected expert only, in its stored dtype
    return bias_f32 ? bias_f32[e * N + n] : bias_b16 ? static_cast<float>(bias_b16[e * N + n]) : 0.0f;
  }
};

// The arguments of the int8 dense products: q int8 [N, K] with a float16 scale per 32 weights
// of a row (agent.kernels.Int8Weight), x [R, K] float32 or bf16.
inline void check_int8(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s) {
  TORCH_CHECK(q.dtype() == at::kChar && q.dim() == 2 && q.is_contiguous() && q.size(1) % 32 == 0,
              "q must be contiguous int8 [N, K] with K a multiple of 32");
  TORCH_CHECK(s.dtype() == at::kHalf && s.is_contiguous() && s.numel() == q.size(0) * (q.size(1) / 32),
              "scales must be contiguous float16 [N, K/32]");
  TORCH_CHECK((x.dtype() == at::kFloat || x.dtype() == at::kBFloat16) && x.dim() == 2 && x.size(1) == q.size(1),
              "x must be float32 or bf16 [R, ", q.size(1), "]");
}

constexpr int kMaxRows = 4;  // activation rows sharing one decoded weight block

// mxfp4_int8.cpp
at::Tensor moe_mxfp4_gemv(const at::Tensor& x, const at::Tensor& blocks, const at::Tensor& scales,
                          const at::Tensor& bias, const at::Tensor& experts, const at::Tensor& offsets);
at::Tensor moe_mxfp4_gemm(const at::Tensor& x, const at::Tensor& blocks, const at::Tensor& scales,
                          const at::Tensor& bias, const at::Tensor& experts, const at::Tensor& offsets);
// mxfp4.cpp
at::Tensor mxfp4_dequantize_bf16(const at::Tensor& blocks, const at::Tensor& scales);
at::Tensor swiglu_bf16(const at::Tensor& h, double alpha, double limit, int64_t width);
// moe_route.cpp
at::Tensor moe_decode(const at::Tensor& x, const at::Tensor& router_w, const at::Tensor& router_b,
                      int64_t top_k, const at::Tensor& gu_blocks, const at::Tensor& gu_scales,
                      const at::Tensor& gu_bias, const at::Tensor& dn_blocks, const at::Tensor& dn_scales,
                      const at::Tensor& dn_bias, double alpha, double limit);
// attention.cpp: bf16 q, k, v, any number of queries; bf16 out
at::Tensor attention_bf16(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& sinks, const at::Tensor& q_positions, int64_t k_offset,
                          int64_t window, double scale);
// the same over a KV cache in the kernel's packed layouts, and the cache's writes
at::Tensor attention_bf16_packed(const at::Tensor& q, const at::Tensor& pk, const at::Tensor& pv,
                                 const at::Tensor& sinks, const at::Tensor& q_positions,
                                 int64_t length, int64_t window, double scale);
void kv_store_packed(at::Tensor& pk, at::Tensor& pv, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& positions);
// norm_rope.cpp
at::Tensor rms_norm_bf16(const at::Tensor& x, const at::Tensor& w, double eps);
at::Tensor rope_bf16(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
// dense.cpp
// bias (float32 or bf16 [N]) is added; out_bf16 rounds the result to bf16, else float32
at::Tensor bf16_gemv(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bias,
                     bool out_bf16);
at::Tensor int8_gemv(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s, double unit,
                     const c10::optional<at::Tensor>& bias, bool out_bf16);
int64_t stream_read(const at::Tensor& buf);
// mxfp4_int8.cpp: int8 weights times many rows (prefill)
at::Tensor int8_gemm(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s, double unit,
                     const c10::optional<at::Tensor>& bias, bool out_bf16);

}  // namespace gptoss
