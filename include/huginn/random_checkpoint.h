// Writes a checkpoint with random weights in the exact Hugging Face layout of
// Huginn-0125 (config.json, generation_config.json, safetensors, and a
// byte-level tokenizer with Huginn's special tokens and chat template). It is
// for demos, tests and benchmarks: the weights are random, so the text it
// produces is meaningless.
#pragma once

#include <cstdint>
#include <string>

#include "huginn/config.h"
#include "huginn/tensor.h"

namespace huginn {

struct RandomCheckpointOptions {
  ModelConfig config;     // shape of the model (defaults: the published one)
  DType dtype = DType::BF16;
  int shards = 1;         // > 1 writes model-0000k-of-0000n.safetensors + index
  uint64_t seed = 0;
  bool write_tokenizer = true;  // needs vocab_size >= 65536 (Huginn's special ids)
  std::string chat_template;    // written to tokenizer_config.json
  int threads = 0;
};

// Named shapes: "full" (the published 3.5B model), "demo" (small, quick to
// run, real vocabulary and special tokens), "tiny" (like the golden tiny model).
ModelConfig random_checkpoint_preset(const std::string& name);

void write_random_checkpoint(const std::string& dir, const RandomCheckpointOptions& opts);

}  // namespace huginn
