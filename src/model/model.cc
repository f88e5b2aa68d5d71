#include "huginn/model.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "huginn/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"

namespace huginn {

namespace fs = std::filesystem;
using json = nlohmann::json;

Model::~Model() = default;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot open " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Opens model.safetensors or the shards named by model.safetensors.index.json
// and collects every tensor by name.
void open_safetensors(const fs::path& dir, std::map<std::string, TensorView>& tensors,
                      std::vector<std::shared_ptr<void>>& holders, std::string& source, const LoadOptions& opts,
                      double& copy_seconds) {
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(index)) {
    json j;
    try {
      j = json::parse(read_text(index));
    } catch (const json::exception& e) {
      throw Error(index.string() + ": invalid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": missing object 'weight_map'");
    std::map<std::string, std::set<std::string>> by_file;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw Error(index.string() + ": weight_map entry '" + it.key() + "' is not a file name");
      std::string file = it->get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
        throw Error(index.string() + ": weight_map entry '" + it.key() + "' names an invalid file '" + file + "'");
      by_file[file].insert(it.key());
    }
    if (by_file.empty()) throw Error(index.string() + ": weight_map is empty");
    source = index.string();
    for (const auto& [file, names] : by_file) {
      const fs::path p = dir / file;
      if (!fs::exists(p))
        throw Error(index.string() + ": shard '" + file + "' (holding '" + *names.begin() + "') does not exist");
      auto st = std::make_shared<SafetensorsFile>(p.string(), MappedFileOptions{opts.huge_pages});
      holders.push_back(st);
      copy_seconds += st->file().copy_seconds();
      if (opts.prefetch) st->file().prefetch();
      for (const auto& name : names) {
        auto it = st->header().tensors.find(name);
        if (it == st->header().tensors.end())
          throw Error(p.string() + ": tensor '" + name + "' is listed in the index but not in this shard");
        tensors[name] = it->second;
      }
      for (const auto& [name, view] : st->header().tensors) {
        if (!names.count(name) && tensors.count(name))
          throw Error(p.string() + ": tensor '" + name + "' also appears in another shard");
      }
    }
  } else if (fs::exists(single)) {
    auto st = std::make_shared<SafetensorsFile>(single.string(), MappedFileOptions{opts.huge_pages});
    holders.push_back(st);
    copy_seconds += st->file().copy_seconds();
    if (opts.prefetch) st->file().prefetch();
    tensors = st->header().tensors;
    source = single.string();
  } else {
    throw Error(dir.string() + ": no model.safetensors or model.safetensors.index.json found");
  }
}

class Binder {
 public:
  Binder(const std::map<std::string, TensorView>& t, std::string source) : t_(t), source_(std::move(source)) {}

  TensorView get(const std::string& name, std::vector<int64_t> shape, bool matrix) const {
    auto it = t_.find(name);
    if (it == t_.end()) throw Error(source_ + ": tensor '" + name + "' is missing");
    const TensorView& v = it->second;
    TensorView want;
    want.shape = shape;
    if (v.shape != shape)
      throw Error(source_ + ": tensor '" + name + "' has shape " + v.shape_string() + ", expected " + want.shape_string());
    bool plain = v.dtype == DType::F32 || v.dtype == DType::F16 || v.dtype == DType::BF16;
    if (v.name != name || (!matrix && !plain))
      throw Error(source_ + ": tensor '" + name + "' has an unsupported dtype" +
                  (v.name != name ? v.name.substr(name.size()) : " " + std::string(dtype_name(v.dtype))) +
                  " (supported: F32, F16, BF16" + (matrix ? ", Q8_0, Q4_0, Q4_SB" : "") + ")");
    if (!plain && v.cols() % dtype_block_size(v.dtype) != 0)
      throw Error(source_ + ": tensor '" + name + "' has " + std::to_string(v.cols()) +
                  " columns, not a multiple of the block size of " + std::string(dtype_name(v.dtype)));
    return v;
  }

  std::vector<float> vec(const std::string& name, std::vector<int64_t> shape) const {
    TensorView v = get(name, shape, false);
    std::vector<float> out(static_cast<size_t>(v.numel()));
    to_f32(v.dtype, v.data, v.numel(), out.data());
    return out;
  }

