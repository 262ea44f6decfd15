// Python bindings of the CPU kernels (built by build.py with torch.utils.cpp_extension), the
// same names for every variant; `isa` says which one this is.
#include <torch/extension.h>

#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace gptoss;
  m.def("moe_mxfp4_gemv", &moe_mxfp4_gemv, "grouped MXFP4 GEMV over selected experts");
  m.def("moe_mxfp4_gemm", &moe_mxfp4_gemm, "grouped MXFP4 GEMM over selected experts (many rows each)");
  m.def("mxfp4_dequantize_bf16", &mxfp4_dequantize_bf16, "one expert MXFP4 -> bf16");
#if defined(__AVX512F__)
  m.attr("isa") = "avx512";
#else
  m.attr("isa") = "avx2";
#endif
  m.def("swiglu_bf16", &swiglu_bf16, "clamped SwiGLU, interleaved float32 -> bf16");
  m.def("moe_decode", &moe_decode, "router, top-k and routed experts for a few rows, in one call");
  m.def("attention_bf16", &attention_bf16, "tiled attention with sinks (any number of queries)");
  m.def("attention_bf16_packed", &attention_bf16_packed, "the same over a packed KV cache");
  m.def("kv_store_packed", &kv_store_packed, "writes keys and values into a packed KV cache");
  m.def("rms_norm_bf16", &rms_norm_bf16, "RMSNorm of bf16 rows");
  m.def("rope_bf16", &rope_bf16, "half-split RoPE of bf16 q or k");
  m.def("bf16_gemv", &bf16_gemv, "bf16 GEMV for a few rows");
  m.def("int8_gemv", &int8_gemv, "int8 GEMV with per-32 block scales");
  m.def("int8_gemm", &int8_gemm, "int8 GEMM with per-32 block scales (many rows)");
  m.def("stream_read", &stream_read, "read a buffer once (bandwidth measurement)");
}
