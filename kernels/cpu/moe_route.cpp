// Decode's routed-expert block, in plain C++ shared by every CPU variant: routing, sorting the
// (token, slot) rows by expert, and the weighted sum; the GEMVs and the SwiGLU it calls are
// mxfp4_int8.cpp's and mxfp4.cpp's.
#include "kernels.h"

namespace gptoss {

// The whole routed-expert block for a few rows (decode), in one call: rows (token, slot) sorted
// by expert, gate/up GEMV, fused SwiGLU, down GEMV, and the routing-weighted sum per token.
// Saves the ~20 small torch ops (~0.3 ms) the same steps cost from Python, per layer and token.
// x bf16 [T, H]; index int64 [T, k]; weights float32 [T, k]. Returns float32 [T, H].
static at::Tensor moe_rows(const at::Tensor& x, const at::Tensor& index, const at::Tensor& weights,
                           const at::Tensor& gu_blocks, const at::Tensor& gu_scales, const at::Tensor& gu_bias,
                           const at::Tensor& dn_blocks, const at::Tensor& dn_scales, const at::Tensor& dn_bias,
                           double alpha, double limit) {
  TORCH_CHECK(index.dtype() == at::kLong && weights.dtype() == at::kFloat && index.dim() == 2 &&
                  weights.sizes() == index.sizes() && index.size(0) == x.size(0),
              "index must be int64 [T, k] and weights float32 [T, k]");
  const int64_t T = index.size(0), k = index.size(1), H = x.size(1);
  const int64_t width_in = gu_blocks.size(2) * 32, width_down = dn_blocks.size(2) * 32;
  auto idx = index.contiguous();
  const int64_t* ip = idx.data_ptr<int64_t>();
  std::vector<int64_t> order(T * k);
  for (int64_t i = 0; i < T * k; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ip[a] < ip[b]; });
  std::vector<int64_t> experts, offsets{0};
  for (int64_t i = 0; i < T * k; ++i) {
    if (i == 0 || ip[order[i]] != ip[order[i - 1]]) {
      if (i) offsets.push_back(i);
      experts.push_back(ip[order[i]]);
    }
  }
  offsets.push_back(T * k);
  auto rows = at::zeros({T * k, width_in}, x.options().dtype(at::kBFloat16));
  auto xc = x.to(at::kBFloat16).contiguous();
  for (int64_t i = 0; i < T * k; ++i)  // gather: sorted row i is token order[i] / k
    std::memcpy(rows.data_ptr<at::BFloat16>() + i * width_in, xc.data_ptr<at::BFloat16>() + (order[i] / k) * H,
                H * sizeof(at::BFloat16));
  auto ex = at::tensor(experts, at::kLong), off = at::tensor(offsets, at::kLong);
  auto h = moe_mxfp4_gemv(rows, gu_blocks, gu_scales, gu_bias, ex, off);
  auto y = moe_mxfp4_gemv(swiglu_bf16(h, alpha, limit, width_down), dn_blocks, dn_scales, dn_bias, ex, off);
  const int64_t N = y.size(1);
  auto out = at::zeros({T, N}, x.options().dtype(at::kFloat));
  auto wc = weights.contiguous();
  const float* wp = wc.data_ptr<float>();
  for (int64_t i = 0; i < T * k; ++i) {  // scatter: weighted sum over each token's slots
    float* o = out.data_ptr<float>() + (order[i] / k) * N;
    const float* yr = y.data_ptr<float>() + i * N;
    const float w = wp[order[i]];
    for (int64_t j = 0; j < N; ++j) o[j] += w * yr[j];
  }
  return out;
}

// Decode's whole MoE block in one call: router logits (bf16 GEMV plus bias, rounded to bf16 as
// `linear` returns them), the top_k experts per row (highest logit first, ties to the lower
// index), softmax over the chosen logits (rounded to bf16, as the reference computes it in the
// activations' dtype), then moe_rows. x bf16 [T, H]; router_w bf16 [E, H]; router_b bf16 [E].
// Returns bf16 [T, H].
at::Tensor moe_decode(const at::Tensor& x, const at::Tensor& router_w, const at::Tensor& router_b,
                      int64_t top_k, const at::Tensor& gu_blocks, const at::Tensor& gu_scales,
                      const at::Tensor& gu_bias, const at::Tensor& dn_blocks, const at::Tensor& dn_scales,
                      const at::Tensor& dn_bias, double alpha, double limit) {
  TORCH_CHECK(x.dtype() == at::kBFloat16 && x.dim() == 2 && x.is_contiguous() && x.size(1) % 32 == 0,
              "x must be contiguous bf16 [T, H] with H a multiple of 32");
  TORCH_CHECK(router_w.dtype() == at::kBFloat16 && router_w.dim() == 2 && router_w.size(1) == x.size(1) &&
                  router_b.dtype() == at::kBFloat16 && router_b.numel() == router_w.size(0),
              "router weight must be bf16 [E, H] and bias bf16 [E]");
  const int64_t T = x.size(0), E = router_w.size(0);
  TORCH_CHECK(top_k >= 1 && top_k <= E, "top_k must be in [1, ", E, "]");
  const at::Tensor logits = bf16_gemv(x, router_w.contiguous(), router_b.contiguous(), true);
  auto index = at::empty({T, top_k}, x.options().dtype(at::kLong));
  auto weights = at::empty({T, top_k}, x.options().dtype(at::kFloat));
  const auto* lp = logits.data_ptr<at::BFloat16>();
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int64_t> order(E);
    for (int64_t e = 0; e < E; ++e) order[e] = e;
    const at::BFloat16* row = lp + t * E;
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int64_t a, int64_t b) {
      const float fa = row[a], fb = row[b];
      return fa > fb || (fa == fb && a < b);
    });
    const float top = row[order[0]];
    float total = 0.f;
    std::vector<float> p(top_k);
    for (int64_t j = 0; j < top_k; ++j) total += p[j] = std::exp(static_cast<float>(row[order[j]]) - top);
    for (int64_t j = 0; j < top_k; ++j) {
      index.data_ptr<int64_t>()[t * top_k + j] = order[j];
      weights.data_ptr<float>()[t * top_k + j] = static_cast<float>(at::BFloat16(p[j] / total));
    }
  }
  return moe_rows(x, index, weights, gu_blocks, gu_scales, gu_bias, dn_blocks, dn_scales, dn_bias,
                  alpha, limit).to(at::kBFloat16);
}

}  // namespace gptoss
