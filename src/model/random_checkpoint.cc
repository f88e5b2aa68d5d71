#include "huginn/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "huginn/error.h"
#include "huginn/engine.h"
#include "io/safetensors.h"

namespace huginn {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Huginn-0125's 32 special tokens, ids 65504..65535, in its order.
const char* const kSpecialTokens[32] = {
    "<|begin_text|>", "<|end_text|>", "<|begin_header|>", "<|end_header|>", "<|end_turn|>", "<|pad|>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|...|>", "<|del|>",
    "<|c_0|>", "<|c_1|>", "<|c_2|>", "<|c_3|>", "<|c_4|>", "<|c_5|>", "<|c_6|>", "<|c_7|>", "<|c_8|>", "<|c_9|>",
    "<|?|>", "<|&|>", "<|!|>", "<|-|>", "<|+|>", "<|interrupt|>", "<|>>-|>", "<|-<<|>", "<|->>|>", "<|<<-|>"};
constexpr int64_t kFirstSpecial = 65504;

// GPT-2's byte-to-character map used by byte-level BPE vocabularies.
std::string byte_level_char(int b) {
  int cp;
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
    cp = b;
  } else {
    int n = 0;  // rank among the remapped bytes
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s.push_back(static_cast<char>(cp));
  else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

void write_json(const fs::path& p, const json& j) {
  std::ofstream f(p);
  if (!f) throw Error("cannot create " + p.string());
  f << j.dump(2) << "\n";
  if (!f) throw Error("error writing " + p.string());
}

// Fast deterministic normals: splitmix64 + the sum of four uniforms (Irwin-Hall),
// close enough to Gaussian for random weights and ~10x faster than Box-Muller.
struct FastNormal {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float operator()() {
    uint64_t a = next(), b = next();
    float u = static_cast<float>(a & 0xffffffff) + static_cast<float>(a >> 32) + static_cast<float>(b & 0xffffffff) +
              static_cast<float>(b >> 32);
    return (u * (1.0f / 4294967296.0f) - 2.0f) * 1.7320508f;  // mean 0, variance 1
  }
};

void fill_values(std::byte* out, DType dt, int64_t n, float mean, float std, uint64_t seed, int threads) {
  const int64_t chunk = 1 << 20;
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  auto work = [&](int tid) {
    for (int64_t c = tid; c < n_chunks; c += threads) {
      FastNormal rng{seed * 0x100000001b3ull + static_cast<uint64_t>(c) * 0x9e3779b97f4a7c15ull};
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        float v = mean + std * rng();
        switch (dt) {
          case DType::F32: std::memcpy(out + i * 4, &v, 4); break;
          case DType::BF16: {
            uint16_t h = f32_to_bf16(v);
            std::memcpy(out + i * 2, &h, 2);
            break;
          }
          case DType::F16: {
            uint16_t h = f32_to_f16(v);
            std::memcpy(out + i * 2, &h, 2);
            break;
          }
          default: break;
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& t : pool) t.join();
}

}  // namespace

ModelConfig random_checkpoint_preset(const std::string& name) {
  ModelConfig c;  // defaults are the published model
  if (name == "full") return c;
  if (name == "demo") {
    c.n_embd = 256;
    c.n_heads = 4;
    c.intermediate_size = 704;
    c.mean_recurrence = 8;
    return c;
  }
  if (name == "tiny") {
    c.n_embd = 64;
    c.n_heads = 4;
    c.intermediate_size = 160;
    c.vocab_size = 512;
    c.block_size = 256;
    c.mean_recurrence = 8;
    return c;
  }
  throw Error("unknown preset '" + name + "' (expected full, demo or tiny)");
}

void write_random_checkpoint(const std::string& dir_s, const RandomCheckpointOptions& o) {
  const ModelConfig& c = o.config;
  c.validate("random checkpoint config");
  if (o.dtype != DType::BF16 && o.dtype != DType::F16 && o.dtype != DType::F32)
    throw Error("random checkpoints are written in BF16, F16 or F32");
  if (o.shards < 1 || o.shards > 99) throw Error("shards must be between 1 and 99");
  if (o.write_tokenizer && c.vocab_size < kFirstSpecial + 32)
    throw Error("a tokenizer needs vocab_size >= 65536 for Huginn's special token ids; use --no-tokenizer");
  const fs::path dir(dir_s);
  fs::create_directories(dir);
  const int threads = resolve_threads(o.threads);

  // ---- tensors, in name order as the published files store them ----
  const int64_t E = c.n_embd, I = c.intermediate_size, V = c.vocab_size, H = c.n_heads, D = c.head_dim();
  const int64_t layers = c.n_layers_in_prelude + c.n_layers_in_coda + c.n_layers_in_recurrent_block * c.mean_recurrence;
  const float std_in = static_cast<float>(std::sqrt(2.0 / (5.0 * static_cast<double>(E))));
  const float std_out = std_in / static_cast<float>(std::sqrt(2.0 * static_cast<double>(layers)));
  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    float mean, std;
  };
  std::vector<Spec> specs;
  auto block = [&](const std::string& p) {
    specs.push_back({p + "attn.Wqkv.weight", {3 * E, E}, 0, std_in});
    specs.push_back({p + "attn.proj.weight", {E, E}, 0, std_out});
    if (c.qk_bias) specs.push_back({p + "attn.qk_bias", {2, 1, H, D}, 0, 0.02f});
    specs.push_back({p + "mlp.fc.weight", {2 * I, E}, 0, std_in});
    specs.push_back({p + "mlp.proj.weight", {E, I}, 0, std_out});
    for (int k = 1; k <= 4; ++k) specs.push_back({p + "norm_" + std::to_string(k) + ".weight", {E}, 1.0f, 0.02f});
  };
  specs.push_back({"lm_head.weight", {V, E}, 0, std_in});
  specs.push_back({"transformer.adapter.weight", {E, 2 * E}, 0, std_in});
  for (int64_t i = 0; i < c.n_layers_in_coda; ++i) block("transformer.coda." + std::to_string(i) + ".");
  for (int64_t i = 0; i < c.n_layers_in_recurrent_block; ++i) block("transformer.core_block." + std::to_string(i) + ".");
  specs.push_back({"transformer.ln_f.weight", {E}, 1.0f, 0.02f});
  for (int64_t i = 0; i < c.n_layers_in_prelude; ++i) block("transformer.prelude." + std::to_string(i) + ".");
  specs.push_back({"transformer.wte.weight", {V, E}, 0, std_in});
  std::sort(specs.begin(), specs.end(), [](const Spec& a, const Spec& b) { return a.name < b.name; });

  const size_t esize = o.dtype == DType::F32 ? 4 : 2;
  // The tied embedding is stored twice, byte-identical, as in the published files.
  const uint64_t wte_seed = o.seed * 7919 + 17;
  std::vector<TensorToWrite> all;
  uint64_t total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    int64_t n = 1;
    for (auto d : s.shape) n *= d;
    TensorToWrite t;
    t.name = s.name;
    t.dtype = o.dtype;
    t.shape = s.shape;
    t.nbytes = static_cast<size_t>(n) * esize;
    const bool emb = s.name == "lm_head.weight" || s.name == "transformer.wte.weight";
    const uint64_t seed = emb && c.tie_embeddings ? wte_seed : o.seed * 1000003 + i;
    t.generate = [=, dt = o.dtype](std::byte* out) { fill_values(out, dt, n, s.mean, s.std, seed, threads); };
    total += t.nbytes;
    all.push_back(std::move(t));
  }

  if (o.shards == 1) {
    write_safetensors((dir / "model.safetensors").string(), all);
  } else {
    // Split into shards of about equal size, tensors kept whole and in order.
    json weight_map = json::object();
    const uint64_t target = (total + static_cast<uint64_t>(o.shards) - 1) / static_cast<uint64_t>(o.shards);
    size_t i = 0;
    for (int k = 1; k <= o.shards; ++k) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, o.shards);
      std::vector<TensorToWrite> part;
      uint64_t bytes = 0;
      while (i < all.size() && (k == o.shards || bytes < target || part.empty())) {
        bytes += all[i].nbytes;
        weight_map[all[i].name] = name;
        part.push_back(all[i++]);
      }
      write_safetensors((dir / name).string(), part);
    }
    write_json(dir / "model.safetensors.index.json", {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}});
  }

  // ---- config files ----
  json cfg = json::parse(c.to_json());
  cfg.erase("head_dim");
  cfg["architectures"] = {"RavenForCausalLM"};
  cfg["n_layers"] = c.n_layers_in_prelude + c.n_layers_in_recurrent_block + c.n_layers_in_coda;
  cfg["tie_word_embeddings"] = c.tie_embeddings;
  cfg["padding_multiple"] = 4096;
  cfg["huginn_cpp_note"] = "random weights written by `huginn make-random`; not a trained model";
  write_json(dir / "config.json", cfg);
  write_json(dir / "generation_config.json", {{"bos_token_id", 65504},
                                              {"eos_token_id", {65505, 65508}},
                                              {"pad_token_id", 65509},
                                              {"do_sample", false}});
  if (!o.write_tokenizer) return;

  // ---- a byte-level tokenizer with Huginn's special tokens (no merges) ----
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(b)] = b;
  for (int64_t id = 256; id < kFirstSpecial; ++id) vocab["<|reserved_token_" + std::to_string(id - 256) + "|>"] = id;
  json added = json::array();
  for (int k = 0; k < 32; ++k) {
    vocab[kSpecialTokens[k]] = kFirstSpecial + k;
    added.push_back({{"id", kFirstSpecial + k},
                     {"content", kSpecialTokens[k]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", json::array()}}},
  };
  write_json(dir / "tokenizer.json", tok);
  write_json(dir / "tokenizer_config.json", {{"add_bos_token", false},
                                             {"add_eos_token", false},
                                             {"bos_token", "<|begin_text|>"},
                                             {"eos_token", "<|end_text|>"},
                                             {"pad_token", "<|pad|>"},
                                             {"chat_template", o.chat_template},
                                             {"clean_up_tokenization_spaces", false},
                                             {"model_max_length", c.block_size},
                                             {"tokenizer_class", "PreTrainedTokenizerFast"}});
  write_json(dir / "special_tokens_map.json",
             {{"bos_token", "<|begin_text|>"}, {"eos_token", "<|end_text|>"}, {"pad_token", "<|pad|>"}});
}

}  // namespace huginn
