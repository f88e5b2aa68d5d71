// Text generation on top of the Engine's step API (spec: HUGINN.md sections
// 3-5; semantics: shared/golden/model/README.md, the generate_* and
// adaptive_* cases).
//
// Two loops, as in the reference implementation:
//  - plain (`adaptive` unset; the reference's generate_minimal): every call
//    runs `steps` recurrent iterations. With `continuous`, a call starts from
//    ln_f(final state) of the previous call's last position (the latents).
//  - adaptive (`adaptive` set; generate_with_adaptive_compute): at most
//    `steps` iterations per call; an exit criterion, checked after iteration
//    `step` (0-based) when step >= min_steps and (step - min_steps) %
//    check_every == 0, may stop the recurrence early. The logits (and the coda
//    K/V this token keeps) are those of the final state. With `continuous`, a
//    call starts from the previous call's *raw* final state.
// Call 0 runs the whole prompt; every later call one token. Several
// sequences run as one batch (one Engine call per token for all unfinished
// sequences), each with its own KV cache, initial-state draws and sampler;
// a sequence's result does not depend on the others in the batch.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "huginn/engine.h"
#include "huginn/generation_config.h"
#include "huginn/kv_cache.h"
#include "huginn/sampler.h"

namespace huginn {

class Tokenizer;

enum class ExitCriterion { None, EntropyDiff, LatentDiff, KL, MinpKL, ArgmaxStability, Cosine };

// "none", "entropy-diff", "latent-diff", "kl", "minp-kl", "argmax-stability",
// "cosine"; throws huginn::Error otherwise.
ExitCriterion parse_criterion(std::string_view name);
std::string to_string(ExitCriterion c);
// The reference's "auto" thresholds: entropy-diff 1e-3, latent-diff 0.03,
// kl 5e-4, minp-kl 1e-6, argmax-stability 5 (steps), cosine 1e-3; none:
// never exits (returns 0).
double default_exit_threshold(ExitCriterion c);
// True for the criteria that need the logits at every check.
bool criterion_needs_logits(ExitCriterion c);

// One sequence's exit criterion during one call (golden README "Criteria").
// Values are computed in double and compared with the threshold in float32.
class ExitEvaluator {
 public:
  ExitEvaluator(ExitCriterion c, double threshold, int64_t vocab_size);
  ExitCriterion criterion() const { return c_; }
  double threshold() const { return threshold_; }
  bool needs_logits() const { return criterion_needs_logits(c_); }
  // Resets the prev_* values at the start of a call; `initial_state` is the
  // call's start state [tokens, E] (zero, a draw, or a warm start).
  void init(std::span<const float> initial_state, int64_t n_embd);
  struct Check {
    double value;  // NaN possible (cosine from a zero state)
    bool exit;
  };
  // `state`: the call's state [tokens, E] after this iteration; `logits`: the
  // last position's logits (needed only when needs_logits()).
  Check check(std::span<const float> state, std::span<const float> logits);

 private:
  ExitCriterion c_;
  double threshold_;
  int64_t V_, E_ = 0;
  double prev_entropy_ = 100.0;
  std::vector<double> prev_logp_;
  std::vector<float> prev_state_;
  int64_t prev_argmax_ = -1, stable_ = 0;
};

struct AdaptiveOptions {
  ExitCriterion criterion = ExitCriterion::None;
  std::optional<double> exit_threshold;  // unset: default_exit_threshold
  int64_t min_steps = 0;
  int64_t check_every = 1;  // check_criterion_every_n_steps
  double threshold() const { return exit_threshold ? *exit_threshold : default_exit_threshold(criterion); }
};

struct GenerateOptions {
  int64_t steps = 0;  // recurrent iterations per call (the maximum when adaptive); 0: mean_recurrence
  std::optional<AdaptiveOptions> adaptive;
  float init_scale = 1.0f;  // initial-state draw: 0 gives the zero state
  uint64_t seed = 0;        // seeds the initial-state draws and the sampler (sequence b: seed + b)
  bool continuous = false;  // warm start (continuous compute)
  // Cache lookup strategy string (CacheStrategy::parse); unset: "full" for the
  // plain loop, "latest-m4" for the adaptive one.
  std::optional<std::string> cache_strategy;
  // Preallocate each cache for prompt + max_new_tokens tokens and `steps`
  // iterations instead of growing it page by page.
  bool preallocate_cache = false;
  int64_t max_new_tokens = 256;
  SamplingParams sampling;
  // Generation stops after one of these ids (the id is kept in `ids`, its
  // text is not emitted). 65504, 65505 and 65508 are always added.
  std::vector<int32_t> stop_ids;
  // Generation stops once the decoded text contains one of these; the text
  // from the stop string on is not emitted (needs a tokenizer).
  std::vector<std::string> stop_strings;
  bool record_logits = false;  // keep every chosen-from logits row (tests)
  // When it becomes true, every sequence stops before its next call.
  const std::atomic<bool>* cancel = nullptr;

