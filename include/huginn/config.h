// Model configuration: the fields of a Hugging Face config.json that the
// engine uses (spec: shared/design/HUGINN.md section 1).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace huginn {

struct ModelConfig {
  std::string model_type = "huginn_raven";
  int64_t n_embd = 5280;                      // E
  int64_t n_heads = 55;                       // H; head_dim = E / H
  int64_t intermediate_size = 17920;          // I
  int64_t vocab_size = 65536;                 // V
  int64_t block_size = 4096;                  // max positions (RoPE table)
  int64_t n_layers_in_prelude = 2;
  int64_t n_layers_in_recurrent_block = 4;
  int64_t n_layers_in_coda = 2;
  int64_t mean_recurrence = 32;               // default number of recurrent steps
  double norm_eps = 1e-6;
  bool qk_bias = true;
  double rope_base = 50000.0;
  bool tie_embeddings = true;
  bool bias = false;
  std::string injection_type = "linear";
  std::string torch_dtype = "bfloat16";
  int64_t bos_token_id = 65504;
  int64_t eos_token_id = 65505;
  int64_t pad_token_id = 65509;

  int64_t head_dim() const { return n_embd / n_heads; }
  // Standard deviation of the random initial state before scaling by sqrt(E).
  double init_std() const;
  double embed_scale() const;

  // Parses config.json text; missing keys keep the defaults above, unknown
  // keys are ignored. Throws huginn::Error naming `source` and the key when a
  // value has the wrong type or cannot be run by this engine.
  static ModelConfig parse(std::string_view json_text, const std::string& source = "config.json");
  static ModelConfig load(const std::string& path);
  // Checks the invariants the engine relies on (throws huginn::Error).
  void validate(const std::string& source = "config.json") const;
  std::string to_json() const;
};

}  // namespace huginn
