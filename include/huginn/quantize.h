// `huginn quantize`: rewrite a model's weights in another type (Q8_0, Q4_0, Q4_SB,
// BF16, F16, F32) as a GGUF file (architecture "huginn", docs/GGUF.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "huginn/tensor.h"

namespace huginn {

struct QuantizeOptions {
  DType type = DType::Q8_0;
  int threads = 0;
};

struct QuantizeReport {
  std::string output;       // path of the .gguf written
  int64_t bytes_in = 0;     // weight bytes of the source (tensors in use)
  int64_t bytes_out = 0;    // tensor bytes written
  // Tensors not stored in the requested type, with the reason.
  std::vector<std::pair<std::string, std::string>> kept;
};

// Parses "q8_0", "q4_0", "q4_sb", "bf16", "f16", "f32" (case-insensitive).
DType parse_weight_type(const std::string& s);

// Reads the model at `in` (any format Model::load accepts) and writes
// `out_dir`/model.gguf plus the config and tokenizer files of the source
// directory, so `out_dir` is a model directory every command loads.
QuantizeReport quantize_model(const std::string& in, const std::string& out_dir, const QuantizeOptions& opts);

}  // namespace huginn

namespace huginn {

// How far one model's logits are from another's over the same positions
// (the quantization drift that docs/PERFORMANCE.md reports).
struct LogitDrift {
  int64_t positions = 0;
  double max_abs_error = 0;   // max over all logits of |a - b|
  double rms_error = 0;       // root mean square of a - b
  double max_abs_logit = 0;   // max |a|, for scale
  int64_t top1_agree = 0;     // positions whose argmax is the same
  double mean_kl = 0;         // mean over positions of KL(softmax(a) || softmax(b)), nats
  double max_kl = 0;
};

// `a` (the reference) and `b` are [positions, vocab], row-major.
LogitDrift logit_drift(const float* a, const float* b, int64_t positions, int64_t vocab);

}  // namespace huginn