  // Defaults from a generation_config.json: sampling, eos ids as stop ids,
  // stop strings, max_new_tokens (max_length - prompt_len needs the prompt:
  // see GenerationConfig::resolve_max_new_tokens).
  static GenerateOptions from_generation_config(const GenerationConfig& g);
  int64_t resolved_steps(const ModelConfig& c) const { return steps > 0 ? steps : c.mean_recurrence; }
  CacheStrategy resolved_cache_strategy() const;
  // Throws huginn::Error on a bad value.
  void validate() const;
};

enum class FinishReason { Length, StopId, StopString, Cancelled, ContextFull };
std::string to_string(FinishReason r);

// What happened while choosing one token.
struct TokenInfo {
  int64_t steps = 0;          // recurrent iterations of the call
  bool exited_early = false;  // adaptive: a check said exit before max steps
  std::vector<double> check_values;  // every value the criterion returned, in order
};

struct GenerationResult {
  std::vector<int32_t> ids;    // generated ids (a final stop id included)
  std::vector<int64_t> steps;  // steps per generated token
  std::vector<TokenInfo> info;
  std::string text;  // streamed text (empty without a tokenizer)
  FinishReason finish = FinishReason::Length;
  std::vector<float> logits;  // [ids.size(), V] with record_logits
  size_t cache_bytes = 0;     // the KV cache's bytes() at the end
  double mean_steps() const;
};

struct StreamCallbacks {
  // After every generated token of sequence `seq`.
  std::function<void(int seq, int32_t id, int64_t steps)> on_token;
  // Newly completed text of sequence `seq` (never half a UTF-8 character,
  // never part of a stop string).
  std::function<void(int seq, std::string_view text)> on_text;
};

// Independent sequences, batched. `tokenizer` may be null (no text, no stop
// strings).
std::vector<GenerationResult> generate(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerateOptions& opts, const Tokenizer* tokenizer = nullptr,
                                       const StreamCallbacks& cb = {});
GenerationResult generate(Engine& engine, std::span<const int32_t> prompt, const GenerateOptions& opts,
                          const Tokenizer* tokenizer = nullptr, const StreamCallbacks& cb = {});

// A multi-turn conversation: one sequence whose KV cache persists between
// turns, so a turn feeds only the tokens that are new.
class Session {
 public:
  Session(Engine& engine, GenerateOptions opts, const Tokenizer* tokenizer = nullptr);
  ~Session();
  // `context`: the whole conversation so far as tokens (e.g. the rendered
  // chat template). The cache keeps its longest common prefix with
  // `context` (rolling back the rest) and the remaining tokens are fed before
  // generating.
  GenerationResult generate(std::span<const int32_t> context, const StreamCallbacks& cb = {});
  void reset();
  GenerateOptions& options() { return opts_; }
  const KVCache& cache() const;
  // Tokens the cache holds.
  const std::vector<int32_t>& cached_tokens() const;

 private:
  struct State;
  Engine& engine_;
  GenerateOptions opts_;
  const Tokenizer* tokenizer_;
  std::unique_ptr<State> st_;
};

}  // namespace huginn