 private:
  const std::map<std::string, TensorView>& t_;
  std::string source_;
};

}  // namespace

std::unique_ptr<Model> Model::from_tensors(const ModelConfig& c, const std::map<std::string, TensorView>& tensors,
                                           std::vector<std::shared_ptr<void>> holders, const std::string& dir,
                                           const std::string& source) {
  std::unique_ptr<Model> m(new Model());
  m->config_ = c;
  m->dir_ = dir;
  m->holders_ = std::move(holders);
  const int64_t E = c.n_embd, I = c.intermediate_size, V = c.vocab_size, H = c.n_heads, D = c.head_dim();
  Binder b(tensors, source);
  auto block = [&](const std::string& p) {
    BlockWeights w;
    w.norm_1 = b.vec(p + "norm_1.weight", {E});
    w.norm_2 = b.vec(p + "norm_2.weight", {E});
    w.norm_3 = b.vec(p + "norm_3.weight", {E});
    w.norm_4 = b.vec(p + "norm_4.weight", {E});
    w.wqkv = b.get(p + "attn.Wqkv.weight", {3 * E, E}, true);
    w.proj = b.get(p + "attn.proj.weight", {E, E}, true);
    w.fc = b.get(p + "mlp.fc.weight", {2 * I, E}, true);
    w.mlp_proj = b.get(p + "mlp.proj.weight", {E, I}, true);
    if (c.qk_bias) {
      std::vector<float> qk = b.vec(p + "attn.qk_bias", {2, 1, H, D});
      w.q_bias.assign(qk.begin(), qk.begin() + E);
      w.k_bias.assign(qk.begin() + E, qk.end());
    }
    return w;
  };
  ModelWeights& w = m->weights_;
  w.wte = b.get("transformer.wte.weight", {V, E}, true);
  // With tied embeddings the head reuses wte (the duplicate lm_head stored in
  // published files is never touched, so its pages never enter memory).
  w.lm_head = c.tie_embeddings ? w.wte : b.get("lm_head.weight", {V, E}, true);
  w.adapter = b.get("transformer.adapter.weight", {E, 2 * E}, true);
  w.ln_f = b.vec("transformer.ln_f.weight", {E});
  for (int64_t i = 0; i < c.n_layers_in_prelude; ++i) w.prelude.push_back(block("transformer.prelude." + std::to_string(i) + "."));
  for (int64_t i = 0; i < c.n_layers_in_recurrent_block; ++i)
    w.core.push_back(block("transformer.core_block." + std::to_string(i) + "."));
  for (int64_t i = 0; i < c.n_layers_in_coda; ++i) w.coda.push_back(block("transformer.coda." + std::to_string(i) + "."));
  return m;
}

// A GGUF model (written by `huginn quantize`) carries its config.json text in
// the metadata; its directory holds the tokenizer files.
static std::unique_ptr<Model> load_gguf(const fs::path& file, const LoadOptions& opts, double& copy_seconds) {
  auto reader = std::make_shared<GgufReader>(file.string(), MappedFileOptions{opts.huge_pages});
  const auto& md = reader->file().metadata;
  auto arch = md.find("general.architecture");
  if (arch == md.end() || !std::holds_alternative<std::string>(arch->second) ||
      std::get<std::string>(arch->second) != "huginn")
    throw Error(file.string() + ": general.architecture is not \"huginn\"");
  auto cfg = md.find("huginn.config_json");
  if (cfg == md.end() || !std::holds_alternative<std::string>(cfg->second))
    throw Error(file.string() + ": metadata key huginn.config_json is missing");
  ModelConfig c = ModelConfig::parse(std::get<std::string>(cfg->second), file.string() + " (huginn.config_json)");
  if (opts.prefetch) reader->mapped().prefetch();
  auto tensors = reader->file().tensors;
  copy_seconds = reader->mapped().copy_seconds();
  return Model::from_tensors(c, tensors, {reader}, file.parent_path().string(), file.string());
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  if (!fs::exists(path)) throw Error("model path " + path + " does not exist");
  double copy_seconds = 0;
  auto with_copy_time = [&](std::unique_ptr<Model> m) {
    m->copy_seconds_ = copy_seconds;
    return m;
  };
  if (fs::is_regular_file(path) && fs::path(path).extension() == ".gguf")
    return with_copy_time(load_gguf(path, opts, copy_seconds));
  if (!fs::is_directory(path)) throw Error("model path " + path + " is neither a model directory nor a .gguf file");
  const fs::path dir(path);
  if (fs::exists(dir / "model.gguf")) return with_copy_time(load_gguf(dir / "model.gguf", opts, copy_seconds));
  if (!fs::exists(dir / "config.json")) throw Error(path + ": config.json not found");
  ModelConfig c = ModelConfig::load((dir / "config.json").string());
  std::map<std::string, TensorView> tensors;
  std::vector<std::shared_ptr<void>> holders;
  std::string source;
  open_safetensors(dir, tensors, holders, source, opts, copy_seconds);
  // A header length that is not a multiple of 8 is legal but leaves the data
  // misaligned for its element type; kernels read elements as arrays, so such
  // tensors get an aligned copy (well-formed files never need one).
  for (auto& [name, v] : tensors) {
    const size_t align = v.dtype == DType::F32 ? 4 : 2;
    if (v.nbytes == 0 || reinterpret_cast<uintptr_t>(v.data) % align == 0) continue;
    std::shared_ptr<std::byte[]> copy(new std::byte[v.nbytes]);
    std::memcpy(copy.get(), v.data, v.nbytes);
    v.data = copy.get();
    holders.push_back(std::move(copy));
  }
  return with_copy_time(from_tensors(c, tensors, std::move(holders), path, source));
}

