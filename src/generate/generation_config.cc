#include "huginn/generation_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "huginn/error.h"

namespace huginn {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& why) {
  throw Error(source + ": \"" + key + "\" " + why);
}

const json* get(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

double number(const json& v, const std::string& source, const char* key) {
  if (!v.is_number()) bad(source, key, "must be a number, got " + v.dump());
  return v.get<double>();
}

int64_t integer(const json& v, const std::string& source, const char* key) {
  if (!v.is_number_integer()) bad(source, key, "must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

}  // namespace

GenerationConfig GenerationConfig::parse(std::string_view text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(source + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(source + ": expected a JSON object");
  GenerationConfig g;
  SamplingParams& s = g.sampling;
  if (auto* v = get(j, "do_sample")) {
    if (!v->is_boolean()) bad(source, "do_sample", "must be true or false, got " + v->dump());
    s.do_sample = v->get<bool>();
  }
  if (auto* v = get(j, "temperature")) s.temperature = static_cast<float>(number(*v, source, "temperature"));
  if (auto* v = get(j, "top_k")) s.top_k = static_cast<int>(integer(*v, source, "top_k"));
  if (auto* v = get(j, "top_p")) s.top_p = static_cast<float>(number(*v, source, "top_p"));
  if (auto* v = get(j, "min_p")) s.min_p = static_cast<float>(number(*v, source, "min_p"));
  if (auto* v = get(j, "repetition_penalty"))
    s.repetition_penalty = static_cast<float>(number(*v, source, "repetition_penalty"));
  try {
    s.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  if (auto* v = get(j, "max_new_tokens")) {
    g.max_new_tokens = integer(*v, source, "max_new_tokens");
    if (*g.max_new_tokens < 0) bad(source, "max_new_tokens", "must be >= 0");
  }
  if (auto* v = get(j, "max_length")) {
    g.max_length = integer(*v, source, "max_length");
    if (*g.max_length < 0) bad(source, "max_length", "must be >= 0");
  }
  auto id = [&](const json& v, const char* key) {
    int64_t x = integer(v, source, key);
    if (x < 0 || x > INT32_MAX) bad(source, key, "out of range: " + v.dump());
    return static_cast<int32_t>(x);
  };
  if (auto* v = get(j, "eos_token_id")) {
    if (v->is_array()) {
      for (const auto& e : *v) g.eos_token_ids.push_back(id(e, "eos_token_id"));
    } else {
      g.eos_token_ids.push_back(id(*v, "eos_token_id"));
    }
  }
  if (auto* v = get(j, "bos_token_id")) g.bos_token_id = id(*v, "bos_token_id");
  if (auto* v = get(j, "pad_token_id")) g.pad_token_id = id(*v, "pad_token_id");
  if (auto* v = get(j, "stop_strings")) {
    if (v->is_string()) {
      g.stop_strings.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (const auto& e : *v) {
        if (!e.is_string()) bad(source, "stop_strings", "must hold strings, got " + e.dump());
        g.stop_strings.push_back(e.get<std::string>());
      }
    } else {
      bad(source, "stop_strings", "must be a string or a list of strings");
    }
  }
  return g;
}

GenerationConfig GenerationConfig::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path);
}

GenerationConfig GenerationConfig::from_model_dir(const std::string& dir) {
  const std::string path = dir + "/generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return GenerationConfig{};
  return load(path);
}

int64_t GenerationConfig::resolve_max_new_tokens(int64_t prompt_len, int64_t fallback) const {
  if (max_new_tokens) return *max_new_tokens;
  if (max_length) return std::max<int64_t>(0, *max_length - prompt_len);
  return fallback;
}

}  // namespace huginn
