// The forward pass. Read top to bottom: begin (embed + prelude), step (one
// recurrence: adapter + core blocks), decode (ln_f, coda, ln_f, head), and
// run_block, the sandwich block they all use.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "compute/backend.h"
#include "huginn/engine.h"
#include "huginn/error.h"

namespace huginn {

struct Engine::RopeHolder {
  RopeTable table;
};

namespace {

// cos/sin of p * base^(-2j/D), computed in float32 the way the reference
// builds its table, so positions match it to the last bit in practice.
RopeTable make_rope(const ModelConfig& c) {
  RopeTable r;
  r.positions = c.block_size;
  r.half_dim = c.head_dim() / 2;
  std::vector<float> inv(static_cast<size_t>(r.half_dim));
  const float base = static_cast<float>(c.rope_base);
  for (int64_t j = 0; j < r.half_dim; ++j)
    inv[static_cast<size_t>(j)] =
        1.0f / std::pow(base, static_cast<float>(2 * j) / static_cast<float>(c.head_dim()));
  r.cos.resize(static_cast<size_t>(r.positions * r.half_dim));
  r.sin.resize(r.cos.size());
  for (int64_t p = 0; p < r.positions; ++p)
    for (int64_t j = 0; j < r.half_dim; ++j) {
      float angle = static_cast<float>(p) * inv[static_cast<size_t>(j)];
      r.cos[static_cast<size_t>(p * r.half_dim + j)] = std::cos(angle);
      r.sin[static_cast<size_t>(p * r.half_dim + j)] = std::sin(angle);
    }
  return r;
}

enum class Stage { Prelude, Core, Coda };

}  // namespace

void StateInitializer::fill(std::span<float> out, double std_dev, double scale) {
  if (std_dev <= 0) {
    std::fill(out.begin(), out.end(), 0.0f);
    return;
  }
  std::normal_distribution<double> normal(0.0, 1.0);
  for (float& x : out) {
    double z;
    do z = normal(rng_);
    while (std::fabs(z) > 3.0);
    x = static_cast<float>(z * std_dev * scale);
  }
}

Engine::Engine(const Model& model, EngineOptions opts)
    : model_(model), backend_(make_cpu_backend({opts.threads})), rope_(std::make_unique<RopeHolder>()) {
  rope_->table = make_rope(model.config());
}

Engine::~Engine() = default;

void Engine::reserve(int64_t tokens) {
  if (tokens <= capacity_) return;
  const auto& c = model_.config();
  const size_t T = static_cast<size_t>(tokens), E = static_cast<size_t>(c.n_embd),
               I = static_cast<size_t>(c.intermediate_size);
  for (auto* v : {&emb_, &state_, &x_, &norm_, &ctx_, &attn_, &latent_, &hidden_}) v->resize(T * E);
  cat_.resize(T * 2 * E);
  qkv_.resize(T * 3 * E);
  fc_.resize(T * 2 * I);
  act_.resize(T * I);
  pos_scratch_.resize(T);
  capacity_ = tokens;
}

std::span<float> Engine::state(int b) {
  const Seq& s = seqs_.at(static_cast<size_t>(b));
  const int64_t E = model_.config().n_embd;
  return {state_.data() + s.row * E, static_cast<size_t>(s.n * E)};
}

std::span<const float> Engine::embedding(int b) const {
  const Seq& s = seqs_.at(static_cast<size_t>(b));
  const int64_t E = model_.config().n_embd;
  return {emb_.data() + s.row * E, static_cast<size_t>(s.n * E)};
}

std::span<const float> Engine::latents(int b) const {
  const Seq& s = seqs_.at(static_cast<size_t>(b));
  const int64_t E = model_.config().n_embd;
  return {latent_.data() + s.row * E, static_cast<size_t>(s.n * E)};
}

std::span<const float> Engine::logits(int b) const {
  const Seq& s = seqs_.at(static_cast<size_t>(b));
  const int64_t V = model_.config().vocab_size;
  return {logits_.data() + s.logit_row0 * V, static_cast<size_t>(s.logit_rows * V)};
}

void Engine::begin(std::span<const SequenceInput> batch) {
  const auto& c = model_.config();
  const auto& w = model_.weights();
  if (batch.empty()) throw Error("forward: empty batch");
  seqs_.assign(batch.size(), Seq{});
  if (scratch_caches_.size() < batch.size()) scratch_caches_.resize(batch.size());
  int64_t total = 0;
  for (size_t b = 0; b < batch.size(); ++b) {
    const auto& in = batch[b];
    if (in.tokens.empty()) throw Error("forward: sequence " + std::to_string(b) + " has no tokens");
    for (int32_t id : in.tokens)
      if (id < 0 || id >= c.vocab_size)
        throw Error("token id " + std::to_string(id) + " is outside the vocabulary (size " + std::to_string(c.vocab_size) + ")");
    KVCache* cache = in.cache;
    if (!cache) {
      // Without a cache, attention sees only this call's tokens: a fresh cache
      // that folds every iteration onto one set of core slots gives exactly that.
      auto& sc = scratch_caches_[b];
      CacheOptions o;
      o.strategy.compress = CacheStrategy::Compress::Sliding;
      o.strategy.compress_n = static_cast<int>(c.n_layers_in_recurrent_block);
      if (!sc) sc = std::make_unique<KVCache>(c, o);
      sc->clear();
      cache = sc.get();
    }
    const int64_t n = static_cast<int64_t>(in.tokens.size());
    if (cache->length() + n > c.block_size)
      throw Error("sequence " + std::to_string(b) + " is too long: " + std::to_string(cache->length()) + " cached + " +
                  std::to_string(n) + " new tokens exceed the model's context of " + std::to_string(c.block_size) +
                  " positions (block_size)");
    Seq& s = seqs_[b];
    s.n = n;
    s.cache = cache;
    s.pos0 = cache->append_tokens(n);
    s.row = total;
    total += n;
  }
  reserve(total);
  const int64_t E = c.n_embd;
  std::vector<Segment>& segs = segs_;
  segs.clear();
  for (size_t b = 0; b < seqs_.size(); ++b) {
    const Seq& s = seqs_[b];
    backend_->embed(w.wte, batch[b].tokens.data(), s.n, static_cast<float>(c.embed_scale()), emb_.data() + s.row * E);
    segs.push_back({static_cast<int>(b), s.row});
  }
  if (trace_) trace("embeddings", emb_.data(), total, E);
  for (size_t i = 0; i < w.prelude.size(); ++i)
    run_block(w.prelude[i], static_cast<int>(i), emb_.data(), segs, total, "prelude", static_cast<int64_t>(i));
  std::fill(state_.begin(), state_.begin() + total * E, 0.0f);
}

void Engine::init_state(float init_scale, StateInitializer& init) {
  const auto& c = model_.config();
  for (int b = 0; b < batch_size(); ++b) init.fill(state(b), c.init_std() * init_scale, c.embed_scale());
}

static bool is_active(std::span<const uint8_t> active, size_t b) { return active.empty() || active[b]; }

void Engine::step(std::span<const uint8_t> active) {
  const auto& c = model_.config();
  const auto& w = model_.weights();
  const int64_t E = c.n_embd;
  std::vector<Segment>& segs = segs_;
  segs.clear();
  int64_t n = 0;
  for (int b = 0; b < batch_size(); ++b) {
    if (!is_active(active, static_cast<size_t>(b))) continue;
    const Seq& s = seqs_[static_cast<size_t>(b)];
    segs.push_back({b, n});
    // adapter input: concat(state, embedding) per token
    for (int64_t t = 0; t < s.n; ++t) {
      std::memcpy(&cat_[static_cast<size_t>((n + t) * 2 * E)], &state_[static_cast<size_t>((s.row + t) * E)], E * sizeof(float));
      std::memcpy(&cat_[static_cast<size_t>((n + t) * 2 * E + E)], &emb_[static_cast<size_t>((s.row + t) * E)], E * sizeof(float));
    }
    n += s.n;
  }
  if (n == 0) return;
  backend_->matmul(w.adapter, cat_.data(), n, x_.data());
  const int64_t iter = seqs_[static_cast<size_t>(segs[0].b)].steps;
  if (trace_) trace("adapter." + std::to_string(iter), x_.data(), n, E);
  for (size_t j = 0; j < w.core.size(); ++j)
    run_block(w.core[j], -1000 - static_cast<int>(j), x_.data(), segs, n, "core", iter * 1000 + static_cast<int64_t>(j));
  for (const Segment& sg : segs) {
    Seq& s = seqs_[static_cast<size_t>(sg.b)];
    std::memcpy(&state_[static_cast<size_t>(s.row * E)], &x_[static_cast<size_t>(sg.row * E)], s.n * E * sizeof(float));
    ++s.steps;
  }
}

void Engine::decode(bool all_positions, std::span<const uint8_t> active) {
  const auto& c = model_.config();
  const auto& w = model_.weights();
  const int64_t E = c.n_embd, V = c.vocab_size;
  const float eps = static_cast<float>(c.norm_eps);
  std::vector<Segment>& segs = segs_;
  segs.clear();
  int64_t n = 0;
  for (int b = 0; b < batch_size(); ++b) {
    if (!is_active(active, static_cast<size_t>(b))) continue;
    const Seq& s = seqs_[static_cast<size_t>(b)];
    segs.push_back({b, n});
    std::memcpy(&x_[static_cast<size_t>(n * E)], &state_[static_cast<size_t>(s.row * E)], s.n * E * sizeof(float));
    n += s.n;
  }
  if (n == 0) return;
  backend_->rmsnorm(x_.data(), nullptr, w.ln_f.data(), n, E, eps, x_.data());
  for (const Segment& sg : segs) {
    const Seq& s = seqs_[static_cast<size_t>(sg.b)];
    std::memcpy(&latent_[static_cast<size_t>(s.row * E)], &x_[static_cast<size_t>(sg.row * E)], s.n * E * sizeof(float));
  }
  if (trace_) trace("latents", x_.data(), n, E);
  for (size_t i = 0; i < w.coda.size(); ++i)
    run_block(w.coda[i], -1 - static_cast<int>(i), x_.data(), segs, n, "coda", static_cast<int64_t>(i));
  // Head input: every row, or the last row of each sequence.
  int64_t rows = 0;
  for (const Segment& sg : segs) {
    const Seq& s = seqs_[static_cast<size_t>(sg.b)];
    const int64_t take = all_positions ? s.n : 1;
    const int64_t from = sg.row + s.n - take;
    std::memcpy(&hidden_[static_cast<size_t>(rows * E)], &x_[static_cast<size_t>(from * E)], take * E * sizeof(float));
    rows += take;
  }
  backend_->rmsnorm(hidden_.data(), nullptr, w.ln_f.data(), rows, E, eps, hidden_.data());
  if (trace_) trace("final_hidden", hidden_.data(), rows, E);
  // Logits rows are laid out per sequence in batch order (inactive sequences
  // keep their rows from an earlier decode).
  int64_t need = 0;
  for (const Seq& s : seqs_) need += all_positions ? s.n : 1;
  if (logits_.size() < static_cast<size_t>(std::max(need, rows) * V)) logits_.resize(static_cast<size_t>(std::max(need, rows) * V));
  std::vector<float>& packed = packed_logits_;
  const bool all_active = static_cast<size_t>(segs.size()) == seqs_.size();
  if (!all_active && packed.size() < static_cast<size_t>(rows * V)) packed.resize(static_cast<size_t>(rows * V));
  float* out = all_active ? logits_.data() : packed.data();
  backend_->matmul(w.lm_head, hidden_.data(), rows, out);
  int64_t row0 = 0, packed_row = 0;
  size_t si = 0;
  for (size_t b = 0; b < seqs_.size(); ++b) {
    Seq& s = seqs_[b];
    const int64_t take = all_positions ? s.n : 1;
    const bool is_active = si < segs.size() && segs[si].b == static_cast<int>(b);
    if (is_active) {
      if (!all_active)
        std::memcpy(&logits_[static_cast<size_t>(row0 * V)], &packed[static_cast<size_t>(packed_row * V)], take * V * sizeof(float));
      s.logit_row0 = row0;
      s.logit_rows = take;
      packed_row += take;
      ++si;
    }
    row0 += take;
  }
}

// The sandwich block on packed rows x [n, E]:
//   h = norm_2(attn(norm_1(x)) + x);  x = norm_4(mlp(norm_3(h)) + h)
// `slot` is the KV step index for prelude (>= 0) and coda (< 0) layers; core
// layer j is passed as -1000 - j and gets P + C * steps + j per sequence.
void Engine::run_block(const BlockWeights& w, int slot, float* x, const std::vector<Segment>& segs, int64_t n,
                       const char* stage, int64_t index) {
  const auto& c = model_.config();
  const int64_t E = c.n_embd, H = c.n_heads, D = c.head_dim(), I = c.intermediate_size;
  const float eps = static_cast<float>(c.norm_eps);
  Backend& be = *backend_;
  std::string tag;
  if (trace_) {
    tag = std::string(stage) + "." +
          (std::string_view(stage) == "core" ? std::to_string(index / 1000) + "." + std::to_string(index % 1000)
                                                             : std::to_string(index));
  }

  be.rmsnorm(x, nullptr, w.norm_1.data(), n, E, eps, norm_.data());
  if (trace_) trace(tag + ".norm_1", norm_.data(), n, E);
  be.matmul(w.wqkv, norm_.data(), n, qkv_.data());
  if (trace_) trace(tag + ".qkv", qkv_.data(), n, 3 * E);
  for (const Segment& sg : segs) {
    const Seq& s = seqs_[static_cast<size_t>(sg.b)];
    for (int64_t t = 0; t < s.n; ++t) pos_scratch_[static_cast<size_t>(sg.row + t)] = s.pos0 + t;
  }
  be.bias_rope(qkv_.data(), n, pos_scratch_.data(), w.q_bias.empty() ? nullptr : w.q_bias.data(),
               w.k_bias.empty() ? nullptr : w.k_bias.data(), rope_->table, H, D);
  if (trace_) trace(tag + ".qkv_rope", qkv_.data(), n, 3 * E);

  if (kv_k_.size() < segs.size()) kv_k_.resize(segs.size()), kv_v_.resize(segs.size());
  std::vector<AttentionSegment>& att = att_;
  att.resize(segs.size());
  for (size_t i = 0; i < segs.size(); ++i) {
    const Seq& s = seqs_[static_cast<size_t>(segs[i].b)];
    const int step_idx = slot <= -1000 ? static_cast<int>(c.n_layers_in_prelude + c.n_layers_in_recurrent_block * s.steps) +
                                             (-1000 - slot)
                                       : slot;
    float* rows = qkv_.data() + segs[i].row * 3 * E;
    s.cache->write(step_idx, s.pos0, s.n, rows + E, rows + 2 * E, 3 * E);
    int64_t n_kv = s.cache->gather(step_idx, kv_k_[i], kv_v_[i]);
    att[i] = {rows, 3 * E, s.n, kv_k_[i].data(), kv_v_[i].data(), n_kv, ctx_.data() + segs[i].row * E, E};
  }
  be.attention(att.data(), static_cast<int64_t>(att.size()), H, D);
  if (trace_) trace(tag + ".attn_context", ctx_.data(), n, E);
  be.matmul(w.proj, ctx_.data(), n, attn_.data());
  if (trace_) trace(tag + ".attn_out", attn_.data(), n, E);
  be.rmsnorm(attn_.data(), x, w.norm_2.data(), n, E, eps, x);  // h
  if (trace_) trace(tag + ".norm_2", x, n, E);
  be.rmsnorm(x, nullptr, w.norm_3.data(), n, E, eps, norm_.data());
  if (trace_) trace(tag + ".norm_3", norm_.data(), n, E);
  be.matmul(w.fc, norm_.data(), n, fc_.data());
  be.silu_mul(fc_.data(), n, I, act_.data());
  be.matmul(w.mlp_proj, act_.data(), n, attn_.data());
  if (trace_) trace(tag + ".mlp_out", attn_.data(), n, E);
  be.rmsnorm(attn_.data(), x, w.norm_4.data(), n, E, eps, x);
  if (trace_) trace(tag + ".out", x, n, E);
}

Engine::Result Engine::forward(std::span<const int32_t> tokens, KVCache* cache, const Options& opts) {
  const auto& c = model_.config();
  const int64_t steps = opts.steps > 0 ? opts.steps : c.mean_recurrence;
  if (opts.steps < 0) throw Error("steps must be positive, got " + std::to_string(opts.steps));
  SequenceInput in{tokens, cache};
  begin({&in, 1});
  if (opts.init_state) {
    std::span<float> s = state(0);
    std::copy(opts.init_state, opts.init_state + s.size(), s.begin());
  } else {
    StateInitializer init(opts.seed);
    init_state(opts.init_scale, init);
  }
  for (int64_t i = 0; i < steps; ++i) step();
  decode(opts.all_logits);
  Result r;
  auto l = logits(0), lat = latents(0);
  auto st = state(0);
  r.logits.assign(l.begin(), l.end());
  r.latents.assign(lat.begin(), lat.end());
  r.state.assign(st.begin(), st.end());
  return r;
}

}  // namespace huginn