Model::ParamCounts Model::param_counts() const {
  ParamCounts p;
  auto block = [](const BlockWeights& b) {
    return b.wqkv.numel() + b.proj.numel() + b.fc.numel() + b.mlp_proj.numel() +
           static_cast<int64_t>(b.norm_1.size() * 4 + b.q_bias.size() + b.k_bias.size());
  };
  p.embedding = weights_.wte.numel();
  p.lm_head = config_.tie_embeddings ? 0 : weights_.lm_head.numel();
  for (auto& b : weights_.prelude) p.prelude += block(b);
  for (auto& b : weights_.core) p.core += block(b);
  for (auto& b : weights_.coda) p.coda += block(b);
  p.adapter = weights_.adapter.numel();
  p.final_norm = static_cast<int64_t>(weights_.ln_f.size());
  return p;
}

namespace {
template <typename F>
void for_each_matrix(const ModelWeights& w, bool tied, F&& f) {
  f(w.wte);
  if (!tied) f(w.lm_head);
  f(w.adapter);
  for (const auto* group : {&w.prelude, &w.core, &w.coda})
    for (const auto& b : *group) {
      f(b.wqkv);
      f(b.proj);
      f(b.fc);
      f(b.mlp_proj);
    }
}
int64_t block_bytes(const BlockWeights& b) {
  return static_cast<int64_t>(b.wqkv.nbytes + b.proj.nbytes + b.fc.nbytes + b.mlp_proj.nbytes);
}
}  // namespace

std::map<std::string, int64_t> Model::dtype_mix() const {
  std::map<std::string, int64_t> mix;
  for_each_matrix(weights_, config_.tie_embeddings, [&](const TensorView& t) { mix[std::string(dtype_name(t.dtype))] += t.numel(); });
  // Norms and biases are converted to F32 at load; count them as stored.
  mix["F32 (norms and biases, converted at load)"] = param_counts().total() - [&] {
    int64_t n = 0;
    for_each_matrix(weights_, config_.tie_embeddings, [&](const TensorView& t) { n += t.numel(); });
    return n;
  }();
  return mix;
}

int64_t Model::weight_bytes_per_token(int64_t steps) const {
  int64_t b = static_cast<int64_t>(weights_.lm_head.nbytes + weights_.adapter.nbytes) * 1;
  b += static_cast<int64_t>(weights_.adapter.nbytes) * (steps - 1);
  for (auto& x : weights_.prelude) b += block_bytes(x);
  for (auto& x : weights_.coda) b += block_bytes(x);
  for (auto& x : weights_.core) b += block_bytes(x) * steps;
  return b;
}

int64_t Model::weight_bytes() const {
  int64_t n = 0;
  for_each_matrix(weights_, config_.tie_embeddings, [&](const TensorView& t) { n += static_cast<int64_t>(t.nbytes); });
  return n;
}

}  // namespace huginn
