#include "huginn/config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "huginn/error.h"

namespace huginn {

using json = nlohmann::json;

double ModelConfig::init_std() const { return std::sqrt(2.0 / (5.0 * static_cast<double>(n_embd))); }
double ModelConfig::embed_scale() const { return std::sqrt(static_cast<double>(n_embd)); }

namespace {

[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& why) {
  throw Error(source + ": key '" + key + "': " + why);
}

void read_int(const json& j, const char* key, int64_t& out, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_number_integer() || it->is_number_unsigned()) {
    out = it->get<int64_t>();
  } else if (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>() &&
             std::fabs(it->get<double>()) < 9e15) {
    out = static_cast<int64_t>(it->get<double>());
  } else {
    bad(src, key, "expected an integer, got " + it->dump());
  }
}

void read_double(const json& j, const char* key, double& out, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_number()) bad(src, key, "expected a number, got " + it->dump());
  out = it->get<double>();
}

void read_bool(const json& j, const char* key, bool& out, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_boolean()) bad(src, key, "expected true or false, got " + it->dump());
  out = it->get<bool>();
}

void read_string(const json& j, const char* key, std::string& out, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_string()) bad(src, key, "expected a string, got " + it->dump());
  out = it->get<std::string>();
}

// eos_token_id may be an int or a list of ints; the first is kept here (the
// generation config carries the full list).
void read_token_id(const json& j, const char* key, int64_t& out, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_array()) {
    if (it->empty() || !(*it)[0].is_number_integer()) bad(src, key, "expected a list of integers");
    out = (*it)[0].get<int64_t>();
    return;
  }
  read_int(j, key, out, src);
}

}  // namespace

ModelConfig ModelConfig::parse(std::string_view text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for numbers like 1e999
    throw Error(src + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(src + ": expected a JSON object at the top level");
  ModelConfig c;
  read_string(j, "model_type", c.model_type, src);
  read_int(j, "n_embd", c.n_embd, src);
  read_int(j, "n_heads", c.n_heads, src);
  read_int(j, "intermediate_size", c.intermediate_size, src);
  read_int(j, "vocab_size", c.vocab_size, src);
  read_int(j, "block_size", c.block_size, src);
  read_int(j, "n_layers_in_prelude", c.n_layers_in_prelude, src);
  read_int(j, "n_layers_in_recurrent_block", c.n_layers_in_recurrent_block, src);
  read_int(j, "n_layers_in_coda", c.n_layers_in_coda, src);
  read_int(j, "mean_recurrence", c.mean_recurrence, src);
  read_double(j, "norm_eps", c.norm_eps, src);
  read_bool(j, "qk_bias", c.qk_bias, src);
  read_double(j, "rope_base", c.rope_base, src);
  read_bool(j, "tie_embeddings", c.tie_embeddings, src);
  read_bool(j, "bias", c.bias, src);
  read_string(j, "injection_type", c.injection_type, src);
  read_string(j, "torch_dtype", c.torch_dtype, src);
  read_token_id(j, "bos_token_id", c.bos_token_id, src);
  read_token_id(j, "eos_token_id", c.eos_token_id, src);
  read_token_id(j, "pad_token_id", c.pad_token_id, src);

  // Keys that change the math in ways this engine does not implement.
  if (j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()) {
    int64_t kv = c.n_heads;
    read_int(j, "num_key_value_heads", kv, src);
    if (kv != c.n_heads) bad(src, "num_key_value_heads", "grouped-query attention is not supported (must equal n_heads)");
  }
  if (j.contains("test_time_noise")) {
    double noise = 0;
    read_double(j, "test_time_noise", noise, src);
    if (noise != 0) bad(src, "test_time_noise", "test-time noise injection is not supported (must be 0)");
  }
  c.validate(src);
  return c;
}

void ModelConfig::validate(const std::string& src) const {
  auto positive = [&](const char* key, int64_t v, int64_t max) {
    if (v <= 0) bad(src, key, "must be positive, got " + std::to_string(v));
    if (v > max) bad(src, key, "value " + std::to_string(v) + " is larger than supported (" + std::to_string(max) + ")");
  };
  if (model_type != "huginn_raven") bad(src, "model_type", "expected \"huginn_raven\", got \"" + model_type + "\"");
  positive("n_embd", n_embd, 1 << 16);
  positive("n_heads", n_heads, 1024);
  positive("intermediate_size", intermediate_size, 1 << 18);
  positive("vocab_size", vocab_size, 1 << 22);
  positive("block_size", block_size, 1 << 20);
  positive("n_layers_in_recurrent_block", n_layers_in_recurrent_block, 64);
  positive("mean_recurrence", mean_recurrence, 1 << 12);
  if (n_layers_in_prelude < 0 || n_layers_in_prelude > 64) bad(src, "n_layers_in_prelude", "must be between 0 and 64");
  if (n_layers_in_coda < 0 || n_layers_in_coda > 64) bad(src, "n_layers_in_coda", "must be between 0 and 64");
  if (n_embd % n_heads != 0)
    bad(src, "n_heads", "n_embd (" + std::to_string(n_embd) + ") is not divisible by n_heads (" + std::to_string(n_heads) + ")");
  if (head_dim() % 2 != 0) bad(src, "n_heads", "head dimension " + std::to_string(head_dim()) + " must be even for RoPE");
  if (!(norm_eps > 0) || !std::isfinite(norm_eps)) bad(src, "norm_eps", "must be a positive finite number");
  if (!(rope_base > 1) || !std::isfinite(rope_base)) bad(src, "rope_base", "must be a finite number > 1");
  if (bias) bad(src, "bias", "linear layers with bias are not supported (Huginn has bias=false)");
  if (injection_type != "linear")
    bad(src, "injection_type", "only \"linear\" state injection is supported, got \"" + injection_type + "\"");
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path);
}

std::string ModelConfig::to_json() const {
  json j = {
      {"model_type", model_type},
      {"n_embd", n_embd},
      {"n_heads", n_heads},
      {"head_dim", head_dim()},
      {"intermediate_size", intermediate_size},
      {"vocab_size", vocab_size},
      {"block_size", block_size},
      {"n_layers_in_prelude", n_layers_in_prelude},
      {"n_layers_in_recurrent_block", n_layers_in_recurrent_block},
      {"n_layers_in_coda", n_layers_in_coda},
      {"mean_recurrence", mean_recurrence},
      {"norm_eps", norm_eps},
      {"qk_bias", qk_bias},
      {"rope_base", rope_base},
      {"tie_embeddings", tie_embeddings},
      {"bias", bias},
      {"injection_type", injection_type},
      {"torch_dtype", torch_dtype},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
      {"pad_token_id", pad_token_id},
  };
  return j.dump(2);
}

}  // namespace huginn
