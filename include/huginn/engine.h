// The forward pass of a recurrent-depth model over a batch of independent
// sequences (spec: HUGINN.md section 2).
//
//   e = prelude(wte[x] * sqrt(E))
//   s = s0 (random, zero, or a warm-start state)
//   repeat r times: s = core_blocks(adapter(concat(s, e)))
//   latent = ln_f(s);  logits = lm_head(ln_f(coda(latent)))
//
// A call is begin() -> init state -> step() x r -> decode(). The tokens of all
// sequences are stacked into one [tokens, E] activation matrix, so every
// weight is read once per call for the whole batch; attention runs per
// sequence against that sequence's KV cache. forward() does a whole call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "huginn/kv_cache.h"
#include "huginn/model.h"

namespace huginn {

class Backend;
struct AttentionSegment;

struct EngineOptions {
  int threads = 0;  // 0: one per core
};

// The thread count every `threads` option means: itself if positive, else
// one per core (at least 1).
int resolve_threads(int requested);

// One sequence's part of a call.
struct SequenceInput {
  std::span<const int32_t> tokens;
  // Its cache; positions continue at cache->length(). nullptr: no cache
  // (positions start at 0 and nothing is kept after the call).
  KVCache* cache = nullptr;
};

// Draws the random initial state: truncated normal, std sqrt(2/(5E)) *
// init_scale, cut at +-3 std, times sqrt(E). init_scale 0 gives zeros.
class StateInitializer {
 public:
  explicit StateInitializer(uint64_t seed = 0) : rng_(seed) {}
  void fill(std::span<float> out, double std_dev, double scale);

 private:
  std::mt19937_64 rng_;
};

class Engine {
 public:
  explicit Engine(const Model& model, EngineOptions opts = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Model& model() const { return model_; }
  Backend& backend() { return *backend_; }

  // ---- step API ----
  // Starts a call: embeds each sequence's tokens and runs the prelude
  // (writing its K/V); the state is zero until initialised.
  void begin(std::span<const SequenceInput> batch);
  int batch_size() const { return static_cast<int>(seqs_.size()); }
  int64_t num_tokens(int b) const { return seqs_[static_cast<size_t>(b)].n; }
  int64_t start_position(int b) const { return seqs_[static_cast<size_t>(b)].pos0; }
  // Recurrent state of sequence b, [num_tokens(b), E], writable (initial
  // state, warm start).
  std::span<float> state(int b);
  // Prelude output of sequence b, [num_tokens(b), E].
  std::span<const float> embedding(int b) const;
  // Fills every sequence's state from `init` (see StateInitializer).
  void init_state(float init_scale, StateInitializer& init);
  // One recurrent iteration for the sequences with active[b] != 0 (all when
  // `active` is empty).
  void step(std::span<const uint8_t> active = {});
  int64_t steps_done(int b) const { return seqs_[static_cast<size_t>(b)].steps; }
  // Coda and head on the current state of the active sequences: fills
  // latents(b) = ln_f(state) and logits(b) for every position (all_positions)
  // or only the last. Coda K/V are (over)written for these tokens.
  void decode(bool all_positions, std::span<const uint8_t> active = {});
  std::span<const float> logits(int b) const;   // [rows, V]
  std::span<const float> latents(int b) const;  // [num_tokens(b), E]

  // ---- a whole call for one sequence ----
  struct Result {
    std::vector<float> logits;   // [S or 1, V]
    std::vector<float> latents;  // [S, E]
    std::vector<float> state;    // raw final state [S, E]
  };
  struct Options {
    int64_t steps = 0;  // 0: mean_recurrence
    float init_scale = 0.0f;
    uint64_t seed = 0;
    bool all_logits = true;
    const float* init_state = nullptr;  // [S, E] warm start instead of a draw
  };
  Result forward(std::span<const int32_t> tokens, KVCache* cache, const Options& opts);

  // Debug tracing: when set, called with named intermediate activations
  // ("embeddings", "prelude.0.norm_1", "adapter.3", "core.3.1.out",
  // "latents", "coda.1.out", "final_hidden", ...) as packed [rows, cols].
  using TraceFn = std::function<void(const std::string& name, const float* data, int64_t rows, int64_t cols)>;
  void set_trace(TraceFn fn) { trace_ = std::move(fn); }

 private:
  struct Seq {
    int64_t n = 0, pos0 = 0, row = 0;  // tokens, first position, first row in the stacked activations
    KVCache* cache = nullptr;
    int64_t steps = 0;
    int64_t logit_rows = 0, logit_row0 = 0;
  };
  struct Segment {  // a sequence's rows inside a (possibly compacted) activation buffer
    int b;
    int64_t row;
  };
  void reserve(int64_t tokens);
  void run_block(const BlockWeights& w, int step_idx, float* x, const std::vector<Segment>& segs, int64_t n,
                 const char* stage, int64_t index);
  void trace(const std::string& name, const float* data, int64_t rows, int64_t cols) const {
    if (trace_) trace_(name, data, rows, cols);
  }

  const Model& model_;
  std::unique_ptr<Backend> backend_;
  std::vector<Seq> seqs_;
  std::vector<std::unique_ptr<KVCache>> scratch_caches_;  // for sequences without a cache
  int64_t capacity_ = 0;
  // Activations, [tokens, ...] each.
  std::vector<float> emb_, state_, x_, cat_, norm_, qkv_, ctx_, attn_, fc_, act_, latent_, hidden_, logits_;
  std::vector<int64_t> pos_scratch_;
  std::vector<Segment> segs_;
  std::vector<AttentionSegment> att_;
  std::vector<float> packed_logits_;
  std::vector<std::vector<const float*>> kv_k_, kv_v_;
  struct RopeHolder;
  std::unique_ptr<RopeHolder> rope_;
  TraceFn trace_;
};

}  // namespace huginn
