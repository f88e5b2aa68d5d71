#include "huginn/quantize.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <thread>

#include "compute/quant.h"
#include "huginn/error.h"
#include "huginn/engine.h"
#include "huginn/model.h"
#include "io/gguf.h"

namespace huginn {

namespace fs = std::filesystem;

DType parse_weight_type(const std::string& s) {
  std::string l = s;
  for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "q8_0") return DType::Q8_0;
  if (l == "q4_0") return DType::Q4_0;
  if (l == "q4_sb") return DType::Q4_SB;
  if (l == "bf16") return DType::BF16;
  if (l == "f16") return DType::F16;
  if (l == "f32") return DType::F32;
  throw Error("unknown weight type '" + s + "' (expected q8_0, q4_0, q4_sb, bf16, f16 or f32)");
}

namespace {

bool is_quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_SB; }

// Converts every row of `src` to `dt` (via float32), rows split over threads.
void convert_rows(const TensorView& src, DType dt, std::byte* out, int threads) {
  const int64_t rows = src.shape.size() <= 1 ? 1 : src.rows(), cols = src.cols();
  const size_t in_row = dtype_row_bytes(src.dtype, cols), out_row = dtype_row_bytes(dt, cols);
  auto work = [&](int t) {
    std::vector<float> f(static_cast<size_t>(cols));
    for (int64_t r = t; r < rows; r += threads) {
      to_f32(src.dtype, src.data + static_cast<size_t>(r) * in_row, cols, f.data());
      std::byte* o = out + static_cast<size_t>(r) * out_row;
      switch (dt) {
        case DType::F32: std::memcpy(o, f.data(), out_row); break;
        case DType::BF16:
          for (int64_t i = 0; i < cols; ++i) {
            uint16_t h = f32_to_bf16(f[static_cast<size_t>(i)]);
            std::memcpy(o + 2 * i, &h, 2);
          }
          break;
        case DType::F16:
          for (int64_t i = 0; i < cols; ++i) {
            uint16_t h = f32_to_f16(f[static_cast<size_t>(i)]);
            std::memcpy(o + 2 * i, &h, 2);
          }
          break;
        default: quant::quantize_row(dt, f.data(), cols, o); break;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
}

}  // namespace

QuantizeReport quantize_model(const std::string& in, const std::string& out_dir, const QuantizeOptions& opts) {
  auto model = Model::load(in);
  const ModelConfig& c = model->config();
  const ModelWeights& w = model->weights();
  const int threads = resolve_threads(opts.threads);
  QuantizeReport rep;
  fs::create_directories(out_dir);
  rep.output = (fs::path(out_dir) / "model.gguf").string();
  if (fs::equivalent(fs::path(model->dir()), fs::path(out_dir)))
    throw Error("quantize: the output directory must differ from the input model directory");

  std::vector<GgufTensorToWrite> tensors;
  auto add_matrix = [&](const std::string& name, const TensorView& t, DType want) {
    DType dt = want;
    // Q4_SB needs rows of 160; shorter blocks keep 4 bits as Q4_0.
    if (want == DType::Q4_SB && t.cols() % dtype_block_size(want) != 0 && t.cols() % dtype_block_size(DType::Q4_0) == 0) {
      dt = DType::Q4_0;
      rep.kept.push_back({name, "row length " + std::to_string(t.cols()) + " is not a multiple of 160; stored as Q4_0"});
    } else if (is_quantized(want) && t.cols() % dtype_block_size(want) != 0) {
      dt = is_quantized(t.dtype) ? t.dtype : DType::BF16;
      rep.kept.push_back({name, "row length " + std::to_string(t.cols()) + " is not a multiple of " +
                                    std::to_string(dtype_block_size(want)) + "; stored as " + std::string(dtype_name(dt))});
    }
    const size_t nbytes = static_cast<size_t>(t.rows()) * dtype_row_bytes(dt, t.cols());
    rep.bytes_in += static_cast<int64_t>(t.nbytes);
    rep.bytes_out += static_cast<int64_t>(nbytes);
    tensors.push_back({name, dt, t.shape, nbytes, [t, dt, threads](std::byte* o) { convert_rows(t, dt, o, threads); }});
  };
  auto add_vector = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> shape) {
    rep.bytes_out += static_cast<int64_t>(v.size() * 4);
    tensors.push_back({name, DType::F32, std::move(shape), v.size() * 4,
                       [&v](std::byte* o) { std::memcpy(o, v.data(), v.size() * 4); }});
  };
  // The embedding is also the output head: under 4-bit types it keeps 8 bits,
  // since its error reaches every logit directly.
  const bool four_bit = opts.type == DType::Q4_0 || opts.type == DType::Q4_SB;
  const DType emb_type = four_bit ? DType::Q8_0 : opts.type;
  if (emb_type != opts.type)
    rep.kept.push_back({"transformer.wte.weight", "embedding/head stored as Q8_0 under " + std::string(dtype_name(opts.type))});
  add_matrix("transformer.wte.weight", w.wte, emb_type);
  if (!c.tie_embeddings) add_matrix("lm_head.weight", w.lm_head, emb_type);
  add_matrix("transformer.adapter.weight", w.adapter, opts.type);
  add_vector("transformer.ln_f.weight", w.ln_f, {c.n_embd});
  auto blocks = [&](const std::vector<BlockWeights>& bs, const std::string& prefix) {
    for (size_t i = 0; i < bs.size(); ++i) {
      const std::string p = prefix + std::to_string(i) + ".";
      const BlockWeights& b = bs[i];
      add_matrix(p + "attn.Wqkv.weight", b.wqkv, opts.type);
      add_matrix(p + "attn.proj.weight", b.proj, opts.type);
      add_matrix(p + "mlp.fc.weight", b.fc, opts.type);
      add_matrix(p + "mlp.proj.weight", b.mlp_proj, opts.type);
      add_vector(p + "norm_1.weight", b.norm_1, {c.n_embd});
      add_vector(p + "norm_2.weight", b.norm_2, {c.n_embd});
      add_vector(p + "norm_3.weight", b.norm_3, {c.n_embd});
      add_vector(p + "norm_4.weight", b.norm_4, {c.n_embd});
      if (c.qk_bias) {
        // Stored as the checkpoint's [2, 1, H, D]: q bias then k bias.
        auto qk = std::make_shared<std::vector<float>>(b.q_bias);
        qk->insert(qk->end(), b.k_bias.begin(), b.k_bias.end());
        rep.bytes_out += static_cast<int64_t>(qk->size() * 4);
        tensors.push_back({p + "attn.qk_bias", DType::F32, {2, 1, c.n_heads, c.head_dim()}, qk->size() * 4,
                           [qk](std::byte* o) { std::memcpy(o, qk->data(), qk->size() * 4); }});
      }
    }
  };
  blocks(w.prelude, "transformer.prelude.");
  blocks(w.core, "transformer.core_block.");
  blocks(w.coda, "transformer.coda.");

  std::map<std::string, GgufValue> md;
  md["general.architecture"] = std::string("huginn");
  md["general.name"] = fs::path(model->dir()).filename().string();
  md["general.file_type"] = std::string(dtype_name(opts.type));
  md["general.quantized_by"] = std::string("huginn.cpp");
  md["huginn.config_json"] = c.to_json();
  md["huginn.context_length"] = c.block_size;
  md["huginn.embedding_length"] = c.n_embd;
  md["huginn.feed_forward_length"] = c.intermediate_size;
  md["huginn.attention.head_count"] = c.n_heads;
  md["huginn.attention.head_count_kv"] = c.n_heads;
  md["huginn.attention.layer_norm_rms_epsilon"] = c.norm_eps;
  md["huginn.rope.freq_base"] = c.rope_base;
  md["huginn.vocab_size"] = c.vocab_size;
  md["huginn.prelude_block_count"] = c.n_layers_in_prelude;
  md["huginn.recurrent_block_count"] = c.n_layers_in_recurrent_block;
  md["huginn.coda_block_count"] = c.n_layers_in_coda;
  md["huginn.mean_recurrence"] = c.mean_recurrence;
  md["huginn.qk_bias"] = c.qk_bias;
  md["huginn.tie_embeddings"] = c.tie_embeddings;
  write_gguf(rep.output, md, tensors);

  // Config and tokenizer files travel along so the output is a model directory.
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json"}) {
    fs::path src = fs::path(model->dir()) / f;
    if (fs::exists(src)) fs::copy_file(src, fs::path(out_dir) / f, fs::copy_options::overwrite_existing);
  }
  return rep;
}

}  // namespace huginn
