// A model directory's generation_config.json: the defaults for generation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "huginn/sampler.h"

namespace huginn {

struct GenerationConfig {
  // Keys missing from the file keep Hugging Face GenerationConfig's defaults:
  // do_sample false, temperature 1, top_k 50, top_p 1, min_p off,
  // repetition_penalty 1 (top_k 50 only matters once sampling is on).
  SamplingParams sampling{.do_sample = false, .temperature = 1.0f, .top_k = 50, .top_p = 1.0f, .min_p = 0.0f,
                          .repetition_penalty = 1.0f};
  std::optional<int64_t> max_new_tokens;  // "max_new_tokens"
  std::optional<int64_t> max_length;      // "max_length": prompt + generated
  std::vector<int32_t> eos_token_ids;     // "eos_token_id": an int or a list
  std::optional<int32_t> bos_token_id, pad_token_id;
  std::vector<std::string> stop_strings;  // "stop_strings": a string or a list

  // Parses the JSON text; null values count as missing. Throws huginn::Error
  // naming `source` and the key on a wrong type or an out-of-range value.
  static GenerationConfig parse(std::string_view json_text, const std::string& source = "generation_config.json");
  static GenerationConfig load(const std::string& path);
  // DIR/generation_config.json, or the defaults when the file does not exist.
  static GenerationConfig from_model_dir(const std::string& dir);

  // max_new_tokens, else max_length - prompt_len (at least 0), else `fallback`.
  int64_t resolve_max_new_tokens(int64_t prompt_len, int64_t fallback) const;
};

}  // namespace huginn
