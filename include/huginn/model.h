// A loaded Huginn model: configuration plus read-only weight views into the
// memory-mapped checkpoint files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "huginn/config.h"
#include "huginn/tensor.h"

namespace huginn {

struct BlockWeights {
  // RMSNorm weights and qk biases are small: held as float32 copies.
  std::vector<float> norm_1, norm_2, norm_3, norm_4;  // [E]
  std::vector<float> q_bias, k_bias;                   // [E] each; empty without qk_bias
  TensorView wqkv;      // [3E, E]
  TensorView proj;      // [E, E]
  TensorView fc;        // [2I, E]
  TensorView mlp_proj;  // [E, I]
};

struct ModelWeights {
  TensorView wte;      // [V, E]
  TensorView lm_head;  // [V, E] (the embedding when tied)
  TensorView adapter;  // [E, 2E]
  std::vector<float> ln_f;
  std::vector<BlockWeights> prelude, core, coda;
};

struct LoadOptions {
  // Touch every weight page at load (otherwise pages fault in on first use).
  bool prefetch = false;
  // Copy the weights into anonymous memory on 2 MiB pages instead of mapping
  // the page cache (4 KiB pages): fewer TLB misses while decode streams every
  // weight, at the cost of a copy at load and private memory. Off by default;
  // docs/PERFORMANCE.md has the measurements behind that choice.
  bool huge_pages = false;
};

class Model {
 public:
  // `path`: a Hugging Face model directory (config.json + model.safetensors or
  // sharded safetensors with model.safetensors.index.json).
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});
  ~Model();

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  // The directory holding tokenizer and generation config files.
  const std::string& dir() const { return dir_; }

  struct ParamCounts {
    int64_t embedding = 0;  // wte (tied head counted once)
    int64_t lm_head = 0;    // 0 when tied
    int64_t prelude = 0, core = 0, coda = 0;
    int64_t adapter = 0, final_norm = 0;
    int64_t total() const { return embedding + lm_head + prelude + core + coda + adapter + final_norm; }
  };
  ParamCounts param_counts() const;
  // dtype name -> number of parameters stored in that dtype (tensors in use).
  std::map<std::string, int64_t> dtype_mix() const;
  // Bytes of weights one token at r recurrent steps reads (excluding the
  // embedding row lookup).
  int64_t weight_bytes_per_token(int64_t steps) const;
  // Total bytes of all weight tensors in use.
  int64_t weight_bytes() const;
  // Seconds spent copying weights into huge pages at load (0 when mapped).
  double copy_seconds() const { return copy_seconds_; }

  // Builds a model from already-collected tensors (used by the loaders).
  // `holders` keeps the memory that the views point into alive.
  static std::unique_ptr<Model> from_tensors(const ModelConfig& config, const std::map<std::string, TensorView>& tensors,
                                             std::vector<std::shared_ptr<void>> holders, const std::string& dir,
                                             const std::string& source);

 private:
  Model() = default;
  ModelConfig config_;
  ModelWeights weights_;
  std::string dir_;
  std::vector<std::shared_ptr<void>> holders_;
  double copy_seconds_ = 0;
};

}  // namespace huginn
